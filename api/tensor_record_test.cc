#include "api/tensor_record.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <random>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "absl/strings/str_cat.h"
#include "api/internal/checksums.h"
#include "api/internal/crc32.h"
#include "api/internal/tensor_pickle.h"
#include "api/internal/torch_compat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"

namespace dcplan {
namespace {

absl::StatusOr<std::string> WriteToString(const at::Tensor& t) {
  std::string out;
  absl::StatusOr<WrittenRecord> n = WriteTensorRecord(t, [&](const char* data, size_t size) {
    out.append(data, size);
    return absl::OkStatus();
  });
  if (!n.ok()) return n.status();
  EXPECT_EQ(n->bytes, static_cast<int64_t>(out.size()));
  EXPECT_EQ(n->crc32, internal::Crc32Portable(0, out.data(), out.size()));
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
  absl::StatusOr<WrittenRecord> n = WriteTensorRecord(at::ones({4}), [&](const char*, size_t) {
    ++calls;
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 1);
}

TEST(TensorRecordTest, UnsupportedInputsAreErrors) {
  EXPECT_FALSE(WriteToString(at::Tensor()).ok());
  EXPECT_FALSE(WriteToString(at::empty({2}, at::TensorOptions().device(at::kMeta))).ok());
#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
  // Like torch.save in 2.x: complex32 has no legacy storage class, so it goes
  // through _rebuild_tensor_v3.
  EXPECT_TRUE(WriteToString(at::zeros({2}, at::kComplexHalf)).ok());
  EXPECT_FALSE(WriteToString(at::zeros({2}, c10::kFloat8_e8m0fnu)).ok());
#else
  EXPECT_FALSE(WriteToString(at::zeros({2}, at::kComplexHalf)).ok());
#endif
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

struct PythonCase {
  std::string name;
  at::Tensor tensor;
  std::string dtype;
};

std::vector<PythonCase> LegacyDTypeCases() {
  return {
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
}

// Writes NAME.pt and NAME.expect for check_tensor_record.py into a fresh
// directory, which it returns.
std::string WriteRecordsForPython(const std::vector<PythonCase>& cases) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/records_", cases.size());
  EXPECT_EQ(std::system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()), 0);
  for (const PythonCase& c : cases) {
    absl::StatusOr<std::string> archive = WriteToString(c.tensor);
    EXPECT_TRUE(archive.ok()) << c.name << ": " << archive.status();
    if (!archive.ok()) continue;
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
        expect << e.to(at::kLong).item<int64_t>() << "\n";
      }
    }
  }
  return dir;
}

// Python torch loads the records with weights_only=True, the mode PyTorch's
// DCP reader uses for tensor items: Debian's torch 1.13 ...
TEST(TensorRecordTest, PythonTorch1LoadsRecordsWithWeightsOnly) {
  const std::string dir = WriteRecordsForPython(LegacyDTypeCases());
  const std::string command = absl::StrCat("/usr/bin/python3 api/testdata/check_tensor_record.py ", dir);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

// ... and PyTorch 2.13 from tools/setup's venv, with the dtypes 2.x added
// (written with _rebuild_tensor_v3 over an untyped storage) when this
// LibTorch has them.
TEST(TensorRecordTest, PyTorch2LoadsRecordsWithWeightsOnly) {
  std::vector<PythonCase> cases = LegacyDTypeCases();
#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
  const at::Tensor small = at::arange(5, at::kLong);
  cases.push_back({"u16", (small * 16000).to(c10::kUInt16), "uint16"});
  cases.push_back({"u32", (small * 1000000000).to(c10::kUInt32), "uint32"});
  cases.push_back({"u64", (small * 2000000000000000000).to(c10::kUInt64).reshape({5, 1}), "uint64"});
  cases.push_back({"f8e4m3fn", (small.to(at::kFloat) * 0.5).to(c10::kFloat8_e4m3fn), "float8_e4m3fn"});
  cases.push_back({"f8e5m2", (small.to(at::kFloat) * -4).to(c10::kFloat8_e5m2), "float8_e5m2"});
  cases.push_back({"f8e4m3fnuz", (small.to(at::kFloat) * 0.25).to(c10::kFloat8_e4m3fnuz), "float8_e4m3fnuz"});
  cases.push_back({"f8e5m2fnuz", (small.to(at::kFloat) * 8).to(c10::kFloat8_e5m2fnuz), "float8_e5m2fnuz"});
#endif
  const std::string dir = WriteRecordsForPython(cases);
  const std::string command =
      absl::StrCat(test_files::VenvPython(), " api/testdata/check_tensor_record.py ", dir);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

#if DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED
// The dtypes LibTorch 2.x added are written bitwise as torch.save writes them.
TEST(TensorRecordTest, WritesTheDTypesOfLibTorch2) {
  const at::Tensor bits = at::arange(0, 256, at::kInt).to(at::kByte).reshape({16, 16});
  for (c10::ScalarType dtype : {c10::kUInt16, c10::kUInt32, c10::kUInt64, c10::kFloat8_e4m3fn, c10::kFloat8_e5m2,
                                c10::kFloat8_e4m3fnuz, c10::kFloat8_e5m2fnuz}) {
    const at::Tensor t = bits.view(dtype);
    absl::StatusOr<std::string> archive = WriteToString(t);
    ASSERT_TRUE(archive.ok()) << c10::toString(dtype) << ": " << archive.status();
    std::istringstream stream(*archive);
    caffe2::serialize::PyTorchStreamReader reader(&stream);
    auto [data, size] = reader.getRecord("data/0");
    EXPECT_EQ(std::string(static_cast<const char*>(data.get()), size),
              std::string(static_cast<const char*>(bits.data_ptr()), 256));
    // LibTorch's own unpickler (2.13) does not know _rebuild_tensor_v3:
    // dcplan's restricted one reads these records, bitwise.
    absl::StatusOr<at::Tensor> loaded = ReadTensorRecord(BufferRecordSource(*archive));
    ASSERT_TRUE(loaded.ok()) << c10::toString(dtype) << ": " << loaded.status();
    EXPECT_EQ(loaded->scalar_type(), dtype);
    EXPECT_EQ(loaded->sizes(), t.sizes());
    const at::Tensor dense = loaded->contiguous();
    EXPECT_EQ(std::string(static_cast<const char*>(dense.data_ptr()), 256),
              std::string(static_cast<const char*>(bits.data_ptr()), 256))
        << c10::toString(dtype);
    absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(*archive));
    ASSERT_TRUE(layout.ok()) << c10::toString(dtype) << ": " << layout.status();
    EXPECT_EQ(layout->dtype, dtype);
    EXPECT_EQ(layout->sizes, t.sizes().vec());
    EXPECT_EQ(layout->storage_bytes, 256);
    EXPECT_TRUE(layout->IsDenseStorage());
    EXPECT_EQ(archive->substr(static_cast<size_t>(layout->data_offset), 256),
              std::string(static_cast<const char*>(bits.data_ptr()), 256));
  }
}
#endif

// --- The streamed writer and the layout reader ----------------------------------------

// What WriteTensorRecord wrote before it streamed: LibTorch's own
// PyTorchStreamWriter, fed the same data.pkl and storage.
std::string WriteWithLibTorchsWriter(const at::Tensor& tensor) {
  const bool owns = tensor.is_contiguous() && tensor.storage_offset() == 0 &&
                    tensor.storage().nbytes() == static_cast<size_t>(tensor.numel()) * tensor.element_size();
  const at::Tensor data = owns ? tensor : tensor.clone(at::MemoryFormat::Contiguous);
  const std::string pickle = *internal::TensorDataPickle(data);
  std::string out;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) -> size_t {
      out.append(static_cast<const char*>(bytes), n);
      return n;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    writer.writeRecord("data/0", data.data_ptr(), data.storage().nbytes());
    writer.writeEndOfFile();
  }
  return out;
}

TEST(TensorRecordTest, StreamedArchivesAreByteForByteLibTorchs) {
  std::vector<at::Tensor> tensors = {
      at::scalar_tensor(3.5, at::kDouble),
      at::zeros({0, 4}, at::kInt),
      at::ones({1}, at::kBool),
      at::arange(12, at::kFloat).reshape({3, 4}),
      at::arange(24, at::kDouble).reshape({2, 3, 4}).permute({2, 0, 1}),
      at::arange(1000, at::kFloat).to(at::kBFloat16),
      at::arange(300000, at::kFloat),  // 1.2 MB: several blocks, the last one partial
      at::arange(5 << 20, at::kByte),  // 5 MiB: CRC-32 on its own thread
  };
  // Every padding length: records of 1..130 bytes.
  for (int64_t n = 1; n <= 130; ++n) tensors.push_back(at::arange(n, at::kByte));
  for (const at::Tensor& t : tensors) {
    absl::StatusOr<std::string> streamed = WriteToString(t);
    ASSERT_TRUE(streamed.ok()) << streamed.status();
#if TORCH_VERSION_MAJOR < 2
    EXPECT_TRUE(*streamed == WriteWithLibTorchsWriter(t)) << t.sizes() << " " << t.scalar_type();
#else
    // LibTorch 2.x's writer adds records of its own (byteorder,
    // .format_version, .storage_alignment, a random .data/serialization_id),
    // so only the records dcplan writes are compared.
    const std::string libtorchs = WriteWithLibTorchsWriter(t);
    std::istringstream our_stream(*streamed);
    std::istringstream their_stream(libtorchs);
    caffe2::serialize::PyTorchStreamReader ours(&our_stream);
    caffe2::serialize::PyTorchStreamReader theirs(&their_stream);
    for (const char* name : {"data.pkl", "data/0"}) {
      auto [our_data, our_size] = ours.getRecord(name);
      auto [their_data, their_size] = theirs.getRecord(name);
      EXPECT_EQ(std::string(static_cast<const char*>(our_data.get()), our_size),
                std::string(static_cast<const char*>(their_data.get()), their_size))
          << name << " of " << t.sizes() << " " << t.scalar_type();
    }
#endif
  }
}

TEST(TensorRecordTest, SinkSeesTheTensorInBoundedBlocks) {
  const at::Tensor t = at::arange(600000, at::kFloat);  // 2.4 MB
  size_t largest = 0;
  int64_t total = 0;
  absl::StatusOr<WrittenRecord> n = WriteTensorRecord(t, [&](const char*, size_t size) {
    largest = std::max(largest, size);
    total += static_cast<int64_t>(size);
    return absl::OkStatus();
  });
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->bytes, total);
  EXPECT_EQ(largest, kTensorRecordBlockBytes);
}

