#ifndef DCPLAN_API_INTERNAL_C10D_LIVENESS_H_
#define DCPLAN_API_INTERNAL_C10D_LIVENESS_H_

// Which ranks of a c10d job are still alive, for error messages.
//
// Gloo reports a dead peer as "Connection reset by peer" without saying which
// peer, and a rank that waits on a dead one only sees its timeout. So every
// rank runs a heartbeat: a thread that increments the store counter
// "dcplan/heartbeat/<rank>" every `interval`. After a transport failure a
// survivor samples every rank's counter twice, `kSamplesApart` intervals
// apart; a counter that did not move belongs to a process that is gone (or
// frozen), whatever its collectives were doing. A process killed with
// SIGKILL stops its heartbeat with it.
//
// Only one survivor (the first to claim it in the store) samples; the others
// wait for its verdict, so the store serves O(world_size) requests after a
// failure rather than O(world_size^2). A survivor whose leader does not post
// a verdict in time samples by itself. There is one verdict per store: after
// a first failure the coordinators are broken anyway.
//
// The store is served by rank 0's process, so when the store itself is
// unreachable the report names rank 0. Because a rank 0 that merely returns
// its error and exits would also take the store away, rank 0 waits after its
// own comparison (at most 2.5 intervals + 2 s) until every rank it found
// alive has finished comparing too.
//
// Cost: one small store write per rank and interval (4096 ranks at the
// default 1 s are 4096 increments per second at the store), and after a
// failure about 2.5 intervals plus 2 * world_size store reads (by the leader).

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/time/time.h"

namespace dcplan::internal {

class RankLiveness {
 public:
  static constexpr double kSamplesApart = 2.5;

  // Starts this rank's heartbeat on `store`, with a first beat before the
  // constructor returns. `store_description` names the store in
  // messages ("the TCPStore at 127.0.0.1:29500"). `store` must be safe to
  // use from the heartbeat thread while the caller uses it (TCPStore
  // serializes its operations); a dedicated client is best.
  RankLiveness(c10::intrusive_ptr<c10d::Store> store, std::string store_description, int64_t rank,
               int64_t world_size, absl::Duration interval);
  // Stops the heartbeat (waits for the thread; it never blocks longer than
  // one store operation).
  ~RankLiveness();
  RankLiveness(const RankLiveness&) = delete;
  RankLiveness& operator=(const RankLiveness&) = delete;

  // After a failure: "; rank 2 stopped responding (its heartbeat did not
  // move in 2.5 s): the process is presumably dead", "; every rank's
  // heartbeat is alive", or "; the TCPStore at ... (served by rank 0) is
  // unreachable (...): rank 0 is presumably dead or has exited". Takes about
  // kSamplesApart intervals.
  std::string DescribeUnresponsiveRanks();

 private:
  void Beat();
  // What DescribeUnresponsiveRanks says, and how many ranks were alive (0
  // when the store was unreachable).
  struct Verdict {
    int64_t alive = 0;
    std::string text;
  };
  Verdict SampleHeartbeats();
  // The verdict of the leading survivor (sampled by this rank if it leads);
  // nullopt if none arrived.
  std::optional<Verdict> LeadersVerdict();
  void ReportDiagnosed();
  void WaitForOtherDiagnoses(int64_t alive);
  void HeartbeatLoop();
  std::string Key(int64_t rank) const;

  c10::intrusive_ptr<c10d::Store> store_;
  std::string store_description_;
  int64_t rank_;
  int64_t world_size_;
  absl::Duration interval_;
  std::mutex mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_C10D_LIVENESS_H_
