#include "api/internal/confined_path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dcplan::internal {
namespace {

constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

std::string FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symlink";
  return "not a regular file";
}

// The descriptor of `directory`, opened as a directory (a symlink given by
// the user as DIR is the user's choice and is followed).
absl::StatusOr<ScopedFd> OpenDirectory(const std::string& directory) {
  const std::string path = directory.empty() ? "." : directory;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno);
  return ScopedFd(fd);
}

// openat2 refusing /proc magic links; -1/ENOSYS when the kernel (or a
// seccomp filter) lacks it.
int OpenWithoutMagicLinks(int directory_fd, const std::string& relative) {
  struct open_how how = {};
  how.flags = kReadFlags;
  how.resolve = RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, directory_fd, relative.c_str(), &how, sizeof(how)));
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int OpenPlainly(int directory_fd, const std::string& relative) {
  int fd;
  do {
    fd = ::openat(directory_fd, relative.c_str(), kReadFlags);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

absl::Status OpenError(int error_number) {
  if (error_number == ELOOP) {
    return absl::PermissionDeniedError("a symlink loop or a /proc magic link, which is not followed");
  }
  if (error_number == ENXIO) return absl::FailedPreconditionError("not a regular file (a FIFO or socket)");
  return ErrnoStatus(error_number);
}

}  // namespace

absl::Status CheckRelativePath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path");
  if (path.size() > kMaxRelativePathBytes) {
    return absl::InvalidArgumentError(absl::StrCat("path of ", path.size(), " bytes (at most ",
                                                   kMaxRelativePathBytes, ")"));
  }
  if (path.find('\0') != absl::string_view::npos) return absl::InvalidArgumentError("path contains a NUL byte");
  if (path.front() == '/') return absl::InvalidArgumentError("absolute path (must be relative to the checkpoint)");
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path component '", part, "' is not allowed (it must stay inside the checkpoint)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ScopedFd> OpenConfined(const std::string& directory, absl::string_view relative) {
  if (absl::Status path = CheckRelativePath(relative); !path.ok()) return path;
  absl::StatusOr<ScopedFd> directory_fd = OpenDirectory(directory);
  if (!directory_fd.ok()) return directory_fd.status();
  const std::string name(relative);
  int fd = OpenWithoutMagicLinks(directory_fd->get(), name);
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) fd = OpenPlainly(directory_fd->get(), name);
  if (fd < 0) return OpenError(errno);
  ScopedFd file(fd);
  struct stat info;
  if (::fstat(file.get(), &info) != 0) return ErrnoStatus(errno);
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("not a regular file (", FileKind(info.st_mode), ")"));
  }
  // Regular files never block; reads should behave as usual from here on.
  if (::fcntl(file.get(), F_SETFL, O_RDONLY) != 0) return ErrnoStatus(errno);
  return file;
}

absl::StatusOr<std::string> ReadConfinedFile(const std::string& directory, absl::string_view relative,
                                             int64_t max_bytes) {
  absl::StatusOr<ScopedFd> fd = OpenConfined(directory, relative);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<int64_t> size = FileSize(*fd);
  if (!size.ok()) return size.status();
  if (*size > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("file of ", *size, " bytes is larger than the ", max_bytes, " bytes allowed for it"));
  }
  std::string bytes(static_cast<size_t>(*size), '\0');
  absl::Status read = ReadExactlyAt(*fd, 0, bytes.data(), bytes.size());
  if (!read.ok()) return read;
  return bytes;
}

}  // namespace dcplan::internal
