// FileSystemReader::ReadData: stored chunks read once each, in file order.

#include <fcntl.h>

#include <algorithm>
#include <memory>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/dtype_conversion.h"
#include "api/filesystem.h"
#include "api/internal/checksums.h"
#include "api/internal/confined_path.h"
#include "api/internal/crc32.h"
#include "api/internal/file_io.h"
#include "api/internal/split_read.h"
#include "api/internal/status_macros.h"
#include "api/stream_transforms.h"
#include "api/tensor_record.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

using internal::JoinPath;

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// "item 'w' chunk [4, 0]", "item 'step'".
std::string StoredItemName(const MetadataIndex& index) {
  std::string name = absl::StrCat("item '", index.fqn, "'");
  if (index.offset) absl::StrAppend(&name, " chunk ", ShapeToString(*index.offset));
  return name;
}

// One stored item and the read items that take data from it.
struct StoredChunk {
  MetadataIndex index;
  StorageInfo info;
  std::vector<const ReadItem*> items;
};

struct DataFile {
  std::string relative_path;
  std::vector<StoredChunk> chunks;  // by offset
};

// The plan's stored chunks, grouped by file (first-seen order) and sorted by
// offset within each file.
absl::StatusOr<std::vector<DataFile>> GroupByFile(const LoadPlan& plan, const StorageData& storage, int64_t rank) {
  std::vector<DataFile> files;
  absl::flat_hash_map<std::string, size_t> file_position;
  absl::flat_hash_map<MetadataIndex, std::pair<size_t, size_t>> chunk_position;
  for (const ReadItem& item : plan.items) {
    auto known = chunk_position.find(item.storage_index);
    if (known != chunk_position.end()) {
      files[known->second.first].chunks[known->second.second].items.push_back(&item);
      continue;
    }
    const StorageInfo* info = storage.Find(item.storage_index);
    if (info == nullptr) {
      return absl::DataLossError(absl::StrCat("rank ", rank, ": ", StoredItemName(item.storage_index),
                                              " has no location in the checkpoint's storage_data"));
    }
    auto [file, inserted] = file_position.try_emplace(info->relative_path, files.size());
    if (inserted) files.push_back(DataFile{info->relative_path, {}});
    std::vector<StoredChunk>& chunks = files[file->second].chunks;
    chunk_position.emplace(item.storage_index, std::make_pair(file->second, chunks.size()));
    chunks.push_back(StoredChunk{item.storage_index, *info, {&item}});
  }
  for (DataFile& file : files) {
    std::stable_sort(file.chunks.begin(), file.chunks.end(),
                     [](const StoredChunk& a, const StoredChunk& b) { return a.info.offset < b.info.offset; });
  }
  return files;
}

// The checksums written with this checkpoint: nullopt when not verifying,
// when there is no checksum file (PyTorch wrote the checkpoint) or when the
// file belongs to another save (PyTorch overwrote a dcplan checkpoint).
absl::StatusOr<std::optional<internal::ChecksumTable>> LoadChecksums(const std::string& directory,
                                                                      const Metadata& metadata, bool verify) {
  if (!verify) return std::nullopt;
  const std::string path = JoinPath(directory, kChecksumsFileName);
  absl::StatusOr<std::string> bytes =
      internal::ReadConfinedFile(directory, kChecksumsFileName, internal::kMaxChecksumsFileBytes);
  if (absl::IsNotFound(bytes.status())) return std::nullopt;
  if (!bytes.ok()) return WithContext(bytes.status(), absl::StrCat("'", path, "'"));
  absl::StatusOr<internal::ChecksumTable> table = internal::ParseChecksums(*bytes, path);
  if (!table.ok()) return table.status();
  const bool same_save = metadata.storage_meta.has_value() && metadata.storage_meta->save_id.has_value() &&
                         *metadata.storage_meta->save_id == table->save_id();
  if (!same_save) return std::nullopt;
  return std::optional<internal::ChecksumTable>(*std::move(table));
}

