// `dcplan plan` on the example scenarios and on small hand-made ones. Every
// expected value is computed by hand from spec/plan-json.md (the comments
// show the computation).

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/dcplan/plan_command.h"
#include "tools/dcplan/plan_test_util.h"

namespace dcplan::tools {
namespace {

using ::dcplan::tools::testing::ExampleJson;
using ::dcplan::tools::testing::PlanRun;
using ::dcplan::tools::testing::ReadExample;
using ::dcplan::tools::testing::RunScenario;

Json J(const char* text) { return Json::parse(text); }

// "fqn@offsets#index" for each item of rank `rank`'s save plan.
std::vector<std::string> SaveItems(const Json& result, size_t rank) {
  std::vector<std::string> out;
  for (const Json& item : result["plans"][rank]["items"]) {
    std::string text = item["fqn"].get<std::string>();
    if (item.contains("offsets")) text += "@" + item["offsets"].dump();
    text += "#" + item["index"].dump();
    out.push_back(text);
  }
  return out;
}

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

TEST(PlanExamples, FsdpSave) {
  const PlanRun run = RunScenario(ReadExample("fsdp_save.json"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& r = run.result;
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"valid", "problems", "plans", "metadata", "balance", "timings_ms"}));
  EXPECT_EQ(r["valid"], true);
  EXPECT_EQ(r["problems"], Json::array());
  // PyTorch greedy, loads by global storage size: embed 8*4*4 = 128,
  // layers.0.w 6*4*2 = 48, norm.weight 16, step 1. Rank 0's shards first
  // (load0 = 176), then norm.weight goes to the least-loaded holder, rank 1
  // (tie 0,0,0 -> lowest), then step to rank 2 (loads 176, 16, 0, 0).
  EXPECT_EQ(SaveItems(r, 0), (std::vector<std::string>{"embed.weight@[0,0]#0", "layers.0.w@[0,0]#0"}));
  EXPECT_EQ(SaveItems(r, 1),
            (std::vector<std::string>{"embed.weight@[2,0]#1", "layers.0.w@[2,0]#1", "norm.weight@[0]#0"}));
  EXPECT_EQ(SaveItems(r, 2), (std::vector<std::string>{"embed.weight@[4,0]#2", "layers.0.w@[4,0]#2", "step#null"}));
  EXPECT_EQ(SaveItems(r, 3), (std::vector<std::string>{"embed.weight@[6,0]#3", "layers.0.w@[5,0]#3"}));
  EXPECT_EQ(r["plans"][2]["items"][1]["lengths"], J("[1, 4]"));
  // First appearance in the global plan's visit: rank 0's two shards, then
  // norm.weight (rank 1), then step (rank 2).
  EXPECT_EQ(Keys(r["metadata"]), (std::vector<std::string>{"embed.weight", "layers.0.w", "norm.weight", "step"}));
  EXPECT_EQ(r["metadata"]["layers.0.w"], J(R"({"type": "tensor", "dtype": "bfloat16", "size": [6, 4], "chunks": [
      {"offsets": [0, 0], "sizes": [2, 4]}, {"offsets": [2, 0], "sizes": [2, 4]},
      {"offsets": [4, 0], "sizes": [1, 4]}, {"offsets": [5, 0], "sizes": [1, 4]}]})"));
  EXPECT_EQ(r["metadata"]["step"], J(R"({"type": "bytes"})"));
  // Real bytes: embed shard 2*4*4 = 32; layers shard 2*4*2 = 16 or 1*4*2 = 8;
  // norm 16; step 8. Ranks: 32+16, 32+16+16, 32+8+8, 32+8.
  EXPECT_EQ(r["balance"], J(R"({"total_bytes": 200, "max_rank_bytes": 64, "per_rank_bytes": [48, 64, 48, 40]})"));
  EXPECT_EQ(Keys(r["timings_ms"]), (std::vector<std::string>{"dedup", "global_plan", "validate"}));
  for (const auto& [step, ms] : r["timings_ms"].items()) {
    EXPECT_TRUE(ms.is_number_float()) << step;
    EXPECT_GE(ms.get<double>(), 0.0) << step;
  }
}

