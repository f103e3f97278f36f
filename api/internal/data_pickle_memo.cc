#include "api/internal/data_pickle_memo.h"

#include <optional>
#include <utility>

#include "api/pickle/pickle_scan.h"

namespace dcplan::internal {
namespace {

// What is known about `bytes`; each verdict is computed on first request.
struct DataPickleVerdicts {
  std::string bytes;
  std::optional<absl::Status> structure;
  std::vector<std::string> globals;  // valid when `structure` is set
  std::optional<absl::StatusOr<pickle::RebuildTensorCall>> v2;
  std::optional<absl::StatusOr<pickle::RebuildTensorCall>> v3;
};

// The verdicts on `pickle` when it may be remembered (forgetting those of
// another data.pkl), else nullptr.
DataPickleVerdicts* VerdictsFor(absl::string_view pickle) {
  if (pickle.size() > kMaxMemoizedDataPickleBytes) return nullptr;
  thread_local DataPickleVerdicts last;
  if (last.bytes != pickle) last = DataPickleVerdicts{std::string(pickle), {}, {}, {}, {}};
  return &last;
}

}  // namespace

absl::Status CheckDataPickleStructure(absl::string_view pickle, std::vector<std::string>* globals) {
  DataPickleVerdicts* verdicts = VerdictsFor(pickle);
  if (verdicts == nullptr) return pickle::CheckPickleStructure(pickle, globals);
  if (!verdicts->structure) verdicts->structure = pickle::CheckPickleStructure(pickle, &verdicts->globals);
  globals->insert(globals->end(), verdicts->globals.begin(), verdicts->globals.end());
  return *verdicts->structure;
}

absl::StatusOr<pickle::RebuildTensorCall> ParseDataPickleV2(absl::string_view pickle) {
  DataPickleVerdicts* verdicts = VerdictsFor(pickle);
  if (verdicts == nullptr) return pickle::ParseRebuildTensorV2(pickle);
  if (!verdicts->v2) verdicts->v2 = pickle::ParseRebuildTensorV2(pickle);
  return *verdicts->v2;
}

absl::StatusOr<pickle::RebuildTensorCall> ParseDataPickleV3(absl::string_view pickle) {
  DataPickleVerdicts* verdicts = VerdictsFor(pickle);
  if (verdicts == nullptr) return pickle::ParseRebuildTensorV3(pickle);
  if (!verdicts->v3) verdicts->v3 = pickle::ParseRebuildTensorV3(pickle);
  return *verdicts->v3;
}

}  // namespace dcplan::internal
