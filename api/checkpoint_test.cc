// Save() and Load() end to end: bitwise round trips of every dtype, resharding
// across world sizes, failures on one rank, PyTorch-written fixtures, and
// Python's view of what dcplan writes.
#include "api/checkpoint.h"

#include <sys/wait.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/checkpoint_test_util.h"
#include "api/failing_planner_test_util.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace testing_util;  // NOLINT

const std::vector<std::pair<std::string, at::ScalarType>>& AllDtypes() {
  static const auto* dtypes = new std::vector<std::pair<std::string, at::ScalarType>>{
      {"float32", at::kFloat}, {"float64", at::kDouble},  {"float16", at::kHalf},        {"bfloat16", at::kBFloat16},
      {"int8", at::kChar},     {"int16", at::kShort},     {"int32", at::kInt},          {"int64", at::kLong},
      {"uint8", at::kByte},    {"bool", at::kBool},       {"complex64", at::kComplexFloat},
      {"complex128", at::kComplexDouble}};
  return *dtypes;
}

std::string DtypeName(at::ScalarType type) {
  for (const auto& [name, t] : AllDtypes()) {
    if (t == type) return name;
  }
  return "unknown";
}

// A canonical text of a state dict's content: structure, IValues, tensors by
// dtype, sizes and a hash of their bytes (views and their contiguous copies
// alike). IValue lists and dicts are described like the nested values
// loading makes of them.
std::string Describe(const StateDict& sd) {
  switch (sd.kind()) {
    case NestedKind::kNone:
      return "None";
    case NestedKind::kMapping: {
      std::vector<std::string> parts;
      for (const auto& e : sd.entries()) parts.push_back(absl::StrCat(e.key, ": ", Describe(e.value)));
      return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
    }
    case NestedKind::kList: {
      std::vector<std::string> parts;
      for (const StateDict& item : sd.items()) parts.push_back(Describe(item));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
    case NestedKind::kLeaf:
      break;
  }
  if (const at::Tensor* t = PlainTensorOf(*sd.leaf())) {
    return absl::StrCat("tensor(", DtypeName(t->scalar_type()), ", [", absl::StrJoin(t->sizes(), ", "), "], ",
                        Sha256Hex(TensorBytes(*t)).substr(0, 16), ")");
  }
  const auto* value = std::get_if<c10::IValue>(sd.leaf());
  if (value == nullptr) return "sharded";
  if (value->isList() || value->isGenericDict()) {
    absl::StatusOr<StateDict> nested = FromIValue(*value);
    return nested.ok() ? Describe(*nested) : "unconvertible";
  }
  std::ostringstream os;
  os << value->tagKind() << ":" << *value;
  return os.str();
}

const StateDict& At(const StateDict& sd, const std::string& dotted) {
  const StateDict* node = &sd;
  for (absl::string_view part : absl::StrSplit(dotted, '.')) {
    if (node->is_list()) {
      node = &node->items().at(std::stoul(std::string(part)));
    } else {
      node = node->FindEntry(std::string(part));
      if (node == nullptr) {
        static const StateDict* none = new StateDict();
        return *none;
      }
    }
  }
  return *node;
}

at::Tensor TensorOf(const StateDict& sd, const std::string& dotted) {
  const StateDict& node = At(sd, dotted);
  if (!node.is_leaf() || PlainTensorOf(*node.leaf()) == nullptr) return at::Tensor();
  return *PlainTensorOf(*node.leaf());
}

// --- Single process: every dtype, views, 0-d, empty, nesting, values ---------------

// `fill` decides the tensor contents; the structure and views are the same
// for the original (patterned) and the template (zeros).
StateDict RichStateDict(bool zeros) {
  auto make = [zeros](at::ScalarType type, at::IntArrayRef shape, int seed) {
    return zeros ? at::zeros(shape, at::TensorOptions().dtype(type)) : Patterned(type, shape, seed);
  };
  std::vector<std::pair<std::string, StateDict>> dtypes;
  int seed = 1;
  for (const auto& [name, type] : AllDtypes()) dtypes.push_back({name, Value(make(type, {3, 5}, seed++))});
  const at::Tensor transposed_base = make(at::kFloat, {4, 6}, 40);
  const at::Tensor narrowed_base = make(at::kDouble, {5, 7}, 41);
  const at::Tensor strided_base = make(at::kBFloat16, {8, 3}, 42);
  auto values = [zeros](int64_t i, double d, const std::string& s) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    dict.insert("k", c10::IValue(zeros ? int64_t{0} : int64_t{11}));
    dict.insert("name", c10::IValue(zeros ? std::string("") : std::string("adam")));
    return Dict({
        {"int", Value(c10::IValue(i))},
        {"float", Value(c10::IValue(d))},
        {"str", Value(c10::IValue(s))},
        {"list", Value(c10::IValue(c10::List<int64_t>(zeros ? std::vector<int64_t>{0}
                                                            : std::vector<int64_t>{1, -2, 3})))},
        {"dict", Value(c10::IValue(dict))},
        {"tuple", Value(c10::IValue(c10::ivalue::Tuple::create(
                      {c10::IValue(i), c10::IValue(s), c10::IValue(d)})))},
    });
  };
  return Dict({
      {"dtypes", Dict(std::move(dtypes))},
      {"views", Dict({
                    {"transposed", Value(transposed_base.t())},
                    {"narrowed", Value(narrowed_base.narrow(1, 2, 3))},
                    {"strided", Value(strided_base.slice(0, 1, 8, 2))},
                })},
      {"scalar", Dict({{"f64", Value(make(at::kDouble, {}, 50))}, {"i64", Value(make(at::kLong, {}, 51))}})},
      {"empty", Dict({{"rows", Value(make(at::kFloat, {0, 4}, 52))}, {"cols", Value(make(at::kInt, {3, 0}, 53))}})},
      {"nested", Dict({
                     {"list", List({Value(make(at::kHalf, {2}, 60)), Dict({{"inner", Value(make(at::kLong, {2, 2}, 61))}}),
                                    Value(make(at::kComplexDouble, {3}, 62))})},
                     {"deep", Dict({{"a", Dict({{"b", Dict({{"c", Value(make(at::kShort, {4}, 63))}})}})}})},
                 })},
      {"values", zeros ? values(0, 0.0, "") : values(42, 0.1, "hello 'dcp'")},
      {"step", Value(c10::IValue(zeros ? int64_t{0} : int64_t{7}))},
  });
}

