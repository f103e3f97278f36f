#ifndef DCPLAN_ENGINE_DTYPE_H_
#define DCPLAN_ENGINE_DTYPE_H_

// DType: PyTorch's scalar types, by their Python names, with element sizes.

#include <cstdint>
#include <optional>
#include <ostream>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace dcplan {

enum class DType : uint8_t {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kComplex32,
  kComplex64,
  kComplex128,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kBool,
  kFloat8E4M3FN,
  kFloat8E5M2,
  kFloat8E4M3FNUZ,
  kFloat8E5M2FNUZ,
  kQInt8,
  kQUInt8,
  kQInt32,
  kQUInt4x2,
  kQUInt2x4,
};

inline constexpr int kNumDTypes = static_cast<int>(DType::kQUInt2x4) + 1;

// Bytes per element (quint4x2 and quint2x4 pack several values in one byte;
// PyTorch's element_size() reports 1 for them).
int64_t ElementSize(DType dtype);

// Python name without the "torch." prefix: "float32", "bfloat16", ...
absl::string_view DTypeName(DType dtype);

// Parses a canonical name ("float32"), optionally prefixed with "torch.", and
// PyTorch's aliases ("float", "double", "half", "long", "int", "short",
// "cfloat", "cdouble", "chalf").
absl::StatusOr<DType> ParseDType(absl::string_view name);

std::ostream& operator<<(std::ostream& os, DType dtype);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_DTYPE_H_
