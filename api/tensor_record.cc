#include "api/tensor_record.h"

#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
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

}  // namespace

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
    std::string what = e.what();
    // LibTorch appends a C++ backtrace to its messages; the first line says it.
    what = what.substr(0, what.find('\n'));
    return absl::DataLossError(absl::StrCat("cannot read a saved value (torch.save archive of ", archive.size(),
                                            " bytes): ", what));
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