TEST(PlanExamples, Tp2dSave) {
  const PlanRun run = RunScenario(ReadExample("tp2d_save.json"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& r = run.result;
  // Loads by global size: attn.w 8*6*2 = 96, attn.b 6*2 = 12. Keys in order
  // w@[0,0] (rank 0: 96), b@[0] held by {0, 2} -> rank 2 (0 < 96),
  // w@[0,3] (rank 1: 96), b@[3] held by {1, 3} -> rank 3.
  EXPECT_EQ(SaveItems(r, 0), (std::vector<std::string>{"attn.w@[0,0]#0"}));
  EXPECT_EQ(SaveItems(r, 1), (std::vector<std::string>{"attn.w@[0,3]#1"}));
  EXPECT_EQ(SaveItems(r, 2), (std::vector<std::string>{"attn.w@[4,0]#2", "attn.b@[0]#0"}));
  EXPECT_EQ(SaveItems(r, 3), (std::vector<std::string>{"attn.w@[4,3]#3", "attn.b@[3]#1"}));
  EXPECT_EQ(Keys(r["metadata"]), (std::vector<std::string>{"attn.w", "attn.b"}));
  EXPECT_EQ(r["metadata"]["attn.w"]["chunks"], J(R"([{"offsets": [0, 0], "sizes": [4, 3]},
      {"offsets": [0, 3], "sizes": [4, 3]}, {"offsets": [4, 0], "sizes": [4, 3]},
      {"offsets": [4, 3], "sizes": [4, 3]}])"));
  // w blocks 4*3*2 = 24 bytes, b halves 3*2 = 6.
  EXPECT_EQ(r["balance"], J(R"({"total_bytes": 108, "max_rank_bytes": 30, "per_rank_bytes": [24, 24, 30, 30]})"));
}

TEST(PlanExamples, DdpBalancedDedup) {
  const PlanRun run = RunScenario(ReadExample("ddp_dedup_save.json"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& r = run.result;
  // Bytes: fc1.bias 32, fc2.bias 24, fc3.bias 16, fc4.bias 8, fc.weight 512,
  // step 4. PyTorch's greedy puts the biases on ranks 0-3 and then fc.weight
  // on rank 3 (8 + 512 = 520). Largest first: fc.weight -> 0, 32 -> 1,
  // 24 -> 2, 16 -> 3, 8 -> 3 (16 is least), step -> 2 (24 = 24, lowest):
  // maximum 512 < 520, so the balanced choice is kept.
  EXPECT_EQ(SaveItems(r, 0), (std::vector<std::string>{"fc.weight@[0,0]#0"}));
  EXPECT_EQ(SaveItems(r, 1), (std::vector<std::string>{"fc1.bias@[0]#0"}));
  EXPECT_EQ(SaveItems(r, 2), (std::vector<std::string>{"fc2.bias@[0]#0", "step#null"}));
  EXPECT_EQ(SaveItems(r, 3), (std::vector<std::string>{"fc3.bias@[0]#0", "fc4.bias@[0]#0"}));
  EXPECT_EQ(Keys(r["metadata"]),
            (std::vector<std::string>{"fc.weight", "fc1.bias", "fc2.bias", "step", "fc3.bias", "fc4.bias"}));
  EXPECT_EQ(r["balance"], J(R"({"total_bytes": 596, "max_rank_bytes": 512, "per_rank_bytes": [512, 32, 28, 24]})"));
}

TEST(PlanExamples, DdpWithOtherDedupPolicies) {
  Json input = ExampleJson("ddp_dedup_save.json");
  input["options"]["dedup"] = "pytorch";
  PlanRun run = RunScenario(input);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  // Greedy loads: 32 -> 0, 24 -> 1, 16 -> 2, 8 -> 3, 512 -> 3 (load 8),
  // step (1) -> 2 (load 16).
  EXPECT_EQ(SaveItems(run.result, 2), (std::vector<std::string>{"fc3.bias@[0]#0", "step#null"}));
  EXPECT_EQ(SaveItems(run.result, 3), (std::vector<std::string>{"fc4.bias@[0]#0", "fc.weight@[0,0]#0"}));
  EXPECT_EQ(run.result["balance"]["per_rank_bytes"], J("[32, 24, 20, 520]"));

  // The flag overrides the policy: everything on rank 0.
  input["options"]["dedup_save_to_lowest_rank"] = true;
  run = RunScenario(input);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(run.result["plans"][0]["items"].size(), 6u);
  EXPECT_EQ(run.result["balance"], J(R"({"total_bytes": 596, "max_rank_bytes": 596, "per_rank_bytes": [596, 0, 0, 0]})"));

  input["options"] = J(R"({"dedup": "lowest_rank"})");
  run = RunScenario(input);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(run.result["balance"]["per_rank_bytes"], J("[596, 0, 0, 0]"));
}

TEST(PlanExamples, InvalidOverlapExitsOne) {
  const PlanRun run = RunScenario(ReadExample("invalid_overlap_save.json"));
  ASSERT_EQ(run.status, kPlanFindings) << run.err;
  const Json& r = run.result;
  EXPECT_EQ(r["valid"], false);
  // w: rows [0,5) and [4,8) share row 4; volume 20 + 16 = 36 != 32.
  // v: [2,5) ends past 4; volume 2 + 3 = 5 != 4. Metadata order w, v.
  ASSERT_EQ(r["problems"].size(), 4u);
  auto without_message = [](Json problem) {
    problem.erase("message");
    return problem;
  };
  EXPECT_EQ(without_message(r["problems"][0]), J(R"({"fqn": "w", "kind": "overlap", "chunks": [0, 1]})"));
  EXPECT_EQ(without_message(r["problems"][1]), J(R"({"fqn": "w", "kind": "volume", "expected": 32, "actual": 36})"));
  EXPECT_EQ(without_message(r["problems"][2]), J(R"({"fqn": "v", "kind": "out_of_bounds", "chunks": [1]})"));
  EXPECT_EQ(without_message(r["problems"][3]), J(R"({"fqn": "v", "kind": "volume", "expected": 4, "actual": 5})"));
  for (const Json& problem : r["problems"]) {
    ASSERT_TRUE(problem.contains("message"));
    EXPECT_EQ(Keys(problem).back(), "message");  // extra field last
  }
  // Plans and balance are still printed: 5*4*4 + 2*4, 4*4*4 + 3*4.
  EXPECT_EQ(r["balance"], J(R"({"total_bytes": 164, "max_rank_bytes": 88, "per_rank_bytes": [88, 76]})"));
}

TEST(PlanExamples, ReshardLoad) {
  const PlanRun run = RunScenario(ReadExample("reshard_load.json"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& r = run.result;
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"plans", "errors", "timings_ms"}));
  EXPECT_EQ(r["errors"], Json::array());
  EXPECT_TRUE(r["timings_ms"]["local_plans"].is_number_float());
  // Rank 1 wants columns [2,4) of all 8 rows; stored chunk k holds rows
  // [2k, 2k+2): it is read from storage column 2 into destination row 2k.
  const Json& items = r["plans"][1]["items"];
  ASSERT_EQ(items.size(), 6u);  // 4 row chunks, bias, step
  for (int k = 0; k < 4; ++k) {
    Json expected = J(R"({"type": "tensor", "dest": {"fqn": "w", "offsets": [0, 2], "index": 0},
        "dest_offsets": [0, 0], "storage": {"fqn": "w", "offsets": [0, 0], "index": 0},
        "storage_offsets": [0, 2], "lengths": [2, 2]})");
    expected["dest_offsets"][0] = 2 * k;
    expected["storage"]["offsets"][0] = 2 * k;
    expected["storage"]["index"] = k;
    EXPECT_EQ(items[k], expected) << k;
  }
  EXPECT_EQ(items[4], J(R"({"type": "tensor", "dest": {"fqn": "bias", "offsets": [0], "index": 0},
      "dest_offsets": [0], "storage": {"fqn": "bias", "offsets": [0], "index": 0},
      "storage_offsets": [0], "lengths": [4]})"));
  EXPECT_EQ(items[5], J(R"({"type": "bytes", "dest": {"fqn": "step", "offsets": null, "index": null},
      "storage": {"fqn": "step", "offsets": null, "index": null}})"));
  // Rank 0: columns [0,2): no storage column offset.
  EXPECT_EQ(r["plans"][0]["items"][3]["storage_offsets"], J("[0, 0]"));
  EXPECT_EQ(r["plans"][0]["items"][3]["dest_offsets"], J("[6, 0]"));
}

TEST(PlanExamples, BadUsageExitsTwo) {
  const PlanRun run = RunScenario(ReadExample("bad_usage.json"));
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "dcplan plan: ranks[1].items[0].lengths[1]: must not be negative, got -4\n");
}

TEST(PlanSave, InterleavedItemsKeepInputOrder) {
  const PlanRun run = RunScenario(std::string(R"({"kind": "save", "ranks": [{"rank": 0, "items": [
      {"fqn": "w", "type": "shard", "size": [4], "offsets": [0], "lengths": [2], "dtype": "int8"},
      {"fqn": "b", "type": "tensor", "size": [2], "dtype": "int8"},
      {"fqn": "w", "type": "shard", "size": [4], "offsets": [2], "lengths": [2], "dtype": "int8"}]}]})"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(SaveItems(run.result, 0), (std::vector<std::string>{"w@[0]#0", "b@[0]#0", "w@[2]#1"}));
  EXPECT_EQ(Keys(run.result["metadata"]), (std::vector<std::string>{"w", "b"}));
}

