#ifndef DCPLAN_API_INTERNAL_STEP_ERRORS_H_
#define DCPLAN_API_INTERNAL_STEP_ERRORS_H_

// Shaping the errors of one rank's part of a checkpoint step (Save, Load,
// AsyncSave) before StepRunner reports them under the rank's name.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

// Decodes what each rank sent to the coordinator with `decode` (a function
// returning absl::StatusOr<T>); a payload that does not decode is named with
// `what` and its rank: "the local plan of rank 2: ...".
template <typename Decode>
auto DecodeEachRank(const std::vector<std::string>& encoded, absl::string_view what, Decode decode)
    -> absl::StatusOr<std::vector<typename decltype(decode(encoded.front()))::value_type>> {
  std::vector<typename decltype(decode(encoded.front()))::value_type> decoded;
  decoded.reserve(encoded.size());
  for (size_t r = 0; r < encoded.size(); ++r) {
    auto value = decode(encoded[r]);
    if (!value.ok()) return WithContext(value.status(), absl::StrCat(what, " of rank ", r));
    decoded.push_back(*std::move(value));
  }
  return decoded;
}

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_STEP_ERRORS_H_
