#ifndef DCPLAN_API_INTERNAL_TORCH_ZIP_H_
#define DCPLAN_API_INTERNAL_TORCH_ZIP_H_

// The ZIP container of torch.save archives (spec/format.md §6), written and
// indexed without LibTorch's PyTorchStreamWriter / PyTorchStreamReader, so
// that a tensor's bytes can stream in one pass (CRC-32, the caller's hash
// and the write on each block while it is in cache) and be read straight
// into their destination.
//
// The writer reproduces LibTorch 1.13's PyTorchStreamWriter byte for byte
// (tests compare the two) for archives below 4 GiB: stored records under
// "archive/", each with a local header without sizes (general-purpose flags
// 0x0808: data descriptor follows, UTF-8 names; 0x0800 and no descriptor for
// an empty record), an extra field "FB" padding the data to a 64-byte
// boundary, a data descriptor (CRC-32 and 32-bit sizes), then the central
// directory, a ZIP64 end-of-central-directory
// record and locator, and the classic end record.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/tensor_record.h"

namespace dcplan::internal {

// Archives whose size stays below this are written by TorchZipWriter;
// larger ones need ZIP64 fields inside records, which LibTorch's writer
// lays out in ways not reproduced here.
inline constexpr int64_t kTorchZipWriterLimit = int64_t{0xFFFFFFFF} - (int64_t{1} << 20);

// Builds an archive record by record. Usage: for each record, Begin(name,
// size) (whose bytes go first), the record's bytes (the caller emits them
// and folds them into `crc`), End(crc); then Finish().
//
// `file_offset` is where the archive starts in the file it is written to.
// The "FB" padding aligns each record's bytes to 64 bytes of that file, not
// of the archive: items of a DCP data file are concatenated at arbitrary
// offsets, and the kernel copies file pages to and from 64-byte-aligned
// tensor memory markedly faster when both sides share their alignment.
// Readers take the padding from the extra field's length, whatever it is;
// with offset 0 the archive is LibTorch's byte for byte.
class TorchZipWriter {
 public:
  explicit TorchZipWriter(int64_t file_offset = 0) : file_offset_(file_offset) {}
  // The local header of a record of `size` bytes named "archive/<name>".
  std::string Begin(absl::string_view name, int64_t size);
  // The data descriptor closing the current record (none for an empty one).
  std::string End(uint32_t crc);
  // The `version` record, the central directory and the end records.
  std::string Finish();
  int64_t position() const { return position_; }

 private:
  struct Record {
    std::string name;
    int64_t header_offset = 0;
    int64_t size = 0;
    uint32_t crc = 0;
  };
  std::vector<Record> records_;
  int64_t file_offset_ = 0;
  int64_t position_ = 0;
};

// One stored record of a ZIP archive.
struct ZipRecord {
  std::string name;
  int64_t data_offset = 0;  // of its bytes, within the archive
  int64_t size = 0;
  uint32_t crc = 0;
};

// The records of a ZIP archive, from its central directory (ZIP64 aware),
// each located through its local header. Errors: DataLoss for malformed or
// truncated archives; Unimplemented for valid ones this reader does not
// handle (compressed or encrypted records, a central directory over 64 MiB).
absl::StatusOr<std::vector<ZipRecord>> IndexZip(const RecordSource& source);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_TORCH_ZIP_H_
