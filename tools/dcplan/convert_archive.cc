#include "tools/dcplan/convert_archive.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <tuple>

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include "absl/strings/str_cat.h"
#include "api/internal/file_io.h"

namespace dcplan::tools::convert {
namespace {

struct StorageClass {
  c10::ScalarType dtype;
  absl::string_view name;
};

constexpr StorageClass kStorageClasses[] = {
    {c10::ScalarType::Double, "DoubleStorage"},   {c10::ScalarType::Float, "FloatStorage"},
    {c10::ScalarType::Half, "HalfStorage"},       {c10::ScalarType::BFloat16, "BFloat16Storage"},
    {c10::ScalarType::ComplexFloat, "ComplexFloatStorage"},
    {c10::ScalarType::ComplexDouble, "ComplexDoubleStorage"},
    {c10::ScalarType::Long, "LongStorage"},       {c10::ScalarType::Int, "IntStorage"},
    {c10::ScalarType::Short, "ShortStorage"},     {c10::ScalarType::Char, "CharStorage"},
    {c10::ScalarType::Byte, "ByteStorage"},       {c10::ScalarType::Bool, "BoolStorage"},
};

// LibTorch appends a C++ backtrace to its messages; the first line says it.
std::string FirstLine(const std::exception& e) {
  std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

// LibTorch's archive reader over bytes in memory, bounds-checked.
class BoundedAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  BoundedAdapter(const char* data, size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    const size_t available = std::min<size_t>(n, size_ - static_cast<size_t>(pos));
    std::memcpy(buf, data_ + pos, available);
    return available;
  }

 private:
  const char* data_;
  size_t size_;
};

uint64_t LittleEndianAt(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Reads data.pkl and checks the byte order of an opened archive.
absl::StatusOr<std::string> ReadDataPickle(caffe2::serialize::PyTorchStreamReader& reader) {
  if (!reader.hasRecord("data.pkl")) return absl::DataLossError("no data.pkl record");
  if (reader.hasRecord("byteorder")) {
    auto [order, order_size] = reader.getRecord("byteorder");
    const std::string text(static_cast<const char*>(order.get()), order_size);
    if (text != "little") return absl::UnimplementedError(absl::StrCat("byte order \"", text, "\" is not supported"));
  }
  auto [pickle, size] = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(pickle.get()), size);
}

}  // namespace

absl::StatusOr<std::string> StorageClassName(c10::ScalarType dtype) {
  for (const StorageClass& c : kStorageClasses) {
    if (c.dtype == dtype) return std::string(c.name);
  }
  return absl::UnimplementedError(
      absl::StrCat("dtype ", c10::toString(dtype), " has no torch.save storage class dcplan can write"));
}

absl::StatusOr<c10::ScalarType> ScalarTypeOfStorageClass(absl::string_view module, absl::string_view name) {
  if (module == "torch") {
    for (const StorageClass& c : kStorageClasses) {
      if (c.name == name) return c.dtype;
    }
  }
  // An untyped storage counts bytes (torch.save's _rebuild_tensor_v3 names the dtype).
  if (module == "torch.storage" && name == "UntypedStorage") return c10::kByte;
  return absl::UnimplementedError(absl::StrCat("storage class ", module, ".", name, " is not supported"));
}

// --- Writing -----------------------------------------------------------------------

ArchiveWriter::ArchiveWriter(ArchiveSink sink) : sink_(std::move(sink)) {
  try {
    // The writer function reports every byte as written: LibTorch's writer
    // throws (from its destructor, too) on a short write. Errors are kept in
    // status_ instead.
    writer_ = std::make_unique<caffe2::serialize::PyTorchStreamWriter>([this](const void* data, size_t n) {
      if (status_.ok() && !abandoned_) status_ = sink_(static_cast<const char*>(data), n);
      return n;
    });
  } catch (const std::exception& e) {
    status_ = absl::InternalError(absl::StrCat("LibTorch's archive writer: ", FirstLine(e)));
  }
}

ArchiveWriter::~ArchiveWriter() {
  abandoned_ = true;
  try {
    writer_.reset();
  } catch (...) {
    // Nothing reaches the sink any more; an abandoned archive is discarded.
  }
}

absl::Status ArchiveWriter::WriteRecord(const std::string& name, const void* data, size_t size) {
  if (!status_.ok() || writer_ == nullptr) return status_;
  try {
    writer_->writeRecord(name, data, size);
  } catch (const std::exception& e) {
    if (status_.ok()) status_ = absl::InternalError(absl::StrCat("writing record ", name, ": ", FirstLine(e)));
  }
  return status_;
}

absl::Status ArchiveWriter::Finish() {
  if (!status_.ok() || writer_ == nullptr) return status_;
  try {
    writer_->writeEndOfFile();
  } catch (const std::exception& e) {
    if (status_.ok()) status_ = absl::InternalError(absl::StrCat("ending the archive: ", FirstLine(e)));
  }
  return status_;
}

absl::StatusOr<std::string> WriteArchiveToString(absl::string_view data_pkl,
                                                 const std::vector<std::pair<std::string, absl::string_view>>& records) {
  std::string out;
  ArchiveWriter writer([&out](const char* data, size_t n) {
    out.append(data, n);
    return absl::OkStatus();
  });
  absl::Status status = writer.WriteRecord("data.pkl", data_pkl.data(), data_pkl.size());
  if (status.ok()) status = writer.WriteRecord("byteorder", "little", 6);
  for (const auto& [name, bytes] : records) {
    if (status.ok()) status = writer.WriteRecord(name, bytes.data(), bytes.size());
  }
  if (status.ok()) status = writer.Finish();
  if (!status.ok()) return status;
  return out;
}

// --- Reading in memory -------------------------------------------------------------

MemoryArchive::~MemoryArchive() = default;

absl::StatusOr<std::unique_ptr<MemoryArchive>> MemoryArchive::Open(std::string bytes) {
  std::unique_ptr<MemoryArchive> archive(new MemoryArchive());
  archive->bytes_ = std::move(bytes);
  try {
    archive->reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<BoundedAdapter>(archive->bytes_.data(), archive->bytes_.size()));
    absl::StatusOr<std::string> pickle = ReadDataPickle(*archive->reader_);
    if (!pickle.ok()) return pickle.status();
    archive->data_pkl_ = *std::move(pickle);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("not a readable torch.save archive: ", FirstLine(e)));
  }
  return archive;
}

