#include "engine/save_planner.h"

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TensorProperties Props(DType dtype = DType::kFloat32) {
  TensorProperties properties;
  properties.dtype = dtype;
  return properties;
}

WriteItem Shard(const std::string& fqn, Shape size, Shape offsets, Shape lengths, DType dtype = DType::kFloat32) {
  WriteItem item;
  item.index = MetadataIndex{fqn, offsets, std::nullopt};
  item.type = WriteItemType::kShard;
  item.tensor_data = TensorWriteData{ChunkBox{offsets, lengths}, Props(dtype), size};
  return item;
}

WriteItem Tensor(const std::string& fqn, Shape shape, DType dtype = DType::kFloat32) {
  WriteItem item = Shard(fqn, shape, Shape(shape.size(), 0), shape, dtype);
  item.type = WriteItemType::kTensor;
  return item;
}

WriteItem Bytes(const std::string& fqn) {
  WriteItem item;
  item.index = MetadataIndex{fqn, std::nullopt, std::nullopt};
  item.type = WriteItemType::kByteIO;
  return item;
}

WriteItem WithHint(WriteItem item, std::optional<int64_t> hint) {
  item.index.index = hint;
  return item;
}

SavePlan Plan(std::vector<WriteItem> items, std::optional<FlattenMapping> mapping = std::nullopt) {
  SavePlan plan;
  plan.items = std::move(items);
  plan.planner_data = std::move(mapping);
  return plan;
}

ObjectPath Path(std::vector<PathElement> elements) { return elements; }

FlattenMapping Mapping(const std::vector<std::string>& keys) {
  FlattenMapping mapping;
  for (const std::string& key : keys) mapping.InsertOrAssign(key, Path({key}));
  return mapping;
}

const TensorStorageMetadata& TensorEntry(const Metadata& metadata, const std::string& fqn) {
  static const TensorStorageMetadata kMissing;
  const StorageMetadata* entry = metadata.state_dict_metadata.Find(fqn);
  EXPECT_NE(entry, nullptr) << fqn;
  if (entry == nullptr || !std::holds_alternative<TensorStorageMetadata>(*entry)) {
    ADD_FAILURE() << fqn << " is not a tensor entry";
    return kMissing;
  }
  return std::get<TensorStorageMetadata>(*entry);
}

std::vector<std::string> MetadataKeys(const Metadata& metadata) {
  std::vector<std::string> keys;
  for (const auto& entry : metadata.state_dict_metadata) keys.push_back(entry.first);
  return keys;
}

std::vector<ProblemKind> Kinds(const std::vector<PlanProblem>& problems) {
  std::vector<ProblemKind> kinds;
  for (const PlanProblem& problem : problems) kinds.push_back(problem.kind);
  return kinds;
}

// ---- CreateLocalSavePlan ---------------------------------------------------------------

// planner.md §6.4: {"w": float32 2x3, "step": 5} on one rank.
StateDictDescription MinimalExample() {
  StateDictDescription description;
  description.values.InsertOrAssign("w", WholeTensor{{2, 3}, Props()});
  description.values.InsertOrAssign("step", OpaqueValue{});
  description.mapping = FlattenMapping{{"w", Path({std::string("w")})}, {"step", Path({std::string("step")})}};
  return description;
}

TEST(CreateLocalSavePlanTest, MinimalExample) {
  absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(MinimalExample(), /*is_coordinator=*/true);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 2u);
  const WriteItem& w = plan->items[0];
  EXPECT_TRUE(w.index.IdenticalTo(MetadataIndex{"w", Shape{0, 0}, std::nullopt}));
  EXPECT_EQ(w.type, WriteItemType::kTensor);
  ASSERT_TRUE(w.tensor_data.has_value());
  EXPECT_EQ(w.tensor_data->chunk, (ChunkBox{{0, 0}, {2, 3}}));
  EXPECT_EQ(w.tensor_data->size, (Shape{2, 3}));
  EXPECT_EQ(w.tensor_data->properties, Props());
  const WriteItem& step = plan->items[1];
  EXPECT_TRUE(step.index.IdenticalTo(MetadataIndex{"step", std::nullopt, std::nullopt}));
  EXPECT_EQ(step.type, WriteItemType::kByteIO);
  EXPECT_FALSE(step.tensor_data.has_value());
  EXPECT_FALSE(step.bytes_io_nbytes.has_value());
  EXPECT_EQ(plan->planner_data, MinimalExample().mapping);
  EXPECT_TRUE(plan->usable);
}

