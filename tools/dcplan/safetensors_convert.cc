// `dcplan convert` between DCP and Hugging Face safetensors checkpoints. Both
// directions are a Save whose planner fetches each tensor from the source
// only when the writer asks for it (a Load of that one tensor through the
// source's StorageReader), so one tensor is in memory at a time and no
// format is parsed here.
#include <sys/stat.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/checkpoint.h"
#include "api/dtype_conversion.h"
#include "api/filesystem.h"
#include "api/internal/status_macros.h"
#include "api/planners.h"
#include "api/safetensors/layout.h"
#include "api/safetensors/storage.h"
#include "tools/dcplan/checkpoint_report.h"
#include "tools/dcplan/safetensors_commands.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

constexpr absl::string_view kPrefix = "dcplan convert: ";
constexpr absl::string_view kUsage =
    "usage: dcplan convert HF_DIR DCP_DIR | dcplan convert DCP_DIR HF_DIR --to safetensors "
    "[--max-shard-size SIZE] [--skip-non-tensor-values]   (both: [--overwrite] [--quiet])";

struct Args {
  std::string in, out;
  bool to_safetensors = false;
  int64_t max_shard_bytes = safetensors::kDefaultMaxShardBytes;
  bool skip_non_tensor_values = false;
  bool overwrite = false;
};

absl::Status ParseTo(absl::string_view format, Args* args) {
  if (format != "safetensors") {
    return absl::InvalidArgumentError(absl::StrCat("--to: unknown format \"", format, "\" (only safetensors)"));
  }
  args->to_safetensors = true;
  return absl::OkStatus();
}

absl::StatusOr<Args> Parse(const std::vector<std::string>& words) {
  Args args;
  std::vector<std::string> paths;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    const auto value = [&]() -> absl::StatusOr<std::string> {
      const size_t eq = word.find('=');
      if (eq != std::string::npos) return word.substr(eq + 1);
      if (i + 1 >= words.size()) return absl::InvalidArgumentError(absl::StrCat(word, " needs a value"));
      return words[++i];
    };
    if (word.empty() || word[0] != '-') {
      paths.push_back(word);
    } else if (word == "--overwrite") {
      args.overwrite = true;
    } else if (word == "--quiet" || word == "-q") {
    } else if (word == "--skip-non-tensor-values") {
      args.skip_non_tensor_values = true;
    } else if (word == "--to" || absl::StartsWith(word, "--to=")) {
      DCPLAN_ASSIGN_OR_RETURN(std::string format, value());
      DCPLAN_RETURN_IF_ERROR(ParseTo(format, &args));
    } else if (word == "--max-shard-size" || absl::StartsWith(word, "--max-shard-size=")) {
      DCPLAN_ASSIGN_OR_RETURN(std::string size, value());
      DCPLAN_ASSIGN_OR_RETURN(args.max_shard_bytes, safetensors::ParseByteSize(size));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option \"", word, "\" for a safetensors conversion"));
    }
  }
  if (paths.size() != 2) return absl::InvalidArgumentError(absl::StrCat("expected IN and OUT, got ", paths.size()));
  args.in = ResolveUserPath(paths[0]);
  args.out = ResolveUserPath(paths[1]);
  return args;
}

// A DefaultSavePlanner over a state dict of meta tensors (shapes and dtypes
// only) that loads each tensor from `source` when it is written.
class FromSourceSavePlanner : public DefaultSavePlanner {
 public:
  explicit FromSourceSavePlanner(StorageReader& source) : source_(source) {}

  absl::StatusOr<WriteData> TransformObject(const WriteItem& item, const StateDict& object) const override {
    const at::Tensor* placeholder = object.is_leaf() ? PlainTensorOf(*object.leaf()) : nullptr;
    if (placeholder == nullptr || !placeholder->is_meta()) return DefaultSavePlanner::TransformObject(item, object);
    at::Tensor tensor = at::empty(placeholder->sizes(), at::TensorOptions().dtype(placeholder->scalar_type()));
    StateDict one = Dict({{item.index.fqn, Value(tensor)}});
    SingleProcessCoordinator coordinator;
    DCPLAN_RETURN_IF_ERROR(Load(one, source_, coordinator));
    return WriteData(std::move(tensor));
  }

 private:
  StorageReader& source_;
};

