#include "engine/load_planner.h"

#include <algorithm>
#include <random>
#include <utility>

#include "gtest/gtest.h"

namespace dcplan {
namespace {

ChunkBox Box(Shape offsets, Shape sizes) { return ChunkBox{std::move(offsets), std::move(sizes)}; }

TensorStorageMetadata Stored(Shape size, std::vector<ChunkBox> chunks) {
  return TensorStorageMetadata{TensorProperties{}, std::move(size), std::move(chunks)};
}

// The expected tensor item for destination chunk `local` (#li) read from
// stored chunk `stored` (#si).
ReadItem Item(const std::string& fqn, const ChunkBox& local, int64_t li, Shape dest_offsets, const ChunkBox& stored,
              int64_t si, Shape storage_offsets, Shape lengths) {
  return ReadItem{LoadItemType::kTensor,  MetadataIndex{fqn, local.offsets, li},   std::move(dest_offsets),
                  MetadataIndex{fqn, stored.offsets, si}, std::move(storage_offsets), std::move(lengths)};
}

ReadItem BytesItem(const std::string& fqn) {
  return ReadItem{LoadItemType::kByteIO, MetadataIndex{fqn, std::nullopt, std::nullopt}, {0},
                  MetadataIndex{fqn, std::nullopt, std::nullopt}, {0}, {0}};
}

// spec/planner.md §6.5: (8,4) saved as two row blocks, the rank owns rows 2..5.
TEST(CreateLocalLoadPlanTest, ReshardingExampleOfSpec) {
  const ChunkBox s0 = Box({0, 0}, {4, 4}), s1 = Box({4, 0}, {4, 4}), local = Box({2, 0}, {4, 4});
  Metadata metadata;
  metadata.state_dict_metadata.InsertOrAssign("w", Stored({8, 4}, {s0, s1}));
  StateDictDescription description;
  description.values.InsertOrAssign("w", ShardedTensor{{8, 4}, TensorProperties{}, {local}});

  const LocalLoadPlan out = CreateLocalLoadPlan(description, metadata, LoadPlannerOptions{}, 0);
  EXPECT_TRUE(out.errors.empty());
  const std::vector<ReadItem> expected = {
      Item("w", local, 0, {0, 0}, s0, 0, {2, 0}, {2, 4}),
      Item("w", local, 0, {2, 0}, s1, 1, {0, 0}, {2, 4}),
  };
  EXPECT_EQ(out.plan.items, expected);
}

// Saved as row blocks, loaded as column blocks: every destination chunk reads
// the left or right half of both stored chunks.
TEST(CreateReadItemsForChunkListTest, RowShardsIntoColumnShards) {
  const ChunkBox s0 = Box({0, 0}, {4, 4}), s1 = Box({4, 0}, {4, 4});
  const ChunkBox l0 = Box({0, 0}, {8, 2}), l1 = Box({0, 2}, {8, 2});
  const std::vector<ReadItem> expected = {
      Item("w", l0, 0, {0, 0}, s0, 0, {0, 0}, {4, 2}),
      Item("w", l0, 0, {4, 0}, s1, 1, {0, 0}, {4, 2}),
      Item("w", l1, 1, {0, 0}, s0, 0, {0, 2}, {4, 2}),
      Item("w", l1, 1, {4, 0}, s1, 1, {0, 2}, {4, 2}),
  };
  EXPECT_EQ(CreateReadItemsForChunkList("w", Stored({8, 4}, {s0, s1}), {l0, l1}), expected);
}

// Uneven 3-D shards listed out of spatial order: items follow metadata order.
TEST(CreateReadItemsForChunkListTest, UnevenThreeDimensionalShards) {
  const ChunkBox s0 = Box({3, 0, 0}, {2, 3, 4});  // rows 3..4
  const ChunkBox s1 = Box({0, 0, 0}, {3, 3, 1});  // rows 0..2, depth 0
  const ChunkBox s2 = Box({0, 0, 1}, {3, 3, 3});  // rows 0..2, depth 1..3
  const ChunkBox l0 = Box({1, 1, 0}, {3, 2, 2});  // rows 1..3, cols 1..2, depth 0..1
  const ChunkBox l1 = Box({4, 2, 3}, {1, 1, 1});  // the last element
  const std::vector<ReadItem> expected = {
      Item("t", l0, 0, {2, 0, 0}, s0, 0, {0, 1, 0}, {1, 2, 2}),
      Item("t", l0, 0, {0, 0, 0}, s1, 1, {1, 1, 0}, {2, 2, 1}),
      Item("t", l0, 0, {0, 0, 1}, s2, 2, {1, 1, 0}, {2, 2, 1}),
      Item("t", l1, 1, {0, 0, 0}, s0, 0, {1, 2, 3}, {1, 1, 1}),
  };
  EXPECT_EQ(CreateReadItemsForChunkList("t", Stored({5, 3, 4}, {s0, s1, s2}), {l0, l1}), expected);
}

// PyTorch's strict overlap test: a zero-size chunk strictly inside another one
// overlaps it (zero-length item); at a boundary it overlaps nothing.
TEST(CreateReadItemsForChunkListTest, ZeroSizeChunksFollowPyTorchsStrictTest) {
  const ChunkBox s0 = Box({0}, {6}), s1 = Box({6}, {4}), s2 = Box({2}, {0});
  const ChunkBox inside = Box({3}, {0}), at_boundary = Box({6}, {0}), at_start = Box({0}, {0}), all = Box({0}, {10});
  const std::vector<ReadItem> expected = {
      Item("v", inside, 0, {0}, s0, 0, {3}, {0}),
      Item("v", all, 3, {0}, s0, 0, {0}, {6}),
      Item("v", all, 3, {6}, s1, 1, {0}, {4}),
      Item("v", all, 3, {2}, s2, 2, {0}, {0}),
  };
  EXPECT_EQ(CreateReadItemsForChunkList("v", Stored({10}, {s0, s1, s2}), {inside, at_boundary, at_start, all}),
            expected);
}

TEST(CreateReadItemsForChunkListTest, ZeroDimensionalTensor) {
  const ChunkBox scalar = Box({}, {});
  const std::vector<ReadItem> items = CreateReadItemsForChunkList("s", Stored({}, {scalar}), {scalar});
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0], Item("s", scalar, 0, {}, scalar, 0, {}, {}));
  // An empty offset list, not "no offsets" (which would mean bytes).
  ASSERT_TRUE(items[0].dest_index.offset.has_value());
  EXPECT_TRUE(items[0].dest_index.offset->empty());
}

