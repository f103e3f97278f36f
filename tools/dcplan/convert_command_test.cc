#include "tools/dcplan/convert_command.h"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/internal/torch_compat.h"
#include "api/state_dict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"
#include "tools/dcplan/convert_archive.h"
#include "tools/dcplan/convert_pickle.h"

namespace dcplan::tools {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string FixtureDir(const std::string& name) { return test_files::RunfilePath("api/testdata/fixtures/" + name); }

std::string TempPath(const std::string& name) { return test_files::NewTempPath(name); }

// The file's bytes ("" when it cannot be read).
std::string ReadBytes(const std::string& path) { return test_files::ReadFile(path).value_or(""); }

void WriteBytes(const std::string& path, const std::string& bytes) { test_files::WriteFile(path, bytes); }

struct CommandRun {
  int status;
  std::string out;
  std::string err;
};

CommandRun Convert(std::vector<std::string> args) {
  CommandRun run;
  run.status = ConvertMain(args, &run.out, &run.err);
  return run;
}

// Python's torch.load of `pt` through convert_check.py: its exit status and
// standard output (value and container lines).
std::pair<int, std::string> PythonCheck(const std::string& pt, const std::string& expected = "") {
  const std::string output = TempPath("python_output");
  const std::string command = absl::StrCat(test_files::VenvPython(), " '", test_files::RunfilePath("tools/dcplan/convert_check.py"), "' '", pt,
                                           "' ", expected.empty() ? "" : "'" + expected + "'", " >'", output,
                                           "' 2>&1");
  const int status = std::system(command.c_str());
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return {code, ReadBytes(output)};
}

// Everything in a checkpoint, loaded without a template and flattened.
FlatStateDict<StateValue> LoadAll(const std::string& dir) {
  StateDict loaded;
  SingleProcessCoordinator coordinator;
  FileSystemReader reader(dir);
  EmptyStateDictLoadPlanner planner;
  absl::Status status = Load(loaded, reader, coordinator, &planner);
  EXPECT_TRUE(status.ok()) << dir << ": " << status;
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(loaded);
  EXPECT_TRUE(flat.ok()) << flat.status();
  return flat.ok() ? *std::move(flat) : FlatStateDict<StateValue>();
}

std::vector<std::string> CheckpointKeys(const std::string& dir) {
  FileSystemReader reader(dir);
  absl::StatusOr<Metadata> metadata = reader.ReadMetadata();
  EXPECT_TRUE(metadata.ok()) << metadata.status();
  std::vector<std::string> keys;
  if (metadata.ok()) {
    for (const auto& entry : metadata->state_dict_metadata) keys.push_back(entry.first);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

bool BitwiseEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor x = a.contiguous();
  const at::Tensor y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

// The pickle of a saved value in the canonical form (so that archives
// written by Python and by dcplan compare by value).
std::string CanonicalPickle(const std::string& archive) {
  absl::StatusOr<std::unique_ptr<convert::MemoryArchive>> opened = convert::MemoryArchive::Open(archive);
  if (!opened.ok()) return absl::StrCat("<", opened.status().message(), ">");
  convert::PyGraph graph;
  absl::StatusOr<const convert::PyNode*> root = convert::ParsePickle(
      (*opened)->data_pkl(), graph,
      [](const convert::PyNode&, const std::string&, int64_t) -> absl::StatusOr<int64_t> { return 0; });
  if (!root.ok()) return absl::StrCat("<", root.status().message(), ">");
  absl::StatusOr<std::string> pickle =
      convert::EmitPickle(**root, [](const convert::PyNode&) -> absl::StatusOr<std::string> { return "s"; });
  return pickle.ok() ? *pickle : absl::StrCat("<", pickle.status().message(), ">");
}

// Same keys; tensors bitwise equal; other values equal.
void ExpectSameContent(const FlatStateDict<StateValue>& expected, const FlatStateDict<StateValue>& actual) {
  ASSERT_EQ(expected.values.size(), actual.values.size());
  for (const auto& [key, want] : expected.values) {
    const StateDict* got = actual.values.Find(key);
    ASSERT_NE(got, nullptr) << key;
    if (!want.is_leaf() || !got->is_leaf()) {
      // A list or mapping saved whole (a list of ints loads as a list).
      absl::StatusOr<c10::IValue> want_value = ToIValue(want);
      absl::StatusOr<c10::IValue> got_value = ToIValue(*got);
      ASSERT_TRUE(want_value.ok() && got_value.ok()) << key;
      EXPECT_TRUE(*want_value == *got_value) << key;
      continue;
    }
    const at::Tensor* want_tensor = PlainTensorOf(*want.leaf());
    const at::Tensor* got_tensor = PlainTensorOf(*got->leaf());
    if (want_tensor != nullptr) {
      ASSERT_NE(got_tensor, nullptr) << key;
      EXPECT_TRUE(BitwiseEqual(*want_tensor, *got_tensor)) << key;
    } else if (const auto* saved = std::get_if<SavedObject>(want.leaf())) {
      const auto* got_saved = std::get_if<SavedObject>(got->leaf());
      ASSERT_NE(got_saved, nullptr) << key;
      EXPECT_EQ(CanonicalPickle(saved->archive), CanonicalPickle(got_saved->archive)) << key;
    } else {
      const auto* got_value = std::get_if<c10::IValue>(got->leaf());
      ASSERT_NE(got_value, nullptr) << key;
      EXPECT_TRUE(std::get<c10::IValue>(*want.leaf()) == *got_value) << key;
    }
  }
}

// --- Round trips -------------------------------------------------------------------

class FixtureConvertTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureConvertTest, RoundTripIsBitwiseAndPythonReadsTheExpectedValues) {
  const std::string fixture = FixtureDir(GetParam());
  const std::string first = TempPath("first.pt");
  const std::string copy = TempPath("copy");
  const std::string second = TempPath("second.pt");
  CommandRun run = Convert({fixture, first});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("converted DCP checkpoint"));
  EXPECT_FALSE(fs::exists(first + ".tmp"));
  run = Convert({"--quiet", first, copy});
  ASSERT_EQ(run.status, 0) << run.err;
  run = Convert({copy, second});
  ASSERT_EQ(run.status, 0) << run.err;

  EXPECT_EQ(ReadBytes(first), ReadBytes(second));
  EXPECT_EQ(CheckpointKeys(copy), CheckpointKeys(fixture));
  ExpectSameContent(LoadAll(fixture), LoadAll(copy));

  // PyTorch reads the file as the nested dict with the fixture's values.
  auto [status, output] = PythonCheck(first, FixtureDir(GetParam() + ".expected.txt"));
  EXPECT_EQ(status, 0) << output;
  if (GetParam() == "fsdp2_toy") {
    EXPECT_THAT(output, HasSubstr("container ema list"));
    EXPECT_THAT(output, HasSubstr("container optim.param_groups list"));
    EXPECT_THAT(output, HasSubstr("container model.layers.0.attn.qkv dict"));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureConvertTest, ::testing::Values("fsdp2_toy", "tp2d_4rank"));

// A checkpoint dcplan saved: sharded, non-contiguous, empty and 0-d tensors,
// and values LibTorch pickles (int lists, tuples, None).
StateDict DcplanStateDict() {
  at::manual_seed(7);
  const at::Tensor w = at::randn({6, 4});
  ShardedTensorValue sharded{{6, 4}, c10::ScalarType::Float, {{w.slice(0, 0, 4), {0, 0}}, {w.slice(0, 4, 6), {4, 0}}}};
  return Dict({
      {"model", Dict({{"w", Value(std::move(sharded))},
                      {"t", Value(at::arange(12, at::kDouble).reshape({3, 4}).t())},
                      {"half", Value(at::randn({5}).to(at::kBFloat16))},
                      {"mask", Value(at::randn({7}) > 0)},
                      {"empty", Value(at::zeros({0, 3}))},
                      {"scale", Value(at::scalar_tensor(2.5, at::kDouble))}})},
      {"ema", List({Value(at::ones({2}, at::kInt)), Value(at::full({3}, -1, at::kLong))})},
      {"step", Value(c10::IValue(int64_t{7}))},
      {"name", Value(c10::IValue(std::string("dcplan")))},
      {"shape", Value(c10::IValue(c10::List<int64_t>({3, 4, 5})))},
      {"pair", Value(c10::IValue(c10::ivalue::Tuple::create({c10::IValue(1.5), c10::IValue(true)})))},
      {"nothing", Value(c10::IValue())},
  });
}

TEST(ConvertTest, DcplanCheckpointRoundTrip) {
  const std::string dir = TempPath("dcplan_ckpt");
  {
    FileSystemWriter writer(dir);
    SingleProcessCoordinator coordinator;
    absl::StatusOr<Metadata> saved = Save(DcplanStateDict(), writer, coordinator);
    ASSERT_TRUE(saved.ok()) << saved.status();
  }
  const std::string first = TempPath("first.pt");
  const std::string copy = TempPath("copy");
  const std::string second = TempPath("second.pt");
  CommandRun run = Convert({dir, first});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("8 tensors"));
  EXPECT_THAT(run.out, HasSubstr("5 other values"));
  ASSERT_EQ(Convert({first, copy}).status, 0);
  ASSERT_EQ(Convert({copy, second}).status, 0);
  EXPECT_EQ(ReadBytes(first), ReadBytes(second));
  EXPECT_EQ(CheckpointKeys(copy), CheckpointKeys(dir));
  ExpectSameContent(LoadAll(dir), LoadAll(copy));

  auto [status, output] = PythonCheck(first);
  ASSERT_EQ(status, 0) << output;
  for (const char* line : {"object step int 7", "object name str 'dcplan'", "object shape list [3, 4, 5]",
                           "object pair tuple (1.5, True)", "object nothing NoneType None",
                           "tensor model.w shape=[6, 4] dtype=float32", "tensor model.t shape=[4, 3] dtype=float64",
                           "tensor model.empty shape=[0, 3] dtype=float32", "tensor model.scale shape=[] dtype=float64",
                           "tensor model.mask shape=[7] dtype=bool", "tensor ema.1 shape=[3] dtype=int64",
                           "container ema list"}) {
    EXPECT_THAT(output, HasSubstr(line));
  }
}

int Python(const std::string& arguments) {
  const std::string log = TempPath("python_log");
  const std::string command = absl::StrCat(test_files::VenvPython(), " '", test_files::RunfilePath("tools/dcplan/convert_check.py"), "' ",
                                           arguments, " >'", log, "' 2>&1");
  const int status = std::system(command.c_str());
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0) ADD_FAILURE() << "python " << arguments << ":\n" << ReadBytes(log);
  return code;
}

