#include "api/internal/confined_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/internal/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

using ::testing::HasSubstr;

// A fresh directory `name` under the test's temporary directory, holding
// `data.distcp` ("inside") and, next to it, `outside.distcp` ("secret").
class ConfinedPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    checkpoint_ = root_ + "/ckpt";
    ASSERT_TRUE(MakeDirectories(checkpoint_).ok());
    Write(checkpoint_ + "/data.distcp", "inside");
    Write(root_ + "/outside.distcp", "secret");
  }
  static void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

  std::string root_;
  std::string checkpoint_;
};

TEST(CheckRelativePathTest, AcceptsPlainAndNestedNames) {
  EXPECT_TRUE(CheckRelativePath("__0_0.distcp").ok());
  EXPECT_TRUE(CheckRelativePath("sub/__0_0.distcp").ok());
  EXPECT_TRUE(CheckRelativePath("..data").ok());
}

TEST(CheckRelativePathTest, RefusesEveryWayOut) {
  for (const std::string& path : {std::string("../outside.distcp"), std::string("sub/../../outside.distcp"),
                                  std::string("/etc/passwd"), std::string("a//b"), std::string("./a"),
                                  std::string(""), std::string("a\0b", 3), std::string(5000, 'a')}) {
    const absl::Status status = CheckRelativePath(path);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << absl::CEscape(path) << ": " << status;
  }
  EXPECT_THAT(std::string(CheckRelativePath(std::string("a\0b", 3)).message()), HasSubstr("NUL"));
  EXPECT_THAT(std::string(CheckRelativePath("../x").message()), HasSubstr("'..'"));
}

TEST_F(ConfinedPathTest, ReadsAFileInside) {
  absl::StatusOr<std::string> bytes = ReadConfinedFile(checkpoint_, "data.distcp", 100);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "inside");
}

TEST_F(ConfinedPathTest, FollowsASymlinkThatStaysInside) {
  ASSERT_EQ(::symlink("data.distcp", (checkpoint_ + "/alias.distcp").c_str()), 0);
  absl::StatusOr<std::string> bytes = ReadConfinedFile(checkpoint_, "alias.distcp", 100);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "inside");
}

TEST_F(ConfinedPathTest, FollowsASymlinkOutOfTheDirectoryOnlyToARegularFile) {
  // Content stores (Hugging Face hub cache, DVC, Bazel runfiles) link out.
  ASSERT_EQ(::symlink((root_ + "/outside.distcp").c_str(), (checkpoint_ + "/stored.distcp").c_str()), 0);
  absl::StatusOr<std::string> bytes = ReadConfinedFile(checkpoint_, "stored.distcp", 100);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "secret");
  ASSERT_EQ(::symlink("/dev/zero", (checkpoint_ + "/zero.distcp").c_str()), 0);
  absl::StatusOr<ScopedFd> zero = OpenConfined(checkpoint_, "zero.distcp");
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("character device"));
  ASSERT_EQ(::symlink("/proc/self/fd/0", (checkpoint_ + "/magic.distcp").c_str()), 0);
  EXPECT_FALSE(OpenConfined(checkpoint_, "magic.distcp").ok());
}

TEST_F(ConfinedPathTest, RefusesTraversalBeforeOpening) {
  absl::StatusOr<std::string> bytes = ReadConfinedFile(checkpoint_, "../outside.distcp", 100);
  EXPECT_TRUE(absl::IsInvalidArgument(bytes.status())) << bytes.status();
}

TEST_F(ConfinedPathTest, RefusesAFifoWithoutBlocking) {
  ASSERT_EQ(::mkfifo((checkpoint_ + "/pipe.distcp").c_str(), 0600), 0);
  absl::StatusOr<ScopedFd> fd = OpenConfined(checkpoint_, "pipe.distcp");
  ASSERT_FALSE(fd.ok());
  EXPECT_THAT(std::string(fd.status().message()), HasSubstr("FIFO"));
}

TEST_F(ConfinedPathTest, RefusesADirectory) {
  ASSERT_TRUE(MakeDirectories(checkpoint_ + "/.metadata").ok());
  absl::StatusOr<ScopedFd> fd = OpenConfined(checkpoint_, ".metadata");
  ASSERT_FALSE(fd.ok());
  EXPECT_THAT(std::string(fd.status().message()), HasSubstr("directory"));
}

TEST_F(ConfinedPathTest, RefusesAFileLargerThanItsRoleAllows) {
  const std::string path = checkpoint_ + "/sparse";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, int64_t{9} << 30), 0);
  ::close(fd);
  absl::StatusOr<std::string> bytes = ReadConfinedFile(checkpoint_, "sparse", kMaxMetadataFileBytes);
  EXPECT_TRUE(absl::IsResourceExhausted(bytes.status())) << bytes.status();
}

TEST_F(ConfinedPathTest, CreateExclusivelyReplacesAPlantedSymlinkWithoutFollowingIt) {
  const std::string planted = checkpoint_ + "/out.pt.tmp";
  ASSERT_EQ(::symlink((root_ + "/outside.distcp").c_str(), planted.c_str()), 0);
  absl::StatusOr<ScopedFd> fd = CreateExclusively(planted);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_EQ(::write(fd->get(), "new", 3), 3);
  struct stat info;
  ASSERT_EQ(::lstat(planted.c_str(), &info), 0);
  EXPECT_TRUE(S_ISREG(info.st_mode));
  absl::StatusOr<std::string> outside = ReadConfinedFile(root_, "outside.distcp", 100);
  ASSERT_TRUE(outside.ok());
  EXPECT_EQ(*outside, "secret");
}

// The reopened file is the same file even after its name was taken by
// another one, and it has its own file position.
TEST_F(ConfinedPathTest, ReopenForReadingReopensTheSameFileNotItsName) {
  absl::StatusOr<ScopedFd> fd = OpenConfined(checkpoint_, "data.distcp");
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_EQ(::rename((root_ + "/outside.distcp").c_str(), (checkpoint_ + "/data.distcp").c_str()), 0);
  absl::StatusOr<ScopedFd> reopened = ReopenForReading(*fd);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_NE(reopened->get(), fd->get());
  char bytes[6];
  ASSERT_TRUE(ReadExactlyAt(*reopened, 0, bytes, sizeof(bytes)).ok());
  EXPECT_EQ(std::string(bytes, sizeof(bytes)), "inside");
  ASSERT_EQ(::read(fd->get(), bytes, 2), 2);
  EXPECT_EQ(::lseek(reopened->get(), 0, SEEK_CUR), 0);
}

TEST_F(ConfinedPathTest, ReopenForReadingRefusesAPipe) {
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  ScopedFd read_end(ends[0]);
  ScopedFd write_end(ends[1]);
  EXPECT_FALSE(ReopenForReading(read_end).ok());
}

}  // namespace
}  // namespace dcplan::internal
