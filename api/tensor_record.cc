#include "api/tensor_record.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <exception>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/internal/checksums.h"
#include "api/internal/crc32.h"
#include "api/internal/spare_core.h"
#include "api/internal/data_pickle_memo.h"
#include "api/internal/status_macros.h"
#include "api/internal/tensor_pickle.h"
#include "api/internal/torch_zip.h"
#include "api/pickle/pickle_scan.h"
#include "api/pickle/tensor_v3_pickle.h"
#include "api/pickle/weights_only.h"
#include "engine/dtype.h"

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

constexpr int64_t kParallelCrcBytes = int64_t{4} << 20;

// The archive through LibTorch's own writer (archives of 4 GiB or more).
absl::StatusOr<WrittenRecord> WriteWithLibTorch(const std::string& pickle, const at::Tensor& data,
                                                const ByteSink& sink);

// The archive through TorchZipWriter: one pass over the tensor's bytes.
absl::StatusOr<WrittenRecord> WriteStreamed(const std::string& pickle, const at::Tensor& data, const ByteSink& sink,
                                            int64_t file_offset) {
  internal::TorchZipWriter zip(file_offset);
  const int64_t nbytes = static_cast<int64_t>(data.storage().nbytes());
  std::string head = zip.Begin("data.pkl", static_cast<int64_t>(pickle.size()));
  head += pickle;
  head += zip.End(internal::Crc32(0, pickle.data(), pickle.size()));
  head += zip.Begin("data/0", nbytes);
  absl::Status status = sink(head.data(), head.size());
  uint32_t crc = 0;
  const char* bytes = static_cast<const char*>(data.data_ptr());
  // A large tensor's CRC-32 is computed on a thread of its own while the
  // sink takes the blocks, if that thread has a core of its own; else (and
  // for a small tensor) block by block, each right after the sink copied it:
  // the copy pulls the block out of memory into cache, and the CRC-32 reads
  // it there (CRC first, it would be the CRC that waits on memory: 2 ranks
  // on 2 cores, /dev/shm, 0.87-0.90 of raw write against 0.80-0.83).
  std::thread crc_thread;
  if (status.ok() && nbytes >= kParallelCrcBytes && internal::SpareCoreForHelperThreads()) {
    try {
      crc_thread = std::thread([&crc, bytes, nbytes] { crc = internal::Crc32(0, bytes, static_cast<size_t>(nbytes)); });
    } catch (const std::system_error&) {
      // No thread: computed inline below.
    }
  }
  const bool crc_in_thread = crc_thread.joinable();
  for (int64_t done = 0; status.ok() && done < nbytes;) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(kTensorRecordBlockBytes, nbytes - done));
    status = sink(bytes + done, n);
    if (!crc_in_thread && status.ok()) crc = internal::Crc32(crc, bytes + done, n);
    done += static_cast<int64_t>(n);
  }
  if (crc_in_thread) crc_thread.join();
  if (!status.ok()) return status;
  std::string tail = zip.End(crc);
  tail += zip.Finish();
  status = sink(tail.data(), tail.size());
  if (!status.ok()) return status;
  return WrittenRecord{zip.position(), internal::Crc32Around(head.data(), head.size(), crc,
                                                             static_cast<uint64_t>(nbytes), tail.data(), tail.size())};
}

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

absl::StatusOr<WrittenRecord> WriteTensorRecord(const at::Tensor& tensor, const ByteSink& sink,
                                                int64_t file_offset) {
  if (!tensor.defined()) return absl::InvalidArgumentError("cannot save an undefined tensor");
  if (!tensor.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor record: expected a CPU tensor, got one on ",
                                                   tensor.device().str()));
  }
  if (tensor.layout() != at::kStrided) return absl::InvalidArgumentError("tensor record: only strided tensors");
  const at::Tensor data = OwnsExactlyItsElements(tensor) ? tensor : tensor.clone(at::MemoryFormat::Contiguous);
  absl::StatusOr<std::string> pickle = internal::TensorDataPickle(data);
  if (!pickle.ok()) return pickle.status();

  const int64_t nbytes = static_cast<int64_t>(data.storage().nbytes());
  if (nbytes + static_cast<int64_t>(pickle->size()) + 4096 < internal::kTorchZipWriterLimit) {
    return WriteStreamed(*pickle, data, sink, file_offset);
  }
  return WriteWithLibTorch(*pickle, data, sink);
}

