#include "engine/validate.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/testing/validate_oracle.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

ChunkBox Box(Shape offsets, Shape sizes) { return ChunkBox{std::move(offsets), std::move(sizes)}; }

TensorStorageMetadata Tensor(Shape size, std::vector<ChunkBox> chunks) {
  TensorStorageMetadata tensor;
  tensor.size = std::move(size);
  tensor.chunks = std::move(chunks);
  return tensor;
}

std::vector<PlanProblem> Validate(const TensorStorageMetadata& tensor) { return ValidateTensor("w", tensor); }

// Kind and chunk indices of each problem, e.g. "out_of_bounds[1] overlap[0,2] volume[]".
std::string Summary(const std::vector<PlanProblem>& problems) {
  std::string out;
  for (const PlanProblem& p : problems) {
    absl::StrAppend(&out, out.empty() ? "" : " ", ProblemKindName(p.kind), "[");
    for (size_t i = 0; i < p.chunks.size(); ++i) absl::StrAppend(&out, i ? "," : "", p.chunks[i]);
    absl::StrAppend(&out, "]");
  }
  return out;
}

// ---- Valid layouts ----------------------------------------------------------------

TEST(ValidateTensorTest, ExactPartitionsAreValid) {
  EXPECT_TRUE(Validate(Tensor({8, 4}, {Box({0, 0}, {4, 4}), Box({4, 0}, {4, 4})})).empty());
  // A 2x2 grid: blocks touch along edges and at the centre corner.
  EXPECT_TRUE(Validate(Tensor({8, 8}, {Box({0, 0}, {4, 4}), Box({0, 4}, {4, 4}), Box({4, 0}, {4, 4}),
                                       Box({4, 4}, {4, 4})}))
                  .empty());
  // One whole-tensor chunk; uneven 1-d pieces in shuffled order.
  EXPECT_TRUE(Validate(Tensor({5, 3}, {Box({0, 0}, {5, 3})})).empty());
  EXPECT_TRUE(Validate(Tensor({10}, {Box({7}, {3}), Box({0}, {2}), Box({2}, {5})})).empty());
}

TEST(ValidateTensorTest, ZeroDimensionalTensorsAreAlwaysValid) {
  EXPECT_TRUE(Validate(Tensor({}, {Box({}, {})})).empty());
  EXPECT_TRUE(Validate(Tensor({}, {})).empty());
  // Even chunks that would be faults for any other tensor.
  EXPECT_TRUE(Validate(Tensor({}, {Box({5}, {3}), Box({}, {}), Box({}, {})})).empty());
}

TEST(ValidateTensorTest, EmptyChunkListIsAVolumeProblemUnlessTheTensorIsEmpty) {
  std::vector<PlanProblem> problems = Validate(Tensor({8, 4}, {}));
  ASSERT_EQ(Summary(problems), "volume[]");
  EXPECT_EQ(problems[0].fqn, "w");
  EXPECT_EQ(problems[0].expected, 32);
  EXPECT_EQ(problems[0].actual, 0);
  EXPECT_EQ(problems[0].message, "key:w has 0 chunks covering 0 elements but its size [8, 4] has 32");

  EXPECT_TRUE(Validate(Tensor({0, 4}, {})).empty());
  // Zero-volume chunks of an empty tensor are fine too.
  EXPECT_TRUE(Validate(Tensor({0, 4}, {Box({0, 0}, {0, 4}), Box({0, 0}, {0, 2})})).empty());
}

// ---- Out of bounds ------------------------------------------------------------------

