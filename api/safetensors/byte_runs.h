#ifndef DCPLAN_API_SAFETENSORS_BYTE_RUNS_H_
#define DCPLAN_API_SAFETENSORS_BYTE_RUNS_H_

// A box of a row-major tensor as runs of contiguous bytes: what one rank
// writes or reads of a tensor stored whole. A dim-0 shard is one run; a
// shard of dimension d is prod(sizes[0..d)) runs of sizes[d] * prod(shape(d..])
// elements (each run as long as the box allows: consecutive runs are never
// adjacent, so nothing is left to coalesce).

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace dcplan::safetensors {

struct ByteRun {
  int64_t tensor_offset = 0;  // bytes from the tensor's first byte
  int64_t box_offset = 0;     // bytes from the box's first byte (box in row-major order)
  int64_t length = 0;
};

// Calls `visit` for each run of the box (`offsets`, `sizes`) of a tensor of
// `shape`, in order. InvalidArgument when the box does not lie inside the
// shape or a byte count overflows; a box with no elements has no runs.
// Stops at, and returns, the first error of `visit`.
absl::Status ForEachByteRun(absl::Span<const int64_t> shape, int64_t element_size,
                            absl::Span<const int64_t> offsets, absl::Span<const int64_t> sizes,
                            const std::function<absl::Status(const ByteRun&)>& visit);

}  // namespace dcplan::safetensors

#endif  // DCPLAN_API_SAFETENSORS_BYTE_RUNS_H_
