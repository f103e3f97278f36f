#include "api/staging_pool.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

TEST(StagingBytesTest, RoundsEachTensorUpToTheAlignment) {
  ASSERT_EQ(kStagingAlignment, 64);
  EXPECT_EQ(*StagingBytes({}), 0);
  EXPECT_EQ(*StagingBytes({0, 1, 64, 65}), 0 + 64 + 64 + 128);
  EXPECT_EQ(StagingBytes({-1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StagingBytes({std::numeric_limits<int64_t>::max()}).status().code(), absl::StatusCode::kOutOfRange);
  const int64_t half = std::numeric_limits<int64_t>::max() / 2;
  EXPECT_EQ(StagingBytes({half, half}).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(StagingPoolTest, StagedCopiesAreSnapshotsOfTheSource) {
  StagingPool pool;
  at::Tensor source = at::arange(0, 1000, at::kFloat).reshape({10, 100});
  at::Tensor column_view = source.t();  // not contiguous
  const at::Tensor expected = source.clone();
  const at::Tensor expected_view = column_view.clone();
  absl::StatusOr<StagingBuffer> buffer = pool.Acquire(*StagingBytes({4000, 4000}));
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  absl::StatusOr<at::Tensor> staged = buffer->Stage(source);
  absl::StatusOr<at::Tensor> staged_view = buffer->Stage(column_view);
  ASSERT_TRUE(staged.ok() && staged_view.ok());
  source.add_(1);  // the training step after the save point
  EXPECT_TRUE(at::equal(*staged, expected));
  EXPECT_TRUE(at::equal(*staged_view, expected_view));
  EXPECT_TRUE(staged_view->is_contiguous());
  EXPECT_EQ(staged_view->sizes(), column_view.sizes());
  EXPECT_EQ(staged->scalar_type(), at::kFloat);
  EXPECT_EQ(buffer->used(), 2 * 4032);  // 4000 bytes each, 64-byte aligned
}

TEST(StagingPoolTest, AFullBufferIsAnErrorNotAnOverrun) {
  StagingPool pool;
  absl::StatusOr<StagingBuffer> buffer = pool.Acquire(64);
  ASSERT_TRUE(buffer.ok());
  EXPECT_TRUE(buffer->Stage(at::ones({16}, at::kFloat)).ok());
  absl::StatusOr<at::Tensor> over = buffer->Stage(at::ones({1}, at::kByte));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << over.status();
  // Zero-element tensors need no room.
  absl::StatusOr<at::Tensor> empty = buffer->Stage(at::ones({0, 3}, at::kDouble));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->sizes(), at::IntArrayRef({0, 3}));
  EXPECT_EQ(buffer->Stage(at::Tensor()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Acquire(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StagingPoolTest, AWarmPoolAllocatesNothingAndHoldsTheLargestRequest) {
  StagingPool pool;
  const int64_t bytes = int64_t{1} << 20;
  for (int save = 0; save < 10; ++save) {
    absl::StatusOr<StagingBuffer> buffer = pool.Acquire(bytes);
    ASSERT_TRUE(buffer.ok());
    EXPECT_EQ(buffer->capacity(), bytes);
  }
  EXPECT_EQ(pool.allocations(), 1);
  EXPECT_EQ(pool.reserved_bytes(), bytes);
  { EXPECT_TRUE(pool.Acquire(bytes / 2).ok()); }  // fits in the arena
  EXPECT_EQ(pool.allocations(), 1);
  { EXPECT_TRUE(pool.Acquire(2 * bytes).ok()); }  // replaces it
  EXPECT_EQ(pool.allocations(), 2);
  EXPECT_EQ(pool.reserved_bytes(), 2 * bytes);
}

TEST(StagingPoolTest, BuffersLentAtOnceGetArenasOfTheirOwn) {
  StagingPool pool;
  const int64_t bytes = *StagingBytes({1000});
  absl::StatusOr<StagingBuffer> a = pool.Acquire(bytes);
  absl::StatusOr<StagingBuffer> b = pool.Acquire(bytes);
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<at::Tensor> in_a = a->Stage(at::full({250}, 1.0f));
  absl::StatusOr<at::Tensor> in_b = b->Stage(at::full({250}, 2.0f));
  ASSERT_TRUE(in_a.ok() && in_b.ok());
  EXPECT_NE(in_a->data_ptr(), in_b->data_ptr());
  EXPECT_TRUE(at::equal(*in_a, at::full({250}, 1.0f)));
  EXPECT_EQ(pool.allocations(), 2);
  EXPECT_EQ(pool.reserved_bytes(), 2 * bytes);
}

TEST(StagingPoolTest, ABufferOutlivesItsPoolAndMovesWithItsMemory) {
  std::optional<StagingBuffer> kept;
  {
    StagingPool pool;
    absl::StatusOr<StagingBuffer> buffer = pool.Acquire(128);
    ASSERT_TRUE(buffer.ok());
    kept.emplace(*std::move(buffer));
  }
  absl::StatusOr<at::Tensor> staged = kept->Stage(at::full({8}, 3.0));
  ASSERT_TRUE(staged.ok()) << staged.status();
  EXPECT_TRUE(at::equal(*staged, at::full({8}, 3.0)));
  StagingBuffer moved = std::move(*kept);
  EXPECT_EQ(moved.used(), 64);
  EXPECT_EQ(kept->Stage(at::ones({1})).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace dcplan
