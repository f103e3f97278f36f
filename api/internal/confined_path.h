#ifndef DCPLAN_API_INTERNAL_CONFINED_PATH_H_
#define DCPLAN_API_INTERNAL_CONFINED_PATH_H_

// The one way a path taken from a checkpoint (a `.metadata` storage entry's
// relative_path, the fixed names `.metadata` and `.dcplan_checksums`) becomes
// an open file: confined to the checkpoint directory, without blocking, and
// only when it is a regular file of a size its role allows.
//
// Threat model: a checkpoint is untrusted input (it may come from another
// machine, a shared bucket, or an attacker). The paths it names must not
// reach files outside its directory, whether by `..`, an absolute path or a
// NUL that would cut the path short; opening a FIFO must not hang; a device,
// a directory or a sparse multi-gigabyte file must be refused before memory
// is committed for it.
//
// Symlinks that are files of the checkpoint directory are followed, also out
// of it: checkpoints in the Hugging Face hub cache, DVC or git-annex stores
// and Bazel runfiles are symlinks into a content store, so refusing them
// would refuse real checkpoints. Whoever can plant a symlink in the directory
// chooses its content anyway; what is refused is what the link could turn
// into: anything but a regular file (/dev/zero, a FIFO, a directory) and
// /proc magic links (RESOLVE_NO_MAGICLINKS).

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/file_io.h"

namespace dcplan::internal {

// Size limits per file role, checked against fstat before anything is read.
// A `.metadata` of 1 000 000 chunks is about 100 MB; the checksum side file
// holds about 60 bytes per item.
inline constexpr int64_t kMaxMetadataFileBytes = int64_t{1} << 30;
inline constexpr int64_t kMaxChecksumsFileBytes = int64_t{1} << 30;
inline constexpr size_t kMaxRelativePathBytes = 4096;

// OK when `path` may name a file inside a checkpoint directory: non-empty, at
// most kMaxRelativePathBytes, relative (no leading '/'), no NUL byte, no
// empty, "." or ".." component. InvalidArgument otherwise, saying which rule
// is broken (the caller adds the file and key).
absl::Status CheckRelativePath(absl::string_view path);

// Opens `directory`/`relative` for reading after CheckRelativePath (an
// InvalidArgument naming the broken rule). Symlinks are followed as
// described above; a /proc magic link is PermissionDenied. The open never
// blocks (O_NONBLOCK: a FIFO is refused, not waited on), and anything but a
// regular file is FailedPrecondition "not a regular file (<kind>)".
// Errors carry no path: callers name the file.
absl::StatusOr<ScopedFd> OpenConfined(const std::string& directory, absl::string_view relative);

// The whole content of a confined file of at most `max_bytes` (checked on
// the file's size before allocating; a larger file is ResourceExhausted).
absl::StatusOr<std::string> ReadConfinedFile(const std::string& directory, absl::string_view relative,
                                             int64_t max_bytes);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_CONFINED_PATH_H_
