// Fuzz target for the torch.save archive check (api/zip_check.h), which reads
// untrusted data files before anything else does.
//
// For every input:
// - CheckZipArchive returns OK or a described DataLoss, reading nothing
//   outside the input (ASan);
// - Crc32 agrees with the bit-by-bit definition, also when continued from a
//   prefix's CRC.
// For every archive it accepts, one byte of one record's data (a position
// and a mask derived from the input) is changed: CheckZipArchive must reject
// the result, because the header promises that the CRC-32 catches a flipped
// byte in record data. Records whose recorded CRC is 0 are exempt (the header
// documents that 0 means "not computed"); header bytes are not flipped, since
// the header only promises that the structural checks catch "most" of those
// (comments and the ZIP64 end record's version fields are not checked).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "api/zip_check.h"
#include "fuzz/fuzz_check.h"

namespace dcplan::fuzzing {
namespace {

uint32_t BitwiseCrc32(absl::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

uint64_t Fnv1a(absl::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325u;
  for (char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
  return hash;
}

// Reads the little-endian fields of an archive CheckZipArchive accepted; a
// read past the end is a broken acceptance.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}
  uint64_t Read(uint64_t at, int width) const {
    FUZZ_CHECK(at <= bytes_.size() && static_cast<uint64_t>(width) <= bytes_.size() - at,
               absl::StrCat("an accepted archive has no ", width, "-byte field at offset ", at, " (", bytes_.size(),
                            " bytes)"));
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes_[at + i]);
    return value;
  }
  uint64_t size() const { return bytes_.size(); }

 private:
  absl::string_view bytes_;
};

struct DataRange {
  uint64_t start = 0;
  uint64_t size = 0;
};

// The data of every record with a recorded CRC, located independently of
// zip_check.cc: end record (maximal comment search), ZIP64 end record through
// its locator, central directory entries (ZIP64 extra values replace
// saturated ones: size, compressed size, offset), local header lengths.
std::vector<DataRange> CrcCheckedRecordData(const Reader& zip) {
  std::optional<uint64_t> end;
  for (uint64_t back = 0; back <= 0xFFFF && 22 + back <= zip.size() && !end; ++back) {
    const uint64_t at = zip.size() - 22 - back;
    if (zip.Read(at, 4) == 0x06054b50u && zip.Read(at + 20, 2) == back) end = at;
  }
  FUZZ_CHECK(end.has_value(), "an accepted archive has no end record");
  uint64_t entries = zip.Read(*end + 10, 2);
  uint64_t directory = zip.Read(*end + 16, 4);
  if (*end >= 20 && zip.Read(*end - 20, 4) == 0x07064b50u) {
    const uint64_t zip64_end = zip.Read(*end - 20 + 8, 8);
    entries = zip.Read(zip64_end + 32, 8);
    directory = zip.Read(zip64_end + 48, 8);
  }
  std::vector<DataRange> ranges;
  uint64_t entry = directory;
  for (uint64_t i = 0; i < entries; ++i) {
    const uint32_t crc = static_cast<uint32_t>(zip.Read(entry + 16, 4));
    uint64_t compressed = zip.Read(entry + 20, 4);
    uint64_t uncompressed = zip.Read(entry + 24, 4);
    const uint64_t name_length = zip.Read(entry + 28, 2);
    const uint64_t extra_length = zip.Read(entry + 30, 2);
    const uint64_t comment_length = zip.Read(entry + 32, 2);
    uint64_t local = zip.Read(entry + 42, 4);
    const uint64_t extra_end = entry + 46 + name_length + extra_length;
    for (uint64_t field = entry + 46 + name_length; field + 4 <= extra_end;) {
      const uint64_t length = zip.Read(field + 2, 2);
      if (zip.Read(field, 2) == 1) {
        uint64_t value = field + 4;
        for (uint64_t* wide : {&uncompressed, &compressed, &local}) {
          if (*wide == 0xFFFFFFFFu) {
            *wide = zip.Read(value, 8);
            value += 8;
          }
        }
      }
      field += 4 + length;
    }
    const uint64_t data_start = local + 30 + zip.Read(local + 26, 2) + zip.Read(local + 28, 2);
    FUZZ_CHECK(compressed == uncompressed && data_start <= zip.size() && compressed <= zip.size() - data_start,
               absl::StrCat("accepted record ", i, " has data [", data_start, ", +", compressed, ") of ",
                            uncompressed, " bytes in a ", zip.size(), "-byte archive"));
    if (crc != 0 && compressed > 0) ranges.push_back({data_start, compressed});
    entry = extra_end + comment_length;
  }
  return ranges;
}

void CheckFlippedDataByteIsRejected(absl::string_view archive) {
  const std::vector<DataRange> ranges = CrcCheckedRecordData(Reader(archive));
  uint64_t total = 0;
  for (const DataRange& range : ranges) total += range.size;
  if (total == 0) return;
  const uint64_t hash = Fnv1a(archive);
  uint64_t pick = hash % total;
  const auto mask = static_cast<unsigned char>(1 + (hash >> 56) % 255);
  for (const DataRange& range : ranges) {
    if (pick >= range.size) {
      pick -= range.size;
      continue;
    }
    const uint64_t position = range.start + pick;
    std::string flipped(archive);
    flipped[position] = static_cast<char>(static_cast<unsigned char>(flipped[position]) ^ mask);
    const absl::Status status = CheckZipArchive(flipped);
    FUZZ_CHECK(!status.ok(), absl::StrCat("a record data byte at offset ", position, " ^ 0x", absl::Hex(mask),
                                          " is not detected"));
    FUZZ_CHECK(status.code() == absl::StatusCode::kDataLoss, "a flipped data byte is not DataLoss: " + status.ToString());
    return;
  }
}

void FuzzZipArchive(absl::string_view bytes) {
  const size_t split = bytes.empty() ? 0 : Fnv1a(bytes.substr(0, 16)) % (bytes.size() + 1);
  const absl::string_view crc_input = bytes.substr(0, 4096);
  const uint32_t crc = Crc32(crc_input);
  FUZZ_CHECK(crc == BitwiseCrc32(crc_input),
             absl::StrCat("Crc32 of ", crc_input.size(), " bytes differs from the bit-by-bit definition"));
  const absl::string_view head = crc_input.substr(0, split);
  FUZZ_CHECK(Crc32(crc_input.substr(head.size()), Crc32(head)) == crc,
             absl::StrCat("Crc32 continued after ", head.size(), " bytes differs"));

  const absl::Status status = CheckZipArchive(bytes);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kDataLoss && !status.message().empty(),
               "CheckZipArchive error is not a described DataLoss: " + status.ToString());
    return;
  }
  CheckFlippedDataByteIsRejected(bytes);
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzZipArchive(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
