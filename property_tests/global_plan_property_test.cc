// Properties of the coordinator's global save plan (engine/save_planner.h):
// index hints, the metadata's chunks and key order, plan order.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "engine/dedup.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "engine/validate.h"
#include "property_tests/generators.h"
#include "property_tests/oracles.h"

namespace dcplan {
namespace proptest {
namespace {

struct Setup {
  Scenario scenario;
  std::vector<SavePlan> local;
  SavePlannerOptions options;
};

bool HasDisagreements(const Scenario& scenario) {
  for (const ScenarioEntry& entry : scenario.entries) {
    if (const auto* whole = std::get_if<ReplicatedEntry>(&entry); whole && !whole->conflicts.empty()) return true;
    if (const auto* shards = std::get_if<ShardedEntry>(&entry); shards && !shards->disagreements.empty()) return true;
  }
  return false;
}

// With `shard_disagreements`, only scenarios where holders of some sharded
// tensor disagree on its global size or dtype (and nothing else).
Setup GenSetup(bool shard_disagreements = false) {
  ScenarioLimits limits;
  limits.allow_conflicts = !shard_disagreements && *rc::gen::weightedElement<bool>({{1, true}, {3, false}});
  // Without distinct offsets, an empty shard at the offsets of a non-empty
  // one is a conflict (an invalid plan): keep most scenarios valid.
  limits.distinct_offsets = shard_disagreements || *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
  limits.allow_shard_disagreement = shard_disagreements || *rc::gen::weightedElement<bool>({{1, true}, {2, false}});
  limits.allow_rank_tagged_paths = true;
  Setup s;
  s.scenario = *GenScenario(limits);
  if (shard_disagreements) RC_PRE(HasDisagreements(s.scenario));
  s.options.dedup = *rc::gen::element(DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced);
  s.options.rewrite_index_hints = *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
  s.options.flatten_state_dict = *rc::gen::arbitrary<bool>();
  absl::StatusOr<std::vector<SavePlan>> local = LocalSavePlans(s.scenario, s.options.flatten_state_dict);
  RC_ASSERT(local.ok());
  s.local = *std::move(local);
  RC_TAG(std::string(DedupPolicyName(s.options.dedup)));
  RC_CLASSIFY(s.scenario.num_ranks > 1024, ">1024 ranks");
  return s;
}

// Items equal but for the index hint.
bool SameButHint(const WriteItem& a, WriteItem b) {
  b.index.index = a.index.index;
  return a == b;
}

bool IsTensorItem(const WriteItem& item) { return item.type != WriteItemType::kByteIO; }

// An item the global plan must drop, with a kPlanError naming its rank and
// position.
struct Dropped {
  std::string fqn;
  size_t rank = 0;
  size_t item = 0;
};

// save_planner.h's rules, visiting ranks and items in order: a bytes or
// whole-tensor item whose fqn is already saved, a shard of an fqn saved as a
// bytes value or a whole tensor, a shard disagreeing with the fqn's first
// item on dtype or global size, a tensor item without tensor data.
std::vector<Dropped> ExpectedDrops(const std::vector<SavePlan>& plans) {
  struct Saved {
    bool shards = false;  // else a bytes value or a whole tensor
    DType dtype = DType::kFloat32;
    Shape size;
  };
  std::map<std::string, Saved> saved;
  std::vector<Dropped> drops;
  for (size_t r = 0; r < plans.size(); ++r) {
    for (size_t i = 0; i < plans[r].items.size(); ++i) {
      const WriteItem& item = plans[r].items[i];
      const auto it = saved.find(item.index.fqn);
      bool drop = false;
      if (!IsTensorItem(item)) {
        drop = it != saved.end();
        if (!drop) saved[item.index.fqn] = Saved{};
      } else if (!item.tensor_data) {
        drop = true;
      } else if (it != saved.end()) {
        drop = item.type != WriteItemType::kShard || !it->second.shards ||
               it->second.dtype != item.tensor_data->properties.dtype || it->second.size != item.tensor_data->size;
      } else {
        saved[item.index.fqn] = Saved{item.type == WriteItemType::kShard, item.tensor_data->properties.dtype,
                                      item.tensor_data->size};
      }
      if (drop) drops.push_back(Dropped{item.index.fqn, r, i});
    }
  }
  return drops;
}

// The global plan of the deduplicated plans: hints are positions in the
// metadata, the metadata lists exactly the chunks written (in visit order),
// keys in first-appearance order, plans keep their items in order.
void CheckHintsChunksAndOrders(const Setup& s) {
  absl::StatusOr<DedupResult> deduped = DedupSavePlans(s.local, s.options.dedup);
  RC_ASSERT(deduped.ok());
  const std::vector<SavePlan>& input = deduped->plans;
  const GlobalPlanAndMetadata g = CreateDefaultGlobalSavePlan(input, s.options.rewrite_index_hints);
  RC_CLASSIFY(!g.problems.empty(), "plan errors");
  RC_ASSERT(g.plans.size() == input.size());

  // Plan errors: exactly the expected drops, in visiting order, each naming
  // its rank and item; plans keep the other items in order.
  const std::vector<Dropped> drops = ExpectedDrops(input);
  RC_CLASSIFY(!drops.empty(), "dropped items");
  RC_ASSERT(g.problems.size() == drops.size());
  std::set<std::pair<size_t, size_t>> dropped;
  for (size_t k = 0; k < drops.size(); ++k) {
    const PlanProblem& p = g.problems[k];
    RC_ASSERT(p.kind == ProblemKind::kPlanError);
    RC_ASSERT(p.fqn == drops[k].fqn);
    RC_ASSERT(absl::StrContains(p.message, absl::StrCat("rank ", drops[k].rank, ", item ", drops[k].item, " (")));
    dropped.insert({drops[k].rank, drops[k].item});
  }
  const bool offending = !drops.empty();
  for (size_t r = 0; r < input.size(); ++r) {
    std::vector<WriteItem> kept;
    for (size_t i = 0; i < input[r].items.size(); ++i) {
      if (!dropped.count({r, i})) kept.push_back(input[r].items[i]);
    }
    RC_ASSERT(g.plans[r].items.size() == kept.size());
    for (size_t i = 0; i < kept.size(); ++i) RC_ASSERT(SameButHint(kept[i], g.plans[r].items[i]));
    RC_ASSERT(g.plans[r].storage_data == input[r].storage_data);
    RC_ASSERT(g.plans[r].planner_data == input[r].planner_data);
  }

  // Visit the output plans in rank and item order: the expected metadata.
  StateDictMetadata expected;
  for (const SavePlan& plan : g.plans) {
    for (const WriteItem& item : plan.items) {
      if (!IsTensorItem(item)) {
        RC_ASSERT(!item.index.index.has_value());
        auto [existing, inserted] = expected.TryEmplace(item.index.fqn, BytesStorageMetadata{});
        RC_ASSERT(inserted);
        continue;
      }
      RC_ASSERT(item.tensor_data.has_value());
      TensorStorageMetadata first{item.tensor_data->properties, item.tensor_data->size, {}};
      auto [value, inserted] = expected.TryEmplace(item.index.fqn, first);
      auto* tensor = std::get_if<TensorStorageMetadata>(value);
      RC_ASSERT(tensor != nullptr);
      if (s.options.rewrite_index_hints) {
        RC_ASSERT(item.index.index == std::optional<int64_t>(static_cast<int64_t>(tensor->chunks.size())));
      } else {
        RC_ASSERT(!item.index.index.has_value());  // local plans carry no hints
      }
      tensor->chunks.push_back(item.tensor_data->chunk);
    }
  }
  RC_ASSERT(g.metadata.state_dict_metadata == expected);

  // Hints as positions: the chunk at the hint is the item's chunk.
  if (s.options.rewrite_index_hints) {
    for (const SavePlan& plan : g.plans) {
      for (const WriteItem& item : plan.items) {
        if (!IsTensorItem(item)) continue;
        const auto& tensor = std::get<TensorStorageMetadata>(*g.metadata.state_dict_metadata.Find(item.index.fqn));
        RC_ASSERT(tensor.chunks.at(static_cast<size_t>(*item.index.index)) == item.tensor_data->chunk);
      }
    }
  }

  // Without plan errors the key order is the first appearance in the input.
  if (!offending) {
    std::vector<std::string> first_seen;
    absl::flat_hash_set<std::string> seen;
    for (const SavePlan& plan : input) {
      for (const WriteItem& item : plan.items) {
        if (seen.insert(item.index.fqn).second) first_seen.push_back(item.index.fqn);
      }
    }
    std::vector<std::string> keys;
    for (const auto& [key, value] : g.metadata.state_dict_metadata) keys.push_back(key);
    RC_ASSERT(keys == first_seen);
  }
}

RC_GTEST_PROP(GlobalPlanProperty, HintsChunksAndOrders, ()) { CheckHintsChunksAndOrders(GenSetup()); }

// What kind of disagreement the holders of sharded tensors show.
std::string ShardDisagreementKind(const Scenario& scenario) {
  bool dtype = false, size = false;
  for (const ScenarioEntry& entry : scenario.entries) {
    const auto* shards = std::get_if<ShardedEntry>(&entry);
    if (shards == nullptr) continue;
    for (const Disagreement& d : shards->disagreements) {
      dtype = dtype || d.dtype != shards->properties.dtype;
      size = size || d.shape != shards->partition.shape;
    }
  }
  return dtype && size ? "dtype and size" : dtype ? "dtype only" : "size only";
}

// Holders of a sharded tensor that disagree on its dtype alone, its global
// size alone, or both (never on its rank, which local planning refuses
// first): each disagreeing shard is a plan error naming its rank and item.
RC_GTEST_PROP(GlobalPlanProperty, ShardsDisagreeingOnDtypeOrSizeAreDropped, ()) {
  const Setup s = GenSetup(/*shard_disagreements=*/true);
  RC_TAG(ShardDisagreementKind(s.scenario));
  CheckHintsChunksAndOrders(s);
}

// The coordinator's pipeline is dedup -> global plan -> mapping merge ->
// validation; generated scenarios are exact partitions, so without conflicts
// the plan is valid.
RC_GTEST_PROP(GlobalPlanProperty, PipelineComposesItsSteps, ()) {
  const Setup s = GenSetup();
  absl::StatusOr<GlobalSavePlan> full = CreateGlobalSavePlan(s.local, s.options);
  RC_ASSERT(full.ok());
  absl::StatusOr<DedupResult> deduped = DedupSavePlans(s.local, s.options.dedup);
  RC_ASSERT(deduped.ok());
  const GlobalPlanAndMetadata g = CreateDefaultGlobalSavePlan(deduped->plans, s.options.rewrite_index_hints);
  RC_ASSERT(full->plans == g.plans);
  RC_ASSERT(full->metadata.state_dict_metadata == g.metadata.state_dict_metadata);
  if (s.options.flatten_state_dict) {
    const FlattenMapping merged = ChainMapReference(g.plans);
    RC_CLASSIFY(s.scenario.rank_tagged_paths, "rank-tagged paths");
    RC_ASSERT(full->metadata.planner_data == std::optional<FlattenMapping>(merged));  // order included
  } else {
    RC_ASSERT(!full->metadata.planner_data.has_value());
  }
  std::vector<PlanProblem> problems = deduped->conflicts;
  problems.insert(problems.end(), g.problems.begin(), g.problems.end());
  const std::vector<PlanProblem> invalid = ValidateMetadata(g.metadata.state_dict_metadata);
  problems.insert(problems.end(), invalid.begin(), invalid.end());
  RC_ASSERT(full->problems == problems);
  RC_CLASSIFY(!full->valid(), "invalid");
  // Without disagreements only empty shards at a non-empty shard's offsets
  // (generated without distinct offsets) conflict.
  if (!HasDisagreements(s.scenario)) RC_ASSERT(deduped->conflicts.empty() == full->valid());
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
