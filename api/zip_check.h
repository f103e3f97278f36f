#ifndef DCPLAN_API_ZIP_CHECK_H_
#define DCPLAN_API_ZIP_CHECK_H_

// Integrity check of one torch.save archive (spec/format.md §6) without
// LibTorch: the ZIP structure and the CRC-32 of every record. PyTorch-written
// checkpoints carry no checksum file, but every record of their archives has a
// CRC-32 in the central directory; this check catches a flipped byte in
// record data, and the structural checks catch most flips in the headers.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dcplan {

// CRC-32 (ISO-HDLC, the ZIP/zlib polynomial 0xEDB88320) of `bytes`,
// continuing from `crc` (0 to start).
uint32_t Crc32(absl::string_view bytes, uint32_t crc = 0);

// OK if `archive` is a well-formed ZIP archive as torch.save writes it, every
// byte accounted for:
//   - the end of central directory record ends the archive exactly (after its
//     comment); a ZIP64 end record and locator, when present, sit between the
//     central directory and it, and the counts, sizes and offsets of both
//     records agree; single disk only;
//   - records follow each other from offset 0 with no gap: local header, data,
//     then (flag bit 3) a data descriptor; the last one ends where the central
//     directory starts, whose entries fill it exactly;
//   - each local header repeats its central directory entry (version needed,
//     flags, method, time, date, name; CRC and sizes unless a data descriptor
//     carries them, which then must match); its extra fields are well formed,
//     only "FB" (alignment padding, only 'Z' bytes) and ZIP64 ones;
//   - records are stored (method 0, compressed size = size) and the CRC-32 of
//     each record's data is the one recorded (a recorded CRC of 0 means the
//     writer skipped it: PyTorch's compute_crc32=False).
//   - fields no reader interprets, "version made by" and the file attributes,
//     are the same in every central directory entry (one writer wrote them);
// Left unchecked: those fields in a one-record archive and the ZIP64 end
// record's two version fields. Errors are DataLoss and name the record, e.g.
//   "zip record 'archive/data/0': CRC-32 is 1a2b3c4d, the central directory
//    records 5e6f7a8b".
absl::Status CheckZipArchive(absl::string_view archive);

}  // namespace dcplan

#endif  // DCPLAN_API_ZIP_CHECK_H_
