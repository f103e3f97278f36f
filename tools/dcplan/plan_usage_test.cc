// `dcplan plan` on malformed input: usage errors name the right JSON path and
// exit 2; random and mutated inputs never crash.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tools/dcplan/plan_command.h"
#include "tools/dcplan/plan_test_util.h"

namespace dcplan::tools {
namespace {

using ::dcplan::tools::testing::ExampleJson;
using ::dcplan::tools::testing::PlanRun;
using ::dcplan::tools::testing::ReadExample;
using ::dcplan::tools::testing::RunScenario;

// A one-rank save scenario holding `item`.
std::string SaveWith(const std::string& item) {
  return R"({"kind": "save", "ranks": [{"rank": 0, "items": [)" + item + "]}]}";
}

constexpr char kShardFields[] = R"("fqn": "w", "type": "shard", "dtype": "float32")";

std::string Shard(const std::string& size, const std::string& offsets, const std::string& lengths) {
  return std::string("{") + kShardFields + R"(, "size": )" + size + R"(, "offsets": )" + offsets +
         R"(, "lengths": )" + lengths + "}";
}

std::string LoadWithMetadata(const std::string& entry) {
  return R"({"kind": "load", "metadata": {"w": )" + entry + R"(}, "ranks": []})";
}

struct UsageCase {
  const char* name;
  std::string input;
  std::string path;  // the error line starts with "dcplan plan: <path>: "
};

std::vector<UsageCase> UsageCases() {
  const std::string good_chunks = R"({"offsets": [0], "sizes": [1]}, {"offsets": [1], "sizes": [1]})";
  return {
      {"missing field", SaveWith(R"({"fqn": "w", "type": "shard", "dtype": "float32", "offsets": [0], "lengths": [1]})"),
       "ranks[0].items[0].size"},
      {"wrong type", SaveWith(Shard(R"("8")", "[0]", "[1]")), "ranks[0].items[0].size"},
      {"float where int", SaveWith(Shard("[4, 4]", "[0, 0]", "[1.0, 4]")), "ranks[0].items[0].lengths[0]"},
      {"negative length", SaveWith(Shard("[4, 4]", "[0, 0]", "[2, -1]")), "ranks[0].items[0].lengths[1]"},
      {"above int64", SaveWith(Shard("[4]", "[9223372036854775808]", "[1]")), "ranks[0].items[0].offsets[0]"},
      {"below int64", SaveWith(Shard("[4]", "[-9223372036854775809]", "[1]")), "ranks[0].items[0].offsets[0]"},
      {"negative size", SaveWith(Shard("[4, -4]", "[0, 0]", "[1, 1]")), "ranks[0].items[0].size[1]"},
      {"rank mismatch",
       R"({"kind": "save", "ranks": [{"rank": 0, "items": []}, {"rank": 2, "items": []}]})", "ranks[1].rank"},
      {"rank not an integer", R"({"kind": "save", "ranks": [{"rank": "0", "items": []}]})", "ranks[0].rank"},
      {"bad dtype", SaveWith(R"({"fqn": "w", "type": "tensor", "size": [2], "dtype": "float31"})"),
       "ranks[0].items[0].dtype"},
      {"bad kind", R"({"kind": "copy", "ranks": []})", "kind"},
      {"missing kind", R"({"ranks": []})", "kind"},
      {"not an object", "[1, 2]", "(top level)"},
      {"item not an object", SaveWith("3"), "ranks[0].items[0]"},
      {"rank not an object", R"({"kind": "save", "ranks": [null]})", "ranks[0]"},
      {"items not an array", R"({"kind": "save", "ranks": [{"rank": 0, "items": {}}]})", "ranks[0].items"},
      {"missing ranks", R"({"kind": "save"})", "ranks"},
      {"bad item type", SaveWith(R"({"fqn": "w", "type": "blob"})"), "ranks[0].items[0].type"},
      {"fqn not a string", SaveWith(R"({"fqn": 7, "type": "bytes"})"), "ranks[0].items[0].fqn"},
      {"negative bytes", SaveWith(R"({"fqn": "s", "type": "bytes", "bytes": -1})"), "ranks[0].items[0].bytes"},
      // The misspelt field is ignored (with a warning); the real one is missing.
      {"misspelt field", SaveWith(R"({"fqn": "w", "type": "shard", "size": [1], "offsets": [0], "lenghts": [1], "dtype": "int8"})"),
       "ranks[0].items[0].lengths"},
      {"offsets rank", SaveWith(Shard("[4, 4]", "[0]", "[1, 1]")), "ranks[0].items[0].offsets"},
      {"lengths rank", SaveWith(Shard("[4, 4]", "[0, 0]", "[1, 1, 1]")), "ranks[0].items[0].lengths"},
      {"end overflows", SaveWith(Shard("[4]", "[9223372036854775807]", "[1]")), "ranks[0].items[0].lengths[0]"},
      {"tensor bytes overflow", SaveWith(Shard("[4611686018427387904, 2]", "[0, 0]", "[1, 1]")),
       "ranks[0].items[0].size"},
      {"bad dedup policy", R"({"kind": "save", "options": {"dedup": "random"}, "ranks": []})", "options.dedup"},
      {"string for bool", R"({"kind": "save", "options": {"rewrite_index_hints": "yes"}, "ranks": []})",
       "options.rewrite_index_hints"},
      {"metadata chunk size", LoadWithMetadata(R"({"type": "tensor", "dtype": "float32", "size": [4], "chunks": [)" +
                                               good_chunks + R"(, {"offsets": [2], "sizes": [-2]}]})"),
       R"(metadata["w"].chunks[2].sizes[0])"},
      {"metadata chunk rank", LoadWithMetadata(R"({"type": "tensor", "dtype": "float32", "size": [4], "chunks": [
           {"offsets": [0, 0], "sizes": [4]}]})"),
       R"(metadata["w"].chunks[0].offsets)"},
      {"metadata entry type", LoadWithMetadata(R"({"type": "sparse"})"), R"(metadata["w"].type)"},
      {"metadata not an object", R"({"kind": "load", "metadata": [], "ranks": []})", "metadata"},
      {"load negative size",
       R"({"kind": "load", "metadata": {}, "ranks": [{"rank": 0, "items": [{"fqn": "w", "type": "tensor", "size": [-1]}]}]})",
       "ranks[0].items[0].size[0]"},
      {"load strict not bool", R"({"kind": "load", "options": {"strict": 1}, "metadata": {}, "ranks": []})",
       "options.strict"},
  };
}

