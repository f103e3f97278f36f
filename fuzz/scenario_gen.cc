#include "fuzz/scenario_gen.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/load_planner.h"
#include "engine/object_path.h"

namespace dcplan::fuzzing {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

constexpr DType kDTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kInt64,     DType::kBool,
                             DType::kFloat64, DType::kUInt8,    DType::kComplex64, DType::kQUInt4x2};
constexpr const char* kBaseNames[] = {"w", "layers.0.weight", "layers.1.bias", "optim.state.0.exp_avg",
                                      "ema.0", "step", "embed.weight", "a.b.c"};
constexpr int64_t kExtremes[] = {kInt64Max, kInt64Max - 1, kInt64Min, kInt64Min + 1, int64_t{1} << 62, -1};

// v + delta, saturated (faults can hit values an earlier fault made extreme).
int64_t AddSaturated(int64_t v, int64_t delta) {
  const __int128 sum = static_cast<__int128>(v) + delta;
  return sum > kInt64Max ? kInt64Max : sum < kInt64Min ? kInt64Min : static_cast<int64_t>(sum);
}

// The object path a flattened key would come from: digit-only parts are
// list indices.
ObjectPath PathOf(const std::string& fqn) {
  ObjectPath path;
  for (absl::string_view part : absl::StrSplit(fqn, '.')) {
    int64_t index = 0;
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), absl::ascii_isdigit);
    if (digits && absl::SimpleAtoi(part, &index)) {
      path.emplace_back(index);
    } else {
      path.emplace_back(std::string(part));
    }
  }
  return path;
}

int64_t ConsumeDim(FuzzedData& in, bool* huge) {
  if (in.ConsumeChance(12)) {
    *huge = true;
    return in.ConsumeInRange<int64_t>(10, kInt64Max);
  }
  return in.ConsumeInRange<int64_t>(0, 9);
}

// Interval boundaries 0 = b0 < b1 < ... < bk = n splitting [0, n) (just
// {0, 0} for n = 0).
std::vector<int64_t> ConsumeBoundaries(FuzzedData& in, int64_t n, int64_t max_cuts) {
  std::vector<int64_t> bounds = {0};
  if (n >= 2) {
    const int64_t count = in.ConsumeInRange<int64_t>(0, std::min(n - 1, max_cuts));
    for (int64_t i = 0; i < count; ++i) bounds.push_back(in.ConsumeInRange<int64_t>(1, n - 1));
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  }
  bounds.push_back(n);
  return bounds;
}

std::vector<ChunkBox> FsdpPartition(const Shape& shape, int64_t world) {
  if (shape.empty()) return {ChunkBox{}};
  const int64_t n = shape[0];
  const int64_t chunk = n / world + (n % world != 0 ? 1 : 0);
  std::vector<ChunkBox> boxes;
  for (int64_t i = 0; i < world; ++i) {
    const __int128 start = static_cast<__int128>(i) * chunk;
    const int64_t offset = start > n ? n : static_cast<int64_t>(start);
    ChunkBox box{Shape(shape.size(), 0), shape};
    box.offsets[0] = offset;
    box.sizes[0] = std::min(chunk, n - offset);
    boxes.push_back(std::move(box));
  }
  return boxes;
}

std::vector<ChunkBox> GridPartition(FuzzedData& in, const Shape& shape) {
  std::vector<std::vector<int64_t>> bounds;
  for (int64_t n : shape) bounds.push_back(ConsumeBoundaries(in, n, 3));
  std::vector<ChunkBox> boxes;
  std::vector<size_t> cell(shape.size(), 0);
  while (true) {
    ChunkBox box;
    for (size_t d = 0; d < shape.size(); ++d) {
      box.offsets.push_back(bounds[d][cell[d]]);
      box.sizes.push_back(bounds[d][cell[d] + 1] - bounds[d][cell[d]]);
    }
    boxes.push_back(std::move(box));
    size_t d = 0;
    while (d < shape.size() && ++cell[d] + 1 == bounds[d].size()) cell[d++] = 0;
    if (d == shape.size()) return boxes;
  }
}

