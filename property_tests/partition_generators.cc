// Shapes, dtypes, exact partitions and injected faults.

#include "property_tests/generators.h"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "property_tests/generators_internal.h"

namespace dcplan {
namespace proptest {

using internal::kInt64Max;
using internal::kInt64Min;
using internal::Pick;
using internal::PickBool;
using internal::PickInt;
using internal::PickLogUniform;
using internal::PickScaled;
using internal::VolumeOf;

namespace {

// Dims shrink towards 1 first, then 0: the buckets are tried in this order.
int64_t PickDimSize(int64_t cap) {
  if (cap <= 0) return 0;
  enum Bucket { kOne, kSmall, kZero, kMedium, kLarge };
  int bucket = *rc::gen::weightedElement<int>({{2, kOne}, {6, kSmall}, {1, kZero}, {2, kMedium}, {1, kLarge}});
  switch (bucket) {
    case kOne: return 1;
    case kSmall: return Pick(2, std::min<int64_t>(8, cap));
    case kZero: return 0;
    case kMedium: return cap < 9 ? Pick(1, cap) : Pick(9, std::min<int64_t>(64, cap));
    default: return cap < 65 ? Pick(1, cap) : Pick(65, cap);
  }
}

// Boundaries b_0 = 0 <= b_1 <= ... <= b_parts = extent of `parts` slices.
std::vector<int64_t> PickCuts(int64_t extent, int parts) {
  std::vector<int64_t> bounds(parts + 1, 0);
  bounds[parts] = extent;
  if (parts == 1) return bounds;
  const bool even = *rc::gen::weightedElement<bool>({{1, true}, {3, false}});
  if (even) {
    // torch.chunk: ceil(extent / parts) per slice, trailing slices empty.
    const int64_t step = extent == 0 ? 0 : (extent + parts - 1) / parts;
    for (int i = 1; i < parts; ++i) bounds[i] = std::min(extent, step * i);
    return bounds;
  }
  for (int i = 1; i < parts; ++i) bounds[i] = Pick(0, extent);
  std::sort(bounds.begin(), bounds.end());
  return bounds;
}

ChunkBox WholeBox(const Shape& shape) { return ChunkBox{Shape(shape.size(), 0), shape}; }

std::vector<ChunkBox> FsdpChunks(const Shape& shape, int parts) {
  const std::vector<int64_t> bounds = PickCuts(shape[0], parts);
  std::vector<ChunkBox> chunks;
  chunks.reserve(parts);
  for (int i = 0; i < parts; ++i) {
    ChunkBox box = WholeBox(shape);
    box.offsets[0] = bounds[i];
    box.sizes[0] = bounds[i + 1] - bounds[i];
    chunks.push_back(std::move(box));
  }
  return chunks;
}

std::vector<ChunkBox> GridChunks(const Shape& shape, int max_parts) {
  const int rank = static_cast<int>(shape.size());
  const int num_split = PickInt(1, std::min(3, rank));
  std::vector<int> free_dims(rank);
  for (int d = 0; d < rank; ++d) free_dims[d] = d;
  std::vector<int> split_dims;
  std::vector<std::vector<int64_t>> bounds;
  int64_t product = 1;
  for (int k = 0; k < num_split; ++k) {
    const int pos = PickInt(0, static_cast<int>(free_dims.size()) - 1);
    const int dim = free_dims[pos];
    free_dims.erase(free_dims.begin() + pos);
    const int parts = static_cast<int>(PickLogUniform(1, std::max<int64_t>(1, max_parts / product)));
    product *= parts;
    split_dims.push_back(dim);
    bounds.push_back(PickCuts(shape[dim], parts));
  }
  // Row-major over split_dims (the first split dim varies slowest).
  std::vector<ChunkBox> chunks;
  std::vector<int> counter(num_split, 0);
  while (true) {
    ChunkBox box = WholeBox(shape);
    for (int k = 0; k < num_split; ++k) {
      box.offsets[split_dims[k]] = bounds[k][counter[k]];
      box.sizes[split_dims[k]] = bounds[k][counter[k] + 1] - bounds[k][counter[k]];
    }
    chunks.push_back(std::move(box));
    int k = num_split - 1;
    while (k >= 0 && ++counter[k] == static_cast<int>(bounds[k].size()) - 1) counter[k--] = 0;
    if (k < 0) break;
  }
  return chunks;
}

std::vector<ChunkBox> GuillotineChunks(const Shape& shape, int max_parts) {
  const int pieces = static_cast<int>(PickLogUniform(1, max_parts));
  std::vector<ChunkBox> chunks = {WholeBox(shape)};
  const int rank = static_cast<int>(shape.size());
  while (static_cast<int>(chunks.size()) < pieces) {
    const int index = PickInt(0, static_cast<int>(chunks.size()) - 1);
    const int dim = PickInt(0, rank - 1);
    ChunkBox lower = chunks[index];
    ChunkBox upper = lower;
    const int64_t cut = Pick(0, lower.sizes[dim]);
    lower.sizes[dim] = cut;
    upper.offsets[dim] += cut;
    upper.sizes[dim] -= cut;
    chunks[index] = std::move(lower);
    const int insert_at = PickInt(0, static_cast<int>(chunks.size()));
    chunks.insert(chunks.begin() + insert_at, std::move(upper));
  }
  return chunks;
}

}  // namespace

// ---- Shapes and dtypes ---------------------------------------------------------------

rc::Gen<DType> GenDType() {
  return rc::gen::map(rc::gen::resize(rc::kNominalSize, rc::gen::inRange<int>(0, kNumDTypes)), [](int d) { return static_cast<DType>(d); });
}

rc::Gen<TensorProperties> GenPlanningProperties() {
  return rc::gen::map(GenDType(), [](DType dtype) {
    TensorProperties p;
    p.dtype = dtype;
    return p;
  });
}

rc::Gen<TensorProperties> GenAnyProperties() {
  return rc::gen::exec([] {
    TensorProperties p;
    p.dtype = *GenDType();
    p.layout = static_cast<Layout>(Pick(0, static_cast<int64_t>(Layout::kMkldnn)));
    p.requires_grad = PickBool();
    p.memory_format = static_cast<MemoryFormat>(Pick(0, 2));
    p.pin_memory = PickBool();
    return p;
  });
}

rc::Gen<Shape> GenShape(const ShapeLimits& limits) {
  return rc::gen::exec([limits] {
    // 0-d shapes about one time in six when allowed.
    const int dims = limits.min_dims == 0 && *rc::gen::weightedElement<bool>({{1, true}, {5, false}})
                         ? 0
                         : PickInt(std::max(1, limits.min_dims), limits.max_dims);
    Shape shape;
    int64_t product = 1;
    for (int d = 0; d < dims; ++d) {
      const int64_t cap = std::min(limits.max_dim, limits.max_volume / product);
      const int64_t size = PickDimSize(cap);
      if (size > 0) product *= size;
      shape.push_back(size);
    }
    return shape;
  });
}

// ---- Partitions ------------------------------------------------------------------------

absl::string_view PartitionKindName(PartitionKind kind) {
  switch (kind) {
    case PartitionKind::kWhole: return "whole";
    case PartitionKind::kFsdp: return "fsdp";
    case PartitionKind::kGrid: return "grid";
    case PartitionKind::kGuillotine: return "guillotine";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, const Partition& p) {
  os << PartitionKindName(p.kind) << " partition of " << ShapeToString(p.shape) << " in " << p.chunks.size()
     << " chunks: [";
  for (size_t i = 0; i < p.chunks.size(); ++i) os << (i ? ", " : "") << p.chunks[i];
  return os << "]";
}

Partition WholePartition(const Shape& shape) { return Partition{PartitionKind::kWhole, shape, {WholeBox(shape)}}; }

rc::Gen<Partition> GenFsdpPartition(const Shape& shape, int parts) {
  if (shape.empty()) return rc::gen::just(WholePartition(shape));
  return rc::gen::exec([shape, parts] { return Partition{PartitionKind::kFsdp, shape, FsdpChunks(shape, parts)}; });
}

rc::Gen<Partition> GenGridPartition(const Shape& shape, int max_parts) {
  if (shape.empty()) return rc::gen::just(WholePartition(shape));
  return rc::gen::exec(
      [shape, max_parts] { return Partition{PartitionKind::kGrid, shape, GridChunks(shape, max_parts)}; });
}

rc::Gen<Partition> GenGuillotinePartition(const Shape& shape, int max_parts) {
  if (shape.empty()) return rc::gen::just(WholePartition(shape));
  return rc::gen::exec(
      [shape, max_parts] { return Partition{PartitionKind::kGuillotine, shape, GuillotineChunks(shape, max_parts)}; });
}

rc::Gen<Partition> GenPartition(const Shape& shape, int max_parts) {
  return rc::gen::exec([shape, max_parts] {
    const int kind = *rc::gen::weightedElement<int>({{1, 0}, {3, 1}, {2, 2}, {3, 3}});
    switch (kind) {
      case 0: return WholePartition(shape);
      case 1: return *GenFsdpPartition(shape, static_cast<int>(PickLogUniform(1, max_parts)));
      case 2: return *GenGridPartition(shape, max_parts);
      default: return *GenGuillotinePartition(shape, max_parts);
    }
  });
}

rc::Gen<Partition> GenShapeAndPartition(const ShapeLimits& limits, int max_parts) {
  return rc::gen::exec([limits, max_parts] { return *GenPartition(*GenShape(limits), max_parts); });
}

Partition WithDistinctOffsets(Partition partition) {
  std::vector<ChunkBox> kept;
  // Non-empty chunks first claim their offsets; then one empty chunk per
  // offsets nobody claimed.
  std::vector<const Shape*> claimed;
  auto is_claimed = [&](const Shape& offsets) {
    return std::any_of(claimed.begin(), claimed.end(), [&](const Shape* s) { return *s == offsets; });
  };
  for (const ChunkBox& c : partition.chunks) {
    if (VolumeOf(c) > 0) claimed.push_back(&c.offsets);
  }
  std::vector<bool> keep(partition.chunks.size(), false);
  for (size_t i = 0; i < partition.chunks.size(); ++i) {
    const ChunkBox& c = partition.chunks[i];
    if (VolumeOf(c) > 0) {
      keep[i] = true;
    } else if (!is_claimed(c.offsets)) {
      keep[i] = true;
      claimed.push_back(&c.offsets);
    }
  }
  for (size_t i = 0; i < partition.chunks.size(); ++i) {
    if (keep[i]) kept.push_back(partition.chunks[i]);
  }
  partition.chunks = std::move(kept);
  return partition;
}

// ---- Faults ------------------------------------------------------------------------------

absl::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kGrow: return "grow";
    case FaultKind::kShiftOutOfBounds: return "shift_out_of_bounds";
    case FaultKind::kDrop: return "drop";
    case FaultKind::kDuplicate: return "duplicate";
    case FaultKind::kNearInt64Max: return "near_int64_max";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, const InjectedFault& f) {
  os << FaultKindName(f.fault) << " fault of " << ShapeToString(f.shape) << ", expecting "
     << ProblemKindName(f.expected_kind) << " chunks [" << absl::StrJoin(f.expected_chunks, ", ") << "]"
     << (f.chunks_exact ? "" : " (one of)");
  if (f.expected_kind == ProblemKind::kVolume) os << " expected " << f.expected_volume << " actual " << f.actual_volume;
  os << "; chunks: [";
  for (size_t i = 0; i < f.chunks.size(); ++i) os << (i ? ", " : "") << f.chunks[i];
  return os << "]";
}

rc::Gen<InjectedFault> GenFault(const Partition& partition) {
  return rc::gen::exec([partition] {
    const Shape& shape = partition.shape;
    const std::vector<ChunkBox>& chunks = partition.chunks;
    const int64_t n = static_cast<int64_t>(chunks.size());
    std::vector<int64_t> positive;
    for (int64_t i = 0; i < n; ++i) {
      if (VolumeOf(chunks[i]) > 0) positive.push_back(i);
    }
    std::vector<std::pair<int64_t, size_t>> growable;  // (chunk, dim)
    for (int64_t i : positive) {
      for (size_t d = 0; d < shape.size(); ++d) {
        if (chunks[i].offsets[d] + chunks[i].sizes[d] < shape[d]) growable.push_back({i, d});
      }
    }
    std::vector<FaultKind> kinds = {FaultKind::kShiftOutOfBounds, FaultKind::kNearInt64Max};
    if (!positive.empty()) {
      kinds.push_back(FaultKind::kDrop);
      kinds.push_back(FaultKind::kDuplicate);
    }
    if (!growable.empty()) kinds.push_back(FaultKind::kGrow);

    InjectedFault f;
    f.fault = kinds[Pick(0, static_cast<int64_t>(kinds.size()) - 1)];
    f.shape = shape;
    f.chunks = chunks;
    switch (f.fault) {
      case FaultKind::kGrow: {
        const auto [c, d] = growable[Pick(0, static_cast<int64_t>(growable.size()) - 1)];
        const int64_t room = shape[d] - chunks[c].offsets[d] - chunks[c].sizes[d];
        f.chunks[c].sizes[d] += Pick(1, room);
        f.expected_kind = ProblemKind::kOverlap;
        f.expected_chunks = {c};
        f.chunks_exact = false;
        break;
      }
      case FaultKind::kShiftOutOfBounds: {
        const int64_t i = Pick(0, n - 1);
        const size_t d = static_cast<size_t>(Pick(0, static_cast<int64_t>(shape.size()) - 1));
        const int64_t by = Pick(1, 3);
        f.chunks[i].offsets[d] = PickBool() ? -by : shape[d] - chunks[i].sizes[d] + by;
        f.expected_kind = ProblemKind::kOutOfBounds;
        f.expected_chunks = {i};
        break;
      }
      case FaultKind::kNearInt64Max: {
        const int64_t i = Pick(0, n - 1);
        const size_t d = static_cast<size_t>(Pick(0, static_cast<int64_t>(shape.size()) - 1));
        f.chunks[i].offsets[d] = kInt64Max - Pick(0, 3);
        // Sometimes the end overflows int64 too.
        f.chunks[i].sizes[d] += Pick(0, 5);
        f.expected_kind = ProblemKind::kOutOfBounds;
        f.expected_chunks = {i};
        break;
      }
      case FaultKind::kDrop: {
        const int64_t i = positive[Pick(0, static_cast<int64_t>(positive.size()) - 1)];
        int64_t volume = 1;
        for (int64_t s : shape) volume *= s;
        f.chunks.erase(f.chunks.begin() + i);
        f.expected_kind = ProblemKind::kVolume;
        f.expected_volume = volume;
        f.actual_volume = volume - VolumeOf(chunks[i]);
        break;
      }
      case FaultKind::kDuplicate: {
        const int64_t i = positive[Pick(0, static_cast<int64_t>(positive.size()) - 1)];
        const int64_t at = Pick(0, n);
        f.chunks.insert(f.chunks.begin() + at, chunks[i]);
        const int64_t original = i < at ? i : i + 1;
        f.expected_kind = ProblemKind::kOverlap;
        f.expected_chunks = {std::min(original, at), std::max(original, at)};
        break;
      }
    }
    return f;
  });
}

}  // namespace proptest

}  // namespace dcplan
