#include "engine/dedup.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

using Rank = int32_t;
using KeyId = int32_t;
// Position of an item in the concatenation of all plans' items (fewer than
// 2^31 items: checked).
using Position = uint32_t;

// Facts about one item key, gathered in one pass over every plan.
struct KeyInfo {
  const WriteItem* first_item = nullptr;
  // The last appearance and its position: PyTorch's `item_of` keeps the last
  // one.
  const WriteItem* last_item = nullptr;
  Position last_position = 0;
  Rank first_rank = 0;
  // Last rank counted in holder_count: a plan holding the key twice is one
  // holder.
  Rank last_counted_rank = -1;
  int32_t holder_count = 0;
};

// A rank whose item differs from the key's first item.
struct ConflictingHolder {
  Rank rank;
  const WriteItem* item;
};

struct KeyTable {
  std::vector<KeyInfo> keys;  // in first-seen order (key ids)
  // Key id of every item; plan p's items are at [plan_starts[p], plan_starts[p + 1]).
  std::vector<KeyId> item_keys;
  std::vector<size_t> plan_starts;
  // Holders of key k, ascending: holders[holder_starts[k] .. holder_starts[k + 1]).
  std::vector<size_t> holder_starts;
  std::vector<Rank> holders;
  // Keys with a conflict, in order of detection, and their differing holders.
  std::vector<KeyId> conflict_order;
  absl::flat_hash_map<KeyId, std::vector<ConflictingHolder>> conflicts;
};

// The properties that make two items with one key the same data: PyTorch's
// dedup ignores them, dcplan reports a difference as a conflict.
bool SameData(const WriteItem& a, const WriteItem& b) {
  if (a.type != b.type || a.tensor_data.has_value() != b.tensor_data.has_value()) return false;
  if (!a.tensor_data) return true;
  const TensorWriteData& x = *a.tensor_data;
  const TensorWriteData& y = *b.tensor_data;
  return x.chunk.sizes == y.chunk.sizes && x.properties.dtype == y.properties.dtype && x.size == y.size;
}

void NoteConflict(KeyTable& table, KeyId key, Rank rank, const WriteItem& item) {
  auto [it, inserted] = table.conflicts.try_emplace(key);
  if (inserted) table.conflict_order.push_back(key);
  std::vector<ConflictingHolder>& holders = it->second;
  if (holders.empty() || holders.back().rank != rank) holders.push_back({rank, &item});
}

using FqnId = uint32_t;

// What of an item's key the grouping pass needs, copied out of the item in
// the one sequential pass over all plans: comparing offsets group by group
// otherwise reads items of 512+ plans in turn, a cache miss each.
struct KeyPrefix {
  static constexpr int32_t kNoOffset = -1;
  static constexpr int32_t kHeadDims = 2;  // chunks of 1-D and 2-D tensors compare without their item
  FqnId fqn = 0;
  int32_t dims = kNoOffset;           // offset->size(), or kNoOffset
  int64_t head[kHeadDims] = {0, 0};  // the first offsets
};

// Every item's KeyPrefix (by position), with an id per distinct fqn. Ranks
// usually list the same fqns in the same order: an fqn equal to the one at
// the same place in the previous plan, or to the previous item's (several
// chunks of one tensor), takes that id without hashing the string.
std::vector<KeyPrefix> KeyPrefixes(const std::vector<SavePlan>& plans, size_t total_items, size_t* num_fqns) {
  std::vector<KeyPrefix> prefixes;
  prefixes.reserve(total_items);  // not value-initialized: each is written once
  absl::flat_hash_map<absl::string_view, FqnId> id_of;
  size_t previous_start = 0;
  size_t start = 0;
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    const std::vector<WriteItem>& items = plans[rank].items;
    const std::vector<WriteItem>* previous = rank == 0 ? nullptr : &plans[rank - 1].items;
    for (size_t i = 0; i < items.size(); ++i) {
      const MetadataIndex& index = items[i].index;
      KeyPrefix& prefix = prefixes.emplace_back();
      if (previous != nullptr && i < previous->size() && (*previous)[i].index.fqn == index.fqn) {
        prefix.fqn = prefixes[previous_start + i].fqn;
      } else if (i > 0 && items[i - 1].index.fqn == index.fqn) {
        prefix.fqn = prefixes[start + i - 1].fqn;
      } else {
        prefix.fqn = id_of.try_emplace(index.fqn, static_cast<FqnId>(id_of.size())).first->second;
      }
      if (index.offset) {
        const Shape& offset = *index.offset;
        // Tensor ranks fit in int32 (PyTorch: at most 64 dims); saturate.
        prefix.dims = static_cast<int32_t>(std::min<size_t>(offset.size(), std::numeric_limits<int32_t>::max()));
        for (size_t d = 0; d < offset.size() && d < KeyPrefix::kHeadDims; ++d) prefix.head[d] = offset[d];
      }
    }
    previous_start = start;
    start += items.size();
  }
  *num_fqns = id_of.size();
  return prefixes;
}

