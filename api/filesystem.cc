#include "api/filesystem.h"


#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/internal/checksums.h"
#include "api/internal/confined_path.h"
#include "api/internal/crc32.h"
#include "api/internal/file_io.h"
#include "api/internal/status_macros.h"
#include "api/pickle/metadata_pickle.h"
#include "api/tensor_record.h"
#include "engine/dtype.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

using internal::JoinPath;

constexpr char kDataFileSuffix[] = "0.distcp";
constexpr char kTemporarySuffix[] = ".tmp";
constexpr char kMetadataVersion[] = "1.0.0";

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// A random (version 4) UUID in its usual text form.
std::string NewUuid4() {
  absl::BitGen gen;
  uint64_t high = absl::Uniform<uint64_t>(gen);
  uint64_t low = absl::Uniform<uint64_t>(gen);
  high = (high & ~uint64_t{0xF000}) | uint64_t{0x4000};                  // version 4
  low = (low & ~(uint64_t{3} << 62)) | (uint64_t{2} << 62);               // RFC 4122 variant
  return absl::StrCat(absl::Hex(high >> 32, absl::kZeroPad8), "-", absl::Hex((high >> 16) & 0xFFFF, absl::kZeroPad4),
                      "-", absl::Hex(high & 0xFFFF, absl::kZeroPad4), "-", absl::Hex(low >> 48, absl::kZeroPad4), "-",
                      absl::Hex(low & 0xFFFFFFFFFFFF, absl::kZeroPad12));
}

std::string DefaultPrefix(int64_t rank) { return absl::StrCat("__", rank, "_"); }

// A prefix names files directly inside the checkpoint directory.
absl::Status CheckPrefix(const std::string& prefix) {
  if (prefix.empty() || absl::StrContains(prefix, '/') || absl::StrContains(prefix, '\0') || prefix == "." ||
      prefix == "..") {
    return absl::InvalidArgumentError(absl::StrCat("invalid data file prefix '", prefix, "' in the save plan"));
  }
  return absl::OkStatus();
}

// "'w'", "'w' shard at [4, 0]".
std::string WriteItemName(const WriteItem& item) {
  std::string name = absl::StrCat("'", item.index.fqn, "'");
  if (item.type == WriteItemType::kShard && item.index.offset) {
    absl::StrAppend(&name, " shard at ", ShapeToString(*item.index.offset));
  }
  return name;
}

// Checks a resolved tensor against its plan item, so that the record written
// matches the metadata.
absl::Status CheckResolvedTensor(const WriteItem& item, const at::Tensor& tensor) {
  if (!item.tensor_data) return absl::InvalidArgumentError("the tensor item has no tensor data");
  if (!tensor.defined()) return absl::InvalidArgumentError("the planner resolved an undefined tensor");
  const Shape sizes = tensor.sizes().vec();
  if (sizes != item.tensor_data->chunk.sizes) {
    return absl::InvalidArgumentError(absl::StrCat("the planner resolved a tensor of size ", ShapeToString(sizes),
                                                   " for a chunk of size ",
                                                   ShapeToString(item.tensor_data->chunk.sizes)));
  }
  absl::StatusOr<DType> dtype = DTypeFromScalarType(tensor.scalar_type());
  if (!dtype.ok()) return dtype.status();
  if (*dtype != item.tensor_data->properties.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("the planner resolved a ", DTypeName(*dtype),
                                                   " tensor, the plan says ",
                                                   DTypeName(item.tensor_data->properties.dtype)));
  }
  return absl::OkStatus();
}

// Writes one item's bytes, which start at `file_offset` of their file,
// through `sink`; returns their CRC-32 (for a tensor, joined from the ZIP's
// own: the bytes are read once).
absl::StatusOr<uint32_t> WriteItemPayload(const WriteItem& item, SavePlanner& planner, const ByteSink& sink,
                                          int64_t file_offset) {
  DCPLAN_ASSIGN_OR_RETURN(const WriteData data, planner.ResolveData(item));
  if (item.type == WriteItemType::kByteIO) {
    const auto* bytes = std::get_if<std::string>(&data);
    if (bytes == nullptr) return absl::InvalidArgumentError("the planner resolved a tensor for a bytes item");
    DCPLAN_RETURN_IF_ERROR(sink(bytes->data(), bytes->size()));
    return internal::Crc32(0, bytes->data(), bytes->size());
  }
  const auto* tensor = std::get_if<at::Tensor>(&data);
  if (tensor == nullptr) return absl::InvalidArgumentError("the planner resolved bytes for a tensor item");
  DCPLAN_RETURN_IF_ERROR(CheckResolvedTensor(item, *tensor));
  DCPLAN_ASSIGN_OR_RETURN(const WrittenRecord record, WriteTensorRecord(*tensor, sink, file_offset));
  return record.crc32;
}

}  // namespace

// --- FileSystemWriter --------------------------------------------------------------

