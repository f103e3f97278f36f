#include "api/zip_check.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include "absl/strings/str_cat.h"
#include "api/tensor_record.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

// Bit-by-bit CRC-32 straight from the definition (reflected, 0xEDB88320).
uint32_t ReferenceCrc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32Test, MatchesTheStandardCheckValueAndTheDefinition) {
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the catalogued check value of CRC-32/ISO-HDLC
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes.push_back(static_cast<char>((i * 37 + 11) & 0xFF));
  for (size_t length : {0, 1, 7, 8, 9, 15, 16, 17, 999, 1000}) {
    EXPECT_EQ(Crc32(bytes.substr(0, length)), ReferenceCrc32(bytes.substr(0, length))) << length;
  }
}

std::string TensorArchive() {
  const at::Tensor tensor = at::arange(24, at::kFloat).reshape({4, 6});
  std::string archive;
  absl::StatusOr<WrittenRecord> written = WriteTensorRecord(tensor, [&](const char* data, size_t n) {
    archive.append(data, n);
    return absl::OkStatus();
  });
  EXPECT_TRUE(written.ok()) << written.status();
  return archive;
}

uint32_t U32(const std::string& s, size_t at) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(s[at + i]);
  return value;
}
uint16_t U16(const std::string& s, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(s[at]) | static_cast<unsigned char>(s[at + 1]) << 8);
}

// Positions of the fields no ZIP reader interprets that the check cannot
// compare with anything: the ZIP64 end record's two version fields. (The
// central directory's "version made by" and attributes are compared across
// entries; the tensor archive has several.)
std::set<size_t> UninterpretedBytes(const std::string& zip) {
  std::set<size_t> positions;
  const size_t end = zip.size() - 22;
  EXPECT_EQ(U32(zip, end), 0x06054b50u);
  EXPECT_GE(U16(zip, end + 10), 3);  // data.pkl, data/0, version at least
  if (U32(zip, end - 20) == 0x07064b50u) {
    const size_t zip64_end = U32(zip, end - 20 + 8);
    for (size_t k : {12, 13, 14, 15}) positions.insert(zip64_end + k);
  }
  return positions;
}

TEST(ZipCheckTest, AcceptsTensorAndValueArchives) {
  EXPECT_TRUE(CheckZipArchive(TensorArchive()).ok()) << CheckZipArchive(TensorArchive());
  absl::StatusOr<std::string> value = SaveValueRecord(c10::IValue(std::string("hello")));
  ASSERT_TRUE(value.ok());
  EXPECT_TRUE(CheckZipArchive(*value).ok()) << CheckZipArchive(*value);
}

TEST(ZipCheckTest, FindsEveryFlippedByteExceptInUninterpretedFields) {
  const std::string archive = TensorArchive();
  const std::set<size_t> free_bytes = UninterpretedBytes(archive);
  int detected = 0;
  for (size_t i = 0; i < archive.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string broken = archive;
      broken[i] = static_cast<char>(broken[i] ^ mask);
      const absl::Status status = CheckZipArchive(broken);
      if (free_bytes.count(i)) continue;
      EXPECT_FALSE(status.ok()) << "byte " << i << " of " << archive.size() << " ^ " << int{mask};
      if (!status.ok()) {
        EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
        ++detected;
      }
    }
  }
  EXPECT_GT(detected, 0);
}

TEST(ZipCheckTest, RejectsTruncatedAndExtendedArchives) {
  const std::string archive = TensorArchive();
  for (size_t length = 0; length < archive.size(); ++length) {
    EXPECT_FALSE(CheckZipArchive(archive.substr(0, length)).ok()) << length;
  }
  EXPECT_FALSE(CheckZipArchive(archive + "x").ok());
  EXPECT_FALSE(CheckZipArchive("x" + archive).ok());
}

