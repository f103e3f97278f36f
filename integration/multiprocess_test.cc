// Save and load with one process per rank over c10d (TCPStore + Gloo on
// 127.0.0.1): resharding, a rank killed mid-write, a rank whose write fails, a
// corrupt data file, empty and replicated-only ranks, and plan caching over
// the wire. The test binary re-executes itself once per rank; a rank is told
// its scenario by environment variables (integration/rank_runs.h) and writes
// a report file that the parent checks.

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
#include "integration/rank_runs.h"
#include "tools/dcplan/demo_model.h"

namespace dcplan {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using tools::DemoModel;
using namespace integration;  // NOLINT: the harness of these tests

constexpr int64_t kScaleMib = 1;
constexpr absl::Duration kGenerous = absl::Seconds(120);

// --- The rank side -------------------------------------------------------------

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

absl::Status SaveDemo(const StateDict& state, const std::string& dir, Coordinator& coordinator,
                      SavePlanner* planner = nullptr, bool overwrite = false, bool kill = false) {
  FileSystemWriterOptions options;
  options.overwrite = overwrite;
  std::unique_ptr<FileSystemWriter> writer = kill ? std::make_unique<SelfKillingWriter>(dir, options)
                                                  : std::make_unique<FileSystemWriter>(dir, options);
  return Save(state, *writer, coordinator, planner).status();
}

RankResult RunScenario(const std::string& scenario, C10dCoordinator& coordinator, const C10dOptions&) {
  const int64_t rank = coordinator.rank();
  const int64_t world = coordinator.world_size();
  const std::string dir = RankDir();
  const bool is_fault_rank = IsFaultRank(rank);
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
    const bool overwrite = scenario == "save_kill_overwrite";
    const bool kill = (scenario == "save_kill" || overwrite) && is_fault_rank;
    if (kill) AddFaultPadding(*state);
    result.status = SaveDemo(*state, dir, coordinator, nullptr, overwrite, kill);
  } else if (scenario == "load") {
    result.status = LoadAndVerifyDemoModel(model, dir, coordinator);
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

TEST(MultiprocessTest, RankKilledWhileOverwritingKeepsThePreviousCheckpoint) {
  const std::string dir = FreshDir("killed_overwrite");
  ExpectAllOk(RunRanks("save", 3, dir, kGenerous), "first save on 3");
  const absl::Duration timeout = absl::Seconds(15);
  std::vector<RankRun> runs = RunRanks("save_kill_overwrite", 3, dir, timeout, /*fault_rank=*/"2");
  ASSERT_EQ(runs.size(), 3u);
  ExpectSurvivorsNameKilledRank(runs, /*killed=*/2);
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
  ExpectSurvivorsNameKilledRank(runs, /*killed=*/2);
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
  ExpectEveryRankFailedWith(runs, {"rank 1", "__1_0.distcp"});
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

int main(int argc, char** argv) { return dcplan::integration::RankOrTestMain(argc, argv, dcplan::RunScenario); }