TEST(CreateLocalSavePlanTest, ScalarShardsAndBytes) {
  StateDictDescription description;
  TensorProperties bf16 = Props(DType::kBFloat16);
  bf16.requires_grad = true;
  description.values.InsertOrAssign("scalar", WholeTensor{{}, Props(DType::kInt64)});
  description.values.InsertOrAssign(
      "w", ShardedTensor{{8, 4}, bf16, {ChunkBox{{4, 0}, {4, 2}}, ChunkBox{{4, 2}, {4, 2}}}});
  description.values.InsertOrAssign("none_here", ShardedTensor{{8}, Props(), {}});
  description.values.InsertOrAssign("rng", OpaqueValue{123});
  absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(description, false);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 4u);
  // 0-d: offset is the empty shape, not nullopt.
  EXPECT_EQ(plan->items[0].index.offset, std::optional<Shape>(Shape{}));
  EXPECT_EQ(plan->items[0].tensor_data->chunk, (ChunkBox{{}, {}}));
  for (int i : {1, 2}) {
    const WriteItem& shard = plan->items[i];
    EXPECT_EQ(shard.type, WriteItemType::kShard);
    EXPECT_EQ(shard.index.offset, std::optional<Shape>(shard.tensor_data->chunk.offsets));
    EXPECT_EQ(shard.tensor_data->size, (Shape{8, 4}));
    EXPECT_EQ(shard.tensor_data->properties, bf16);
  }
  EXPECT_EQ(plan->items[1].tensor_data->chunk, (ChunkBox{{4, 0}, {4, 2}}));
  EXPECT_EQ(plan->items[2].tensor_data->chunk, (ChunkBox{{4, 2}, {4, 2}}));
  EXPECT_EQ(plan->items[3].type, WriteItemType::kByteIO);
  EXPECT_EQ(plan->items[3].bytes_io_nbytes, std::optional<int64_t>(123));
  EXPECT_FALSE(plan->planner_data.has_value());
}

TEST(CreateLocalSavePlanTest, MalformedValuesAreErrors) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  std::vector<ValueDescription> bad = {
      WholeTensor{{2, -1}, Props()},
      ShardedTensor{{8, 4}, Props(), {ChunkBox{{0}, {4}}}},         // rank 1 chunk of a 2-d tensor
      ShardedTensor{{8}, Props(), {ChunkBox{{0}, {-4}}}},           // negative size
      ShardedTensor{{8}, Props(), {ChunkBox{{max}, {1}}}},          // offset + size overflows
      ShardedTensor{{8}, Props(), {ChunkBox{{0, 0}, {4}}}},         // offsets and sizes disagree
      OpaqueValue{-1},
  };
  for (const ValueDescription& value : bad) {
    StateDictDescription description;
    description.values.InsertOrAssign("bad.key", value);
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(description, false);
    ASSERT_FALSE(plan.ok()) << value;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr("bad.key"));
  }
}

// ---- CreateDefaultGlobalSavePlan -------------------------------------------------------

