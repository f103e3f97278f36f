#ifndef DCPLAN_TOOLS_BENCH_PROCESS_MEMORY_H_
#define DCPLAN_TOOLS_BENCH_PROCESS_MEMORY_H_

// This process's memory as Linux reports it, for the benchmarks' "peak extra
// RSS": reset the high-water mark, note VmRSS, run, read VmHWM.

#include <cstdint>

namespace dcplan::bench {

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"); -1 if absent.
int64_t ProcStatusKib(const char* field);

// Resets VmHWM to the current RSS (/proc/self/clear_refs). False if refused.
bool ResetPeakRss();

}  // namespace dcplan::bench

#endif  // DCPLAN_TOOLS_BENCH_PROCESS_MEMORY_H_
