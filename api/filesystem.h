#ifndef DCPLAN_API_FILESYSTEM_H_
#define DCPLAN_API_FILESYSTEM_H_

// FileSystemWriter / FileSystemReader: a checkpoint directory in PyTorch
// DCP's on-disk format (spec/format.md): `.metadata` (the pickle PyTorch
// reads) plus `__{rank}_{n}.distcp` data files of concatenated torch.save
// archives; PyTorch 2.x loads what this writes and the reverse.
//
// Beyond DCP:
//   - Checksums: the CRC-32 of every item's stored bytes goes into a side
//     file `.dcplan_checksums` (version 2; api/internal/checksums.h) that
//     PyTorch never opens; the reader checks it when present, so a flipped
//     byte is an error naming file, tensor and chunk. The writer derives it
//     from the CRC-32s the item's ZIP records carry anyway (Crc32Combine), so
//     every byte is checksummed once. Version 1 files (XXH3-64, earlier
//     dcplan) are still checked.
//     The file names the save id of its `.metadata` and hashes itself: a
//     checksum file left by another save (PyTorch overwrote the checkpoint)
//     is ignored, a damaged one is an error of its own.
//   - Atomic commit: ranks write `__{r}_0.distcp.tmp`, fsync; the
//     coordinator (after every rank succeeded) removes a previous `.metadata`
//     (when overwriting), renames the data files into place, writes
//     `.dcplan_checksums` and `.metadata` through temporary names with fsync
//     and rename, `.metadata` last, and fsyncs the directory. A save that
//     fails or dies leaves the previous checkpoint untouched (new directory)
//     or no `.metadata` at all; never a `.metadata` pointing at missing or
//     partial data.
//   - A directory that already holds a checkpoint is refused unless
//     `overwrite` is set.
//   - Streaming: peak extra memory is one item's serialized bytes for
//     non-tensors and an 8 MiB write buffer on save (plus a contiguous copy
//     of a tensor that is a view); a tensor's bytes go from its memory to
//     write(2) in 1 MiB blocks, CRC-32'd once (the ZIP's; on a thread of its
//     own for tensors of 4 MiB or more, overlapping the writes). On load, a
//     tensor chunk whose single destination is a contiguous tensor of its
//     dtype and size is read straight into it (pread in 1 MiB blocks,
//     CRC-32'd on a helper thread as they arrive); otherwise one stored
//     chunk's storage at a time is read and copied into the destinations.
//     Archives the streamed reader does not handle (compressed records,
//     several storages) and bytes items are read whole.
//   - Bounds: every item's [offset, offset + length) is checked against the
//     data file's size before it is read.
//
// Errors of one rank's writing and reading start with "rank N: " and name the
// file and item, e.g.
//   "rank 2: writing 'layers.0.w' shard at [4, 0] to __2_0.distcp.tmp: No
//    space left on device"
//   "rank 1: item 'w' chunk [4, 0] at __1_0.distcp offset 100 length 5000
//    ends past the end of the file (3000 bytes)"
//   "rank 1: checksum mismatch in __1_0.distcp at offset 100 (item 'w' chunk
//    [4, 0]): the file is corrupt".

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/storage.h"

namespace dcplan {

inline constexpr char kMetadataFileName[] = ".metadata";
inline constexpr char kChecksumsFileName[] = ".dcplan_checksums";

struct FileSystemWriterOptions {
  bool overwrite = false;
  bool sync_files = true;
  // Called as this rank's bytes are written.
  ProgressCallback progress;
};

// One writer per rank and save (it may be reused for later saves: each
// successful or aborted save draws a fresh save id).
class FileSystemWriter : public StorageWriter {
 public:
  explicit FileSystemWriter(std::string directory, FileSystemWriterOptions options = {});

