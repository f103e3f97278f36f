#ifndef DCPLAN_TOOLS_DCPLAN_SAFETENSORS_COMMANDS_H_
#define DCPLAN_TOOLS_DCPLAN_SAFETENSORS_COMMANDS_H_

// The safetensors side of `dcplan inspect`, `verify` and `convert`
// (Hugging Face checkpoint directories, api/safetensors/). The commands call
// these when DIR holds a safetensors checkpoint and no `.metadata`, or when
// convert is given `--to safetensors`.

#include <string>
#include <vector>

namespace dcplan::tools {

// Whether `directory` holds a Hugging Face checkpoint (and no DCP one).
bool IsSafetensorsCheckpoint(const std::string& directory);

// `inspect DIR [--json]`: files, header sizes, every tensor's dtype, shape
// and absolute byte range, the index and its total_size. Exit 0, or 1 when
// the checkpoint does not read.
int InspectSafetensors(const std::string& directory, bool json, std::string* stdout_text, std::string* stderr_text);

// `verify DIR [--json]`: every header (JSON, dtypes, offsets tiling the data
// in bounds, bytes = dtype size x shape), the index against the files
// (missing files, tensors in no file or another one) and its total_size.
// One line per problem naming the file and tensor; exit 1 on any.
int VerifySafetensors(const std::string& directory, bool json, std::string* stdout_text, std::string* stderr_text);

// Whether the words after "convert" ask for a safetensors conversion:
// `--to safetensors`, or IN is a safetensors checkpoint directory.
bool IsSafetensorsConversion(const std::vector<std::string>& args);

// `convert HF_DIR DCP_DIR` and `convert DCP_DIR HF_DIR --to safetensors
// [--max-shard-size SIZE] [--skip-non-tensor-values]` (both with
// [--overwrite] [--quiet]). Streams: one tensor in memory at a time.
// Exit statuses as ConvertMain's.
int ConvertSafetensorsMain(const std::vector<std::string>& args, std::string* stdout_text,
                           std::string* stderr_text);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_SAFETENSORS_COMMANDS_H_
