#ifndef DCPLAN_API_C10D_COORDINATOR_H_
#define DCPLAN_API_C10D_COORDINATOR_H_

// A Coordinator over a c10d ProcessGroup (one rank per process), plus the
// rendezvous that builds one over TCP with the Gloo backend, the way
// torch.distributed's env:// initialisation does.
//
// Wire protocol. Byte strings travel as uint8 CPU tensors. Every collective
// starts with the same fixed-size header all-gather (kind, sequence number,
// and a size and a count), so that every rank sees every rank's header and
// takes the same decision:
//   - ranks that call different collectives (or are out of step) fail with
//     FailedPrecondition "collective #n differs between ranks: ...";
//   - a Scatter whose coordinator list has the wrong length fails with
//     InvalidArgument on every rank;
// and no payload moves in either case, so the group stays usable. Then the
// payload step, padded to the largest size the headers announced (skipped when
// that is 0):
//   Gather     gather to rank 0;       AllGather  all-gather;
//   Broadcast  broadcast from rank 0;  Scatter    scatter from rank 0, each
//                                      chunk prefixed by its 8-byte length;
//   Barrier    nothing more (the header all-gather already waits for all).
//
// Failures of the transport itself (a rank that does not arrive within the
// timeout, a peer that died) are returned as DeadlineExceeded (timeouts) or
// Unavailable (anything else c10d throws), naming the collective, its number
// and the rank, and, when liveness is watched (ConnectC10d does), which ranks
// stopped responding ("rank 2 stopped responding ...: the process is
// presumably dead"). After such a failure the ranks may be out of step, so the
// coordinator is broken: every later collective fails with FailedPrecondition
// naming the first failure.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/util/intrusive_ptr.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/coordinator.h"

// Forward-declared so that users of ConnectC10d do not compile ATen; code that
// builds a C10dCoordinator from its own process group includes
// <torch/csrc/distributed/c10d/ProcessGroup.hpp> (intrusive_ptr needs it).
namespace c10d {
class ProcessGroup;
class Store;
}  // namespace c10d

namespace dcplan {
namespace internal {
class RankLiveness;
}  // namespace internal

class C10dCoordinator : public Coordinator {
 public:
  // `process_group` may use any backend that supports allgather, gather,
  // scatter and broadcast of uint8 CPU tensors (Gloo does). `timeout` bounds
  // each tensor operation: it is the operation's own (backend) timeout, and
  // the wait for the operation gives up 1 s after it in case a backend
  // ignores it. It is clamped to [1 ms, 30 days] (absl::InfiniteDuration()
  // gives 30 days). Gloo in LibTorch 1.13 ignores the per-operation timeout of
  // its collectives and uses the one its process group was created with, so
  // give both the same value (ConnectC10d does): with a shorter coordinator
  // timeout the wait gives up first, and the abandoned backend operation can
  // still pair with a late rank's next one (which then fails, e.g. as a
  // mismatch). A null process group gives a coordinator whose collectives all fail
  // with FailedPrecondition (rank 0, world size 1).
  C10dCoordinator(c10::intrusive_ptr<c10d::ProcessGroup> process_group, absl::Duration timeout);
  ~C10dCoordinator() override;

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_size_; }

  // The Coordinator contract (api/coordinator.h). One thread at a time: a
  // call made while another collective of this coordinator is running fails
  // with FailedPrecondition.
  absl::StatusOr<std::vector<std::string>> Gather(std::string local) override;
  absl::StatusOr<std::string> Scatter(std::vector<std::string> per_rank) override;
  absl::StatusOr<std::string> Broadcast(std::string from_coordinator) override;
  absl::StatusOr<std::vector<std::string>> AllGather(std::string local) override;
  absl::Status Barrier() override;

