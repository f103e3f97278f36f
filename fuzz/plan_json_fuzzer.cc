// Fuzz target for `dcplan plan` (tools/dcplan/plan_command.h): the JSON
// scenario parser and the whole save / load pipeline behind it, on arbitrary
// bytes. spec/plan-json.md: the tool never crashes, whatever the input; it
// exits 0 or 1 with a result document, or 2 with one line naming the bad
// JSON path. Checked here: the status is 0, 1 or 2; with 0 or 1 the result is
// one well-formed JSON object and nothing goes to stderr; with 2 nothing goes
// to stdout and stderr holds exactly one non-empty line, which does not report
// an exception caught by RunPlan's last-resort handler ("ignoring unknown
// field" warnings aside, which may accompany any outcome).

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "tools/dcplan/plan_command.h"

namespace dcplan::fuzzing {
namespace {

constexpr absl::string_view kPrefix = "dcplan plan: ";

// `err` without the "ignoring unknown field <path>" warnings, which the tool
// may print whatever the outcome (tools/dcplan/json_reader.h). Messages are
// split where a line starts with the tool's prefix, because a warning names
// the unknown field as written, raw newlines included.
std::string WithoutWarnings(absl::string_view err) {
  std::string kept;
  size_t start = 0;
  while (start < err.size()) {
    size_t next = err.find(absl::StrCat("\n", kPrefix), start);
    next = next == absl::string_view::npos ? err.size() : next + 1;
    const absl::string_view message = err.substr(start, next - start);
    if (!absl::StartsWith(message, absl::StrCat(kPrefix, "ignoring unknown field "))) absl::StrAppend(&kept, message);
    start = next;
  }
  return kept;
}

bool IsOneLine(absl::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return !text.empty() && text.find('\n') == absl::string_view::npos;
}

bool IsJsonObject(const std::string& text) {
  // The non-throwing parse: a discarded value is nlohmann's "parse error".
  const nlohmann::json document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return document.is_object();
}

void FuzzPlan(absl::string_view input) {
  std::string out;
  std::string err;
  const int status = tools::RunPlan(input, &out, &err);
  err = WithoutWarnings(err);
  FUZZ_CHECK(status == tools::kPlanOk || status == tools::kPlanFindings || status == tools::kPlanUsageError,
             absl::StrCat("RunPlan returned ", status, "; stderr: ", err));
  if (status == tools::kPlanUsageError) {
    FUZZ_CHECK(out.empty(), absl::StrCat("usage error with a result on stdout:\n", out));
    FUZZ_CHECK(IsOneLine(err), absl::StrCat("usage error message is not one line: '", err, "'"));
    // RunPlan turns an escaped exception into a usage error; the readers are
    // meant never to throw, so any exception but an allocation failure is a
    // bug that the usage-error status would hide.
    FUZZ_CHECK(!absl::StartsWith(err, "dcplan plan: internal error: ") || err.find("bad_alloc") != std::string::npos,
               absl::StrCat("exception escaped the planner: ", err));
    return;
  }
  FUZZ_CHECK(err.empty(), absl::StrCat("status ", status, " with stderr: ", err));
  FUZZ_CHECK(IsJsonObject(out), absl::StrCat("status ", status, " and stdout is not a JSON object:\n", out));
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzPlan(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
