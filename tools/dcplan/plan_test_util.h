#ifndef DCPLAN_TOOLS_DCPLAN_PLAN_TEST_UTIL_H_
#define DCPLAN_TOOLS_DCPLAN_PLAN_TEST_UTIL_H_

// Helpers shared by the `dcplan plan` tests: run a scenario in-process and
// read the example scenarios from the test's runfiles.

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tools/dcplan/json_reader.h"
#include "tools/dcplan/plan_command.h"

namespace dcplan::tools::testing {

struct PlanRun {
  int status = -1;
  std::string out;
  std::string err;
  Json result;  // `out` parsed (null when the run printed nothing)
};

inline PlanRun RunScenario(const std::string& input) {
  PlanRun run;
  run.status = RunPlan(input, &run.out, &run.err);
  if (!run.out.empty()) run.result = Json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  return run;
}

inline PlanRun RunScenario(const Json& input) { return RunScenario(input.dump()); }

// tools/examples/NAME, relative to the runfiles root the test starts in.
inline std::string ReadExample(const std::string& name) {
  std::ifstream file("tools/examples/" + name, std::ios::binary);
  EXPECT_TRUE(file.good()) << "cannot open tools/examples/" << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

inline Json ExampleJson(const std::string& name) {
  return Json::parse(ReadExample(name), nullptr, /*allow_exceptions=*/false);
}

}  // namespace dcplan::tools::testing

#endif  // DCPLAN_TOOLS_DCPLAN_PLAN_TEST_UTIL_H_
