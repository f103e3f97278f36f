// Save and Load through SafetensorsWriter / SafetensorsReader: a 4-rank save
// (dim-0, dim-1 and 2-D block shards, replicated tensors, several files) is
// byte-identical to a 1-process save of the full tensors; the checkpoint
// loads bitwise onto 1, 3 and 8 ranks with other shardings; failures leave
// nothing that looks like a checkpoint.
#include "api/safetensors/storage.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "api/checkpoint_test_util.h"
#include "api/failing_planner_test_util.h"
#include "api/coordinator.h"
#include "api/dtype_conversion.h"
#include "api/planners.h"
#include "api/safetensors/format.h"
#include "api/state_dict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dcplan::safetensors {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::dcplan::testing_util;  // NOLINT

// The full tensors of the test model, by name.
std::map<std::string, at::Tensor> FullModel() {
  return {
      {"layers.0.fsdp", Patterned(at::kFloat, {8, 6}, 1)},      // dim-0 shards
      {"layers.0.col", Patterned(at::kFloat, {6, 8}, 2)},       // dim-1 shards
      {"layers.1.block", Patterned(at::kBFloat16, {8, 12}, 3)}, // 2x2 blocks
      {"embed", Patterned(at::kHalf, {5, 4}, 4)},               // replicated
      {"bias", Patterned(at::kLong, {7}, 5)},                   // replicated
      {"mask", Patterned(at::kBool, {3, 3}, 6)},                // replicated
      {"scale", Patterned(at::kDouble, {}, 7)},                 // replicated scalar
      {"empty", Patterned(at::kInt, {0, 4}, 8)},                // replicated, no elements
  };
}

// The box [offsets, offsets + sizes) of `full` as a local shard.
LocalShard Piece(const at::Tensor& full, Shape offsets, Shape sizes) {
  at::Tensor view = full;
  for (size_t d = 0; d < offsets.size(); ++d) {
    view = view.slice(static_cast<int64_t>(d), offsets[d], offsets[d] + sizes[d]);
  }
  return LocalShard{view.clone(), std::move(offsets)};
}

// `full` split along `dim` into `world` near-equal pieces (torch.chunk
// style); a rank past the last piece holds none.
StateDict SplitAlong(const at::Tensor& full, int64_t dim, int64_t world, int64_t rank, bool zero = false) {
  ShardedTensorValue sharded{full.sizes().vec(), full.scalar_type(), {}};
  const int64_t extent = full.size(dim);
  const int64_t step = (extent + world - 1) / world;
  const int64_t begin = std::min(extent, step * rank), end = std::min(extent, begin + step);
  if (end > begin) {
    Shape offsets(full.dim(), 0), sizes = full.sizes().vec();
    offsets[dim] = begin;
    sizes[dim] = end - begin;
    LocalShard piece = Piece(full, offsets, sizes);
    if (zero) piece.tensor.zero_();
    sharded.local_shards.push_back(std::move(piece));
  }
  return Value(std::move(sharded));
}

// What rank `rank` of 4 saves.
StateDict SaveSide(const std::map<std::string, at::Tensor>& model, int64_t rank) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const auto& [name, full] : model) {
    if (name == "layers.0.fsdp") {
      entries.emplace_back(name, SplitAlong(full, 0, 4, rank));
    } else if (name == "layers.0.col") {
      entries.emplace_back(name, SplitAlong(full, 1, 4, rank));
    } else if (name == "layers.1.block") {
      ShardedTensorValue sharded{full.sizes().vec(), full.scalar_type(), {}};
      sharded.local_shards.push_back(Piece(full, {4 * (rank / 2), 6 * (rank % 2)}, {4, 6}));
      entries.emplace_back(name, Value(std::move(sharded)));
    } else {
      entries.emplace_back(name, Value(full.clone()));
    }
  }
  return Dict(std::move(entries));
}

SafetensorsWriterOptions SmallShards() {
  SafetensorsWriterOptions options;
  options.layout.max_shard_bytes = 200;
  options.sync_files = false;
  return options;
}