TEST(ValidateTensorTest, ChunkPastTheEnd) {
  // [4, 9) in a tensor of 8; volume 4 + 5 = 9.
  std::vector<PlanProblem> problems = Validate(Tensor({8}, {Box({0}, {4}), Box({4}, {5})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].fqn, "w");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 1 {offsets=[4], sizes=[5]}: it ends at 9 in dim 0, past the tensor size [8]");
  EXPECT_EQ(problems[1].expected, 8);
  EXPECT_EQ(problems[1].actual, 9);
  EXPECT_EQ(problems[1].message, "key:w has 2 chunks covering 9 elements but its size [8] has 8");
}

TEST(ValidateTensorTest, ChunkPastTheEndInTheSecondDim) {
  // Rows [4, 8) x columns [2, 6) of [8, 4]; overlaps nothing (rows [0, 4) are
  // the other chunk); volume 16 + 16 = 32 matches, so only the bounds fault.
  std::vector<PlanProblem> problems = Validate(Tensor({8, 4}, {Box({0, 0}, {4, 4}), Box({4, 2}, {4, 4})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1]");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 1 {offsets=[4, 2], sizes=[4, 4]}: it ends at 6 in dim 1, past the tensor "
            "size [8, 4]");
}

TEST(ValidateTensorTest, NegativeOffsetEvenWhenTheVolumeAddsUp) {
  // [-1, 0) and [0, 7): volume 1 + 7 = 8 equals the tensor's, no overlap.
  std::vector<PlanProblem> problems = Validate(Tensor({8}, {Box({-1}, {1}), Box({0}, {7})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[0]");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 0 {offsets=[-1], sizes=[1]}: its offset in dim 0 is negative");
}

TEST(ValidateTensorTest, NegativeSizeCountsZeroVolume) {
  std::vector<PlanProblem> problems = Validate(Tensor({8}, {Box({0}, {4}), Box({4}, {-4})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 1 {offsets=[4], sizes=[-4]}: its size in dim 0 is negative");
  EXPECT_EQ(problems[1].expected, 8);
  EXPECT_EQ(problems[1].actual, 4);
  EXPECT_EQ(problems[1].message,
            "key:w has 2 chunks covering 4 elements but its size [8] has 8 (chunks with a negative size count 0)");

  // A negative-size chunk lying inside another one overlaps nothing: 8 + 0.
  problems = Validate(Tensor({8}, {Box({0}, {8}), Box({6}, {-2})}));
  EXPECT_EQ(Summary(problems), "out_of_bounds[1]");
}

TEST(ValidateTensorTest, EndOverflowingInt64) {
  // [kMax - 1, kMax + 4): out of bounds, no overlap with [0, 8), volume 8 + 5.
  std::vector<PlanProblem> problems = Validate(Tensor({8}, {Box({0}, {8}), Box({kMax - 1}, {5})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].message, absl::StrCat("key:w has out of bounds chunk 1 {offsets=[", kMax - 1,
                                              "], sizes=[5]}: its end in dim 0 overflows int64"));
  EXPECT_EQ(problems[1].expected, 8);
  EXPECT_EQ(problems[1].actual, 13);
}

TEST(ValidateTensorTest, RankMismatch) {
  // Volume 32 + 4 = 36: a chunk of the wrong rank still counts its volume.
  std::vector<PlanProblem> problems = Validate(Tensor({8, 4}, {Box({0, 0}, {8, 4}), Box({0}, {4})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 1 {offsets=[0], sizes=[4]}: it has rank 1 but the tensor has rank 2");
  EXPECT_EQ(problems[1].actual, 36);

  problems = Validate(Tensor({8, 4}, {Box({0, 0}, {8, 4}), Box({0, 0}, {4})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].message,
            "key:w has out of bounds chunk 1 {offsets=[0, 0], sizes=[4]}: it has 2 offsets but 1 sizes");

  // Two identical rank-3 chunks of a rank-2 tensor are not compared with each
  // other: they are reported out of bounds, not as an overlap.
  problems = Validate(Tensor({8, 4}, {Box({0, 0}, {8, 4}), Box({0, 0, 0}, {1, 1, 1}), Box({0, 0, 0}, {1, 1, 1})}));
  EXPECT_EQ(Summary(problems), "out_of_bounds[1] out_of_bounds[2] volume[]");
}

TEST(ValidateTensorTest, HugeOffsetsNearTheInt64Limits) {
  // Exactly [0, kMax) split in two: valid.
  std::vector<ChunkBox> chunks = {Box({0}, {kMax - 1}), Box({kMax - 1}, {1})};
  EXPECT_TRUE(Validate(Tensor({kMax}, chunks)).empty());

  // Add [kMax - 1, 2 kMax - 1): its end overflows and it shares element
  // kMax - 1 with chunk 1 (not with chunk 0, which ends there). The volume sum,
  // 2 kMax, is reported saturated at kMax: equal to the tensor's own volume,
  // yet still a mismatch.
  chunks.push_back(Box({kMax - 1}, {kMax}));
  std::vector<PlanProblem> problems = Validate(Tensor({kMax}, chunks));
  ASSERT_EQ(Summary(problems), "out_of_bounds[2] overlap[1,2] volume[]");
  EXPECT_EQ(problems[2].expected, kMax);
  EXPECT_EQ(problems[2].actual, kMax);
  EXPECT_EQ(problems[2].message, absl::StrCat("key:w has 3 chunks covering more than ", kMax,
                                              " elements but its size [", kMax, "] has ", kMax));

  // The most negative offset (rows [kMin, kMin + 5), far from chunk 1's
  // [0, kMax)); a chunk whose volume overflows int64.
  problems = Validate(Tensor({4, 4}, {Box({kMin, 0}, {5, 4}), Box({0, 0}, {kMax, kMax})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[0] out_of_bounds[1] volume[]");
  EXPECT_EQ(problems[0].message, absl::StrCat("key:w has out of bounds chunk 0 {offsets=[", kMin,
                                              ", 0], sizes=[5, 4]}: its offset in dim 0 is negative"));
  EXPECT_EQ(problems[2].expected, 16);
  EXPECT_EQ(problems[2].actual, kMax);
}

// ---- Overlap --------------------------------------------------------------------------

TEST(ValidateTensorTest, OverlapButNotTouching) {
  // Rows [0, 4), [2, 6) and [6, 8): the first two share rows 2-3; the last
  // one touches the second at row 6 without sharing an element.
  std::vector<PlanProblem> problems =
      Validate(Tensor({8, 4}, {Box({0, 0}, {4, 4}), Box({2, 0}, {4, 4}), Box({6, 0}, {2, 4})}));
  ASSERT_EQ(Summary(problems), "overlap[0,1] volume[]");
  EXPECT_EQ(problems[0].fqn, "w");
  EXPECT_EQ(problems[0].message,
            "key:w has overlapping chunks 0 {offsets=[0, 0], sizes=[4, 4]} and 1 {offsets=[2, 0], sizes=[4, 4]}");
  EXPECT_EQ(problems[1].expected, 32);
  EXPECT_EQ(problems[1].actual, 40);
}

TEST(ValidateTensorTest, OverlapInOneDimOnlyIsNoOverlap) {
  // Rows overlap ([0, 4) and [2, 6)) but columns are [0, 4) and [4, 8).
  std::vector<PlanProblem> problems = Validate(Tensor({8, 8}, {Box({0, 0}, {4, 4}), Box({2, 4}, {4, 4})}));
  EXPECT_EQ(Summary(problems), "volume[]");
}

TEST(ValidateTensorTest, ZeroVolumeChunkInsideAnotherIsNoOverlap) {
  const ChunkBox whole = Box({0, 0}, {4, 4});
  const ChunkBox flat = Box({2, 2}, {0, 1});
  // PyTorch's formula would flag this one; dcplan's rule does not.
  ASSERT_TRUE(OverlapsPyTorch(whole, flat));
  EXPECT_TRUE(Validate(Tensor({4, 4}, {whole, flat, Box({1, 1}, {2, 0}), flat})).empty());
}

TEST(ValidateTensorTest, DuplicatedChunk) {
  std::vector<PlanProblem> problems = Validate(Tensor({8}, {Box({0}, {4}), Box({4}, {4}), Box({0}, {4})}));
  ASSERT_EQ(Summary(problems), "overlap[0,2] volume[]");
  EXPECT_EQ(problems[1].expected, 8);
  EXPECT_EQ(problems[1].actual, 12);
}

TEST(ValidateTensorTest, EveryOverlappingPairInAscendingOrder) {
  // [6, 9), [0, 10), [2, 7): every pair overlaps. Sorted by start the chunks
  // come as 1, 2, 0, but pairs are reported by ascending (i, j).
  std::vector<PlanProblem> problems = Validate(Tensor({10}, {Box({6}, {3}), Box({0}, {10}), Box({2}, {5})}));
  ASSERT_EQ(Summary(problems), "overlap[0,1] overlap[0,2] overlap[1,2] volume[]");
  EXPECT_EQ(problems[3].expected, 10);
  EXPECT_EQ(problems[3].actual, 18);
}

TEST(ValidateTensorTest, ManyOverlapsListTheSmallestPairsThenTheirCount) {
  // 20 copies of one chunk: 190 pairs; the 64 smallest end at (3, 13).
  const std::vector<PlanProblem> problems = Validate(Tensor({4}, std::vector<ChunkBox>(20, Box({0}, {4}))));
  ASSERT_EQ(problems.size(), kMaxListedOverlapPairs + 2);
  EXPECT_EQ(problems[0].chunks, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(problems[kMaxListedOverlapPairs - 1].chunks, (std::vector<int64_t>{3, 13}));
  const PlanProblem& summary = problems[kMaxListedOverlapPairs];
  EXPECT_EQ(summary.kind, ProblemKind::kOverlap);
  EXPECT_TRUE(summary.chunks.empty());
  EXPECT_EQ(summary.message, "key:w has 190 overlapping chunk pairs; 64 are listed");
  EXPECT_EQ(problems.back().kind, ProblemKind::kVolume);
}

TEST(ValidateTensorTest, DegenerateCopiesStopTheSearchAndSaySo) {
  // 5 000 copies: 12 497 500 pairs, past kMaxOverlapCandidates.
  const std::vector<PlanProblem> problems = Validate(Tensor({4}, std::vector<ChunkBox>(5000, Box({0}, {4}))));
  ASSERT_EQ(problems.size(), kMaxListedOverlapPairs + 2);
  const std::string& summary = problems[kMaxListedOverlapPairs].message;
  EXPECT_EQ(summary.rfind("key:w has at least ", 0), 0u) << summary;
  EXPECT_NE(summary.find("(the search stopped early)"), std::string::npos) << summary;
}

TEST(ValidateTensorTest, OverlapsInAGridAreFoundAcrossRows) {
  // A 2x2 grid of [8, 8] plus a block straddling the centre, which shares an
  // element with all four blocks.
  std::vector<PlanProblem> problems =
      Validate(Tensor({8, 8}, {Box({0, 0}, {4, 4}), Box({0, 4}, {4, 4}), Box({4, 0}, {4, 4}), Box({4, 4}, {4, 4}),
                               Box({3, 3}, {2, 2})}));
  EXPECT_EQ(Summary(problems), "overlap[0,4] overlap[1,4] overlap[2,4] overlap[3,4] volume[]");
}

// ---- Volume -----------------------------------------------------------------------------

TEST(ValidateTensorTest, DroppedChunk) {
  std::vector<PlanProblem> problems = Validate(Tensor({8, 4}, {Box({0, 0}, {4, 4})}));
  ASSERT_EQ(Summary(problems), "volume[]");
  EXPECT_EQ(problems[0].expected, 32);
  EXPECT_EQ(problems[0].actual, 16);
  EXPECT_EQ(problems[0].message, "key:w has 1 chunks covering 16 elements but its size [8, 4] has 32");
}

TEST(ValidateTensorTest, TensorVolumeOverflowingInt64) {
  const int64_t big = int64_t{1} << 32;
  std::vector<PlanProblem> problems = Validate(Tensor({big, big}, {Box({0, 0}, {1, 1})}));
  ASSERT_EQ(Summary(problems), "volume[]");
  EXPECT_EQ(problems[0].expected, kMax);
  EXPECT_EQ(problems[0].actual, 1);
  EXPECT_EQ(problems[0].message, "key:w has size [4294967296, 4294967296] whose volume overflows int64");
}

TEST(ValidateTensorTest, TensorWithANegativeDimension) {
  // Every chunk is out of bounds (it ends at 0 or later, past -1).
  std::vector<PlanProblem> problems = Validate(Tensor({-1, 4}, {Box({0, 0}, {0, 4})}));
  ASSERT_EQ(Summary(problems), "out_of_bounds[0] volume[]");
  EXPECT_EQ(problems[1].expected, 0);
  EXPECT_EQ(problems[1].actual, 0);
  EXPECT_EQ(problems[1].message, "key:w has size [-1, 4] with a negative dimension");
}

// ---- Metadata ----------------------------------------------------------------------------

TEST(ValidateMetadataTest, TensorsInKeyOrderBytesSkipped) {
  StateDictMetadata metadata;
  metadata.InsertOrAssign("z", Tensor({8}, {Box({0}, {4})}));
  metadata.InsertOrAssign("step", BytesStorageMetadata{});
  metadata.InsertOrAssign("scalar", Tensor({}, {Box({}, {}), Box({}, {})}));
  metadata.InsertOrAssign("ok", Tensor({4}, {Box({0}, {4})}));
  metadata.InsertOrAssign("a", Tensor({4}, {Box({0}, {4}), Box({0}, {4})}));
  std::vector<PlanProblem> problems = ValidateMetadata(metadata);
  ASSERT_EQ(Summary(problems), "volume[] overlap[0,1] volume[]");
  EXPECT_EQ(problems[0].fqn, "z");
  EXPECT_EQ(problems[1].fqn, "a");
  EXPECT_EQ(problems[1].message,
            "key:a has overlapping chunks 0 {offsets=[0], sizes=[4]} and 1 {offsets=[0], sizes=[4]}");
  EXPECT_EQ(problems[2].fqn, "a");

  EXPECT_TRUE(ValidateMetadata(StateDictMetadata{}).empty());
}

// ---- Agreement with the pairwise oracle ------------------------------------------------------

// Random boxes on a small lattice, so that boxes often touch, coincide, nest
// or have zero volume; a few are malformed or out of bounds.
ChunkBox RandomBox(std::mt19937& rng, const Shape& size) {
  auto uniform = [&rng](int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng); };
  ChunkBox box;
  size_t rank = size.size();
  if (uniform(0, 30) == 0) rank = static_cast<size_t>(uniform(0, 3));
  for (size_t d = 0; d < rank; ++d) {
    const int64_t extent = d < size.size() ? size[d] : 4;
    const int64_t start = uniform(-1, extent);
    int64_t length = uniform(0, 2) == 0 ? uniform(0, 2) : uniform(0, extent + 1 - start);
    if (uniform(0, 40) == 0) length = -uniform(1, 2);
    box.offsets.push_back(start);
    box.sizes.push_back(length);
  }
  if (uniform(0, 40) == 0) box.offsets.push_back(0);
  return box;
}

TensorStorageMetadata RandomTensor(std::mt19937& rng, size_t max_chunks) {
  auto uniform = [&rng](int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng); };
  TensorStorageMetadata tensor;
  const int64_t rank = uniform(1, 3);
  for (int64_t d = 0; d < rank; ++d) tensor.size.push_back(uniform(0, 6));
  const int64_t count = uniform(0, static_cast<int64_t>(max_chunks));
  // Half the time, start from a grid partition so that valid and nearly valid
  // layouts are common.
  if (uniform(0, 1) == 0 && rank == 2) {
    for (int64_t r = 0; r < tensor.size[0]; ++r) {
      for (int64_t c = 0; c < tensor.size[1]; ++c) tensor.chunks.push_back(Box({r, c}, {1, 1}));
    }
  }
  for (int64_t i = 0; i < count; ++i) tensor.chunks.push_back(RandomBox(rng, tensor.size));
  std::shuffle(tensor.chunks.begin(), tensor.chunks.end(), rng);
  return tensor;
}

void ExpectAgreement(uint32_t seed, int tensors, size_t max_chunks, int64_t& overlaps, int64_t& valid) {
  std::mt19937 rng(seed);
  for (int t = 0; t < tensors; ++t) {
    const TensorStorageMetadata tensor = RandomTensor(rng, max_chunks);
    const std::vector<PlanProblem> fast = ValidateTensor("t", tensor);
    const std::vector<PlanProblem> oracle = ValidateTensorPairwise("t", tensor);
    ASSERT_EQ(fast, oracle) << "seed " << seed << " tensor " << t << ": " << tensor << "\nfast:   " << Summary(fast)
                            << "\noracle: " << Summary(oracle);
    for (const PlanProblem& p : fast) overlaps += p.kind == ProblemKind::kOverlap;
    valid += fast.empty();
  }
}

TEST(ValidateTensorTest, AgreesWithThePairwiseOracle) {
  int64_t overlaps = 0, valid = 0;
  for (uint32_t seed : {1u, 2u, 3u}) ExpectAgreement(seed, 150, 12, overlaps, valid);
  for (uint32_t seed : {4u, 5u}) ExpectAgreement(seed, 30, 150, overlaps, valid);
  // The random sets must exercise both outcomes for the comparison to mean
  // anything.
  EXPECT_GT(overlaps, 1000);
  EXPECT_GT(valid, 10);
}

// Guillotine tilings of rank 3 (the layouts DisjointByCuts proves disjoint),
// a pinwheel that no cut takes apart, and each perturbed: one box shifted by
// one or duplicated.
void Guillotine(std::mt19937& rng, Shape offsets, Shape sizes, int depth, std::vector<ChunkBox>& out) {
  std::vector<size_t> splittable;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] > 1) splittable.push_back(d);
  }
  if (depth == 0 || splittable.empty() || rng() % 5 == 0) {
    out.push_back(Box(offsets, sizes));
    return;
  }
  const size_t d = splittable[rng() % splittable.size()];
  const int64_t cut = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(sizes[d] - 1));
  Shape right_offsets = offsets, right_sizes = sizes;
  right_offsets[d] += cut;
  right_sizes[d] -= cut;
  sizes[d] = cut;
  Guillotine(rng, offsets, sizes, depth - 1, out);
  Guillotine(rng, right_offsets, right_sizes, depth - 1, out);
}

TEST(ValidateTensorTest, RankThreeTilingsAgreeWithThePairwiseOracle) {
  std::mt19937 rng(7);
  int64_t valid = 0, invalid = 0;
  for (int t = 0; t < 400; ++t) {
    TensorStorageMetadata tensor = Tensor({6, 5, 7}, {});
    if (t % 10 == 0) {
      // A pinwheel in dims 0 and 1 (four 4 x 2 and 2 x 4 boxes around a
      // 2 x 2 centre box), extended along dim 2.
      tensor = Tensor({6, 6, 3}, {Box({0, 0, 0}, {4, 2, 3}), Box({4, 0, 0}, {2, 4, 3}), Box({2, 4, 0}, {4, 2, 3}),
                                  Box({0, 2, 0}, {2, 4, 3}), Box({2, 2, 0}, {2, 2, 3})});
    } else {
      Guillotine(rng, {0, 0, 0}, tensor.size, 8, tensor.chunks);
    }
    std::shuffle(tensor.chunks.begin(), tensor.chunks.end(), rng);
    if (rng() % 2 == 0) {
      ChunkBox& box = tensor.chunks[rng() % tensor.chunks.size()];
      if (rng() % 3 == 0) {
        tensor.chunks.push_back(box);
      } else {
        box.offsets[rng() % 3] += rng() % 2 == 0 ? 1 : -1;
      }
    }
    const std::vector<PlanProblem> fast = ValidateTensor("t", tensor);
    ASSERT_EQ(fast, ValidateTensorPairwise("t", tensor)) << "tensor " << t << ": " << tensor;
    (fast.empty() ? valid : invalid) += 1;
  }
  EXPECT_GT(valid, 150);
  EXPECT_GT(invalid, 150);
}

// ---- Large layouts ---------------------------------------------------------------------------

TEST(ValidateTensorTest, HundredThousandChunkPartitionsAreValid) {
  const int64_t kPieces = 100000;
  TensorStorageMetadata row = Tensor({kPieces * 3}, {});
  for (int64_t i = 0; i < kPieces; ++i) row.chunks.push_back(Box({3 * i}, {3}));
  EXPECT_TRUE(Validate(row).empty());

  // [vocab, hidden] split column-wise: every chunk spans all of dim 0, the
  // largest dim.
  TensorStorageMetadata columns = Tensor({2 * kPieces + 7, kPieces}, {});
  for (int64_t i = 0; i < kPieces; ++i) columns.chunks.push_back(Box({0, i}, {2 * kPieces + 7, 1}));
  EXPECT_TRUE(Validate(columns).empty());
  // The same layout finds a duplicated column among them.
  columns.chunks.push_back(columns.chunks[500]);
  std::vector<PlanProblem> problems = Validate(columns);
  ASSERT_EQ(Summary(problems), "overlap[500,100000] volume[]");
  EXPECT_EQ(problems[1].expected, (2 * kPieces + 7) * kPieces);
  EXPECT_EQ(problems[1].actual, (2 * kPieces + 7) * (kPieces + 1));

  // A 316 x 316 grid of 3 x 2 blocks.
  TensorStorageMetadata grid = Tensor({316 * 3, 316 * 2}, {});
  for (int64_t r = 0; r < 316; ++r) {
    for (int64_t c = 0; c < 316; ++c) grid.chunks.push_back(Box({3 * r, 2 * c}, {3, 2}));
  }
  EXPECT_TRUE(Validate(grid).empty());

  // A 46 x 46 x 46 grid with uneven block sizes per dim.
  TensorStorageMetadata cube = Tensor({46 * 5, 46 * 2, 46 * 3}, {});
  for (int64_t i = 0; i < 46; ++i) {
    for (int64_t j = 0; j < 46; ++j) {
      for (int64_t k = 0; k < 46; ++k) cube.chunks.push_back(Box({5 * i, 2 * j, 3 * k}, {5, 2, 3}));
    }
  }
  EXPECT_TRUE(Validate(cube).empty());
  // One block shifted by one row in dim 1 overlaps its neighbour there, and
  // leaves the volume unchanged.
  cube.chunks[46 * 46 * 10 + 46 * 7 + 3].offsets[1] += 1;
  problems = Validate(cube);
  const int64_t shifted = 46 * 46 * 10 + 46 * 7 + 3;
  ASSERT_EQ(Summary(problems), absl::StrCat("overlap[", shifted, ",", shifted + 46, "]"));
}

// 70^3 unit blocks: the sweep alone meets 70 candidates per block, past
// kMaxOverlapCandidates, and could not say the layout is valid.
TEST(ValidateTensorTest, CubeGridPastTheCandidateCapIsValid) {
  const int64_t n = 70;
  TensorStorageMetadata cube = Tensor({n, 2 * n, n}, {});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t k = 0; k < n; ++k) cube.chunks.push_back(Box({i, 2 * j, k}, {1, 2, 1}));
    }
  }
  EXPECT_EQ(Summary(Validate(cube)), "");
  cube.chunks.push_back(cube.chunks[12345]);
  // With a duplicate no cut takes the layout apart: the sweep finds the pair
  // and stops at the cap, and says so.
  const std::vector<PlanProblem> problems = Validate(cube);
  ASSERT_EQ(Summary(problems), absl::StrCat("overlap[12345,", n * n * n, "] overlap[] volume[]"));
  EXPECT_EQ(problems[1].message, OverlapSummaryMessage("w", 1, /*complete=*/false, 1));
}

}  // namespace
}  // namespace dcplan
