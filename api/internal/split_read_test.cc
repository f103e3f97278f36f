#include "api/internal/split_read.h"

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/internal/crc32.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

// Bytes that differ at every position of a range, and a record of which
// thread read which ranges.
class SplitReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_.resize(kFileBytes);
    uint32_t x = 12345;
    for (char& c : file_) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
    }
  }

  // A reader over file_ that records what it read and on which thread.
  absl::Status ReadFrom(int64_t offset, char* out, int64_t n, std::vector<std::pair<int64_t, int64_t>>* reads,
                        std::thread::id* thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (offset < 0 || n < 0 || offset + n > static_cast<int64_t>(file_.size())) {
      return absl::OutOfRangeError("outside the file");
    }
    std::memcpy(out, file_.data() + offset, static_cast<size_t>(n));
    reads->push_back({offset, n});
    *thread = std::this_thread::get_id();
    return absl::OkStatus();
  }

  static constexpr int64_t kFileBytes = (int64_t{9} << 20) + 777;
  std::string file_;
  std::mutex mutex_;
};

// Every byte of the range lands where it belongs, exactly once, the CRC-32 is
// the range's, and large ranges are shared: the caller reads the first part
// with `read`, another thread the rest with `helper_read`.
TEST_F(SplitReadTest, ReadsEveryByteOnceAndChecksumsTheRange) {
  SplitReader reader;
  const int64_t min = SplitReader::kMinSplitBytes;
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, 0}, {5, 6}, {3, min - 1 + 3}, {0, min}, {1, min + 1}, {100, min + 65536 + 100}, {13, kFileBytes}};
  for (const auto& [begin, end] : ranges) {
    for (bool crc : {true, false}) {
      std::string out(static_cast<size_t>(end - begin), '\0');
      std::vector<std::pair<int64_t, int64_t>> caller_reads, helper_reads;
      std::thread::id caller_thread, helper_thread;
      auto read = [&](int64_t offset, char* to, int64_t n) {
        return ReadFrom(offset, to, n, &caller_reads, &caller_thread);
      };
      auto helper_read = [&](int64_t offset, char* to, int64_t n) {
        return ReadFrom(offset, to, n, &helper_reads, &helper_thread);
      };
      absl::StatusOr<uint32_t> value = reader.Read(read, helper_read, begin, end, out.data(), crc);
      const std::string where = absl::StrCat("[", begin, ", ", end, ") crc=", crc);
      ASSERT_TRUE(value.ok()) << where << ": " << value.status();
      EXPECT_TRUE(out == file_.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin))) << where;
      EXPECT_EQ(*value, crc ? Crc32Portable(0, out.data(), out.size()) : 0u) << where;

      // The parts: the caller's reads, then the helper's, tile the range in order.
      std::vector<std::pair<int64_t, int64_t>> all = caller_reads;
      all.insert(all.end(), helper_reads.begin(), helper_reads.end());
      int64_t at = begin;
      for (const auto& [offset, n] : all) {
        EXPECT_EQ(offset, at) << where;
        EXPECT_LE(n, SplitReader::kBlockBytes) << where;
        at = offset + n;
      }
      EXPECT_EQ(at, end) << where;
      if (end - begin >= min) {
        ASSERT_FALSE(helper_reads.empty()) << where;
        EXPECT_NE(helper_thread, std::this_thread::get_id()) << where;
        // About half each.
        const int64_t helper_bytes = end - helper_reads.front().first;
        EXPECT_GE(helper_bytes, (end - begin) / 2) << where;
        EXPECT_LE(helper_bytes, (end - begin) / 2 + 65536) << where;
      } else {
        EXPECT_TRUE(helper_reads.empty()) << where;
      }
      if (!caller_reads.empty()) EXPECT_EQ(caller_thread, std::this_thread::get_id()) << where;
    }
  }
}

// An error in either part is returned, after both parts have finished; the
// first part's wins when both fail.
TEST_F(SplitReadTest, ErrorsOfEitherPart) {
  SplitReader reader;
  const int64_t end = SplitReader::kMinSplitBytes * 2;
  std::string out(static_cast<size_t>(end), '\0');
  std::vector<std::pair<int64_t, int64_t>> ignored;
  std::thread::id thread;
  auto good = [&](int64_t offset, char* to, int64_t n) { return ReadFrom(offset, to, n, &ignored, &thread); };
  auto bad_caller = [&](int64_t, char*, int64_t) { return absl::DataLossError("caller's part"); };
  auto bad_helper = [&](int64_t, char*, int64_t) { return absl::UnavailableError("helper's part"); };

  absl::StatusOr<uint32_t> helper_failed = reader.Read(good, bad_helper, 0, end, out.data(), true);
  EXPECT_EQ(helper_failed.status(), absl::UnavailableError("helper's part"));
  absl::StatusOr<uint32_t> caller_failed = reader.Read(bad_caller, good, 0, end, out.data(), true);
  EXPECT_EQ(caller_failed.status(), absl::DataLossError("caller's part"));
  absl::StatusOr<uint32_t> both_failed = reader.Read(bad_caller, bad_helper, 0, end, out.data(), true);
  EXPECT_EQ(both_failed.status(), absl::DataLossError("caller's part"));
  // The reader is still usable.
  absl::StatusOr<uint32_t> fine = reader.Read(good, good, 0, end, out.data(), true);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(*fine, Crc32Portable(0, file_.data(), static_cast<size_t>(end)));
}

}  // namespace
}  // namespace dcplan::internal
