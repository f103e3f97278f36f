// Safetensors I/O benchmark (issue #11): dcplan's multi-rank save straight
// into a consolidated Hugging Face checkpoint, and its resharding-capable
// load, against the practical limit (each rank write(2)s / pread(2)s its own
// bytes to / from its own file), for dim-0 (FSDP) and dim-1 shards.
//
//   bazel run -c opt //tools/bench:safetensors_bench -- --dir /dev/shm --gib 1 --ranks 2 --reps 3
//
// Ranks are threads of this process (InProcessGroup), for the raw cases as
// for dcplan's; each case runs --reps times, interleaved with the cases it
// is compared with, and the best time is shown. The
// save includes fsync (raw: each rank's file; dcplan: every output file);
// every write starts from an empty directory (removing the previous rep's
// files, i.e. freeing their pages, is not timed, for raw as for dcplan).
// The load reads into pre-allocated (pre-faulted) shards, the same buffers
// for raw and dcplan, and is checked bitwise afterwards (not timed).
//
// "raw at file offset" repeats the raw cases with each rank's bytes starting
// at the safetensors data's offset within a page (data_start mod 4096) rather
// than at 0: the kernel copies between user memory and the page cache more
// slowly when the two are not co-aligned, a cost the format imposes on any
// writer or reader (see README, Hugging Face safetensors).
//
// --max-shard-size SIZE (as dcplan convert) splits the checkpoint into
// several files; default Hugging Face's 5GB (one file here).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/safetensors/directory.h"
#include "api/safetensors/layout.h"
#include "api/safetensors/storage.h"
#include "api/state_dict.h"

namespace dcplan::bench {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string dir = "/dev/shm";
  double gib = 1;
  int64_t ranks = 2;
  int reps = 3;
  int64_t max_shard_bytes = safetensors::kDefaultMaxShardBytes;
};

// 2-D tensors of 4096 x 2048 elements, float32 and bfloat16 alternating,
// about `gib` GiB in all.
std::vector<at::Tensor> MakeModel(double gib) {
  std::vector<at::Tensor> model;
  int64_t bytes = 0;
  for (int i = 0; bytes < gib * (1 << 30); ++i) {
    at::Tensor t = at::rand({4096, 2048}, at::TensorOptions().dtype(i % 2 ? at::kBFloat16 : at::kFloat));
    bytes += t.nbytes();
    model.push_back(t);
  }
  return model;
}

// Rank `rank`'s piece of every tensor along `dim`.
std::vector<LocalShard> Pieces(const std::vector<at::Tensor>& model, int64_t dim, int64_t rank, int64_t ranks,
                               bool zero) {
  std::vector<LocalShard> pieces;
  for (const at::Tensor& full : model) {
    const int64_t step = full.size(dim) / ranks;
    Shape offsets(2, 0);
    offsets[dim] = step * rank;
    at::Tensor piece = full.narrow(dim, step * rank, step).contiguous();
    pieces.push_back(LocalShard{zero ? at::zeros_like(piece) : piece, offsets});
  }
  return pieces;
}

StateDict ToStateDict(const std::vector<at::Tensor>& model, const std::vector<LocalShard>& pieces) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (size_t i = 0; i < model.size(); ++i) {
    ShardedTensorValue sharded{model[i].sizes().vec(), model[i].scalar_type(), {pieces[i]}};
    entries.emplace_back(absl::StrFormat("layers.%03d.weight", i), Value(std::move(sharded)));
  }
  return Dict(std::move(entries));
}

// Where each of a rank's pieces goes: back to back in its own file from
// `start`, or (one shared file) where a consolidated file puts the rank's
// dim-0 rows: every tensor whole, one after another, from `start`.
std::vector<off_t> OwnFileOffsets(const std::vector<LocalShard>& pieces, off_t start) {
  std::vector<off_t> offsets;
  for (const LocalShard& piece : pieces) {
    offsets.push_back(start);
    start += static_cast<off_t>(piece.tensor.nbytes());
  }
  return offsets;
}

std::vector<off_t> SharedFileOffsets(const std::vector<at::Tensor>& model, int64_t rank, int64_t ranks,
                                     off_t start) {
  std::vector<off_t> offsets;
  for (const at::Tensor& full : model) {
    offsets.push_back(start + static_cast<off_t>(full.nbytes() / ranks * rank));
    start += static_cast<off_t>(full.nbytes());
  }
  return offsets;
}

