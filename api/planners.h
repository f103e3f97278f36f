#ifndef DCPLAN_API_PLANNERS_H_
#define DCPLAN_API_PLANNERS_H_

// The planners of PyTorch DCP in C++ (spec/planner.md §4, §5): they turn a
// StateDict into plans through the engine, hand the storage layer the data of
// each write item, and receive the data of each read item.
//
// The lookup_* / transform_* methods are the extension points: override them
// in a subclass to change what is written or how loaded data lands.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/state_dict.h"
#include "engine/dedup.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/plan_cache.h"
#include "engine/save_planner.h"

namespace dcplan {

// What the storage layer writes for one item: a CPU tensor (streamed in
// torch.save format) or the torch.save bytes of a non-tensor value.
using WriteData = std::variant<at::Tensor, std::string>;

class SavePlanner {
 public:
  virtual ~SavePlanner() = default;
  // Keeps (a reference-counted copy of) `state_dict`; flattens it.
  virtual absl::Status SetUpPlanner(const StateDict& state_dict, const std::optional<StorageMeta>& storage_meta,
                                    bool is_coordinator) = 0;
  virtual absl::StatusOr<SavePlan> CreateLocalPlan() = 0;
  // Coordinator only. Returns the plans to send to each rank (possibly
  // "unchanged" placeholders with plan caching) and the metadata. An invalid
  // global plan is an error listing every problem.
  virtual absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> CreateGlobalPlan(
      const std::vector<SavePlan>& local_plans) = 0;
  virtual absl::StatusOr<SavePlan> FinishPlan(const SavePlan& central_plan) = 0;
  virtual absl::StatusOr<WriteData> ResolveData(const WriteItem& item) = 0;
};

class DefaultSavePlanner : public SavePlanner {
 public:
  struct Options {
    bool flatten_state_dict = true;
    bool flatten_sharded_tensors = true;
    DedupPolicy dedup = DedupPolicy::kPyTorch;
    bool dedup_save_to_lowest_rank = false;  // overrides `dedup`
    bool enable_plan_caching = false;
  };

  DefaultSavePlanner() : DefaultSavePlanner(Options()) {}
  explicit DefaultSavePlanner(Options options);

  absl::Status SetUpPlanner(const StateDict& state_dict, const std::optional<StorageMeta>& storage_meta,
                            bool is_coordinator) override;
  absl::StatusOr<SavePlan> CreateLocalPlan() override;
  absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> CreateGlobalPlan(
      const std::vector<SavePlan>& local_plans) override;
  absl::StatusOr<SavePlan> FinishPlan(const SavePlan& central_plan) override;
  // LookupObject then TransformObject.
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override;

  // The value an item refers to (find_state_dict_object): a tensor (for a
  // SHARD item, the matching local shard) or a non-tensor value. Errors name
  // the item.
  virtual absl::StatusOr<StateDict> LookupObject(const MetadataIndex& index) const;
  // Tensors unchanged (detached, on CPU); a SavedObject's archive as is;
  // other values serialized with torch.save.
  virtual absl::StatusOr<WriteData> TransformObject(const WriteItem& item, const StateDict& object) const;

  const Options& options() const { return options_; }
  // This rank's number: names it in plan-caching errors. Set it before the
  // first CreateLocalPlan (the rank's plan cache is created there).
  int64_t rank() const { return rank_; }
  void set_rank(int64_t rank) { rank_ = rank; }
  // The plan this rank writes with (after FinishPlan).
  const SavePlan& plan() const { return plan_; }
  // Coordinator: the last global plans and metadata.
  const std::vector<SavePlan>& global_plan() const { return global_plan_; }
  const Metadata& metadata() const { return metadata_; }

 protected:
  const FlatStateDict<StateValue>& flat_state_dict() const { return flat_; }
  bool is_coordinator() const { return is_coordinator_; }