FileSystemWriter::FileSystemWriter(std::string directory, FileSystemWriterOptions options)
    : directory_(std::move(directory)), options_(std::move(options)), save_id_(NewUuid4()) {}

absl::Status FileSystemWriter::SetUpStorageWriter(bool is_coordinator, int64_t rank) {
  if (rank < 0) return absl::InvalidArgumentError(absl::StrCat("negative rank ", rank));
  is_coordinator_ = is_coordinator;
  rank_ = rank;
  temporary_files_.clear();
  return absl::OkStatus();
}

std::optional<StorageMeta> FileSystemWriter::GetStorageMeta() const {
  StorageMeta meta;
  meta.checkpoint_id = directory_;
  meta.save_id = save_id_;
  return meta;
}

absl::StatusOr<SavePlan> FileSystemWriter::PrepareLocalPlan(SavePlan plan) {
  absl::Status made = internal::MakeDirectories(directory_);
  if (!made.ok()) return WithContext(made, absl::StrCat("cannot create the checkpoint directory ", directory_));
  absl::StatusOr<bool> exists = internal::PathExists(JoinPath(directory_, kMetadataFileName));
  if (!exists.ok()) return WithContext(exists.status(), JoinPath(directory_, kMetadataFileName));
  if (*exists && !options_.overwrite) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint directory ", directory_,
                                                      " already holds a checkpoint (.metadata); pass overwrite to "
                                                      "replace it"));
  }
  return plan;
}

absl::StatusOr<std::vector<SavePlan>> FileSystemWriter::PrepareGlobalPlan(std::vector<SavePlan> plans) {
  file_prefixes_.clear();
  for (size_t r = 0; r < plans.size(); ++r) {
    if (!plans[r].storage_data) plans[r].storage_data = DefaultPrefix(static_cast<int64_t>(r));
    absl::Status valid = CheckPrefix(*plans[r].storage_data);
    if (!valid.ok()) return WithContext(valid, absl::StrCat("rank ", r));
    file_prefixes_.push_back(*plans[r].storage_data);
  }
  return plans;
}

absl::StatusOr<std::vector<WriteResult>> FileSystemWriter::WriteData(const SavePlan& plan, SavePlanner& planner) {
  const std::string prefix = plan.storage_data.value_or(DefaultPrefix(rank_));
  absl::Status valid = CheckPrefix(prefix);
  if (!valid.ok()) return WithContext(valid, absl::StrCat("rank ", rank_));
  const std::string final_name = prefix + kDataFileSuffix;
  const std::string temporary_name = final_name + kTemporarySuffix;
  const std::string path = JoinPath(directory_, temporary_name);
  temporary_files_.push_back(path);

  internal::BufferedFileWriter file;
  absl::Status opened = file.Open(path);
  if (!opened.ok()) return WithContext(opened, absl::StrCat("rank ", rank_, ": creating ", path));

  // Bytes items first, then tensors, each in plan order (spec/format.md §2.2).
  std::vector<const WriteItem*> order;
  int64_t total_bytes = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (const WriteItem& item : plan.items) {
      if ((item.type == WriteItemType::kByteIO) != (pass == 0)) continue;
      order.push_back(&item);
      absl::StatusOr<int64_t> payload = item.PayloadBytes();
      if (payload.ok()) total_bytes = internal::CheckedAdd(total_bytes, *payload).value_or(total_bytes);
    }
  }

  const ByteSink sink = [&file](const char* data, size_t n) { return file.Write(data, n); };
  std::vector<WriteResult> results;
  results.reserve(order.size());
  for (const WriteItem* item : order) {
    const int64_t offset = file.position();
    absl::StatusOr<uint32_t> crc = WriteItemPayload(*item, planner, sink, offset);
    if (!crc.ok()) {
      return WithContext(crc.status(), absl::StrCat("rank ", rank_, ": writing ", WriteItemName(*item), " to ",
                                                    temporary_name));
    }
    WriteResult result;
    result.index = item->index;
    result.size_in_bytes = file.position() - offset;
    result.storage_info = StorageInfo{final_name, offset, result.size_in_bytes, std::nullopt};
    result.checksum = *crc;
    results.push_back(std::move(result));
    if (options_.progress) options_.progress(file.position(), std::max(total_bytes, file.position()));
  }
  absl::Status closed = file.Close(options_.sync_files);
  if (!closed.ok()) return WithContext(closed, absl::StrCat("rank ", rank_, ": closing ", temporary_name));
  return results;
}