// A file Python wrote the way training code does (memo references, an
// OrderedDict with _metadata, tensors sharing a storage, Python-only values).
TEST(ConvertTest, PythonWrittenFileRoundTrips) {
  const std::string original = TempPath("python.pt");
  ASSERT_EQ(Python(absl::StrCat("--write-sample '", original, "'")), 0);
  const std::string dir = TempPath("python_dcp");
  const std::string back = TempPath("back.pt");
  CommandRun run = Convert({original, dir});
  ASSERT_EQ(run.status, 0) << run.err;
  run = Convert({dir, back});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(Python(absl::StrCat("--compare '", original, "' '", back, "'")), 0);
  const std::vector<std::string> keys = CheckpointKeys(dir);
  for (const char* key : {"model.0.weight", "model.1.running_mean", "model.1.num_batches_tracked",
                          "optim.state.0.exp_avg", "optim.param_groups.0.lr", "tied.a", "tied.b", "tied.transposed",
                          "tied.rows", "blob", "pair", "set", "big"}) {
    EXPECT_THAT(keys, ::testing::Contains(key));
  }
}

// The dtypes PyTorch 2.x added, which torch.save writes with
// _rebuild_tensor_v3 over an untyped storage: converted both ways, bitwise
// (PyTorch's torch.load(weights_only=True) compares the original and the
// round trip); LibTorch 1.13 lacks them and refuses each by key and dtype.
TEST(ConvertTest, TheDTypesOfPyTorch2RoundTripBitwise) {
  const std::string original = TempPath("new_dtypes.pt");
  ASSERT_EQ(Python(absl::StrCat("--write-new-dtypes '", original, "'")), 0);
  const std::string dir = TempPath("new_dtypes_dcp");
  CommandRun run = Convert({original, dir});
#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
  ASSERT_EQ(run.status, 0) << run.err;
  const FlatStateDict<StateValue> loaded = LoadAll(dir);
  const std::vector<std::pair<std::string, c10::ScalarType>> expected = {
      {"u16", c10::kUInt16},           {"u32", c10::kUInt32},
      {"u64", c10::kUInt64},           {"f8.e4m3fn", c10::kFloat8_e4m3fn},
      {"f8.e5m2_view", c10::kFloat8_e5m2}, {"f8.e4m3fnuz", c10::kFloat8_e4m3fnuz},
      {"f8.e5m2fnuz", c10::kFloat8_e5m2fnuz}, {"plain", c10::kInt}};
  for (const auto& [key, dtype] : expected) {
    const StateDict* value = loaded.values.Find(key);
    ASSERT_NE(value, nullptr) << key;
    ASSERT_TRUE(value->is_leaf()) << key;
    const at::Tensor* tensor = PlainTensorOf(*value->leaf());
    ASSERT_NE(tensor, nullptr) << key;
    EXPECT_EQ(tensor->scalar_type(), dtype) << key;
  }
  const std::string back = TempPath("new_dtypes_back.pt");
  run = Convert({dir, back});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(Python(absl::StrCat("--compare --weights-only '", original, "' '", back, "'")), 0);
#else
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("u16"));
  EXPECT_THAT(run.err, HasSubstr("dtype uint16 is not supported by this LibTorch"));
