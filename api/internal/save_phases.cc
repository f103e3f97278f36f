#include "api/internal/save_phases.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/internal/status_macros.h"
#include "api/internal/step_errors.h"
#include "api/internal/write_results.h"
#include "engine/codec.h"

namespace dcplan::internal {

absl::StatusOr<std::string> SavePhases::Plan(const StateDict& state_dict, Coordinator& coordinator) {
  StepRunner runner(coordinator);
  return runner.ReduceScatter(
      "plan", [&] { return LocalPlan(state_dict, coordinator); },
      [this](std::vector<std::string> plans) { return GlobalPlan(std::move(plans)); });
}

absl::StatusOr<SavePlan> SavePhases::FinishPlan(const std::string& central_plan, int64_t rank) {
  absl::StatusOr<SavePlan> central = DecodeSavePlan(central_plan);
  if (!central.ok()) return WithContext(central.status(), "the plan received from the coordinator");
  return WithoutRankPrefix(planner_.FinishPlan(*central), rank);
}

absl::StatusOr<Metadata> SavePhases::WriteAndCommit(
    Coordinator& coordinator, const std::function<absl::StatusOr<std::vector<WriteResult>>()>& write) {
  StepRunner runner(coordinator);
  DCPLAN_ASSIGN_OR_RETURN(
      std::string metadata,
      runner.AllReduce(
          "write",
          [&]() -> absl::StatusOr<std::string> {
            DCPLAN_ASSIGN_OR_RETURN(std::vector<WriteResult> results, write());
            return EncodeWriteResults(results);
          },
          [this](std::vector<std::string> results) { return Commit(std::move(results)); }));
  absl::StatusOr<Metadata> decoded = DecodeMetadata(metadata);
  if (!decoded.ok()) return WithContext(decoded.status(), "the committed checkpoint metadata");
  return decoded;
}

absl::StatusOr<std::string> SavePhases::LocalPlan(const StateDict& state_dict, const Coordinator& coordinator) {
  const bool is_coordinator = coordinator.is_coordinator();
  const int64_t rank = coordinator.rank();
  absl::Status status = planner_.SetUpPlanner(state_dict, writer_.GetStorageMeta(), is_coordinator);
  if (status.ok()) status = writer_.SetUpStorageWriter(is_coordinator, rank);
  DCPLAN_RETURN_IF_ERROR(WithoutRankPrefix(status, rank));
  absl::StatusOr<SavePlan> plan = planner_.CreateLocalPlan();
  if (plan.ok()) plan = writer_.PrepareLocalPlan(*std::move(plan));
  DCPLAN_ASSIGN_OR_RETURN(SavePlan prepared, WithoutRankPrefix(std::move(plan), rank));
  return EncodeSavePlan(prepared);
}

absl::StatusOr<std::vector<std::string>> SavePhases::GlobalPlan(std::vector<std::string> encoded) {
  DCPLAN_ASSIGN_OR_RETURN(std::vector<SavePlan> local_plans,
                          DecodeEachRank(encoded, "the local plan", DecodeSavePlan));
  DCPLAN_ASSIGN_OR_RETURN(auto global, planner_.CreateGlobalPlan(local_plans));
  global_metadata_ = std::move(global.second);
  DCPLAN_ASSIGN_OR_RETURN(std::vector<SavePlan> prepared, writer_.PrepareGlobalPlan(std::move(global.first)));
  std::vector<std::string> per_rank;
  per_rank.reserve(prepared.size());
  for (const SavePlan& plan : prepared) per_rank.push_back(EncodeSavePlan(plan));
  return per_rank;
}

absl::StatusOr<std::string> SavePhases::Commit(std::vector<std::string> encoded) {
  if (!global_metadata_) return absl::InternalError("the coordinator has no global metadata to commit");
  DCPLAN_ASSIGN_OR_RETURN(std::vector<std::vector<WriteResult>> results,
                          DecodeEachRank(encoded, "the write results", DecodeWriteResults));
  DCPLAN_ASSIGN_OR_RETURN(Metadata committed, writer_.Finish(*global_metadata_, results));
  return EncodeMetadata(committed);
}

}  // namespace dcplan::internal
