#ifndef DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_H_
#define DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_H_

// What `dcplan inspect` and `dcplan verify` share: their arguments, and the
// overview of a checkpoint directory that needs no data file contents
// (`.metadata`, data file sizes, the checksum side file).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "api/item_reader.h"
#include "engine/metadata.h"

namespace dcplan::tools {

// Exit statuses of `dcplan inspect` and `dcplan verify`.
inline constexpr int kCheckpointOk = 0;
inline constexpr int kCheckpointFault = 1;  // no or broken checkpoint
inline constexpr int kCheckpointUsage = 2;  // bad arguments, DIR not a directory

struct CheckpointArgs {
  std::string directory;  // resolved with ResolveUserPath
  bool help = false;
  bool json = false;
  bool quiet = false;
};

// Parses `DIR [--json] [--quiet]` (flags anywhere; --quiet only when
// `allow_quiet`), or a lone `--help`/`-h`. Errors (InvalidArgument, a
// sentence): unknown flag, no DIR, more than one DIR, DIR that does not exist
// or is not a directory.
absl::StatusOr<CheckpointArgs> ParseCheckpointArgs(const std::vector<std::string>& args, bool allow_quiet);

// A data file of the checkpoint, with its size when it could be stat'ed.
struct DataFileEntry {
  std::string name;  // relative to the checkpoint directory
  std::optional<int64_t> size;
  std::string error;        // why there is no size (e.g. "No such file or directory")
  bool referenced = true;   // named by storage_data (else a stray *.distcp file)
};

enum class ChecksumState {
  kAbsent,     // no .dcplan_checksums (PyTorch wrote the checkpoint)
  kThisSave,   // written with this .metadata: checked by verify
  kOtherSave,  // left by another save: ignored, as FileSystemReader does
  kDamaged,    // unreadable or corrupt (see error)
};

struct CheckpointOverview {
  std::string directory;
  Metadata metadata;
  // Files named by storage_data in first-seen order, then other `*.distcp`
  // files of the directory, sorted.
  std::vector<DataFileEntry> data_files;
  ChecksumState checksum_state = ChecksumState::kAbsent;
  std::optional<ItemChecksums> checksums;  // kThisSave and kOtherSave
  std::string checksum_error;              // kDamaged
};

// Reads `directory`'s `.metadata` and the sizes of its data files (never
// their contents) and `.dcplan_checksums`. Errors: NotFound "no checkpoint in
// D (.metadata missing)"; the metadata parser's InvalidArgument naming
// '.metadata'; read errors naming the path.
absl::StatusOr<CheckpointOverview> ReadCheckpointOverview(const std::string& directory);

// The metadata chunk a storage_data entry names, found in O(rank): built
// once per checkpoint so that inspect and verify stay linear in the number of
// chunks (a tensor may have a million). Holds pointers into `metadata`,
// which must outlive it.
//
// Writers store a tensor's chunks in chunk order, so Find first tries the
// chunk after the one it found last (comparing the fqn and offsets, no
// hashing, no random access into a table of a million entries) and hashes
// only when that guess misses. The guess is taken only when no tensor has two
// chunks at the same offsets, so the answer is always the first such chunk.
// Cost: O(rank + fqn length) per Find. Not thread-safe (the guess is state).
class ChunkLookup {
 public:
  explicit ChunkLookup(const Metadata& metadata);
  // The tensor `index.fqn` names (nullptr if it is absent or a bytes value)
  // and its chunk at `index.offset` (nullptr if there is none).
  std::pair<const TensorStorageMetadata*, const ChunkBox*> Find(const MetadataIndex& index) const;

 private:
  const Metadata& metadata_;
  absl::flat_hash_map<std::pair<const TensorStorageMetadata*, absl::Span<const int64_t>>, const ChunkBox*> chunks_;
  bool repeated_offsets_ = false;  // some tensor has two chunks at the same offsets
  // The last chunk found and its tensor's fqn (a key of metadata_).
  mutable const std::string* last_fqn_ = nullptr;
  mutable const TensorStorageMetadata* last_tensor_ = nullptr;
  mutable const ChunkBox* last_chunk_ = nullptr;
};

// storage_data lookups of (fqn, chunk offsets) made in chunk order: like
// ChunkLookup, the entry after the one found last is compared first (keys
// are unique, so a match is the entry Find would return) before the hash
// index is consulted. Cost: O(rank + fqn length) per Find. Holds a pointer
// into `metadata`, which must outlive it.
class LocationCursor {
 public:
  explicit LocationCursor(const Metadata& metadata) : metadata_(metadata) {}
  // What metadata.storage_data->Find(MetadataIndex{fqn, offsets}) returns
  // (nullptr without storage_data).
  const StorageInfo* Find(const std::string& fqn, const Shape& offsets);

 private:
  const Metadata& metadata_;
  size_t next_ = 0;  // position in storage_data to try first
};

// `text` from a checkpoint (fqns, paths, ids, messages quoting them) made
// safe for a terminal: control bytes (below 0x20, and 0x7f) become \xNN, so
// an ESC, BEL or CR in a key cannot clear the screen or overwrite a line.
// With `keep_newlines`, '\n' passes (for a whole report of several lines).
std::string Printable(absl::string_view text, bool keep_newlines = false);

// "'w' chunk [4, 0]" for a tensor chunk, "'step'" for a bytes item (the fqn
// Printable).
std::string ItemName(const MetadataIndex& index);

// "present", "absent", "from another save (ignored)", "damaged".
std::string ChecksumStateName(ChecksumState state);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_CHECKPOINT_REPORT_H_
