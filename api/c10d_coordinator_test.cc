#include "api/c10d_coordinator.h"

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// Only for the null ProcessGroup pointer of one test.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/internal/c10d_test_ranks.h"
#include "api/internal/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using internal::RankReport;

// Success paths must never hit a timeout, even on a loaded machine.
constexpr absl::Duration kGenerous = absl::Seconds(120);
// The parent kills ranks that are still running after this.
constexpr absl::Duration kProcessDeadline = absl::Seconds(150);

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct RankRun {
  int64_t rank = 0;
  internal::ProcessOutcome outcome;
  RankReport report;
};

// Starts `ranks` (all of 0..world_size-1 by default) of the test binary as
// separate processes running `scenario`, on a fresh loopback port; every
// process must exit cleanly with a readable report (checked here).
// A rank listed in `killed` must instead die of SIGKILL (its report is not read).
std::vector<RankRun> RunRanks(const std::string& scenario, int64_t world_size, absl::Duration timeout,
                              std::optional<std::vector<int64_t>> ranks = std::nullopt,
                              std::optional<int64_t> killed = std::nullopt) {
  if (!ranks.has_value()) {
    ranks.emplace();
    for (int64_t r = 0; r < world_size; ++r) ranks->push_back(r);
  }
  absl::StatusOr<std::string> self = internal::CurrentExecutable();
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  if (!self.ok() || !port.ok()) {
    ADD_FAILURE() << "cannot start ranks: " << self.status() << " " << port.status();
    return {};
  }
  const std::string start_dir = absl::StrCat(TempDir(), "/", scenario, "_", *port, "_start");
  std::filesystem::remove_all(start_dir);
  std::filesystem::create_directories(start_dir);
  std::vector<internal::ProcessSpec> specs;
  std::vector<std::string> report_paths;
  for (int64_t rank : *ranks) {
    const std::string stem = absl::StrCat(TempDir(), "/", scenario, "_", *port, "_rank", rank);
    report_paths.push_back(stem + ".report");
    std::remove(report_paths.back().c_str());
    internal::ProcessSpec spec{{*self}, internal::LoopbackRankEnv(rank, world_size, *port), stem + ".log"};
    spec.env.insert(spec.env.end(),
                    {{internal::kRankScenarioEnv, scenario},
                     {internal::kRankReportEnv, report_paths.back()},
                     {internal::kRankTimeoutMsEnv, absl::StrCat(absl::ToInt64Milliseconds(timeout))},
                     {internal::kRankStartDirEnv, start_dir},
                     {internal::kRankStartedEnv, absl::StrCat(ranks->size())}});
    specs.push_back(std::move(spec));
  }
  absl::StatusOr<std::vector<internal::ProcessOutcome>> outcomes = internal::RunProcesses(specs, kProcessDeadline);
  if (!outcomes.ok()) {
    ADD_FAILURE() << outcomes.status();
    return {};
  }
  std::vector<RankRun> runs;
  for (size_t i = 0; i < specs.size(); ++i) {
    RankRun run{(*ranks)[i], (*outcomes)[i], {}};
    const std::string log = ReadFile(specs[i].output_path);
    if (killed == run.rank) {
      EXPECT_EQ(run.outcome.signal, SIGKILL) << "rank " << run.rank << ": " << internal::ToString(run.outcome);
      runs.push_back(std::move(run));
      continue;
    }
    EXPECT_TRUE(run.outcome.Succeeded()) << "rank " << run.rank << ": " << internal::ToString(run.outcome)
                                         << "\nits output:\n" << log;
    absl::StatusOr<RankReport> report = internal::ParseRankReport(ReadFile(report_paths[i]));
    EXPECT_TRUE(report.ok()) << "rank " << run.rank << ": " << report.status();
    if (report.ok()) run.report = std::move(*report);
    EXPECT_EQ(run.report.statuses.count("scenario"), 1u) << "rank " << run.rank << " wrote no verdict; output:\n" << log;
    runs.push_back(std::move(run));
  }
  return runs;
}

absl::Status StatusOf(const RankRun& run, const std::string& name) {
  auto it = run.report.statuses.find(name);
  if (it == run.report.statuses.end()) return absl::NotFoundError(absl::StrCat("no status '", name, "' reported"));
  return it->second;
}

int64_t CounterOf(const RankRun& run, const std::string& name) {
  auto it = run.report.counters.find(name);
  EXPECT_NE(it, run.report.counters.end()) << "rank " << run.rank << " reported no counter " << name;
  return it == run.report.counters.end() ? -1 : it->second;
}

// --- Collectives across processes ----------------------------------------------------

