// ParseMetadataPickle on PyTorch-written fixtures, on every layout of spec
// §5.5 (built with py_builder.h), and its error messages.
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "api/pickle/metadata_pickle.h"
#include "api/pickle/py_builder.h"
#include "api/pickle/test_util.h"
#include "engine/metadata.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using namespace pickle_test;  // NOLINT: the builder vocabulary

const TensorStorageMetadata& Tensor(const Metadata& m, const std::string& fqn) {
  static const TensorStorageMetadata kMissing;
  const StorageMetadata* entry = m.state_dict_metadata.Find(fqn);
  if (entry == nullptr || !std::holds_alternative<TensorStorageMetadata>(*entry)) {
    ADD_FAILURE() << "no tensor " << fqn;
    return kMissing;
  }
  return std::get<TensorStorageMetadata>(*entry);
}

std::vector<std::string> Keys(const StateDictMetadata& sdm) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : sdm) keys.push_back(key);
  return keys;
}

// Facts read off `pickletools.dis` of the fixture (see the offsets quoted).
TEST(MetadataPickleFixtureTest, Tp2d4Rank) {
  std::optional<std::string> bytes = ReadFixture("tp2d_4rank.metadata");
  ASSERT_TRUE(bytes.has_value());
  absl::StatusOr<Metadata> m = ParseMetadataPickle(*bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Keys(m->state_dict_metadata),
            (std::vector<std::string>{"layer.w1", "layer.w2", "layer.tiny", "layer.ids", "layer.b1", "step",
                                      "info.mesh", "info.blob"}));
  // @95..582: float32, Size((8, 6)), four 4x3 blocks.
  const TensorStorageMetadata& w1 = Tensor(*m, "layer.w1");
  EXPECT_EQ(w1.properties, TensorProperties{});
  EXPECT_EQ(w1.size, (Shape{8, 6}));
  EXPECT_EQ(w1.chunks, (std::vector<ChunkBox>{{{0, 0}, {4, 3}}, {{0, 3}, {4, 3}}, {{4, 0}, {4, 3}}, {{4, 3}, {4, 3}}}));
  // @583..807: bfloat16 (memo 84), Size((5, 7)), uneven blocks.
  const TensorStorageMetadata& w2 = Tensor(*m, "layer.w2");
  EXPECT_EQ(w2.properties.dtype, DType::kBFloat16);
  EXPECT_EQ(w2.size, (Shape{5, 7}));
  ASSERT_EQ(w2.chunks.size(), 4u);
  EXPECT_EQ(w2.chunks[0], (ChunkBox{{0, 0}, {3, 4}}));
  EXPECT_EQ(w2.chunks[3], (ChunkBox{{3, 4}, {2, 3}}));
  // @1405: the 0-d step: Size(()) and one chunk with empty offsets and sizes.
  const TensorStorageMetadata& step = Tensor(*m, "step");
  EXPECT_EQ(step.properties.dtype, DType::kInt64);
  EXPECT_EQ(step.size, Shape{});
  EXPECT_EQ(step.chunks, (std::vector<ChunkBox>{{{}, {}}}));
  EXPECT_TRUE(std::holds_alternative<BytesStorageMetadata>(*m->state_dict_metadata.Find("info.mesh")));
  // @1509..1679: planner_data, e.g. 'step' -> ('step',) and 'info.blob' -> ('info', 'blob').
  ASSERT_TRUE(m->planner_data.has_value());
  EXPECT_EQ(m->planner_data->size(), 8u);
  EXPECT_EQ(*m->planner_data->Find("step"), (ObjectPath{std::string("step")}));
  EXPECT_EQ(*m->planner_data->Find("info.blob"), (ObjectPath{std::string("info"), std::string("blob")}));
  // @1680..3614: storage_data, 21 items in rank order.
  ASSERT_TRUE(m->storage_data.has_value());
  ASSERT_EQ(m->storage_data->size(), 21u);
  const auto& first = m->storage_data->at_position(0);
  EXPECT_TRUE(first.first.IdenticalTo(MetadataIndex{"layer.w1", Shape{0, 0}, 0}));
  EXPECT_EQ(first.second, (StorageInfo{"__0_0.distcp", 0, 747, std::nullopt}));
  const auto& last = m->storage_data->at_position(20);
  EXPECT_TRUE(last.first.IdenticalTo(MetadataIndex{"layer.ids", Shape{2, 2}, 3}));
  EXPECT_EQ(last.second, (StorageInfo{"__3_0.distcp", 3786, 747, std::nullopt}));
  const StorageInfo* mesh = m->storage_data->Find(MetadataIndex{"info.mesh", std::nullopt, std::nullopt});
  ASSERT_NE(mesh, nullptr);
  EXPECT_EQ(*mesh, (StorageInfo{"__3_0.distcp", 0, 431, std::nullopt}));
  // @3615..3784: StorageMeta(PosixPath('tp2d_4rank'), uuid, None, []); version None.
  ASSERT_TRUE(m->storage_meta.has_value());
  EXPECT_EQ(*m->storage_meta,
            (StorageMeta{"tp2d_4rank", "8914c27b-6cb9-4daf-b075-e352e896c710", std::nullopt, {}}));
  EXPECT_EQ(m->version, std::nullopt);
}