void SaveOnRanks(int64_t world, const std::function<StateDict(int64_t)>& side, const std::string& dir,
                 const SafetensorsWriterOptions& options) {
  InProcessGroup group(world);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    SafetensorsWriter writer(dir, options);
    return Save(side(rank), writer, coordinator).status();
  });
  for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
}

TEST(SafetensorsStorageTest, FourRankSaveIsByteIdenticalToASingleProcessSave) {
  const auto model = FullModel();
  const std::string sharded_dir = NewTempPath("st_four"), single_dir = NewTempPath("st_one");
  SaveOnRanks(4, [&](int64_t rank) { return SaveSide(model, rank); }, sharded_dir, SmallShards());
  SaveOnRanks(
      1,
      [&](int64_t) {
        std::vector<std::pair<std::string, StateDict>> entries;
        for (const auto& [name, full] : model) entries.emplace_back(name, Value(full));
        return Dict(std::move(entries));
      },
      single_dir, SmallShards());
  const std::vector<std::string> names = ListDir(sharded_dir);
  ASSERT_GT(names.size(), 3u);  // several files and the index
  EXPECT_EQ(names, ListDir(single_dir));
  EXPECT_EQ(names.back(), "model.safetensors.index.json");
  for (const std::string& name : names) {
    EXPECT_EQ(ReadFile(sharded_dir + "/" + name), ReadFile(single_dir + "/" + name)) << name;
  }
  // Every stored tensor holds the full tensor's bytes.
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(sharded_dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_TRUE(IndexProblems(*checkpoint).empty());
  for (const FileHeader& file : checkpoint->files) {
    const std::string bytes = *ReadFile(sharded_dir + "/" + file.name);
    for (const TensorEntry& t : file.header.tensors) {
      EXPECT_EQ(bytes.substr(file.header.data_start + t.begin, t.bytes()), TensorBytes(model.at(t.name))) << t.name;
    }
  }
}

// Rank `rank` of `world` wants every tensor with a sharding other than the
// saved one: dim-0 tensors by columns, column-sharded ones by rows, the
// blocks along dim 0, replicated ones whole.
StateDict LoadSide(const std::map<std::string, at::Tensor>& model, int64_t world, int64_t rank) {
  std::vector<std::pair<std::string, StateDict>> entries;
  for (const auto& [name, full] : model) {
    if (name == "layers.0.fsdp") {
      entries.emplace_back(name, SplitAlong(full, 1, world, rank, /*zero=*/true));
    } else if (name == "layers.0.col" || name == "layers.1.block") {
      entries.emplace_back(name, SplitAlong(full, 0, world, rank, /*zero=*/true));
    } else {
      entries.emplace_back(name, Value(at::zeros_like(full)));
    }
  }
  return Dict(std::move(entries));
}

void ExpectLoaded(const StateDict& loaded, const std::map<std::string, at::Tensor>& model, int64_t rank) {
  for (const auto& [name, full] : model) {
    const StateDict* entry = loaded.FindEntry(name);
    ASSERT_NE(entry, nullptr) << name;
    const StateValue& value = *entry->leaf();
    if (const at::Tensor* tensor = std::get_if<at::Tensor>(&value)) {
      EXPECT_TRUE(BitwiseEqual(*tensor, full)) << name << " on rank " << rank;
      continue;
    }
    for (const LocalShard& shard : std::get<ShardedTensorValue>(value).local_shards) {
      EXPECT_TRUE(BitwiseEqual(shard.tensor, Piece(full, shard.offsets, shard.tensor.sizes().vec()).tensor))
          << name << " on rank " << rank;
    }
  }
}

// Loads `dir` onto 1, 3 and 8 ranks, rank r of a world wanting
// side(world, r), and checks every piece against `model`.
void ExpectLoadsOntoOneThreeAndEight(const std::string& dir, const std::map<std::string, at::Tensor>& model,
                                     const std::function<StateDict(int64_t, int64_t)>& side) {
  for (int64_t world : {1, 3, 8}) {
    std::vector<StateDict> loaded(world);
    for (int64_t r = 0; r < world; ++r) loaded[r] = side(world, r);
    InProcessGroup group(world);
    std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
      SafetensorsReader reader(dir);
      return Load(loaded[rank], reader, coordinator);
    });
    for (int64_t r = 0; r < world; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << "world " << world << " rank " << r << ": " << statuses[r];
      ExpectLoaded(loaded[r], model, r);
    }
  }
}

