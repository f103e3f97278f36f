#ifndef DCPLAN_API_PICKLE_TENSOR_V3_PICKLE_H_
#define DCPLAN_API_PICKLE_TENSOR_V3_PICKLE_H_

// The data.pkl of a torch.save'd tensor (spec/format.md §6), read by
// dcplan's own restricted unpickler (PickleVocabulary::kTensorRecord): only
// the globals below are allowed, nothing is executed, and every other global
// is refused by name. Two call shapes:
//
//   torch._utils._rebuild_tensor_v2(
//       persistent_id(("storage", torch.<Name>Storage, key, location, numel)),
//       storage_offset, size, stride, requires_grad, OrderedDict())
//
// for the dtypes with a legacy storage class (what LibTorch and PyTorch write
// for float32, bfloat16, int64, ...), and
//
//   torch._utils._rebuild_tensor_v3(
//       persistent_id(("storage", torch.storage.UntypedStorage, key, location, nbytes)),
//       storage_offset, size, stride, requires_grad, OrderedDict(), torch.<dtype>[, metadata])
//
// for those without one (uint16/32/64, the float8 kinds, complex32), which
// LibTorch's C++ unpickler does not know. Pure C++: the caller maps the dtype
// to a scalar type and checks the view against the storage record.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/dtype.h"

namespace dcplan::pickle {

// The arguments of one _rebuild_tensor_v2 / _v3 call, as pickled (a v2
// call's typed storage gives the dtype, and its element count times the
// element size the storage's bytes).
struct RebuildTensorCall {
  int version = 3;  // 2: _rebuild_tensor_v2, 3: _rebuild_tensor_v3
  DType dtype = DType::kUInt8;
  std::string storage_key;       // the record data/<storage_key> holds the bytes
  std::string storage_location;  // "cpu", "cuda:0", ...: where it was saved from
  int64_t storage_bytes = 0;     // the untyped storage's size in bytes
  int64_t storage_offset = 0;    // in elements of `dtype`
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements; as many as sizes
  bool requires_grad = false;

  friend bool operator==(const RebuildTensorCall& a, const RebuildTensorCall& b) {
    return a.version == b.version && a.dtype == b.dtype && a.storage_key == b.storage_key && a.storage_location == b.storage_location &&
           a.storage_bytes == b.storage_bytes && a.storage_offset == b.storage_offset && a.sizes == b.sizes &&
           a.strides == b.strides && a.requires_grad == b.requires_grad;
  }
  friend bool operator!=(const RebuildTensorCall& a, const RebuildTensorCall& b) { return !(a == b); }
};

// "_rebuild_tensor_v3(storage data/0 (12 bytes, cpu), offset 0, size (2, 3),
// stride (3, 1), uint16)".
std::string ToString(const RebuildTensorCall& call);
inline std::ostream& operator<<(std::ostream& os, const RebuildTensorCall& call) { return os << ToString(call); }

// True if `pickle` calls torch._utils._rebuild_tensor_v3 (names that global
// anywhere); such a record is read with ParseRebuildTensorV3, not LibTorch.
bool CallsRebuildTensorV3(absl::string_view pickle);

// The same decision from the globals CheckPickleStructure already listed.
bool NamesRebuildTensorV3(const std::vector<std::string>& globals);

// The call of a _rebuild_tensor_v2 data.pkl of exactly the shape above (6
// arguments, a typed storage of a non-quantized dtype). Errors
// (InvalidArgument) as ParseRebuildTensorV3's, and for a storage whose bytes
// (numel times the element size) overflow int64. Anything this refuses may
// still be a tensor LibTorch's own unpickler builds (a 7th argument,
// quantized storages): a caller that must accept every tensor record falls
// back to it.
absl::StatusOr<RebuildTensorCall> ParseRebuildTensorV2(absl::string_view pickle);

// The call of a _rebuild_tensor_v3 data.pkl. Errors (InvalidArgument): any
// other global ("pickle: global 'os.system' is not allowed (offset 2)"), a
// malformed pickle, a root that is not such a call, a persistent id that is
// not ("storage", torch.storage.UntypedStorage, str, str, int >= 0), negative
// offsets, sizes or strides, sizes and strides of different lengths, a
// quantized dtype, backward hooks other than an empty OrderedDict, tensor
// metadata (conjugate or negative bits: the 8th argument) that is not empty.
absl::StatusOr<RebuildTensorCall> ParseRebuildTensorV3(absl::string_view pickle);

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_TENSOR_V3_PICKLE_H_
