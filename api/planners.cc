#include "api/planners.h"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ops/empty.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/tensor_record.h"
#include "engine/internal/checked_math.h"
#include "engine/load_planner.h"
#include "engine/problem.h"

namespace dcplan {
namespace {

// An invalid global plan's error lists at most this many problems.
constexpr size_t kMaxProblemLines = 50;

absl::Status InvalidGlobalPlanError(const std::vector<PlanProblem>& problems) {
  std::string text = absl::StrCat("global plan is invalid: ", problems.size(), " problem(s)");
  const size_t shown = std::min(problems.size(), kMaxProblemLines);
  for (size_t i = 0; i < shown; ++i) absl::StrAppend(&text, "\n", ToString(problems[i]));
  if (problems.size() > shown) absl::StrAppend(&text, "\n... and ", problems.size() - shown, " more");
  return absl::InvalidArgumentError(text);
}

// The state dict without flattening: each top-level entry is one key.
absl::StatusOr<FlatStateDict<StateValue>> TopLevelEntries(const StateDict& state_dict) {
  if (!state_dict.is_mapping()) {
    return absl::InvalidArgumentError(absl::StrCat("a state dict must be a mapping at the top level, got a ",
                                                   NestedKindName(state_dict.kind())));
  }
  FlatStateDict<StateValue> flat;
  for (const auto& entry : state_dict.entries()) {
    if (!flat.values.TryEmplace(entry.key, entry.value).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicated state dict key ", entry.key));
    }
  }
  return flat;
}

absl::StatusOr<StateDictDescription> DescribeForPlanning(const FlatStateDict<StateValue>& flat, bool flattened) {
  absl::StatusOr<StateDictDescription> description = Describe(flat);
  if (description.ok() && !flattened) description->mapping.reset();
  return description;
}

absl::Status NoValueError(const MetadataIndex& index) {
  return absl::NotFoundError(absl::StrCat("no value '", index.fqn, "' in the state dict (item ", ToString(index), ")"));
}

// find_tensor_shard (§4.10): the tensor of a plain tensor leaf (offsets, if
// any, must be zeros) or the local shard of a sharded one whose offsets are
// index.offset (the hint first, then every shard).
absl::StatusOr<at::Tensor> FindTensorChunk(const StateValue& value, const MetadataIndex& index) {
  if (const at::Tensor* tensor = PlainTensorOf(value)) {
    if (index.offset.has_value() && *index.offset != Shape(tensor->dim(), 0)) {
      return absl::InvalidArgumentError(absl::StrCat("item ", ToString(index), " does not match tensor '", index.fqn,
                                                     "' of size ", ShapeToString(tensor->sizes().vec()),
                                                     ": a whole tensor's offsets are all zeros"));
    }
    return *tensor;
  }
  const auto* sharded = std::get_if<ShardedTensorValue>(&value);
  if (sharded == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("'", index.fqn, "' is not a tensor (item ", ToString(index), ")"));
  }
  if (!index.offset.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("item ", ToString(index), " has no offsets, but '", index.fqn, "' is a sharded tensor"));
  }
  const std::vector<LocalShard>& shards = sharded->local_shards;
  if (index.index.has_value() && *index.index >= 0 && static_cast<size_t>(*index.index) < shards.size() &&
      shards[*index.index].offsets == *index.offset) {
    return shards[*index.index].tensor;
  }
  for (const LocalShard& shard : shards) {
    if (shard.offsets == *index.offset) return shard.tensor;
  }
  return absl::NotFoundError(absl::StrCat("this rank holds no local shard of '", index.fqn, "' at offsets ",
                                          ShapeToString(*index.offset), " (item ", ToString(index), ")"));
}

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// A BYTE_IO item's value: what LibTorch builds from the archive, or, for a
// well-formed archive of a value LibTorch cannot build (Python bytes, numpy
// arrays, custom classes), the archive itself as a SavedObject. A malformed
// archive stays an error.
absl::StatusOr<StateDict> ValueOfRecord(absl::string_view bytes) {
  absl::StatusOr<c10::IValue> loaded = LoadValueRecord(bytes);
  if (loaded.ok()) return FromIValue(*loaded);
  if (!CheckTorchSaveArchive(bytes).ok()) return loaded.status();
  return Value(SavedObject{std::string(bytes)});
}

}  // namespace

// --- DefaultSavePlanner ------------------------------------------------------------

DefaultSavePlanner::DefaultSavePlanner(Options options) : options_(options) {}

absl::Status DefaultSavePlanner::SetUpPlanner(const StateDict& state_dict,
                                              const std::optional<StorageMeta>& /*storage_meta*/,
                                              bool is_coordinator) {
  absl::StatusOr<FlatStateDict<StateValue>> flat =
      options_.flatten_state_dict ? FlattenForSave(state_dict) : TopLevelEntries(state_dict);
  if (!flat.ok()) return flat.status();
  flat_ = *std::move(flat);
  is_coordinator_ = is_coordinator;
  return absl::OkStatus();
}

