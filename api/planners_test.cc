#include "api/planners.h"
#include "api/internal/torch_compat.h"

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/Dict.h>
#include <ATen/core/jit_type.h>
#include <caffe2/serialize/inline_container.h>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "api/state_dict.h"
#include "api/tensor_record.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string S(const char* s) { return std::string(s); }

at::Tensor Arange(int64_t n, at::IntArrayRef shape) { return at::arange(n, at::kFloat).reshape(shape); }

const at::Tensor& TensorAt(const StateDict& sd, const std::string& key) {
  return std::get<at::Tensor>(*sd.FindEntry(key)->leaf());
}

// --- Save ----------------------------------------------------------------------

// Rank r of 3: a replicated model weight, rows [2r, 2r + 2) of a sharded
// [6, 2] tensor, and a replicated step counter.
StateDict RankStateDict(int64_t rank, const at::Tensor& weight) {
  ShardedTensorValue sharded;
  sharded.global_shape = {6, 2};
  sharded.local_shards.push_back(LocalShard{Arange(4, {2, 2}).add(10.0 * static_cast<double>(rank)), {2 * rank, 0}});
  return Dict({
      {"model", Dict({{"w", Value(weight)}, {"sharded", Value(sharded)}})},
      {"step", Value(c10::IValue(int64_t{5}))},
  });
}

// A save planner whose non-tensor values are "serialized" as their repr: the
// extension point, and bytes items without torch.save.
class ReprSavePlanner : public DefaultSavePlanner {
 public:
  using DefaultSavePlanner::DefaultSavePlanner;
  absl::StatusOr<WriteData> TransformObject(const WriteItem& item, const StateDict& object) const override {
    if (object.is_leaf() && IsTensorValue(*object.leaf())) return DefaultSavePlanner::TransformObject(item, object);
    absl::StatusOr<c10::IValue> value = ToIValue(object);
    if (!value.ok()) return value.status();
    std::ostringstream repr;
    repr << *value;
    return WriteData(repr.str());
  }
};

struct SaveRound {
  std::vector<SavePlan> local;
  std::vector<SavePlan> sent_back;
  Metadata metadata;
  std::vector<SavePlan> final_plans;
};

// One save round over `planners` (rank = position; rank 0 coordinates), as a
// plain loop.
template <typename Planner>
SaveRound RunSaveRound(std::vector<Planner>& planners, const std::vector<StateDict>& state_dicts) {
  SaveRound round;
  for (size_t r = 0; r < planners.size(); ++r) {
    planners[r].set_rank(static_cast<int64_t>(r));
    EXPECT_TRUE(planners[r].SetUpPlanner(state_dicts[r], std::nullopt, r == 0).ok());
    absl::StatusOr<SavePlan> local = planners[r].CreateLocalPlan();
    EXPECT_TRUE(local.ok()) << local.status();
    round.local.push_back(local.ok() ? *local : SavePlan());
  }
  auto global = planners[0].CreateGlobalPlan(round.local);
  EXPECT_TRUE(global.ok()) << global.status();
  if (!global.ok()) return round;
  round.sent_back = global->first;
  round.metadata = global->second;
  for (size_t r = 0; r < planners.size(); ++r) {
    absl::StatusOr<SavePlan> final_plan = planners[r].FinishPlan(round.sent_back[r]);
    EXPECT_TRUE(final_plan.ok()) << final_plan.status();
    round.final_plans.push_back(final_plan.ok() ? *final_plan : SavePlan());
  }
  return round;
}

