#ifndef DCPLAN_API_INTERNAL_SUBPROCESS_H_
#define DCPLAN_API_INTERNAL_SUBPROCESS_H_

// Spawning processes for multi-process tests: typically the running test
// binary itself, once per rank, told by environment variables which rank it
// is. Processes are started with posix_spawn (no code runs in a forked copy of
// a possibly multi-threaded parent) and waited for with a deadline, after
// which the stragglers are killed, so a hanging rank fails a test instead of
// hanging it.

#include <sys/types.h>

#include <cstdint>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dcplan::internal {

// The path of the running executable (/proc/self/exe resolved).
absl::StatusOr<std::string> CurrentExecutable();

// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
// It is a random one below the kernel's ephemeral port range, so that no
// outgoing connection takes it in between; only another explicit pick could.
// Falls back to the kernel's pick (port 0) if that range leaves no room.
absl::StatusOr<int> PickFreeLoopbackPort();

// The environment an env:// launcher (torchrun) gives rank `rank` of
// `world_size` ranks meeting on this machine at `port`: RANK, WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, MASTER_PORT (what C10dOptionsFromEnv reads), and
// LOCAL_RANK, LOCAL_WORLD_SIZE (all ranks are on this host; see
// SpareCoreForHelperThreads).
std::vector<std::pair<std::string, std::string>> LoopbackRankEnv(int64_t rank, int64_t world_size, int port);

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is the executable's path
  // Set on top of (replacing same-named variables of) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // If non-empty, the process's stdout and stderr go to this file (truncated);
  // otherwise they are the parent's.
  std::string output_path;
};

struct ProcessOutcome {
  pid_t pid = -1;
  bool exited = false;           // exited normally, with exit_code
  int exit_code = -1;
  int signal = 0;                // the signal that ended it, if any
  bool killed_at_deadline = false;
  // The most resident memory the process (across exec) ever had, from wait4.
  int64_t peak_rss_bytes = 0;

  bool Succeeded() const { return exited && exit_code == 0; }
};

// "exited with code 3", "killed by signal 11", "still running at the deadline (killed)".
std::string ToString(const ProcessOutcome& outcome);

// Starts every process, then waits for all of them, at most `deadline` in
// total (measured from the start); any still running then is killed with
// SIGKILL and reported with killed_at_deadline. Outcomes are in spec order.
// Fails (after killing the ones already started) only if a process cannot be
// started.
absl::StatusOr<std::vector<ProcessOutcome>> RunProcesses(const std::vector<ProcessSpec>& specs,
                                                         absl::Duration deadline);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_SUBPROCESS_H_
