#include "tools/dcplan/user_path.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dcplan::tools {

std::string ResolveUserPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const char* working_directory = std::getenv("BUILD_WORKING_DIRECTORY");
  if (working_directory == nullptr || *working_directory == '\0') return path;
  return absl::StrCat(working_directory, "/", path);
}

}  // namespace dcplan::tools
