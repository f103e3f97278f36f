#ifndef DCPLAN_PROPERTY_TESTS_GENERATORS_H_
#define DCPLAN_PROPERTY_TESTS_GENERATORS_H_

// RapidCheck generators for dcplan's property tests (and, later, fuzzers):
// shapes, exact partitions of a shape, injected partition faults, multi-rank
// save scenarios, arbitrary plans and metadata for the codec, and nested
// state dicts for flattening.
//
// Every generator is built from RapidCheck combinators (gen::exec and the
// primitive generators), so counterexamples shrink, and every generated type
// prints readably (operator<< here, or the engine's own printers).
//
// Sizes: shapes have 0..5 dims (0-d tensors and zero-length dims included);
// scenarios have 1..4096 ranks and a bounded total number of items, so that a
// property's default 100 cases run in seconds.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include <rapidcheck.h>

#include "absl/status/statusor.h"
#include "engine/box.h"
#include "engine/description.h"
#include "engine/dtype.h"
#include "engine/flatten.h"
#include "engine/metadata.h"
#include "engine/object_path.h"
#include "engine/plan.h"
#include "engine/problem.h"

namespace dcplan {

// RapidCheck prints values through showValue (found by ADL) or operator<<; the
// engine types below have neither.
void showValue(const StateDictDescription& description, std::ostream& os);
void showValue(ProblemKind kind, std::ostream& os);
void showValue(KeyFormat format, std::ostream& os);

namespace proptest {

// ---- Shapes and dtypes ----------------------------------------------------------

rc::Gen<DType> GenDType();

// A dtype and default values for the other (unused by planning) properties.
rc::Gen<TensorProperties> GenPlanningProperties();

// Every field random (for the codec).
rc::Gen<TensorProperties> GenAnyProperties();

struct ShapeLimits {
  int min_dims = 0;
  int max_dims = 5;
  // Bound on the product of the non-zero dims.
  int64_t max_volume = int64_t{1} << 36;
  int64_t max_dim = int64_t{1} << 20;
};

// Dims are mostly small (0..8), sometimes up to max_dim; zero-length dims are
// frequent.
rc::Gen<Shape> GenShape(const ShapeLimits& limits);

// ---- Exact partitions -----------------------------------------------------------

enum class PartitionKind : uint8_t {
  kWhole,       // one chunk covering the tensor
  kFsdp,        // dim 0 split in n parts (torch.chunk-like or uneven; empty shards)
  kGrid,        // 1-3 dims split independently (TP x FSDP block grids)
  kGuillotine,  // recursive random cuts of random pieces
};

absl::string_view PartitionKindName(PartitionKind kind);

// Chunks that tile `shape` exactly: every element in exactly one chunk, every
// chunk in bounds (zero-volume chunks included). A 0-d shape has the single
// chunk with empty offsets and sizes.
struct Partition {
  PartitionKind kind = PartitionKind::kWhole;
  Shape shape;
  std::vector<ChunkBox> chunks;
};
std::ostream& operator<<(std::ostream& os, const Partition& partition);

Partition WholePartition(const Shape& shape);
// Exactly `parts` chunks along dim 0 (1 chunk for a 0-d shape), chunk i the
// i-th slice.
rc::Gen<Partition> GenFsdpPartition(const Shape& shape, int parts);
// At most `max_parts` chunks.
rc::Gen<Partition> GenGridPartition(const Shape& shape, int max_parts);
rc::Gen<Partition> GenGuillotinePartition(const Shape& shape, int max_parts);
// Any of the kinds above, at most `max_parts` chunks.
rc::Gen<Partition> GenPartition(const Shape& shape, int max_parts);

// A shape and a partition of it.
rc::Gen<Partition> GenShapeAndPartition(const ShapeLimits& limits, int max_parts);

// Removes zero-volume chunks whose offsets equal another chunk's (the
// partition stays exact): afterwards no two chunks share offsets, so no two
// write items of the tensor share a MetadataIndex.
Partition WithDistinctOffsets(Partition partition);

// ---- Fault injection ------------------------------------------------------------

enum class FaultKind : uint8_t {
  kGrow,              // a chunk grows into its neighbour(s)
  kShiftOutOfBounds,  // a chunk moves (partly) outside the tensor
  kDrop,              // a chunk of positive volume disappears
  kDuplicate,         // a chunk of positive volume appears twice
  kNearInt64Max,      // a chunk's offset becomes INT64_MAX - k
};

absl::string_view FaultKindName(FaultKind kind);

// A partition with one fault and the problem validation must report for it.
struct InjectedFault {
  FaultKind fault = FaultKind::kDrop;
  Shape shape;
  std::vector<ChunkBox> chunks;
  ProblemKind expected_kind = ProblemKind::kVolume;
  // kOutOfBounds: {i}; kOverlap after kDuplicate: the exact pair {i, j};
  // kOverlap after kGrow: {c}, the grown chunk, one of the pair; kVolume: {}.
  std::vector<int64_t> expected_chunks;
  bool chunks_exact = true;
  // kVolume after kDrop: the tensor's volume and the remaining chunks' sum.
  int64_t expected_volume = 0;
  int64_t actual_volume = 0;
};
std::ostream& operator<<(std::ostream& os, const InjectedFault& fault);

// One fault in `partition` (whose shape must have at least one dim and which
// must have at least one chunk).
rc::Gen<InjectedFault> GenFault(const Partition& partition);

// ---- Save scenarios ---------------------------------------------------------------

// Ranks holding a replicated value, described compactly.
struct HolderSet {
  enum class Kind : uint8_t { kAll, kRange, kStride, kList };
  Kind kind = Kind::kAll;
  int32_t first = 0;   // kRange: [first, first + count); kStride: first rank
  int32_t count = 0;   // kRange, kStride: number of ranks
  int32_t step = 1;    // kStride
  std::vector<int32_t> list;  // kList: distinct ranks
};
std::ostream& operator<<(std::ostream& os, const HolderSet& holders);

// The ranks of `holders`, ascending and distinct, all < num_ranks.
std::vector<int32_t> ExpandHolders(const HolderSet& holders, int32_t num_ranks);

enum class Assignment : uint8_t {
  kOnePerRank,  // chunk i -> rank i (FSDP)
  kRoundRobin,  // chunk i -> rank (first + i) mod P
  kRandom,      // chunk i -> a random rank
  kGroups,      // HSDP: chunk i -> ranks i, i + G, i + 2G, ... (replicated shards)
};

// One rank describing a tensor differently from the other holders: for a
// replicated tensor, another shape and/or dtype (a dedup conflict); for a
// sharded tensor, another global size (same number of dims, so local planning
// accepts it) and/or dtype, with the same local chunks (a plan error).
struct Disagreement {
  int32_t rank = 0;
  Shape shape;
  DType dtype = DType::kFloat32;
};
std::ostream& operator<<(std::ostream& os, const Disagreement& d);

struct ShardedEntry {
  std::string fqn;
  TensorProperties properties;
  Partition partition;
  Assignment assignment = Assignment::kOnePerRank;
  // chunk_holders[i]: ranks holding chunk i, ascending (may be empty: a chunk
  // of a partition nobody saves is possible only with kOnePerRank when the
  // partition has more chunks than ranks, which the generator avoids).
  std::vector<std::vector<int32_t>> chunk_holders;
  // ScenarioLimits::allow_shard_disagreement: holders of some chunk that
  // describe the tensor with another global size or dtype.
  std::vector<Disagreement> disagreements;
};

struct ReplicatedEntry {
  std::string fqn;
  TensorProperties properties;
  Shape shape;
  HolderSet holder_set;
  std::vector<int32_t> holders;
  // Holders that describe the tensor with another shape or dtype (a
  // conflict); the shape either grows by one element in a dim or by a large
  // factor, and the dtype's element size differs, so that the greedy's
  // weights (the key's last appearance) change its choices.
  std::vector<Disagreement> conflicts;
};

struct BytesEntry {
  std::string fqn;
  std::optional<int64_t> nbytes;
  HolderSet holder_set;
  std::vector<int32_t> holders;
};

using ScenarioEntry = std::variant<ShardedEntry, ReplicatedEntry, BytesEntry>;

struct Scenario {
  int32_t num_ranks = 1;
  std::vector<ScenarioEntry> entries;
  // Odd ranks list their values in reverse entry order.
  bool reverse_odd_ranks = false;
  // Flatten mappings (Descriptions with_mapping) end every path with the
  // rank, so that merging them shows which rank's path wins.
  bool rank_tagged_paths = false;
};
std::ostream& operator<<(std::ostream& os, const Scenario& scenario);

struct ScenarioLimits {
  int32_t min_ranks = 1;
  int32_t max_ranks = 4096;
  // Bound on the total number of write items over all ranks: each of the
  // 0..max_entries entries gets max_items / max_entries.
  int64_t max_items = 20000;
  int max_entries = 5;
  bool allow_sharded = true;
  bool allow_replicated = true;
  bool allow_bytes = true;
  // Replicated tensors and bytes are held by every rank (DDP); shards by one
  // rank each.
  bool replicated_on_all_ranks = false;
  // Sharded partitions pass through WithDistinctOffsets.
  bool distinct_offsets = false;
  // Some holders of a replicated tensor describe another shape or dtype.
  bool allow_conflicts = false;
  // Some holders of a sharded tensor describe another global size or dtype.
  bool allow_shard_disagreement = false;
  // Scenario::rank_tagged_paths is sometimes set.
  bool allow_rank_tagged_paths = false;
  // Bound on every tensor's volume (the reshard tests copy elements).
  ShapeLimits shape_limits;
};

// 1..4096 ranks, mostly small, log-uniform.
rc::Gen<int32_t> GenRankCount(int32_t min_ranks, int32_t max_ranks);

rc::Gen<Scenario> GenScenario(const ScenarioLimits& limits);

// What each rank holds (index = rank); with `with_mapping`, a flatten mapping
// (fqn split at dots) of the keys it lists, else none (cheaper: the planners
// copy mappings with every plan).
std::vector<StateDictDescription> Descriptions(const Scenario& scenario, bool with_mapping = true);

// CreateLocalSavePlan of every rank's description.
absl::StatusOr<std::vector<SavePlan>> LocalSavePlans(const Scenario& scenario, bool with_mapping = true);

// ---- Arbitrary values (codec) -----------------------------------------------------
// Any field value the types allow (extreme integers, strings around the
// interning limit, absent and empty offsets, mismatched ranks); counts grow
// with the test size, so rc::gen::resize bounds the encoded size.

rc::Gen<std::string> GenCodecString();
rc::Gen<int64_t> GenAnyInt64();
rc::Gen<Shape> GenAnyShape();
rc::Gen<MetadataIndex> GenAnyMetadataIndex();
rc::Gen<FlattenMapping> GenAnyFlattenMapping();
rc::Gen<WriteItem> GenAnyWriteItem();
rc::Gen<SavePlan> GenAnySavePlan();
rc::Gen<ReadItem> GenAnyReadItem();
rc::Gen<LoadPlan> GenAnyLoadPlan();
rc::Gen<Metadata> GenAnyMetadata();

// ---- Nested state dicts (flatten) ---------------------------------------------------

// A state-dict leaf: a tensor or another Python object, with an id so that
// leaves can be told apart.
struct TestLeaf {
  bool tensor = false;
  int64_t id = 0;
  friend bool operator==(const TestLeaf& a, const TestLeaf& b) { return a.tensor == b.tensor && a.id == b.id; }
  friend bool operator!=(const TestLeaf& a, const TestLeaf& b) { return !(a == b); }
};
using TestTree = Nested<TestLeaf>;

bool IsTensorLeaf(const TestLeaf& leaf);

struct TreeLimits {
  int max_depth = 5;
  int max_width = 4;
  // Mappings never empty (the current traversal drops empty mappings).
  bool allow_empty_mappings = false;
  // Keys may contain '.' and digits, and one mapping may repeat a key.
  bool allow_colliding_keys = false;
};

// A root mapping of random nesting.
rc::Gen<TestTree> GenTree(const TreeLimits& limits);

// Python-like text: {'a': [T1, 2, None]}.
std::string TreeToString(const TestTree& tree);

}  // namespace proptest

// ADL finds these for Nested<proptest::TestLeaf> (a dcplan template).
void showValue(const proptest::TestTree& tree, std::ostream& os);

}  // namespace dcplan

#endif  // DCPLAN_PROPERTY_TESTS_GENERATORS_H_