absl::StatusOr<const internal::ChecksumEntry*> FindChecksum(const internal::ChecksumTable& table,
                                                            const StoredChunk& chunk, int64_t rank) {
  const StorageInfo& info = chunk.info;
  const internal::ChecksumEntry* entry = table.Find(info.relative_path, info.offset);
  if (entry == nullptr || entry->length != info.length) {
    return absl::DataLossError(absl::StrCat("rank ", rank, ": ", kChecksumsFileName, " does not list ",
                                            StoredItemName(chunk.index), " at ", info.relative_path, " offset ",
                                            info.offset, " length ", info.length,
                                            ": it does not match .metadata"));
  }
  return entry;
}

absl::Status CompareChecksum(const internal::ChecksumEntry& entry, uint64_t checksum, const StoredChunk& chunk,
                             int64_t rank) {
  if (checksum != entry.checksum) {
    return absl::DataLossError(absl::StrCat("rank ", rank, ": checksum mismatch in ", chunk.info.relative_path,
                                            " at offset ", chunk.info.offset, " (", StoredItemName(chunk.index),
                                            "): the file is corrupt"));
  }
  return absl::OkStatus();
}

absl::Status VerifyChecksum(const internal::ChecksumTable& table, const StoredChunk& chunk, absl::string_view bytes,
                            int64_t rank) {
  absl::StatusOr<const internal::ChecksumEntry*> entry = FindChecksum(table, chunk, rank);
  if (!entry.ok()) return entry.status();
  return CompareChecksum(**entry, internal::ItemChecksumOf(table.algorithm(), bytes), chunk, rank);
}

// A stored tensor's dtype and size against the checkpoint's metadata: the
// dtype must be the recorded dtype and the size the recorded chunk size.
absl::Status CheckStoredTensor(const StoredChunk& chunk, c10::ScalarType dtype, const Shape& sizes,
                               const Metadata& metadata) {
  const StorageMetadata* stored = metadata.state_dict_metadata.Find(chunk.index.fqn);
  const auto* tensor_metadata = stored == nullptr ? nullptr : std::get_if<TensorStorageMetadata>(stored);
  if (tensor_metadata == nullptr) {
    return absl::InvalidArgumentError("the checkpoint metadata records no tensor under this name");
  }
  absl::StatusOr<c10::ScalarType> expected_type = ScalarTypeFromDType(tensor_metadata->properties.dtype);
  if (!expected_type.ok()) return expected_type.status();
  if (dtype != *expected_type) {
    return absl::DataLossError(absl::StrCat("the stored tensor has dtype ", c10::toString(dtype),
                                            ", the metadata says ", c10::toString(*expected_type)));
  }
  for (const ChunkBox& box : tensor_metadata->chunks) {
    if (chunk.index.offset && box.offsets == *chunk.index.offset && box.sizes != sizes) {
      return absl::DataLossError(absl::StrCat("the stored tensor has size ", ShapeToString(sizes),
                                              ", the metadata records the chunk as ", ToString(box)));
    }
  }
  return absl::OkStatus();
}

// The stored tensor of `chunk` (whole record in memory), checked against the
// checkpoint's metadata.
absl::StatusOr<at::Tensor> DecodeStoredTensor(const StoredChunk& chunk, absl::string_view bytes,
                                              const Metadata& metadata) {
  absl::StatusOr<at::Tensor> tensor = ReadTensorRecord(BufferRecordSource(bytes));
  if (!tensor.ok()) return tensor.status();
  absl::Status checked = CheckStoredTensor(chunk, tensor->scalar_type(), tensor->sizes().vec(), metadata);
  if (!checked.ok()) return checked;
  return tensor;
}

