#ifndef DCPLAN_API_TENSOR_RECORD_H_
#define DCPLAN_API_TENSOR_RECORD_H_

// One item's payload in torch.save format (spec/format.md §3, §6): a ZIP
// archive (folder "archive", stored records, 64-byte aligned data) whose
// data.pkl rebuilds a tensor with torch._utils._rebuild_tensor_v2 from the
// storage record data/0, or pickles any other value.
//
// Writing streams: the tensor's bytes go from its memory to the sink without
// an intermediate copy, in blocks (api/internal/torch_zip.h writes the ZIP
// container exactly as LibTorch's PyTorchStreamWriter does; archives of 4 GiB
// or more go through PyTorchStreamWriter itself). Reading decodes data.pkl
// with dcplan's restricted unpickler (api/pickle/tensor_v3_pickle.h) for the
// records torch.save writes (_rebuild_tensor_v2 over a CPU storage) and for
// those rebuilt by torch._utils._rebuild_tensor_v3 (the dtypes 2.x added:
// uint16/32/64, float8; LibTorch's unpickler does not know that function),
// and with LibTorch's own torch.save reader for anything else;
// ReadTensorRecordLayout locates the tensor's bytes without reading them, so
// that a caller can read them where they belong.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace dcplan {

// Receives consecutive bytes of an archive. A non-OK status aborts the write.
using ByteSink = std::function<absl::Status(const char* data, size_t size)>;

// What WriteTensorRecord handed to its sink.
struct WrittenRecord {
  int64_t bytes = 0;
  // The CRC-32 (api/internal/crc32.h) of all those bytes, joined from the
  // CRC-32s the ZIP records need (Crc32Combine): no second pass.
  uint32_t crc32 = 0;

  friend bool operator==(const WrittenRecord& a, const WrittenRecord& b) {
    return a.bytes == b.bytes && a.crc32 == b.crc32;
  }
  friend bool operator!=(const WrittenRecord& a, const WrittenRecord& b) { return !(a == b); }
  template <typename Sink>
  friend void AbslStringify(Sink& sink, const WrittenRecord& r) {
    absl::Format(&sink, "%d bytes, CRC-32 %08x", r.bytes, r.crc32);
  }
};

// torch.save(tensor) of a CPU tensor, streamed to `sink`. A tensor that does
// not own exactly its elements (a view, an offset into a larger storage) is
// written as a contiguous copy, so only the item's own elements are stored. The
// sink sees the tensor's bytes in blocks of at most kTensorRecordBlockBytes,
// straight from the tensor's memory. `file_offset` is where the archive starts
// in the file the sink writes to: the tensor's bytes are padded to a 64-byte
// boundary of that file (TorchZipWriter), which speeds up both the write and a
// later read into aligned memory. Archives too large for TorchZipWriter
// (kTorchZipWriterLimit, about 4 GiB) go through LibTorch's writer, whose
// padding is relative to the archive: `file_offset` is unused there. Errors:
// non-CPU tensor, unsupported dtype, sink errors.
absl::StatusOr<WrittenRecord> WriteTensorRecord(const at::Tensor& tensor, const ByteSink& sink,
                                                int64_t file_offset = 0);

// The largest block of tensor bytes WriteTensorRecord hands its sink. Small
// enough that a block the sink has just copied is still in L2 when the
// block's CRC-32 is computed inline (ranks on every core); large enough that
// the write calls cost little.
inline constexpr size_t kTensorRecordBlockBytes = size_t{256} << 10;

// torch.save(value) for a non-tensor value (torch::pickle_save), in memory:
// bytes values are small. Errors: values LibTorch cannot pickle.
absl::StatusOr<std::string> SaveValueRecord(const c10::IValue& value);

// torch.load of a BYTE_IO payload (torch::pickle_load; LibTorch's unpickler
// builds only TorchScript types, it executes nothing). Errors: malformed
// archives or pickles, never a crash.
absl::StatusOr<c10::IValue> LoadValueRecord(absl::string_view archive);