 private:
  Options options_;
  FlatStateDict<StateValue> flat_;
  bool is_coordinator_ = false;
  int64_t rank_ = 0;
  SavePlan plan_;
  std::vector<SavePlan> global_plan_;
  Metadata metadata_;
  // Plan caching: caller-owned in the engine; owned by the planner here, so
  // keep one planner per model/optimizer "namespace" across saves.
  std::optional<RankPlanCache> rank_cache_;
  std::optional<CoordinatorPlanCache> coordinator_cache_;
};

class LoadPlanner {
 public:
  virtual ~LoadPlanner() = default;
  // `state_dict` is the caller's: tensors are filled in place, non-tensor
  // values replaced. It must outlive the load.
  virtual absl::Status SetUpPlanner(StateDict* state_dict, const Metadata& metadata, bool is_coordinator) = 0;
  virtual absl::StatusOr<LoadPlan> CreateLocalPlan() = 0;
  virtual absl::StatusOr<std::vector<LoadPlan>> CreateGlobalPlan(std::vector<LoadPlan> plans) = 0;
  virtual absl::StatusOr<LoadPlan> FinishPlan(LoadPlan central_plan) = 0;
  // A BYTE_IO item's torch.save bytes. DefaultLoadPlanner stores a value
  // LibTorch cannot build (from a well-formed archive) as a SavedObject.
  virtual absl::Status LoadBytes(const ReadItem& item, absl::string_view bytes) = 0;
  // Where the data of a TENSOR item goes: a view of the destination with the
  // item's lengths. Storage copies into it, then calls CommitTensor.
  virtual absl::StatusOr<at::Tensor> ResolveTensor(const ReadItem& item) = 0;
  virtual absl::Status CommitTensor(const ReadItem& item, const at::Tensor& tensor) = 0;
};

class DefaultLoadPlanner : public LoadPlanner {
 public:
  struct Options {
    bool flatten_state_dict = true;
    bool flatten_sharded_tensors = true;
    bool allow_partial_load = false;
  };

  DefaultLoadPlanner() : DefaultLoadPlanner(Options()) {}
  explicit DefaultLoadPlanner(Options options);

  absl::Status SetUpPlanner(StateDict* state_dict, const Metadata& metadata, bool is_coordinator) override;
  // With the legacy-key fallback of spec §5.2. Errors list every missing key,
  // size and type mismatch, each naming this rank.
  absl::StatusOr<LoadPlan> CreateLocalPlan() override;
  absl::StatusOr<std::vector<LoadPlan>> CreateGlobalPlan(std::vector<LoadPlan> plans) override;
  absl::StatusOr<LoadPlan> FinishPlan(LoadPlan central_plan) override;
  absl::Status LoadBytes(const ReadItem& item, absl::string_view bytes) override;
  // narrow(LookupTensor(dest), dest_offsets, lengths), through TransformTensor.
  absl::StatusOr<at::Tensor> ResolveTensor(const ReadItem& item) override;
  // No-op: the data was copied into the view.
  absl::Status CommitTensor(const ReadItem& item, const at::Tensor& tensor) override;

  // The destination tensor (or local shard) of `index`.
  virtual absl::StatusOr<at::Tensor> LookupTensor(const MetadataIndex& index) const;
  virtual absl::StatusOr<at::Tensor> TransformTensor(const ReadItem& item, const at::Tensor& tensor) const;

  const Options& options() const { return options_; }
  const Metadata& metadata() const { return metadata_; }
  int64_t rank() const { return rank_; }
  void set_rank(int64_t rank) { rank_ = rank; }

 protected:
  StateDict* state_dict() const { return state_dict_; }
  Options options_;
  StateDict* state_dict_ = nullptr;
  FlatStateDict<StateValue> flat_;
  Metadata metadata_;
  bool is_coordinator_ = false;
  int64_t rank_ = 0;
};

// Loads a whole checkpoint without a template (_EmptyStateDictLoadPlanner):
// SetUpPlanner requires an empty state dict and fills it with new CPU tensors
// of the saved shapes and dtypes (and the saved non-tensor values), nested
// by the checkpoint's flatten mapping. With `keys`, only those keys (or keys
// under those dotted prefixes) are loaded. A default-constructed (None) state
// dict counts as empty. Unlike PyTorch, loading some items of a list (keys
// {"ema.1"}) works: the None padding SetElement leaves at the other positions
// stays in the state dict but is not requested from the checkpoint.
class EmptyStateDictLoadPlanner : public DefaultLoadPlanner {
 public:
  explicit EmptyStateDictLoadPlanner(std::optional<absl::flat_hash_set<std::string>> keys = std::nullopt,
                                     Options options = Options());
  absl::Status SetUpPlanner(StateDict* state_dict, const Metadata& metadata, bool is_coordinator) override;

 private:
  std::optional<absl::flat_hash_set<std::string>> keys_;
};

}  // namespace dcplan

#endif  // DCPLAN_API_PLANNERS_H_
