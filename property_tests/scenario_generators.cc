// Multi-rank save scenarios and the per-rank descriptions and plans.

#include "property_tests/generators.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/save_planner.h"
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

// ---- Holders -------------------------------------------------------------------

HolderSet PickHolderSet(int32_t num_ranks, int64_t budget, bool all_only) {
  HolderSet h;
  if (all_only || num_ranks == 1) return h;  // kAll
  const int32_t max_count = static_cast<int32_t>(std::min<int64_t>(num_ranks, budget));
  using K = HolderSet::Kind;
  std::vector<K> kinds = {K::kRange, K::kStride, K::kList};
  if (num_ranks <= budget) kinds.push_back(K::kAll);
  h.kind = kinds[Pick(0, static_cast<int64_t>(kinds.size()) - 1)];
  switch (h.kind) {
    case K::kAll: break;
    case K::kRange:
      h.count = static_cast<int32_t>(Pick(1, max_count));
      h.first = static_cast<int32_t>(Pick(0, num_ranks - h.count));
      break;
    case K::kStride:
      h.step = static_cast<int32_t>(Pick(1, std::max(1, num_ranks - 1)));
      h.first = static_cast<int32_t>(Pick(0, num_ranks - 1));
      h.count = static_cast<int32_t>(Pick(1, std::min<int64_t>(max_count, (num_ranks - 1 - h.first) / h.step + 1)));
      break;
    case K::kList: {
      const int n = PickInt(1, std::min<int32_t>(8, max_count));
      for (int i = 0; i < n; ++i) h.list.push_back(static_cast<int32_t>(Pick(0, num_ranks - 1)));
      break;
    }
  }
  return h;
}

// ---- Scenario entries ----------------------------------------------------------------

DType OtherDType(DType dtype) {
  const DType other = *GenDType();
  return other != dtype ? other : static_cast<DType>((static_cast<int>(dtype) + 1) % kNumDTypes);
}

// Changes `d`'s shape (by one element in a dim, or a large factor), its
// dtype, or both. With `keep_rank` the number of dims stays (a 0-d shape then
// only changes its dtype).
void DisagreeOn(Disagreement& d, bool keep_rank) {
  const int what = d.shape.empty() && keep_rank ? 1 : PickInt(0, 2);  // 0: shape, 1: dtype, 2: both
  if (what != 1) {
    if (d.shape.empty()) {
      d.shape.push_back(Pick(1, 64));
    } else {
      const size_t dim = static_cast<size_t>(Pick(0, static_cast<int64_t>(d.shape.size()) - 1));
      d.shape[dim] = PickBool() ? d.shape[dim] + 1 : d.shape[dim] * 16 + 16;
    }
  }
  if (what != 0) d.dtype = OtherDType(d.dtype);
}

