#include "tools/dcplan/plan_command.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/dedup.h"
#include "engine/load_planner.h"
#include "engine/save_planner.h"
#include "tools/dcplan/json_reader.h"
#include "tools/dcplan/result_json.h"
#include "tools/dcplan/scenario_json.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

constexpr absl::string_view kPrefix = "dcplan plan: ";

int Fail(absl::string_view message, std::string* stderr_text) {
  absl::StrAppend(stderr_text, kPrefix, message, "\n");
  return kPlanUsageError;
}

int RunSave(const Json& root, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<SaveScenario> scenario = ParseSaveScenario(root);
  if (!scenario.ok()) return Fail(scenario.status().message(), stderr_text);
  SavePlanTimings timings;
  absl::StatusOr<GlobalSavePlan> result =
      CreateGlobalSavePlan(std::move(scenario->local_plans), scenario->options, &timings);
  if (!result.ok()) return Fail(absl::StrCat("cannot plan: ", result.status().message()), stderr_text);
  absl::StatusOr<std::vector<int64_t>> per_rank_bytes = PlanBytes(result->plans);
  if (!per_rank_bytes.ok()) {
    return Fail(absl::StrCat("cannot count bytes: ", per_rank_bytes.status().message()), stderr_text);
  }
  stdout_text->append(FormatJson(SaveResultToJson(*result, *per_rank_bytes, timings)));
  return result->valid() ? kPlanOk : kPlanFindings;
}

// Puts the engine's read items (key by key) back in the order the rank listed
// its destinations; reads of one destination keep their relative order.
void RestoreInputOrder(const RankLoadRequest& request, LoadPlan* plan) {
  std::vector<std::pair<size_t, ReadItem>> keyed;
  keyed.reserve(plan->items.size());
  for (ReadItem& item : plan->items) {
    const int64_t hint =
        item.type == LoadItemType::kByteIO ? -1 : item.dest_index.index.value_or(0);
    const auto it = request.input_position.find(std::make_pair(item.dest_index.fqn, hint));
    const size_t position = it == request.input_position.end() ? request.input_position.size() : it->second;
    keyed.emplace_back(position, std::move(item));
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  plan->items.clear();
  for (auto& [position, item] : keyed) plan->items.push_back(std::move(item));
}

int RunLoad(const Json& root, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<LoadScenario> scenario = ParseLoadScenario(root);
  if (!scenario.ok()) return Fail(scenario.status().message(), stderr_text);
  std::vector<LoadPlan> plans;
  std::vector<LoadPlanError> errors;
  plans.reserve(scenario->ranks.size());
  std::chrono::steady_clock::duration planning{};
  for (size_t rank = 0; rank < scenario->ranks.size(); ++rank) {
    const auto start = std::chrono::steady_clock::now();
    LocalLoadPlan local = CreateLocalLoadPlan(scenario->ranks[rank].description, scenario->metadata,
                                              scenario->options, static_cast<int64_t>(rank));
    planning += std::chrono::steady_clock::now() - start;
    RestoreInputOrder(scenario->ranks[rank], &local.plan);
    plans.push_back(std::move(local.plan));
    for (LoadPlanError& error : local.errors) errors.push_back(std::move(error));
  }
  const double planning_ms = std::chrono::duration<double, std::milli>(planning).count();
  stdout_text->append(FormatJson(LoadResultToJson(plans, errors, planning_ms)));
  return errors.empty() ? kPlanOk : kPlanFindings;
}

int RunPlanUnguarded(absl::string_view input_json, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<Json> root = ParseJsonText(input_json);
  if (!root.ok()) return Fail(root.status().message(), stderr_text);
  absl::StatusOr<std::string> kind = ReadScenarioKind(*root);
  if (!kind.ok()) return Fail(kind.status().message(), stderr_text);
  UnknownFieldWarnings unknown_fields;
  const int status =
      *kind == "save" ? RunSave(*root, stdout_text, stderr_text) : RunLoad(*root, stdout_text, stderr_text);
  for (const std::string& warning : unknown_fields.warnings()) absl::StrAppend(stderr_text, kPrefix, warning, "\n");
  return status;
}

}  // namespace

int RunPlan(absl::string_view input_json, std::string* stdout_text, std::string* stderr_text) {
  // The readers never throw; this only keeps an allocation failure from
  // ending the process with an uncaught exception.
  try {
    return RunPlanUnguarded(input_json, stdout_text, stderr_text);
  } catch (const std::exception& e) {
    stdout_text->clear();
    return Fail(absl::StrCat("internal error: ", e.what()), stderr_text);
  }
}

int PlanMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    stdout_text->append(PlanHelp());
    return kPlanOk;
  }
  if (args.size() > 1 || (args.size() == 1 && args[0].size() > 1 && args[0][0] == '-')) {
    return Fail("usage: dcplan plan [FILE | -]   (see `dcplan help plan`)", stderr_text);
  }
  std::string input;
  if (args.empty() || args[0] == "-") {
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) return Fail("cannot read standard input", stderr_text);
  } else {
    const std::string path = ResolveUserPath(args[0]);
    std::ifstream file(path, std::ios::binary);
    if (!file) return Fail(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)), stderr_text);
    input.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (file.bad()) return Fail(absl::StrCat("cannot read ", path), stderr_text);
  }
  return RunPlan(input, stdout_text, stderr_text);
}

std::string PlanHelp() {
  return R"(usage: dcplan plan [FILE | -]

Reads a planning scenario (JSON, spec/plan-json.md) from FILE, or from standard
input when FILE is "-" or absent, plans it with dcplan's engine and prints the
result as JSON on standard output.

Save scenario: {"kind": "save", "options": {...}, "ranks": [{"rank": 0, "items": [...]}, ...]}
  items: {"fqn", "type": "shard", "size", "offsets", "lengths", "dtype"}
         {"fqn", "type": "tensor", "size", "dtype"}        (replicated whole tensor)
         {"fqn", "type": "bytes", "bytes"?}                 (opaque value, size in bytes)
  options (all optional): "dedup": "pytorch" (default) | "balanced" | "lowest_rank",
         "dedup_save_to_lowest_rank": false (true overrides "dedup"),
         "rewrite_index_hints": true
  result: {"valid", "problems", "plans", "metadata", "balance", "timings_ms"}
  Plans keep each rank's items in input order, minus the deduplicated ones.

Load scenario: {"kind": "load", "options": {"strict": true}, "metadata": {...},
                "ranks": [{"rank": 0, "items": [...]}, ...]}
  metadata: as printed by a save ("fqn": {"type": "tensor", "dtype", "size",
         "chunks": [{"offsets", "sizes"}]} or {"type": "bytes"})
  items: as for a save; "dtype" is optional; a rank may repeat an fqn only as
         several shard items of one size.
  result: {"plans", "errors", "timings_ms"}; read items follow the input order
         of their destinations.

Every integer must be a JSON integer that fits in int64. Unknown fields are
ignored with a warning on stderr. "timings_ms" covers the planning alone (no
JSON parsing or printing).

Output layout: JSON, keys in the order of spec/plan-json.md; an array or object
is printed on one line when it fits in 100 columns, else one element per line,
indented by 2 spaces. Problems and errors may end with a "message" field.

Exit status:
  0  save: the global plan is valid; load: no errors
  1  save: problems were found; load: errors were found (the result is printed)
  2  usage error: invalid JSON ("invalid JSON at byte N: ...") or a bad value,
     reported as one line on standard error naming its JSON path, e.g.
     "ranks[3].items[17].lengths[1]: must not be negative, got -1"
)";
}

}  // namespace dcplan::tools