TEST(PlanSave, IndexHintsNotRewritten) {
  Json input = ExampleJson("fsdp_save.json");
  input["options"]["rewrite_index_hints"] = false;
  const PlanRun run = RunScenario(input);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(SaveItems(run.result, 1),
            (std::vector<std::string>{"embed.weight@[2,0]#null", "layers.0.w@[2,0]#null", "norm.weight@[0]#null"}));
}

TEST(PlanSave, PlanErrorAndConflictAreProblems) {
  // "x" is a tensor on rank 0 and bytes on rank 1: the global plan cannot
  // hold both. "w" at offsets [0] has lengths 2 on rank 0 and 3 on rank 1.
  const PlanRun run = RunScenario(std::string(R"({"kind": "save", "ranks": [
      {"rank": 0, "items": [{"fqn": "x", "type": "tensor", "size": [2], "dtype": "float32"},
                            {"fqn": "w", "type": "shard", "size": [4], "offsets": [0], "lengths": [2], "dtype": "float32"}]},
      {"rank": 1, "items": [{"fqn": "x", "type": "bytes", "bytes": 3},
                            {"fqn": "w", "type": "shard", "size": [4], "offsets": [0], "lengths": [3], "dtype": "float32"}]}]})"));
  ASSERT_EQ(run.status, kPlanFindings) << run.err;
  bool saw_plan_error = false;
  bool saw_conflict = false;
  for (const Json& problem : run.result["problems"]) {
    if (problem["kind"] == "plan_error" && problem["fqn"] == "x") saw_plan_error = true;
    if (problem["kind"] == "conflict" && problem["fqn"] == "w") {
      saw_conflict = true;
      EXPECT_EQ(problem["offsets"], J("[0]"));
    }
    EXPECT_EQ(Keys(problem)[0], "fqn");
    EXPECT_EQ(Keys(problem)[1], "kind");
  }
  EXPECT_TRUE(saw_plan_error) << run.out;
  EXPECT_TRUE(saw_conflict) << run.out;
}

