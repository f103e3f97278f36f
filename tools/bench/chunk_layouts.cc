#include "tools/bench/chunk_layouts.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dcplan {
namespace bench {
namespace {

constexpr int64_t kSide = 64;            // the other dimension of rows and columns
constexpr int64_t kRandomSide = 4096;    // the random layout's tensor is square
constexpr int64_t kGridBlock = 4;

TensorStorageMetadata EmptyTensor(Shape size) {
  TensorStorageMetadata tensor;
  tensor.properties.dtype = DType::kBFloat16;
  tensor.size = std::move(size);
  return tensor;
}

// Guillotine cuts: the largest chunk (ties: the earliest made) is split at a
// random position of its longer dimension until there are `chunks` (at most
// the tensor's elements: the largest chunk has two elements or more until
// then).
std::vector<ChunkBox> RandomCuts(int64_t chunks, uint64_t seed) {
  std::mt19937_64 random(seed);
  using Entry = std::pair<std::pair<int64_t, int64_t>, ChunkBox>;  // ((volume, -order), box)
  auto less = [](const Entry& a, const Entry& b) { return a.first < b.first; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> largest(less);
  int64_t order = 0;
  auto push = [&](ChunkBox box) {
    const int64_t volume = box.sizes[0] * box.sizes[1];
    largest.push({{volume, -order++}, std::move(box)});
  };
  push(ChunkBox{{0, 0}, {kRandomSide, kRandomSide}});
  while (static_cast<int64_t>(largest.size()) < chunks) {
    ChunkBox box = largest.top().second;
    largest.pop();
    const size_t dim = box.sizes[0] >= box.sizes[1] ? 0 : 1;
    // A cut in the middle half keeps the pieces from getting thin.
    const int64_t size = box.sizes[dim];
    const int64_t margin = std::max<int64_t>(1, size / 4);
    const int64_t cut = std::uniform_int_distribution<int64_t>(margin, size - margin)(random);
    ChunkBox first = box;
    ChunkBox second = box;
    first.sizes[dim] = cut;
    second.offsets[dim] += cut;
    second.sizes[dim] -= cut;
    push(std::move(first));
    push(std::move(second));
  }
  std::vector<ChunkBox> boxes;
  boxes.reserve(largest.size());
  while (!largest.empty()) {
    boxes.push_back(largest.top().second);
    largest.pop();
  }
  // Listed in random order: no rank order to help the sweep.
  std::shuffle(boxes.begin(), boxes.end(), random);
  return boxes;
}

}  // namespace

absl::string_view ChunkLayoutName(ChunkLayout layout) {
  switch (layout) {
    case ChunkLayout::kRows: return "rows";
    case ChunkLayout::kColumns: return "columns";
    case ChunkLayout::kGrid: return "grid";
    case ChunkLayout::kRandom: return "random";
  }
  return "?";
}

absl::StatusOr<TensorStorageMetadata> ChunkLayoutTensor(ChunkLayout layout, int64_t chunks, uint64_t seed) {
  if (chunks <= 0) return absl::InvalidArgumentError(absl::StrCat("a layout needs chunks, not ", chunks));
  TensorStorageMetadata tensor;
  switch (layout) {
    case ChunkLayout::kRows:
      tensor = EmptyTensor({chunks, kSide});
      for (int64_t i = 0; i < chunks; ++i) tensor.chunks.push_back({{i, 0}, {1, kSide}});
      break;
    case ChunkLayout::kColumns:
      tensor = EmptyTensor({kSide, chunks});
      for (int64_t j = 0; j < chunks; ++j) tensor.chunks.push_back({{0, j}, {kSide, 1}});
      break;
    case ChunkLayout::kGrid: {
      const auto blocks = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(chunks))));
      if (blocks * blocks != chunks) {
        return absl::InvalidArgumentError(absl::StrCat("a grid needs a square number of chunks, not ", chunks));
      }
      tensor = EmptyTensor({blocks * kGridBlock, blocks * kGridBlock});
      for (int64_t i = 0; i < blocks; ++i) {
        for (int64_t j = 0; j < blocks; ++j) {
          tensor.chunks.push_back({{i * kGridBlock, j * kGridBlock}, {kGridBlock, kGridBlock}});
        }
      }
      break;
    }
    case ChunkLayout::kRandom:
      if (chunks > kRandomSide * kRandomSide) {
        return absl::InvalidArgumentError(
            absl::StrCat("a ", kRandomSide, " x ", kRandomSide, " tensor cannot be cut into ", chunks, " chunks"));
      }
      tensor = EmptyTensor({kRandomSide, kRandomSide});
      tensor.chunks = RandomCuts(chunks, seed);
      break;
  }
  return tensor;
}

}  // namespace bench
}  // namespace dcplan
