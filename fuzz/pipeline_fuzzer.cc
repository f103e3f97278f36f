// Structure-aware fuzz target for the whole planning pipeline.
//
// The bytes describe a save (fuzz/scenario_gen.h: ranks, tensors with shapes,
// FSDP / grid / guillotine shardings, replicated tensors and bytes, sometimes
// faults). Every rank's CreateLocalSavePlan, then CreateGlobalSavePlan under
// each dedup policy, are checked against their contracts
// (fuzz/pipeline_checks.h): dedup keeps each key exactly once, hints equal
// metadata positions, ValidateTensor agrees with the pairwise oracle, a
// fault-free sharding is valid, the balanced policy is never worse than
// PyTorch's. The remaining bytes then describe a load of another random
// partition, whose read items must equal the pairwise reference and, copied
// as integer arrays, fill every destination element exactly once from the
// stored chunk that holds it; arbitrary destination boxes go straight to
// CreateReadItemsForChunkList and are compared with the pairwise reference.
// Plans and metadata also round-trip through the codec.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/dedup.h"
#include "engine/load_planner.h"
#include "engine/save_planner.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzzed_data.h"
#include "fuzz/pipeline_checks.h"
#include "fuzz/pipeline_oracles.h"
#include "fuzz/scenario_gen.h"

namespace dcplan::fuzzing {
namespace {

constexpr DedupPolicy kPolicies[] = {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced};

// Every size the dedup policies and the byte accounting compute fits in int64
// with room to spare (a clean scenario must then plan without error).
bool SizesFit(const std::vector<SavePlan>& plans) {
  __int128 storage_total = 0;
  __int128 payload_total = 0;
  for (const SavePlan& plan : plans) {
    for (const WriteItem& item : plan.items) {
      absl::StatusOr<std::optional<int64_t>> storage = item.TensorStorageSize();
      absl::StatusOr<int64_t> payload = item.PayloadBytes();
      if (!storage.ok() || !payload.ok()) return false;
      storage_total += storage->value_or(1);
      payload_total += *payload;
    }
  }
  constexpr __int128 kLimit = std::numeric_limits<int64_t>::max() / 4;
  return storage_total < kLimit && payload_total < kLimit;
}

std::string Faults(const SaveScenario& s) { return s.faults.empty() ? "none" : absl::StrJoin(s.faults, "; "); }

std::optional<std::vector<SavePlan>> LocalPlans(const SaveScenario& s) {
  std::vector<SavePlan> plans;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(s.ranks[r], r == 0);
    if (!plan.ok()) {
      FUZZ_CHECK(!s.faults.empty() && plan.status().code() == absl::StatusCode::kInvalidArgument,
                 absl::StrCat("rank ", r, " cannot plan (faults: ", Faults(s), "): ", plan.status().ToString(), "\n",
                              Describe(s.ranks[r])));
      return std::nullopt;
    }
    CheckLocalSavePlan(s.ranks[r], *plan);
    plans.push_back(*std::move(plan));
  }
  return plans;
}

struct Balance {
  int64_t max_rank_bytes = 0;
  __int128 total_bytes = 0;
};

Balance BalanceOf(const std::vector<SavePlan>& plans) {
  absl::StatusOr<std::vector<int64_t>> bytes = PlanBytes(plans);
  FUZZ_CHECK(bytes.ok(), "PlanBytes fails on a clean scenario: " + bytes.status().ToString());
  Balance balance;
  for (int64_t b : *bytes) {
    balance.max_rank_bytes = std::max(balance.max_rank_bytes, b);
    balance.total_bytes += b;
  }
  return balance;
}

void FuzzLoad(FuzzedData& in, const Metadata& metadata) {
  const LoadScenario ls = GenerateLoadScenario(in, metadata);
  const LoadPlannerOptions options{ls.strict};
  std::vector<LoadPlan> plans;
  for (size_t r = 0; r < ls.ranks.size(); ++r) {
    LocalLoadPlan local = CreateLocalLoadPlan(ls.ranks[r], metadata, options, static_cast<int64_t>(r));
    CheckLocalLoadPlan(ls.ranks[r], metadata, options, static_cast<int64_t>(r), local);
    // Matching requests fail only on a checkpoint whose stored chunks overlap
    // (CheckLocalLoadPlan compared the errors with the reference already).
    for (const LoadPlanError& error : local.errors) {
      FUZZ_CHECK(ls.mismatched_requests || error.kind == LoadErrorKind::kInvalidCheckpoint,
                 "load errors for requests that match the checkpoint: " + LoadErrorsToStatus(local.errors).ToString());
    }
    plans.push_back(std::move(local.plan));
  }
  CheckCodecRoundTrip(plans);
  FUZZ_CHECK(CreateGlobalLoadPlan(plans) == plans, "the global load plan changed the local plans");
  // Arbitrary destination boxes, which CreateLocalLoadPlan would refuse,
  // straight into the read-item search.
  for (const auto& [fqn, entry] : metadata.state_dict_metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&entry);
    if (tensor == nullptr || !in.ConsumeChance(64)) continue;
    const std::vector<ChunkBox> boxes = GenerateRandomBoxes(in, tensor->size);
    const std::vector<ReadItem> items = CreateReadItemsForChunkList(fqn, *tensor, boxes);
    const std::vector<ReadItem> expected = ReadItemsPairwise(fqn, *tensor, boxes);
    FUZZ_CHECK(items == expected, absl::StrCat("CreateReadItemsForChunkList('", fqn, "') differs from the pairwise ",
                                               "reference\nstored: ", ToString(entry), "\nitems:\n",
                                               DescribeAll(items), "reference:\n", DescribeAll(expected)));
  }
}

void FuzzPipeline(FuzzedData& in) {
  const SaveScenario s = GenerateSaveScenario(in);
  std::optional<std::vector<SavePlan>> local = LocalPlans(s);
  if (!local) return;
  CheckCodecRoundTrip(*local);
  const bool clean = s.faults.empty() && SizesFit(*local);
  std::optional<Metadata> saved;
  std::optional<Balance> pytorch_balance;
  for (DedupPolicy policy : kPolicies) {
    const SavePlannerOptions options{s.flatten_state_dict, policy, s.rewrite_index_hints};
    absl::StatusOr<GlobalSavePlan> global = CreateGlobalSavePlan(*local, options);
    if (!global.ok()) {
      FUZZ_CHECK(!clean, absl::StrCat("clean scenario, ", DedupPolicyName(policy),
                                      " dedup fails: ", global.status().ToString()));
      continue;
    }
    CheckGlobalSavePlan(*local, options, *global, clean);
    CheckCodecRoundTrip(global->plans);
    CheckCodecRoundTrip(global->metadata);
    if (clean) {
      const Balance balance = BalanceOf(global->plans);
      if (!pytorch_balance) pytorch_balance = balance;
      FUZZ_CHECK(balance.total_bytes == pytorch_balance->total_bytes,
                 absl::StrCat(DedupPolicyName(policy), " dedup writes another number of bytes than pytorch's"));
      FUZZ_CHECK(policy != DedupPolicy::kBalanced || balance.max_rank_bytes <= pytorch_balance->max_rank_bytes,
                 absl::StrCat("balanced dedup's largest rank writes ", balance.max_rank_bytes,
                              " bytes, pytorch's only ", pytorch_balance->max_rank_bytes));
    }
    if (!saved) saved = std::move(global->metadata);
  }
  if (saved) FuzzLoad(in, *saved);
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzedData in(data, size);
  dcplan::fuzzing::FuzzPipeline(in);
  return 0;
}
