#include "tools/dcplan/demo_command.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/async_save.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "tools/dcplan/demo_async.h"
#include "tools/dcplan/demo_model.h"
#include "tools/dcplan/demo_procs.h"
#include "tools/dcplan/demo_storage.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

struct DemoArgs {
  std::string dir;  // empty: a fresh temporary directory, removed afterwards
  bool overwrite = false;
  int64_t save_ranks = 4;
  int64_t load_ranks = 3;
  int64_t scale_mib = 4;
  // --procs: one process per rank (0: in-process ranks).
  int64_t save_procs = 0;
  int64_t load_procs = 0;  // 0: save_procs - 1, at least 1
  int64_t timeout_s = 120;
  bool async = false;  // AsyncSave while a stand-in training loop changes the tensors
  DemoFormat format = DemoFormat::kDcp;
};

absl::StatusOr<DemoArgs> ParseArgs(const std::vector<std::string>& args) {
  DemoArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto next_int = [&](int64_t* out, int64_t min, int64_t max) -> absl::Status {
      if (i + 1 >= args.size() || !absl::SimpleAtoi(args[i + 1], out) || *out < min || *out > max) {
        return absl::InvalidArgumentError(absl::StrCat(arg, " needs a number from ", min, " to ", max));
      }
      ++i;
      return absl::OkStatus();
    };
    absl::Status status;
    if (arg == "--dir" && i + 1 < args.size()) {
      parsed.dir = args[++i];
    } else if (arg == "--overwrite") {
      parsed.overwrite = true;
    } else if (arg == "--async") {
      parsed.async = true;
    } else if (arg == "--format" && i + 1 < args.size()) {
      absl::StatusOr<DemoFormat> format = ParseDemoFormat(args[++i]);
      if (format.ok()) parsed.format = *format;
      status = format.status();
    } else if (arg == "--ranks") {
      status = next_int(&parsed.save_ranks, 1, 64);
    } else if (arg == "--load-ranks") {
      status = next_int(&parsed.load_ranks, 1, 64);
    } else if (arg == "--scale") {
      status = next_int(&parsed.scale_mib, 1, 256);
    } else if (arg == "--procs") {
      status = next_int(&parsed.save_procs, 1, 64);
    } else if (arg == "--load-procs") {
      status = next_int(&parsed.load_procs, 1, 64);
    } else if (arg == "--timeout") {
      status = next_int(&parsed.timeout_s, 1, 86400);
    } else {
      status = absl::InvalidArgumentError(absl::StrCat("unknown argument \"", arg, "\""));
    }
    if (!status.ok()) return status;
  }
  if (parsed.load_procs > 0 && parsed.save_procs == 0) {
    return absl::InvalidArgumentError("--load-procs needs --procs");
  }
  return parsed;
}

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.2f MiB", bytes / 1048576.0); }

std::string Throughput(int64_t bytes, absl::Duration elapsed) {
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-9);
  return absl::StrFormat("%.3f s, %.1f MiB/s", seconds, bytes / 1048576.0 / seconds);
}

// Runs fn on `ranks` threads; the first failure, listing every failing rank.
absl::Status RunRanks(int64_t ranks, const std::function<absl::Status(int64_t, Coordinator&)>& fn) {
  InProcessGroup group(ranks, absl::Seconds(120));
  std::vector<absl::Status> statuses = group.Run(fn);
  for (const absl::Status& s : statuses) {
    if (!s.ok()) return s;  // every rank reports the same aggregated error
  }
  return absl::OkStatus();
}

