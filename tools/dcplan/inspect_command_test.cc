#include "tools/dcplan/inspect_command.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

CommandRun Inspect(const std::vector<std::string>& args) { return testing_util::RunSubcommand(&InspectMain, args); }

// Element sizes of the dtypes the fixtures hold (torch's element_size()).
int64_t ElementBytes(const std::string& dtype) {
  const std::map<std::string, int64_t> sizes = {{"float32", 4}, {"bfloat16", 2}, {"int64", 8}, {"bool", 1}};
  return sizes.at(dtype);
}

// One line of a fixture's expected.txt.
struct ExpectedKey {
  std::string fqn;
  bool tensor = false;
  std::string dtype;
  std::string shape;  // "[8, 6]"
  int64_t logical_bytes = 0;
};

std::vector<ExpectedKey> ExpectedKeys(const std::string& fixture) {
  const std::string text = ReadBytes(test_files::RunfilePath(absl::StrCat("api/testdata/fixtures/", fixture, ".expected.txt")));
  std::vector<ExpectedKey> keys;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const std::vector<std::string> words = absl::StrSplit(line, ' ');
    ExpectedKey key;
    key.fqn = words[1];
    key.tensor = words[0] == "tensor";
    if (key.tensor) {
      const size_t open = line.find("shape=[") + 6;
      key.shape = std::string(line.substr(open, line.find(']', open) - open + 1));
      key.dtype = std::string(line.substr(line.find("dtype=") + 6, line.find(" sha256") - line.find("dtype=") - 6));
      int64_t volume = 1;
      for (absl::string_view dim : absl::StrSplit(absl::string_view(key.shape).substr(1, key.shape.size() - 2), ", ",
                                                  absl::SkipEmpty())) {
        int64_t n = 0;
        EXPECT_TRUE(absl::SimpleAtoi(dim, &n)) << line;
        volume *= n;
      }
      key.logical_bytes = volume * ElementBytes(key.dtype);
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

int64_t DataFileBytes(const std::string& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".distcp") total += static_cast<int64_t>(entry.file_size());
  }
  return total;
}

class FixtureInspectTest : public ::testing::TestWithParam<std::string> {};

// Every value of expected.txt is listed with its dtype and shape (tensors) or
// as a bytes item; the totals count them; the stored bytes are exactly the
// data files' bytes (PyTorch concatenates items with nothing in between).
TEST_P(FixtureInspectTest, TextListsEveryKeyWithDtypeShapeAndTotals) {
  const std::string dir = CopyFixture(GetParam());
  const CommandRun run = Inspect({dir});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(run.out, absl::StrCat("checkpoint: ", dir, "\n"))) << run.out;
  EXPECT_TRUE(Contains(run.out, "version: None\n")) << run.out;  // torch 1.13 writes no version
  EXPECT_TRUE(Contains(run.out, ".dcplan_checksums: absent\n")) << run.out;
  int64_t tensors = 0, logical = 0;
  for (const ExpectedKey& key : ExpectedKeys(GetParam())) {
    if (key.tensor) {
      ++tensors;
      logical += key.logical_bytes;
      EXPECT_TRUE(Contains(run.out, absl::StrCat("\n", key.fqn, "  ", key.dtype, " ", key.shape, "  chunks=")))
          << key.fqn << "\n" << run.out;
    } else {
      EXPECT_TRUE(Contains(run.out, absl::StrCat("\n", key.fqn, "  bytes -> __"))) << key.fqn << "\n" << run.out;
    }
  }
  const int64_t keys = static_cast<int64_t>(ExpectedKeys(GetParam()).size());
  EXPECT_TRUE(Contains(run.out, absl::StrCat("totals: ", keys, " keys (", tensors, " tensors, ", keys - tensors,
                                             " bytes items), ")))
      << run.out;
  EXPECT_TRUE(Contains(run.out, absl::StrCat(" chunks, ", DataFileBytes(dir), " stored bytes, ", logical,
                                             " logical tensor bytes\n")))
      << run.out;
}

// The JSON document: chunks of each file, sorted by offset, tile the file
// from 0 to its size, and every chunk lies inside its tensor.
TEST_P(FixtureInspectTest, JsonLocatesChunksThatTileEachFile) {
  const std::string dir = CopyFixture(GetParam());
  const CommandRun run = Inspect({"--json", dir});
  ASSERT_EQ(run.status, 0) << run.err;
  const Json doc = Json::parse(run.out);
  EXPECT_TRUE(doc["version"].is_null());
  EXPECT_EQ(doc["checksums"], "absent");
  EXPECT_TRUE(doc["storage_meta"]["save_id"].is_string());
  std::map<std::string, int64_t> file_sizes;
  for (const Json& file : doc["data_files"]) file_sizes[file["name"]] = file["size"];
  EXPECT_EQ(file_sizes.size(), GetParam() == "tp2d_4rank" ? 4u : 2u);
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> ranges;
  const auto expected = ExpectedKeys(GetParam());
  ASSERT_EQ(doc["keys"].size(), expected.size());
  for (const Json& key : doc["keys"]) {
    if (key["type"] == "bytes") {
      ranges[key["file"]].emplace_back(key["offset"], key["length"]);
      continue;
    }
    int64_t volume = 0;
    for (const Json& chunk : key["chunks"]) {
      ranges[chunk["file"]].emplace_back(chunk["offset"], chunk["length"]);
      int64_t chunk_volume = 1;
      for (size_t d = 0; d < chunk["sizes"].size(); ++d) {
        EXPECT_LE(chunk["offsets"][d].get<int64_t>() + chunk["sizes"][d].get<int64_t>(), key["size"][d].get<int64_t>());
        chunk_volume *= chunk["sizes"][d].get<int64_t>();
      }
      volume += chunk_volume;
    }
    EXPECT_EQ(volume * ElementBytes(key["dtype"]), key["logical_bytes"].get<int64_t>()) << key["fqn"];
  }
  ASSERT_EQ(ranges.size(), file_sizes.size());
  for (auto& [file, file_ranges] : ranges) {
    std::sort(file_ranges.begin(), file_ranges.end());
    int64_t position = 0;
    for (const auto& [offset, length] : file_ranges) {
      EXPECT_EQ(offset, position) << file;
      position = offset + length;
    }
    EXPECT_EQ(position, file_sizes[file]) << file;
  }
  EXPECT_EQ(doc["totals"]["stored_bytes"].get<int64_t>(), DataFileBytes(dir));
  EXPECT_EQ(doc["totals"]["keys"].get<size_t>(), expected.size());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureInspectTest, ::testing::Values("fsdp2_toy", "tp2d_4rank"));

