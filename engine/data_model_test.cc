// Tests of the value types: equality semantics and readable printing.
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/description.h"
#include "engine/dtype.h"
#include "engine/metadata.h"
#include "engine/object_path.h"
#include "engine/ordered_map.h"
#include "engine/plan.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

TEST(DTypeTest, NamesRoundTripAndSizes) {
  for (int i = 0; i < kNumDTypes; ++i) {
    const DType dtype = static_cast<DType>(i);
    absl::StatusOr<DType> parsed = ParseDType(DTypeName(dtype));
    ASSERT_TRUE(parsed.ok()) << DTypeName(dtype);
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_EQ(ElementSize(DType::kBFloat16), 2);
  EXPECT_EQ(ElementSize(DType::kComplex128), 16);
  EXPECT_EQ(ElementSize(DType::kBool), 1);
  EXPECT_EQ(*ParseDType("torch.float"), DType::kFloat32);
  EXPECT_EQ(*ParseDType("long"), DType::kInt64);
  EXPECT_FALSE(ParseDType("float31").ok());
}

TEST(MetadataIndexTest, HintIsNotIdentity) {
  MetadataIndex a{"w", Shape{0, 4}, 0};
  MetadataIndex b{"w", Shape{0, 4}, 7};
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a.IdenticalTo(b));
  absl::flat_hash_set<MetadataIndex> set = {a};
  EXPECT_TRUE(set.contains(b));
  // A 0-d tensor's empty offset is not "no offset".
  EXPECT_NE((MetadataIndex{"s", Shape{}, std::nullopt}), (MetadataIndex{"s", std::nullopt, std::nullopt}));
  EXPECT_EQ(ToString(a), "MetadataIndex(fqn='w', offset=[0, 4], index=0)");
  EXPECT_EQ(ToString(MetadataIndex{"step", std::nullopt, std::nullopt}),
            "MetadataIndex(fqn='step', offset=None, index=None)");
}

TEST(OrderedMapTest, KeepsInsertionOrderLikePythonDict) {
  OrderedMap<std::string, int> m;
  m.InsertOrAssign("b", 1);
  m.InsertOrAssign("a", 2);
  m.InsertOrAssign("b", 3);  // assignment keeps the position
  auto [value, inserted] = m.TryEmplace("a", 9);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(*value, 2);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at_position(0).first, "b");
  EXPECT_EQ(m.at_position(0).second, 3);
  EXPECT_EQ(m.PositionOf("a"), 1);
  EXPECT_EQ(m.PositionOf("zz"), -1);
  OrderedMap<std::string, int> other = {{"a", 2}, {"b", 3}};
  EXPECT_NE(m, other);  // same pairs, other order
}

TEST(ObjectPathTest, KeysAndRepr) {
  ObjectPath path = {std::string("opt"), std::string("state"), std::string("0"), int64_t{1}};
  EXPECT_EQ(FlatKey(path), "opt.state.0.1");
  EXPECT_EQ(ObjectPathToString(path), "('opt', 'state', '0', 1)");
  EXPECT_EQ(ObjectPathToString({std::string("step")}), "('step',)");
  EXPECT_EQ(ObjectPathToString({std::string("it's")}), "(\"it's\",)");
}

TEST(PlanTest, StorageSizesAndPrinting) {
  WriteItem shard{MetadataIndex{"w", Shape{4, 0}, std::nullopt}, WriteItemType::kShard, std::nullopt,
                  TensorWriteData{ChunkBox{{4, 0}, {4, 4}}, TensorProperties{DType::kBFloat16}, Shape{8, 4}}};
  // PyTorch weighs a shard by its *global* size.
  EXPECT_EQ(**shard.TensorStorageSize(), 64);
  EXPECT_EQ(*shard.PayloadBytes(), 32);
  EXPECT_EQ(ToString(shard),
            "WriteItem(MetadataIndex(fqn='w', offset=[4, 0], index=None), SHARD, chunk={offsets=[4, 0], "
            "sizes=[4, 4]}, dtype=bfloat16, size=[8, 4])");
  WriteItem bytes{MetadataIndex{"step", std::nullopt, std::nullopt}, WriteItemType::kByteIO, 12, std::nullopt};
  EXPECT_FALSE(bytes.TensorStorageSize()->has_value());
  EXPECT_EQ(*bytes.PayloadBytes(), 12);
  WriteItem huge = shard;
  huge.tensor_data->size = {int64_t{1} << 62, 4};
  EXPECT_FALSE(huge.TensorStorageSize().ok());
}

TEST(PlanTest, EqualityIncludesHints) {
  ReadItem a{LoadItemType::kTensor, {"w", Shape{0}, 0}, {0}, {"w", Shape{0}, 0}, {0}, {4}};
  ReadItem b = a;
  EXPECT_EQ(a, b);
  b.storage_index.index = 1;
  EXPECT_NE(a, b);
  EXPECT_EQ(ToString(a),
            "ReadItem(TENSOR, dest=MetadataIndex(fqn='w', offset=[0], index=0) at [0], "
            "storage=MetadataIndex(fqn='w', offset=[0], index=0) at [0], lengths=[4])");
}

TEST(MetadataTest, PrintsEveryField) {
  Metadata md;
  md.state_dict_metadata.InsertOrAssign(
      "w", TensorStorageMetadata{TensorProperties{}, Shape{4}, {ChunkBox{{0}, {4}}}});
  md.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  md.planner_data = FlattenMapping{{"w", {std::string("w")}}};
  const std::string text = ToString(md);
  EXPECT_NE(text.find("'w': TensorStorageMetadata("), std::string::npos) << text;
  EXPECT_NE(text.find("'step': BytesStorageMetadata()"), std::string::npos) << text;
  EXPECT_NE(text.find("'w': ('w',)"), std::string::npos) << text;
  Metadata copy = md;
  EXPECT_EQ(copy, md);
  copy.version = "1.0.0";
  EXPECT_NE(copy, md);
}

TEST(DescriptionTest, Prints) {
  ValueDescription v = ShardedTensor{Shape{8, 4}, TensorProperties{}, {ChunkBox{{0, 0}, {4, 4}}}};
  std::ostringstream os;
  os << v;
  EXPECT_EQ(os.str(), "ShardedTensor(float32[8, 4], local_chunks=[{offsets=[0, 0], sizes=[4, 4]}])");
}

}  // namespace
}  // namespace dcplan
