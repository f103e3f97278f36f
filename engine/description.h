#ifndef DCPLAN_ENGINE_DESCRIPTION_H_
#define DCPLAN_ENGINE_DESCRIPTION_H_

// StateDictDescription: what one rank holds (on save) or wants (on load),
// without any tensor data. The planners read only this; the LibTorch layer
// builds it from real tensors, the planning tool from JSON.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "engine/box.h"
#include "engine/metadata.h"
#include "engine/object_path.h"
#include "engine/ordered_map.h"

namespace dcplan {

// A whole tensor held by this rank (replicated: any other rank holding the
// same key holds the same data). Saved as one TENSOR item.
struct WholeTensor {
  Shape shape;
  TensorProperties properties;

  friend bool operator==(const WholeTensor& a, const WholeTensor& b) {
    return a.shape == b.shape && a.properties == b.properties;
  }
};

// A sharded tensor: its global shape and the chunks this rank holds (FSDP,
// TP, 2-D; a DTensor is one with a single chunk). One SHARD item per chunk,
// in order. No chunks: the rank contributes nothing for this key.
struct ShardedTensor {
  Shape global_shape;
  TensorProperties properties;
  std::vector<ChunkBox> local_chunks;

  friend bool operator==(const ShardedTensor& a, const ShardedTensor& b) {
    return a.global_shape == b.global_shape && a.properties == b.properties && a.local_chunks == b.local_chunks;
  }
};

// Any other value, saved as one opaque BYTE_IO blob. `nbytes` is its
// serialized size where known.
struct OpaqueValue {
  std::optional<int64_t> nbytes;

  friend bool operator==(const OpaqueValue& a, const OpaqueValue& b) { return a.nbytes == b.nbytes; }
};

using ValueDescription = std::variant<WholeTensor, ShardedTensor, OpaqueValue>;

std::ostream& operator<<(std::ostream& os, const ValueDescription& v);

struct StateDictDescription {
  // Flattened keys in flattening order (the order plans follow).
  OrderedMap<std::string, ValueDescription> values;
  // The flatten mapping when the state dict was flattened (the default
  // planners' flatten_state_dict=true), else nullopt.
  std::optional<FlattenMapping> mapping;

  friend bool operator==(const StateDictDescription& a, const StateDictDescription& b) {
    return a.values == b.values && a.mapping == b.mapping;
  }
};

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_DESCRIPTION_H_
