#ifndef DCPLAN_API_INTERNAL_CRC32_H_
#define DCPLAN_API_INTERNAL_CRC32_H_

// CRC-32 as ZIP (and zlib's crc32()) define it: polynomial 0xEDB88320
// (reflected), pre- and post-inverted, so that
// Crc32(Crc32(0, a), b) == Crc32(0, a + b) and
// Crc32(0, "123456789") == 0xCBF43926. torch.save archives record it for
// every record; dcplan computes it when writing archives and checks it in
// `dcplan verify`.

#include <cstddef>
#include <cstdint>

namespace dcplan::internal {

// Uses carry-less multiplication (PCLMULQDQ) when the CPU has it (x86-64),
// else tables eight bytes at a time.
uint32_t Crc32(uint32_t crc, const void* data, size_t size);

// The table-driven algorithm alone (same result as Crc32): for tests.
uint32_t Crc32Portable(uint32_t crc, const void* data, size_t size);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_CRC32_H_
