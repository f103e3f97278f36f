#include "engine/dedup.h"

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

WriteItem Shard(const std::string& fqn, Shape size, Shape offsets, Shape lengths, DType dtype = DType::kFloat32) {
  WriteItem item;
  item.index = MetadataIndex{fqn, offsets, std::nullopt};
  item.type = WriteItemType::kShard;
  TensorProperties properties;
  properties.dtype = dtype;
  item.tensor_data = TensorWriteData{ChunkBox{offsets, lengths}, properties, size};
  return item;
}

WriteItem Tensor(const std::string& fqn, Shape shape, DType dtype = DType::kFloat32) {
  WriteItem item = Shard(fqn, shape, Shape(shape.size(), 0), shape, dtype);
  item.type = WriteItemType::kTensor;
  return item;
}

WriteItem Bytes(const std::string& fqn, std::optional<int64_t> nbytes = std::nullopt) {
  WriteItem item;
  item.index = MetadataIndex{fqn, std::nullopt, std::nullopt};
  item.type = WriteItemType::kByteIO;
  item.bytes_io_nbytes = nbytes;
  return item;
}

SavePlan Plan(std::vector<WriteItem> items) {
  SavePlan plan;
  plan.items = std::move(items);
  return plan;
}

// The fqns of each plan's items, in order (enough to identify items in tests
// without shards).
std::vector<std::vector<std::string>> Fqns(const std::vector<SavePlan>& plans) {
  std::vector<std::vector<std::string>> out;
  for (const SavePlan& plan : plans) {
    out.emplace_back();
    for (const WriteItem& item : plan.items) out.back().push_back(item.index.fqn);
  }
  return out;
}

using Fqs = std::vector<std::string>;

DedupResult Dedup(const std::vector<SavePlan>& plans, DedupPolicy policy) {
  absl::StatusOr<DedupResult> result = DedupSavePlans(plans, policy);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *std::move(result) : DedupResult{};
}

TEST(DedupPolicyNameTest, Names) {
  EXPECT_EQ(DedupPolicyName(DedupPolicy::kPyTorch), "pytorch");
  EXPECT_EQ(DedupPolicyName(DedupPolicy::kLowestRank), "lowest_rank");
  EXPECT_EQ(DedupPolicyName(DedupPolicy::kBalanced), "balanced");
}

// Three ranks hold a (16 bytes), b (8) and c (4). PyTorch's greedy: a -> rank
// 0 (loads 16,0,0), b -> rank 1 (16,8,0), c -> rank 2 (16,8,4).
std::vector<SavePlan> ThreeReplicatedRanks() {
  std::vector<WriteItem> items = {Tensor("a", {4}), Tensor("b", {2}), Tensor("c", {1})};
  return {Plan(items), Plan(items), Plan(items)};
}

TEST(DedupTest, ReplicatedOnThreeRanksPyTorch) {
  DedupResult result = Dedup(ThreeReplicatedRanks(), DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"a"}, {"b"}, {"c"}}));
  EXPECT_THAT(result.conflicts, IsEmpty());
}

TEST(DedupTest, ReplicatedOnThreeRanksLowestRank) {
  DedupResult result = Dedup(ThreeReplicatedRanks(), DedupPolicy::kLowestRank);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"a", "b", "c"}, {}, {}}));
}

TEST(DedupTest, ReplicatedOnThreeRanksBalanced) {
  // Real bytes equal the weights here; the largest-first order a, b, c is the
  // first-seen order, so both give max 16 and the tie returns PyTorch's.
  DedupResult result = Dedup(ThreeReplicatedRanks(), DedupPolicy::kBalanced);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"a"}, {"b"}, {"c"}}));
}

TEST(DedupTest, TieGoesToLowestRankNotCPythonSetOrder) {
  // Ranks 5 and 11 of 12 hold a, b and x (8 bytes each). a -> 5 (tie at 0),
  // b -> 11 (8 > 0), then x finds both at load 8. CPython iterates the set
  // {5, 11} as 11, 5 and PyTorch would pick 11; dcplan picks the lowest, 5.
  std::vector<SavePlan> plans(12);
  plans[5] = Plan({Tensor("a", {2}), Tensor("b", {2}), Tensor("x", {2})});
  plans[11] = plans[5];
  DedupResult result = Dedup(plans, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans)[5], (Fqs{"a", "x"}));
  EXPECT_EQ(Fqns(result.plans)[11], (Fqs{"b"}));
}

