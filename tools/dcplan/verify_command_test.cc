#include "tools/dcplan/verify_command.h"

#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/pickle/metadata_pickle.h"
#include "engine/metadata.h"
#include "gtest/gtest.h"
#include "tools/dcplan/checkpoint_report_test_util.h"

namespace dcplan::tools {
namespace {

using testing_util::CopyFixture;
using testing_util::NewTempDir;
using testing_util::ReadBytes;
using testing_util::SaveDcplanCheckpoint;
using testing_util::WriteBytes;
using Json = nlohmann::json;

using testing_util::CommandRun;
using testing_util::Contains;

CommandRun Verify(const std::vector<std::string>& args) { return testing_util::RunSubcommand(&VerifyMain, args); }

std::vector<std::string> Lines(const std::string& text) { return absl::StrSplit(text, '\n', absl::SkipEmpty()); }

Metadata ReadMetadata(const std::string& dir) {
  absl::StatusOr<Metadata> metadata = ParseMetadataPickle(ReadBytes(dir + "/.metadata"));
  EXPECT_TRUE(metadata.ok()) << metadata.status();
  return metadata.ok() ? *metadata : Metadata{};
}

int64_t DataFileBytes(const std::string& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".distcp") total += static_cast<int64_t>(entry.file_size());
  }
  return total;
}

// How a problem line names an item: "FILE @OFFSET +LENGTH 'fqn'[ chunk [..]]".
std::string ItemPrefix(const MetadataIndex& index, const StorageInfo& info) {
  std::string prefix = absl::StrCat(info.relative_path, " @", info.offset, " +", info.length, " '", index.fqn, "'");
  if (index.offset) absl::StrAppend(&prefix, " chunk ", ShapeToString(*index.offset));
  return absl::StrCat(prefix, ": ");
}

std::string SavedCheckpoint() {
  const std::string dir = NewTempDir("saved");
  EXPECT_TRUE(SaveDcplanCheckpoint(dir).ok());
  return dir;
}

class FixtureVerifyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureVerifyTest, IntactCheckpointIsOk) {
  const std::string dir = CopyFixture(GetParam());
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 0) << run.out;
  // Every storage_data entry is an item; PyTorch's items fill the data files.
  EXPECT_EQ(run.out, absl::StrCat("verify: OK (", ReadMetadata(dir).storage_data->size(), " items, ",
                                  DataFileBytes(dir), " bytes, checksums: absent)\n"));
  EXPECT_TRUE(run.err.empty());
}

// Flipping a byte at the start, in the middle or at the end of any item is
// found without a checksum file (zip CRC-32 and structure), and every line
// reported names that item.
TEST_P(FixtureVerifyTest, FindsAFlippedByteInEveryItem) {
  const std::string dir = CopyFixture(GetParam());
  const Metadata metadata = ReadMetadata(dir);
  for (const auto& [index, info] : *metadata.storage_data) {
    const std::string path = dir + "/" + info.relative_path;
    const std::string original = ReadBytes(path);
    for (int64_t position : {info.offset, info.offset + info.length / 2, info.offset + info.length - 1}) {
      std::string broken = original;
      broken[position] = static_cast<char>(broken[position] ^ 0x10);
      WriteBytes(path, broken);
      const CommandRun run = Verify({dir, "--quiet"});
      EXPECT_EQ(run.status, 1) << ToString(index) << " byte " << position << "\n" << run.out;
      const std::vector<std::string> lines = Lines(run.out);
      ASSERT_GE(lines.size(), 2u) << run.out;
      for (size_t i = 0; i + 1 < lines.size(); ++i) {
        EXPECT_EQ(lines[i].rfind(ItemPrefix(index, info), 0), 0u) << lines[i];
      }
      EXPECT_EQ(lines.back().rfind(absl::StrCat("verify: ", lines.size() - 1, " problem"), 0), 0u) << lines.back();
    }
    WriteBytes(path, original);
  }
  EXPECT_EQ(Verify({dir}).status, 0);
}

TEST_P(FixtureVerifyTest, TruncatedFileNamesEveryItemPastTheEnd) {
  const std::string dir = CopyFixture(GetParam());
  const Metadata metadata = ReadMetadata(dir);
  const std::string path = dir + "/__1_0.distcp";
  const int64_t new_size = static_cast<int64_t>(std::filesystem::file_size(path)) / 2;
  std::filesystem::resize_file(path, new_size);
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 1);
  size_t cut = 0;
  for (const auto& [index, info] : *metadata.storage_data) {
    if (info.relative_path != "__1_0.distcp" || info.offset + info.length <= new_size) continue;
    ++cut;
    EXPECT_TRUE(Contains(run.out, absl::StrCat(ItemPrefix(index, info), "bytes [", info.offset, ", ", info.offset,
                                               " + ", info.length, ") end past the end of the file (", new_size,
                                               " bytes): the file is truncated\n")))
        << run.out;
  }
  EXPECT_GT(cut, 0u);
  // Exactly those, plus the summary.
  EXPECT_EQ(Lines(run.out).size(), cut + 1) << run.out;
}

