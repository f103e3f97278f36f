// Properties of load planning across layouts (engine/load_planner.h): a
// tensor saved in any partition S and loaded into any partition L, on any
// number of ranks, is reproduced exactly.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "engine/box.h"
#include "engine/description.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "property_tests/generators.h"
#include "property_tests/oracles.h"

namespace dcplan {
namespace proptest {
namespace {

// Row-major strides of `shape`.
std::vector<int64_t> Strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

int64_t Volume(const Shape& sizes) {
  int64_t v = 1;
  for (int64_t s : sizes) v *= s;
  return v;
}

// Calls f(position) for every position (a vector of per-dim indices) of a
// box of `sizes`, in row-major order.
template <typename F>
void ForEachPosition(const Shape& sizes, F f) {
  if (Volume(sizes) == 0) return;
  std::vector<int64_t> pos(sizes.size(), 0);
  while (true) {
    f(pos);
    size_t d = sizes.size();
    while (d > 0) {
      --d;
      if (++pos[d] < sizes[d]) break;
      pos[d] = 0;
      if (d == 0) return;
    }
    if (sizes.empty()) return;
  }
}

int64_t LinearIn(const Shape& sizes, const std::vector<int64_t>& pos) {
  int64_t index = 0;
  for (size_t d = 0; d < sizes.size(); ++d) index = index * sizes[d] + pos[d];
  return index;
}

// A chunk's data, row-major.
struct Buffer {
  ChunkBox box;
  std::vector<int64_t> values;
  std::vector<int> writes;
};

// A stored chunk whose element values are their linear index in the tensor.
Buffer StoredBuffer(const Shape& shape, const ChunkBox& box) {
  Buffer b{box, std::vector<int64_t>(Volume(box.sizes)), {}};
  const std::vector<int64_t> strides = Strides(shape);
  ForEachPosition(box.sizes, [&](const std::vector<int64_t>& pos) {
    int64_t global = 0;
    for (size_t d = 0; d < pos.size(); ++d) global += (box.offsets[d] + pos[d]) * strides[d];
    b.values[LinearIn(box.sizes, pos)] = global;
  });
  return b;
}

enum class LoadMode { kSharded, kWhole };

std::ostream& operator<<(std::ostream& os, LoadMode mode) {
  return os << (mode == LoadMode::kSharded ? "sharded load" : "whole-tensor load");
}

struct LoadLayout {
  LoadMode mode = LoadMode::kSharded;
  int32_t num_ranks = 1;
  // requested[r]: rank r's destination chunks.
  std::vector<std::vector<ChunkBox>> requested;
};

void Check(const Partition& saved, const LoadLayout& layout, DType dtype) {
  const Shape& shape = saved.shape;
  Metadata metadata;
  TensorStorageMetadata stored{TensorProperties{}, shape, saved.chunks};
  stored.properties.dtype = dtype;
  metadata.state_dict_metadata.InsertOrAssign("w", stored);
  metadata.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});

  std::vector<Buffer> sources;
  for (const ChunkBox& c : saved.chunks) sources.push_back(StoredBuffer(shape, c));