TEST(CreateReadItemsForChunkListTest, ChunksOfAnotherRankOrMalformedNeverMatch) {
  const ChunkBox good = Box({0, 0}, {4, 4});
  const ChunkBox one_d = Box({0}, {16});
  const ChunkBox ragged = Box({0, 0}, {4});
  const ChunkBox negative = Box({0, 0}, {4, -1});
  const TensorStorageMetadata stored = Stored({4, 4}, {one_d, good, ragged, negative});
  const std::vector<ReadItem> expected = {Item("m", good, 1, {0, 0}, good, 1, {0, 0}, {4, 4})};
  EXPECT_EQ(CreateReadItemsForChunkList("m", stored, {one_d, good, ragged, negative}), expected);
  EXPECT_TRUE(CreateReadItemsForChunkList("m", stored, {}).empty());
  EXPECT_TRUE(CreateReadItemsForChunkList("m", Stored({4, 4}, {}), {good}).empty());
}

// Each destination chunk is shifted by half a stored chunk: it reads the end
// of one stored chunk and the start of the next. The all-pairs loop would do
// 10^10 overlap tests; the index does about 2 * 10^5 lookups (speed is
// measured in //tools/bench, not here).
TEST(CreateReadItemsForChunkListTest, HundredThousandChunksOneDimensional) {
  constexpr int64_t kChunks = 100000, kWidth = 10;
  std::vector<ChunkBox> stored, local;
  for (int64_t i = 0; i < kChunks; ++i) stored.push_back(Box({i * kWidth}, {kWidth}));
  for (int64_t i = 0; i < kChunks - 1; ++i) local.push_back(Box({i * kWidth + kWidth / 2}, {kWidth}));
  const std::vector<ReadItem> items = CreateReadItemsForChunkList("big", Stored({kChunks * kWidth}, stored), local);
  ASSERT_EQ(items.size(), static_cast<size_t>(2 * (kChunks - 1)));
  for (int64_t li = 0; li < kChunks - 1; ++li) {
    ASSERT_EQ(items[2 * li], Item("big", local[li], li, {0}, stored[li], li, {5}, {5}));
    ASSERT_EQ(items[2 * li + 1], Item("big", local[li], li, {5}, stored[li + 1], li + 1, {0}, {5}));
  }
}