TEST(CreateGlobalSavePlanTest, MinimalExampleEndToEnd) {
  absl::StatusOr<SavePlan> local = CreateLocalSavePlan(MinimalExample(), true);
  ASSERT_TRUE(local.ok());
  SavePlanTimings timings{-1, -1, -1};
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan({*local}, SavePlannerOptions(), &timings);
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_TRUE(global->valid()) << ::testing::PrintToString(global->problems);
  ASSERT_EQ(global->plans.size(), 1u);
  ASSERT_EQ(global->plans[0].items.size(), 2u);
  EXPECT_EQ(global->plans[0].items[0].index.index, std::optional<int64_t>(0));
  EXPECT_EQ(global->plans[0].items[1].index.index, std::nullopt);
  EXPECT_EQ(MetadataKeys(global->metadata), (std::vector<std::string>{"w", "step"}));
  const TensorStorageMetadata& w = TensorEntry(global->metadata, "w");
  EXPECT_EQ(w.properties, Props());
  EXPECT_EQ(w.size, (Shape{2, 3}));
  EXPECT_THAT(w.chunks, ElementsAre(ChunkBox{{0, 0}, {2, 3}}));
  EXPECT_TRUE(std::holds_alternative<BytesStorageMetadata>(*global->metadata.state_dict_metadata.Find("step")));
  EXPECT_EQ(global->metadata.planner_data, MinimalExample().mapping);
  EXPECT_GE(timings.dedup_ms, 0);
  EXPECT_GE(timings.global_plan_ms, 0);
  EXPECT_GE(timings.validate_ms, 0);
}

TEST(CreateGlobalSavePlanTest, TwoRowShardsOverTwoRanks) {
  // w (8x4 float32) split in rows 0-3 (rank 0) and 4-7 (rank 1); b (float32[4])
  // and step (bytes) on both. PyTorch dedup, keys in first-seen order:
  // w@(0,0) -> 0 (weight 8*4*4 = 128), b -> 1 (128 vs 0; +16), step -> 1
  // (128 vs 16; +1), w@(4,0) -> 1 (single holder).
  std::vector<SavePlan> plans;
  for (int64_t row : {0, 4}) {
    StateDictDescription description;
    description.values.InsertOrAssign("w", ShardedTensor{{8, 4}, Props(), {ChunkBox{{row, 0}, {4, 4}}}});
    description.values.InsertOrAssign("b", WholeTensor{{4}, Props()});
    description.values.InsertOrAssign("step", OpaqueValue{});
    description.mapping = Mapping({"w", "b", "step"});
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(description, row == 0);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plans.push_back(*plan);
  }
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(plans, SavePlannerOptions());
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_TRUE(global->valid()) << ::testing::PrintToString(global->problems);
  ASSERT_EQ(global->plans.size(), 2u);
  EXPECT_THAT(global->plans[0].items,
              ElementsAre(WithHint(Shard("w", {8, 4}, {0, 0}, {4, 4}), 0)));
  EXPECT_THAT(global->plans[1].items,
              ElementsAre(WithHint(Shard("w", {8, 4}, {4, 0}, {4, 4}), 1), WithHint(Tensor("b", {4}), 0),
                          Bytes("step")));
  // Keys in first appearance: rank 0 gave w, rank 1 then b and step.
  EXPECT_EQ(MetadataKeys(global->metadata), (std::vector<std::string>{"w", "b", "step"}));
  EXPECT_THAT(TensorEntry(global->metadata, "w").chunks,
              ElementsAre(ChunkBox{{0, 0}, {4, 4}}, ChunkBox{{4, 0}, {4, 4}}));
  EXPECT_EQ(global->metadata.planner_data, Mapping({"w", "b", "step"}));
  // 4x4 float32 = 64 bytes; rank 1 adds b (16) and step (size unknown: 0).
  EXPECT_EQ(*PlanBytes(global->plans), (std::vector<int64_t>{64, 80}));
}

