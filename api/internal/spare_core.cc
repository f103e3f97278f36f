#include "api/internal/spare_core.h"

#include <sched.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace dcplan::internal {
namespace {

int64_t UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int64_t>(std::thread::hardware_concurrency());
}

}  // namespace

bool SpareCoreForHelperThreads(int64_t cpus, std::optional<absl::string_view> local_world_size) {
  int64_t ranks = 1;
  if (local_world_size.has_value() && (!absl::SimpleAtoi(*local_world_size, &ranks) || ranks < 1)) ranks = 1;
  return ranks <= cpus / 2;
}

bool SpareCoreForHelperThreads() {
  static const bool spare = [] {
    const char* local = std::getenv("LOCAL_WORLD_SIZE");
    return SpareCoreForHelperThreads(
        UsableCpus(), local == nullptr ? std::nullopt : std::optional<absl::string_view>(local));
  }();
  return spare;
}

}  // namespace dcplan::internal