absl::StatusOr<std::string> MemoryArchive::Record(const std::string& name) {
  try {
    if (!reader_->hasRecord(name)) return absl::DataLossError(absl::StrCat("the archive has no record ", name));
    auto [data, size] = reader_->getRecord(name);
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("reading record ", name, ": ", FirstLine(e)));
  }
}

// --- A mapped file -----------------------------------------------------------------

MappedTorchSave::~MappedTorchSave() {
  reader_.reset();
  if (base_ != nullptr && size_ > 0) munmap(const_cast<char*>(base_), static_cast<size_t>(size_));
}

absl::StatusOr<std::shared_ptr<MappedTorchSave>> MappedTorchSave::Open(const std::string& path) {
  std::shared_ptr<MappedTorchSave> file(new MappedTorchSave());
  file->path_ = path;
  auto fail = [&](absl::string_view why) { return absl::DataLossError(absl::StrCat("'", path, "': ", why)); };
  // Non-blocking open, regular files only: a FIFO or device named as IN.pt
  // is refused instead of hanging or mapping an endless stream.
  absl::StatusOr<dcplan::internal::ScopedFd> fd = dcplan::internal::OpenForReading(path);
  if (!fd.ok()) return fail(fd.status().message());
  absl::StatusOr<int64_t> size = dcplan::internal::FileSize(*fd);
  if (!size.ok()) return fail(size.status().message());
  file->size_ = *size;
  if (file->size_ > 0) {
    void* base = mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ, MAP_PRIVATE, fd->get(), 0);
    if (base == MAP_FAILED) return fail(absl::StrCat("cannot map the file: ", std::strerror(errno)));
    file->base_ = static_cast<const char*>(base);
  }
  try {
    file->reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<BoundedAdapter>(file->base_, static_cast<size_t>(file->size_)));
    absl::StatusOr<std::string> pickle = ReadDataPickle(*file->reader_);
    if (!pickle.ok()) return fail(pickle.status().message());
    file->data_pkl_ = *std::move(pickle);
  } catch (const std::exception& e) {
    return fail(absl::StrCat("not a torch.save archive: ", FirstLine(e)));
  }
  return file;
}