TEST(CheckpointTest, SingleProcessRoundTripKeepsEveryBit) {
  const std::string dir = NewTempPath("rich");
  const StateDict original = RichStateDict(/*zeros=*/false);
  SingleProcessCoordinator coordinator;
  FileSystemWriter writer(dir);
  absl::StatusOr<Metadata> saved = Save(original, writer, coordinator);
  ASSERT_TRUE(saved.ok()) << saved.status();

  StateDict loaded = RichStateDict(/*zeros=*/true);
  ASSERT_NE(Describe(loaded), Describe(original));
  const at::Tensor destination = TensorOf(loaded, "views.transposed");
  const void* destination_data = destination.data_ptr();
  FileSystemReader reader(dir);
  absl::Status status = Load(loaded, reader, coordinator);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Describe(loaded), Describe(original));
  for (const auto& [name, type] : AllDtypes()) {
    const std::string key = "dtypes." + name;
    EXPECT_TRUE(BitwiseEqual(TensorOf(loaded, key), TensorOf(original, key))) << key;
  }
  for (const std::string key : {"views.transposed", "views.narrowed", "views.strided", "scalar.f64", "scalar.i64",
                                "empty.rows", "empty.cols", "nested.list.0", "nested.list.1.inner",
                                "nested.list.2", "nested.deep.a.b.c"}) {
    EXPECT_TRUE(BitwiseEqual(TensorOf(loaded, key), TensorOf(original, key))) << key;
  }
  // Loaded in place: the caller's (non-contiguous) tensor object got the data.
  EXPECT_EQ(TensorOf(loaded, "views.transposed").data_ptr(), destination_data);
  EXPECT_FALSE(TensorOf(loaded, "views.transposed").is_contiguous());

  // Without a template: the same content, built from the checkpoint.
  StateDict rebuilt;
  EmptyStateDictLoadPlanner empty_planner;
  status = Load(rebuilt, reader, coordinator, &empty_planner);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Describe(rebuilt), Describe(original));

  // Save returns the metadata as committed, which is what a reader finds.
  absl::StatusOr<Metadata> read = reader.ReadMetadata();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, *saved);
  EXPECT_EQ(saved->version, "1.0.0");
  ASSERT_TRUE(saved->storage_meta.has_value());
  EXPECT_EQ(saved->storage_meta->checkpoint_id, dir);
}

