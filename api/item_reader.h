#ifndef DCPLAN_API_ITEM_READER_H_
#define DCPLAN_API_ITEM_READER_H_

// Item-by-item access to a checkpoint directory for tools that inspect or
// check a checkpoint (`dcplan inspect`, `dcplan verify`) instead of loading
// it: the checksum side file of FileSystemWriter and bounded reads of data
// files. Loading a checkpoint goes through FileSystemReader.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan {

namespace internal {
class ChecksumTable;
class ScopedFd;
}  // namespace internal

// One entry of `.dcplan_checksums`: the stored length and XXH3-64 of the
// item at a (relative path, offset).
struct ItemChecksum {
  int64_t length = 0;
  uint64_t xxh3 = 0;
};

// The parsed `.dcplan_checksums` of a checkpoint (api/filesystem.h).
class ItemChecksums {
 public:
  // The save id of the `.metadata` the file was written with; a file whose
  // save id is not the current `.metadata`'s belongs to another save.
  const std::string& save_id() const;
  // Number of entries.
  size_t size() const;
  // The entry of the item stored at `offset` in `relative_path`.
  std::optional<ItemChecksum> Find(const std::string& relative_path, int64_t offset) const;

 private:
  friend absl::StatusOr<std::optional<ItemChecksums>> ReadItemChecksums(const std::string& directory);
  std::shared_ptr<const internal::ChecksumTable> table_;
};

// The `.dcplan_checksums` of `directory`, or nullopt when there is none
// (PyTorch-written checkpoints). Errors: unreadable file (code from errno,
// naming the path), damaged file (DataLoss "'<path>' is corrupt: ...").
absl::StatusOr<std::optional<ItemChecksums>> ReadItemChecksums(const std::string& directory);

// The checksum `.dcplan_checksums` records for an item's bytes (XXH3-64).
uint64_t ItemXxh3(absl::string_view bytes);

// A data file opened for reading items at known offsets.
class ItemFile {
 public:
  // Opens `relative_path` of checkpoint `directory` confined to it
  // (api/internal/confined_path.h: no way out, no FIFO, regular files only).
  // Errors name the path; a missing file is NotFound.
  static absl::StatusOr<ItemFile> Open(const std::string& directory, const std::string& relative_path);

  // The size when opened.
  int64_t size() const { return size_; }
  // Replaces `*out` with the `length` bytes at `offset`; OutOfRange if they
  // do not lie inside the file, InvalidArgument for negative values.
  absl::Status ReadAt(int64_t offset, int64_t length, std::string* out) const;

 private:
  ItemFile(std::shared_ptr<internal::ScopedFd> fd, int64_t size) : fd_(std::move(fd)), size_(size) {}
  std::shared_ptr<internal::ScopedFd> fd_;
  int64_t size_ = 0;
};

}  // namespace dcplan

#endif  // DCPLAN_API_ITEM_READER_H_
