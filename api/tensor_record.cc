#include "api/tensor_record.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <exception>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/internal/tensor_pickle.h"

namespace dcplan {
namespace {

// A tensor written as is must own exactly its elements, laid out densely from
// the start of its storage (what PyTorch's DCP writer ensures by cloning).
bool OwnsExactlyItsElements(const at::Tensor& t) {
  return t.is_contiguous() && t.storage_offset() == 0 &&
         t.storage().nbytes() == static_cast<size_t>(t.numel()) * t.element_size();
}

// Pickle opcodes framing a whole pickle of protocol 2 or later.
constexpr unsigned char kPickleProto = 0x80;
constexpr unsigned char kPickleStop = '.';

// LibTorch's archive reader over bytes in memory; reads past the end are
// short (LibTorch's own MemoryReadAdapter does not check bounds).
class BoundedMemoryAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedMemoryAdapter(absl::string_view bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t available = std::min<size_t>(n, bytes_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes_.data() + pos, available);
    return available;
  }

 private:
  absl::string_view bytes_;
};

// LibTorch appends a C++ backtrace to its messages; the first line says it.
std::string FirstLine(const std::exception& e) {
  std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

}  // namespace

absl::Status CheckTorchSaveArchive(absl::string_view archive) {
  auto not_an_archive = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("not a readable torch.save archive (", archive.size(), " bytes): ", why));
  };
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedMemoryAdapter>(archive));
    if (!reader.hasRecord("data.pkl")) return not_an_archive("no data.pkl record");
    for (const std::string& name : reader.getAllRecords()) reader.getRecord(name);
    const auto [pickle, size] = reader.getRecord("data.pkl");
    const auto* bytes = static_cast<const unsigned char*>(pickle.get());
    if (size < 2 || bytes[0] != kPickleProto || bytes[size - 1] != kPickleStop) {
      return not_an_archive("data.pkl is not a whole pickle (PROTO ... STOP)");
    }
  } catch (const std::exception& e) {
    return not_an_archive(FirstLine(e));
  }
  return absl::OkStatus();
}

absl::Status BufferRecordSource::ReadAt(int64_t offset, void* out, int64_t n) const {
  if (offset < 0 || n < 0 || offset > size() || n > size() - offset) {
    return absl::OutOfRangeError(absl::StrCat("read of ", n, " bytes at offset ", offset, " is outside the ",
                                              size(), "-byte record"));
  }
  if (n > 0) std::memcpy(out, bytes_.data() + offset, static_cast<size_t>(n));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> WriteTensorRecord(const at::Tensor& tensor, const ByteSink& sink) {
  if (!tensor.defined()) return absl::InvalidArgumentError("cannot save an undefined tensor");
  if (!tensor.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor record: expected a CPU tensor, got one on ",
                                                   tensor.device().str()));
  }
  if (tensor.layout() != at::kStrided) return absl::InvalidArgumentError("tensor record: only strided tensors");
  const at::Tensor data = OwnsExactlyItsElements(tensor) ? tensor : tensor.clone(at::MemoryFormat::Contiguous);
  absl::StatusOr<std::string> pickle = internal::TensorDataPickle(data);
  if (!pickle.ok()) return pickle.status();

  int64_t written = 0;
  absl::Status sink_status;
  try {
    // After a sink error the remaining bytes are dropped but reported as
    // written: LibTorch's writer throws from its destructor on a short write,
    // which would terminate the process.
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) -> size_t {
      if (sink_status.ok()) {
        sink_status = sink(static_cast<const char*>(bytes), n);
        if (sink_status.ok()) written += static_cast<int64_t>(n);
      }
      return n;
    });
    writer.writeRecord("data.pkl", pickle->data(), pickle->size());
    writer.writeRecord("data/0", data.data_ptr(), data.storage().nbytes());
    writer.writeEndOfFile();
  } catch (const std::exception& e) {
    if (!sink_status.ok()) return sink_status;
    return absl::InternalError(absl::StrCat("tensor record: LibTorch's archive writer failed: ", e.what()));
  }
  if (!sink_status.ok()) return sink_status;
  return written;
}

absl::StatusOr<std::string> SaveValueRecord(const c10::IValue& value) {
  try {
    std::vector<char> bytes = torch::jit::pickle_save(value);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialize value of type ", value.tagKind(), ": ",
                                                   e.what()));
  }
}

absl::StatusOr<c10::IValue> LoadValueRecord(absl::string_view archive) {
  try {
    return torch::jit::pickle_load(std::vector<char>(archive.begin(), archive.end()));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("cannot read a saved value (torch.save archive of ", archive.size(),
                                            " bytes): ", FirstLine(e)));
  }
}

absl::StatusOr<at::Tensor> ReadTensorRecord(const RecordSource& source) {
  std::string bytes(static_cast<size_t>(source.size()), '\0');
  absl::Status read = source.ReadAt(0, bytes.data(), source.size());
  if (!read.ok()) return read;
  absl::StatusOr<c10::IValue> value = LoadValueRecord(bytes);
  if (!value.ok()) return value.status();
  if (!value->isTensor()) {
    return absl::DataLossError(absl::StrCat("expected a tensor record, found a saved ", value->tagKind()));
  }
  at::Tensor tensor = value->toTensor();
  if (!tensor.device().is_cpu() || tensor.layout() != at::kStrided) {
    return absl::DataLossError("tensor record does not hold a strided CPU tensor");
  }
  return tensor;
}

}  // namespace dcplan