// Copies the part of `stored` that `item` names into its destination
// (`resolved`, or resolved now).
absl::Status CopyIntoDestination(const ReadItem& item, const at::Tensor& stored, LoadPlanner& planner,
                                 std::optional<at::Tensor> resolved = std::nullopt) {
  const Shape sizes = stored.sizes().vec();
  if (item.storage_offsets.size() != sizes.size() || item.lengths.size() != sizes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("read item ", ToString(item), " does not fit a stored tensor of size ",
                                                   ShapeToString(sizes)));
  }
  at::Tensor source = stored;
  for (size_t d = 0; d < sizes.size(); ++d) {
    const int64_t offset = item.storage_offsets[d];
    const int64_t length = item.lengths[d];
    const std::optional<int64_t> end = internal::CheckedAdd(offset, length);
    if (offset < 0 || length < 0 || !end || *end > sizes[d]) {
      return absl::InvalidArgumentError(absl::StrCat("read item ", ToString(item),
                                                     " lies outside the stored tensor of size ", ShapeToString(sizes)));
    }
    source = source.narrow(static_cast<int64_t>(d), offset, length);
  }
  if (!resolved) {
    absl::StatusOr<at::Tensor> destination = planner.ResolveTensor(item);
    if (!destination.ok()) return destination.status();
    resolved = destination->detach();
  }
  at::Tensor target = *resolved;
  if (target.sizes() != source.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("the destination of ", ToString(item.dest_index), " has size ",
                                                   ShapeToString(target.sizes().vec()), ", the data read has size ",
                                                   ShapeToString(source.sizes().vec())));
  }
  try {
    target.copy_(source);
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::InternalError(absl::StrCat("copying into the destination: ", what.substr(0, what.find('\n'))));
  }
  return planner.CommitTensor(item, target);
}

