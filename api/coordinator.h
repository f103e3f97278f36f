#ifndef DCPLAN_API_COORDINATOR_H_
#define DCPLAN_API_COORDINATOR_H_

// Coordinator: how the ranks of a save or load talk to each other. Only byte
// strings travel (plans and metadata encoded with engine/codec.h), so one
// implementation runs over threads, another over c10d process groups.
//
// Every rank calls every collective in the same order. Rank 0 is the
// coordinator. A collective's own failure (a timeout, ranks that disagree on
// which collective comes next, a scatter list of the wrong length) is an error
// Status on every rank that takes part, never a hang. An implementation only
// provides the five primitives below; StepRunner builds the checkpoint
// protocol on top of them.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dcplan {

class Coordinator {
 public:
  virtual ~Coordinator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  bool is_coordinator() const { return rank() == 0; }

  // The coordinator receives every rank's bytes (index = rank); other ranks
  // receive an empty vector.
  virtual absl::StatusOr<std::vector<std::string>> Gather(std::string local) = 0;
  // The coordinator passes one string per rank (others pass an empty vector,
  // which is ignored); every rank receives its own. A coordinator list of the
  // wrong length fails the collective with InvalidArgument on every rank.
  virtual absl::StatusOr<std::string> Scatter(std::vector<std::string> per_rank) = 0;
  // The coordinator's bytes, on every rank (other ranks' argument is ignored).
  virtual absl::StatusOr<std::string> Broadcast(std::string from_coordinator) = 0;
  // Every rank's bytes, on every rank.
  virtual absl::StatusOr<std::vector<std::string>> AllGather(std::string local) = 0;
  virtual absl::Status Barrier() = 0;
};

// One process, one rank: every collective is local.
class SingleProcessCoordinator : public Coordinator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  absl::StatusOr<std::vector<std::string>> Gather(std::string local) override;
  absl::StatusOr<std::string> Scatter(std::vector<std::string> per_rank) override;
  absl::StatusOr<std::string> Broadcast(std::string from_coordinator) override;
  absl::StatusOr<std::vector<std::string>> AllGather(std::string local) override;
  absl::Status Barrier() override;
};

// N ranks as threads of one process (tests, the in-process demo). Create one
// group, then give each thread its rank's coordinator; a rank's coordinator
// serves one thread at a time (a second concurrent call on the same rank fails
// with FailedPrecondition).
//
// Collectives are numbered per rank in call order, from 1; the n-th calls of
// all ranks meet. Errors, on every rank involved:
//   - not every rank reaches collective n within `timeout` (measured from each
//     waiting rank's own call; absl::InfiniteDuration() waits forever):
//     DeadlineExceeded, "collective 'gather' #3 timed out after 5s waiting for
//     ranks 2, 3". A rank that arrives after the timeout gets the same error,
//     so the ranks' numbering stays aligned and the next collective works;
//   - ranks call different collectives as number n: FailedPrecondition
//     "collective #n differs between ranks: rank 2 called 'broadcast' but
//     rank 0 called 'gather'; ...", raised as soon as the mismatch is seen;
//   - Scatter with a coordinator list of the wrong length: InvalidArgument.
// A world size below 1 or a rank outside [0, world_size) is not a crash:
// coordinator() then returns a stand-in whose collectives all fail with
// InvalidArgument, and Run returns that one error without calling fn.
// The group must outlive every call on its coordinators.
class InProcessGroup {
 public:
  InProcessGroup(int64_t world_size, absl::Duration timeout = absl::Seconds(60));
  ~InProcessGroup();
  int64_t world_size() const;
  // Valid while the group lives.
  Coordinator& coordinator(int64_t rank);

  // Runs fn(rank, coordinator) on world_size threads and joins them; returns
  // each rank's status.
  std::vector<absl::Status> Run(const std::function<absl::Status(int64_t rank, Coordinator& coordinator)>& fn);

 private:
  class State;
  class RankCoordinator;
  std::shared_ptr<State> state_;
  std::vector<std::unique_ptr<RankCoordinator>> ranks_;
};

// The step protocol of PyTorch's _DistWrapper, with failures made explicit:
// every rank runs a function; any failure, on any rank, becomes the same error
// on every rank, listing each failed rank and its message:
//   "checkpoint step 'write' failed on 2 of 4 ranks:
//     rank 1: ...
//     rank 3: ..."
// so that no rank hangs and none succeeds alone. Details:
//   - each rank's map outcome travels as an envelope (ok + payload, or status
//     code + message; api/internal/step_envelope.h), so failures ride the
//     ordinary collectives;
//   - the coordinator runs reduce only if every map succeeded; a failing reduce
//     (or, for ReduceScatter, one returning other than world_size results) is
//     listed under the coordinator's rank;
//   - the status code is that of the lowest failing rank; ranks are listed in
//     rank order; continuation lines of a multi-line message are indented by
//     four spaces; status payloads do not travel;
//   - an empty map or reduce std::function counts as that rank's failure;
//   - a failure of a collective itself (e.g. DeadlineExceeded) is returned
//     as is, on the ranks that see it.
// Uses only Coordinator's five primitives, so it works over any Coordinator.
class StepRunner {
 public:
  explicit StepRunner(Coordinator& coordinator) : coordinator_(coordinator) {}

  // map on every rank -> gather -> reduce on the coordinator (only if every
  // map succeeded) -> scatter one result per rank.
  absl::StatusOr<std::string> ReduceScatter(
      const std::string& step, const std::function<absl::StatusOr<std::string>()>& map,
      const std::function<absl::StatusOr<std::vector<std::string>>(std::vector<std::string>)>& reduce);
  // map on every rank -> gather -> reduce to one value on the coordinator ->
  // broadcast.
  absl::StatusOr<std::string> AllReduce(const std::string& step,
                                        const std::function<absl::StatusOr<std::string>()>& map,
                                        const std::function<absl::StatusOr<std::string>(std::vector<std::string>)>& reduce);
  // map on every rank -> all-gather; any failure fails every rank.
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& step,
                                                     const std::function<absl::StatusOr<std::string>()>& map);

  Coordinator& coordinator() { return coordinator_; }

 private:
  Coordinator& coordinator_;
};

}  // namespace dcplan

#endif  // DCPLAN_API_COORDINATOR_H_
