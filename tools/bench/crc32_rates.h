#ifndef DCPLAN_TOOLS_BENCH_CRC32_RATES_H_
#define DCPLAN_TOOLS_BENCH_CRC32_RATES_H_

// Micro-benchmark of api/internal/crc32.h: GB/s of each CRC-32 path on this
// CPU, over a buffer that fits in L2 (as the save and load paths use it,
// block by block right after the I/O) and over one that does not (memory
// bandwidth bound), printed as a markdown table.

#include <ostream>

namespace dcplan::bench {

void PrintCrc32Rates(std::ostream& out);

}  // namespace dcplan::bench

#endif  // DCPLAN_TOOLS_BENCH_CRC32_RATES_H_
