#ifndef DCPLAN_API_INTERNAL_STATUS_MACROS_H_
#define DCPLAN_API_INTERNAL_STATUS_MACROS_H_

// Early returns for Status / StatusOr code of the API layer (Abseil 20220623
// has no public equivalent).
//
//   DCPLAN_RETURN_IF_ERROR(WriteHeader(fd));
//   DCPLAN_ASSIGN_OR_RETURN(Header header, ParseHeader(bytes));

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DCPLAN_STATUS_CONCAT_INNER(a, b) a##b
#define DCPLAN_STATUS_CONCAT(a, b) DCPLAN_STATUS_CONCAT_INNER(a, b)

#define DCPLAN_RETURN_IF_ERROR(expr)                        \
  do {                                                      \
    ::absl::Status dcplan_status_macro_status = (expr);     \
    if (!dcplan_status_macro_status.ok()) return dcplan_status_macro_status; \
  } while (0)

#define DCPLAN_ASSIGN_OR_RETURN(lhs, expr) \
  DCPLAN_ASSIGN_OR_RETURN_IMPL(DCPLAN_STATUS_CONCAT(dcplan_status_or_, __LINE__), lhs, expr)
#define DCPLAN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)

#endif  // DCPLAN_API_INTERNAL_STATUS_MACROS_H_
