// Scenario tests of the plan cache: hand-computed sequences of save rounds,
// each also compared with planning from scratch (CreateGlobalSavePlan on the
// true local plans).
#include "engine/plan_cache.h"

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/plan_cache_test_util.h"
#include "engine/save_planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace plan_cache_test {
namespace {

using ::testing::HasSubstr;

// Three ranks: w [4] f32 replicated everywhere (16 bytes), a bytes value on
// rank 0, s [4] row-sharded over ranks 1 ([0,2)) and 2 ([2,4)).
// PyTorch dedup (keys in first-seen order, smallest running total, ties to the
// lowest rank): w is rank 0's first key, every load is 0 -> rank 0.
std::vector<SavePlan> BaseLocals() {
  return {Plan({Tensor("w", {4}), Bytes("a", 10)}),  //
          Plan({Tensor("w", {4}), Shard("s", {4}, {0}, {2})}),
          Plan({Tensor("w", {4}), Shard("s", {4}, {2}, {2})})};
}
std::vector<WriteItem> BaseFinalRank0() { return {WithHint(Tensor("w", {4}), 0), Bytes("a", 10)}; }
std::vector<WriteItem> BaseFinalRank1() { return {WithHint(Shard("s", {4}, {0}, {2}), 0)}; }
std::vector<WriteItem> BaseFinalRank2() { return {WithHint(Shard("s", {4}, {2}, {2}), 1)}; }

// Rank 0 lists `a` before `w`: `a` loads rank 0 with 1 first, so w goes to
// the least-loaded of ranks 1 and 2 (both 0: lowest rank, 1). Rank 2's final
// plan is unchanged ([s@2] with hint 1).
std::vector<SavePlan> Rank0ReorderedLocals() {
  std::vector<SavePlan> locals = BaseLocals();
  locals[0] = Plan({Bytes("a", 10), Tensor("w", {4})});
  return locals;
}

TEST(SamePlanForCachingTest, ComparesEveryField) {
  const SavePlan base = Plan({Tensor("w", {4}), Shard("s", {4}, {0}, {2}), Bytes("a", 10)});
  EXPECT_TRUE(SamePlanForCaching(base, base));

  SavePlan dtype = base;
  dtype.items[0].tensor_data->properties.dtype = DType::kBFloat16;
  EXPECT_FALSE(SamePlanForCaching(base, dtype));  // PyTorch's comparison misses this
  SavePlan requires_grad = base;
  requires_grad.items[1].tensor_data->properties.requires_grad = true;
  EXPECT_FALSE(SamePlanForCaching(base, requires_grad));
  SavePlan hint = base;
  hint.items[1].index.index = 3;
  EXPECT_FALSE(SamePlanForCaching(base, hint));
  SavePlan chunk = base;
  chunk.items[1].tensor_data->chunk.sizes = {3};
  EXPECT_FALSE(SamePlanForCaching(base, chunk));
  SavePlan nbytes = base;
  nbytes.items[2].bytes_io_nbytes = 11;
  EXPECT_FALSE(SamePlanForCaching(base, nbytes));
  SavePlan mapping = base;
  mapping.planner_data = FlattenMapping{{"w", ObjectPath{std::string("w")}}};
  EXPECT_FALSE(SamePlanForCaching(base, mapping));
  SavePlan storage = base;
  storage.storage_data = "__0_";
  EXPECT_FALSE(SamePlanForCaching(base, storage));
  SavePlan reordered = base;
  std::swap(reordered.items[0], reordered.items[2]);
  EXPECT_FALSE(SamePlanForCaching(base, reordered));
  EXPECT_FALSE(SamePlanForCaching(base, UnchangedPlaceholder()));
  EXPECT_TRUE(SamePlanForCaching(UnchangedPlaceholder(), UnchangedPlaceholder()));
}

TEST(PlanCacheTest, FirstRoundSendsFullPlansBothWays) {
  Cluster cluster(3, UnflattenedOptions());
  absl::StatusOr<RoundOutcome> out = cluster.Save(BaseLocals());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kFromScratch);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{true, true, true}));
  ASSERT_EQ(out->finals.size(), 3u);
  EXPECT_EQ(out->finals[0].items, BaseFinalRank0());
  EXPECT_EQ(out->finals[1].items, BaseFinalRank1());
  EXPECT_EQ(out->finals[2].items, BaseFinalRank2());
  EXPECT_EQ(MetadataKeys(out->metadata), (std::vector<std::string>{"w", "a", "s"}));
  GlobalSavePlan scratch = Scratch(BaseLocals(), cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, UnchangedRoundUsesPlaceholdersBothWaysAndReusesMetadata) {
  Cluster cluster(3, UnflattenedOptions());
  ASSERT_TRUE(cluster.Save(BaseLocals()).ok());
  absl::StatusOr<RoundOutcome> out = cluster.Save(BaseLocals());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kAllUnchanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{false, false, false}));
  for (const SavePlan& delta : out->deltas) EXPECT_TRUE(delta.items.empty());
  GlobalSavePlan scratch = Scratch(BaseLocals(), cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, OneRankChangedOnlyAffectedRanksGetNewPlans) {
  Cluster cluster(3, UnflattenedOptions());
  ASSERT_TRUE(cluster.Save(BaseLocals()).ok());
  absl::StatusOr<RoundOutcome> out = cluster.Save(Rank0ReorderedLocals());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kSomeChanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{true, false, false}));
  // Rank 1 sent a placeholder but now writes w; rank 2's plan is unchanged.
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{true, true, false}));
  ASSERT_EQ(out->finals.size(), 3u);
  EXPECT_EQ(out->finals[0].items, (std::vector<WriteItem>{Bytes("a", 10)}));
  EXPECT_EQ(out->finals[1].items,
            (std::vector<WriteItem>{WithHint(Tensor("w", {4}), 0), WithHint(Shard("s", {4}, {0}, {2}), 0)}));
  EXPECT_EQ(out->finals[2].items, BaseFinalRank2());
  EXPECT_EQ(MetadataKeys(out->metadata), (std::vector<std::string>{"a", "w", "s"}));
  GlobalSavePlan scratch = Scratch(Rank0ReorderedLocals(), cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, AllRanksChanged) {
  Cluster cluster(3, UnflattenedOptions());
  ASSERT_TRUE(cluster.Save(BaseLocals()).ok());
  std::vector<SavePlan> locals = BaseLocals();
  for (SavePlan& plan : locals) plan.items.push_back(Bytes("step", 8));
  absl::StatusOr<RoundOutcome> out = cluster.Save(locals);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kSomeChanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{true, true, true}));
  int step_writers = 0;
  for (const SavePlan& plan : out->finals) {
    for (const WriteItem& item : plan.items) step_writers += item.index.fqn == "step";
  }
  EXPECT_EQ(step_writers, 1);
  GlobalSavePlan scratch = Scratch(locals, cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, DtypeOnlyChangeInvalidatesCachedPlanAndMetadata) {
  Cluster cluster(2, UnflattenedOptions());
  std::vector<SavePlan> locals = {Plan({Tensor("x", {2})}), Plan({Tensor("y", {2})})};
  ASSERT_TRUE(cluster.Save(locals).ok());
  locals[0] = Plan({Tensor("x", {2}, DType::kBFloat16)});
  absl::StatusOr<RoundOutcome> out = cluster.Save(locals);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kSomeChanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{true, false}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{true, false}));
  const StorageMetadata* x = out->metadata.state_dict_metadata.Find("x");
  ASSERT_NE(x, nullptr);
  ASSERT_TRUE(std::holds_alternative<TensorStorageMetadata>(*x));
  EXPECT_EQ(std::get<TensorStorageMetadata>(*x).properties.dtype, DType::kBFloat16);
  EXPECT_EQ(out->finals[0].items[0].tensor_data->properties.dtype, DType::kBFloat16);
  GlobalSavePlan scratch = Scratch(locals, cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

// Rank 2's shard [1,4) overlaps rank 1's [0,2) and the volumes add up to 5.
std::vector<SavePlan> OverlappingLocals() {
  std::vector<SavePlan> locals = BaseLocals();
  locals[2] = Plan({Tensor("w", {4}), Shard("s", {4}, {1}, {3})});
  return locals;
}

TEST(PlanCacheTest, FailedValidationKeepsCacheAndRetryMatchesScratch) {
  Cluster cluster(3, UnflattenedOptions());
  absl::StatusOr<RoundOutcome> first = cluster.Save(BaseLocals());
  ASSERT_TRUE(first.ok());
  absl::StatusOr<RoundOutcome> bad = cluster.Save(OverlappingLocals());
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->problems.empty());
  EXPECT_TRUE(bad->deltas.empty());
  EXPECT_EQ(bad->problems, Scratch(OverlappingLocals(), cluster.options).problems);
  EXPECT_EQ(cluster.coordinator.cached_global_plans(), first->finals);

  // Every rank's round stayed unfinished: the retry sends full plans.
  absl::StatusOr<RoundOutcome> retry = cluster.Save(BaseLocals());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(UsableFlags(retry->sent), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(UsableFlags(retry->deltas), (std::vector<bool>{true, true, true}));
  GlobalSavePlan scratch = Scratch(BaseLocals(), cluster.options);
  EXPECT_EQ(retry->finals, scratch.plans);
  EXPECT_EQ(retry->metadata, scratch.metadata);

  absl::StatusOr<RoundOutcome> again = cluster.Save(BaseLocals());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->round, CacheRound::kAllUnchanged);
  EXPECT_EQ(again->finals, scratch.plans);
}

