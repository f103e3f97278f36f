#include "fuzz/pipeline_oracles.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace dcplan::fuzzing {
namespace {

// Matchable: the tensor's rank, non-negative sizes, ends that fit in int64.
bool Matchable(const ChunkBox& box, size_t rank) {
  if (box.offsets.size() != rank || box.sizes.size() != rank) return false;
  for (size_t d = 0; d < rank; ++d) {
    if (box.sizes[d] < 0) return false;
    const __int128 end = static_cast<__int128>(box.offsets[d]) + box.sizes[d];
    if (end > std::numeric_limits<int64_t>::max()) return false;
  }
  return true;
}

// PyTorch's strict overlap test, from its definition.
bool StrictOverlap(const ChunkBox& a, const ChunkBox& b) {
  for (size_t d = 0; d < a.sizes.size(); ++d) {
    const __int128 a_end = static_cast<__int128>(a.offsets[d]) + a.sizes[d];
    const __int128 b_end = static_cast<__int128>(b.offsets[d]) + b.sizes[d];
    if (!(a.offsets[d] < b_end && b.offsets[d] < a_end)) return false;
  }
  return true;
}

}  // namespace

std::vector<ReadItem> ReadItemsPairwise(absl::string_view fqn, const TensorStorageMetadata& stored,
                                        const std::vector<ChunkBox>& local_chunks) {
  std::vector<ReadItem> items;
  const size_t rank = stored.size.size();
  for (size_t q = 0; q < local_chunks.size(); ++q) {
    const ChunkBox& dest = local_chunks[q];
    if (!Matchable(dest, rank)) continue;
    for (size_t p = 0; p < stored.chunks.size(); ++p) {
      const ChunkBox& source = stored.chunks[p];
      if (!Matchable(source, rank) || !StrictOverlap(dest, source)) continue;
      ReadItem item;
      item.type = LoadItemType::kTensor;
      item.dest_index = MetadataIndex{std::string(fqn), dest.offsets, static_cast<int64_t>(q)};
      item.storage_index = MetadataIndex{std::string(fqn), source.offsets, static_cast<int64_t>(p)};
      for (size_t d = 0; d < rank; ++d) {
        const __int128 begin = std::max(dest.offsets[d], source.offsets[d]);
        const __int128 end = std::min(static_cast<__int128>(dest.offsets[d]) + dest.sizes[d],
                                      static_cast<__int128>(source.offsets[d]) + source.sizes[d]);
        item.dest_offsets.push_back(static_cast<int64_t>(begin - dest.offsets[d]));
        item.storage_offsets.push_back(static_cast<int64_t>(begin - source.offsets[d]));
        item.lengths.push_back(static_cast<int64_t>(end - begin));
      }
      items.push_back(std::move(item));
    }
  }
  return items;
}

namespace {

// Whether two stored chunks share an element, pair by pair: both have the
// tensor's rank and, in every dim, a positive size and intersecting ranges.
bool StoredChunksShareAnElement(const TensorStorageMetadata& tensor) {
  const size_t rank = tensor.size.size();
  auto usable = [rank](const ChunkBox& c) {
    if (c.offsets.size() != rank || c.sizes.size() != rank) return false;
    for (size_t d = 0; d < rank; ++d) {
      if (c.sizes[d] <= 0) return false;
    }
    return true;
  };
  for (size_t i = 0; i < tensor.chunks.size(); ++i) {
    for (size_t j = i + 1; j < tensor.chunks.size(); ++j) {
      const ChunkBox& a = tensor.chunks[i];
      const ChunkBox& b = tensor.chunks[j];
      if (rank == 0 || !usable(a) || !usable(b)) continue;
      bool shared = true;
      for (size_t d = 0; d < rank && shared; ++d) {
        const __int128 a_end = static_cast<__int128>(a.offsets[d]) + a.sizes[d];
        const __int128 b_end = static_cast<__int128>(b.offsets[d]) + b.sizes[d];
        shared = a.offsets[d] < b_end && b.offsets[d] < a_end;
      }
      if (shared) return true;
    }
  }
  return false;
}

}  // namespace

