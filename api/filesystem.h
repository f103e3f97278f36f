#ifndef DCPLAN_API_FILESYSTEM_H_
#define DCPLAN_API_FILESYSTEM_H_

// FileSystemWriter / FileSystemReader: a checkpoint directory in PyTorch
// DCP's on-disk format (spec/format.md): `.metadata` (the pickle PyTorch
// reads) plus `__{rank}_{n}.distcp` data files of concatenated torch.save
// archives; PyTorch 2.x loads what this writes and the reverse.
//
// Beyond DCP:
//   - Checksums: the XXH3-64 of every item's stored bytes goes into a side
//     file `.dcplan_checksums` that PyTorch never opens; the reader checks it
//     when present, so a flipped bit is an error naming file, tensor and chunk.
//   - Atomic commit: ranks write `__{r}_{n}.distcp.tmp`, fsync; the
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
//     non-tensors and a small buffer for tensors on save; the largest stored
//     chunk being read on load.

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

class FileSystemWriter : public StorageWriter {
 public:
  explicit FileSystemWriter(std::string directory, FileSystemWriterOptions options = {});

  absl::Status SetUpStorageWriter(bool is_coordinator, int64_t rank) override;
  std::optional<StorageMeta> GetStorageMeta() const override;
  // Creates the directory; refuses an existing checkpoint without overwrite.
  absl::StatusOr<SavePlan> PrepareLocalPlan(SavePlan plan) override;
  // storage_data of each plan = "__{r}_".
  absl::StatusOr<std::vector<SavePlan>> PrepareGlobalPlan(std::vector<SavePlan> plans) override;
  // One file per rank, bytes items first, then tensors, in plan order.
  absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) override;
  absl::Status Finish(const Metadata& metadata, const std::vector<std::vector<WriteResult>>& results) override;
  void Abort() override;

  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  FileSystemWriterOptions options_;
  bool is_coordinator_ = false;
  int64_t rank_ = 0;
  std::string save_id_;
  std::vector<std::string> temporary_files_;  // this rank's, until Finish
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

  // Parses `.metadata` with the allowlisted unpickler.
  absl::StatusOr<Metadata> ReadMetadata() override;
  absl::Status SetUpStorageReader(const Metadata& metadata, bool is_coordinator, int64_t rank) override;
  absl::StatusOr<LoadPlan> PrepareLocalPlan(LoadPlan plan) override;
  absl::StatusOr<std::vector<LoadPlan>> PrepareGlobalPlan(std::vector<LoadPlan> plans) override;
  // Items grouped by file and sorted by offset; each stored chunk is read and
  // decoded once however many read items use it; bounds-checked against the
  // file size; checksum-verified. Errors name rank, file, offset, key and
  // chunk.
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
