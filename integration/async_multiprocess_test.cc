// AsyncSave with one process per rank over c10d (the training coordinator and
// a second process group of its own for the background write, on one
// TCPStore): a stand-in training loop changing every tensor right after
// AsyncSave returned, a write failure on one rank (RLIMIT_FSIZE), a rank
// killed with SIGKILL during the background write, and plan caching. The
// harness is integration/rank_runs.h.

#include <signal.h>
#include <sys/resource.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/async_save.h"
#include "api/c10d_coordinator.h"
#include "api/checkpoint.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/staging_pool.h"
#include "gtest/gtest.h"
#include "integration/rank_runs.h"
#include "tools/dcplan/demo_async.h"
#include "tools/dcplan/demo_model.h"

namespace dcplan {
namespace {

namespace fs = std::filesystem;
using namespace integration;  // NOLINT: the harness of these tests

constexpr int64_t kScaleMib = 1;
constexpr absl::Duration kGenerous = absl::Seconds(120);

// --- The rank side -------------------------------------------------------------

// Writes beyond 4 KiB fail with EFBIG instead of killing the process.
absl::Status LimitFileSize() {
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = {4096, 4096};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return absl::InternalError("setrlimit failed");
  return absl::OkStatus();
}

// async_save:           AsyncSave, then training steps until it finished
//                       (counter training_steps);
// async_kill_overwrite: the same over the checkpoint already in the
//                       directory; the fault rank kills itself mid-write;
// async_fsize:          the fault rank's files may not exceed 4 KiB.
RankResult RunAsyncSave(const std::string& scenario, C10dCoordinator& coordinator, const C10dOptions& options) {
  const int64_t rank = coordinator.rank();
  const bool fault = IsFaultRank(rank);
  const tools::DemoModel model = tools::MakeDemoModel(kScaleMib);
  absl::StatusOr<StateDict> state = tools::RankStateDict(model, rank, coordinator.world_size(), /*for_load=*/false);
  if (!state.ok()) return {state.status(), {}};
  absl::StatusOr<std::unique_ptr<C10dCoordinator>> background = tools::ConnectAsyncSaveGroup(options);
  if (!background.ok()) return {background.status(), {}};
  const bool kill = scenario == "async_kill_overwrite" && fault;
  if (kill) AddFaultPadding(*state);
  if (scenario == "async_fsize" && fault) {
    if (absl::Status limited = LimitFileSize(); !limited.ok()) return {limited, {}};
  }
  FileSystemWriterOptions writer_options;
  writer_options.overwrite = scenario == "async_kill_overwrite";
  std::unique_ptr<FileSystemWriter> writer = kill ? std::make_unique<SelfKillingWriter>(RankDir(), writer_options)
                                                  : std::make_unique<FileSystemWriter>(RankDir(), writer_options);
  AsyncSaveOptions async_options;
  async_options.background_coordinator = background->get();
  tools::AsyncSaveWhileTrainingResult saved =
      tools::AsyncSaveWhileTraining(*state, *writer, coordinator, async_options);
  return {saved.saved.status(), {{"training_steps", saved.training_steps}}};
}

// A synchronous save into sync/, then two async saves with one caching
// planner and one staging pool into async_1/ and async_2/.
absl::Status SaveCachedAsync(C10dCoordinator& coordinator, const C10dOptions& options) {
  const tools::DemoModel model = tools::MakeDemoModel(kScaleMib);
  absl::StatusOr<StateDict> state =
      tools::RankStateDict(model, coordinator.rank(), coordinator.world_size(), /*for_load=*/false);
  if (!state.ok()) return state.status();
  absl::StatusOr<std::unique_ptr<C10dCoordinator>> background = tools::ConnectAsyncSaveGroup(options);
  if (!background.ok()) return background.status();
  FileSystemWriter sync_writer(RankDir() + "/sync");
  if (absl::Status saved = Save(*state, sync_writer, coordinator).status(); !saved.ok()) return saved;
  DefaultSavePlanner::Options planner_options;
  planner_options.enable_plan_caching = true;
  DefaultSavePlanner planner(planner_options);
  StagingPool pool;
  for (const char* name : {"async_1", "async_2"}) {
    FileSystemWriter writer(absl::StrCat(RankDir(), "/", name));
    AsyncSaveOptions async_options;
    async_options.background_coordinator = background->get();
    async_options.planner = &planner;
    async_options.staging_pool = &pool;
    if (absl::Status saved = AsyncSave(*state, writer, coordinator, async_options).Wait().status(); !saved.ok()) {
      return saved;
    }
  }
  return absl::OkStatus();
}

RankResult RunScenario(const std::string& scenario, C10dCoordinator& coordinator, const C10dOptions& options) {
  if (scenario == "load") return {LoadAndVerifyDemoModel(tools::MakeDemoModel(kScaleMib), RankDir(), coordinator), {}};
  if (scenario == "async_cached") return {SaveCachedAsync(coordinator, options), {}};
  if (scenario == "async_save" || scenario == "async_kill_overwrite" || scenario == "async_fsize") {
    return RunAsyncSave(scenario, coordinator, options);
  }
  return {absl::InvalidArgumentError(absl::StrCat("unknown scenario ", scenario)), {}};
}

// --- The parent side -------------------------------------------------------------

int64_t Counter(const RankRun& run, const std::string& name) {
  for (const auto& [key, value] : run.counters) {
    if (key == name) return value;
  }
  return -1;
}

TEST(AsyncMultiprocessTest, TrainingChangesTensorsDuringTheWriteAndTheCheckpointHoldsTheSnapshot) {
  const std::string dir = FreshDir("async_snapshot");
  std::vector<RankRun> runs = RunRanks("async_save", 4, dir, kGenerous);
  ExpectAllOk(runs, "async save on 4");
  for (size_t rank = 0; rank < runs.size(); ++rank) {
    // At least one step overwrote every tensor before the save finished.
    EXPECT_GE(Counter(runs[rank], "training_steps"), 1) << rank;
  }
  ASSERT_TRUE(fs::exists(dir + "/.metadata"));
  // The load ranks check every element against the model as it was saved.
  ExpectAllOk(RunRanks("load", 3, dir, kGenerous), "load on 3");
}

TEST(AsyncMultiprocessTest, ABackgroundWriteFailureOnOneRankReachesEveryRanksWait) {
  const std::string dir = FreshDir("async_fsize");
  std::vector<RankRun> runs = RunRanks("async_fsize", 3, dir, kGenerous, /*fault_rank=*/"1");
  ASSERT_EQ(runs.size(), 3u);
  ExpectEveryRankFailedWith(runs, {"checkpoint step 'write' failed on 1 of 3 ranks", "rank 1: ", "__1_0.distcp"});
  EXPECT_FALSE(fs::exists(dir + "/.metadata"));
}

TEST(AsyncMultiprocessTest, ARankKilledDuringTheBackgroundWriteKeepsThePreviousCheckpoint) {
  const std::string dir = FreshDir("async_killed");
  ExpectAllOk(RunRanks("async_save", 3, dir, kGenerous), "first async save on 3");
  std::vector<RankRun> runs = RunRanks("async_kill_overwrite", 3, dir, absl::Seconds(15), /*fault_rank=*/"2");
  ASSERT_EQ(runs.size(), 3u);
  ExpectSurvivorsNameKilledRank(runs, /*killed=*/2);
  EXPECT_TRUE(fs::exists(dir + "/__2_0.distcp.tmp")) << "rank 2 died before writing";
  ASSERT_TRUE(fs::exists(dir + "/.metadata"));
  ExpectAllOk(RunRanks("load", 2, dir, kGenerous), "load of the previous checkpoint on 2");
}

TEST(AsyncMultiprocessTest, CachedAsyncSavesWriteTheFilesOfASynchronousSave) {
  const std::string dir = FreshDir("async_cached");
  ExpectAllOk(RunRanks("async_cached", 3, dir, kGenerous), "cached async saves on 3");
  for (int rank = 0; rank < 3; ++rank) {
    const std::string data = absl::StrCat("/__", rank, "_0.distcp");
    const std::string sync = ReadFile(dir + "/sync" + data);
    ASSERT_FALSE(sync.empty()) << data;
    EXPECT_TRUE(ReadFile(dir + "/async_1" + data) == sync) << data;
    EXPECT_TRUE(ReadFile(dir + "/async_2" + data) == sync) << data;
  }
}

}  // namespace
}  // namespace dcplan

int main(int argc, char** argv) { return dcplan::integration::RankOrTestMain(argc, argv, dcplan::RunScenario); }