void ExpectCollectivesWork(int64_t world_size) {
  std::vector<RankRun> runs = RunRanks("collectives", world_size, kGenerous);
  ASSERT_EQ(runs.size(), static_cast<size_t>(world_size));
  int64_t sent = 0;
  int64_t received = 0;
  for (const RankRun& run : runs) {
    EXPECT_TRUE(StatusOf(run, "scenario").ok()) << "rank " << run.rank << ": " << StatusOf(run, "scenario");
    sent += CounterOf(run, "bytes_sent");
    received += CounterOf(run, "bytes_received");
  }
  // Every byte one rank sends, another receives.
  EXPECT_EQ(sent, received);
  EXPECT_GT(sent, 0);
}

TEST(C10dCoordinatorProcessesTest, CollectivesOnTwoRanks) { ExpectCollectivesWork(2); }
TEST(C10dCoordinatorProcessesTest, CollectivesOnThreeRanks) { ExpectCollectivesWork(3); }
TEST(C10dCoordinatorProcessesTest, CollectivesOnFourRanks) { ExpectCollectivesWork(4); }

TEST(C10dCoordinatorProcessesTest, CountsTrafficOfEachRank) {
  std::vector<RankRun> runs = RunRanks("traffic", 3, kGenerous);
  ASSERT_EQ(runs.size(), 3u);
  for (const RankRun& run : runs) ASSERT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
  // Six collectives, each opening with a 32-byte header sent to and received
  // from 2 peers: 6 * 64 = 384 each way on every rank. Payloads:
  //   broadcast of 10 bytes: rank 0 sends 2 * 10, ranks 1 and 2 receive 10;
  //   broadcast of 0 bytes: nothing;
  //   gather of sizes 5, 0, 3 (padded to 5): ranks 1, 2 send 5, rank 0 receives 10;
  //   all-gather of sizes 1, 2, 3 (padded to 3): everyone sends and receives 2 * 3;
  //   scatter of sizes 1, 3, 0 (8-byte length + 3 = 11 per chunk): rank 0 sends
  //   2 * 11, ranks 1 and 2 receive 11;
  //   barrier: nothing.
  EXPECT_EQ(CounterOf(runs[0], "bytes_sent"), 384 + 20 + 6 + 22);
  EXPECT_EQ(CounterOf(runs[0], "bytes_received"), 384 + 10 + 6);
  for (int r = 1; r < 3; ++r) {
    EXPECT_EQ(CounterOf(runs[r], "bytes_sent"), 384 + 5 + 6) << "rank " << r;
    EXPECT_EQ(CounterOf(runs[r], "bytes_received"), 384 + 10 + 6 + 11) << "rank " << r;
  }
}

TEST(C10dCoordinatorProcessesTest, DisagreementsFailEveryRankAndLeaveTheGroupUsable) {
  std::vector<RankRun> runs = RunRanks("disagreement", 3, kGenerous);
  ASSERT_EQ(runs.size(), 3u);
  for (const RankRun& run : runs) {
    SCOPED_TRACE(absl::StrCat("rank ", run.rank));
    EXPECT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
    const absl::Status wrong_length = StatusOf(run, "scatter_wrong_length");
    EXPECT_EQ(wrong_length.code(), absl::StatusCode::kInvalidArgument) << wrong_length;
    EXPECT_THAT(std::string(wrong_length.message()), HasSubstr("passed 2 values for 3 ranks"));
    const absl::Status mismatch = StatusOf(run, "mismatch");
    EXPECT_EQ(mismatch.code(), absl::StatusCode::kFailedPrecondition) << mismatch;
    EXPECT_THAT(std::string(mismatch.message()), HasSubstr("rank 1 called 'broadcast'"));
    EXPECT_THAT(std::string(mismatch.message()), HasSubstr("rank 0 called 'gather'"));
    EXPECT_EQ(mismatch, StatusOf(runs[0], "mismatch"));
    EXPECT_TRUE(StatusOf(run, "after").ok()) << StatusOf(run, "after");
  }
}

// --- StepRunner across processes -------------------------------------------------------

