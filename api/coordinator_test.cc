#include "api/coordinator.h"

#include <atomic>
#include <functional>
#include <map>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::HasSubstr;

// Success paths must never hit the timeout, even on a loaded machine.
constexpr absl::Duration kGenerous = absl::Seconds(120);
// Failure paths wait this long for a rank that never comes.
constexpr absl::Duration kShort = absl::Milliseconds(200);

std::vector<std::string> Labels(const std::string& prefix, int64_t count) {
  std::vector<std::string> labels;
  for (int64_t r = 0; r < count; ++r) labels.push_back(absl::StrCat(prefix, r));
  return labels;
}

void ExpectAllOk(const std::vector<absl::Status>& statuses) {
  for (size_t r = 0; r < statuses.size(); ++r) EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
}

// --- SingleProcessCoordinator ------------------------------------------------------

TEST(SingleProcessCoordinatorTest, EveryCollectiveIsLocal) {
  SingleProcessCoordinator single;
  EXPECT_EQ(single.rank(), 0);
  EXPECT_EQ(single.world_size(), 1);
  EXPECT_TRUE(single.is_coordinator());
  EXPECT_EQ(single.Gather("g").value(), std::vector<std::string>{"g"});
  EXPECT_EQ(single.Scatter({"s"}).value(), "s");
  EXPECT_EQ(single.Broadcast("b").value(), "b");
  EXPECT_EQ(single.AllGather("a").value(), std::vector<std::string>{"a"});
  EXPECT_TRUE(single.Barrier().ok());
}

TEST(SingleProcessCoordinatorTest, ScatterNeedsExactlyOneValue) {
  SingleProcessCoordinator single;
  EXPECT_EQ(single.Scatter({}).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> two = single.Scatter({"a", "b"});
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(two.status().message()), HasSubstr("passed 2 values for 1 rank"));
}

// --- InProcessGroup: values --------------------------------------------------------

// One round of every collective; each value carries the round number so that
// a value from another round (cross-talk) is caught.
absl::Status OneRoundOfEach(int round, int64_t rank, Coordinator& c) {
  const int64_t n = c.world_size();
  const std::string tag = absl::StrCat("round", round, "/");

  absl::StatusOr<std::vector<std::string>> gathered = c.Gather(absl::StrCat(tag, "g", rank));
  if (!gathered.ok()) return gathered.status();
  EXPECT_EQ(*gathered, rank == 0 ? Labels(tag + "g", n) : std::vector<std::string>()) << "rank " << rank;

  absl::StatusOr<std::string> scattered = c.Scatter(rank == 0 ? Labels(tag + "s", n) : std::vector<std::string>());
  if (!scattered.ok()) return scattered.status();
  EXPECT_EQ(*scattered, absl::StrCat(tag, "s", rank));

  absl::StatusOr<std::string> broadcast = c.Broadcast(rank == 0 ? tag + "b" : absl::StrCat("ignored", rank));
  if (!broadcast.ok()) return broadcast.status();
  EXPECT_EQ(*broadcast, tag + "b") << "rank " << rank;

  absl::StatusOr<std::vector<std::string>> all = c.AllGather(absl::StrCat(tag, "a", rank));
  if (!all.ok()) return all.status();
  EXPECT_EQ(*all, Labels(tag + "a", n)) << "rank " << rank;

  return c.Barrier();
}

class InProcessGroupSizeTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(InProcessGroupSizeTest, CollectivesDeliverTheRightValuesHundredTimesInARow) {
  const int64_t n = GetParam();
  InProcessGroup group(n, kGenerous);
  EXPECT_EQ(group.world_size(), n);
  std::vector<absl::Status> statuses = group.Run([n](int64_t rank, Coordinator& c) -> absl::Status {
    EXPECT_EQ(c.rank(), rank);
    EXPECT_EQ(c.world_size(), n);
    EXPECT_EQ(c.is_coordinator(), rank == 0);
    for (int round = 0; round < 100; ++round) {
      absl::Status status = OneRoundOfEach(round, rank, c);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  });
  ASSERT_EQ(statuses.size(), static_cast<size_t>(n));
  ExpectAllOk(statuses);
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, InProcessGroupSizeTest, ::testing::Values(1, 2, 4, 8));

TEST(InProcessGroupTest, CoordinatorReturnsTheRanksOwnObject) {
  InProcessGroup group(3, kGenerous);
  for (int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(group.coordinator(r).rank(), r);
    EXPECT_EQ(&group.coordinator(r), &group.coordinator(r));
  }
}

TEST(InProcessGroupTest, InfiniteTimeoutWorks) {
  InProcessGroup group(2, absl::InfiniteDuration());
  ExpectAllOk(group.Run([](int64_t rank, Coordinator& c) { return OneRoundOfEach(0, rank, c); }));
}

// --- InProcessGroup: failures ------------------------------------------------------

TEST(InProcessGroupTest, MissingRankTimesOutOnEveryWaitingRank) {
  InProcessGroup group(4, kShort);
  std::vector<absl::Status> statuses = group.Run([](int64_t rank, Coordinator& c) -> absl::Status {
    if (rank == 3) return absl::OkStatus();  // never arrives
    return c.Gather("x").status();
  });
  for (int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(statuses[r], absl::DeadlineExceededError(
                               "collective 'gather' #1 timed out after 200ms waiting for rank 3"))
        << "rank " << r;
  }
  EXPECT_TRUE(statuses[3].ok());
}

TEST(InProcessGroupTest, TimeoutNamesEveryMissingRankAndTheCollectiveNumber) {
  InProcessGroup group(4, kShort);
  std::vector<absl::Status> statuses = group.Run([](int64_t rank, Coordinator& c) -> absl::Status {
    for (int i = 0; i < 2; ++i) {
      absl::Status status = c.Barrier();
      if (!status.ok()) return status;
    }
    if (rank >= 2) return absl::OkStatus();  // leave before collective #3
    return c.AllGather("x").status();
  });
  for (int64_t r = 0; r < 2; ++r) {
    EXPECT_EQ(statuses[r], absl::DeadlineExceededError(
                               "collective 'all_gather' #3 timed out after 200ms waiting for ranks 2, 3"))
        << "rank " << r;
  }
  EXPECT_TRUE(statuses[2].ok());
  EXPECT_TRUE(statuses[3].ok());
}

// Counts ranks past a point; others wait for a count.
class Latch {
 public:
  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    changed_.notify_all();
  }
  void WaitFor(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return count_ >= count; });
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int count_ = 0;
};

TEST(InProcessGroupTest, LateRankGetsTheTimeoutThenTheGroupRealigns) {
  InProcessGroup group(3, absl::Seconds(1));
  Latch timed_out;   // ranks 0 and 1 returned from collective #1
  Latch late_done;   // rank 2 returned from collective #1
  std::vector<absl::Status> first(3);
  std::vector<absl::StatusOr<std::vector<std::string>>> second(3, absl::UnknownError("not run"));
  ExpectAllOk(group.Run([&](int64_t rank, Coordinator& c) -> absl::Status {
    if (rank == 2) {
      timed_out.WaitFor(2);
      first[rank] = c.Barrier();
      late_done.CountDown();
    } else {
      first[rank] = c.Barrier();
      timed_out.CountDown();
      late_done.WaitFor(1);
    }
    second[rank] = c.AllGather(absl::StrCat("r", rank));
    return absl::OkStatus();
  }));
  const absl::Status expected =
      absl::DeadlineExceededError("collective 'barrier' #1 timed out after 1s waiting for rank 2");
  for (int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(first[r], expected) << "rank " << r;
    ASSERT_TRUE(second[r].ok()) << "rank " << r << ": " << second[r].status();
    EXPECT_EQ(*second[r], Labels("r", 3));
  }
}

TEST(InProcessGroupTest, DifferentCollectivesAtTheSamePositionFailEveryRank) {
  InProcessGroup group(4, kGenerous);
  std::vector<absl::Status> mismatched(4);
  std::vector<absl::Status> after = group.Run([&](int64_t rank, Coordinator& c) -> absl::Status {
    mismatched[rank] = rank == 2 ? c.Broadcast("b").status() : c.Gather("g").status();
    // All ranks left collective #1, so #2 lines up again.
    return c.Barrier();
  });
  ExpectAllOk(after);
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(mismatched[r].code(), absl::StatusCode::kFailedPrecondition) << "rank " << r << ": " << mismatched[r];
    const std::string message(mismatched[r].message());
    EXPECT_THAT(message, HasSubstr("collective #1 differs between ranks"));
    EXPECT_THAT(message, HasSubstr("'broadcast'"));
    EXPECT_THAT(message, HasSubstr("'gather'"));
    EXPECT_THAT(message, HasSubstr("rank 2"));
  }
}

