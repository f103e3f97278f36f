// Properties of plan caching (engine/plan_cache.h): over random sequences of
// save rounds in which ranks change their plans, restart, miss the end of a
// round or the world size changes, the cached protocol produces exactly what
// planning from scratch produces (each rank's final plan, the metadata, the
// problems).

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/plan.h"
#include "engine/plan_cache.h"
#include "engine/save_planner.h"
#include "property_tests/generators.h"

namespace dcplan {
namespace proptest {
namespace {

enum class EventKind : uint8_t {
  kPrivateBytes,        // add, resize or remove a bytes item only `rank` holds
  kStorageData,         // `rank` writes under another file prefix
  kPlannerData,         // `rank`'s flatten mapping gains a key
  kDtype,               // one tensor changes dtype on every rank
  kBreak,               // `rank` moves a chunk out of bounds for one round
  kRankRestart,         // `rank` loses its cache
  kCoordinatorRestart,  // the coordinator loses its cache
  kMissFinish,          // `rank` fails after the coordinator committed
  kOptions,             // another dedup policy
  kWorldSize,           // a new scenario, with another number of ranks
};

constexpr const char* kEventNames[] = {"private_bytes", "storage_data", "planner_data", "dtype",
                                       "break",         "rank_restart", "coordinator_restart",
                                       "miss_finish",   "options",      "world_size"};

struct Event {
  EventKind kind = EventKind::kPrivateBytes;
  int32_t rank = 0;  // taken modulo the world size
  int32_t value = 0;
};

std::ostream& operator<<(std::ostream& os, const Event& e) {
  return os << kEventNames[static_cast<int>(e.kind)] << "(rank " << e.rank << ", " << e.value << ")";
}

constexpr int kNumEventKinds = static_cast<int>(EventKind::kWorldSize) + 1;

// Kinds uniformly, whatever the test size (rc::gen::inRange scales its range
// with the size: the last kinds would only come late in a run).
rc::Gen<Event> GenEvent() {
  return rc::gen::exec([] {
    Event e;
    e.kind = static_cast<EventKind>(*rc::gen::resize(rc::kNominalSize, rc::gen::inRange(0, kNumEventKinds)));
    e.rank = *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<int32_t>(0, 1 << 20));
    e.value = *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<int32_t>(0, 1000));
    return e;
  });
}

// One round's events: a quarter of the rounds change only the options (every
// rank sends a placeholder then, the case a cache must not serve from its
// last round), the others have 0..3 events.
rc::Gen<std::vector<Event>> GenRoundEvents() {
  return rc::gen::exec([] {
    if (*rc::gen::weightedElement<bool>({{1, true}, {3, false}})) {
      Event e = *GenEvent();
      e.kind = EventKind::kOptions;
      return std::vector<Event>{e};
    }
    const size_t count = static_cast<size_t>(*rc::gen::resize(rc::kNominalSize, rc::gen::inRange(0, 4)));
    return *rc::gen::container<std::vector<Event>>(count, GenEvent());
  });
}

// 1..8 rounds.
rc::Gen<std::vector<std::vector<Event>>> GenRounds() {
  return rc::gen::exec([] {
    const size_t rounds = static_cast<size_t>(*rc::gen::resize(rc::kNominalSize, rc::gen::inRange(1, 9)));
    return *rc::gen::container<std::vector<std::vector<Event>>>(rounds, GenRoundEvents());
  });
}

// Whether `rounds` has an event of `kind` / a round changing only the options.
bool HasKind(const std::vector<std::vector<Event>>& rounds, EventKind kind) {
  for (const auto& events : rounds) {
    for (const Event& e : events) {
      if (e.kind == kind) return true;
    }
  }
  return false;
}

bool HasOptionsOnlyRound(const std::vector<std::vector<Event>>& rounds) {
  for (const auto& events : rounds) {
    if (events.size() == 1 && events[0].kind == EventKind::kOptions) return true;
  }
  return false;
}

ScenarioLimits Limits() {
  ScenarioLimits limits;
  limits.max_ranks = 4096;
  limits.max_items = 5000;
  limits.max_entries = 5;
  // Exact layouts whose keys never collide: rounds are invalid only when an
  // event breaks a plan.
  limits.distinct_offsets = true;
  return limits;
}

std::vector<SavePlan> PlansOf(const Scenario& scenario) {
  absl::StatusOr<std::vector<SavePlan>> plans = LocalSavePlans(scenario);
  RC_ASSERT(plans.ok());
  for (size_t r = 0; r < plans->size(); ++r) (*plans)[r].storage_data = absl::StrCat("__", r, "_");
  return *std::move(plans);
}

// Everything the simulated job keeps between rounds.
struct Job {
  std::vector<SavePlan> local;  // every rank's current full local plan
  std::vector<RankPlanCache> ranks;
  CoordinatorPlanCache coordinator;
  SavePlannerOptions options;
  std::vector<std::pair<size_t, SavePlan>> to_repair;  // broken plans, repaired next round