TEST(MetadataPickleFixtureTest, Fsdp2Toy) {
  std::optional<std::string> bytes = ReadFixture("fsdp2_toy.metadata");
  ASSERT_TRUE(bytes.has_value());
  absl::StatusOr<Metadata> m = ParseMetadataPickle(*bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->state_dict_metadata.size(), 22u);
  EXPECT_EQ(m->state_dict_metadata.at_position(0).first, "model.embed.weight");
  const TensorStorageMetadata& bias = Tensor(*m, "model.head.bias");  // one empty shard
  EXPECT_EQ(bias.chunks, (std::vector<ChunkBox>{{{0}, {1}}, {{1}, {0}}}));
  EXPECT_EQ(Tensor(*m, "model.buffers.flags").properties.dtype, DType::kBool);
  EXPECT_EQ(Tensor(*m, "model.scale").size, Shape{});
  // @3440: ('ema', 0) holds an int element; list index of param_groups too.
  EXPECT_EQ(*m->planner_data->Find("ema.0"), (ObjectPath{std::string("ema"), int64_t{0}}));
  EXPECT_EQ(*m->planner_data->Find("optim.param_groups.0.lr"),
            (ObjectPath{std::string("optim"), std::string("param_groups"), int64_t{0}, std::string("lr")}));
  EXPECT_EQ(*m->planner_data->Find("optim.state.model.embed.weight.step"),
            (ObjectPath{std::string("optim"), std::string("state"), std::string("model.embed.weight"),
                        std::string("step")}));
  ASSERT_EQ(m->storage_data->size(), 30u);
  // @4781: extra.tag at 2650, length 431; @5207: the empty bias shard at 6133, 683.
  EXPECT_EQ(*m->storage_data->Find(MetadataIndex{"extra.tag", std::nullopt, std::nullopt}),
            (StorageInfo{"__1_0.distcp", 2650, 431, std::nullopt}));
  EXPECT_EQ(*m->storage_data->Find(MetadataIndex{"model.head.bias", Shape{1}, std::nullopt}),
            (StorageInfo{"__1_0.distcp", 6133, 683, std::nullopt}));
  EXPECT_EQ(m->storage_meta->checkpoint_id, "fsdp2_toy");
}