TEST(DefaultSavePlannerTest, ThreeRanksPlanResolveAndDedup) {
  const at::Tensor weight = Arange(12, {4, 3});
  std::vector<StateDict> sds;
  for (int64_t r = 0; r < 3; ++r) sds.push_back(RankStateDict(r, weight));
  DefaultSavePlanner::Options options;
  options.dedup_save_to_lowest_rank = true;
  std::vector<ReprSavePlanner> planners(3, ReprSavePlanner(options));
  SaveRound round = RunSaveRound(planners, sds);
  ASSERT_EQ(round.final_plans.size(), 3u);

  // Every rank plans every value (§4.3): TENSOR, SHARD, BYTE_IO.
  for (const SavePlan& local : round.local) {
    ASSERT_EQ(local.items.size(), 3u);
    EXPECT_EQ(local.items[0].type, WriteItemType::kTensor);
    EXPECT_EQ(local.items[1].type, WriteItemType::kShard);
    EXPECT_EQ(local.items[2].type, WriteItemType::kByteIO);
    ASSERT_TRUE(local.planner_data.has_value());
    EXPECT_EQ(*local.planner_data->Find("model.sharded"),
              (ObjectPath{S("model"), S("sharded")}));
  }
  // Lowest-rank dedup: rank 0 writes the replicated values, each rank its shard.
  auto fqns = [](const SavePlan& plan) {
    std::vector<std::string> out;
    for (const WriteItem& item : plan.items) out.push_back(item.index.fqn);
    return out;
  };
  EXPECT_THAT(fqns(round.final_plans[0]), ElementsAre("model.w", "model.sharded", "step"));
  EXPECT_THAT(fqns(round.final_plans[1]), ElementsAre("model.sharded"));
  EXPECT_THAT(fqns(round.final_plans[2]), ElementsAre("model.sharded"));
  EXPECT_EQ(planners[1].plan(), round.final_plans[1]);
  EXPECT_EQ(planners[0].global_plan(), round.sent_back);

  const auto* sharded_md = std::get_if<TensorStorageMetadata>(round.metadata.state_dict_metadata.Find("model.sharded"));
  ASSERT_NE(sharded_md, nullptr);
  EXPECT_EQ(sharded_md->size, (Shape{6, 2}));
  EXPECT_EQ(sharded_md->chunks,
            (std::vector<ChunkBox>{{{0, 0}, {2, 2}}, {{2, 0}, {2, 2}}, {{4, 0}, {2, 2}}}));
  ASSERT_TRUE(round.metadata.planner_data.has_value());
  EXPECT_EQ(*round.metadata.planner_data->Find("step"), ObjectPath{S("step")});
  EXPECT_EQ(planners[0].metadata(), round.metadata);

  // Every item resolves to the rank's own data.
  for (size_t r = 0; r < 3; ++r) {
    const StateDict& model = *sds[r].FindEntry("model");
    for (const WriteItem& item : round.final_plans[r].items) {
      absl::StatusOr<WriteData> data = planners[r].ResolveData(item);
      ASSERT_TRUE(data.ok()) << data.status();
      if (item.index.fqn == "model.w") {
        EXPECT_EQ(std::get<at::Tensor>(*data).data_ptr(), weight.data_ptr());
      } else if (item.index.fqn == "model.sharded") {
        // Index hints are global chunk positions (§4.6): rank 2's hint is 2,
        // out of its local range, so the shard is found by offsets.
        EXPECT_EQ(item.index.index, std::optional<int64_t>(r));
        const auto& shard = std::get<ShardedTensorValue>(*model.FindEntry("sharded")->leaf()).local_shards[0];
        EXPECT_EQ(std::get<at::Tensor>(*data).data_ptr(), shard.tensor.data_ptr());
      } else {
        EXPECT_EQ(std::get<std::string>(*data), "5");
      }
    }
  }
}

TEST(DefaultSavePlannerTest, DefaultDedupWritesEachItemOnce) {
  const at::Tensor weight = Arange(12, {4, 3});
  std::vector<StateDict> sds;
  for (int64_t r = 0; r < 3; ++r) sds.push_back(RankStateDict(r, weight));
  std::vector<ReprSavePlanner> planners(3);
  SaveRound round = RunSaveRound(planners, sds);
  ASSERT_EQ(round.final_plans.size(), 3u);
  // §4.5 by hand: model.w -> rank 0 (load 48), shard 0 -> rank 0 (load += 48,
  // the global size), step -> least loaded holder: rank 1 (load 1), shard 1 ->
  // rank 1, shard 2 -> rank 2.
  std::vector<std::vector<std::string>> written(3);
  for (size_t r = 0; r < 3; ++r) {
    for (const WriteItem& item : round.final_plans[r].items) {
      written[r].push_back(item.index.fqn);
      EXPECT_TRUE(planners[r].ResolveData(item).ok()) << ToString(item);
    }
  }
  EXPECT_THAT(written[0], ElementsAre("model.w", "model.sharded"));
  EXPECT_THAT(written[1], ElementsAre("model.sharded", "step"));
  EXPECT_THAT(written[2], ElementsAre("model.sharded"));
}

TEST(DefaultSavePlannerTest, LookupObjectErrors) {
  ShardedTensorValue two;
  two.global_shape = {4};
  two.local_shards = {LocalShard{at::zeros({2}), {0}}, LocalShard{at::ones({2}), {2}}};
  StateDict sd = Dict({{"w", Value(at::zeros({2, 2}))}, {"s", Value(two)}, {"v", Value(c10::IValue(1))}});
  DefaultSavePlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(sd, std::nullopt, true).ok());

  // Shard lookup by offsets: the hint is a fast path, a wrong hint still finds
  // the shard.
  const at::Tensor& second = std::get<ShardedTensorValue>(*sd.FindEntry("s")->leaf()).local_shards[1].tensor;
  for (std::optional<int64_t> hint : {std::optional<int64_t>(1), std::optional<int64_t>(0),
                                      std::optional<int64_t>(7), std::optional<int64_t>()}) {
    absl::StatusOr<StateDict> found = planner.LookupObject(MetadataIndex{"s", Shape{2}, hint});
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(std::get<at::Tensor>(*found->leaf()).data_ptr(), second.data_ptr());
  }
  absl::Status status = planner.LookupObject(MetadataIndex{"s", Shape{1}, 0}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("no local shard of 's' at offsets [1]"));
  EXPECT_FALSE(planner.LookupObject(MetadataIndex{"s", std::nullopt, std::nullopt}).ok());

  EXPECT_TRUE(planner.LookupObject(MetadataIndex{"w", Shape{0, 0}, 0}).ok());
  EXPECT_TRUE(planner.LookupObject(MetadataIndex{"w", std::nullopt, std::nullopt}).ok());
  status = planner.LookupObject(MetadataIndex{"w", Shape{1, 0}, 0}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'w'"));

  status = planner.LookupObject(MetadataIndex{"nope", std::nullopt, std::nullopt}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("no value 'nope' in the state dict"));
  EXPECT_FALSE(planner.LookupObject(MetadataIndex{"v", Shape{0}, std::nullopt}).ok());
  absl::StatusOr<StateDict> v = planner.LookupObject(MetadataIndex{"v", std::nullopt, std::nullopt});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<c10::IValue>(*v->leaf()).toInt(), 1);
}

