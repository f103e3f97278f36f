#include "api/pickle/weights_only.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_scan.h"

namespace dcplan::pickle {
namespace {

bool IsTorchTypeName(absl::string_view name) {
  static const auto* const kDTypesAndSchemes = new absl::flat_hash_set<absl::string_view>{
      "float64", "float32", "float16", "bfloat16", "complex128", "complex64", "complex32", "int64", "int32",
      "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool", "quint8", "qint8", "qint32", "quint4x2",
      "quint2x4", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
      "float4_e2m1fn_x2", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7", "int1", "int2", "int3",
      "int4", "int5", "int6", "int7", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "half", "float",
      "double", "long", "int", "short", "cfloat", "cdouble", "chalf", "per_tensor_affine", "per_tensor_symmetric",
      "per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams", "Size", "Tensor",
      "device"};
  return kDTypesAndSchemes->contains(name) || absl::EndsWith(name, "Storage") || absl::EndsWith(name, "Tensor");
}

}  // namespace

bool IsWeightsOnlyGlobal(absl::string_view name) {
  static const auto* const kExact = new absl::flat_hash_set<absl::string_view>{
      "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
      "torch.serialization._get_layout", "_codecs.encode", "builtins.bytearray", "builtins.set",
      "builtins.complex", "torch._tensor._rebuild_from_type_v2",
      // LibTorch's own pickler (torch::pickle_save, which writes dcplan's
      // bytes items) builds typed lists with these; they only construct.
      "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
      "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist",
      "torch.jit._pickle.build_complexlist", "torch.jit._pickle.restore_type_tag"};
  absl::string_view rest = name;
  // Protocol 2 names Python 3's builtins by their Python 2 module, which
  // unpicklers map back.
  if (absl::ConsumePrefix(&rest, "__builtin__.")) return IsWeightsOnlyGlobal(absl::StrCat("builtins.", rest));
  if (kExact->contains(name)) return true;
  if (absl::ConsumePrefix(&rest, "torch._utils._rebuild_")) return !rest.empty() && !absl::StrContains(rest, '.');
  if (absl::ConsumePrefix(&rest, "torch.storage.")) return rest == "TypedStorage" || rest == "UntypedStorage";
  if (absl::ConsumePrefix(&rest, "torch.")) return !absl::StrContains(rest, '.') && IsTorchTypeName(rest);
  return false;
}

absl::Status CheckWeightsOnlyPickle(absl::string_view pickle) {
  std::vector<std::string> globals;
  if (absl::Status structure = CheckPickleStructure(pickle, &globals); !structure.ok()) return structure;
  for (const std::string& global : globals) {
    if (!IsWeightsOnlyGlobal(global)) {
      return absl::InvalidArgumentError(absl::StrCat("names global '", absl::CHexEscape(global),
                                                     "', which a weights_only load refuses (it could run code)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dcplan::pickle