// Written by PyTorch 2.13.0 under Python 3.11 (FileSystemWriter with
// _extensions=[ZStandard()]): version "1.0.0"; storage_meta with modules;
// _MEM_FORMAT_ENCODING pickled as builtins.getattr(enum, "TORCH_CONTIGUOUS_FORMAT");
// the 2.x dtypes; every item's transform_descriptors ["stream.zstd/1"].
TEST(MetadataPickleFixtureTest, PyTorch213Zstd) {
  std::optional<std::string> bytes = ReadFixture("pytorch213_zstd.metadata");
  ASSERT_TRUE(bytes.has_value());
  absl::StatusOr<Metadata> m = ParseMetadataPickle(*bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, "1.0.0");
  ASSERT_TRUE(m->storage_meta.has_value());
  EXPECT_EQ(m->storage_meta->checkpoint_id, "pt213");
  EXPECT_EQ(m->storage_meta->save_id, "a2953fd5-f825-47db-ae1f-593a74cc37cf");
  EXPECT_EQ(m->storage_meta->load_id, std::nullopt);
  EXPECT_TRUE(m->storage_meta->modules.empty());
  EXPECT_EQ(Keys(m->state_dict_metadata), (std::vector<std::string>{"w", "u16", "f8", "opt.step", "opt.betas"}));
  const TensorStorageMetadata& w = Tensor(*m, "w");  // a transposed 3x4 tensor
  EXPECT_EQ(w.properties, TensorProperties{});
  EXPECT_EQ(w.size, (Shape{4, 3}));
  EXPECT_EQ(Tensor(*m, "u16").properties.dtype, DType::kUInt16);
  EXPECT_EQ(Tensor(*m, "f8").properties.dtype, DType::kFloat8E4M3FN);
  const std::vector<std::string> zstd = {"stream.zstd/1"};
  EXPECT_EQ(*m->storage_data->Find(MetadataIndex{"opt.step", std::nullopt, std::nullopt}),
            (StorageInfo{"__0_0.distcp", 0, 452, zstd}));
  EXPECT_EQ(*m->storage_data->Find(MetadataIndex{"w", Shape{0, 0}, std::nullopt}),
            (StorageInfo{"__0_0.distcp", 922, 659, zstd}));
  EXPECT_EQ(*m->storage_data->Find(MetadataIndex{"f8", Shape{0}, std::nullopt}),
            (StorageInfo{"__0_0.distcp", 2218, 643, zstd}));
}

// spec §5.6: the worked example, object by object.
Py WorkedExample() {
  return MetadataOf({
      S("state_dict_metadata"),
      D({S("w"), TensorMeta(Props(), {2, 3}, {Chunk({0, 0}, {2, 3})}), S("step"), BytesMeta()}),
      S("planner_data"),
      D({S("w"), T({S("w")}), S("step"), T({S("step")})}),
      S("storage_data"),
      D({BytesIndex("step"), Info("__0_0.distcp", 0, 431), Index("w", Int(0), {0, 0}),
         Info("__0_0.distcp", 431, 747)}),
      S("storage_meta"),
      StorageMetaOf(Call("pathlib", "PosixPath", {S("/"), S("ckpt")}), S("0f6c6d2e-uuid"), None(), L({})),
      S("version"),
      S("1.0.0"),
  });
}

Metadata WorkedExampleMetadata() {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign("w", TensorStorageMetadata{TensorProperties{}, {2, 3}, {{{0, 0}, {2, 3}}}});
  m.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  m.planner_data = FlattenMapping{{"w", {std::string("w")}}, {"step", {std::string("step")}}};
  m.storage_data = StorageData{{MetadataIndex{"step", std::nullopt, std::nullopt}, {"__0_0.distcp", 0, 431, {}}},
                               {MetadataIndex{"w", Shape{0, 0}, 0}, {"__0_0.distcp", 431, 747, {}}}};
  m.storage_meta = StorageMeta{"/ckpt", "0f6c6d2e-uuid", std::nullopt, {}};
  m.version = "1.0.0";
  return m;
}

TEST(MetadataPickleLayoutTest, WorkedExampleInProtocols2And4) {
  for (int protocol : {2, 4}) {
    absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(WorkedExample(), protocol));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(*m, WorkedExampleMetadata()) << *m;
    EXPECT_TRUE(m->storage_data->at_position(1).first.IdenticalTo(MetadataIndex{"w", Shape{0, 0}, 0}));
  }
}

