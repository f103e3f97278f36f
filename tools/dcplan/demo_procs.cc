#include "tools/dcplan/demo_procs.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/async_save.h"
#include "api/c10d_coordinator.h"
#include "api/checkpoint.h"
#include "api/filesystem.h"
#include "api/internal/subprocess.h"
#include "tools/dcplan/demo_async.h"
#include "tools/dcplan/demo_model.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

namespace fs = std::filesystem;

constexpr absl::Duration kProcessGrace = absl::Seconds(30);
constexpr int kTailLines = 20;

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Tail(const std::string& text, int lines) {
  std::vector<std::string> all = absl::StrSplit(text, '\n');
  while (!all.empty() && all.back().empty()) all.pop_back();
  const size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string tail;
  for (size_t i = first; i < all.size(); ++i) absl::StrAppend(&tail, "    | ", all[i], "\n");
  return tail;
}

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.2f MiB", bytes / 1048576.0); }

std::string Throughput(int64_t bytes, absl::Duration elapsed) {
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-9);
  return absl::StrFormat("%.3f s, %.1f MiB/s", seconds, bytes / 1048576.0 / seconds);
}

// What a rank worker reports on success.
struct RankReport {
  double seconds = 0;
  int64_t bytes_sent = 0;
};

absl::StatusOr<RankReport> ParseReport(const std::string& text) {
  RankReport report;
  bool have_seconds = false, have_bytes = false;
  for (absl::string_view word : absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(word, absl::MaxSplits('=', 1));
    if (kv.first == "seconds") have_seconds = absl::SimpleAtod(kv.second, &report.seconds);
    if (kv.first == "bytes_sent") have_bytes = absl::SimpleAtoi(kv.second, &report.bytes_sent);
  }
  if (!have_seconds || !have_bytes) return absl::DataLossError(absl::StrCat("malformed rank report \"", text, "\""));
  return report;
}

// Prints "<phase>: k/n ranks done" whenever k changes: in place on a
// terminal, as separate lines otherwise.
class ProgressLine {
 public:
  ProgressLine(std::string phase, int64_t total)
      : phase_(std::move(phase)), total_(total), terminal_(isatty(STDERR_FILENO) == 1) {}

  void Update(int64_t done) {
    if (done == shown_) return;
    shown_ = done;
    std::cerr << (terminal_ ? "\r" : "") << phase_ << ": " << done << "/" << total_ << " ranks done"
              << (terminal_ ? "" : "\n") << std::flush;
  }
  void Finish(int64_t done, int64_t failed) {
    Update(done);
    if (terminal_) std::cerr << "\n";
    if (failed > 0) std::cerr << phase_ << ": " << failed << " of " << total_ << " ranks failed\n";
    std::cerr << std::flush;
  }

 private:
  std::string phase_;
  int64_t total_;
  bool terminal_;
  int64_t shown_ = -1;
};

struct PhaseResult {
  bool ok = false;
  absl::Duration wall;
  double slowest_call_seconds = 0;
  std::vector<int64_t> bytes_sent;  // per rank
};