TEST(DedupTest, PyTorchWeightIsGlobalSizeForShards) {
  // w is a replicated shard of 1x4 floats (16 bytes) of an 8x4 tensor: its
  // weight is 8*4*4 = 128. w -> rank 0 (128, 0); b (40) -> rank 1 (128, 40);
  // c (32) -> rank 1 (128, 72). With chunk-size weights (16) w -> 0 (16, 0),
  // b -> 1 (16, 40) and c would go to rank 0 (16 < 40).
  std::vector<WriteItem> items = {Shard("w", {8, 4}, {0, 0}, {1, 4}), Tensor("b", {10}), Tensor("c", {8})};
  DedupResult result = Dedup({Plan(items), Plan(items)}, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"w"}, {"b", "c"}}));
}

TEST(DedupTest, PyTorchWeighsBytesItemsAndEmptyTensorsAsOne) {
  // s (bytes, 1000 real bytes) weighs 1 -> rank 0 (1, 0); e (0 bytes) weighs
  // 1 -> rank 1 (1, 1); f (4) ties -> rank 0.
  std::vector<WriteItem> items = {Bytes("s", 1000), Tensor("e", {0}), Tensor("f", {1})};
  DedupResult result = Dedup({Plan(items), Plan(items)}, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"s", "f"}, {"e"}}));
}

TEST(DedupTest, SingleHolderItemsCountTowardsLoad) {
  // a0 (400 bytes) is rank 0's alone and comes first: rank 0 has load 400
  // when r is balanced, so r goes to rank 1.
  DedupResult result = Dedup({Plan({Tensor("a0", {100}), Tensor("r", {1})}), Plan({Tensor("r", {1})})},
                             DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"a0"}, {"r"}}));
}

TEST(DedupTest, WeightComesFromLastAppearance) {
  // t is float32[1] on rank 0 but float32[100] on rank 1 (a conflict): the
  // weight is the last appearance's, 400. t -> rank 0 (400, 0); u (8) ->
  // rank 1 (400, 8); v (4) -> rank 1. With the first appearance's weight (4)
  // v would go to rank 0 (4 < 8).
  DedupResult result =
      Dedup({Plan({Tensor("t", {1}), Tensor("u", {2}), Tensor("v", {1})}),
             Plan({Tensor("t", {100}), Tensor("u", {2}), Tensor("v", {1})})},
            DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"t"}, {"u", "v"}}));
  ASSERT_EQ(result.conflicts.size(), 1u);
  EXPECT_EQ(result.conflicts[0].fqn, "t");
}

TEST(DedupTest, DuplicateKeyInChosenPlanKeepsBothCopies) {
  WriteItem d = Tensor("d", {2});
  DedupResult result = Dedup({Plan({d, Tensor("own", {1}), d}), Plan({d})}, DedupPolicy::kPyTorch);
  // d: loads (0, 0) -> rank 0, which keeps both copies in their places.
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"d", "own", "d"}, {}}));
  EXPECT_THAT(result.conflicts, IsEmpty());
}

TEST(DedupTest, DuplicateKeyInPlanNotChosenDropsBothCopies) {
  WriteItem d = Tensor("d", {2});
  // pre (40 bytes) loads rank 0 first; d then goes to rank 1.
  DedupResult result = Dedup({Plan({Tensor("pre", {10}), d, d}), Plan({d})}, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"pre"}, {"d"}}));
}

TEST(DedupTest, KeepsPlanFieldsAndItemOrder) {
  SavePlan plan0 = Plan({Tensor("x", {1}), Tensor("y", {1})});
  plan0.storage_data = "__0_";
  plan0.planner_data = FlattenMapping{{"x", {std::string("x")}}};
  SavePlan plan1 = Plan({Tensor("z", {1}), Tensor("x", {1})});
  plan1.usable = false;
  DedupResult result = Dedup({plan0, plan1}, DedupPolicy::kLowestRank);
  ASSERT_EQ(result.plans.size(), 2u);
  EXPECT_EQ(result.plans[0].storage_data, plan0.storage_data);
  EXPECT_EQ(result.plans[0].planner_data, plan0.planner_data);
  EXPECT_TRUE(result.plans[0].usable);
  EXPECT_FALSE(result.plans[1].usable);
  EXPECT_EQ(result.plans[0].items, plan0.items);
  EXPECT_EQ(Fqns(result.plans)[1], (Fqs{"z"}));
}