#endif
}

// --- --keys ------------------------------------------------------------------------

TEST(ConvertTest, KeysSelectAKeyOrADottedPrefixInBothDirections) {
  const std::string subset = TempPath("subset.pt");
  CommandRun run = Convert({"--keys", "model.embed,ema", "--keys=extra.epoch", FixtureDir("fsdp2_toy"), subset});
  ASSERT_EQ(run.status, 0) << run.err;
  const std::string subset_dir = TempPath("subset");
  ASSERT_EQ(Convert({subset, subset_dir}).status, 0);
  EXPECT_EQ(CheckpointKeys(subset_dir),
            (std::vector<std::string>{"ema.0", "ema.1", "extra.epoch", "model.embed.weight"}));

  const std::string whole = TempPath("whole.pt");
  ASSERT_EQ(Convert({FixtureDir("fsdp2_toy"), whole}).status, 0);
  const std::string groups = TempPath("groups");
  run = Convert({"--keys", "optim.param_groups.0,model.scale", whole, groups});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(CheckpointKeys(groups),
            (std::vector<std::string>{"model.scale", "optim.param_groups.0.betas", "optim.param_groups.0.lr",
                                      "optim.param_groups.0.params", "optim.param_groups.0.weight_decay"}));
}

TEST(ConvertTest, AKeyThatSelectsNothingIsAUsageError) {
  const std::string out = TempPath("none.pt");
  CommandRun run = Convert({"--keys", "model,modle.embed", FixtureDir("fsdp2_toy"), out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("modle.embed matches no key"));
  EXPECT_FALSE(fs::exists(out));

  const std::string whole = TempPath("whole.pt");
  ASSERT_EQ(Convert({FixtureDir("tp2d_4rank"), whole}).status, 0);
  const std::string dir = TempPath("none_dir");
  run = Convert({"--keys", "layer.w", whole, dir});  // a prefix of "layer.w1" as a string, not as a path
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("layer.w matches no key"));
  EXPECT_FALSE(fs::exists(dir));
}

