// I/O benchmark (issue #6): save and load of a state dict of mixed shapes
// (float32 / bfloat16, about --gib GiB) with dcplan, compared in the same run
// with the practical limit (a plain write(2)/pread(2) loop over the same
// bytes) and with LibTorch's torch::save / torch::load.
//
//   bazel run -c opt //tools/bench:io_bench -- --dir-disk /var/tmp --dir-shm /dev/shm --gib 2
//
// Every measured case runs in a fresh child process (this binary, re-executed
// with --child), so that its peak RSS is its own. A child builds its state
// dict, resets its RSS high-water mark (/proc/self/clear_refs), notes its RSS
// (the baseline), runs the case once and reports wall time, CPU time and
// peak RSS - baseline. Two-process cases run two children (ranks) that meet
// over c10d (TCPStore + Gloo on 127.0.0.1), each holding the dim-0 half of
// every tensor (FSDP-like shards); the time of a case is that of its slowest
// rank, measured from a barrier.
//
// Cases (each on each medium, with 1 and 2 processes):
//   raw write    write(2) of every tensor's bytes into one file per process, fsync
//   raw read     pread(2) of that file straight into pre-allocated tensors
//   dcplan save  dcplan::Save with a FileSystemWriter (fsync on)
//   dcplan load  dcplan::Load with a FileSystemReader (checksums verified) into
//                pre-allocated tensors of the same sharding
//   torch::save  torch::save(std::vector<at::Tensor>) of the process's tensors
//                into one file (LibTorch's TorchScript archive), then fsync
//   torch::load  torch::load(std::vector<at::Tensor>&) of that file (it
//                appends new tensors: it cannot load in place) followed by
//                copy_ into the pre-allocated tensors, as a training loop must
//
// The page cache cannot be dropped here: "disk" numbers are for a file
// system on the local disk with the page cache warm (reads come from the
// cache) and writes include fsync to the disk.

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tools/bench/crc32_rates.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/c10d_coordinator.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/internal/subprocess.h"
#include "api/state_dict.h"
#include "tools/bench/process_memory.h"

namespace dcplan::bench {
namespace {

namespace fs = std::filesystem;

// --- The state dict ------------------------------------------------------------------

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  c10::ScalarType dtype;
};

// An embedding and repeated ~62 MiB layers until `gib` GiB.
std::vector<TensorSpec> MakeSpecs(double gib) {
  std::vector<TensorSpec> specs = {{"embed.weight", {8192, 4096}, at::kBFloat16}};
  const double layer_mib = 12 + 2 + 16 + 16 + 16;
  const int64_t layers = std::max<int64_t>(1, static_cast<int64_t>((gib * 1024 - 64) / layer_mib + 0.5));
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = absl::StrCat("layers.", i, ".");
    specs.push_back({p + "attn.qkv.weight", {3072, 1024}, at::kFloat});
    specs.push_back({p + "attn.out.weight", {1024, 1024}, at::kBFloat16});
    specs.push_back({p + "mlp.fc1.weight", {4096, 1024}, at::kFloat});
    specs.push_back({p + "mlp.fc1.bias", {4096}, at::kBFloat16});
    specs.push_back({p + "mlp.fc2.weight", {1024, 4096}, at::kFloat});
    specs.push_back({p + "mlp.gate.weight", {4096, 2048}, at::kBFloat16});
    specs.push_back({p + "norm.weight", {1024}, at::kFloat});
  }
  return specs;
}

// This process's piece of one tensor: rows [row_begin, row_begin + rows) of dim 0.
struct Piece {
  const TensorSpec* spec;
  int64_t row_begin;
  at::Tensor tensor;
  int64_t global_byte_offset() const { return row_begin * (tensor.numel() == 0 ? 0 : tensor.nbytes() / tensor.size(0)); }
};