namespace {

absl::StatusOr<WrittenRecord> WriteWithLibTorch(const std::string& pickle, const at::Tensor& data,
                                                const ByteSink& sink) {
  WrittenRecord written;
  absl::Status sink_status;
  try {
    // After a sink error the remaining bytes are dropped but reported as
    // written: LibTorch's writer throws from its destructor on a short write,
    // which would terminate the process.
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) -> size_t {
      if (sink_status.ok()) {
        sink_status = sink(static_cast<const char*>(bytes), n);
        if (sink_status.ok()) {
          // Archives of 4 GiB or more, rare: a second pass over their bytes.
          written.crc32 = internal::Crc32(written.crc32, bytes, n);
          written.bytes += static_cast<int64_t>(n);
        }
      }
      return n;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    writer.writeRecord("data/0", data.data_ptr(), data.storage().nbytes());
    writer.writeEndOfFile();
  } catch (const std::exception& e) {
    if (!sink_status.ok()) return sink_status;
    return absl::InternalError(absl::StrCat("tensor record: LibTorch's archive writer failed: ", e.what()));
  }
  if (!sink_status.ok()) return sink_status;
  return written;
}

}  // namespace

absl::StatusOr<std::string> SaveValueRecord(const c10::IValue& value) {
  try {
    std::vector<char> bytes = torch::jit::pickle_save(value);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialize value of type ", value.tagKind(), ": ",
                                                   e.what()));
  }
}

namespace {
// The data.pkl of a whole archive in memory (ReadCheckedDataPickle below).
absl::StatusOr<std::string> ReadArchiveDataPickle(absl::string_view archive);
// The tensor `layout` describes, its storage copied out of `archive`.
absl::StatusOr<at::Tensor> TensorOfLayout(const TensorRecordLayout& layout, absl::string_view archive);
}  // namespace

