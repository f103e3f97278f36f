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

// One entry of `.dcplan_checksums`: the stored length and checksum of the
// item at a (relative path, offset): a CRC-32 (version 2, written today) or
// an XXH3-64 (version 1, earlier dcplan).
struct ItemChecksum {
  int64_t length = 0;
  bool is_crc32 = true;  // else XXH3-64
  uint64_t value = 0;

  friend bool operator==(const ItemChecksum& a, const ItemChecksum& b) {
    return a.length == b.length && a.is_crc32 == b.is_crc32 && a.value == b.value;
  }
  friend bool operator!=(const ItemChecksum& a, const ItemChecksum& b) { return !(a == b); }
  template <typename Sink>
  friend void AbslStringify(Sink& sink, const ItemChecksum& c) {
    sink.Append(ItemChecksumText(c, c.value));
  }
  // "CRC-32 0a1b2c3d", "XXH3-64 0011223344556677": `value` as this entry's
  // algorithm writes it.
  friend std::string ItemChecksumText(const ItemChecksum& kind, uint64_t value);
};

// The checksum of `bytes` under `expected`'s algorithm, to compare with
// expected.value.
uint64_t ItemChecksumOf(const ItemChecksum& expected, absl::string_view bytes);

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