// Rank 0 holds [0, 3) and rank 1 [2, 4) of each 4-element tensor: overlap.
std::vector<StateDict> OverlappingStateDicts(int tensors) {
  std::vector<StateDict> sds(2, Dict({}));
  for (int i = 0; i < tensors; ++i) {
    for (int64_t r = 0; r < 2; ++r) {
      ShardedTensorValue st;
      st.global_shape = {4};
      st.local_shards.push_back(r == 0 ? LocalShard{at::zeros({3}), {0}} : LocalShard{at::zeros({2}), {2}});
      sds[r].AddEntry("t" + std::to_string(i), Value(st));
    }
  }
  return sds;
}

std::vector<PlanProblem> EngineProblems(std::vector<DefaultSavePlanner>& planners, const std::vector<StateDict>& sds,
                                        std::vector<SavePlan>* local) {
  for (size_t r = 0; r < planners.size(); ++r) {
    EXPECT_TRUE(planners[r].SetUpPlanner(sds[r], std::nullopt, r == 0).ok());
    local->push_back(*planners[r].CreateLocalPlan());
  }
  return CreateGlobalSavePlan(*local, SavePlannerOptions())->problems;
}

TEST(DefaultSavePlannerTest, InvalidGlobalPlanListsEveryProblem) {
  std::vector<DefaultSavePlanner> planners(2);
  std::vector<SavePlan> local;
  const std::vector<PlanProblem> problems = EngineProblems(planners, OverlappingStateDicts(1), &local);
  ASSERT_FALSE(problems.empty());
  auto global = planners[0].CreateGlobalPlan(local);
  ASSERT_FALSE(global.ok());
  EXPECT_EQ(global.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> lines = absl::StrSplit(std::string(global.status().message()), '\n');
  ASSERT_EQ(lines.size(), problems.size() + 1);
  EXPECT_THAT(lines[0], StartsWith("global plan is invalid: "));
  for (size_t i = 0; i < problems.size(); ++i) EXPECT_EQ(lines[i + 1], ToString(problems[i]));
  EXPECT_THAT(global.status().message(), HasSubstr("t0"));
}

TEST(DefaultSavePlannerTest, InvalidGlobalPlanErrorIsCapped) {
  std::vector<DefaultSavePlanner> planners(2);
  std::vector<SavePlan> local;
  const std::vector<PlanProblem> problems = EngineProblems(planners, OverlappingStateDicts(60), &local);
  ASSERT_GT(problems.size(), 50u);
  auto global = planners[0].CreateGlobalPlan(local);
  ASSERT_FALSE(global.ok());
  std::vector<std::string> lines = absl::StrSplit(std::string(global.status().message()), '\n');
  ASSERT_EQ(lines.size(), 52u);
  EXPECT_EQ(lines[50], ToString(problems[49]));
  EXPECT_EQ(lines[51], "... and " + std::to_string(problems.size() - 50) + " more");
}

TEST(DefaultSavePlannerTest, PlanCachingSendsPlaceholdersAndFinishesToTheSamePlan) {
  const at::Tensor weight = Arange(12, {4, 3});
  std::vector<StateDict> sds;
  for (int64_t r = 0; r < 3; ++r) sds.push_back(RankStateDict(r, weight));
  DefaultSavePlanner::Options options;
  options.enable_plan_caching = true;
  std::vector<ReprSavePlanner> planners(3, ReprSavePlanner(options));

  SaveRound first = RunSaveRound(planners, sds);
  for (const SavePlan& plan : first.local) EXPECT_TRUE(plan.usable);
  for (const SavePlan& plan : first.sent_back) EXPECT_TRUE(plan.usable);

  SaveRound second = RunSaveRound(planners, sds);
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_FALSE(second.local[r].usable);
    EXPECT_TRUE(second.local[r].items.empty());
    EXPECT_FALSE(second.sent_back[r].usable);
    EXPECT_EQ(second.final_plans[r], first.final_plans[r]);
    EXPECT_EQ(planners[r].plan(), first.final_plans[r]);
  }
  EXPECT_EQ(second.metadata, first.metadata);
  EXPECT_EQ(planners[0].global_plan(), first.final_plans);
  for (size_t r = 0; r < 3; ++r) {
    for (const WriteItem& item : second.final_plans[r].items) EXPECT_TRUE(planners[r].ResolveData(item).ok());
  }

  // Rank 1's step becomes a tensor: only rank 1 sends a full plan.
  sds[1] = RankStateDict(1, weight);
  *sds[1].FindEntry("step") = Value(at::zeros({1}));
  std::vector<SavePlan> local;
  for (size_t r = 0; r < 3; ++r) {
    ASSERT_TRUE(planners[r].SetUpPlanner(sds[r], std::nullopt, r == 0).ok());
    local.push_back(*planners[r].CreateLocalPlan());
  }
  EXPECT_FALSE(local[0].usable);
  EXPECT_TRUE(local[1].usable);
  EXPECT_FALSE(local[2].usable);
  // "step" is now a tensor on rank 1 and bytes elsewhere: invalid.
  EXPECT_FALSE(planners[0].CreateGlobalPlan(local).ok());
}

