#ifndef DCPLAN_API_INTERNAL_C10D_FAILURES_H_
#define DCPLAN_API_INTERNAL_C10D_FAILURES_H_

// Timeouts and exceptions of c10d, as api/c10d_coordinator.h reports them.

#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dcplan::internal {

// How much longer than an operation's own timeout its caller waits for it.
inline constexpr std::chrono::milliseconds kWaitGrace{1000};

// `timeout` as c10d takes it, clamped to [1 ms, 30 days].
std::chrono::milliseconds OperationTimeout(absl::Duration timeout);

// Runs `body`; whatever it throws becomes "<where> failed: <what>" with code
// DeadlineExceeded if the message speaks of a timeout, else Unavailable (a
// broken connection or a dead peer).
absl::Status Guarded(const std::string& where, const std::function<void()>& body);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_C10D_FAILURES_H_