  for (int32_t r = 0; r < layout.num_ranks; ++r) {
    const std::vector<ChunkBox>& local = layout.requested[r];
    StateDictDescription description;
    TensorProperties properties;
    properties.dtype = dtype;
    if (layout.mode == LoadMode::kWhole) {
      description.values.InsertOrAssign("w", WholeTensor{shape, properties});
    } else {
      description.values.InsertOrAssign("w", ShardedTensor{shape, properties, local});
    }
    description.values.InsertOrAssign("step", OpaqueValue{});
    const LocalLoadPlan plan = CreateLocalLoadPlan(description, metadata, LoadPlannerOptions{}, r);
    RC_ASSERT(plan.errors.empty());

    std::vector<Buffer> dests;
    for (const ChunkBox& c : local) {
      dests.push_back(Buffer{c, std::vector<int64_t>(Volume(c.sizes), -1), std::vector<int>(Volume(c.sizes), 0)});
    }
    int bytes_items = 0;
    std::optional<std::pair<int64_t, int64_t>> previous;  // (dest hint, storage hint)
    for (const ReadItem& item : plan.plan.items) {
      if (item.type == LoadItemType::kByteIO) {
        ++bytes_items;
        RC_ASSERT(item.dest_index.fqn == "step");
        continue;
      }
      RC_ASSERT(item.dest_index.fqn == "w");
      RC_ASSERT(item.storage_index.fqn == "w");
      RC_ASSERT(item.dest_index.index.has_value());
      RC_ASSERT(item.storage_index.index.has_value());
      const int64_t di = *item.dest_index.index;
      const int64_t si = *item.storage_index.index;
      RC_ASSERT(di >= 0 && di < static_cast<int64_t>(local.size()));
      RC_ASSERT(si >= 0 && si < static_cast<int64_t>(saved.chunks.size()));
      // Items by destination chunk, then stored chunk in metadata order.
      RC_ASSERT(!previous || *previous < std::make_pair(di, si));
      previous = std::make_pair(di, si);
      const ChunkBox& dest = local[di];
      const ChunkBox& src = saved.chunks[si];
      RC_ASSERT(OverlapsPyTorch(dest, src));
      RC_ASSERT(item.dest_index.offset == std::optional<Shape>(dest.offsets));
      RC_ASSERT(item.storage_index.offset == std::optional<Shape>(src.offsets));
      const size_t rank = shape.size();
      RC_ASSERT(item.dest_offsets.size() == rank && item.storage_offsets.size() == rank &&
                item.lengths.size() == rank);
      for (size_t d = 0; d < rank; ++d) {
        RC_ASSERT(item.lengths[d] >= 0);
        // Inside both chunks, at the same global position.
        RC_ASSERT(item.dest_offsets[d] >= 0 && item.dest_offsets[d] + item.lengths[d] <= dest.sizes[d]);
        RC_ASSERT(item.storage_offsets[d] >= 0 && item.storage_offsets[d] + item.lengths[d] <= src.sizes[d]);
        RC_ASSERT(dest.offsets[d] + item.dest_offsets[d] == src.offsets[d] + item.storage_offsets[d]);
      }
      // The copy the storage layer would make, element by element.
      Buffer& out = dests[di];
      const Buffer& in = sources[si];
      ForEachPosition(item.lengths, [&](const std::vector<int64_t>& pos) {
        std::vector<int64_t> at_src(rank), at_dest(rank);
        for (size_t d = 0; d < rank; ++d) {
          at_src[d] = item.storage_offsets[d] + pos[d];
          at_dest[d] = item.dest_offsets[d] + pos[d];
        }
        const int64_t k = LinearIn(dest.sizes, at_dest);
        out.values[k] = in.values[LinearIn(src.sizes, at_src)];
        ++out.writes[k];
      });
    }
    RC_ASSERT(bytes_items == 1);
    // Every pair that overlaps (PyTorch's test, zero-length items included)
    // has its item (counted where affordable; the element check below covers
    // the pairs that share elements anyway).
    if (local.size() * saved.chunks.size() <= 20000) {
      int64_t overlapping_pairs = 0;
      for (const ChunkBox& d : local) {
        for (const ChunkBox& c : saved.chunks) overlapping_pairs += OverlapsPyTorch(d, c);
      }
      RC_ASSERT(static_cast<int64_t>(plan.plan.items.size()) == overlapping_pairs + 1);
    }
    // Each destination element written exactly once, with its own value.
    for (const Buffer& out : dests) {
      const Buffer expected = StoredBuffer(shape, out.box);
      for (size_t k = 0; k < out.values.size(); ++k) {
        RC_ASSERT(out.writes[k] == 1);
        RC_ASSERT(out.values[k] == expected.values[k]);
      }
    }
  }
}

LoadLayout GenLoadLayout(const Shape& shape) {
  LoadLayout layout;
  layout.mode = *rc::gen::weightedElement<LoadMode>({{4, LoadMode::kSharded}, {1, LoadMode::kWhole}});
  if (layout.mode == LoadMode::kWhole) {
    layout.num_ranks = *GenRankCount(1, 16);
    layout.requested.assign(layout.num_ranks, {ChunkBox{Shape(shape.size(), 0), shape}});
    return layout;
  }
  layout.num_ranks = *GenRankCount(1, 4096);
  const Partition requested = *GenPartition(shape, 4096);
  layout.requested.resize(layout.num_ranks);
  const bool round_robin = *rc::gen::arbitrary<bool>();
  for (size_t i = 0; i < requested.chunks.size(); ++i) {
    const int32_t r = round_robin ? static_cast<int32_t>(i % layout.num_ranks)
                                  : *rc::gen::inRange<int32_t>(0, layout.num_ranks);
    layout.requested[r].push_back(requested.chunks[i]);
  }
  RC_TAG(std::string(PartitionKindName(requested.kind)));
  return layout;
}

ShapeLimits SmallShapes() {
  ShapeLimits limits;
  limits.max_volume = 4096;
  limits.max_dim = 4096;
  return limits;
}

RC_GTEST_PROP(ReshardProperty, AnySavedLayoutLoadsIntoAnyRequestedLayout, ()) {
  const Partition saved = *GenShapeAndPartition(SmallShapes(), 4096);
  const LoadLayout layout = GenLoadLayout(saved.shape);
  const DType dtype = *GenDType();
  RC_CLASSIFY(saved.shape.empty(), "0-d");
  RC_CLASSIFY(Volume(saved.shape) == 0 && !saved.shape.empty(), "zero-length dim");
  RC_CLASSIFY(layout.mode == LoadMode::kWhole, "whole loads");
  RC_CLASSIFY(layout.num_ranks > 1024, ">1024 load ranks");
  Check(saved, layout, dtype);
}

// The same layout on both sides (save and load on the same ranks).
RC_GTEST_PROP(ReshardProperty, SameLayoutRoundTrips, ()) {
  const Partition saved = *GenShapeAndPartition(SmallShapes(), 512);
  LoadLayout layout;
  layout.num_ranks = static_cast<int32_t>(saved.chunks.size());
  for (const ChunkBox& c : saved.chunks) layout.requested.push_back({c});
  Check(saved, layout, DType::kFloat32);
}

// Keys like "a", "a.b", "a.0.c": some are prefixes of others.
std::string GenKey() {
  const int parts = *rc::gen::inRange(1, 4);
  std::string key;
  for (int i = 0; i < parts; ++i) {
    if (i > 0) key += ".";
    key += *rc::gen::element<std::string>("a", "b", "0", "1");
  }
  return key;
}

// A checkpoint of tensors and bytes values whose recorded object paths
// (planner_data, sometimes absent) are, per key: the key split at dots, the
// key under another prefix (its joins never give the key), or missing.
Metadata GenDescribedCheckpoint() {
  Metadata metadata;
  const int n = *rc::gen::inRange(1, 7);
  if (*rc::gen::weightedElement<bool>({{3, true}, {1, false}})) metadata.planner_data.emplace();
  for (int i = 0; i < n; ++i) {
    const std::string key = GenKey();
    if (*rc::gen::arbitrary<bool>()) {
      metadata.state_dict_metadata.InsertOrAssign(key, BytesStorageMetadata{});
    } else {
      metadata.state_dict_metadata.InsertOrAssign(key, TensorStorageMetadata{{}, Shape{i + 1}, {}});
    }
    if (!metadata.planner_data) continue;
    ObjectPath path;
    const int kind = *rc::gen::inRange(0, 3);
    if (kind == 2) continue;
    if (kind == 1) path.emplace_back(std::string("model"));
    for (absl::string_view part : absl::StrSplit(key, '.')) {
      if (part == "0" || part == "1") {
        path.emplace_back(int64_t{part == "1"});
      } else {
        path.emplace_back(std::string(part));
      }
    }
    metadata.planner_data->InsertOrAssign(key, std::move(path));
  }
  return metadata;
}

// DescribeCheckpoint(keys) includes a key when the filter holds the key itself
// (even without a recorded path: an intended difference from PyTorch) or one
// of the key's object-path prefixes joined by dots.
RC_GTEST_PROP(LoadProperty, DescribeCheckpointIncludesByKeyOrPathPrefix, ()) {
  const Metadata metadata = *rc::gen::exec(GenDescribedCheckpoint);
  std::optional<absl::flat_hash_set<std::string>> keys;
  if (*rc::gen::weightedElement<bool>({{4, true}, {1, false}})) {
    keys.emplace();
    std::vector<std::string> stored;
    for (const auto& [key, value] : metadata.state_dict_metadata) stored.push_back(key);
    const int n = *rc::gen::inRange(0, 4);
    for (int i = 0; i < n; ++i) {
      const std::string one_stored = *rc::gen::elementOf(stored);
      const std::vector<std::string> choices = {one_stored, one_stored, GenKey(), "model", "model.a"};
      keys->insert(*rc::gen::elementOf(choices));
    }
  }
  const StateDictDescription described = DescribeCheckpoint(metadata, keys);
  RC_CLASSIFY(keys.has_value() && !described.values.empty() && described.values.size() < metadata.state_dict_metadata.size(),
              "some keys");
  RC_ASSERT(described == DescribeCheckpointReference(metadata, keys));
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
