#include "integration/rank_runs.h"

#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <variant>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kScenarioEnv[] = "DCPLAN_MP_SCENARIO";
constexpr char kDirEnv[] = "DCPLAN_MP_DIR";
constexpr char kReportEnv[] = "DCPLAN_MP_REPORT";
constexpr char kTimeoutMsEnv[] = "DCPLAN_MP_TIMEOUT_MS";
constexpr char kFaultRankEnv[] = "DCPLAN_MP_FAULT_RANK";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string TempDir() { return Env("TEST_TMPDIR").empty() ? "/tmp" : Env("TEST_TMPDIR"); }

// The file writer's buffer (api/internal/file_io.h): once more than this went
// to the writer, part of the data file is on disk.
constexpr int64_t kWriterBufferBytes = int64_t{8} << 20;

// Resolves through `inner` and dies as SelfKillingWriter says.
class KillingPlanner final : public SavePlanner {
 public:
  KillingPlanner(SavePlanner& inner, int64_t items) : inner_(inner), items_(items) {}
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    if (resolved_bytes_ > kWriterBufferBytes || ++resolved_ == items_) raise(SIGKILL);
    absl::StatusOr<WriteData> data = inner_.ResolveData(item);
    if (data.ok()) {
      const auto* tensor = std::get_if<at::Tensor>(&*data);
      resolved_bytes_ += tensor != nullptr ? tensor->nbytes() : std::get<std::string>(*data).size();
    }
    return data;
  }
  absl::Status SetUpPlanner(const StateDict& s, const std::optional<StorageMeta>& m, bool c) override {
    return inner_.SetUpPlanner(s, m, c);
  }
  absl::StatusOr<SavePlan> CreateLocalPlan() override { return inner_.CreateLocalPlan(); }
  absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> CreateGlobalPlan(
      const std::vector<SavePlan>& plans) override {
    return inner_.CreateGlobalPlan(plans);
  }
  absl::StatusOr<SavePlan> FinishPlan(const SavePlan& plan) override { return inner_.FinishPlan(plan); }

 private:
  SavePlanner& inner_;
  int64_t items_;
  int64_t resolved_ = 0;
  int64_t resolved_bytes_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<WriteResult>> SelfKillingWriter::WriteData(const SavePlan& plan, SavePlanner& planner) {
  KillingPlanner killer(planner, static_cast<int64_t>(plan.items.size()));
  return FileSystemWriter::WriteData(plan, killer);
}

void AddFaultPadding(StateDict& state) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const auto& entry : state.entries()) entries.push_back({entry.key, entry.value});
  entries.push_back({"fault_padding_a", Value(at::full({10 << 18}, 1.5f))});
  entries.push_back({"fault_padding_b", Value(at::full({10 << 18}, 2.5f))});
  state = Dict(std::move(entries));
}

absl::Status LoadAndVerifyDemoModel(const tools::DemoModel& model, const std::string& dir, Coordinator& coordinator) {
  const int64_t rank = coordinator.rank();
  const int64_t world = coordinator.world_size();
  absl::StatusOr<StateDict> state = tools::RankStateDict(model, rank, world, /*for_load=*/true);
  if (!state.ok()) return state.status();
  FileSystemReader reader(dir);
  absl::Status loaded = Load(*state, reader, coordinator);
  if (!loaded.ok()) return loaded;
  return tools::VerifyRankStateDict(model, *state, rank, world);
}

