#include "api/internal/checksums.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "api/internal/crc32.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

using ::testing::HasSubstr;

std::vector<ChecksumEntry> SomeEntries(uint64_t first_checksum) {
  return {
      {"__0_0.distcp", 0, 100, first_checksum, "odd\tname\n", std::nullopt},
      {"__0_0.distcp", 100, 50, 7, "w", Shape{0, 4}},
      {"__1_0.distcp", 0, 9, 0, "scale", Shape{}},
  };
}

void ExpectEveryFlippedByteIsDetected(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    std::string damaged = text;
    damaged[i] ^= 0x01;
    absl::StatusOr<ChecksumTable> parsed = ParseChecksums(damaged, "c");
    ASSERT_FALSE(parsed.ok()) << "flip at " << i;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("'c' is corrupt"));
  }
  EXPECT_FALSE(ParseChecksums(text.substr(0, text.size() - 1), "c").ok());
}

TEST(ChecksumsTest, Version2RoundTripsAndEveryFlippedByteIsDetected) {
  const std::string text = SerializeChecksums("save-1", SomeEntries(0xcafebeefULL));
  EXPECT_EQ(text.substr(0, text.find('\n')), "dcplan-checksums\t2\tcrc32");
  EXPECT_THAT(text, HasSubstr("\ncafebeef\t__0_0.distcp\t0\t100\t"));
  absl::StatusOr<ChecksumTable> table = ParseChecksums(text, "c");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->algorithm(), ChecksumAlgorithm::kCrc32);
  EXPECT_EQ(table->save_id(), "save-1");
  EXPECT_EQ(table->size(), 3u);
  const ChecksumEntry* first = table->Find("__0_0.distcp", 0);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->checksum, 0xcafebeefULL);
  EXPECT_EQ(first->fqn, "odd\tname\n");
  EXPECT_EQ(table->Find("__0_0.distcp", 100)->chunk_offsets, Shape({0, 4}));
  EXPECT_EQ(table->Find("__1_0.distcp", 0)->chunk_offsets, Shape{});
  EXPECT_EQ(table->Find("__1_0.distcp", 1), nullptr);
  ExpectEveryFlippedByteIsDetected(text);
}

// Files written by dcplan before version 2 still read, with their algorithm.
TEST(ChecksumsTest, Version1FilesStillRead) {
  const std::string text = SerializeChecksums("save-1", SomeEntries(0xfeedfacecafebeefULL), ChecksumAlgorithm::kXxh3_64);
  EXPECT_EQ(text.substr(0, text.find('\n')), "dcplan-checksums\t1\txxh3-64");
  absl::StatusOr<ChecksumTable> table = ParseChecksums(text, "c");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->algorithm(), ChecksumAlgorithm::kXxh3_64);
  EXPECT_EQ(table->Find("__0_0.distcp", 0)->checksum, 0xfeedfacecafebeefULL);
  ExpectEveryFlippedByteIsDetected(text);
}

TEST(ChecksumsTest, EntriesMustHaveTheirVersionsWidth) {
  // A version 2 header over version 1 lines (16 hex digits) is malformed.
  std::string mixed = SerializeChecksums("s", SomeEntries(1), ChecksumAlgorithm::kXxh3_64);
  mixed.replace(0, mixed.find('\n'), "dcplan-checksums\t2\tcrc32");
  const std::string body = mixed.substr(0, mixed.rfind("end\t"));
  mixed = body + "end\t" + ChecksumText(ChecksumAlgorithm::kXxh3_64, Xxh3(body)) + "\n";
  absl::StatusOr<ChecksumTable> parsed = ParseChecksums(mixed, "c");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("line 3 is malformed"));
}

TEST(ChecksumsTest, ItemChecksumOfEachVersion) {
  const std::string bytes = "123456789";
  EXPECT_EQ(ItemChecksumOf(ChecksumAlgorithm::kCrc32, bytes), 0xCBF43926u);
  EXPECT_EQ(ItemChecksumOf(ChecksumAlgorithm::kXxh3_64, bytes), Xxh3(bytes));
  EXPECT_EQ(ChecksumText(ChecksumAlgorithm::kCrc32, 0xCBF43926u), "cbf43926");
  EXPECT_EQ(ChecksumText(ChecksumAlgorithm::kXxh3_64, 1), "0000000000000001");
}

TEST(AsyncChecksumTest, SameDigestAsOneCallWhateverThePieces) {
  std::string bytes(3 * AsyncChecksum::kAsyncBytes + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  AsyncChecksum hasher;
  for (ChecksumAlgorithm algorithm : {ChecksumAlgorithm::kCrc32, ChecksumAlgorithm::kXxh3_64}) {
    const uint64_t expected = algorithm == ChecksumAlgorithm::kCrc32 ? Crc32Portable(0, bytes.data(), bytes.size())
                                                                     : Xxh3(bytes);
    for (int round = 0; round < 3; ++round) {  // Reset() starts over, after any queued piece
      hasher.Reset(algorithm);
      // Small (done by the caller) and large (queued) pieces, interleaved.
      const size_t cuts[] = {0, 7, 7 + AsyncChecksum::kAsyncBytes, 100 + AsyncChecksum::kAsyncBytes,
                             bytes.size() - 5, bytes.size()};
      for (size_t k = 0; k + 1 < sizeof(cuts) / sizeof(cuts[0]); ++k) {
        hasher.Update(bytes.data() + cuts[k], cuts[k + 1] - cuts[k]);
      }
      EXPECT_EQ(hasher.Digest(), expected) << round;
    }
    hasher.Reset(algorithm);
    EXPECT_EQ(hasher.Digest(), ItemChecksumOf(algorithm, ""));
  }
}

}  // namespace
}  // namespace dcplan::internal