// Spawns `ranks` rank workers for `phase` ("save" or "load") and waits for
// them, showing progress as their reports appear.
PhaseResult RunPhase(const std::string& phase, int64_t ranks, const std::string& checkpoint_dir,
                     const std::string& work_dir, const ProcsDemoOptions& options, std::string* err) {
  PhaseResult result;
  absl::StatusOr<std::string> self = internal::CurrentExecutable();
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  if (!self.ok() || !port.ok()) {
    absl::StrAppend(err, "dcplan demo: cannot start the ", phase, " ranks: ",
                    (self.ok() ? port.status() : self.status()).ToString(), "\n");
    return result;
  }
  std::vector<internal::ProcessSpec> specs;
  std::vector<std::string> reports, logs;
  for (int64_t rank = 0; rank < ranks; ++rank) {
    const std::string stem = absl::StrCat(work_dir, "/", phase, "_rank", rank);
    reports.push_back(stem + ".report");
    logs.push_back(stem + ".log");
    std::error_code ignored;
    fs::remove(reports.back(), ignored);
    internal::ProcessSpec spec;
    spec.argv = {*self, "demo", "--rank-worker", phase, "--dir", checkpoint_dir, "--scale",
                 absl::StrCat(options.scale_mib), "--report", reports.back(), "--timeout-ms",
                 absl::StrCat(absl::ToInt64Milliseconds(options.timeout))};
    if (options.overwrite) spec.argv.push_back("--overwrite");
    if (options.async) spec.argv.push_back("--async");
    spec.argv.insert(spec.argv.end(), {"--format", DemoFormatName(options.format)});
    spec.env = internal::LoopbackRankEnv(rank, ranks, *port);
    spec.output_path = logs.back();
    specs.push_back(std::move(spec));
  }

  const absl::Time start = absl::Now();
  std::atomic<bool> finished{false};
  absl::StatusOr<std::vector<internal::ProcessOutcome>> outcomes;
  std::thread runner([&] {
    outcomes = internal::RunProcesses(specs, options.timeout + kProcessGrace);
    finished = true;
  });
  ProgressLine progress(phase, ranks);
  auto count_reports = [&] {
    return std::count_if(reports.begin(), reports.end(), [](const std::string& p) { return fs::exists(p); });
  };
  while (!finished) {
    progress.Update(count_reports());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  runner.join();
  result.wall = absl::Now() - start;
  if (!outcomes.ok()) {
    progress.Finish(count_reports(), ranks);
    absl::StrAppend(err, "dcplan demo: ", phase, ": ", outcomes.status().ToString(), "\n");
    return result;
  }
  int64_t done = 0, failed = 0;
  for (int64_t rank = 0; rank < ranks; ++rank) {
    const internal::ProcessOutcome& outcome = (*outcomes)[rank];
    absl::StatusOr<RankReport> report = absl::NotFoundError("no report");
    if (fs::exists(reports[rank])) report = ParseReport(ReadWholeFile(reports[rank]));
    if (outcome.Succeeded() && report.ok()) {
      ++done;
      result.slowest_call_seconds = std::max(result.slowest_call_seconds, report->seconds);
      result.bytes_sent.push_back(report->bytes_sent);
      continue;
    }
    ++failed;
    result.bytes_sent.push_back(-1);
    absl::StrAppend(err, "dcplan demo: ", phase, " rank ", rank, " of ", ranks, " failed: ",
                    internal::ToString(outcome), report.ok() ? "" : absl::StrCat(" (", report.status().message(), ")"),
                    "; last lines of its output:\n", Tail(ReadWholeFile(logs[rank]), kTailLines));
  }
  progress.Finish(done, failed);
  result.ok = failed == 0;
  return result;
}

std::string TrafficLine(const std::vector<int64_t>& bytes_sent) {
  std::string line = "  coordinator bytes sent per rank:";
  for (int64_t bytes : bytes_sent) absl::StrAppend(&line, " ", bytes);
  return line + "\n";
}

// Files of the checkpoint, listed into `out`; their total size.
int64_t ListCheckpoint(const std::string& dir, std::string* out) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  int64_t total = 0;
  for (const auto& file : files) {
    const int64_t size = static_cast<int64_t>(fs::file_size(file));
    total += size;
    absl::StrAppend(out, absl::StrFormat("  %-20s %12d bytes\n", file.filename().string(), size));
  }
  absl::StrAppend(out, "  ", files.size(), " files, ", total, " bytes\n");
  return total;
}

// --- The rank side -----------------------------------------------------------

struct WorkerArgs {
  std::string phase;
  std::string dir;
  std::string report;
  bool overwrite = false;
  bool async = false;
  int64_t scale_mib = 4;
  int64_t timeout_ms = 120000;
  DemoFormat format = DemoFormat::kDcp;
};

