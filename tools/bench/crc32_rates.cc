#include "tools/bench/crc32_rates.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/internal/crc32.h"

namespace dcplan::bench {
namespace {

// GB/s of Crc32 computed with `path` over `bytes`, best of 5 runs of at
// least `total` bytes each.
double Rate(internal::Crc32Path path, const std::string& bytes, size_t total) {
  const size_t passes = std::max<size_t>(1, total / bytes.size());
  double best = 0;
  volatile uint32_t sink = 0;
  for (int run = 0; run < 5; ++run) {
    const absl::Time start = absl::Now();
    uint32_t value = 0;
    for (size_t p = 0; p < passes; ++p) value = internal::Crc32With(path, value, bytes.data(), bytes.size());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    sink = sink + value;
    if (seconds > 0) best = std::max(best, static_cast<double>(passes * bytes.size()) / seconds / 1e9);
  }
  return best;
}

}  // namespace

void PrintCrc32Rates(std::ostream& out) {
  std::string in_cache(size_t{256} << 10, '\0');
  std::string in_memory(size_t{256} << 20, '\0');
  for (size_t i = 0; i < in_memory.size(); ++i) in_memory[i] = static_cast<char>((i * 2654435761u) >> 11);
  std::copy_n(in_memory.begin(), in_cache.size(), in_cache.begin());
  out << absl::StrFormat("CRC-32 on this CPU (Crc32 uses %s), GB/s, best of 5:\n\n", internal::Crc32Implementation());
  out << "| implementation | 256 KiB buffer (in L2) | 256 MiB buffer (from memory) |\n|---|---:|---:|\n";
  for (internal::Crc32Path path : {internal::Crc32Path::kVpclmul512, internal::Crc32Path::kVpclmul256,
                                   internal::Crc32Path::kPclmul128, internal::Crc32Path::kTable}) {
    if (!internal::Crc32PathAvailable(path)) continue;
    const size_t total = path == internal::Crc32Path::kTable ? size_t{128} << 20 : size_t{2} << 30;
    out << absl::StrFormat("| %s%s | %.1f | %.1f |\n", internal::Crc32PathName(path),
                           path == internal::Crc32ChosenPath() ? " (in use)" : "", Rate(path, in_cache, total),
                           Rate(path, in_memory, std::max(total, in_memory.size())));
  }
  out << "\n";
}

}  // namespace dcplan::bench
