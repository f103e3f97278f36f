#ifndef DCPLAN_API_STORAGE_H_
#define DCPLAN_API_STORAGE_H_

// The storage interfaces of DCP (StorageWriter / StorageReader): where plans
// meet bytes. FileSystemWriter / FileSystemReader (api/filesystem.h) are the
// implementations for a directory in DCP's on-disk format.

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/planners.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan {

// What one write produced: where the item's bytes are, and their checksum.
struct WriteResult {
  MetadataIndex index;
  int64_t size_in_bytes = 0;
  StorageInfo storage_info;
  uint64_t checksum = 0;  // CRC-32 of the item's bytes as stored (.dcplan_checksums version 2)
};

// Reports progress of long operations (bytes done of total). May be called
// from the writing thread; must be cheap.
using ProgressCallback = std::function<void(int64_t done_bytes, int64_t total_bytes)>;

class StorageWriter {
 public:
  virtual ~StorageWriter() = default;
  virtual absl::Status SetUpStorageWriter(bool is_coordinator, int64_t rank) = 0;
  // Storage meta for the planner (checkpoint id, a fresh save id).
  virtual std::optional<StorageMeta> GetStorageMeta() const = 0;
  virtual absl::StatusOr<SavePlan> PrepareLocalPlan(SavePlan plan) = 0;
  // Coordinator: assigns each rank's file prefix.
  virtual absl::StatusOr<std::vector<SavePlan>> PrepareGlobalPlan(std::vector<SavePlan> plans) = 0;
  // Writes this rank's items (not yet visible as a checkpoint).
  virtual absl::StatusOr<std::vector<WriteResult>> WriteData(const SavePlan& plan, SavePlanner& planner) = 0;
  // Coordinator, after every rank wrote: commits the checkpoint (metadata
  // last). `results[r]` are rank r's results. Returns the metadata as
  // committed (`metadata` completed with what the storage adds: item
  // locations, storage meta, version).
  virtual absl::StatusOr<Metadata> Finish(const Metadata& metadata,
                                          const std::vector<std::vector<WriteResult>>& results) = 0;
  // Every rank, when the save failed: removes what this rank left behind.
  virtual void Abort() = 0;
};

class StorageReader {
 public:
  virtual ~StorageReader() = default;
  virtual absl::StatusOr<Metadata> ReadMetadata() = 0;
  virtual absl::Status SetUpStorageReader(const Metadata& metadata, bool is_coordinator, int64_t rank) = 0;
  virtual absl::StatusOr<LoadPlan> PrepareLocalPlan(LoadPlan plan) = 0;
  virtual absl::StatusOr<std::vector<LoadPlan>> PrepareGlobalPlan(std::vector<LoadPlan> plans) = 0;
  // Reads the plan's items and hands them to the planner.
  virtual absl::Status ReadData(const LoadPlan& plan, LoadPlanner& planner) = 0;
};

}  // namespace dcplan

#endif  // DCPLAN_API_STORAGE_H_