// A [rows, cols] tensor split by columns: the row offsets are all 0, so the
// index must sort by the column dimension.
TEST(CreateReadItemsForChunkListTest, HundredThousandColumnChunks) {
  constexpr int64_t kChunks = 100000, kRows = 3;
  std::vector<ChunkBox> stored, local;
  for (int64_t i = 0; i < kChunks; ++i) stored.push_back(Box({0, 2 * i}, {kRows, 2}));
  for (int64_t i = 0; i < kChunks - 1; ++i) local.push_back(Box({0, 2 * i + 1}, {kRows, 2}));
  const std::vector<ReadItem> items = CreateReadItemsForChunkList("cols", Stored({kRows, 2 * kChunks}, stored), local);
  ASSERT_EQ(items.size(), static_cast<size_t>(2 * (kChunks - 1)));
  for (int64_t li = 0; li < kChunks - 1; ++li) {
    ASSERT_EQ(items[2 * li], Item("cols", local[li], li, {0, 0}, stored[li], li, {0, 1}, {kRows, 1}));
    ASSERT_EQ(items[2 * li + 1], Item("cols", local[li], li, {0, 1}, stored[li + 1], li + 1, {0, 0}, {kRows, 1}));
  }
}

// ---- Randomised checks -------------------------------------------------------

// Random partition of `shape` into boxes by repeated cuts (zero-size pieces
// included), in random order.
std::vector<ChunkBox> RandomPartition(const Shape& shape, std::mt19937& rng) {
  std::vector<ChunkBox> boxes = {Box(Shape(shape.size(), 0), shape)};
  const int cuts = std::uniform_int_distribution<int>(0, 6)(rng);
  for (int c = 0; c < cuts; ++c) {
    ChunkBox& box = boxes[std::uniform_int_distribution<size_t>(0, boxes.size() - 1)(rng)];
    const size_t d = std::uniform_int_distribution<size_t>(0, shape.size() - 1)(rng);
    const int64_t cut = std::uniform_int_distribution<int64_t>(0, box.sizes[d])(rng);
    ChunkBox upper = box;
    upper.offsets[d] += cut;
    upper.sizes[d] -= cut;
    box.sizes[d] = cut;
    boxes.push_back(upper);
  }
  std::shuffle(boxes.begin(), boxes.end(), rng);
  return boxes;
}

// Row-major position of `index` in a box of `sizes`.
int64_t Linear(const Shape& sizes, const Shape& index) {
  int64_t pos = 0;
  for (size_t d = 0; d < sizes.size(); ++d) pos = pos * sizes[d] + index[d];
  return pos;
}

// Advances `index` over the box [0, sizes) in row-major order; false at the end.
bool Next(const Shape& sizes, Shape& index) {
  for (size_t d = sizes.size(); d-- > 0;) {
    if (++index[d] < sizes[d]) return true;
    index[d] = 0;
  }
  return false;
}

int64_t VolumeOf(const Shape& sizes) {
  int64_t v = 1;
  for (int64_t s : sizes) v *= s;
  return v;
}

// Calls `f` with every index of the box [0, sizes), row-major.
template <typename F>
void ForEachIndex(const Shape& sizes, F f) {
  if (VolumeOf(sizes) == 0) return;
  Shape at(sizes.size(), 0);
  do f(at);
  while (Next(sizes, at));
}

