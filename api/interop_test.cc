// Interoperability with PyTorch: checkpoints PyTorch wrote (fixtures) load
// with dcplan, whole or resharded; checkpoints dcplan writes load in Python
// the way PyTorch's FileSystemReader loads them.
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/checkpoint.h"
#include "api/checkpoint_test_util.h"
#include "api/coordinator.h"
#include "api/dtype_conversion.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using namespace testing_util;  // NOLINT

std::string TorchDtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kComplexFloat: return "complex64";
    case at::kComplexDouble: return "complex128";
    default: return "unknown";
  }
}

// --- PyTorch-written fixtures ------------------------------------------------------

std::string FixtureDir(const std::string& name) { return RunfilePath("api/testdata/fixtures/" + name); }

std::vector<std::string> ExpectedLines(const std::string& name) {
  std::optional<std::string> text = ReadFile(FixtureDir(name + ".expected.txt"));
  EXPECT_TRUE(text.has_value()) << name;
  std::vector<std::string> lines = absl::StrSplit(text.value_or(""), '\n', absl::SkipEmpty());
  std::sort(lines.begin(), lines.end());
  return lines;
}

// "<python type> <repr>" of a torch.save archive, as Python's torch.load
// reads it, or "<python failed: ...>".
std::string PythonTypeAndReprOfArchive(absl::string_view archive) {
  const std::string input_path = NewTempPath("archive");
  const std::string output_path = NewTempPath("repr");
  if (!WriteFile(input_path, archive)) return "<cannot write the archive>";
  const std::string command = absl::StrCat(
      VenvPython(),
      " -c 'import io,sys,torch; v=torch.load(io.BytesIO(sys.stdin.buffer.read()), weights_only=False); "
      "print(type(v).__name__, repr(v))' <'",
      input_path, "' >'", output_path, "' 2>&1");
  const int status = std::system(command.c_str());
  std::string output = ReadFile(output_path).value_or("");
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::StrCat("<python failed: ", output, ">");
  }
  if (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

std::string TensorLine(const std::string& fqn, const at::Tensor& t) {
  return absl::StrCat("tensor ", fqn, " shape=[", absl::StrJoin(t.sizes(), ", "), "] dtype=",
                      TorchDtypeName(t.scalar_type()), " sha256=", Sha256Hex(TensorBytes(t)).substr(0, 16));
}

std::string ObjectLine(const std::string& fqn, const StateDict& value) {
  if (value.is_leaf()) {
    if (const auto* saved = std::get_if<SavedObject>(value.leaf())) {
      return absl::StrCat("object ", fqn, " ", PythonTypeAndReprOfArchive(saved->archive));
    }
  }
  absl::StatusOr<c10::IValue> ivalue = ToIValue(value);
  if (!ivalue.ok()) return absl::StrCat("object ", fqn, " <", ivalue.status().message(), ">");
  auto repr = PythonTypeAndRepr(*ivalue);
  if (!repr) return absl::StrCat("object ", fqn, " <unprintable ", ivalue->tagKind(), ">");
  return absl::StrCat("object ", fqn, " ", repr->first, " ", repr->second);
}

// The expected.txt lines of a loaded state dict, sorted; `tensors`
// overrides the tensor of a key (reassembled shards).
std::vector<std::string> Lines(const StateDict& loaded) {
  std::vector<std::string> lines;
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(loaded);
  EXPECT_TRUE(flat.ok()) << flat.status();
  if (!flat.ok()) return lines;
  for (const auto& [key, value] : flat->values) {
    const at::Tensor* tensor = value.is_leaf() ? PlainTensorOf(*value.leaf()) : nullptr;
    lines.push_back(tensor != nullptr ? TensorLine(key, *tensor) : ObjectLine(key, value));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, LoadsWithoutATemplate) {
  StateDict loaded;
  SingleProcessCoordinator coordinator;
  FileSystemReader reader(FixtureDir(GetParam()));
  absl::StatusOr<Metadata> metadata = reader.ReadMetadata();
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EmptyStateDictLoadPlanner planner;
  absl::Status status = Load(loaded, reader, coordinator, &planner);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Lines(loaded), ExpectedLines(GetParam()));
}

// [start, end) of part `r` of `n` of a dim of `length`.
std::pair<int64_t, int64_t> Part(int64_t length, int64_t n, int64_t r) {
  const int64_t chunk = (length + n - 1) / n;
  const int64_t start = std::min(r * chunk, length);
  return {start, std::min(start + chunk, length)};
}

// Rank `rank` of `world`'s template for `metadata`: tensors of rank >= 1 as
// row shards, 0-d tensors whole, placeholders for values.
StateDict RowShardedTemplate(const Metadata& metadata, int64_t world, int64_t rank) {
  StateDict sd = StateDict::MakeMapping();
  for (const auto& [key, stored] : metadata.state_dict_metadata) {
    StateDict value = Value(c10::IValue(int64_t{-1}));
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&stored)) {
      const c10::ScalarType type = ScalarTypeFromDType(tensor->properties.dtype).value();
      if (tensor->size.empty()) {
        value = Value(at::zeros({}, type));
      } else {
        ShardedTensorValue sharded;
        sharded.global_shape = tensor->size;
        sharded.dtype = type;
        const auto [start, end] = Part(tensor->size[0], world, rank);
        Shape sizes = tensor->size;
        sizes[0] = end - start;
        Shape offsets(tensor->size.size(), 0);
        offsets[0] = start;
        if (end > start) sharded.local_shards.push_back(LocalShard{at::zeros(sizes, type), offsets});
        value = Value(sharded);
      }
    }
    const ObjectPath* path = metadata.planner_data ? metadata.planner_data->Find(key) : nullptr;
    EXPECT_NE(path, nullptr) << key;
    if (path != nullptr) {
      EXPECT_TRUE(SetElement(sd, *path, value).ok()) << key;
    }
  }
  return sd;
}

