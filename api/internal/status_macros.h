#ifndef DCPLAN_API_INTERNAL_STATUS_MACROS_H_
#define DCPLAN_API_INTERNAL_STATUS_MACROS_H_

// Early returns for functions returning absl::Status or absl::StatusOr<T>
// (Abseil 20220623 has no public equivalent).
//
//   DCPLAN_RETURN_IF_ERROR(writer.SetUp());
//   DCPLAN_ASSIGN_OR_RETURN(SavePlan plan, planner.CreateLocalPlan());

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DCPLAN_STATUS_CONCAT_INNER(a, b) a##b
#define DCPLAN_STATUS_CONCAT(a, b) DCPLAN_STATUS_CONCAT_INNER(a, b)

#define DCPLAN_RETURN_IF_ERROR(expr)                       \
  do {                                                     \
    ::absl::Status dcplan_status_ = (expr);                \
    if (!dcplan_status_.ok()) return dcplan_status_;       \
  } while (0)

#define DCPLAN_ASSIGN_OR_RETURN(lhs, expr) \
  DCPLAN_ASSIGN_OR_RETURN_IMPL(DCPLAN_STATUS_CONCAT(dcplan_status_or_, __LINE__), lhs, expr)
#define DCPLAN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)

#endif  // DCPLAN_API_INTERNAL_STATUS_MACROS_H_
