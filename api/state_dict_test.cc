#include "api/state_dict.h"

#include <string>
#include <variant>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>

#include "absl/status/status.h"
#include "api/dtype_conversion.h"
#include "api/internal/torch_compat.h"
#include "engine/description.h"
#include "engine/flatten.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Keys(const FlatStateDict<StateValue>& flat) {
  std::vector<std::string> keys;
  for (const auto& entry : flat.values) keys.push_back(entry.first);
  return keys;
}

TensorProperties Props(DType dtype, bool requires_grad = false) {
  TensorProperties p;
  p.dtype = dtype;
  p.requires_grad = requires_grad;
  return p;
}

// An optimizer state as LibTorch would hold it: an int-keyed dict.
StateDict OptimizerState(const at::Tensor& exp_avg) {
  c10::impl::GenericDict per_param(c10::StringType::get(), c10::AnyType::get());
  per_param.insert(c10::IValue("exp_avg"), c10::IValue(exp_avg));
  per_param.insert(c10::IValue("step"), c10::IValue(int64_t{3}));
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  state.insert(c10::IValue(int64_t{0}), c10::IValue(per_param));
  absl::StatusOr<StateDict> converted = FromIValue(c10::IValue(state));
  EXPECT_TRUE(converted.ok()) << converted.status();
  return converted.ok() ? *converted : StateDict();
}

TEST(StateDictTest, FlattensAndDescribesLikePyTorch) {
  at::Tensor weight = at::zeros({4, 3}, at::kFloat).set_requires_grad(true);
  at::Tensor bias = at::zeros({4}, at::kLong);
  at::Tensor exp_avg = at::zeros({4, 3}, at::kDouble);
  at::Tensor ema0 = at::zeros({2}, at::kBFloat16);
  at::Tensor ema1 = at::zeros({}, at::kFloat);
  StateDict sd = Dict({
      {"model", Dict({{"linear", Dict({{"weight", Value(weight)}, {"bias", Value(bias)}})}})},
      {"optim",
       Dict({{"state", OptimizerState(exp_avg)},
             {"param_groups",
              List({Dict({{"lr", Value(c10::IValue(0.1))}, {"params", List({Value(c10::IValue(int64_t{0}))})}})})}})},
      {"ema", List({Value(ema0), Value(ema1)})},
      {"empty", Dict({})},
      {"step", Value(c10::IValue(int64_t{5}))},
  });

  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(sd);
  ASSERT_TRUE(flat.ok()) << flat.status();
  // §2.2: mappings are descended into (the empty one disappears); the list
  // holding a mapping is indexed; a list of scalars is one leaf; a list of
  // tensors is indexed; int dict keys are stringified.
  EXPECT_THAT(Keys(*flat), ElementsAre("model.linear.weight", "model.linear.bias", "optim.state.0.exp_avg",
                                       "optim.state.0.step", "optim.param_groups.0.lr",
                                       "optim.param_groups.0.params", "ema.0", "ema.1", "step"));
  EXPECT_EQ(*flat->mapping.Find("optim.state.0.exp_avg"),
            (ObjectPath{std::string("optim"), std::string("state"), std::string("0"), std::string("exp_avg")}));
  EXPECT_EQ(*flat->mapping.Find("optim.param_groups.0.params"),
            (ObjectPath{std::string("optim"), std::string("param_groups"), int64_t{0}, std::string("params")}));
  EXPECT_EQ(*flat->mapping.Find("ema.1"), (ObjectPath{std::string("ema"), int64_t{1}}));
  EXPECT_EQ(*flat->mapping.Find("step"), (ObjectPath{std::string("step")}));

  absl::StatusOr<StateDictDescription> described = Describe(*flat);
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->mapping, flat->mapping);
  const auto& values = described->values;
  EXPECT_EQ(std::get<WholeTensor>(*values.Find("model.linear.weight")),
            (WholeTensor{{4, 3}, Props(DType::kFloat32, /*requires_grad=*/true)}));
  EXPECT_EQ(std::get<WholeTensor>(*values.Find("model.linear.bias")), (WholeTensor{{4}, Props(DType::kInt64)}));
  EXPECT_EQ(std::get<WholeTensor>(*values.Find("optim.state.0.exp_avg")),
            (WholeTensor{{4, 3}, Props(DType::kFloat64)}));
  EXPECT_EQ(std::get<WholeTensor>(*values.Find("ema.0")), (WholeTensor{{2}, Props(DType::kBFloat16)}));
  EXPECT_EQ(std::get<WholeTensor>(*values.Find("ema.1")), (WholeTensor{{}, Props(DType::kFloat32)}));
  for (const char* key : {"optim.state.0.step", "optim.param_groups.0.lr", "optim.param_groups.0.params", "step"}) {
    EXPECT_TRUE(std::holds_alternative<OpaqueValue>(*values.Find(key))) << key;
  }
}

