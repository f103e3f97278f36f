#ifndef DCPLAN_TOOLS_DCPLAN_SCENARIO_JSON_H_
#define DCPLAN_TOOLS_DCPLAN_SCENARIO_JSON_H_

// Planning scenarios (spec/plan-json.md) read from JSON into the engine's
// inputs. Every error is a usage error naming the JSON path of the bad value
// (see json_reader.h); nothing here plans.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/description.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "tools/dcplan/json_reader.h"

namespace dcplan::tools {

// "save" or "load": the scenario's `kind` field.
absl::StatusOr<std::string> ReadScenarioKind(const Json& root);

struct SaveScenario {
  SavePlannerOptions options;
  // One local plan per rank (index = rank), items in input order.
  std::vector<SavePlan> local_plans;
};

// Reads a save scenario. Each rank's local plan is made by the engine's
// CreateLocalSavePlan from descriptions of consecutive runs of its items, a new
// run starting whenever the next item could not be appended to the current
// description without reordering (its fqn is already there and it is not one
// more chunk of the last sharded tensor): the items come out in input order
// even when a rank interleaves keys or repeats one, which a single
// StateDictDescription (one value per key) cannot express.
absl::StatusOr<SaveScenario> ParseSaveScenario(const Json& root);

// One rank's load request and where each destination came from.
struct RankLoadRequest {
  // Keys in first-appearance order; the shard items of one fqn become one
  // ShardedTensor's local chunks in input order.
  StateDictDescription description;
  // (fqn, destination index hint) -> position of the item in the rank's
  // input list; bytes requests use hint -1 (their read item has no hint). The
  // engine emits reads key by key; this restores the input order.
  absl::flat_hash_map<std::pair<std::string, int64_t>, size_t> input_position;
};

struct LoadScenario {
  LoadPlannerOptions options;
  Metadata metadata;  // state_dict_metadata only
  std::vector<RankLoadRequest> ranks;  // index = rank
};

// Reads a load scenario. A rank may not request one fqn twice (except as
// several shard items of equal size and dtype) nor as two types: a
// description holds one value per key.
absl::StatusOr<LoadScenario> ParseLoadScenario(const Json& root);

// Reads a metadata object (the save result's `metadata`, spec/plan-json.md):
// fqn -> {"type": "tensor", "dtype", "size", "chunks": [{"offsets",
// "sizes"}]} | {"type": "bytes"}.
absl::StatusOr<StateDictMetadata> ParseStateDictMetadata(const Json& value, const JsonPath& path);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_SCENARIO_JSON_H_
