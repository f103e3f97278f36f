// Hostile and degenerate inputs, fed to the real `dcplan` binary under an
// address-space limit (prlimit --as): every case must end in a clear
// error (exit 1, or 2 for usage) naming what is wrong, never in an abort, a
// hang (RunProcesses kills at a deadline, reported as a failure), a read
// outside the checkpoint or a write through a planted symlink.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/internal/subprocess.h"
#include "api/pickle/metadata_pickle.h"
#include "engine/metadata.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"

namespace dcplan::tools {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// The binary maps about 550 MiB of address space before main (LibTorch's
// libraries, mostly untouched); 1 GiB leaves under 512 MiB for the input.
constexpr char kAddressSpaceLimit[] = "--as=1073741824";
// Only a hang detector: every case finishes in well under a second.
constexpr absl::Duration kDeadline = absl::Seconds(60);

struct ToolRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

ToolRun RunTool(const std::vector<std::string>& args) {
  const std::string output_path = test_files::NewTempPath("tool_output");
  internal::ProcessSpec spec;
  spec.argv = {"/usr/bin/prlimit", kAddressSpaceLimit, "--", test_files::RunfilePath("tools/dcplan")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.output_path = output_path;
  absl::StatusOr<std::vector<internal::ProcessOutcome>> outcome = internal::RunProcesses({spec}, kDeadline);
  ToolRun run;
  run.output = test_files::ReadFile(output_path).value_or("");
  EXPECT_TRUE(outcome.ok()) << outcome.status();
  if (!outcome.ok()) return run;
  EXPECT_TRUE(outcome->front().exited) << ToString(outcome->front()) << "\n" << run.output;
  run.exit_code = outcome->front().exited ? outcome->front().exit_code : -1;
  return run;
}

// A writable copy of a PyTorch-written checkpoint, inside a fresh directory
// that also holds `outside.distcp` (a copy of one of its data files) and
// `secret.txt`: whatever reaches them has left the checkpoint.
struct Sandbox {
  std::string root;
  std::string checkpoint;
};

Sandbox NewSandbox() {
  Sandbox box;
  box.root = test_files::NewTempDir("hostile");
  box.checkpoint = box.root + "/ckpt";
  fs::copy(test_files::RunfilePath("api/testdata/fixtures/fsdp2_toy"), box.checkpoint, fs::copy_options::recursive);
  fs::copy_file(box.checkpoint + "/__0_0.distcp", box.root + "/outside.distcp");
  test_files::WriteFile(box.root + "/secret.txt", "secret-outside-the-checkpoint");
  return box;
}

Metadata ReadMetadata(const std::string& checkpoint) {
  absl::StatusOr<Metadata> metadata =
      ParseMetadataPickle(test_files::ReadFile(checkpoint + "/.metadata").value_or(""));
  EXPECT_TRUE(metadata.ok()) << metadata.status();
  return metadata.ok() ? *metadata : Metadata{};
}

void WriteMetadata(const std::string& checkpoint, const Metadata& metadata) {
  ASSERT_TRUE(test_files::WriteFile(checkpoint + "/.metadata", WriteMetadataPickle(metadata)));
}

// Points every storage entry of the first data file at `path`.
void RedirectFirstFile(const std::string& checkpoint, const std::string& path) {
  Metadata metadata = ReadMetadata(checkpoint);
  for (auto& entry : *metadata.storage_data) {
    if (entry.second.relative_path == "__0_0.distcp") entry.second.relative_path = path;
  }
  WriteMetadata(checkpoint, metadata);
}

// --- 1. Path traversal -------------------------------------------------------------

std::string LongTraversal() {
  std::string path;
  for (int i = 0; i < 500; ++i) path += "../";
  return path + "outside.distcp";
}

TEST(HostileInputTest, RelativePathsLeavingTheCheckpointAreRefusedByEveryTool) {
  for (const std::string& path :
       {std::string("../outside.distcp"), std::string("sub/../../outside.distcp"),
        LongTraversal(),
        std::string("/etc/passwd"), std::string("__0_0.distcp\0../../secret.txt", 29)}) {
    SCOPED_TRACE(path);
    const Sandbox box = NewSandbox();
    RedirectFirstFile(box.checkpoint, path);
    for (const char* tool : {"verify", "inspect"}) {
      const ToolRun run = RunTool({tool, box.checkpoint});
      EXPECT_EQ(run.exit_code, 1) << tool << ": " << run.output;
      EXPECT_THAT(run.output, HasSubstr("relative_path")) << tool;
      EXPECT_THAT(run.output, Not(HasSubstr("bytes (not named"))) << tool;
    }
    const ToolRun convert = RunTool({"convert", box.checkpoint, box.root + "/out.pt"});
    EXPECT_EQ(convert.exit_code, 1) << convert.output;
    EXPECT_THAT(convert.output, HasSubstr("relative_path"));
    EXPECT_FALSE(fs::exists(box.root + "/out.pt"));
  }
}

TEST(HostileInputTest, TheRuleSaysWhichComponentIsRefused) {
  const Sandbox nul = NewSandbox();
  RedirectFirstFile(nul.checkpoint, std::string("a\0b", 3));
  EXPECT_THAT(RunTool({"verify", nul.checkpoint}).output, HasSubstr("path contains a NUL byte"));
  const Sandbox absolute = NewSandbox();
  RedirectFirstFile(absolute.checkpoint, "/etc/passwd");
  EXPECT_THAT(RunTool({"inspect", absolute.checkpoint}).output, HasSubstr("absolute path"));
}

// Symlinked files are followed (content stores link out of the directory),
// but only to regular files.
TEST(HostileInputTest, ADataFileLinkedToADeviceIsRefused) {
  const Sandbox box = NewSandbox();
  fs::remove(box.checkpoint + "/__0_0.distcp");
  fs::create_symlink("/dev/zero", box.checkpoint + "/__0_0.distcp");
  const ToolRun verify = RunTool({"verify", box.checkpoint});
  EXPECT_EQ(verify.exit_code, 1) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("not a regular file (a character device)"));
  const ToolRun convert = RunTool({"convert", box.checkpoint, box.root + "/out.pt"});
  EXPECT_EQ(convert.exit_code, 1) << convert.output;
  EXPECT_FALSE(fs::exists(box.root + "/out.pt"));
}

// --- 2. Symlink clobber -------------------------------------------------------------

TEST(HostileInputTest, APlantedTemporarySymlinkIsReplacedNotWrittenThrough) {
  const Sandbox box = NewSandbox();
  const std::string out = box.root + "/out.pt";
  fs::create_symlink(box.root + "/secret.txt", out + ".tmp");
  const ToolRun run = RunTool({"convert", box.checkpoint, out});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(test_files::ReadFile(box.root + "/secret.txt").value_or(""), "secret-outside-the-checkpoint");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(out)));
}