TEST(StateDictTest, TensorInsideAnIValueLeafIsATensor) {
  StateDict sd = Dict({{"t", Value(c10::IValue(at::zeros({2}, at::kInt)))}});
  ASSERT_TRUE(sd.FindEntry("t")->is_leaf());
  EXPECT_TRUE(IsTensorValue(*sd.FindEntry("t")->leaf()));
  absl::StatusOr<StateDictDescription> described = Describe(*FlattenForSave(sd));
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(std::get<WholeTensor>(*described->values.Find("t")), (WholeTensor{{2}, Props(DType::kInt32)}));
}

TEST(StateDictTest, FlattenErrors) {
  StateDict collision = Dict({{"a.b", Value(c10::IValue(1))}, {"a", Dict({{"b", Value(c10::IValue(2))}})}});
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(collision);
  EXPECT_EQ(flat.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(flat.status().message(), HasSubstr("duplicated flatten key a.b"));
  EXPECT_FALSE(FlattenForSave(List({})).ok());
}

ShardedTensorValue RowSharded(std::vector<LocalShard> shards, c10::ScalarType dtype = c10::kFloat) {
  ShardedTensorValue sharded;
  sharded.global_shape = {8, 4};
  sharded.dtype = dtype;
  sharded.local_shards = std::move(shards);
  return sharded;
}

TEST(StateDictTest, DescribesShardedTensors) {
  StateDict sd = Dict({
      {"w", Value(RowSharded({{at::zeros({4, 4}), {0, 0}}, {at::zeros({4, 4}), {4, 0}}}))},
      {"none_here", Value(RowSharded({}, c10::kHalf))},
  });
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(sd);
  ASSERT_TRUE(flat.ok()) << flat.status();
  absl::StatusOr<StateDictDescription> described = Describe(*flat);
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(std::get<ShardedTensor>(*described->values.Find("w")),
            (ShardedTensor{{8, 4}, Props(DType::kFloat32), {ChunkBox{{0, 0}, {4, 4}}, ChunkBox{{4, 0}, {4, 4}}}}));
  // No local shard: described without chunks (no write items), key kept.
  EXPECT_EQ(std::get<ShardedTensor>(*described->values.Find("none_here")),
            (ShardedTensor{{8, 4}, Props(DType::kFloat16), {}}));
  EXPECT_NE(described->mapping->Find("none_here"), nullptr);
}

absl::Status DescribeOne(ShardedTensorValue sharded) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(Dict({{"layer.w", Value(std::move(sharded))}}));
  if (!flat.ok()) return flat.status();
  return Describe(*flat).status();
}

