#ifndef DCPLAN_TOOLS_DCPLAN_VERIFY_COMMAND_H_
#define DCPLAN_TOOLS_DCPLAN_VERIFY_COMMAND_H_

// `dcplan verify DIR [--quiet] [--json]`: reads every item of a checkpoint
// and checks everything that can be checked, reporting every problem (not
// just the first), each naming file, offset, length, key and chunk:
//   - `.metadata` parses; every tensor's chunks lie in bounds, do not share
//     an element and cover its global shape exactly (engine/validate.h);
//   - every chunk and bytes value has a storage_data location and every
//     location names a chunk or bytes value; no stream transforms;
//   - every item lies inside its data file and items of one file do not
//     overlap;
//   - with a `.dcplan_checksums` of this save, every item's CRC-32 (XXH3-64
//     in a version 1 file) matches
//     and the file lists exactly the items of the metadata;
//   - every item is a well-formed ZIP whose records' CRC-32s match (so a
//     flipped byte is caught in PyTorch-written checkpoints too);
//   - every tensor item decodes as Load decodes it (ReadTensorRecordLayout,
//     or LibTorch's torch.load for the archives that path leaves to it) to the
//     dtype and chunk size the metadata records; every bytes item is a
//     readable torch.save archive.

#include <string>
#include <vector>

namespace dcplan::tools {

// `args` are the words after "verify". The report (one line per problem,
// then a summary line; or the --json document) goes to `stdout_text`; a
// progress bar over the bytes read goes to standard error when it is a
// terminal and --quiet is not given.
// Exit status: 0 all is well; 1 any checkpoint fault, including no
// `.metadata` in DIR or one that does not parse; 2 usage error (unknown flag,
// no DIR or several, DIR missing or not a directory). "--help" prints
// VerifyHelp() and returns 0.
int VerifyMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text);

// The text of `dcplan help verify`.
std::string VerifyHelp();

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_VERIFY_COMMAND_H_