// The checkpoint of testing_util::SaveDcplanCheckpoint: w's two row blocks
// from two ranks, bias written once, two values.
TEST(InspectTest, DcplanCheckpoint) {
  const std::string dir = NewTempDir("saved");
  ASSERT_TRUE(SaveDcplanCheckpoint(dir).ok());
  const CommandRun run = Inspect({dir});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(run.out, "version: 1.0.0\n")) << run.out;
  EXPECT_TRUE(Contains(run.out, ".dcplan_checksums: present\n")) << run.out;
  EXPECT_TRUE(Contains(run.out, "data files: 2 (")) << run.out;
  // 24 float32 = 96 bytes; 5 int64 = 40 bytes.
  EXPECT_TRUE(Contains(run.out, "\nw  float32 [6, 4]  chunks=2  bytes=")) << run.out;
  EXPECT_TRUE(Contains(run.out, " (logical 96)\n  offsets [0, 0] sizes [3, 4] -> __0_0.distcp @")) << run.out;
  EXPECT_TRUE(Contains(run.out, "\n  offsets [3, 0] sizes [3, 4] -> __1_0.distcp @")) << run.out;
  EXPECT_TRUE(Contains(run.out, "\nbias  int64 [5]  chunks=1  bytes=")) << run.out;
  EXPECT_TRUE(Contains(run.out, " (logical 40)\n  offsets [0] sizes [5] -> __0_0.distcp @")) << run.out;
  EXPECT_TRUE(Contains(run.out, "\nstep  bytes -> __0_0.distcp @")) << run.out;
  EXPECT_TRUE(Contains(run.out, "\nname  bytes -> __0_0.distcp @")) << run.out;
  EXPECT_TRUE(Contains(run.out, absl::StrCat("totals: 4 keys (2 tensors, 2 bytes items), 3 chunks, ",
                                             DataFileBytes(dir), " stored bytes, 136 logical tensor bytes\n")))
      << run.out;
  const CommandRun json = Inspect({dir, "--json"});
  ASSERT_EQ(json.status, 0);
  const Json doc = Json::parse(json.out);
  EXPECT_EQ(doc["version"], "1.0.0");
  EXPECT_EQ(doc["checksums"], "present");
  EXPECT_EQ(doc["totals"]["chunks"], 3);
}

TEST(InspectTest, ReportsMissingDataFilesAndStrayOnesWithoutReadingThem) {
  const std::string dir = CopyFixture("tp2d_4rank");
  std::filesystem::remove(dir + "/__2_0.distcp");
  WriteBytes(dir + "/__9_0.distcp", "stray");
  const CommandRun run = Inspect({dir});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(run.out, "  __2_0.distcp  unavailable (")) << run.out;
  EXPECT_TRUE(Contains(run.out, "  __9_0.distcp  5 bytes (not named by .metadata)\n")) << run.out;
}

TEST(InspectTest, NoCheckpointOrBrokenMetadataIsAFault) {
  const std::string empty = NewTempDir("empty");
  CommandRun run = Inspect({empty});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.err, ".metadata missing")) << run.err;
  const std::string dir = CopyFixture("fsdp2_toy");
  const std::string metadata = ReadBytes(dir + "/.metadata");
  WriteBytes(dir + "/.metadata", metadata.substr(0, metadata.size() / 2));
  run = Inspect({dir});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.err, "'.metadata'")) << run.err;
  EXPECT_TRUE(run.out.empty());
}

TEST(InspectTest, UsageErrors) {
  const std::string dir = CopyFixture("tp2d_4rank");
  const std::string file = dir + "/__0_0.distcp";
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {dir, dir}, {dir, "--bogus"}, {dir, "--quiet"}, {dir + "/nonexistent"}, {file}}) {
    const CommandRun run = Inspect(args);
    EXPECT_EQ(run.status, 2) << testing::PrintToString(args);
    EXPECT_TRUE(Contains(run.err, "usage: dcplan inspect DIR")) << run.err;
    EXPECT_TRUE(run.out.empty());
  }
  EXPECT_TRUE(Contains(Inspect({dir + "/nonexistent"}).err, "does not exist"));
  EXPECT_TRUE(Contains(Inspect({file}).err, "is not a directory"));
  EXPECT_TRUE(Contains(Inspect({dir, "--bogus"}).err, "unknown argument \"--bogus\""));
  const CommandRun help = Inspect({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_EQ(help.out, InspectHelp());
  EXPECT_EQ(help.out.rfind("usage: dcplan inspect DIR [--json]\n", 0), 0u);
}

}  // namespace
}  // namespace dcplan::tools