// A deterministic pattern of 32-bit words indexed by their position in the
// global tensor, so that each rank can check its half.
void FillPattern(char* out, int64_t global_byte_offset, int64_t nbytes, uint32_t seed) {
  uint32_t* words = reinterpret_cast<uint32_t*>(out);
  const uint64_t first = static_cast<uint64_t>(global_byte_offset) / 4;
  const int64_t count = nbytes / 4;
  for (int64_t k = 0; k < count; ++k) {
    words[k] = static_cast<uint32_t>((first + k) * 2654435761u) ^ (seed * 0x9E3779B9u);
  }
}

std::vector<Piece> MakePieces(const std::vector<TensorSpec>& specs, int64_t rank, int64_t world, bool fill) {
  std::vector<Piece> pieces;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    const int64_t rows = spec.shape[0];
    const int64_t per_rank = (rows + world - 1) / world;
    const int64_t begin = std::min(rows, rank * per_rank);
    const int64_t end = std::min(rows, begin + per_rank);
    std::vector<int64_t> shape = spec.shape;
    shape[0] = end - begin;
    Piece piece{&spec, begin, at::empty(shape, at::TensorOptions().dtype(spec.dtype))};
    if (fill) {
      FillPattern(static_cast<char*>(piece.tensor.data_ptr()), piece.global_byte_offset(), piece.tensor.nbytes(),
                  static_cast<uint32_t>(i));
    } else {
      std::memset(piece.tensor.data_ptr(), 0, piece.tensor.nbytes());  // touched: counted in the baseline
    }
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

absl::Status VerifyPieces(const std::vector<Piece>& pieces, const std::vector<at::Tensor>& loaded) {
  std::string expected;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const at::Tensor& t = loaded[i];
    expected.resize(t.nbytes());
    // One piece per spec, in spec order: the seed is the index.
    FillPattern(expected.data(), pieces[i].global_byte_offset(), t.nbytes(), static_cast<uint32_t>(i));
    if (!t.is_contiguous() || std::memcmp(t.data_ptr(), expected.data(), expected.size()) != 0) {
      return absl::DataLossError(absl::StrCat("tensor '", pieces[i].spec->name, "' differs after loading"));
    }
  }
  return absl::OkStatus();
}

StateDict ToStateDict(const std::vector<Piece>& pieces, int64_t world) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const Piece& piece : pieces) {
    if (world == 1) {
      entries.push_back({piece.spec->name, Value(piece.tensor)});
      continue;
    }
    Shape offsets(piece.spec->shape.size(), 0);
    offsets[0] = piece.row_begin;
    ShardedTensorValue sharded{piece.spec->shape, piece.spec->dtype, {LocalShard{piece.tensor, offsets}}};
    entries.push_back({piece.spec->name, Value(std::move(sharded))});
  }
  return Dict(std::move(entries));
}

// --- Measurements inside a child -------------------------------------------------------

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

absl::Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : absl::InternalError(absl::StrCat("fsync ", path));
}

