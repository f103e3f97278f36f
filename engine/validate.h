#ifndef DCPLAN_ENGINE_VALIDATE_H_
#define DCPLAN_ENGINE_VALIDATE_H_

// Validation of a global save plan's metadata: every chunk in bounds, no two
// chunks of one tensor sharing an element, chunk volumes adding up to the
// tensor's volume (spec/planner.md §4.8 with dcplan's overlap rule from
// spec/plan-json.md: a chunk of zero volume overlaps nothing; the volume check
// applies whatever the number of ranks).
//
// Cost: O(C·R·B + min(C·A, kMaxOverlapCandidates) log C) per tensor of C
// chunks of rank R, where B (at most 8) is the number of bytes the chunk
// offsets span in a dimension (they are radix sorted) and A is the number of
// chunks a sweep keeps active at once (internal/overlap_pairs.h); at most
// kMaxListedOverlapPairs overlapping pairs are reported per tensor, plus one
// summary problem with their count when there are more. The sweep runs along
// the dimension with the most distinct chunk offsets, so the layouts that make
// PyTorch's sweep quadratic (tensors split along a dimension other than the
// largest) stay fast. Chunks of rank 3 or more that guillotine cuts take
// apart (grids) are proved disjoint in O(R·C log C) before any sweep.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/metadata.h"
#include "engine/problem.h"

namespace dcplan {

// Bounds on the overlap report of one tensor: a degenerate metadata (5 000
// copies of one chunk) has millions of overlapping pairs; listing them all
// would take gigabytes.
inline constexpr size_t kMaxListedOverlapPairs = 64;
inline constexpr int64_t kMaxOverlapCandidates = int64_t{1} << 22;

// The message of the summary problem (kOverlap, no chunks) that follows the
// listed pairs when a tensor has more than kMaxListedOverlapPairs of them:
// "key:w has 12497500 overlapping chunk pairs; 64 are listed", or "at least
// N ... (the search stopped early)" when `complete` is false.
std::string OverlapSummaryMessage(absl::string_view fqn, int64_t total, bool complete, size_t listed);

// Problems of one tensor, in this order: out-of-bounds chunks in chunk order,
// overlapping pairs in ascending (i, j) order (i < j; the smallest
// kMaxListedOverlapPairs pairs, then the summary problem if there are more),
// then the volume mismatch. Past kMaxOverlapCandidates candidate pairs the
// search stops: the pairs listed are then the smallest of those found (none,
// for a rank-3 layout that no guillotine cut takes apart and whose first
// candidates all proved disjoint: the summary then says "at least 0").
// BytesStorageMetadata-like values are not tensors; 0-d tensors are always
// valid (as in PyTorch).
std::vector<PlanProblem> ValidateTensor(absl::string_view fqn, const TensorStorageMetadata& tensor);

// Whether two chunks of `tensor` share an element (dcplan's rule: chunks of
// another rank or of zero volume share none), stopping at the first pair
// found: O(C log C) for C chunks. 0-d tensors have none.
bool HasOverlappingChunks(const TensorStorageMetadata& tensor);

// Problems of every tensor of `metadata`, in metadata key order.
std::vector<PlanProblem> ValidateMetadata(const StateDictMetadata& metadata);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_VALIDATE_H_