absl::StatusOr<Metadata> FileSystemWriter::Finish(const Metadata& metadata,
                                                  const std::vector<std::vector<WriteResult>>& results) {
  if (!is_coordinator_) return absl::FailedPreconditionError("Finish runs on the coordinator only");
  Metadata committed = metadata;
  committed.version = kMetadataVersion;
  StorageData storage_data;
  std::vector<internal::ChecksumEntry> checksums;
  for (size_t r = 0; r < results.size(); ++r) {
    for (const WriteResult& result : results[r]) {
      if (!storage_data.TryEmplace(result.index, result.storage_info).second) {
        return absl::InternalError(absl::StrCat("item ", ToString(result.index), " was written twice (rank ", r,
                                                " wrote it again)"));
      }
      const StorageInfo& info = result.storage_info;
      checksums.push_back({info.relative_path, info.offset, info.length, result.checksum, result.index.fqn,
                           result.index.offset});
    }
  }
  committed.storage_data = std::move(storage_data);
  StorageMeta meta = committed.storage_meta.value_or(StorageMeta());
  meta.checkpoint_id = directory_;
  meta.save_id = save_id_;
  committed.storage_meta = std::move(meta);

  const bool sync = options_.sync_files;
  auto sync_directory = [&]() -> absl::Status {
    if (!sync) return absl::OkStatus();
    absl::Status synced = internal::SyncDirectory(directory_);
    return synced.ok() ? synced : WithContext(synced, absl::StrCat("syncing the directory ", directory_));
  };
  // The previous checkpoint stops being one before any of its files changes.
  const std::string metadata_path = JoinPath(directory_, kMetadataFileName);
  absl::StatusOr<bool> exists = internal::PathExists(metadata_path);
  if (!exists.ok()) return WithContext(exists.status(), metadata_path);
  if (*exists) {
    if (!options_.overwrite) {
      return absl::FailedPreconditionError(absl::StrCat("checkpoint directory ", directory_,
                                                        " received a checkpoint (.metadata) during this save"));
    }
    absl::Status removed = internal::RemoveIfExists(metadata_path);
    if (!removed.ok()) return WithContext(removed, absl::StrCat("removing the previous ", metadata_path));
    absl::Status synced = sync_directory();
    if (!synced.ok()) return synced;
  }
  for (size_t r = 0; r < results.size(); ++r) {
    const std::string prefix = r < file_prefixes_.size() ? file_prefixes_[r] : DefaultPrefix(static_cast<int64_t>(r));
    const std::string final_path = JoinPath(directory_, prefix + kDataFileSuffix);
    const std::string temporary = final_path + kTemporarySuffix;
    if (std::rename(temporary.c_str(), final_path.c_str()) != 0) {
      return WithContext(internal::ErrnoStatus(errno),
                         absl::StrCat("committing rank ", r, "'s data file ", temporary));
    }
  }
  absl::Status written = internal::WriteFileAtomically(
      directory_, kChecksumsFileName, internal::SerializeChecksums(save_id_, checksums), sync, &temporary_files_);
  if (written.ok()) written = sync_directory();
  if (written.ok()) {
    written = internal::WriteFileAtomically(directory_, kMetadataFileName, WriteMetadataPickle(committed), sync,
                                            &temporary_files_);
    if (!written.ok()) written = WithContext(written, absl::StrCat("writing ", metadata_path));
  } else {
    written = WithContext(written, absl::StrCat("writing ", JoinPath(directory_, kChecksumsFileName)));
  }
  if (written.ok()) written = sync_directory();
  if (!written.ok()) return written;
  temporary_files_.clear();
  save_id_ = NewUuid4();  // the next save through this writer is another save
  return committed;
}

void FileSystemWriter::Abort() {
  for (const std::string& path : temporary_files_) internal::RemoveIfExists(path).IgnoreError();
  temporary_files_.clear();
  save_id_ = NewUuid4();
}

// --- FileSystemReader --------------------------------------------------------------

FileSystemReader::FileSystemReader(std::string directory, FileSystemReaderOptions options)
    : directory_(std::move(directory)), options_(std::move(options)) {}

absl::StatusOr<Metadata> FileSystemReader::ReadMetadata() {
  const std::string path = JoinPath(directory_, kMetadataFileName);
  absl::StatusOr<std::string> bytes =
      internal::ReadConfinedFile(directory_, kMetadataFileName, internal::kMaxMetadataFileBytes);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat("no checkpoint in ", directory_, " (.metadata missing)"));
    }
    return WithContext(bytes.status(), absl::StrCat("'", path, "'"));
  }
  return ParseMetadataPickle(*bytes, path);
}

absl::Status FileSystemReader::SetUpStorageReader(const Metadata& metadata, bool /*is_coordinator*/, int64_t rank) {
  if (!metadata.storage_data) {
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint metadata of ", directory_, " has no storage_data (item locations)"));
  }
  metadata_ = metadata;
  rank_ = rank;
  return absl::OkStatus();
}

absl::StatusOr<LoadPlan> FileSystemReader::PrepareLocalPlan(LoadPlan plan) { return plan; }

absl::StatusOr<std::vector<LoadPlan>> FileSystemReader::PrepareGlobalPlan(std::vector<LoadPlan> plans) {
  return plans;
}

}  // namespace dcplan