// Positions grouped by fqn id, each group in position order (a counting
// sort).
std::vector<Position> GroupByFqn(const std::vector<KeyPrefix>& prefixes, size_t num_fqns,
                                 std::vector<size_t>& group_starts) {
  group_starts.assign(num_fqns + 1, 0);
  for (const KeyPrefix& prefix : prefixes) ++group_starts[prefix.fqn + 1];
  for (size_t g = 1; g < group_starts.size(); ++g) group_starts[g] += group_starts[g - 1];
  std::vector<size_t> cursors(group_starts.begin(), group_starts.end() - 1);
  std::vector<Position> grouped(prefixes.size());
  for (Position position = 0; position < prefixes.size(); ++position) {
    grouped[cursors[prefixes[position].fqn]++] = position;
  }
  return grouped;
}

// optional<Shape> ordering and equality of two items' offsets (nullopt <
// any shape; shapes lexicographic, a prefix first), from their KeyPrefixes;
// the items themselves are read only when both have more than kHeadDims
// dims and their heads tie.
class OffsetOrder {
 public:
  OffsetOrder(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts,
              const std::vector<KeyPrefix>& prefixes)
      : plans_(plans), plan_starts_(plan_starts), prefixes_(prefixes) {}

  bool Less(Position a, Position b) const {
    const int head = CompareHeads(prefixes_[a], prefixes_[b]);
    if (head != kUndecided) return head < 0;
    return *Offset(a) < *Offset(b);
  }
  bool Equal(Position a, Position b) const {
    const int head = CompareHeads(prefixes_[a], prefixes_[b]);
    if (head != kUndecided) return head == 0;
    return *Offset(a) == *Offset(b);
  }

 private:
  static constexpr int kUndecided = 2;