TEST(CreateDefaultGlobalSavePlanTest, HintsAreGlobalChunkPositions) {
  // Input hints are garbage (7); with rewriting they become the chunk's
  // position in the tensor's metadata list, across ranks.
  std::vector<SavePlan> plans = {
      Plan({WithHint(Shard("w", {3}, {0}, {1}), 7), WithHint(Shard("v", {2}, {1}, {1}), 7),
            WithHint(Shard("w", {3}, {1}, {1}), 7)}),
      Plan({WithHint(Shard("v", {2}, {0}, {1}), 7), WithHint(Shard("w", {3}, {2}, {1}), 7), Bytes("s")}),
  };
  GlobalPlanAndMetadata rewritten = CreateDefaultGlobalSavePlan(plans, true);
  EXPECT_THAT(rewritten.problems, IsEmpty());
  EXPECT_THAT(rewritten.plans[0].items,
              ElementsAre(WithHint(Shard("w", {3}, {0}, {1}), 0), WithHint(Shard("v", {2}, {1}, {1}), 0),
                          WithHint(Shard("w", {3}, {1}, {1}), 1)));
  EXPECT_THAT(rewritten.plans[1].items,
              ElementsAre(WithHint(Shard("v", {2}, {0}, {1}), 1), WithHint(Shard("w", {3}, {2}, {1}), 2),
                          Bytes("s")));
  EXPECT_THAT(TensorEntry(rewritten.metadata, "v").chunks, ElementsAre(ChunkBox{{1}, {1}}, ChunkBox{{0}, {1}}));
  EXPECT_FALSE(rewritten.metadata.planner_data.has_value());

  GlobalPlanAndMetadata kept = CreateDefaultGlobalSavePlan(plans, false);
  EXPECT_THAT(kept.problems, IsEmpty());
  EXPECT_EQ(kept.plans[0].items, plans[0].items);
  EXPECT_EQ(kept.plans[1].items, plans[1].items);
  EXPECT_EQ(kept.metadata, rewritten.metadata);
}

TEST(CreateDefaultGlobalSavePlanTest, ChunkCountHintsChangeNoResult) {
  // Right, too small, zero, negative, absent and absurdly large hints: the
  // same plans and metadata as without any.
  std::vector<SavePlan> plans(3);
  for (int64_t row = 0; row < 30; ++row) plans[row % 3].items.push_back(Shard("w", {30}, {row}, {1}));
  for (int64_t row = 0; row < 4; ++row) plans[row % 3].items.push_back(Shard("v", {4}, {row}, {1}));
  plans[1].items.push_back(Bytes("s"));
  const GlobalPlanAndMetadata plain = CreateDefaultGlobalSavePlan(plans, true);
  ASSERT_THAT(plain.problems, IsEmpty());
  ASSERT_EQ(TensorEntry(plain.metadata, "w").chunks.size(), 30u);
  const std::vector<ChunkCounts> hints = {
      {{"w", 30}},
      {{"w", 2}, {"v", 0}, {"s", -5}},
      {{"w", std::numeric_limits<int64_t>::max()}, {"v", std::numeric_limits<int64_t>::max()}},
      {{"absent", 1000}},
      {},
  };
  for (const ChunkCounts& hint : hints) {
    const GlobalPlanAndMetadata hinted = CreateDefaultGlobalSavePlan(plans, true, &hint);
    EXPECT_THAT(hinted.problems, IsEmpty());
    EXPECT_EQ(hinted.metadata, plain.metadata);
    ASSERT_EQ(hinted.plans.size(), plain.plans.size());
    for (size_t rank = 0; rank < plain.plans.size(); ++rank) {
      EXPECT_EQ(hinted.plans[rank].items, plain.plans[rank].items) << "rank " << rank;
    }
  }
}

TEST(CreateDefaultGlobalSavePlanTest, KeepsPlanFields) {
  SavePlan plan = Plan({Bytes("s")}, Mapping({"s"}));
  plan.storage_data = "__0_";
  plan.usable = false;
  GlobalPlanAndMetadata global = CreateDefaultGlobalSavePlan({plan}, true);
  ASSERT_EQ(global.plans.size(), 1u);
  EXPECT_EQ(global.plans[0], plan);
}

struct PlanErrorCase {
  std::string name;
  SavePlan first;
  SavePlan second;
};

