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
// chunk that overlaps it (PyTorch's strict test, OverlapsPyTorch: a zero-size
// chunk strictly inside another one overlaps it and gets a zero-length item),
// stored chunks in metadata order. This is the E0-E6 item order of
// spec/planner.md §5.5, with its per-dim offsets and lengths. For n stored and
// m destination chunks: with m <= log2(n) + 4 (a rank's own shard or two) by
// testing every pair, cost O(m n); otherwise from an index of the stored
// chunks, cost O((n + m + c) log n), c = the pairs that overlap in the stored
// chunks' most varied dimension (the items for row, column or 1-D splits).
// Both give the same items. Index hints: the destination chunk's position in
// `local_chunks`, the stored chunk's position in `stored.chunks`. 0-d tensors:
// every 0-d destination chunk gets one item per 0-d stored chunk, with empty
// offsets and lengths. A chunk (destination or stored) whose rank differs from
// `stored.size`'s, or that is malformed (CheckWellFormed fails: negative size,
// offset + size overflowing int64), matches nothing.
std::vector<ReadItem> CreateReadItemsForChunkList(absl::string_view fqn, const TensorStorageMetadata& stored,
                                                  const std::vector<ChunkBox>& local_chunks);

enum class LoadErrorKind : uint8_t {
  kMissingKey,    // requested fqn not in the checkpoint (strict loads only)
  kSizeMismatch,  // requested global size differs from the saved one
  kTypeMismatch,  // tensor requested for a bytes entry, or the reverse
  kInvalidCheckpoint,  // the stored chunks of the requested tensor overlap
};

// "missing_key", "size_mismatch", "type_mismatch", "invalid_checkpoint".
absl::string_view LoadErrorKindName(LoadErrorKind kind);

struct LoadPlanError {
  int64_t rank = 0;
  std::string fqn;
  LoadErrorKind kind = LoadErrorKind::kMissingKey;
  std::string message;  // names the rank and the key; both sizes for kSizeMismatch

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
  // Every error found, in description order; good keys still get their read
  // items. A non-empty list means the load must not proceed.
  std::vector<LoadPlanError> errors;
};

// create_default_local_load_plan for one rank, without stopping at the first
// error. Values are planned in description order:
// - key missing from the checkpoint: kMissingKey when options.strict
//   ("Missing key in checkpoint state_dict: x." and the rank), else skipped;
// - OpaqueValue against a bytes entry: one BYTE_IO item, dest/storage index
//   (fqn, no offset, no hint), offsets and lengths (0,);
// - tensor request (WholeTensor: one chunk covering the shape; ShardedTensor:
//   its local chunks) against a tensor entry: kSizeMismatch if the requested
//   global shape differs from the saved size (both in the message), else
//   CreateReadItemsForChunkList. A ShardedTensor chunk that does not lie
//   inside its global shape (wrong rank, negative size, out of bounds) is also
//   reported as kSizeMismatch, one error per such chunk, and the key then gets
//   no read items;
// - tensor request against a bytes entry, or OpaqueValue against a tensor
//   entry: kTypeMismatch (PyTorch silently reads bytes into a tensor request:
//   an intended difference).
// planner_data = description.mapping.
LocalLoadPlan CreateLocalLoadPlan(const StateDictDescription& description, const Metadata& metadata,
                                  const LoadPlannerOptions& options, int64_t rank);

// `errors` as one Status: InvalidArgument with one line per error
// ("rank 0: missing_key 'x': <message>"), or OK when there are none.
absl::Status LoadErrorsToStatus(const std::vector<LoadPlanError>& errors);

// create_default_global_load_plan: the plans unchanged (no dedup, no caching).
std::vector<LoadPlan> CreateGlobalLoadPlan(std::vector<LoadPlan> plans);

// _EmptyStateDictLoadPlanner: a description of everything in `metadata`
// (WholeTensor of the saved size and dtype per tensor, OpaqueValue per bytes
// entry), in metadata order, with mapping = the entries of
// metadata.planner_data for the included keys (a key without a mapping entry
// maps to the one-element path (key)). With `keys`, only keys that are in the
// set, or one of whose object-path prefixes ("a", "a.b", ... joined by ".")
// is, are included (list indices print in decimal: path ("ema", 0) has the
// prefixes "ema" and "ema.0"). Unlike PyTorch (anchor-defects.md), an exact
// match always includes the key, and a key without a recorded object path
// (no planner_data, or the key missing from it) is included by exact match
// only. Without planner_data the description's mapping is nullopt.
StateDictDescription DescribeCheckpoint(const Metadata& metadata,
                                        const std::optional<absl::flat_hash_set<std::string>>& keys);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_LOAD_PLANNER_H_
