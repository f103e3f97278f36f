#ifndef DCPLAN_TOOLS_DCPLAN_DEMO_PROCS_H_
#define DCPLAN_TOOLS_DCPLAN_DEMO_PROCS_H_

// `dcplan demo --procs N`: the demo with one operating-system process per
// rank, meeting over c10d (TCPStore + Gloo on 127.0.0.1) the way torchrun's
// env:// launch does. The parent re-executes its own binary once per rank
// with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set and the hidden
// arguments `demo --rank-worker save|load ...`; each rank saves (or loads
// resharded and verifies) its part of the demo model.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/dcplan/demo_storage.h"

namespace dcplan::tools {

struct ProcsDemoOptions {
  std::string dir;  // empty: a fresh temporary directory, removed afterwards
  bool overwrite = false;
  int64_t save_procs = 4;
  int64_t load_procs = 3;
  int64_t scale_mib = 4;
  // Each rank's rendezvous and collective timeout; a rank still running
  // `timeout` + 30 s after its phase started is killed.
  absl::Duration timeout = absl::Seconds(120);
  // Save with AsyncSave (over a second c10d group) while a stand-in training
  // loop changes the tensors.
  bool async = false;
  DemoFormat format = DemoFormat::kDcp;
};

// Runs the save phase on save_procs processes, then the load phase on
// load_procs processes (on a new port), printing a summary to `out`, one
// progress line per phase to the process's standard error as ranks finish
// (rewritten in place when it is a terminal), and each failed rank's outcome
// and output tail to `err`. 0: every rank of both phases succeeded; 1
// otherwise.
int RunProcsDemo(const ProcsDemoOptions& options, std::string* out, std::string* err);

// The rank side: `args` are the words after `--rank-worker`:
//   save|load --dir DIR --scale MIB --report FILE [--overwrite] [--async] [--timeout-ms T] [--format F]
// Connects with ConnectC10d(C10dOptionsFromEnv()), saves RankStateDict (or
// loads it resharded and checks it with VerifyRankStateDict), and on success
// writes FILE with "seconds=<the Save/Load call's duration> bytes_sent=<the
// coordinator's>". Errors go to `err`. 0 on success, 1 on failure, 2 on a
// usage error.
int RankWorkerMain(const std::vector<std::string>& args, std::string* out, std::string* err);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_DEMO_PROCS_H_
