#include "engine/save_planner.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/validate.h"

namespace dcplan {
namespace {

// ---- Local plan ---------------------------------------------------------------

absl::Status CheckShape(const std::string& fqn, const Shape& shape) {
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", fqn, "' has a negative dimension in its shape ", ShapeToString(shape)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLocalChunk(const std::string& fqn, const Shape& global_shape, const ChunkBox& chunk,
                             size_t chunk_number) {
  absl::Status status = CheckWellFormed(chunk);
  if (status.ok() && chunk.rank() != global_shape.size()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("it has ", chunk.rank(), " dims, the tensor has ", global_shape.size()));
  }
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat("local chunk ", chunk_number, " ", ToString(chunk),
                                                 " of sharded tensor '", fqn, "' (global shape ",
                                                 ShapeToString(global_shape), ") is malformed: ", status.message()));
}

WriteItem TensorItem(const std::string& fqn, WriteItemType type, ChunkBox chunk, const TensorProperties& properties,
                     const Shape& size) {
  WriteItem item;
  item.index.fqn = fqn;
  item.index.offset = chunk.offsets;
  item.type = type;
  item.tensor_data = TensorWriteData{std::move(chunk), properties, size};
  return item;
}

absl::Status AppendItems(const std::string& fqn, const ValueDescription& value, std::vector<WriteItem>& items) {
  if (const auto* whole = std::get_if<WholeTensor>(&value)) {
    absl::Status status = CheckShape(fqn, whole->shape);
    if (!status.ok()) return status;
    ChunkBox chunk{Shape(whole->shape.size(), 0), whole->shape};
    items.push_back(TensorItem(fqn, WriteItemType::kTensor, std::move(chunk), whole->properties, whole->shape));
    return absl::OkStatus();
  }
  if (const auto* sharded = std::get_if<ShardedTensor>(&value)) {
    absl::Status status = CheckShape(fqn, sharded->global_shape);
    if (!status.ok()) return status;
    for (size_t c = 0; c < sharded->local_chunks.size(); ++c) {
      const ChunkBox& chunk = sharded->local_chunks[c];
      status = CheckLocalChunk(fqn, sharded->global_shape, chunk, c);
      if (!status.ok()) return status;
      items.push_back(TensorItem(fqn, WriteItemType::kShard, chunk, sharded->properties, sharded->global_shape));
    }
    return absl::OkStatus();
  }
  const auto& opaque = std::get<OpaqueValue>(value);
  if (opaque.nbytes && *opaque.nbytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("value '", fqn, "' has a negative size of ", *opaque.nbytes,
                                                   " bytes"));
  }
  WriteItem item;
  item.index.fqn = fqn;
  item.type = WriteItemType::kByteIO;
  item.bytes_io_nbytes = opaque.nbytes;
  items.push_back(std::move(item));
  return absl::OkStatus();
}

// ---- Global plan ------------------------------------------------------------------

// What an fqn already is in the metadata being built, and who put it there.
enum class EntryKind : uint8_t { kBytes, kWholeTensor, kShards };

struct EntryOrigin {
  EntryKind kind;
  size_t rank;
};

absl::string_view EntryKindName(EntryKind kind) {
  switch (kind) {
    case EntryKind::kBytes: return "a bytes value";
    case EntryKind::kWholeTensor: return "a whole tensor";
    case EntryKind::kShards: return "a sharded tensor";
  }
  return "?";
}

// Items are read a few cache lines each, in plan order, and the global plan
// waits on memory: AddPlan prefetches items this many items ahead, and the
// characters of their fqns (a heap block each, found through the item) half
// as far.
constexpr size_t kPrefetchDistance = 16;

// A hint only: every cache line of `item` (its fqn, index, type and tensor
// data are all read).
void PrefetchItem(const WriteItem& item) {
  const char* data = reinterpret_cast<const char*>(&item);
  for (size_t offset = 0; offset < sizeof(WriteItem); offset += 64) __builtin_prefetch(data + offset);
}

class GlobalPlanBuilder {
 public:
  GlobalPlanBuilder(bool rewrite_index_hints, const ChunkCounts* expected_chunks)
      : rewrite_index_hints_(rewrite_index_hints), expected_chunks_(expected_chunks) {}

