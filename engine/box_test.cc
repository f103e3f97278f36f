#include "engine/box.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

ChunkBox Box(Shape offsets, Shape sizes) { return ChunkBox{std::move(offsets), std::move(sizes)}; }

TEST(BoxTest, PrintsReadably) {
  EXPECT_EQ(ToString(Box({0, 4}, {4, 4})), "{offsets=[0, 4], sizes=[4, 4]}");
  EXPECT_EQ(ShapeToString({}), "[]");
}

TEST(BoxTest, VolumeOfShapes) {
  EXPECT_EQ(*ShapeVolume({}), 1);
  EXPECT_EQ(*ShapeVolume({8, 4}), 32);
  EXPECT_EQ(*ShapeVolume({3, 0, 5}), 0);
  EXPECT_EQ(*Volume(Box({1, 1}, {2, 3})), 6);
}

TEST(BoxTest, VolumeOverflowIsAnError) {
  EXPECT_FALSE(ShapeVolume({kMax, 2}).ok());
  EXPECT_FALSE(ShapeVolume({int64_t{1} << 32, int64_t{1} << 32}).ok());
  EXPECT_FALSE(ShapeVolume({-1, 2}).ok());
  // A zero anywhere wins over an overflowing product.
  EXPECT_EQ(*ShapeVolume({kMax, kMax, 0}), 0);
  // ... but not over a negative dim; and the errors say which.
  EXPECT_EQ(ShapeVolume({0, -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShapeVolume({kMax, kMax, -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShapeVolume({kMax, 2}).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(BoxTest, CheckedShapeVolumeIsShapeVolumeWithoutTheMessage) {
  const std::vector<std::vector<int64_t>> shapes = {
      {}, {8, 4}, {3, 0, 5}, {kMax, 2}, {int64_t{1} << 32, int64_t{1} << 32}, {-1, 2}, {kMax, kMax, 0},
      {0, -1}, {kMax, kMax, -1}, {kMax}, {kMax, 1, 1}, {2, kMax / 2}, {2, kMax / 2 + 1}};
  for (const std::vector<int64_t>& shape : shapes) {
    const absl::StatusOr<int64_t> volume = ShapeVolume(shape);
    const std::optional<int64_t> checked = CheckedShapeVolume(shape);
    EXPECT_EQ(checked.has_value(), volume.ok()) << ShapeToString(shape);
    if (checked && volume.ok()) EXPECT_EQ(*checked, *volume) << ShapeToString(shape);
  }
  EXPECT_EQ(CheckedShapeVolume({2, kMax / 2}), kMax - 1);
}

TEST(BoxTest, WellFormed) {
  EXPECT_TRUE(CheckWellFormed(Box({0, 0}, {2, 2})).ok());
  EXPECT_TRUE(CheckWellFormed(Box({}, {})).ok());
  EXPECT_FALSE(CheckWellFormed(Box({0}, {2, 2})).ok());
  EXPECT_FALSE(CheckWellFormed(Box({0}, {-1})).ok());
  EXPECT_FALSE(CheckWellFormed(Box({kMax}, {1})).ok());
  EXPECT_TRUE(CheckWellFormed(Box({kMax - 1}, {1})).ok());
}

TEST(BoxTest, InBounds) {
  EXPECT_TRUE(InBounds({8, 4}, Box({4, 0}, {4, 4})));
  EXPECT_FALSE(InBounds({8, 4}, Box({5, 0}, {4, 4})));
  EXPECT_FALSE(InBounds({8, 4}, Box({-1, 0}, {1, 4})));
  EXPECT_FALSE(InBounds({8, 4}, Box({0, 0}, {-1, 4})));
  EXPECT_FALSE(InBounds({8, 4}, Box({0}, {8})));          // wrong rank
  EXPECT_FALSE(InBounds({8}, Box({kMax}, {kMax})));        // end overflows
  EXPECT_TRUE(InBounds({8, 4}, Box({8, 0}, {0, 4})));      // empty at the end
  EXPECT_TRUE(InBounds({}, Box({}, {})));
}

TEST(BoxTest, OverlapSharesAnElement) {
  EXPECT_TRUE(Overlaps(Box({0, 0}, {4, 4}), Box({3, 3}, {4, 4})));
  // Touching boxes do not overlap.
  EXPECT_FALSE(Overlaps(Box({0, 0}, {4, 4}), Box({4, 0}, {4, 4})));
  EXPECT_FALSE(Overlaps(Box({0, 0}, {4, 4}), Box({0, 4}, {4, 4})));
  // Disjoint in one dim is enough.
  EXPECT_FALSE(Overlaps(Box({0, 0}, {4, 2}), Box({2, 2}, {2, 2})));
  // Zero volume overlaps nothing, even strictly inside another box.
  EXPECT_FALSE(Overlaps(Box({0}, {4}), Box({2}, {0})));
  EXPECT_FALSE(Overlaps(Box({2}, {0}), Box({2}, {0})));
  // Different ranks never overlap.
  EXPECT_FALSE(Overlaps(Box({0}, {4}), Box({0, 0}, {4, 4})));
  // 0-d boxes: one element each, the same element.
  EXPECT_TRUE(Overlaps(Box({}, {}), Box({}, {})));
  // Huge boxes near INT64_MAX do not overflow.
  EXPECT_TRUE(Overlaps(Box({kMax - 2}, {2}), Box({kMax - 1}, {1})));
  EXPECT_FALSE(Overlaps(Box({kMax - 2}, {1}), Box({kMax - 1}, {1})));
}

TEST(BoxTest, PyTorchOverlapFlagsEmptyBoxInside) {
  EXPECT_TRUE(OverlapsPyTorch(Box({0}, {4}), Box({2}, {0})));
  EXPECT_FALSE(OverlapsPyTorch(Box({2}, {0}), Box({2}, {0})));
  EXPECT_FALSE(OverlapsPyTorch(Box({0}, {4}), Box({4}, {4})));
  EXPECT_TRUE(OverlapsPyTorch(Box({}, {}), Box({}, {})));
}

TEST(BoxTest, Intersection) {
  std::optional<ChunkBox> i = Intersection(Box({0, 0}, {4, 4}), Box({2, 1}, {4, 4}));
  ASSERT_TRUE(i.has_value());
  EXPECT_EQ(*i, Box({2, 1}, {2, 3}));
  EXPECT_FALSE(Intersection(Box({0}, {4}), Box({4}, {4})).has_value());
  EXPECT_EQ(*Intersection(Box({}, {}), Box({}, {})), Box({}, {}));
}

TEST(BoxTest, BoundingBox) {
  EXPECT_EQ(*BoundingBox(Box({0, 2}, {1, 1}), Box({3, 0}, {1, 1})), Box({0, 0}, {4, 3}));
  EXPECT_FALSE(BoundingBox(Box({-kMax}, {1}), Box({kMax - 1}, {1})).ok());
  EXPECT_FALSE(BoundingBox(Box({0}, {1}), Box({0, 0}, {1, 1})).ok());
}

}  // namespace
}  // namespace dcplan