absl::StatusOr<WorkerArgs> ParseWorkerArgs(const std::vector<std::string>& args) {
  WorkerArgs parsed;
  if (args.empty() || (args[0] != "save" && args[0] != "load")) {
    return absl::InvalidArgumentError("--rank-worker needs \"save\" or \"load\"");
  }
  parsed.phase = args[0];
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool has_value = i + 1 < args.size();
    if (arg == "--overwrite") {
      parsed.overwrite = true;
    } else if (arg == "--async") {
      parsed.async = true;
    } else if (arg == "--dir" && has_value) {
      parsed.dir = args[++i];
    } else if (arg == "--format" && has_value && ParseDemoFormat(args[i + 1]).ok()) {
      parsed.format = *ParseDemoFormat(args[++i]);
    } else if (arg == "--report" && has_value) {
      parsed.report = args[++i];
    } else if (arg == "--scale" && has_value && absl::SimpleAtoi(args[i + 1], &parsed.scale_mib) &&
               parsed.scale_mib >= 1) {
      ++i;
    } else if (arg == "--timeout-ms" && has_value && absl::SimpleAtoi(args[i + 1], &parsed.timeout_ms) &&
               parsed.timeout_ms >= 1) {
      ++i;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("bad rank-worker argument \"", arg, "\""));
    }
  }
  if (parsed.dir.empty() || parsed.report.empty()) {
    return absl::InvalidArgumentError("--rank-worker needs --dir and --report");
  }
  return parsed;
}

absl::StatusOr<RankReport> RunRank(const WorkerArgs& args) {
  absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
  if (!options.ok()) return options.status();
  options->timeout = absl::Milliseconds(args.timeout_ms);
  absl::StatusOr<std::unique_ptr<C10dCoordinator>> coordinator = ConnectC10d(*options);
  if (!coordinator.ok()) return coordinator.status();
  const int64_t rank = (*coordinator)->rank();
  const int64_t world_size = (*coordinator)->world_size();
  const DemoModel model = MakeDemoModelFor(args.format, args.scale_mib);
  const bool load = args.phase == "load";
  absl::StatusOr<StateDict> state = RankStateDict(model, rank, world_size, /*for_load=*/load);
  if (!state.ok()) return state.status();
  const absl::Time start = absl::Now();
  if (load) {
    std::unique_ptr<StorageReader> reader = MakeDemoReader(args.format, args.dir);
    absl::Status loaded = Load(*state, *reader, **coordinator);
    if (!loaded.ok()) return loaded;
  } else if (args.async) {
    absl::StatusOr<std::unique_ptr<C10dCoordinator>> background = ConnectAsyncSaveGroup(*options);
    if (!background.ok()) return background.status();
    std::unique_ptr<StorageWriter> writer = MakeDemoWriter(args.format, args.dir, args.overwrite, model.tensor_bytes());
    AsyncSaveOptions async_options;
    async_options.background_coordinator = background->get();
    AsyncSaveWhileTrainingResult saved = AsyncSaveWhileTraining(*state, *writer, **coordinator, async_options);
    if (!saved.saved.ok()) return saved.saved.status();
  } else {
    std::unique_ptr<StorageWriter> writer = MakeDemoWriter(args.format, args.dir, args.overwrite, model.tensor_bytes());
    absl::StatusOr<Metadata> saved = Save(*state, *writer, **coordinator);
    if (!saved.ok()) return saved.status();
  }
  RankReport report;
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  report.bytes_sent = (*coordinator)->bytes_sent();
  if (load) {
    absl::Status verified = VerifyRankStateDict(model, *state, rank, world_size);
    if (!verified.ok()) return verified;
  }
  return report;
}

}  // namespace

