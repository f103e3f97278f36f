#ifndef DCPLAN_API_INTERNAL_FILE_IO_H_
#define DCPLAN_API_INTERNAL_FILE_IO_H_

// POSIX file helpers of the filesystem storage layer. Every call returns a
// Status whose code follows errno (absl::ErrnoToStatusCode) and whose
// message is the system's description ("No space left on device"); callers
// add the context (rank, file, item).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::internal {

absl::Status ErrnoStatus(int error_number);

// `directory`/`name` (no separator doubled).
std::string JoinPath(absl::string_view directory, absl::string_view name);

// mkdir -p. An existing directory is fine; an existing non-directory is not.
absl::Status MakeDirectories(const std::string& directory);

// Whether `path` exists (any kind of file). Errors other than "does not
// exist" (e.g. permission) are returned.
absl::StatusOr<bool> PathExists(const std::string& path);

// fsync of a directory, so that renames and unlinks in it are durable.
absl::Status SyncDirectory(const std::string& directory);

// Removes `path`; a missing file is not an error.
absl::Status RemoveIfExists(const std::string& path);

// Writes `bytes` to `directory/name.tmp`, fsyncs it when `sync`, and renames
// it to `directory/name`. The temporary path is appended to `temporaries`
// before it is created, so that a caller can clean up after a failure.
absl::Status WriteFileAtomically(const std::string& directory, const std::string& name, absl::string_view bytes,
                                 bool sync, std::vector<std::string>* temporaries);

// The whole content of `path`.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// An owned file descriptor.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // close(2), reporting its error (a deferred write error on some systems).
  absl::Status Close();

 private:
  int fd_ = -1;
};

// Opens `path` (a path the user named) for reading, without blocking: a
// FIFO, device or directory is FailedPrecondition "not a regular file".
// Paths taken from a checkpoint go through OpenConfined
// (api/internal/confined_path.h) instead.
absl::StatusOr<ScopedFd> OpenForReading(const std::string& path);
// Creates `path` for writing as a new file: whatever is at `path` (a stale
// temporary, a planted symlink) is unlinked, never followed, and the file is
// created with O_EXCL | O_NOFOLLOW, so that a symlink planted in between is
// an error rather than a way to overwrite another file.
absl::StatusOr<ScopedFd> CreateExclusively(const std::string& path);
// The size of an open file.
absl::StatusOr<int64_t> FileSize(const ScopedFd& fd);
// Reads exactly `n` bytes at `offset`; an early end of file is OutOfRange.
absl::Status ReadExactlyAt(const ScopedFd& fd, int64_t offset, char* out, size_t n);
// A second open file description of the file `fd` reads (through
// /proc/self/fd, so the very same file whatever happened to its path since),
// for a second thread that reads another part of it with its own
// read-ahead state. Fails where /proc is not mounted; the file must still
// be the regular file of the same device and inode.
absl::StatusOr<ScopedFd> ReopenForReading(const ScopedFd& fd);

// Opens an existing `path` for writing (no truncation, no create).
absl::StatusOr<ScopedFd> OpenForUpdate(const std::string& path);
// Writes exactly `n` bytes at `offset` (pwrite; other writers may work on
// other ranges of the same file at the same time).
absl::Status WriteExactlyAt(const ScopedFd& fd, int64_t offset, const char* data, size_t n);
// ftruncate(2).
absl::Status SetFileSize(const ScopedFd& fd, int64_t size);
// fsync(2).
absl::Status SyncFile(const ScopedFd& fd);

// A new file (see CreateExclusively) written through a buffer: small writes
// are collected, writes of kDirectWriteBytes or more go straight to write(2)
// (after what is buffered), so that data handed over in cache-sized blocks
// is not copied.
class BufferedFileWriter {
 public:
  static constexpr size_t kBufferBytes = size_t{8} << 20;
  static constexpr size_t kDirectWriteBytes = size_t{64} << 10;

  // Creates `path` with CreateExclusively.
  absl::Status Open(const std::string& path);
  absl::Status Write(const char* data, size_t n);
  // Bytes written so far (buffered included): the offset of the next byte.
  int64_t position() const { return position_; }
  // Flushes the buffer, fsyncs when `sync`, closes.
  absl::Status Close(bool sync);

 private:
  absl::Status Flush();

  ScopedFd fd_;
  std::string buffer_;
  int64_t position_ = 0;
};

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_FILE_IO_H_