  // Takes `plan` by value: the pipeline moves its plans in, and the kept items
  // are compacted in place (moved, never copied).
  void AddPlan(size_t rank, SavePlan plan) {
    std::vector<WriteItem>& items = plan.items;
    size_t kept = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i + kPrefetchDistance < items.size()) PrefetchItem(items[i + kPrefetchDistance]);
      if (i + kPrefetchDistance / 2 < items.size()) {
        __builtin_prefetch(items[i + kPrefetchDistance / 2].index.fqn.data());
      }
      std::optional<std::string> error = AddItem(rank, i, items[i]);
      if (error) {
        ReportDropped(rank, i, items[i], *error);
        continue;
      }
      if (kept != i) items[kept] = std::move(items[i]);
      ++kept;
    }
    items.erase(items.begin() + kept, items.end());
    result_.plans.push_back(std::move(plan));
  }

  void Reserve(size_t num_plans, size_t expected_entries, size_t total_items) {
    total_items_ = total_items;
    result_.plans.reserve(num_plans);
    result_.metadata.state_dict_metadata.reserve(expected_entries);
    origins_.reserve(expected_entries);
  }

  GlobalPlanAndMetadata Finish() && { return std::move(result_); }

 private:
  // Records `item` in the metadata and rewrites its hint, or returns why it
  // cannot be part of the global plan (`item` untouched).
  std::optional<std::string> AddItem(size_t rank, size_t item_number, WriteItem& item) {
    StateDictMetadata& metadata = result_.metadata.state_dict_metadata;
    const ptrdiff_t position = PositionOf(item_number, item.index.fqn);
    const EntryOrigin* existing = position >= 0 ? &origins_[position] : nullptr;
    if (item.type == WriteItemType::kByteIO) {
      if (existing) return AlreadySaved(*existing);
      Insert(item_number, item.index.fqn, BytesStorageMetadata(), EntryKind::kBytes, rank);
      return std::nullopt;
    }
    if (!item.tensor_data) return std::string("the tensor item has no tensor data");
    const TensorWriteData& data = *item.tensor_data;
    if (existing && (item.type == WriteItemType::kTensor || existing->kind != EntryKind::kShards)) {
      return AlreadySaved(*existing);
    }
    TensorStorageMetadata* tensor;
    if (existing) {
      tensor = &std::get<TensorStorageMetadata>(metadata.at_position(position).second);
      if (tensor->properties.dtype != data.properties.dtype || tensor->size != data.size) {
        return absl::StrCat("its shards disagree: dtype ", DTypeName(data.properties.dtype), " and global size ",
                            ShapeToString(data.size), " here, dtype ", DTypeName(tensor->properties.dtype),
                            " and global size ", ShapeToString(tensor->size), " in the shards of rank ",
                            existing->rank);
      }
    } else {
      const EntryKind kind = item.type == WriteItemType::kShard ? EntryKind::kShards : EntryKind::kWholeTensor;
      tensor = &std::get<TensorStorageMetadata>(
          Insert(item_number, item.index.fqn, TensorStorageMetadata{data.properties, data.size, {}}, kind, rank));
      if (kind == EntryKind::kShards) ReserveChunks(item.index.fqn, tensor->chunks);
    }
    tensor->chunks.push_back(data.chunk);
    if (rewrite_index_hints_) item.index.index = static_cast<int64_t>(tensor->chunks.size() - 1);
    return std::nullopt;
  }

  // The metadata position of `fqn`, or -1. Ranks usually list the same
  // fqns in the same order: the entry the previous plan's item at
  // `item_number` used, or the previous item's, is compared first, which
  // spares hashing the string.
  ptrdiff_t PositionOf(size_t item_number, const std::string& fqn) {
    const StateDictMetadata& metadata = result_.metadata.state_dict_metadata;
    if (item_number >= position_hints_.size()) position_hints_.resize(item_number + 1, -1);
    ptrdiff_t& hint = position_hints_[item_number];
    if (hint < 0 || metadata.at_position(hint).first != fqn) {
      const ptrdiff_t previous = item_number > 0 ? position_hints_[item_number - 1] : -1;
      hint = previous >= 0 && metadata.at_position(previous).first == fqn ? previous : metadata.PositionOf(fqn);
    }
    return hint;
  }

  StorageMetadata& Insert(size_t item_number, const std::string& fqn, StorageMetadata entry, EntryKind kind,
                          size_t rank) {
    position_hints_[item_number] = static_cast<ptrdiff_t>(origins_.size());
    origins_.push_back({kind, rank});
    return *result_.metadata.state_dict_metadata.TryEmplace(fqn, std::move(entry)).first;
  }

  // Grown a rank at a time, the chunk list of a tensor sharded over 512
  // ranks is copied 9 times into fresh memory: a third of the global plan's
  // time (perf, issue #15).
  void ReserveChunks(const std::string& fqn, std::vector<ChunkBox>& chunks) const {
    if (expected_chunks_ == nullptr) return;
    const auto it = expected_chunks_->find(fqn);
    if (it == expected_chunks_->end() || it->second <= 0) return;
    // A hint from elsewhere than dedup cannot make memory grow beyond the items.
    chunks.reserve(std::min(static_cast<size_t>(it->second), total_items_));
  }

  static std::string AlreadySaved(const EntryOrigin& existing) {
    return absl::StrCat("the fqn is already saved as ", EntryKindName(existing.kind), " (first written by rank ",
                        existing.rank, ")");
  }

  void ReportDropped(size_t rank, size_t item_number, const WriteItem& item, const std::string& reason) {
    PlanProblem problem;
    problem.kind = ProblemKind::kPlanError;
    problem.fqn = item.index.fqn;
    problem.message = absl::StrCat("rank ", rank, ", item ", item_number, " (", ToString(item), "): ", reason,
                                   "; the item is left out of the global plan");
    result_.problems.push_back(std::move(problem));
  }

  bool rewrite_index_hints_;
  const ChunkCounts* expected_chunks_;
  size_t total_items_ = 0;
  GlobalPlanAndMetadata result_;
  std::vector<EntryOrigin> origins_;  // by metadata position
  // By item number: the metadata position of the last item at that number
  // (see PositionOf), -1 if none.
  std::vector<ptrdiff_t> position_hints_;
};