absl::StatusOr<SavePlan> DefaultSavePlanner::CreateLocalPlan() {
  absl::StatusOr<StateDictDescription> description = DescribeForPlanning(flat_, options_.flatten_state_dict);
  if (!description.ok()) return description.status();
  absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(*description, is_coordinator_);
  if (!plan.ok()) return plan.status();
  plan_ = *plan;
  if (!options_.enable_plan_caching) return plan;
  if (!rank_cache_.has_value()) rank_cache_.emplace(rank_);
  return rank_cache_->PlanToSend(*plan);
}

absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> DefaultSavePlanner::CreateGlobalPlan(
    const std::vector<SavePlan>& local_plans) {
  SavePlannerOptions planner_options;
  planner_options.flatten_state_dict = options_.flatten_state_dict;
  planner_options.dedup = options_.dedup_save_to_lowest_rank ? DedupPolicy::kLowestRank : options_.dedup;
  planner_options.rewrite_index_hints = true;

  if (options_.enable_plan_caching) {
    if (!coordinator_cache_.has_value()) coordinator_cache_.emplace();
    absl::StatusOr<CachedGlobalPlan> cached = coordinator_cache_->CreateGlobalPlan(local_plans, planner_options);
    if (!cached.ok()) return cached.status();
    if (!cached->valid()) return InvalidGlobalPlanError(cached->problems);
    global_plan_ = coordinator_cache_->cached_global_plans();
    metadata_ = cached->metadata;
    return std::make_pair(std::move(cached->deltas), std::move(cached->metadata));
  }
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(local_plans, planner_options);
  if (!global.ok()) return global.status();
  if (!global->valid()) return InvalidGlobalPlanError(global->problems);
  global_plan_ = global->plans;
  metadata_ = global->metadata;
  return std::make_pair(std::move(global->plans), std::move(global->metadata));
}

absl::StatusOr<SavePlan> DefaultSavePlanner::FinishPlan(const SavePlan& central_plan) {
  if (!options_.enable_plan_caching) {
    plan_ = central_plan;
    return plan_;
  }
  if (!rank_cache_.has_value()) rank_cache_.emplace(rank_);
  absl::StatusOr<SavePlan> finished = rank_cache_->FinishPlan(central_plan);
  if (!finished.ok()) return finished.status();
  plan_ = *finished;
  return finished;
}

absl::StatusOr<WriteData> DefaultSavePlanner::ResolveData(const WriteItem& item) {
  absl::StatusOr<StateDict> object = LookupObject(item.index);
  if (!object.ok()) return object.status();
  return TransformObject(item, *object);
}

absl::StatusOr<StateDict> DefaultSavePlanner::LookupObject(const MetadataIndex& index) const {
  const StateDict* value = flat_.values.Find(index.fqn);
  if (value == nullptr) return NoValueError(index);
  if (value->is_leaf() && IsTensorValue(*value->leaf())) {
    absl::StatusOr<at::Tensor> tensor = FindTensorChunk(*value->leaf(), index);
    if (!tensor.ok()) return tensor.status();
    return Value(*std::move(tensor));
  }
  if (index.offset.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("item ", ToString(index), " has offsets, but '", index.fqn,
                                                   "' is not a tensor"));
  }
  return *value;
}

absl::StatusOr<WriteData> DefaultSavePlanner::TransformObject(const WriteItem& item, const StateDict& object) const {
  if (object.is_leaf()) {
    // Written back exactly as loaded: dcplan cannot re-serialize it.
    if (const auto* saved = std::get_if<SavedObject>(object.leaf())) return WriteData(saved->archive);
    if (const at::Tensor* tensor = PlainTensorOf(*object.leaf())) {
      try {
        at::Tensor detached = tensor->detach();
        if (!detached.device().is_cpu()) detached = detached.cpu();
        return WriteData(std::move(detached));
      } catch (const std::exception& e) {
        return absl::InternalError(absl::StrCat("'", item.index.fqn, "': cannot bring the tensor to the CPU: ",
                                                e.what()));
      }
    }
  }
  absl::StatusOr<c10::IValue> value = ToIValue(object);
  if (!value.ok()) return WithContext(value.status(), absl::StrCat("'", item.index.fqn, "'"));
  absl::StatusOr<std::string> bytes = SaveValueRecord(*value);
  if (!bytes.ok()) return WithContext(bytes.status(), absl::StrCat("'", item.index.fqn, "'"));
  return WriteData(*std::move(bytes));
}

// --- DefaultLoadPlanner ------------------------------------------------------------

DefaultLoadPlanner::DefaultLoadPlanner(Options options) : options_(options) {}

