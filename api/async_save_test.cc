// AsyncSave over threads: snapshot semantics, back-to-back saves on a warm
// staging pool, plan caching, failures on one rank, handles dropped without
// Wait(), and saves that queue behind a failed one.
#include "api/async_save.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "api/checkpoint.h"
#include "api/checkpoint_test_util.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/staging_pool.h"
#include "api/state_dict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace testing_util;  // NOLINT

constexpr int64_t kWorld = 3;
constexpr int64_t kRows = 6;  // rows of the sharded tensor: 2 per rank
constexpr int64_t kCols = 4096;

// What every rank saves: its two rows of "fsdp.w", a replicated "bias" (every
// rank holds it, one writes it) and a step counter.
struct RankState {
  at::Tensor rows;  // this rank's shard
  at::Tensor bias;
  StateDict state;
};

RankState MakeRankState(int64_t rank, float base) {
  RankState s;
  s.rows = at::arange(0, 2 * kCols, at::kFloat).reshape({2, kCols}) + base + 1000.0f * rank;
  s.bias = at::arange(0, 4096, at::kFloat) * base;
  ShardedTensorValue sharded{{kRows, kCols}, at::kFloat, {{s.rows, {2 * rank, 0}}}};
  s.state = Dict({{"fsdp", Dict({{"w", Value(sharded)}})},
                  {"bias", Value(s.bias)},
                  {"step", Value(c10::IValue(static_cast<int64_t>(base)))}});
  return s;
}

// The whole checkpoint of `dir` on one rank: checks it equals the state saved
// with `base`, bitwise.
void ExpectCheckpointHolds(const std::string& dir, float base) {
  const at::Tensor want_bias = at::arange(0, 4096, at::kFloat) * base;
  at::Tensor rows = at::zeros({kRows, kCols}, at::kFloat);
  at::Tensor bias = at::zeros({4096}, at::kFloat);
  ShardedTensorValue all{{kRows, kCols}, at::kFloat, {{rows, {0, 0}}}};
  StateDict loaded = Dict({{"fsdp", Dict({{"w", Value(all)}})}, {"bias", Value(bias)}});
  FileSystemReader reader(dir);
  SingleProcessCoordinator coordinator;
  DefaultLoadPlanner::Options options;
  options.allow_partial_load = true;  // not "step"
  DefaultLoadPlanner planner(options);
  ASSERT_TRUE(Load(loaded, reader, coordinator, &planner).ok()) << dir;
  EXPECT_TRUE(BitwiseEqual(bias, want_bias)) << dir;
  for (int64_t rank = 0; rank < kWorld; ++rank) {
    EXPECT_TRUE(BitwiseEqual(rows.slice(0, 2 * rank, 2 * rank + 2), MakeRankState(rank, base).rows))
        << dir << " rank " << rank;
  }
}

// A FileSystemWriter whose WriteData first waits for `gate` (when set) and
// fails with `failure` (when set): the background write held back or broken.
class ControlledWriter : public FileSystemWriter {
 public:
  using FileSystemWriter::FileSystemWriter;
  absl::Notification* gate = nullptr;
  std::optional<absl::Status> failure;
  absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) override {
    if (gate != nullptr) gate->WaitForNotification();
    if (failure) return *failure;
    return FileSystemWriter::WriteData(plan, planner);
  }
};

// A main and a background group of kWorld ranks.
struct Groups {
  InProcessGroup main{kWorld};
  InProcessGroup background{kWorld};
  AsyncSaveOptions Options(int64_t rank) {
    AsyncSaveOptions options;
    options.background_coordinator = &background.coordinator(rank);
    return options;
  }
};

TEST(AsyncSaveTest, TheCheckpointIsTheSnapshotTakenWhenAsyncSaveReturned) {
  const std::string dir = NewTempPath("async_snapshot");
  Groups groups;
  absl::Notification writes_may_start;
  std::atomic<int64_t> ranks_done_training{0};
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    RankState s = MakeRankState(rank, 1.0f);
    ControlledWriter writer(dir);
    writer.gate = &writes_may_start;
    StagingPool pool;
    AsyncSaveOptions options = groups.Options(rank);
    options.staging_pool = &pool;
    AsyncSaveHandle save = AsyncSave(s.state, writer, coordinator, options);
    EXPECT_FALSE(save.Ready());
    // The training loop goes on: every tensor changes in place, then the
    // state dict and its tensors are dropped, all before any byte is written.
    s.rows.mul_(-3.0f);
    s.bias.fill_(7.0f);
    s.state = StateDict();
    s = RankState();
    if (++ranks_done_training == kWorld) writes_may_start.Notify();
    absl::StatusOr<Metadata> metadata = save.Wait();
    EXPECT_TRUE(save.Ready());
    return metadata.status();
  });
  for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  ExpectCheckpointHolds(dir, 1.0f);
}

