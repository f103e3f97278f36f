#include "tools/bench/plan_scenarios.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "engine/dedup.h"
#include "engine/load_planner.h"
#include "engine/save_planner.h"
#include "gtest/gtest.h"
#include "tools/bench/plan_table.h"

namespace dcplan {
namespace bench {
namespace {

Scenario MakeScenario(Parallelism parallelism, int64_t ranks, int64_t tp_degree, std::vector<TensorSpec> model,
                      bool with_extras) {
  Scenario scenario;
  scenario.parallelism = parallelism;
  scenario.ranks = ranks;
  scenario.tp_degree = tp_degree;
  scenario.model = std::move(model);
  scenario.with_extras = with_extras;
  return scenario;
}

// The single chunk `rank` holds of sharded tensor `fqn`.
ChunkBox ChunkOf(const Scenario& scenario, int64_t rank, const std::string& fqn) {
  absl::StatusOr<StateDictDescription> description = SaveDescription(scenario, rank);
  EXPECT_TRUE(description.ok()) << description.status();
  if (!description.ok()) return {};
  const ValueDescription* value = description->values.Find(fqn);
  EXPECT_NE(value, nullptr) << fqn;
  if (value == nullptr) return {};
  const auto* sharded = std::get_if<ShardedTensor>(value);
  EXPECT_NE(sharded, nullptr) << fqn;
  if (sharded == nullptr || sharded->local_chunks.size() != 1) return {};
  return sharded->local_chunks[0];
}

TEST(ShardDimTest, TorchChunkPiecesOfAnOffsetBox) {
  const ChunkBox box{{2, 0}, {10, 4}};  // rows [2, 12) of a 16-row tensor
  // 10 rows in 3 pieces of ceil(10 / 3) = 4: [0, 4), [4, 8), [8, 10),
  // shifted by the box's offset.
  EXPECT_EQ(ShardDim(box, 0, 0, 3, 16), (ChunkBox{{2, 0}, {4, 4}}));
  EXPECT_EQ(ShardDim(box, 0, 1, 3, 16), (ChunkBox{{6, 0}, {4, 4}}));
  EXPECT_EQ(ShardDim(box, 0, 2, 3, 16), (ChunkBox{{10, 0}, {2, 4}}));
  // 10 rows in 4 pieces of 3: [0, 3), [3, 6), [6, 9), [9, 10).
  EXPECT_EQ(ShardDim(box, 0, 3, 4, 16), (ChunkBox{{11, 0}, {1, 4}}));
  // Divisible: 4 columns in 2 pieces of 2.
  EXPECT_EQ(ShardDim(box, 1, 1, 2, 4), (ChunkBox{{2, 2}, {10, 2}}));
  // 10 rows in 6 pieces of 2: piece 5 starts at 10 and is empty, at the
  // tensor's global size (16), not at 2 + 10 where a real piece could start.
  EXPECT_EQ(ShardDim(box, 0, 5, 6, 16), (ChunkBox{{16, 0}, {0, 4}}));
  // Cutting an empty piece again keeps it empty at the global size.
  EXPECT_EQ(ShardDim(ChunkBox{{16, 0}, {0, 4}}, 0, 1, 2, 16), (ChunkBox{{16, 0}, {0, 4}}));
}

TEST(ScenarioTest, Llama7BHas291TensorsOf6_7BParameters) {
  const std::vector<TensorSpec> model = Llama7B();
  EXPECT_EQ(model.size(), 291u);
  int64_t parameters = 0;
  for (const TensorSpec& spec : model) {
    int64_t volume = 1;
    for (int64_t dim : spec.size) volume *= dim;
    parameters += volume;
  }
  // 2 * 32000 * 4096 + 32 * (4 * 4096^2 + 3 * 11008 * 4096 + 2 * 4096) + 4096.
  EXPECT_EQ(parameters, 6738415616);
}

// TP2 x FSDP2: rank = fsdp * 2 + tp.
TEST(ScenarioTest, TpFsdpChunksByHand) {
  const Scenario scenario = MakeScenario(Parallelism::kTpFsdp, 4, 2,
                                         {{"c", {4, 2}, TpStyle::kColumn},
                                          {"r", {2, 4}, TpStyle::kRow},
                                          {"n", {4}, TpStyle::kReplicated, DType::kFloat32}},
                                         false);
  // Column-parallel: TP rank t holds rows [2t, 2t + 2); FSDP rank f row 2t + f.
  EXPECT_EQ(ChunkOf(scenario, 0, "c"), (ChunkBox{{0, 0}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 1, "c"), (ChunkBox{{2, 0}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 2, "c"), (ChunkBox{{1, 0}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 3, "c"), (ChunkBox{{3, 0}, {1, 2}}));
  // Row-parallel: TP rank t holds columns [2t, 2t + 2), FSDP rank f row f.
  EXPECT_EQ(ChunkOf(scenario, 0, "r"), (ChunkBox{{0, 0}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 1, "r"), (ChunkBox{{0, 2}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 2, "r"), (ChunkBox{{1, 0}, {1, 2}}));
  EXPECT_EQ(ChunkOf(scenario, 3, "r"), (ChunkBox{{1, 2}, {1, 2}}));
  // Norm: replicated over TP, FSDP rank f holds [2f, 2f + 2).
  EXPECT_EQ(ChunkOf(scenario, 0, "n"), (ChunkBox{{0}, {2}}));
  EXPECT_EQ(ChunkOf(scenario, 1, "n"), (ChunkBox{{0}, {2}}));
  EXPECT_EQ(ChunkOf(scenario, 2, "n"), (ChunkBox{{2}, {2}}));
  EXPECT_EQ(ChunkOf(scenario, 3, "n"), (ChunkBox{{2}, {2}}));

  absl::StatusOr<std::vector<SavePlan>> plans = LocalSavePlans(scenario);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const absl::flat_hash_set<MetadataIndex> replicated = ReplicatedKeys(*plans);
  EXPECT_EQ(replicated.size(), 2u);
  EXPECT_TRUE(replicated.contains(MetadataIndex{"n", Shape{0}, std::nullopt}));
  EXPECT_TRUE(replicated.contains(MetadataIndex{"n", Shape{2}, std::nullopt}));
}

TEST(ScenarioTest, MalformedScenariosAreErrors) {
  EXPECT_FALSE(LocalSavePlans(MakeScenario(Parallelism::kTpFsdp, 12, 8, Llama7B(), true)).ok());
  EXPECT_FALSE(LocalSavePlans(MakeScenario(Parallelism::kFsdp, 0, 1, Llama7B(), true)).ok());
  EXPECT_FALSE(LocalSavePlans(MakeScenario(Parallelism::kTpFsdp, 4, 2, {{"r", {4}, TpStyle::kRow}}, false)).ok());
  EXPECT_FALSE(LocalSavePlans(MakeScenario(Parallelism::kFsdp, 2, 1, {{"s", {}}}, false)).ok());
  EXPECT_FALSE(SaveDescription(MakeScenario(Parallelism::kFsdp, 2, 1, Llama7B(), true), 2).ok());
}

int64_t VolumeOf(const Shape& lengths) {
  int64_t volume = 1;
  for (int64_t dim : lengths) volume *= dim;
  return volume;
}

// The scenario's checkpoint validates, and every rank of its resharded world
// reads exactly the elements it requests.
void ExpectValidSaveAndLoad(const Scenario& scenario) {
  SCOPED_TRACE(ScenarioName(scenario) + " at " + std::to_string(scenario.ranks) + " ranks");
  absl::StatusOr<std::vector<SavePlan>> plans = LocalSavePlans(scenario);
  ASSERT_TRUE(plans.ok()) << plans.status();
  SavePlannerOptions options;
  options.flatten_state_dict = false;
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(*std::move(plans), options);
  ASSERT_TRUE(global.ok()) << global.status();
  ASSERT_TRUE(global->valid()) << ToString(global->problems.front());

  const Scenario target = ReshardTarget(scenario);
  EXPECT_EQ(target.parallelism, Parallelism::kFsdp);
  EXPECT_EQ(target.ranks, scenario.ranks / 2);
  for (int64_t rank = 0; rank < target.ranks; ++rank) {
    absl::StatusOr<StateDictDescription> request = SaveDescription(target, rank);
    ASSERT_TRUE(request.ok()) << request.status();
    int64_t requested = 0;
    for (const auto& entry : request->values) {
      if (const auto* sharded = std::get_if<ShardedTensor>(&entry.second)) {
        for (const ChunkBox& chunk : sharded->local_chunks) requested += VolumeOf(chunk.sizes);
      } else if (const auto* whole = std::get_if<WholeTensor>(&entry.second)) {
        requested += VolumeOf(whole->shape);
      }
    }
    LocalLoadPlan load = CreateLocalLoadPlan(*request, global->metadata, LoadPlannerOptions(), rank);
    ASSERT_TRUE(load.errors.empty()) << load.errors.front();
    int64_t read = 0;
    for (const ReadItem& item : load.plan.items) {
      if (item.type == LoadItemType::kTensor) read += VolumeOf(item.lengths);
    }
    EXPECT_EQ(read, requested) << "rank " << rank;
  }
}

TEST(ScenarioTest, LlamaScenariosValidateAndReshard) {
  ExpectValidSaveAndLoad(MakeScenario(Parallelism::kFsdp, 8, 1, Llama7B(), true));
  ExpectValidSaveAndLoad(MakeScenario(Parallelism::kFsdp, 6, 1, Llama7B(), true));
  ExpectValidSaveAndLoad(MakeScenario(Parallelism::kTpFsdp, 64, 8, Llama7B(), true));
  ExpectValidSaveAndLoad(MakeScenario(Parallelism::kDdp, 16, 1, Llama7B(), true));
}

TEST(ScenarioTest, UnevenTpFsdpValidatesAndReshards) {
  // 7 and 5 rows/columns over TP 2 and FSDP 3: every split uneven.
  const Scenario scenario = MakeScenario(
      Parallelism::kTpFsdp, 6, 2,
      {{"c", {7, 5}, TpStyle::kColumn}, {"r", {7, 5}, TpStyle::kRow}, {"n", {7}, TpStyle::kReplicated}}, true);
  // c: TP shard 0 is rows [0, 4), cut by FSDP into [0, 2), [2, 4) and an empty
  // piece (rank 4 = fsdp 2, tp 0), which sits at row 7, not at row 4 where
  // TP shard 1 starts.
  EXPECT_EQ(ChunkOf(scenario, 2, "c"), (ChunkBox{{2, 0}, {2, 5}}));
  EXPECT_EQ(ChunkOf(scenario, 4, "c"), (ChunkBox{{7, 0}, {0, 5}}));
  EXPECT_EQ(ChunkOf(scenario, 5, "c"), (ChunkBox{{6, 0}, {1, 5}}));
  // r: columns [3, 5) for tp 1, rows [6, 7) for fsdp 2.
  EXPECT_EQ(ChunkOf(scenario, 5, "r"), (ChunkBox{{6, 3}, {1, 2}}));
  ExpectValidSaveAndLoad(scenario);
}

TEST(ScenarioTest, FsdpWithMoreRanksThanRowsValidatesAndReshards) {
  // 2 rows over 4 ranks: ranks 2 and 3 hold the same empty piece at row 2,
  // which dedup keeps once.
  const Scenario scenario = MakeScenario(Parallelism::kFsdp, 4, 1, {{"a", {2, 3}}}, false);
  EXPECT_EQ(ChunkOf(scenario, 1, "a"), (ChunkBox{{1, 0}, {1, 3}}));
  EXPECT_EQ(ChunkOf(scenario, 2, "a"), (ChunkBox{{2, 0}, {0, 3}}));
  EXPECT_EQ(ChunkOf(scenario, 3, "a"), (ChunkBox{{2, 0}, {0, 3}}));
  absl::StatusOr<std::vector<SavePlan>> plans = LocalSavePlans(scenario);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const absl::flat_hash_set<MetadataIndex> replicated = ReplicatedKeys(*plans);
  EXPECT_EQ(replicated.size(), 1u);
  EXPECT_TRUE(replicated.contains(MetadataIndex{"a", Shape{2, 0}, std::nullopt}));
  ExpectValidSaveAndLoad(scenario);
}

TableOptions OneRun() {
  TableOptions options;
  options.repeats = 1;
  return options;
}

// float32 tensors a [1], b [1], c [2] (4, 4, 8 bytes) whole on every rank.
std::vector<TensorSpec> TinyModel() {
  return {{"a", {1}, TpStyle::kReplicated, DType::kFloat32},
          {"b", {1}, TpStyle::kReplicated, DType::kFloat32},
          {"c", {2}, TpStyle::kReplicated, DType::kFloat32}};
}

struct Expected {
  DedupPolicy policy;
  int64_t max_rank_bytes;
};

void ExpectDdpBalance(int64_t ranks, int64_t bound, const std::vector<Expected>& expected) {
  absl::StatusOr<std::vector<BalanceRow>> rows =
      MeasureBalance(MakeScenario(Parallelism::kDdp, ranks, 1, TinyModel(), false), OneRun());
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const BalanceRow& row = (*rows)[i];
    SCOPED_TRACE(std::string(DedupPolicyName(row.policy)));
    EXPECT_EQ(row.policy, expected[i].policy);
    EXPECT_EQ(row.ranks, ranks);
    for (const Balance& balance : {row.all, row.replicated}) {  // DDP: every item is replicated
      EXPECT_EQ(balance.total_bytes, 16);
      EXPECT_EQ(balance.LowerBound(), bound);
      EXPECT_EQ(balance.largest_item, 8);
      EXPECT_EQ(balance.max_rank_bytes, expected[i].max_rank_bytes);
      EXPECT_DOUBLE_EQ(balance.Ratio(), static_cast<double>(expected[i].max_rank_bytes) / bound);
      // Tight bound: max(bound, largest item 8).
      EXPECT_DOUBLE_EQ(balance.TightRatio(), static_cast<double>(expected[i].max_rank_bytes) / std::max<int64_t>(bound, 8));
    }
  }
}

TEST(BalanceTest, TinyDdpOnTwoRanksByHand) {
  // PyTorch's greedy, in key order a, b, c, counting 4, 4, 8: a -> rank 0
  // (tie), b -> rank 1, c -> rank 0 (tie at 4): rank 0 writes 12 bytes.
  // Lowest rank: all 16 on rank 0. Balanced, largest first: c -> 0, a -> 1,
  // b -> 1: 8 and 8. Bound: 16 / 2 = 8.
  ExpectDdpBalance(2, 8,
                   {{DedupPolicy::kPyTorch, 12}, {DedupPolicy::kLowestRank, 16}, {DedupPolicy::kBalanced, 8}});
}

TEST(BalanceTest, TinyDdpOnThreeRanksRoundsTheBoundUp) {
  // One item per rank under PyTorch's greedy and the balancer (largest, c,
  // alone): max 8; bound ceil(16 / 3) = 6.
  ExpectDdpBalance(3, 6, {{DedupPolicy::kPyTorch, 8}, {DedupPolicy::kLowestRank, 16}, {DedupPolicy::kBalanced, 8}});
}

TEST(BalanceTest, TinyTpFsdpReplicatedNormsByHand) {
  // TP2 x FSDP2 as in TpFsdpChunksByHand: each rank alone holds 4 bytes of c
  // and 4 of r (bf16); n's two float32 shards (8 bytes each) are held by
  // ranks {0, 1} and {2, 3}. Every policy leaves one rank of each TP group
  // with 16 bytes. All items: 48 bytes, bound 12; replicated: 16 bytes, bound
  // 4, largest item 8, one shard on the busiest rank.
  const Scenario scenario = MakeScenario(Parallelism::kTpFsdp, 4, 2,
                                         {{"c", {4, 2}, TpStyle::kColumn},
                                          {"r", {2, 4}, TpStyle::kRow},
                                          {"n", {4}, TpStyle::kReplicated, DType::kFloat32}},
                                         false);
  absl::StatusOr<std::vector<BalanceRow>> rows = MeasureBalance(scenario, OneRun());
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  for (const BalanceRow& row : *rows) {
    SCOPED_TRACE(std::string(DedupPolicyName(row.policy)));
    EXPECT_EQ(row.all.total_bytes, 48);
    EXPECT_EQ(row.all.LowerBound(), 12);
    EXPECT_EQ(row.all.max_rank_bytes, 16);
    EXPECT_EQ(row.replicated.total_bytes, 16);
    EXPECT_EQ(row.replicated.LowerBound(), 4);
    EXPECT_EQ(row.replicated.largest_item, 8);
    EXPECT_EQ(row.replicated.max_rank_bytes, 8);
    EXPECT_DOUBLE_EQ(row.replicated.Ratio(), 2.0);
    EXPECT_DOUBLE_EQ(row.replicated.TightRatio(), 1.0);
    EXPECT_DOUBLE_EQ(row.all.TightRatio(), 16.0 / 12.0);
  }
}

TEST(TableTest, ScalingRowOfASmallFsdpWorld) {
  // 2 ranks, a [4, 2] bf16 split in 2 rows each: 2 items, 2 stored chunks;
  // the 1-rank reshard target reads both chunks.
  absl::StatusOr<ScalingRow> row =
      MeasureScaling(MakeScenario(Parallelism::kFsdp, 2, 1, {{"a", {4, 2}}}, false), OneRun());
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->scenario, "FSDP");
  EXPECT_EQ(row->items, 2);
  EXPECT_EQ(row->kept_items, 2);
  EXPECT_EQ(row->stored_chunks, 2);
  EXPECT_EQ(row->load_ranks, 1);
  EXPECT_EQ(row->load_read_items, 2);
  EXPECT_EQ(row->runs, 1);
  EXPECT_GE(row->dedup_ms, 0);
}

TEST(TableTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(262144000), "250 MiB");  // Llama-7B's embedding in bf16
}

TEST(TableTest, ParseTableFlags) {
  std::vector<std::string> args = {"plan_bench", "--table", "--table_repeats=5", "--benchmark_filter=x",
                                   "--table_max_ranks=512"};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  int argc = static_cast<int>(argv.size());
  TableOptions options;
  absl::StatusOr<bool> table = ParseTableFlags(&argc, argv.data(), &options);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(*table);
  EXPECT_EQ(options.repeats, 5);
  EXPECT_EQ(options.max_ranks, 512);
  ASSERT_EQ(argc, 2);
  EXPECT_EQ(std::string(argv[1]), "--benchmark_filter=x");

  std::string bad = "--table_repeats=zero";
  char* bad_argv[] = {args[0].data(), bad.data()};
  int bad_argc = 2;
  EXPECT_FALSE(ParseTableFlags(&bad_argc, bad_argv, &options).ok());
}

}  // namespace
}  // namespace bench
}  // namespace dcplan
