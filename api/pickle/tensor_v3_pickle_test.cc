// Tensor records' data.pkl: the pickles PyTorch 2.13's torch.save writes for
// torch.arange(6).to(torch.uint16).reshape(2, 3) (_rebuild_tensor_v3) and
// torch.zeros(3, 2, dtype=torch.bfloat16) (_rebuild_tensor_v2), copied byte
// for byte from their data.pkl, and hostile variants of them.
#include "api/pickle/tensor_v3_pickle.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "api/pickle/pickle_reader.h"
#include "engine/dtype.h"
#include "gtest/gtest.h"

namespace dcplan::pickle {
namespace {

using std::string_literals::operator""s;

const std::string kTorchSaveUInt16(
    "\x80" "\x02" "ctorch._utils\n_rebuild_tensor_v3\nq\x00" "((X\x07" "\x00" "\x00" "\x00" "storageq\x01"
    "ctorch.storage\nUntypedStorage\nq\x02" "X\x01" "\x00" "\x00" "\x00" "0q\x03" "X\x03" "\x00" "\x00" "\x00"
    "cpuq\x04" "K\x0c" "tq\x05" "QK\x00" "K\x02" "K\x03" "\x86" "q\x06" "K\x03" "K\x01" "\x86" "q\x07" "\x89"
    "ccollections\nOrderedDict\nq\x08" ")Rq\x09" "ctorch\nuint16\nq\ntq\x0b" "Rq\x0c" ".",
    180);

const std::string kTorchSaveBFloat16(
    "\x80" "\x02" "ctorch._utils\n_rebuild_tensor_v2\nq" "\x00" "((X" "\x07" "\x00" "\x00" "\x00" "storageq" "\x01"
    "ctorch\nBFloat16Storage\nq" "\x02" "X" "\x01" "\x00" "\x00" "\x00" "0q" "\x03" "X" "\x03" "\x00" "\x00" "\x00"
    "cpuq" "\x04" "K" "\x06" "tq" "\x05" "QK" "\x00" "K" "\x03" "K" "\x02" "\x86" "q" "\x06" "K" "\x02" "K" "\x01" "\x86"
    "q" "\x07" "\x89" "ccollections\nOrderedDict\nq" "\x08" ")Rq" "\x09" "tq\nRq" "\x0b" ".",
    157);

std::string Replace(absl::string_view from, absl::string_view to) {
  EXPECT_TRUE(absl::StrContains(kTorchSaveUInt16, from)) << from;
  return absl::StrReplaceAll(kTorchSaveUInt16, {{from, to}});
}

// `parse` refuses `pickle` with an InvalidArgument whose message holds `needle`.
::testing::AssertionResult RefusedBy(absl::StatusOr<RebuildTensorCall> (*parse)(absl::string_view),
                                     absl::string_view pickle, absl::string_view needle) {
  absl::StatusOr<RebuildTensorCall> parsed = parse(pickle);
  if (parsed.ok()) return ::testing::AssertionFailure() << "unexpectedly parsed: " << *parsed;
  if (parsed.status().code() != absl::StatusCode::kInvalidArgument ||
      !absl::StrContains(parsed.status().message(), needle)) {
    return ::testing::AssertionFailure() << "error '" << parsed.status() << "' lacks '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult RefusedWith(absl::string_view pickle, absl::string_view needle) {
  return RefusedBy(ParseRebuildTensorV3, pickle, needle);
}

TEST(TensorV3PickleTest, ReadsWhatTorchSaveWrites) {
  ASSERT_TRUE(CallsRebuildTensorV3(kTorchSaveUInt16));
  absl::StatusOr<RebuildTensorCall> parsed = ParseRebuildTensorV3(kTorchSaveUInt16);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  RebuildTensorCall expected;
  expected.dtype = DType::kUInt16;
  expected.storage_key = "0";
  expected.storage_location = "cpu";
  expected.storage_bytes = 12;
  expected.storage_offset = 0;
  expected.sizes = {2, 3};
  expected.strides = {3, 1};
  EXPECT_EQ(*parsed, expected);
  EXPECT_EQ(ToString(*parsed),
            "_rebuild_tensor_v3(storage data/0 (12 bytes, cpu), offset 0, size (2, 3), stride (3, 1), uint16)");
}

TEST(TensorV3PickleTest, EveryDTypeOfTheTorchModule) {
  for (const auto& [name, dtype] : {std::pair<const char*, DType>{"uint32", DType::kUInt32},
                                    {"uint64", DType::kUInt64},
                                    {"float8_e4m3fn", DType::kFloat8E4M3FN},
                                    {"float8_e5m2", DType::kFloat8E5M2},
                                    {"float8_e4m3fnuz", DType::kFloat8E4M3FNUZ},
                                    {"float8_e5m2fnuz", DType::kFloat8E5M2FNUZ},
                                    {"complex32", DType::kComplex32}}) {
    absl::StatusOr<RebuildTensorCall> parsed = ParseRebuildTensorV3(Replace("\nuint16\n", absl::StrCat("\n", name, "\n")));
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(parsed->dtype, dtype) << name;
  }
}

TEST(TensorV3PickleTest, OptionalMetadataMayBeNoneOrEmpty) {
  for (absl::string_view metadata : {"N", "}"}) {
    absl::StatusOr<RebuildTensorCall> parsed =
        ParseRebuildTensorV3(Replace("uint16\nq\nt", absl::StrCat("uint16\nq\n", metadata, "t")));
    EXPECT_TRUE(parsed.ok()) << metadata << ": " << parsed.status();
  }
  EXPECT_TRUE(RefusedWith(Replace("uint16\nq\nt", "uint16\nq\n}X\x01\x00\x00\x00" "aK\x01st"s), "tensor metadata"));
}

TEST(TensorV3PickleTest, OtherGlobalsAreRefusedByName) {
  EXPECT_TRUE(RefusedWith(Replace("torch._utils\n_rebuild_tensor_v3", "posix\nsystem"),
                          "global 'posix.system' is not allowed"));
  EXPECT_TRUE(RefusedWith(Replace("torch._utils\n_rebuild_tensor_v3", "torch._utils\n_rebuild_tensor"),
                          "global 'torch._utils._rebuild_tensor' is not allowed"));
  EXPECT_TRUE(RefusedWith(Replace("torch.storage\nUntypedStorage", "torch\nQInt8Storage"),
                          "global 'torch.QInt8Storage' is not allowed"));
  // The other call's globals are allowed in a tensor record, not in this call.
  EXPECT_TRUE(RefusedWith(Replace("torch._utils\n_rebuild_tensor_v3", "torch._utils\n_rebuild_tensor_v2"),
                          "expected a call of torch._utils._rebuild_tensor_v3"));
  EXPECT_TRUE(RefusedWith(Replace("torch.storage\nUntypedStorage", "torch\nFloatStorage"),
                          "expected torch.storage.UntypedStorage, found global torch.FloatStorage"));
  EXPECT_TRUE(RefusedWith(Replace("torch\nuint16", "torch\nstrided"), "global 'torch.strided' is not allowed"));
  EXPECT_TRUE(RefusedWith(Replace("collections\nOrderedDict", "builtins\ngetattr"),
                          "global 'builtins.getattr' is not allowed"));
  // The .metadata vocabulary keeps refusing persistent ids and these globals.
  absl::StatusOr<PickleDocument> as_metadata = Unpickle(kTorchSaveUInt16);
  EXPECT_FALSE(as_metadata.ok());
  EXPECT_TRUE(absl::StrContains(as_metadata.status().message(), "_rebuild_tensor_v3"));
  EXPECT_FALSE(CallsRebuildTensorV3(Replace("_rebuild_tensor_v3", "_rebuild_tensor_v2")));
}

TEST(TensorV3PickleTest, MalformedArgumentsAreRefused) {
  EXPECT_TRUE(RefusedWith(Replace("torch\nuint16", "torch\nqint8"), "quantized dtype torch.qint8"));
  EXPECT_TRUE(RefusedWith(Replace("X\x07\x00\x00\x00storage"s, "X\x07\x00\x00\x00storagX"s), "persistent id 'storagX'"));
  EXPECT_TRUE(RefusedWith(Replace("cpuq\x04K\x0c", "cpuq\x04J\xff\xff\xff\xff"), "size in bytes"));
  EXPECT_TRUE(RefusedWith(Replace("QK\x00"s, "QJ\xff\xff\xff\xff"), "storage offset"));
  EXPECT_TRUE(RefusedWith(Replace("K\x03K\x01\x86", "K\x03\x85"), "2 sizes but 1 strides"));
  EXPECT_TRUE(RefusedWith(Replace("K\x02K\x03\x86", "K\x02J\xfd\xff\xff\xff\x86"), "the size"));
  EXPECT_TRUE(RefusedWith(Replace("\x89" "c", "K\x01" "c"), "requires_grad"));
  EXPECT_TRUE(RefusedWith(Replace(")Rq\x09", "N"), "backward hooks"));
  EXPECT_TRUE(RefusedWith(Replace("uint16\nq\nt", "uint16\nq\nNNt"), "9 arguments"));
  // The persistent id must be the 5-tuple torch.save writes.
  EXPECT_TRUE(RefusedWith(Replace("K\x0ctq\x05Q", "tq\x05Q"), "5-tuple"));
  // No persistent id where the storage belongs.
  EXPECT_TRUE(RefusedWith(Replace("tq\x05Q", "tq\x05"), "storage persistent id"));
}

TEST(TensorV3PickleTest, TruncationsAreErrorsNeverCrashes) {
  for (size_t cut = 0; cut < kTorchSaveUInt16.size(); ++cut) {
    EXPECT_FALSE(ParseRebuildTensorV3(absl::string_view(kTorchSaveUInt16).substr(0, cut)).ok()) << cut;
  }
}

std::string ReplaceInV2(absl::string_view from, absl::string_view to) {
  EXPECT_TRUE(absl::StrContains(kTorchSaveBFloat16, from)) << from;
  return absl::StrReplaceAll(kTorchSaveBFloat16, {{from, to}});
}

::testing::AssertionResult V2RefusedWith(absl::string_view pickle, absl::string_view needle) {
  return RefusedBy(ParseRebuildTensorV2, pickle, needle);
}

TEST(TensorV2PickleTest, ParsesWhatTorchSaveWrites) {
  absl::StatusOr<RebuildTensorCall> parsed = ParseRebuildTensorV2(kTorchSaveBFloat16);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  RebuildTensorCall expected;
  expected.version = 2;
  expected.dtype = DType::kBFloat16;
  expected.storage_key = "0";
  expected.storage_location = "cpu";
  expected.storage_bytes = 12;  // 6 elements of 2 bytes
  expected.sizes = {3, 2};
  expected.strides = {2, 1};
  EXPECT_EQ(*parsed, expected);
  EXPECT_EQ(ToString(*parsed),
            "_rebuild_tensor_v2(storage data/0 (12 bytes, cpu), offset 0, size (3, 2), stride (2, 1), bfloat16)");
  EXPECT_FALSE(CallsRebuildTensorV3(kTorchSaveBFloat16));
}

TEST(TensorV2PickleTest, EachLegacyStorageClassGivesItsDType) {
  const std::pair<absl::string_view, DType> kClasses[] = {
      {"FloatStorage", DType::kFloat32}, {"DoubleStorage", DType::kFloat64},  {"HalfStorage", DType::kFloat16},
      {"ByteStorage", DType::kUInt8},    {"CharStorage", DType::kInt8},       {"ShortStorage", DType::kInt16},
      {"IntStorage", DType::kInt32},     {"LongStorage", DType::kInt64},      {"BoolStorage", DType::kBool},
      {"ComplexFloatStorage", DType::kComplex64}, {"ComplexDoubleStorage", DType::kComplex128},
  };
  for (const auto& [name, dtype] : kClasses) {
    absl::StatusOr<RebuildTensorCall> parsed =
        ParseRebuildTensorV2(ReplaceInV2("\nBFloat16Storage\n", absl::StrCat("\n", name, "\n")));
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(parsed->dtype, dtype) << name;
    EXPECT_EQ(parsed->storage_bytes, 6 * ElementSize(dtype)) << name;
  }
}

TEST(TensorV2PickleTest, MalformedCallsAreRefused) {
  EXPECT_TRUE(V2RefusedWith(kTorchSaveUInt16, "expected a call of torch._utils._rebuild_tensor_v2"));
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("torch\nBFloat16Storage", "torch.storage\nUntypedStorage"),
                            "expected a typed storage class"));
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("torch\nBFloat16Storage", "torch\nQInt8Storage"),
                            "global 'torch.QInt8Storage' is not allowed"));
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("torch\nBFloat16Storage", "posix\nsystem"),
                            "global 'posix.system' is not allowed"));
  // 2^62 elements of 2 bytes: the storage's byte count overflows int64.
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("cpuq\x04K\x06", "cpuq\x04\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40"s),
                            "overflows int64"));
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("cpuq\x04K\x06", "cpuq\x04J\xff\xff\xff\xff"), "element count"));
  // A 7th argument (tensor metadata): LibTorch's reader decides about those.
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2(")Rq\x09t", ")Rq\x09}t"), "7 arguments (6 expected)"));
  EXPECT_TRUE(V2RefusedWith(ReplaceInV2("K\x02K\x01\x86", "K\x02\x85"), "2 sizes but 1 strides"));
  for (size_t cut = 0; cut < kTorchSaveBFloat16.size(); ++cut) {
    EXPECT_FALSE(ParseRebuildTensorV2(absl::string_view(kTorchSaveBFloat16).substr(0, cut)).ok()) << cut;
  }
}

}  // namespace
}  // namespace dcplan::pickle
