#ifndef DCPLAN_TOOLS_DCPLAN_DEMO_STORAGE_H_
#define DCPLAN_TOOLS_DCPLAN_DEMO_STORAGE_H_

// The storage the demo saves to and loads from: DCP (`--format dcp`, the
// default) or a Hugging Face safetensors directory (`--format safetensors`).
// Safetensors holds tensors only, so the demo model then has no non-tensor
// values.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/storage.h"
#include "tools/dcplan/demo_model.h"

namespace dcplan::tools {

enum class DemoFormat { kDcp, kSafetensors };

// "dcp" or "safetensors"; InvalidArgument otherwise.
absl::StatusOr<DemoFormat> ParseDemoFormat(const std::string& name);
const char* DemoFormatName(DemoFormat format);

// The demo model for `format`: MakeDemoModel, without values for safetensors.
DemoModel MakeDemoModelFor(DemoFormat format, int64_t scale_mib);

// Safetensors files are limited to a quarter of the model's bytes, so the
// demo shows a multi-file checkpoint with its index.
std::unique_ptr<StorageWriter> MakeDemoWriter(DemoFormat format, const std::string& dir, bool overwrite,
                                              int64_t model_bytes);
std::unique_ptr<StorageReader> MakeDemoReader(DemoFormat format, const std::string& dir);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_DEMO_STORAGE_H_
