#include "engine/dtype.h"

#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dcplan {
namespace {

struct DTypeInfo {
  DType dtype;
  absl::string_view name;
  int64_t element_size;
};

constexpr std::array<DTypeInfo, kNumDTypes> kDTypes = {{
    {DType::kFloat32, "float32", 4},
    {DType::kFloat64, "float64", 8},
    {DType::kFloat16, "float16", 2},
    {DType::kBFloat16, "bfloat16", 2},
    {DType::kComplex32, "complex32", 4},
    {DType::kComplex64, "complex64", 8},
    {DType::kComplex128, "complex128", 16},
    {DType::kInt8, "int8", 1},
    {DType::kInt16, "int16", 2},
    {DType::kInt32, "int32", 4},
    {DType::kInt64, "int64", 8},
    {DType::kUInt8, "uint8", 1},
    {DType::kUInt16, "uint16", 2},
    {DType::kUInt32, "uint32", 4},
    {DType::kUInt64, "uint64", 8},
    {DType::kBool, "bool", 1},
    {DType::kFloat8E4M3FN, "float8_e4m3fn", 1},
    {DType::kFloat8E5M2, "float8_e5m2", 1},
    {DType::kFloat8E4M3FNUZ, "float8_e4m3fnuz", 1},
    {DType::kFloat8E5M2FNUZ, "float8_e5m2fnuz", 1},
    {DType::kQInt8, "qint8", 1},
    {DType::kQUInt8, "quint8", 1},
    {DType::kQInt32, "qint32", 4},
    {DType::kQUInt4x2, "quint4x2", 1},
    {DType::kQUInt2x4, "quint2x4", 1},
}};

struct Alias {
  absl::string_view alias;
  DType dtype;
};

constexpr std::array<Alias, 9> kAliases = {{
    {"float", DType::kFloat32},
    {"double", DType::kFloat64},
    {"half", DType::kFloat16},
    {"long", DType::kInt64},
    {"int", DType::kInt32},
    {"short", DType::kInt16},
    {"cfloat", DType::kComplex64},
    {"cdouble", DType::kComplex128},
    {"chalf", DType::kComplex32},
}};

const DTypeInfo& Info(DType dtype) { return kDTypes[static_cast<int>(dtype)]; }

}  // namespace

int64_t ElementSize(DType dtype) { return Info(dtype).element_size; }

absl::string_view DTypeName(DType dtype) { return Info(dtype).name; }

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  absl::string_view bare = name;
  if (absl::StartsWith(bare, "torch.")) bare.remove_prefix(6);
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == bare) return info.dtype;
  }
  for (const Alias& alias : kAliases) {
    if (alias.alias == bare) return alias.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", name, "\""));
}

std::ostream& operator<<(std::ostream& os, DType dtype) { return os << DTypeName(dtype); }

}  // namespace dcplan
