// dcplan: the command-line tool. `dcplan SUBCOMMAND ARGS...`; `dcplan help
// SUBCOMMAND` for a subcommand's help.

#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tools/dcplan/convert_command.h"
#include "tools/dcplan/demo_command.h"
#include "tools/dcplan/inspect_command.h"
#include "tools/dcplan/plan_command.h"
#include "tools/dcplan/verify_command.h"

namespace dcplan::tools {
namespace {

// A subcommand reads the words after its name and fills standard output and
// standard error; it returns the process exit status.
using SubcommandMain = int (*)(const std::vector<std::string>& args, std::string* stdout_text,
                               std::string* stderr_text);
using SubcommandHelp = std::string (*)();

struct Subcommand {
  absl::string_view name;
  absl::string_view summary;  // one line for `dcplan --help`
  SubcommandMain main;
  SubcommandHelp help;
};

// Adding a subcommand is adding one line here.
constexpr Subcommand kSubcommands[] = {
    {"plan", "plan a save or load scenario given as JSON and print the plans", &PlanMain, &PlanHelp},
    {"demo", "save a sharded model from N ranks, load it resharded into M, verify", &DemoMain, &DemoHelp},
    {"convert", "DCP checkpoint to one torch.save file and back (dcp_to_torch_save)", &ConvertMain, &ConvertHelp},
    {"inspect", "show what a checkpoint holds: keys, dtypes, shapes, chunks, files", &InspectMain, &InspectHelp},
    {"verify", "read and check every item of a checkpoint (bounds, checksums, decoding)", &VerifyMain, &VerifyHelp},
};

const Subcommand* FindSubcommand(absl::string_view name) {
  for (const Subcommand& subcommand : kSubcommands) {
    if (subcommand.name == name) return &subcommand;
  }
  return nullptr;
}

std::string Usage() {
  std::string text = "usage: dcplan SUBCOMMAND [ARGS...]\n       dcplan help SUBCOMMAND\n\nsubcommands:\n";
  for (const Subcommand& subcommand : kSubcommands) {
    text.append("  ");
    text.append(subcommand.name.data(), subcommand.name.size());
    text.append(subcommand.name.size() < 10 ? 10 - subcommand.name.size() : 1, ' ');
    text.append(subcommand.summary.data(), subcommand.summary.size());
    text.append("\n");
  }
  return text;
}

constexpr int kInternalErrorStatus = 2;

int Emit(int status, const std::string& out, const std::string& err) {
  std::cout << out << std::flush;
  std::cerr << err << std::flush;
  return status;
}

int Main(int argc, char** argv) {
  const std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) return Emit(2, "", Usage());
  const std::string& first = words[0];
  if (first == "--help" || first == "-h" || (first == "help" && words.size() == 1)) return Emit(0, Usage(), "");
  if (first == "help") {
    const Subcommand* subcommand = FindSubcommand(words[1]);
    if (subcommand == nullptr || words.size() > 2) {
      return Emit(2, "", "dcplan: unknown subcommand \"" + words[1] + "\"\n\n" + Usage());
    }
    return Emit(0, subcommand->help(), "");
  }
  const Subcommand* subcommand = FindSubcommand(first);
  if (subcommand == nullptr) return Emit(2, "", "dcplan: unknown subcommand \"" + first + "\"\n\n" + Usage());
  std::string out;
  std::string err;
  int status = kInternalErrorStatus;
  // The last line of defence: subcommands report bad input as statuses, so an
  // exception here is a bug; it must still end in a message and exit 2, never
  // in std::terminate's abort.
  try {
    status = subcommand->main(std::vector<std::string>(words.begin() + 1, words.end()), &out, &err);
  } catch (const std::exception& e) {
    err.append(absl::StrCat("dcplan ", first, ": internal error: ", absl::CHexEscape(e.what()), "\n"));
  } catch (...) {
    err.append(absl::StrCat("dcplan ", first, ": internal error: an unknown exception\n"));
  }
  return Emit(status, out, err);
}

}  // namespace
}  // namespace dcplan::tools

int main(int argc, char** argv) { return dcplan::tools::Main(argc, argv); }