absl::Status RawWrite(const std::vector<Piece>& pieces, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  for (const Piece& piece : pieces) {
    const char* data = static_cast<const char*>(piece.tensor.data_ptr());
    size_t left = piece.tensor.nbytes();
    while (left > 0) {
      const ssize_t n = ::write(fd, data, left);
      if (n <= 0) {
        ::close(fd);
        return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? absl::OkStatus() : absl::InternalError("fsync failed");
}

absl::Status RawRead(const std::vector<Piece>& pieces, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  off_t offset = 0;
  for (const Piece& piece : pieces) {
    char* data = static_cast<char*>(piece.tensor.data_ptr());
    size_t left = piece.tensor.nbytes();
    while (left > 0) {
      const ssize_t n = ::pread(fd, data, left, offset);
      if (n <= 0) {
        ::close(fd);
        return absl::InternalError(absl::StrCat("read ", path, ": short"));
      }
      data += n;
      left -= static_cast<size_t>(n);
      offset += n;
    }
  }
  ::close(fd);
  return absl::OkStatus();
}

struct ChildArgs {
  std::string kind;  // raw_write, raw_read, dcplan_save, dcplan_load, torch_save, torch_load
  std::string dir;
  std::string report;
  double gib = 2;
  int64_t procs = 1;
};

struct ChildReport {
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t bytes = 0;
  int64_t baseline_kib = 0;
  int64_t peak_kib = 0;
  double phase2_seconds = -1;  // torch::load only: the copy_ part
};

absl::StatusOr<ChildReport> RunChild(const ChildArgs& args) {
  std::unique_ptr<Coordinator> coordinator;
  if (args.procs > 1) {
    absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
    if (!options.ok()) return options.status();
    options->timeout = absl::Seconds(600);
    absl::StatusOr<std::unique_ptr<C10dCoordinator>> connected = ConnectC10d(*options);
    if (!connected.ok()) return connected.status();
    coordinator = *std::move(connected);
  } else {
    coordinator = std::make_unique<SingleProcessCoordinator>();
  }
  const int64_t rank = coordinator->rank();
  const int64_t world = coordinator->world_size();
  const std::vector<TensorSpec> specs = MakeSpecs(args.gib);
  const bool is_write = args.kind == "raw_write" || args.kind == "dcplan_save" || args.kind == "torch_save";
  std::vector<Piece> pieces = MakePieces(specs, rank, world, /*fill=*/is_write);
  StateDict state = ToStateDict(pieces, world);
  const std::string own_file = absl::StrCat(args.dir, "/rank", rank, ".bin");

  ChildReport report;
  for (const Piece& piece : pieces) report.bytes += piece.tensor.nbytes();
  if (!ResetPeakRss()) return absl::InternalError("cannot reset the peak RSS (/proc/self/clear_refs)");
  report.baseline_kib = ProcStatusKib("VmRSS");
  absl::Status barrier = coordinator->Barrier();
  if (!barrier.ok()) return barrier;

  std::vector<at::Tensor> loaded;  // torch::load's tensors
  const absl::Time start = absl::Now();
  const double cpu_start = CpuSeconds();
  absl::Status status;
  if (args.kind == "raw_write") {
    status = RawWrite(pieces, own_file);
  } else if (args.kind == "raw_read") {
    status = RawRead(pieces, own_file);
  } else if (args.kind == "dcplan_save") {
    FileSystemWriter writer(args.dir);
    status = Save(state, writer, *coordinator).status();
  } else if (args.kind == "dcplan_load") {
    FileSystemReader reader(args.dir);
    status = Load(state, reader, *coordinator);
  } else if (args.kind == "torch_save") {
    std::vector<at::Tensor> tensors;
    for (const Piece& piece : pieces) tensors.push_back(piece.tensor);
    try {
      torch::save(tensors, own_file);
    } catch (const std::exception& e) {
      status = absl::InternalError(e.what());
    }
    if (status.ok()) status = SyncPath(own_file);
  } else if (args.kind == "torch_load") {
    try {
      torch::load(loaded, own_file);
    } catch (const std::exception& e) {
      status = absl::InternalError(e.what());
    }
    report.phase2_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (status.ok() && loaded.size() != pieces.size()) status = absl::DataLossError("torch::load: wrong count");
    for (size_t i = 0; status.ok() && i < pieces.size(); ++i) pieces[i].tensor.copy_(loaded[i]);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown case ", args.kind));
  }
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  report.cpu_seconds = CpuSeconds() - cpu_start;
  report.peak_kib = ProcStatusKib("VmHWM");
  if (!status.ok()) return status;
  if (report.phase2_seconds >= 0) report.phase2_seconds = report.seconds - report.phase2_seconds;
  if (!is_write) {
    std::vector<at::Tensor> tensors;
    for (const Piece& piece : pieces) tensors.push_back(piece.tensor);
    absl::Status verified = VerifyPieces(pieces, tensors);
    if (!verified.ok()) return verified;
  }
  // Ranks leave together (the coordinator's process group must outlive the others' use).
  absl::Status done = coordinator->Barrier();
  if (!done.ok()) return done;
  return report;
}

int ChildMain(const std::vector<std::string>& argv) {
  ChildArgs args;
  for (size_t i = 0; i + 1 < argv.size(); i += 2) {
    const std::string& flag = argv[i];
    const std::string& value = argv[i + 1];
    if (flag == "--child") args.kind = value;
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--report") args.report = value;
    else if (flag == "--gib") absl::SimpleAtod(value, &args.gib);
    else if (flag == "--procs") absl::SimpleAtoi(value, &args.procs);
  }
  absl::StatusOr<ChildReport> report = RunChild(args);
  if (!report.ok()) {
    std::cerr << "io_bench child " << args.kind << ": " << report.status() << "\n";
    return 1;
  }
  std::ofstream out(args.report + ".partial");
  out << absl::StrFormat("seconds=%.6f cpu=%.6f bytes=%d baseline_kib=%d peak_kib=%d phase2=%.6f\n",
                         report->seconds, report->cpu_seconds, report->bytes, report->baseline_kib,
                         report->peak_kib, report->phase2_seconds);
  out.close();
  fs::rename(args.report + ".partial", args.report);
  return 0;
}

// --- The parent ---------------------------------------------------------------------

struct Options {
  std::string dir_disk = "/var/tmp";
  std::string dir_shm = "/dev/shm";
  double gib = 2;
  int reps = 1;
  std::vector<std::string> media = {"shm", "disk"};
  std::vector<int64_t> procs = {1, 2};
};

struct CaseResult {
  bool ok = false;
  double seconds = 0;      // slowest rank
  double cpu_seconds = 0;  // summed over ranks
  int64_t bytes = 0;       // summed over ranks
  double peak_extra_fraction = 0;  // max over ranks of (peak - baseline) / rank bytes
  double phase2_seconds = -1;
  std::string error;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

CaseResult RunCase(const std::string& kind, const std::string& dir, int64_t procs, const Options& options,
                   const std::string& work) {
  CaseResult result;
  absl::StatusOr<std::string> self = internal::CurrentExecutable();
  absl::StatusOr<int> port = internal::PickFreeLoopbackPort();
  if (!self.ok() || !port.ok()) {
    result.error = "cannot start children";
    return result;
  }
  std::vector<internal::ProcessSpec> specs;
  std::vector<std::string> reports, logs;
  for (int64_t rank = 0; rank < procs; ++rank) {
    const std::string stem = absl::StrCat(work, "/", kind, "_rank", rank);
    reports.push_back(stem + ".report");
    logs.push_back(stem + ".log");
    std::error_code ignored;
    fs::remove(reports.back(), ignored);
    internal::ProcessSpec spec;
    spec.argv = {*self, "--child", kind, "--dir", dir, "--report", reports.back(), "--gib",
                 absl::StrCat(options.gib), "--procs", absl::StrCat(procs)};
    if (procs > 1) {
      spec.env = internal::LoopbackRankEnv(rank, procs, *port);
    }
    spec.output_path = logs.back();
    specs.push_back(std::move(spec));
  }
  absl::StatusOr<std::vector<internal::ProcessOutcome>> outcomes = internal::RunProcesses(specs, absl::Minutes(10));
  if (!outcomes.ok()) {
    result.error = outcomes.status().ToString();
    return result;
  }
  result.ok = true;
  for (int64_t rank = 0; rank < procs; ++rank) {
    const std::string text = ReadFile(reports[rank]);
    std::map<std::string, double> values;
    for (absl::string_view word : absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(word, absl::MaxSplits('=', 1));
      double v = 0;
      if (absl::SimpleAtod(kv.second, &v)) values[kv.first] = v;
    }
    if (!(*outcomes)[rank].Succeeded() || values.count("seconds") == 0) {
      result.ok = false;
      absl::StrAppend(&result.error, "rank ", rank, " ", internal::ToString((*outcomes)[rank]), ": ",
                      ReadFile(logs[rank]).substr(0, 2000));
      continue;
    }
    result.seconds = std::max(result.seconds, values["seconds"]);
    result.cpu_seconds += values["cpu"];
    result.bytes += static_cast<int64_t>(values["bytes"]);
    const double extra = (values["peak_kib"] - values["baseline_kib"]) * 1024.0 / std::max(1.0, values["bytes"]);
    result.peak_extra_fraction = std::max(result.peak_extra_fraction, extra);
    if (values["phase2"] >= 0) result.phase2_seconds = std::max(result.phase2_seconds, values["phase2"]);
  }
  return result;
}

// The best (fastest) of the repetitions; peak memory is the largest seen.
void Merge(CaseResult& best, const CaseResult& next) {
  if (!next.ok) {
    if (best.error.empty()) best.error = next.error;
    return;
  }
  const double peak = std::max(best.ok ? best.peak_extra_fraction : 0.0, next.peak_extra_fraction);
  if (!best.ok || next.seconds < best.seconds) best = next;
  best.peak_extra_fraction = peak;
}

void RemoveContents(const std::string& dir) {
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(dir, ignored)) fs::remove_all(entry.path(), ignored);
}

int ParentMain(const std::vector<std::string>& argv) {
  Options options;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& flag = argv[i];
    const bool has_value = i + 1 < argv.size();
    if (flag == "--quick") {
      options.gib = 0.25;
      options.reps = 1;
    } else if (flag == "--dir-disk" && has_value) {
      options.dir_disk = argv[++i];
    } else if (flag == "--dir-shm" && has_value) {
      options.dir_shm = argv[++i];
    } else if (flag == "--gib" && has_value && absl::SimpleAtod(argv[i + 1], &options.gib) && options.gib > 0) {
      ++i;
    } else if (flag == "--reps" && has_value && absl::SimpleAtoi(argv[i + 1], &options.reps) && options.reps > 0) {
      ++i;
    } else if (flag == "--media" && has_value) {
      options.media = absl::StrSplit(argv[++i], ',');
    } else if (flag == "--procs" && has_value) {
      options.procs.clear();
      for (absl::string_view p : absl::StrSplit(argv[++i], ',')) {
        int64_t n = 0;
        if (!absl::SimpleAtoi(p, &n) || n < 1) {
          std::cerr << "io_bench: bad --procs\n";
          return 2;
        }
        options.procs.push_back(n);
      }
    } else {
      std::cerr << "usage: io_bench [--dir-disk PATH] [--dir-shm PATH] [--gib G] [--reps N] [--quick]\n"
                   "                [--media shm,disk] [--procs 1,2]\n";
      return 2;
    }
  }
  std::string work_pattern = (fs::temp_directory_path() / "io_bench-work-XXXXXX").string();
  if (mkdtemp(work_pattern.data()) == nullptr) {
    std::cerr << "io_bench: cannot create a work directory\n";
    return 1;
  }
  const std::string work = work_pattern;

  std::vector<TensorSpec> specs = MakeSpecs(options.gib);
  int64_t total = 0;
  for (const TensorSpec& spec : specs) {
    int64_t n = c10::elementSize(spec.dtype);
    for (int64_t d : spec.shape) n *= d;
    total += n;
  }
  std::cout << absl::StrFormat(
      "# io_bench: state dict of %d tensors (float32 and bfloat16), %.3f GiB; %d repetition(s) per case, best "
      "time shown\n\n",
      specs.size(), total / 1073741824.0, options.reps);
  PrintCrc32Rates(std::cout);
  std::cout << "| case | medium | procs | GB/s | ratio to raw | peak extra RSS % | wall s | CPU s | CPU s/GB |\n"
               "|---|---|---|---|---|---|---|---|---|\n";
  bool all_ok = true;
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"raw_write", "raw_read"}, {"dcplan_save", "dcplan_load"}, {"torch_save", "torch_load"}};
  std::vector<std::string> notes;
  for (const std::string& medium : options.media) {
    const std::string root = medium == "shm" ? options.dir_shm : options.dir_disk;
    std::string pattern = root + "/io_bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::cerr << "io_bench: cannot create a directory in " << root << "\n";
      return 1;
    }
    const std::string dir = pattern;
    for (int64_t procs : options.procs) {
      std::map<std::string, CaseResult> results;
      for (int rep = 0; rep < options.reps; ++rep) {
        for (const auto& [write_case, read_case] : pairs) {
          const std::string case_dir = absl::StrCat(dir, "/", write_case);
          fs::create_directories(case_dir);
          Merge(results[write_case], RunCase(write_case, case_dir, procs, options, work));
          Merge(results[read_case], RunCase(read_case, case_dir, procs, options, work));
          std::error_code ignored;
          fs::remove_all(case_dir, ignored);
        }
      }
      const double raw_write = results["raw_write"].ok ? results["raw_write"].bytes / results["raw_write"].seconds : 0;
      const double raw_read = results["raw_read"].ok ? results["raw_read"].bytes / results["raw_read"].seconds : 0;
      for (const char* kind_name :
           {"raw_write", "raw_read", "dcplan_save", "dcplan_load", "torch_save", "torch_load"}) {
        const std::string kind = kind_name;
        const CaseResult& r = results[kind];
        std::string label = kind;
        std::replace(label.begin(), label.end(), '_', ' ');
        if (label == "torch save") label = "torch::save";
        if (label == "torch load") label = "torch::load";
        if (!r.ok) {
          all_ok = false;
          std::cout << "| " << label << " | " << medium << " | " << procs << " | FAILED | | | | | |\n";
          notes.push_back(absl::StrCat(label, " ", medium, " ", procs, " procs: ", r.error));
          continue;
        }
        const double rate = r.bytes / r.seconds;
        const bool is_write = kind.find("write") != std::string::npos || kind.find("save") != std::string::npos;
        const double raw = is_write ? raw_write : raw_read;
        std::cout << absl::StrFormat("| %s | %s | %d | %.2f | %.2f | %.1f | %.3f | %.3f | %.3f |\n", label, medium,
                                     procs, rate / 1e9, raw > 0 ? rate / raw : 0.0, r.peak_extra_fraction * 100,
                                     r.seconds, r.cpu_seconds, r.cpu_seconds / (r.bytes / 1e9));
        if (r.phase2_seconds >= 0) {
          notes.push_back(absl::StrFormat("torch::load %s %d procs: %.3f s of the %.3f s are the copy_ into the "
                                          "pre-allocated tensors",
                                          medium, procs, r.phase2_seconds, r.seconds));
        }
      }
    }
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  std::cout << "\nGB/s = state-dict bytes (all processes) / wall time of the slowest process (1 GB = 1e9 bytes); "
               "ratio to raw = GB/s over raw write (saves) or raw read (loads) of the same medium and process "
               "count; peak extra RSS = peak RSS minus the RSS after building the state dict, over the process's "
               "state-dict bytes (largest over processes and repetitions); CPU s = user + system time summed "
               "over processes (helper threads included); CPU s/GB = CPU s per GB of state dict, the work per "
               "byte.\n"
               "\"disk\": a file system on the local disk; the page cache cannot be dropped here, so reads come "
               "from a warm page cache, and writes include fsync. torch::save is followed by an fsync of its file; "
               "torch::load appends new tensors (it cannot load in place) and is followed by copy_ into the "
               "pre-allocated tensors.\n";
  for (const std::string& note : notes) std::cout << "- " << note << "\n";
  RemoveContents(work);
  std::error_code ignored;
  fs::remove_all(work, ignored);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace dcplan::bench

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--child") return dcplan::bench::ChildMain(args);
  return dcplan::bench::ParentMain(args);
}