// --- 7. Not a regular file ----------------------------------------------------------

TEST(HostileInputTest, AFifoIsRefusedWithoutBlocking) {
  for (const char* name : {".metadata", "__1_0.distcp", ".dcplan_checksums"}) {
    SCOPED_TRACE(name);
    const Sandbox box = NewSandbox();
    fs::remove(box.checkpoint + "/" + name);
    ASSERT_EQ(::mkfifo((box.checkpoint + "/" + name).c_str(), 0600), 0);
    for (const char* tool : {"verify", "inspect"}) {
      const ToolRun run = RunTool({tool, box.checkpoint});
      if (std::string(name) == ".metadata" || std::string(tool) == "verify") {
        EXPECT_EQ(run.exit_code, 1) << tool << ": " << run.output;
      }
      EXPECT_THAT(run.output, HasSubstr("FIFO")) << tool;
    }
  }
}

TEST(HostileInputTest, MetadataThatIsADirectoryADeviceOrHugeIsRefused) {
  const Sandbox box = NewSandbox();
  const std::string metadata = box.checkpoint + "/.metadata";
  fs::remove(metadata);
  fs::create_directory(metadata);
  ToolRun run = RunTool({"verify", box.checkpoint});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("directory"));

  fs::remove(metadata);
  fs::create_symlink("/dev/zero", metadata);
  run = RunTool({"inspect", box.checkpoint});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("character device"));

  fs::remove(metadata);
  const int fd = ::open(metadata.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, int64_t{9} << 30), 0);
  ::close(fd);
  run = RunTool({"convert", box.checkpoint, box.root + "/out.pt"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("larger than"));
}

