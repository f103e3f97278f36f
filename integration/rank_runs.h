#ifndef DCPLAN_INTEGRATION_RANK_RUNS_H_
#define DCPLAN_INTEGRATION_RANK_RUNS_H_

// The harness of the multi-process tests: a test binary re-executes itself
// once per rank (c10d over 127.0.0.1 on a free port); a rank is told its
// scenario, checkpoint directory, timeout and the fault rank by environment
// variables, runs the scenario and writes a report file ("OK" or the status
// on the first line, then "name value" counters) that the parent checks.
//
//   int main(int argc, char** argv) {
//     return dcplan::integration::RankOrTestMain(argc, argv, RunScenario);
//   }

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/c10d_coordinator.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "tools/dcplan/demo_model.h"
#include "api/internal/subprocess.h"

namespace dcplan::integration {

// --- The rank side -------------------------------------------------------------

struct RankResult {
  absl::Status status;
  std::vector<std::pair<std::string, int64_t>> counters;
};

// What a rank runs: the scenario's name, the coordinator ConnectC10d made
// and the options it was made with (to connect more groups).
using Scenario = std::function<RankResult(const std::string& name, C10dCoordinator& coordinator,
                                          const C10dOptions& options)>;

// True in a rank process (the scenario variable is set).
bool IsRankProcess();
// Connects from the environment, runs the scenario, writes the report.
// Returns the process exit code.
int RankMain(const Scenario& scenario);
// The main of a multi-process test binary: RankMain(scenario) in a rank
// process, else the tests.
int RankOrTestMain(int argc, char** argv, const Scenario& scenario);
// The checkpoint directory of this run, and whether `rank` is the fault rank.
std::string RankDir();
bool IsFaultRank(int64_t rank);

// A FileSystemWriter that kills its own process (SIGKILL, no cleanup) in the
// middle of its data file: at the first item asked for after more than the
// file writer's 8 MiB buffer was handed out (or at the last item).
class SelfKillingWriter : public FileSystemWriter {
 public:
  using FileSystemWriter::FileSystemWriter;
  absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) override;
};

// Adds two 10 MiB tensors (that only the caller's rank holds) to a mapping,
// so that its data file outgrows the file writer's buffer.
void AddFaultPadding(StateDict& state);

// Loads `dir` into this rank's part of the demo model (resharded to the
// coordinator's world) and checks every element bitwise.
absl::Status LoadAndVerifyDemoModel(const tools::DemoModel& model, const std::string& dir, Coordinator& coordinator);

// --- The parent side -------------------------------------------------------------

struct RankRun {
  internal::ProcessOutcome outcome;
  std::string status_line;  // "OK", an error, or "" without a report
  std::vector<std::pair<std::string, int64_t>> counters;
  std::string output;
};

std::string ReadFile(const std::string& path);
// An empty directory `name` under the test's temporary directory.
std::string FreshDir(const std::string& name);

// Runs `scenario` on world_size rank processes; ranks still running
// timeout + 30 s later are killed.
std::vector<RankRun> RunRanks(const std::string& scenario, int64_t world_size, const std::string& dir,
                              absl::Duration timeout, const std::string& fault_rank = "");

void ExpectAllOk(const std::vector<RankRun>& runs, const std::string& what);

// Every rank ran to its end (no crash, no hang) and reported a failure
// holding each of `texts`.
void ExpectEveryRankFailedWith(const std::vector<RankRun>& runs, const std::vector<std::string>& texts);

// `killed` died of SIGKILL; every other rank failed within the timeout (not
// hung) with a transport error naming `killed` as stopped responding.
void ExpectSurvivorsNameKilledRank(const std::vector<RankRun>& runs, int64_t killed);

}  // namespace dcplan::integration

#endif  // DCPLAN_INTEGRATION_RANK_RUNS_H_