TEST(C10dCoordinatorProcessesTest, StepRunnerSharesOneFailureOnEveryRank) {
  std::vector<RankRun> runs = RunRanks("steps", 4, kGenerous);
  ASSERT_EQ(runs.size(), 4u);
  // Ranks 1 and 3 fail their map; the code is the lowest failing rank's, and
  // rank 1's second line is indented under it (api/coordinator.h).
  const absl::Status want = absl::NotFoundError(
      "checkpoint step 'write' failed on 2 of 4 ranks:\n"
      "  rank 1: disk of rank 1 is missing\n"
      "    no such file\n"
      "  rank 3: read-only");
  for (const RankRun& run : runs) {
    SCOPED_TRACE(absl::StrCat("rank ", run.rank));
    EXPECT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
    EXPECT_TRUE(StatusOf(run, "reduce_scatter").ok()) << StatusOf(run, "reduce_scatter");
    EXPECT_TRUE(StatusOf(run, "all_reduce").ok()) << StatusOf(run, "all_reduce");
    EXPECT_TRUE(StatusOf(run, "all_gather").ok()) << StatusOf(run, "all_gather");
    EXPECT_EQ(StatusOf(run, "failing_step"), want);
    EXPECT_TRUE(StatusOf(run, "barrier_after").ok()) << StatusOf(run, "barrier_after");
  }
}

// --- Ranks that stall or never arrive ------------------------------------------------

TEST(C10dCoordinatorProcessesTest, ARankThatStallsTimesOutTheOthers) {
  constexpr absl::Duration kTimeout = absl::Seconds(3);
  std::vector<RankRun> runs = RunRanks("stalled", 3, kTimeout);
  ASSERT_EQ(runs.size(), 3u);
  for (const RankRun& run : runs) EXPECT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE(absl::StrCat("rank ", r));
    const absl::Status gather = StatusOf(runs[r], "gather");
    EXPECT_EQ(gather.code(), absl::StatusCode::kDeadlineExceeded) << gather;
    EXPECT_THAT(std::string(gather.message()), HasSubstr(absl::StrCat("collective 'gather' #1 on rank ", r, " of 3")));
    // It waited for the timeout, not much longer.
    EXPECT_GE(CounterOf(runs[r], "gather_ms"), 2500);
    EXPECT_LT(CounterOf(runs[r], "gather_ms"), 20000);
    // The group is broken from then on, without another wait.
    const absl::Status after = StatusOf(runs[r], "after");
    EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
    EXPECT_THAT(std::string(after.message()), HasSubstr("collective 'barrier' #2"));
    EXPECT_THAT(std::string(after.message()), HasSubstr("collective 'gather' #1"));
    // A stalled rank is alive: its heartbeat says so.
    EXPECT_THAT(std::string(gather.message()), HasSubstr("every rank's heartbeat is alive"));
  }
  EXPECT_FALSE(StatusOf(runs[2], "late").ok());
  EXPECT_NE(StatusOf(runs[2], "late").code(), absl::StatusCode::kNotFound) << "rank 2 reported no late barrier";
}

// Survivors fail soon after a peer dies, and say which rank died.
void ExpectDeadRankIsNamed(const std::string& scenario, int64_t victim, const std::string& named) {
  constexpr absl::Duration kTimeout = absl::Seconds(20);
  std::vector<RankRun> runs = RunRanks(scenario, 3, kTimeout, std::nullopt, victim);
  ASSERT_EQ(runs.size(), 3u);
  for (const RankRun& run : runs) {
    if (run.rank == victim) continue;
    SCOPED_TRACE(absl::StrCat("rank ", run.rank));
    EXPECT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
    const absl::Status gather = StatusOf(run, "gather");
    EXPECT_THAT(gather.code(), AnyOf(absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable)) << gather;
    EXPECT_THAT(std::string(gather.message()), HasSubstr(named));
    EXPECT_THAT(std::string(gather.message()), HasSubstr("presumably dead"));
    // Within the timeout plus the 2.5 s heartbeat comparison.
    EXPECT_LT(CounterOf(run, "gather_ms"), absl::ToInt64Milliseconds(kTimeout + absl::Seconds(10)));
  }
}

TEST(C10dCoordinatorProcessesTest, AKilledRankIsNamedByTheSurvivors) {
  ExpectDeadRankIsNamed("killed_last", 2, "rank 2 stopped responding");
}

TEST(C10dCoordinatorProcessesTest, AKilledStoreServerIsNamedByTheSurvivors) {
  ExpectDeadRankIsNamed("killed_first", 0, "(served by rank 0) is unreachable");
}

void ExpectRendezvousFails(int64_t world_size, const std::vector<int64_t>& started) {
  constexpr absl::Duration kTimeout = absl::Seconds(3);
  const absl::Time start = absl::Now();
  std::vector<RankRun> runs = RunRanks("rendezvous", world_size, kTimeout, started);
  ASSERT_EQ(runs.size(), started.size());
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  for (const RankRun& run : runs) {
    SCOPED_TRACE(absl::StrCat("rank ", run.rank));
    EXPECT_TRUE(StatusOf(run, "scenario").ok()) << StatusOf(run, "scenario");
    const absl::Status connect = StatusOf(run, "connect");
    EXPECT_THAT(connect.code(), AnyOf(absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable))
        << connect;
    EXPECT_THAT(std::string(connect.message()), HasSubstr(absl::StrCat("rank ", run.rank, " of ", world_size)));
    EXPECT_LT(CounterOf(run, "connect_ms"), 30000);
  }
}

