#include "api/pickle/tensor_v3_pickle.h"

#include <algorithm>
#include <cstdint>
#include <limits>
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

// The call's name in messages: "_rebuild_tensor_v2" or "_rebuild_tensor_v3".
class CallReader {
 public:
  explicit CallReader(absl::string_view name) : name_(name) {}

  absl::Status Malformed(absl::string_view what, const Value& found) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": expected ", what, ", found ", DescribeValue(found)));
  }
  absl::Status Invalid(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", message));
  }

  absl::StatusOr<int64_t> NonNegativeInt(const Value& v, absl::string_view what) const {
    if (v.kind != ValueKind::kInt || v.integer < 0) return Malformed(absl::StrCat(what, " (an int >= 0)"), v);
    return v.integer;
  }

  absl::StatusOr<std::vector<int64_t>> NonNegativeInts(const Value& v, absl::string_view what) const {
    if (v.kind != ValueKind::kTuple) return Malformed(absl::StrCat(what, " (a tuple of ints)"), v);
    std::vector<int64_t> out;
    out.reserve(v.items.size());
    for (const Value* item : v.items) {
      DCPLAN_ASSIGN_OR_RETURN(int64_t n, NonNegativeInt(*item, what));
      out.push_back(n);
    }
    return out;
  }

  absl::StatusOr<std::string> Str(const Value& v, absl::string_view what) const {
    if (v.kind != ValueKind::kString) return Malformed(absl::StrCat(what, " (a str)"), v);
    return std::string(v.text);
  }

  // ("storage", <storage class>, key, location, size) behind BINPERSID: the
  // storage class, with key, location and size (the last item) filled in.
  absl::StatusOr<const Value*> Storage(const Value& storage, absl::string_view size_name, RebuildTensorCall& out,
                                       int64_t& size) const {
    if (storage.kind != ValueKind::kObject || storage.global != GlobalKind::kPersistentId) {
      return Malformed("a storage persistent id", storage);
    }
    const Value& id = *storage.items[0];
    if (id.kind != ValueKind::kTuple || id.items.size() != 5) return Malformed("a 5-tuple persistent id", id);
    DCPLAN_ASSIGN_OR_RETURN(std::string tag, Str(*id.items[0], "the persistent id's tag"));
    if (tag != "storage") return Invalid(absl::StrCat("persistent id '", tag, "'"));
    DCPLAN_ASSIGN_OR_RETURN(out.storage_key, Str(*id.items[2], "the storage key"));
    DCPLAN_ASSIGN_OR_RETURN(out.storage_location, Str(*id.items[3], "the storage location"));
    DCPLAN_ASSIGN_OR_RETURN(size, NonNegativeInt(*id.items[4], size_name));
    return id.items[1];
  }

  // storage_offset, size, stride, requires_grad and the (empty) backward
  // hooks: arguments 1 to 5 of both calls.
  absl::Status View(const Children<const Value*>& args, RebuildTensorCall& out) const {
    DCPLAN_ASSIGN_OR_RETURN(out.storage_offset, NonNegativeInt(*args[1], "the storage offset"));
    DCPLAN_ASSIGN_OR_RETURN(out.sizes, NonNegativeInts(*args[2], "the size"));
    DCPLAN_ASSIGN_OR_RETURN(out.strides, NonNegativeInts(*args[3], "the stride"));
    if (out.sizes.size() != out.strides.size()) {
      return Invalid(absl::StrCat(out.sizes.size(), " sizes but ", out.strides.size(), " strides"));
    }
    if (args[4]->kind != ValueKind::kBool) return Malformed("requires_grad (a bool)", *args[4]);
    out.requires_grad = args[4]->boolean;
    if (!IsEmptyDict(*args[5])) return Malformed("empty backward hooks (OrderedDict())", *args[5]);
    return absl::OkStatus();
  }

  static bool IsEmptyDict(const Value& v) { return v.kind == ValueKind::kDict && v.entries.empty(); }
  absl::string_view name() const { return name_; }

 private:
  absl::string_view name_;
};

bool IsQuantized(DType dtype) {
  switch (dtype) {
    case DType::kQInt8:
    case DType::kQUInt8:
    case DType::kQInt32:
    case DType::kQUInt4x2:
    case DType::kQUInt2x4:
      return true;
    default:
      return false;
  }
}

