// Interop: what WriteMetadataPickle writes loads with CPython's plain
// `pickle.load` into PyTorch 2.13's own DCP classes (the venv's Python) with
// the exact field types, order and values (testdata/check_metadata.py).
#include <sys/wait.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/metadata_pickle.h"
#include "api/pickle/test_util.h"
#include "engine/metadata.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"

namespace dcplan {
namespace {

using namespace pickle_test;  // NOLINT

struct PythonResult {
  int exit_code = -1;
  std::string output;
};

// Runs check_metadata.py with `args` (paths without quotes or spaces).
PythonResult RunCheck(const std::vector<std::string>& args) {
  const std::string output_path = TempPath("check_metadata.out");
  std::string command =
      absl::StrCat(test_files::VenvPython(), " ", RunfilePath("api/pickle/testdata/check_metadata.py"));
  for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
  absl::StrAppend(&command, " >'", output_path, "' 2>&1");
  const int status = std::system(command.c_str());
  PythonResult result;
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.output = ReadFile(output_path).value_or("<no output>");
  return result;
}

// Writes `metadata`, and the JSON Python should see, to temp files.
std::vector<std::string> WriteCase(const std::string& name, const Metadata& metadata, const std::string& json) {
  const std::string pickle_path = TempPath(name + ".metadata");
  const std::string json_path = TempPath(name + ".json");
  EXPECT_TRUE(WriteFile(pickle_path, WriteMetadataPickle(metadata)));
  EXPECT_TRUE(WriteFile(json_path, json));
  return {pickle_path, json_path};
}

// The check for `metadata`: its pickle and the JSON Python should see.
std::vector<std::string> Case(const std::string& name, const Metadata& metadata) {
  Metadata expected = metadata;
  if (!expected.version) expected.version = "1.0.0";  // what the writer fills in
  return WriteCase(name, metadata, MetadataJson(expected));
}

Metadata ManyEntries() {
  Metadata m;
  m.planner_data.emplace();
  StorageData storage;
  for (int i = 0; i < 1200; ++i) {
    const std::string fqn = absl::StrCat("layers.", i, ".weight");
    m.state_dict_metadata.InsertOrAssign(fqn, TensorStorageMetadata{{}, {4}, {{{0}, {2}}, {{2}, {2}}}});
    m.planner_data->InsertOrAssign(fqn, {std::string("layers"), std::string(absl::StrCat(i)), std::string("weight")});
    storage.InsertOrAssign(MetadataIndex{fqn, Shape{0}, 0}, StorageInfo{"__0_0.distcp", 10 * i, 10, {}});
    storage.InsertOrAssign(MetadataIndex{fqn, Shape{2}, 1}, StorageInfo{"__1_0.distcp", 10 * i, 10, {}});
  }
  m.storage_data = storage;
  return m;
}

// One Python run (importing torch is slow) checks every case: synthetic
// metadata against its JSON, and the PyTorch-written fixtures parsed,
// re-written and compared with what Python itself makes of the originals.
TEST(MetadataPicklePythonTest, WrittenMetadataLoadsInPython) {
  std::vector<std::string> args;
  const auto add = [&args](std::vector<std::string> more) { args.insert(args.end(), more.begin(), more.end()); };
  add(Case("rich", RichMetadata(/*torch_1_13_dtypes_only=*/true)));
  add(Case("many", ManyEntries()));
  Metadata unset;
  unset.state_dict_metadata.InsertOrAssign("b", BytesStorageMetadata{});
  add(Case("unset", unset));
  unset.storage_meta = StorageMeta{};
  add(Case("empty_meta", unset));
  for (const std::string name : {"tp2d_4rank", "fsdp2_toy"}) {
    const std::string fixture = RunfilePath(absl::StrCat("api/pickle/testdata/", name, ".metadata"));
    std::optional<std::string> bytes = ReadFile(fixture);
    ASSERT_TRUE(bytes.has_value()) << fixture;
    absl::StatusOr<Metadata> parsed = ParseMetadataPickle(*bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const std::string rewritten = TempPath(name + ".rewritten");
    ASSERT_TRUE(WriteFile(rewritten, WriteMetadataPickle(*parsed)));
    add({rewritten, "--reference", fixture, "--version", "1.0.0"});
  }
  PythonResult r = RunCheck(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// The checker can fail: a wrong value, and a type PyTorch's writer uses but
// ours must not (a pathlib checkpoint_id), are both reported.
TEST(MetadataPicklePythonTest, CheckerDetectsMismatches) {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign("w", TensorStorageMetadata{{}, {2, 3}, {{{0, 0}, {2, 3}}}});
  m.version = "1.0.0";
  Metadata wrong = m;
  std::get<TensorStorageMetadata>(*wrong.state_dict_metadata.Find("w")).chunks[0].sizes = {2, 2};
  std::vector<std::string> args = WriteCase("mismatch", m, MetadataJson(wrong));

  std::optional<std::string> fixture = ReadFixture("tp2d_4rank.metadata");
  ASSERT_TRUE(fixture.has_value());
  absl::StatusOr<Metadata> parsed = ParseMetadataPickle(*fixture);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::string json_path = TempPath("fixture.json");
  ASSERT_TRUE(WriteFile(json_path, MetadataJson(*parsed)));
  args.push_back(RunfilePath("api/pickle/testdata/tp2d_4rank.metadata"));
  args.push_back(json_path);

  PythonResult r = RunCheck(args);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "mismatch.metadata: canonical forms differ")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "storage_meta.checkpoint_id: expected str, found PosixPath")) << r.output;
}

}  // namespace
}  // namespace dcplan