TEST(C10dCoordinatorProcessesTest, RendezvousFailsWhenARankNeverArrives) { ExpectRendezvousFails(4, {0, 1, 2}); }

TEST(C10dCoordinatorProcessesTest, RendezvousFailsWhenTheCoordinatorNeverArrives) {
  ExpectRendezvousFails(3, {1, 2});
}

// --- In one process -------------------------------------------------------------------

TEST(C10dCoordinatorTest, OneRankGroupRunsEveryCollectiveLocally) {
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  C10dOptions options;
  options.port = *port;
  options.rank = 0;
  options.world_size = 1;
  options.timeout = kGenerous;
  absl::StatusOr<std::unique_ptr<C10dCoordinator>> connected = ConnectC10d(options);
  ASSERT_TRUE(connected.ok()) << connected.status();
  C10dCoordinator& c = **connected;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.world_size(), 1);
  const std::string big(int64_t{4} << 20, 'q');
  EXPECT_EQ(c.Gather(big).value(), std::vector<std::string>{big});
  EXPECT_EQ(c.Scatter({"s"}).value(), "s");
  absl::StatusOr<std::string> wrong = c.Scatter({});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("passed 0 values for 1 ranks"));
  EXPECT_EQ(c.Broadcast("b").value(), "b");
  EXPECT_EQ(c.AllGather("").value(), std::vector<std::string>{""});
  EXPECT_TRUE(c.Barrier().ok());
  // No peers, so nothing travels.
  EXPECT_EQ(c.bytes_sent(), 0);
  EXPECT_EQ(c.bytes_received(), 0);
}

TEST(C10dCoordinatorTest, ACoordinatorServesOneThreadAtATime) {
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  std::vector<absl::StatusOr<std::unique_ptr<C10dCoordinator>>> ranks(2);
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&ranks, &port, r] {
        C10dOptions options;
        options.port = *port;
        options.rank = r;
        options.world_size = 2;
        options.timeout = kGenerous;
        ranks[r] = ConnectC10d(options);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const auto& rank : ranks) ASSERT_TRUE(rank.ok()) << rank.status();
  // Two threads enter gather on rank 0 at once; rank 1 joins a second later.
  // Whichever thread comes second must be turned away rather than queued.
  std::vector<absl::StatusOr<std::vector<std::string>>> results(2);
  std::vector<std::thread> callers;
  for (int i = 0; i < 2; ++i) {
    callers.emplace_back([&results, &ranks, i] { results[i] = ranks[0].value()->Gather(absl::StrCat("t", i)); });
  }
  absl::SleepFor(absl::Seconds(1));
  absl::StatusOr<std::vector<std::string>> on_rank_one = ranks[1].value()->Gather("one");
  for (std::thread& t : callers) t.join();
  EXPECT_TRUE(on_rank_one.ok()) << on_rank_one.status();
  const int winner = results[0].ok() ? 0 : 1;
  const int loser = 1 - winner;
  ASSERT_TRUE(results[winner].ok()) << results[winner].status();
  EXPECT_EQ(*results[winner], (std::vector<std::string>{absl::StrCat("t", winner), "one"}));
  EXPECT_EQ(results[loser].status().code(), absl::StatusCode::kFailedPrecondition) << results[loser].status();
  EXPECT_THAT(std::string(results[loser].status().message()), HasSubstr("one thread at a time"));
}

