#ifndef DCPLAN_TOOLS_DCPLAN_CONVERT_ARCHIVE_H_
#define DCPLAN_TOOLS_DCPLAN_CONVERT_ARCHIVE_H_

// torch.save archives for `dcplan convert` (spec/format.md §6): writing one
// record at a time with LibTorch's PyTorchStreamWriter (folder "archive",
// stored records, data 64-byte aligned), reading archives in memory, and a
// torch.save file mapped into memory so that tensors can point at their
// storage records without copying them.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/ScalarType.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caffe2::serialize {
class PyTorchStreamWriter;
class PyTorchStreamReader;
}  // namespace caffe2::serialize

namespace dcplan::tools::convert {

// The storage class torch.save names for `dtype` ("FloatStorage" in module
// "torch"); error for dtypes without a legacy storage class.
absl::StatusOr<std::string> StorageClassName(c10::ScalarType dtype);
// The dtype of storage class `module`.`name` (torch.storage.UntypedStorage:
// uint8, its numel counts bytes); error for other classes.
absl::StatusOr<c10::ScalarType> ScalarTypeOfStorageClass(absl::string_view module, absl::string_view name);

// Receives consecutive bytes of an archive.
using ArchiveSink = std::function<absl::Status(const char* data, size_t size)>;

// Writes an archive record by record. The first failing record or sink call
// is the error of every later call.
class ArchiveWriter {
 public:
  explicit ArchiveWriter(ArchiveSink sink);
  ~ArchiveWriter();  // abandons an unfinished archive: nothing more reaches the sink
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  absl::Status WriteRecord(const std::string& name, const void* data, size_t size);
  // Writes the "version" record and the central directory.
  absl::Status Finish();

 private:
  ArchiveSink sink_;
  absl::Status status_;
  bool abandoned_ = false;
  std::unique_ptr<caffe2::serialize::PyTorchStreamWriter> writer_;
};

// An archive in memory: data.pkl, "byteorder" = "little", then `records`
// (name, bytes) in order.
absl::StatusOr<std::string> WriteArchiveToString(absl::string_view data_pkl,
                                                 const std::vector<std::pair<std::string, absl::string_view>>& records);

// A torch.save archive held in memory (a BYTE_IO item).
class MemoryArchive {
 public:
  // Errors (DataLoss): not a readable archive, no data.pkl, a byteorder
  // other than "little".
  static absl::StatusOr<std::unique_ptr<MemoryArchive>> Open(std::string bytes);
  ~MemoryArchive();

  const std::string& data_pkl() const { return data_pkl_; }
  // The bytes of record `name` ("data/0"); DataLoss if it is missing.
  absl::StatusOr<std::string> Record(const std::string& name);

 private:
  MemoryArchive() = default;
  std::string bytes_;
  std::string data_pkl_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
};

// A torch.save file mapped read-only. Storage records are located through
// LibTorch's reader and checked to be stored (not compressed) with exactly
// the expected size, so a tensor can be a view of the mapping.
class MappedTorchSave {
 public:
  // Errors (DataLoss, naming `path`): unreadable file, not a torch.save zip
  // archive, no data.pkl, a byteorder other than "little".
  static absl::StatusOr<std::shared_ptr<MappedTorchSave>> Open(const std::string& path);
  ~MappedTorchSave();

  const std::string& path() const { return path_; }
  const std::string& data_pkl() const { return data_pkl_; }
  int64_t file_size() const { return size_; }
  // The first byte of record `name` holding exactly `size` bytes. Errors
  // (DataLoss): missing record, compressed record, other size.
  absl::StatusOr<const char*> StoredRecord(const std::string& name, uint64_t size);

 private:
  MappedTorchSave() = default;
  std::string path_;
  std::string data_pkl_;
  const char* base_ = nullptr;
  int64_t size_ = 0;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
};

}  // namespace dcplan::tools::convert

#endif  // DCPLAN_TOOLS_DCPLAN_CONVERT_ARCHIVE_H_