  // -1, 0 or 1, or kUndecided when the dims beyond the heads decide.
  static int CompareHeads(const KeyPrefix& x, const KeyPrefix& y) {
    if (x.dims == KeyPrefix::kNoOffset || y.dims == KeyPrefix::kNoOffset) return Sign(x.dims, y.dims);
    const int32_t common = std::min({x.dims, y.dims, KeyPrefix::kHeadDims});
    for (int32_t d = 0; d < common; ++d) {
      if (x.head[d] != y.head[d]) return x.head[d] < y.head[d] ? -1 : 1;
    }
    if (x.dims > KeyPrefix::kHeadDims && y.dims > KeyPrefix::kHeadDims) return kUndecided;
    return Sign(x.dims, y.dims);  // one is a prefix of the other (or equal)
  }
  static int Sign(int32_t a, int32_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

  // Rarely needed (keys of 3+ dims tying on their heads): found by a binary
  // search rather than a table of item pointers, 8 bytes per item.
  const std::optional<Shape>& Offset(Position position) const {
    const size_t rank = std::upper_bound(plan_starts_.begin(), plan_starts_.end(), position) - plan_starts_.begin() - 1;
    return plans_[rank].items[position - plan_starts_[rank]].index.offset;
  }

  const std::vector<SavePlan>& plans_;
  const std::vector<size_t>& plan_starts_;
  const std::vector<KeyPrefix>& prefixes_;
};

// For every item, the position of the first item with the same key (fqn,
// offsets). Within one fqn, items are ordered by offsets (stably: the first
// of equal keys stays first); plans list a tensor's chunks rank by rank,
// usually in offset order already, so most groups need no sort.
std::vector<Position> FirstPositionsOfKeys(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts,
                                           size_t total_items) {
  size_t num_fqns = 0;
  const std::vector<KeyPrefix> prefixes = KeyPrefixes(plans, total_items, &num_fqns);
  std::vector<size_t> group_starts;
  std::vector<Position> grouped = GroupByFqn(prefixes, num_fqns, group_starts);
  const OffsetOrder order(plans, plan_starts, prefixes);
  auto offsets_less = [&order](Position a, Position b) { return order.Less(a, b); };
  std::vector<Position> first_positions(total_items);
  for (size_t g = 0; g < num_fqns; ++g) {
    const auto begin = grouped.begin() + group_starts[g];
    const auto end = grouped.begin() + group_starts[g + 1];
    if (!std::is_sorted(begin, end, offsets_less)) std::stable_sort(begin, end, offsets_less);
    for (auto run = begin, run_end = begin; run != end; run = run_end) {
      first_positions[*run] = *run;
      for (++run_end; run_end != end && order.Equal(*run_end, *run); ++run_end) first_positions[*run_end] = *run;
    }
  }
  return first_positions;
}

// Fills keys, item_keys and the conflicts (plan_starts already set), key ids
// in first-seen order.
void AssignKeys(const std::vector<SavePlan>& plans, const std::vector<Position>& first_positions, KeyTable& table) {
  size_t num_keys = 0;
  for (size_t p = 0; p < first_positions.size(); ++p) num_keys += first_positions[p] == p;
  table.keys.reserve(num_keys);
  table.item_keys.reserve(first_positions.size());
  Position position = 0;
  for (Rank rank = 0; rank < static_cast<Rank>(plans.size()); ++rank) {
    for (const WriteItem& item : plans[rank].items) {
      const Position first = first_positions[position];
      KeyId key;
      if (first == position) {
        key = static_cast<KeyId>(table.keys.size());
        KeyInfo info;
        info.first_item = &item;
        info.first_rank = rank;
        table.keys.push_back(info);
      } else {
        key = table.item_keys[first];
        const WriteItem& first_item = *table.keys[key].first_item;
        if (!SameData(first_item, item)) NoteConflict(table, key, rank, item);
      }
      KeyInfo& info = table.keys[key];
      info.last_item = &item;
      info.last_position = position++;
      if (info.last_counted_rank != rank) {
        info.last_counted_rank = rank;
        ++info.holder_count;
      }
      table.item_keys.push_back(key);
    }
  }
}

absl::StatusOr<KeyTable> BuildKeyTable(const std::vector<SavePlan>& plans) {
  KeyTable table;
  table.plan_starts.reserve(plans.size() + 1);
  size_t total_items = 0;
  for (const SavePlan& plan : plans) {
    table.plan_starts.push_back(total_items);
    total_items += plan.items.size();
  }
  table.plan_starts.push_back(total_items);
  if (plans.size() > static_cast<size_t>(std::numeric_limits<Rank>::max()) ||
      total_items > static_cast<size_t>(std::numeric_limits<KeyId>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many plans or items to deduplicate: ", plans.size(), " plans, ", total_items, " items"));
  }
  AssignKeys(plans, FirstPositionsOfKeys(plans, table.plan_starts, total_items), table);
  return table;
}

// Fills holder_starts/holders (CSR layout: one allocation for all keys).
void BuildHolderLists(KeyTable& table, size_t num_plans) {
  const size_t num_keys = table.keys.size();
  table.holder_starts.assign(num_keys + 1, 0);
  for (size_t k = 0; k < num_keys; ++k) {
    table.holder_starts[k + 1] = table.holder_starts[k] + table.keys[k].holder_count;
  }
  table.holders.resize(table.holder_starts[num_keys]);
  std::vector<size_t> cursor(table.holder_starts.begin(), table.holder_starts.end() - 1);
  for (KeyInfo& info : table.keys) info.last_counted_rank = -1;
  for (Rank rank = 0; rank < static_cast<Rank>(num_plans); ++rank) {
    for (size_t i = table.plan_starts[rank]; i < table.plan_starts[rank + 1]; ++i) {
      const KeyId key = table.item_keys[i];
      KeyInfo& info = table.keys[key];
      if (info.last_counted_rank == rank) continue;
      info.last_counted_rank = rank;
      table.holders[cursor[key]++] = rank;
    }
  }
}

// The first holder of `key` with the smallest load; holders are ascending, so
// ties go to the lowest rank.
Rank LeastLoadedHolder(const KeyTable& table, KeyId key, const std::vector<int64_t>& loads) {
  Rank best = table.holders[table.holder_starts[key]];
  for (size_t h = table.holder_starts[key] + 1; h < table.holder_starts[key + 1]; ++h) {
    const Rank rank = table.holders[h];
    if (loads[rank] < loads[best]) best = rank;
  }
  return best;
}

absl::Status AddLoad(std::vector<int64_t>& loads, Rank rank, int64_t weight) {
  std::optional<int64_t> sum = internal::CheckedAdd(loads[rank], weight);
  if (!sum) return absl::OutOfRangeError(absl::StrCat("dedup load of rank ", rank, " overflows int64"));
  loads[rank] = *sum;
  return absl::OkStatus();
}

// Chosen writer per key id.
using Choice = std::vector<Rank>;

Choice ChooseLowestRank(const KeyTable& table) {
  Choice chosen(table.keys.size());
  for (size_t k = 0; k < table.keys.size(); ++k) chosen[k] = table.keys[k].first_rank;
  return chosen;
}

// PyTorch's weight of an item: tensor_storage_size() (global size x element
// size), or 1 for bytes items and zero-byte tensors; an error where
// TensorStorageSize() fails (a negative dim or overflow). The common case is
// computed inline: the StatusOr path was a third of choosing.
absl::StatusOr<int64_t> PyTorchWeight(const WriteItem& item) {
  if (!item.tensor_data) return 1;
  int64_t volume = 1;
  bool zero = false;
  bool overflow = false;
  for (int64_t dim : item.tensor_data->size) {
    if (dim < 0) overflow = true;  // an error: TensorStorageSize() says which
    zero = zero || dim == 0;
    std::optional<int64_t> next = internal::CheckedMul(volume, dim);
    overflow = overflow || !next;
    if (next) volume = *next;
  }
  std::optional<int64_t> bytes;
  if (!overflow) bytes = zero ? 0 : internal::CheckedMul(volume, ElementSize(item.tensor_data->properties.dtype));
  if (!bytes) {
    absl::StatusOr<std::optional<int64_t>> size = item.TensorStorageSize();
    if (!size.ok()) return size.status();
    bytes = size->value_or(0);
  }
  return *bytes == 0 ? 1 : *bytes;
}

// How many keys ahead ChoosePyTorch prefetches the global size it reads: the
// items are read in position order, but a few cache lines apart each.
constexpr KeyId kWeightPrefetchDistance = 16;

// A hint only: the global size and the optional's flag (libstdc++ keeps the
// value first, the flag last).
void PrefetchGlobalSize(const WriteItem& item) {
  const char* data = reinterpret_cast<const char*>(&item.tensor_data);
  __builtin_prefetch(data + offsetof(TensorWriteData, size));
  __builtin_prefetch(data + sizeof(item.tensor_data) - 1);
}

absl::StatusOr<Choice> ChoosePyTorch(const std::vector<SavePlan>& plans, const KeyTable& table) {
  Choice chosen(table.keys.size());
  std::vector<int64_t> loads(plans.size(), 0);
  const KeyId num_keys = static_cast<KeyId>(table.keys.size());
  for (KeyId key = 0; key < num_keys; ++key) {
    if (key + kWeightPrefetchDistance < num_keys) {
      PrefetchGlobalSize(*table.keys[key + kWeightPrefetchDistance].last_item);
    }
    absl::StatusOr<int64_t> weight = PyTorchWeight(*table.keys[key].last_item);
    if (!weight.ok()) return weight.status();
    chosen[key] = LeastLoadedHolder(table, key, loads);
    absl::Status added = AddLoad(loads, chosen[key], *weight);
    if (!added.ok()) return added;
  }
  return chosen;
}

absl::StatusOr<std::vector<int64_t>> ItemPayloads(const std::vector<SavePlan>& plans, size_t total_items) {
  std::vector<int64_t> payloads;
  payloads.reserve(total_items);
  for (const SavePlan& plan : plans) {
    for (const WriteItem& item : plan.items) {
      absl::StatusOr<int64_t> bytes = item.PayloadBytes();
      if (!bytes.ok()) return bytes.status();
      payloads.push_back(*bytes);
    }
  }
  return payloads;
}

// Largest per-rank sum of payloads under `chosen` (PlanBytes of the result).
absl::StatusOr<int64_t> MaxRankBytes(const KeyTable& table, const std::vector<int64_t>& payloads,
                                     const Choice& chosen, size_t num_plans) {
  std::vector<int64_t> loads(num_plans, 0);
  for (Rank rank = 0; rank < static_cast<Rank>(num_plans); ++rank) {
    for (size_t i = table.plan_starts[rank]; i < table.plan_starts[rank + 1]; ++i) {
      if (chosen[table.item_keys[i]] != rank) continue;
      absl::Status added = AddLoad(loads, rank, payloads[i]);
      if (!added.ok()) return added;
    }
  }
  return loads.empty() ? 0 : *std::max_element(loads.begin(), loads.end());
}

absl::StatusOr<Choice> ChooseBalancedGreedy(const KeyTable& table, const std::vector<int64_t>& payloads,
                                            size_t num_plans) {
  Choice chosen(table.keys.size());
  std::vector<int64_t> loads(num_plans, 0);
  // Single-holder keys have no choice: their bytes are the starting loads.
  for (Rank rank = 0; rank < static_cast<Rank>(num_plans); ++rank) {
    for (size_t i = table.plan_starts[rank]; i < table.plan_starts[rank + 1]; ++i) {
      const KeyId key = table.item_keys[i];
      if (table.keys[key].holder_count != 1) continue;
      chosen[key] = rank;
      absl::Status added = AddLoad(loads, rank, payloads[i]);
      if (!added.ok()) return added;
    }
  }
  std::vector<KeyId> replicated;
  for (KeyId key = 0; key < static_cast<KeyId>(table.keys.size()); ++key) {
    if (table.keys[key].holder_count > 1) replicated.push_back(key);
  }
  auto key_bytes = [&](KeyId key) { return payloads[table.keys[key].last_position]; };
  std::stable_sort(replicated.begin(), replicated.end(),
                   [&](KeyId a, KeyId b) { return key_bytes(a) > key_bytes(b); });
  for (KeyId key : replicated) {
    chosen[key] = LeastLoadedHolder(table, key, loads);
    absl::Status added = AddLoad(loads, chosen[key], key_bytes(key));
    if (!added.ok()) return added;
  }
  return chosen;
}

absl::StatusOr<Choice> ChooseBalanced(const std::vector<SavePlan>& plans, const KeyTable& table) {
  absl::StatusOr<std::vector<int64_t>> payloads = ItemPayloads(plans, table.item_keys.size());
  if (!payloads.ok()) return payloads.status();
  absl::StatusOr<Choice> greedy = ChooseBalancedGreedy(table, *payloads, plans.size());
  if (!greedy.ok()) return greedy.status();
  absl::StatusOr<Choice> pytorch = ChoosePyTorch(plans, table);
  if (!pytorch.ok()) return pytorch.status();
  absl::StatusOr<int64_t> greedy_max = MaxRankBytes(table, *payloads, *greedy, plans.size());
  if (!greedy_max.ok()) return greedy_max.status();
  absl::StatusOr<int64_t> pytorch_max = MaxRankBytes(table, *payloads, *pytorch, plans.size());
  if (!pytorch_max.ok()) return pytorch_max.status();
  return *greedy_max < *pytorch_max ? std::move(greedy) : std::move(pytorch);
}

// Keeps, in place, the items each rank was chosen for: the pipeline owns the
// plans, so kept items are moved (not copied) and storage_data, planner_data
// and usable stay where they are.
void ApplyChoice(std::vector<SavePlan>& plans, const KeyTable& table, const Choice& chosen) {
  for (Rank rank = 0; rank < static_cast<Rank>(plans.size()); ++rank) {
    std::vector<WriteItem>& items = plans[rank].items;
    const size_t start = table.plan_starts[rank];
    size_t kept = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (chosen[table.item_keys[start + i]] != rank) continue;
      if (kept != i) items[kept] = std::move(items[i]);
      ++kept;
    }
    items.erase(items.begin() + kept, items.end());
    // Replicated plans (DDP) keep about 1/N of their items.
    if (kept * 2 < items.capacity()) items.shrink_to_fit();
  }
}

std::string DescribeItem(const WriteItem& item) {
  std::string out(WriteItemTypeName(item.type));
  if (item.tensor_data) {
    absl::StrAppend(&out, " ", DTypeName(item.tensor_data->properties.dtype), " chunk sizes ",
                    ShapeToString(item.tensor_data->chunk.sizes), " of global size ",
                    ShapeToString(item.tensor_data->size));
  }
  return out;
}

PlanProblem ConflictProblem(const KeyTable& table, KeyId key, const std::vector<ConflictingHolder>& differing) {
  constexpr size_t kMaxListedRanks = 8;
  const KeyInfo& info = table.keys[key];
  const MetadataIndex& index = info.first_item->index;
  PlanProblem problem;
  problem.kind = ProblemKind::kConflict;
  problem.fqn = index.fqn;
  if (index.offset) problem.offsets = *index.offset;
  problem.message = absl::StrCat(
      "items of '", index.fqn, "' at offsets ", index.offset ? ShapeToString(*index.offset) : "None",
      " differ between ranks (type, chunk sizes, dtype or global size): rank ", info.first_rank, " writes ",
      DescribeItem(*info.first_item));
  for (size_t i = 0; i < differing.size() && i < kMaxListedRanks; ++i) {
    absl::StrAppend(&problem.message, "; rank ", differing[i].rank, " writes ", DescribeItem(*differing[i].item));
  }
  if (differing.size() > kMaxListedRanks) {
    absl::StrAppend(&problem.message, "; and ", differing.size() - kMaxListedRanks, " more ranks differ");
  }
  absl::StrAppend(&problem.message, ". Only one of them would be saved.");
  return problem;
}

}  // namespace