double MillisecondsSince(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

}  // namespace

absl::StatusOr<SavePlan> CreateLocalSavePlan(const StateDictDescription& description, bool /*is_coordinator*/) {
  SavePlan plan;
  plan.items.reserve(description.values.size());
  for (const auto& [fqn, value] : description.values) {
    absl::Status status = AppendItems(fqn, value, plan.items);
    if (!status.ok()) return status;
  }
  plan.planner_data = description.mapping;
  return plan;
}

GlobalPlanAndMetadata CreateDefaultGlobalSavePlan(std::vector<SavePlan> plans, bool rewrite_index_hints,
                                                  const ChunkCounts* expected_chunks) {
  GlobalPlanBuilder builder(rewrite_index_hints, expected_chunks);
  size_t total_items = 0;
  for (const SavePlan& plan : plans) total_items += plan.items.size();
  // Every rank usually saves every fqn: one plan's items bound the entries.
  builder.Reserve(plans.size(), plans.empty() ? 0 : plans.front().items.size(), total_items);
  for (size_t rank = 0; rank < plans.size(); ++rank) builder.AddPlan(rank, std::move(plans[rank]));
  return std::move(builder).Finish();
}

absl::StatusOr<FlattenMapping> MergePlannerData(const std::vector<SavePlan>& plans) {
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    if (!plans[rank].planner_data) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the plan of rank ", rank, " has no planner_data (flatten mapping) to merge into the metadata"));
    }
  }
  // Keys in ChainMap order, each with the path of the lowest rank seen so far:
  // walking from the last rank down, a lower rank overrides the path but not
  // the position. Pointers into the plans avoid copying 10^6 paths.
  std::vector<std::pair<absl::string_view, const ObjectPath*>> merged;
  absl::flat_hash_map<absl::string_view, size_t> position_of;
  if (!plans.empty()) {
    merged.reserve(plans.back().planner_data->size());
    position_of.reserve(plans.back().planner_data->size());
  }
  for (size_t r = plans.size(); r-- > 0;) {
    for (const auto& [key, path] : *plans[r].planner_data) {
      auto [it, inserted] = position_of.try_emplace(key, merged.size());
      if (inserted) {
        merged.emplace_back(key, &path);
      } else {
        merged[it->second].second = &path;
      }
    }
  }
  FlattenMapping result;
  result.reserve(merged.size());
  for (const auto& [key, path] : merged) result.InsertOrAssign(std::string(key), *path);
  return result;
}

absl::StatusOr<GlobalSavePlan> CreateGlobalSavePlan(std::vector<SavePlan> local_plans,
                                                    const SavePlannerOptions& options, SavePlanTimings* timings) {
  SavePlanTimings local_timings;
  absl::Time start = absl::Now();
  absl::StatusOr<DedupResult> deduped = DedupSavePlans(std::move(local_plans), options.dedup);
  if (!deduped.ok()) return deduped.status();
  local_timings.dedup_ms = MillisecondsSince(start);

  start = absl::Now();
  std::optional<FlattenMapping> merged_mapping;
  if (options.flatten_state_dict) {
    absl::StatusOr<FlattenMapping> merged = MergePlannerData(deduped->plans);
    if (!merged.ok()) return merged.status();
    merged_mapping = *std::move(merged);
  }
  GlobalPlanAndMetadata global = CreateDefaultGlobalSavePlan(std::move(deduped->plans), options.rewrite_index_hints,
                                                             &deduped->chunks_per_fqn);
  global.metadata.planner_data = std::move(merged_mapping);
  local_timings.global_plan_ms = MillisecondsSince(start);

  start = absl::Now();
  std::vector<PlanProblem> validation = ValidateMetadata(global.metadata.state_dict_metadata);
  local_timings.validate_ms = MillisecondsSince(start);

  GlobalSavePlan result;
  result.plans = std::move(global.plans);
  result.metadata = std::move(global.metadata);
  result.problems = std::move(deduped->conflicts);
  result.problems.reserve(result.problems.size() + global.problems.size() + validation.size());
  for (PlanProblem& problem : global.problems) result.problems.push_back(std::move(problem));
  for (PlanProblem& problem : validation) result.problems.push_back(std::move(problem));
  if (timings) *timings = local_timings;
  return result;
}

}  // namespace dcplan
