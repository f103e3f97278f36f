#include "tools/dcplan/demo_storage.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "api/filesystem.h"
#include "api/safetensors/storage.h"

namespace dcplan::tools {

absl::StatusOr<DemoFormat> ParseDemoFormat(const std::string& name) {
  if (name == "dcp") return DemoFormat::kDcp;
  if (name == "safetensors") return DemoFormat::kSafetensors;
  return absl::InvalidArgumentError(absl::StrCat("--format: \"", name, "\" is neither dcp nor safetensors"));
}

const char* DemoFormatName(DemoFormat format) { return format == DemoFormat::kDcp ? "dcp" : "safetensors"; }

DemoModel MakeDemoModelFor(DemoFormat format, int64_t scale_mib) {
  DemoModel model = MakeDemoModel(scale_mib);
  if (format == DemoFormat::kSafetensors) model.values.clear();
  return model;
}

std::unique_ptr<StorageWriter> MakeDemoWriter(DemoFormat format, const std::string& dir, bool overwrite,
                                              int64_t model_bytes) {
  if (format == DemoFormat::kDcp) return std::make_unique<FileSystemWriter>(dir, FileSystemWriterOptions{overwrite});
  safetensors::SafetensorsWriterOptions options;
  options.overwrite = overwrite;
  options.layout.max_shard_bytes = std::max<int64_t>(1, model_bytes / 4);
  return std::make_unique<safetensors::SafetensorsWriter>(dir, options);
}

std::unique_ptr<StorageReader> MakeDemoReader(DemoFormat format, const std::string& dir) {
  if (format == DemoFormat::kDcp) return std::make_unique<FileSystemReader>(dir);
  return std::make_unique<safetensors::SafetensorsReader>(dir);
}

}  // namespace dcplan::tools