TEST_P(FixtureVerifyTest, MissingFileNamesEachOfItsItems) {
  const std::string dir = CopyFixture(GetParam());
  const Metadata metadata = ReadMetadata(dir);
  std::filesystem::remove(dir + "/__0_0.distcp");
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 1);
  size_t items = 0;
  for (const auto& [index, info] : *metadata.storage_data) {
    if (info.relative_path != "__0_0.distcp") continue;
    ++items;
    EXPECT_TRUE(Contains(run.out, ItemPrefix(index, info) + "cannot open the data file: ")) << run.out;
  }
  EXPECT_EQ(Lines(run.out).size(), items + 1) << run.out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureVerifyTest, ::testing::Values("fsdp2_toy", "tp2d_4rank"));

TEST(VerifyTest, DcplanCheckpointWithChecksums) {
  const std::string dir = SavedCheckpoint();
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 0) << run.out;
  // w's two chunks, bias, step, name.
  EXPECT_EQ(run.out, absl::StrCat("verify: OK (5 items, ", DataFileBytes(dir), " bytes, checksums: checked)\n"));
}

// With .dcplan_checksums every flipped byte is a checksum mismatch; without
// it (deleted) the archive checks still find each one.
TEST(VerifyTest, DcplanCheckpointFindsAFlippedByteInEveryItemWithAndWithoutChecksums) {
  const std::string dir = SavedCheckpoint();
  const Metadata metadata = ReadMetadata(dir);
  for (bool with_checksums : {true, false}) {
    if (!with_checksums) std::filesystem::remove(dir + "/.dcplan_checksums");
    for (const auto& [index, info] : *metadata.storage_data) {
      const std::string path = dir + "/" + info.relative_path;
      const std::string original = ReadBytes(path);
      for (int64_t position : {info.offset, info.offset + info.length / 2, info.offset + info.length - 1}) {
        std::string broken = original;
        broken[position] = static_cast<char>(broken[position] ^ 0x01);
        WriteBytes(path, broken);
        const CommandRun run = Verify({dir, "--quiet"});
        EXPECT_EQ(run.status, 1) << ToString(index) << " byte " << position << "\n" << run.out;
        EXPECT_EQ(Contains(run.out, ItemPrefix(index, info) + "checksum mismatch (CRC-32 "), with_checksums)
            << run.out;
        const std::vector<std::string> lines = Lines(run.out);
        ASSERT_GE(lines.size(), 2u);
        for (size_t i = 0; i + 1 < lines.size(); ++i) EXPECT_EQ(lines[i].rfind(ItemPrefix(index, info), 0), 0u);
      }
      WriteBytes(path, original);
    }
    const CommandRun intact = Verify({dir, "--quiet"});
    EXPECT_EQ(intact.status, 0) << intact.out;
    EXPECT_TRUE(Contains(intact.out, with_checksums ? "checksums: checked" : "checksums: absent")) << intact.out;
  }
}

TEST(VerifyTest, ChecksumFileOfAnotherSaveIsIgnoredAndADamagedOneIsAFault) {
  const std::string dir = SavedCheckpoint();
  const std::string other = SavedCheckpoint();  // another save id
  std::filesystem::copy_file(other + "/.dcplan_checksums", dir + "/.dcplan_checksums",
                             std::filesystem::copy_options::overwrite_existing);
  CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_TRUE(Contains(run.out, "checksums: from another save (ignored))")) << run.out;
  std::string damaged = ReadBytes(other + "/.dcplan_checksums");
  damaged[damaged.size() / 2] ^= 0x01;
  WriteBytes(dir + "/.dcplan_checksums", damaged);
  run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out.rfind(".dcplan_checksums: ", 0), 0u) << run.out;
  EXPECT_TRUE(Contains(run.out, "is corrupt")) << run.out;
}

TEST(VerifyTest, MissingOrCorruptMetadataIsAFault) {
  const std::string empty = NewTempDir("empty");
  CommandRun run = Verify({empty});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, absl::StrCat(".metadata: no checkpoint in ", empty,
                                  " (.metadata missing)\nverify: 1 problem in 0 items, 0 bytes\n"));
  const std::string dir = CopyFixture("tp2d_4rank");
  WriteBytes(dir + "/.metadata", "not a pickle");
  run = Verify({dir, "--json"});
  EXPECT_EQ(run.status, 1);
  const Json doc = Json::parse(run.out);
  EXPECT_EQ(doc["ok"], false);
  ASSERT_EQ(doc["problems"].size(), 1u);
  EXPECT_EQ(doc["problems"][0]["file"], ".metadata");
}