TEST(PlanCacheTest, PlaceholdersAfterFailedRoundResolveToLastValidRound) {
  // Ranks that (like PyTorch E7) send placeholders after a failed round must
  // get the last committed round, not a crash or the failed round's plans.
  CoordinatorPlanCache coordinator;
  const SavePlannerOptions options = UnflattenedOptions();
  ASSERT_TRUE(coordinator.CreateGlobalPlan(BaseLocals(), options).ok());
  absl::StatusOr<CachedGlobalPlan> bad = coordinator.CreateGlobalPlan(OverlappingLocals(), options);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->valid());
  const std::vector<SavePlan> all_unchanged(3, UnchangedPlaceholder());
  absl::StatusOr<CachedGlobalPlan> reused = coordinator.CreateGlobalPlan(all_unchanged, options);
  ASSERT_TRUE(reused.ok()) << reused.status();
  EXPECT_EQ(reused->round, CacheRound::kAllUnchanged);
  GlobalSavePlan scratch = Scratch(BaseLocals(), options);
  EXPECT_EQ(reused->metadata, scratch.metadata);
  EXPECT_EQ(coordinator.cached_global_plans(), scratch.plans);

  // Only rank 2 resends its bad plan: still invalid, cache still intact.
  std::vector<SavePlan> partly = all_unchanged;
  partly[2] = OverlappingLocals()[2];
  absl::StatusOr<CachedGlobalPlan> bad_again = coordinator.CreateGlobalPlan(partly, options);
  ASSERT_TRUE(bad_again.ok()) << bad_again.status();
  EXPECT_EQ(bad_again->round, CacheRound::kSomeChanged);
  EXPECT_EQ(bad_again->problems, Scratch(OverlappingLocals(), options).problems);
  EXPECT_EQ(coordinator.cached_global_plans(), scratch.plans);
}

