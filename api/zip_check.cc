#include "api/zip_check.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/crc32.h"

namespace dcplan {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kDataDescriptorSignature = 0x08074b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kAlignmentExtraId = 0x4246;  // "FB", PyTorch's padding
constexpr uint16_t kDataDescriptorFlag = 1 << 3;
constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kZip64EndMinimumSize = 56;
constexpr uint16_t kSaturated16 = 0xFFFF;
constexpr uint32_t kSaturated32 = 0xFFFFFFFF;

absl::Status Corrupt(absl::string_view what) { return absl::DataLossError(absl::StrCat("zip archive: ", what)); }

absl::Status RecordCorrupt(absl::string_view name, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("zip record '", absl::CHexEscape(name), "': ", what));
}

// Little-endian fields at absolute positions, never past the end.
class Fields {
 public:
  explicit Fields(absl::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const { return bytes_.size(); }
  bool Has(uint64_t offset, uint64_t n) const { return offset <= size() && n <= size() - offset; }
  uint64_t Read(uint64_t offset, int width) const {
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes_[offset + i]);
    return value;
  }
  uint16_t U16(uint64_t offset) const { return static_cast<uint16_t>(Read(offset, 2)); }
  uint32_t U32(uint64_t offset) const { return static_cast<uint32_t>(Read(offset, 4)); }
  uint64_t U64(uint64_t offset) const { return Read(offset, 8); }
  absl::string_view Slice(uint64_t offset, uint64_t n) const { return bytes_.substr(offset, n); }

 private:
  absl::string_view bytes_;
};

// Where the central directory is, from the end records.
struct Directory {
  uint64_t entries = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t end_records_start = 0;  // the ZIP64 end record, or the end record
};

// The end of central directory record that ends the archive exactly (its
// comment running to the last byte), searching back over a maximal comment.
std::optional<uint64_t> FindEndRecord(const Fields& zip) {
  if (zip.size() < kEndSize) return std::nullopt;
  const uint64_t last = zip.size() - kEndSize;
  const uint64_t first = last > 0xFFFF ? last - 0xFFFF : 0;
  for (uint64_t position = last + 1; position-- > first;) {
    if (zip.U32(position) == kEndSignature && zip.U16(position + 20) == last - position) return position;
  }
  return std::nullopt;
}

// A 32-bit (or 16-bit) field of the end record must be saturated or equal the
// ZIP64 record's value.
bool Agrees(uint64_t narrow, uint64_t saturated, uint64_t wide) { return narrow == saturated || narrow == wide; }

absl::StatusOr<Directory> ReadZip64End(const Fields& zip, uint64_t end, Directory narrow) {
  const uint64_t locator = end - kZip64LocatorSize;
  if (zip.U32(locator + 4) != 0 || zip.U32(locator + 16) != 1) return Corrupt("ZIP64 locator names another disk");
  const uint64_t record = zip.U64(locator + 8);
  if (!zip.Has(record, kZip64EndMinimumSize) || zip.U32(record) != kZip64EndSignature) {
    return Corrupt(absl::StrCat("no ZIP64 end record at offset ", record));
  }
  const uint64_t record_size = zip.U64(record + 4);
  if (record_size < kZip64EndMinimumSize - 12 || locator < record || locator - record < 12 ||
      locator - record - 12 != record_size) {
    return Corrupt("the ZIP64 end record does not end at its locator");
  }
  if (zip.U32(record + 16) != 0 || zip.U32(record + 20) != 0) return Corrupt("the ZIP64 end record names another disk");
  Directory directory;
  directory.entries = zip.U64(record + 32);
  directory.size = zip.U64(record + 40);
  directory.offset = zip.U64(record + 48);
  directory.end_records_start = record;
  if (zip.U64(record + 24) != directory.entries || !Agrees(narrow.entries, kSaturated16, directory.entries) ||
      !Agrees(narrow.size, kSaturated32, directory.size) || !Agrees(narrow.offset, kSaturated32, directory.offset)) {
    return Corrupt("the end record and the ZIP64 end record disagree");
  }
  return directory;
}

