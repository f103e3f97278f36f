#include "api/checkpoint.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/internal/save_phases.h"
#include "api/internal/status_macros.h"
#include "api/internal/step_errors.h"
#include "engine/codec.h"

namespace dcplan {
namespace {

using internal::DecodeEachRank;
using internal::WithContext;
using internal::WithoutRankPrefix;

// --- Save --------------------------------------------------------------------------

absl::StatusOr<Metadata> RunSave(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                                 SavePlanner& planner) {
  internal::SavePhases phases(writer, planner);
  absl::StatusOr<Metadata> metadata = [&]() -> absl::StatusOr<Metadata> {
    DCPLAN_ASSIGN_OR_RETURN(std::string central_plan, phases.Plan(state_dict, coordinator));
    return phases.WriteAndCommit(coordinator, [&]() -> absl::StatusOr<std::vector<WriteResult>> {
      const int64_t rank = coordinator.rank();
      DCPLAN_ASSIGN_OR_RETURN(SavePlan plan, phases.FinishPlan(central_plan, rank));
      return WithoutRankPrefix(writer.WriteData(plan, planner), rank);
    });
  }();
  if (!metadata.ok()) writer.Abort();
  return metadata;
}

// --- Load --------------------------------------------------------------------------

// The top-level entries of `state_dict` sorted by key (stable, so duplicated
// keys keep their order for flattening to report). Values are copies that
// share tensors with the caller's.
StateDict SortedTopLevel(const StateDict& state_dict) {
  std::vector<StateDict::Entry> entries = state_dict.entries();
  std::stable_sort(entries.begin(), entries.end(),
                   [](const StateDict::Entry& a, const StateDict::Entry& b) { return a.key < b.key; });
  return StateDict::MakeMapping(std::move(entries));
}

// Puts the loaded top-level values back into the caller's mapping (their
// tensors are the caller's own, filled in place; other values were
// replaced), adding the entries a planner created (EmptyStateDictLoadPlanner).
void CopyBack(StateDict& loaded, StateDict& state_dict) {
  if (!state_dict.is_mapping()) {
    state_dict = std::move(loaded);
    return;
  }
  for (const StateDict::Entry& entry : loaded.entries()) {
    if (StateDict* existing = state_dict.FindEntry(entry.key)) {
      *existing = entry.value;
    } else {
      state_dict.AddEntry(entry.key, entry.value);
    }
  }
}

class LoadRun {
 public:
  LoadRun(StateDict& working, StorageReader& reader, Coordinator& coordinator, LoadPlanner& planner)
      : working_(working), reader_(reader), coordinator_(coordinator), planner_(planner) {}

  absl::Status Run() {
    StepRunner runner(coordinator_);
    absl::StatusOr<std::string> central_plan = runner.ReduceScatter(
        "plan", [this] { return LocalPlan(); },
        [this](std::vector<std::string> plans) { return GlobalPlan(std::move(plans)); });
    if (!central_plan.ok()) return central_plan.status();
    absl::StatusOr<std::vector<std::string>> read = runner.AllGather("read", [&] { return Read(*central_plan); });
    if (!read.ok()) {
      return absl::Status(read.status().code(),
                          absl::StrCat(read.status().message(),
                                       "\ntensors of this state dict may be partly loaded"));
    }
    return absl::OkStatus();
  }

 private:
  int64_t rank() const { return coordinator_.rank(); }

  absl::StatusOr<std::string> LocalPlan() {
    const bool is_coordinator = coordinator_.is_coordinator();
    absl::StatusOr<Metadata> metadata = reader_.ReadMetadata();
    if (!metadata.ok()) return WithoutRankPrefix(metadata.status(), rank());
    absl::Status status = planner_.SetUpPlanner(&working_, *metadata, is_coordinator);
    if (status.ok()) status = reader_.SetUpStorageReader(*metadata, is_coordinator, rank());
    if (!status.ok()) return WithoutRankPrefix(status, rank());
    absl::StatusOr<LoadPlan> plan = planner_.CreateLocalPlan();
    if (plan.ok()) plan = reader_.PrepareLocalPlan(*std::move(plan));
    if (!plan.ok()) return WithoutRankPrefix(plan.status(), rank());
    return EncodeLoadPlan(*plan);
  }

  absl::StatusOr<std::vector<std::string>> GlobalPlan(std::vector<std::string> encoded) {
    DCPLAN_ASSIGN_OR_RETURN(std::vector<LoadPlan> plans, DecodeEachRank(encoded, "the local plan", DecodeLoadPlan));
    absl::StatusOr<std::vector<LoadPlan>> global = planner_.CreateGlobalPlan(std::move(plans));
    if (global.ok()) global = reader_.PrepareGlobalPlan(*std::move(global));
    if (!global.ok()) return global.status();
    std::vector<std::string> per_rank;
    per_rank.reserve(global->size());
    for (const LoadPlan& plan : *global) per_rank.push_back(EncodeLoadPlan(plan));
    return per_rank;
  }

  absl::StatusOr<std::string> Read(const std::string& encoded_central_plan) {
    absl::StatusOr<LoadPlan> central = DecodeLoadPlan(encoded_central_plan);
    if (!central.ok()) return WithContext(central.status(), "the plan received from the coordinator");
    absl::StatusOr<LoadPlan> final_plan = planner_.FinishPlan(*std::move(central));
    if (!final_plan.ok()) return WithoutRankPrefix(final_plan.status(), rank());
    absl::Status read = reader_.ReadData(*final_plan, planner_);
    if (!read.ok()) return WithoutRankPrefix(read, rank());
    return std::string();
  }

  StateDict& working_;
  StorageReader& reader_;
  Coordinator& coordinator_;
  LoadPlanner& planner_;
};

}  // namespace

absl::StatusOr<Metadata> Save(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                              SavePlanner* planner) {
  DefaultSavePlanner default_planner;
  if (planner == nullptr) planner = &default_planner;
  if (auto* with_rank = dynamic_cast<DefaultSavePlanner*>(planner)) with_rank->set_rank(coordinator.rank());
  return RunSave(state_dict, writer, coordinator, *planner);
}

absl::Status Load(StateDict& state_dict, StorageReader& reader, Coordinator& coordinator, LoadPlanner* planner) {
  DefaultLoadPlanner default_planner;
  if (planner == nullptr) planner = &default_planner;
  if (auto* with_rank = dynamic_cast<DefaultLoadPlanner*>(planner)) with_rank->set_rank(coordinator.rank());
  // PyTorch loads a copy whose top-level keys are sorted, so that every rank
  // (and every run) flattens, plans and reads in the same order.
  StateDict working = state_dict.is_mapping() ? SortedTopLevel(state_dict) : state_dict;
  absl::Status status = LoadRun(working, reader, coordinator, *planner).Run();
  if (!status.ok()) return status;
  CopyBack(working, state_dict);
  return absl::OkStatus();
}

}  // namespace dcplan
