#include "tools/dcplan/convert_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/filesystem.h"
#include "tools/dcplan/convert_torch_save.h"
#include "tools/dcplan/progress_bar.h"
#include "tools/dcplan/safetensors_commands.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

constexpr absl::string_view kPrefix = "dcplan convert: ";
constexpr absl::string_view kUsage = "usage: dcplan convert [--keys K1,K2,...] [--overwrite] [--quiet] IN OUT";

struct ConvertArgs {
  std::string in;
  std::string out;
  std::optional<std::vector<std::string>> keys;
  bool overwrite = false;
  bool quiet = false;
};

absl::Status AddKeys(absl::string_view list, ConvertArgs* parsed) {
  if (!parsed->keys) parsed->keys.emplace();
  for (absl::string_view key : absl::StrSplit(list, ',')) {
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("--keys: empty key in \"", list, "\""));
    parsed->keys->emplace_back(key);
  }
  return absl::OkStatus();
}

absl::StatusOr<ConvertArgs> ParseArgs(const std::vector<std::string>& args) {
  ConvertArgs parsed;
  std::vector<std::string> paths;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    absl::Status status;
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      paths.push_back(arg);
    } else if (arg == "--") {
      options_done = true;
    } else if (arg == "--overwrite") {
      parsed.overwrite = true;
    } else if (arg == "--quiet" || arg == "-q") {
      parsed.quiet = true;
    } else if (absl::StartsWith(arg, "--keys=")) {
      status = AddKeys(absl::string_view(arg).substr(7), &parsed);
    } else if (arg == "--keys") {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("--keys needs a comma-separated list of keys");
      status = AddKeys(args[++i], &parsed);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option \"", arg, "\""));
    }
    if (!status.ok()) return status;
  }
  if (paths.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("expected IN and OUT, got ", paths.size(), " path",
                                                   paths.size() == 1 ? "" : "s"));
  }
  parsed.in = ResolveUserPath(paths[0]);
  parsed.out = ResolveUserPath(paths[1]);
  return parsed;
}

int Usage(absl::string_view message, std::string* err) {
  absl::StrAppend(err, kPrefix, message, "\n", kUsage, "   (see `dcplan help convert`)\n");
  return kConvertUsageError;
}

int Fault(absl::string_view message, std::string* err) {
  absl::StrAppend(err, kPrefix, message, "\n");
  return kConvertFault;
}

enum class PathKind { kMissing, kDirectory, kFile, kOther };

PathKind KindOf(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return PathKind::kMissing;
  if (S_ISDIR(info.st_mode)) return PathKind::kDirectory;
  if (S_ISREG(info.st_mode)) return PathKind::kFile;
  return PathKind::kOther;
}

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.2f MiB", bytes / 1048576.0); }

std::string Summary(const convert::ConvertSummary& summary) {
  return absl::StrCat(summary.tensors, " tensors (", Megabytes(summary.tensor_bytes), "), ", summary.values,
                      " other values");
}

// A progress bar created on the first report (the total is known then).
class LazyProgress {
 public:
  explicit LazyProgress(bool enabled) : enabled_(enabled) {}
  convert::ConvertProgress Callback() {
    return [this](int64_t done, int64_t total) {
      if (bar_ == nullptr) bar_ = std::make_unique<ProgressBar>("convert", total, enabled_);
      bar_->Set(done);
    };
  }
  void Finish() {
    if (bar_ != nullptr) bar_->Finish();
  }

 private:
  bool enabled_;
  std::unique_ptr<ProgressBar> bar_;
};

void SyncDirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const int fd = open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