absl::Status CheckWeightsOnlyArchive(absl::string_view archive) {
  absl::StatusOr<std::string> pickle = ReadArchiveDataPickle(archive);
  if (!pickle.ok()) return pickle.status();
  if (absl::Status policy = pickle::CheckWeightsOnlyPickle(*pickle); !policy.ok()) {
    return absl::DataLossError(absl::StrCat("data.pkl ", policy.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<c10::IValue> LoadValueRecord(absl::string_view archive) {
  // LibTorch's reader trusts the pickle's lengths and nesting: check them
  // first, so a small archive cannot make it allocate gigabytes.
  if (absl::StatusOr<std::string> pickle = ReadArchiveDataPickle(archive); !pickle.ok()) return pickle.status();
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
  // One verdict with ReadTensorRecordLayout (convert's path): a view outside
  // its storage or a storage record of the wrong size is refused here too,
  // where LibTorch would silently resize the storage.
  absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(BufferRecordSource(bytes));
  if (layout.ok() && layout->read_by_dcplan) return TensorOfLayout(*layout, bytes);
  if (!layout.ok() && !absl::IsUnimplemented(layout.status())) return layout.status();
  // LibTorch's unpickler does not know _rebuild_tensor_v3: what dcplan's
  // reader left unimplemented, LibTorch cannot build either.
  if (absl::StatusOr<std::string> pickle = ReadArchiveDataPickle(bytes);
      pickle.ok() && pickle::CallsRebuildTensorV3(*pickle)) {
    return layout.status();
  }
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

bool TensorRecordLayout::IsDenseStorage() const {
  if (storage_offset != 0) return false;
  int64_t expected_stride = 1;
  int64_t numel = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    if (sizes[d] != 1 && strides[d] != expected_stride) return false;
    expected_stride *= sizes[d];
    numel *= sizes[d];
  }
  return numel * static_cast<int64_t>(c10::elementSize(dtype)) == storage_bytes;
}

namespace {

absl::Status NotATensorRecord(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("not a readable tensor record: ", why));
}

const internal::ZipRecord* FindRecord(const std::vector<internal::ZipRecord>& records, const std::string& name) {
  for (const internal::ZipRecord& record : records) {
    if (record.name == name) return &record;
  }
  return nullptr;
}

absl::StatusOr<std::string> ReadRecordBytes(const RecordSource& source, const internal::ZipRecord& record) {
  constexpr int64_t kMaxSmallRecord = int64_t{64} << 20;
  if (record.size > kMaxSmallRecord) {
    return absl::UnimplementedError(absl::StrCat("record '", record.name, "' is over 64 MiB"));
  }
  std::string bytes(static_cast<size_t>(record.size), '\0');
  absl::Status read = source.ReadAt(record.data_offset, bytes.data(), record.size);
  if (!read.ok()) return read;
  if (internal::Crc32(0, bytes.data(), bytes.size()) != record.crc) {
    return NotATensorRecord(absl::StrCat("CRC-32 mismatch in record '", record.name, "'"));
  }
  return bytes;
}

// The data.pkl record of an archive (in the folder of its first record, as
// LibTorch looks for it), CRC-checked and structurally checked
// (pickle::CheckPickleStructure).
absl::StatusOr<std::string> ReadCheckedDataPickle(const RecordSource& source,
                                                  const std::vector<internal::ZipRecord>& records,
                                                  std::string* folder, std::vector<std::string>* globals = nullptr) {
  if (records.empty()) return NotATensorRecord("an empty archive");
  const std::string& first = records.front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) return NotATensorRecord("no archive folder");
  *folder = first.substr(0, slash + 1);
  const internal::ZipRecord* pickle_record = FindRecord(records, *folder + "data.pkl");
  if (pickle_record == nullptr) return NotATensorRecord("no data.pkl record");
  absl::StatusOr<std::string> pickle = ReadRecordBytes(source, *pickle_record);
  if (!pickle.ok()) return pickle.status();
  // With `globals` (ReadTensorRecordLayout, once per item) the verdict is
  // remembered for the next record's identical data.pkl.
  absl::Status structure = globals != nullptr ? internal::CheckDataPickleStructure(*pickle, globals)
                                              : pickle::CheckPickleStructure(*pickle);
  if (!structure.ok()) {
    return absl::DataLossError(absl::StrCat("data.pkl: ", structure.message()));
  }
  return pickle;
}

absl::StatusOr<std::string> ReadArchiveDataPickle(absl::string_view archive) {
  const BufferRecordSource source(archive);
  absl::StatusOr<std::vector<internal::ZipRecord>> records = internal::IndexZip(source);
  if (!records.ok()) return records.status();
  std::string folder;
  return ReadCheckedDataPickle(source, *records, &folder);
}

// Whether every element the view addresses lies inside a storage of
// `numel` elements. Each dimension's reach is compared with the storage
// before it is added, so the sum stays below 2 * 2^63 (no overflow).
bool ViewFitsStorage(const TensorRecordLayout& layout, int64_t storage_numel) {
  if (layout.sizes.size() != layout.strides.size() || layout.storage_offset < 0) return false;
  for (size_t d = 0; d < layout.sizes.size(); ++d) {
    if (layout.sizes[d] < 0 || layout.strides[d] < 0) return false;
    if (layout.sizes[d] == 0) return true;  // no element
  }
  __int128 last = layout.storage_offset;
  if (last >= storage_numel) return false;
  for (size_t d = 0; d < layout.sizes.size(); ++d) {
    const __int128 reach = static_cast<__int128>(layout.sizes[d] - 1) * layout.strides[d];
    if (reach >= storage_numel) return false;
    last += reach;
    if (last >= storage_numel) return false;
  }
  return true;
}

// Fills in where the storage record `key` keeps the tensor's bytes, and
// checks that it holds exactly the storage's bytes and that the view lies
// inside them.
absl::Status LocateStorage(const std::vector<internal::ZipRecord>& records, const std::string& folder,
                           const std::string& key, TensorRecordLayout& layout) {
  const internal::ZipRecord* data = FindRecord(records, folder + "data/" + key);
  if (data == nullptr) return NotATensorRecord(absl::StrCat("no storage record data/", key));
  if (data->size != layout.storage_bytes) {
    return NotATensorRecord(absl::StrCat("storage record data/", key, " holds ", data->size,
                                         " bytes, the pickle gives its storage ", layout.storage_bytes));
  }
  layout.data_offset = data->data_offset;
  layout.data_crc32 = data->crc;
  return absl::OkStatus();
}

absl::Status CheckView(const TensorRecordLayout& layout) {
  const int64_t element_size = static_cast<int64_t>(c10::elementSize(layout.dtype));
  if (!ViewFitsStorage(layout, layout.storage_bytes / element_size)) {
    return NotATensorRecord("the tensor's view reaches outside its storage");
  }
  return absl::OkStatus();
}

// The layout of a record whose data.pkl dcplan's restricted unpickler read
// (api/pickle/tensor_v3_pickle.h). The storage's location is not checked:
// like LibTorch's reader for the other records, dcplan reads every tensor
// onto the CPU.
absl::StatusOr<TensorRecordLayout> LayoutOfCall(const RecordSource& source,
                                                const std::vector<internal::ZipRecord>& records,
                                                const std::string& folder, const pickle::RebuildTensorCall& call) {
  // LibTorch 1.13 has no uint16/32/64 or float8: Unimplemented, naming the dtype.
  DCPLAN_ASSIGN_OR_RETURN(const c10::ScalarType scalar_type, ScalarTypeFromDType(call.dtype));
  if (const internal::ZipRecord* byteorder = FindRecord(records, folder + "byteorder")) {
    DCPLAN_ASSIGN_OR_RETURN(const std::string order, ReadRecordBytes(source, *byteorder));
    if (order != "little") {
      return absl::UnimplementedError(absl::StrCat("tensor record in byte order '", order, "' (only little)"));
    }
  }
  TensorRecordLayout layout;
  layout.dtype = scalar_type;
  layout.sizes = call.sizes;
  layout.strides = call.strides;
  layout.storage_offset = call.storage_offset;
  layout.storage_bytes = call.storage_bytes;
  layout.read_by_dcplan = true;
  const int64_t element_size = static_cast<int64_t>(c10::elementSize(scalar_type));
  if (layout.storage_bytes % element_size != 0) {
    return NotATensorRecord(absl::StrCat("an untyped storage of ", layout.storage_bytes, " bytes is no whole number of ",
                                         DTypeName(call.dtype), " elements"));
  }
  DCPLAN_RETURN_IF_ERROR(LocateStorage(records, folder, call.storage_key, layout));
  DCPLAN_RETURN_IF_ERROR(CheckView(layout));
  return layout;
}

absl::StatusOr<TensorRecordLayout> ReadV3Layout(const RecordSource& source,
                                                const std::vector<internal::ZipRecord>& records,
                                                const std::string& folder, absl::string_view data_pickle) {
  absl::StatusOr<pickle::RebuildTensorCall> call = internal::ParseDataPickleV3(data_pickle);
  if (!call.ok()) return NotATensorRecord(absl::StrCat("data.pkl: ", call.status().message()));
  return LayoutOfCall(source, records, folder, *call);
}

// The file format version an archive records (LibTorch's reader refuses an
// unreadable one).
absl::StatusOr<uint64_t> ReadArchiveVersion(const RecordSource& source,
                                            const std::vector<internal::ZipRecord>& records,
                                            const std::string& folder) {
  for (const char* name : {".data/version", "version"}) {
    const internal::ZipRecord* record = FindRecord(records, folder + name);
    if (record == nullptr) continue;
    DCPLAN_ASSIGN_OR_RETURN(const std::string text, ReadRecordBytes(source, *record));
    uint64_t version = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &version)) return NotATensorRecord("bad version record");
    return version;
  }
  return caffe2::serialize::kMinProducedFileFormatVersion;
}

// The layout of a _rebuild_tensor_v2 record of the shape every torch.save
// writes (api/pickle/tensor_v3_pickle.h), read without LibTorch's unpickler;
// nullopt for any other shape, which LibTorch's unpickler decides about.
std::optional<absl::StatusOr<TensorRecordLayout>> ReadCanonicalV2Layout(
    const RecordSource& source, const std::vector<internal::ZipRecord>& records, const std::string& folder,
    absl::string_view data_pickle) {
  absl::StatusOr<pickle::RebuildTensorCall> call = internal::ParseDataPickleV2(data_pickle);
  if (!call.ok() || call->storage_location != "cpu") return std::nullopt;
  absl::StatusOr<TensorRecordLayout> layout = LayoutOfCall(source, records, folder, *call);
  if (absl::IsUnimplemented(layout.status())) return std::nullopt;
  return layout;
}

absl::StatusOr<at::Tensor> TensorOfLayout(const TensorRecordLayout& layout, absl::string_view archive) {
  const int64_t element_size = static_cast<int64_t>(c10::elementSize(layout.dtype));
  // ReadTensorRecordLayout found the storage record inside `archive`.
  const absl::string_view data = archive.substr(static_cast<size_t>(layout.data_offset),
                                                static_cast<size_t>(layout.storage_bytes));
  if (internal::Crc32(0, data.data(), data.size()) != layout.data_crc32) {
    return NotATensorRecord("CRC-32 mismatch in the storage record");
  }
  try {
    at::Tensor storage = at::empty({layout.storage_bytes / element_size}, at::TensorOptions().dtype(layout.dtype));
    if (!data.empty()) std::memcpy(storage.data_ptr(), data.data(), data.size());
    return storage.as_strided(layout.sizes, layout.strides, layout.storage_offset);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot build the stored tensor: ", FirstLine(e)));
  }
}

}  // namespace

