#ifndef DCPLAN_API_INTERNAL_SPLIT_READ_H_
#define DCPLAN_API_INTERNAL_SPLIT_READ_H_

// Reading one large byte range of a file with two threads, each checking
// what it reads while it is still in cache.
//
// A load is bound by the kernel's copy out of the page cache (or the
// device), and verifying costs a CRC-32 pass over the same bytes. Handing
// blocks from the reading thread to a checksum thread costs a wake-up per
// block and makes the checksum thread pull every line out of the reader's
// cache; instead, the range is cut in two and each thread reads its half
// block by block and computes the CRC-32 of each block right after reading
// it. The halves' CRC-32s are joined with Crc32Combine. With a spare core
// the range arrives about twice as fast as one thread reads it; on a host
// whose cores are all busy it costs what one thread reading and checking
// inline costs.

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dcplan::internal {

class SplitReader {
 public:
  // Bytes read (and checksummed) at a time: a block and the page-cache pages
  // it was copied from stay in L2 for its CRC-32, and the read calls still
  // cost little. 2 ranks on 2 cores, /dev/shm: 0.87-0.89 of raw read, against
  // 0.79-0.81 with 1 MiB blocks (a CRC-32 reading from L3 or memory).
  static constexpr int64_t kBlockBytes = int64_t{128} << 10;
  // Ranges shorter than this are read by the calling thread alone.
  static constexpr int64_t kMinSplitBytes = int64_t{4} << 20;

  // Reads exactly `n` bytes at `offset` into `out`.
  using ReadAtFn = absl::FunctionRef<absl::Status(int64_t offset, char* out, int64_t n)>;

  // The helper thread starts on the first split read; if it cannot be
  // started, every read is done by the caller.
  SplitReader();
  ~SplitReader();
  SplitReader(const SplitReader&) = delete;
  SplitReader& operator=(const SplitReader&) = delete;

  // Reads [begin, end) into `out` (end - begin bytes) and returns its CRC-32
  // when `crc` is set (else 0). The caller reads the first part with
  // `read`; for ranges of at least kMinSplitBytes the helper thread reads the
  // second part with `helper_read` (a second open file description of the
  // same file, so that each part keeps its own read-ahead). Both parts are
  // finished before this returns, also on error; the error is the first
  // part's if both failed. One caller thread at a time.
  absl::StatusOr<uint32_t> Read(ReadAtFn read, ReadAtFn helper_read, int64_t begin, int64_t end, char* out,
                                bool crc);

 private:
  struct Helper;
  std::unique_ptr<Helper> helper_;
  bool helper_failed_ = false;
};

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_SPLIT_READ_H_
