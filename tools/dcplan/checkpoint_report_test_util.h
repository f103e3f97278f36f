#ifndef DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_TEST_UTIL_H_
#define DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_TEST_UTIL_H_

// Checkpoints for the inspect and verify tests: writable copies of the
// PyTorch-written fixtures and a small checkpoint saved by dcplan.

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/state_dict.h"
#include "testing/test_files.h"

namespace dcplan::tools::testing_util {

using ::dcplan::test_files::NewTempDir;

// What a subcommand printed and returned.
struct CommandRun {
  int status = 0;
  std::string out;
  std::string err;
};

using SubcommandMain = int (*)(const std::vector<std::string>& args, std::string* out, std::string* err);

inline CommandRun RunSubcommand(SubcommandMain main, const std::vector<std::string>& args) {
  CommandRun run;
  run.status = main(args, &run.out, &run.err);
  return run;
}

inline bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A writable copy of the fixture checkpoint `name` (fsdp2_toy, tp2d_4rank);
// the runfiles copies are read-only.
inline std::string CopyFixture(const std::string& name) {
  return test_files::CopyRunfilesDirectory("api/testdata/fixtures/" + name);
}

// The file's bytes ("" when it cannot be read).
inline std::string ReadBytes(const std::string& path) { return test_files::ReadFile(path).value_or(""); }

inline void WriteBytes(const std::string& path, const std::string& bytes) { test_files::WriteFile(path, bytes); }

// What SaveDcplanCheckpoint writes, from two ranks:
//   "w"     float32 [6, 4], rows 0-2 from rank 0, rows 3-5 from rank 1
//           (elements 0, 1, ..., 23);
//   "bias"  int64 [5] (0..4), "step" int 7 and "name" str "dcplan", held by
//           rank 0 only (so rank 0's file holds them: the default planner's
//           dedup would pick the writer of replicated items by balance).
// Rank 1's file holds only w's second chunk.
inline constexpr int64_t kSavedRanks = 2;

inline absl::Status SaveDcplanCheckpoint(const std::string& directory) {
  const at::Tensor w = at::arange(24, at::kFloat).reshape({6, 4});
  const at::Tensor bias = at::arange(5, at::kLong);
  InProcessGroup group(kSavedRanks, absl::Seconds(60));
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    ShardedTensorValue sharded;
    sharded.global_shape = {6, 4};
    sharded.dtype = at::kFloat;
    sharded.local_shards.push_back(LocalShard{w.narrow(0, 3 * rank, 3).clone(), {3 * rank, 0}});
    StateDict state = rank == 0 ? Dict({{"w", Value(sharded)},
                                        {"bias", Value(bias.clone())},
                                        {"step", Value(c10::IValue(int64_t{7}))},
                                        {"name", Value(c10::IValue(std::string("dcplan")))}})
                                : Dict({{"w", Value(sharded)}});
    FileSystemWriter writer(directory, FileSystemWriterOptions{/*overwrite=*/false, /*sync_files=*/false});
    return Save(state, writer, coordinator).status();
  });
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace dcplan::tools::testing_util

#endif  // DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_TEST_UTIL_H_
