#ifndef DCPLAN_API_INTERNAL_SAVE_PHASES_H_
#define DCPLAN_API_INTERNAL_SAVE_PHASES_H_

// The phases of one rank's save (spec/planner.md §6.2), shared by Save (all
// phases on the caller's thread) and AsyncSave (planning on the caller's
// thread, writing and committing on a background thread over a coordinator of
// its own):
//
//   Plan            collective "plan" (reduce_scatter): local plans, the
//                   global plan and file prefixes on the coordinator; every
//                   rank receives its central plan.
//   FinishPlan      local: the planner finishes the central plan.
//   WriteAndCommit  collective "write" (all_reduce): every rank writes its
//                   items; the coordinator commits (StorageWriter::Finish)
//                   and every rank receives the committed metadata.
//
// A failure of any collective step is the same error on every rank (see
// StepRunner). The caller calls writer.Abort() when a phase failed.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/coordinator.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "api/storage.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan::internal {

class SavePhases {
 public:
  // `writer` must outlive the object; `planner` must outlive Plan and
  // FinishPlan (WriteAndCommit does not use it).
  SavePhases(StorageWriter& writer, SavePlanner& planner) : writer_(writer), planner_(planner) {}

  // Returns this rank's encoded central plan. On the coordinator, keeps the
  // global metadata for WriteAndCommit.
  absl::StatusOr<std::string> Plan(const StateDict& state_dict, Coordinator& coordinator);

  // Decodes this rank's central plan and finishes it. Errors are this rank's
  // alone: report them inside the "write" step.
  absl::StatusOr<SavePlan> FinishPlan(const std::string& central_plan, int64_t rank);

  // `write` runs on every rank and returns its results; then the coordinator
  // commits. Returns the committed metadata on every rank.
  absl::StatusOr<Metadata> WriteAndCommit(
      Coordinator& coordinator, const std::function<absl::StatusOr<std::vector<WriteResult>>()>& write);

 private:
  absl::StatusOr<std::string> LocalPlan(const StateDict& state_dict, const Coordinator& coordinator);
  absl::StatusOr<std::vector<std::string>> GlobalPlan(std::vector<std::string> encoded);
  absl::StatusOr<std::string> Commit(std::vector<std::string> encoded);

  StorageWriter& writer_;
  SavePlanner& planner_;
  std::optional<Metadata> global_metadata_;  // coordinator only
};

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_SAVE_PHASES_H_