// Load processes top-level keys sorted (PyTorch's order), but the caller's
// mapping keeps its order and its tensor objects.
class RecordingLoadPlanner : public DefaultLoadPlanner {
 public:
  absl::StatusOr<LoadPlan> CreateLocalPlan() override {
    absl::StatusOr<LoadPlan> plan = DefaultLoadPlanner::CreateLocalPlan();
    if (plan.ok()) {
      for (const ReadItem& item : plan->items) fqns.push_back(item.dest_index.fqn);
    }
    return plan;
  }
  std::vector<std::string> fqns;
};

TEST(CheckpointTest, LoadPlansSortedTopLevelKeysAndKeepsTheCallersOrder) {
  const std::string dir = NewTempPath("sorted");
  auto state = [](int64_t step, double scale) {
    return Dict({{"zeta", Value(at::full({2}, scale))},
                 {"alpha", Dict({{"w", Value(at::full({3}, 2 * scale))}})},
                 {"mid", Value(c10::IValue(step))}});
  };
  SingleProcessCoordinator coordinator;
  FileSystemWriter writer(dir);
  ASSERT_TRUE(Save(state(9, 1.5), writer, coordinator).ok());

  StateDict loaded = state(0, 0.0);
  const at::Tensor zeta = TensorOf(loaded, "zeta");
  FileSystemReader reader(dir);
  RecordingLoadPlanner planner;
  absl::Status status = Load(loaded, reader, coordinator, &planner);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(planner.fqns, ElementsAre("alpha.w", "mid", "zeta"));
  std::vector<std::string> keys;
  for (const auto& e : loaded.entries()) keys.push_back(e.key);
  EXPECT_THAT(keys, ElementsAre("zeta", "alpha", "mid"));
  EXPECT_TRUE(zeta.equal(at::full({2}, 1.5)));  // the caller's tensor object, filled in place
  EXPECT_TRUE(TensorOf(loaded, "alpha.w").equal(at::full({3}, 3.0)));
  EXPECT_EQ(std::get<c10::IValue>(*At(loaded, "mid").leaf()).toInt(), 9);
}

// --- Resharding across world sizes -------------------------------------------------

// [start, end) of part `r` of `n` of a dim of `length` (ceil-sized parts).
std::pair<int64_t, int64_t> Part(int64_t length, int64_t n, int64_t r) {
  const int64_t chunk = (length + n - 1) / n;
  const int64_t start = std::min(r * chunk, length);
  return {start, std::min(start + chunk, length)};
}

struct Globals {
  at::Tensor fsdp_w = Patterned(at::kFloat, {10, 6}, 1);
  at::Tensor fsdp_b = Patterned(at::kLong, {7}, 2);
  at::Tensor tp_w = Patterned(at::kBFloat16, {6, 8}, 3);
  at::Tensor bias = Patterned(at::kDouble, {5}, 4);
  at::Tensor scalar = Patterned(at::kInt, {}, 5);
};

// A sharded tensor holding the box [row range) x [col range) of `global`
// (a copy, or zeros for a load template); no shard when the box is empty.
ShardedTensorValue Block(const at::Tensor& global, std::pair<int64_t, int64_t> rows,
                         std::optional<std::pair<int64_t, int64_t>> cols, bool zeros) {
  ShardedTensorValue sharded;
  sharded.global_shape = global.sizes().vec();
  sharded.dtype = global.scalar_type();
  at::Tensor piece = global.slice(0, rows.first, rows.second);
  Shape offsets = {rows.first};
  if (cols) {
    piece = piece.slice(1, cols->first, cols->second);
    offsets.push_back(cols->first);
  }
  if (piece.numel() == 0) return sharded;
  sharded.local_shards.push_back(LocalShard{zeros ? at::zeros_like(piece) : piece.clone(), offsets});
  return sharded;
}