TEST(PlanSave, ZeroDimensionalTensorAndNoRanks) {
  PlanRun run = RunScenario(std::string(R"({"kind": "save", "ranks": [{"rank": 0, "items": [
      {"fqn": "scale", "type": "tensor", "size": [], "dtype": "float64"}]}]})"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(run.result["plans"][0]["items"][0], J(R"({"fqn": "scale", "type": "tensor", "index": 0,
      "offsets": [], "lengths": []})"));
  EXPECT_EQ(run.result["balance"]["total_bytes"], 8);

  run = RunScenario(std::string(R"({"kind": "save", "ranks": []})"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  EXPECT_EQ(run.result["balance"], J(R"({"total_bytes": 0, "max_rank_bytes": 0, "per_rank_bytes": []})"));
}

TEST(PlanSave, NegativeOffsetIsOutOfBoundsNotUsage) {
  const PlanRun run = RunScenario(std::string(R"({"kind": "save", "ranks": [{"rank": 0, "items": [
      {"fqn": "w", "type": "shard", "size": [4], "offsets": [-1], "lengths": [4], "dtype": "uint8"}]}]})"));
  ASSERT_EQ(run.status, kPlanFindings) << run.err;
  EXPECT_EQ(run.result["problems"][0]["kind"], "out_of_bounds");
  EXPECT_EQ(run.result["problems"][0]["chunks"], J("[0]"));
}

