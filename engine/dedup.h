#ifndef DCPLAN_ENGINE_DEDUP_H_
#define DCPLAN_ENGINE_DEDUP_H_

// Deduplication of replicated write items: an item (identified by fqn and
// offsets, MetadataIndex equality) held by several ranks is written by exactly
// one of them. Plans keep their other items, in their original order, with
// storage_data, planner_data and usable unchanged.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/plan.h"
#include "engine/problem.h"

namespace dcplan {

enum class DedupPolicy : uint8_t {
  // PyTorch's greedy (dedup_save_plans, spec/plan-json.md `options.dedup`):
  // keys in first-seen order (rank 0's items first, each plan in item order);
  // each goes to the holder with the smallest running total, ties to the
  // lowest rank (PyTorch: CPython set order, an intended difference); that
  // total grows by tensor_storage_size() (global size x element size, also
  // for shards) of the key's LAST appearance, or 1 for bytes items and
  // zero-byte tensors. Single-holder items count too.
  kPyTorch,
  // dedup_save_to_lowest_rank: every key to its lowest holder.
  kLowestRank,
  // dcplan's balancer: minimises the largest per-rank total of real bytes
  // (PlanBytes accounting). Largest replicated item first to the least-loaded
  // holder (ties: lowest rank), starting from the bytes of single-holder
  // items; the result is compared with kPyTorch's and the one with the smaller
  // maximum (ties: kPyTorch's) is returned. Never worse than kPyTorch.
  kBalanced,
};

absl::string_view DedupPolicyName(DedupPolicy policy);  // "pytorch", "lowest_rank", "balanced"

// Expected number of chunks by fqn.
using ChunkCounts = absl::flat_hash_map<std::string, int64_t>;

struct DedupResult {
  std::vector<SavePlan> plans;
  // kConflict problems: items sharing (fqn, offsets) that differ in type,
  // chunk sizes, dtype or global size. The key is still deduplicated (one item
  // survives, chosen by the policy), so the rest of the plan can be checked.
  std::vector<PlanProblem> conflicts;
  // For each fqn with many keys (16 or more distinct offsets), its number of
  // keys: the chunks the global plan lists for it when it is sharded. A
  // sizing hint for CreateDefaultGlobalSavePlan, which would otherwise grow
  // each sharded tensor's chunk list a rank at a time; it changes no result.
  ChunkCounts chunks_per_fqn;
};

// Deduplicates `plans` (one per rank, index = rank). A plan holding one key
// twice keeps both copies if it is chosen for that key and neither otherwise.
// Conflicts are listed in key first-seen order. Cost: one sequential pass
// over the items (fqn, offsets and, but for kLowestRank, global size), with
// O(items) string compares and at most one hash lookup per item to intern
// fqns (none for an fqn at the same place as in the previous plan); a check
// that each fqn's
// items come in offset order (on a compact copy of each item's first offset;
// items are read again only on ties; a stable sort of those that do not), plus, for
// kBalanced, a sort of the replicated keys. Error on arithmetic overflow of an item's size
// or of a rank's total, and for more than 2^31 - 1 plans or items. `plans` is
// taken by value and its items are moved into the result: pass
// std::move(plans) when the input is not needed afterwards (an lvalue is
// copied).
absl::StatusOr<DedupResult> DedupSavePlans(std::vector<SavePlan> plans, DedupPolicy policy);

// Bytes each plan writes (WriteItem::PayloadBytes summed): the "balance"
// accounting of spec/plan-json.md. Error on overflow.
absl::StatusOr<std::vector<int64_t>> PlanBytes(const std::vector<SavePlan>& plans);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_DEDUP_H_
