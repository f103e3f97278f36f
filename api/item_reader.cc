#include "api/item_reader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "api/filesystem.h"
#include "api/internal/checksums.h"
#include "api/internal/confined_path.h"
#include "api/internal/file_io.h"

namespace dcplan {

const std::string& ItemChecksums::save_id() const { return table_->save_id(); }

size_t ItemChecksums::size() const { return table_->size(); }

std::optional<ItemChecksum> ItemChecksums::Find(const std::string& relative_path, int64_t offset) const {
  const internal::ChecksumEntry* entry = table_->Find(relative_path, offset);
  if (entry == nullptr) return std::nullopt;
  return ItemChecksum{entry->length, table_->algorithm() == internal::ChecksumAlgorithm::kCrc32, entry->checksum};
}

absl::StatusOr<std::optional<ItemChecksums>> ReadItemChecksums(const std::string& directory) {
  const std::string path = internal::JoinPath(directory, kChecksumsFileName);
  absl::StatusOr<std::string> bytes =
      internal::ReadConfinedFile(directory, kChecksumsFileName, internal::kMaxChecksumsFileBytes);
  if (absl::IsNotFound(bytes.status())) return std::nullopt;
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(), absl::StrCat("'", path, "': ", bytes.status().message()));
  }
  absl::StatusOr<internal::ChecksumTable> table = internal::ParseChecksums(*bytes, path);
  if (!table.ok()) return table.status();
  ItemChecksums checksums;
  checksums.table_ = std::make_shared<const internal::ChecksumTable>(*std::move(table));
  return std::optional<ItemChecksums>(std::move(checksums));
}

namespace {
internal::ChecksumAlgorithm AlgorithmOf(const ItemChecksum& c) {
  return c.is_crc32 ? internal::ChecksumAlgorithm::kCrc32 : internal::ChecksumAlgorithm::kXxh3_64;
}
}  // namespace

std::string ItemChecksumText(const ItemChecksum& kind, uint64_t value) {
  const internal::ChecksumAlgorithm algorithm = AlgorithmOf(kind);
  return absl::StrCat(internal::ChecksumAlgorithmName(algorithm), " ", internal::ChecksumText(algorithm, value));
}

uint64_t ItemChecksumOf(const ItemChecksum& expected, absl::string_view bytes) {
  return internal::ItemChecksumOf(AlgorithmOf(expected), bytes);
}

absl::StatusOr<ItemFile> ItemFile::Open(const std::string& directory, const std::string& relative_path) {
  const std::string path = internal::JoinPath(directory, relative_path);
  absl::StatusOr<internal::ScopedFd> fd = internal::OpenConfined(directory, relative_path);
  if (!fd.ok()) return absl::Status(fd.status().code(), absl::StrCat("'", path, "': ", fd.status().message()));
  absl::StatusOr<int64_t> size = internal::FileSize(*fd);
  if (!size.ok()) return absl::Status(size.status().code(), absl::StrCat("'", path, "': ", size.status().message()));
  return ItemFile(std::make_shared<internal::ScopedFd>(*std::move(fd)), *size);
}

absl::Status ItemFile::ReadAt(int64_t offset, int64_t length, std::string* out) const {
  if (offset < 0 || length < 0) {
    return absl::InvalidArgumentError(absl::StrCat("negative offset ", offset, " or length ", length));
  }
  if (offset > size_ || length > size_ - offset) {
    return absl::OutOfRangeError(
        absl::StrCat("bytes [", offset, ", ", offset, " + ", length, ") end past the end of the file (", size_,
                     " bytes)"));
  }
  out->assign(static_cast<size_t>(length), '\0');
  return internal::ReadExactlyAt(*fd_, offset, out->data(), out->size());
}

}  // namespace dcplan
