#include "engine/load_planner.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/validate.h"

namespace dcplan {
namespace {

// A chunk takes part in matching only if it has the tensor's rank and is well
// formed: then every end and every per-dim difference computed below fits in
// int64 (see ReadItemFor).
bool IsMatchable(const ChunkBox& box, size_t tensor_rank) {
  return box.rank() == tensor_rank && box.offsets.size() == tensor_rank && CheckWellFormed(box).ok();
}

// The dimension whose stored offsets are the most varied: sorting by it
// separates the chunks best (row splits, column splits, grids alike).
size_t MostVariedDimension(const std::vector<ChunkBox>& chunks, const std::vector<int64_t>& positions,
                           size_t tensor_rank) {
  size_t best_dim = 0;
  size_t best_count = 0;
  std::vector<int64_t> offsets;
  for (size_t d = 0; d < tensor_rank; ++d) {
    offsets.clear();
    for (int64_t si : positions) offsets.push_back(chunks[si].offsets[d]);
    std::sort(offsets.begin(), offsets.end());
    const size_t distinct = std::unique(offsets.begin(), offsets.end()) - offsets.begin();
    if (distinct > best_count) {
      best_count = distinct;
      best_dim = d;
    }
  }
  return best_dim;
}

// Finds the stored chunks that overlap a query box (OverlapsPyTorch) without
// scanning all of them. The matchable chunks are sorted by their start in one
// dimension; a segment tree over that order keeps the largest end of every
// range. The chunks starting before the query's end form a prefix of that
// order, and the tree enumerates the ones in it ending after the query's
// start, skipping every subtree that holds none: cost O((1 + candidates) *
// log n) per query, exact for any intervals (including empty ones).
class StoredChunkIndex {
 public:
  StoredChunkIndex(const std::vector<ChunkBox>& chunks, size_t tensor_rank)
      : chunks_(chunks), tensor_rank_(tensor_rank) {
    for (size_t si = 0; si < chunks.size(); ++si) {
      if (IsMatchable(chunks[si], tensor_rank)) order_.push_back(static_cast<int64_t>(si));
    }
    if (tensor_rank == 0 || order_.empty()) return;
    dim_ = MostVariedDimension(chunks, order_, tensor_rank);
    std::stable_sort(order_.begin(), order_.end(),
                     [&](int64_t a, int64_t b) { return chunks[a].offsets[dim_] < chunks[b].offsets[dim_]; });
    begins_.reserve(order_.size());
    ends_.reserve(order_.size());
    for (int64_t si : order_) {
      begins_.push_back(chunks[si].offsets[dim_]);
      ends_.push_back(chunks[si].offsets[dim_] + chunks[si].sizes[dim_]);  // fits: well formed
    }
    max_end_.resize(4 * order_.size());
    Build(1, 0, order_.size());
  }

  // Positions in the stored chunk list of the chunks overlapping `query` (a
  // matchable box), ascending.
  std::vector<int64_t> FindOverlapping(const ChunkBox& query) const {
    // 0-d chunks always overlap; order_ is then still in metadata order.
    if (tensor_rank_ == 0) return order_;
    std::vector<int64_t> found;
    if (order_.empty()) return found;
    const int64_t query_begin = query.offsets[dim_];
    const int64_t query_end = query.offsets[dim_] + query.sizes[dim_];
    const size_t limit = std::lower_bound(begins_.begin(), begins_.end(), query_end) - begins_.begin();
    Collect(1, 0, order_.size(), limit, query_begin, query, &found);
    std::sort(found.begin(), found.end());
    return found;
  }

 private:
  int64_t Build(size_t node, size_t lo, size_t hi) {
    if (hi - lo == 1) return max_end_[node] = ends_[lo];
    const size_t mid = lo + (hi - lo) / 2;
    return max_end_[node] = std::max(Build(2 * node, lo, mid), Build(2 * node + 1, mid, hi));
  }

  // Adds the chunks at sorted positions [lo, hi) ∩ [0, limit) that end after
  // `query_begin` in dim_ and overlap `query` in every dim.
  void Collect(size_t node, size_t lo, size_t hi, size_t limit, int64_t query_begin, const ChunkBox& query,
               std::vector<int64_t>* found) const {
    if (lo >= limit || max_end_[node] <= query_begin) return;
    if (hi - lo == 1) {
      const int64_t si = order_[lo];
      if (OverlapsPyTorch(query, chunks_[si])) found->push_back(si);
      return;
    }
    const size_t mid = lo + (hi - lo) / 2;
    Collect(2 * node, lo, mid, limit, query_begin, query, found);
    Collect(2 * node + 1, mid, hi, limit, query_begin, query, found);
  }