// Fills each stored chunk from a tensor whose element value is its global
// row-major position, applies the read items to destination chunks and checks
// that every destination element got its own value exactly once.
void CheckElementwiseCopy(const Shape& shape, const std::vector<ChunkBox>& stored,
                          const std::vector<ChunkBox>& local, const std::vector<ReadItem>& items) {
  auto global_value = [&](const ChunkBox& box, const Shape& inside) {
    Shape global(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) global[d] = box.offsets[d] + inside[d];
    return Linear(shape, global);
  };
  std::vector<std::vector<int64_t>> stored_data(stored.size()), dest_data(local.size()), writes(local.size());
  for (size_t si = 0; si < stored.size(); ++si) {
    stored_data[si].resize(VolumeOf(stored[si].sizes));
    ForEachIndex(stored[si].sizes, [&](const Shape& at) {
      stored_data[si][Linear(stored[si].sizes, at)] = global_value(stored[si], at);
    });
  }
  for (size_t li = 0; li < local.size(); ++li) {
    dest_data[li].assign(VolumeOf(local[li].sizes), -1);
    writes[li].assign(dest_data[li].size(), 0);
  }
  for (const ReadItem& item : items) {
    const int64_t li = *item.dest_index.index, si = *item.storage_index.index;
    ForEachIndex(item.lengths, [&](const Shape& at) {
      Shape src(shape.size()), dst(shape.size());
      for (size_t d = 0; d < shape.size(); ++d) {
        src[d] = item.storage_offsets[d] + at[d];
        dst[d] = item.dest_offsets[d] + at[d];
        ASSERT_TRUE(src[d] >= 0 && src[d] < stored[si].sizes[d]) << item;
        ASSERT_TRUE(dst[d] >= 0 && dst[d] < local[li].sizes[d]) << item;
      }
      const int64_t pos = Linear(local[li].sizes, dst);
      dest_data[li][pos] = stored_data[si][Linear(stored[si].sizes, src)];
      ++writes[li][pos];
    });
  }
  for (size_t li = 0; li < local.size(); ++li) {
    ForEachIndex(local[li].sizes, [&](const Shape& at) {
      const int64_t pos = Linear(local[li].sizes, at);
      EXPECT_EQ(writes[li][pos], 1) << "chunk " << li << " " << local[li] << " position " << ShapeToString(at);
      EXPECT_EQ(dest_data[li][pos], global_value(local[li], at)) << "chunk " << li << " " << local[li];
    });
  }
}

// The (li, si) pairs of the E0-E6 all-pairs loop (spec/planner.md §5.5).
std::vector<std::pair<int64_t, int64_t>> AllPairs(const std::vector<ChunkBox>& stored,
                                                  const std::vector<ChunkBox>& local) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (size_t li = 0; li < local.size(); ++li) {
    for (size_t si = 0; si < stored.size(); ++si) {
      if (OverlapsPyTorch(local[li], stored[si])) pairs.emplace_back(li, si);
    }
  }
  return pairs;
}

std::vector<std::pair<int64_t, int64_t>> PairsOf(const std::vector<ReadItem>& items) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (const ReadItem& item : items) pairs.emplace_back(*item.dest_index.index, *item.storage_index.index);
  return pairs;
}

TEST(CreateReadItemsForChunkListTest, RandomReshardingCopiesEveryElementOnce) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 600; ++trial) {
    const size_t rank = 1 + trial % 3;
    Shape shape(rank);
    for (int64_t& dim : shape) dim = std::uniform_int_distribution<int64_t>(1, 7)(rng);
    const std::vector<ChunkBox> stored = RandomPartition(shape, rng);
    const std::vector<ChunkBox> local = RandomPartition(shape, rng);
    const std::vector<ReadItem> items = CreateReadItemsForChunkList("r", Stored(shape, stored), local);
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " shape " << ShapeToString(shape));
    EXPECT_EQ(PairsOf(items), AllPairs(stored, local));
    CheckElementwiseCopy(shape, stored, local, items);
    if (::testing::Test::HasFailure()) return;
  }
}

// Arbitrary (overlapping, out-of-bounds, empty) boxes: the index finds the
// same pairs, in the same order, as the all-pairs loop.
TEST(CreateReadItemsForChunkListTest, RandomBoxesMatchTheAllPairsOrder) {
  std::mt19937 rng(7);
  auto random_boxes = [&](size_t rank) {
    std::vector<ChunkBox> boxes(std::uniform_int_distribution<int>(0, 12)(rng));
    for (ChunkBox& box : boxes) {
      for (size_t d = 0; d < rank; ++d) {
        box.offsets.push_back(std::uniform_int_distribution<int64_t>(-2, 10)(rng));
        box.sizes.push_back(std::uniform_int_distribution<int64_t>(0, 5)(rng));
      }
    }
    return boxes;
  };
  for (int trial = 0; trial < 2000; ++trial) {
    const size_t rank = trial % 4;
    const std::vector<ChunkBox> stored = random_boxes(rank), local = random_boxes(rank);
    ASSERT_EQ(PairsOf(CreateReadItemsForChunkList("x", Stored(Shape(rank, 8), stored), local)),
              AllPairs(stored, local))
        << "trial " << trial;
  }
}