int CheckpointToFile(const ConvertArgs& args, std::string* out, std::string* err) {
  const PathKind out_kind = KindOf(args.out);
  if (out_kind == PathKind::kDirectory) {
    return Usage(absl::StrCat(args.out, " is a directory; OUT must be the path of the torch.save file to write"), err);
  }
  if (out_kind != PathKind::kMissing && !args.overwrite) {
    return Usage(absl::StrCat(args.out, " already exists (pass --overwrite to replace it)"), err);
  }
  FileSystemReader reader(args.in);
  absl::StatusOr<Metadata> metadata = reader.ReadMetadata();
  if (!metadata.ok()) return Fault(absl::StrCat("reading checkpoint ", args.in, ": ", metadata.status().message()), err);
  std::optional<absl::flat_hash_set<std::string>> keys;
  if (args.keys) {
    const std::vector<std::string> unmatched = convert::UnmatchedCheckpointKeys(*metadata, *args.keys);
    if (!unmatched.empty()) {
      return Usage(absl::StrCat("--keys: ", absl::StrJoin(unmatched, ", "), " matches no key of checkpoint ", args.in),
                   err);
    }
    keys.emplace(args.keys->begin(), args.keys->end());
  }
  const std::string temporary = args.out + ".tmp";
  LazyProgress progress(!args.quiet);
  absl::StatusOr<convert::ConvertSummary> summary =
      convert::DcpToTorchSave(args.in, *metadata, keys, temporary, progress.Callback());
  progress.Finish();
  if (summary.ok() && std::rename(temporary.c_str(), args.out.c_str()) != 0) {
    summary = absl::InternalError(absl::StrCat("renaming ", temporary, " to ", args.out, ": ", std::strerror(errno)));
  }
  if (!summary.ok()) {
    std::remove(temporary.c_str());
    return Fault(absl::StrCat(args.in, " -> ", args.out, ": ", summary.status().message()), err);
  }
  SyncDirectoryOf(args.out);
  absl::StrAppend(out, "converted DCP checkpoint ", args.in, " to torch.save file ", args.out, ": ", Summary(*summary),
                  "\n");
  return kConvertOk;
}

bool IsEmptyDirectory(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_empty(path, error) && !error;
}

// After replacing a checkpoint: its data files the new metadata does not use.
void RemoveStaleDataFiles(const std::string& directory) {
  FileSystemReader reader(directory);
  absl::StatusOr<Metadata> metadata = reader.ReadMetadata();
  if (!metadata.ok() || !metadata->storage_data) return;
  absl::flat_hash_set<std::string> used;
  for (const auto& entry : *metadata->storage_data) used.insert(entry.second.relative_path);
  std::error_code error;
  for (const auto& file : std::filesystem::directory_iterator(directory, error)) {
    const std::string name = file.path().filename().string();
    if (absl::StartsWith(name, "__") && absl::EndsWith(name, ".distcp") && !used.contains(name)) {
      std::filesystem::remove(file.path(), error);
    }
  }
}

int FileToCheckpoint(const ConvertArgs& args, std::string* out, std::string* err) {
  const PathKind out_kind = KindOf(args.out);
  if (out_kind != PathKind::kMissing) {
    if (!args.overwrite) return Usage(absl::StrCat(args.out, " already exists (pass --overwrite to replace it)"), err);
    const bool replaceable = out_kind == PathKind::kDirectory &&
                             (KindOf(args.out + "/" + kMetadataFileName) == PathKind::kFile ||
                              IsEmptyDirectory(args.out));
    if (!replaceable) {
      return Usage(absl::StrCat("refusing to replace ", args.out,
                                ": --overwrite replaces only a DCP checkpoint directory or an empty directory"),
                   err);
    }
  }
  convert::TorchSaveToDcpOptions options;
  options.keys = args.keys;
  options.overwrite = out_kind != PathKind::kMissing;
  LazyProgress progress(!args.quiet);
  options.progress = progress.Callback();
  std::vector<std::string> unmatched;
  absl::StatusOr<convert::ConvertSummary> summary = convert::TorchSaveToDcp(args.in, args.out, options, &unmatched);
  progress.Finish();
  if (!summary.ok()) {
    // A failed save leaves no checkpoint; remove the directory it created.
    if (out_kind == PathKind::kMissing && IsEmptyDirectory(args.out)) std::filesystem::remove(args.out);
    if (!unmatched.empty()) {
      return Usage(absl::StrCat("--keys: ", absl::StrJoin(unmatched, ", "), " matches no key of ", args.in), err);
    }
    return Fault(absl::StrCat(args.in, " -> ", args.out, ": ", summary.status().message()), err);
  }
  if (out_kind != PathKind::kMissing) RemoveStaleDataFiles(args.out);
  absl::StrAppend(out, "converted torch.save file ", args.in, " to DCP checkpoint ", args.out, ": ",
                  Summary(*summary), "\n");
  return kConvertOk;
}

}  // namespace

int ConvertMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text) {
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      stdout_text->append(ConvertHelp());
      return kConvertOk;
    }
  }
  if (IsSafetensorsConversion(args)) return ConvertSafetensorsMain(args, stdout_text, stderr_text);
  absl::StatusOr<ConvertArgs> parsed = ParseArgs(args);
  if (!parsed.ok()) return Usage(parsed.status().message(), stderr_text);
  switch (KindOf(parsed->in)) {
    case PathKind::kDirectory:
      if (KindOf(parsed->in + "/" + kMetadataFileName) != PathKind::kFile) {
        return Usage(absl::StrCat(parsed->in, " is a directory without ", kMetadataFileName,
                                  ": not a DCP checkpoint"),
                     stderr_text);
      }
      return CheckpointToFile(*parsed, stdout_text, stderr_text);
    case PathKind::kFile:
      return FileToCheckpoint(*parsed, stdout_text, stderr_text);
    case PathKind::kMissing:
      return Usage(absl::StrCat(parsed->in, ": no such file or directory (IN comes first: `convert DIR OUT.pt` or ",
                                "`convert IN.pt DIR`)"),
                   stderr_text);
    case PathKind::kOther:
      break;
  }
  return Usage(absl::StrCat(parsed->in, " is neither a DCP checkpoint directory nor a regular file"), stderr_text);
}

std::string ConvertHelp() {
  return R"(usage: dcplan convert [--keys K1,K2,...] [--overwrite] [--quiet] IN OUT

Converts between a DCP checkpoint and one torch.save file, like PyTorch's
dcp_to_torch_save and torch_save_to_dcp. The direction follows IN:

  IN a checkpoint directory (holding .metadata): OUT is the torch.save file
     of the nested state dict (what torch.load returns: dicts nested by the
     checkpoint's flattening, tensors whole, other values as saved). Tensors
     are read and written a batch (at most 64 MiB, or one larger tensor) at a
     time; the file is written as OUT.tmp and renamed when complete.
  IN a torch.save file holding a dict: OUT is a DCP checkpoint directory
     saved with the default planner (keys flattened like PyTorch). Tensors
     are views of the mapped file, not copies. The checkpoint is committed
     atomically (.metadata last).

A non-tensor value is kept as its pickle (Python-only values such as bytes
included). Not supported: storages other than the classic typed storages
(e.g. uint16/float8 tensors), tensors with conjugate/negative bits, and dict
keys other than str and int (int keys become strings); values referenced
twice become two copies.

  --keys K1,K2   keep only these keys: a flattened key ("model.embed.weight")
                 or a dotted prefix of its path ("model", "optim.state");
                 a key that selects nothing is an error
  --overwrite    replace OUT if it exists (a file, or a checkpoint directory
                 or an empty directory)
  --quiet        no progress bar (it is drawn only when stderr is a terminal)

Hugging Face safetensors (api/safetensors/):
  convert HF_DIR DCP_DIR        IN recognised by its files (an index or
                                one *.safetensors)
  convert DCP_DIR HF_DIR --to safetensors [--max-shard-size SIZE]
                                [--skip-non-tensor-values]
                                files of at most SIZE (default 5GB; KB/MB/GB
                                or KiB/MiB/GiB), tensors sorted by name
One tensor is in memory at a time; --keys does not apply.

Exit status: 0 converted; 1 the input is unreadable or corrupt, or writing
failed (nothing is left at OUT); 2 usage error (arguments, OUT exists, IN is
neither a checkpoint nor a file).
)";
}

}  // namespace dcplan::tools
