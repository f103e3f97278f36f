// Writes the seed corpus of codec_fuzzer: the encodings of small, valid plans
// and metadata, each prefixed with codec_fuzzer's selector byte (the kind's
// position: 0 SavePlan, 1 LoadPlan, 2 Metadata, 3 SavePlan list, 4 LoadPlan
// list), and near-canonical messages the decoders must reject (one
// non-canonical detail each, so that the fuzz replay reaches every
// canonicality check). Run once; its output is committed under
// fuzz/corpus/codec/:
//
//   bazel run //fuzz:codec_seed_generator -- "$PWD/fuzz/corpus/codec"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/codec.h"
#include "fuzz/codec_near_canonical.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan::fuzzing {
namespace {

WriteItem ShardItem(const std::string& fqn, Shape offsets, Shape sizes, Shape global, DType dtype) {
  WriteItem item;
  item.index = MetadataIndex{fqn, offsets, std::nullopt};
  item.type = WriteItemType::kShard;
  item.tensor_data = TensorWriteData{ChunkBox{std::move(offsets), std::move(sizes)}, TensorProperties{dtype},
                                     std::move(global)};
  return item;
}

WriteItem BytesItem(const std::string& fqn, std::optional<int64_t> nbytes) {
  WriteItem item;
  item.index.fqn = fqn;
  item.type = WriteItemType::kByteIO;
  item.bytes_io_nbytes = nbytes;
  return item;
}

FlattenMapping Mapping() {
  FlattenMapping mapping;
  mapping.InsertOrAssign("layers.0.w", ObjectPath{std::string("layers"), int64_t{0}, std::string("w")});
  mapping.InsertOrAssign("step", ObjectPath{std::string("step")});
  return mapping;
}

SavePlan RankPlan(int64_t rank) {
  SavePlan plan;
  plan.items.push_back(ShardItem("layers.0.w", {4 * rank, 0}, {4, 4}, {8, 4}, DType::kFloat32));
  WriteItem whole = ShardItem("norm", {0}, {4}, {4}, DType::kBFloat16);
  whole.type = WriteItemType::kTensor;
  whole.index.index = 0;
  plan.items.push_back(whole);
  WriteItem scalar = ShardItem("scalar", {}, {}, {}, DType::kInt64);
  scalar.type = WriteItemType::kTensor;
  plan.items.push_back(scalar);
  plan.items.push_back(BytesItem("step", rank == 0 ? std::optional<int64_t>(12) : std::nullopt));
  plan.planner_data = Mapping();
  if (rank == 1) plan.storage_data = "__1_";
  return plan;
}

ReadItem TensorRead(const std::string& fqn, Shape dest_offsets, Shape storage_offsets, Shape lengths, int64_t hint) {
  ReadItem item;
  item.type = LoadItemType::kTensor;
  item.dest_index = MetadataIndex{fqn, Shape(lengths.size(), 0), 0};
  item.dest_offsets = std::move(dest_offsets);
  item.storage_index = MetadataIndex{fqn, Shape{4 * hint, 0}, hint};
  item.storage_offsets = std::move(storage_offsets);
  item.lengths = std::move(lengths);
  return item;
}

LoadPlan RankLoadPlan(int64_t rank) {
  LoadPlan plan;
  plan.items.push_back(TensorRead("layers.0.w", {0, 0}, {0, 2 * rank}, {4, 2}, 0));
  plan.items.push_back(TensorRead("layers.0.w", {4, 0}, {0, 2 * rank}, {4, 2}, 1));
  ReadItem bytes;
  bytes.type = LoadItemType::kByteIO;
  bytes.dest_index.fqn = "step";
  bytes.storage_index.fqn = "step";
  bytes.dest_offsets = bytes.storage_offsets = bytes.lengths = Shape{0};
  plan.items.push_back(bytes);
  if (rank == 0) plan.planner_data = Mapping();
  return plan;
}

Metadata SmallMetadata(bool full) {
  Metadata metadata;
  metadata.state_dict_metadata.InsertOrAssign(
      "layers.0.w",
      TensorStorageMetadata{TensorProperties{DType::kFloat32}, {8, 4}, {{{0, 0}, {4, 4}}, {{4, 0}, {4, 4}}}});
  metadata.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata());
  if (!full) return metadata;
  metadata.state_dict_metadata.InsertOrAssign(
      "scalar", TensorStorageMetadata{TensorProperties{DType::kInt64, Layout::kStrided, true}, {}, {{{}, {}}}});
  metadata.planner_data = Mapping();
  StorageData storage;
  storage.InsertOrAssign(MetadataIndex{"layers.0.w", Shape{0, 0}, std::nullopt}, StorageInfo{"__0_0.distcp", 0, 64});
  storage.InsertOrAssign(MetadataIndex{"layers.0.w", Shape{4, 0}, std::nullopt}, StorageInfo{"__1_0.distcp", 0, 64});
  storage.InsertOrAssign(MetadataIndex{"step", std::nullopt, std::nullopt},
                         StorageInfo{"__0_0.distcp", 64, 12, std::vector<std::string>{"zstd"}});
  metadata.storage_data = storage;
  metadata.storage_meta = StorageMeta{"ckpt/step_1", "save-1", std::nullopt, {"model"}};
  metadata.version = "1.0.0";
  return metadata;
}

bool WriteSeed(const std::string& dir, const std::string& name, char selector, const std::string& message) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.put(selector);
  out << message;
  return static_cast<bool>(out);
}

}  // namespace
}  // namespace dcplan::fuzzing

int main(int argc, char** argv) {
  using namespace dcplan;
  using namespace dcplan::fuzzing;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  SavePlan cached;
  cached.usable = false;
  const std::vector<SavePlan> save_plans = {RankPlan(0), RankPlan(1)};
  const std::vector<LoadPlan> load_plans = {RankLoadPlan(0), RankLoadPlan(1)};
  const bool ok = WriteSeed(dir, "save_plan_empty", 0, EncodeSavePlan(SavePlan())) &&
                  WriteSeed(dir, "save_plan_unusable", 0, EncodeSavePlan(cached)) &&
                  WriteSeed(dir, "save_plan_rank1", 0, EncodeSavePlan(RankPlan(1))) &&
                  WriteSeed(dir, "load_plan_empty", 1, EncodeLoadPlan(LoadPlan())) &&
                  WriteSeed(dir, "load_plan_rank0", 1, EncodeLoadPlan(RankLoadPlan(0))) &&
                  WriteSeed(dir, "metadata_small", 2, EncodeMetadata(SmallMetadata(false))) &&
                  WriteSeed(dir, "metadata_full", 2, EncodeMetadata(SmallMetadata(true))) &&
                  WriteSeed(dir, "save_plans_two_ranks", 3, EncodeSavePlans(save_plans)) &&
                  WriteSeed(dir, "save_plans_none", 3, EncodeSavePlans({})) &&
                  WriteSeed(dir, "load_plans_two_ranks", 4, EncodeLoadPlans(load_plans)) &&
                  // Selector 5+: the message goes to every decoder.
                  WriteSeed(dir, "any_kind_metadata", 5, EncodeMetadata(SmallMetadata(true)));
  bool near_ok = true;
  for (const NearCanonical& seed : NearCanonicalMessages()) {
    near_ok = near_ok && WriteSeed(dir, seed.name, seed.selector, seed.message);
  }
  if (!ok || !near_ok) {
    std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
