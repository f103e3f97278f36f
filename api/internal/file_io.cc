#include "api/internal/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dcplan::internal {
namespace {

// Retries a system call interrupted by a signal.
template <typename Call>
auto RetryOnEintr(Call call) {
  auto result = call();
  while (result == -1 && errno == EINTR) result = call();
  return result;
}

absl::Status WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t written = RetryOnEintr([&] { return ::write(fd, data, n); });
    if (written < 0) return ErrnoStatus(errno);
    if (written == 0) return absl::InternalError("write(2) wrote nothing");
    data += written;
    n -= static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ErrnoStatus(int error_number) {
  char buffer[256];
  // GNU strerror_r: returns the message (maybe not in `buffer`).
  const char* text = strerror_r(error_number, buffer, sizeof(buffer));
  return absl::Status(absl::ErrnoToStatusCode(error_number), text);
}

std::string JoinPath(absl::string_view directory, absl::string_view name) {
  if (directory.empty()) return std::string(name);
  if (directory.back() == '/') return absl::StrCat(directory, name);
  return absl::StrCat(directory, "/", name);
}

absl::Status MakeDirectories(const std::string& directory) {
  if (directory.empty()) return absl::OkStatus();
  // Each prefix ending before a '/', then the whole path.
  for (size_t end = directory.find('/', 1);; end = directory.find('/', end + 1)) {
    const std::string prefix = directory.substr(0, end);
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST) return ErrnoStatus(errno);
    if (end == std::string::npos) break;
  }
  struct stat info;
  if (::stat(directory.c_str(), &info) != 0) return ErrnoStatus(errno);
  if (!S_ISDIR(info.st_mode)) return ErrnoStatus(ENOTDIR);
  return absl::OkStatus();
}

absl::StatusOr<bool> PathExists(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoStatus(errno);
}

absl::Status SyncDirectory(const std::string& directory) {
  const int raw = RetryOnEintr([&] { return ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (raw < 0) return ErrnoStatus(errno);
  ScopedFd fd(raw);
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno);
  return fd.Close();
}

absl::Status RemoveIfExists(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
  return ErrnoStatus(errno);
}

absl::Status WriteFileAtomically(const std::string& directory, const std::string& name, absl::string_view bytes,
                                 bool sync, std::vector<std::string>* temporaries) {
  const std::string final_path = JoinPath(directory, name);
  const std::string temporary = final_path + ".tmp";
  if (temporaries != nullptr) temporaries->push_back(temporary);
  BufferedFileWriter file;
  absl::Status status = file.Open(temporary);
  if (status.ok()) status = file.Write(bytes.data(), bytes.size());
  if (status.ok()) status = file.Close(sync);
  if (status.ok() && ::rename(temporary.c_str(), final_path.c_str()) != 0) status = ErrnoStatus(errno);
  return status;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  absl::StatusOr<ScopedFd> fd = OpenForReading(path);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<int64_t> size = FileSize(*fd);
  if (!size.ok()) return size.status();
  std::string bytes(static_cast<size_t>(*size), '\0');
  absl::Status read = ReadExactlyAt(*fd, 0, bytes.data(), bytes.size());
  if (!read.ok()) return read;
  return bytes;
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.Release();
  }
  return *this;
}

absl::Status ScopedFd::Close() {
  const int fd = Release();
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) return ErrnoStatus(errno);
  return absl::OkStatus();
}

absl::StatusOr<ScopedFd> OpenForReading(const std::string& path) {
  const int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); });
  if (fd < 0) return ErrnoStatus(errno);
  ScopedFd file(fd);
  struct stat info;
  if (::fstat(file.get(), &info) != 0) return ErrnoStatus(errno);
  if (!S_ISREG(info.st_mode)) return absl::FailedPreconditionError("not a regular file");
  if (::fcntl(file.get(), F_SETFL, O_RDONLY) != 0) return ErrnoStatus(errno);
  return file;
}

absl::StatusOr<ScopedFd> CreateExclusively(const std::string& path) {
  if (absl::Status removed = RemoveIfExists(path); !removed.ok()) return removed;
  const int fd = RetryOnEintr(
      [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644); });
  if (fd < 0) return ErrnoStatus(errno);
  return ScopedFd(fd);
}