TEST(DefaultSavePlannerTest, WithoutFlatteningEachTopLevelEntryIsAKey) {
  DefaultSavePlanner::Options options;
  options.flatten_state_dict = false;
  std::vector<ReprSavePlanner> planners(1, ReprSavePlanner(options));
  StateDict sd = Dict({{"w", Value(at::zeros({2}))}, {"cfg", Dict({{"lr", Value(c10::IValue(0.5))}})}});
  SaveRound round = RunSaveRound(planners, {sd});
  ASSERT_EQ(round.final_plans.size(), 1u);
  const SavePlan& plan = round.final_plans[0];
  ASSERT_EQ(plan.items.size(), 2u);
  EXPECT_EQ(plan.items[0].index.fqn, "w");
  EXPECT_EQ(plan.items[1].index.fqn, "cfg");
  EXPECT_EQ(plan.items[1].type, WriteItemType::kByteIO);
  EXPECT_FALSE(plan.planner_data.has_value());
  EXPECT_FALSE(round.metadata.planner_data.has_value());
  absl::StatusOr<WriteData> cfg = planners[0].ResolveData(plan.items[1]);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_THAT(std::get<std::string>(*cfg), HasSubstr("lr"));
}

TEST(DefaultSavePlannerTest, BytesItemsAreSerializedWithTorchSave) {
  DefaultSavePlanner planner;
  StateDict sd = Dict({{"sched", Dict({{"lr", Value(c10::IValue(0.25))}, {"name", Value(c10::IValue("cos"))}})}});
  ASSERT_TRUE(planner.SetUpPlanner(sd, std::nullopt, true).ok());
  absl::StatusOr<SavePlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->items.size(), 2u);
  absl::StatusOr<WriteData> data = planner.ResolveData(plan->items[0]);
  ASSERT_TRUE(data.ok()) << data.status();
  absl::StatusOr<c10::IValue> loaded = LoadValueRecord(std::get<std::string>(*data));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_DOUBLE_EQ(loaded->toDouble(), 0.25);
}

// --- Load ----------------------------------------------------------------------

Metadata OneTensorMetadata(const std::string& fqn, Shape size, std::vector<ChunkBox> chunks) {
  Metadata md;
  TensorStorageMetadata tensor;
  tensor.size = std::move(size);
  tensor.chunks = std::move(chunks);
  md.state_dict_metadata.InsertOrAssign(fqn, tensor);
  return md;
}

TEST(DefaultLoadPlannerTest, ResolvedViewsWriteIntoTheCallersTensor) {
  StateDict sd = Dict({{"w", Value(at::zeros({4, 6}))}});
  // Saved as two column halves.
  Metadata md = OneTensorMetadata("w", {4, 6}, {{{0, 0}, {4, 3}}, {{0, 3}, {4, 3}}});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 2u);
  EXPECT_EQ(plan->items[1].dest_offsets, (Shape{0, 3}));
  EXPECT_EQ(plan->items[1].lengths, (Shape{4, 3}));

  absl::StatusOr<at::Tensor> view = planner.ResolveTensor(plan->items[1]);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->sizes().vec(), (Shape{4, 3}));
  view->fill_(7);
  EXPECT_TRUE(planner.CommitTensor(plan->items[1], *view).ok());
  const at::Tensor& w = TensorAt(sd, "w");
  EXPECT_EQ(w.narrow(1, 3, 3).eq(7).all().item<bool>(), true);
  EXPECT_EQ(w.narrow(1, 0, 3).eq(0).all().item<bool>(), true);
}

ShardedTensorValue ShardOf8(Shape offsets, int64_t size) {
  ShardedTensorValue st;
  st.global_shape = {8};
  st.local_shards.push_back(LocalShard{at::zeros({size}), std::move(offsets)});
  return st;
}

