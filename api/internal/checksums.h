#ifndef DCPLAN_API_INTERNAL_CHECKSUMS_H_
#define DCPLAN_API_INTERNAL_CHECKSUMS_H_

// `.dcplan_checksums`: a checksum of every item's stored bytes, next to the
// `.metadata` of the save that wrote them. PyTorch never opens it.
//
// A text file of tab-separated lines:
//
//   dcplan-checksums <TAB> 2 <TAB> crc32
//   save_id <TAB> <save id of the .metadata this file belongs to>
//   <8 hex digits> <TAB> <relative path> <TAB> <offset> <TAB> <length> <TAB> <fqn> <TAB> <chunk offsets or ->
//   ...
//   end <TAB> <16 hex digits: XXH3-64 of every byte before this line>
//
// Version 2 records the CRC-32 (api/internal/crc32.h) of each item's stored
// bytes: the writer derives it from the CRC-32 the item's ZIP records need
// anyway (Crc32Combine), so no second pass over the bytes. A CRC-32 finds
// every error burst of up to 32 bits, so any flipped byte with certainty.
// Version 1 (`dcplan-checksums <TAB> 1 <TAB> xxh3-64`, 16 hex digits of
// XXH3-64 per item), written by earlier dcplan, is still read.
//
// Strings are C-escaped (absl::CEscape), so no field holds a tab or newline.
// The fqn and chunk offsets are for people reading the file; lookups use
// (relative path, offset). The trailing hash tells a damaged checksum file
// from damaged data; the save id tells a file left behind by another save
// (e.g. PyTorch overwrote the checkpoint) from the current one.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/box.h"

namespace dcplan::internal {

// What a checksum file's per-item values are.
enum class ChecksumAlgorithm {
  kXxh3_64,  // version 1
  kCrc32,    // version 2, written today
};

// "XXH3-64", "CRC-32".
const char* ChecksumAlgorithmName(ChecksumAlgorithm algorithm);

// The checksum of an item's stored bytes under `algorithm` (a CRC-32 in the
// low 32 bits).
uint64_t ItemChecksumOf(ChecksumAlgorithm algorithm, absl::string_view bytes);

// The checksum as the file writes it: 16 or 8 hex digits.
std::string ChecksumText(ChecksumAlgorithm algorithm, uint64_t checksum);

struct ChecksumEntry {
  std::string relative_path;
  int64_t offset = 0;
  int64_t length = 0;
  uint64_t checksum = 0;
  std::string fqn;
  std::optional<Shape> chunk_offsets;
};

class ChecksumTable {
 public:
  const std::string& save_id() const { return save_id_; }
  ChecksumAlgorithm algorithm() const { return algorithm_; }
  size_t size() const { return entries_.size(); }
  // The entry of the item stored at `offset` in `relative_path`, or nullptr.
  const ChecksumEntry* Find(const std::string& relative_path, int64_t offset) const;

 private:
  friend absl::StatusOr<ChecksumTable> ParseChecksums(absl::string_view bytes, absl::string_view source_name);
  std::string save_id_;
  ChecksumAlgorithm algorithm_ = ChecksumAlgorithm::kCrc32;
  absl::flat_hash_map<std::pair<std::string, int64_t>, ChecksumEntry> entries_;
};

// Version 2 (CRC-32) unless `algorithm` asks for version 1 (tests of old
// files).
std::string SerializeChecksums(absl::string_view save_id, const std::vector<ChecksumEntry>& entries,
                               ChecksumAlgorithm algorithm = ChecksumAlgorithm::kCrc32);

// Either version. Errors (DataLoss, "'<source_name>' is corrupt: ..."): a wrong header, a
// missing or mismatching trailing hash, malformed lines, two entries for the
// same (relative path, offset).
absl::StatusOr<ChecksumTable> ParseChecksums(absl::string_view bytes, absl::string_view source_name);

// XXH3-64 of `bytes`.
uint64_t Xxh3(absl::string_view bytes);

// The checksum of a byte stream (ItemChecksumOf of the concatenation)
// whose large pieces are checksummed on a helper thread, so that the work
// overlaps the caller's I/O. Pieces of at least kAsyncBytes are queued: their
// memory must stay valid and unchanged until Digest() or Reset() returns.
// Smaller pieces are done by the caller, after the queued ones. One caller
// thread at a time.
class AsyncChecksum {
 public:
  static constexpr size_t kAsyncBytes = size_t{64} << 10;

  AsyncChecksum();
  ~AsyncChecksum();
  AsyncChecksum(const AsyncChecksum&) = delete;
  AsyncChecksum& operator=(const AsyncChecksum&) = delete;

  // Starts a new stream (after the queued pieces of the previous one).
  void Reset(ChecksumAlgorithm algorithm);
  void Update(const void* data, size_t size);
  // The checksum of everything since Reset(); waits for the queued pieces.
  uint64_t Digest();

 private:
  struct State;
  void Drain();
  std::unique_ptr<State> state_;
};

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_CHECKSUMS_H_
