#include "engine/internal/dedup_key_table.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/box.h"
#include "engine/dtype.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace internal {
namespace {

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

// tensor_storage_size() of `item` without its Status, or kNoStorageSize.
int64_t StorageSizeOrNone(const WriteItem& item) {
  if (!item.tensor_data) return kNoStorageSize;
  const std::optional<int64_t> numel = CheckedShapeVolume(item.tensor_data->size);
  if (!numel) return kNoStorageSize;
  const std::optional<int64_t> bytes = CheckedMul(*numel, ElementSize(item.tensor_data->properties.dtype));
  return bytes ? *bytes : kNoStorageSize;
}

// The pass over the items waits on memory: it prefetches items this many
// items ahead (every line of them is read), and their fqns' characters half
// as far.
constexpr size_t kPrefetchDistance = 16;

void PrefetchItem(const WriteItem& item) {
  const char* data = reinterpret_cast<const char*>(&item);
  for (size_t offset = 0; offset < sizeof(WriteItem); offset += 64) __builtin_prefetch(data + offset);
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

// An item's offsets (as in its KeyPrefix) and position, in the array grouped
// by fqn: sorting and comparing a group's offsets reads this array in order,
// where looking each item's KeyPrefix up by position was a cache miss per
// item once the prefixes outgrow the cache (2048+ ranks).
struct GroupedKey {
  Position position;
  int32_t dims;
  int64_t head[KeyPrefix::kHeadDims];
};

// Every item's KeyPrefix (by position), with an id per distinct fqn. Ranks
// usually list the same fqns in the same order: an fqn equal to the one at
// the same place in the previous plan, or to the previous item's (several
// chunks of one tensor), takes that id without hashing the string. With
// `storage_sizes`, also appends every item's StorageSizeOrNone to it.
std::vector<KeyPrefix> KeyPrefixes(const std::vector<SavePlan>& plans, size_t total_items, size_t* num_fqns,
                                   std::vector<int64_t>* storage_sizes) {
  std::vector<KeyPrefix> prefixes;
  prefixes.reserve(total_items);  // not value-initialized: each is written once
  if (storage_sizes != nullptr) storage_sizes->reserve(total_items);
  absl::flat_hash_map<absl::string_view, FqnId> id_of;
  size_t previous_start = 0;
  size_t start = 0;
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    const std::vector<WriteItem>& items = plans[rank].items;
    const std::vector<WriteItem>* previous = rank == 0 ? nullptr : &plans[rank - 1].items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i + kPrefetchDistance < items.size()) PrefetchItem(items[i + kPrefetchDistance]);
      if (i + kPrefetchDistance / 2 < items.size()) {
        __builtin_prefetch(items[i + kPrefetchDistance / 2].index.fqn.data());
      }
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
      if (storage_sizes != nullptr) storage_sizes->push_back(StorageSizeOrNone(items[i]));
    }
    previous_start = start;
    start += items.size();
  }
  *num_fqns = id_of.size();
  return prefixes;
}

// Items grouped by fqn id, each group in position order (a counting sort).
std::vector<GroupedKey> GroupByFqn(const std::vector<KeyPrefix>& prefixes, size_t num_fqns,
                                   std::vector<size_t>& group_starts) {
  group_starts.assign(num_fqns + 1, 0);
  for (const KeyPrefix& prefix : prefixes) ++group_starts[prefix.fqn + 1];
  for (size_t g = 1; g < group_starts.size(); ++g) group_starts[g] += group_starts[g - 1];
  std::vector<size_t> cursors(group_starts.begin(), group_starts.end() - 1);
  std::vector<GroupedKey> grouped(prefixes.size());
  for (Position position = 0; position < prefixes.size(); ++position) {
    const KeyPrefix& prefix = prefixes[position];
    GroupedKey& key = grouped[cursors[prefix.fqn]++];
    key.position = position;
    key.dims = prefix.dims;
    for (int d = 0; d < KeyPrefix::kHeadDims; ++d) key.head[d] = prefix.head[d];
  }
  return grouped;
}