TEST(SafetensorsStorageTest, LoadsOntoOneThreeAndEightRanksBitwise) {
  const auto model = FullModel();
  const std::string dir = NewTempPath("st_reshard");
  SaveOnRanks(4, [&](int64_t rank) { return SaveSide(model, rank); }, dir, SmallShards());
  ExpectLoadsOntoOneThreeAndEight(dir, model, [&](int64_t world, int64_t r) { return LoadSide(model, world, r); });
}

TEST(SafetensorsStorageTest, LoadsIntoOtherDtypesAndNonContiguousDestinations) {
  const at::Tensor w = Patterned(at::kFloat, {4, 6}, 9);
  const std::string dir = NewTempPath("st_convert");
  SaveOnRanks(1, [&](int64_t) { return Dict({{"w", Value(w)}}); }, dir, SmallShards());
  EXPECT_THAT(ListDir(dir), ElementsAre("model.safetensors"));
  at::Tensor as_double = at::zeros({4, 6}, at::kDouble);
  at::Tensor transposed = at::zeros({6, 4}, at::kFloat).t();
  for (const at::Tensor& destination : {as_double, transposed}) {
    StateDict sd = Dict({{"w", Value(destination)}});
    SafetensorsReader reader(dir);
    SingleProcessCoordinator coordinator;
    ASSERT_TRUE(Load(sd, reader, coordinator).ok());
    EXPECT_TRUE(at::equal(destination.to(at::kFloat), w));
  }
}

TEST(SafetensorsStorageTest, NonTensorValuesAreRefusedByNameOrSkipped) {
  const std::string dir = NewTempPath("st_values");
  StateDict sd = Dict({{"w", Value(at::ones({2}))}, {"step", Value(c10::IValue(5))},
                       {"opt", Dict({{"lr", Value(c10::IValue(0.1))}})}});
  SingleProcessCoordinator coordinator;
  {
    SafetensorsWriter writer(dir, SmallShards());
    absl::StatusOr<Metadata> saved = Save(sd, writer, coordinator);
    ASSERT_FALSE(saved.ok());
    EXPECT_THAT(saved.status().message(), AllOf(HasSubstr("not tensors: opt.lr, step"),
                                                HasSubstr("skip_non_tensor_values")));
    EXPECT_TRUE(ListDir(dir).empty());
  }
  SafetensorsWriterOptions options = SmallShards();
  options.skip_non_tensor_values = true;
  SafetensorsWriter writer(dir, options);
  absl::StatusOr<Metadata> saved = Save(sd, writer, coordinator);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_THAT(ListDir(dir), ElementsAre("model.safetensors"));
  EXPECT_EQ(saved->state_dict_metadata.size(), 1u);
}

TEST(SafetensorsStorageTest, AFailedSaveLeavesNoFilesAndKeepsThePreviousCheckpoint) {
  const auto model = FullModel();
  const std::string dir = NewTempPath("st_fail");
  SaveOnRanks(4, [&](int64_t rank) { return SaveSide(model, rank); }, dir, SmallShards());
  const std::vector<std::string> before = ListDir(dir);
  std::map<std::string, std::optional<std::string>> bytes_before;
  for (const std::string& name : before) bytes_before[name] = ReadFile(dir + "/" + name);

  SafetensorsWriterOptions options = SmallShards();
  options.overwrite = true;
  options.layout.max_shard_bytes = 1000;
  InProcessGroup group(4);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    SafetensorsWriter writer(dir, options);
    FailOnRankSavePlanner planner(2);
    return Save(SaveSide(model, rank), writer, coordinator, &planner).status();
  });
  for (const absl::Status& status : statuses) {
    ASSERT_FALSE(status.ok());
    EXPECT_THAT(status.message(), AllOf(HasSubstr("rank 2"), HasSubstr("device lost"), HasSubstr(".safetensors")));
  }
  EXPECT_EQ(ListDir(dir), before);
  for (const std::string& name : before) EXPECT_EQ(ReadFile(dir + "/" + name), bytes_before[name]) << name;
}

