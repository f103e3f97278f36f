#ifndef DCPLAN_TOOLS_DCPLAN_INSPECT_COMMAND_H_
#define DCPLAN_TOOLS_DCPLAN_INSPECT_COMMAND_H_

// `dcplan inspect DIR [--json]`: what a checkpoint holds, from its
// `.metadata` and the sizes of its data files (never their contents).

#include <string>
#include <vector>

namespace dcplan::tools {

// `args` are the words after "inspect". Prints the report on `stdout_text`.
// Exit status: 0 the metadata was read (whatever it says: `verify` judges
// it); 1 no checkpoint in DIR (.metadata missing) or an unreadable
// `.metadata`; 2 usage error (unknown flag, no DIR or several, DIR missing or
// not a directory). "--help" prints InspectHelp() and returns 0.
int InspectMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text);

// The text of `dcplan help inspect`.
std::string InspectHelp();

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_INSPECT_COMMAND_H_
