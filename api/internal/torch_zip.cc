#include "api/internal/torch_zip.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/internal/checksums.h"
#include "api/internal/crc32.h"

namespace dcplan::internal {
namespace {

constexpr char kArchiveFolder[] = "archive/";
constexpr char kVersionRecord[] = "version";
constexpr char kVersionContent[] = "3\n";  // LibTorch 1.13's minimum produced file format version
constexpr int64_t kAlignment = 64;
constexpr int64_t kLocalHeaderBytes = 30;
constexpr int64_t kCentralHeaderBytes = 46;
constexpr int64_t kEndBytes = 22;
constexpr int64_t kZip64EndBytes = 56;
constexpr int64_t kZip64LocatorBytes = 20;
// UTF-8 names, and (records with bytes) a data descriptor after the bytes.
uint16_t Flags(int64_t size) { return size == 0 ? 0x0800 : 0x0808; }
constexpr uint32_t kSaturated32 = 0xFFFFFFFFu;
constexpr int64_t kMaxCentralDirectory = int64_t{64} << 20;

void Put16(std::string& out, uint64_t v) {
  out += static_cast<char>(v & 0xFF);
  out += static_cast<char>((v >> 8) & 0xFF);
}
void Put32(std::string& out, uint64_t v) {
  Put16(out, v & 0xFFFF);
  Put16(out, (v >> 16) & 0xFFFF);
}
void Put64(std::string& out, uint64_t v) {
  Put32(out, v & 0xFFFFFFFFu);
  Put32(out, v >> 32);
}

uint64_t Get(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

absl::Status Malformed(absl::string_view why) { return absl::DataLossError(absl::StrCat("malformed ZIP archive: ", why)); }

}  // namespace

std::string TorchZipWriter::Begin(absl::string_view name, int64_t size) {
  Record record{absl::StrCat(kArchiveFolder, name), position_, size, 0};
  const int64_t unpadded = position_ + kLocalHeaderBytes + static_cast<int64_t>(record.name.size()) + 4;
  const int64_t misalignment = (file_offset_ % kAlignment + unpadded % kAlignment) % kAlignment;
  const int64_t padding = (kAlignment - misalignment) % kAlignment;
  std::string out;
  out.reserve(static_cast<size_t>(kLocalHeaderBytes + record.name.size() + 4 + padding));
  out += "PK\x03\x04";
  Put16(out, 0);       // version needed
  Put16(out, Flags(size));
  Put16(out, 0);       // stored
  Put32(out, 0);       // time, date
  Put32(out, 0);       // CRC-32, sizes: in the data descriptor
  Put32(out, 0);
  Put32(out, 0);
  Put16(out, record.name.size());
  Put16(out, 4 + padding);
  out += record.name;
  out += "FB";
  Put16(out, padding);
  out.append(static_cast<size_t>(padding), 'Z');
  records_.push_back(std::move(record));
  position_ += static_cast<int64_t>(out.size()) + size;
  return out;
}

std::string TorchZipWriter::End(uint32_t crc) {
  Record& record = records_.back();
  record.crc = crc;
  if (record.size == 0) return "";  // an empty record has no data descriptor
  std::string out = "PK\x07\x08";
  Put32(out, crc);
  Put32(out, record.size);
  Put32(out, record.size);
  position_ += static_cast<int64_t>(out.size());
  return out;
}

std::string TorchZipWriter::Finish() {
  const size_t version_size = std::strlen(kVersionContent);
  std::string out = Begin(kVersionRecord, static_cast<int64_t>(version_size));
  out += kVersionContent;
  out += End(Crc32(0, kVersionContent, version_size));
  const int64_t directory_offset = position_;
  std::string directory;
  for (const Record& record : records_) {
    directory += "PK\x01\x02";
    Put16(directory, 0);  // version made by
    Put16(directory, 0);  // version needed
    Put16(directory, Flags(record.size));
    Put16(directory, 0);  // stored
    Put32(directory, 0);  // time, date
    Put32(directory, record.crc);
    Put32(directory, record.size);
    Put32(directory, record.size);
    Put16(directory, record.name.size());
    Put16(directory, 0);  // extra
    Put16(directory, 0);  // comment
    Put16(directory, 0);  // disk
    Put16(directory, 0);  // internal attributes
    Put32(directory, 0);  // external attributes
    Put32(directory, record.header_offset);
    directory += record.name;
  }
  const int64_t directory_size = static_cast<int64_t>(directory.size());
  const int64_t zip64_end_offset = directory_offset + directory_size;
  out += directory;
  out += "PK\x06\x06";
  Put64(out, kZip64EndBytes - 12);  // size of the rest of the record
  Put16(out, 0x031E);               // made by: UNIX, 3.0
  Put16(out, 45);                   // needed: ZIP64
  Put32(out, 0);                    // this disk, directory's disk
  Put32(out, 0);
  Put64(out, records_.size());
  Put64(out, records_.size());
  Put64(out, directory_size);
  Put64(out, directory_offset);
  out += "PK\x06\x07";
  Put32(out, 0);
  Put64(out, zip64_end_offset);
  Put32(out, 1);  // disks
  out += "PK\x05\x06";
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, records_.size());
  Put16(out, records_.size());
  Put32(out, directory_size);
  Put32(out, directory_offset);
  Put16(out, 0);  // comment
  position_ = zip64_end_offset + kZip64EndBytes + kZip64LocatorBytes + kEndBytes;
  return out;
}

absl::StatusOr<std::vector<ZipRecord>> IndexZip(const RecordSource& source) {
  const int64_t size = source.size();
  if (size < kEndBytes) return Malformed(absl::StrCat("only ", size, " bytes"));
  // The end record: the last "PK\5\6" whose comment reaches at most the end.
  const int64_t tail_size = std::min<int64_t>(size, kEndBytes + 0xFFFF + kZip64LocatorBytes);
  std::string tail(static_cast<size_t>(tail_size), '\0');
  absl::Status read = source.ReadAt(size - tail_size, tail.data(), tail_size);
  if (!read.ok()) return read;
  int64_t end = -1;
  for (int64_t i = tail_size - kEndBytes; i >= 0; --i) {
    if (std::memcmp(tail.data() + i, "PK\x05\x06", 4) == 0 &&
        i + kEndBytes + static_cast<int64_t>(Get(tail.data() + i + 20, 2)) <= tail_size) {
      end = i;
      break;
    }
  }
  if (end < 0) return Malformed("no end of central directory record");
  uint64_t count = Get(tail.data() + end + 10, 2);
  uint64_t directory_size = Get(tail.data() + end + 12, 4);
  uint64_t directory_offset = Get(tail.data() + end + 16, 4);
  if (end >= kZip64LocatorBytes && std::memcmp(tail.data() + end - kZip64LocatorBytes, "PK\x06\x07", 4) == 0) {
    const uint64_t zip64_end = Get(tail.data() + end - kZip64LocatorBytes + 8, 8);
    if (zip64_end > static_cast<uint64_t>(size - kZip64EndBytes)) return Malformed("ZIP64 end record out of bounds");
    char record[kZip64EndBytes];
    read = source.ReadAt(static_cast<int64_t>(zip64_end), record, kZip64EndBytes);
    if (!read.ok()) return read;
    if (std::memcmp(record, "PK\x06\x06", 4) != 0) return Malformed("bad ZIP64 end record");
    count = Get(record + 32, 8);
    directory_size = Get(record + 40, 8);
    directory_offset = Get(record + 48, 8);
  }
  if (directory_offset > static_cast<uint64_t>(size) || directory_size > static_cast<uint64_t>(size) - directory_offset) {
    return Malformed("central directory out of bounds");
  }
  if (static_cast<int64_t>(directory_size) > kMaxCentralDirectory) {
    return absl::UnimplementedError("ZIP central directory over 64 MiB");
  }
  if (count > directory_size / kCentralHeaderBytes) return Malformed("too many records for the central directory");
  std::string directory(static_cast<size_t>(directory_size), '\0');
  read = source.ReadAt(static_cast<int64_t>(directory_offset), directory.data(), static_cast<int64_t>(directory_size));
  if (!read.ok()) return read;

  std::vector<ZipRecord> records;
  size_t at = 0;
  for (uint64_t k = 0; k < count; ++k) {
    if (directory.size() - at < static_cast<size_t>(kCentralHeaderBytes) ||
        std::memcmp(directory.data() + at, "PK\x01\x02", 4) != 0) {
      return Malformed(absl::StrCat("bad central directory entry ", k));
    }
    const char* e = directory.data() + at;
    const uint64_t flags = Get(e + 8, 2), method = Get(e + 10, 2);
    uint64_t compressed = Get(e + 20, 4), uncompressed = Get(e + 24, 4), header = Get(e + 42, 4);
    const size_t name_size = Get(e + 28, 2), extra_size = Get(e + 30, 2), comment_size = Get(e + 32, 2);
    if (directory.size() - at - kCentralHeaderBytes < name_size + extra_size + comment_size) {
      return Malformed(absl::StrCat("central directory entry ", k, " overruns the directory"));
    }
    ZipRecord record;
    record.name.assign(e + kCentralHeaderBytes, name_size);
    record.crc = static_cast<uint32_t>(Get(e + 16, 4));
    // ZIP64 extended information: the saturated fields, in this order.
    const char* extra = e + kCentralHeaderBytes + name_size;
    for (size_t x = 0; x + 4 <= extra_size;) {
      const uint64_t id = Get(extra + x, 2), length = Get(extra + x + 2, 2);
      if (x + 4 + length > extra_size) return Malformed(absl::StrCat("bad extra field in '", record.name, "'"));
      if (id == 1) {
        size_t field = x + 4;
        for (uint64_t* value : {&uncompressed, &compressed, &header}) {
          if (*value != kSaturated32) continue;
          if (field + 8 > x + 4 + length) return Malformed(absl::StrCat("short ZIP64 field in '", record.name, "'"));
          *value = Get(extra + field, 8);
          field += 8;
        }
      }
      x += 4 + length;
    }
    if ((flags & 1) != 0 || method != 0) {
      return absl::UnimplementedError(absl::StrCat("record '", record.name, "' is compressed or encrypted"));
    }
    if (compressed != uncompressed) return Malformed(absl::StrCat("stored record '", record.name, "' changes size"));
    if (header > static_cast<uint64_t>(size - kLocalHeaderBytes)) {
      return Malformed(absl::StrCat("local header of '", record.name, "' out of bounds"));
    }
    char local[kLocalHeaderBytes];
    read = source.ReadAt(static_cast<int64_t>(header), local, kLocalHeaderBytes);
    if (!read.ok()) return read;
    if (std::memcmp(local, "PK\x03\x04", 4) != 0) return Malformed(absl::StrCat("bad local header of '", record.name, "'"));
    const uint64_t data = header + kLocalHeaderBytes + Get(local + 26, 2) + Get(local + 28, 2);
    if (data > static_cast<uint64_t>(size) || uncompressed > static_cast<uint64_t>(size) - data) {
      return Malformed(absl::StrCat("record '", record.name, "' ends past the archive"));
    }
    record.data_offset = static_cast<int64_t>(data);
    record.size = static_cast<int64_t>(uncompressed);
    records.push_back(std::move(record));
    at += kCentralHeaderBytes + name_size + extra_size + comment_size;
  }
  return records;
}

}  // namespace dcplan::internal
