// Save and load with one process per rank over c10d (TCPStore + Gloo on
// 127.0.0.1): resharding, a rank killed mid-write, a rank whose write fails, a
// corrupt data file, empty and replicated-only ranks, and plan caching over
// the wire. The test binary re-executes itself once per rank; a rank is told
// its scenario by environment variables (see RankMain) and writes a report
// file that the parent checks.

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/c10d_coordinator.h"
#include "api/checkpoint.h"
#include "api/filesystem.h"
#include "api/internal/subprocess.h"
#include "api/planners.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/dcplan/demo_model.h"

namespace dcplan {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using tools::DemoModel;

constexpr char kScenarioEnv[] = "DCPLAN_MP_SCENARIO";
constexpr char kDirEnv[] = "DCPLAN_MP_DIR";
constexpr char kReportEnv[] = "DCPLAN_MP_REPORT";
constexpr char kTimeoutMsEnv[] = "DCPLAN_MP_TIMEOUT_MS";
constexpr char kFaultRankEnv[] = "DCPLAN_MP_FAULT_RANK";

constexpr int64_t kScaleMib = 1;
constexpr absl::Duration kGenerous = absl::Seconds(120);

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- The rank side -------------------------------------------------------------

// The file writer's buffer (api/internal/file_io.h): once more than this went
// to the writer, part of the data file is on disk.
constexpr int64_t kWriterBufferBytes = int64_t{8} << 20;

// Kills its own process (SIGKILL, no cleanup) in the middle of its data file:
// at the first item asked for after more than the writer's buffer was handed
// out (or at the last item).
class KillingSavePlanner : public DefaultSavePlanner {
 public:
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    if (resolved_bytes_ > kWriterBufferBytes || ++resolved_ == static_cast<int64_t>(plan().items.size())) {
      raise(SIGKILL);
    }
    absl::StatusOr<WriteData> data = DefaultSavePlanner::ResolveData(item);
    if (data.ok()) {
      const auto* tensor = std::get_if<at::Tensor>(&*data);
      resolved_bytes_ += tensor != nullptr ? tensor->nbytes() : std::get<std::string>(*data).size();
    }
    return data;
  }

 private:
  int64_t resolved_ = 0;
  int64_t resolved_bytes_ = 0;
};

// Two 10 MiB tensors only the fault rank holds, so that its data file outgrows
// the writer's buffer.
void AddFaultPadding(StateDict& state) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const auto& entry : state.entries()) entries.push_back({entry.key, entry.value});
  entries.push_back({"fault_padding_a", Value(at::full({10 << 18}, 1.5f))});
  entries.push_back({"fault_padding_b", Value(at::full({10 << 18}, 2.5f))});
  state = Dict(std::move(entries));
}

// Rank 0 and 2 hold only a replicated tensor (and rank 0 a value); rank 1
// holds nothing. For a load, tensors are zero-filled and the value is None.
StateDict EdgeStateDict(int64_t rank, bool for_load) {
  at::Tensor replicated = at::arange(0, 1000, at::kFloat).reshape({10, 100}) * 0.5;
  if (for_load) replicated = at::zeros_like(replicated);
  if (rank == 1) return Dict({});
  std::vector<std::pair<std::string, StateDict>> entries = {{"replicated", Value(replicated)}};
  if (rank == 0) entries.push_back({"step", Value(for_load ? c10::IValue() : c10::IValue(int64_t{42}))});
  return Dict(std::move(entries));
}

absl::Status CheckEdge(const StateDict& loaded, int64_t rank) {
  if (rank == 1) {
    return loaded.entries().empty() ? absl::OkStatus() : absl::InternalError("rank 1 got entries");
  }
  const StateDict* replicated = loaded.FindEntry("replicated");
  if (replicated == nullptr || replicated->leaf() == nullptr) return absl::InternalError("no 'replicated'");
  const at::Tensor* tensor = std::get_if<at::Tensor>(replicated->leaf());
  const at::Tensor want = at::arange(0, 1000, at::kFloat).reshape({10, 100}) * 0.5;
  if (tensor == nullptr || !at::equal(*tensor, want)) return absl::InternalError("wrong 'replicated'");
  if (rank == 0) {
    const StateDict* step = loaded.FindEntry("step");
    const c10::IValue* value = step != nullptr && step->leaf() != nullptr ? std::get_if<c10::IValue>(step->leaf())
                                                                          : nullptr;
    if (value == nullptr || !value->isInt() || value->toInt() != 42) return absl::InternalError("wrong 'step'");
  }
  return absl::OkStatus();
}

struct RankResult {
  absl::Status status;
  std::vector<std::pair<std::string, int64_t>> counters;
};