TEST(DefaultLoadPlannerTest, ResolvesIntoLocalShards) {
  StateDict sd = Dict({{"s", Value(ShardOf8({4}, 4))}});
  // Saved as [0, 6) and [6, 8): this rank's [4, 8) reads 2 + 2 elements.
  Metadata md = OneTensorMetadata("s", {8}, {{{0}, {6}}, {{6}, {2}}});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, false).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 2u);
  const ReadItem& second = plan->items[1];
  EXPECT_EQ(second.dest_offsets, Shape{2});
  EXPECT_EQ(second.lengths, Shape{2});
  absl::StatusOr<at::Tensor> view = planner.ResolveTensor(second);
  ASSERT_TRUE(view.ok()) << view.status();
  view->fill_(9);
  const at::Tensor& shard = std::get<ShardedTensorValue>(*sd.FindEntry("s")->leaf()).local_shards[0].tensor;
  EXPECT_TRUE(at::equal(shard, at::tensor(std::vector<float>{0, 0, 9, 9})));

  // An item reaching past the destination is an error, not a clamped view.
  ReadItem bad = second;
  bad.dest_offsets = {3};
  absl::Status status = planner.ResolveTensor(bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("outside its destination 's'"));
  bad = second;
  bad.dest_index.offset = Shape{0};
  EXPECT_EQ(planner.ResolveTensor(bad).status().code(), absl::StatusCode::kNotFound);
  bad = second;
  bad.lengths = {2, 1};
  EXPECT_FALSE(planner.ResolveTensor(bad).ok());
}

TEST(DefaultLoadPlannerTest, ChoosesLegacyKeysForAnOldCheckpoint) {
  StateDict sd = Dict({{"sched", Dict({{"lr", Value(c10::IValue(0.1))}})}, {"w", Value(at::zeros({2}))}});
  // An E0–E1 checkpoint saved the tensor-free mapping whole, as "sched".
  Metadata md = OneTensorMetadata("w", {2}, {{{0}, {2}}});
  md.state_dict_metadata.InsertOrAssign("sched", BytesStorageMetadata{});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 2u);
  EXPECT_EQ(plan->items[0].type, LoadItemType::kByteIO);
  EXPECT_EQ(plan->items[0].dest_index.fqn, "sched");
  EXPECT_EQ(plan->items[1].dest_index.fqn, "w");

  // The saved value replaces the caller's mapping at ("sched",).
  c10::impl::GenericDict saved(c10::StringType::get(), c10::AnyType::get());
  saved.insert(c10::IValue("lr"), c10::IValue(0.5));
  absl::StatusOr<std::string> bytes = SaveValueRecord(c10::IValue(saved));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(planner.LoadBytes(plan->items[0], *bytes).ok());
  const StateDict* lr = sd.FindEntry("sched")->FindEntry("lr");
  ASSERT_NE(lr, nullptr);
  EXPECT_DOUBLE_EQ(std::get<c10::IValue>(*lr->leaf()).toDouble(), 0.5);
}

TEST(DefaultLoadPlannerTest, LoadBytesReplacesNestedValues) {
  StateDict sd = Dict({{"opt", Dict({{"groups", List({Dict({{"lr", Value(c10::IValue(0.1))}})})}})}});
  Metadata md;
  md.state_dict_metadata.InsertOrAssign("opt.groups.0.lr", BytesStorageMetadata{});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  ASSERT_TRUE(planner.LoadBytes(plan->items[0], *SaveValueRecord(c10::IValue(0.75))).ok());
  const StateDict& lr = sd.FindEntry("opt")->FindEntry("groups")->items()[0].entries()[0].value;
  EXPECT_DOUBLE_EQ(std::get<c10::IValue>(*lr.leaf()).toDouble(), 0.75);
  EXPECT_FALSE(planner.LoadBytes(plan->items[0], "not a zip").ok());
}

TEST(DefaultLoadPlannerTest, MissingKeysAndSizeMismatchesNameRankAndKey) {
  StateDict sd = Dict({{"w", Value(at::zeros({4, 6}))}, {"b", Value(at::zeros({6}))}});
  Metadata md = OneTensorMetadata("w", {4, 6}, {{{0, 0}, {4, 6}}});
  DefaultLoadPlanner planner;
  planner.set_rank(3);
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, false).ok());
  absl::Status status = planner.CreateLocalPlan().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("rank 3"));
  EXPECT_THAT(status.message(), HasSubstr("Missing key in checkpoint state_dict: b."));

  DefaultLoadPlanner::Options partial;
  partial.allow_partial_load = true;
  DefaultLoadPlanner lenient(partial);
  ASSERT_TRUE(lenient.SetUpPlanner(&sd, md, false).ok());
  absl::StatusOr<LoadPlan> plan = lenient.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  EXPECT_EQ(plan->items[0].dest_index.fqn, "w");

  Metadata other = OneTensorMetadata("w", {4, 5}, {{{0, 0}, {4, 5}}});
  ASSERT_TRUE(lenient.SetUpPlanner(&sd, other, false).ok());
  status = lenient.CreateLocalPlan().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("rank 0"));
  EXPECT_THAT(status.message(), HasSubstr("[4, 5]"));
  EXPECT_THAT(status.message(), HasSubstr("[4, 6]"));
  EXPECT_THAT(status.message(), HasSubstr("'w'"));
}