TEST(CreateDefaultGlobalSavePlanTest, PlanErrorsDropTheOffendingItem) {
  const std::vector<PlanErrorCase> cases = {
      {"tensor twice", Plan({Tensor("x", {4})}), Plan({Tensor("x", {4})})},
      {"bytes twice", Plan({Bytes("x")}), Plan({Bytes("x")})},
      {"bytes then tensor", Plan({Bytes("x")}), Plan({Tensor("x", {4})})},
      {"tensor then bytes", Plan({Tensor("x", {4})}), Plan({Bytes("x")})},
      {"tensor then shard", Plan({Tensor("x", {4})}), Plan({Shard("x", {4}, {2}, {2})})},
      {"bytes then shard", Plan({Bytes("x")}), Plan({Shard("x", {4}, {2}, {2})})},
      {"shard then tensor", Plan({Shard("x", {4}, {0}, {2})}), Plan({Tensor("x", {4})})},
      {"shard then bytes", Plan({Shard("x", {4}, {0}, {2})}), Plan({Bytes("x")})},
      {"shard dtypes differ", Plan({Shard("x", {4}, {0}, {2})}), Plan({Shard("x", {4}, {2}, {2}, DType::kFloat16)})},
      {"shard sizes differ", Plan({Shard("x", {4}, {0}, {2})}), Plan({Shard("x", {6}, {2}, {2})})},
  };
  for (const PlanErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    // The offending item is rank 1's second item; rank 1 keeps its first one.
    SavePlan second = c.second;
    second.items.insert(second.items.begin(), Tensor("ok", {1}));
    GlobalPlanAndMetadata global = CreateDefaultGlobalSavePlan({c.first, second}, true);
    ASSERT_EQ(global.problems.size(), 1u);
    const PlanProblem& problem = global.problems[0];
    EXPECT_EQ(problem.kind, ProblemKind::kPlanError);
    EXPECT_EQ(problem.fqn, "x");
    EXPECT_THAT(problem.message, HasSubstr("rank 1, item 1"));
    ASSERT_EQ(global.plans.size(), 2u);
    EXPECT_EQ(global.plans[0].items.size(), 1u);
    EXPECT_THAT(global.plans[1].items, ElementsAre(WithHint(Tensor("ok", {1}), 0)));
    // Metadata only from the first plan's item (and "ok").
    GlobalPlanAndMetadata alone = CreateDefaultGlobalSavePlan({c.first}, true);
    EXPECT_EQ(*global.metadata.state_dict_metadata.Find("x"), *alone.metadata.state_dict_metadata.Find("x"));
    EXPECT_EQ(MetadataKeys(global.metadata), (std::vector<std::string>{"x", "ok"}));
  }
}

TEST(CreateDefaultGlobalSavePlanTest, TensorItemWithoutTensorDataIsAPlanError) {
  WriteItem broken = Tensor("t", {2});
  broken.tensor_data.reset();
  GlobalPlanAndMetadata global = CreateDefaultGlobalSavePlan({Plan({broken, Bytes("s")})}, true);
  ASSERT_EQ(global.problems.size(), 1u);
  EXPECT_EQ(global.problems[0].fqn, "t");
  EXPECT_THAT(global.problems[0].message, HasSubstr("rank 0, item 0"));
  EXPECT_THAT(global.plans[0].items, ElementsAre(Bytes("s")));
  EXPECT_EQ(MetadataKeys(global.metadata), (std::vector<std::string>{"s"}));
}

TEST(CreateDefaultGlobalSavePlanTest, EmptyInputs) {
  GlobalPlanAndMetadata none = CreateDefaultGlobalSavePlan({}, true);
  EXPECT_THAT(none.plans, IsEmpty());
  EXPECT_TRUE(none.metadata.state_dict_metadata.empty());
  GlobalPlanAndMetadata empty = CreateDefaultGlobalSavePlan({Plan({}), Plan({})}, true);
  EXPECT_EQ(empty.plans.size(), 2u);
  EXPECT_TRUE(empty.metadata.state_dict_metadata.empty());
  EXPECT_THAT(empty.problems, IsEmpty());
}

// ---- MergePlannerData ------------------------------------------------------------------

