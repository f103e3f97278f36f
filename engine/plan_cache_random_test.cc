// Randomized test of the plan cache: fixed seeds, 50 save rounds each, random
// ranks change random items; every round is compared with planning from
// scratch and with an independent model of what must travel as placeholders.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/plan.h"
#include "engine/plan_cache.h"
#include "engine/plan_cache_test_util.h"
#include "engine/save_planner.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace plan_cache_test {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {  // splitmix64: fixed, platform-independent sequence
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Below(100) < percent; }

 private:
  uint64_t state_;
};

constexpr int kWorld = 4;
constexpr int kReplicated = 4;
constexpr int kSharded = 2;
const DType kDTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

// What every rank holds: replicated tensors rep<i> [2+i, 3] (any subset of
// ranks; a per-rank dtype override makes a conflicting, invalid round),
// row-sharded tensors sh<j> [rows, 4] (one piece per rank), a replicated bytes
// value "step" and a bytes value own_<r> per rank.
struct World {
  std::vector<DType> replicated_dtype = std::vector<DType>(kReplicated, DType::kFloat32);
  std::vector<std::vector<bool>> holds = std::vector<std::vector<bool>>(kWorld, std::vector<bool>(kReplicated, true));
  std::vector<std::vector<std::optional<DType>>> dtype_override =
      std::vector<std::vector<std::optional<DType>>>(kWorld, std::vector<std::optional<DType>>(kReplicated));
  std::vector<int64_t> rows = std::vector<int64_t>(kSharded, 8);
  std::vector<Shape> cuts = std::vector<Shape>(kSharded, Shape{0, 2, 4, 6, 8});
  std::vector<DType> sharded_dtype = std::vector<DType>(kSharded, DType::kFloat32);
  std::vector<int64_t> own_nbytes = std::vector<int64_t>(kWorld, 16);
  std::vector<std::vector<std::string>> order;

  World() {
    for (int r = 0; r < kWorld; ++r) {
      std::vector<std::string> keys = {"step"};
      for (int i = 0; i < kReplicated; ++i) keys.push_back("rep" + std::to_string(i));
      for (int j = 0; j < kSharded; ++j) keys.push_back("sh" + std::to_string(j));
      keys.push_back("own_" + std::to_string(r));
      order.push_back(keys);
    }
  }

  SavePlan LocalPlan(int r) const {
    SavePlan plan;
    plan.planner_data.emplace();
    for (const std::string& key : order[r]) {
      const int n = key.back() - '0';
      if (key == "step") {
        plan.items.push_back(Bytes(key, 8));
      } else if (key.rfind("rep", 0) == 0) {
        if (!holds[r][n]) continue;
        plan.items.push_back(Tensor(key, {2 + n, 3}, dtype_override[r][n].value_or(replicated_dtype[n])));
      } else if (key.rfind("sh", 0) == 0) {
        plan.items.push_back(
            Shard(key, {rows[n], 4}, {cuts[n][r], 0}, {cuts[n][r + 1] - cuts[n][r], 4}, sharded_dtype[n]));
      } else {
        plan.items.push_back(Bytes(key, own_nbytes[r]));
      }
      plan.planner_data->InsertOrAssign(key, ObjectPath{key});
    }
    return plan;
  }

  void MutateRank(int r, Rng& rng) {
    const int i = static_cast<int>(rng.Below(kReplicated));
    switch (rng.Below(5)) {
      case 0: holds[r][i] = !holds[r][i]; break;
      case 1: own_nbytes[r] = 1 + rng.Below(100); break;
      case 2: {
        const size_t k = static_cast<size_t>(rng.Below(static_cast<int64_t>(order[r].size()) - 1));
        std::swap(order[r][k], order[r][k + 1]);
        break;
      }
      case 3: dtype_override[r][i] = kDTypes[rng.Below(3)]; break;
      default: dtype_override[r] = std::vector<std::optional<DType>>(kReplicated); break;
    }
  }

  void MutateGlobally(Rng& rng) {
    const int j = static_cast<int>(rng.Below(kSharded));
    switch (rng.Below(3)) {
      case 0: replicated_dtype[rng.Below(kReplicated)] = kDTypes[rng.Below(3)]; break;
      case 1: {  // reshard: kWorld non-empty row ranges
        rows[j] = 8 + rng.Below(8);
        Shape cut = {0};
        while (cut.size() < kWorld) {
          const int64_t c = 1 + rng.Below(rows[j] - 1);
          if (std::find(cut.begin(), cut.end(), c) == cut.end()) cut.push_back(c);
        }
        cut.push_back(rows[j]);
        std::sort(cut.begin(), cut.end());
        cuts[j] = cut;
        break;
      }
      default: sharded_dtype[j] = kDTypes[rng.Below(3)]; break;
    }
  }
};

struct Coverage {
  int rounds[3] = {0, 0, 0};  // by CacheRound
  int invalid = 0;
  int errors = 0;
  int placeholders_sent = 0;
  int placeholders_received_after_change = 0;  // in kSomeChanged rounds
};