// ---- Local load plans and errors ---------------------------------------------

TensorProperties Bf16() {
  TensorProperties p;
  p.dtype = DType::kBFloat16;
  return p;
}

// w: (8,4) in row blocks; b: (4,) whole; step, note: bytes; s: 0-d.
Metadata SmallCheckpoint() {
  Metadata metadata;
  metadata.state_dict_metadata.InsertOrAssign("w", Stored({8, 4}, {Box({0, 0}, {4, 4}), Box({4, 0}, {4, 4})}));
  metadata.state_dict_metadata.InsertOrAssign("b", Stored({4}, {Box({0}, {4})}));
  metadata.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  metadata.state_dict_metadata.InsertOrAssign("note", BytesStorageMetadata{});
  metadata.state_dict_metadata.InsertOrAssign("s", Stored({}, {Box({}, {})}));
  return metadata;
}

TEST(CreateLocalLoadPlanTest, WholeTensorsBytesAndScalarInDescriptionOrder) {
  StateDictDescription description;
  description.values.InsertOrAssign("step", OpaqueValue{});
  description.values.InsertOrAssign("b", WholeTensor{{4}, Bf16()});  // dtype may differ: converted on copy
  description.values.InsertOrAssign("s", WholeTensor{{}, TensorProperties{}});
  description.mapping = FlattenMapping{{"step", {"step"}}, {"b", {"b"}}, {"s", {"s"}}};

  const LocalLoadPlan out = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{}, 3);
  EXPECT_TRUE(out.errors.empty());
  const std::vector<ReadItem> expected = {
      BytesItem("step"),
      Item("b", Box({0}, {4}), 0, {0}, Box({0}, {4}), 0, {0}, {4}),
      Item("s", Box({}, {}), 0, {}, Box({}, {}), 0, {}, {}),
  };
  EXPECT_EQ(out.plan.items, expected);
  EXPECT_EQ(out.plan.planner_data, description.mapping);
  EXPECT_EQ(out.plan.storage_data, std::nullopt);
}

TEST(CreateLocalLoadPlanTest, MissingKeyIsAnErrorOnlyWhenStrict) {
  StateDictDescription description;
  description.values.InsertOrAssign("gone", WholeTensor{{2}, TensorProperties{}});
  description.values.InsertOrAssign("step", OpaqueValue{});

  const LocalLoadPlan strict = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{true}, 2);
  ASSERT_EQ(strict.errors.size(), 1u);
  EXPECT_EQ(strict.errors[0].rank, 2);
  EXPECT_EQ(strict.errors[0].fqn, "gone");
  EXPECT_EQ(strict.errors[0].kind, LoadErrorKind::kMissingKey);
  EXPECT_NE(strict.errors[0].message.find("Missing key in checkpoint state_dict: gone."), std::string::npos);
  EXPECT_NE(strict.errors[0].message.find("rank 2"), std::string::npos);
  EXPECT_EQ(strict.plan.items, std::vector<ReadItem>{BytesItem("step")});

  const LocalLoadPlan partial = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{false}, 2);
  EXPECT_TRUE(partial.errors.empty());
  EXPECT_EQ(partial.plan.items, std::vector<ReadItem>{BytesItem("step")});
}

TEST(CreateLocalLoadPlanTest, SizeMismatchNamesBothSizes) {
  StateDictDescription description;
  description.values.InsertOrAssign("w", ShardedTensor{{8, 5}, TensorProperties{}, {Box({0, 0}, {8, 5})}});
  description.values.InsertOrAssign("b", WholeTensor{{5}, TensorProperties{}});
  const LocalLoadPlan out = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{}, 1);
  EXPECT_TRUE(out.plan.items.empty());
  ASSERT_EQ(out.errors.size(), 2u);
  EXPECT_EQ(out.errors[0].kind, LoadErrorKind::kSizeMismatch);
  EXPECT_EQ(out.errors[0].fqn, "w");
  EXPECT_NE(out.errors[0].message.find("[8, 4]"), std::string::npos) << out.errors[0];
  EXPECT_NE(out.errors[0].message.find("[8, 5]"), std::string::npos) << out.errors[0];
  EXPECT_NE(out.errors[0].message.find("rank 1"), std::string::npos) << out.errors[0];
  EXPECT_EQ(out.errors[1].kind, LoadErrorKind::kSizeMismatch);
  EXPECT_EQ(out.errors[1].fqn, "b");
}