TEST(TensorRecordTest, TheRecordedCrcIsTheArchivesWhateverTheTensorSize) {
  // Below and above the size whose CRC-32 runs on a thread of its own (4 MiB).
  for (int64_t elements : {int64_t{0}, int64_t{3}, int64_t{300000}, int64_t{1500001}}) {
    absl::StatusOr<std::string> archive = WriteToString(at::arange(elements, at::kFloat) * 0.5);
    ASSERT_TRUE(archive.ok()) << archive.status();  // WriteToString compares the CRC
  }
}

TEST(Crc32Test, MatchesTheStandardAndTheTableAlgorithm) {
  // The CRC-32 check value (ISO-HDLC / ZIP).
  EXPECT_EQ(internal::Crc32(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(internal::Crc32Portable(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(internal::Crc32(0, "", 0), 0u);
  std::mt19937 random(7);
  std::vector<unsigned char> bytes(5000);
  for (unsigned char& b : bytes) b = static_cast<unsigned char>(random());
  // Every length around the 16- and 64-byte steps of the folding path, at unaligned starts.
  for (size_t size = 0; size < 600; ++size) {
    for (size_t start : {size_t{0}, size_t{1}, size_t{13}}) {
      ASSERT_EQ(internal::Crc32(0xDEADBEEFu, bytes.data() + start, size),
                internal::Crc32Portable(0xDEADBEEFu, bytes.data() + start, size))
          << size << " " << start;
    }
  }
  // Chaining: a message in two parts.
  const uint32_t whole = internal::Crc32(0, bytes.data(), bytes.size());
  EXPECT_EQ(internal::Crc32(internal::Crc32(0, bytes.data(), 1234), bytes.data() + 1234, bytes.size() - 1234), whole);
  EXPECT_EQ(whole, internal::Crc32Portable(0, bytes.data(), bytes.size()));
}

// An item starts anywhere in its data file; its tensor's bytes are padded to
// a 64-byte boundary of the file, and the archive stays readable by both
// readers and its CRC-32 right.
TEST(TensorRecordTest, AlignsTheTensorsBytesToTheFileNotTheArchive) {
  const at::Tensor t = at::arange(100, at::kFloat);
  for (const int64_t file_offset : {int64_t{0}, int64_t{1}, int64_t{37}, int64_t{63}, int64_t{64}, int64_t{700},
                                    int64_t{1} << 33}) {
    std::string archive;
    absl::StatusOr<WrittenRecord> written = WriteTensorRecord(
        t,
        [&](const char* data, size_t size) {
          archive.append(data, size);
          return absl::OkStatus();
        },
        file_offset);
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(written->crc32, internal::Crc32Portable(0, archive.data(), archive.size()));
    absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(archive));
    ASSERT_TRUE(layout.ok()) << "file offset " << file_offset << ": " << layout.status();
    EXPECT_EQ((file_offset + layout->data_offset) % 64, 0) << "file offset " << file_offset;
    EXPECT_TRUE(at::equal(LoadWithLibTorch(archive), t)) << "file offset " << file_offset;
    absl::StatusOr<at::Tensor> ours = ReadTensorRecord(BufferRecordSource(archive));
    ASSERT_TRUE(ours.ok()) << ours.status();
    EXPECT_TRUE(at::equal(*ours, t));
    EXPECT_TRUE(CheckTorchSaveArchive(archive).ok());
  }
}

TEST(TensorRecordLayoutTest, LocatesTheTensorsBytesInOurArchives) {
  const at::Tensor t = at::arange(24, at::kDouble).reshape({2, 3, 4}).permute({2, 0, 1});
  absl::StatusOr<std::string> archive = WriteToString(t);
  ASSERT_TRUE(archive.ok());
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(*archive));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->dtype, at::kDouble);
  EXPECT_EQ(layout->sizes, (std::vector<int64_t>{4, 2, 3}));
  // Written as a contiguous copy: row-major strides, the whole storage.
  EXPECT_EQ(layout->strides, (std::vector<int64_t>{6, 3, 1}));
  EXPECT_EQ(layout->storage_offset, 0);
  EXPECT_EQ(layout->storage_bytes, 24 * 8);
  EXPECT_TRUE(layout->IsDenseStorage());
  EXPECT_EQ(layout->data_offset % 64, 0);
  const at::Tensor dense = t.contiguous();
  EXPECT_EQ(archive->substr(layout->data_offset, 24 * 8),
            std::string(static_cast<const char*>(dense.data_ptr()), 24 * 8));
  EXPECT_EQ(layout->data_crc32, internal::Crc32(0, dense.data_ptr(), 24 * 8));

  // An empty tensor has no bytes; a value record is not a tensor record.
  absl::StatusOr<std::string> empty = WriteToString(at::zeros({0, 3}, at::kFloat));
  ASSERT_TRUE(empty.ok());
  absl::StatusOr<TensorRecordLayout> empty_layout = ReadTensorRecordLayout(BufferRecordSource(*empty));
  ASSERT_TRUE(empty_layout.ok()) << empty_layout.status();
  EXPECT_EQ(empty_layout->storage_bytes, 0);
  EXPECT_EQ(empty_layout->sizes, (std::vector<int64_t>{0, 3}));
  absl::StatusOr<std::string> value = SaveValueRecord(c10::IValue(int64_t{3}));
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(ReadTensorRecordLayout(BufferRecordSource(*value)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(TensorRecordLayoutTest, DamagedArchivesAreErrorsNeverCrashes) {
  absl::StatusOr<std::string> archive = WriteToString(at::arange(40, at::kFloat).reshape({8, 5}));
  ASSERT_TRUE(archive.ok());
  for (size_t cut = 0; cut < archive->size(); cut += 5) {
    EXPECT_FALSE(ReadTensorRecordLayout(BufferRecordSource(absl::string_view(*archive).substr(0, cut))).ok()) << cut;
  }
  // Flipped bytes outside the tensor's own bytes: an error or (padding,
  // unused fields) the same layout, never a crash or a view outside the storage.
  for (size_t i = 0; i < archive->size(); ++i) {
    std::string damaged = *archive;
    damaged[i] ^= 0x21;
    absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(damaged));
    if (!layout.ok()) continue;
    EXPECT_LE(layout->data_offset + layout->storage_bytes, static_cast<int64_t>(damaged.size())) << i;
    EXPECT_EQ(layout->storage_bytes, 160) << i;
  }
}

// PyTorch 2.13's torch.save of a view stores the whole base storage and the
// view's offset and strides: the layout must say so.
TEST(TensorRecordLayoutTest, PythonWrittenViewsKeepTheirOffsetAndStrides) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/python_view.pt");
  const std::string command = absl::StrCat(
      test_files::VenvPython(), " -c \"import torch; b = torch.arange(30, dtype=torch.float32).reshape(5, 6); "
      "torch.save(b[1:4, 2:5], '", path, "')\"");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string archive = text.str();
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(archive));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->sizes, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(layout->strides, (std::vector<int64_t>{6, 1}));
  EXPECT_EQ(layout->storage_offset, 1 * 6 + 2);
  EXPECT_EQ(layout->storage_bytes, 30 * 4);
  EXPECT_FALSE(layout->IsDenseStorage());
  // The view rebuilt from the located bytes is the one LibTorch's reader builds.
  at::Tensor storage = at::empty({30}, at::kFloat);
  std::memcpy(storage.data_ptr(), archive.data() + layout->data_offset, 30 * 4);
  const at::Tensor view = storage.as_strided(layout->sizes, layout->strides, layout->storage_offset);
  absl::StatusOr<at::Tensor> whole = ReadTensorRecord(BufferRecordSource(archive));
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(at::equal(view, *whole));
  absl::StatusOr<c10::IValue> libtorch = LoadValueRecord(archive);
  ASSERT_TRUE(libtorch.ok()) << libtorch.status();
  EXPECT_TRUE(at::equal(view, libtorch->toTensor()));
  EXPECT_EQ(whole->strides(), libtorch->toTensor().strides());
  EXPECT_EQ(whole->storage_offset(), libtorch->toTensor().storage_offset());
  EXPECT_TRUE(at::equal(view, at::arange(30, at::kFloat).reshape({5, 6}).narrow(0, 1, 3).narrow(1, 2, 3)));
}

// dcplan decodes the _rebuild_tensor_v2 records torch.save writes itself
// (no LibTorch unpickler per item): for every dtype with a legacy storage
// class it must find what LibTorch's own reader builds.
TEST(TensorRecordLayoutTest, CanonicalV2RecordsDecodeAsLibTorchDecodesThem) {
  const std::vector<at::ScalarType> types = {at::kFloat, at::kDouble, at::kHalf,  at::kBFloat16,
                                             at::kByte,  at::kChar,   at::kShort, at::kInt,
                                             at::kLong,  at::kBool,   at::kComplexFloat, at::kComplexDouble};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {7}, {3, 5}, {2, 1, 4}};
  for (const at::ScalarType type : types) {
    for (const std::vector<int64_t>& shape : shapes) {
      const int64_t numel = c10::multiply_integers(shape);
      const at::Tensor t = at::arange(numel, at::kDouble).reshape(shape).to(type);
      absl::StatusOr<std::string> archive = WriteToString(t);
      ASSERT_TRUE(archive.ok()) << archive.status();
      absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(*archive));
      ASSERT_TRUE(layout.ok()) << c10::toString(type) << ": " << layout.status();
      EXPECT_TRUE(layout->read_by_dcplan) << c10::toString(type);
      absl::StatusOr<c10::IValue> libtorch = LoadValueRecord(*archive);
      ASSERT_TRUE(libtorch.ok()) << libtorch.status();
      const at::Tensor expected = libtorch->toTensor();
      EXPECT_EQ(layout->dtype, expected.scalar_type());
      EXPECT_EQ(layout->sizes, expected.sizes().vec()) << c10::toString(type);
      EXPECT_EQ(layout->strides, expected.strides().vec()) << c10::toString(type);
      EXPECT_EQ(layout->storage_offset, expected.storage_offset());
      EXPECT_EQ(layout->storage_bytes, static_cast<int64_t>(expected.storage().nbytes()));
      absl::StatusOr<at::Tensor> read = ReadTensorRecord(BufferRecordSource(*archive));
      ASSERT_TRUE(read.ok()) << read.status();
      EXPECT_TRUE(at::equal(*read, expected)) << c10::toString(type);
    }
  }
}

}  // namespace
}  // namespace dcplan
