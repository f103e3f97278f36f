#ifndef DCPLAN_TESTING_TEST_FILES_H_
#define DCPLAN_TESTING_TEST_FILES_H_

// Files in tests: runfiles of this workspace, fresh paths under Bazel's
// TEST_TMPDIR, whole-file reads and writes, writable copies of read-only
// runfile directories. Outside `bazel test` (a test binary run by hand) the
// runfiles are looked up under "." and temporaries go to /tmp.

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dcplan::test_files {

// `relative` (e.g. "api/testdata/fixtures/fsdp2_toy") in this workspace's
// runfiles.
inline std::string RunfilePath(absl::string_view relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "dcplan", "/", relative);
}

// The Python interpreter of tools/setup's venv (PyTorch 2.13), for tests
// with "@dcplan_venv//:python" in their data.
inline std::string VenvPython() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/dcplan_venv/python");
}

// A path under TEST_TMPDIR that no earlier call returned (not created).
inline std::string NewTempPath(absl::string_view name) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp ? tmp : "/tmp", "/", name, "_", counter.fetch_add(1));
}

// NewTempPath, created as a directory.
inline std::string NewTempDir(absl::string_view name) {
  const std::string path = NewTempPath(name);
  std::filesystem::create_directories(path);
  return path;
}

// The file's bytes, or nullopt if it cannot be read.
inline std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Replaces the file's content; false if it cannot be written.
inline bool WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// A writable copy (owner read/write) of the flat runfiles directory
// `relative`, in a fresh temporary directory named after its last component.
inline std::string CopyRunfilesDirectory(absl::string_view relative) {
  const std::filesystem::path from = RunfilePath(relative);
  const std::string to = NewTempDir(from.filename().string());
  for (const auto& entry : std::filesystem::directory_iterator(from)) {
    const std::filesystem::path target = std::filesystem::path(to) / entry.path().filename();
    std::filesystem::copy_file(entry.path(), target);
    std::filesystem::permissions(target, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  return to;
}

}  // namespace dcplan::test_files

#endif  // DCPLAN_TESTING_TEST_FILES_H_