// Writes or reads each piece at its offset in `path` (a file that several
// ranks may share: not truncated here).
absl::Status RawIo(const std::vector<LocalShard>& pieces, const std::string& path, bool write,
                   const std::vector<off_t>& offsets) {
  const int fd = write ? ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644)
                       : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  for (size_t i = 0; i < pieces.size(); ++i) {
    const LocalShard& piece = pieces[i];
    off_t offset = offsets[i];
    char* data = static_cast<char*>(piece.tensor.data_ptr());
    for (size_t left = piece.tensor.nbytes(); left > 0;) {
      const ssize_t n = write ? ::pwrite(fd, data, left, offset) : ::pread(fd, data, left, offset);
      if (n <= 0) {
        ::close(fd);
        return absl::InternalError(absl::StrCat(write ? "write " : "read ", path, " failed"));
      }
      data += n;
      left -= static_cast<size_t>(n);
      offset += n;
    }
  }
  const bool ok = !write || ::fsync(fd) == 0;
  ::close(fd);
  return ok ? absl::OkStatus() : absl::InternalError("fsync failed");
}

// One timed case: `run` on every rank (threads), after `untimed_setup`.
struct Case {
  std::function<absl::Status(int64_t, Coordinator&)> run;
  std::function<void()> untimed_setup = [] {};
};

// Best wall time of each case over `reps` rounds, the cases interleaved
// within a round so that a burst of load on this shared machine hits them
// alike; empty on an error.
std::vector<double> BestSeconds(const Options& options, const std::vector<Case>& cases) {
  std::vector<double> best(cases.size(), -1);
  for (int rep = 0; rep < options.reps; ++rep) {
    for (size_t c = 0; c < cases.size(); ++c) {
      cases[c].untimed_setup();
      InProcessGroup group(options.ranks, absl::Seconds(600));
      const absl::Time start = absl::Now();
      std::vector<absl::Status> statuses = group.Run(cases[c].run);
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      for (const absl::Status& status : statuses) {
        if (!status.ok()) {
          std::cerr << "safetensors_bench: " << status << "\n";
          return {};
        }
      }
      if (best[c] < 0 || seconds < best[c]) best[c] = seconds;
    }
  }
  return best;
}

// One table row; the last column only where a one-shared-file raw case ran.
void Row(const std::string& name, const std::string& sharding, const Options& options, int64_t bytes,
         double seconds, double raw_seconds, double shared_raw_seconds = -1) {
  const double ratio = seconds > 0 ? raw_seconds / seconds : 0;
  const std::string shared_ratio =
      shared_raw_seconds > 0 && seconds > 0 ? absl::StrFormat("%.2f", shared_raw_seconds / seconds) : "";
  std::cout << absl::StrFormat("| %s | %s | %d | %.2f | %.2f | %s | %.3f |\n", name, sharding, options.ranks,
                               seconds > 0 ? bytes / seconds / 1e9 : 0.0, ratio, shared_ratio, seconds);
}