int Demo(const DemoArgs& args, std::string* out, std::string* err) {
  std::string dir = ResolveUserPath(args.dir);
  const bool temporary = dir.empty();
  if (temporary) {
    std::string pattern = (std::filesystem::temp_directory_path() / "dcplan-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      absl::StrAppend(err, "dcplan demo: cannot create a temporary directory\n");
      return 1;
    }
    dir = pattern + "/checkpoint";
  }
  const DemoModel model = MakeDemoModelFor(args.format, args.scale_mib);
  absl::StrAppend(out, "dcplan demo: ", model.tensors.size(), " tensors (", Megabytes(model.tensor_bytes()), ") and ",
                  model.values.size(), " other values\n");

  absl::StrAppend(out, "save: ", args.save_ranks, " ranks -> ", dir, "\n");
  absl::Time start = absl::Now();
  InProcessGroup async_group(args.save_ranks, absl::Seconds(120));  // --async: the background write's own
  std::string async_summary;
  absl::Status saved = RunRanks(args.save_ranks, [&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    // --async trains on the tensors after the save point, so each rank gets a
    // model of its own: the threads would otherwise share replicated tensors
    // and the global tensors the load is checked against.
    const DemoModel rank_model = args.async ? MakeDemoModelFor(args.format, args.scale_mib) : model;
    absl::StatusOr<StateDict> state = RankStateDict(rank_model, rank, args.save_ranks, /*for_load=*/false);
    if (!state.ok()) return state.status();
    std::unique_ptr<StorageWriter> writer = MakeDemoWriter(args.format, dir, args.overwrite, model.tensor_bytes());
    if (!args.async) return Save(*state, *writer, coordinator).status();
    AsyncSaveOptions options;
    options.background_coordinator = &async_group.coordinator(rank);
    AsyncSaveWhileTrainingResult result = AsyncSaveWhileTraining(*state, *writer, coordinator, options);
    if (rank == 0) async_summary = AsyncSaveSummary(result);
    return result.saved.status();
  });
  const absl::Duration save_time = absl::Now() - start;
  if (!saved.ok()) {
    absl::StrAppend(err, "dcplan demo: save failed: ", saved.message(), "\n");
    return 1;
  }
  int64_t checkpoint_bytes = 0;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const int64_t size = static_cast<int64_t>(std::filesystem::file_size(file));
    checkpoint_bytes += size;
    absl::StrAppend(out, absl::StrFormat("  %-20s %12d bytes\n", file.filename().string(), size));
  }
  absl::StrAppend(out, "  saved ", Megabytes(checkpoint_bytes), " in ", Throughput(checkpoint_bytes, save_time), "\n");
  if (args.async) absl::StrAppend(out, "  rank 0: ", async_summary, "\n");

  absl::StrAppend(out, "load: ", args.load_ranks, " ranks, resharded\n");
  start = absl::Now();
  absl::Status loaded = RunRanks(args.load_ranks, [&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    absl::StatusOr<StateDict> state = RankStateDict(model, rank, args.load_ranks, /*for_load=*/true);
    if (!state.ok()) return state.status();
    std::unique_ptr<StorageReader> reader = MakeDemoReader(args.format, dir);
    absl::Status status = Load(*state, *reader, coordinator);
    if (!status.ok()) return status;
    return VerifyRankStateDict(model, *state, rank, args.load_ranks);
  });
  const absl::Duration load_time = absl::Now() - start;
  if (!loaded.ok()) {
    absl::StrAppend(err, "dcplan demo: load failed: ", loaded.message(), "\n");
    return 1;
  }
  absl::StrAppend(out, "  loaded and verified in ", Throughput(checkpoint_bytes, load_time),
                  ": every tensor element bitwise equal, every value equal\n");
  if (temporary) {
    std::error_code ignored;
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path(), ignored);
  } else {
    absl::StrAppend(out, "checkpoint kept in ", dir, "\n");
  }
  return 0;
}

}  // namespace

std::string DemoHelp() {
  return R"(usage: dcplan demo [--format dcp|safetensors] [--dir DIR] [--overwrite] [--async] [--ranks N] [--load-ranks M] [--scale MIB]
       dcplan demo --procs N [--load-procs M] [--timeout SECONDS] [--format dcp|safetensors] [--dir DIR] [--overwrite] [--async] [--scale MIB]

Saves a small sharded model (nested model and optimizer state: FSDP row
shards, 2-D block shards, replicated tensors, 0-d tensors, non-tensor values)
from N in-process ranks (default 4) in PyTorch's DCP format, loads it into M
ranks (default 3) with a different sharding, and checks every element and
value. Prints the files, bytes and throughput.

  --format F     dcp (default) or safetensors: a Hugging Face checkpoint
                 (files of at most a quarter of the model, an index; the
                 model without its non-tensor values), written by every
                 rank straight into the final files
  --dir DIR      save into DIR and keep the checkpoint (default: a temporary
                 directory, removed afterwards)
  --overwrite    replace a checkpoint already in DIR
  --async        save with AsyncSave; after it returns, a stand-in training
                 loop overwrites every tensor in place while the checkpoint is
                 written; the load then checks it holds the tensors as they
                 were when AsyncSave returned
  --scale MIB    about how many MiB of tensors per layer group (default 4)
  --procs N      run every rank as its own process (this binary, re-executed
                 with RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT),
                 meeting over c10d (TCPStore + Gloo); N ranks save, then
  --load-procs M ranks (default N-1, at least 1) load on a new port. Progress
                 goes to standard error; a failed rank's output tail is shown.
  --timeout S    with --procs: each rank's rendezvous and collective timeout
                 (default 120); ranks still running 30 s later are killed

Exit status: 0 verified; 1 the save, the load or the check failed; 2 usage.
)";
}

int DemoMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    stdout_text->append(DemoHelp());
    return 0;
  }
  if (!args.empty() && args[0] == "--rank-worker") {
    return RankWorkerMain(std::vector<std::string>(args.begin() + 1, args.end()), stdout_text, stderr_text);
  }
  absl::StatusOr<DemoArgs> parsed = ParseArgs(args);
  if (!parsed.ok()) {
    absl::StrAppend(stderr_text, "dcplan demo: ", parsed.status().message(), "\n\n", DemoHelp());
    return 2;
  }
  if (parsed->save_procs > 0) {
    ProcsDemoOptions options;
    options.dir = parsed->dir;
    options.overwrite = parsed->overwrite;
    options.save_procs = parsed->save_procs;
    options.load_procs = parsed->load_procs > 0 ? parsed->load_procs : std::max<int64_t>(1, parsed->save_procs - 1);
    options.scale_mib = parsed->scale_mib;
    options.timeout = absl::Seconds(parsed->timeout_s);
    options.async = parsed->async;
    options.format = parsed->format;
    return RunProcsDemo(options, stdout_text, stderr_text);
  }
  return Demo(*parsed, stdout_text, stderr_text);
}

}  // namespace dcplan::tools
