#ifndef DCPLAN_ENGINE_LOAD_PLANNER_H_
#define DCPLAN_ENGINE_LOAD_PLANNER_H_

// Load planning (spec/planner.md §5): which stored pieces each rank reads to
// fill its own chunks (resharding), the global load plan, and the description
// of a whole checkpoint for loading without a template (empty state dict).

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/description.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan {

// Read items for destination chunks `local_chunks` of tensor `fqn` from its
// stored chunks: for each destination chunk (in order), one item per stored
// chunk that overlaps it (PyTorch's strict test, OverlapsPyTorch), stored
// chunks in metadata order: the E0-E6 order of spec/planner.md §5.5, computed
// without the all-pairs loop. Hints: destination chunk's position in
// `local_chunks`, stored chunk's position in `stored.chunks`.
std::vector<ReadItem> CreateReadItemsForChunkList(absl::string_view fqn, const TensorStorageMetadata& stored,
                                                  const std::vector<ChunkBox>& local_chunks);

enum class LoadErrorKind : uint8_t {
  kMissingKey,    // requested fqn not in the checkpoint (strict loads only)
  kSizeMismatch,  // requested global size differs from the saved one
  kTypeMismatch,  // tensor requested for a bytes entry, or the reverse
};

absl::string_view LoadErrorKindName(LoadErrorKind kind);  // "missing_key", "size_mismatch", "type_mismatch"

struct LoadPlanError {
  int64_t rank = 0;
  std::string fqn;
  LoadErrorKind kind = LoadErrorKind::kMissingKey;
  std::string message;  // names the rank, the key, the saved and requested sizes

  friend bool operator==(const LoadPlanError& a, const LoadPlanError& b) {
    return a.rank == b.rank && a.fqn == b.fqn && a.kind == b.kind && a.message == b.message;
  }
  friend std::ostream& operator<<(std::ostream& os, const LoadPlanError& e);
};

struct LoadPlannerOptions {
  // false = allow_partial_load: requested keys missing from the checkpoint are
  // skipped.
  bool strict = true;
};

struct LocalLoadPlan {
  LoadPlan plan;
  // Every error found; good keys still get their read items.
  std::vector<LoadPlanError> errors;
};

// create_default_local_load_plan for one rank: values in description order;
// OpaqueValue requests against bytes entries get one BYTE_IO item
// (dest/storage index (fqn, None), offsets and lengths (0,)); tensor requests
// (WholeTensor: one chunk covering the shape; ShardedTensor: its local chunks)
// get CreateReadItemsForChunkList. planner_data = description.mapping.
LocalLoadPlan CreateLocalLoadPlan(const StateDictDescription& description, const Metadata& metadata,
                                  const LoadPlannerOptions& options, int64_t rank);

// All errors of `plan` as one Status (InvalidArgument, one line per error), or
// OK.
absl::Status LoadErrorsToStatus(const std::vector<LoadPlanError>& errors);

// create_default_global_load_plan: the plans unchanged (no dedup, no caching).
std::vector<LoadPlan> CreateGlobalLoadPlan(std::vector<LoadPlan> plans);

// _EmptyStateDictLoadPlanner: a description of everything in `metadata`
// (WholeTensor of the saved size and dtype per tensor, OpaqueValue per bytes
// entry), in metadata order, with mapping = the entries of
// metadata.planner_data for the included keys (a key without a mapping entry
// maps to the one-element path (key)). With `keys`, only keys that are in the
// set, or one of whose object-path prefixes ("a", "a.b", ... joined by ".")
// is, are included. Unlike PyTorch (anchor-defects.md), an exact match always
// includes the key and a checkpoint without planner_data is handled (exact
// matches only).
StateDictDescription DescribeCheckpoint(const Metadata& metadata,
                                        const std::optional<absl::flat_hash_set<std::string>>& keys);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_LOAD_PLANNER_H_
