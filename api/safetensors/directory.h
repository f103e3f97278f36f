#ifndef DCPLAN_API_SAFETENSORS_DIRECTORY_H_
#define DCPLAN_API_SAFETENSORS_DIRECTORY_H_

// A Hugging Face safetensors checkpoint directory, read: the index (if any)
// and every file's header, cross-checked; and its view as DCP metadata. The
// one reader of this layout, shared by SafetensorsReader (load), verify,
// inspect and convert.
//
// Which files: `model.safetensors.index.json` (or the directory's only
// `*.safetensors.index.json`) and the files its weight_map names; without an
// index, `model.safetensors` (or the directory's only `*.safetensors`).
// File names from the index are plain names confined to the directory.
//
// Budget: per file, the header only (at most kMaxHeaderBytes and never more
// than the file holds); tensor data is not read here.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/safetensors/format.h"
#include "engine/metadata.h"

namespace dcplan::safetensors {

struct FileHeader {
  std::string name;  // relative to the directory
  int64_t file_size = 0;
  Header header;
};

struct Checkpoint {
  std::string directory;
  std::string index_file;        // empty without an index
  std::optional<Index> index;
  std::vector<FileHeader> files;  // sorted by name

  // Sum of the tensors' bytes, the index's total_size as HF computes it.
  int64_t TensorBytes() const;
};

// Whether `directory` holds a safetensors checkpoint by the rule above
// (looks at names only).
bool IsSafetensorsDirectory(const std::string& directory);

// One file's header. Errors name the file: unreadable, too short, header
// length over the limit or beyond the file, invalid header (format.h).
absl::StatusOr<FileHeader> ReadFileHeader(const std::string& directory, const std::string& name);

// The checkpoint, with every cross-check a loader needs: NotFound when the
// directory holds none (or an index names a missing file); InvalidArgument
// when an index names a tensor its file lacks, or a file holds a tensor the
// index does not map to it (so no name is in two files).
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& directory);

// Faults a loader can live with but `verify` reports: an index without
// total_size, or one that differs from TensorBytes().
std::vector<std::string> IndexProblems(const Checkpoint& checkpoint);

// The checkpoint as DCP metadata: every tensor one chunk (its whole shape),
// stored at its byte range of its file (storage_data: MetadataIndex{name,
// zeros} -> {file, absolute offset, length}); default properties but the
// dtype; storage_meta.checkpoint_id = the directory; no planner_data (the
// names are the flat keys).
Metadata ToDcpMetadata(const Checkpoint& checkpoint);

}  // namespace dcplan::safetensors

#endif  // DCPLAN_API_SAFETENSORS_DIRECTORY_H_
