#ifndef DCPLAN_FUZZ_FUZZ_CHECK_H_
#define DCPLAN_FUZZ_FUZZ_CHECK_H_

// Invariant checks for the fuzz targets. A violated invariant prints what was
// expected (so that a crash report is readable without a debugger) and then
// traps: libFuzzer records the input, and the replay tests die loudly.

#include <cstdio>
#include <string>

namespace dcplan::fuzzing {

[[noreturn]] inline void FailInvariant(const char* file, int line, const char* condition,
                                       const std::string& details) {
  std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n%s\n", file, line, condition, details.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

}  // namespace dcplan::fuzzing

// FUZZ_CHECK(condition, details): `details` (a std::string expression) is only
// evaluated when the check fails.
#define FUZZ_CHECK(condition, details)                                                   \
  do {                                                                                   \
    if (!(condition)) ::dcplan::fuzzing::FailInvariant(__FILE__, __LINE__, #condition, (details)); \
  } while (0)

#endif  // DCPLAN_FUZZ_FUZZ_CHECK_H_