absl::Status DefaultLoadPlanner::SetUpPlanner(StateDict* state_dict, const Metadata& metadata,
                                              bool is_coordinator) {
  if (state_dict == nullptr) return absl::InvalidArgumentError("the load planner needs a state dict");
  absl::StatusOr<FlatStateDict<StateValue>> flat;
  if (options_.flatten_state_dict) {
    std::vector<std::string> checkpoint_keys;
    checkpoint_keys.reserve(metadata.state_dict_metadata.size());
    for (const auto& entry : metadata.state_dict_metadata) checkpoint_keys.push_back(entry.first);
    absl::StatusOr<LoadFlattening<StateValue>> flattening =
        FlattenStateDictForLoad<StateValue>(*state_dict, *state_dict, checkpoint_keys, IsTensorValue);
    if (!flattening.ok()) return flattening.status();
    flat = std::move(flattening->flat);
  } else {
    flat = TopLevelEntries(*state_dict);
  }
  if (!flat.ok()) return flat.status();
  state_dict_ = state_dict;
  flat_ = *std::move(flat);
  metadata_ = metadata;
  is_coordinator_ = is_coordinator;
  return absl::OkStatus();
}

absl::StatusOr<LoadPlan> DefaultLoadPlanner::CreateLocalPlan() {
  if (state_dict_ == nullptr) return absl::FailedPreconditionError("CreateLocalPlan before SetUpPlanner");
  absl::StatusOr<StateDictDescription> description = DescribeForPlanning(flat_, options_.flatten_state_dict);
  if (!description.ok()) return description.status();
  if (options_.flatten_sharded_tensors) {
    // §2.6: a sharded tensor without local shards is dropped before load
    // planning; it is neither required nor size-checked.
    OrderedMap<std::string, ValueDescription> kept;
    for (auto& [key, value] : description->values) {
      const auto* sharded = std::get_if<ShardedTensor>(&value);
      if (sharded != nullptr && sharded->local_chunks.empty()) continue;
      kept.InsertOrAssign(key, std::move(value));
    }
    description->values = std::move(kept);
  }
  LoadPlannerOptions load_options;
  load_options.strict = !options_.allow_partial_load;
  LocalLoadPlan local = CreateLocalLoadPlan(*description, metadata_, load_options, rank_);
  absl::Status status = LoadErrorsToStatus(local.errors);
  if (!status.ok()) return status;
  return std::move(local.plan);
}

absl::StatusOr<std::vector<LoadPlan>> DefaultLoadPlanner::CreateGlobalPlan(std::vector<LoadPlan> plans) {
  return CreateGlobalLoadPlan(std::move(plans));
}

absl::StatusOr<LoadPlan> DefaultLoadPlanner::FinishPlan(LoadPlan central_plan) { return central_plan; }