TEST(PlanUsage, ErrorsNameThePath) {
  for (const UsageCase& c : UsageCases()) {
    const PlanRun run = RunScenario(c.input);
    EXPECT_EQ(run.status, kPlanUsageError) << c.name << ": " << run.out;
    EXPECT_EQ(run.out, "") << c.name;
    const std::string prefix = "dcplan plan: " + c.path + ": ";
    EXPECT_EQ(run.err.rfind(prefix, 0), 0u) << c.name << ": expected " << prefix << "..., got " << run.err;
    // One line, plus the warning about the ignored misspelt field.
    const size_t lines = static_cast<size_t>(std::count(run.err.begin(), run.err.end(), '\n'));
    EXPECT_EQ(lines, c.name == "misspelt field" ? 2u : 1u) << c.name << ": " << run.err;
    EXPECT_EQ(run.err.back(), '\n') << c.name;
  }
}

TEST(PlanUsage, UnknownFieldsAreIgnoredWithAWarning) {
  const PlanRun run = RunScenario(
      std::string(R"({"kind": "save", "comment": "x", "options": {"dedupe": "pytorch"}, "ranks": []})"));
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out, "");
  EXPECT_EQ(run.err,
            "dcplan plan: ignoring unknown field comment\n"
            "dcplan plan: ignoring unknown field options.dedupe\n");
}

TEST(PlanUsage, InvalidJsonNamesTheByte) {
  // `{"kind": "save", }`: the parser stops at the `}` (offset 17) where a key
  // should be.
  PlanRun run = RunScenario(std::string(R"({"kind": "save", })"));
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.err.rfind("dcplan plan: invalid JSON at byte 17: ", 0), 0u) << run.err;
  run = RunScenario(std::string(""));
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.err.rfind("dcplan plan: invalid JSON at byte 0: ", 0), 0u) << run.err;
  run = RunScenario(std::string("{} {}"));  // trailing garbage
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.err.rfind("dcplan plan: invalid JSON at byte 3: ", 0), 0u) << run.err;
  run = RunScenario(std::string("{\"kind\": \"sa\xff\"}"));  // invalid UTF-8
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.err.rfind("dcplan plan: invalid JSON at byte ", 0), 0u) << run.err;
}