// --- 8. Deep JSON ---------------------------------------------------------------------

TEST(HostileInputTest, DeeplyNestedPlanJsonIsAUsageError) {
  for (const auto& [prefix, depth] : {std::pair<std::string, int>{R"({"kind": "save", "options": {"x": )", 30000},
                                      std::pair<std::string, int>{R"({"kind": "save", "ranks": [{"items": [{"size": )",
                                                                  100000}}) {
    const std::string path = test_files::NewTempPath("deep.json");
    test_files::WriteFile(path, prefix + std::string(depth, '[') + std::string(depth, ']'));
    const ToolRun run = RunTool({"plan", path});
    EXPECT_EQ(run.exit_code, 2) << run.output;
    EXPECT_THAT(run.output, HasSubstr("nested deeper than"));
  }
}

// --- 6. Pickle memo amplification -------------------------------------------------

std::string PickleString(const std::string& text) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
  return out + text;
}

// A `.metadata` whose storage_meta.modules lists one 1 MiB string `refs`
// times through the memo (about 1 MB on disk).
std::string MemoBomb(int refs) {
  const std::string module = "torch.distributed.checkpoint.metadata\n";
  std::string p = "\x80\x02";
  p += "c" + module + "Metadata\n)\x81}";
  p += PickleString("state_dict_metadata") + "}s";
  p += PickleString("storage_meta");
  p += "c" + module + "StorageMeta\n)\x81}";
  p += PickleString("modules") + "]" + PickleString(std::string(1 << 20, 'm')) + std::string("q\x00" "a(", 4);
  for (int i = 1; i < refs; ++i) p += std::string("h\x00", 2);
  p += "esbsb.";
  return p;
}

TEST(HostileInputTest, MemoReferencesToOneLargeStringDoNotMultiplyMemory) {
  const Sandbox box = NewSandbox();
  test_files::WriteFile(box.checkpoint + "/.metadata", MemoBomb(10000));
  for (const char* tool : {"verify", "inspect"}) {
    const ToolRun run = RunTool({tool, box.checkpoint});
    EXPECT_EQ(run.exit_code, 1) << tool;
    EXPECT_THAT(run.output, HasSubstr("memo amplification")) << tool;
    EXPECT_LT(run.output.size(), 4096u) << tool;
  }
}

// --- 4. Quadratic overlap reporting -------------------------------------------------

TEST(HostileInputTest, ThousandsOfIdenticalChunksGiveABoundedReport) {
  const Sandbox box = NewSandbox();
  Metadata metadata = ReadMetadata(box.checkpoint);
  TensorStorageMetadata tensor;
  tensor.size = {4};
  tensor.chunks.assign(5000, ChunkBox{{0}, {4}});
  metadata.state_dict_metadata.InsertOrAssign("copies", StorageMetadata(tensor));
  metadata.storage_data->InsertOrAssign(MetadataIndex{"copies", Shape{0}, std::nullopt},
                                        StorageInfo{"__0_0.distcp", 0, 16, std::nullopt});
  WriteMetadata(box.checkpoint, metadata);
  const ToolRun run = RunTool({"verify", "--quiet", box.checkpoint});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("key:copies has at least"));
  EXPECT_LT(std::count(run.output.begin(), run.output.end(), '\n'), 200) << run.output.substr(0, 2000);
}

// --- 10. Terminal escapes ---------------------------------------------------------------

TEST(HostileInputTest, ControlCharactersInKeysAreEscaped) {
  const Sandbox box = NewSandbox();
  Metadata metadata = ReadMetadata(box.checkpoint);
  metadata.state_dict_metadata.InsertOrAssign("evil\x1b[2J\x07\r", StorageMetadata(BytesStorageMetadata{}));
  WriteMetadata(box.checkpoint, metadata);
  for (const char* tool : {"verify", "inspect"}) {
    const ToolRun run = RunTool({tool, box.checkpoint});
    EXPECT_THAT(run.output, HasSubstr("evil\\x1b[2J\\x07\\x0d")) << tool;
    EXPECT_THAT(run.output, Not(HasSubstr("\x1b"))) << tool;
  }
}

}  // namespace
}  // namespace dcplan::tools
