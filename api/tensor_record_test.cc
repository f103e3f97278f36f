#include "api/tensor_record.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

absl::StatusOr<std::string> WriteToString(const at::Tensor& t) {
  std::string out;
  absl::StatusOr<int64_t> n = WriteTensorRecord(t, [&](const char* data, size_t size) {
    out.append(data, size);
    return absl::OkStatus();
  });
  if (!n.ok()) return n.status();
  EXPECT_EQ(*n, static_cast<int64_t>(out.size()));
  return out;
}

// LibTorch's own reader of torch.save archives.
at::Tensor LoadWithLibTorch(const std::string& archive) {
  return torch::jit::pickle_load(std::vector<char>(archive.begin(), archive.end())).toTensor();
}

TEST(TensorRecordTest, RoundTripsThroughLibTorchsReader) {
  const at::Tensor t = at::arange(12, at::kFloat).reshape({3, 4});
  absl::StatusOr<std::string> archive = WriteToString(t);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_TRUE(at::equal(LoadWithLibTorch(*archive), t));
}

TEST(TensorRecordTest, ReadsBackWhatItWrote) {
  const at::Tensor t = at::arange(24, at::kDouble).reshape({2, 3, 4}).permute({2, 0, 1});
  absl::StatusOr<std::string> archive = WriteToString(t);
  ASSERT_TRUE(archive.ok()) << archive.status();
  absl::StatusOr<at::Tensor> loaded = ReadTensorRecord(BufferRecordSource(*archive));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(at::equal(*loaded, t));
  // A value record is not a tensor record.
  absl::StatusOr<std::string> value = SaveValueRecord(c10::IValue(int64_t{3}));
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(ReadTensorRecord(BufferRecordSource(*value)).status().code(), absl::StatusCode::kDataLoss);
  // Truncated and corrupted archives are errors, never crashes.
  for (size_t cut = 0; cut < archive->size(); cut += 7) {
    EXPECT_FALSE(ReadTensorRecord(BufferRecordSource(absl::string_view(*archive).substr(0, cut))).ok()) << cut;
  }
}

TEST(TensorRecordTest, ViewsStoreOnlyTheirOwnElements) {
  const at::Tensor base = at::arange(1000, at::kLong).reshape({10, 100});
  const at::Tensor view = base.narrow(0, 2, 3).narrow(1, 10, 5);  // 15 elements, non-contiguous
  absl::StatusOr<std::string> archive = WriteToString(view);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const at::Tensor loaded = LoadWithLibTorch(*archive);
  EXPECT_TRUE(at::equal(loaded, view));
  EXPECT_EQ(loaded.storage().nbytes(), 15u * 8u);
  // The whole base would not fit: the archive holds the view's bytes only.
  EXPECT_LT(archive->size(), 1000u);
}

TEST(TensorRecordTest, ZeroDimAndEmptyTensors) {
  for (const at::Tensor& t : {at::scalar_tensor(3.5, at::kDouble), at::zeros({0, 4}, at::kInt)}) {
    absl::StatusOr<std::string> archive = WriteToString(t);
    ASSERT_TRUE(archive.ok()) << archive.status();
    const at::Tensor loaded = LoadWithLibTorch(*archive);
    EXPECT_EQ(loaded.sizes(), t.sizes());
    EXPECT_TRUE(at::equal(loaded, t));
  }
}

TEST(TensorRecordTest, SinkErrorsAbortTheWrite) {
  int calls = 0;
  absl::StatusOr<int64_t> n = WriteTensorRecord(at::ones({4}), [&](const char*, size_t) {
    ++calls;
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 1);
}

TEST(TensorRecordTest, UnsupportedInputsAreErrors) {
  EXPECT_FALSE(WriteToString(at::Tensor()).ok());
  EXPECT_FALSE(WriteToString(at::empty({2}, at::TensorOptions().device(at::kMeta))).ok());
  EXPECT_FALSE(WriteToString(at::zeros({2}, at::kComplexHalf)).ok());
}

TEST(ValueRecordTest, RoundTripsValues) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("lr", 0.001);
  dict.insert("betas", c10::ivalue::Tuple::create({0.9, 0.999}));
  dict.insert("name", std::string("adam"));
  absl::StatusOr<std::string> bytes = SaveValueRecord(dict);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<c10::IValue> value = LoadValueRecord(*bytes);
  ASSERT_TRUE(value.ok()) << value.status();
  auto loaded = value->toGenericDict();
  EXPECT_DOUBLE_EQ(loaded.at("lr").toDouble(), 0.001);
  EXPECT_EQ(loaded.at("name").toStringRef(), "adam");
  EXPECT_EQ(loaded.at("betas").toTuple()->elements().size(), 2u);
}

TEST(ValueRecordTest, MalformedArchivesAreErrors) {
  EXPECT_FALSE(LoadValueRecord("").ok());
  EXPECT_FALSE(LoadValueRecord("PK\x03\x04 not a zip").ok());
  absl::StatusOr<std::string> bytes = SaveValueRecord(c10::IValue(int64_t{7}));
  ASSERT_TRUE(bytes.ok());
  for (size_t cut : {size_t{1}, bytes->size() / 2, bytes->size() - 1}) {
    EXPECT_FALSE(LoadValueRecord(absl::string_view(*bytes).substr(0, cut)).ok()) << cut;
  }
}

// Python torch (Debian's python3-torch) loads the records with
// weights_only=True, the mode PyTorch's DCP reader uses for tensor items.
TEST(TensorRecordTest, PythonTorchLoadsRecordsWithWeightsOnly) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/records");
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p ", dir).c_str()), 0);
  struct Case {
    std::string name;
    at::Tensor tensor;
    std::string dtype;
  };
  const std::vector<Case> cases = {
      {"f32", at::arange(6, at::kFloat).reshape({2, 3}), "float32"},
      {"f64_view", at::arange(20, at::kDouble).reshape({4, 5}).t().narrow(0, 1, 2), "float64"},
      {"i64", at::arange(-3, 3, at::kLong), "int64"},
      {"i32", at::arange(4, at::kInt), "int32"},
      {"i16", at::arange(4, at::kShort), "int16"},
      {"i8", at::arange(-2, 2, at::kChar), "int8"},
      {"u8", at::arange(250, 254, at::kByte), "uint8"},
      {"bool", at::arange(4, at::kLong).remainder(2).to(at::kBool), "bool"},
      {"f16", at::arange(3, at::kHalf), "float16"},
      {"bf16", at::arange(3, at::kBFloat16), "bfloat16"},
      {"scalar", at::scalar_tensor(2.5, at::kFloat), "float32"},
      {"empty", at::zeros({0, 3}, at::kFloat), "float32"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> archive = WriteToString(c.tensor);
    ASSERT_TRUE(archive.ok()) << c.name << ": " << archive.status();
    std::ofstream(absl::StrCat(dir, "/", c.name, ".pt"), std::ios::binary) << *archive;
    std::ofstream expect(absl::StrCat(dir, "/", c.name, ".expect"));
    expect << c.dtype;
    for (int64_t s : c.tensor.sizes()) expect << " " << s;
    expect << "\n";
    const at::Tensor flat = c.tensor.reshape({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const at::Tensor e = flat[i];
      if (c.dtype == "bool") {
        expect << (e.item<bool>() ? "True" : "False") << "\n";
      } else if (e.is_floating_point()) {
        expect << e.item<double>() << "\n";
      } else {
        expect << e.item<int64_t>() << "\n";
      }
    }
  }
  const std::string command = absl::StrCat("/usr/bin/python3 api/testdata/check_tensor_record.py ", dir);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace dcplan