TEST(PlanCacheTest, FailedFirstRoundThenFixedRound) {
  Cluster cluster(3, UnflattenedOptions());
  absl::StatusOr<RoundOutcome> bad = cluster.Save(OverlappingLocals());
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->problems.empty());
  EXPECT_FALSE(cluster.coordinator.has_cached_round());
  absl::StatusOr<RoundOutcome> fixed = cluster.Save(BaseLocals());
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->round, CacheRound::kFromScratch);
  EXPECT_EQ(fixed->finals, Scratch(BaseLocals(), cluster.options).plans);
}

TEST(PlanCacheTest, WorldSizeChangeWithPlaceholdersIsAnErrorThenReplans) {
  Cluster cluster(3, UnflattenedOptions());
  ASSERT_TRUE(cluster.Save(BaseLocals()).ok());
  cluster.Resize(2);
  // Rank 0 is unchanged (placeholder), rank 1 now holds all of s.
  std::vector<SavePlan> locals = {BaseLocals()[0], Plan({Tensor("w", {4}), Shard("s", {4}, {0}, {4})})};
  absl::StatusOr<RoundOutcome> out = cluster.Save(locals);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("rank 0"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("from 3 to 2"));

  absl::StatusOr<RoundOutcome> retry = cluster.Save(locals);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->round, CacheRound::kFromScratch);
  EXPECT_EQ(UsableFlags(retry->deltas), (std::vector<bool>{true, true}));
  GlobalSavePlan scratch = Scratch(locals, cluster.options);
  EXPECT_EQ(retry->finals, scratch.plans);
  EXPECT_EQ(retry->metadata, scratch.metadata);
  EXPECT_EQ(cluster.coordinator.world_size(), 2u);
}

TEST(PlanCacheTest, WorldSizeChangeWithFullPlansReplansFromScratch) {
  CoordinatorPlanCache coordinator;
  const SavePlannerOptions options = UnflattenedOptions();
  ASSERT_TRUE(coordinator.CreateGlobalPlan(BaseLocals(), options).ok());
  std::vector<SavePlan> grown = BaseLocals();
  grown.push_back(Plan({Tensor("w", {4})}));
  absl::StatusOr<CachedGlobalPlan> out = coordinator.CreateGlobalPlan(grown, options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kFromScratch);
  GlobalSavePlan scratch = Scratch(grown, options);
  EXPECT_EQ(out->deltas, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, PlaceholderWithoutCoordinatorCacheNamesTheRank) {
  CoordinatorPlanCache coordinator;
  std::vector<SavePlan> received = BaseLocals();
  received[1] = UnchangedPlaceholder();
  absl::StatusOr<CachedGlobalPlan> out = coordinator.CreateGlobalPlan(received, UnflattenedOptions());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("rank 1 "));
  EXPECT_FALSE(coordinator.has_cached_round());
}