absl::Status SaveDemo(const StateDict& state, const std::string& dir, Coordinator& coordinator,
                      SavePlanner* planner = nullptr, bool overwrite = false) {
  FileSystemWriterOptions options;
  options.overwrite = overwrite;
  FileSystemWriter writer(dir, options);
  return Save(state, writer, coordinator, planner).status();
}

RankResult RunScenario(const std::string& scenario, C10dCoordinator& coordinator) {
  const int64_t rank = coordinator.rank();
  const int64_t world = coordinator.world_size();
  const std::string dir = Env(kDirEnv);
  const bool is_fault_rank = Env(kFaultRankEnv) == absl::StrCat(rank);
  const DemoModel model = tools::MakeDemoModel(kScaleMib);
  RankResult result;
  if (scenario == "save" || scenario == "save_kill" || scenario == "save_kill_overwrite" ||
      scenario == "save_fsize") {
    absl::StatusOr<StateDict> state = tools::RankStateDict(model, rank, world, /*for_load=*/false);
    if (!state.ok()) return {state.status()};
    if (scenario == "save_fsize" && is_fault_rank) {
      // Writes beyond 4 KiB fail with EFBIG instead of killing the rank.
      signal(SIGXFSZ, SIG_IGN);
      struct rlimit limit = {4096, 4096};
      if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return {absl::InternalError("setrlimit failed")};
    }
    KillingSavePlanner killer;
    const bool overwrite = scenario == "save_kill_overwrite";
    const bool kill = (scenario == "save_kill" || overwrite) && is_fault_rank;
    if (kill) AddFaultPadding(*state);
    result.status = SaveDemo(*state, dir, coordinator, kill ? &killer : nullptr, overwrite);
  } else if (scenario == "load") {
    absl::StatusOr<StateDict> state = tools::RankStateDict(model, rank, world, /*for_load=*/true);
    if (!state.ok()) return {state.status()};
    FileSystemReader reader(dir);
    result.status = Load(*state, reader, coordinator);
    if (result.status.ok()) result.status = tools::VerifyRankStateDict(model, *state, rank, world);
  } else if (scenario == "edge_save") {
    result.status = SaveDemo(EdgeStateDict(rank, false), dir, coordinator);
  } else if (scenario == "edge_load") {
    StateDict state = EdgeStateDict(rank, /*for_load=*/true);
    FileSystemReader reader(dir);
    result.status = Load(state, reader, coordinator);
    if (result.status.ok()) result.status = CheckEdge(state, rank);
  } else if (scenario == "cached_saves") {
    // Two saves with one kept caching planner, then one without caching.
    absl::StatusOr<StateDict> state = tools::RankStateDict(model, rank, world, /*for_load=*/false);
    if (!state.ok()) return {state.status()};
    DefaultSavePlanner::Options options;
    options.enable_plan_caching = true;
    DefaultSavePlanner cached(options);
    const std::pair<const char*, SavePlanner*> saves[] = {
        {"cached_1", &cached}, {"cached_2", &cached}, {"uncached", nullptr}};
    for (const auto& [name, planner] : saves) {
      const int64_t before = coordinator.bytes_sent();
      result.status = SaveDemo(*state, absl::StrCat(dir, "/", name), coordinator, planner);
      if (!result.status.ok()) break;
      result.counters.push_back({absl::StrCat("bytes_sent_", name), coordinator.bytes_sent() - before});
    }
  } else {
    result.status = absl::InvalidArgumentError(absl::StrCat("unknown scenario ", scenario));
  }
  return result;
}

// Report: first line "OK" or the status; then "name value" lines.
int RankMain() {
  RankResult result;
  absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
  int64_t timeout_ms = 0;
  if (!options.ok()) {
    result.status = options.status();
  } else {
    if (absl::SimpleAtoi(Env(kTimeoutMsEnv), &timeout_ms)) options->timeout = absl::Milliseconds(timeout_ms);
    absl::StatusOr<std::unique_ptr<C10dCoordinator>> coordinator = ConnectC10d(*options);
    result = coordinator.ok() ? RunScenario(Env(kScenarioEnv), **coordinator) : RankResult{coordinator.status()};
  }
  std::ofstream report(Env(kReportEnv), std::ios::trunc);
  std::string status_line = result.status.ok() ? "OK" : result.status.ToString();
  std::replace(status_line.begin(), status_line.end(), '\n', ' ');
  report << status_line << "\n";
  for (const auto& [name, value] : result.counters) report << name << " " << value << "\n";
  report.close();
  return report.good() ? 0 : 3;
}

// --- The parent side -------------------------------------------------------------

