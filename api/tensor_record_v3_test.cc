// Tensor records of the dtypes LibTorch 2.x added (uint16/32/64, float8),
// which torch.save rebuilds with _rebuild_tensor_v3: read by dcplan's own
// restricted unpickler on LibTorch 2.x, refused by name on LibTorch 1.13.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "api/internal/torch_compat.h"
#include "api/tensor_record.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"

namespace dcplan {
namespace {

// A record PyTorch 2.13's torch.save wrote (testdata/torch_save_v3/README.md).
std::string PyTorchRecord(absl::string_view name) {
  std::optional<std::string> bytes =
      test_files::ReadFile(test_files::RunfilePath(absl::StrCat("api/testdata/torch_save_v3/", name)));
  EXPECT_TRUE(bytes.has_value()) << name;
  return bytes.value_or("");
}

#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED

// The tensor's elements' bytes in row-major order (the oracle: LibTorch's
// contiguous copy, not dcplan's reader).
std::vector<uint8_t> ElementBytes(const at::Tensor& t) {
  const at::Tensor dense = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(dense.data_ptr());
  return std::vector<uint8_t>(p, p + dense.numel() * dense.element_size());
}

// A torch.save archive holding `pickle` and the storage record data/0.
std::string Archive(const std::string& pickle, const std::string& storage) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) -> size_t {
    out.append(static_cast<const char*>(bytes), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeRecord("data/0", storage.data(), storage.size());
  writer.writeEndOfFile();
  return out;
}

// The data.pkl of the uint16 fixture (2x3 over a 12-byte storage).
std::string UInt16Pickle() {
  const std::string archive = PyTorchRecord("uint16_2x3.pt");
  std::istringstream stream(archive);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  auto [data, size] = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(data.get()), size);
}

TEST(TensorRecordV3Test, ReadsPyTorchsUInt16RecordBitwise) {
  const std::string archive = PyTorchRecord("uint16_2x3.pt");
  absl::StatusOr<at::Tensor> tensor = ReadTensorRecord(BufferRecordSource(archive));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->scalar_type(), c10::kUInt16);
  EXPECT_EQ(tensor->sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ElementBytes(*tensor), (std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(archive));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->dtype, c10::kUInt16);
  EXPECT_EQ(layout->strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(layout->storage_bytes, 12);
  EXPECT_TRUE(layout->IsDenseStorage());
  EXPECT_EQ(archive.substr(static_cast<size_t>(layout->data_offset), 12), std::string("\0\1\2\3\4\5\6\7\10\11\12\13", 12));
}

TEST(TensorRecordV3Test, ReadsPyTorchsFloat8ViewWithItsOffsetAndStride) {
  const std::string archive = PyTorchRecord("float8_e5m2_strided_view.pt");
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(archive));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->dtype, c10::kFloat8_e5m2);
  EXPECT_EQ(layout->sizes, (std::vector<int64_t>{4}));
  EXPECT_EQ(layout->strides, (std::vector<int64_t>{2}));
  EXPECT_EQ(layout->storage_offset, 1);
  EXPECT_EQ(layout->storage_bytes, 8);
  EXPECT_FALSE(layout->IsDenseStorage());
  absl::StatusOr<at::Tensor> tensor = ReadTensorRecord(BufferRecordSource(archive));
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->scalar_type(), c10::kFloat8_e5m2);
  EXPECT_EQ(ElementBytes(*tensor), (std::vector<uint8_t>{17, 19, 21, 23}));
}

TEST(TensorRecordV3Test, StorageAndViewMismatchesAreDataLoss) {
  const std::string pickle = UInt16Pickle();
  const std::string storage(12, '\x5a');
  ASSERT_TRUE(ReadTensorRecord(BufferRecordSource(Archive(pickle, storage))).ok());
  const auto expect_data_loss = [](const std::string& archive, absl::string_view needle) {
    for (const absl::Status& status : {ReadTensorRecord(BufferRecordSource(archive)).status(),
                                       ReadTensorRecordLayout(BufferRecordSource(archive)).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
      EXPECT_TRUE(absl::StrContains(status.message(), needle)) << status << " lacks " << needle;
    }
  };
  expect_data_loss(Archive(pickle, storage.substr(0, 10)), "holds 10 bytes, the pickle gives its storage 12");
  // Storage offset 1 pushes the 2x3 view one element past the 6-element storage.
  expect_data_loss(Archive(absl::StrReplaceAll(pickle, {{std::string("QK\0", 3), "QK\x01"}}), storage),
                   "outside its storage");
  // 11 bytes are no whole number of uint16 elements.
  expect_data_loss(Archive(absl::StrReplaceAll(pickle, {{"K\x0c", "K\x0b"}}), storage.substr(0, 11)),
                   "no whole number of uint16");
  // A size near 2^62 with stride 3: the reach is computed without overflow.
  expect_data_loss(Archive(absl::StrReplaceAll(pickle, {{"K\x02K\x03\x86", std::string("\x8a\x08\0\0\0\0\0\0\0\x40K\x03\x86", 13)}}),
                           storage),
                   "outside its storage");
  expect_data_loss(Archive(absl::StrReplaceAll(pickle, {{"torch\nuint16\n", "os\nsystem\n"}}), storage),
                   "global 'os.system' is not allowed");
}

#else  // LibTorch 1.13

// LibTorch 1.13 has none of these scalar types: a clear Unimplemented error
// naming the dtype, from both readers.
TEST(TensorRecordV3Test, LibTorch1RefusesTheDTypesItLacksByName) {
  for (const auto& [file, dtype] : {std::pair<const char*, const char*>{"uint16_2x3.pt", "uint16"},
                                    {"float8_e5m2_strided_view.pt", "float8_e5m2"}}) {
    const std::string archive = PyTorchRecord(file);
    for (const absl::Status& status : {ReadTensorRecord(BufferRecordSource(archive)).status(),
                                       ReadTensorRecordLayout(BufferRecordSource(archive)).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << file << ": " << status;
      EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat("dtype ", dtype))) << status;
    }
  }
}

#endif

TEST(TensorRecordV3Test, TruncatedAndDamagedRecordsAreErrorsNeverCrashes) {
  const std::string archive = PyTorchRecord("float8_e5m2_strided_view.pt");
  for (size_t cut = 0; cut < archive.size(); cut += 7) {
    const absl::string_view part = absl::string_view(archive).substr(0, cut);
    EXPECT_FALSE(ReadTensorRecord(BufferRecordSource(part)).ok()) << cut;
    EXPECT_FALSE(ReadTensorRecordLayout(BufferRecordSource(part)).ok()) << cut;
  }
  for (size_t i = 0; i < archive.size(); ++i) {
    std::string damaged = archive;
    damaged[i] ^= 0x21;
    absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(damaged));
    absl::StatusOr<at::Tensor> tensor = ReadTensorRecord(BufferRecordSource(damaged));
    if (layout.ok()) {
      EXPECT_LE(layout->data_offset + layout->storage_bytes, static_cast<int64_t>(damaged.size())) << i;
    }
    if (tensor.ok()) {
      EXPECT_EQ(tensor->numel(), 4) << i;
    }
  }
}

}  // namespace
}  // namespace dcplan