ShardedEntry PickShardedEntry(int32_t num_ranks, int64_t budget, const ScenarioLimits& limits) {
  ShardedEntry e;
  e.fqn = "weight";  // prefixed with the entry's position later
  e.properties = *GenPlanningProperties();
  const Shape shape = *GenShape(limits.shape_limits);
  std::vector<Assignment> assignments = {Assignment::kOnePerRank, Assignment::kRoundRobin, Assignment::kRandom};
  if (!limits.replicated_on_all_ranks && num_ranks >= 2 && budget >= 2) assignments.push_back(Assignment::kGroups);
  e.assignment = assignments[Pick(0, static_cast<int64_t>(assignments.size()) - 1)];
  const int cap = static_cast<int>(std::min<int64_t>(budget, 4096));
  int32_t group_size = num_ranks;
  int32_t replicas = 1;
  switch (e.assignment) {
    case Assignment::kOnePerRank: {
      const int parts = std::min<int32_t>(num_ranks, cap);
      const int kind = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}, {1, 2}});
      e.partition = kind == 0   ? *GenFsdpPartition(shape, parts)
                    : kind == 1 ? *GenGridPartition(shape, parts)
                                : *GenGuillotinePartition(shape, std::min(parts, 256));
      break;
    }
    case Assignment::kRoundRobin: e.partition = *GenPartition(shape, std::min(cap, 256)); break;
    case Assignment::kRandom: e.partition = *GenPartition(shape, std::min(cap, 64)); break;
    case Assignment::kGroups: {
      replicas = static_cast<int32_t>(Pick(2, std::min<int64_t>({num_ranks, 8, budget})));
      group_size = num_ranks / replicas;
      const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(group_size, budget / replicas)));
      e.partition = PickBool() ? *GenFsdpPartition(shape, parts) : *GenGridPartition(shape, parts);
      break;
    }
  }
  if (limits.distinct_offsets) e.partition = WithDistinctOffsets(std::move(e.partition));
  if (limits.allow_shard_disagreement && !e.partition.chunks.empty() &&
      *rc::gen::weightedElement<bool>({{2, false}, {1, true}})) {
    e.disagreements.push_back(Disagreement{-1, e.partition.shape, e.properties.dtype});  // rank set below
  }
  const int32_t first = e.assignment == Assignment::kRoundRobin ? static_cast<int32_t>(Pick(0, num_ranks - 1)) : 0;
  for (size_t i = 0; i < e.partition.chunks.size(); ++i) {
    const int32_t c = static_cast<int32_t>(i);
    switch (e.assignment) {
      case Assignment::kOnePerRank: e.chunk_holders.push_back({c}); break;
      case Assignment::kRoundRobin: e.chunk_holders.push_back({(first + c) % num_ranks}); break;
      case Assignment::kRandom: e.chunk_holders.push_back({static_cast<int32_t>(Pick(0, num_ranks - 1))}); break;
      case Assignment::kGroups: {
        std::vector<int32_t> holders;
        for (int32_t k = 0; k < replicas; ++k) holders.push_back(c + k * group_size);
        e.chunk_holders.push_back(std::move(holders));
        break;
      }
    }
  }
  for (Disagreement& d : e.disagreements) {
    const std::vector<int32_t>& holders = e.chunk_holders[Pick(0, static_cast<int64_t>(e.chunk_holders.size()) - 1)];
    d.rank = holders[Pick(0, static_cast<int64_t>(holders.size()) - 1)];
    DisagreeOn(d, /*keep_rank=*/true);
  }
  return e;
}

ReplicatedEntry PickReplicatedEntry(int32_t num_ranks, int64_t budget, const ScenarioLimits& limits) {
  ReplicatedEntry e;
  e.fqn = "bias";
  e.properties = *GenPlanningProperties();
  e.shape = *GenShape(limits.shape_limits);
  e.holder_set = PickHolderSet(num_ranks, budget, limits.replicated_on_all_ranks);
  e.holders = ExpandHolders(e.holder_set, num_ranks);
  if (limits.allow_conflicts && e.holders.size() >= 2 && *rc::gen::weightedElement<bool>({{2, false}, {1, true}})) {
    const int count = PickInt(1, 2);
    for (int c = 0; c < count; ++c) {
      Disagreement d{e.holders[Pick(0, static_cast<int64_t>(e.holders.size()) - 1)], e.shape, e.properties.dtype};
      DisagreeOn(d, /*keep_rank=*/false);
      e.conflicts.push_back(std::move(d));
    }
  }
  return e;
}

BytesEntry PickBytesEntry(int32_t num_ranks, int64_t budget, const ScenarioLimits& limits) {
  BytesEntry e;
  e.fqn = "step";
  const int kind = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}, {1, 2}});
  if (kind == 0) e.nbytes = Pick(1, int64_t{1} << 20);
  if (kind == 1) e.nbytes = 0;
  e.holder_set = PickHolderSet(num_ranks, budget, limits.replicated_on_all_ranks);
  e.holders = ExpandHolders(e.holder_set, num_ranks);
  return e;
}

ObjectPath PathOf(const std::string& fqn) {
  ObjectPath path;
  for (absl::string_view part : absl::StrSplit(fqn, '.')) path.emplace_back(std::string(part));
  return path;
}

void PrintShapeList(std::ostream& os, const std::vector<int32_t>& ranks) {
  os << "[" << absl::StrJoin(ranks, ", ") << "]";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Disagreement& d) {
  return os << "rank " << d.rank << " says " << DTypeName(d.dtype) << ShapeToString(d.shape);
}

// ---- Scenarios --------------------------------------------------------------------------

std::ostream& operator<<(std::ostream& os, const HolderSet& h) {
  switch (h.kind) {
    case HolderSet::Kind::kAll: return os << "all";
    case HolderSet::Kind::kRange: return os << "ranks [" << h.first << ", " << h.first + h.count << ")";
    case HolderSet::Kind::kStride:
      return os << h.count << " ranks from " << h.first << " step " << h.step;
    case HolderSet::Kind::kList:
      os << "ranks ";
      PrintShapeList(os, h.list);
      return os;
  }
  return os;
}

