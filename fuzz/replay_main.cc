// main() of the fuzz targets in the normal (non-fuzzing) build: replays every
// input named on the command line through LLVMFuzzerTestOneInput, so that
// `bazel test //fuzz/...` checks the committed corpus with any compiler.
//
// Arguments are files or directories (read recursively, in sorted order).
// The run fails when no input at all was found: an empty corpus would make
// the test pass without testing anything.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

namespace fs = std::filesystem;

// Appends the regular files under `path` (or `path` itself) to `files`;
// false if `path` cannot be read.
bool CollectInputs(const fs::path& path, std::vector<fs::path>& files) {
  std::error_code error;
  if (fs::is_directory(path, error)) {
    std::vector<fs::path> found;
    for (fs::recursive_directory_iterator it(path, fs::directory_options::follow_directory_symlink, error), end;
         !error && it != end; it.increment(error)) {
      if (it->is_regular_file(error)) found.push_back(it->path());
    }
    if (error) return false;
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
    return true;
  }
  if (!fs::is_regular_file(path, error)) return false;
  files.push_back(path);
  return true;
}

bool ReadFile(const fs::path& path, std::string& contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  contents.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (!CollectInputs(argv[i], files)) {
      std::fprintf(stderr, "replay: cannot read '%s'\n", argv[i]);
      return 1;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: no corpus inputs given (usage: %s FILE_OR_DIR...)\n", argv[0]);
    return 1;
  }
  std::string contents;
  for (const fs::path& file : files) {
    if (!ReadFile(file, contents)) {
      std::fprintf(stderr, "replay: cannot read '%s'\n", file.c_str());
      return 1;
    }
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), contents.size());
    // A copy of exactly the input's size, so that ASan catches reads past it.
    std::vector<uint8_t> input(contents.begin(), contents.end());
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::fprintf(stderr, "replay: %zu inputs passed\n", files.size());
  return 0;
}