TEST(MergePlannerDataTest, ChainMapOrderAndValues) {
  auto p = [](const std::string& s) { return Path({s}); };
  std::vector<SavePlan> plans = {
      Plan({}, FlattenMapping{{"a", p("a0")}, {"b", p("b0")}}),
      Plan({}, FlattenMapping{{"b", p("b1")}, {"c", p("c1")}}),
      Plan({}, FlattenMapping{{"d", p("d2")}, {"c", p("c2")}, {"a", p("a2")}}),
  };
  // Keys: rank 2's (d, c, a), then rank 1's new (b), then rank 0's new (none).
  // Values from the lowest rank holding the key.
  absl::StatusOr<FlattenMapping> merged = MergePlannerData(plans);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged, (FlattenMapping{{"d", p("d2")}, {"c", p("c1")}, {"a", p("a0")}, {"b", p("b0")}}));
}

TEST(MergePlannerDataTest, NoPlansGiveAnEmptyMapping) {
  absl::StatusOr<FlattenMapping> merged = MergePlannerData({});
  ASSERT_TRUE(merged.ok());
  EXPECT_TRUE(merged->empty());
}

TEST(MergePlannerDataTest, MissingMappingIsAnError) {
  absl::StatusOr<FlattenMapping> merged =
      MergePlannerData({Plan({}, Mapping({"a"})), Plan({}), Plan({}, Mapping({"a"}))});
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(merged.status().message()), HasSubstr("rank 1"));
}

// ---- CreateGlobalSavePlan --------------------------------------------------------------

TEST(CreateGlobalSavePlanTest, MissingMappingFailsOnlyWhenFlattening) {
  std::vector<SavePlan> plans = {Plan({Tensor("t", {1})})};
  absl::StatusOr<GlobalSavePlan> flattening = CreateGlobalSavePlan(plans, SavePlannerOptions());
  EXPECT_EQ(flattening.status().code(), absl::StatusCode::kFailedPrecondition);
  SavePlannerOptions options;
  options.flatten_state_dict = false;
  absl::StatusOr<GlobalSavePlan> flat = CreateGlobalSavePlan(plans, options);
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_FALSE(flat->metadata.planner_data.has_value());
  EXPECT_TRUE(flat->valid());
}

TEST(CreateGlobalSavePlanTest, ProblemsInOrderConflictPlanErrorValidation) {
  // c: same key, different lengths on ranks 0 and 1 (conflict; rank 0 keeps
  // it under lowest-rank dedup). x: tensor on rank 0, bytes on rank 1
  // (different keys, both survive dedup, plan error). w: one 2-row shard of a
  // 4-row tensor (volume 8 expected, 4 written).
  std::vector<SavePlan> plans = {
      Plan({Shard("c", {4}, {0}, {4}), Tensor("x", {1}), Shard("w", {4, 2}, {0, 0}, {2, 2})}, Mapping({"c", "x", "w"})),
      Plan({Shard("c", {4}, {0}, {2}), Bytes("x")}, Mapping({"c", "x"})),
  };
  SavePlannerOptions options;
  options.dedup = DedupPolicy::kLowestRank;
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(plans, options);
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_FALSE(global->valid());
  EXPECT_THAT(Kinds(global->problems),
              ElementsAre(ProblemKind::kConflict, ProblemKind::kPlanError, ProblemKind::kVolume));
  EXPECT_EQ(global->problems[0].fqn, "c");
  EXPECT_EQ(global->problems[1].fqn, "x");
  EXPECT_EQ(global->problems[2].fqn, "w");
  EXPECT_EQ(global->problems[2].expected, 8);
  EXPECT_EQ(global->problems[2].actual, 4);
  EXPECT_TRUE(global->plans[1].items.empty());
  EXPECT_EQ(MetadataKeys(global->metadata), (std::vector<std::string>{"c", "x", "w"}));
  // ChainMap: rank 1's keys (c, x) first, then rank 0's new key w.
  EXPECT_EQ(global->metadata.planner_data, Mapping({"c", "x", "w"}));
}