TEST(DedupTest, ShardsWithDifferentOffsetsAreDifferentKeys) {
  // Two row shards of one tensor on two ranks: nothing is removed.
  std::vector<SavePlan> plans = {Plan({Shard("w", {8, 4}, {0, 0}, {4, 4})}),
                                 Plan({Shard("w", {8, 4}, {4, 0}, {4, 4})})};
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    DedupResult result = Dedup(plans, policy);
    EXPECT_EQ(result.plans, plans) << DedupPolicyName(policy);
  }
}

TEST(DedupTest, KeysTieOnTheFirstOffsetAndDifferLater) {
  // Column shards (first offsets all 0) listed out of order, one replicated;
  // a 0-d tensor (offsets ()) and a bytes value (no offsets) of one fqn are
  // different keys.
  std::vector<SavePlan> plans = {Plan({Shard("w", {8, 8}, {0, 4}, {8, 4})}),
                                 Plan({Shard("w", {8, 8}, {0, 0}, {8, 4})}),
                                 Plan({Shard("w", {8, 8}, {0, 4}, {8, 4})}),
                                 Plan({Tensor("s", {})}),
                                 Plan({Bytes("s")})};
  DedupResult result = Dedup(plans, DedupPolicy::kLowestRank);
  EXPECT_THAT(result.conflicts, IsEmpty());
  EXPECT_EQ(result.plans[0], plans[0]);
  EXPECT_EQ(result.plans[1], plans[1]);
  EXPECT_THAT(result.plans[2].items, IsEmpty());
  EXPECT_EQ(result.plans[3], plans[3]);
  EXPECT_EQ(result.plans[4], plans[4]);
}

TEST(DedupTest, KeysOfThreeDimsTieOnTheirFirstTwoOffsets) {
  // 3-D shards differing in the last offset only, one replicated; offsets
  // (0,) and (0, 0) of one fqn (malformed, but keys) differ too.
  std::vector<SavePlan> plans = {Plan({Shard("v", {2, 2, 8}, {0, 0, 4}, {2, 2, 4})}),
                                 Plan({Shard("v", {2, 2, 8}, {0, 0, 0}, {2, 2, 4})}),
                                 Plan({Shard("v", {2, 2, 8}, {0, 0, 4}, {2, 2, 4})}),
                                 Plan({Shard("u", {4, 4}, {0, 0}, {4, 4})}),
                                 Plan({Shard("u", {4}, {0}, {4})})};
  DedupResult result = Dedup(plans, DedupPolicy::kLowestRank);
  EXPECT_EQ(result.plans[0], plans[0]);
  EXPECT_EQ(result.plans[1], plans[1]);
  EXPECT_THAT(result.plans[2].items, IsEmpty());
  EXPECT_EQ(result.plans[3], plans[3]);
  EXPECT_EQ(result.plans[4], plans[4]);
}

TEST(DedupTest, ConflictOnePerKeyNamingTheRanks) {
  std::vector<SavePlan> plans = {
      Plan({Shard("w", {8}, {0}, {4}), Tensor("same", {2})}),
      Plan({Shard("w", {8}, {0}, {2}), Tensor("same", {2})}),                  // chunk sizes
      Plan({Shard("w", {8}, {0}, {4}, DType::kFloat16), Tensor("same", {2})}),  // dtype
  };
  DedupResult result = Dedup(plans, DedupPolicy::kLowestRank);
  ASSERT_EQ(result.conflicts.size(), 1u);
  const PlanProblem& conflict = result.conflicts[0];
  EXPECT_EQ(conflict.kind, ProblemKind::kConflict);
  EXPECT_EQ(conflict.fqn, "w");
  EXPECT_EQ(conflict.offsets, (Shape{0}));
  EXPECT_THAT(conflict.message, HasSubstr("rank 0"));
  EXPECT_THAT(conflict.message, HasSubstr("rank 1"));
  EXPECT_THAT(conflict.message, HasSubstr("rank 2"));
  // Still deduplicated: rank 0 (lowest) keeps its w, the others lose theirs.
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"w", "same"}, {}, {}}));
}