std::vector<int32_t> ExpandHolders(const HolderSet& h, int32_t num_ranks) {
  std::vector<int32_t> ranks;
  switch (h.kind) {
    case HolderSet::Kind::kAll:
      for (int32_t r = 0; r < num_ranks; ++r) ranks.push_back(r);
      break;
    case HolderSet::Kind::kRange:
      for (int32_t r = h.first; r < h.first + h.count && r < num_ranks; ++r) ranks.push_back(r);
      break;
    case HolderSet::Kind::kStride:
      for (int64_t k = 0; k < h.count; ++k) {
        const int64_t r = h.first + k * h.step;
        if (r < num_ranks) ranks.push_back(static_cast<int32_t>(r));
      }
      break;
    case HolderSet::Kind::kList:
      for (int32_t r : h.list) {
        if (r < num_ranks) ranks.push_back(r);
      }
      break;
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  return ranks;
}

std::ostream& operator<<(std::ostream& os, const Scenario& s) {
  os << "Scenario(" << s.num_ranks << " ranks" << (s.reverse_odd_ranks ? ", odd ranks reversed" : "")
     << (s.rank_tagged_paths ? ", rank-tagged paths" : "") << ")";
  for (const ScenarioEntry& entry : s.entries) {
    os << "\n  ";
    if (const auto* e = std::get_if<ShardedEntry>(&entry)) {
      static const char* const kAssign[] = {"one_per_rank", "round_robin", "random", "groups"};
      os << "'" << e->fqn << "' " << DTypeName(e->properties.dtype) << " sharded ("
         << kAssign[static_cast<int>(e->assignment)] << "), " << e->partition << "; holders:";
      for (const auto& h : e->chunk_holders) {
        os << " ";
        PrintShapeList(os, h);
      }
      for (const Disagreement& d : e->disagreements) os << "; " << d;
    } else if (const auto* e = std::get_if<ReplicatedEntry>(&entry)) {
      os << "'" << e->fqn << "' " << DTypeName(e->properties.dtype) << " whole " << ShapeToString(e->shape)
         << " held by " << e->holder_set;
      for (const Disagreement& d : e->conflicts) os << "; " << d;
    } else {
      const auto& b = std::get<BytesEntry>(entry);
      os << "'" << b.fqn << "' bytes nbytes=" << (b.nbytes ? absl::StrCat(*b.nbytes) : "None") << " held by "
         << b.holder_set;
    }
  }
  return os;
}

rc::Gen<int32_t> GenRankCount(int32_t min_ranks, int32_t max_ranks) {
  return rc::gen::exec([min_ranks, max_ranks] {
    // Bucket k holds (2^(k-1), 2^k]; bucket 0 is {1}.
    int max_bucket = 0;
    while ((int64_t{1} << max_bucket) < max_ranks) ++max_bucket;
    const int bucket = PickInt(0, max_bucket);
    int64_t lo = bucket == 0 ? 1 : (int64_t{1} << (bucket - 1)) + 1;
    int64_t hi = int64_t{1} << bucket;
    lo = std::max<int64_t>(lo, min_ranks);
    hi = std::min<int64_t>(hi, max_ranks);
    if (lo > hi) return std::max(min_ranks, std::min(max_ranks, static_cast<int32_t>(hi)));
    return static_cast<int32_t>(Pick(lo, hi));
  });
}

rc::Gen<Scenario> GenScenario(const ScenarioLimits& limits) {
  return rc::gen::exec([limits] {
    Scenario s;
    s.num_ranks = *GenRankCount(limits.min_ranks, limits.max_ranks);
    s.reverse_odd_ranks = s.num_ranks > 1 && PickBool();
    s.rank_tagged_paths = limits.allow_rank_tagged_paths && PickBool();
    const int32_t num_ranks = s.num_ranks;
    // Every entry gets the same share of the item budget, so entries are
    // independent and the list shrinks by dropping entries.
    const int64_t share = limits.max_items / std::max(1, limits.max_entries);
    // Entry kinds 0 (sharded), 1 (replicated), 2 (bytes), weighted 4:3:2;
    // DDP entries need every rank, so they need a share of num_ranks items.
    const bool whole_fits = !limits.replicated_on_all_ranks || share >= num_ranks;
    std::vector<int> kinds;
    for (int k = 0; k < 4 && limits.allow_sharded; ++k) kinds.push_back(0);
    for (int k = 0; k < 3 && limits.allow_replicated && whole_fits; ++k) kinds.push_back(1);
    for (int k = 0; k < 2 && limits.allow_bytes && whole_fits; ++k) kinds.push_back(2);
    if (kinds.empty()) return s;
    const rc::Gen<ScenarioEntry> entry = rc::gen::exec([kinds, num_ranks, share, limits] {
      const int kind = kinds[Pick(0, static_cast<int64_t>(kinds.size()) - 1)];
      return kind == 0   ? ScenarioEntry(PickShardedEntry(num_ranks, share, limits))
             : kind == 1 ? ScenarioEntry(PickReplicatedEntry(num_ranks, share, limits))
                         : ScenarioEntry(PickBytesEntry(num_ranks, share, limits));
    });
    s.entries = *rc::gen::resize(limits.max_entries, rc::gen::container<std::vector<ScenarioEntry>>(entry));
    for (size_t i = 0; i < s.entries.size(); ++i) {
      std::visit([i](auto& e) { e.fqn = absl::StrCat("m", i, ".", e.fqn); }, s.entries[i]);
    }
    return s;
  });
}

std::vector<StateDictDescription> Descriptions(const Scenario& s, bool with_mapping) {
  const size_t P = static_cast<size_t>(s.num_ranks);
  // values[e][r]: what rank r lists for entry e, if anything.
  std::vector<std::vector<std::optional<ValueDescription>>> values(s.entries.size());
  for (size_t e = 0; e < s.entries.size(); ++e) {
    values[e].resize(P);
    const ScenarioEntry& entry = s.entries[e];
    if (const auto* sharded = std::get_if<ShardedEntry>(&entry)) {
      std::vector<ShardedTensor> local(P, ShardedTensor{sharded->partition.shape, sharded->properties, {}});
      for (size_t c = 0; c < sharded->chunk_holders.size(); ++c) {
        for (int32_t r : sharded->chunk_holders[c]) local[r].local_chunks.push_back(sharded->partition.chunks[c]);
      }
      for (const Disagreement& d : sharded->disagreements) {
        local[d.rank].global_shape = d.shape;
        local[d.rank].properties.dtype = d.dtype;
      }
      for (size_t r = 0; r < P; ++r) values[e][r] = ValueDescription(std::move(local[r]));
    } else if (const auto* whole = std::get_if<ReplicatedEntry>(&entry)) {
      for (int32_t r : whole->holders) values[e][r] = ValueDescription(WholeTensor{whole->shape, whole->properties});
      for (const Disagreement& d : whole->conflicts) {
        TensorProperties properties = whole->properties;
        properties.dtype = d.dtype;
        values[e][d.rank] = ValueDescription(WholeTensor{d.shape, properties});
      }
    } else {
      const auto& bytes = std::get<BytesEntry>(entry);
      for (int32_t r : bytes.holders) values[e][r] = ValueDescription(OpaqueValue{bytes.nbytes});
    }
  }
  std::vector<StateDictDescription> descriptions(P);
  for (size_t r = 0; r < P; ++r) {
    StateDictDescription& d = descriptions[r];
    if (with_mapping) d.mapping.emplace();
    const bool reverse = s.reverse_odd_ranks && r % 2 == 1;
    for (size_t k = 0; k < s.entries.size(); ++k) {
      const size_t e = reverse ? s.entries.size() - 1 - k : k;
      if (!values[e][r]) continue;
      const std::string& fqn = std::visit([](const auto& x) -> const std::string& { return x.fqn; }, s.entries[e]);
      d.values.InsertOrAssign(fqn, std::move(*values[e][r]));
      if (!with_mapping) continue;
      ObjectPath path = PathOf(fqn);
      if (s.rank_tagged_paths) path.emplace_back(static_cast<int64_t>(r));
      d.mapping->InsertOrAssign(fqn, std::move(path));
    }
  }
  return descriptions;
}

absl::StatusOr<std::vector<SavePlan>> LocalSavePlans(const Scenario& scenario, bool with_mapping) {
  std::vector<SavePlan> plans;
  const std::vector<StateDictDescription> descriptions = Descriptions(scenario, with_mapping);
  plans.reserve(descriptions.size());
  for (size_t r = 0; r < descriptions.size(); ++r) {
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(descriptions[r], /*is_coordinator=*/r == 0);
    if (!plan.ok()) return plan.status();
    plans.push_back(*std::move(plan));
  }
  return plans;
}

}  // namespace proptest

}  // namespace dcplan
