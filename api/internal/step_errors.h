#ifndef DCPLAN_API_INTERNAL_STEP_ERRORS_H_
#define DCPLAN_API_INTERNAL_STEP_ERRORS_H_

// Shaping the errors of one rank's part of a checkpoint step (Save, Load,
// AsyncSave) before StepRunner reports them under the rank's name.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dcplan::internal {

// "`context`: message", same code.
inline absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// StepRunner names the failing rank itself; the storage layer's own
// "rank N: " prefix would repeat it.
inline absl::Status WithoutRankPrefix(const absl::Status& status, int64_t rank) {
  const std::string prefix = absl::StrCat("rank ", rank, ": ");
  if (!absl::StartsWith(status.message(), prefix)) return status;
  return absl::Status(status.code(), status.message().substr(prefix.size()));
}

template <typename T>
absl::StatusOr<T> WithoutRankPrefix(absl::StatusOr<T> value, int64_t rank) {
  if (value.ok()) return value;
  return WithoutRankPrefix(value.status(), rank);
}

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_STEP_ERRORS_H_