absl::StatusOr<Directory> ReadDirectoryLocation(const Fields& zip) {
  const std::optional<uint64_t> end = FindEndRecord(zip);
  if (!end) return Corrupt(absl::StrCat("no end of central directory record (", zip.size(), " bytes)"));
  const uint16_t disk = zip.U16(*end + 4);
  const uint16_t directory_disk = zip.U16(*end + 6);
  const uint16_t disk_entries = zip.U16(*end + 8);
  Directory narrow;
  narrow.entries = zip.U16(*end + 10);
  narrow.size = zip.U32(*end + 12);
  narrow.offset = zip.U32(*end + 16);
  narrow.end_records_start = *end;
  const bool zip64 = *end >= kZip64LocatorSize && zip.U32(*end - kZip64LocatorSize) == kZip64LocatorSignature;
  if (!Agrees(disk, zip64 ? kSaturated16 : 0, 0) || !Agrees(directory_disk, zip64 ? kSaturated16 : 0, 0) ||
      disk_entries != narrow.entries) {
    return Corrupt("the end record names another disk");
  }
  absl::StatusOr<Directory> directory = zip64 ? ReadZip64End(zip, *end, narrow) : narrow;
  if (!directory.ok()) return directory.status();
  if (directory->offset > directory->end_records_start ||
      directory->end_records_start - directory->offset != directory->size) {
    return Corrupt(absl::StrCat("the central directory (offset ", directory->offset, ", ", directory->size,
                                " bytes) does not end where the end records start (", directory->end_records_start,
                                ")"));
  }
  return directory;
}

struct Record {
  std::string name;
  uint16_t version_needed = 0;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint16_t time = 0;
  uint16_t date = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0;
  uint64_t uncompressed = 0;
  uint64_t local_offset = 0;
  // Central directory only; one writer writes the same values in every entry.
  uint16_t version_made_by = 0;
  uint16_t internal_attributes = 0;
  uint32_t external_attributes = 0;
};

// Calls `field(id, data)` for each extra field; error unless the fields fill
// `extra` exactly.
template <typename FieldFn>
absl::Status ForEachExtraField(absl::string_view extra, FieldFn field) {
  const Fields fields(extra);
  uint64_t position = 0;
  while (position < fields.size()) {
    if (!fields.Has(position, 4)) return absl::DataLossError("extra fields are truncated");
    const uint16_t id = fields.U16(position);
    const uint16_t length = fields.U16(position + 2);
    if (!fields.Has(position + 4, length)) return absl::DataLossError("extra fields are truncated");
    absl::Status status = field(id, fields.Slice(position + 4, length));
    if (!status.ok()) return status;
    position += 4 + length;
  }
  return absl::OkStatus();
}

// Replaces saturated values by those of a ZIP64 extra field (in the order
// the format defines); error if one is missing.
absl::Status ApplyZip64Extra(absl::string_view extra, std::vector<uint64_t*> wide_values) {
  std::vector<uint64_t*> pending;
  for (uint64_t* value : wide_values) {
    if (*value == kSaturated32) pending.push_back(value);
  }
  bool seen = false;
  absl::Status status = ForEachExtraField(extra, [&](uint16_t id, absl::string_view data) -> absl::Status {
    if (id != kZip64ExtraId) return absl::OkStatus();
    if (seen) return absl::DataLossError("two ZIP64 extra fields");
    seen = true;
    const Fields fields(data);
    if (fields.size() < 8 * pending.size()) return absl::DataLossError("the ZIP64 extra field is too short");
    for (size_t i = 0; i < pending.size(); ++i) *pending[i] = fields.U64(8 * i);
    return absl::OkStatus();
  });
  if (status.ok() && !pending.empty() && !seen) return absl::DataLossError("a saturated size has no ZIP64 extra field");
  return status;
}