struct RankRun {
  internal::ProcessOutcome outcome;
  std::string status_line;  // "OK", an error, or "" without a report
  std::vector<std::pair<std::string, int64_t>> counters;
  std::string output;
};

std::string TempDir() { return Env("TEST_TMPDIR").empty() ? "/tmp" : Env("TEST_TMPDIR"); }

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<RankRun> RunRanks(const std::string& scenario, int64_t world_size, const std::string& dir,
                              absl::Duration timeout, const std::string& fault_rank = "") {
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

TEST(MultiprocessTest, SaveOnFourLoadsResharededOnTwoThreeAndFive) {
  const std::string dir = FreshDir("resharded");
  ExpectAllOk(RunRanks("save", 4, dir, kGenerous), "save on 4");
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_TRUE(fs::exists(absl::StrCat(dir, "/__", rank, "_0.distcp"))) << rank;
  }
  EXPECT_FALSE(fs::exists(dir + "/__4_0.distcp"));
  ASSERT_TRUE(fs::exists(dir + "/.metadata"));
  // Each load world size shards every tensor differently from the save; the
  // ranks check every element bitwise (VerifyRankStateDict).
  for (int64_t load_world : {2, 3, 5}) {
    ExpectAllOk(RunRanks("load", load_world, dir, kGenerous), absl::StrCat("load on ", load_world));
  }
}

TEST(MultiprocessTest, EmptyAndReplicatedOnlyRanksSaveAndLoad) {
  const std::string dir = FreshDir("edge");
  ExpectAllOk(RunRanks("edge_save", 3, dir, kGenerous), "edge save on 3");
  ASSERT_TRUE(fs::exists(dir + "/.metadata"));
  ExpectAllOk(RunRanks("edge_load", 3, dir, kGenerous), "edge load on 3");
}

// Rank 2 of 3 kills itself (SIGKILL) in the middle of its data file; the
// survivors must fail within the timeout, naming rank 2.
void ExpectSurvivorsNameKilledRank(const std::vector<RankRun>& runs) {
  EXPECT_EQ(runs[2].outcome.signal, SIGKILL) << internal::ToString(runs[2].outcome);
  for (int rank : {0, 1}) {
    EXPECT_FALSE(runs[rank].outcome.killed_at_deadline) << "rank " << rank << " hung\n" << runs[rank].output;
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << internal::ToString(runs[rank].outcome);
    // The transport's failure (the dead peer reset its connections, or it
    // never arrived within the timeout), not a hang, with the dead rank named
    // from its stopped heartbeat.
    EXPECT_THAT(runs[rank].status_line, AnyOf(StartsWith("UNAVAILABLE"), StartsWith("DEADLINE_EXCEEDED"))) << rank;
    EXPECT_THAT(runs[rank].status_line, HasSubstr("rank 2 stopped responding")) << rank;
    std::cout << "surviving rank " << rank << ": " << runs[rank].status_line << "\n";
  }
}

TEST(MultiprocessTest, RankKilledWhileOverwritingKeepsThePreviousCheckpoint) {
  const std::string dir = FreshDir("killed_overwrite");
  ExpectAllOk(RunRanks("save", 3, dir, kGenerous), "first save on 3");
  const absl::Duration timeout = absl::Seconds(15);
  std::vector<RankRun> runs = RunRanks("save_kill_overwrite", 3, dir, timeout, /*fault_rank=*/"2");
  ASSERT_EQ(runs.size(), 3u);
  ExpectSurvivorsNameKilledRank(runs);
  // The first save's checkpoint is whole: resharded onto 2 ranks, bitwise.
  ASSERT_TRUE(fs::exists(dir + "/.metadata"));
  ExpectAllOk(RunRanks("load", 2, dir, kGenerous), "load of the previous checkpoint on 2");
}

TEST(MultiprocessTest, RankKilledMidWriteLeavesNoMetadataAndTheOthersFail) {
  const std::string dir = FreshDir("killed");
  const absl::Duration timeout = absl::Seconds(15);
  const absl::Time start = absl::Now();
  std::vector<RankRun> runs = RunRanks("save_kill", 3, dir, timeout, /*fault_rank=*/"2");
  ASSERT_EQ(runs.size(), 3u);
  ExpectSurvivorsNameKilledRank(runs);
  EXPECT_LT(absl::Now() - start, timeout + absl::Seconds(25));
  EXPECT_FALSE(fs::exists(dir + "/.metadata"));
  EXPECT_FALSE(fs::exists(dir + "/__2_0.distcp"));
  // It died with part of its data file written.
  std::error_code no_file;
  const uintmax_t partial = fs::file_size(dir + "/__2_0.distcp.tmp", no_file);
  EXPECT_FALSE(no_file) << no_file.message();
  EXPECT_GT(partial, 0u);
  std::cout << "the killed rank left __2_0.distcp.tmp of " << partial << " bytes\n";
}