TEST(AsyncSaveTest, OnlyTheItemsThisRankWritesAreStaged) {
  const std::string dir = NewTempPath("async_dedup");
  Groups groups;
  std::vector<int64_t> reserved(kWorld);
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 2.0f);
    FileSystemWriter writer(dir);
    StagingPool pool;
    AsyncSaveOptions options = groups.Options(rank);
    options.staging_pool = &pool;
    absl::Status status = AsyncSave(s.state, writer, coordinator, options).Wait().status();
    reserved[rank] = pool.reserved_bytes();
    return status;
  });
  for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  // Each rank stages its 2 x 4096 floats; the replicated 4096-float bias is
  // staged by one rank only.
  const int64_t rows_bytes = 2 * kCols * 4;
  const int64_t bias_bytes = 4096 * 4;
  int64_t total = 0;
  for (int64_t r = 0; r < kWorld; ++r) {
    EXPECT_TRUE(reserved[r] == rows_bytes || reserved[r] == rows_bytes + bias_bytes) << r << ": " << reserved[r];
    total += reserved[r];
  }
  EXPECT_EQ(total, kWorld * rows_bytes + bias_bytes);
  ExpectCheckpointHolds(dir, 2.0f);
}

TEST(AsyncSaveTest, BackToBackSavesQueueAndAWarmPoolStaysFlat) {
  const std::string dir = NewTempPath("async_back_to_back");
  constexpr int kSaves = 10;
  Groups groups;
  std::vector<std::vector<int64_t>> allocations(kWorld), reserved(kWorld);
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    StagingPool pool;
    DefaultSavePlanner::Options planner_options;
    planner_options.enable_plan_caching = true;
    DefaultSavePlanner planner(planner_options);
    std::vector<std::unique_ptr<FileSystemWriter>> writers;
    std::vector<AsyncSaveHandle> saves;
    for (int i = 0; i < kSaves; ++i) {
      RankState s = MakeRankState(rank, static_cast<float>(i));
      writers.push_back(std::make_unique<FileSystemWriter>(absl::StrCat(dir, "/", i)));
      AsyncSaveOptions options = groups.Options(rank);
      options.staging_pool = &pool;
      options.planner = &planner;
      // No Wait() in between: each save waits for the previous one itself.
      saves.push_back(AsyncSave(s.state, *writers.back(), coordinator, options));
      allocations[rank].push_back(pool.allocations());
      reserved[rank].push_back(pool.reserved_bytes());
    }
    for (AsyncSaveHandle& save : saves) {
      absl::Status status = save.Wait().status();
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  });
  for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  for (int64_t r = 0; r < kWorld; ++r) {
    EXPECT_THAT(allocations[r], ::testing::Each(1)) << r;
    EXPECT_THAT(reserved[r], ::testing::Each(reserved[r][0])) << r;
  }
  for (int i = 0; i < kSaves; ++i) ExpectCheckpointHolds(absl::StrCat(dir, "/", i), static_cast<float>(i));
}

TEST(AsyncSaveTest, CachedAsyncSavesWriteTheFilesOfASynchronousSave) {
  const std::string dir = NewTempPath("async_cached");
  Groups groups;
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    RankState s = MakeRankState(rank, 3.0f);
    FileSystemWriter sync_writer(dir + "/sync");
    absl::Status status = Save(s.state, sync_writer, coordinator).status();
    if (!status.ok()) return status;
    DefaultSavePlanner::Options planner_options;
    planner_options.enable_plan_caching = true;
    DefaultSavePlanner planner(planner_options);
    StagingPool pool;
    for (const char* name : {"async_1", "async_2"}) {
      FileSystemWriter writer(absl::StrCat(dir, "/", name));
      AsyncSaveOptions options = groups.Options(rank);
      options.planner = &planner;
      options.staging_pool = &pool;
      status = AsyncSave(s.state, writer, coordinator, options).Wait().status();
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  });
  for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  for (int64_t r = 0; r < kWorld; ++r) {
    const std::string file = absl::StrCat("/__", r, "_0.distcp");
    std::optional<std::string> sync = test_files::ReadFile(dir + "/sync" + file);
    ASSERT_TRUE(sync.has_value()) << file;
    EXPECT_TRUE(test_files::ReadFile(dir + "/async_1" + file) == sync) << file;
    EXPECT_TRUE(test_files::ReadFile(dir + "/async_2" + file) == sync) << file;
  }
}

void ExpectFailedOnRank1Everywhere(const std::vector<absl::Status>& statuses, const std::string& detail) {
  ASSERT_EQ(statuses.size(), static_cast<size_t>(kWorld));
  for (size_t r = 0; r < statuses.size(); ++r) {
    EXPECT_FALSE(statuses[r].ok()) << r;
    EXPECT_THAT(std::string(statuses[r].message()), HasSubstr("checkpoint step 'write' failed on 1 of 3 ranks")) << r;
    EXPECT_THAT(std::string(statuses[r].message()), HasSubstr("rank 1: " + detail)) << r;
  }
}

TEST(AsyncSaveTest, ABackgroundWriteFailureOnOneRankIsEveryRanksAndCommitsNothing) {
  const std::string dir = NewTempPath("async_write_failure");
  Groups groups;
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 4.0f);
    ControlledWriter writer(dir);
    if (rank == 1) writer.failure = absl::ResourceExhaustedError("__1_0.distcp.tmp: File too large");
    return AsyncSave(s.state, writer, coordinator, groups.Options(rank)).Wait().status();
  });
  ExpectFailedOnRank1Everywhere(statuses, "__1_0.distcp.tmp: File too large");
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(ListDir(dir), ElementsAre());  // no metadata, no data, no temporaries
}