absl::StatusOr<TensorRecordLayout> ReadTensorRecordLayout(const RecordSource& source) {
  absl::StatusOr<std::vector<internal::ZipRecord>> records = internal::IndexZip(source);
  if (!records.ok()) return records.status();
  // Like LibTorch: every record lives in the folder of the first one.
  std::string folder;
  std::vector<std::string> globals;
  absl::StatusOr<std::string> pickle = ReadCheckedDataPickle(source, *records, &folder, &globals);
  if (!pickle.ok()) return pickle.status();
  if (pickle::NamesRebuildTensorV3(globals)) {
    return ReadV3Layout(source, *records, folder, *pickle);
  }
  DCPLAN_ASSIGN_OR_RETURN(const uint64_t version, ReadArchiveVersion(source, *records, folder));
  if (std::optional<absl::StatusOr<TensorRecordLayout>> layout =
          ReadCanonicalV2Layout(source, *records, folder, *pickle)) {
    return *std::move(layout);
  }

  // The unpickler asks for each storage's bytes; it gets none (an empty data
  // pointer, never dereferenced: building the tensor only records sizes,
  // strides and offset), and the storage keys are noted.
  std::vector<std::string> storage_keys;
  at::Tensor tensor;
  try {
    size_t position = 0;
    auto reader = [&](char* out, size_t n) -> size_t {
      const size_t available = std::min(n, pickle->size() - position);
      std::memcpy(out, pickle->data() + position, available);
      position += available;
      return available;
    };
    auto read_record = [&](const std::string& key) {
      storage_keys.push_back(key);
      return at::DataPtr(nullptr, at::Device(at::kCPU));
    };
    torch::jit::Unpickler unpickler(reader, nullptr, nullptr, read_record, at::Device(at::kCPU));
    unpickler.set_version(version);
    c10::IValue value = unpickler.parse_ivalue();
    if (!value.isTensor()) return NotATensorRecord(absl::StrCat("data.pkl holds a ", value.tagKind()));
    tensor = value.toTensor();
  } catch (const std::exception& e) {
    return NotATensorRecord(FirstLine(e));
  }
  if (tensor.is_quantized()) return absl::UnimplementedError("quantized tensor record");
  if (!tensor.device().is_cpu() || tensor.layout() != at::kStrided) {
    return NotATensorRecord("the tensor is not a strided CPU tensor");
  }
  if (storage_keys.size() > 1) return absl::UnimplementedError("tensor record with several storages");
  TensorRecordLayout layout;
  layout.dtype = tensor.scalar_type();
  layout.sizes = tensor.sizes().vec();
  layout.strides = tensor.strides().vec();
  layout.storage_offset = tensor.storage_offset();
  layout.storage_bytes = static_cast<int64_t>(tensor.storage().nbytes());
  if (!storage_keys.empty()) {
    DCPLAN_RETURN_IF_ERROR(LocateStorage(*records, folder, storage_keys.front(), layout));
  } else if (layout.storage_bytes != 0) {
    return NotATensorRecord("a non-empty storage without a record");
  }
  DCPLAN_RETURN_IF_ERROR(CheckView(layout));
  return layout;
}

}  // namespace dcplan
