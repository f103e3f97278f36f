#include "api/checkpoint.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/internal/write_results.h"
#include "engine/codec.h"

namespace dcplan {
namespace {

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// StepRunner names the failing rank itself; the storage layer's own
// "rank N: " prefix would repeat it.
absl::Status WithoutRankPrefix(const absl::Status& status, int64_t rank) {
  const std::string prefix = absl::StrCat("rank ", rank, ": ");
  if (!absl::StartsWith(status.message(), prefix)) return status;
  return absl::Status(status.code(), status.message().substr(prefix.size()));
}

template <typename T>
absl::StatusOr<T> WithoutRankPrefix(absl::StatusOr<T> value, int64_t rank) {
  if (value.ok()) return value;
  return WithoutRankPrefix(value.status(), rank);
}

// --- Save --------------------------------------------------------------------------

class SaveRun {
 public:
  SaveRun(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator, SavePlanner& planner)
      : state_dict_(state_dict), writer_(writer), coordinator_(coordinator), planner_(planner) {}

  absl::StatusOr<Metadata> Run() {
    StepRunner runner(coordinator_);
    absl::StatusOr<std::string> central_plan = runner.ReduceScatter(
        "plan", [this] { return LocalPlan(); },
        [this](std::vector<std::string> plans) { return GlobalPlan(std::move(plans)); });
    if (!central_plan.ok()) return Failed(central_plan.status());
    absl::StatusOr<std::string> metadata = runner.AllReduce(
        "write", [&] { return Write(*central_plan); },
        [this](std::vector<std::string> results) { return Commit(std::move(results)); });
    if (!metadata.ok()) return Failed(metadata.status());
    absl::StatusOr<Metadata> decoded = DecodeMetadata(*metadata);
    if (!decoded.ok()) return WithContext(decoded.status(), "the committed checkpoint metadata");
    return decoded;
  }

 private:
  int64_t rank() const { return coordinator_.rank(); }

  absl::Status Failed(const absl::Status& status) {
    writer_.Abort();
    return status;
  }

  absl::StatusOr<std::string> LocalPlan() {
    const bool is_coordinator = coordinator_.is_coordinator();
    absl::Status status = planner_.SetUpPlanner(state_dict_, writer_.GetStorageMeta(), is_coordinator);
    if (status.ok()) status = writer_.SetUpStorageWriter(is_coordinator, rank());
    if (!status.ok()) return WithoutRankPrefix(status, rank());
    absl::StatusOr<SavePlan> plan = planner_.CreateLocalPlan();
    if (plan.ok()) plan = writer_.PrepareLocalPlan(*std::move(plan));
    if (!plan.ok()) return WithoutRankPrefix(plan.status(), rank());
    return EncodeSavePlan(*plan);
  }

  absl::StatusOr<std::vector<std::string>> GlobalPlan(std::vector<std::string> encoded) {
    std::vector<SavePlan> local_plans;
    local_plans.reserve(encoded.size());
    for (size_t r = 0; r < encoded.size(); ++r) {
      absl::StatusOr<SavePlan> plan = DecodeSavePlan(encoded[r]);
      if (!plan.ok()) return WithContext(plan.status(), absl::StrCat("the local plan of rank ", r));
      local_plans.push_back(*std::move(plan));
    }
    absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> global = planner_.CreateGlobalPlan(local_plans);
    if (!global.ok()) return global.status();
    global_metadata_ = std::move(global->second);
    absl::StatusOr<std::vector<SavePlan>> prepared = writer_.PrepareGlobalPlan(std::move(global->first));
    if (!prepared.ok()) return prepared.status();
    std::vector<std::string> per_rank;
    per_rank.reserve(prepared->size());
    for (const SavePlan& plan : *prepared) per_rank.push_back(EncodeSavePlan(plan));
    return per_rank;
  }

  absl::StatusOr<std::string> Write(const std::string& encoded_central_plan) {
    absl::StatusOr<SavePlan> central = DecodeSavePlan(encoded_central_plan);
    if (!central.ok()) return WithContext(central.status(), "the plan received from the coordinator");
    absl::StatusOr<SavePlan> final_plan = planner_.FinishPlan(*central);
    if (!final_plan.ok()) return WithoutRankPrefix(final_plan.status(), rank());
    absl::StatusOr<std::vector<WriteResult>> results = writer_.WriteData(*final_plan, planner_);
    if (!results.ok()) return WithoutRankPrefix(results.status(), rank());
    return internal::EncodeWriteResults(*results);
  }

  absl::StatusOr<std::string> Commit(std::vector<std::string> encoded) {
    if (!global_metadata_) return absl::InternalError("the coordinator has no global metadata to commit");
    std::vector<std::vector<WriteResult>> results;
    results.reserve(encoded.size());
    for (size_t r = 0; r < encoded.size(); ++r) {
      absl::StatusOr<std::vector<WriteResult>> decoded = internal::DecodeWriteResults(encoded[r]);
      if (!decoded.ok()) return WithContext(decoded.status(), absl::StrCat("the write results of rank ", r));
      results.push_back(*std::move(decoded));
    }
    absl::StatusOr<Metadata> committed = writer_.Finish(*global_metadata_, results);
    if (!committed.ok()) return committed.status();
    return EncodeMetadata(*committed);
  }

  const StateDict& state_dict_;
  StorageWriter& writer_;
  Coordinator& coordinator_;
  SavePlanner& planner_;
  std::optional<Metadata> global_metadata_;  // coordinator only
};

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
    std::vector<LoadPlan> plans;
    plans.reserve(encoded.size());
    for (size_t r = 0; r < encoded.size(); ++r) {
      absl::StatusOr<LoadPlan> plan = DecodeLoadPlan(encoded[r]);
      if (!plan.ok()) return WithContext(plan.status(), absl::StrCat("the local plan of rank ", r));
      plans.push_back(*std::move(plan));
    }
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
  return SaveRun(state_dict, writer, coordinator, *planner).Run();
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