// The source's tensors as meta tensors; its non-tensor values by name.
absl::StatusOr<StateDict> Placeholders(const Metadata& metadata, std::vector<std::string>* values) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const auto& [key, stored] : metadata.state_dict_metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
    if (tensor == nullptr) {
      values->push_back(key);
      continue;
    }
    absl::StatusOr<c10::ScalarType> type = ScalarTypeFromDType(tensor->properties.dtype);
    if (!type.ok()) return absl::Status(type.status().code(), absl::StrCat("tensor '", key, "': ", type.status().message()));
    entries.emplace_back(key, Value(at::empty(tensor->size, at::TensorOptions().dtype(*type).device(at::kMeta))));
  }
  return Dict(std::move(entries));
}

absl::StatusOr<std::string> Convert(const Args& args, StorageReader& source, StorageWriter& destination) {
  DCPLAN_ASSIGN_OR_RETURN(Metadata metadata, source.ReadMetadata());
  std::vector<std::string> values;
  DCPLAN_ASSIGN_OR_RETURN(StateDict placeholders, Placeholders(metadata, &values));
  if (!values.empty() && !(args.to_safetensors && args.skip_non_tensor_values)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors holds tensors only; these values are not tensors: ", absl::StrJoin(values, ", "),
        " (pass --skip-non-tensor-values to leave them out)"));
  }
  FromSourceSavePlanner planner(source);
  SingleProcessCoordinator coordinator;
  DCPLAN_ASSIGN_OR_RETURN(Metadata saved, Save(placeholders, destination, coordinator, &planner));
  std::string summary = absl::StrCat(saved.state_dict_metadata.size(), " tensors");
  if (!values.empty()) absl::StrAppend(&summary, "; left out ", values.size(), " non-tensor values: ", absl::StrJoin(values, ", "));
  return summary;
}

int Usage(absl::string_view message, std::string* err) {
  absl::StrAppend(err, kPrefix, message, "\n", kUsage, "\n");
  return kCheckpointUsage;
}

bool Exists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

}  // namespace

bool IsSafetensorsConversion(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--to" || absl::StartsWith(arg, "--to=") || arg == "--max-shard-size" ||
        absl::StartsWith(arg, "--max-shard-size=")) {
      return true;
    }
  }
  for (const std::string& arg : args) {
    if (!arg.empty() && arg[0] != '-') return IsSafetensorsCheckpoint(ResolveUserPath(arg));
  }
  return false;
}

int ConvertSafetensorsMain(const std::vector<std::string>& words, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<Args> args = Parse(words);
  if (!args.ok()) return Usage(args.status().message(), stderr_text);
  const bool from_safetensors = IsSafetensorsCheckpoint(args->in);
  if (from_safetensors == args->to_safetensors) {
    return Usage(from_safetensors ? "IN is already a safetensors checkpoint; OUT is written in DCP format (drop --to)"
                                  : absl::StrCat(args->in, " is not a safetensors checkpoint directory"),
                 stderr_text);
  }
  if (!from_safetensors && !Exists(args->in + "/" + kMetadataFileName)) {
    return Usage(absl::StrCat(args->in, " holds no DCP checkpoint (.metadata)"), stderr_text);
  }
  if (Exists(args->out) && !args->overwrite) {
    return Usage(absl::StrCat(args->out, " already exists (pass --overwrite to replace it)"), stderr_text);
  }
  absl::StatusOr<std::string> summary;
  if (from_safetensors) {
    safetensors::SafetensorsReader source(args->in);
    FileSystemWriterOptions options;
    options.overwrite = args->overwrite;
    FileSystemWriter destination(args->out, options);
    summary = Convert(*args, source, destination);
  } else {
    FileSystemReader source(args->in);
    safetensors::SafetensorsWriterOptions options;
    options.overwrite = args->overwrite;
    options.layout.max_shard_bytes = args->max_shard_bytes;
    options.skip_non_tensor_values = args->skip_non_tensor_values;
    safetensors::SafetensorsWriter destination(args->out, options);
    summary = Convert(*args, source, destination);
  }
  if (!summary.ok()) {
    absl::StrAppend(stderr_text, kPrefix, args->in, " -> ", args->out, ": ", summary.status().message(), "\n");
    return kCheckpointFault;
  }
  absl::StrAppend(stdout_text, "converted ", from_safetensors ? "safetensors" : "DCP", " checkpoint ", args->in,
                  " to ", from_safetensors ? "DCP" : "safetensors", " checkpoint ", args->out, ": ", *summary, "\n");
  return kCheckpointOk;
}

}  // namespace dcplan::tools