absl::Status DeliverChunk(const StoredChunk& chunk, absl::string_view bytes, const Metadata& metadata,
                          LoadPlanner& planner) {
  std::optional<at::Tensor> stored;  // decoded once, on first use
  for (const ReadItem* item : chunk.items) {
    absl::Status status;
    if (item->type == LoadItemType::kByteIO) {
      status = planner.LoadBytes(*item, bytes);
    } else {
      if (!stored) {
        absl::StatusOr<at::Tensor> decoded = DecodeStoredTensor(chunk, bytes, metadata);
        if (!decoded.ok()) return decoded.status();
        stored = *std::move(decoded);
      }
      status = CopyIntoDestination(*item, *stored, planner);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// An item's byte range [offset, offset + length) of an open data file.
class FileSliceSource final : public RecordSource {
 public:
  FileSliceSource(const internal::ScopedFd& fd, int64_t offset, int64_t length)
      : fd_(fd), offset_(offset), length_(length) {}
  int64_t size() const override { return length_; }
  absl::Status ReadAt(int64_t offset, void* out, int64_t n) const override {
    if (offset < 0 || n < 0 || offset > length_ || n > length_ - offset) {
      return absl::OutOfRangeError(absl::StrCat("read of ", n, " bytes at offset ", offset, " is outside the ",
                                                length_, "-byte item"));
    }
    return internal::ReadExactlyAt(fd_, offset_ + offset, static_cast<char*>(out), static_cast<size_t>(n));
  }

 private:
  const internal::ScopedFd& fd_;
  int64_t offset_;
  int64_t length_;
};

// Waits for the queued hashing when it leaves scope, so that no queued piece
// outlives the memory it points into.
class DrainOnExit {
 public:
  explicit DrainOnExit(internal::AsyncChecksum& hasher) : hasher_(hasher) {}
  ~DrainOnExit() { hasher_.Digest(); }

 private:
  internal::AsyncChecksum& hasher_;
};

// Reads `source`'s bytes [begin, end) into `out`, in blocks each hashed (when
// `hash` is set; on its helper thread) while the next one is read.
absl::Status ReadHashed(const RecordSource& source, int64_t begin, int64_t end, char* out,
                        internal::AsyncChecksum* hash) {
  constexpr int64_t kBlockBytes = int64_t{1} << 20;
  for (int64_t at = begin; at < end;) {
    const int64_t n = std::min(kBlockBytes, end - at);
    absl::Status read = source.ReadAt(at, out, n);
    if (!read.ok()) return read;
    if (hash != nullptr) hash->Update(out, static_cast<size_t>(n));
    out += n;
    at += n;
  }
  return absl::OkStatus();
}

// The tensor bytes of one item: read by the calling thread and, for large
// tensors, by SplitReader's helper thread through a second file description.
struct TensorBytesReader {
  const RecordSource& source;
  const RecordSource& helper_source;
  internal::SplitReader& split;

  // Reads [begin, end) of the item into `out`; its CRC-32 when `crc` is set.
  absl::StatusOr<uint32_t> Read(int64_t begin, int64_t end, char* out, bool crc) const {
    auto read = [&](int64_t offset, char* to, int64_t n) { return source.ReadAt(offset, to, n); };
    auto helper_read = [&](int64_t offset, char* to, int64_t n) { return helper_source.ReadAt(offset, to, n); };
    return split.Read(read, helper_read, begin, end, out, crc);
  }
};

// The destination the single item of `chunk` can be read into directly: the
// stored tensor is its whole storage, the item takes all of it, and the
// destination is a contiguous CPU tensor of the same dtype and size.
// Otherwise an undefined tensor; `resolved` receives the destination if it
// was resolved.
absl::StatusOr<at::Tensor> DirectDestination(const StoredChunk& chunk, const TensorRecordLayout& layout,
                                             LoadPlanner& planner, std::optional<at::Tensor>* resolved) {
  if (chunk.items.size() != 1 || !layout.IsDenseStorage()) return at::Tensor();
  const ReadItem& item = *chunk.items.front();
  if (item.storage_offsets.size() != layout.sizes.size() || item.lengths != layout.sizes) return at::Tensor();
  for (int64_t offset : item.storage_offsets) {
    if (offset != 0) return at::Tensor();
  }
  absl::StatusOr<at::Tensor> destination = planner.ResolveTensor(item);
  if (!destination.ok()) return destination.status();
  at::Tensor target = destination->detach();
  *resolved = target;
  const bool direct = target.defined() && target.device().is_cpu() && target.layout() == at::kStrided &&
                      target.scalar_type() == layout.dtype && target.sizes().vec() == layout.sizes &&
                      target.is_contiguous() && !target.is_conj() && !target.is_neg() &&
                      target.has_storage() && target.data_ptr() != nullptr;
  return direct ? target : at::Tensor();
}

// Reads the tensor's bytes of an archive into `data` while computing the
// checksum `entry` records over the whole archive, and compares the two. For
// a CRC-32 (version 2) the tensor's bytes are checksummed once, block by
// block as they arrive (by whichever thread read the block): that CRC is
// checked against the ZIP record's and joined with the CRC-32 of the few
// bytes around it (headers, data.pkl, directory) into the item's. For an
// XXH3-64 (version 1) every byte is hashed in order, on `hasher`'s thread.
absl::Status ReadChecked(const TensorBytesReader& reader, const TensorRecordLayout& layout, char* data,
                         const internal::ChecksumTable& table, const internal::ChecksumEntry& entry,
                         const StoredChunk& chunk, int64_t rank, internal::AsyncChecksum& hasher) {
  const RecordSource& source = reader.source;
  const int64_t data_end = layout.data_offset + layout.storage_bytes;
  std::string before(static_cast<size_t>(layout.data_offset), '\0');
  std::string after(static_cast<size_t>(source.size() - data_end), '\0');
  DCPLAN_RETURN_IF_ERROR(source.ReadAt(0, before.data(), layout.data_offset));
  const DrainOnExit drain(hasher);  // before the buffers go
  if (table.algorithm() == internal::ChecksumAlgorithm::kXxh3_64) {
    hasher.Reset(table.algorithm());
    hasher.Update(before.data(), before.size());
    DCPLAN_RETURN_IF_ERROR(ReadHashed(source, layout.data_offset, data_end, data, &hasher));
    DCPLAN_RETURN_IF_ERROR(ReadHashed(source, data_end, source.size(), after.data(), &hasher));
    return CompareChecksum(entry, hasher.Digest(), chunk, rank);
  }
  DCPLAN_ASSIGN_OR_RETURN(const uint32_t data_crc, reader.Read(layout.data_offset, data_end, data, /*crc=*/true));
  DCPLAN_RETURN_IF_ERROR(source.ReadAt(data_end, after.data(), static_cast<int64_t>(after.size())));
  const uint32_t item_crc = internal::Crc32Around(before.data(), before.size(), data_crc,
                                                  static_cast<uint64_t>(layout.storage_bytes), after.data(),
                                                  after.size());
  DCPLAN_RETURN_IF_ERROR(CompareChecksum(entry, item_crc, chunk, rank));
  if (data_crc != layout.data_crc32) {
    return absl::DataLossError(absl::StrFormat(
        "rank %d: CRC-32 mismatch in %s at offset %d (%s): the tensor's bytes have CRC-32 %08x, their ZIP record "
        "says %08x: the file is corrupt",
        rank, chunk.info.relative_path, chunk.info.offset, StoredItemName(chunk.index), data_crc, layout.data_crc32));
  }
  return absl::OkStatus();
}

// Reads a tensor chunk without holding its archive in memory: the tensor's
// bytes go straight into the destination when DirectDestination allows,
// else into one storage from which each item is copied (converting dtypes).
// The checksum is computed as the bytes are read (ReadChecked); with a direct
// read it is compared after the destination was written.
// Sets *whole_record (and reads nothing) for archives ReadTensorRecordLayout
// leaves to the whole-record path.
absl::Status ReadTensorChunk(const internal::ScopedFd& fd, const internal::ScopedFd& helper_fd,
                             const StoredChunk& chunk, const internal::ChecksumTable* checksums,
                             const Metadata& metadata, LoadPlanner& planner, int64_t rank,
                             internal::AsyncChecksum& hasher, internal::SplitReader& split, bool* whole_record) {
  FileSliceSource source(fd, chunk.info.offset, chunk.info.length);
  FileSliceSource helper_source(helper_fd, chunk.info.offset, chunk.info.length);
  const TensorBytesReader reader{source, helper_source, split};
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(source);
  *whole_record = absl::IsUnimplemented(layout.status());
  if (!layout.ok()) return layout.status();
  absl::Status status = CheckStoredTensor(chunk, layout->dtype, layout->sizes, metadata);
  if (!status.ok()) return status;
  const internal::ChecksumEntry* entry = nullptr;
  if (checksums != nullptr) {
    DCPLAN_ASSIGN_OR_RETURN(entry, FindChecksum(*checksums, chunk, rank));
  }

  std::optional<at::Tensor> resolved;
  absl::StatusOr<at::Tensor> direct = DirectDestination(chunk, *layout, planner, &resolved);
  if (!direct.ok()) return direct.status();
  at::Tensor storage;
  char* data = nullptr;
  if (direct->defined()) {
    data = static_cast<char*>(direct->data_ptr());
  } else {
    const int64_t element_size = static_cast<int64_t>(c10::elementSize(layout->dtype));
    storage = at::empty({layout->storage_bytes / element_size}, at::TensorOptions().dtype(layout->dtype));
    data = static_cast<char*>(storage.data_ptr());
  }
  if (entry != nullptr) {
    DCPLAN_RETURN_IF_ERROR(ReadChecked(reader, *layout, data, *checksums, *entry, chunk, rank, hasher));
  } else {
    DCPLAN_RETURN_IF_ERROR(
        reader.Read(layout->data_offset, layout->data_offset + layout->storage_bytes, data, /*crc=*/false)
            .status());
  }
  if (direct->defined()) return planner.CommitTensor(*chunk.items.front(), *direct);
  at::Tensor stored;
  try {
    stored = storage.as_strided(layout->sizes, layout->strides, layout->storage_offset);
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::DataLossError(absl::StrCat("the stored tensor's view: ", what.substr(0, what.find('\n'))));
  }
  for (const ReadItem* item : chunk.items) {
    status = CopyIntoDestination(*item, stored, planner, resolved);
    resolved.reset();
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

bool AllTensorItems(const StoredChunk& chunk) {
  for (const ReadItem* item : chunk.items) {
    if (item->type != LoadItemType::kTensor) return false;
  }
  return true;
}

}  // namespace

absl::Status FileSystemReader::ReadData(const LoadPlan& plan, LoadPlanner& planner) {
  if (!metadata_) return absl::FailedPreconditionError("ReadData before SetUpStorageReader");
  absl::StatusOr<std::vector<DataFile>> files = GroupByFile(plan, *metadata_->storage_data, rank_);
  if (!files.ok()) return files.status();
  absl::StatusOr<std::optional<internal::ChecksumTable>> checksums =
      LoadChecksums(directory_, *metadata_, options_.verify_checksums);
  if (!checksums.ok()) return WithContext(checksums.status(), absl::StrCat("rank ", rank_));

  int64_t total_bytes = 0;
  for (const DataFile& file : *files) {
    for (const StoredChunk& chunk : file.chunks) {
      total_bytes = internal::CheckedAdd(total_bytes, std::max<int64_t>(chunk.info.length, 0)).value_or(total_bytes);
    }
  }
  int64_t done_bytes = 0;
  internal::AsyncChecksum hasher;  // version 1 checksum files
  internal::SplitReader split;
  for (const DataFile& file : *files) {
    const std::string path = JoinPath(directory_, file.relative_path);
    absl::StatusOr<internal::ScopedFd> fd = internal::OpenConfined(directory_, file.relative_path);
    if (!fd.ok()) {
      return WithContext(fd.status(), absl::StrCat("rank ", rank_, ": data file ", file.relative_path, " of ",
                                                   directory_, " (needed for ",
                                                   StoredItemName(file.chunks.front().index), ")"));
    }
    // Chunks are read in file order.
    ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    // The second halves of large tensors are read through a file description
    // of their own (its own read-ahead); without one, through the same.
    absl::StatusOr<internal::ScopedFd> reopened = internal::ReopenForReading(*fd);
    if (reopened.ok()) ::posix_fadvise(reopened->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    const internal::ScopedFd& helper_fd = reopened.ok() ? *reopened : *fd;
    absl::StatusOr<int64_t> file_size = internal::FileSize(*fd);
    if (!file_size.ok()) return WithContext(file_size.status(), absl::StrCat("rank ", rank_, ": ", path));
    for (const StoredChunk& chunk : file.chunks) {
      const StorageInfo& info = chunk.info;
      const std::string context = absl::StrCat("rank ", rank_, ": ", StoredItemName(chunk.index), " at ",
                                               file.relative_path, " offset ", info.offset, " length ", info.length);
      const std::optional<int64_t> end = internal::CheckedAdd(info.offset, info.length);
      if (info.offset < 0 || info.length < 0 || !end || *end > *file_size) {
        return absl::DataLossError(
            absl::StrCat(context, " ends past the end of the file (", *file_size, " bytes)"));
      }
      const internal::ChecksumTable* table = *checksums ? &**checksums : nullptr;
      const bool transformed = info.transform_descriptors && !info.transform_descriptors->empty();
      bool whole_record = true;
      absl::Status status;
      if (AllTensorItems(chunk) && !transformed) {
        status = ReadTensorChunk(*fd, helper_fd, chunk, table, *metadata_, planner, rank_, hasher, split,
                                 &whole_record);
      }
      if (whole_record) {
        // Bytes items, and archives outside the streamed path: the whole record in memory.
        std::string bytes(static_cast<size_t>(info.length), '\0');
        status = internal::ReadExactlyAt(*fd, info.offset, bytes.data(), bytes.size());
        if (!status.ok()) return WithContext(status, context);
        if (table != nullptr) {
          status = VerifyChecksum(*table, chunk, bytes, rank_);
          if (!status.ok()) return status;
        }
        if (transformed) {
          absl::StatusOr<std::string> decoded = UndoStreamTransforms(
              *info.transform_descriptors, bytes, MaxDecodedItemBytes(*metadata_, chunk.index));
          if (!decoded.ok()) {
            return WithContext(decoded.status(), absl::StrCat(context, " (stream transforms [",
                                                              absl::StrJoin(*info.transform_descriptors, ", "), "])"));
          }
          bytes = *std::move(decoded);
        }
        status = DeliverChunk(chunk, bytes, *metadata_, planner);
      }
      if (!status.ok()) {
        // Checksum errors carry their own context.
        if (absl::StartsWith(status.message(), absl::StrCat("rank ", rank_, ": "))) return status;
        return WithContext(status, context);
      }
      done_bytes += info.length;
      if (options_.progress) options_.progress(done_bytes, total_bytes);
    }
  }
  return absl::OkStatus();
}

}  // namespace dcplan