absl::StatusOr<std::vector<Record>> ReadCentralDirectory(const Fields& zip, const Directory& directory) {
  std::vector<Record> records;
  uint64_t position = directory.offset;
  const uint64_t end = directory.offset + directory.size;
  for (uint64_t i = 0; i < directory.entries; ++i) {
    if (end - position < kCentralHeaderSize || zip.U32(position) != kCentralHeaderSignature) {
      return Corrupt(absl::StrCat("central directory entry ", i, " at offset ", position, " is malformed"));
    }
    Record record;
    record.version_needed = zip.U16(position + 6);
    record.flags = zip.U16(position + 8);
    record.method = zip.U16(position + 10);
    record.time = zip.U16(position + 12);
    record.date = zip.U16(position + 14);
    record.crc = zip.U32(position + 16);
    record.compressed = zip.U32(position + 20);
    record.uncompressed = zip.U32(position + 24);
    const uint64_t name_length = zip.U16(position + 28);
    const uint64_t extra_length = zip.U16(position + 30);
    const uint64_t comment_length = zip.U16(position + 32);
    const uint16_t disk = zip.U16(position + 34);
    record.local_offset = zip.U32(position + 42);
    record.version_made_by = zip.U16(position + 4);
    record.internal_attributes = zip.U16(position + 36);
    record.external_attributes = zip.U32(position + 38);
    const uint64_t entry_size = kCentralHeaderSize + name_length + extra_length + comment_length;
    if (end - position < entry_size) return Corrupt(absl::StrCat("central directory entry ", i, " is truncated"));
    record.name = std::string(zip.Slice(position + kCentralHeaderSize, name_length));
    absl::Status status = ApplyZip64Extra(zip.Slice(position + kCentralHeaderSize + name_length, extra_length),
                                          {&record.uncompressed, &record.compressed, &record.local_offset});
    if (!status.ok()) return RecordCorrupt(record.name, absl::StrCat("central directory: ", status.message()));
    if (disk != 0 && disk != kSaturated16) return RecordCorrupt(record.name, "central directory names another disk");
    if (!records.empty() && (record.version_made_by != records[0].version_made_by ||
                             record.internal_attributes != records[0].internal_attributes ||
                             record.external_attributes != records[0].external_attributes)) {
      return RecordCorrupt(record.name,
                           "central directory: \"version made by\" or file attributes differ from the first entry's");
    }
    records.push_back(std::move(record));
    position += entry_size;
  }
  if (position != end) return Corrupt("the central directory holds more bytes than its entries");
  return records;
}

// The data descriptor between `data_end` and `next`: CRC and sizes, with or
// without signature, 32- or 64-bit sizes (told apart by the space left).
absl::Status CheckDataDescriptor(const Fields& zip, const Record& record, uint64_t data_end, uint64_t next) {
  const uint64_t gap = next - data_end;
  uint64_t position = data_end;
  if ((gap == 16 || gap == 24) && zip.U32(position) == kDataDescriptorSignature) position += 4;
  // CRC-32 then two sizes of 4 or 8 bytes.
  const uint64_t fields_size = next - position;
  if (fields_size != 12 && fields_size != 20) {
    return RecordCorrupt(record.name, absl::StrCat(gap, " bytes after the data are not a data descriptor"));
  }
  const int width = fields_size == 12 ? 4 : 8;
  if (zip.U32(position) != record.crc || zip.Read(position + 4, width) != record.compressed ||
      zip.Read(position + 4 + width, width) != record.uncompressed) {
    return RecordCorrupt(record.name, "the data descriptor does not match the central directory");
  }
  return absl::OkStatus();
}

