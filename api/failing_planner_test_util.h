#ifndef DCPLAN_API_FAILING_PLANNER_TEST_UTIL_H_
#define DCPLAN_API_FAILING_PLANNER_TEST_UTIL_H_

// A save planner whose data resolution fails on one rank ("device lost"):
// the failure a storage writer must survive without committing anything.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/planners.h"

namespace dcplan::testing_util {

class FailOnRankSavePlanner : public DefaultSavePlanner {
 public:
  explicit FailOnRankSavePlanner(int64_t failing_rank) : failing_rank_(failing_rank) {}
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    if (rank() == failing_rank_) return absl::UnavailableError("device lost");
    return DefaultSavePlanner::ResolveData(item);
  }

 private:
  int64_t failing_rank_;
};

}  // namespace dcplan::testing_util

#endif  // DCPLAN_API_FAILING_PLANNER_TEST_UTIL_H_