// optional<Shape> ordering and equality of two items' offsets (nullopt <
// any shape; shapes lexicographic, a prefix first), from their GroupedKeys;
// the items themselves are read only when both have more than kHeadDims
// dims and their heads tie.
class OffsetOrder {
 public:
  OffsetOrder(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts)
      : plans_(plans), plan_starts_(plan_starts) {}

  bool Less(const GroupedKey& a, const GroupedKey& b) const {
    const int head = CompareHeads(a, b);
    if (head != kUndecided) return head < 0;
    return *Offset(a.position) < *Offset(b.position);
  }
  bool Equal(const GroupedKey& a, const GroupedKey& b) const {
    const int head = CompareHeads(a, b);
    if (head != kUndecided) return head == 0;
    return *Offset(a.position) == *Offset(b.position);
  }

 private:
  static constexpr int kUndecided = 2;

  // -1, 0 or 1, or kUndecided when the dims beyond the heads decide.
  static int CompareHeads(const GroupedKey& x, const GroupedKey& y) {
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
    return ItemAt(plans_, plan_starts_, position).index.offset;
  }

  const std::vector<SavePlan>& plans_;
  const std::vector<size_t>& plan_starts_;
};

// For every item, the position of the first item with the same key (fqn,
// offsets). Within one fqn, items are ordered by offsets (stably: the first
// of equal keys stays first); plans list a tensor's chunks rank by rank,
// usually in offset order already, so most groups need no sort. Fills
// `fqns_with_many_keys` (KeyTable).
std::vector<Position> FirstPositionsOfKeys(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts,
                                           size_t total_items, std::vector<int64_t>* storage_sizes,
                                           std::vector<std::pair<Position, uint32_t>>& fqns_with_many_keys) {
  size_t num_fqns = 0;
  std::vector<size_t> group_starts;
  std::vector<GroupedKey> grouped;
  {
    const std::vector<KeyPrefix> prefixes = KeyPrefixes(plans, total_items, &num_fqns, storage_sizes);
    grouped = GroupByFqn(prefixes, num_fqns, group_starts);
  }  // the prefixes are freed before first_positions is allocated
  const OffsetOrder order(plans, plan_starts);
  auto offsets_less = [&order](const GroupedKey& a, const GroupedKey& b) { return order.Less(a, b); };
  std::vector<Position> first_positions(total_items);
  for (size_t g = 0; g < num_fqns; ++g) {
    const auto begin = grouped.begin() + group_starts[g];
    const auto end = grouped.begin() + group_starts[g + 1];
    if (!std::is_sorted(begin, end, offsets_less)) std::stable_sort(begin, end, offsets_less);
    uint32_t keys = 0;
    for (auto run = begin, run_end = begin; run != end; run = run_end) {
      first_positions[run->position] = run->position;
      ++keys;
      for (++run_end; run_end != end && order.Equal(*run_end, *run); ++run_end) {
        first_positions[run_end->position] = run->position;
      }
    }
    if (keys >= kManyKeys) fqns_with_many_keys.emplace_back(begin->position, keys);
  }
  return first_positions;
}

// An item whose key was seen before reads three places far apart in memory:
// the first item's key id, that key's KeyInfo and the key's first item
// (SameData). From 2048 ranks on, none is in the cache and each waited on
// the one before; fetched ahead in three stages, they overlap.
constexpr Position kKeyChainDistance = 8;

void PrefetchKeyChain(const std::vector<Position>& first_positions, const KeyTable& table, Position position,
                      Position total) {
  // A key id or KeyInfo can be looked up only for items before `position`:
  // later ones are not assigned yet.
  if (position + 3 * kKeyChainDistance < total) {
    const Position first = first_positions[position + 3 * kKeyChainDistance];
    if (first < position) __builtin_prefetch(&table.item_keys[first]);
  }
  if (position + 2 * kKeyChainDistance < total) {
    const Position first = first_positions[position + 2 * kKeyChainDistance];
    if (first < position) __builtin_prefetch(&table.keys[table.item_keys[first]]);
  }
  if (position + kKeyChainDistance < total) {
    const Position first = first_positions[position + kKeyChainDistance];
    if (first < position) {
      const char* item = reinterpret_cast<const char*>(table.keys[table.item_keys[first]].first_item);
      __builtin_prefetch(item + offsetof(WriteItem, type));
      __builtin_prefetch(item + offsetof(WriteItem, tensor_data));
      __builtin_prefetch(item + sizeof(WriteItem) - 1);
    }
  }
}