TEST(InProcessGroupTest, ScatterWithTheWrongCountFailsEveryRank) {
  InProcessGroup group(4, kGenerous);
  std::vector<absl::Status> statuses = group.Run([](int64_t rank, Coordinator& c) -> absl::Status {
    return c.Scatter(rank == 0 ? Labels("s", 3) : std::vector<std::string>()).status();
  });
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(statuses[r], absl::InvalidArgumentError(
                               "collective 'scatter' #1: the coordinator (rank 0) passed 3 values for 4 ranks"))
        << "rank " << r;
  }
}

TEST(InProcessGroupTest, BadRankOrWorldSizeIsAnErrorNotACrash) {
  InProcessGroup group(4, kGenerous);
  Coordinator& stray = group.coordinator(4);
  EXPECT_EQ(stray.rank(), 4);
  EXPECT_EQ(stray.Barrier(), absl::InvalidArgumentError("InProcessGroup: rank 4 is outside [0, 4)"));
  EXPECT_EQ(group.coordinator(-1).Gather("x").status().code(), absl::StatusCode::kInvalidArgument);

  InProcessGroup empty(0, kGenerous);
  const absl::Status expected = absl::InvalidArgumentError("InProcessGroup: world size must be at least 1, got 0");
  EXPECT_EQ(empty.coordinator(0).AllGather("x").status(), expected);
  bool called = false;
  EXPECT_EQ(empty.Run([&](int64_t, Coordinator&) {
    called = true;
    return absl::OkStatus();
  }),
            std::vector<absl::Status>{expected});
  EXPECT_FALSE(called);
}

// --- StepRunner --------------------------------------------------------------------

using MapFn = std::function<absl::StatusOr<std::string>()>;
using PerRankReduceFn = std::function<absl::StatusOr<std::vector<std::string>>(std::vector<std::string>)>;
using OneReduceFn = std::function<absl::StatusOr<std::string>(std::vector<std::string>)>;

// Each rank's outcome of one step, collected by the threads of a group.
template <typename T>
std::vector<absl::StatusOr<T>> RunStep(int64_t world_size,
                                       const std::function<absl::StatusOr<T>(int64_t, StepRunner&)>& step) {
  InProcessGroup group(world_size, kGenerous);
  std::vector<absl::StatusOr<T>> outcomes(world_size, absl::UnknownError("not run"));
  ExpectAllOk(group.Run([&](int64_t rank, Coordinator& c) {
    StepRunner runner(c);
    outcomes[rank] = step(rank, runner);
    return absl::OkStatus();
  }));
  return outcomes;
}

template <typename T>
void ExpectSameErrorEverywhere(const std::vector<absl::StatusOr<T>>& outcomes, const absl::Status& expected) {
  for (size_t r = 0; r < outcomes.size(); ++r) EXPECT_EQ(outcomes[r].status(), expected) << "rank " << r;
}

// Rank r's map: "p<r>", or the failure given for r.
MapFn MapOrFail(int64_t rank, const std::map<int64_t, absl::Status>& failures) {
  return [rank, failures]() -> absl::StatusOr<std::string> {
    auto it = failures.find(rank);
    if (it != failures.end()) return it->second;
    return absl::StrCat("p", rank);
  };
}

// The coordinator's reduce: every rank gets "<all payloads joined>-><rank>".
PerRankReduceFn JoinPerRank(std::atomic<int>& calls) {
  return [&calls](std::vector<std::string> payloads) -> absl::StatusOr<std::vector<std::string>> {
    ++calls;
    std::vector<std::string> results;
    for (size_t r = 0; r < payloads.size(); ++r) results.push_back(absl::StrCat(absl::StrJoin(payloads, ","), "->", r));
    return results;
  };
}

absl::StatusOr<std::string> ReduceScatterStep(int64_t rank, StepRunner& runner,
                                              const std::map<int64_t, absl::Status>& failures,
                                              std::atomic<int>& reduce_calls) {
  return runner.ReduceScatter("plan", MapOrFail(rank, failures), JoinPerRank(reduce_calls));
}

