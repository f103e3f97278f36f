// `dcplan verify` and `dcplan inspect` on a valid checkpoint whose one tensor
// is stored as --chunks one-element chunks (issue #13: linear in chunks,
// memory bounded by the bytes present).
//
//   bazel run -c opt //tools/bench:chunks_bench -- --chunks 1000000 --dir /var/tmp
//
// The checkpoint is written with dcplan's own metadata writer: a float32
// tensor of size [N] in N chunks of one element, every chunk a torch.save
// record (as PyTorch's FileSystemWriter stores it) in one data file. Each
// subcommand runs once in a child process (the -c opt `dcplan` binary next to
// this one); the table gives its wall time, its peak RSS (wait4) and that
// peak per byte of `.metadata`.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/internal/subprocess.h"
#include "api/pickle/metadata_pickle.h"
#include "api/tensor_record.h"
#include "engine/metadata.h"

namespace dcplan {
namespace {

namespace fs = std::filesystem;

struct Options {
  int64_t chunks = 1000000;
  std::string dir = "/var/tmp";
  std::string dcplan = "tools/dcplan";  // in this binary's runfiles
  bool keep = false;                      // leave the checkpoint for profiling
};

// One float32 element as a torch.save record.
absl::StatusOr<std::string> OneElementRecord() {
  std::string record;
  absl::StatusOr<WrittenRecord> written = WriteTensorRecord(at::zeros({1}, at::kFloat), [&](const char* data, size_t size) {
    record.append(data, size);
    return absl::OkStatus();
  });
  if (!written.ok()) return written.status();
  return record;
}

// Writes the checkpoint; returns the size of its `.metadata`.
absl::StatusOr<int64_t> WriteCheckpoint(const std::string& directory, int64_t chunks) {
  absl::StatusOr<std::string> record = OneElementRecord();
  if (!record.ok()) return record.status();
  fs::create_directories(directory);
  {
    std::ofstream data(directory + "/__0_0.distcp", std::ios::binary);
    for (int64_t i = 0; i < chunks; ++i) data << *record;
    if (!data) return absl::InternalError("cannot write the data file");
  }
  TensorStorageMetadata tensor;
  tensor.properties.dtype = DType::kFloat32;
  tensor.size = {chunks};
  tensor.chunks.reserve(chunks);
  Metadata metadata;
  metadata.storage_data.emplace();
  metadata.storage_data->reserve(chunks);
  const auto length = static_cast<int64_t>(record->size());
  for (int64_t i = 0; i < chunks; ++i) {
    tensor.chunks.push_back(ChunkBox{{i}, {1}});
    metadata.storage_data->InsertOrAssign(MetadataIndex{"w", Shape{i}, std::nullopt},
                                          StorageInfo{"__0_0.distcp", i * length, length, std::nullopt});
  }
  metadata.state_dict_metadata.InsertOrAssign("w", StorageMetadata(std::move(tensor)));
  const std::string pickle = WriteMetadataPickle(metadata);
  std::ofstream(directory + "/.metadata", std::ios::binary) << pickle;
  return static_cast<int64_t>(pickle.size());
}

int Run(const Options& options) {
  const std::string directory = absl::StrFormat("%s/dcplan_chunks_bench_%d", options.dir, ::getpid());
  const absl::Time start = absl::Now();
  absl::StatusOr<int64_t> metadata_bytes = WriteCheckpoint(directory, options.chunks);
  if (!metadata_bytes.ok()) {
    std::cerr << "chunks_bench: " << metadata_bytes.status() << "\n";
    return 1;
  }
  std::cerr << "wrote " << directory << " in " << absl::FormatDuration(absl::Now() - start) << "\n";
  std::cout << absl::StrFormat("One float32 tensor in %d one-element chunks: `.metadata` %.1f MB, data file %.1f MB\n\n",
                               options.chunks, *metadata_bytes / 1e6,
                               fs::file_size(directory + "/__0_0.distcp") / 1e6);
  std::cout << "| command | exit | wall s | peak RSS MiB | peak RSS / `.metadata` byte |\n|---|---|---|---|---|\n";
  int failures = 0;
  for (const char* command : {"inspect", "verify"}) {
    internal::ProcessSpec spec;
    spec.argv = {options.dcplan, command, directory};
    if (std::string(command) == "verify") spec.argv.push_back("--quiet");
    spec.output_path = directory + "/../" + fs::path(directory).filename().string() + "_" + command + ".out";
    const absl::Time begin = absl::Now();
    absl::StatusOr<std::vector<internal::ProcessOutcome>> outcome = internal::RunProcesses({spec}, absl::Hours(1));
    const double seconds = absl::ToDoubleSeconds(absl::Now() - begin);
    if (!outcome.ok()) {
      std::cerr << "chunks_bench: " << outcome.status() << "\n";
      return 1;
    }
    const internal::ProcessOutcome& process = outcome->front();
    if (!process.Succeeded()) ++failures;
    std::cout << absl::StrFormat("| `dcplan %s` | %d | %.1f | %d | %.1f |\n", command, process.exit_code, seconds,
                                 process.peak_rss_bytes >> 20,
                                 static_cast<double>(process.peak_rss_bytes) / *metadata_bytes);
    fs::remove(spec.output_path);
  }
  if (options.keep) {
    std::cerr << "kept " << directory << "\n";
  } else {
    fs::remove_all(directory);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace dcplan

int main(int argc, char** argv) {
  constexpr const char* kUsage = "usage: chunks_bench [--chunks N] [--dir DIR] [--dcplan PATH] [--keep]\n";
  dcplan::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc;
    if (flag == "--keep") {
      options.keep = true;
    } else if (flag == "--chunks" && has_value && absl::SimpleAtoi(argv[i + 1], &options.chunks) &&
               options.chunks > 0) {
      ++i;
    } else if (flag == "--dir" && has_value) {
      options.dir = argv[++i];
    } else if (flag == "--dcplan" && has_value) {
      options.dcplan = argv[++i];
    } else {
      std::cerr << kUsage;
      return 2;
    }
  }
  return dcplan::Run(options);
}