class FailOnRankSavePlanner : public DefaultSavePlanner {
 public:
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    if (rank() == 1) return absl::UnavailableError("device lost");
    return DefaultSavePlanner::ResolveData(item);
  }
};

TEST(AsyncSaveTest, AStagingFailureOnOneRankIsEveryRanks) {
  const std::string dir = NewTempPath("async_staging_failure");
  Groups groups;
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 5.0f);
    FileSystemWriter writer(dir);
    FailOnRankSavePlanner planner;
    AsyncSaveOptions options = groups.Options(rank);
    options.planner = &planner;
    return AsyncSave(s.state, writer, coordinator, options).Wait().status();
  });
  ExpectFailedOnRank1Everywhere(statuses, "device lost");
  EXPECT_THAT(ListDir(dir), Not(::testing::Contains(".metadata")));
}

TEST(AsyncSaveTest, AHandleDroppedWithoutWaitStillCompletesTheSave) {
  const std::string dir = NewTempPath("async_dropped");
  Groups groups;
  absl::Notification writes_may_start;
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 6.0f);
    ControlledWriter writer(dir);
    writer.gate = &writes_may_start;
    {
      AsyncSaveHandle dropped = AsyncSave(s.state, writer, coordinator, groups.Options(rank));
      if (rank == 0) writes_may_start.Notify();
    }  // waits here
    return PathExistsForTest(dir + "/.metadata") ? absl::OkStatus() : absl::InternalError("no .metadata yet");
  });
  for (size_t r = 0; r < statuses.size(); ++r) EXPECT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  ExpectCheckpointHolds(dir, 6.0f);
}

TEST(AsyncSaveTest, AFailedSaveKeepsItsErrorWhenTheNextSaveQueuesBehindIt) {
  const std::string dir = NewTempPath("async_queue");
  Groups groups;
  std::vector<absl::Status> first(kWorld), second(kWorld);
  groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 7.0f);
    ControlledWriter failing(dir + "/first");
    if (rank == 1) failing.failure = absl::DataLossError("disk gone");
    FileSystemWriter writer(dir + "/second");
    AsyncSaveHandle a = AsyncSave(s.state, failing, coordinator, groups.Options(rank));
    AsyncSaveHandle b = AsyncSave(s.state, writer, coordinator, groups.Options(rank));
    EXPECT_TRUE(a.Ready());  // b waited for it
    second[rank] = b.Wait().status();
    first[rank] = a.Wait().status();
    EXPECT_EQ(a.Wait().status(), first[rank]);  // Wait() again: the same result
    return absl::OkStatus();
  });
  ExpectFailedOnRank1Everywhere(first, "disk gone");
  for (int64_t r = 0; r < kWorld; ++r) EXPECT_TRUE(second[r].ok()) << r << ": " << second[r];
  EXPECT_FALSE(PathExistsForTest(dir + "/first/.metadata"));
  ExpectCheckpointHolds(dir + "/second", 7.0f);
}

TEST(AsyncSaveTest, ManyRanksNeedABackgroundCoordinatorOfTheirOwn) {
  Groups groups;
  std::vector<absl::Status> statuses = groups.main.Run([&](int64_t rank, Coordinator& coordinator) {
    RankState s = MakeRankState(rank, 8.0f);
    FileSystemWriter writer(NewTempPath("async_no_background"));
    AsyncSaveOptions same;
    same.background_coordinator = &coordinator;
    absl::Status same_status = AsyncSave(s.state, writer, coordinator, same).Wait().status();
    EXPECT_EQ(same_status.code(), absl::StatusCode::kInvalidArgument) << same_status;
    return AsyncSave(s.state, writer, coordinator).Wait().status();
  });
  for (const absl::Status& status : statuses) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("background_coordinator"));
  }
  AsyncSaveHandle empty;
  EXPECT_FALSE(empty.Ready());
  EXPECT_EQ(empty.Wait().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AsyncSaveTest, ASingleRankNeedsNoBackgroundCoordinator) {
  const std::string dir = NewTempPath("async_single");
  at::Tensor w = at::arange(0, 100, at::kDouble);
  StateDict state = Dict({{"w", Value(w)}});
  FileSystemWriter writer(dir);
  SingleProcessCoordinator coordinator;
  AsyncSaveHandle save = AsyncSave(state, writer, coordinator);
  w.zero_();
  ASSERT_TRUE(save.Wait().ok());
  at::Tensor loaded = at::ones({100}, at::kDouble);
  StateDict into = Dict({{"w", Value(loaded)}});
  FileSystemReader reader(dir);
  ASSERT_TRUE(Load(into, reader, coordinator).ok());
  EXPECT_TRUE(BitwiseEqual(loaded, at::arange(0, 100, at::kDouble)));
}

}  // namespace
}  // namespace dcplan