  const std::vector<ChunkBox>& chunks_;
  size_t tensor_rank_;
  size_t dim_ = 0;
  std::vector<int64_t> order_;    // matchable stored positions, by start in dim_
  std::vector<int64_t> begins_;   // start in dim_, in order_'s order
  std::vector<int64_t> ends_;     // end in dim_, in order_'s order
  std::vector<int64_t> max_end_;  // segment tree (root 1) of max ends
};

// OverlapsPyTorch(local, stored) for a matchable `local`, inline: the
// pairwise scan below calls it for every stored chunk.
inline bool OverlapsMatchable(const ChunkBox& local, const ChunkBox& stored) {
  const size_t rank = local.sizes.size();
  if (stored.sizes.size() != rank || stored.offsets.size() != rank) return false;
  for (size_t d = 0; d < rank; ++d) {
    const __int128 stored_end = static_cast<__int128>(stored.offsets[d]) + stored.sizes[d];
    const __int128 local_end = static_cast<__int128>(local.offsets[d]) + local.sizes[d];
    if (!(local.offsets[d] < stored_end && stored.offsets[d] < local_end)) return false;
  }
  return true;
}

// Whether testing every (destination, stored) pair costs less than building
// a StoredChunkIndex (sorts of the n stored chunks: about n log2 n) and
// querying it: true for the few destination chunks a rank usually asks for.
// Both ways give the same items in the same order.
bool PairwiseIsCheaper(size_t num_local, size_t num_stored) {
  size_t log2_stored = 0;
  while ((num_stored >> log2_stored) > 1) ++log2_stored;
  return num_local <= log2_stored + 4;
}

// §5.5's per-dim computation. Both boxes are matchable and overlap, so every
// difference is smaller than one of the two sizes and cannot overflow.
ReadItem ReadItemFor(absl::string_view fqn, const ChunkBox& local, int64_t li, const ChunkBox& stored, int64_t si) {
  ReadItem item;
  item.type = LoadItemType::kTensor;
  item.dest_index = MetadataIndex{std::string(fqn), local.offsets, li};
  item.storage_index = MetadataIndex{std::string(fqn), stored.offsets, si};
  const size_t rank = local.rank();
  item.dest_offsets.resize(rank);
  item.storage_offsets.resize(rank);
  item.lengths.resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t end = std::min(stored.offsets[d] + stored.sizes[d], local.offsets[d] + local.sizes[d]);
    item.lengths[d] = end - std::max(local.offsets[d], stored.offsets[d]);
    if (stored.offsets[d] > local.offsets[d]) {
      item.storage_offsets[d] = 0;
      item.dest_offsets[d] = stored.offsets[d] - local.offsets[d];
    } else {
      item.storage_offsets[d] = local.offsets[d] - stored.offsets[d];
      item.dest_offsets[d] = 0;
    }
  }
  return item;
}

ReadItem BytesReadItem(const std::string& fqn) {
  ReadItem item;
  item.type = LoadItemType::kByteIO;
  item.dest_index = MetadataIndex{fqn, std::nullopt, std::nullopt};
  item.storage_index = MetadataIndex{fqn, std::nullopt, std::nullopt};
  item.dest_offsets = {0};
  item.storage_offsets = {0};
  item.lengths = {0};
  return item;
}

// Collects the errors and read items of one rank's plan.
class LocalPlanBuilder {
 public:
  LocalPlanBuilder(int64_t rank, LocalLoadPlan* out) : rank_(rank), out_(out) {}

