// Fuzz target for the data.pkl of _rebuild_tensor_v3 tensor records
// (api/pickle/tensor_v3_pickle.h), which dcplan reads with its restricted
// unpickler from untrusted checkpoints and .pt files.
//
// For every input:
// - ParseRebuildTensorV3 either fails with a described InvalidArgument or
//   returns a call whose sizes and strides are as many and all >= 0, whose
//   offset and storage size are >= 0, and whose dtype is not quantized;
// - an accepted input names _rebuild_tensor_v3 (CallsRebuildTensorV3), the
//   check that routes records to this reader;
// - CallsRebuildTensorV3 never crashes on anything.

#include <cstddef>
#include <cstdint>

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

void FuzzTensorV3Pickle(absl::string_view bytes) {
  const bool names_v3 = pickle::CallsRebuildTensorV3(bytes);
  absl::StatusOr<pickle::RebuildTensorV3> call = pickle::ParseRebuildTensorV3(bytes);
  if (!call.ok()) {
    FUZZ_CHECK(call.status().code() == absl::StatusCode::kInvalidArgument && !call.status().message().empty(),
               "ParseRebuildTensorV3 error is not a described InvalidArgument: " + call.status().ToString());
    return;
  }
  FUZZ_CHECK(names_v3, "accepted a pickle CallsRebuildTensorV3 does not route here: " + ToString(*call));
  FUZZ_CHECK(call->sizes.size() == call->strides.size(), "sizes and strides differ in rank: " + ToString(*call));
  for (size_t d = 0; d < call->sizes.size(); ++d) {
    FUZZ_CHECK(call->sizes[d] >= 0 && call->strides[d] >= 0, "a negative size or stride: " + ToString(*call));
  }
  FUZZ_CHECK(call->storage_offset >= 0 && call->storage_bytes >= 0, "a negative offset or size: " + ToString(*call));
  FUZZ_CHECK(!IsQuantized(call->dtype), "a quantized dtype: " + ToString(*call));
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzTensorV3Pickle(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
