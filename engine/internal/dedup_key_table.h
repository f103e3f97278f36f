#ifndef DCPLAN_ENGINE_INTERNAL_DEDUP_KEY_TABLE_H_
#define DCPLAN_ENGINE_INTERNAL_DEDUP_KEY_TABLE_H_

// The key table of dedup.cc: every item key (fqn and offsets) of all plans,
// in first-seen order, with its holders and conflicts, built in one pass
// over the items. Split from dedup.cc, which chooses the writer of each key.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/plan.h"

namespace dcplan {
namespace internal {

using Rank = int32_t;
using KeyId = int32_t;
// Position of an item in the concatenation of all plans' items (fewer than
// 2^31 items: checked).
using Position = uint32_t;

// Facts about one item key, gathered in one pass over every plan. Kept
// small (24 bytes): there is about one key per item, written to memory not
// in the cache.
struct KeyInfo {
  const WriteItem* first_item = nullptr;
  // The position of the last appearance (ItemAt): PyTorch's `item_of` keeps
  // the last one.
  Position last_position = 0;
  Rank first_rank = 0;
  // Plans holding the key (a plan holding it twice is one holder).
  int32_t holder_count = 0;
};

// A rank whose item differs from the key's first item.
struct ConflictingHolder {
  Rank rank;
  const WriteItem* item;
};

// In KeyTable::storage_sizes: no storage size (a bytes item, or one whose
// size is not a valid int64: its item tells why).
constexpr int64_t kNoStorageSize = -1;

// Fewer chunks than this, and growing the global plan's chunk list costs
// less than the hash map entry that would size it.
constexpr uint32_t kManyKeys = 16;

struct KeyTable {
  std::vector<KeyInfo> keys;  // in first-seen order (key ids)
  // Key id of every item; plan p's items are at [plan_starts[p], plan_starts[p + 1]).
  std::vector<KeyId> item_keys;
  std::vector<size_t> plan_starts;
  // By position, when asked for: the item's tensor_storage_size() (global
  // size x element size, never negative) or kNoStorageSize. Gathered in the
  // pass that reads the items anyway: the PyTorch policy weighs every key by
  // it, and reading it there, item after item, was a cache miss per key.
  std::vector<int64_t> storage_sizes;
  // Holders of key k, ascending: holders[holder_starts[k] .. holder_starts[k + 1]),
  // for replicated keys only: a key with one holder (most keys of sharded
  // plans) has an empty range, its holder is first_rank.
  std::vector<Position> holder_starts;
  std::vector<Rank> holders;
  // Fqns with at least kManyKeys keys (offsets): the position of one of
  // their items and their key count, the number of chunks the global plan
  // will list for them (DedupResult::chunks_per_fqn).
  std::vector<std::pair<Position, uint32_t>> fqns_with_many_keys;
  // Keys with a conflict, in order of detection, and their differing holders.
  std::vector<KeyId> conflict_order;
  absl::flat_hash_map<KeyId, std::vector<ConflictingHolder>> conflicts;
};

// The key of every item of `plans` (one per rank), keys in first-seen order
// (rank 0's items first, each plan in item order), and conflicts: items
// sharing a key that differ in type, chunk sizes, dtype or global size.
// Holder lists are left empty (BuildHolderLists); storage_sizes is filled
// only with `with_storage_sizes`. Error for more than 2^31 - 1 plans or
// items. Cost: see DedupSavePlans.
absl::StatusOr<KeyTable> BuildKeyTable(const std::vector<SavePlan>& plans, bool with_storage_sizes);

// Fills holder_starts/holders (CSR layout: one allocation for all keys).
void BuildHolderLists(KeyTable& table, size_t num_plans);

// The item at `position` (a binary search over the plan starts).
const WriteItem& ItemAt(const std::vector<SavePlan>& plans, const std::vector<size_t>& plan_starts,
                        Position position);

}  // namespace internal
}  // namespace dcplan

#endif  // DCPLAN_ENGINE_INTERNAL_DEDUP_KEY_TABLE_H_