TEST(PlanSave, GeneratedFsdpWorldOf64Ranks) {
  // Rank r holds rows [200r/64, 200(r+1)/64) of w [200, 3] (3 or 4 rows) and
  // the replicated b [5].
  constexpr int kRanks = 64;
  Json input = J(R"({"kind": "save", "ranks": []})");
  for (int r = 0; r < kRanks; ++r) {
    const int begin = 200 * r / kRanks;
    const int end = 200 * (r + 1) / kRanks;
    Json shard = J(R"({"fqn": "w", "type": "shard", "size": [200, 3], "dtype": "float32"})");
    shard["offsets"] = Json::array({begin, 0});
    shard["lengths"] = Json::array({end - begin, 3});
    Json rank = Json::object();
    rank["rank"] = r;
    rank["items"] = Json::array({shard, J(R"({"fqn": "b", "type": "tensor", "size": [5], "dtype": "float32"})")});
    input["ranks"].push_back(rank);
  }
  const PlanRun run = RunScenario(input);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& chunks = run.result["metadata"]["w"]["chunks"];
  ASSERT_EQ(chunks.size(), static_cast<size_t>(kRanks));
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(chunks[r]["offsets"][0], 200 * r / kRanks);
    EXPECT_EQ(run.result["plans"][r]["items"][0]["index"], r);
  }
  // Greedy: w@[0,0] loads rank 0 with 200*3*4 = 2400 (global size), so b
  // goes to rank 1, the first of the least-loaded holders.
  EXPECT_EQ(run.result["plans"][1]["items"].size(), 2u);
  EXPECT_EQ(run.result["plans"][1]["items"][1]["fqn"], "b");
  EXPECT_EQ(run.result["balance"]["total_bytes"], 200 * 3 * 4 + 5 * 4);
  // Rank 1 holds rows [3, 6) (3 * 12 bytes) plus b (20 bytes) = 56; no
  // other rank has b, and the largest shard is 4 rows (48 bytes).
  EXPECT_EQ(run.result["balance"]["per_rank_bytes"][1], 56);
  EXPECT_EQ(run.result["balance"]["max_rank_bytes"], 56);
}

TEST(PlanLoad, SaveMetadataRoundTripsIntoLoad) {
  const PlanRun save = RunScenario(ReadExample("fsdp_save.json"));
  ASSERT_EQ(save.status, kPlanOk);
  Json load = J(R"({"kind": "load", "ranks": [{"rank": 0, "items": [
      {"fqn": "layers.0.w", "type": "shard", "size": [6, 4], "offsets": [1, 0], "lengths": [4, 4]}]}]})");
  load["metadata"] = save.result["metadata"];
  const PlanRun run = RunScenario(load);
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  // Rows [1,5) from stored rows [0,2) [2,4) [4,5): 1 + 2 + 1 rows.
  const Json& items = run.result["plans"][0]["items"];
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]["storage_offsets"], J("[1, 0]"));
  EXPECT_EQ(items[0]["lengths"], J("[1, 4]"));
  EXPECT_EQ(items[1]["dest_offsets"], J("[1, 0]"));
  EXPECT_EQ(items[1]["lengths"], J("[2, 4]"));
  EXPECT_EQ(items[2]["dest_offsets"], J("[3, 0]"));
  EXPECT_EQ(items[2]["storage"]["index"], 2);
}