TEST(DefaultLoadPlannerTest, ShardedTensorWithoutLocalShardsIsNotRequested) {
  ShardedTensorValue none;
  none.global_shape = {8};
  StateDict sd = Dict({{"s", Value(none)}});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, Metadata(), false).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->items.empty());

  DefaultLoadPlanner::Options keep;
  keep.flatten_sharded_tensors = false;
  DefaultLoadPlanner strict(keep);
  ASSERT_TRUE(strict.SetUpPlanner(&sd, Metadata(), false).ok());
  EXPECT_THAT(strict.CreateLocalPlan().status().message(), HasSubstr("Missing key in checkpoint state_dict: s."));
}

class CountingLoadPlanner : public DefaultLoadPlanner {
 public:
  absl::StatusOr<at::Tensor> TransformTensor(const ReadItem& item, const at::Tensor& tensor) const override {
    ++transformed;
    return DefaultLoadPlanner::TransformTensor(item, tensor);
  }
  mutable int transformed = 0;
};

TEST(DefaultLoadPlannerTest, WithoutFlatteningAndTransformHook) {
  DefaultLoadPlanner::Options options;
  options.flatten_state_dict = false;
  StateDict sd = Dict({{"w", Value(at::zeros({2}))}, {"cfg", Dict({{"a", Value(c10::IValue(1))}})}});
  Metadata md = OneTensorMetadata("w", {2}, {{{0}, {2}}});
  md.state_dict_metadata.InsertOrAssign("cfg", BytesStorageMetadata{});
  DefaultLoadPlanner planner(options);
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 2u);
  EXPECT_FALSE(plan->planner_data.has_value());
  EXPECT_EQ(plan->items[1].dest_index.fqn, "cfg");
  ASSERT_TRUE(planner.LoadBytes(plan->items[1], *SaveValueRecord(c10::IValue(int64_t{42}))).ok());
  EXPECT_EQ(std::get<c10::IValue>(*sd.FindEntry("cfg")->leaf()).toInt(), 42);

  CountingLoadPlanner counting;
  StateDict sd2 = Dict({{"w", Value(at::zeros({2}))}});
  ASSERT_TRUE(counting.SetUpPlanner(&sd2, OneTensorMetadata("w", {2}, {{{0}, {2}}}), true).ok());
  absl::StatusOr<LoadPlan> plan2 = counting.CreateLocalPlan();
  ASSERT_TRUE(plan2.ok());
  ASSERT_TRUE(counting.ResolveTensor(plan2->items[0]).ok());
  EXPECT_EQ(counting.transformed, 1);
}

// --- Loading without a template ----------------------------------------------------

Metadata NestedCheckpoint() {
  Metadata md;
  md.planner_data.emplace();
  auto add_tensor = [&](const std::string& key, Shape size, DType dtype, ObjectPath path) {
    TensorStorageMetadata t;
    t.properties.dtype = dtype;
    t.size = size;
    t.chunks = {ChunkBox{Shape(size.size(), 0), size}};
    md.state_dict_metadata.InsertOrAssign(key, t);
    md.planner_data->InsertOrAssign(key, std::move(path));
  };
  add_tensor("model.w", {2, 3}, DType::kFloat64, {S("model"), S("w")});
  add_tensor("optim.state.0.exp_avg", {2}, DType::kBFloat16, {S("optim"), S("state"), S("0"), S("exp_avg")});
  add_tensor("ema.0", {3}, DType::kFloat32, {S("ema"), int64_t{0}});
  add_tensor("ema.1", {}, DType::kInt32, {S("ema"), int64_t{1}});
  md.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  md.planner_data->InsertOrAssign("step", {S("step")});
  return md;
}

// --- Saved objects (values LibTorch cannot build) ------------------------------------

// A torch.save archive ("archive/" records, as torch.save and LibTorch write
// them) holding `pickle` as data.pkl.
std::string ArchiveWithPickle(const std::string& pickle) {
  std::string archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    archive.append(static_cast<const char*>(data), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeRecord("version", "3\n", 2);
  writer.writeEndOfFile();
  return archive;
}

// pickle.dumps(b'abc', protocol=2), what torch.save(b'abc') stores: Python
// pickles bytes as _codecs.encode('abc', 'latin1'), a global LibTorch's
// unpickler cannot build.
std::string PythonBytesPickle() {
  static const char kPickle[] = "\x80\x02" "c_codecs\nencode\n" "q\x00" "X\x03\x00\x00\x00" "abc" "q\x01"
                                "X\x06\x00\x00\x00" "latin1" "q\x02" "\x86" "q\x03" "R" "q\x04" ".";
  return std::string(kPickle, sizeof(kPickle) - 1);
}

Metadata OneBytesItemMetadata(const std::string& fqn, const std::vector<PathElement>& path) {
  Metadata md;
  md.state_dict_metadata.InsertOrAssign(fqn, BytesStorageMetadata{});
  md.planner_data.emplace();
  md.planner_data->InsertOrAssign(fqn, path);
  return md;
}

TEST(SavedObjectTest, TheTestArchiveIsWellFormedButNotBuildable) {
  const std::string archive = ArchiveWithPickle(PythonBytesPickle());
  EXPECT_TRUE(CheckTorchSaveArchive(archive).ok()) << CheckTorchSaveArchive(archive);
  absl::StatusOr<c10::IValue> loaded = LoadValueRecord(archive);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("_codecs"));
}

