#include "api/pickle/tensor_v3_pickle.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/internal/status_macros.h"
#include "api/pickle/pickle_reader.h"
#include "api/pickle/pickle_scan.h"

namespace dcplan::pickle {
namespace {

constexpr absl::string_view kRebuildTensorV3 = "torch._utils._rebuild_tensor_v3";

absl::Status Malformed(absl::string_view what, const Value& found) {
  return absl::InvalidArgumentError(
      absl::StrCat("_rebuild_tensor_v3: expected ", what, ", found ", DescribeValue(found)));
}

absl::StatusOr<int64_t> NonNegativeInt(const Value& v, absl::string_view what) {
  if (v.kind != ValueKind::kInt || v.integer < 0) return Malformed(absl::StrCat(what, " (an int >= 0)"), v);
  return v.integer;
}

absl::StatusOr<std::vector<int64_t>> NonNegativeInts(const Value& v, absl::string_view what) {
  if (v.kind != ValueKind::kTuple) return Malformed(absl::StrCat(what, " (a tuple of ints)"), v);
  std::vector<int64_t> out;
  out.reserve(v.items.size());
  for (const Value* item : v.items) {
    DCPLAN_ASSIGN_OR_RETURN(int64_t n, NonNegativeInt(*item, what));
    out.push_back(n);
  }
  return out;
}

absl::StatusOr<std::string> Str(const Value& v, absl::string_view what) {
  if (v.kind != ValueKind::kString) return Malformed(absl::StrCat(what, " (a str)"), v);
  return std::string(v.text);
}

bool IsEmptyDict(const Value& v) { return v.kind == ValueKind::kDict && v.entries.empty(); }

// ("storage", torch.storage.UntypedStorage, key, location, nbytes) behind BINPERSID.
absl::Status ReadStorage(const Value& storage, RebuildTensorV3& out) {
  if (storage.kind != ValueKind::kObject || storage.global != GlobalKind::kPersistentId) {
    return Malformed("a storage persistent id", storage);
  }
  const Value& id = *storage.items[0];
  if (id.kind != ValueKind::kTuple || id.items.size() != 5) return Malformed("a 5-tuple persistent id", id);
  DCPLAN_ASSIGN_OR_RETURN(std::string tag, Str(*id.items[0], "the persistent id's tag"));
  if (tag != "storage") return absl::InvalidArgumentError(absl::StrCat("_rebuild_tensor_v3: persistent id '", tag, "'"));
  const Value& storage_class = *id.items[1];
  if (storage_class.kind != ValueKind::kGlobal || storage_class.global != GlobalKind::kUntypedStorage) {
    return Malformed("torch.storage.UntypedStorage", storage_class);
  }
  DCPLAN_ASSIGN_OR_RETURN(out.storage_key, Str(*id.items[2], "the storage key"));
  DCPLAN_ASSIGN_OR_RETURN(out.storage_location, Str(*id.items[3], "the storage location"));
  DCPLAN_ASSIGN_OR_RETURN(out.storage_bytes, NonNegativeInt(*id.items[4], "the storage's size in bytes"));
  return absl::OkStatus();
}

absl::Status ReadDType(const Value& v, RebuildTensorV3& out) {
  if (v.kind != ValueKind::kGlobal || v.global != GlobalKind::kDType) return Malformed("a torch dtype", v);
  out.dtype = static_cast<DType>(v.integer);
  switch (out.dtype) {
    case DType::kQInt8:
    case DType::kQUInt8:
    case DType::kQInt32:
    case DType::kQUInt4x2:
    case DType::kQUInt2x4:
      return absl::InvalidArgumentError(
          absl::StrCat("_rebuild_tensor_v3: quantized dtype torch.", DTypeName(out.dtype), " (PyTorch cannot build it)"));
    default:
      return absl::OkStatus();
  }
}

}  // namespace

std::string ToString(const RebuildTensorV3& call) {
  return absl::StrCat("_rebuild_tensor_v3(storage data/", call.storage_key, " (", call.storage_bytes, " bytes, ",
                      call.storage_location, "), offset ", call.storage_offset, ", size (",
                      absl::StrJoin(call.sizes, ", "), "), stride (", absl::StrJoin(call.strides, ", "), "), ",
                      DTypeName(call.dtype), call.requires_grad ? ", requires_grad" : "", ")");
}

bool CallsRebuildTensorV3(absl::string_view pickle) {
  std::vector<std::string> globals;
  // A malformed pickle names nothing reliably; its reader reports why.
  if (!CheckPickleStructure(pickle, &globals).ok()) return false;
  return std::find(globals.begin(), globals.end(), kRebuildTensorV3) != globals.end();
}

absl::StatusOr<RebuildTensorV3> ParseRebuildTensorV3(absl::string_view pickle) {
  DCPLAN_ASSIGN_OR_RETURN(PickleDocument document, Unpickle(pickle, PickleVocabulary::kTensorRecord));
  const Value& root = document.root();
  if (root.kind != ValueKind::kObject || root.global != GlobalKind::kRebuildTensorV3) {
    return Malformed("a call of torch._utils._rebuild_tensor_v3", root);
  }
  const Children<const Value*>& args = root.items;
  if (args.size() != 7 && args.size() != 8) {
    return absl::InvalidArgumentError(absl::StrCat("_rebuild_tensor_v3: ", args.size(), " arguments (7 or 8 expected)"));
  }
  RebuildTensorV3 out;
  DCPLAN_RETURN_IF_ERROR(ReadStorage(*args[0], out));
  DCPLAN_ASSIGN_OR_RETURN(out.storage_offset, NonNegativeInt(*args[1], "the storage offset"));
  DCPLAN_ASSIGN_OR_RETURN(out.sizes, NonNegativeInts(*args[2], "the size"));
  DCPLAN_ASSIGN_OR_RETURN(out.strides, NonNegativeInts(*args[3], "the stride"));
  if (out.sizes.size() != out.strides.size()) {
    return absl::InvalidArgumentError(absl::StrCat("_rebuild_tensor_v3: ", out.sizes.size(), " sizes but ",
                                                   out.strides.size(), " strides"));
  }
  if (args[4]->kind != ValueKind::kBool) return Malformed("requires_grad (a bool)", *args[4]);
  out.requires_grad = args[4]->boolean;
  if (!IsEmptyDict(*args[5])) return Malformed("empty backward hooks (OrderedDict())", *args[5]);
  DCPLAN_RETURN_IF_ERROR(ReadDType(*args[6], out));
  if (args.size() == 8 && args[7]->kind != ValueKind::kNone && !IsEmptyDict(*args[7])) {
    return absl::InvalidArgumentError(
        "_rebuild_tensor_v3: tensor metadata (conjugate or negative bits) is not supported");
  }
  return out;
}

}  // namespace dcplan::pickle