TEST(DedupTest, ConflictOnTypeAndGlobalSize) {
  // (t, [0]) as a whole tensor and as a shard; (g, [0]) as shards of
  // differently sized tensors. Conflicts come in key first-seen order.
  std::vector<SavePlan> plans = {
      Plan({Tensor("t", {4}), Shard("g", {8}, {0}, {4})}),
      Plan({Shard("g", {16}, {0}, {4}), Shard("t", {4}, {0}, {4})}),
  };
  DedupResult result = Dedup(plans, DedupPolicy::kPyTorch);
  ASSERT_EQ(result.conflicts.size(), 2u);
  EXPECT_EQ(result.conflicts[0].fqn, "t");
  EXPECT_EQ(result.conflicts[1].fqn, "g");
  EXPECT_THAT(result.conflicts[0].message, HasSubstr("TENSOR"));
  EXPECT_THAT(result.conflicts[0].message, HasSubstr("SHARD"));
  EXPECT_THAT(result.conflicts[1].message, HasSubstr("[16]"));
}

TEST(DedupTest, IdenticalReplicasAreNoConflict) {
  std::vector<WriteItem> items = {Shard("w", {8}, {0}, {4}), Bytes("s", 3), Tensor("z", {})};
  DedupResult result = Dedup({Plan(items), Plan(items)}, DedupPolicy::kPyTorch);
  EXPECT_THAT(result.conflicts, IsEmpty());
}

TEST(DedupTest, BalancedStrictlyBetterUsesRealBytes) {
  // b1, b2: 300-byte blobs (PyTorch weight 1); t: 400 bytes.
  // PyTorch: b1 -> 0, b2 -> 1, t -> 0 (loads 1, 1 tie): real 700 / 300.
  // Balanced: t (400) -> 0, b1 (300) -> 1, b2 -> 1 (300 < 400): 400 / 600.
  std::vector<WriteItem> items = {Bytes("b1", 300), Bytes("b2", 300), Tensor("t", {100})};
  std::vector<SavePlan> plans = {Plan(items), Plan(items)};
  DedupResult pytorch = Dedup(plans, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(pytorch.plans), (std::vector<Fqs>{{"b1", "t"}, {"b2"}}));
  EXPECT_EQ(*PlanBytes(pytorch.plans), (std::vector<int64_t>{700, 300}));
  DedupResult balanced = Dedup(plans, DedupPolicy::kBalanced);
  EXPECT_EQ(Fqns(balanced.plans), (std::vector<Fqs>{{"t"}, {"b1", "b2"}}));
  EXPECT_EQ(*PlanBytes(balanced.plans), (std::vector<int64_t>{400, 600}));
}

TEST(DedupTest, BalancedPreloadsSingleHolderItems) {
  // r (40 bytes) is seen first; big (400) is rank 0's alone.
  // PyTorch: r -> 0 (tie), big -> 0: 440 / 0. Balanced starts from 400 / 0,
  // so r -> 1: 400 / 40.
  std::vector<SavePlan> plans = {Plan({Tensor("r", {10}), Tensor("big", {100})}), Plan({Tensor("r", {10})})};
  EXPECT_EQ(Fqns(Dedup(plans, DedupPolicy::kPyTorch).plans), (std::vector<Fqs>{{"r", "big"}, {}}));
  EXPECT_EQ(Fqns(Dedup(plans, DedupPolicy::kBalanced).plans), (std::vector<Fqs>{{"big"}, {"r"}}));
}

TEST(DedupTest, BalancedFallsBackToPyTorchWhenGreedyIsWorse) {
  // Sizes 12, 8, 8, 12, 8 bytes in first-seen order. PyTorch: a -> 0 (12, 0),
  // b -> 1 (12, 8), c -> 1 (12, 16), d -> 0 (24, 16), e -> 1 (24, 24): max 24.
  // Largest first (a, d, b, c, e): a -> 0 (12, 0), d -> 1 (12, 12), b -> 0
  // (20, 12), c -> 1 (20, 20), e -> 0 (28, 20): max 28. PyTorch's wins.
  std::vector<WriteItem> items = {Tensor("a", {3}), Tensor("b", {2}), Tensor("c", {2}), Tensor("d", {3}),
                                  Tensor("e", {2})};
  std::vector<SavePlan> plans = {Plan(items), Plan(items)};
  DedupResult balanced = Dedup(plans, DedupPolicy::kBalanced);
  EXPECT_EQ(Fqns(balanced.plans), (std::vector<Fqs>{{"a", "d"}, {"b", "c", "e"}}));
  EXPECT_EQ(*PlanBytes(balanced.plans), (std::vector<int64_t>{24, 24}));
}