TEST(StepRunnerTest, ReduceScatterAllSucceed) {
  std::atomic<int> reduce_calls{0};
  auto outcomes = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return ReduceScatterStep(rank, runner, {}, reduce_calls);
  });
  EXPECT_EQ(reduce_calls.load(), 1);  // on the coordinator only
  for (int64_t r = 0; r < 4; ++r) {
    ASSERT_TRUE(outcomes[r].ok()) << outcomes[r].status();
    EXPECT_EQ(*outcomes[r], absl::StrCat("p0,p1,p2,p3->", r));
  }
}

TEST(StepRunnerTest, ReduceScatterOneMapFailsEveryRankGetsTheSameError) {
  std::atomic<int> reduce_calls{0};
  const std::map<int64_t, absl::Status> failures = {{1, absl::NotFoundError("no file")}};
  auto outcomes = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return ReduceScatterStep(rank, runner, failures, reduce_calls);
  });
  EXPECT_EQ(reduce_calls.load(), 0);
  ExpectSameErrorEverywhere(outcomes,
                            absl::NotFoundError("checkpoint step 'plan' failed on 1 of 4 ranks:\n  rank 1: no file"));
}

TEST(StepRunnerTest, ReduceScatterSeveralFailuresListedInRankOrderWithTheLowestRanksCode) {
  std::atomic<int> reduce_calls{0};
  const std::map<int64_t, absl::Status> failures = {{3, absl::DataLossError("disk")},
                                                    {1, absl::PermissionDeniedError("denied")}};
  auto outcomes = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return ReduceScatterStep(rank, runner, failures, reduce_calls);
  });
  EXPECT_EQ(reduce_calls.load(), 0);
  ExpectSameErrorEverywhere(outcomes, absl::PermissionDeniedError("checkpoint step 'plan' failed on 2 of 4 ranks:\n"
                                                                  "  rank 1: denied\n"
                                                                  "  rank 3: disk"));
}

TEST(StepRunnerTest, ReduceFailureIsRecordedUnderTheCoordinator) {
  auto outcomes = RunStep<std::string>(4, [](int64_t rank, StepRunner& runner) {
    return runner.ReduceScatter("plan", MapOrFail(rank, {}), [](std::vector<std::string>) {
      return absl::StatusOr<std::vector<std::string>>(absl::ResourceExhaustedError("too big"));
    });
  });
  ExpectSameErrorEverywhere(
      outcomes, absl::ResourceExhaustedError("checkpoint step 'plan' failed on 1 of 4 ranks:\n  rank 0: too big"));
}

TEST(StepRunnerTest, ReduceWithTheWrongNumberOfResultsFailsEveryRank) {
  auto outcomes = RunStep<std::string>(4, [](int64_t rank, StepRunner& runner) {
    return runner.ReduceScatter("plan", MapOrFail(rank, {}), [](std::vector<std::string>) {
      return absl::StatusOr<std::vector<std::string>>(std::vector<std::string>{"a", "b", "c"});
    });
  });
  ExpectSameErrorEverywhere(outcomes, absl::InternalError("checkpoint step 'plan' failed on 1 of 4 ranks:\n"
                                                          "  rank 0: reduce returned 3 results for 4 ranks"));
}

TEST(StepRunnerTest, MultiLineMessagesAreIndentedUnderTheirRank) {
  const std::map<int64_t, absl::Status> failures = {{2, absl::AbortedError("first\nsecond")}};
  auto outcomes = RunStep<std::string>(3, [&](int64_t rank, StepRunner& runner) {
    return runner.AllReduce("write", MapOrFail(rank, failures),
                            [](std::vector<std::string>) -> absl::StatusOr<std::string> { return "unused"; });
  });
  ExpectSameErrorEverywhere(
      outcomes, absl::AbortedError("checkpoint step 'write' failed on 1 of 3 ranks:\n  rank 2: first\n    second"));
}

TEST(StepRunnerTest, MissingMapFunctionFailsThatRank) {
  auto outcomes = RunStep<std::vector<std::string>>(2, [](int64_t rank, StepRunner& runner) {
    return runner.AllGather("read", rank == 1 ? MapFn() : MapOrFail(rank, {}));
  });
  ExpectSameErrorEverywhere(outcomes, absl::InvalidArgumentError("checkpoint step 'read' failed on 1 of 2 ranks:\n"
                                                                 "  rank 1: step 'read' has no map function"));
}

