#ifndef DCPLAN_ENGINE_TESTING_VALIDATE_ORACLE_H_
#define DCPLAN_ENGINE_TESTING_VALIDATE_ORACLE_H_

// Test-only reference for ValidateTensor (engine/validate.h): the obvious
// implementation, comparing every pair of chunks. It must return exactly what
// ValidateTensor returns (same problems, same order, same messages); property
// tests and fuzzers compare the two. O(C²) per tensor: small inputs only.

#include <vector>

#include "absl/strings/string_view.h"
#include "engine/metadata.h"
#include "engine/problem.h"

namespace dcplan {

std::vector<PlanProblem> ValidateTensorPairwise(absl::string_view fqn, const TensorStorageMetadata& tensor);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_TESTING_VALIDATE_ORACLE_H_
