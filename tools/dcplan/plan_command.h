#ifndef DCPLAN_TOOLS_DCPLAN_PLAN_COMMAND_H_
#define DCPLAN_TOOLS_DCPLAN_PLAN_COMMAND_H_

// `dcplan plan`: runs a planning scenario (spec/plan-json.md) through the
// engine and prints the result.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace dcplan::tools {

// Exit statuses of `dcplan plan` (spec/plan-json.md).
inline constexpr int kPlanOk = 0;          // save: plan valid; load: no errors
inline constexpr int kPlanFindings = 1;    // save: problems found; load: errors
inline constexpr int kPlanUsageError = 2;  // bad input (nothing planned)

// Plans the scenario `input_json` (a save or a load scenario) and returns the
// exit status. The result document goes to `stdout_text` (status 0 or 1); a
// usage error is one line on `stderr_text` naming the JSON path of the bad
// value (status 2). Never throws and never aborts, whatever the input.
int RunPlan(absl::string_view input_json, std::string* stdout_text, std::string* stderr_text);

// `dcplan plan [FILE | -]`, `args` being the words after "plan": reads the
// scenario from FILE, or from standard input for "-" or no FILE, then
// RunPlan. A relative FILE is resolved against $BUILD_WORKING_DIRECTORY when
// set (`bazel run` starts the tool in its runfiles directory). "--help"
// prints PlanHelp() and returns 0.
int PlanMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text);

// The text of `dcplan help plan`.
std::string PlanHelp();

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_PLAN_COMMAND_H_