TEST(CreateLocalLoadPlanTest, OverlappingStoredChunksMakeTheCheckpointInvalid) {
  Metadata metadata = SmallCheckpoint();
  // 1 000 copies of one chunk: refused instead of a million-item read plan.
  metadata.state_dict_metadata.InsertOrAssign("copies", Stored({4}, std::vector<ChunkBox>(1000, Box({0}, {4}))));
  StateDictDescription description;
  description.values.InsertOrAssign("copies", ShardedTensor{{4}, TensorProperties{}, {Box({0}, {2}), Box({2}, {2})}});
  description.values.InsertOrAssign("b", WholeTensor{{4}, TensorProperties{}});
  const LocalLoadPlan out = CreateLocalLoadPlan(description, metadata, LoadPlannerOptions{}, 2);
  ASSERT_EQ(out.errors.size(), 1u);
  EXPECT_EQ(out.errors[0].kind, LoadErrorKind::kInvalidCheckpoint);
  EXPECT_EQ(out.errors[0].fqn, "copies");
  EXPECT_NE(out.errors[0].message.find("overlap"), std::string::npos) << out.errors[0];
  EXPECT_NE(out.errors[0].message.find("rank 2"), std::string::npos) << out.errors[0];
  // The good key still gets its read.
  ASSERT_EQ(out.plan.items.size(), 1u);
  EXPECT_EQ(out.plan.items[0].dest_index.fqn, "b");
}

TEST(CreateLocalLoadPlanTest, TypeMismatchBothWays) {
  StateDictDescription description;
  description.values.InsertOrAssign("step", WholeTensor{{1}, TensorProperties{}});  // bytes saved
  description.values.InsertOrAssign("note", ShardedTensor{{1}, TensorProperties{}, {Box({0}, {1})}});
  description.values.InsertOrAssign("w", OpaqueValue{});  // tensor saved
  const LocalLoadPlan out = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{}, 0);
  EXPECT_TRUE(out.plan.items.empty());
  ASSERT_EQ(out.errors.size(), 3u);
  const std::vector<std::string> fqns = {"step", "note", "w"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out.errors[i].kind, LoadErrorKind::kTypeMismatch) << out.errors[i];
    EXPECT_EQ(out.errors[i].fqn, fqns[i]);
  }
}

TEST(CreateLocalLoadPlanTest, MalformedRequestedChunksAreSizeMismatches) {
  StateDictDescription description;
  description.values.InsertOrAssign(
      "w", ShardedTensor{{8, 4}, TensorProperties{}, {Box({0, 0}, {4, 4}), Box({6, 0}, {4, 4}), Box({0}, {8})}});
  description.values.InsertOrAssign("b", ShardedTensor{{4}, TensorProperties{}, {Box({1}, {-1})}});
  description.values.InsertOrAssign("step", OpaqueValue{});
  const LocalLoadPlan out = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{}, 0);
  EXPECT_EQ(out.plan.items, std::vector<ReadItem>{BytesItem("step")});
  ASSERT_EQ(out.errors.size(), 3u);
  for (const LoadPlanError& e : out.errors) EXPECT_EQ(e.kind, LoadErrorKind::kSizeMismatch) << e;
  EXPECT_EQ(out.errors[0].fqn, "w");
  EXPECT_NE(out.errors[0].message.find("chunk 1"), std::string::npos) << out.errors[0];
  EXPECT_NE(out.errors[1].message.find("chunk 2"), std::string::npos) << out.errors[1];
  EXPECT_EQ(out.errors[2].fqn, "b");
}