std::vector<ExpectedRequest> LocalLoadPlanReference(const StateDictDescription& description,
                                                    const Metadata& metadata, bool strict) {
  std::vector<ExpectedRequest> expected;
  for (const auto& [fqn, value] : description.values) {
    ExpectedRequest request;
    request.fqn = fqn;
    const StorageMetadata* entry = metadata.state_dict_metadata.Find(fqn);
    const auto* tensor = entry ? std::get_if<TensorStorageMetadata>(entry) : nullptr;
    const bool wants_bytes = std::holds_alternative<OpaqueValue>(value);
    if (entry == nullptr) {
      if (strict) request.errors.push_back(LoadErrorKind::kMissingKey);
    } else if (wants_bytes != (tensor == nullptr)) {
      request.errors.push_back(LoadErrorKind::kTypeMismatch);
    } else if (wants_bytes) {
      ReadItem item;
      item.type = LoadItemType::kByteIO;
      item.dest_index.fqn = item.storage_index.fqn = fqn;
      item.dest_offsets = item.storage_offsets = item.lengths = Shape{0};
      request.items.push_back(std::move(item));
    } else if (const auto* whole = std::get_if<WholeTensor>(&value)) {
      if (whole->shape != tensor->size) {
        request.errors.push_back(LoadErrorKind::kSizeMismatch);
      } else if (StoredChunksShareAnElement(*tensor)) {
        request.errors.push_back(LoadErrorKind::kInvalidCheckpoint);
      } else {
        request.destination_chunks = {ChunkBox{Shape(whole->shape.size(), 0), whole->shape}};
      }
    } else {
      const auto& sharded = std::get<ShardedTensor>(value);
      if (sharded.global_shape != tensor->size) {
        request.errors.push_back(LoadErrorKind::kSizeMismatch);
      } else if (StoredChunksShareAnElement(*tensor)) {
        request.errors.push_back(LoadErrorKind::kInvalidCheckpoint);
      } else {
        for (const ChunkBox& chunk : sharded.local_chunks) {
          if (!InBounds(sharded.global_shape, chunk)) request.errors.push_back(LoadErrorKind::kSizeMismatch);
        }
        if (request.errors.empty()) request.destination_chunks = sharded.local_chunks;
      }
    }
    if (tensor != nullptr && !wants_bytes && request.errors.empty()) {
      request.stored = tensor;
      request.items = ReadItemsPairwise(fqn, *tensor, request.destination_chunks);
    }
    expected.push_back(std::move(request));
  }
  return expected;
}

absl::StatusOr<absl::flat_hash_map<MetadataIndex, int64_t>> DedupOwnersReference(const std::vector<SavePlan>& plans,
                                                                                  DedupPolicy policy) {
  std::vector<MetadataIndex> keys;  // first-seen order
  absl::flat_hash_map<MetadataIndex, std::vector<int64_t>> holders;
  absl::flat_hash_map<MetadataIndex, const WriteItem*> last_item;
  for (size_t r = 0; r < plans.size(); ++r) {
    for (const WriteItem& item : plans[r].items) {
      std::vector<int64_t>& ranks = holders[item.index];
      if (ranks.empty()) keys.push_back(item.index);
      if (ranks.empty() || ranks.back() != static_cast<int64_t>(r)) ranks.push_back(static_cast<int64_t>(r));
      last_item[item.index] = &item;
    }
  }
  absl::flat_hash_map<MetadataIndex, int64_t> owners;
  std::vector<__int128> totals(plans.size(), 0);
  for (const MetadataIndex& key : keys) {
    const std::vector<int64_t>& ranks = holders[key];
    int64_t owner = ranks.front();
    if (policy == DedupPolicy::kPyTorch) {
      for (int64_t r : ranks) {
        if (totals[r] < totals[owner]) owner = r;
      }
      absl::StatusOr<std::optional<int64_t>> size = last_item[key]->TensorStorageSize();
      if (!size.ok()) return size.status();
      totals[owner] += size->value_or(0) == 0 ? 1 : **size;
    }
    owners[key] = owner;
  }
  return owners;
}

}  // namespace dcplan::fuzzing