// The root call of `pickle`, which must be `function` with `min_args` to
// `max_args` arguments.
absl::StatusOr<const Children<const Value*>*> RootCall(const PickleDocument& document, GlobalKind function,
                                                        const CallReader& reader, size_t min_args, size_t max_args) {
  const Value& root = document.root();
  if (root.kind != ValueKind::kObject || root.global != function) {
    return reader.Malformed(absl::StrCat("a call of torch._utils.", reader.name()), root);
  }
  if (root.items.size() < min_args || root.items.size() > max_args) {
    return reader.Invalid(absl::StrCat(root.items.size(), " arguments (",
                                       min_args == max_args ? absl::StrCat(min_args)
                                                            : absl::StrCat(min_args, " or ", max_args),
                                       " expected)"));
  }
  return &root.items;
}

}  // namespace

std::string ToString(const RebuildTensorCall& call) {
  return absl::StrCat("_rebuild_tensor_v", call.version, "(storage data/", call.storage_key, " (",
                      call.storage_bytes, " bytes, ", call.storage_location, "), offset ", call.storage_offset, ", size (",
                      absl::StrJoin(call.sizes, ", "), "), stride (", absl::StrJoin(call.strides, ", "), "), ",
                      DTypeName(call.dtype), call.requires_grad ? ", requires_grad" : "", ")");
}

bool CallsRebuildTensorV3(absl::string_view pickle) {
  std::vector<std::string> globals;
  // A malformed pickle names nothing reliably; its reader reports why.
  if (!CheckPickleStructure(pickle, &globals).ok()) return false;
  return NamesRebuildTensorV3(globals);
}

bool NamesRebuildTensorV3(const std::vector<std::string>& globals) {
  return std::find(globals.begin(), globals.end(), kRebuildTensorV3) != globals.end();
}

absl::StatusOr<RebuildTensorCall> ParseRebuildTensorV3(absl::string_view pickle) {
  const CallReader reader("_rebuild_tensor_v3");
  DCPLAN_ASSIGN_OR_RETURN(PickleDocument document, Unpickle(pickle, PickleVocabulary::kTensorRecord));
  DCPLAN_ASSIGN_OR_RETURN(const Children<const Value*>* args,
                          RootCall(document, GlobalKind::kRebuildTensorV3, reader, 7, 8));
  RebuildTensorCall out;
  DCPLAN_ASSIGN_OR_RETURN(const Value* storage_class,
                          reader.Storage(*(*args)[0], "the storage's size in bytes", out, out.storage_bytes));
  if (storage_class->kind != ValueKind::kGlobal || storage_class->global != GlobalKind::kUntypedStorage) {
    return reader.Malformed("torch.storage.UntypedStorage", *storage_class);
  }
  DCPLAN_RETURN_IF_ERROR(reader.View(*args, out));
  const Value& dtype = *(*args)[6];
  if (dtype.kind != ValueKind::kGlobal || dtype.global != GlobalKind::kDType) {
    return reader.Malformed("a torch dtype", dtype);
  }
  out.dtype = static_cast<DType>(dtype.integer);
  if (IsQuantized(out.dtype)) {
    return reader.Invalid(absl::StrCat("quantized dtype torch.", DTypeName(out.dtype), " (PyTorch cannot build it)"));
  }
  if (args->size() == 8 && (*args)[7]->kind != ValueKind::kNone && !CallReader::IsEmptyDict(*(*args)[7])) {
    return reader.Invalid("tensor metadata (conjugate or negative bits) is not supported");
  }
  return out;
}

absl::StatusOr<RebuildTensorCall> ParseRebuildTensorV2(absl::string_view pickle) {
  const CallReader reader("_rebuild_tensor_v2");
  DCPLAN_ASSIGN_OR_RETURN(PickleDocument document, Unpickle(pickle, PickleVocabulary::kTensorRecord));
  DCPLAN_ASSIGN_OR_RETURN(const Children<const Value*>* args,
                          RootCall(document, GlobalKind::kRebuildTensorV2, reader, 6, 6));
  RebuildTensorCall out;
  out.version = 2;
  int64_t numel = 0;
  DCPLAN_ASSIGN_OR_RETURN(const Value* storage_class,
                          reader.Storage(*(*args)[0], "the storage's element count", out, numel));
  if (storage_class->kind != ValueKind::kGlobal || storage_class->global != GlobalKind::kTypedStorage) {
    return reader.Malformed("a typed storage class (torch.FloatStorage, ...)", *storage_class);
  }
  out.dtype = static_cast<DType>(storage_class->integer);
  const int64_t element_size = ElementSize(out.dtype);
  if (numel > std::numeric_limits<int64_t>::max() / element_size) {
    return reader.Invalid(absl::StrCat("a storage of ", numel, " elements overflows int64 bytes"));
  }
  out.storage_bytes = numel * element_size;
  DCPLAN_RETURN_IF_ERROR(reader.View(*args, out));
  return out;
}

}  // namespace dcplan::pickle