TEST(PlanUsage, DeepNestingIsAnErrorNotACrash) {
  // Refused while parsing, before any value is built or copied: at the top
  // level, under a field the scenario reads, under an unknown option (ignored
  // fields were copied recursively), and unterminated.
  const std::string deep(200000, '[');
  const std::string closed = deep + std::string(200000, ']');
  for (const std::string& input :
       {closed, SaveWith(R"({"fqn": "a", "type": "bytes", "bytes": )" + closed + "}"),
        R"({"kind": "save", "options": {"unknown": )" + closed + "}, \"ranks\": []}", deep}) {
    const PlanRun run = RunScenario(input);
    EXPECT_EQ(run.status, kPlanUsageError);
    EXPECT_EQ(run.err, "dcplan plan: invalid JSON: arrays and objects nested deeper than 256 levels\n");
  }
  // 256 levels are fine (and then the wrong type is named with its path).
  const PlanRun shallow = RunScenario(std::string(256, '[') + std::string(256, ']'));
  EXPECT_EQ(shallow.err.rfind("dcplan plan: (top level): expected an object", 0), 0u) << shallow.err;
}

// `err` without its "ignoring unknown field" warning lines.
std::string WithoutWarnings(const std::string& err) {
  std::string kept;
  for (absl::string_view line : absl::StrSplit(err, absl::ByChar('\n'), absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "dcplan plan: ignoring unknown field ")) absl::StrAppend(&kept, line, "\n");
  }
  return kept;
}

// The contract checked on every run: a known status; a usage error prints one
// line (plus warnings about ignored fields) and no result; a result is valid
// JSON and comes with nothing but such warnings.
void CheckWellBehaved(const PlanRun& run_with_warnings, const std::string& input) {
  PlanRun run = run_with_warnings;
  run.err = WithoutWarnings(run.err);
  ASSERT_TRUE(run.status == kPlanOk || run.status == kPlanFindings || run.status == kPlanUsageError)
      << run.status << " for " << input;
  EXPECT_EQ(run.err.find("internal error"), std::string::npos) << run.err << " for " << input;
  if (run.status == kPlanUsageError) {
    EXPECT_EQ(run.out, "") << input;
    ASSERT_FALSE(run.err.empty()) << input;
    EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << run.err;
  } else {
    EXPECT_EQ(run.err, "") << input;
    EXPECT_FALSE(run.result.is_discarded() || run.result.is_null()) << run.out;
  }
}

const char* const kExamples[] = {"fsdp_save.json", "tp2d_save.json", "ddp_dedup_save.json",
                                 "invalid_overlap_save.json", "reshard_load.json", "bad_usage.json"};

TEST(PlanFuzz, RandomBytes) {
  std::mt19937 rng(20240611);
  const std::string alphabet = "{}[]:,\"-0123456789.eE+ \n\ttrufalsn\\/xyz\x01\x7f\xc3\xa9\xff";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string input(rng() % 120, ' ');
    for (char& c : input) c = (rng() % 8 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
    CheckWellBehaved(RunScenario(input), input);
  }
}

TEST(PlanFuzz, ByteMutationsOfExamples) {
  std::mt19937 rng(7);
  std::vector<std::string> examples;
  for (const char* name : kExamples) examples.push_back(ReadExample(name));
  const std::string inserts = "{}[]:,\"-09.e ";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string input = examples[rng() % examples.size()];
    const int mutations = 1 + rng() % 4;
    for (int m = 0; m < mutations && !input.empty(); ++m) {
      const size_t at = rng() % input.size();
      switch (rng() % 4) {
        case 0: input.erase(at, 1 + rng() % 8); break;
        case 1: input.insert(at, 1, inserts[rng() % inserts.size()]); break;
        case 2: input[at] = static_cast<char>(rng() % 256); break;
        default: input.insert(at, input.substr(at, rng() % 40)); break;
      }
    }
    CheckWellBehaved(RunScenario(input), input);
  }
}

// Every node of `value` (by JSON pointer), parents before children.
void CollectPointers(const Json& value, const Json::json_pointer& at, std::vector<Json::json_pointer>* out) {
  out->push_back(at);
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) CollectPointers(child, at / key, out);
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) CollectPointers(value[i], at / i, out);
  }
}