// E0-E1: _shard paths, no storage_meta, no version.
TEST(MetadataPickleLayoutTest, OldestLayout) {
  Py props = Obj(kShardModule, "TensorProperties",
                 T({G("torch", "float32"), LayoutRepr(), Bool(false),
                    Call(kShardModule, "MEM_FORMAT_ENCODING", {Int(0)}), Bool(false)}));
  Py root = MetadataOf({S("state_dict_metadata"), D({S("w"), TensorMeta(props, {4}, {Chunk({0}, {4})})}),
                        S("planner_data"), D({S("w"), T({S("w")})}), S("storage_data"),
                        D({Index("w", Int(0), {0}), Info("__0_0.distcp", 0, 9)})});
  absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(root, 2));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Tensor(*m, "w").properties, TensorProperties{});
  EXPECT_EQ(m->storage_meta, std::nullopt);
  EXPECT_EQ(m->version, std::nullopt);
}

TEST(MetadataPickleLayoutTest, PropertiesVariants) {
  Py getattr_format = Call("builtins", "getattr", {G(kMetaModule, "_MEM_FORMAT_ENCODING"), S("TORCH_PRESERVE_FORMAT")});
  Py root = MetadataOf({S("state_dict_metadata"),
                        D({S("a"), TensorMeta(Props("half", LayoutRepr("torch.sparse_coo"), MemFormat(1), true, true), {1}, {}),
                           S("b"), TensorMeta(Props("complex64", G("torch", "_mkldnn"), getattr_format), {1}, {})})});
  absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(root));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Tensor(*m, "a").properties,
            (TensorProperties{DType::kFloat16, Layout::kSparseCoo, true, MemoryFormat::kChannelsLast, true}));
  EXPECT_EQ(Tensor(*m, "b").properties,
            (TensorProperties{DType::kComplex64, Layout::kMkldnn, false, MemoryFormat::kPreserve, false}));
  EXPECT_EQ(m->planner_data, std::nullopt);
  EXPECT_EQ(m->storage_data, std::nullopt);
}

absl::StatusOr<std::optional<std::string>> CheckpointIdOf(Py id) {
  Py root = MetadataOf({S("state_dict_metadata"), D({}), S("storage_meta"), StorageMetaOf(std::move(id), None(), None(), L({}))});
  absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(root));
  if (!m.ok()) return m.status();
  return m->storage_meta->checkpoint_id;
}

TEST(MetadataPickleLayoutTest, CheckpointIdForms) {
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib", "PosixPath", {S("/"), S("ckpts"), S("step100")})), "/ckpts/step100");
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib", "PurePosixPath", {S("a"), S("b")})), "a/b");
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib._local", "PosixPath", {S("/x")})), "/x");
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib._local", "Path", {S("a"), S("/b"), S("c")})), "/b/c");
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib", "WindowsPath", {S("C:\\"), S("ckpt"), S("x")})), "C:\\ckpt\\x");
  EXPECT_EQ(*CheckpointIdOf(Call("pathlib", "PosixPath", {})), ".");
  EXPECT_EQ(*CheckpointIdOf(S("s3://bucket/ckpt")), "s3://bucket/ckpt");
  EXPECT_EQ(*CheckpointIdOf(None()), std::nullopt);
  absl::StatusOr<std::optional<std::string>> bad = CheckpointIdOf(Int(3));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "'.metadata': storage_meta.checkpoint_id: expected str, pathlib path or None, found int");
}