// Records the order in which a rank's items are resolved (= written).
class RecordingSavePlanner : public DefaultSavePlanner {
 public:
  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    resolved.push_back(item.index.fqn);
    return DefaultSavePlanner::ResolveData(item);
  }
  std::vector<std::string> resolved;
};

TEST(SafetensorsStorageTest, RanksOfAMultiFileSaveStartOnDifferentFiles) {
  const auto model = FullModel();
  const std::string dir = NewTempPath("st_rotate");
  constexpr int64_t kWorld = 4;
  std::vector<RecordingSavePlanner> planners(kWorld);
  InProcessGroup group(kWorld);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    SafetensorsWriter writer(dir, SmallShards());
    return Save(SaveSide(model, rank), writer, coordinator, &planners[rank]).status();
  });
  for (const absl::Status& status : statuses) ASSERT_TRUE(status.ok()) << status;
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const int64_t files = static_cast<int64_t>(checkpoint->files.size());
  ASSERT_EQ(files, 5);  // [bias embed empty] [layers.0.col] [layers.0.fsdp] [layers.1.block] [mask scale]
  std::map<std::string, int64_t> file_of;
  for (int64_t f = 0; f < files; ++f) {
    for (const TensorEntry& t : checkpoint->files[f].header.tensors) file_of[t.name] = f;
  }
  for (int64_t rank = 0; rank < kWorld; ++rank) {
    const int64_t first = rank * files / kWorld;
    std::vector<int64_t> turns;  // files in the order the rank wrote them, counted from its first file
    for (const std::string& name : planners[rank].resolved) turns.push_back((file_of.at(name) - first + files) % files);
    EXPECT_TRUE(std::is_sorted(turns.begin(), turns.end())) << "rank " << rank;
    // Ranks 1-3 hold a shard of the tensor in their first file.
    if (rank > 0) {
      ASSERT_FALSE(turns.empty());
      EXPECT_EQ(turns.front(), 0) << "rank " << rank << " started with " << planners[rank].resolved.front();
    }
  }
}

TEST(SafetensorsStorageTest, AnExistingCheckpointIsReplacedOnlyWithOverwrite) {
  const std::string dir = NewTempPath("st_overwrite");
  SingleProcessCoordinator coordinator;
  StateDict sd = Dict({{"a", Value(at::ones({100}))}, {"b", Value(at::ones({100}))}});
  {
    SafetensorsWriter writer(dir, SmallShards());
    ASSERT_TRUE(Save(sd, writer, coordinator).ok());
  }
  EXPECT_EQ(ListDir(dir).size(), 3u);
  SafetensorsWriter refused(dir, SmallShards());
  EXPECT_THAT(Save(sd, refused, coordinator).status().message(), HasSubstr("already holds a safetensors checkpoint"));
  SafetensorsWriterOptions options = SmallShards();
  options.overwrite = true;
  options.layout.max_shard_bytes = 10000;
  SafetensorsWriter writer(dir, options);
  ASSERT_TRUE(Save(sd, writer, coordinator).ok());
  EXPECT_THAT(ListDir(dir), ElementsAre("model.safetensors"));
}

TEST(SafetensorsStorageTest, DtypesThisLibTorchLacksAreNamedOnLoad) {
  const std::string dir = NewTempPath("st_fp8");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::vector<TensorEntry> tensors = {{"fp8.w", DType::kFloat8E4M3FN, {2}, 0, 2}};
  ASSERT_TRUE(WriteFile(dir + "/model.safetensors", SerializeHeader(tensors, {{"format", "pt"}}) + "ab"));
  StateDict sd = Dict({{"fp8.w", Value(at::zeros({2}, at::kFloat))}});
  SafetensorsReader reader(dir);
  SingleProcessCoordinator coordinator;
  const absl::Status loaded = Load(sd, reader, coordinator);
  if (ScalarTypeFromDType(DType::kFloat8E4M3FN).ok()) {
    EXPECT_TRUE(loaded.ok()) << loaded;
  } else {
    EXPECT_THAT(loaded.message(),
                AllOf(HasSubstr("'fp8.w'"), HasSubstr("model.safetensors"), HasSubstr("F8_E4M3"),
                      HasSubstr("no LibTorch scalar type")));
  }
}