TEST(DedupTest, EmptyInputs) {
  DedupResult none = Dedup({}, DedupPolicy::kPyTorch);
  EXPECT_THAT(none.plans, IsEmpty());
  EXPECT_THAT(none.conflicts, IsEmpty());
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    DedupResult result = Dedup({Plan({}), Plan({}), Plan({})}, policy);
    EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{}, {}, {}}));
  }
}

TEST(DedupTest, RankWithNoItems) {
  // Rank 1 has nothing; x (held by 0 and 2) goes to 0, y then to 2.
  std::vector<SavePlan> plans = {Plan({Tensor("x", {1}), Tensor("y", {1})}), Plan({}),
                                 Plan({Tensor("x", {1}), Tensor("y", {1})})};
  DedupResult result = Dedup(plans, DedupPolicy::kPyTorch);
  EXPECT_EQ(Fqns(result.plans), (std::vector<Fqs>{{"x"}, {}, {"y"}}));
}

TEST(DedupTest, StorageSizeOverflowIsAnError) {
  const int64_t big = int64_t{1} << 40;
  std::vector<SavePlan> plans = {Plan({Shard("w", {big, big}, {0, 0}, {1, 1})})};
  EXPECT_FALSE(DedupSavePlans(plans, DedupPolicy::kPyTorch).ok());
  // Lowest-rank dedup never weighs items.
  EXPECT_TRUE(DedupSavePlans(plans, DedupPolicy::kLowestRank).ok());
}

TEST(DedupTest, ManyRanksFullyReplicated) {
  // 1024 ranks hold the same 290 tensors. PyTorch: every chosen rank gets a
  // positive load (empty tensors weigh 1), so key k goes to the lowest rank
  // still at 0: rank k. Balanced: each rank then writes at most one key, so
  // the maximum is the largest key's bytes, which no assignment can beat:
  // the tie returns PyTorch's assignment.
  constexpr int kRanks = 1024;
  constexpr int kKeys = 290;
  std::vector<WriteItem> items;
  for (int k = 0; k < kKeys; ++k) items.push_back(Tensor(absl::StrCat("layers.", k, ".weight"), {64, k % 7}));
  const std::vector<SavePlan> plans(kRanks, Plan(items));
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kBalanced}) {
    const absl::Time start = absl::Now();
    DedupResult result = Dedup(plans, policy);
    std::cout << DedupPolicyName(policy) << " dedup of " << kRanks * kKeys
              << " items: " << absl::ToDoubleMilliseconds(absl::Now() - start) << " ms\n";
    ASSERT_EQ(result.plans.size(), static_cast<size_t>(kRanks));
    for (int r = 0; r < kRanks; ++r) {
      if (r < kKeys) {
        ASSERT_EQ(result.plans[r].items.size(), 1u) << r;
        EXPECT_EQ(result.plans[r].items[0].index.fqn, absl::StrCat("layers.", r, ".weight"));
      } else {
        EXPECT_THAT(result.plans[r].items, IsEmpty()) << r;
      }
    }
  }
}

TEST(PlanBytesTest, SumsPayloads) {
  // 4x4 float32 shard = 64, bfloat16[3] = 6, a 12-byte blob, an unknown blob 0.
  std::vector<SavePlan> plans = {
      Plan({Shard("w", {8, 4}, {0, 0}, {4, 4}), Bytes("step", 12)}),
      Plan({Tensor("b", {3}, DType::kBFloat16), Bytes("rng")}),
      Plan({}),
  };
  absl::StatusOr<std::vector<int64_t>> bytes = PlanBytes(plans);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_THAT(*bytes, ElementsAre(76, 6, 0));
}