TEST(ZipCheckTest, NamesTheRecordWhoseCrcIsWrong) {
  std::string archive = TensorArchive();
  // The tensor's elements are 0.0f, 1.0f, ...: 1.0f = 00 00 80 3f.
  const size_t one = archive.find(std::string("\x00\x00\x80\x3f", 4));
  ASSERT_NE(one, std::string::npos);
  archive[one + 3] = 0x40;  // 1.0f -> 2.0f
  const absl::Status status = CheckZipArchive(archive);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("zip record 'archive/data/0': CRC-32 is"), absl::string_view::npos) << status;
}

TEST(ZipCheckTest, AcceptsRecordsWithoutCrc) {
  // PyTorch's compute_crc32=False writes 0 as every CRC; nothing to compare.
  std::string archive = TensorArchive();
  const size_t end = archive.size() - 22;
  size_t entry = U32(archive, end + 16);
  for (uint16_t i = 0; i < U16(archive, end + 10); ++i) {
    const uint32_t crc = U32(archive, entry + 16);
    const size_t local = U32(archive, entry + 42);
    const size_t data_end = local + 30 + U16(archive, local + 26) + U16(archive, local + 28) + U32(archive, entry + 20);
    archive.replace(entry + 16, 4, std::string(4, '\0'));
    if (U16(archive, entry + 8) & 8) {
      const size_t descriptor_crc = U32(archive, data_end) == 0x08074b50u ? data_end + 4 : data_end;
      ASSERT_EQ(U32(archive, descriptor_crc), crc);
      archive.replace(descriptor_crc, 4, std::string(4, '\0'));
    } else {
      archive.replace(local + 14, 4, std::string(4, '\0'));
    }
    entry += 46 + U16(archive, entry + 28) + U16(archive, entry + 30) + U16(archive, entry + 32);
  }
  EXPECT_TRUE(CheckZipArchive(archive).ok()) << CheckZipArchive(archive);
}

TEST(ZipCheckTest, RejectsARecordOffsetPastTheCentralDirectoryWithoutReadingPastTheEnd) {
  // The record at the highest offset is moved past the end of the archive,
  // and the record before it claims data that ends 16 bytes before that
  // offset (room for a data descriptor): the check must fail on the offset
  // instead of reading the descriptor out of bounds.
  std::string archive = TensorArchive();
  const size_t end = archive.size() - 22;
  std::vector<size_t> entries;
  size_t entry = U32(archive, end + 16);
  for (uint16_t i = 0; i < U16(archive, end + 10); ++i) {
    entries.push_back(entry);
    entry += 46 + U16(archive, entry + 28) + U16(archive, entry + 30) + U16(archive, entry + 32);
  }
  ASSERT_GE(entries.size(), 2u);
  std::sort(entries.begin(), entries.end(),
            [&](size_t a, size_t b) { return U32(archive, a + 42) < U32(archive, b + 42); });
  const size_t last = entries.back();
  const size_t before_last = entries[entries.size() - 2];
  ASSERT_NE(U16(archive, before_last + 8) & 8, 0) << "the record before the last has no data descriptor";
  const uint32_t moved_offset = static_cast<uint32_t>(archive.size() + 16);
  const size_t local = U32(archive, before_last + 42);
  const uint32_t data_size =
      moved_offset - 16 - static_cast<uint32_t>(local + 30 + U16(archive, local + 26) + U16(archive, local + 28));
  auto put32 = [&](size_t at, uint32_t value) {
    for (int k = 0; k < 4; ++k) archive[at + k] = static_cast<char>((value >> (8 * k)) & 0xFF);
  };
  put32(last + 42, moved_offset);
  put32(before_last + 16, 0);  // no CRC: the data is not read
  put32(before_last + 20, data_size);
  put32(before_last + 24, data_size);
  const absl::Status status = CheckZipArchive(archive);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find(absl::StrCat("no local header at offset ", moved_offset)), absl::string_view::npos)
      << status;
}

}  // namespace
}  // namespace dcplan
