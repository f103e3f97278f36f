#ifndef DCPLAN_API_COORDINATOR_H_
#define DCPLAN_API_COORDINATOR_H_

// Coordinator: how the ranks of a save or load talk to each other. Only byte
// strings travel (plans and metadata encoded with engine/codec.h), so one
// implementation runs over threads, another over c10d process groups.
//
// Every rank calls every collective in the same order. Rank 0 is the
// coordinator.

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
  // The coordinator passes one string per rank (others pass an empty vector);
  // every rank receives its own.
  virtual absl::StatusOr<std::string> Scatter(std::vector<std::string> per_rank) = 0;
  // The coordinator's bytes, on every rank.
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
// group, then give each thread its rank's coordinator. A collective that not
// every rank reaches within `timeout` fails with DeadlineExceeded naming the
// missing ranks, on every rank that waits.
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
//      rank 1: ...
//      rank 3: ..."
// so that no rank hangs and none succeeds alone.
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
