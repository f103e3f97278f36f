#ifndef DCPLAN_ENGINE_PROBLEM_H_
#define DCPLAN_ENGINE_PROBLEM_H_

// PlanProblem: one fault found in a global save plan, precise enough to act
// on: which tensor, which chunks, what is wrong.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/box.h"

namespace dcplan {

enum class ProblemKind : uint8_t {
  // A chunk lies (partly) outside its tensor, or has another rank than it.
  kOutOfBounds,
  // Two chunks of one tensor share at least one element.
  kOverlap,
  // The chunks' volumes do not add up to the tensor's volume.
  kVolume,
  // The global plan cannot be built: a whole-tensor or bytes fqn written by two
  // different items, bytes and tensor items sharing one fqn, or shards of one
  // fqn disagreeing on dtype or global size.
  kPlanError,
  // Two items share (fqn, offsets) but differ in lengths, dtype, type or global
  // size: PyTorch's dedup would silently keep one of them; dcplan refuses.
  kConflict,
};

// "out_of_bounds", "overlap", "volume", "plan_error", "conflict".
absl::string_view ProblemKindName(ProblemKind kind);

struct PlanProblem {
  ProblemKind kind = ProblemKind::kPlanError;
  std::string fqn;
  // kOutOfBounds: {i}; kOverlap: {i, j} with i < j. Positions in the tensor's
  // metadata chunk list.
  std::vector<int64_t> chunks;
  // kVolume: the tensor's volume and the sum of its chunks' volumes
  // (saturated at INT64_MAX if the sum overflows).
  int64_t expected = 0;
  int64_t actual = 0;
  // kConflict: the shared offsets.
  Shape offsets;
  // A full sentence for people, naming the tensor, the chunks (printed) and
  // the ranks involved where known.
  std::string message;

  friend bool operator==(const PlanProblem& a, const PlanProblem& b) {
    return a.kind == b.kind && a.fqn == b.fqn && a.chunks == b.chunks && a.expected == b.expected &&
           a.actual == b.actual && a.offsets == b.offsets && a.message == b.message;
  }
  friend bool operator!=(const PlanProblem& a, const PlanProblem& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const PlanProblem& p);
};

std::string ToString(const PlanProblem& problem);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_PROBLEM_H_
