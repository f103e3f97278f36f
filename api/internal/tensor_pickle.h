#ifndef DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_
#define DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_

// The data.pkl of a torch.save'd tensor (spec/format.md §6.2): a protocol-2
// pickle of torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
// stride, requires_grad=False, OrderedDict()) whose storage is the persistent
// id ("storage", torch.<X>Storage, "0", "cpu", numel) or, for dtypes without
// such a class (float8, uint16/32/64), of _rebuild_tensor_v3(..., dtype) over
// ("storage", torch.storage.UntypedStorage, "0", "cpu", bytes). Only the
// globals that torch.load(weights_only=True) allows appear.

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::internal {

// "FloatStorage" for float32, ...; error for dtypes without a legacy storage
// class.
absl::StatusOr<absl::string_view> StorageClassName(c10::ScalarType dtype);

// data.pkl for `tensor`, whose storage record is "data/0" holding the whole
// storage (storage().nbytes() bytes). Error for dtypes DCP cannot record.
absl::StatusOr<std::string> TensorDataPickle(const at::Tensor& tensor);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_TENSOR_PICKLE_H_