// Expected behaviour, tracked independently of the caches: a rank sends a
// placeholder iff it finished the previous round and its local plan equals
// the one it finished with; it receives one iff it sent one and its final plan
// equals the coordinator's last committed plan for it.
void RunRandomRounds(uint64_t seed, Coverage& coverage) {
  Rng rng(seed);
  World world;
  SavePlannerOptions options;  // flatten_state_dict: mappings are merged
  Cluster cluster(kWorld, options);
  std::vector<std::optional<SavePlan>> finished_local(kWorld);
  std::optional<std::vector<SavePlan>> committed_finals;
  SavePlannerOptions committed_options;
  const DedupPolicy kPolicies[] = {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced};

  for (int round = 0; round < 50; ++round) {
    SCOPED_TRACE(testing::Message() << "seed " << seed << " round " << round);
    if (rng.Chance(70)) {
      const int changed = 1 + static_cast<int>(rng.Below(kWorld));
      for (int c = 0; c < changed; ++c) world.MutateRank(static_cast<int>(rng.Below(kWorld)), rng);
      if (rng.Chance(15)) world.MutateGlobally(rng);
    }
    if (rng.Chance(30)) {
      for (auto& overrides : world.dtype_override) overrides = std::vector<std::optional<DType>>(kReplicated);
    }
    if (rng.Chance(6)) {
      const int r = static_cast<int>(rng.Below(kWorld));
      cluster.ranks[r] = RankPlanCache(r);
      finished_local[r].reset();
    }
    if (rng.Chance(6)) {
      cluster.coordinator.Invalidate();
      committed_finals.reset();
    }
    if (rng.Chance(4)) cluster.options.dedup = kPolicies[rng.Below(3)];

    std::vector<SavePlan> locals;
    std::vector<bool> expect_sent_full;
    for (int r = 0; r < kWorld; ++r) {
      locals.push_back(world.LocalPlan(r));
      expect_sent_full.push_back(!(finished_local[r].has_value() && *finished_local[r] == locals[r]));
    }
    finished_local.assign(kWorld, std::nullopt);  // the round starts

    absl::StatusOr<RoundOutcome> out = cluster.Save(locals);
    const bool any_placeholder = std::find(expect_sent_full.begin(), expect_sent_full.end(), false) !=
                                 expect_sent_full.end();
    if (!committed_finals.has_value() && any_placeholder) {
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();
      ++coverage.errors;
      continue;
    }
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(UsableFlags(out->sent), expect_sent_full);
    for (const SavePlan& sent : out->sent) coverage.placeholders_sent += !sent.usable;

    absl::StatusOr<GlobalSavePlan> scratch = CreateGlobalSavePlan(locals, cluster.options);
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    EXPECT_EQ(out->metadata, scratch->metadata);
    EXPECT_EQ(out->problems, scratch->problems);
    if (!scratch->valid()) {
      ++coverage.invalid;
      continue;
    }
    CacheRound expected_round = CacheRound::kSomeChanged;
    if (!committed_finals.has_value()) {
      expected_round = CacheRound::kFromScratch;
    } else if (!std::count(expect_sent_full.begin(), expect_sent_full.end(), true) &&
               committed_options.dedup == cluster.options.dedup) {
      expected_round = CacheRound::kAllUnchanged;
    }
    EXPECT_EQ(out->round, expected_round);
    ++coverage.rounds[static_cast<int>(out->round)];
    std::vector<bool> expect_delta_full;
    for (int r = 0; r < kWorld; ++r) {
      expect_delta_full.push_back(expect_sent_full[r] || (*committed_finals)[r] != scratch->plans[r]);
      if (!expect_delta_full.back() && out->round == CacheRound::kSomeChanged) {
        ++coverage.placeholders_received_after_change;
      }
    }
    EXPECT_EQ(UsableFlags(out->deltas), expect_delta_full);
    EXPECT_EQ(out->finals, scratch->plans);

    committed_finals = scratch->plans;
    committed_options = cluster.options;
    for (int r = 0; r < kWorld; ++r) finished_local[r] = locals[r];
  }
}

TEST(PlanCacheRandomTest, FiftyRoundsMatchPlanningFromScratch) {
  Coverage coverage;
  for (uint64_t seed : {1u, 2u, 3u}) {
    RunRandomRounds(seed, coverage);
    if (HasFatalFailure()) return;
  }
  // The sequences exercise every path of the protocol.
  EXPECT_GT(coverage.rounds[static_cast<int>(CacheRound::kFromScratch)], 0);
  EXPECT_GT(coverage.rounds[static_cast<int>(CacheRound::kAllUnchanged)], 0);
  EXPECT_GT(coverage.rounds[static_cast<int>(CacheRound::kSomeChanged)], 0);
  EXPECT_GT(coverage.invalid, 0);
  EXPECT_GT(coverage.errors, 0);
  EXPECT_GT(coverage.placeholders_received_after_change, 0);
  EXPECT_GT(coverage.placeholders_sent, 0);
}

}  // namespace
}  // namespace plan_cache_test
}  // namespace dcplan