TEST(CreateGlobalSavePlanTest, RankWithNoItemsAndPolicies) {
  // Three ranks; rank 1 holds nothing. t (float32[4], 16 bytes) and u
  // (float32[1], 4 bytes) on ranks 0 and 2. PyTorch: t -> 0, u -> 2.
  // Lowest rank: both on 0. Balanced: t -> 0, u -> 2 too (max 16 either way).
  std::vector<SavePlan> plans = {Plan({Tensor("t", {4}), Tensor("u", {1})}, Mapping({"t", "u"})),
                                 Plan({}, Mapping({})), Plan({Tensor("t", {4}), Tensor("u", {1})}, Mapping({"t", "u"}))};
  struct Expected {
    DedupPolicy policy;
    std::vector<int64_t> bytes;
  };
  for (const Expected& e : {Expected{DedupPolicy::kPyTorch, {16, 0, 4}}, Expected{DedupPolicy::kLowestRank, {20, 0, 0}},
                            Expected{DedupPolicy::kBalanced, {16, 0, 4}}}) {
    SavePlannerOptions options;
    options.dedup = e.policy;
    absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(plans, options);
    ASSERT_TRUE(global.ok()) << global.status();
    EXPECT_TRUE(global->valid()) << DedupPolicyName(e.policy);
    EXPECT_EQ(*PlanBytes(global->plans), e.bytes) << DedupPolicyName(e.policy);
    EXPECT_EQ(MetadataKeys(global->metadata), (std::vector<std::string>{"t", "u"}));
  }
}

TEST(CreateGlobalSavePlanTest, EmptyPlans) {
  absl::StatusOr<GlobalSavePlan> none = CreateGlobalSavePlan({}, SavePlannerOptions());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->valid());
  EXPECT_THAT(none->plans, IsEmpty());
  // dict(ChainMap()) is {}: an empty mapping, not None.
  EXPECT_EQ(none->metadata.planner_data, std::optional<FlattenMapping>(FlattenMapping{}));
}

TEST(CreateGlobalSavePlanTest, OverflowingSizeIsAnError) {
  const int64_t big = int64_t{1} << 40;
  absl::StatusOr<GlobalSavePlan> global =
      CreateGlobalSavePlan({Plan({Shard("w", {big, big}, {0, 0}, {1, 1})}, Mapping({"w"}))}, SavePlannerOptions());
  EXPECT_FALSE(global.ok());
}

TEST(CreateGlobalSavePlanScaleTest, DataParallelRanks) {
  // Every rank holds the same 290 tensors and 10 bytes values, with the same
  // 300-key mapping. PyTorch dedup: every chosen rank gets a positive load, so
  // key k goes to rank k; the metadata has every key once, in key order, with
  // one chunk each (hint 0), and the merged mapping is that mapping.
  constexpr int kRanks = 1024;
  constexpr int kTensors = 290;
  constexpr int kKeys = 300;
  std::vector<WriteItem> items;
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) {
    keys.push_back(absl::StrCat("model.layers.", k, k < kTensors ? ".weight" : ".extra_state"));
    items.push_back(k < kTensors ? Tensor(keys.back(), {32, 1 + k % 5}) : Bytes(keys.back()));
  }
  const std::vector<SavePlan> plans(kRanks, Plan(items, Mapping(keys)));
  SavePlanTimings timings;
  absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(plans, SavePlannerOptions(), &timings);
  std::cout << kRanks << " ranks x " << kKeys << " items: dedup " << timings.dedup_ms << " ms, global plan "
            << timings.global_plan_ms << " ms, validate " << timings.validate_ms << " ms\n";
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_TRUE(global->valid());
  EXPECT_EQ(MetadataKeys(global->metadata), keys);
  EXPECT_EQ(global->metadata.planner_data, Mapping(keys));
  for (int r = 0; r < kRanks; ++r) {
    if (r < kKeys) {
      ASSERT_EQ(global->plans[r].items.size(), 1u) << r;
      EXPECT_EQ(global->plans[r].items[0], WithHint(items[r], r < kTensors ? std::optional<int64_t>(0) : std::nullopt));
    } else {
      EXPECT_THAT(global->plans[r].items, IsEmpty()) << r;
    }
  }
}

}  // namespace
}  // namespace dcplan