  void Plan(const std::string& fqn, const ValueDescription& value, const StorageMetadata& stored) {
    if (std::holds_alternative<OpaqueValue>(value)) {
      if (std::holds_alternative<BytesStorageMetadata>(stored)) {
        out_->plan.items.push_back(BytesReadItem(fqn));
      } else {
        const auto& tensor = std::get<TensorStorageMetadata>(stored);
        AddError(fqn, LoadErrorKind::kTypeMismatch,
                 absl::StrCat("rank ", rank_, " requests '", fqn,
                              "' as a non-tensor value, but the checkpoint saved a tensor of size ",
                              ShapeToString(tensor.size)));
      }
      return;
    }
    const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
    if (tensor == nullptr) {
      AddError(fqn, LoadErrorKind::kTypeMismatch,
               absl::StrCat("rank ", rank_, " requests '", fqn,
                            "' as a tensor, but the checkpoint saved it as a non-tensor (bytes) value"));
      return;
    }
    if (const auto* whole = std::get_if<WholeTensor>(&value)) {
      if (!CheckSize(fqn, whole->shape, *tensor)) return;
      if (!CheckStoredChunksDisjoint(fqn, *tensor)) return;
      std::vector<ChunkBox> everything(1);
      everything[0].offsets.assign(whole->shape.size(), 0);
      everything[0].sizes = whole->shape;
      AppendItems(CreateReadItemsForChunkList(fqn, *tensor, everything));
      return;
    }
    const auto& sharded = std::get<ShardedTensor>(value);
    if (!CheckSize(fqn, sharded.global_shape, *tensor)) return;
    if (!CheckStoredChunksDisjoint(fqn, *tensor)) return;
    if (!CheckRequestedChunks(fqn, sharded)) return;
    AppendItems(CreateReadItemsForChunkList(fqn, *tensor, sharded.local_chunks));
  }

  void MissingKey(const std::string& fqn) {
    AddError(fqn, LoadErrorKind::kMissingKey,
             absl::StrCat("Missing key in checkpoint state_dict: ", fqn, ". (requested by rank ", rank_, ")"));
  }

 private:
  bool CheckSize(const std::string& fqn, const Shape& requested, const TensorStorageMetadata& stored) {
    if (requested == stored.size) return true;
    AddError(fqn, LoadErrorKind::kSizeMismatch,
             absl::StrCat("Size mismatch between saved ", ShapeToString(stored.size), " and current: ",
                          ShapeToString(requested), " for ", fqn, " (rank ", rank_, ")"));
    return false;
  }

  // Stored chunks that share elements make the checkpoint ambiguous (which
  // copy wins?) and, copied thousands of times, the read plan quadratic: the
  // checkpoint is refused instead.
  bool CheckStoredChunksDisjoint(const std::string& fqn, const TensorStorageMetadata& stored) {
    if (!HasOverlappingChunks(stored)) return true;
    AddError(fqn, LoadErrorKind::kInvalidCheckpoint,
             absl::StrCat("the checkpoint's chunks of '", fqn, "' overlap (requested by rank ", rank_,
                          "): the checkpoint is invalid; `dcplan verify` lists the chunks"));
    return false;
  }

  // A requested chunk must lie inside the requested tensor; one error per bad
  // chunk, and no read items for a key with any bad chunk.
  bool CheckRequestedChunks(const std::string& fqn, const ShardedTensor& sharded) {
    bool all_good = true;
    for (size_t li = 0; li < sharded.local_chunks.size(); ++li) {
      const ChunkBox& chunk = sharded.local_chunks[li];
      if (InBounds(sharded.global_shape, chunk)) continue;
      all_good = false;
      AddError(fqn, LoadErrorKind::kSizeMismatch,
               absl::StrCat("rank ", rank_, " requests chunk ", li, " ", ToString(chunk), " of '", fqn,
                            "', which does not fit in its size ", ShapeToString(sharded.global_shape),
                            " (wrong rank, negative size or out of bounds)"));
    }
    return all_good;
  }

