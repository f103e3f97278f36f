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
#include "engine/internal/dedup_key_table.h"

namespace dcplan {
namespace {

using internal::BuildHolderLists;
using internal::BuildKeyTable;
using internal::ConflictingHolder;
using internal::KeyId;
using internal::KeyInfo;
using internal::KeyTable;
using internal::Rank;

// The first holder of `key` with the smallest load; holders are ascending, so
// ties go to the lowest rank.
Rank LeastLoadedHolder(const KeyTable& table, KeyId key, const std::vector<int64_t>& loads) {
  if (table.holder_starts[key] == table.holder_starts[key + 1]) return table.keys[key].first_rank;  // one holder
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
// size), or 1 for bytes items and zero-byte tensors; TensorStorageSize()'s
// error where it fails (a negative dim or overflow). Computed without its
// StatusOr, which was a third of choosing.
absl::StatusOr<int64_t> PyTorchWeight(const WriteItem& item) {
  if (!item.tensor_data) return 1;
  const std::optional<int64_t> numel = CheckedShapeVolume(item.tensor_data->size);
  std::optional<int64_t> bytes;
  if (numel) bytes = internal::CheckedMul(*numel, ElementSize(item.tensor_data->properties.dtype));
  if (!bytes) {
    absl::StatusOr<std::optional<int64_t>> size = item.TensorStorageSize();
    if (!size.ok()) return size.status();
    bytes = size->value_or(0);
  }
  return *bytes == 0 ? 1 : *bytes;
}

// The PyTorch weight of `key`'s last item, from the storage size BuildKeyTable
// gathered; the item itself is read only where that is missing (bytes items,
// and sizes that do not fit: PyTorchWeight's error).
absl::StatusOr<int64_t> KeyWeight(const std::vector<SavePlan>& plans, const KeyTable& table, KeyId key) {
  const KeyInfo& info = table.keys[key];
  const int64_t bytes = table.storage_sizes[info.last_position];
  if (bytes == internal::kNoStorageSize) {
    return PyTorchWeight(internal::ItemAt(plans, table.plan_starts, info.last_position));
  }
  return bytes == 0 ? 1 : bytes;
}

absl::StatusOr<Choice> ChoosePyTorch(const std::vector<SavePlan>& plans, const KeyTable& table) {
  Choice chosen(table.keys.size());
  std::vector<int64_t> loads(plans.size(), 0);
  const KeyId num_keys = static_cast<KeyId>(table.keys.size());
  for (KeyId key = 0; key < num_keys; ++key) {
    absl::StatusOr<int64_t> weight = KeyWeight(plans, table, key);
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
  // The PyTorch weights (kBalanced compares with them) come from the storage
  // sizes.
  absl::StatusOr<KeyTable> table = BuildKeyTable(plans, policy != DedupPolicy::kLowestRank);
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
  result.chunks_per_fqn.reserve(table->fqns_with_many_keys.size());
  for (const auto& [position, keys] : table->fqns_with_many_keys) {
    result.chunks_per_fqn.emplace(internal::ItemAt(plans, table->plan_starts, position).index.fqn, keys);
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