OneReduceFn JoinAll(std::atomic<int>& calls) {
  return [&calls](std::vector<std::string> payloads) -> absl::StatusOr<std::string> {
    ++calls;
    return absl::StrJoin(payloads, "+");
  };
}

TEST(StepRunnerTest, AllReduceSuccessFailureAndReduceFailure) {
  std::atomic<int> calls{0};
  auto ok = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return runner.AllReduce("write", MapOrFail(rank, {}), JoinAll(calls));
  });
  EXPECT_EQ(calls.load(), 1);
  for (const auto& outcome : ok) EXPECT_EQ(outcome.value_or("error"), "p0+p1+p2+p3");

  const std::map<int64_t, absl::Status> failures = {{3, absl::UnavailableError("gone")},
                                                    {1, absl::DataLossError("short write")}};
  auto failed = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return runner.AllReduce("write", MapOrFail(rank, failures), JoinAll(calls));
  });
  EXPECT_EQ(calls.load(), 1);
  ExpectSameErrorEverywhere(failed, absl::DataLossError("checkpoint step 'write' failed on 2 of 4 ranks:\n"
                                                        "  rank 1: short write\n"
                                                        "  rank 3: gone"));

  auto reduce_failed = RunStep<std::string>(4, [&](int64_t rank, StepRunner& runner) {
    return runner.AllReduce("write", MapOrFail(rank, {}), [](std::vector<std::string>) -> absl::StatusOr<std::string> {
      return absl::FailedPreconditionError("no metadata");
    });
  });
  ExpectSameErrorEverywhere(reduce_failed, absl::FailedPreconditionError(
                                               "checkpoint step 'write' failed on 1 of 4 ranks:\n  rank 0: no metadata"));
}

TEST(StepRunnerTest, AllGatherSuccessAndFailure) {
  auto ok = RunStep<std::vector<std::string>>(
      4, [](int64_t rank, StepRunner& runner) { return runner.AllGather("read", MapOrFail(rank, {})); });
  for (const auto& outcome : ok) {
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(*outcome, Labels("p", 4));
  }

  const std::map<int64_t, absl::Status> failures = {{2, absl::OutOfRangeError("past the end")},
                                                    {0, absl::InternalError("bad plan")}};
  auto failed = RunStep<std::vector<std::string>>(
      4, [&](int64_t rank, StepRunner& runner) { return runner.AllGather("read", MapOrFail(rank, failures)); });
  ExpectSameErrorEverywhere(failed, absl::InternalError("checkpoint step 'read' failed on 2 of 4 ranks:\n"
                                                        "  rank 0: bad plan\n"
                                                        "  rank 2: past the end"));
}

TEST(StepRunnerTest, CollectiveTimeoutIsReturnedAsIs) {
  InProcessGroup group(3, kShort);
  std::vector<absl::StatusOr<std::string>> outcomes(3, absl::UnknownError("not run"));
  ExpectAllOk(group.Run([&](int64_t rank, Coordinator& c) {
    if (rank == 1) return absl::OkStatus();  // never takes part
    StepRunner runner(c);
    outcomes[rank] = runner.AllReduce("plan", MapOrFail(rank, {}), [](std::vector<std::string>) {
      return absl::StatusOr<std::string>("unused");
    });
    return absl::OkStatus();
  }));
  const absl::Status expected =
      absl::DeadlineExceededError("collective 'gather' #1 timed out after 200ms waiting for rank 1");
  EXPECT_EQ(outcomes[0].status(), expected);
  EXPECT_EQ(outcomes[2].status(), expected);
}

TEST(StepRunnerTest, SingleProcessFailureListsRankZero) {
  SingleProcessCoordinator single;
  StepRunner runner(single);
  EXPECT_EQ(runner.AllGather("read", [] { return absl::StatusOr<std::string>(absl::NotFoundError("x")); }).status(),
            absl::NotFoundError("checkpoint step 'read' failed on 1 of 1 ranks:\n  rank 0: x"));
  std::atomic<int> calls{0};
  EXPECT_EQ(runner.ReduceScatter("plan", MapOrFail(0, {}), JoinPerRank(calls)).value_or("error"), "p0->0");
  EXPECT_EQ(runner.AllReduce("write", MapOrFail(0, {}), JoinAll(calls)).value_or("error"), "p0");
}

