#ifndef DCPLAN_FUZZ_PIPELINE_CHECKS_H_
#define DCPLAN_FUZZ_PIPELINE_CHECKS_H_

// Invariants of the planning pipeline, checked by the fuzz targets. Every
// check traps (FUZZ_CHECK) with a readable account of the violation.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/codec.h"
#include "engine/description.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "fuzz/fuzz_check.h"

namespace dcplan::fuzzing {

// ValidateTensor agrees exactly (problems, order, messages) with the pairwise
// oracle for every tensor, and ValidateMetadata is their concatenation.
void CheckValidationMatchesOracle(const StateDictMetadata& metadata);

// CreateLocalSavePlan's contract: one item per whole tensor, per local chunk
// and per opaque value, in description order; planner_data = the mapping.
void CheckLocalSavePlan(const StateDictDescription& description, const SavePlan& plan);

// CreateGlobalSavePlan's result for `local_plans`:
// - each rank's plan is its local plan minus some items (hints aside);
// - every item key is written by at most one rank, and by exactly one unless
//   a plan error dropped it; in `clean` scenarios exactly once, by the rank
//   the dedup policy's reference picks (kPyTorch, kLowestRank);
// - the metadata lists exactly the kept tensor items' chunks, in plan order,
//   keys in first-appearance order, with index hints = chunk positions;
// - planner_data is the ChainMap merge of the mappings (flatten) or unset;
// - problems are conflicts, plan errors, then ValidateMetadata's, which
//   agrees with the pairwise oracle; `clean` scenarios have none.
void CheckGlobalSavePlan(const std::vector<SavePlan>& local_plans, const SavePlannerOptions& options,
                         const GlobalSavePlan& global, bool clean);

// CreateLocalLoadPlan's result equals the reference (items with hints, error
// kinds and keys; messages name the key), and, for requests of a valid
// stored tensor of at most a few thousand elements, copying integer arrays
// along the read items fills every destination element exactly once, from
// the stored chunk that holds it.
void CheckLocalLoadPlan(const StateDictDescription& description, const Metadata& metadata,
                        const LoadPlannerOptions& options, int64_t rank, const LocalLoadPlan& local);

// Decode(Encode(x)) == x through engine/codec.h.
void CheckCodecRoundTrip(const std::vector<SavePlan>& plans);
void CheckCodecRoundTrip(const std::vector<LoadPlan>& plans);
void CheckCodecRoundTrip(const Metadata& metadata);

// Readable forms for failure messages.
std::string Describe(const StateDictDescription& description);
std::string Describe(const std::vector<PlanProblem>& problems);

template <typename T>
std::string DescribeAll(const std::vector<T>& values) {
  std::string text;
  for (size_t i = 0; i < values.size(); ++i) absl::StrAppend(&text, "[", i, "] ", ToString(values[i]), "\n");
  return text;
}

}  // namespace dcplan::fuzzing

#endif  // DCPLAN_FUZZ_PIPELINE_CHECKS_H_