// Replaces every sharded tensor of rank 0's state dict by the global tensor
// assembled from all ranks' shards.
void Reassemble(std::vector<StateDict>& ranks, const Metadata& metadata) {
  for (const auto& [key, stored] : metadata.state_dict_metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
    if (tensor == nullptr || tensor->size.empty()) continue;
    const ObjectPath& path = *metadata.planner_data->Find(key);
    at::Tensor global = at::zeros(tensor->size, ScalarTypeFromDType(tensor->properties.dtype).value());
    for (StateDict& sd : ranks) {
      absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(sd);
      ASSERT_TRUE(flat.ok());
      const auto& sharded = std::get<ShardedTensorValue>(*flat->values.Find(key)->leaf());
      for (const LocalShard& shard : sharded.local_shards) {
        global.slice(0, shard.offsets[0], shard.offsets[0] + shard.tensor.size(0)).copy_(shard.tensor);
      }
    }
    ASSERT_TRUE(SetElement(ranks[0], path, Value(global)).ok());
  }
}

TEST_P(FixtureTest, LoadsResharded) {
  FileSystemReader metadata_reader(FixtureDir(GetParam()));
  absl::StatusOr<Metadata> metadata = metadata_reader.ReadMetadata();
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  constexpr int64_t kWorld = 3;
  std::vector<StateDict> ranks;
  for (int64_t r = 0; r < kWorld; ++r) ranks.push_back(RowShardedTemplate(*metadata, kWorld, r));
  InProcessGroup group(kWorld);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    FileSystemReader reader(FixtureDir(GetParam()));
    return Load(ranks[rank], reader, coordinator);
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  Reassemble(ranks, *metadata);
  EXPECT_EQ(Lines(ranks[0]), ExpectedLines(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(PyTorchCheckpoints, FixtureTest, ::testing::Values("fsdp2_toy", "tp2d_4rank"));

// The archive of a SavedObject leaf at `key` of a flattened state dict, or
// nullopt.
std::optional<std::string> SavedArchive(const StateDict& sd, const std::string& key) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(sd);
  if (!flat.ok()) return std::nullopt;
  const StateDict* value = flat->values.Find(key);
  if (value == nullptr || !value->is_leaf()) return std::nullopt;
  const auto* saved = std::get_if<SavedObject>(value->leaf());
  if (saved == nullptr) return std::nullopt;
  return saved->archive;
}

absl::Status LoadWhole(const std::string& dir, StateDict& sd) {
  SingleProcessCoordinator coordinator;
  FileSystemReader reader(dir);
  EmptyStateDictLoadPlanner planner;
  return Load(sd, reader, coordinator, &planner);
}

// A value LibTorch cannot build (Python bytes) survives load, save and load
// byte for byte, and Python still reads it from dcplan's checkpoint.
TEST(SavedObjectTest, PythonBytesRoundTripThroughDcplan) {
  StateDict loaded;
  ASSERT_TRUE(LoadWhole(FixtureDir("fsdp2_toy"), loaded).ok());
  const std::optional<std::string> original = SavedArchive(loaded, "extra.rng_state");
  ASSERT_TRUE(original.has_value());

  const std::string dir = NewTempPath("resaved");
  SingleProcessCoordinator coordinator;
  FileSystemWriter writer(dir);
  absl::StatusOr<Metadata> saved = Save(loaded, writer, coordinator);
  ASSERT_TRUE(saved.ok()) << saved.status();

  StateDict reloaded;
  absl::Status status = LoadWhole(dir, reloaded);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(SavedArchive(reloaded, "extra.rng_state"), original);
  EXPECT_EQ(Lines(reloaded), ExpectedLines("fsdp2_toy"));

  // The BYTE_IO slice dcplan wrote, read by Python's torch.load.
  ASSERT_TRUE(saved->storage_data.has_value());
  MetadataIndex index;
  index.fqn = "extra.rng_state";
  const StorageInfo* info = saved->storage_data->Find(index);
  ASSERT_NE(info, nullptr);
  const std::optional<std::string> file = ReadFile(dir + "/" + info->relative_path);
  ASSERT_TRUE(file.has_value());
  ASSERT_LE(info->offset + info->length, static_cast<int64_t>(file->size()));
  const std::string slice = file->substr(static_cast<size_t>(info->offset), static_cast<size_t>(info->length));
  EXPECT_EQ(slice, *original);
  EXPECT_EQ(PythonTypeAndReprOfArchive(slice), "bytes b'\\x00\\x01\\x02dcp-bytes\\xff'");
}

// --- Python reads what dcplan writes -----------------------------------------------

std::string JsonNumber(double v) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.17g", v);
  return buffer;
}

// {"dtype", "shape", "values"} of a tensor for check_checkpoint.py.
std::string TensorJson(const at::Tensor& t) {
  const at::Tensor flat = t.contiguous().reshape({-1});
  std::vector<std::string> values;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const at::Tensor element = flat[i];
    if (t.is_complex()) {
      const at::Tensor pair = at::view_as_real(element.to(at::kComplexDouble));
      values.push_back(absl::StrCat("[", JsonNumber(pair[0].item<double>()), ", ",
                                    JsonNumber(pair[1].item<double>()), "]"));
    } else if (t.scalar_type() == at::kBool) {
      values.push_back(element.item<bool>() ? "true" : "false");
    } else if (t.is_floating_point()) {
      values.push_back(JsonNumber(element.item<double>()));
    } else {
      values.push_back(absl::StrCat(element.item<int64_t>()));
    }
  }
  return absl::StrCat("{\"dtype\": \"", TorchDtypeName(t.scalar_type()), "\", \"shape\": [",
                      absl::StrJoin(t.sizes(), ", "), "], \"values\": [", absl::StrJoin(values, ", "), "]}");
}