// Fills keys, item_keys and the conflicts (plan_starts already set), key ids
// in first-seen order.
void AssignKeys(const std::vector<SavePlan>& plans, const std::vector<Position>& first_positions, KeyTable& table) {
  size_t num_keys = 0;
  for (size_t p = 0; p < first_positions.size(); ++p) num_keys += first_positions[p] == p;
  table.keys.reserve(num_keys);
  table.item_keys.reserve(first_positions.size());
  Position position = 0;
  const Position total = static_cast<Position>(first_positions.size());
  for (Rank rank = 0; rank < static_cast<Rank>(plans.size()); ++rank) {
    const Position plan_start = position;
    for (const WriteItem& item : plans[rank].items) {
      PrefetchKeyChain(first_positions, table, position, total);
      const Position first = first_positions[position];
      KeyId key;
      if (first == position) {
        key = static_cast<KeyId>(table.keys.size());
        KeyInfo info;
        info.first_item = &item;
        info.last_position = position;
        info.first_rank = rank;
        info.holder_count = 1;
        table.keys.push_back(info);
      } else {
        key = table.item_keys[first];
        KeyInfo& info = table.keys[key];
        if (!SameData(*info.first_item, item)) NoteConflict(table, key, rank, item);
        // Seen last in an earlier plan: this plan is one more holder.
        if (info.last_position < plan_start) ++info.holder_count;
        info.last_position = position;
      }
      table.item_keys.push_back(key);
      ++position;
    }
  }
}

}  // namespace

absl::StatusOr<KeyTable> BuildKeyTable(const std::vector<SavePlan>& plans, bool with_storage_sizes) {
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
  std::vector<int64_t>* storage_sizes = with_storage_sizes ? &table.storage_sizes : nullptr;
  AssignKeys(plans,
             FirstPositionsOfKeys(plans, table.plan_starts, total_items, storage_sizes, table.fqns_with_many_keys),
             table);
  return table;
}

// Fills holder_starts/holders (CSR layout: one allocation for all keys).
void BuildHolderLists(KeyTable& table, size_t num_plans) {
  const size_t num_keys = table.keys.size();
  std::vector<Position>& starts = table.holder_starts;
  starts.assign(num_keys + 1, 0);
  for (size_t k = 0; k < num_keys; ++k) {
    const int32_t count = table.keys[k].holder_count;
    starts[k + 1] = starts[k] + static_cast<Position>(count > 1 ? count : 0);
  }
  table.holders.resize(starts[num_keys]);
  std::vector<Position> cursor(starts.begin(), starts.end() - 1);
  for (Rank rank = 0; rank < static_cast<Rank>(num_plans); ++rank) {
    for (size_t i = table.plan_starts[rank]; i < table.plan_starts[rank + 1]; ++i) {
      const KeyId key = table.item_keys[i];
      if (starts[key] == starts[key + 1]) continue;  // one holder
      Position& next = cursor[key];
      // Ranks come in ascending order: a plan holding the key twice was
      // just listed.
      if (next > starts[key] && table.holders[next - 1] == rank) continue;
      table.holders[next++] = rank;
    }
  }
}

const WriteItem& ItemAt(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts,
                        Position position) {
  const size_t rank = std::upper_bound(plan_starts.begin(), plan_starts.end(), position) - plan_starts.begin() - 1;
  return plans[rank].items[position - plan_starts[rank]];
}

}  // namespace internal
}  // namespace dcplan
