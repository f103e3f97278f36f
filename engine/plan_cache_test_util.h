#ifndef DCPLAN_ENGINE_PLAN_CACHE_TEST_UTIL_H_
#define DCPLAN_ENGINE_PLAN_CACHE_TEST_UTIL_H_

// Test helpers of plan_cache_test: item and plan builders, and a Cluster that
// simulates N ranks and their coordinator in one process (one RankPlanCache
// per rank, one CoordinatorPlanCache).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/plan_cache.h"
#include "engine/save_planner.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace plan_cache_test {

inline WriteItem Tensor(const std::string& fqn, const Shape& shape, DType dtype = DType::kFloat32) {
  WriteItem item;
  item.index = MetadataIndex{fqn, Shape(shape.size(), 0), std::nullopt};
  item.type = WriteItemType::kTensor;
  TensorProperties properties;
  properties.dtype = dtype;
  item.tensor_data = TensorWriteData{ChunkBox{Shape(shape.size(), 0), shape}, properties, shape};
  return item;
}

inline WriteItem Shard(const std::string& fqn, const Shape& global, const Shape& offsets, const Shape& sizes,
                       DType dtype = DType::kFloat32) {
  WriteItem item;
  item.index = MetadataIndex{fqn, offsets, std::nullopt};
  item.type = WriteItemType::kShard;
  TensorProperties properties;
  properties.dtype = dtype;
  item.tensor_data = TensorWriteData{ChunkBox{offsets, sizes}, properties, global};
  return item;
}

inline WriteItem Bytes(const std::string& fqn, int64_t nbytes) {
  WriteItem item;
  item.index = MetadataIndex{fqn, std::nullopt, std::nullopt};
  item.type = WriteItemType::kByteIO;
  item.bytes_io_nbytes = nbytes;
  return item;
}

inline SavePlan Plan(std::vector<WriteItem> items) {
  SavePlan plan;
  plan.items = std::move(items);
  return plan;
}

// The same item as the global plan carries it: with its index hint.
inline WriteItem WithHint(WriteItem item, int64_t hint) {
  item.index.index = hint;
  return item;
}

inline SavePlannerOptions UnflattenedOptions(DedupPolicy dedup = DedupPolicy::kPyTorch) {
  SavePlannerOptions options;
  options.flatten_state_dict = false;
  options.dedup = dedup;
  return options;
}

inline std::vector<bool> UsableFlags(const std::vector<SavePlan>& plans) {
  std::vector<bool> flags;
  for (const SavePlan& plan : plans) flags.push_back(plan.usable);
  return flags;
}

inline std::vector<std::string> MetadataKeys(const Metadata& metadata) {
  std::vector<std::string> keys;
  for (const auto& entry : metadata.state_dict_metadata) keys.push_back(entry.first);
  return keys;
}

struct RoundOutcome {
  CacheRound round = CacheRound::kFromScratch;
  std::vector<SavePlan> sent;    // what each rank sent to the coordinator
  std::vector<SavePlan> deltas;  // what the coordinator sent back
  std::vector<SavePlan> finals;  // what each rank writes with
  Metadata metadata;
  std::vector<PlanProblem> problems;
};

// N ranks and their coordinator in one process.
struct Cluster {
  Cluster(size_t world, SavePlannerOptions planner_options) : options(planner_options) { Resize(world); }

  // Keeps the caches of ranks below `world`; new ranks start empty.
  void Resize(size_t world) {
    while (ranks.size() > world) ranks.pop_back();
    while (ranks.size() < world) ranks.emplace_back(static_cast<int64_t>(ranks.size()));
  }

  // One save round. An invalid global plan ends the round before FinishPlan
  // (nothing is sent to the ranks), like an error reported to every rank.
  absl::StatusOr<RoundOutcome> Save(const std::vector<SavePlan>& locals) {
    if (locals.size() != ranks.size()) return absl::InvalidArgumentError("test: wrong number of plans");
    RoundOutcome out;
    for (size_t r = 0; r < ranks.size(); ++r) {
      absl::StatusOr<SavePlan> to_send = ranks[r].PlanToSend(locals[r]);
      if (!to_send.ok()) return to_send.status();
      out.sent.push_back(*std::move(to_send));
    }
    absl::StatusOr<CachedGlobalPlan> result = coordinator.CreateGlobalPlan(out.sent, options);
    if (!result.ok()) return result.status();
    out.round = result->round;
    out.deltas = result->deltas;
    out.metadata = result->metadata;
    out.problems = result->problems;
    if (!result->valid()) return out;
    if (result->deltas.size() != ranks.size()) return absl::InternalError("test: wrong number of deltas");
    for (size_t r = 0; r < ranks.size(); ++r) {
      absl::StatusOr<SavePlan> final_plan = ranks[r].FinishPlan(result->deltas[r]);
      if (!final_plan.ok()) return final_plan.status();
      out.finals.push_back(*std::move(final_plan));
    }
    return out;
  }

  SavePlannerOptions options;
  std::vector<RankPlanCache> ranks;
  CoordinatorPlanCache coordinator;
};

inline GlobalSavePlan Scratch(const std::vector<SavePlan>& locals, const SavePlannerOptions& options) {
  absl::StatusOr<GlobalSavePlan> planned = CreateGlobalSavePlan(locals, options);
  EXPECT_TRUE(planned.ok()) << planned.status();
  return planned.ok() ? *std::move(planned) : GlobalSavePlan{};
}

}  // namespace plan_cache_test
}  // namespace dcplan

#endif  // DCPLAN_ENGINE_PLAN_CACHE_TEST_UTIL_H_
