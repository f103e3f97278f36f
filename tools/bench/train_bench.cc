// Training-loop benchmark (issue #12): a loop of fixed CPU work steps (matrix
// products, plus an in-place update of one tensor of the state dict per step)
// over a state dict of about --gib GiB, with a checkpoint every --every steps,
// run once with dcplan::Save and once with dcplan::AsyncSave (a kept staging
// pool and a caching planner in both modes; one process, one rank, fsync on).
//
//   bazel run -c opt //tools/bench:train_bench -- --dir /var/tmp/bench --gib 2
//
// Per save it reports what the loop waited (blocking time: Save, or for
// AsyncSave the wait for the previous save plus the AsyncSave call), the
// steps that ran wholly within the background write and their median time
// against the median step of a quiet loop, the background write's duration
// and GB/s, the process's peak extra RSS since the state dict was built, and
// the staging pool's size. The
// summary compares blocking time with a plain single-threaded memcpy of the
// bytes this rank writes (best of 3, into memory already touched).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

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
#include "api/planners.h"
#include "api/staging_pool.h"
#include "api/state_dict.h"
#include "tools/bench/process_memory.h"

namespace dcplan::bench {
namespace {

struct Options {
  std::string dir;
  double gib = 2.0;
  int64_t saves = 10;
  int64_t every = 30;     // steps between checkpoints
  int64_t products = 8;   // matrix products per step
  int64_t matrix = 512;   // their size
};

struct Model {
  std::vector<at::Tensor> tensors;
  StateDict state;
  int64_t bytes = 0;
};

constexpr int64_t kTensorElements = int64_t{16} << 20;  // 64 MiB of float32

Model MakeModel(double gib) {
  Model model;
  std::vector<std::pair<std::string, StateDict>> entries;
  const int64_t target = static_cast<int64_t>(gib * (int64_t{1} << 30));
  for (int64_t i = 0; model.bytes < target; ++i) {
    at::Tensor t = at::rand({kTensorElements}, at::kFloat);
    model.bytes += t.nbytes();
    model.tensors.push_back(t);
    entries.push_back({absl::StrCat("layers.", i, ".weight"), Value(t)});
  }
  model.state = Dict(std::move(entries));
  return model;
}

// Fixed CPU work plus one in-place update of the state dict.
struct Trainer {
  at::Tensor a, b;
  int64_t products;
  int64_t step = 0;
  absl::Duration Step(Model& model) {
    const absl::Time start = absl::Now();
    at::Tensor c = a;
    for (int64_t i = 0; i < products; ++i) c = at::mm(c, b).div_(static_cast<double>(b.size(0)));
    model.tensors[step % model.tensors.size()].add_(c.mean().item<float>());
    ++step;
    return absl::Now() - start;
  }
};

double MemcpySeconds(int64_t bytes) {
  std::vector<char> from(static_cast<size_t>(bytes), 1), to(static_cast<size_t>(bytes), 2);
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const absl::Time start = absl::Now();
    std::memcpy(to.data(), from.data(), to.size());
    best = std::min(best, absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (to[bytes / 2] != 1) std::cerr << "memcpy check failed\n";
  return best;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct SaveRow {
  double blocking_s = 0;
  int64_t steps_during_write = 0;
  double step_during_write_s = 0;  // median
  double write_s = 0;
  int64_t peak_extra_kib = 0;
  int64_t staging_bytes = 0;
};

struct ModeResult {
  std::vector<SaveRow> rows;
  absl::Status status;
};

// Runs the loop in one mode. A save's "write" is Save itself (sync) or the
// background phase (async: from AsyncSave's return until its handle was
// ready, seen by a thread blocked in Wait()).
ModeResult RunMode(bool async, Model& model, Trainer& trainer, const Options& options, int64_t baseline_kib) {
  ModeResult result;
  SingleProcessCoordinator coordinator;
  DefaultSavePlanner::Options planner_options;
  planner_options.enable_plan_caching = true;
  DefaultSavePlanner planner(planner_options);
  StagingPool pool;
  FileSystemWriterOptions writer_options;
  writer_options.overwrite = true;
  FileSystemWriter writer(absl::StrCat(options.dir, async ? "/async" : "/sync"), writer_options);
  AsyncSaveHandle in_flight;
  std::thread watcher;
  std::atomic<bool> written{true};
  absl::Time write_start, write_end;
  for (int64_t save = 0; save < options.saves; ++save) {
    SaveRow row;
    std::vector<double> during;
    for (int64_t s = 0; s < options.every; ++s) {
      const bool writing = !written.load();
      const double step_s = absl::ToDoubleSeconds(trainer.Step(model));
      if (writing && !written.load()) during.push_back(step_s);
    }
    if (!result.rows.empty()) {
      result.rows.back().steps_during_write = static_cast<int64_t>(during.size());
      result.rows.back().step_during_write_s = Median(during);
    }
    const absl::Time start = absl::Now();
    if (async) {
      if (watcher.joinable()) watcher.join();
      if (!result.rows.empty()) result.rows.back().write_s = absl::ToDoubleSeconds(write_end - write_start);
      if (absl::StatusOr<Metadata> previous = in_flight.Wait(); save > 0 && !previous.ok()) {
        result.status = previous.status();
        return result;
      }
      AsyncSaveOptions async_options;
      async_options.planner = &planner;
      async_options.staging_pool = &pool;
      in_flight = AsyncSave(model.state, writer, coordinator, async_options);
      write_start = absl::Now();
      written = false;
      watcher = std::thread([&] {
        (void)in_flight.Wait();  // its result is taken by the main thread
        write_end = absl::Now();
        written = true;
      });
    } else {
      absl::StatusOr<Metadata> saved = Save(model.state, writer, coordinator, &planner);
      if (!saved.ok()) {
        result.status = saved.status();
        return result;
      }
    }
    row.blocking_s = absl::ToDoubleSeconds(absl::Now() - start);
    if (!async) row.write_s = row.blocking_s;
    row.staging_bytes = pool.reserved_bytes();
    row.peak_extra_kib = ProcStatusKib("VmHWM") - baseline_kib;
    result.rows.push_back(row);
  }
  std::vector<double> during;
  while (!written.load()) during.push_back(absl::ToDoubleSeconds(trainer.Step(model)));
  if (watcher.joinable()) watcher.join();
  if (async && !result.rows.empty()) {
    result.rows.back().write_s = absl::ToDoubleSeconds(write_end - write_start);
    result.rows.back().steps_during_write = static_cast<int64_t>(during.size());
    result.rows.back().step_during_write_s = Median(during);
    result.status = in_flight.Wait().status();
  }
  return result;
}

void PrintRows(const char* mode, const ModeResult& result, double quiet_step_s, int64_t bytes) {
  for (size_t i = 0; i < result.rows.size(); ++i) {
    const SaveRow& r = result.rows[i];
    const std::string slowdown =
        r.steps_during_write > 0 ? absl::StrFormat("%+.0f %%", 100.0 * (r.step_during_write_s / quiet_step_s - 1))
                                 : "-";
    std::cout << absl::StrFormat("| %s | %d | %.3f | %d | %s | %.2f | %.2f | %.0f | %.1f |\n", mode, i + 1,
                                 r.blocking_s, r.steps_during_write, slowdown, r.write_s,
                                 r.write_s > 0 ? bytes / r.write_s / 1e9 : 0.0, r.peak_extra_kib / 1024.0,
                                 r.staging_bytes * 100.0 / bytes);
  }
}

double MedianBlocking(const ModeResult& result) {
  std::vector<double> v;
  for (const SaveRow& r : result.rows) v.push_back(r.blocking_s);
  return Median(v);
}

int Run(const Options& options) {
  Model model = MakeModel(options.gib);
  Trainer trainer{at::rand({options.matrix, options.matrix}), at::rand({options.matrix, options.matrix}),
                  options.products};
  std::vector<double> quiet;
  for (int i = 0; i < 2 * options.every; ++i) quiet.push_back(absl::ToDoubleSeconds(trainer.Step(model)));
  const double quiet_step_s = Median(quiet);
  const double memcpy_s = MemcpySeconds(model.bytes);
  if (!ResetPeakRss()) std::cerr << "cannot reset the peak RSS; peak columns include earlier peaks\n";
  const int64_t baseline_kib = ProcStatusKib("VmRSS");

  std::cerr << "sync saves...\n";
  ModeResult sync = RunMode(false, model, trainer, options, baseline_kib);
  ResetPeakRss();
  std::cerr << "async saves...\n";
  ModeResult async = RunMode(true, model, trainer, options, ProcStatusKib("VmRSS"));
  for (const ModeResult* r : {&sync, &async}) {
    if (!r->status.ok()) {
      std::cerr << "train_bench: " << r->status << "\n";
      return 1;
    }
  }
  std::cout << absl::StrFormat(
      "## train_bench: %d tensors, %.2f GiB, one rank; a checkpoint every %d steps of %.3f s (median quiet step); "
      "%d saves per mode\n\n",
      model.tensors.size(), model.bytes / double(int64_t{1} << 30), options.every, quiet_step_s, options.saves);
  std::cout << "| mode | save | blocking s | steps wholly within the write | their slowdown | write s | write GB/s "
               "| peak extra RSS MiB | staging pool % of bytes written |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  PrintRows("Save", sync, quiet_step_s, model.bytes);
  PrintRows("AsyncSave", async, quiet_step_s, model.bytes);
  const double sync_blocking = MedianBlocking(sync);
  const double async_blocking = MedianBlocking(async);
  std::cout << absl::StrFormat(
      "\nMedian blocking time: Save %.3f s, AsyncSave %.3f s (%.1fx less). memcpy of the %.2f GiB this rank "
      "writes: %.3f s (single thread, best of 3); AsyncSave blocking / memcpy = %.2f.\n",
      sync_blocking, async_blocking, sync_blocking / std::max(async_blocking, 1e-9),
      model.bytes / double(int64_t{1} << 30), memcpy_s, async_blocking / memcpy_s);
  return 0;
}

}  // namespace
}  // namespace dcplan::bench

int main(int argc, char** argv) {
  dcplan::bench::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    bool ok = has_value;
    if (arg == "--dir" && has_value) {
      options.dir = argv[++i];
    } else if (arg == "--gib" && has_value) {
      ok = absl::SimpleAtod(argv[++i], &options.gib) && options.gib > 0;
    } else if (arg == "--saves" && has_value) {
      ok = absl::SimpleAtoi(argv[++i], &options.saves) && options.saves > 0;
    } else if (arg == "--every" && has_value) {
      ok = absl::SimpleAtoi(argv[++i], &options.every) && options.every > 0;
    } else if (arg == "--products" && has_value) {
      ok = absl::SimpleAtoi(argv[++i], &options.products) && options.products > 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "usage: train_bench --dir DIR [--gib G] [--saves N] [--every K] [--products P]\n";
      return 2;
    }
  }
  if (options.dir.empty()) {
    std::cerr << "train_bench: --dir DIR is required (a directory on the local disk)\n";
    return 2;
  }
  return dcplan::bench::Run(options);
}
