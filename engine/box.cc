#include "engine/box.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

// End of dim `d` as a 128-bit value, so that comparisons never overflow even
// for malformed boxes.
__int128 End(const ChunkBox& box, size_t d) {
  return static_cast<__int128>(box.offsets[d]) + box.sizes[d];
}

bool SameRank(const ChunkBox& a, const ChunkBox& b) {
  return a.offsets.size() == a.sizes.size() && b.offsets.size() == b.sizes.size() &&
         a.sizes.size() == b.sizes.size();
}

}  // namespace

std::string ToString(const ChunkBox& box) {
  return absl::StrCat("{offsets=[", absl::StrJoin(box.offsets, ", "), "], sizes=[", absl::StrJoin(box.sizes, ", "),
                      "]}");
}

std::ostream& operator<<(std::ostream& os, const ChunkBox& box) { return os << ToString(box); }

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<int64_t> ShapeVolume(absl::Span<const int64_t> shape) {
  if (std::optional<int64_t> volume = CheckedShapeVolume(shape)) return *volume;
  if (std::any_of(shape.begin(), shape.end(), [](int64_t dim) { return dim < 0; })) {
    return absl::InvalidArgumentError(absl::StrCat("negative size in shape ", ShapeToString(shape)));
  }
  return absl::OutOfRangeError(absl::StrCat("volume of shape ", ShapeToString(shape), " overflows int64"));
}

absl::StatusOr<int64_t> Volume(const ChunkBox& box) { return ShapeVolume(box.sizes); }

absl::Status CheckWellFormed(const ChunkBox& box) {
  if (box.offsets.size() != box.sizes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", ToString(box), " has ", box.offsets.size(), " offsets but ",
                                                   box.sizes.size(), " sizes"));
  }
  for (size_t d = 0; d < box.sizes.size(); ++d) {
    if (box.sizes[d] < 0) return absl::InvalidArgumentError(absl::StrCat("chunk ", ToString(box), " has a negative size"));
    if (!internal::CheckedAdd(box.offsets[d], box.sizes[d])) {
      return absl::OutOfRangeError(absl::StrCat("chunk ", ToString(box), ": offset + size overflows int64 in dim ", d));
    }
  }
  return absl::OkStatus();
}

bool InBounds(absl::Span<const int64_t> shape, const ChunkBox& box) {
  if (box.offsets.size() != shape.size() || box.sizes.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (box.offsets[d] < 0 || box.sizes[d] < 0 || End(box, d) > shape[d]) return false;
  }
  return true;
}

bool Overlaps(const ChunkBox& a, const ChunkBox& b) {
  if (!SameRank(a, b)) return false;
  for (size_t d = 0; d < a.sizes.size(); ++d) {
    if (a.sizes[d] <= 0 || b.sizes[d] <= 0) return false;
    if (!(a.offsets[d] < End(b, d) && b.offsets[d] < End(a, d))) return false;
  }
  return true;
}

bool OverlapsPyTorch(const ChunkBox& a, const ChunkBox& b) {
  if (!SameRank(a, b)) return false;
  for (size_t d = 0; d < a.sizes.size(); ++d) {
    if (!(a.offsets[d] < End(b, d) && b.offsets[d] < End(a, d))) return false;
  }
  return true;
}

std::optional<ChunkBox> Intersection(const ChunkBox& a, const ChunkBox& b) {
  if (!Overlaps(a, b)) return std::nullopt;
  ChunkBox out;
  out.offsets.resize(a.rank());
  out.sizes.resize(a.rank());
  for (size_t d = 0; d < a.rank(); ++d) {
    const int64_t begin = std::max(a.offsets[d], b.offsets[d]);
    const __int128 end = std::min(End(a, d), End(b, d));
    out.offsets[d] = begin;
    out.sizes[d] = static_cast<int64_t>(end - begin);  // fits: both ends >= begin, sizes fit
  }
  return out;
}

absl::StatusOr<ChunkBox> BoundingBox(const ChunkBox& a, const ChunkBox& b) {
  if (!SameRank(a, b)) return absl::InvalidArgumentError(absl::StrCat("chunks ", ToString(a), " and ", ToString(b), " differ in rank"));
  ChunkBox out;
  out.offsets.resize(a.rank());
  out.sizes.resize(a.rank());
  for (size_t d = 0; d < a.rank(); ++d) {
    const int64_t begin = std::min(a.offsets[d], b.offsets[d]);
    const __int128 size = std::max(End(a, d), End(b, d)) - begin;
    if (size > INT64_MAX) return absl::OutOfRangeError(absl::StrCat("bounding box of ", ToString(a), " and ", ToString(b), " overflows"));
    out.offsets[d] = begin;
    out.sizes[d] = static_cast<int64_t>(size);
  }
  return out;
}

}  // namespace dcplan
