#ifndef DCPLAN_API_SAFETENSORS_STORAGE_H_
#define DCPLAN_API_SAFETENSORS_STORAGE_H_

// SafetensorsWriter / SafetensorsReader: Save and Load (api/checkpoint.h)
// straight to and from a consolidated Hugging Face safetensors checkpoint,
// from and onto any sharding. No consolidation pass: every rank writes its
// own chunks at their byte positions in the final files, and reads only the
// byte ranges of its own shards.
//
//   dcplan::safetensors::SafetensorsWriterOptions options;
//   options.layout.max_shard_bytes = 2'000'000'000;
//   dcplan::safetensors::SafetensorsWriter writer("/models/out", options);
//   dcplan::Save(state_dict, writer, coordinator);
//   dcplan::safetensors::SafetensorsReader reader("/models/llama");
//   dcplan::Load(state_dict, reader, coordinator);
//
// Saving (layout.h fixes the canonical layout):
//   - PrepareGlobalPlan (coordinator) plans the files from the global plan,
//     creates each as `NAME.tmp` holding its header and pre-sized to its
//     final size, and tells each rank (SavePlan::storage_data) where its
//     tensors start. The ranks must see one file system (as for
//     FileSystemWriter's commit).
//   - WriteData (every rank) pwrites each of its chunks straight from the
//     tensor's memory: a dim-0 shard as one range, other shardings as their
//     strided runs (byte_runs.h). Replicated data is written once (dedup of
//     the planner). Buffered writes to one file are serialized by the kernel
//     (the inode lock), so of F files rank r of N starts with file r*F/N and
//     wraps around: with several files, ranks mostly write different ones.
//   - Finish (coordinator) checks that the ranks wrote every byte of every
//     tensor, fsyncs the files, renames them into place, and writes the
//     index last (temporary name, fsync, rename), fsyncing the directory.
//     A failed save leaves only `*.tmp` files, removed by Abort; never a
//     file under a final name with missing data.
//   - Non-tensor values: safetensors holds tensors only (`__metadata__` is
//     str -> str, and a value put there would come back as a string, not as
//     what was saved). So a state dict with non-tensor values is refused,
//     the error listing every such key, unless `skip_non_tensor_values`
//     leaves them out (they are then not in the checkpoint).
//   - The returned Metadata is the checkpoint as SafetensorsReader sees it
//     (one chunk per tensor).
//   - An existing safetensors checkpoint in the directory is refused unless
//     `overwrite`; with it, its index and data files are replaced.
//   - Plan caching is not supported (its placeholder plans carry no tensors).
//
// Loading: the directory as DCP metadata (directory.h: each tensor one
// chunk), so the default load planner fills any sharding. A destination
// that is a contiguous CPU tensor of the stored dtype is read into directly
// (one pread per run); otherwise the box is read into a buffer and copied
// (converting dtypes, like PyTorch). Stored dtypes this LibTorch lacks
// (F8_*, U16/U32/U64 in 1.13) are an error naming the tensor and file.
//
// Errors of one rank start with "rank N: " and name the tensor and file.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/safetensors/directory.h"
#include "api/safetensors/layout.h"
#include "api/storage.h"

namespace dcplan::safetensors {

struct SafetensorsWriterOptions {
  LayoutOptions layout;
  bool overwrite = false;
  bool sync_files = true;
  bool skip_non_tensor_values = false;
  ProgressCallback progress;
};

class SafetensorsWriter : public StorageWriter {
 public:
  explicit SafetensorsWriter(std::string directory, SafetensorsWriterOptions options = {});

  absl::Status SetUpStorageWriter(bool is_coordinator, int64_t rank) override;
  std::optional<StorageMeta> GetStorageMeta() const override;
  // Coordinator: mkdir -p; FailedPrecondition if the directory already holds
  // a safetensors checkpoint and overwrite is off.
  absl::StatusOr<SavePlan> PrepareLocalPlan(SavePlan plan) override;
  absl::StatusOr<std::vector<SavePlan>> PrepareGlobalPlan(std::vector<SavePlan> plans) override;
  absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) override;
  absl::StatusOr<Metadata> Finish(const Metadata& metadata,
                                  const std::vector<std::vector<WriteResult>>& results) override;
  // Coordinator: removes the temporary files.
  void Abort() override;

  const std::string& directory() const { return directory_; }

 private:
  absl::Status CreateTemporaryFiles();
  absl::Status ReplacePreviousCheckpoint() const;
  absl::Status CheckEveryByteWritten(const std::vector<std::vector<WriteResult>>& results) const;

  std::string directory_;
  SafetensorsWriterOptions options_;
  bool is_coordinator_ = false;
  int64_t rank_ = 0;
  std::optional<PlannedCheckpoint> planned_;  // coordinator, from PrepareGlobalPlan
  std::vector<std::string> temporary_files_;  // coordinator, until Finish
};

struct SafetensorsReaderOptions {
  ProgressCallback progress;
};

class SafetensorsReader : public StorageReader {
 public:
  explicit SafetensorsReader(std::string directory, SafetensorsReaderOptions options = {});

  // ReadCheckpoint + ToDcpMetadata (directory.h).
  absl::StatusOr<Metadata> ReadMetadata() override;
  absl::Status SetUpStorageReader(const Metadata& metadata, bool is_coordinator, int64_t rank) override;
  absl::StatusOr<LoadPlan> PrepareLocalPlan(LoadPlan plan) override;
  absl::StatusOr<std::vector<LoadPlan>> PrepareGlobalPlan(std::vector<LoadPlan> plans) override;
  // Reads each item's box of its stored tensor (bytes items do not exist in
  // this format: InvalidArgument).
  absl::Status ReadData(const LoadPlan& plan, LoadPlanner& planner) override;

 private:
  std::string directory_;
  SafetensorsReaderOptions options_;
  std::optional<Metadata> metadata_;
  int64_t rank_ = 0;
};

}  // namespace dcplan::safetensors

#endif  // DCPLAN_API_SAFETENSORS_STORAGE_H_