absl::StatusOr<int64_t> FileSize(const ScopedFd& fd) {
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoStatus(errno);
  if (!S_ISREG(info.st_mode)) return absl::FailedPreconditionError("not a regular file");
  return static_cast<int64_t>(info.st_size);
}

absl::Status ReadExactlyAt(const ScopedFd& fd, int64_t offset, char* out, size_t n) {
  while (n > 0) {
    const ssize_t got = RetryOnEintr([&] { return ::pread(fd.get(), out, n, static_cast<off_t>(offset)); });
    if (got < 0) return ErrnoStatus(errno);
    if (got == 0) return absl::OutOfRangeError(absl::StrCat("the file ends at byte ", offset));
    out += got;
    n -= static_cast<size_t>(got);
    offset += got;
  }
  return absl::OkStatus();
}

absl::StatusOr<ScopedFd> ReopenForReading(const ScopedFd& fd) {
  struct stat original;
  if (::fstat(fd.get(), &original) != 0) return ErrnoStatus(errno);
  const std::string self = absl::StrCat("/proc/self/fd/", fd.get());
  ScopedFd reopened(RetryOnEintr([&] { return ::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK); }));
  if (reopened.get() < 0) return ErrnoStatus(errno);
  struct stat info;
  if (::fstat(reopened.get(), &info) != 0) return ErrnoStatus(errno);
  if (!S_ISREG(info.st_mode) || info.st_dev != original.st_dev || info.st_ino != original.st_ino) {
    return absl::FailedPreconditionError(absl::StrCat(self, " is not the file it was opened as"));
  }
  return reopened;
}

absl::StatusOr<ScopedFd> OpenForUpdate(const std::string& path) {
  const int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_WRONLY | O_CLOEXEC); });
  if (fd < 0) return ErrnoStatus(errno);
  return ScopedFd(fd);
}

absl::Status WriteExactlyAt(const ScopedFd& fd, int64_t offset, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t put = RetryOnEintr([&] { return ::pwrite(fd.get(), data, n, static_cast<off_t>(offset)); });
    if (put < 0) return ErrnoStatus(errno);
    if (put == 0) return absl::InternalError("pwrite(2) wrote nothing");
    data += put;
    n -= static_cast<size_t>(put);
    offset += put;
  }
  return absl::OkStatus();
}

absl::Status SetFileSize(const ScopedFd& fd, int64_t size) {
  if (RetryOnEintr([&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); }) != 0) {
    return ErrnoStatus(errno);
  }
  return absl::OkStatus();
}

absl::Status SyncFile(const ScopedFd& fd) {
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno);
  return absl::OkStatus();
}

absl::Status BufferedFileWriter::Open(const std::string& path) {
  absl::StatusOr<ScopedFd> fd = CreateExclusively(path);
  if (!fd.ok()) return fd.status();
  fd_ = *std::move(fd);
  buffer_.clear();
  buffer_.reserve(kBufferBytes);
  position_ = 0;
  return absl::OkStatus();
}

absl::Status BufferedFileWriter::Write(const char* data, size_t n) {
  if (fd_.get() < 0) return absl::FailedPreconditionError("the file is not open");
  if (buffer_.size() + n > kBufferBytes || (n >= kDirectWriteBytes && !buffer_.empty())) {
    absl::Status flushed = Flush();
    if (!flushed.ok()) return flushed;
  }
  if (n >= kDirectWriteBytes) {
    absl::Status written = WriteAll(fd_.get(), data, n);
    if (!written.ok()) return written;
  } else {
    buffer_.append(data, n);
  }
  position_ += static_cast<int64_t>(n);
  return absl::OkStatus();
}

absl::Status BufferedFileWriter::Flush() {
  absl::Status status = WriteAll(fd_.get(), buffer_.data(), buffer_.size());
  buffer_.clear();
  return status;
}

absl::Status BufferedFileWriter::Close(bool sync) {
  if (fd_.get() < 0) return absl::FailedPreconditionError("the file is not open");
  absl::Status status = Flush();
  if (status.ok() && sync && ::fsync(fd_.get()) != 0) status = ErrnoStatus(errno);
  absl::Status closed = fd_.Close();
  return status.ok() ? closed : status;
}

}  // namespace dcplan::internal