absl::StatusOr<const char*> MappedTorchSave::StoredRecord(const std::string& name, uint64_t size) {
  auto fail = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("'", path_, "' record ", name, ": ", why));
  };
  size_t data_offset = 0;
  try {
    if (!reader_->hasRecord(name)) return fail("missing");
    data_offset = reader_->getRecordOffset(name);
  } catch (const std::exception& e) {
    return fail(FirstLine(e));
  }
  const uint64_t file_size = static_cast<uint64_t>(size_);
  if (data_offset > file_size || size > file_size - data_offset) return fail("extends past the end of the file");
  // The local header that ends where the data starts: signature, name ending
  // in "/<name>", and name and extra lengths that add up.
  constexpr uint64_t kHeader = 30;
  const std::string suffix = "/" + name;
  const char* header = nullptr;
  const uint64_t lowest = data_offset > kHeader + 65535 + 65535 ? data_offset - kHeader - 65535 - 65535 : 0;
  for (uint64_t p = data_offset >= kHeader + suffix.size() ? data_offset - kHeader - suffix.size() + 1 : 0;
       p-- > lowest;) {
    const char* h = base_ + p;
    if (std::memcmp(h, "PK\x03\x04", 4) != 0) continue;
    const uint64_t name_length = LittleEndianAt(h + 26, 2);
    const uint64_t extra_length = LittleEndianAt(h + 28, 2);
    if (p + kHeader + name_length + extra_length != data_offset || name_length < suffix.size()) continue;
    if (std::memcmp(h + kHeader + name_length - suffix.size(), suffix.data(), suffix.size()) != 0) continue;
    header = h;
    break;
  }
  if (header == nullptr) return fail("no local header found");
  if (LittleEndianAt(header + 8, 2) != 0) return fail("compressed records are not supported");
  const bool has_descriptor = (LittleEndianAt(header + 6, 2) & 0x8) != 0;
  uint64_t stored_size = LittleEndianAt(header + 18, 4);
  if (has_descriptor) {
    // crc32, then 4- or 8-byte sizes (ZIP64), after an optional signature.
    const char* d = base_ + data_offset + size;
    uint64_t left = file_size - data_offset - size;
    if (left >= 4 && std::memcmp(d, "PK\x07\x08", 4) == 0) d += 4, left -= 4;
    const bool small = left >= 12 && LittleEndianAt(d + 4, 4) == size && LittleEndianAt(d + 8, 4) == size;
    const bool large = left >= 20 && LittleEndianAt(d + 4, 8) == size && LittleEndianAt(d + 12, 8) == size;
    if (!small && !large) return fail(absl::StrCat("does not hold ", size, " bytes"));
    return base_ + data_offset;
  }
  if (stored_size == 0xffffffffu) {
    // The ZIP64 extra field (id 1) holds the uncompressed then compressed size.
    const char* extra = header + kHeader + LittleEndianAt(header + 26, 2);
    const char* end = extra + LittleEndianAt(header + 28, 2);
    stored_size = UINT64_MAX;
    while (extra + 4 <= end) {
      const uint64_t id = LittleEndianAt(extra, 2);
      const uint64_t length = LittleEndianAt(extra + 2, 2);
      if (id == 1 && length >= 16 && extra + 4 + 16 <= end) stored_size = LittleEndianAt(extra + 12, 8);
      extra += 4 + length;
    }
  }
  if (stored_size != size) return fail(absl::StrCat("holds ", stored_size, " bytes, expected ", size));
  return base_ + data_offset;
}

}  // namespace dcplan::tools::convert