// A chunk removed from the metadata (its data left in place) leaves a gap:
// the engine's validation reports the volume, and the orphaned item is named.
TEST(VerifyTest, ChunksThatDoNotCoverTheTensorAreReported) {
  const std::string dir = SavedCheckpoint();
  Metadata metadata = ReadMetadata(dir);
  auto& w = std::get<TensorStorageMetadata>(*metadata.state_dict_metadata.Find("w"));
  ASSERT_EQ(w.chunks.size(), 2u);
  w.chunks.pop_back();  // rows 3-5
  WriteBytes(dir + "/.metadata", WriteMetadataPickle(metadata));
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 1);
  // 3 x 4 of 6 x 4 elements covered.
  EXPECT_TRUE(Contains(run.out, ".metadata: key:w has 1 chunks covering 12 elements but its size [6, 4] has 24"))
      << run.out;
  const StorageInfo& orphan = *metadata.storage_data->Find(MetadataIndex{"w", Shape{3, 0}, std::nullopt});
  EXPECT_TRUE(Contains(run.out, ItemPrefix(MetadataIndex{"w", Shape{3, 0}, std::nullopt}, orphan) +
                                    "the metadata records no chunk of this tensor at these offsets\n"))
      << run.out;
}

TEST(VerifyTest, OverlappingItemsAndMissingLocationsAreReported) {
  const std::string dir = SavedCheckpoint();
  Metadata metadata = ReadMetadata(dir);
  const MetadataIndex bias{"bias", Shape{0}, std::nullopt};
  const MetadataIndex step{"step", std::nullopt, std::nullopt};
  // bias now starts one byte into step's bytes (both in rank 0's file).
  StorageInfo* bias_info = metadata.storage_data->Find(bias);
  const StorageInfo step_info = *metadata.storage_data->Find(step);
  ASSERT_EQ(bias_info->relative_path, step_info.relative_path);
  bias_info->offset = step_info.offset + 1;
  const StorageInfo moved_bias = *bias_info;
  // And 'name' loses its location.
  StorageData without_name;
  for (const auto& [index, info] : *metadata.storage_data) {
    if (index.fqn != "name") without_name.InsertOrAssign(index, info);
  }
  metadata.storage_data = without_name;
  WriteBytes(dir + "/.metadata", WriteMetadataPickle(metadata));
  const CommandRun run = Verify({dir, "--quiet"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.out, ".metadata: bytes value 'name' has no storage_data location\n")) << run.out;
  EXPECT_TRUE(Contains(run.out, ItemPrefix(bias, moved_bias) + "overlaps 'step'")) << run.out;
}

TEST(VerifyTest, JsonReport) {
  const std::string dir = SavedCheckpoint();
  CommandRun run = Verify({"--json", dir, "--quiet"});
  ASSERT_EQ(run.status, 0);
  Json doc = Json::parse(run.out);
  EXPECT_EQ(doc["ok"], true);
  EXPECT_EQ(doc["items"], 5);
  EXPECT_EQ(doc["checksums"], "checked");
  EXPECT_TRUE(doc["problems"].empty());
  std::filesystem::resize_file(dir + "/__1_0.distcp", 10);  // w's rows 3-5 only
  run = Verify({"--json", dir, "--quiet"});
  ASSERT_EQ(run.status, 1);
  doc = Json::parse(run.out);
  EXPECT_EQ(doc["ok"], false);
  ASSERT_EQ(doc["problems"].size(), 1u) << run.out;
  EXPECT_EQ(doc["problems"][0]["file"], "__1_0.distcp");
  EXPECT_EQ(doc["problems"][0]["fqn"], "w");
  EXPECT_EQ(doc["problems"][0]["chunk"], Json::array({3, 0}));
}

TEST(VerifyTest, UsageErrors) {
  const std::string dir = CopyFixture("tp2d_4rank");
  const std::string file = dir + "/__0_0.distcp";
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {"--quiet"}, {dir, dir}, {dir, "--bogus"}, {"-x", dir}, {dir + "/nonexistent"}, {file}}) {
    const CommandRun run = Verify(args);
    EXPECT_EQ(run.status, 2) << testing::PrintToString(args);
    EXPECT_TRUE(Contains(run.err, "usage: dcplan verify DIR [--quiet] [--json]")) << run.err;
    EXPECT_TRUE(run.out.empty());
  }
  const CommandRun help = Verify({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_EQ(help.out, VerifyHelp());
  EXPECT_EQ(help.out.rfind("usage: dcplan verify DIR [--quiet] [--json]\n", 0), 0u);
}

}  // namespace
}  // namespace dcplan::tools
