#ifndef DCPLAN_ENGINE_BOX_H_
#define DCPLAN_ENGINE_BOX_H_

// ChunkBox: an axis-aligned box of a tensor (PyTorch's ChunkStorageMetadata).
//
// A box covers [offsets[d], offsets[d] + sizes[d]) in every dimension d. A
// 0-dimensional box (no dims) is the single element of a 0-d tensor.
//
// All arithmetic on offsets and sizes is overflow-checked: a box whose end
// (offset + size) does not fit in int64, or whose volume does not, is reported
// as an error by the functions that need those values.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/internal/checked_math.h"
#include "engine/shape.h"

namespace dcplan {


struct ChunkBox {
  Shape offsets;
  Shape sizes;

  size_t rank() const { return sizes.size(); }

  friend bool operator==(const ChunkBox& a, const ChunkBox& b) {
    return a.offsets == b.offsets && a.sizes == b.sizes;
  }
  friend bool operator!=(const ChunkBox& a, const ChunkBox& b) { return !(a == b); }

  // Prints "{offsets=[0, 4], sizes=[4, 4]}".
  friend std::ostream& operator<<(std::ostream& os, const ChunkBox& box);
};

// "{offsets=[0, 4], sizes=[4, 4]}".
std::string ToString(const ChunkBox& box);

// "[8, 4]".
std::string ShapeToString(absl::Span<const int64_t> shape);

// Product of `shape` (1 for the empty shape); error if a dim is negative or the
// product overflows int64.
absl::StatusOr<int64_t> ShapeVolume(absl::Span<const int64_t> shape);

// ShapeVolume without the message, for hot paths (a dedup weight or a chunk's
// volume per item): the product, 0 if a dim is 0 (even if the others' product
// overflows), or nullopt where ShapeVolume fails.
// Inline: it runs once per chunk in validation and once per key in dedup.
inline std::optional<int64_t> CheckedShapeVolume(absl::Span<const int64_t> shape) {
  int64_t volume = 1;
  bool zero = false;
  bool overflow = false;
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    zero = zero || dim == 0;
    if (overflow) continue;
    std::optional<int64_t> next = internal::CheckedMul(volume, dim);
    overflow = !next;
    if (next) volume = *next;
  }
  // Any zero makes the volume zero, even if the other dims' product overflows.
  if (zero) return 0;
  if (overflow) return std::nullopt;
  return volume;
}

// Number of elements of `box`: ShapeVolume(box.sizes).
absl::StatusOr<int64_t> Volume(const ChunkBox& box);

// Checks that `box` is well formed: offsets and sizes have the same rank,
// sizes are non-negative, and offset + size fits in int64 in every dim.
absl::Status CheckWellFormed(const ChunkBox& box);

// True iff `box` has `shape`'s rank and lies inside [0, shape) in every dim
// (PyTorch's _check_box_bounds plus a rank check). A malformed box (see
// CheckWellFormed) is never in bounds.
bool InBounds(absl::Span<const int64_t> shape, const ChunkBox& box);

// dcplan's overlap rule: true iff the boxes share at least one element. A box
// of zero volume overlaps nothing. Boxes of different ranks never overlap.
// Well-formedness is required (see CheckWellFormed); ends are computed without
// overflow anyway.
bool Overlaps(const ChunkBox& a, const ChunkBox& b);

// PyTorch's _check_box_overlap: for every dim, a.off < b.off + b.size and
// b.off < a.off + a.size (strict; touching boxes do not overlap). Unlike
// Overlaps, a zero-size box strictly inside another one overlaps it, and two
// 0-d boxes overlap. Used where PyTorch's plans must be reproduced exactly
// (load planning). Boxes of different ranks never overlap.
bool OverlapsPyTorch(const ChunkBox& a, const ChunkBox& b);

// The intersection of two boxes of equal rank, or nullopt if they share no
// element (zero-volume intersections are nullopt too).
std::optional<ChunkBox> Intersection(const ChunkBox& a, const ChunkBox& b);

// The smallest box containing both (for well-formed boxes of equal rank).
absl::StatusOr<ChunkBox> BoundingBox(const ChunkBox& a, const ChunkBox& b);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_BOX_H_
