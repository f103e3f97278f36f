#ifndef DCPLAN_API_SAFETENSORS_LAYOUT_H_
#define DCPLAN_API_SAFETENSORS_LAYOUT_H_

// Where every tensor of a consolidated safetensors checkpoint goes, decided
// once (by the coordinator) from names, dtypes and shapes alone, so that
// every rank can write its chunks straight into the final files.
//
// Canonical layout (deterministic, so a save from N ranks is byte-identical
// to a save from one):
//   - tensors sorted by name (byte order); files filled in that order;
//   - with `max_shard_bytes`: a new file starts when the next tensor would
//     take the current one past the limit (a tensor larger than the limit
//     gets a file of its own), as Hugging Face's max_shard_size does;
//     one file is `model.safetensors`, several are
//     `model-00001-of-0000N.safetensors` (5 digits) with an index;
//   - with `file_of` (a user's name -> file mapping, e.g. an existing
//     index's weight_map): files in name order, each with its tensors in
//     name order; an index unless the only file is `model.safetensors`;
//   - header: __metadata__ {"format": "pt"}, then the tensors in data order,
//     compact JSON padded with spaces to a multiple of 8;
//   - index: total_size = the tensors' bytes, weight_map sorted, indent 2.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/safetensors/directory.h"
#include "engine/box.h"
#include "engine/dtype.h"

namespace dcplan::safetensors {

// Hugging Face's default max_shard_size, "5GB".
inline constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
};

struct LayoutOptions {
  int64_t max_shard_bytes = kDefaultMaxShardBytes;
  // When set, decides the files (max_shard_bytes is then unused).
  std::optional<std::map<std::string, std::string>> file_of;
};

struct PlannedCheckpoint {
  Checkpoint checkpoint;                    // as ReadCheckpoint will see it (directory left empty)
  std::vector<std::string> header_bytes;    // per file: what it starts with (SerializeHeader)
  std::string index_json;                   // empty: no index
};

// Errors (InvalidArgument): a duplicate name, a dtype safetensors cannot
// hold, a byte size or file size that overflows, max_shard_bytes < 1, a
// tensor `file_of` does not place, a file name that is not a plain
// `*.safetensors` name.
absl::StatusOr<PlannedCheckpoint> PlanCheckpoint(std::vector<TensorSpec> tensors, const LayoutOptions& options);

// Parses "5GB", "500MB", "2GiB", "1000" (bytes) like Hugging Face's
// max_shard_size: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

}  // namespace dcplan::safetensors

#endif  // DCPLAN_API_SAFETENSORS_LAYOUT_H_
