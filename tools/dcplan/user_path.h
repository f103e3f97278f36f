#ifndef DCPLAN_TOOLS_DCPLAN_USER_PATH_H_
#define DCPLAN_TOOLS_DCPLAN_USER_PATH_H_

// `bazel run` starts the tool in its runfiles tree, not where the user typed
// the command; a relative path the user gave means the latter.

#include <string>

namespace dcplan::tools {

// `path` made relative to $BUILD_WORKING_DIRECTORY (set by `bazel run`) when
// it is relative and that variable is set; otherwise `path` unchanged.
std::string ResolveUserPath(const std::string& path);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_USER_PATH_H_
