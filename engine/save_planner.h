#ifndef DCPLAN_ENGINE_SAVE_PLANNER_H_
#define DCPLAN_ENGINE_SAVE_PLANNER_H_

// Save planning (spec/planner.md §4): local plans from descriptions, the
// coordinator's global plan (dedup, metadata in PyTorch's order, index-hint
// rewriting, flatten-mapping merge, validation).

#include <vector>

#include "absl/status/statusor.h"
#include "engine/dedup.h"
#include "engine/description.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/problem.h"

namespace dcplan {

// create_default_local_save_plan + create_local_plan: one TENSOR item per
// WholeTensor (index (fqn, zeros), chunk = whole), one SHARD item per local
// chunk of a ShardedTensor (index (fqn, chunk offsets)), one BYTE_IO item per
// OpaqueValue (index (fqn), bytes_io_nbytes = nbytes), in description order;
// planner_data = description.mapping. Every rank emits every value
// (`is_coordinator` is kept for PyTorch's signature; E1+ ignores it).
// Error (InvalidArgument naming the fqn) for a negative dimension, a malformed
// chunk (rank differing from the global shape's, negative sizes, offset +
// size overflowing) or a negative OpaqueValue::nbytes. Chunks outside the
// global shape are accepted here and reported by validation.
absl::StatusOr<SavePlan> CreateLocalSavePlan(const StateDictDescription& description, bool is_coordinator);

struct GlobalPlanAndMetadata {
  std::vector<SavePlan> plans;
  Metadata metadata;  // state_dict_metadata only (planner_data unset)
  // kPlanError problems; offending items are left out of `plans` and of the
  // metadata so that the rest can still be validated.
  std::vector<PlanProblem> problems;
};

// create_default_global_save_plan: visits plans in rank order and items in
// plan order; metadata keys in first-appearance order, chunks appended in
// visiting order; a tensor's properties and size come from its first item;
// with `rewrite_index_hints` every tensor item's index hint becomes its
// chunk's position in the metadata (bytes items keep theirs, normally
// nullopt), without it hints are left as they were.
// Where PyTorch asserts or silently merges, dcplan reports a kPlanError
// (naming the rank and the item's position in its plan) and drops the item:
// a TENSOR or BYTE_IO item whose fqn is already in the metadata, a SHARD item
// whose fqn is a whole tensor or a bytes value, a SHARD disagreeing with the
// fqn's earlier shards on dtype or global size, a tensor item without tensor
// data. `plans` is taken by value and its items and planner_data are moved
// into the result: pass std::move(plans) when the input is not needed
// afterwards (an lvalue is copied). `expected_chunks` (DedupResult's
// chunks_per_fqn, or null) only sizes the chunk lists of sharded tensors.
GlobalPlanAndMetadata CreateDefaultGlobalSavePlan(std::vector<SavePlan> plans, bool rewrite_index_hints,
                                                  const ChunkCounts* expected_chunks = nullptr);

// dict(ChainMap(*mappings)): a key's value from the lowest rank that has it;
// key order = last rank's keys, then the previous rank's new keys, ... down to
// rank 0; no plans give an empty mapping. O(total keys) hash lookups; each
// distinct key's path is copied once. Error (FailedPrecondition naming the
// rank) if a plan has no planner_data.
absl::StatusOr<FlattenMapping> MergePlannerData(const std::vector<SavePlan>& plans);

struct SavePlannerOptions {
  bool flatten_state_dict = true;  // merge planner_data into the metadata
  DedupPolicy dedup = DedupPolicy::kPyTorch;
  bool rewrite_index_hints = true;
};

// Milliseconds spent in each step of CreateGlobalSavePlan (optional output).
struct SavePlanTimings {
  double dedup_ms = 0;
  double global_plan_ms = 0;
  double validate_ms = 0;
};

struct GlobalSavePlan {
  std::vector<SavePlan> plans;
  Metadata metadata;
  // Conflicts (dedup), plan errors (global plan), then validation problems.
  std::vector<PlanProblem> problems;
  bool valid() const { return problems.empty(); }
};

// The coordinator's _create_global_plan: dedup -> global plan -> mapping merge
// (when flatten_state_dict; timed with the global plan) -> validation. Problems are returned, not raised,
// so that callers can report all of them; Status errors are reserved for
// inputs that cannot be planned at all (overflowing sizes, a missing mapping).
// `local_plans` is taken by value and moved through the pipeline (the
// returned plans keep their planner_data, moved, not copied): pass
// std::move(local_plans) when they are not needed afterwards.
absl::StatusOr<GlobalSavePlan> CreateGlobalSavePlan(std::vector<SavePlan> local_plans,
                                                    const SavePlannerOptions& options,
                                                    SavePlanTimings* timings = nullptr);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_SAVE_PLANNER_H_
