#ifndef DCPLAN_ENGINE_PLAN_H_
#define DCPLAN_ENGINE_PLAN_H_

// Save and load plans: PyTorch DCP's WriteItem / SavePlan and ReadItem /
// LoadPlan (torch.distributed.checkpoint.planner), as value types.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "engine/box.h"
#include "engine/metadata.h"
#include "engine/object_path.h"

namespace dcplan {

// PyTorch's enum values (auto() from 1).
enum class WriteItemType : uint8_t { kTensor = 1, kShard = 2, kByteIO = 3 };
enum class LoadItemType : uint8_t { kTensor = 1, kByteIO = 2 };

absl::string_view WriteItemTypeName(WriteItemType type);  // "TENSOR", "SHARD", "BYTE_IO"
absl::string_view LoadItemTypeName(LoadItemType type);    // "TENSOR", "BYTE_IO"

// What is written for a tensor item: the chunk, the tensor's properties and
// its global shape.
struct TensorWriteData {
  ChunkBox chunk;
  TensorProperties properties;
  Shape size;

  friend bool operator==(const TensorWriteData& a, const TensorWriteData& b) {
    return a.chunk == b.chunk && a.properties == b.properties && a.size == b.size;
  }
  friend bool operator!=(const TensorWriteData& a, const TensorWriteData& b) { return !(a == b); }
};

struct WriteItem {
  MetadataIndex index;
  WriteItemType type = WriteItemType::kByteIO;
  // BytesIOWriteData.nbytes: never filled by PyTorch's default planner; dcplan
  // fills it with the serialized size where it is known (balanced dedup uses
  // it).
  std::optional<int64_t> bytes_io_nbytes;
  std::optional<TensorWriteData> tensor_data;

  // PyTorch's tensor_storage_size(): prod(global size) * element size, or
  // nullopt without tensor data. Error on overflow or a negative dim.
  absl::StatusOr<std::optional<int64_t>> TensorStorageSize() const;
  // Bytes this item really writes: element size * volume of its chunk for
  // tensors, bytes_io_nbytes (0 if unknown) for bytes. Error on overflow.
  absl::StatusOr<int64_t> PayloadBytes() const;

  // Field-wise equality, including the index hint.
  friend bool operator==(const WriteItem& a, const WriteItem& b) {
    return a.index.IdenticalTo(b.index) && a.type == b.type && a.bytes_io_nbytes == b.bytes_io_nbytes &&
           a.tensor_data == b.tensor_data;
  }
  friend bool operator!=(const WriteItem& a, const WriteItem& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const WriteItem& w);
};

// One rank's save plan. `storage_data` is opaque to the planner (the
// filesystem writer puts its file prefix there); `planner_data` is the flatten
// mapping; `usable == false` marks the "unchanged, use the cached plan"
// placeholder of plan caching.
struct SavePlan {
  std::vector<WriteItem> items;
  std::optional<std::string> storage_data;
  std::optional<FlattenMapping> planner_data;
  bool usable = true;

  friend bool operator==(const SavePlan& a, const SavePlan& b) {
    return a.items == b.items && a.storage_data == b.storage_data && a.planner_data == b.planner_data &&
           a.usable == b.usable;
  }
  friend bool operator!=(const SavePlan& a, const SavePlan& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const SavePlan& p);
};

// One copy from a stored chunk into a destination chunk. Offsets are relative
// to each chunk's origin; `lengths` is the extent of the copied box. Bytes
// items carry (0,) in all three.
struct ReadItem {
  LoadItemType type = LoadItemType::kTensor;
  MetadataIndex dest_index;
  Shape dest_offsets;
  MetadataIndex storage_index;
  Shape storage_offsets;
  Shape lengths;

  // Field-wise equality, including index hints.
  friend bool operator==(const ReadItem& a, const ReadItem& b) {
    return a.type == b.type && a.dest_index.IdenticalTo(b.dest_index) && a.dest_offsets == b.dest_offsets &&
           a.storage_index.IdenticalTo(b.storage_index) && a.storage_offsets == b.storage_offsets &&
           a.lengths == b.lengths;
  }
  friend bool operator!=(const ReadItem& a, const ReadItem& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const ReadItem& r);
};

struct LoadPlan {
  std::vector<ReadItem> items;
  std::optional<std::string> storage_data;
  std::optional<FlattenMapping> planner_data;

  friend bool operator==(const LoadPlan& a, const LoadPlan& b) {
    return a.items == b.items && a.storage_data == b.storage_data && a.planner_data == b.planner_data;
  }
  friend bool operator!=(const LoadPlan& a, const LoadPlan& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const LoadPlan& p);
};

// Readable forms, the same text as operator<< prints (plans: one item per
// line).
std::string ToString(const WriteItem& item);
std::string ToString(const SavePlan& plan);
std::string ToString(const ReadItem& item);
std::string ToString(const LoadPlan& plan);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_PLAN_H_
