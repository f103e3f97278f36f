#ifndef DCPLAN_API_INTERNAL_SPARE_CORE_H_
#define DCPLAN_API_INTERNAL_SPARE_CORE_H_

// Whether a helper thread of this process can count on a core of its own.
//
// A save checksums a large tensor on a helper thread while the calling
// thread writes it, which pays when a core would otherwise idle; when every
// core already runs a rank (as many ranks per host as cores), the helper
// only takes turns with the other ranks' writers and reads the tensor from
// memory a second time, and checksumming each block inline, while it is in
// cache for the write, is faster (2 ranks on 2 cores, /dev/shm: 0.91 of raw
// write against 0.80-0.85).

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace dcplan::internal {

// True when the CPUs this process may run on number at least twice the
// ranks on this host: LOCAL_WORLD_SIZE as torchrun (and dcplan's own
// launchers) set it, 1 when it is unset or not a positive number. Read once.
bool SpareCoreForHelperThreads();

// The rule itself: `cpus` usable CPUs, `local_world_size` the variable's
// value (nullopt when unset).
bool SpareCoreForHelperThreads(int64_t cpus, std::optional<absl::string_view> local_world_size);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_SPARE_CORE_H_