TEST(PythonInteropTest, PyTorchsReaderLoadsEveryItem) {
  const std::string dir = NewTempPath("python");
  auto ranged = [](at::ScalarType type, at::IntArrayRef shape, double start) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    return at::arange(start, start + static_cast<double>(numel), at::kDouble).reshape(shape).to(type);
  };
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  double start = 0;
  for (at::ScalarType type : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kChar, at::kShort, at::kInt,
                              at::kLong, at::kByte, at::kComplexFloat, at::kComplexDouble}) {
    tensors.push_back({"t." + TorchDtypeName(type), ranged(type, {3, 4}, start - 5)});
    start += 3;
  }
  tensors.push_back({"t.bool", ranged(at::kLong, {7}, 0).remainder(3).eq(1)});
  tensors.push_back({"views.transposed", ranged(at::kFloat, {4, 6}, 0.5).t()});
  tensors.push_back({"views.narrowed", ranged(at::kDouble, {5, 7}, -3).narrow(1, 2, 3)});
  tensors.push_back({"scalar", ranged(at::kBFloat16, {}, 2.5)});
  tensors.push_back({"empty", ranged(at::kFloat, {0, 3}, 0)});

  const at::Tensor sharded_global = ranged(at::kFloat, {4, 3}, 100);
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("k", c10::IValue(int64_t{1}));
  InProcessGroup group(2);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    StateDict sd = StateDict::MakeMapping();
    for (const auto& [key, t] : tensors) {
      std::vector<std::string> parts = absl::StrSplit(key, '.');
      if (parts.size() == 1) {
        sd.AddEntry(key, Value(t));
      } else {
        StateDict* group_entry = sd.FindEntry(parts[0]);
        if (group_entry == nullptr) group_entry = sd.AddEntry(parts[0], StateDict::MakeMapping());
        group_entry->AddEntry(parts[1], Value(t));
      }
    }
    ShardedTensorValue sharded;
    sharded.global_shape = {4, 3};
    sharded.local_shards.push_back(LocalShard{sharded_global.slice(0, 2 * rank, 2 * rank + 2).clone(), {2 * rank, 0}});
    sd.AddEntry("sharded", Value(sharded));
    sd.AddEntry("step", Value(c10::IValue(int64_t{7})));
    sd.AddEntry("name", Value(c10::IValue(std::string("dcp"))));
    sd.AddEntry("lrs", Value(c10::IValue(c10::List<double>({0.5, 0.25}))));
    sd.AddEntry("pair", Value(c10::IValue(c10::ivalue::Tuple::create({c10::IValue(int64_t{1}),
                                                                       c10::IValue(std::string("a"))}))));
    sd.AddEntry("options", Value(c10::IValue(dict)));
    FileSystemWriter writer(dir);
    return Save(sd, writer, coordinator).status();
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;

  std::vector<std::string> tensor_json;
  for (const auto& [key, t] : tensors) tensor_json.push_back(absl::StrCat("\"", key, "\": ", TensorJson(t)));
  const std::string json = absl::StrCat(
      "{\"tensors\": {", absl::StrJoin(tensor_json, ", "),
      "}, \"objects\": {\"step\": \"7\", \"name\": \"'dcp'\", \"lrs\": \"[0.5, 0.25]\", \"pair\": \"(1, 'a')\", "
      "\"options\": \"{'k': 1}\"}}");
  const std::string json_path = dir + "/../python_expected.json";
  ASSERT_TRUE(WriteFile(json_path, json));
  const std::string output_path = dir + "/../python_output.txt";
  const std::string command =
      absl::StrCat(VenvPython(), " '", RunfilePath("api/testdata/check_checkpoint.py"), "' '",
                   RunfilePath("api/pickle/testdata/check_metadata.py"), "' '", dir, "' '", json_path, "' >'",
                   output_path, "' 2>&1");
  const int status = std::system(command.c_str());
  ASSERT_TRUE(status != -1 && WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(output_path).value_or("<no output>");
  EXPECT_THAT(ReadFile(output_path).value_or(""), ::testing::HasSubstr("items checked, 0 problems"));
}

}  // namespace
}  // namespace dcplan