std::vector<ChunkBox> GuillotinePartition(FuzzedData& in, const Shape& shape) {
  std::vector<ChunkBox> boxes = {ChunkBox{Shape(shape.size(), 0), shape}};
  if (shape.empty()) return boxes;
  const int steps = in.ConsumeInRange(0, 10);
  for (int step = 0; step < steps; ++step) {
    const size_t i = in.ConsumeIndex(boxes.size());
    const size_t d = in.ConsumeIndex(shape.size());
    if (boxes[i].sizes[d] < 2) continue;
    const int64_t cut = in.ConsumeInRange<int64_t>(1, boxes[i].sizes[d] - 1);
    ChunkBox upper = boxes[i];
    upper.offsets[d] += cut;
    upper.sizes[d] -= cut;
    boxes[i].sizes[d] = cut;
    boxes.push_back(std::move(upper));
  }
  return boxes;
}

// Adds `value` under `fqn` to the ranks in `holders`.
void Give(SaveScenario& s, const std::vector<int64_t>& holders, const std::string& fqn,
          const ValueDescription& value) {
  for (int64_t r : holders) s.ranks[r].values.InsertOrAssign(fqn, value);
}

std::vector<int64_t> ConsumeHolders(FuzzedData& in, int64_t world) {
  std::vector<int64_t> holders;
  for (int64_t r = 0; r < world; ++r) {
    if (in.ConsumeChance(160)) holders.push_back(r);
  }
  return holders;
}

// Gives each box to one rank (FSDP: box i to rank i), sometimes to a second
// rank too (replicated shards, e.g. HSDP), as ShardedTensors.
void GiveBoxes(FuzzedData& in, SaveScenario& s, const std::string& fqn, const Shape& shape,
               const TensorProperties& properties, const std::vector<ChunkBox>& boxes, bool box_i_to_rank_i) {
  const int64_t world = static_cast<int64_t>(s.ranks.size());
  std::vector<std::vector<ChunkBox>> per_rank(world);
  // Empty FSDP parts share their offsets: a rank lists each key once (a rank
  // listing a key twice is a fault, see ApplyFault).
  auto give = [&](int64_t r, const ChunkBox& box) {
    for (const ChunkBox& held : per_rank[r]) {
      if (held.offsets == box.offsets) return;
    }
    per_rank[r].push_back(box);
  };
  for (size_t i = 0; i < boxes.size(); ++i) {
    const int64_t owner = box_i_to_rank_i ? static_cast<int64_t>(i) % world : in.ConsumeIndex(world);
    give(owner, boxes[i]);
    if (world > 1 && in.ConsumeChance(32)) give((owner + 1 + in.ConsumeIndex(world - 1)) % world, boxes[i]);
  }
  for (int64_t r = 0; r < world; ++r) {
    if (per_rank[r].empty() && in.ConsumeBool()) continue;
    s.ranks[r].values.InsertOrAssign(fqn, ShardedTensor{shape, properties, std::move(per_rank[r])});
  }
}

void GenerateValue(FuzzedData& in, SaveScenario& s, const std::string& fqn) {
  const int64_t world = static_cast<int64_t>(s.ranks.size());
  const int kind = in.ConsumeInRange(0, 5);
  if (kind == 4) {
    std::optional<int64_t> nbytes;
    if (in.ConsumeBool()) nbytes = in.ConsumeInRange<int64_t>(0, 1 << 20);
    Give(s, ConsumeHolders(in, world), fqn, OpaqueValue{nbytes});
    return;
  }
  Shape shape(in.ConsumeInRange(0, 3));
  for (int64_t& n : shape) n = ConsumeDim(in, &s.huge);
  const TensorProperties properties{in.PickOne(kDTypes)};
  switch (kind) {
    case 0:
      return Give(s, ConsumeHolders(in, world), fqn, WholeTensor{shape, properties});
    case 1:
      return GiveBoxes(in, s, fqn, shape, properties, FsdpPartition(shape, world), true);
    case 2:
      return GiveBoxes(in, s, fqn, shape, properties, GridPartition(in, shape), false);
    case 3:
      return GiveBoxes(in, s, fqn, shape, properties, GuillotinePartition(in, shape), false);
    default:
      s.faults.push_back(absl::StrCat("'", fqn, "' is saved as random boxes"));
      return GiveBoxes(in, s, fqn, shape, properties, GenerateRandomBoxes(in, shape), false);
  }
}

