#ifndef DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_
#define DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_

// The data.pkl of a torch.save'd tensor (spec/format.md §6.2): a protocol-2
// pickle of torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
// stride, requires_grad=False, OrderedDict()) whose storage is the persistent
// id ("storage", torch.<X>Storage, "0", "cpu", numel). Only the globals that
// torch.load(weights_only=True) allows appear.

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::internal {

// "FloatStorage" for float32, ...; error for dtypes without a legacy storage
// class.
absl::StatusOr<absl::string_view> StorageClassName(c10::ScalarType dtype);

// data.pkl for `tensor`, whose storage record is "data/0" holding the whole
// storage (storage().nbytes() bytes).
absl::StatusOr<std::string> TensorDataPickle(const at::Tensor& tensor);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_