// OK if `archive` is a readable torch.save archive: a ZIP whose records all
// read back, with a data.pkl record that is framed like a whole pickle
// (starts with PROTO, ends with STOP). Says nothing about whether LibTorch
// can build the pickled value: a Python `bytes` or numpy array passes this
// check and fails LoadValueRecord. Errors (DataLoss): a truncated or
// malformed ZIP, a missing or unframed data.pkl.
absl::Status CheckTorchSaveArchive(absl::string_view archive);

// The pickle policy for non-tensor values (api/pickle/weights_only.h): OK
// when the archive's data.pkl is structurally sound and names only globals a
// weights_only load accepts. DataLoss naming the global otherwise ("data.pkl
// names global 'posix.system', which a weights_only load refuses ...").
absl::Status CheckWeightsOnlyArchive(absl::string_view archive);

// Random access to one archive (an item's [offset, offset + length) slice of
// a .distcp file, or a buffer).
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual int64_t size() const = 0;
  // Reads exactly `n` bytes at `offset` (relative to the archive's start).
  virtual absl::Status ReadAt(int64_t offset, void* out, int64_t n) const = 0;
};

// A RecordSource over bytes in memory (not owned).
class BufferRecordSource : public RecordSource {
 public:
  explicit BufferRecordSource(absl::string_view bytes) : bytes_(bytes) {}
  int64_t size() const override { return static_cast<int64_t>(bytes_.size()); }
  absl::Status ReadAt(int64_t offset, void* out, int64_t n) const override;

 private:
  absl::string_view bytes_;
};

// The tensor of a record (torch.load with LibTorch's unpickler, which builds
// only TorchScript types and executes nothing; _rebuild_tensor_v3 records
// with dcplan's restricted one), as a CPU tensor with the saved sizes,
// strides and dtype. Reads the whole record into memory: callers bound that
// by the largest stored chunk. Errors (DataLoss) for malformed archives,
// pickles that are not a tensor, storage records that do not match;
// Unimplemented naming the dtype for a _rebuild_tensor_v3 dtype this LibTorch
// lacks (1.13: uint16/32/64, float8).
absl::StatusOr<at::Tensor> ReadTensorRecord(const RecordSource& source);

// Where a tensor record keeps its tensor's bytes and how the tensor views
// them (what torch._utils._rebuild_tensor_v2 builds), found by reading only
// the ZIP directory, the local headers and data.pkl.
struct TensorRecordLayout {
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;  // in elements
  int64_t storage_bytes = 0;   // the storage record's size
  int64_t data_offset = 0;     // of the storage record's bytes within the archive
  uint32_t data_crc32 = 0;     // the ZIP's CRC-32 of those bytes
  // data.pkl was read by dcplan's restricted unpickler (the call shape every
  // torch.save writes, and _rebuild_tensor_v3), not by LibTorch's.
  bool read_by_dcplan = false;
  // The tensor is its whole storage, laid out contiguously from its start.
  bool IsDenseStorage() const;
};

// The layout of a torch.save'd tensor. data.pkl is read by dcplan's
// restricted unpickler (api/pickle/tensor_v3_pickle.h: _rebuild_tensor_v3
// records, and _rebuild_tensor_v2 records of the shape every torch.save
// writes, a CPU storage; any other global is refused by name) or, for other
// v2 records, by LibTorch's unpickler (TorchScript types only, nothing
// executed); its CRC-32 is checked; the view is
// checked to lie inside the storage and the storage record to have the size
// the pickle gives it (overflow-checked). Errors: DataLoss for malformed
// archives, pickles that are not one CPU tensor, storage records that do not
// match; Unimplemented for valid archives outside this path (compressed
// records, more than one storage, quantized tensors: read those with
// ReadTensorRecord; a big-endian v3 record; a v3 dtype this LibTorch lacks,
// naming the dtype, which ReadTensorRecord refuses too).
absl::StatusOr<TensorRecordLayout> ReadTensorRecordLayout(const RecordSource& source);

}  // namespace dcplan

#endif  // DCPLAN_API_TENSOR_RECORD_H_