// ---- Faults ---------------------------------------------------------------------

struct Target {
  int64_t rank;
  std::string fqn;
  ValueDescription* value;
};

std::optional<Target> PickValue(FuzzedData& in, SaveScenario& s) {
  const int64_t r = in.ConsumeIndex(s.ranks.size());
  auto& values = s.ranks[r].values;
  if (values.empty()) return std::nullopt;
  auto& entry = values.at_position(in.ConsumeIndex(values.size()));
  return Target{r, entry.first, &entry.second};
}

ChunkBox* PickChunk(FuzzedData& in, const Target& target) {
  auto* sharded = std::get_if<ShardedTensor>(target.value);
  if (sharded == nullptr || sharded->local_chunks.empty()) return nullptr;
  return &sharded->local_chunks[in.ConsumeIndex(sharded->local_chunks.size())];
}

// Applies one fault; returns what it did, or nullopt if it found nothing to
// break.
std::optional<std::string> ApplyFault(FuzzedData& in, SaveScenario& s) {
  const int fault = in.ConsumeInRange(0, 9);
  if (fault == 9) {
    s.ranks[in.ConsumeIndex(s.ranks.size())].mapping.reset();
    return std::string("a rank has no flatten mapping");
  }
  std::optional<Target> target = PickValue(in, s);
  if (!target) return std::nullopt;
  const std::string where = absl::StrCat("rank ", target->rank, " '", target->fqn, "': ");
  if (fault == 7) {
    if (std::holds_alternative<OpaqueValue>(*target->value)) {
      *target->value = WholeTensor{{2}, TensorProperties{}};
    } else {
      *target->value = OpaqueValue{};
    }
    return where + "type changed";
  }
  if (fault == 8) {
    if (auto* whole = std::get_if<WholeTensor>(target->value)) {
      whole->properties.dtype = in.PickOne(kDTypes);
    } else if (auto* sharded = std::get_if<ShardedTensor>(target->value)) {
      sharded->properties.dtype = in.PickOne(kDTypes);
      if (in.ConsumeBool()) sharded->global_shape.push_back(in.ConsumeInRange<int64_t>(-1, 3));
    } else {
      return std::nullopt;
    }
    return where + "dtype or global shape changed";
  }
  ChunkBox* chunk = PickChunk(in, *target);
  if (chunk == nullptr) return std::nullopt;
  auto& chunks = std::get<ShardedTensor>(*target->value).local_chunks;
  const size_t d = in.ConsumeIndex(chunk->rank());
  const bool has_dims = chunk->rank() > 0 && chunk->offsets.size() == chunk->rank();
  switch (fault) {
    case 0:
      if (!has_dims) return std::nullopt;
      chunk->offsets[d] = AddSaturated(chunk->offsets[d], in.ConsumeInRange<int64_t>(-3, 3));
      return where + "chunk shifted";
    case 1:
      if (!has_dims) return std::nullopt;
      chunk->sizes[d] = AddSaturated(chunk->sizes[d], in.ConsumeInRange<int64_t>(-3, 3));
      return where + "chunk resized";
    case 2:
      chunks.erase(chunks.begin() + (chunk - chunks.data()));
      return where + "chunk dropped";
    case 3:
      chunks.push_back(*chunk);
      return where + "chunk listed twice";
    case 4:
      if (!has_dims) return std::nullopt;
      (in.ConsumeBool() ? chunk->offsets[d] : chunk->sizes[d]) = in.PickOne(kExtremes);
      return where + "extreme chunk value";
    case 5:
      chunk->offsets.push_back(0);
      chunk->sizes.push_back(1);
      return where + "chunk has an extra dim";
    default: {
      ChunkBox copy = *chunk;
      if (has_dims) copy.sizes[d] = AddSaturated(copy.sizes[d], copy.sizes[d] == kInt64Max ? -1 : 1);
      const int64_t other = in.ConsumeIndex(s.ranks.size());
      ShardedTensor conflicting = std::get<ShardedTensor>(*target->value);
      conflicting.local_chunks = {copy};
      s.ranks[other].values.InsertOrAssign(target->fqn, conflicting);
      return absl::StrCat(where, "rank ", other, " holds a chunk with the same offsets, another size");
    }
  }
}