int Run(const Options& options) {
  const std::vector<at::Tensor> model = MakeModel(options.gib);
  int64_t bytes = 0;
  for (const at::Tensor& t : model) bytes += t.nbytes();
  std::cout << absl::StrFormat(
      "## safetensors_bench: %d tensors of 4096 x 2048 (float32 / bfloat16), %.3f GiB, %d ranks (threads), "
      "best of %d, on %s, max shard size %d bytes\n\n",
      model.size(), bytes / double(1 << 30), options.ranks, options.reps, options.dir, options.max_shard_bytes);
  std::cout << "| case | sharding | ranks | GB/s | ratio to raw | ratio to raw, one shared file | wall s |\n"
               "|---|---|---|---|---|---|---|\n";
  const std::string scratch = (fs::path(options.dir) / "dcplan_safetensors_bench").string();
  for (int64_t dim : {0, 1}) {
    const std::string sharding = dim == 0 ? "dim-0" : "dim-1";
    std::vector<std::vector<LocalShard>> saved(options.ranks), loaded(options.ranks);
    for (int64_t r = 0; r < options.ranks; ++r) {
      saved[r] = Pieces(model, dim, r, options.ranks, /*zero=*/false);
      loaded[r] = Pieces(model, dim, r, options.ranks, /*zero=*/true);
    }
    fs::remove_all(scratch);
    fs::create_directories(scratch);
    const std::string hf = scratch + "/hf";
    const auto save = [&](int64_t r, Coordinator& coordinator) {
      safetensors::SafetensorsWriterOptions writer_options;
      writer_options.layout.max_shard_bytes = options.max_shard_bytes;
      safetensors::SafetensorsWriter writer(hf, writer_options);
      return Save(ToStateDict(model, saved[r]), writer, coordinator).status();
    };
    const auto load = [&](int64_t r, Coordinator& coordinator) {
      StateDict state = ToStateDict(model, loaded[r]);
      safetensors::SafetensorsReader reader(hf);
      return Load(state, reader, coordinator);
    };
    // An untimed save first, for the data's offset in the file.
    Options once = options;
    once.reps = 1;
    if (BestSeconds(once, {Case{save}}).empty()) return 1;
    absl::StatusOr<safetensors::Checkpoint> written = safetensors::ReadCheckpoint(hf);
    if (!written.ok()) {
      std::cerr << "safetensors_bench: " << written.status() << "\n";
      return 1;
    }
    const off_t page_offset = written->files.front().header.data_start % 4096;
    const auto raw_path = [&](int64_t rank, off_t start) {
      return absl::StrCat(scratch, "/raw", rank, "_at", start, ".bin");
    };
    const auto raw_write_at = [&](off_t start) {
      return Case{[&, start](int64_t r, Coordinator&) {
                    return RawIo(saved[r], raw_path(r, start), true, OwnFileOffsets(saved[r], start));
                  },
                  [&, start] {
                    for (int64_t r = 0; r < options.ranks; ++r) fs::remove(raw_path(r, start));
                  }};
    };
    const auto raw_read_at = [&](off_t start) {
      return Case{[&, start](int64_t r, Coordinator&) {
        return RawIo(loaded[r], raw_path(r, start), false, OwnFileOffsets(loaded[r], start));
      }};
    };
    // Every rank into one file at the consolidated layout's positions (dim-0
    // only: a dim-1 shard is a strided run per row): the kernel serializes
    // buffered writes to one file, a limit of the one-file layout itself.
    const std::string shared_path = absl::StrCat(scratch, "/shared.bin");
    const Case shared_write{[&](int64_t r, Coordinator&) {
                              return RawIo(saved[r], shared_path, true,
                                           SharedFileOffsets(model, r, options.ranks, page_offset));
                            },
                            [&] { fs::remove(shared_path); }};
    const Case shared_read{[&](int64_t r, Coordinator&) {
      return RawIo(loaded[r], shared_path, false, SharedFileOffsets(model, r, options.ranks, page_offset));
    }};
    std::vector<Case> write_cases = {raw_write_at(0), Case{save, [&] { fs::remove_all(hf); }}, raw_write_at(page_offset)};
    std::vector<Case> read_cases = {raw_read_at(0), Case{load}, raw_read_at(page_offset)};
    if (dim == 0) {
      write_cases.push_back(shared_write);
      read_cases.push_back(shared_read);
    }
    const std::vector<double> writes = BestSeconds(options, write_cases);
    const std::vector<double> reads = BestSeconds(options, read_cases);
    if (writes.empty() || reads.empty()) return 1;
    for (int64_t r = 0; r < options.ranks; ++r) {
      for (size_t i = 0; i < model.size(); ++i) {
        if (!at::equal(saved[r][i].tensor, loaded[r][i].tensor)) {
          std::cerr << "safetensors_bench: rank " << r << " tensor " << i << " loaded wrong\n";
          return 1;
        }
      }
    }
    const std::string at_offset = absl::StrCat("raw at file offset ", page_offset);
    const double shared_write_seconds = dim == 0 ? writes[3] : -1;
    const double shared_read_seconds = dim == 0 ? reads[3] : -1;
    Row("raw write", sharding, options, bytes, writes[0], writes[0]);
    Row(at_offset + " write", sharding, options, bytes, writes[2], writes[0]);
    if (dim == 0) Row("raw write, one shared file", sharding, options, bytes, writes[3], writes[0], writes[3]);
    Row("safetensors save", sharding, options, bytes, writes[1], writes[0], shared_write_seconds);
    Row("raw read", sharding, options, bytes, reads[0], reads[0]);
    Row(at_offset + " read", sharding, options, bytes, reads[2], reads[0]);
    if (dim == 0) Row("raw read, one shared file", sharding, options, bytes, reads[3], reads[0], reads[3]);
    Row("safetensors load", sharding, options, bytes, reads[1], reads[0], shared_read_seconds);
  }
  fs::remove_all(scratch);
  std::cout << "\nGB/s = model bytes / wall time of the case (1 GB = 1e9 bytes); ratio to raw = over raw write "
               "(saves) or raw read (loads) of the same sharding, each rank its own file; ratio to raw, one shared "
               "file = over every rank writing (reading) its dim-0 rows at their places in one file, as a "
               "consolidated checkpoint of one file needs (the kernel serializes buffered writes to one file). "
               "dim-1 shards are written and read as one strided run per row of the shard.\n";
  return 0;
}

}  // namespace
}  // namespace dcplan::bench

int main(int argc, char** argv) {
  dcplan::bench::Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    bool ok = true;
    if (flag == "--dir") options.dir = value;
    else if (flag == "--gib") ok = absl::SimpleAtod(value, &options.gib) && options.gib > 0;
    else if (flag == "--ranks") ok = absl::SimpleAtoi(value, &options.ranks) && options.ranks >= 1 && options.ranks <= 64;
    else if (flag == "--reps") ok = absl::SimpleAtoi(value, &options.reps) && options.reps >= 1;
    else if (flag == "--max-shard-size") {
      absl::StatusOr<int64_t> size = dcplan::safetensors::ParseByteSize(value);
      ok = size.ok();
      if (ok) options.max_shard_bytes = *size;
    }
    else ok = false;
    if (!ok) {
      std::cerr << "usage: safetensors_bench [--dir DIR] [--gib G] [--ranks N] [--reps R] [--max-shard-size SIZE]\n";
      return 2;
    }
  }
  return dcplan::bench::Run(options);
}