StateDict SaveSide(const Globals& g, int64_t rank) {
  // FSDP rows [0,3) [3,6) [6,10) and nothing on rank 3; a 2x2 grid for tp.w.
  const std::pair<int64_t, int64_t> fsdp_rows[4] = {{0, 3}, {3, 6}, {6, 10}, {10, 10}};
  const std::pair<int64_t, int64_t> grid_rows[2] = {{0, 4}, {4, 6}};
  const std::pair<int64_t, int64_t> grid_cols[2] = {{0, 3}, {3, 8}};
  ShardedTensorValue fsdp_w = Block(g.fsdp_w, fsdp_rows[rank], std::make_pair(int64_t{0}, int64_t{6}), false);
  if (rank == 3) {  // an explicitly empty shard, as FSDP holds one
    fsdp_w.local_shards.push_back(LocalShard{at::empty({0, 6}, at::kFloat), {10, 0}});
  }
  c10::impl::GenericDict meta(c10::StringType::get(), c10::AnyType::get());
  meta.insert("lr", c10::IValue(0.1));
  meta.insert("name", c10::IValue(std::string("run-7")));
  return Dict({
      {"fsdp", Dict({{"w", Value(fsdp_w)}, {"b", Value(Block(g.fsdp_b, Part(7, 4, rank), std::nullopt, false))}})},
      {"tp", Dict({{"w", Value(Block(g.tp_w, grid_rows[rank / 2], grid_cols[rank % 2], false))}})},
      {"rep", Dict({{"bias", Value(g.bias.clone())}, {"scalar", Value(g.scalar.clone())}})},
      {"step", Value(c10::IValue(int64_t{7}))},
      {"meta", Value(c10::IValue(meta))},
  });
}

// The load template of rank `rank` of `world`: columns of fsdp.w, rows of
// fsdp.b and rep.bias, a grid of blocks of tp.w.
StateDict LoadSide(const Globals& g, int64_t world, int64_t rank) {
  const std::map<int64_t, std::pair<int64_t, int64_t>> grids = {{1, {1, 1}}, {2, {2, 1}}, {3, {1, 3}}, {8, {2, 4}}};
  const auto [grid_rows, grid_cols] = grids.at(world);
  return Dict({
      {"fsdp", Dict({{"w", Value(Block(g.fsdp_w, {0, 10}, Part(6, world, rank), true))},
                     {"b", Value(Block(g.fsdp_b, Part(7, world, rank), std::nullopt, true))}})},
      {"tp", Dict({{"w", Value(Block(g.tp_w, Part(6, grid_rows, rank / grid_cols),
                                     Part(8, grid_cols, rank % grid_cols), true))}})},
      {"rep", Dict({{"bias", Value(Block(g.bias, Part(5, world, rank), std::nullopt, true))},
                    {"scalar", Value(at::zeros({}, at::kInt))}})},
      {"step", Value(c10::IValue(int64_t{0}))},
      {"meta", Value(c10::IValue())},
  });
}

// Every local shard of `loaded` equals the matching box of `global`.
void ExpectShardsMatch(const StateDict& loaded, const std::string& key, const at::Tensor& global, int64_t rank) {
  const auto* sharded = std::get_if<ShardedTensorValue>(At(loaded, key).leaf());
  ASSERT_NE(sharded, nullptr) << key;
  for (const LocalShard& shard : sharded->local_shards) {
    at::Tensor expected = global;
    for (size_t d = 0; d < shard.offsets.size(); ++d) {
      expected = expected.slice(static_cast<int64_t>(d), shard.offsets[d], shard.offsets[d] + shard.tensor.size(d));
    }
    EXPECT_TRUE(BitwiseEqual(shard.tensor, expected)) << key << " on rank " << rank;
  }
}