TEST(PlanCacheTest, InvalidatedCoordinatorRejectsPlaceholdersAndRanksRecover) {
  Cluster cluster(3, UnflattenedOptions());
  ASSERT_TRUE(cluster.Save(BaseLocals()).ok());
  cluster.coordinator.Invalidate();
  absl::StatusOr<RoundOutcome> out = cluster.Save(BaseLocals());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("ranks 0, 1, 2"));
  absl::StatusOr<RoundOutcome> retry = cluster.Save(BaseLocals());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->round, CacheRound::kFromScratch);
  EXPECT_EQ(retry->finals, Scratch(BaseLocals(), cluster.options).plans);
}

TEST(PlanCacheTest, RankPlaceholderWithoutFinalPlanIsAnError) {
  RankPlanCache rank(4);
  absl::StatusOr<SavePlan> finished = rank.FinishPlan(BaseLocals()[0]);
  ASSERT_FALSE(finished.ok());  // no round started
  EXPECT_EQ(finished.status().code(), absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<SavePlan> sent = rank.PlanToSend(BaseLocals()[0]);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(sent->usable);
  finished = rank.FinishPlan(UnchangedPlaceholder());
  ASSERT_FALSE(finished.ok());
  EXPECT_EQ(finished.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(finished.status().message()), HasSubstr("rank 4 "));

  absl::StatusOr<SavePlan> placeholder_in = rank.PlanToSend(UnchangedPlaceholder());
  ASSERT_FALSE(placeholder_in.ok());
  EXPECT_EQ(placeholder_in.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlanCacheTest, RestartedRankSendsFullPlanAndGetsFullPlan) {
  Cluster cluster(3, UnflattenedOptions());
  absl::StatusOr<RoundOutcome> first = cluster.Save(BaseLocals());
  ASSERT_TRUE(first.ok());
  cluster.ranks[1] = RankPlanCache(1);  // the process restarted
  absl::StatusOr<RoundOutcome> out = cluster.Save(BaseLocals());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kSomeChanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(out->finals, first->finals);
}

TEST(PlanCacheTest, OptionsChangeReplans) {
  Cluster cluster(3, UnflattenedOptions(DedupPolicy::kPyTorch));
  ASSERT_TRUE(cluster.Save(Rank0ReorderedLocals()).ok());  // w -> rank 1
  cluster.options = UnflattenedOptions(DedupPolicy::kLowestRank);
  absl::StatusOr<RoundOutcome> out = cluster.Save(Rank0ReorderedLocals());  // w -> rank 0
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->round, CacheRound::kSomeChanged);
  EXPECT_EQ(UsableFlags(out->sent), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(UsableFlags(out->deltas), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(out->finals[0].items, (std::vector<WriteItem>{Bytes("a", 10), WithHint(Tensor("w", {4}), 0)}));
  GlobalSavePlan scratch = Scratch(Rank0ReorderedLocals(), cluster.options);
  EXPECT_EQ(out->finals, scratch.plans);
  EXPECT_EQ(out->metadata, scratch.metadata);
}

TEST(PlanCacheTest, ReusedMetadataIsACopy) {
  CoordinatorPlanCache coordinator;
  const SavePlannerOptions options = UnflattenedOptions();
  absl::StatusOr<CachedGlobalPlan> first = coordinator.CreateGlobalPlan(BaseLocals(), options);
  ASSERT_TRUE(first.ok());
  const std::vector<SavePlan> all_unchanged(3, UnchangedPlaceholder());
  absl::StatusOr<CachedGlobalPlan> second = coordinator.CreateGlobalPlan(all_unchanged, options);
  ASSERT_TRUE(second.ok());
  second->metadata.storage_data = StorageData{};
  second->metadata.version = "1.0.0";
  absl::StatusOr<CachedGlobalPlan> third = coordinator.CreateGlobalPlan(all_unchanged, options);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->metadata, first->metadata);
  EXPECT_FALSE(third->metadata.storage_data.has_value());
}

}  // namespace
}  // namespace plan_cache_test
}  // namespace dcplan