  absl::Status SetUpStorageWriter(bool is_coordinator, int64_t rank) override;
  // checkpoint_id = the directory as given, save_id = a random UUID (v4).
  std::optional<StorageMeta> GetStorageMeta() const override;
  // mkdir -p; FailedPrecondition "checkpoint directory D already holds a
  // checkpoint (.metadata); pass overwrite to replace it" without overwrite.
  absl::StatusOr<SavePlan> PrepareLocalPlan(SavePlan plan) override;
  // storage_data of each plan without one = "__{r}_" (r = its position); a
  // prefix must be a plain file-name prefix (no '/').
  absl::StatusOr<std::vector<SavePlan>> PrepareGlobalPlan(std::vector<SavePlan> plans) override;
  // One file per rank, `{prefix}0.distcp.tmp` (created even with no items),
  // bytes items first, then tensors, each in plan order, concatenated. Each
  // result's StorageInfo names the final file `{prefix}0.distcp`. The planner
  // must resolve a bytes item to bytes and a tensor item to a CPU tensor of
  // the chunk's sizes and the plan's dtype.
  absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) override;
  // Coordinator. Sets version "1.0.0", storage_data (rank order, then write
  // order; an item written twice is an error) and storage_meta
  // (checkpoint_id, save_id; modules kept), then commits: removes a previous
  // `.metadata` (overwrite only; without it, a `.metadata` that appeared
  // during the save is FailedPrecondition), renames every rank's data file
  // into place, writes `.dcplan_checksums`, then `.metadata`, each through a
  // `.tmp` name, fsync and rename, fsyncing the directory in between
  // (fsyncs only with sync_files).
  absl::StatusOr<Metadata> Finish(const Metadata& metadata,
                                  const std::vector<std::vector<WriteResult>>& results) override;
  // Removes this rank's temporary files (data, and on the coordinator the
  // `.tmp` files of Finish). Files of a previous checkpoint are untouched.
  void Abort() override;

  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  FileSystemWriterOptions options_;
  bool is_coordinator_ = false;
  int64_t rank_ = 0;
  std::string save_id_;
  std::vector<std::string> temporary_files_;  // this rank's, until Finish
  std::vector<std::string> file_prefixes_;    // coordinator: each rank's, from PrepareGlobalPlan
};

struct FileSystemReaderOptions {
  // Check `.dcplan_checksums` when present (an absent file is fine:
  // PyTorch-written checkpoints have none).
  bool verify_checksums = true;
  ProgressCallback progress;
};

class FileSystemReader : public StorageReader {
 public:
  explicit FileSystemReader(std::string directory, FileSystemReaderOptions options = {});

  // Parses `.metadata` with the allowlisted unpickler; errors name the file
  // ("'/ckpt/.metadata': ..."). No `.metadata`: NotFound "no checkpoint in D
  // (.metadata missing)". The metadata is returned as stored (no load_id is
  // filled in).
  absl::StatusOr<Metadata> ReadMetadata() override;
  // Keeps `metadata` for ReadData; FailedPrecondition if it has no
  // storage_data.
  absl::Status SetUpStorageReader(const Metadata& metadata, bool is_coordinator, int64_t rank) override;
  // Plans pass through unchanged.
  absl::StatusOr<LoadPlan> PrepareLocalPlan(LoadPlan plan) override;
  absl::StatusOr<std::vector<LoadPlan>> PrepareGlobalPlan(std::vector<LoadPlan> plans) override;
  // Items grouped by file (first-seen order) and sorted by offset; each
  // stored chunk is read and decoded once however many read items use it,
  // after its bounds are checked against the file size (DataLoss), and its
  // checksum is verified (DataLoss) before anything is copied from it, or,
  // for a chunk read straight into its destination, right after (the
  // destination then holds the damaged bytes). With a version 2 checksum
  // file, the CRC-32 of a tensor's bytes (computed once, as they are read)
  // must also equal its ZIP record's; without a checksum file of this save
  // (PyTorch-written checkpoints, which may be saved with compute_crc32 off)
  // the ZIP's CRC-32s are not checked, as in LibTorch's reader and
  // spec/format.md. Bytes items go to planner.LoadBytes; for a
  // tensor item the stored tensor (whose dtype and size must be those the
  // metadata records: DataLoss otherwise) is narrowed to storage_offsets /
  // lengths and copied (converting dtypes, like PyTorch) into
  // planner.ResolveTensor(item), whose shape must match, then
  // planner.CommitTensor. Stream transforms (transform_descriptors) are
  // Unimplemented. Errors name rank, file, offset, key and chunk; the
  // destinations of the items before the failing one are already filled.
  absl::Status ReadData(const LoadPlan& plan, LoadPlanner& planner) override;

  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  FileSystemReaderOptions options_;
  std::optional<Metadata> metadata_;
  int64_t rank_ = 0;
};

}  // namespace dcplan

#endif  // DCPLAN_API_FILESYSTEM_H_