void AddMappings(FuzzedData& in, SaveScenario& s) {
  if (!s.flatten_state_dict && !in.ConsumeChance(32)) return;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    FlattenMapping mapping;
    const bool rank_specific = in.ConsumeChance(16);
    for (const auto& [fqn, value] : s.ranks[r].values) {
      ObjectPath path = PathOf(fqn);
      // Ranks disagreeing on a path: the lowest rank's path wins the merge.
      if (rank_specific) path.emplace_back(static_cast<int64_t>(r));
      mapping.InsertOrAssign(fqn, std::move(path));
    }
    s.ranks[r].mapping = std::move(mapping);
  }
}

// Ranks need not list their values in the same order.
void RotateOrders(FuzzedData& in, SaveScenario& s) {
  for (StateDictDescription& rank : s.ranks) {
    if (rank.values.size() < 2 || !in.ConsumeChance(24)) continue;
    const size_t shift = in.ConsumeIndex(rank.values.size());
    OrderedMap<std::string, ValueDescription> rotated;
    for (size_t i = 0; i < rank.values.size(); ++i) {
      const auto& [fqn, value] = rank.values.at_position((i + shift) % rank.values.size());
      rotated.InsertOrAssign(fqn, value);
    }
    rank.values = std::move(rotated);
  }
}

}  // namespace

std::vector<ChunkBox> GeneratePartition(FuzzedData& in, const Shape& shape, int64_t world) {
  switch (in.ConsumeInRange(0, 2)) {
    case 0:
      return FsdpPartition(shape, world);
    case 1:
      return GridPartition(in, shape);
    default:
      return GuillotinePartition(in, shape);
  }
}

std::vector<ChunkBox> GenerateRandomBoxes(FuzzedData& in, const Shape& shape) {
  std::vector<ChunkBox> boxes(in.ConsumeInRange(1, 10));
  for (ChunkBox& box : boxes) {
    for (int64_t n : shape) {
      const int64_t limit = std::min<int64_t>(std::max<int64_t>(n, 0), 1 << 20);
      box.offsets.push_back(in.ConsumeInRange<int64_t>(-2, limit + 1));
      box.sizes.push_back(in.ConsumeInRange<int64_t>(0, limit + 1));
    }
    if (in.ConsumeChance(8) && !shape.empty()) {
      const size_t d = in.ConsumeIndex(shape.size());
      (in.ConsumeBool() ? box.offsets[d] : box.sizes[d]) = in.PickOne(kExtremes);
    }
    if (in.ConsumeChance(4)) {
      box.offsets.push_back(0);
      box.sizes.push_back(1);
    }
  }
  return boxes;
}

SaveScenario GenerateSaveScenario(FuzzedData& in) {
  SaveScenario s;
  s.ranks.resize(in.ConsumeInRange(1, 8));
  s.flatten_state_dict = in.ConsumeChance(224);
  s.rewrite_index_hints = in.ConsumeChance(224);
  const int values = in.ConsumeInRange(0, 6);
  for (int v = 0; v < values; ++v) GenerateValue(in, s, absl::StrCat(in.PickOne(kBaseNames), "_", v));
  AddMappings(in, s);
  RotateOrders(in, s);
  const int faults = in.ConsumeChance(40) ? in.ConsumeInRange(1, 3) : 0;
  for (int f = 0; f < faults; ++f) {
    if (std::optional<std::string> fault = ApplyFault(in, s)) s.faults.push_back(*std::move(fault));
  }
  return s;
}