TEST(CheckpointTest, SavedFromFourRanksLoadsIntoOneTwoThreeAndEight) {
  const std::string dir = NewTempPath("reshard");
  const Globals g;
  {
    InProcessGroup group(4);
    std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
      FileSystemWriter writer(dir);
      return Save(SaveSide(g, rank), writer, coordinator).status();
    });
    for (size_t r = 0; r < statuses.size(); ++r) ASSERT_TRUE(statuses[r].ok()) << r << ": " << statuses[r];
  }
  EXPECT_THAT(ListDir(dir), ElementsAre(".dcplan_checksums", ".metadata", "__0_0.distcp", "__1_0.distcp",
                                        "__2_0.distcp", "__3_0.distcp"));
  for (int64_t world : {1, 2, 3, 8}) {
    std::vector<StateDict> loaded(world);
    for (int64_t r = 0; r < world; ++r) loaded[r] = LoadSide(g, world, r);
    InProcessGroup group(world);
    std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
      FileSystemReader reader(dir);
      return Load(loaded[rank], reader, coordinator);
    });
    for (int64_t r = 0; r < world; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << "world " << world << " rank " << r << ": " << statuses[r];
      ExpectShardsMatch(loaded[r], "fsdp.w", g.fsdp_w, r);
      ExpectShardsMatch(loaded[r], "fsdp.b", g.fsdp_b, r);
      ExpectShardsMatch(loaded[r], "tp.w", g.tp_w, r);
      ExpectShardsMatch(loaded[r], "rep.bias", g.bias, r);
      EXPECT_TRUE(BitwiseEqual(TensorOf(loaded[r], "rep.scalar"), g.scalar));
      EXPECT_EQ(std::get<c10::IValue>(*At(loaded[r], "step").leaf()).toInt(), 7);
      EXPECT_EQ(Describe(At(loaded[r], "meta")), Describe(At(SaveSide(g, 0), "meta")));
      EXPECT_THAT(Describe(At(loaded[r], "meta")), HasSubstr("name: String:run-7"));
    }
    // Every element of every tensor arrived somewhere: the shards tile it.
    int64_t tp_elements = 0;
    for (int64_t r = 0; r < world; ++r) {
      for (const LocalShard& s : std::get<ShardedTensorValue>(*At(loaded[r], "tp.w").leaf()).local_shards) {
        tp_elements += s.tensor.numel();
      }
    }
    EXPECT_EQ(tp_elements, 48) << "world " << world;
  }
}

// --- Failures on one rank ----------------------------------------------------------

std::vector<absl::Status> SaveOnFourRanks(const std::string& dir, const Globals& g, int64_t failing_rank,
                                          bool overwrite) {
  InProcessGroup group(4);
  return group.Run([&](int64_t rank, Coordinator& coordinator) {
    FileSystemWriterOptions options;
    options.overwrite = overwrite;
    FileSystemWriter writer(dir, options);
    FailOnRankSavePlanner planner(failing_rank);
    return Save(SaveSide(g, rank), writer, coordinator, &planner).status();
  });
}

TEST(CheckpointTest, AWriteFailureOnOneRankFailsEveryRankAndCommitsNothing) {
  const std::string dir = NewTempPath("write_failure");
  const Globals g;
  std::vector<absl::Status> statuses = SaveOnFourRanks(dir, g, /*failing_rank=*/1, /*overwrite=*/false);
  for (const absl::Status& status : statuses) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("checkpoint step 'write' failed on 1 of 4 ranks"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("rank 1: writing '"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("to __1_0.distcp.tmp: device lost"));
    EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("rank 1: rank 1")));
  }
  // No metadata, no data files, no temporaries: the directory is empty.
  EXPECT_THAT(ListDir(dir), ElementsAre());
}

