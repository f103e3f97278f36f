#include "api/dtype_conversion.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "api/internal/torch_compat.h"

namespace dcplan {
namespace {

struct DTypePair {
  DType dtype;
  c10::ScalarType scalar_type;
};

// Every scalar type of this LibTorch that a tensor can have and DCP can
// record, with its DCP dtype. (LibTorch 2.x also has float8_e8m0fnu, the
// float4 and sub-byte types; DCP checkpoints dcplan reads or writes do not
// use them yet, so they stay unconvertible.)
constexpr DTypePair kPairs[] = {
    {DType::kUInt8, c10::ScalarType::Byte},
    {DType::kInt8, c10::ScalarType::Char},
    {DType::kInt16, c10::ScalarType::Short},
    {DType::kInt32, c10::ScalarType::Int},
    {DType::kInt64, c10::ScalarType::Long},
    {DType::kFloat16, c10::ScalarType::Half},
    {DType::kFloat32, c10::ScalarType::Float},
    {DType::kFloat64, c10::ScalarType::Double},
    {DType::kComplex32, c10::ScalarType::ComplexHalf},
    {DType::kComplex64, c10::ScalarType::ComplexFloat},
    {DType::kComplex128, c10::ScalarType::ComplexDouble},
    {DType::kBool, c10::ScalarType::Bool},
    {DType::kQInt8, c10::ScalarType::QInt8},
    {DType::kQUInt8, c10::ScalarType::QUInt8},
    {DType::kQInt32, c10::ScalarType::QInt32},
    {DType::kBFloat16, c10::ScalarType::BFloat16},
    {DType::kQUInt4x2, c10::ScalarType::QUInt4x2},
    {DType::kQUInt2x4, c10::ScalarType::QUInt2x4},
#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
    {DType::kUInt16, c10::ScalarType::UInt16},
    {DType::kUInt32, c10::ScalarType::UInt32},
    {DType::kUInt64, c10::ScalarType::UInt64},
    {DType::kFloat8E4M3FN, c10::ScalarType::Float8_e4m3fn},
    {DType::kFloat8E5M2, c10::ScalarType::Float8_e5m2},
    {DType::kFloat8E4M3FNUZ, c10::ScalarType::Float8_e4m3fnuz},
    {DType::kFloat8E5M2FNUZ, c10::ScalarType::Float8_e5m2fnuz},
#endif
};

}  // namespace

absl::StatusOr<DType> DTypeFromScalarType(c10::ScalarType scalar_type) {
  for (const DTypePair& pair : kPairs) {
    if (pair.scalar_type == scalar_type) return pair.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("scalar type ", static_cast<int>(scalar_type), " (",
                                                 c10::toString(scalar_type), ") has no DCP dtype"));
}

absl::StatusOr<c10::ScalarType> ScalarTypeFromDType(DType dtype) {
  for (const DTypePair& pair : kPairs) {
    if (pair.dtype == dtype) return pair.scalar_type;
  }
  return absl::UnimplementedError(
      absl::StrCat("dtype ", DTypeName(dtype), " is not supported by this LibTorch (", TORCH_VERSION,
                   ")", TORCH_VERSION_MAJOR < 2 ? "; LibTorch 2.x has it" : ""));
}

}  // namespace dcplan