TEST(MultiprocessTest, WriteFailureOnOneRankFailsEveryRankAndCommitsNothing) {
  const std::string dir = FreshDir("fsize");
  std::vector<RankRun> runs = RunRanks("save_fsize", 3, dir, kGenerous, /*fault_rank=*/"1");
  ASSERT_EQ(runs.size(), 3u);
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << internal::ToString(runs[rank].outcome) << runs[rank].output;
    EXPECT_NE(runs[rank].status_line, "OK") << rank;
    EXPECT_THAT(runs[rank].status_line, HasSubstr("rank 1")) << rank;
    EXPECT_THAT(runs[rank].status_line, HasSubstr("__1_0.distcp")) << rank;
    std::cout << "rank " << rank << ": " << runs[rank].status_line << "\n";
  }
  EXPECT_FALSE(fs::exists(dir + "/.metadata"));
}

TEST(MultiprocessTest, CorruptDataFileFailsEveryLoadRankNamingFileAndTensor) {
  const std::string dir = FreshDir("corrupt");
  ExpectAllOk(RunRanks("save", 2, dir, kGenerous), "save on 2");
  const std::string victim = dir + "/__1_0.distcp";
  ASSERT_TRUE(fs::exists(victim));
  {
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    file.put('\x5a').put('\xa5').put('\x5a');
  }
  std::vector<RankRun> runs = RunRanks("load", 2, dir, kGenerous);
  ASSERT_EQ(runs.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_TRUE(runs[rank].outcome.Succeeded()) << internal::ToString(runs[rank].outcome) << runs[rank].output;
    EXPECT_NE(runs[rank].status_line, "OK");
    EXPECT_THAT(runs[rank].status_line, HasSubstr("__1_0.distcp")) << rank;
    std::cout << "rank " << rank << ": " << runs[rank].status_line << "\n";
  }
}

// The .metadata file of `dir` with its path and the save_id (pickled as a
// 36-character short string, opcode '\x8c' then length '$') blanked.
std::string MetadataWithoutStorageIds(const std::string& dir) {
  std::string text = ReadFile(dir + "/.metadata");
  for (size_t at = text.find(dir); at != std::string::npos; at = text.find(dir, at)) {
    text.replace(at, dir.size(), std::string(dir.size(), '_'));
  }
  const size_t save_id = text.find("save_id");
  const size_t uuid = save_id == std::string::npos ? save_id : text.find("\x8c$", save_id);
  if (uuid == std::string::npos || uuid + 2 + 36 > text.size()) {
    ADD_FAILURE() << "no save_id in " << dir;
    return "";
  }
  text.replace(uuid + 2, 36, std::string(36, '_'));
  return text;
}

TEST(MultiprocessTest, PlanCachingWritesTheSameFilesAndSendsLess) {
  const std::string dir = FreshDir("caching");
  std::vector<RankRun> runs = RunRanks("cached_saves", 3, dir, kGenerous);
  ExpectAllOk(runs, "cached saves on 3");
  for (int rank = 0; rank < 3; ++rank) {
    const std::string data = absl::StrCat("/__", rank, "_0.distcp");
    const std::string uncached = ReadFile(dir + "/uncached" + data);
    ASSERT_FALSE(uncached.empty()) << data;
    EXPECT_TRUE(ReadFile(dir + "/cached_1" + data) == uncached) << data;
    EXPECT_TRUE(ReadFile(dir + "/cached_2" + data) == uncached) << data;
    ASSERT_EQ(runs[rank].counters.size(), 3u);
    // The second cached save sends only "plan unchanged" instead of the plans.
    EXPECT_LT(runs[rank].counters[1].second, runs[rank].counters[0].second) << rank;
    for (const auto& [name, value] : runs[rank].counters) {
      std::cout << "rank " << rank << " " << name << " = " << value << "\n";
      RecordProperty(absl::StrCat("rank", rank, "_", name), static_cast<int>(value));
    }
  }
  // The metadata differ only in storage_meta's checkpoint_id (the directory,
  // of the same length here) and its random save_id.
  const std::string uncached = MetadataWithoutStorageIds(dir + "/uncached");
  ASSERT_FALSE(uncached.empty());
  EXPECT_TRUE(MetadataWithoutStorageIds(dir + "/cached_1") == uncached);
  EXPECT_TRUE(MetadataWithoutStorageIds(dir + "/cached_2") == uncached);
}

}  // namespace
}  // namespace dcplan

int main(int argc, char** argv) {
  if (!dcplan::Env(dcplan::kScenarioEnv).empty()) return dcplan::RankMain();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