absl::string_view DedupPolicyName(DedupPolicy policy) {
  switch (policy) {
    case DedupPolicy::kPyTorch: return "pytorch";
    case DedupPolicy::kLowestRank: return "lowest_rank";
    case DedupPolicy::kBalanced: return "balanced";
  }
  return "?";
}

absl::StatusOr<DedupResult> DedupSavePlans(std::vector<SavePlan> plans, DedupPolicy policy) {
  absl::StatusOr<KeyTable> table = BuildKeyTable(plans);
  if (!table.ok()) return table.status();
  absl::StatusOr<Choice> chosen;
  if (policy == DedupPolicy::kLowestRank) {
    chosen = ChooseLowestRank(*table);
  } else {
    BuildHolderLists(*table, plans.size());
    chosen = policy == DedupPolicy::kPyTorch ? ChoosePyTorch(plans, *table) : ChooseBalanced(plans, *table);
  }
  if (!chosen.ok()) return chosen.status();
  DedupResult result;
  // Conflicts describe items through pointers into `plans`: build them before
  // ApplyChoice moves the items. Detection order follows the later holder;
  // report in key first-seen order.
  std::sort(table->conflict_order.begin(), table->conflict_order.end());
  result.conflicts.reserve(table->conflict_order.size());
  for (KeyId key : table->conflict_order) {
    result.conflicts.push_back(ConflictProblem(*table, key, table->conflicts.at(key)));
  }
  ApplyChoice(plans, *table, *chosen);
  result.plans = std::move(plans);
  return result;
}

absl::StatusOr<std::vector<int64_t>> PlanBytes(const std::vector<SavePlan>& plans) {
  std::vector<int64_t> totals;
  totals.reserve(plans.size());
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    int64_t total = 0;
    for (const WriteItem& item : plans[rank].items) {
      absl::StatusOr<int64_t> bytes = item.PayloadBytes();
      if (!bytes.ok()) return bytes.status();
      std::optional<int64_t> sum = internal::CheckedAdd(total, *bytes);
      if (!sum) return absl::OutOfRangeError(absl::StrCat("bytes written by rank ", rank, " overflow int64"));
      total = *sum;
    }
    totals.push_back(total);
  }
  return totals;
}

}  // namespace dcplan