  void Resize(size_t world) {
    while (ranks.size() > world) ranks.pop_back();
    while (ranks.size() < world) ranks.emplace_back(static_cast<int64_t>(ranks.size()));
  }
};

void Apply(const Event& e, Job& job, std::vector<bool>& miss_finish) {
  const size_t world = job.local.size();
  const size_t r = static_cast<size_t>(e.rank) % world;
  SavePlan& plan = job.local[r];
  switch (e.kind) {
    case EventKind::kPrivateBytes: {
      const std::string fqn = absl::StrCat("private.r", r);
      for (auto it = plan.items.begin(); it != plan.items.end(); ++it) {
        if (it->index.fqn != fqn) continue;
        if (e.value % 2 == 0) {
          plan.items.erase(it);
        } else {
          it->bytes_io_nbytes = e.value;
        }
        return;
      }
      WriteItem item;
      item.index.fqn = fqn;
      item.type = WriteItemType::kByteIO;
      item.bytes_io_nbytes = e.value;
      plan.items.push_back(item);
      if (plan.planner_data) plan.planner_data->InsertOrAssign(fqn, ObjectPath{std::string("private"), fqn});
      return;
    }
    case EventKind::kStorageData: plan.storage_data = absl::StrCat("__", r, "_", e.value, "_"); return;
    case EventKind::kPlannerData:
      if (plan.planner_data) {
        plan.planner_data->InsertOrAssign(absl::StrCat("extra", e.value), ObjectPath{int64_t{e.value}});
      }
      return;
    case EventKind::kDtype: {
      std::vector<std::string> tensors;
      for (const WriteItem& item : plan.items) {
        if (item.tensor_data) tensors.push_back(item.index.fqn);
      }
      if (tensors.empty()) return;
      const std::string fqn = tensors[e.value % tensors.size()];
      for (SavePlan& p : job.local) {
        for (WriteItem& item : p.items) {
          if (item.index.fqn != fqn || !item.tensor_data) continue;
          DType& dtype = item.tensor_data->properties.dtype;
          dtype = static_cast<DType>((static_cast<int>(dtype) + 1) % kNumDTypes);
        }
      }
      return;
    }
    case EventKind::kBreak:
      for (WriteItem& item : plan.items) {
        if (!item.tensor_data || item.tensor_data->size.empty()) continue;
        job.to_repair.push_back({r, plan});
        const int64_t outside = item.tensor_data->size[0] + 1;
        item.tensor_data->chunk.offsets[0] = outside;
        (*item.index.offset)[0] = outside;
        return;
      }
      return;
    case EventKind::kRankRestart: job.ranks[r].Invalidate(); return;
    case EventKind::kCoordinatorRestart: job.coordinator.Invalidate(); return;
    case EventKind::kMissFinish: miss_finish[r] = true; return;
    case EventKind::kOptions:  // always another policy
      job.options.dedup = static_cast<DedupPolicy>((static_cast<int>(job.options.dedup) + 1 + e.value % 2) % 3);
      return;
    case EventKind::kWorldSize:
      job.local = PlansOf(*GenScenario(Limits()));
      job.to_repair.clear();
      job.Resize(job.local.size());
      miss_finish.assign(job.local.size(), false);
      return;
  }
}

absl::StatusOr<CachedGlobalPlan> Gather(Job& job, std::vector<SavePlan>& sent) {
  sent.clear();
  for (size_t r = 0; r < job.local.size(); ++r) {
    absl::StatusOr<SavePlan> to_send = job.ranks[r].PlanToSend(job.local[r]);
    RC_ASSERT(to_send.ok());
    sent.push_back(*std::move(to_send));
  }
  return job.coordinator.CreateGlobalPlan(sent, job.options);
}

RC_GTEST_PROP(PlanCacheProperty, CachedRoundsEqualPlanningFromScratch, ()) {
  Job job;
  job.local = PlansOf(*GenScenario(Limits()));
  job.Resize(job.local.size());
  const std::vector<std::vector<Event>> rounds = *GenRounds();
  for (int k = 0; k < kNumEventKinds; ++k) RC_CLASSIFY(HasKind(rounds, static_cast<EventKind>(k)), kEventNames[k]);
  std::optional<SavePlannerOptions> committed_options;
  bool seen[3] = {false, false, false};  // by CacheRound
  bool retried = false, invalid = false, options_changed_all_unchanged = false;
  for (const std::vector<Event>& events : rounds) {
    // Newest first: a plan broken twice gets its first original back.
    for (auto it = job.to_repair.rbegin(); it != job.to_repair.rend(); ++it) {
      if (it->first < job.local.size()) job.local[it->first] = it->second;
    }
    job.to_repair.clear();
    std::vector<bool> miss_finish(job.local.size(), false);
    for (const Event& e : events) Apply(e, job, miss_finish);
    const size_t world = job.local.size();

    const bool coordinator_cached = job.coordinator.has_cached_round();
    const size_t cached_world = job.coordinator.world_size();
    std::vector<SavePlan> sent;
    absl::StatusOr<CachedGlobalPlan> result = Gather(job, sent);
    bool any_placeholder = false;
    bool all_placeholders = true;
    for (const SavePlan& p : sent) {
      any_placeholder = any_placeholder || !p.usable;
      all_placeholders = all_placeholders && !p.usable;
    }
    if (!result.ok()) {
      // Only placeholders the coordinator cannot resolve are errors; the
      // ranks then start over (their unfinished round drops their caches).
      RC_ASSERT(absl::IsFailedPrecondition(result.status()));
      RC_ASSERT(any_placeholder && (!coordinator_cached || cached_world != world));
      retried = true;
      result = Gather(job, sent);
      RC_ASSERT(result.ok());
      for (const SavePlan& p : sent) RC_ASSERT(p.usable);
      all_placeholders = false;
    }
    seen[static_cast<int>(result->round)] = true;
    if (all_placeholders && committed_options && committed_options->dedup == job.options.dedup) {
      RC_ASSERT(result->round == CacheRound::kAllUnchanged);
    }
    if (all_placeholders && committed_options && committed_options->dedup != job.options.dedup) {
      options_changed_all_unchanged = true;
      RC_ASSERT(result->round == CacheRound::kSomeChanged);
    }

    absl::StatusOr<GlobalSavePlan> scratch = CreateGlobalSavePlan(job.local, job.options);
    RC_ASSERT(scratch.ok());
    RC_ASSERT(result->problems == scratch->problems);
    RC_ASSERT(result->metadata == scratch->metadata);
    if (!result->valid()) {
      invalid = true;
      RC_ASSERT(result->deltas.empty());
      continue;  // no rank finishes the round
    }
    committed_options = job.options;
    RC_ASSERT(result->deltas.size() == world);
    for (size_t r = 0; r < world; ++r) {
      if (miss_finish[r]) continue;
      absl::StatusOr<SavePlan> final_plan = job.ranks[r].FinishPlan(result->deltas[r]);
      RC_ASSERT(final_plan.ok());
      RC_ASSERT(*final_plan == scratch->plans[r]);
    }
  }
  RC_CLASSIFY(seen[static_cast<int>(CacheRound::kAllUnchanged)], "all_unchanged round");
  RC_CLASSIFY(seen[static_cast<int>(CacheRound::kSomeChanged)], "some_changed round");
  RC_CLASSIFY(retried, "unresolvable placeholders retried");
  RC_CLASSIFY(invalid, "invalid round");
  RC_CLASSIFY(options_changed_all_unchanged, "options changed, every rank unchanged");
}

// The generator's promise: at every size, each event kind, and a round
// changing only the options, in at least 10 % of the cases.
TEST(PlanCacheEvents, EveryKindInAtLeastATenthOfTheCasesAtEverySize) {
  constexpr int kCases = 500;
  rc::Random random;
  for (int size : {0, 1, 10, 50, 100}) {
    std::vector<int> with_kind(kNumEventKinds, 0);
    int with_options_only_round = 0;
    for (int c = 0; c < kCases; ++c) {
      const std::vector<std::vector<Event>> rounds = GenRounds()(random.split(), size).value();
      for (int k = 0; k < kNumEventKinds; ++k) with_kind[k] += HasKind(rounds, static_cast<EventKind>(k));
      with_options_only_round += HasOptionsOnlyRound(rounds);
    }
    for (int k = 0; k < kNumEventKinds; ++k) {
      EXPECT_GE(with_kind[k] * 10, kCases) << kEventNames[k] << " at size " << size;
    }
    EXPECT_GE(with_options_only_round * 10, kCases) << "options-only rounds at size " << size;
  }
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