TEST(StateDictTest, RejectsShardsThatDoNotFit) {
  // Wrong number of offsets.
  absl::Status status = DescribeOne(RowSharded({{at::zeros({4, 4}), {0, 0}}, {at::zeros({4, 4}), {4}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'layer.w'"));
  EXPECT_THAT(status.message(), HasSubstr("local shard 1"));
  // Wrong tensor rank.
  status = DescribeOne(RowSharded({{at::zeros({4}), {0, 0}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("local shard 0"));
  // Rows 6..9 of an 8-row tensor.
  status = DescribeOne(RowSharded({{at::zeros({4, 4}), {6, 0}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("does not lie inside the global shape [8, 4]"));
  // Negative offset.
  status = DescribeOne(RowSharded({{at::zeros({4, 4}), {-1, 0}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // Dtype differing from the declared one.
  status = DescribeOne(RowSharded({{at::zeros({4, 4}, at::kDouble), {0, 0}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dtype"));
  // Undefined shard tensor.
  status = DescribeOne(RowSharded({{at::Tensor(), {0, 0}}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(StateDictTest, RejectsUndefinedTensors) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(Dict({{"t", Value(at::Tensor())}}));
  ASSERT_TRUE(flat.ok());
  absl::Status status = Describe(*flat).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'t'"));
}

TEST(DTypeConversionTest, RoundTripsEveryLibTorchDType) {
  const std::vector<std::pair<c10::ScalarType, DType>> pairs = {
      {c10::kByte, DType::kUInt8},          {c10::kChar, DType::kInt8},
      {c10::kShort, DType::kInt16},         {c10::kInt, DType::kInt32},
      {c10::kLong, DType::kInt64},          {c10::kHalf, DType::kFloat16},
      {c10::kFloat, DType::kFloat32},       {c10::kDouble, DType::kFloat64},
      {c10::kComplexHalf, DType::kComplex32}, {c10::kComplexFloat, DType::kComplex64},
      {c10::kComplexDouble, DType::kComplex128}, {c10::kBool, DType::kBool},
      {c10::kQInt8, DType::kQInt8},         {c10::kQUInt8, DType::kQUInt8},
      {c10::kQInt32, DType::kQInt32},       {c10::kBFloat16, DType::kBFloat16},
      {c10::kQUInt4x2, DType::kQUInt4x2},   {c10::kQUInt2x4, DType::kQUInt2x4},
  };
  for (const auto& [scalar_type, dtype] : pairs) {
    EXPECT_EQ(*DTypeFromScalarType(scalar_type), dtype) << c10::toString(scalar_type);
    EXPECT_EQ(*ScalarTypeFromDType(dtype), scalar_type) << DTypeName(dtype);
  }
  EXPECT_FALSE(DTypeFromScalarType(c10::ScalarType::Undefined).ok());
}

#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
TEST(DTypeConversionTest, RoundTripsTheDTypesOfLibTorch2) {
  const std::vector<std::pair<c10::ScalarType, DType>> pairs = {
      {c10::kUInt16, DType::kUInt16},
      {c10::kUInt32, DType::kUInt32},
      {c10::kUInt64, DType::kUInt64},
      {c10::kFloat8_e4m3fn, DType::kFloat8E4M3FN},
      {c10::kFloat8_e5m2, DType::kFloat8E5M2},
      {c10::kFloat8_e4m3fnuz, DType::kFloat8E4M3FNUZ},
      {c10::kFloat8_e5m2fnuz, DType::kFloat8E5M2FNUZ},
  };
  for (const auto& [scalar_type, dtype] : pairs) {
    EXPECT_EQ(*DTypeFromScalarType(scalar_type), dtype) << c10::toString(scalar_type);
    EXPECT_EQ(*ScalarTypeFromDType(dtype), scalar_type) << DTypeName(dtype);
  }
  // Newer than anything DCP records here: an error naming the scalar type.
  absl::StatusOr<DType> e8m0 = DTypeFromScalarType(c10::kFloat8_e8m0fnu);
  EXPECT_EQ(e8m0.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e8m0.status().message(), HasSubstr("Float8_e8m0fnu"));
}
#else
TEST(DTypeConversionTest, DTypesOfLibTorch2AreErrorsNamingTheDType) {
  for (DType missing : {DType::kUInt16, DType::kUInt32, DType::kUInt64, DType::kFloat8E4M3FN, DType::kFloat8E5M2}) {
    absl::StatusOr<c10::ScalarType> converted = ScalarTypeFromDType(missing);
    EXPECT_EQ(converted.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(converted.status().message(), HasSubstr(std::string(DTypeName(missing))));
    EXPECT_THAT(converted.status().message(), HasSubstr("LibTorch 2.x has it"));
  }
}
#endif

TEST(IValueConversionTest, RoundTripsNestedValues) {
  c10::impl::GenericDict inner(c10::StringType::get(), c10::AnyType::get());
  inner.insert(c10::IValue("e"), c10::IValue());
  c10::impl::GenericList list(c10::AnyType::get());
  list.push_back(c10::IValue(1.5));
  list.push_back(c10::IValue("x"));
  list.push_back(c10::IValue(true));
  list.push_back(c10::IValue());
  c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
  outer.insert(c10::IValue("a"), c10::IValue(int64_t{1}));
  outer.insert(c10::IValue("b"), c10::IValue(list));
  outer.insert(c10::IValue("c"), c10::IValue(c10::ivalue::Tuple::create({c10::IValue(int64_t{1}), c10::IValue("y")})));
  outer.insert(c10::IValue("d"), c10::IValue(inner));
  const c10::IValue original(outer);

  absl::StatusOr<StateDict> tree = FromIValue(original);
  ASSERT_TRUE(tree.ok()) << tree.status();
  ASSERT_TRUE(tree->is_mapping());
  ASSERT_EQ(tree->entries().size(), 4u);
  EXPECT_EQ(tree->entries()[0].key, "a");
  EXPECT_TRUE(tree->FindEntry("a")->is_leaf());
  EXPECT_EQ(std::get<c10::IValue>(*tree->FindEntry("a")->leaf()).toInt(), 1);
  const StateDict& b = *tree->FindEntry("b");
  ASSERT_TRUE(b.is_list());
  ASSERT_EQ(b.items().size(), 4u);
  EXPECT_DOUBLE_EQ(std::get<c10::IValue>(*b.items()[0].leaf()).toDouble(), 1.5);
  EXPECT_EQ(std::get<c10::IValue>(*b.items()[1].leaf()).toStringRef(), "x");
  EXPECT_TRUE(std::get<c10::IValue>(*b.items()[2].leaf()).toBool());
  EXPECT_TRUE(b.items()[3].is_none());
  // Tuples stay leaves.
  ASSERT_TRUE(tree->FindEntry("c")->is_leaf());
  EXPECT_TRUE(std::get<c10::IValue>(*tree->FindEntry("c")->leaf()).isTuple());
  ASSERT_TRUE(tree->FindEntry("d")->is_mapping());
  EXPECT_TRUE(tree->FindEntry("d")->FindEntry("e")->is_none());

  absl::StatusOr<c10::IValue> back = ToIValue(*tree);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == original);
  // Key order survives.
  std::vector<std::string> keys;
  for (const auto& entry : back->toGenericDict()) keys.push_back(entry.key().toStringRef());
  EXPECT_THAT(keys, ElementsAre("a", "b", "c", "d"));
}

TEST(IValueConversionTest, ScalarsAndNone) {
  for (const c10::IValue& value :
       {c10::IValue(int64_t{-7}), c10::IValue(2.25), c10::IValue(false), c10::IValue("s"), c10::IValue()}) {
    absl::StatusOr<StateDict> tree = FromIValue(value);
    ASSERT_TRUE(tree.ok());
    absl::StatusOr<c10::IValue> back = ToIValue(*tree);
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(*back == value) << value.tagKind();
  }
  EXPECT_TRUE(FromIValue(c10::IValue())->is_none());
}

TEST(IValueConversionTest, IntAndBoolKeysAreStringified) {
  c10::impl::GenericDict ints(c10::IntType::get(), c10::AnyType::get());
  ints.insert(c10::IValue(int64_t{10}), c10::IValue("x"));
  ints.insert(c10::IValue(int64_t{-2}), c10::IValue("y"));
  absl::StatusOr<StateDict> tree = FromIValue(c10::IValue(ints));
  ASSERT_TRUE(tree.ok()) << tree.status();
  ASSERT_EQ(tree->entries().size(), 2u);
  EXPECT_EQ(tree->entries()[0].key, "10");
  EXPECT_EQ(tree->entries()[1].key, "-2");
  absl::StatusOr<c10::IValue> back = ToIValue(*tree);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->toGenericDict().at(c10::IValue("10")).toStringRef(), "x");

  c10::impl::GenericDict bools(c10::BoolType::get(), c10::AnyType::get());
  bools.insert(c10::IValue(true), c10::IValue(int64_t{1}));
  EXPECT_EQ(FromIValue(c10::IValue(bools))->entries()[0].key, "True");

  c10::impl::GenericDict floats(c10::FloatType::get(), c10::AnyType::get());
  floats.insert(c10::IValue(0.5), c10::IValue(int64_t{1}));
  EXPECT_EQ(FromIValue(c10::IValue(floats)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IValueConversionTest, TensorsBecomeTensorLeaves) {
  c10::impl::GenericList list(c10::AnyType::get());
  list.push_back(c10::IValue(at::arange(3)));
  absl::StatusOr<StateDict> tree = FromIValue(c10::IValue(list));
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(tree->items().size(), 1u);
  ASSERT_TRUE(std::holds_alternative<at::Tensor>(*tree->items()[0].leaf()));
  // A tensor leaf inside a value saved whole cannot be pickled by ToIValue...
  EXPECT_EQ(ToIValue(*tree).status().code(), absl::StatusCode::kInvalidArgument);
  // ...but a tuple holding a tensor is an IValue leaf and can.
  StateDict tuple = Value(c10::IValue(c10::ivalue::Tuple::create({c10::IValue(at::arange(2))})));
  EXPECT_TRUE(ToIValue(tuple).ok());
}

TEST(IValueConversionTest, DuplicatedKeysAreAnError) {
  StateDict dup = Dict({{"k", Value(c10::IValue(1))}, {"k", Value(c10::IValue(2))}});
  EXPECT_EQ(ToIValue(dup).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SavedObjectTest, IsAnOpaqueLeafOfItsArchiveSize) {
  const SavedObject saved{std::string(10, '\xab')};
  StateDict sd = Dict({{"extra", Dict({{"rng", Value(saved)}})}, {"w", Value(at::zeros({2}))}});
  const StateValue leaf = saved;
  EXPECT_FALSE(IsTensorValue(leaf));
  EXPECT_EQ(PlainTensorOf(leaf), nullptr);
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(sd);
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_THAT(Keys(*flat), ElementsAre("extra.rng", "w"));
  absl::StatusOr<StateDictDescription> description = Describe(*flat);
  ASSERT_TRUE(description.ok()) << description.status();
  const ValueDescription* rng = description->values.Find("extra.rng");
  ASSERT_NE(rng, nullptr);
  EXPECT_EQ(*rng, ValueDescription(OpaqueValue{10}));
}

TEST(SavedObjectTest, IsNotAnIValue) {
  absl::StatusOr<c10::IValue> leaf = ToIValue(Value(SavedObject{"bytes"}));
  EXPECT_EQ(leaf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(leaf.status().message(), HasSubstr("saved object"));
  absl::StatusOr<c10::IValue> nested = ToIValue(Dict({{"a", Value(SavedObject{"bytes"})}}));
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dcplan