// --- Arguments ---------------------------------------------------------------------

TEST(ConvertTest, BadArgumentsAreUsageErrors) {
  const std::string fixture = FixtureDir("fsdp2_toy");
  const std::string out = TempPath("out.pt");
  EXPECT_EQ(Convert({}).status, 2);
  EXPECT_EQ(Convert({fixture}).status, 2);
  EXPECT_EQ(Convert({fixture, out, "third"}).status, 2);
  CommandRun run = Convert({"--frobnicate", fixture, out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown option \"--frobnicate\""));
  EXPECT_THAT(run.err, HasSubstr("usage: dcplan convert"));
  EXPECT_EQ(Convert({fixture, out, "--keys"}).status, 2);
  run = Convert({"--keys", "a,,b", fixture, out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("empty key"));

  run = Convert({TempPath("missing"), out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("no such file or directory"));
  const std::string plain_dir = TempPath("plain_dir");
  fs::create_directories(plain_dir);
  run = Convert({plain_dir, out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("without .metadata"));
  EXPECT_FALSE(fs::exists(out));

  run = Convert({"--help"});
  EXPECT_EQ(run.status, 0);
  EXPECT_THAT(run.out, HasSubstr("usage: dcplan convert"));
}

TEST(ConvertTest, AnExistingOutputIsReplacedOnlyWithOverwrite) {
  const std::string fixture = FixtureDir("tp2d_4rank");
  const std::string out = TempPath("existing.pt");
  WriteBytes(out, "keep me");
  CommandRun run = Convert({fixture, out});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("already exists"));
  EXPECT_EQ(ReadBytes(out), "keep me");
  const std::string a_directory = TempPath("a_directory");
  fs::create_directories(a_directory);
  EXPECT_EQ(Convert({"--overwrite", fixture, a_directory}).status, 2);
  ASSERT_EQ(Convert({"--overwrite", fixture, out}).status, 0);
  EXPECT_NE(ReadBytes(out), "keep me");

  // .pt -> an existing directory: a checkpoint may be replaced (its unused
  // data files go), another directory may not.
  const std::string checkpoint = TempPath("four_ranks");
  fs::copy(fixture, checkpoint);
  EXPECT_EQ(Convert({out, checkpoint}).status, 2);
  ASSERT_EQ(Convert({"--overwrite", out, checkpoint}).status, 0);
  EXPECT_TRUE(fs::exists(checkpoint + "/__0_0.distcp"));
  EXPECT_FALSE(fs::exists(checkpoint + "/__3_0.distcp"));
  ExpectSameContent(LoadAll(fixture), LoadAll(checkpoint));
  const std::string other = TempPath("other");
  fs::create_directories(other);
  WriteBytes(other + "/notes.txt", "mine");
  run = Convert({"--overwrite", out, other});
  EXPECT_EQ(run.status, 2);
  EXPECT_THAT(run.err, HasSubstr("refusing to replace"));
  EXPECT_EQ(ReadBytes(other + "/notes.txt"), "mine");
}

// --- Broken inputs -----------------------------------------------------------------

std::string CopyOfFixture(const std::string& name) {
  const std::string dir = TempPath(name);
  fs::copy(FixtureDir(name), dir);
  for (const auto& file : fs::directory_iterator(dir)) {
    fs::permissions(file.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  return dir;
}

TEST(ConvertTest, ATruncatedDataFileFailsAndLeavesNoOutput) {
  const std::string dir = CopyOfFixture("fsdp2_toy");
  fs::resize_file(dir + "/__1_0.distcp", fs::file_size(dir + "/__1_0.distcp") / 2);
  const std::string out = TempPath("broken.pt");
  CommandRun run = Convert({dir, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("__1_0.distcp"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(ConvertTest, ACorruptMetadataFileFails) {
  const std::string dir = CopyOfFixture("tp2d_4rank");
  WriteBytes(dir + "/.metadata", "\x80\x04garbage");
  const std::string out = TempPath("broken.pt");
  CommandRun run = Convert({dir, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr(".metadata"));
  EXPECT_FALSE(fs::exists(out));
}

TEST(ConvertTest, ATruncatedOrForeignTorchSaveFileFailsAndLeavesNoCheckpoint) {
  const std::string whole = TempPath("whole.pt");
  ASSERT_EQ(Convert({FixtureDir("fsdp2_toy"), whole}).status, 0);
  const std::string bytes = ReadBytes(whole);
  const std::string truncated = TempPath("truncated.pt");
  WriteBytes(truncated, bytes.substr(0, bytes.size() * 6 / 10));
  const std::string out = TempPath("out_dir");
  CommandRun run = Convert({truncated, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr(truncated));
  EXPECT_FALSE(fs::exists(out));

  const std::string text = TempPath("notes.txt");
  WriteBytes(text, "not an archive");
  run = Convert({text, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("not a torch.save archive"));
  EXPECT_FALSE(fs::exists(out));

  // A torch.save file of a list, not of a dict.
  const std::vector<char> list_archive = torch::jit::pickle_save(c10::IValue(c10::List<int64_t>({1, 2})));
  const std::string list_file = TempPath("list.pt");
  WriteBytes(list_file, std::string(list_archive.begin(), list_archive.end()));
  run = Convert({list_file, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("not a dict"));
  EXPECT_FALSE(fs::exists(out));
}

TEST(ConvertTest, AStorageRecordOfTheWrongSizeIsRefused) {
  // A dict holding one float tensor of 4 elements whose record holds 3.
  std::string pickle = "\x80\x02}";
  auto text = [&pickle](const std::string& value) {
    pickle += 'X';
    for (int i = 0; i < 4; ++i) pickle += static_cast<char>((value.size() >> (8 * i)) & 0xff);
    pickle += value;
  };
  text("w");
  pickle += "ctorch._utils\n_rebuild_tensor_v2\n((";
  text("storage");
  pickle += "ctorch\nFloatStorage\n";
  text("0");
  text("cpu");
  pickle += "K\x04tQK";
  pickle += '\0';
  pickle += "K\x04\x85K\x01\x85\x89";
  pickle += "ccollections\nOrderedDict\n)RtRs.";
  const std::string three_floats(12, '\0');
  absl::StatusOr<std::string> archive = convert::WriteArchiveToString(pickle, {{"data/0", three_floats}});
  ASSERT_TRUE(archive.ok()) << archive.status();
  const std::string file = TempPath("short.pt");
  WriteBytes(file, *archive);
  const std::string out = TempPath("short_dir");
  CommandRun run = Convert({file, out});
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("data/0"));
  EXPECT_FALSE(fs::exists(out));

  // The same pickle with a record of the right size converts.
  archive = convert::WriteArchiveToString(pickle, {{"data/0", std::string(16, '\0')}});
  ASSERT_TRUE(archive.ok());
  WriteBytes(file, *archive);
  run = Convert({"--overwrite", file, out});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(CheckpointKeys(out), std::vector<std::string>{"w"});
}

}  // namespace
}  // namespace dcplan::tools