TEST(CreateLocalLoadPlanTest, ErrorsDoNotStopOtherKeys) {
  StateDictDescription description;
  description.values.InsertOrAssign("gone", OpaqueValue{});                                        // missing
  description.values.InsertOrAssign("w", ShardedTensor{{8, 4}, TensorProperties{}, {Box({4, 0}, {2, 4})}});
  description.values.InsertOrAssign("b", WholeTensor{{3}, TensorProperties{}});                   // size
  description.values.InsertOrAssign("note", WholeTensor{{1}, TensorProperties{}});                // type
  description.values.InsertOrAssign("step", OpaqueValue{});
  const LocalLoadPlan out = CreateLocalLoadPlan(description, SmallCheckpoint(), LoadPlannerOptions{}, 5);
  const ChunkBox l = Box({4, 0}, {2, 4}), s1 = Box({4, 0}, {4, 4});
  const std::vector<ReadItem> expected = {Item("w", l, 0, {0, 0}, s1, 1, {0, 0}, {2, 4}), BytesItem("step")};
  EXPECT_EQ(out.plan.items, expected);
  ASSERT_EQ(out.errors.size(), 3u);
  EXPECT_EQ(out.errors[0].kind, LoadErrorKind::kMissingKey);
  EXPECT_EQ(out.errors[1].kind, LoadErrorKind::kSizeMismatch);
  EXPECT_EQ(out.errors[2].kind, LoadErrorKind::kTypeMismatch);

  const absl::Status status = LoadErrorsToStatus(out.errors);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string text(status.message());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_EQ(text.rfind("rank 5: missing_key 'gone': ", 0), 0u) << text;
  EXPECT_NE(text.find("\nrank 5: size_mismatch 'b': "), std::string::npos) << text;
  EXPECT_NE(text.find("\nrank 5: type_mismatch 'note': "), std::string::npos) << text;
  EXPECT_TRUE(LoadErrorsToStatus({}).ok());
}

TEST(LoadErrorKindTest, Names) {
  EXPECT_EQ(LoadErrorKindName(LoadErrorKind::kMissingKey), "missing_key");
  EXPECT_EQ(LoadErrorKindName(LoadErrorKind::kSizeMismatch), "size_mismatch");
  EXPECT_EQ(LoadErrorKindName(LoadErrorKind::kTypeMismatch), "type_mismatch");
}

TEST(CreateGlobalLoadPlanTest, ReturnsThePlansUnchanged) {
  LoadPlan a;
  a.items = {BytesItem("x"), BytesItem("x")};  // duplicates are kept: no dedup on load
  a.storage_data = "s";
  LoadPlan b;
  b.planner_data = FlattenMapping{{"x", {"x"}}};
  const std::vector<LoadPlan> plans = {a, b};
  EXPECT_EQ(CreateGlobalLoadPlan(plans), plans);
}

// ---- DescribeCheckpoint --------------------------------------------------------

Metadata NestedCheckpoint() {
  Metadata metadata;
  auto& entries = metadata.state_dict_metadata;
  entries.InsertOrAssign("model.w", Stored({2, 3}, {Box({0, 0}, {2, 3})}));
  entries.InsertOrAssign("optim.state.0.exp_avg", Stored({2, 3}, {Box({0, 0}, {2, 3})}));
  entries.InsertOrAssign("optim.param_groups", BytesStorageMetadata{});
  entries.InsertOrAssign("ema.0.w", Stored({2}, {Box({0}, {1}), Box({1}, {1})}));
  entries.InsertOrAssign("ema.1.w", Stored({2}, {Box({0}, {2})}));
  entries.InsertOrAssign("renamed", BytesStorageMetadata{});
  entries.InsertOrAssign("extra", Stored({1}, {Box({0}, {1})}));  // no planner_data entry
  metadata.planner_data = FlattenMapping{
      {"model.w", {"model", "w"}},
      {"optim.state.0.exp_avg", {"optim", "state", int64_t{0}, "exp_avg"}},
      {"optim.param_groups", {"optim", "param_groups"}},
      {"ema.0.w", {"ema", int64_t{0}, "w"}},
      {"ema.1.w", {"ema", int64_t{1}, "w"}},
      {"renamed", {"outer", "inner"}},
  };
  return metadata;
}

std::vector<std::string> KeysOf(const StateDictDescription& description) {
  std::vector<std::string> keys;
  for (const auto& entry : description.values) keys.push_back(entry.first);
  return keys;
}

using KeySet = absl::flat_hash_set<std::string>;