int RunProcsDemo(const ProcsDemoOptions& options, std::string* out, std::string* err) {
  std::string pattern = (fs::temp_directory_path() / "dcplan-demo-procs-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    absl::StrAppend(err, "dcplan demo: cannot create a temporary directory\n");
    return 1;
  }
  const std::string work_dir = pattern;
  const bool temporary = options.dir.empty();
  const std::string dir = temporary ? work_dir + "/checkpoint" : ResolveUserPath(options.dir);
  const DemoModel model = MakeDemoModelFor(options.format, options.scale_mib);
  absl::StrAppend(out, "dcplan demo: ", model.tensors.size(), " tensors (", Megabytes(model.tensor_bytes()), ") and ",
                  model.values.size(), " other values, one process per rank\n");

  absl::StrAppend(out, "save: ", options.save_procs, " processes -> ", dir, "\n");
  const PhaseResult saved = RunPhase("save", options.save_procs, dir, work_dir, options, err);
  bool ok = saved.ok;
  int64_t checkpoint_bytes = 0;
  if (ok) {
    checkpoint_bytes = ListCheckpoint(dir, out);
    absl::StrAppend(out, "  saved ", Megabytes(checkpoint_bytes), " in ", Throughput(checkpoint_bytes, saved.wall),
                    " (wall, with process start and rendezvous); slowest rank's Save ",
                    Throughput(checkpoint_bytes, absl::Seconds(saved.slowest_call_seconds)), "\n",
                    TrafficLine(saved.bytes_sent));
    if (options.async) {
      absl::StrAppend(out, "  every rank saved with AsyncSave (\"Save\" above: until its Wait() returned) while a ",
                      "stand-in training loop overwrote its tensors\n");
    }
    absl::StrAppend(out, "load: ", options.load_procs, " processes, resharded\n");
    const PhaseResult loaded = RunPhase("load", options.load_procs, dir, work_dir, options, err);
    ok = loaded.ok;
    if (ok) {
      absl::StrAppend(out, "  loaded and verified in ", Throughput(checkpoint_bytes, loaded.wall),
                      " (wall); slowest rank's Load ",
                      Throughput(checkpoint_bytes, absl::Seconds(loaded.slowest_call_seconds)),
                      ": every tensor element bitwise equal, every value equal\n", TrafficLine(loaded.bytes_sent));
    }
  }
  if (!ok) absl::StrAppend(err, "dcplan demo: failed; rank logs kept in ", work_dir, "\n");
  if (!temporary && ok) absl::StrAppend(out, "checkpoint kept in ", dir, "\n");
  if (ok) {
    std::error_code ignored;
    fs::remove_all(work_dir, ignored);
  }
  return ok ? 0 : 1;
}

int RankWorkerMain(const std::vector<std::string>& args, std::string* out, std::string* err) {
  absl::StatusOr<WorkerArgs> parsed = ParseWorkerArgs(args);
  if (!parsed.ok()) {
    absl::StrAppend(err, "dcplan demo: ", parsed.status().message(), "\n");
    return 2;
  }
  absl::StatusOr<RankReport> report = RunRank(*parsed);
  if (!report.ok()) {
    absl::StrAppend(err, "dcplan demo: ", parsed->phase, " rank ", std::getenv("RANK") ? std::getenv("RANK") : "?",
                    " failed: ", report.status().ToString(), "\n");
    return 1;
  }
  // Written last and renamed into place, so that a report the parent sees is complete.
  const std::string partial = parsed->report + ".partial";
  {
    std::ofstream file(partial, std::ios::trunc);
    file << absl::StrFormat("seconds=%.6f bytes_sent=%d\n", report->seconds, report->bytes_sent);
    if (!file.good()) {
      absl::StrAppend(err, "dcplan demo: cannot write the report ", partial, "\n");
      return 1;
    }
  }
  std::error_code renamed;
  fs::rename(partial, parsed->report, renamed);
  if (renamed) {
    absl::StrAppend(err, "dcplan demo: cannot write the report ", parsed->report, ": ", renamed.message(), "\n");
    return 1;
  }
  absl::StrAppend(out, parsed->phase, " rank ", std::getenv("RANK") ? std::getenv("RANK") : "?", " done\n");
  return 0;
}

}  // namespace dcplan::tools
