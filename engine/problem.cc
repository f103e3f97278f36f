#include "engine/problem.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dcplan {

absl::string_view ProblemKindName(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::kOutOfBounds: return "out_of_bounds";
    case ProblemKind::kOverlap: return "overlap";
    case ProblemKind::kVolume: return "volume";
    case ProblemKind::kPlanError: return "plan_error";
    case ProblemKind::kConflict: return "conflict";
  }
  return "?";
}

std::string ToString(const PlanProblem& p) {
  std::string out = absl::StrCat(ProblemKindName(p.kind), " fqn='", p.fqn, "'");
  if (!p.chunks.empty()) absl::StrAppend(&out, " chunks=[", absl::StrJoin(p.chunks, ", "), "]");
  if (p.kind == ProblemKind::kVolume) absl::StrAppend(&out, " expected=", p.expected, " actual=", p.actual);
  if (p.kind == ProblemKind::kConflict) absl::StrAppend(&out, " offsets=", ShapeToString(p.offsets));
  if (!p.message.empty()) absl::StrAppend(&out, ": ", p.message);
  return out;
}

std::ostream& operator<<(std::ostream& os, const PlanProblem& p) { return os << ToString(p); }

}  // namespace dcplan