TEST(CheckpointTest, AFailedOverwriteLeavesThePreviousCheckpointLoadable) {
  const std::string dir = NewTempPath("failed_overwrite");
  const Globals g;
  for (const absl::Status& s : SaveOnFourRanks(dir, g, /*failing_rank=*/-1, false)) ASSERT_TRUE(s.ok()) << s;
  const Globals other;  // same values: the point is which files survive
  std::map<std::string, std::string> before;
  for (const std::string& name : ListDir(dir)) before[name] = *ReadFile(dir + "/" + name);

  for (const absl::Status& s : SaveOnFourRanks(dir, other, /*failing_rank=*/2, /*overwrite=*/true)) {
    EXPECT_FALSE(s.ok());
  }
  std::map<std::string, std::string> after;
  for (const std::string& name : ListDir(dir)) after[name] = *ReadFile(dir + "/" + name);
  EXPECT_EQ(after, before);

  StateDict loaded = LoadSide(g, 1, 0);
  SingleProcessCoordinator coordinator;
  FileSystemReader reader(dir);
  absl::Status status = Load(loaded, reader, coordinator);
  ASSERT_TRUE(status.ok()) << status;
  ExpectShardsMatch(loaded, "tp.w", g.tp_w, 0);
}

TEST(CheckpointTest, APlanFailureOnOneRankIsReportedEverywhere) {
  const std::string dir = NewTempPath("plan_failure");
  InProcessGroup group(3);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    ShardedTensorValue w;
    w.global_shape = {6};
    w.local_shards.push_back(LocalShard{at::ones({2}), {rank == 2 ? int64_t{5} : 2 * rank}});  // rank 2: outside
    FileSystemWriter writer(dir);
    return Save(Dict({{"w", Value(w)}}), writer, coordinator).status();
  });
  for (const absl::Status& status : statuses) {
    EXPECT_THAT(std::string(status.message()), HasSubstr("checkpoint step 'plan' failed on 1 of 3 ranks"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("rank 2: "));
    EXPECT_THAT(std::string(status.message()), HasSubstr("'w'"));
  }
  EXPECT_FALSE(PathExistsForTest(dir + "/.metadata"));
}

TEST(CheckpointTest, AReadFailureSaysTensorsMayBePartlyLoaded) {
  const std::string dir = NewTempPath("read_failure");
  const Globals g;
  for (const absl::Status& s : SaveOnFourRanks(dir, g, -1, false)) ASSERT_TRUE(s.ok()) << s;
  const std::string victim = dir + "/__2_0.distcp";
  std::string bytes = *ReadFile(victim);
  ASSERT_TRUE(WriteFile(victim, bytes.substr(0, bytes.size() / 2)));

  std::vector<StateDict> loaded = {LoadSide(g, 2, 0), LoadSide(g, 2, 1)};
  InProcessGroup group(2);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    FileSystemReader reader(dir);
    return Load(loaded[rank], reader, coordinator);
  });
  for (const absl::Status& status : statuses) {
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("checkpoint step 'read' failed"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("__2_0.distcp"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("ends past the end of the file"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("tensors of this state dict may be partly loaded"));
  }
}

TEST(CheckpointTest, PlanCachingAcrossSavesWritesCompleteCheckpoints) {
  const std::string dir = NewTempPath("caching");
  const Globals g;
  InProcessGroup group(4);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    DefaultSavePlanner::Options options;
    options.enable_plan_caching = true;
    DefaultSavePlanner planner(options);
    FileSystemWriterOptions writer_options;
    writer_options.overwrite = true;
    for (int round = 0; round < 2; ++round) {
      FileSystemWriter writer(dir, writer_options);
      absl::StatusOr<Metadata> md = Save(SaveSide(g, rank), writer, coordinator, &planner);
      if (!md.ok()) return md.status();
    }
    return absl::OkStatus();
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  StateDict loaded = LoadSide(g, 1, 0);
  SingleProcessCoordinator coordinator;
  FileSystemReader reader(dir);
  ASSERT_TRUE(Load(loaded, reader, coordinator).ok());
  ExpectShardsMatch(loaded, "fsdp.w", g.fsdp_w, 0);
  ExpectShardsMatch(loaded, "tp.w", g.tp_w, 0);
}

}  // namespace
}  // namespace dcplan