absl::Status CheckLocalExtra(absl::string_view extra, Record* local) {
  absl::Status status = ForEachExtraField(extra, [](uint16_t id, absl::string_view data) -> absl::Status {
    if (id == kAlignmentExtraId && data.find_first_not_of('Z') != absl::string_view::npos) {
      return absl::DataLossError("the alignment padding holds bytes other than 'Z'");
    }
    if (id != kAlignmentExtraId && id != kZip64ExtraId) {
      return absl::DataLossError(absl::StrFormat("unknown extra field 0x%04x (torch.save writes only \"FB\" and ZIP64)", id));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ApplyZip64Extra(extra, {&local->uncompressed, &local->compressed});
}

// The local header, data and descriptor of `record`, which must fill
// [record.local_offset, next) exactly.
absl::Status CheckRecord(const Fields& zip, const Record& record, uint64_t next) {
  const uint64_t start = record.local_offset;
  if (start > next || next - start < kLocalHeaderSize || zip.U32(start) != kLocalHeaderSignature) {
    return RecordCorrupt(record.name, absl::StrCat("no local header at offset ", start));
  }
  Record local;
  local.version_needed = zip.U16(start + 4);
  local.flags = zip.U16(start + 6);
  local.method = zip.U16(start + 8);
  local.time = zip.U16(start + 10);
  local.date = zip.U16(start + 12);
  local.crc = zip.U32(start + 14);
  local.compressed = zip.U32(start + 18);
  local.uncompressed = zip.U32(start + 22);
  const uint64_t name_length = zip.U16(start + 26);
  const uint64_t extra_length = zip.U16(start + 28);
  const uint64_t header_size = kLocalHeaderSize + name_length + extra_length;
  if (next - start < header_size) return RecordCorrupt(record.name, "the local header runs into the next record");
  if (local.version_needed != record.version_needed || local.flags != record.flags || local.method != record.method ||
      local.time != record.time || local.date != record.date ||
      zip.Slice(start + kLocalHeaderSize, name_length) != record.name) {
    return RecordCorrupt(record.name, "the local header does not match the central directory");
  }
  absl::Status status = CheckLocalExtra(zip.Slice(start + kLocalHeaderSize + name_length, extra_length), &local);
  if (!status.ok()) return RecordCorrupt(record.name, absl::StrCat("local header: ", status.message()));
  if (record.method != 0 || record.compressed != record.uncompressed) {
    return RecordCorrupt(record.name, absl::StrCat("compressed (method ", record.method,
                                                   "); torch.save archives store their records"));
  }
  const uint64_t data_start = start + header_size;
  if (next - data_start < record.compressed) return RecordCorrupt(record.name, "the data runs into the next record");
  const uint64_t data_end = data_start + record.compressed;
  if (record.flags & kDataDescriptorFlag) {
    const bool local_values_blank_or_equal = (local.crc == 0 || local.crc == record.crc) &&
                                             (local.compressed == 0 || local.compressed == record.compressed) &&
                                             (local.uncompressed == 0 || local.uncompressed == record.uncompressed);
    if (!local_values_blank_or_equal) return RecordCorrupt(record.name, "the local header's CRC or sizes are wrong");
    status = CheckDataDescriptor(zip, record, data_end, next);
    if (!status.ok()) return status;
  } else if (data_end != next || local.crc != record.crc || local.compressed != record.compressed ||
             local.uncompressed != record.uncompressed) {
    return RecordCorrupt(record.name, "the local header's CRC or sizes do not match the central directory");
  }
  if (record.crc != 0) {
    const uint32_t crc = Crc32(zip.Slice(data_start, record.compressed));
    if (crc != record.crc) {
      return RecordCorrupt(record.name, absl::StrFormat("CRC-32 is %08x, the central directory records %08x", crc,
                                                        record.crc));
    }
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t Crc32(absl::string_view bytes, uint32_t crc) {
  return internal::Crc32(crc, bytes.data(), bytes.size());
}

absl::Status CheckZipArchive(absl::string_view archive) {
  const Fields zip(archive);
  absl::StatusOr<Directory> directory = ReadDirectoryLocation(zip);
  if (!directory.ok()) return directory.status();
  absl::StatusOr<std::vector<Record>> records = ReadCentralDirectory(zip, *directory);
  if (!records.ok()) return records.status();
  std::stable_sort(records->begin(), records->end(),
                   [](const Record& a, const Record& b) { return a.local_offset < b.local_offset; });
  if (!records->empty() && records->front().local_offset != 0) {
    return Corrupt(absl::StrCat("the first record starts at offset ", records->front().local_offset, ", not 0"));
  }
  if (records->empty() && directory->offset != 0) return Corrupt("bytes before an empty central directory");
  // Every record then ends by the central directory (CheckRecord reads up to
  // the next record's offset).
  if (!records->empty() && records->back().local_offset > directory->offset) {
    return RecordCorrupt(records->back().name, absl::StrCat("no local header at offset ", records->back().local_offset));
  }
  for (size_t i = 0; i < records->size(); ++i) {
    const uint64_t next = i + 1 < records->size() ? (*records)[i + 1].local_offset : directory->offset;
    absl::Status status = CheckRecord(zip, (*records)[i], next);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace dcplan