// Missing optional fields, unknown extra fields, aliases and Python dict
// semantics for repeated keys.
TEST(MetadataPickleLayoutTest, ToleratedVariations) {
  Py info_with_transforms = Obj(
      "nemo_automodel.components.checkpoint._backports.filesystem", "_StorageInfo",
      D({S("relative_path"), S("__0_0.distcp"), S("offset"), Int(int64_t{1} << 40), S("length"), Int(5),
         S("transform_descriptors"), L({S("stream.zstd/1")}), S("checksum"), S("future")}));
  Py index_without_hint = Obj(kMetaModule, "MetadataIndex", D({S("fqn"), S("w"), S("offset"), Size({0})}));
  Py root = MetadataOf({
      S("state_dict_metadata"),
      OrderedD({S("w"), TensorMeta(Props(), {8}, {Chunk({0}, {8})}), S("b"),
                Obj(kMetaModule, "BytesStorageMetadata", D({})), S("w"),
                TensorMeta(Props("int8"), {3}, {})}),  // repeated key: first position, last value
      S("storage_data"),
      D({index_without_hint, Info("__0_0.distcp", 0, 1), Index("w", Int(7), {0}), info_with_transforms}),
      S("storage_meta"),
      Obj(kMetaModule, "StorageMeta", D({S("checkpoint_id"), S("c"), S("save_id"), S("s")})),
      S("version"),
      None(),
      S("a_future_field"),
      L({}),
  });
  absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(root));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Keys(m->state_dict_metadata), (std::vector<std::string>{"w", "b"}));
  // spec §5.5: any `index` value is accepted; a non-int is no hint.
  absl::StatusOr<Metadata> odd_hint = ParseMetadataPickle(Pickle(MetadataOf(
      {S("state_dict_metadata"), D({}), S("storage_data"), D({Index("w", S("0"), {0}), Info("f", 0, 1)})})));
  ASSERT_TRUE(odd_hint.ok()) << odd_hint.status();
  EXPECT_TRUE(odd_hint->storage_data->at_position(0).first.IdenticalTo(MetadataIndex{"w", Shape{0}, std::nullopt}));
  EXPECT_EQ(Tensor(*m, "w").properties.dtype, DType::kInt8);
  // Same (fqn, offset): one entry; the first key (no hint) stays, the value is the last.
  ASSERT_EQ(m->storage_data->size(), 1u);
  EXPECT_TRUE(m->storage_data->at_position(0).first.IdenticalTo(MetadataIndex{"w", Shape{0}, std::nullopt}));
  EXPECT_EQ(m->storage_data->at_position(0).second,
            (StorageInfo{"__0_0.distcp", int64_t{1} << 40, 5, std::vector<std::string>{"stream.zstd/1"}}));
  EXPECT_EQ(*m->storage_meta, (StorageMeta{"c", "s", std::nullopt, {}}));
  EXPECT_EQ(m->version, std::nullopt);
}

std::string ErrorOf(const Py& root, int protocol = 4) {
  absl::StatusOr<Metadata> m = ParseMetadataPickle(Pickle(root, protocol));
  return m.ok() ? "OK" : std::string(m.status().message());
}

Py WithTensor(Py tensor) { return MetadataOf({S("state_dict_metadata"), D({S("w"), std::move(tensor)})}); }