bool IsRankProcess() { return !Env(kScenarioEnv).empty(); }
std::string RankDir() { return Env(kDirEnv); }
bool IsFaultRank(int64_t rank) { return Env(kFaultRankEnv) == absl::StrCat(rank); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int RankMain(const Scenario& scenario) {
  RankResult result;
  absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
  int64_t timeout_ms = 0;
  if (!options.ok()) {
    result.status = options.status();
  } else {
    if (absl::SimpleAtoi(Env(kTimeoutMsEnv), &timeout_ms)) options->timeout = absl::Milliseconds(timeout_ms);
    absl::StatusOr<std::unique_ptr<C10dCoordinator>> coordinator = ConnectC10d(*options);
    result = coordinator.ok() ? scenario(Env(kScenarioEnv), **coordinator, *options)
                              : RankResult{coordinator.status(), {}};
  }
  std::ofstream report(Env(kReportEnv), std::ios::trunc);
  std::string status_line = result.status.ok() ? "OK" : result.status.ToString();
  std::replace(status_line.begin(), status_line.end(), '\n', ' ');
  report << status_line << "\n";
  for (const auto& [name, value] : result.counters) report << name << " " << value << "\n";
  report.close();
  return report.good() ? 0 : 3;
}

int RankOrTestMain(int argc, char** argv, const Scenario& scenario) {
  if (IsRankProcess()) return RankMain(scenario);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<RankRun> RunRanks(const std::string& scenario, int64_t world_size, const std::string& dir,
                              absl::Duration timeout, const std::string& fault_rank) {
  absl::StatusOr<std::string> self = internal::CurrentExecutable();
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  if (!self.ok() || !port.ok()) {
    ADD_FAILURE() << "cannot start ranks: " << self.status() << " " << port.status();
    return {};
  }
  std::vector<internal::ProcessSpec> specs;
  std::vector<std::string> stems;
  for (int64_t rank = 0; rank < world_size; ++rank) {
    stems.push_back(absl::StrCat(TempDir(), "/", scenario, "_", *port, "_rank", rank));
    fs::remove(stems.back() + ".report");
    internal::ProcessSpec spec;
    spec.argv = {*self};
    spec.env = internal::LoopbackRankEnv(rank, world_size, *port);
    spec.env.insert(spec.env.end(), {{kScenarioEnv, scenario},
                                     {kDirEnv, dir},
                                     {kReportEnv, stems.back() + ".report"},
                                     {kTimeoutMsEnv, absl::StrCat(absl::ToInt64Milliseconds(timeout))},
                                     {kFaultRankEnv, fault_rank}});
    spec.output_path = stems.back() + ".log";
    specs.push_back(std::move(spec));
  }
  absl::StatusOr<std::vector<internal::ProcessOutcome>> outcomes =
      internal::RunProcesses(specs, timeout + absl::Seconds(30));
  if (!outcomes.ok()) {
    ADD_FAILURE() << outcomes.status();
    return {};
  }
  std::vector<RankRun> runs(world_size);
  for (int64_t rank = 0; rank < world_size; ++rank) {
    RankRun& run = runs[rank];
    run.outcome = (*outcomes)[rank];
    run.output = ReadFile(stems[rank] + ".log");
    std::istringstream report(ReadFile(stems[rank] + ".report"));
    std::getline(report, run.status_line);
    std::string name;
    int64_t value;
    while (report >> name >> value) run.counters.push_back({name, value});
  }
  return runs;
}

void ExpectAllOk(const std::vector<RankRun>& runs, const std::string& what) {
  ASSERT_FALSE(runs.empty()) << what;
  for (size_t rank = 0; rank < runs.size(); ++rank) {
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << what << " rank " << rank << ": "
                                                << internal::ToString(runs[rank].outcome) << "\n"
                                                << runs[rank].output;
    EXPECT_EQ(runs[rank].status_line, "OK") << what << " rank " << rank << "\n" << runs[rank].output;
  }
}

void ExpectEveryRankFailedWith(const std::vector<RankRun>& runs, const std::vector<std::string>& texts) {
  ASSERT_FALSE(runs.empty());
  for (size_t rank = 0; rank < runs.size(); ++rank) {
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << internal::ToString(runs[rank].outcome) << runs[rank].output;
    EXPECT_NE(runs[rank].status_line, "OK") << rank;
    for (const std::string& text : texts) EXPECT_THAT(runs[rank].status_line, HasSubstr(text)) << rank;
    std::cout << "rank " << rank << ": " << runs[rank].status_line << "\n";
  }
}

void ExpectSurvivorsNameKilledRank(const std::vector<RankRun>& runs, int64_t killed) {
  ASSERT_GT(static_cast<int64_t>(runs.size()), killed);
  EXPECT_EQ(runs[killed].outcome.signal, SIGKILL) << internal::ToString(runs[killed].outcome);
  for (size_t rank = 0; rank < runs.size(); ++rank) {
    if (static_cast<int64_t>(rank) == killed) continue;
    EXPECT_FALSE(runs[rank].outcome.killed_at_deadline) << "rank " << rank << " hung\n" << runs[rank].output;
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << internal::ToString(runs[rank].outcome);
    // The transport's failure (the dead peer reset its connections, or it
    // never arrived within the timeout), not a hang, with the dead rank named
    // from its stopped heartbeat.
    EXPECT_THAT(runs[rank].status_line, AnyOf(StartsWith("UNAVAILABLE"), StartsWith("DEADLINE_EXCEEDED"))) << rank;
    EXPECT_THAT(runs[rank].status_line, HasSubstr(absl::StrCat("rank ", killed, " stopped responding"))) << rank;
    std::cout << "surviving rank " << rank << ": " << runs[rank].status_line << "\n";
  }
}

}  // namespace dcplan::integration