  void AppendItems(std::vector<ReadItem> items) {
    auto& all = out_->plan.items;
    all.insert(all.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
  }

  void AddError(const std::string& fqn, LoadErrorKind kind, std::string message) {
    out_->errors.push_back(LoadPlanError{rank_, fqn, kind, std::move(message)});
  }

  int64_t rank_;
  LocalLoadPlan* out_;
};

std::string PathElementKey(const PathElement& element) {
  if (const auto* s = std::get_if<std::string>(&element)) return *s;
  return absl::StrCat(std::get<int64_t>(element));
}

// _should_include_key with anchor-defects.md's fixes: an exact match always
// includes; a key without a recorded object path has no prefixes.
bool ShouldIncludeKey(const std::string& key, const Metadata& metadata,
                      const std::optional<absl::flat_hash_set<std::string>>& keys) {
  if (!keys.has_value() || keys->contains(key)) return true;
  if (!metadata.planner_data.has_value()) return false;
  const ObjectPath* path = metadata.planner_data->Find(key);
  if (path == nullptr) return false;
  std::string prefix;
  for (size_t i = 0; i < path->size(); ++i) {
    if (i > 0) prefix += '.';
    prefix += PathElementKey((*path)[i]);
    if (keys->contains(prefix)) return true;
  }
  return false;
}

// "rank 0: missing_key 'x': <message>".
std::string ErrorLine(const LoadPlanError& e) {
  return absl::StrCat("rank ", e.rank, ": ", LoadErrorKindName(e.kind), " '", e.fqn, "': ", e.message);
}

}  // namespace

std::vector<ReadItem> CreateReadItemsForChunkList(absl::string_view fqn, const TensorStorageMetadata& stored,
                                                  const std::vector<ChunkBox>& local_chunks) {
  std::vector<ReadItem> items;
  if (local_chunks.empty() || stored.chunks.empty()) return items;
  const size_t tensor_rank = stored.size.size();
  if (PairwiseIsCheaper(local_chunks.size(), stored.chunks.size())) {
    for (size_t li = 0; li < local_chunks.size(); ++li) {
      const ChunkBox& local = local_chunks[li];
      if (!IsMatchable(local, tensor_rank)) continue;
      for (size_t si = 0; si < stored.chunks.size(); ++si) {
        const ChunkBox& chunk = stored.chunks[si];
        if (!OverlapsMatchable(local, chunk) || !IsMatchable(chunk, tensor_rank)) continue;
        items.push_back(ReadItemFor(fqn, local, static_cast<int64_t>(li), chunk, static_cast<int64_t>(si)));
      }
    }
    return items;
  }
  const StoredChunkIndex index(stored.chunks, tensor_rank);
  for (size_t li = 0; li < local_chunks.size(); ++li) {
    const ChunkBox& local = local_chunks[li];
    if (!IsMatchable(local, tensor_rank)) continue;
    for (int64_t si : index.FindOverlapping(local)) {
      items.push_back(ReadItemFor(fqn, local, static_cast<int64_t>(li), stored.chunks[si], si));
    }
  }
  return items;
}

absl::string_view LoadErrorKindName(LoadErrorKind kind) {
  switch (kind) {
    case LoadErrorKind::kMissingKey:
      return "missing_key";
    case LoadErrorKind::kSizeMismatch:
      return "size_mismatch";
    case LoadErrorKind::kTypeMismatch:
      return "type_mismatch";
    case LoadErrorKind::kInvalidCheckpoint:
      return "invalid_checkpoint";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, const LoadPlanError& e) { return os << ErrorLine(e); }

LocalLoadPlan CreateLocalLoadPlan(const StateDictDescription& description, const Metadata& metadata,
                                  const LoadPlannerOptions& options, int64_t rank) {
  LocalLoadPlan out;
  out.plan.planner_data = description.mapping;
  LocalPlanBuilder builder(rank, &out);
  for (const auto& [fqn, value] : description.values) {
    const StorageMetadata* stored = metadata.state_dict_metadata.Find(fqn);
    if (stored == nullptr) {
      if (options.strict) builder.MissingKey(fqn);
      continue;
    }
    builder.Plan(fqn, value, *stored);
  }
  return out;
}

absl::Status LoadErrorsToStatus(const std::vector<LoadPlanError>& errors) {
  if (errors.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  lines.reserve(errors.size());
  for (const LoadPlanError& e : errors) {
    lines.push_back(ErrorLine(e));
  }
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

std::vector<LoadPlan> CreateGlobalLoadPlan(std::vector<LoadPlan> plans) { return plans; }

StateDictDescription DescribeCheckpoint(const Metadata& metadata,
                                        const std::optional<absl::flat_hash_set<std::string>>& keys) {
  StateDictDescription description;
  if (metadata.planner_data.has_value()) description.mapping.emplace();
  for (const auto& [key, stored] : metadata.state_dict_metadata) {
    if (!ShouldIncludeKey(key, metadata, keys)) continue;
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&stored)) {
      description.values.InsertOrAssign(key, WholeTensor{tensor->size, tensor->properties});
    } else {
      description.values.InsertOrAssign(key, OpaqueValue{});
    }
    if (description.mapping.has_value()) {
      const ObjectPath* path = metadata.planner_data->Find(key);
      description.mapping->InsertOrAssign(key, path != nullptr ? *path : ObjectPath{key});
    }
  }
  return description;
}

}  // namespace dcplan
