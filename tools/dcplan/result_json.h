#ifndef DCPLAN_TOOLS_DCPLAN_RESULT_JSON_H_
#define DCPLAN_TOOLS_DCPLAN_RESULT_JSON_H_

// Planning results as the JSON documents of spec/plan-json.md, keys in the
// spec's order, and the tool's text layout for them.

#include <cstdint>
#include <string>
#include <vector>

#include "engine/load_planner.h"
#include "engine/plan.h"
#include "engine/problem.h"
#include "engine/save_planner.h"
#include "tools/dcplan/json_reader.h"

namespace dcplan::tools {

// {"valid", "problems", "plans", "metadata", "balance", "timings_ms"}.
// `per_rank_bytes` is PlanBytes(result.plans); the total is its sum
// (saturated at INT64_MAX, which only absurd inputs reach).
Json SaveResultToJson(const GlobalSavePlan& result, const std::vector<int64_t>& per_rank_bytes,
                      const SavePlanTimings& timings);

// {"fqn", "kind", then "chunks" | "expected", "actual" | "offsets", then
// "message"}.
Json ProblemToJson(const PlanProblem& problem);

// The save result's `metadata` object: fqn -> {"type": "tensor", "dtype",
// "size", "chunks": [{"offsets", "sizes"}]} | {"type": "bytes"}.
Json StateDictMetadataToJson(const StateDictMetadata& metadata);

// {"plans", "errors", "timings_ms": {"local_plans"}}.
Json LoadResultToJson(const std::vector<LoadPlan>& plans, const std::vector<LoadPlanError>& errors,
                      double local_plans_ms);

// The tool's layout: an array or object is printed on one line (", " and
// ": " separators) when that line, indented, fits in 100 columns; otherwise
// one element per line, indented by 2 more spaces. Strings are escaped as
// JSON (invalid UTF-8 replaced by U+FFFD); ends with a newline.
std::string FormatJson(const Json& value);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_RESULT_JSON_H_
