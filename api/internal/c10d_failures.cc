#include "api/internal/c10d_failures.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>

#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace dcplan::internal {
namespace {

// c10d and Gloo report failures as exceptions with free-form messages; a
// timeout is the one kind a caller may want to tell apart (a slow or missing
// rank), everything else is a broken connection or a dead peer.
absl::Status TransportFailure(const std::string& where, const std::string& what) {
  const std::string lower = absl::AsciiStrToLower(what);
  const bool timed_out = absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout");
  return absl::Status(timed_out ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
                      absl::StrCat(where, " failed: ", what));
}

}  // namespace

std::chrono::milliseconds OperationTimeout(absl::Duration timeout) {
  constexpr int64_t kMaxMillis = int64_t{30} * 24 * 3600 * 1000;
  return std::chrono::milliseconds(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, kMaxMillis));
}

absl::Status Guarded(const std::string& where, const std::function<void()>& body) {
  try {
    body();
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return TransportFailure(where, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return TransportFailure(where, e.what());
  } catch (...) {
    return TransportFailure(where, "an exception that is not a std::exception");
  }
}

}  // namespace dcplan::internal
