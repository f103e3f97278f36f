#ifndef DCPLAN_TOOLS_DCPLAN_CONVERT_COMMAND_H_
#define DCPLAN_TOOLS_DCPLAN_CONVERT_COMMAND_H_

// `dcplan convert`: a DCP checkpoint directory to one torch.save file
// (PyTorch's dcp_to_torch_save) and back (torch_save_to_dcp), streaming.

#include <string>
#include <vector>

namespace dcplan::tools {

// Exit statuses of `dcplan convert`.
inline constexpr int kConvertOk = 0;
inline constexpr int kConvertFault = 1;       // unreadable or corrupt input, write failure
inline constexpr int kConvertUsageError = 2;  // bad arguments; OUT exists; IN is neither

// `dcplan convert [--keys K1,K2,...] [--overwrite] [--quiet] IN OUT`, `args`
// being the words after "convert". IN a directory holding `.metadata`:
// writes the torch.save file OUT (through OUT.tmp, renamed when complete);
// IN a regular file: saves it as the DCP checkpoint directory OUT. Relative
// paths are resolved with ResolveUserPath. A summary line goes to
// `stdout_text`, errors to `stderr_text` ("dcplan convert: ..."); a progress
// bar is drawn on the terminal's standard error unless --quiet.
int ConvertMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text);

// The text of `dcplan help convert`.
std::string ConvertHelp();

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_CONVERT_COMMAND_H_
