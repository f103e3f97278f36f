#ifndef DCPLAN_API_INTERNAL_C10D_TEST_RANKS_H_
#define DCPLAN_API_INTERNAL_C10D_TEST_RANKS_H_

// The rank side of api/c10d_coordinator_test: the test binary re-executes
// itself once per rank with these environment variables set (plus RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT); the rank runs one scenario and
// writes a RankReport that the parent checks.

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dcplan::internal {

inline constexpr char kRankScenarioEnv[] = "DCPLAN_C10D_TEST_SCENARIO";
inline constexpr char kRankReportEnv[] = "DCPLAN_C10D_TEST_REPORT";
inline constexpr char kRankTimeoutMsEnv[] = "DCPLAN_C10D_TEST_TIMEOUT_MS";
// Before connecting, each rank creates ready_<rank> in this (empty) directory
// and waits until kRankStartedEnv ranks have.
inline constexpr char kRankStartDirEnv[] = "DCPLAN_C10D_TEST_START_DIR";
inline constexpr char kRankStartedEnv[] = "DCPLAN_C10D_TEST_STARTED";

// Named outcomes and numbers of one rank's run.
struct RankReport {
  std::map<std::string, absl::Status> statuses;
  std::map<std::string, int64_t> counters;
};

// One line per entry; messages are C-escaped so they may hold newlines.
std::string SerializeRankReport(const RankReport& report);
absl::StatusOr<RankReport> ParseRankReport(const std::string& text);

// Runs the scenario named by kRankScenarioEnv and writes the report to the
// file named by kRankReportEnv; the report's "scenario" status is the
// scenario's own verdict (Internal with a description when a value was
// wrong). Returns the process exit code: 0 once the report is written.
//
// Scenarios (each connects with ConnectC10d from the environment, with the
// timeout of kRankTimeoutMsEnv):
//   collectives  50 rounds of gather, scatter, broadcast, all-gather and
//                barrier with variable-size payloads (empty up to 4 MiB),
//                checked on every rank; counters bytes_sent, bytes_received.
//   traffic      one fixed sequence on 3 ranks (see the .cc), counters as above.
//   disagreement statuses scatter_wrong_length (rank 0 passes 2 values),
//                mismatch (rank 1 broadcasts while the others gather),
//                after (an all-gather afterwards).
//   steps        StepRunner: reduce_scatter, all_reduce, all_gather succeed;
//                failing_step (ranks 1 and world_size-1 fail their map);
//                barrier_after.
//   stalled      the last rank sleeps through the others' gather: statuses
//                gather and after, counter gather_ms; the last rank's late
//                barrier is status late.
//   killed_last, killed_first
//                after a barrier the last rank (or rank 0, which serves the
//                TCPStore) kills itself; the others report status gather and
//                counter gather_ms.
//   rendezvous   status connect, counter connect_ms (for ranks that never
//                all arrive).
int RunRankScenario();

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_C10D_TEST_RANKS_H_