// A protocol round trip reused back to back: plan, write, read, 20 times.
TEST(StepRunnerTest, StepsRepeatWithoutCrossTalk) {
  auto outcomes = RunStep<std::string>(4, [](int64_t rank, StepRunner& runner) -> absl::StatusOr<std::string> {
    for (int i = 0; i < 20; ++i) {
      const std::string tag = absl::StrCat(i, ":");
      absl::StatusOr<std::string> plan = runner.ReduceScatter(
          "plan", [&]() -> absl::StatusOr<std::string> { return absl::StrCat(tag, rank); },
          [&](std::vector<std::string> all) -> absl::StatusOr<std::vector<std::string>> {
            EXPECT_EQ(all, Labels(tag, 4));
            std::vector<std::string> out;
            for (const std::string& one : all) out.push_back("plan " + one);
            return out;
          });
      if (!plan.ok()) return plan.status();
      EXPECT_EQ(*plan, absl::StrCat("plan ", tag, rank));
      absl::StatusOr<std::string> written = runner.AllReduce(
          "write", [&]() -> absl::StatusOr<std::string> { return *plan; },
          [](std::vector<std::string> all) -> absl::StatusOr<std::string> { return absl::StrJoin(all, "|"); });
      if (!written.ok()) return written.status();
      EXPECT_EQ(*written, absl::StrCat("plan ", tag, 0, "|plan ", tag, 1, "|plan ", tag, 2, "|plan ", tag, 3));
      absl::StatusOr<std::vector<std::string>> read =
          runner.AllGather("read", [&]() -> absl::StatusOr<std::string> { return absl::StrCat(tag, rank); });
      if (!read.ok()) return read.status();
      EXPECT_EQ(*read, Labels(tag, 4));
    }
    return std::string("done");
  });
  for (const auto& outcome : outcomes) EXPECT_EQ(outcome.value_or(std::string(outcome.status().message())), "done");
}

// 8 MiB per rank (ranks 0..3), with a rank-specific pattern so a swapped or
// truncated payload is caught. Built once: the threads only read them.
const std::string& BigPayload(int64_t rank) {
  static const std::vector<std::string>* const payloads = [] {
    auto* all = new std::vector<std::string>();
    for (int64_t r = 0; r < 4; ++r) {
      std::string payload(8 << 20, '\0');
      for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 31 + r * 7) & 0xFF);
      all->push_back(std::move(payload));
    }
    return all;
  }();
  return (*payloads)[rank];
}

TEST(StepRunnerTest, LargePayloadsPassThrough) {
  auto outcomes = RunStep<std::string>(4, [](int64_t rank, StepRunner& runner) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> mine = runner.ReduceScatter(
        "plan", [rank]() -> absl::StatusOr<std::string> { return BigPayload(rank); },
        [](std::vector<std::string> all) -> absl::StatusOr<std::vector<std::string>> {
          for (size_t r = 0; r < all.size(); ++r) EXPECT_TRUE(all[r] == BigPayload(r)) << "gathered rank " << r;
          std::vector<std::string> out(all.rbegin(), all.rend());  // rank r gets rank (3 - r)'s payload
          return out;
        });
    if (!mine.ok()) return mine.status();
    EXPECT_TRUE(*mine == BigPayload(3 - rank)) << "rank " << rank;

    absl::StatusOr<std::string> reduced = runner.AllReduce(
        "write", [rank]() -> absl::StatusOr<std::string> { return BigPayload(rank); },
        [](std::vector<std::string> all) -> absl::StatusOr<std::string> { return std::move(all[2]); });
    if (!reduced.ok()) return reduced.status();
    EXPECT_TRUE(*reduced == BigPayload(2)) << "rank " << rank;

    absl::StatusOr<std::vector<std::string>> everyone =
        runner.AllGather("read", [rank]() -> absl::StatusOr<std::string> { return BigPayload(rank); });
    if (!everyone.ok()) return everyone.status();
    EXPECT_EQ(everyone->size(), 4u);
    for (size_t r = 0; r < everyone->size(); ++r) EXPECT_TRUE((*everyone)[r] == BigPayload(r)) << "rank " << r;
    return std::string("done");
  });
  for (const auto& outcome : outcomes) EXPECT_EQ(outcome.value_or(std::string(outcome.status().message())), "done");
}

}  // namespace
}  // namespace dcplan
