#ifndef DCPLAN_ENGINE_VALIDATE_H_
#define DCPLAN_ENGINE_VALIDATE_H_

// Validation of a global save plan's metadata: every chunk in bounds, no two
// chunks of one tensor sharing an element, chunk volumes adding up to the
// tensor's volume (spec/planner.md §4.8 with dcplan's overlap rule from
// spec/plan-json.md: a chunk of zero volume overlaps nothing; the volume check
// applies whatever the number of ranks).
//
// Cost: O(C log C + C·A + P) per tensor of C chunks, where A is the number of
// chunks a sweep keeps active at once and P the number of overlapping pairs
// reported. The sweep runs along the dimension with the most distinct chunk
// offsets, so the layouts that make PyTorch's sweep quadratic (tensors split
// along a dimension other than the largest) stay fast.

#include <vector>

#include "absl/strings/string_view.h"
#include "engine/metadata.h"
#include "engine/problem.h"

namespace dcplan {

// Problems of one tensor, in this order: out-of-bounds chunks in chunk order,
// overlapping pairs in ascending (i, j) order (i < j), then the volume
// mismatch. BytesStorageMetadata-like values are not tensors; 0-d tensors are
// always valid (as in PyTorch).
std::vector<PlanProblem> ValidateTensor(absl::string_view fqn, const TensorStorageMetadata& tensor);

// Problems of every tensor of `metadata`, in metadata key order.
std::vector<PlanProblem> ValidateMetadata(const StateDictMetadata& metadata);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_VALIDATE_H_