// ---- Load -------------------------------------------------------------------------

namespace {

bool AllNonNegative(const Shape& shape) {
  return std::all_of(shape.begin(), shape.end(), [](int64_t n) { return n >= 0; });
}

// A request that does not match the checkpoint; returns false if it made
// none.
bool AddMismatchedRequest(FuzzedData& in, LoadScenario& ls, const std::string& fqn,
                          const TensorStorageMetadata& tensor) {
  StateDictDescription& rank = ls.ranks[in.ConsumeIndex(ls.ranks.size())];
  switch (in.ConsumeInRange(0, 2)) {
    case 0: {
      Shape size = tensor.size;
      if (size.empty() || size[0] == kInt64Max) {
        size.push_back(1);
      } else {
        size[0] += 1;
      }
      rank.values.InsertOrAssign(fqn, WholeTensor{size, tensor.properties});
      return true;
    }
    case 1: {
      if (tensor.size.empty()) return false;
      ChunkBox outside{Shape(tensor.size.size(), 0), Shape(tensor.size.size(), 1)};
      outside.offsets[0] = tensor.size[0];
      rank.values.InsertOrAssign(fqn, ShardedTensor{tensor.size, tensor.properties, {outside}});
      return true;
    }
    default:
      rank.values.InsertOrAssign(fqn, OpaqueValue{});
      return true;
  }
}

void RequestTensor(FuzzedData& in, LoadScenario& ls, const std::string& fqn, const TensorStorageMetadata& tensor) {
  const int64_t world = static_cast<int64_t>(ls.ranks.size());
  if (in.ConsumeChance(24) && AddMismatchedRequest(in, ls, fqn, tensor)) {
    ls.mismatched_requests = true;
    return;
  }
  if (!AllNonNegative(tensor.size) || in.ConsumeChance(48)) {
    for (StateDictDescription& rank : ls.ranks) {
      rank.values.InsertOrAssign(fqn, WholeTensor{tensor.size, tensor.properties});
    }
    return;
  }
  std::vector<std::vector<ChunkBox>> per_rank(world);
  for (ChunkBox& box : GeneratePartition(in, tensor.size, world)) {
    per_rank[in.ConsumeIndex(world)].push_back(std::move(box));
  }
  for (int64_t r = 0; r < world; ++r) {
    if (per_rank[r].empty() && in.ConsumeBool()) continue;
    ls.ranks[r].values.InsertOrAssign(fqn, ShardedTensor{tensor.size, tensor.properties, std::move(per_rank[r])});
  }
}

}  // namespace

LoadScenario GenerateLoadScenario(FuzzedData& in, const Metadata& metadata) {
  LoadScenario ls;
  ls.ranks.resize(in.ConsumeInRange(1, 4));
  ls.strict = in.ConsumeChance(200);
  for (const auto& [fqn, entry] : metadata.state_dict_metadata) {
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&entry)) {
      RequestTensor(in, ls, fqn, *tensor);
      continue;
    }
    for (StateDictDescription& rank : ls.ranks) {
      if (in.ConsumeChance(160)) rank.values.InsertOrAssign(fqn, OpaqueValue{});
    }
  }
  if (in.ConsumeChance(20)) {
    ls.ranks[0].values.InsertOrAssign("no.such.key", OpaqueValue{});
    ls.mismatched_requests = true;
  }
  if (in.ConsumeChance(32)) ls.ranks[in.ConsumeIndex(ls.ranks.size())] = DescribeCheckpoint(metadata, std::nullopt);
  if (in.ConsumeChance(64)) {
    for (StateDictDescription& rank : ls.ranks) {
      rank.mapping.emplace();
      for (const auto& [fqn, value] : rank.values) rank.mapping->InsertOrAssign(fqn, PathOf(fqn));
    }
  }
  return ls;
}

}  // namespace dcplan::fuzzing