TEST(DescribeCheckpointTest, EverythingWithoutAFilter) {
  const StateDictDescription d = DescribeCheckpoint(NestedCheckpoint(), std::nullopt);
  EXPECT_EQ(KeysOf(d), (std::vector<std::string>{"model.w", "optim.state.0.exp_avg", "optim.param_groups", "ema.0.w",
                                                 "ema.1.w", "renamed", "extra"}));
  EXPECT_EQ(*d.values.Find("model.w"), ValueDescription(WholeTensor{{2, 3}, TensorProperties{}}));
  EXPECT_EQ(*d.values.Find("optim.param_groups"), ValueDescription(OpaqueValue{}));
  ASSERT_TRUE(d.mapping.has_value());
  EXPECT_EQ(*d.mapping->Find("renamed"), (ObjectPath{"outer", "inner"}));
  EXPECT_EQ(*d.mapping->Find("extra"), ObjectPath{"extra"});
  EXPECT_EQ(*d.mapping->Find("ema.1.w"), (ObjectPath{"ema", int64_t{1}, "w"}));
  EXPECT_EQ(d.mapping->size(), 7u);
}

TEST(DescribeCheckpointTest, KeysSelectExactKeysAndPathPrefixes) {
  const Metadata metadata = NestedCheckpoint();
  EXPECT_EQ(KeysOf(DescribeCheckpoint(metadata, KeySet{"optim"})),
            (std::vector<std::string>{"optim.state.0.exp_avg", "optim.param_groups"}));
  EXPECT_EQ(KeysOf(DescribeCheckpoint(metadata, KeySet{"ema.0"})), std::vector<std::string>{"ema.0.w"});
  EXPECT_EQ(KeysOf(DescribeCheckpoint(metadata, KeySet{"optim.state.0"})),
            std::vector<std::string>{"optim.state.0.exp_avg"});
  // Exact keys, including one whose path differs from its key and one
  // without a planner_data entry.
  EXPECT_EQ(KeysOf(DescribeCheckpoint(metadata, KeySet{"model.w", "renamed", "extra"})),
            (std::vector<std::string>{"model.w", "renamed", "extra"}));
  EXPECT_EQ(KeysOf(DescribeCheckpoint(metadata, KeySet{"outer"})), std::vector<std::string>{"renamed"});
  // Prefixes end at element boundaries.
  EXPECT_TRUE(DescribeCheckpoint(metadata, KeySet{"opt", "ext", "ema.0.w.x"}).values.empty());

  const StateDictDescription ema = DescribeCheckpoint(metadata, KeySet{"ema"});
  ASSERT_TRUE(ema.mapping.has_value());
  EXPECT_EQ(*ema.mapping, (FlattenMapping{{"ema.0.w", {"ema", int64_t{0}, "w"}}, {"ema.1.w", {"ema", int64_t{1}, "w"}}}));
}

TEST(DescribeCheckpointTest, WithoutPlannerDataOnlyExactKeysMatch) {
  Metadata metadata = NestedCheckpoint();
  metadata.planner_data = std::nullopt;
  const StateDictDescription all = DescribeCheckpoint(metadata, std::nullopt);
  EXPECT_EQ(all.values.size(), 7u);
  EXPECT_EQ(all.mapping, std::nullopt);
  const StateDictDescription some = DescribeCheckpoint(metadata, KeySet{"model.w", "optim"});
  EXPECT_EQ(KeysOf(some), std::vector<std::string>{"model.w"});
  EXPECT_EQ(some.mapping, std::nullopt);
}

// The description loads the whole checkpoint back: every stored chunk read
// into the whole tensor, bytes read once.
TEST(DescribeCheckpointTest, PlansAFullLoad) {
  const Metadata metadata = NestedCheckpoint();
  const StateDictDescription d = DescribeCheckpoint(metadata, KeySet{"ema.0", "optim.param_groups"});
  const LocalLoadPlan out = CreateLocalLoadPlan(d, metadata, LoadPlannerOptions{}, 0);
  EXPECT_TRUE(out.errors.empty());
  const ChunkBox whole = Box({0}, {2});
  const std::vector<ReadItem> expected = {
      BytesItem("optim.param_groups"),
      Item("ema.0.w", whole, 0, {0}, Box({0}, {1}), 0, {0}, {1}),
      Item("ema.0.w", whole, 0, {1}, Box({1}, {1}), 1, {0}, {1}),
  };
  EXPECT_EQ(out.plan.items, expected);
  EXPECT_EQ(out.plan.planner_data, d.mapping);
}

}  // namespace
}  // namespace dcplan