TEST(SavedObjectTest, LoadBytesKeepsAnUnbuildableValueAsItsArchive) {
  StateDict sd = Dict({{"extra", Dict({{"rng", Value(c10::IValue(int64_t{0}))}})}});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, OneBytesItemMetadata("extra.rng", {S("extra"), S("rng")}), true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  const std::string archive = ArchiveWithPickle(PythonBytesPickle());
  absl::Status status = planner.LoadBytes(plan->items[0], archive);
  ASSERT_TRUE(status.ok()) << status;
  const StateDict* rng = sd.FindEntry("extra")->FindEntry("rng");
  ASSERT_TRUE(rng != nullptr && rng->is_leaf());
  const auto* saved = std::get_if<SavedObject>(rng->leaf());
  ASSERT_NE(saved, nullptr);
  EXPECT_EQ(saved->archive, archive);
}

TEST(SavedObjectTest, MalformedArchivesStayErrors) {
  StateDict sd = Dict({{"rng", Value(c10::IValue(int64_t{7}))}});
  DefaultLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, OneBytesItemMetadata("rng", {S("rng")}), true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  const std::string archive = ArchiveWithPickle(PythonBytesPickle());
  std::string without_stop = PythonBytesPickle();
  without_stop.pop_back();
  const std::vector<std::pair<std::string, std::string>> malformed = {
      {"truncated by one byte", archive.substr(0, archive.size() - 1)},
      {"truncated to half", archive.substr(0, archive.size() / 2)},
      {"pickle without STOP", ArchiveWithPickle(without_stop)},
      {"not a zip", "not a zip"},
  };
  for (const auto& [what, bytes] : malformed) {
    EXPECT_FALSE(CheckTorchSaveArchive(bytes).ok()) << what;
    absl::Status status = planner.LoadBytes(plan->items[0], bytes);
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << what << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr("'rng'")) << what;
  }
  // The value stays as it was.
  EXPECT_EQ(std::get<c10::IValue>(*sd.FindEntry("rng")->leaf()).toInt(), 7);
}

TEST(SavedObjectTest, SavePlannerWritesTheArchiveUnchanged) {
  // Any bytes: the planner must not parse or re-serialize them.
  const std::string archive("\x00\x01opaque\xff", 9);
  StateDict sd = Dict({{"extra", Dict({{"rng", Value(SavedObject{archive})}})}});
  DefaultSavePlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(sd, std::nullopt, true).ok());
  absl::StatusOr<SavePlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  EXPECT_EQ(plan->items[0].index.fqn, "extra.rng");
  EXPECT_EQ(plan->items[0].type, WriteItemType::kByteIO);
  EXPECT_EQ(plan->items[0].bytes_io_nbytes, std::optional<int64_t>(9));
  absl::StatusOr<WriteData> data = planner.ResolveData(plan->items[0]);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_TRUE(std::holds_alternative<std::string>(*data));
  EXPECT_EQ(std::get<std::string>(*data), archive);
  absl::StatusOr<WriteData> direct = planner.TransformObject(plan->items[0], Value(SavedObject{archive}));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(std::get<std::string>(*direct), archive);
}

TEST(SavedObjectTest, InsideAValueSavedWholeIsAnErrorNamingTheKey) {
  DefaultSavePlanner::Options options;
  options.flatten_state_dict = false;
  DefaultSavePlanner planner(options);
  StateDict sd = Dict({{"extra", Dict({{"rng", Value(SavedObject{"x"})}})}});
  ASSERT_TRUE(planner.SetUpPlanner(sd, std::nullopt, true).ok());
  absl::StatusOr<SavePlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  absl::StatusOr<WriteData> data = planner.ResolveData(plan->items[0]);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("'extra'"));
  EXPECT_THAT(data.status().message(), HasSubstr("saved object"));
}

