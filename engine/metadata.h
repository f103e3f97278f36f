#ifndef DCPLAN_ENGINE_METADATA_H_
#define DCPLAN_ENGINE_METADATA_H_

// The checkpoint metadata model: PyTorch DCP's
// torch.distributed.checkpoint.metadata classes and the filesystem layer's
// _StorageInfo, as value types. Field order follows PyTorch's declaration
// order, which is also the pickled state order (spec/format.md §5).

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "engine/box.h"
#include "engine/dtype.h"
#include "engine/object_path.h"
#include "engine/ordered_map.h"

namespace dcplan {

// Lookup key of an item: fully-qualified name, the chunk's global offsets
// (nullopt for bytes values; empty for a 0-d tensor, which is not the same as
// nullopt) and an optional position hint. Equality and hashing use (fqn,
// offset) only: `index` is a hint, never part of the identity.
struct MetadataIndex {
  std::string fqn;
  std::optional<Shape> offset;
  std::optional<int64_t> index;

  friend bool operator==(const MetadataIndex& a, const MetadataIndex& b) {
    return a.fqn == b.fqn && a.offset == b.offset;
  }
  friend bool operator!=(const MetadataIndex& a, const MetadataIndex& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const MetadataIndex& i) {
    // Debian's Abseil does not hash std::optional itself.
    if (!i.offset) return H::combine(std::move(h), i.fqn, false);
    return H::combine(std::move(h), i.fqn, true, *i.offset);
  }
  // Exact equality including the hint (for tests of hint rewriting).
  bool IdenticalTo(const MetadataIndex& o) const { return *this == o && index == o.index; }

  // Prints "MetadataIndex(fqn='w', offset=[0, 4], index=1)".
  friend std::ostream& operator<<(std::ostream& os, const MetadataIndex& i);
};

// torch.layout values DCP can record.
enum class Layout : uint8_t { kStrided, kSparseCoo, kSparseCsr, kSparseCsc, kSparseBsr, kSparseBsc, kMkldnn };
// _MEM_FORMAT_ENCODING: the values are PyTorch's enum values.
enum class MemoryFormat : uint8_t { kContiguous = 0, kChannelsLast = 1, kPreserve = 2 };

absl::string_view LayoutName(Layout layout);  // "strided", "sparse_coo", ...
absl::string_view MemoryFormatName(MemoryFormat format);  // "contiguous_format", ...

// TensorProperties. Only `dtype` matters on load; the rest is recorded for
// compatibility (PyTorch marks it deprecated).
struct TensorProperties {
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kStrided;
  bool requires_grad = false;
  MemoryFormat memory_format = MemoryFormat::kContiguous;
  bool pin_memory = false;

  friend bool operator==(const TensorProperties& a, const TensorProperties& b) {
    return a.dtype == b.dtype && a.layout == b.layout && a.requires_grad == b.requires_grad &&
           a.memory_format == b.memory_format && a.pin_memory == b.pin_memory;
  }
  friend bool operator!=(const TensorProperties& a, const TensorProperties& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const TensorProperties& p);
};

// A saved tensor: global shape and the stored chunks, in global-plan order.
struct TensorStorageMetadata {
  TensorProperties properties;
  Shape size;
  std::vector<ChunkBox> chunks;

  friend bool operator==(const TensorStorageMetadata& a, const TensorStorageMetadata& b) {
    return a.properties == b.properties && a.size == b.size && a.chunks == b.chunks;
  }
  friend bool operator!=(const TensorStorageMetadata& a, const TensorStorageMetadata& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const TensorStorageMetadata& t);
};

// A saved non-tensor value (an opaque serialized blob).
struct BytesStorageMetadata {
  friend bool operator==(const BytesStorageMetadata&, const BytesStorageMetadata&) { return true; }
  friend bool operator!=(const BytesStorageMetadata&, const BytesStorageMetadata&) { return false; }
  friend std::ostream& operator<<(std::ostream& os, const BytesStorageMetadata&) {
    return os << "BytesStorageMetadata()";
  }
};

using StorageMetadata = std::variant<TensorStorageMetadata, BytesStorageMetadata>;
std::ostream& operator<<(std::ostream& os, const StorageMetadata& m);

// Where one item's bytes are: the filesystem layer's _StorageInfo.
struct StorageInfo {
  std::string relative_path;
  int64_t offset = 0;
  int64_t length = 0;
  // Stream transforms applied, outermost last; nullopt when none (omitted
  // from the pickle, like PyTorch does).
  std::optional<std::vector<std::string>> transform_descriptors;

  friend bool operator==(const StorageInfo& a, const StorageInfo& b) {
    return a.relative_path == b.relative_path && a.offset == b.offset && a.length == b.length &&
           a.transform_descriptors == b.transform_descriptors;
  }
  friend bool operator!=(const StorageInfo& a, const StorageInfo& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const StorageInfo& s);
};

// Metadata.storage_data of FileSystemWriter: item -> where its bytes are, in
// write order. Keys compare by (fqn, offset).
using StorageData = OrderedMap<MetadataIndex, StorageInfo>;

// StorageMeta (E2+). `checkpoint_id` is kept as a string (PyTorch pickles a
// pathlib.Path or a str; see spec/format.md §5).
struct StorageMeta {
  std::optional<std::string> checkpoint_id;
  std::optional<std::string> save_id;
  std::optional<std::string> load_id;
  std::vector<std::string> modules;

  friend bool operator==(const StorageMeta& a, const StorageMeta& b) {
    return a.checkpoint_id == b.checkpoint_id && a.save_id == b.save_id && a.load_id == b.load_id &&
           a.modules == b.modules;
  }
  friend bool operator!=(const StorageMeta& a, const StorageMeta& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const StorageMeta& m);
};

using StateDictMetadata = OrderedMap<std::string, StorageMetadata>;

// The checkpoint's metadata (`.metadata`).
struct Metadata {
  StateDictMetadata state_dict_metadata;
  // The default planner's flatten mapping, or nullopt (PyTorch: None).
  std::optional<FlattenMapping> planner_data;
  // FileSystemWriter's item locations, or nullopt before the write finished.
  std::optional<StorageData> storage_data;
  std::optional<StorageMeta> storage_meta;
  std::optional<std::string> version;

  friend bool operator==(const Metadata& a, const Metadata& b) {
    return a.state_dict_metadata == b.state_dict_metadata && a.planner_data == b.planner_data &&
           a.storage_data == b.storage_data && a.storage_meta == b.storage_meta && a.version == b.version;
  }
  friend bool operator!=(const Metadata& a, const Metadata& b) { return !(a == b); }
  // Multi-line readable dump (one entry per line).
  friend std::ostream& operator<<(std::ostream& os, const Metadata& m);
};

// Readable one-line forms (multi-line for Metadata), the same text as
// operator<< prints.
std::string ToString(const MetadataIndex& index);
std::string ToString(const TensorProperties& properties);
std::string ToString(const StorageMetadata& metadata);
std::string ToString(const StorageInfo& info);
std::string ToString(const StorageMeta& meta);
std::string ToString(const Metadata& metadata);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_METADATA_H_
