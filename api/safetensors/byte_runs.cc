#include "api/safetensors/byte_runs.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "api/internal/status_macros.h"
#include "engine/internal/checked_math.h"

namespace dcplan::safetensors {
namespace {

// Row-major strides of `shape` in bytes, overflow-checked.
absl::StatusOr<std::vector<int64_t>> ByteStrides(absl::Span<const int64_t> shape, int64_t element_size) {
  std::vector<int64_t> strides(shape.size());
  std::optional<int64_t> stride = element_size;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = *stride;
    stride = internal::CheckedMul(*stride, shape[d]);
    if (!stride) return absl::InvalidArgumentError("the tensor's byte size overflows 64 bits");
  }
  return strides;
}

absl::Status CheckBox(absl::Span<const int64_t> shape, absl::Span<const int64_t> offsets,
                      absl::Span<const int64_t> sizes) {
  if (offsets.size() != shape.size() || sizes.size() != shape.size()) {
    return absl::InvalidArgumentError("the box and the tensor have different ranks");
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (offsets[d] < 0 || sizes[d] < 0 || offsets[d] > shape[d] || sizes[d] > shape[d] - offsets[d]) {
      return absl::InvalidArgumentError(absl::StrCat("dim ", d, ": [", offsets[d], ", +", sizes[d],
                                                     ") is not inside [0, ", shape[d], ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ForEachByteRun(absl::Span<const int64_t> shape, int64_t element_size,
                            absl::Span<const int64_t> offsets, absl::Span<const int64_t> sizes,
                            const std::function<absl::Status(const ByteRun&)>& visit) {
  DCPLAN_RETURN_IF_ERROR(CheckBox(shape, offsets, sizes));
  DCPLAN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, ByteStrides(shape, element_size));
  const size_t rank = shape.size();
  for (size_t d = 0; d < rank; ++d) {
    if (sizes[d] == 0) return absl::OkStatus();
  }
  // The run dimension: below it the box spans whole rows, so one run covers
  // sizes[run_dim] rows of it.
  size_t run_dim = rank == 0 ? 0 : rank - 1;
  while (run_dim > 0 && sizes[run_dim] == shape[run_dim]) --run_dim;
  ByteRun run;
  run.length = rank == 0 ? element_size : sizes[run_dim] * strides[run_dim];
  std::vector<int64_t> index(run_dim, 0);  // position in the box's dims [0, run_dim)
  for (;;) {
    run.tensor_offset = 0;
    for (size_t d = 0; d < rank; ++d) {
      run.tensor_offset += (offsets[d] + (d < run_dim ? index[d] : 0)) * strides[d];
    }
    DCPLAN_RETURN_IF_ERROR(visit(run));
    run.box_offset += run.length;
    size_t d = run_dim;
    for (;;) {
      if (d == 0) return absl::OkStatus();
      --d;
      if (++index[d] < sizes[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace dcplan::safetensors