TEST(PlanBytesTest, OverflowIsAnError) {
  const int64_t half = int64_t{1} << 61;  // float32: 2^63 bytes per item
  EXPECT_FALSE(PlanBytes({Plan({Shard("w", {half}, {0}, {half})})}).ok());
  const int64_t quarter = int64_t{1} << 60;  // 2^62 bytes each, 2^63 together
  EXPECT_FALSE(PlanBytes({Plan({Shard("w", {quarter}, {0}, {quarter}), Shard("v", {quarter}, {0}, {quarter})})}).ok());
}

}  // namespace
}  // namespace dcplan

namespace dcplan {
namespace {

// More than 65 536 distinct keys: dedup takes its sorted-hash path (FSDP
// scale) instead of the exact hash table. 300 ranks x 300 shards plus two
// replicated tensors held by every rank; results must be what the greedy
// prescribes, exactly as on the small path.
TEST(DedupTest, ManyDistinctKeysTakeTheHashPathWithTheSameResult) {
  constexpr int64_t kRanks = 300, kTensors = 300;
  std::vector<SavePlan> plans(kRanks);
  for (int64_t r = 0; r < kRanks; ++r) {
    plans[r].items.push_back(Tensor("replicated.a", {4}));
    for (int64_t t = 0; t < kTensors; ++t) {
      plans[r].items.push_back(Shard(absl::StrCat("layers.", t, ".w"), {kRanks, 2}, {r, 0}, {1, 2}));
    }
    plans[r].items.push_back(Tensor("replicated.b", {4}));
  }
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    absl::StatusOr<DedupResult> result = DedupSavePlans(plans, policy);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(result->conflicts.empty());
    int64_t holders_a = 0, holders_b = 0;
    for (int64_t r = 0; r < kRanks; ++r) {
      const std::vector<WriteItem>& items = result->plans[r].items;
      int64_t shards = 0;
      for (const WriteItem& item : items) {
        holders_a += item.index.fqn == "replicated.a";
        holders_b += item.index.fqn == "replicated.b";
        shards += item.type == WriteItemType::kShard;
      }
      ASSERT_EQ(shards, kTensors) << "rank " << r;
    }
    EXPECT_EQ(holders_a, 1);
    EXPECT_EQ(holders_b, 1);
    // Keys in first-seen order: "replicated.a", rank 0's 300 shards,
    // "replicated.b", then the other ranks' shards. "a" meets all loads at 0:
    // rank 0. When "b" comes, the greedy has charged rank 0 with a and its
    // shards (weighed by global size), every other rank with nothing: b goes
    // to rank 1, the lowest of the least loaded. Balanced (real bytes: 2400
    // per rank from shards, then a -> rank 0, b -> rank 1) agrees. Lowest
    // rank: both on rank 0.
    const std::string& first_on_rank0 = result->plans[0].items.front().index.fqn;
    EXPECT_EQ(first_on_rank0, "replicated.a") << DedupPolicyName(policy);
    const bool b_on_rank0 = result->plans[0].items.back().index.fqn == "replicated.b";
    const bool b_on_rank1 = result->plans[1].items.back().index.fqn == "replicated.b";
    if (policy == DedupPolicy::kLowestRank) {
      EXPECT_TRUE(b_on_rank0);
    } else {
      EXPECT_TRUE(b_on_rank1) << DedupPolicyName(policy);
    }
  }
}

// chunks_per_fqn: distinct offsets per fqn over all ranks, counted by hand:
// "w" is cut in 20 rows, each held by two ranks (20 keys); "v" in 15 rows
// (below the threshold of 16, left out); "s" is a bytes value on every rank.
TEST(DedupChunkCountsTest, DistinctOffsetsOfFqnsWithManyChunks) {
  std::vector<SavePlan> plans(4);
  for (int64_t row = 0; row < 20; ++row) {
    for (int copy = 0; copy < 2; ++copy) {
      plans[(row + copy) % 4].items.push_back(Shard("w", {20, 3}, {row, 0}, {1, 3}));
    }
  }
  for (int64_t row = 0; row < 15; ++row) plans[row % 4].items.push_back(Shard("v", {15}, {row}, {1}));
  for (SavePlan& plan : plans) plan.items.push_back(Bytes("s"));
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    const DedupResult result = Dedup(plans, policy);
    EXPECT_EQ(result.chunks_per_fqn, (ChunkCounts{{"w", 20}})) << DedupPolicyName(policy);
  }
}

}  // namespace
}  // namespace dcplan