TEST(EmptyStateDictLoadPlannerTest, BuildsTheNestedStateDict) {
  StateDict sd;  // None counts as empty
  EmptyStateDictLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, NestedCheckpoint(), true).ok());
  ASSERT_TRUE(sd.is_mapping());
  std::vector<std::string> top;
  for (const auto& entry : sd.entries()) top.push_back(entry.key);
  EXPECT_THAT(top, ElementsAre("model", "optim", "ema", "step"));
  const at::Tensor& w = TensorAt(*sd.FindEntry("model"), "w");
  EXPECT_EQ(w.sizes().vec(), (Shape{2, 3}));
  EXPECT_EQ(w.scalar_type(), c10::kDouble);
  const at::Tensor& exp_avg = TensorAt(*sd.FindEntry("optim")->FindEntry("state")->FindEntry("0"), "exp_avg");
  EXPECT_EQ(exp_avg.scalar_type(), c10::kBFloat16);
  const StateDict& ema = *sd.FindEntry("ema");
  ASSERT_TRUE(ema.is_list());
  ASSERT_EQ(ema.items().size(), 2u);
  const at::Tensor& ema1 = std::get<at::Tensor>(*ema.items()[1].leaf());
  EXPECT_EQ(ema1.dim(), 0);
  EXPECT_EQ(ema1.scalar_type(), c10::kInt);
  EXPECT_TRUE(sd.FindEntry("step")->is_leaf());

  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 5u);
  EXPECT_EQ(plan->items[4].type, LoadItemType::kByteIO);
  ASSERT_TRUE(planner.LoadBytes(plan->items[4], *SaveValueRecord(c10::IValue(int64_t{9}))).ok());
  EXPECT_EQ(std::get<c10::IValue>(*sd.FindEntry("step")->leaf()).toInt(), 9);
  absl::StatusOr<at::Tensor> view = planner.ResolveTensor(plan->items[0]);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->data_ptr(), w.data_ptr());
}

std::vector<std::string> PlannedKeys(const absl::flat_hash_set<std::string>& keys) {
  StateDict sd = Dict({});
  EmptyStateDictLoadPlanner planner(keys);
  EXPECT_TRUE(planner.SetUpPlanner(&sd, NestedCheckpoint(), true).ok());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> fqns;
  if (plan.ok()) {
    for (const ReadItem& item : plan->items) fqns.push_back(item.dest_index.fqn);
  }
  return fqns;
}

TEST(EmptyStateDictLoadPlannerTest, RespectsKeys) {
  EXPECT_THAT(PlannedKeys({"optim"}), ElementsAre("optim.state.0.exp_avg"));
  EXPECT_THAT(PlannedKeys({"ema.1", "step"}), ElementsAre("ema.1", "step"));
  EXPECT_THAT(PlannedKeys({"ema"}), ElementsAre("ema.0", "ema.1"));
  EXPECT_THAT(PlannedKeys({"model.w"}), ElementsAre("model.w"));
  EXPECT_TRUE(PlannedKeys({"nothing"}).empty());
}

TEST(EmptyStateDictLoadPlannerTest, PartOfAListLeavesNonePadding) {
  StateDict sd = Dict({});
  EmptyStateDictLoadPlanner planner(absl::flat_hash_set<std::string>{"ema.1"});
  ASSERT_TRUE(planner.SetUpPlanner(&sd, NestedCheckpoint(), true).ok());
  const StateDict& ema = *sd.FindEntry("ema");
  ASSERT_EQ(ema.items().size(), 2u);
  EXPECT_TRUE(ema.items()[0].is_none());
  EXPECT_TRUE(ema.items()[1].is_leaf());
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->items.size(), 1u);
  EXPECT_EQ(plan->items[0].dest_index.fqn, "ema.1");
}

TEST(EmptyStateDictLoadPlannerTest, Errors) {
  StateDict full = Dict({{"x", Value(c10::IValue(1))}});
  EmptyStateDictLoadPlanner planner;
  EXPECT_EQ(planner.SetUpPlanner(&full, NestedCheckpoint(), true).code(), absl::StatusCode::kInvalidArgument);

  Metadata md = OneTensorMetadata("u", {2}, {{{0}, {2}}});
  std::get<TensorStorageMetadata>(*md.state_dict_metadata.Find("u")).properties.dtype = DType::kUInt16;
  StateDict sd = Dict({});
  absl::Status status = planner.SetUpPlanner(&sd, md, true);
#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
  EXPECT_TRUE(status.ok()) << status;  // LibTorch 2.x has uint16
#else
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("'u'"));
  EXPECT_THAT(status.message(), HasSubstr("uint16"));
#endif
}

TEST(EmptyStateDictLoadPlannerTest, WithoutPlannerDataUsesTopLevelKeys) {
  Metadata md = OneTensorMetadata("a.b", {2}, {{{0}, {2}}});
  StateDict sd = Dict({});
  EmptyStateDictLoadPlanner planner;
  ASSERT_TRUE(planner.SetUpPlanner(&sd, md, true).ok());
  ASSERT_EQ(sd.entries().size(), 1u);
  EXPECT_EQ(sd.entries()[0].key, "a.b");
  absl::StatusOr<LoadPlan> plan = planner.CreateLocalPlan();
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->items.size(), 1u);
}

}  // namespace
}  // namespace dcplan
