// Properties of deduplication (engine/dedup.h) on multi-rank save scenarios.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/dedup.h"
#include "engine/plan.h"
#include "property_tests/generators.h"
#include "property_tests/oracles.h"

namespace dcplan {
namespace proptest {
namespace {

// Every item key (MetadataIndex equality: fqn and offsets) of the input
// plans, in first-seen order (rank order, then item order).
struct KeyModel {
  absl::flat_hash_map<MetadataIndex, size_t> id;
  std::vector<MetadataIndex> keys;
  std::vector<std::vector<int32_t>> holders;  // ascending, distinct
  std::vector<const WriteItem*> first_item;
  std::vector<const WriteItem*> last_item;
  std::vector<int32_t> first_rank;
};

KeyModel BuildKeyModel(const std::vector<SavePlan>& plans) {
  KeyModel m;
  for (int32_t r = 0; r < static_cast<int32_t>(plans.size()); ++r) {
    for (const WriteItem& item : plans[r].items) {
      auto [it, inserted] = m.id.try_emplace(item.index, m.keys.size());
      if (inserted) {
        m.keys.push_back(item.index);
        m.holders.emplace_back();
        m.first_item.push_back(&item);
        m.last_item.push_back(&item);
        m.first_rank.push_back(r);
      }
      const size_t k = it->second;
      if (m.holders[k].empty() || m.holders[k].back() != r) m.holders[k].push_back(r);
      m.last_item[k] = &item;
    }
  }
  return m;
}

// The plans that keep, on each rank, exactly the items whose key was chosen
// for that rank (in their original order, plan fields unchanged).
std::vector<SavePlan> ApplyChoice(const std::vector<SavePlan>& plans, const KeyModel& m,
                                  const std::vector<int32_t>& chosen) {
  std::vector<SavePlan> out;
  for (int32_t r = 0; r < static_cast<int32_t>(plans.size()); ++r) {
    SavePlan plan = plans[r];
    plan.items.clear();
    for (const WriteItem& item : plans[r].items) {
      if (chosen[m.id.at(item.index)] == r) plan.items.push_back(item);
    }
    out.push_back(std::move(plan));
  }
  return out;
}

// The rank each key survives on in `result`, checking on the way that it
// survives on exactly one rank, one that held it.
std::vector<int32_t> SurvivingRanks(const std::vector<SavePlan>& result, const KeyModel& m) {
  std::vector<int32_t> chosen(m.keys.size(), -1);
  for (int32_t r = 0; r < static_cast<int32_t>(result.size()); ++r) {
    for (const WriteItem& item : result[r].items) {
      auto it = m.id.find(item.index);
      RC_ASSERT(it != m.id.end());
      const size_t k = it->second;
      RC_ASSERT(chosen[k] == -1 || chosen[k] == r);
      chosen[k] = r;
    }
  }
  for (size_t k = 0; k < m.keys.size(); ++k) {
    RC_ASSERT(chosen[k] != -1);
    RC_ASSERT(std::binary_search(m.holders[k].begin(), m.holders[k].end(), chosen[k]));
  }
  return chosen;
}

// The first holder with the smallest load: ties go to the lowest rank.
int32_t LeastLoaded(const std::vector<int32_t>& holders, const std::vector<int64_t>& load) {
  int32_t best = holders.front();
  for (int32_t r : holders) {
    if (load[r] < load[best]) best = r;
  }
  return best;
}

// plan-json.md's greedy, written out plainly: keys in first-seen order, each
// to the holder with the smallest running total (ties: lowest rank), which
// grows by the last appearance's tensor_storage_size() (global size x element
// size), or 1 for bytes items and zero-byte tensors.
// The PyTorch greedy with each key weighed by the copy `weigh_by` names
// (spec: the last appearance; the first is only for showing that it matters).
std::vector<int32_t> PyTorchChoiceWeighing(const KeyModel& m, size_t num_ranks,
                                           const std::vector<const WriteItem*>& weigh_by) {
  std::vector<int64_t> load(num_ranks, 0);
  std::vector<int32_t> chosen(m.keys.size());
  for (size_t k = 0; k < m.keys.size(); ++k) {
    const int64_t bytes = StorageBytesReference(*weigh_by[k]).value_or(0);
    chosen[k] = LeastLoaded(m.holders[k], load);
    load[chosen[k]] += bytes == 0 ? 1 : bytes;
  }
  return chosen;
}

std::vector<int32_t> PyTorchChoice(const KeyModel& m, size_t num_ranks) {
  return PyTorchChoiceWeighing(m, num_ranks, m.last_item);
}

// Bytes each rank writes when every rank keeps the items chosen for it.
std::vector<int64_t> RankBytes(const std::vector<SavePlan>& plans) {
  std::vector<int64_t> bytes;
  for (const SavePlan& plan : plans) {
    int64_t total = 0;
    for (const WriteItem& item : plan.items) total += PayloadBytesReference(item);
    bytes.push_back(total);
  }
  return bytes;
}

// dedup.h's kBalanced, written out plainly: every rank starts with the bytes
// of the items only it holds; replicated keys, largest first (real bytes of
// the last appearance; equal sizes in first-seen order), each go to the
// least-loaded holder (ties: lowest rank). The result replaces PyTorch's
// greedy only if its largest per-rank total is strictly smaller.
std::vector<int32_t> BalancedChoice(const std::vector<SavePlan>& plans, const KeyModel& m) {
  std::vector<int64_t> load(plans.size(), 0);
  std::vector<int32_t> chosen(m.keys.size(), -1);
  for (int32_t r = 0; r < static_cast<int32_t>(plans.size()); ++r) {
    for (const WriteItem& item : plans[r].items) {
      const size_t k = m.id.at(item.index);
      if (m.holders[k].size() != 1) continue;
      chosen[k] = r;
      load[r] += PayloadBytesReference(item);
    }
  }
  std::vector<size_t> replicated;
  for (size_t k = 0; k < m.keys.size(); ++k) {
    if (m.holders[k].size() > 1) replicated.push_back(k);
  }
  // Insertion sort: a key moves before earlier keys only if strictly larger.
  for (size_t i = 1; i < replicated.size(); ++i) {
    for (size_t j = i; j > 0; --j) {
      const int64_t here = PayloadBytesReference(*m.last_item[replicated[j]]);
      const int64_t before = PayloadBytesReference(*m.last_item[replicated[j - 1]]);
      if (here <= before) break;
      std::swap(replicated[j], replicated[j - 1]);
    }
  }
  for (size_t k : replicated) {
    chosen[k] = LeastLoaded(m.holders[k], load);
    load[chosen[k]] += PayloadBytesReference(*m.last_item[k]);
  }
  const std::vector<int32_t> pytorch = PyTorchChoice(m, plans.size());
  const std::vector<int64_t> balanced_bytes = RankBytes(ApplyChoice(plans, m, chosen));
  const std::vector<int64_t> pytorch_bytes = RankBytes(ApplyChoice(plans, m, pytorch));
  const int64_t balanced_max = *std::max_element(balanced_bytes.begin(), balanced_bytes.end());
  const int64_t pytorch_max = *std::max_element(pytorch_bytes.begin(), pytorch_bytes.end());
  RC_CLASSIFY(balanced_max < pytorch_max, "balancer's own result");
  RC_CLASSIFY(balanced_max == pytorch_max && chosen != pytorch, "tie between different choices");
  return balanced_max < pytorch_max ? chosen : pytorch;
}

bool SameData(const WriteItem& a, const WriteItem& b) {
  if (a.type != b.type || a.tensor_data.has_value() != b.tensor_data.has_value()) return false;
  if (!a.tensor_data) return true;
  return a.tensor_data->chunk.sizes == b.tensor_data->chunk.sizes &&
         a.tensor_data->properties.dtype == b.tensor_data->properties.dtype &&
         a.tensor_data->size == b.tensor_data->size;
}

int64_t MaxOf(const std::vector<int64_t>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

DedupResult Dedup(const std::vector<SavePlan>& plans, DedupPolicy policy) {
  absl::StatusOr<DedupResult> result = DedupSavePlans(plans, policy);
  RC_ASSERT(result.ok());
  return *std::move(result);
}

std::vector<SavePlan> Plans(const Scenario& scenario) {
  absl::StatusOr<std::vector<SavePlan>> plans = LocalSavePlans(scenario, /*with_mapping=*/false);
  RC_ASSERT(plans.ok());
  return *std::move(plans);
}

ScenarioLimits GeneralLimits() {
  ScenarioLimits limits;
  limits.allow_conflicts = true;
  limits.allow_shard_disagreement = true;
  return limits;
}

// Whether the copies of some key weigh differently for the PyTorch greedy
// (first and last appearance), so that using the wrong one can matter.
bool FirstAndLastWeighDifferently(const KeyModel& m) {
  for (size_t k = 0; k < m.keys.size(); ++k) {
    if (StorageBytesReference(*m.first_item[k]) != StorageBytesReference(*m.last_item[k])) return true;
  }
  return false;
}

void Classify(const Scenario& s) {
  RC_CLASSIFY(s.num_ranks == 1, "1 rank");
  RC_CLASSIFY(s.num_ranks > 1 && s.num_ranks <= 64, "2-64 ranks");
  RC_CLASSIFY(s.num_ranks > 64 && s.num_ranks <= 1024, "65-1024 ranks");
  RC_CLASSIFY(s.num_ranks > 1024, ">1024 ranks");
}

// For every policy: each key survives on exactly one of its holders, that
// holder keeps all its items of the key, nothing else is removed, order and
// plan fields are preserved; conflicts are exactly the keys whose copies
// differ, in first-seen order.
// Returns how many keys are conflicts.
size_t CheckEveryKeyKeptExactlyOnceInOrder(const std::vector<SavePlan>& plans) {
  const KeyModel m = BuildKeyModel(plans);
  std::vector<size_t> conflict_keys;
  for (int32_t r = 0; r < static_cast<int32_t>(plans.size()); ++r) {
    for (const WriteItem& item : plans[r].items) {
      const size_t k = m.id.at(item.index);
      if (!SameData(*m.first_item[k], item)) conflict_keys.push_back(k);
    }
  }
  // One conflict per key, in first-seen order.
  std::sort(conflict_keys.begin(), conflict_keys.end());
  conflict_keys.erase(std::unique(conflict_keys.begin(), conflict_keys.end()), conflict_keys.end());
  std::vector<std::pair<std::string, Shape>> expected_conflicts;
  for (size_t k : conflict_keys) expected_conflicts.push_back({m.keys[k].fqn, m.keys[k].offset.value_or(Shape{})});
  RC_CLASSIFY(!expected_conflicts.empty(), "conflicts");

  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    const DedupResult result = Dedup(plans, policy);
    RC_ASSERT(result.plans.size() == plans.size());
    const std::vector<int32_t> chosen = SurvivingRanks(result.plans, m);
    RC_ASSERT(result.plans == ApplyChoice(plans, m, chosen));
    std::vector<std::pair<std::string, Shape>> conflicts;
    for (const PlanProblem& p : result.conflicts) {
      RC_ASSERT(p.kind == ProblemKind::kConflict);
      conflicts.push_back({p.fqn, p.offsets});
    }
    RC_ASSERT(conflicts == expected_conflicts);
  }
  return expected_conflicts.size();
}

RC_GTEST_PROP(DedupProperty, EveryKeyKeptExactlyOnceInOrder, ()) {
  const Scenario scenario = *GenScenario(GeneralLimits());
  Classify(scenario);
  CheckEveryKeyKeptExactlyOnceInOrder(Plans(scenario));
}

// What the copies of a key disagree on, over all keys: "global size only"
// (shards held by several ranks, one of which describes another global size
// with the same chunk) is what only sharded tensors can show.
std::string CopyDisagreements(const std::vector<SavePlan>& plans) {
  const KeyModel m = BuildKeyModel(plans);
  bool size_only = false, other = false;
  for (const SavePlan& plan : plans) {
    for (const WriteItem& item : plan.items) {
      const WriteItem& first = *m.first_item[m.id.at(item.index)];
      if (SameData(first, item)) continue;
      const bool same_chunk_and_dtype = first.tensor_data && item.tensor_data &&
                                        first.tensor_data->chunk.sizes == item.tensor_data->chunk.sizes &&
                                        first.tensor_data->properties.dtype == item.tensor_data->properties.dtype;
      (same_chunk_and_dtype ? size_only : other) = true;
    }
  }
  return size_only ? "a key whose copies differ in global size only" : other ? "other conflicts" : "no conflict";
}

// Sharded tensors whose shards are held by several ranks (groups), one of
// which may describe the tensor with another global size or dtype: copies of
// a shard that differ in their global size alone are conflicts too. Only
// worlds with some conflict count (about half of them).
RC_GTEST_PROP(DedupProperty, ShardCopiesDifferingInGlobalSizeAreConflicts, ()) {
  ScenarioLimits limits;
  limits.min_ranks = 2;
  limits.max_ranks = 16;
  limits.allow_replicated = false;
  limits.allow_bytes = false;
  limits.allow_shard_disagreement = true;
  const Scenario scenario = *GenScenario(limits);
  const std::vector<SavePlan> plans = Plans(scenario);
  const std::string disagreements = CopyDisagreements(plans);
  RC_PRE(disagreements != "no conflict");
  RC_TAG(disagreements);
  CheckEveryKeyKeptExactlyOnceInOrder(plans);
}

RC_GTEST_PROP(DedupProperty, LowestRankKeepsEachKeyOnItsLowestHolder, ()) {
  const Scenario scenario = *GenScenario(GeneralLimits());
  Classify(scenario);
  const std::vector<SavePlan> plans = Plans(scenario);
  const KeyModel m = BuildKeyModel(plans);
  std::vector<int32_t> lowest(m.keys.size());
  for (size_t k = 0; k < m.keys.size(); ++k) lowest[k] = m.holders[k].front();
  RC_ASSERT(Dedup(plans, DedupPolicy::kLowestRank).plans == ApplyChoice(plans, m, lowest));
}

RC_GTEST_PROP(DedupProperty, PyTorchPolicyIsTheSpecifiedGreedy, ()) {
  const Scenario scenario = *GenScenario(GeneralLimits());
  Classify(scenario);
  const std::vector<SavePlan> plans = Plans(scenario);
  const KeyModel m = BuildKeyModel(plans);
  RC_CLASSIFY(FirstAndLastWeighDifferently(m), "copies weigh differently");
  RC_ASSERT(Dedup(plans, DedupPolicy::kPyTorch).plans == ApplyChoice(plans, m, PyTorchChoice(m, plans.size())));
}

// Holders of a replicated tensor that disagree on its shape or dtype, in
// worlds small enough (2-4 ranks, replicated tensors only) that the weight the
// greedy gives such a key decides where later keys go: the spec weighs a key
// by its last appearance. Only worlds where some key's copies weigh
// differently count; in about one in ten of them weighing by the first copy
// chooses differently.
RC_GTEST_PROP(DedupProperty, PyTorchGreedyWeighsDisagreeingCopiesByTheLast, ()) {
  ScenarioLimits limits = GeneralLimits();
  limits.min_ranks = 2;
  limits.max_ranks = 4;
  limits.allow_sharded = false;
  limits.allow_bytes = false;
  limits.max_entries = 8;
  limits.max_items = 64;
  const Scenario scenario = *GenScenario(limits);
  const std::vector<SavePlan> plans = Plans(scenario);
  const KeyModel m = BuildKeyModel(plans);
  const std::vector<int32_t> by_last = PyTorchChoice(m, plans.size());
  RC_PRE(FirstAndLastWeighDifferently(m));
  RC_TAG(by_last != PyTorchChoiceWeighing(m, plans.size(), m.first_item) ? "the copy weighed decides"
                                                                          : "same choice either way");
  RC_ASSERT(Dedup(plans, DedupPolicy::kPyTorch).plans == ApplyChoice(plans, m, by_last));
}

// The balancer's exact rule, ties included (dedup.h), and its promise.
RC_GTEST_PROP(DedupProperty, BalancedIsTheSpecifiedRule, ()) {
  const Scenario scenario = *GenScenario(GeneralLimits());
  Classify(scenario);
  const std::vector<SavePlan> plans = Plans(scenario);
  const KeyModel m = BuildKeyModel(plans);
  RC_CLASSIFY(FirstAndLastWeighDifferently(m), "copies weigh differently");
  const std::vector<SavePlan> balanced = Dedup(plans, DedupPolicy::kBalanced).plans;
  RC_ASSERT(balanced == ApplyChoice(plans, m, BalancedChoice(plans, m)));
  const std::vector<int64_t> balanced_bytes = RankBytes(balanced);
  const std::vector<int64_t> pytorch_bytes = RankBytes(Dedup(plans, DedupPolicy::kPyTorch).plans);
  RC_ASSERT(MaxOf(balanced_bytes) <= MaxOf(pytorch_bytes));
  // PlanBytes is the same accounting.
  absl::StatusOr<std::vector<int64_t>> plan_bytes = PlanBytes(balanced);
  RC_ASSERT(plan_bytes.ok());
  RC_ASSERT(*plan_bytes == balanced_bytes);
}

// DDP-style scenarios: every replicated item is held by all P ranks, every
// other item by one rank. Let F be the largest per-rank total of single-holder
// bytes, T the bytes written in total (each key once) and X the largest
// replicated item. kBalanced's result is at most that of its greedy, which
// assigns replicated items one by one to the least-loaded rank. Take the rank
// with the largest final total M: if it received no replicated item, M <= F.
// Otherwise let x be the last replicated item it received: when it did, its
// load was the smallest of all P ranks, hence at most the average of the loads
// then, which sum to at most T - x. So M <= (T - x) / P + x
// = (T + (P - 1) x) / P <= (T + (P - 1) X) / P. In integers:
//   M * P <= max(F * P, T + (P - 1) * X).
RC_GTEST_PROP(DedupProperty, BalancedMeetsListSchedulingBoundOnDdpScenarios, ()) {
  ScenarioLimits limits;
  limits.replicated_on_all_ranks = true;
  limits.distinct_offsets = true;
  limits.max_items = 4096 * limits.max_entries;  // room for DDP entries on 4096 ranks
  const Scenario scenario = *GenScenario(limits);
  Classify(scenario);
  const std::vector<SavePlan> plans = Plans(scenario);
  const KeyModel m = BuildKeyModel(plans);
  const int64_t P = static_cast<int64_t>(plans.size());
  std::vector<int64_t> forced(P, 0);
  __int128 total = 0;
  int64_t largest_replicated = 0;
  for (size_t k = 0; k < m.keys.size(); ++k) {
    const int64_t holders = static_cast<int64_t>(m.holders[k].size());
    RC_ASSERT(holders == 1 || holders == P);  // the generator's promise
    const int64_t bytes = PayloadBytesReference(*m.first_item[k]);
    total += bytes;
    if (holders == 1) {
      forced[m.holders[k][0]] += bytes;
    } else {
      largest_replicated = std::max(largest_replicated, bytes);
    }
  }
  const __int128 max_rank = MaxOf(RankBytes(Dedup(plans, DedupPolicy::kBalanced).plans));
  const __int128 bound = std::max<__int128>(static_cast<__int128>(MaxOf(forced)) * P,
                                            total + static_cast<__int128>(P - 1) * largest_replicated);
  RC_CLASSIFY(largest_replicated > 0, "has replicated bytes");
  RC_LOG() << "max rank bytes " << static_cast<int64_t>(max_rank) << ", P " << P << ", total "
           << static_cast<int64_t>(total) << ", forced max " << MaxOf(forced) << ", largest replicated "
           << largest_replicated;
  RC_ASSERT(max_rank * P <= bound);
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
