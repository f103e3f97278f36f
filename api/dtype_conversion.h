#ifndef DCPLAN_API_DTYPE_CONVERSION_H_
#define DCPLAN_API_DTYPE_CONVERSION_H_

// LibTorch's c10::ScalarType <-> the engine's DType. LibTorch 2.x has every
// dtype dcplan's engine knows; LibTorch 1.13 (--config=torch1) knows a subset
// (no uint16/32/64, no float8): converting those is an error, not a guess.

#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"
#include "engine/dtype.h"

namespace dcplan {

// The DType of a LibTorch scalar type. Error (InvalidArgument) for scalar
// types DCP cannot record (Undefined, NumOptions).
absl::StatusOr<DType> DTypeFromScalarType(c10::ScalarType scalar_type);

// The LibTorch scalar type of `dtype`. Error (Unimplemented, naming the
// dtype and this LibTorch's version) for dtypes this LibTorch does not have
// (on 1.13: uint16, uint32, uint64, the float8 types).
absl::StatusOr<c10::ScalarType> ScalarTypeFromDType(DType dtype);

}  // namespace dcplan

#endif  // DCPLAN_API_DTYPE_CONVERSION_H_
