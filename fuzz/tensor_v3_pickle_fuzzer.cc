// Fuzz target for the data.pkl of tensor records (_rebuild_tensor_v3 and
// _rebuild_tensor_v2, api/pickle/tensor_v3_pickle.h), which dcplan reads with
// its restricted unpickler from untrusted checkpoints and .pt files.
//
// For every input:
// - ParseRebuildTensorV3 and ParseRebuildTensorV2 either fail with a
//   described InvalidArgument or return a call whose sizes and strides are
//   as many and all >= 0, whose offset and storage size are >= 0, and whose
//   dtype is not quantized;
// - an input ParseRebuildTensorV3 accepts names _rebuild_tensor_v3
//   (CallsRebuildTensorV3), the check that routes records to that reader;
//   one ParseRebuildTensorV2 accepts does not, and has a whole number of
//   elements in its storage;
// - CallsRebuildTensorV3 never crashes on anything.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/pickle/tensor_v3_pickle.h"
#include "engine/dtype.h"
#include "fuzz/fuzz_check.h"

namespace dcplan::fuzzing {
namespace {

bool IsQuantized(DType dtype) {
  return dtype == DType::kQInt8 || dtype == DType::kQUInt8 || dtype == DType::kQInt32 ||
         dtype == DType::kQUInt4x2 || dtype == DType::kQUInt2x4;
}

void CheckCall(const absl::StatusOr<pickle::RebuildTensorCall>& call, absl::string_view parser) {
  if (!call.ok()) {
    FUZZ_CHECK(call.status().code() == absl::StatusCode::kInvalidArgument && !call.status().message().empty(),
               std::string(parser) + " error is not a described InvalidArgument: " + call.status().ToString());
    return;
  }
  FUZZ_CHECK(call->sizes.size() == call->strides.size(), "sizes and strides differ in rank: " + ToString(*call));
  for (size_t d = 0; d < call->sizes.size(); ++d) {
    FUZZ_CHECK(call->sizes[d] >= 0 && call->strides[d] >= 0, "a negative size or stride: " + ToString(*call));
  }
  FUZZ_CHECK(call->storage_offset >= 0 && call->storage_bytes >= 0, "a negative offset or size: " + ToString(*call));
  FUZZ_CHECK(!IsQuantized(call->dtype), "a quantized dtype: " + ToString(*call));
}

void FuzzTensorV3Pickle(absl::string_view bytes) {
  const bool names_v3 = pickle::CallsRebuildTensorV3(bytes);
  const absl::StatusOr<pickle::RebuildTensorCall> v3 = pickle::ParseRebuildTensorV3(bytes);
  CheckCall(v3, "ParseRebuildTensorV3");
  if (v3.ok()) FUZZ_CHECK(names_v3, "accepted a pickle CallsRebuildTensorV3 does not route here: " + ToString(*v3));
  const absl::StatusOr<pickle::RebuildTensorCall> v2 = pickle::ParseRebuildTensorV2(bytes);
  CheckCall(v2, "ParseRebuildTensorV2");
  if (v2.ok()) {
    FUZZ_CHECK(!names_v3, "a _rebuild_tensor_v2 call that names _rebuild_tensor_v3: " + ToString(*v2));
    FUZZ_CHECK(v2->storage_bytes % ElementSize(v2->dtype) == 0, "a partial element: " + ToString(*v2));
  }
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzTensorV3Pickle(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