  // Traffic of this rank so far, headers and padding included, counted as if
  // every rank exchanged data directly with every other rank (an all-gather
  // of P padded bytes sends P to each of the other world_size - 1 ranks; a
  // gather sends P from each non-coordinator to rank 0; a broadcast or a
  // scatter sends from rank 0 to each other rank). This is the volume the
  // protocol asks for, independent of the backend's algorithm (a ring or a
  // tree may relay bytes through intermediate ranks). Summed over all ranks,
  // bytes_sent() equals bytes_received().
  int64_t bytes_sent() const { return bytes_sent_.load(); }
  int64_t bytes_received() const { return bytes_received_.load(); }

  const c10::intrusive_ptr<c10d::ProcessGroup>& process_group() const { return process_group_; }

  // Names dead ranks in transport failures: starts this rank's heartbeat, a
  // counter in `store` bumped every `interval`, and after a failure compares
  // every rank's counter over 2.5 intervals (api/internal/c10d_liveness.h).
  // Every rank of the group should call it with the same store and
  // interval. `store_description` names the store in messages ("the TCPStore
  // at host:port"). ConnectC10d calls it with its own client of the
  // rendezvous store. Call before the first collective.
  void WatchLiveness(c10::intrusive_ptr<c10d::Store> store, std::string store_description,
                     absl::Duration interval = absl::Seconds(1));

 private:
  // One collective in progress: holds the one-caller guard, numbers the
  // collective, runs its tensor operations and counts their bytes.
  class Call;

  c10::intrusive_ptr<c10d::ProcessGroup> process_group_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  absl::Duration timeout_;
  std::atomic<bool> busy_{false};
  int64_t collectives_called_ = 0;  // only touched by the one caller
  absl::Status broken_;             // the first transport failure, if any
  std::unique_ptr<internal::RankLiveness> liveness_;
  std::atomic<int64_t> bytes_sent_{0};
  std::atomic<int64_t> bytes_received_{0};
};

// Where and how the ranks meet.
struct C10dOptions {
  // Rank 0 serves the TCPStore at master_addr:port; the others connect to it.
  std::string master_addr = "127.0.0.1";
  int port = 29500;
  int64_t rank = -1;
  int64_t world_size = -1;
  // Bounds the rendezvous (every rank must arrive within it) and each
  // collective's tensor operations.
  absl::Duration timeout = absl::Seconds(60);
  // Host name or address of this rank's network interface, to which the Gloo
  // transport binds. Empty: "127.0.0.1" when master_addr is a loopback
  // address ("localhost" or 127.x.y.z), else this machine's host name (Gloo's
  // default device).
  std::string local_addr;
  // How often each rank publishes its heartbeat in the store, so that a
  // failure names the ranks that died (C10dCoordinator::WatchLiveness). Zero
  // turns the heartbeat off.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Non-empty: a second process group of the same ranks on the store that
  // an earlier ConnectC10d (with an empty prefix) serves from rank 0: every
  // rank connects as a client and this group's keys (rendezvous,
  // heartbeats) live under the prefix, so both groups can run collectives at
  // the same time (AsyncSave's background coordinator). That first
  // coordinator must outlive this one (rank 0's holds the store's server).
  std::string store_prefix;
};

// The options torchrun (or any env:// launcher) hands a process: RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT, all required. Errors
// (InvalidArgument) name the variable that is missing or malformed; RANK must
// lie in [0, WORLD_SIZE), MASTER_PORT in [1, 65535]. timeout and local_addr
// keep their defaults.
absl::StatusOr<C10dOptions> C10dOptionsFromEnv();

// Rendezvous: creates the TCPStore (rank 0 serves it and waits for all
// world_size ranks) and a ProcessGroupGloo on it. Every rank must call this
// within options.timeout of each other; otherwise each rank that did returns
// DeadlineExceeded or Unavailable (rather than hanging). Invalid options give
// InvalidArgument.
absl::StatusOr<std::unique_ptr<C10dCoordinator>> ConnectC10d(const C10dOptions& options);

}  // namespace dcplan

#endif  // DCPLAN_API_C10D_COORDINATOR_H_