// Pointers to the nodes of `value` that satisfy `pick`.
std::vector<Json::json_pointer> PointersWhere(const Json& value,
                                              const std::function<bool(const Json::json_pointer&, const Json&)>& pick) {
  std::vector<Json::json_pointer> all;
  CollectPointers(value, Json::json_pointer(), &all);
  std::vector<Json::json_pointer> picked;
  for (const Json::json_pointer& at : all) {
    if (pick(at, value[at])) picked.push_back(at);
  }
  return picked;
}

// One random edit of `input`: replace or remove any node (mostly usage
// errors), or edits that keep the scenario well formed and reach the
// planners: small integers in shapes, one fqn renamed to another, an item
// copied to another rank.
void MutateOnce(std::mt19937& rng, const std::vector<Json>& replacements, Json& input) {
  const auto any = [](const Json::json_pointer& at, const Json&) { return !at.empty(); };
  const auto integer = [](const Json::json_pointer&, const Json& v) { return v.is_number_integer(); };
  const auto fqn = [](const Json::json_pointer& at, const Json& v) {
    return v.is_string() && !at.empty() && at.back() == "fqn";
  };
  const auto item = [](const Json::json_pointer&, const Json& v) { return v.is_object() && v.contains("fqn"); };
  const auto items = [](const Json::json_pointer& at, const Json& v) {
    return v.is_array() && !at.empty() && at.back() == "items";
  };
  const int mode = static_cast<int>(rng() % 5);
  std::vector<Json::json_pointer> targets =
      PointersWhere(input, mode == 2 ? integer : mode == 3 ? fqn : mode == 4 ? item : any);
  if (targets.empty()) return;
  const Json::json_pointer at = targets[rng() % targets.size()];
  switch (mode) {
    case 0:
      input[at] = replacements[rng() % replacements.size()];
      break;
    case 1: {
      Json& parent = input[at.parent_pointer()];
      if (parent.is_object()) {
        parent.erase(at.back());
      } else {
        parent.erase(static_cast<size_t>(std::stoul(at.back())));
      }
      break;
    }
    case 2:
      input[at] = static_cast<int64_t>(rng() % 12) - 2;
      break;
    case 3: {
      const std::vector<Json::json_pointer> others = PointersWhere(input, fqn);
      input[at] = input[others[rng() % others.size()]];
      break;
    }
    default: {
      const std::vector<Json::json_pointer> lists = PointersWhere(input, items);
      if (!lists.empty()) input[lists[rng() % lists.size()]].push_back(input[at]);
      break;
    }
  }
}

TEST(PlanFuzz, StructuralMutationsOfExamples) {
  std::mt19937 rng(99);
  std::vector<Json> examples;
  for (const char* name : kExamples) examples.push_back(ExampleJson(name));
  const std::vector<Json> replacements = {
      Json(0),           Json(-1),          Json(INT64_MAX),     Json(INT64_MIN),
      Json(uint64_t{9223372036854775808u}), Json(1.5),          Json(""),
      Json("float32"),   Json("shard"),     Json("tensor"),      Json("bytes"),
      Json(nullptr),     Json(true),        Json::array(),       Json::object(),
      Json::parse("[-1]"), Json::parse("[0, 0, 0]"), Json::parse("[4611686018427387904, 4]"),
      Json::parse(R"({"fqn": "w", "type": "bytes"})"), Json::parse(R"({"type": "bytes"})")};
  int status_counts[3] = {0, 0, 0};
  for (int trial = 0; trial < 3000; ++trial) {
    Json input = examples[rng() % examples.size()];
    const int mutations = 1 + rng() % 3;
    for (int m = 0; m < mutations; ++m) MutateOnce(rng, replacements, input);
    const std::string text = input.dump();
    const PlanRun run = RunScenario(text);
    CheckWellBehaved(run, text);
    if (run.status >= 0 && run.status <= 2) ++status_counts[run.status];
  }
  // The mutations reach the planners, not only the readers: some inputs
  // still plan cleanly, some plan with findings (overlaps, conflicts, plan
  // errors, load errors), some are usage errors.
  EXPECT_GT(status_counts[kPlanOk], 100);
  EXPECT_GT(status_counts[kPlanFindings], 100);
  EXPECT_GT(status_counts[kPlanUsageError], 100);
}

}  // namespace
}  // namespace dcplan::tools