absl::Status DefaultLoadPlanner::LoadBytes(const ReadItem& item, absl::string_view bytes) {
  if (state_dict_ == nullptr) return absl::FailedPreconditionError("LoadBytes before SetUpPlanner");
  const std::string& fqn = item.dest_index.fqn;
  StateDict* flat_value = flat_.values.Find(fqn);
  if (flat_value == nullptr) return NoValueError(item.dest_index);
  absl::StatusOr<StateDict> value = ValueOfRecord(bytes);
  if (!value.ok()) return WithContext(value.status(), absl::StrCat("'", fqn, "'"));
  if (options_.flatten_state_dict) {
    const ObjectPath* path = flat_.mapping.Find(fqn);
    if (path == nullptr) return NoValueError(item.dest_index);
    absl::Status status = SetElement(*state_dict_, *path, *value);
    if (!status.ok()) return WithContext(status, absl::StrCat("'", fqn, "'"));
  } else if (StateDict* entry = state_dict_->FindEntry(fqn)) {
    *entry = *value;
  } else {
    state_dict_->AddEntry(fqn, *value);
  }
  *flat_value = *std::move(value);
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DefaultLoadPlanner::ResolveTensor(const ReadItem& item) {
  if (item.type != LoadItemType::kTensor) {
    return absl::InvalidArgumentError(absl::StrCat("ResolveTensor of a non-tensor item: ", ToString(item)));
  }
  absl::StatusOr<at::Tensor> destination = LookupTensor(item.dest_index);
  if (!destination.ok()) return destination.status();
  const Shape sizes = destination->sizes().vec();
  auto outside = [&] {
    return absl::InvalidArgumentError(absl::StrCat("read item lies outside its destination '", item.dest_index.fqn,
                                                   "' of size ", ShapeToString(sizes), ": ", ToString(item)));
  };
  if (item.dest_offsets.size() != sizes.size() || item.lengths.size() != sizes.size()) return outside();
  at::Tensor view = *destination;
  try {
    for (size_t d = 0; d < sizes.size(); ++d) {
      const int64_t offset = item.dest_offsets[d];
      const int64_t length = item.lengths[d];
      const std::optional<int64_t> end = internal::CheckedAdd(offset, length);
      if (offset < 0 || length < 0 || !end.has_value() || *end > sizes[d]) return outside();
      // §5.7 narrows only the dims the item does not cover whole; there the
      // bounds check above makes the offset 0, as PyTorch assumes.
      if (length < sizes[d]) view = view.narrow(static_cast<int64_t>(d), offset, length);
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("'", item.dest_index.fqn, "': ", e.what()));
  }
  return TransformTensor(item, view);
}

absl::Status DefaultLoadPlanner::CommitTensor(const ReadItem& /*item*/, const at::Tensor& /*tensor*/) {
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DefaultLoadPlanner::LookupTensor(const MetadataIndex& index) const {
  const StateDict* value = flat_.values.Find(index.fqn);
  if (value == nullptr) return NoValueError(index);
  if (!value->is_leaf()) {
    return absl::InvalidArgumentError(absl::StrCat("'", index.fqn, "' is not a tensor (item ", ToString(index), ")"));
  }
  return FindTensorChunk(*value->leaf(), index);
}

absl::StatusOr<at::Tensor> DefaultLoadPlanner::TransformTensor(const ReadItem& /*item*/,
                                                               const at::Tensor& tensor) const {
  return tensor;
}

// --- EmptyStateDictLoadPlanner -----------------------------------------------------

namespace {

absl::StatusOr<StateDict> EmptyValueFor(const std::string& key, const ValueDescription& description) {
  const auto* tensor = std::get_if<WholeTensor>(&description);
  // Replaced by LoadBytes; an IValue leaf (not None), like PyTorch's
  // BytesStorageMetadata placeholder object.
  if (tensor == nullptr) return Value(c10::IValue());
  absl::StatusOr<c10::ScalarType> scalar_type = ScalarTypeFromDType(tensor->properties.dtype);
  if (!scalar_type.ok()) return WithContext(scalar_type.status(), absl::StrCat("'", key, "'"));
  try {
    return Value(at::empty(tensor->shape, at::TensorOptions().dtype(*scalar_type).device(c10::kCPU)));
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("'", key, "': cannot allocate a tensor of size ",
                                                     ShapeToString(tensor->shape), ": ", e.what()));
  }
}

}  // namespace

EmptyStateDictLoadPlanner::EmptyStateDictLoadPlanner(std::optional<absl::flat_hash_set<std::string>> keys,
                                                     Options options)
    : DefaultLoadPlanner(options), keys_(std::move(keys)) {}

absl::Status EmptyStateDictLoadPlanner::SetUpPlanner(StateDict* state_dict, const Metadata& metadata,
                                                     bool is_coordinator) {
  if (state_dict == nullptr) return absl::InvalidArgumentError("the load planner needs a state dict");
  // A default-constructed StateDict (None) counts as empty.
  if (state_dict->is_none()) *state_dict = StateDict::MakeMapping();
  if (!state_dict->is_mapping() || !state_dict->entries().empty()) {
    return absl::InvalidArgumentError(
        "loading without a template (EmptyStateDictLoadPlanner) needs an empty state dict");
  }
  const StateDictDescription description = DescribeCheckpoint(metadata, keys_);
  for (const auto& [key, value] : description.values) {
    absl::StatusOr<StateDict> empty = EmptyValueFor(key, value);
    if (!empty.ok()) return empty.status();
    const ObjectPath* path = description.mapping.has_value() ? description.mapping->Find(key) : nullptr;
    if (path == nullptr) {
      if (StateDict* entry = state_dict->FindEntry(key)) {
        *entry = *std::move(empty);
      } else {
        state_dict->AddEntry(key, *std::move(empty));
      }
      continue;
    }
    absl::Status status = SetElement(*state_dict, *path, *std::move(empty));
    if (!status.ok()) return WithContext(status, absl::StrCat("checkpoint key '", key, "'"));
  }
  absl::Status status = DefaultLoadPlanner::SetUpPlanner(state_dict, metadata, is_coordinator);
  if (!status.ok()) return status;
  // Loading part of a list pads it with None (SetElement); those placeholders
  // flatten to keys of their own, which must not be requested (PyTorch does,
  // and fails with a type mismatch). Only the keys placed above are loaded.
  FlatStateDict<StateValue> placed;
  for (auto& [key, value] : flat_.values) {
    if (!description.values.Contains(key)) continue;
    placed.values.InsertOrAssign(key, std::move(value));
    if (const ObjectPath* path = flat_.mapping.Find(key)) placed.mapping.InsertOrAssign(key, *path);
  }
  flat_ = std::move(placed);
  return absl::OkStatus();
}

}  // namespace dcplan