// --- Python's view ------------------------------------------------------------------

// {name: {"dtype", "shape", "hex"}} of `model`, written to `path`.
void WriteExpectation(const std::map<std::string, at::Tensor>& model, const std::string& path) {
  nlohmann::json expected = nlohmann::json::object();
  for (const auto& [name, tensor] : model) {
    expected[name] = {{"dtype", *NameOfDType(*DTypeFromScalarType(tensor.scalar_type()))},
                      {"shape", tensor.sizes().vec()},
                      {"hex", absl::BytesToHexString(TensorBytes(tensor))}};
  }
  ASSERT_TRUE(WriteFile(path, expected.dump()));
}

std::map<std::string, at::Tensor> ReadExpectation(const std::string& path) {
  const nlohmann::json expected = nlohmann::json::parse(ReadFile(path).value_or("{}"));
  std::map<std::string, at::Tensor> model;
  for (const auto& [name, entry] : expected.items()) {
    const DType dtype = *DTypeFromName(entry["dtype"].get<std::string>());
    at::Tensor tensor = at::empty(entry["shape"].get<std::vector<int64_t>>(),
                                  at::TensorOptions().dtype(*ScalarTypeFromDType(dtype)));
    const std::string bytes = absl::HexStringToBytes(entry["hex"].get<std::string>());
    EXPECT_EQ(bytes.size(), static_cast<size_t>(tensor.numel() * tensor.element_size())) << name;
    std::memcpy(tensor.data_ptr(), bytes.data(), std::min<size_t>(bytes.size(), tensor.numel() * tensor.element_size()));
    model[name] = tensor;
  }
  return model;
}

std::string VenvPython() { return RunfilePath("external/dcplan_venv/python"); }

TEST(SafetensorsStorageTest, AStandardLibraryPythonReaderSeesEveryTensor) {
  const auto model = FullModel();
  const std::string dir = NewTempPath("st_stdlib");
  SaveOnRanks(4, [&](int64_t rank) { return SaveSide(model, rank); }, dir, SmallShards());
  WriteExpectation(model, dir + ".expected.json");
  const std::string command = absl::StrCat("/usr/bin/python3 '", RunfilePath("api/safetensors/testdata/read_stdlib.py"),
                                           "' '", dir, "' '", dir, ".expected.json'");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

TEST(SafetensorsStorageTest, PyTorchReadsDcplansCheckpointAndDcplanReadsHuggingFaces) {
  // dcplan's 4-rank save, read by safetensors.safe_open and by PyTorch's
  // HuggingFaceStorageReader (float8 etc. left out: Python compares bytes
  // through torch dtypes both sides know).
  auto model = FullModel();
  const std::string dir = NewTempPath("st_torch");
  SaveOnRanks(4, [&](int64_t rank) { return SaveSide(model, rank); }, dir, SmallShards());
  WriteExpectation(model, dir + ".expected.json");
  const std::string script = RunfilePath("api/safetensors/testdata/interop_torch.py");
  std::string command = absl::StrCat("'", VenvPython(), "' '", script, "' check '", dir, "' '", dir, ".expected.json'");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;

  // A checkpoint written by the safetensors library (2 files and an index,
  // as transformers writes them) loads onto 1, 3 and 8 ranks bitwise.
  const std::string theirs = NewTempPath("st_theirs");
  command = absl::StrCat("'", VenvPython(), "' '", script, "' write '", theirs, "' '", theirs, ".expected.json'");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const std::map<std::string, at::Tensor> written = ReadExpectation(theirs + ".expected.json");
  ASSERT_EQ(written.size(), 5u);
  ExpectLoadsOntoOneThreeAndEight(theirs, written, [&](int64_t world, int64_t r) {
    std::vector<std::pair<std::string, StateDict>> entries;
    for (const auto& [name, full] : written) {
      entries.emplace_back(name, full.dim() == 2 ? SplitAlong(full, r % 2, world, r, /*zero=*/true)
                                                 : Value(at::zeros_like(full)));
    }
    return Dict(std::move(entries));
  });
}

}  // namespace
}  // namespace dcplan::safetensors
