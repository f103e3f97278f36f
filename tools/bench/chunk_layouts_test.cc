#include "tools/bench/chunk_layouts.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/validate.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace bench {
namespace {

// Brute force over elements: how many chunks cover each element of a 2-d
// tensor (row-major), and how many chunk elements fall outside it.
struct Coverage {
  std::vector<uint8_t> counts;
  int64_t outside = 0;
};

Coverage CountCoverage(const TensorStorageMetadata& tensor) {
  Coverage coverage;
  const int64_t rows = tensor.size[0];
  const int64_t cols = tensor.size[1];
  coverage.counts.assign(static_cast<size_t>(rows * cols), 0);
  for (const ChunkBox& chunk : tensor.chunks) {
    for (int64_t i = chunk.offsets[0]; i < chunk.offsets[0] + chunk.sizes[0]; ++i) {
      for (int64_t j = chunk.offsets[1]; j < chunk.offsets[1] + chunk.sizes[1]; ++j) {
        if (i < 0 || j < 0 || i >= rows || j >= cols) {
          ++coverage.outside;
        } else if (coverage.counts[i * cols + j] < 255) {
          ++coverage.counts[i * cols + j];
        }
      }
    }
  }
  return coverage;
}

class ChunkLayoutTest : public ::testing::TestWithParam<ChunkLayout> {};

TEST_P(ChunkLayoutTest, TilesTheTensorExactlyWith16384Chunks) {
  absl::StatusOr<TensorStorageMetadata> tensor = ChunkLayoutTensor(GetParam(), 16384);
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->chunks.size(), 16384u);
  ASSERT_EQ(tensor->size.size(), 2u);
  const Coverage coverage = CountCoverage(*tensor);
  EXPECT_EQ(coverage.outside, 0);
  int64_t not_once = 0;
  for (uint8_t count : coverage.counts) not_once += count != 1;
  EXPECT_EQ(not_once, 0) << "elements covered by no chunk or by several";
  EXPECT_TRUE(ValidateTensor("w", *tensor).empty());
}

INSTANTIATE_TEST_SUITE_P(Layouts, ChunkLayoutTest,
                         ::testing::Values(ChunkLayout::kRows, ChunkLayout::kColumns, ChunkLayout::kGrid,
                                           ChunkLayout::kRandom),
                         [](const ::testing::TestParamInfo<ChunkLayout>& info) {
                           return std::string(ChunkLayoutName(info.param));
                         });

TEST(ChunkLayoutTensorTest, RandomLayoutDependsOnTheSeedOnly) {
  absl::StatusOr<TensorStorageMetadata> a = ChunkLayoutTensor(ChunkLayout::kRandom, 1000, 1);
  absl::StatusOr<TensorStorageMetadata> b = ChunkLayoutTensor(ChunkLayout::kRandom, 1000, 1);
  absl::StatusOr<TensorStorageMetadata> c = ChunkLayoutTensor(ChunkLayout::kRandom, 1000, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->chunks, b->chunks);
  EXPECT_NE(a->chunks, c->chunks);
}

TEST(ChunkLayoutTensorTest, RandomChunksVaryInSize) {
  absl::StatusOr<TensorStorageMetadata> tensor = ChunkLayoutTensor(ChunkLayout::kRandom, 16384);
  ASSERT_TRUE(tensor.ok());
  int64_t smallest = INT64_MAX;
  int64_t largest = 0;
  for (const ChunkBox& chunk : tensor->chunks) {
    smallest = std::min(smallest, chunk.sizes[0] * chunk.sizes[1]);
    largest = std::max(largest, chunk.sizes[0] * chunk.sizes[1]);
  }
  EXPECT_LT(smallest, largest);
}

TEST(ChunkLayoutTensorTest, RejectsBadCounts) {
  EXPECT_FALSE(ChunkLayoutTensor(ChunkLayout::kRows, 0).ok());
  EXPECT_FALSE(ChunkLayoutTensor(ChunkLayout::kGrid, 1000).ok());
  EXPECT_FALSE(ChunkLayoutTensor(ChunkLayout::kRandom, int64_t{1} << 25).ok());  // > 4096 x 4096
}

}  // namespace
}  // namespace bench
}  // namespace dcplan
