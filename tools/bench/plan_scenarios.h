#ifndef DCPLAN_TOOLS_BENCH_PLAN_SCENARIOS_H_
#define DCPLAN_TOOLS_BENCH_PLAN_SCENARIOS_H_

// Checkpoint scenarios for the planning benchmarks (issue #6): what every
// rank of an FSDP, 2-D TP x FSDP or DDP world holds on save, what the ranks
// of a resharded world request on load, and the balance of a deduplicated
// save.
//
// Rank layout of TP x FSDP: rank = fsdp_index * tp_degree + tp_index (the TP
// group is the inner mesh dimension, as in a ("dp", "tp") device mesh).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/box.h"
#include "engine/description.h"
#include "engine/dtype.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan {
namespace bench {

// How tensor parallelism splits a weight (Megatron style).
enum class TpStyle : uint8_t {
  kColumn,      // output features (dim 0) split over the TP group
  kRow,         // input features (dim 1) split over the TP group
  kReplicated,  // every TP rank holds the whole tensor (norms)
};

struct TensorSpec {
  std::string fqn;
  Shape size;
  TpStyle tp_style = TpStyle::kReplicated;
  DType dtype = DType::kBFloat16;
};

// Llama-7B's parameters, 1 + 32 * 9 + 2 = 291 bfloat16 tensors: embedding and
// lm_head column-parallel (vocab-parallel), q/k/v/gate/up column-parallel,
// o/down row-parallel, norms replicated.
std::vector<TensorSpec> Llama7B();

enum class Parallelism : uint8_t {
  // FSDP2: every tensor Shard(0) over all ranks (ShardDim: uneven where the
  // rows do not divide, trailing ranks empty where there are fewer rows than
  // ranks; empty pieces are replicated items that dedup collapses).
  kFsdp,
  // TP over groups of tp_degree ranks (by TpStyle), then FSDP along dim 0 of
  // the TP shard over the ranks / tp_degree groups (ShardDim both times):
  // 2-D chunks for row-parallel weights, norms replicated over TP and sharded
  // by FSDP.
  kTpFsdp,
  // Every tensor whole on every rank.
  kDdp,
};

struct Scenario {
  Parallelism parallelism = Parallelism::kFsdp;
  int64_t ranks = 1;
  int64_t tp_degree = 1;  // kTpFsdp only; must divide ranks
  std::vector<TensorSpec> model;
  // Adds what training state dicts carry besides the weights, on every rank:
  // three small whole tensors (rotary inv_freq, grad-scaler scale, EMA decay)
  // and two bytes values (step: 8 bytes, rng_state: 5056 bytes).
  bool with_extras = true;
};

// The benchmarks' worlds: `model` over `ranks` ranks, TP degree 8 for
// kTpFsdp (1 otherwise), with extras.
Scenario MakeScenario(Parallelism parallelism, int64_t ranks, std::vector<TensorSpec> model);

// The worlds the scaling benchmarks run, on Llama-7B: FSDP at 8, 64, 512,
// 4096 and 16384 ranks, TP8xFSDP at 64, 512 and 4096, DDP at 256.
std::vector<Scenario> ScalingScenarios();

// "FSDP", "TP8xFSDP64", "DDP".
std::string ScenarioName(const Scenario& scenario);

// Piece `index` of `parts` of `box` along `dim`, as DTensor's Shard(dim)
// cuts it (torch.chunk; spec/planner.md §3.1): a box of s rows gives s/parts
// rows per piece when parts divides s, else pieces of ceil(s/parts) rows from
// the start, the last ones shorter or empty. An empty piece gets the offset
// `global_rows` (the tensor's global size along `dim`), so that it never
// shares its key with a real piece (PR #150862); cutting an empty box gives
// empty pieces at that offset. Requires 0 <= index < parts.
ChunkBox ShardDim(const ChunkBox& box, size_t dim, int64_t index, int64_t parts, int64_t global_rows);

// What `rank` holds on save (also what it requests when loading into this
// world). Error if the scenario is malformed (see LocalSavePlans) or rank is
// outside [0, ranks).
absl::StatusOr<StateDictDescription> SaveDescription(const Scenario& scenario, int64_t rank);

// Every rank's local save plan (CreateLocalSavePlan), index = rank. Error if
// the scenario is malformed (no ranks, tp_degree not dividing ranks, a 0-d
// model tensor outside DDP, a row-parallel tensor of fewer than 2 dims, a
// description the planner refuses).
absl::StatusOr<std::vector<SavePlan>> LocalSavePlans(const Scenario& scenario);

// The world a checkpoint of `saved` is loaded into: FSDP over half the ranks
// (at least one), the same model and extras. FSDP -> FSDP reshards rows,
// TP x FSDP -> FSDP gathers 2-D chunks into row shards, DDP -> FSDP reads a
// slice of each whole tensor.
Scenario ReshardTarget(const Scenario& saved);

// Keys (fqn, offsets) that more than one plan holds: the items dedup has to
// place.
absl::flat_hash_set<MetadataIndex> ReplicatedKeys(const std::vector<SavePlan>& plans);

// `plans` restricted to the items whose key is in `keys` (order kept).
std::vector<SavePlan> RestrictToKeys(const std::vector<SavePlan>& plans,
                                     const absl::flat_hash_set<MetadataIndex>& keys);

struct Balance {
  int64_t total_bytes = 0;     // bytes written by all ranks (PlanBytes)
  int64_t max_rank_bytes = 0;  // the largest per-rank total
  int64_t largest_item = 0;    // the largest single item (cannot be split)
  int64_t ranks = 0;
  // ceil(total_bytes / ranks): no assignment can do better.
  int64_t LowerBound() const;
  // max_rank_bytes / LowerBound() (1 for an empty plan).
  double Ratio() const;
  // max_rank_bytes / max(LowerBound(), largest_item): 1 is optimal.
  double TightRatio() const;
};

// The balance of deduplicated plans. Error on overflow.
absl::StatusOr<Balance> ComputeBalance(const std::vector<SavePlan>& deduped);

}  // namespace bench
}  // namespace dcplan

#endif  // DCPLAN_TOOLS_BENCH_PLAN_SCENARIOS_H_
