#include "engine/internal/disjoint_by_cuts.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace dcplan {
namespace internal {
namespace {

struct Part {
  size_t begin;
  size_t end;
};

// Sorts boxes[order[part]] along `dim` and pushes the pieces between the
// coordinates no box of the part crosses; false (nothing pushed) if there is
// no such coordinate.
bool SplitAlong(const FlatBoxes& boxes, size_t dim, const Part& part, std::vector<uint32_t>& order,
                std::vector<Part>& parts) {
  const auto first = order.begin() + static_cast<std::ptrdiff_t>(part.begin);
  const auto last = order.begin() + static_cast<std::ptrdiff_t>(part.end);
  std::sort(first, last, [&](uint32_t a, uint32_t b) { return boxes.start(a, dim) < boxes.start(b, dim); });
  const size_t pushed_before = parts.size();
  size_t piece_begin = part.begin;
  __int128 reach = boxes.end(order[part.begin], dim);
  for (size_t i = part.begin + 1; i < part.end; ++i) {
    if (boxes.start(order[i], dim) >= reach) {
      parts.push_back({piece_begin, i});
      piece_begin = i;
    }
    reach = std::max(reach, boxes.end(order[i], dim));
  }
  if (parts.size() == pushed_before) return false;
  parts.push_back({piece_begin, part.end});
  return true;
}

}  // namespace

bool DisjointByCuts(const FlatBoxes& boxes, int64_t budget) {
  if (boxes.size() > UINT32_MAX) return false;
  std::vector<uint32_t> order(boxes.size());
  std::iota(order.begin(), order.end(), uint32_t{0});
  std::vector<Part> parts = {{0, boxes.size()}};
  while (!parts.empty()) {
    const Part part = parts.back();
    parts.pop_back();
    if (part.end - part.begin < 2) continue;
    bool split = false;
    for (size_t dim = 0; dim < boxes.rank() && !split; ++dim) {
      budget -= static_cast<int64_t>(part.end - part.begin);
      if (budget < 0) return false;
      split = SplitAlong(boxes, dim, part, order, parts);
    }
    if (!split) return false;
  }
  return true;
}

}  // namespace internal
}  // namespace dcplan