TEST(C10dCoordinatorTest, WithoutAProcessGroupEveryCollectiveFails) {
  C10dCoordinator c(c10::intrusive_ptr<c10d::ProcessGroup>(), absl::Seconds(1));
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.world_size(), 1);
  EXPECT_EQ(c.Gather("g").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.Scatter({"s"}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.Broadcast("b").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.AllGather("a").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.Barrier().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ConnectC10dTest, RejectsInvalidOptionsWithoutConnecting) {
  auto expect_invalid = [](C10dOptions options, const std::string& fragment) {
    absl::StatusOr<std::unique_ptr<C10dCoordinator>> connected = ConnectC10d(options);
    EXPECT_EQ(connected.status().code(), absl::StatusCode::kInvalidArgument) << fragment;
    EXPECT_THAT(std::string(connected.status().message()), HasSubstr(fragment));
  };
  C10dOptions valid;
  valid.rank = 0;
  valid.world_size = 2;
  C10dOptions options = valid;
  options.world_size = 0;
  expect_invalid(options, "world_size");
  options = valid;
  options.rank = 2;
  expect_invalid(options, "rank 2 is outside [0, 2)");
  options = valid;
  options.rank = -1;
  expect_invalid(options, "rank -1");
  options = valid;
  options.port = 0;
  expect_invalid(options, "port 0");
  options = valid;
  options.port = 65536;
  expect_invalid(options, "port 65536");
  options = valid;
  options.master_addr = "";
  expect_invalid(options, "master_addr");
  options = valid;
  options.timeout = absl::ZeroDuration();
  expect_invalid(options, "timeout");
}

// --- C10dOptionsFromEnv ---------------------------------------------------------------

class OptionsFromEnvTest : public ::testing::Test {
 protected:
  static constexpr const char* kNames[] = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};

  void SetUp() override {
    for (const char* name : kNames) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value == nullptr ? std::nullopt : std::optional<std::string>(value));
    }
    SetValid();
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value.has_value()) {
        Set(name, *value);
      } else {
        Unset(name);
      }
    }
  }
  static void SetValid() {
    Set("RANK", "2");
    Set("WORLD_SIZE", "4");
    Set("MASTER_ADDR", "10.1.2.3");
    Set("MASTER_PORT", "1234");
  }
  static void Set(const std::string& name, const std::string& value) { setenv(name.c_str(), value.c_str(), 1); }
  static void Unset(const std::string& name) { unsetenv(name.c_str()); }

  static void ExpectInvalid(const std::string& fragment) {
    absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument) << fragment;
    EXPECT_THAT(std::string(options.status().message()), HasSubstr(fragment));
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(OptionsFromEnvTest, ReadsTheLauncherVariables) {
  absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->rank, 2);
  EXPECT_EQ(options->world_size, 4);
  EXPECT_EQ(options->master_addr, "10.1.2.3");
  EXPECT_EQ(options->port, 1234);
  EXPECT_EQ(options->timeout, absl::Seconds(60));
  EXPECT_EQ(options->local_addr, "");
}

TEST_F(OptionsFromEnvTest, NamesAMissingVariable) {
  for (const char* name : kNames) {
    SetValid();
    Unset(name);
    ExpectInvalid(absl::StrCat("environment variable ", name, " is not set"));
    Set(name, "");
    ExpectInvalid(absl::StrCat("environment variable ", name, " is not set"));
  }
}

TEST_F(OptionsFromEnvTest, NamesAMalformedVariable) {
  Set("RANK", "two");
  ExpectInvalid("RANK='two' is not an integer");
  SetValid();
  Set("WORLD_SIZE", "4x");
  ExpectInvalid("WORLD_SIZE='4x' is not an integer");
  SetValid();
  Set("MASTER_PORT", "http");
  ExpectInvalid("MASTER_PORT='http' is not an integer");
}

TEST_F(OptionsFromEnvTest, NamesAVariableOutOfRange) {
  Set("RANK", "4");
  ExpectInvalid("RANK=4 is outside [0, WORLD_SIZE=4)");
  Set("RANK", "-1");
  ExpectInvalid("RANK=-1 is outside [0, WORLD_SIZE=4)");
  SetValid();
  Set("WORLD_SIZE", "0");
  ExpectInvalid("WORLD_SIZE=0 is below 1");
  SetValid();
  Set("MASTER_PORT", "0");
  ExpectInvalid("MASTER_PORT=0 is outside [1, 65535]");
  Set("MASTER_PORT", "65536");
  ExpectInvalid("MASTER_PORT=65536 is outside [1, 65535]");
}

// --- Rank reports (the test harness's own plumbing) -----------------------------------

TEST(RankReportTest, RoundTripsStatusesWithNewlinesAndCounters) {
  RankReport report;
  report.statuses["a"] = absl::NotFoundError("line one\n\tline two \"quoted\"");
  report.statuses["ok"] = absl::OkStatus();
  report.counters["bytes"] = -7;
  absl::StatusOr<RankReport> parsed = internal::ParseRankReport(internal::SerializeRankReport(report));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->statuses, report.statuses);
  EXPECT_EQ(parsed->counters, report.counters);
  EXPECT_FALSE(internal::ParseRankReport("status\tx\n").ok());
}

}  // namespace
}  // namespace dcplan

// A rank process (started by RunRanks) runs its scenario instead of the tests.
int main(int argc, char** argv) {
  if (std::getenv(dcplan::internal::kRankScenarioEnv) != nullptr) return dcplan::internal::RunRankScenario();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