TEST(MetadataPickleErrorTest, MessagesNameThePlace) {
  std::vector<Py> chunks = {Chunk({0}, {1}), Chunk({1}, {1}), Chunk({2}, {1}),
                            Obj(kMetaModule, "ChunkStorageMetadata", D({S("offsets"), S("3"), S("sizes"), Size({1})}))};
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Props(), {4}, chunks))),
            "'.metadata': state_dict_metadata['w'].chunks[3].offsets: expected torch.Size, found str");
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Props(), {4}, {Size({1})}))),
            "'.metadata': state_dict_metadata['w'].chunks[0]: expected ChunkStorageMetadata, found torch.Size");
  EXPECT_EQ(ErrorOf(WithTensor(Obj(kMetaModule, "TensorStorageMetadata",
                                   D({S("properties"), Props(), S("size"), Call("torch", "Size", {T({Int(1), S("x")})})})))),
            "'.metadata': state_dict_metadata['w'].size[1]: expected int, found str");
  EXPECT_EQ(ErrorOf(WithTensor(Obj(kMetaModule, "TensorStorageMetadata", D({S("properties"), Props(), S("size"), Size({1})})))),
            "'.metadata': state_dict_metadata['w']: missing field 'chunks'");
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Props("float32", LayoutRepr(), MemFormat(7)), {1}, {}))),
            "'.metadata': state_dict_metadata['w'].properties.memory_format: _MEM_FORMAT_ENCODING takes one of 0, 1, 2");
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Props("float32", LayoutRepr("torch.jagged")), {1}, {}))),
            "'.metadata': state_dict_metadata['w'].properties.layout: unknown layout 'torch.jagged'");
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Obj(kMetaModule, "TensorProperties",
                                               T({G("torch", "Size"), LayoutRepr(), Bool(false), MemFormat(0), Bool(false)})),
                                           {1}, {}))),
            "'.metadata': state_dict_metadata['w'].properties.dtype: expected torch.dtype, found global torch.Size");
  EXPECT_EQ(ErrorOf(WithTensor(TensorMeta(Obj(kMetaModule, "TensorProperties", T({G("torch", "float32")})), {1}, {}))),
            "'.metadata': state_dict_metadata['w'].properties: TensorProperties state: expected 5-tuple, found tuple");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({Int(1), BytesMeta()})})),
            "'.metadata': state_dict_metadata[key #0]: expected str, found int");
  EXPECT_EQ(ErrorOf(WithTensor(Int(5))),
            "'.metadata': state_dict_metadata['w']: expected TensorStorageMetadata or BytesStorageMetadata, found int");
}

TEST(MetadataPickleErrorTest, TopLevelAndStorageErrors) {
  EXPECT_EQ(ErrorOf(D({})), "'.metadata': expected Metadata, found dict");
  EXPECT_EQ(ErrorOf(MetadataOf({S("planner_data"), None()})), "'.metadata': missing field 'state_dict_metadata'");
  EXPECT_EQ(ErrorOf(Obj(kMetaModule, "Metadata", L({}))), "'.metadata': Metadata state: expected dict, found list");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("planner_data"), L({})})),
            "'.metadata': planner_data: expected None or dict, found list");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("planner_data"), D({S("w"), T({None()})})})),
            "'.metadata': planner_data['w'][0]: expected str or int, found None");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("storage_data"), D({S("w"), Info("f", 0, 1)})})),
            "'.metadata': storage_data[key #0]: expected MetadataIndex, found str");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("storage_data"),
                                D({Index("w", Int(0), {0, 0}), Info("f", -1, 1)})})),
            "'.metadata': storage_data[MetadataIndex(fqn='w', offset=[0, 0], index=0)].offset: must not be "
            "negative, found -1");
  Py bad_length = Obj(kFsModule, "_StorageInfo", D({S("relative_path"), S("f"), S("offset"), Int(0), S("length"), S("1")}));
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("storage_data"),
                                D({Index("w", Int(0), {0}), bad_length})})),
            "'.metadata': storage_data[MetadataIndex(fqn='w', offset=[0], index=0)].length: expected int, found str");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("version"), Int(1)})),
            "'.metadata': version: expected str, found int");
  EXPECT_EQ(ErrorOf(MetadataOf({S("state_dict_metadata"), D({}), S("storage_meta"),
                                StorageMetaOf(None(), None(), None(), L({Int(1)}))})),
            "'.metadata': storage_meta.modules[0]: expected str, found int");
}

TEST(MetadataPickleErrorTest, PickleErrorsNameTheFile) {
  absl::StatusOr<Metadata> m = ParseMetadataPickle(std::string("\x80\x02" "cos\nsystem\n.", 14), "__3.metadata");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(), "'__3.metadata': pickle: global 'os.system' is not allowed (offset 2)");
}

}  // namespace
}  // namespace dcplan