TEST(PlanLoad, ErrorsAreListedAndGoodKeysPlanned) {
  const std::string metadata = R"("metadata": {"w": {"type": "tensor", "dtype": "float32", "size": [4],
      "chunks": [{"offsets": [0], "sizes": [4]}]}, "s": {"type": "bytes"}})";
  const std::string ranks = R"("ranks": [{"rank": 0, "items": [
      {"fqn": "missing", "type": "tensor", "size": [1]},
      {"fqn": "w", "type": "tensor", "size": [5]},
      {"fqn": "s", "type": "tensor", "size": [1]},
      {"fqn": "w", "type": "shard", "size": [5], "offsets": [0], "lengths": [1]}]},
    {"rank": 1, "items": [{"fqn": "w", "type": "tensor", "size": [4]}]}])";
  // Rank 0 repeats "w" as a tensor and a shard: a usage error.
  PlanRun run = RunScenario("{\"kind\": \"load\", " + metadata + ", " + ranks + "}");
  EXPECT_EQ(run.status, kPlanUsageError);
  EXPECT_EQ(run.err.rfind("dcplan plan: ranks[0].items[3].fqn: ", 0), 0u) << run.err;

  const std::string good_ranks = R"("ranks": [{"rank": 0, "items": [
      {"fqn": "missing", "type": "tensor", "size": [1]},
      {"fqn": "w", "type": "tensor", "size": [5]},
      {"fqn": "s", "type": "tensor", "size": [1]}]},
    {"rank": 1, "items": [{"fqn": "w", "type": "tensor", "size": [4]}]}])";
  run = RunScenario("{\"kind\": \"load\", " + metadata + ", " + good_ranks + "}");
  ASSERT_EQ(run.status, kPlanFindings) << run.err;
  std::vector<std::string> errors;
  for (const Json& e : run.result["errors"]) {
    errors.push_back(e["rank"].dump() + ":" + e["fqn"].get<std::string>() + ":" + e["kind"].get<std::string>());
  }
  EXPECT_EQ(errors, (std::vector<std::string>{"0:missing:missing_key", "0:w:size_mismatch", "0:s:type_mismatch"}));
  EXPECT_EQ(run.result["plans"][0]["items"], Json::array());
  EXPECT_EQ(run.result["plans"][1]["items"].size(), 1u);  // rank 1's good request

  // Not strict: the missing key is skipped, the others are still errors.
  run = RunScenario("{\"kind\": \"load\", \"options\": {\"strict\": false}, " + metadata + ", " + good_ranks + "}");
  ASSERT_EQ(run.status, kPlanFindings) << run.err;
  EXPECT_EQ(run.result["errors"].size(), 2u);
}

TEST(PlanLoad, InterleavedDestinationsKeepInputOrder) {
  const PlanRun run = RunScenario(std::string(R"({"kind": "load",
      "metadata": {"w": {"type": "tensor", "dtype": "float32", "size": [4],
                         "chunks": [{"offsets": [0], "sizes": [2]}, {"offsets": [2], "sizes": [2]}]},
                   "b": {"type": "bytes"}},
      "ranks": [{"rank": 0, "items": [
        {"fqn": "w", "type": "shard", "size": [4], "offsets": [3], "lengths": [1]},
        {"fqn": "b", "type": "bytes"},
        {"fqn": "w", "type": "shard", "size": [4], "offsets": [0], "lengths": [3]}]}]})"));
  ASSERT_EQ(run.status, kPlanOk) << run.err;
  const Json& items = run.result["plans"][0]["items"];
  ASSERT_EQ(items.size(), 4u);
  // Destination 0 ([3,4)) reads stored chunk 1; then b; then destination 1
  // ([0,3)) reads chunks 0 and 1.
  EXPECT_EQ(items[0]["dest"], J(R"({"fqn": "w", "offsets": [3], "index": 0})"));
  EXPECT_EQ(items[0]["storage"]["index"], 1);
  EXPECT_EQ(items[1]["type"], "bytes");
  EXPECT_EQ(items[2]["dest"], J(R"({"fqn": "w", "offsets": [0], "index": 1})"));
  EXPECT_EQ(items[2]["storage"]["index"], 0);
  EXPECT_EQ(items[3]["storage"]["index"], 1);
  EXPECT_EQ(items[3]["lengths"], J("[1]"));
}

TEST(PlanMainTest, HelpFilesAndArguments) {
  std::string out, err;
  EXPECT_EQ(PlanMain({"--help"}, &out, &err), kPlanOk);
  EXPECT_NE(out.find("usage: dcplan plan"), std::string::npos);
  EXPECT_NE(out.find("Exit status"), std::string::npos);
  out.clear();
  EXPECT_EQ(PlanMain({"a.json", "b.json"}, &out, &err), kPlanUsageError);
  EXPECT_EQ(PlanMain({"--bogus"}, &out, &err), kPlanUsageError);
  err.clear();
  EXPECT_EQ(PlanMain({"/nonexistent/dir/x.json"}, &out, &err), kPlanUsageError);
  EXPECT_NE(err.find("cannot open /nonexistent/dir/x.json"), std::string::npos) << err;
  EXPECT_EQ(out, "");
  // A relative path is taken from where `bazel run` was started.
  ASSERT_EQ(setenv("BUILD_WORKING_DIRECTORY", "tools", 1), 0);
  EXPECT_EQ(PlanMain({"examples/tp2d_save.json"}, &out, &err), kPlanOk) << err;
  unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_NE(out.find("\"attn.w\""), std::string::npos);
}

}  // namespace
}  // namespace dcplan::tools
