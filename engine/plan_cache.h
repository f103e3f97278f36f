#ifndef DCPLAN_ENGINE_PLAN_CACHE_H_
#define DCPLAN_ENGINE_PLAN_CACHE_H_

// Plan caching for repeated saves (spec/planner.md §4.4, §4.9): after one
// successful round, a rank whose local plan did not change sends an empty
// "unchanged" placeholder (SavePlan::usable == false) instead of its plan, and
// the coordinator answers with a placeholder when that rank's final plan did
// not change either. When nothing changed anywhere, the coordinator reuses the
// last global plan and metadata without planning again.
//
// Unlike PyTorch (class-level dictionaries keyed by the planner's class name,
// §1.12), the caches are explicit objects owned by the caller: one
// RankPlanCache per rank and one CoordinatorPlanCache on the coordinator, per
// save "namespace" (a model and an optimizer saved separately get separate
// caches, so they never evict each other). Both are plain values (copyable,
// movable) and are not thread-safe: a cache serves one sequence of save rounds;
// concurrent save pipelines need separate caches.
//
// One save round:
//   every rank:   to_send = rank_cache.PlanToSend(local_plan)       -> gather
//   coordinator:  result = coordinator_cache.CreateGlobalPlan(gathered, ...)
//                 if !result.valid(): report result.problems to every rank
//                 else scatter result.deltas (deltas[r] to rank r)
//   every rank:   final = rank_cache.FinishPlan(received)          -> write
//
// Differences from PyTorch, each fixing a defect of spec/anchor-defects.md
// ("Plan caching"):
// - Nothing is cached until the round succeeded (PyTorch E7): the coordinator
//   commits only valid results; a rank promotes its local plan only in
//   FinishPlan. A failed round leaves every cache as it was before it.
// - Plans are compared in full (SamePlanForCaching), including tensor
//   properties: a dtype-only change invalidates the cached plan and metadata.
// - A rank that started a round (PlanToSend) that never reached FinishPlan
//   drops its cache at the next PlanToSend and sends its full plan: the round
//   may have failed after the coordinator committed, so the two sides' caches
//   could disagree.
// - A rank that sent its full plan always gets its full final plan back, so a
//   rank with an empty cache (restarted process, invalidated cache) never gets
//   a placeholder it cannot resolve.
// - World-size changes re-plan from scratch when every rank sent a full plan
//   and are an error otherwise (never zip truncation).
// - A placeholder the coordinator cannot resolve is an error naming the rank,
//   never a silently omitted rank; a placeholder a rank cannot resolve is an
//   error naming the rank, never a KeyError.
// - Results are values: reused metadata is a copy, so a caller that fills in
//   storage_data cannot alter the cached metadata.

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/problem.h"
#include "engine/save_planner.h"

namespace dcplan {

// The "unchanged, use your cached plan" placeholder: no items, no
// storage_data, no planner_data, usable == false.
SavePlan UnchangedPlaceholder();

// True iff `a` and `b` are interchangeable for caching: same usable flag, same
// storage_data and planner_data, and the same items in the same order, each
// compared in full: type, index (fqn, offset and the index hint, which a final
// plan carries), bytes_io_nbytes and tensor_data (chunk, global size and every
// TensorProperties field, dtype included).
bool SamePlanForCaching(const SavePlan& a, const SavePlan& b);

// One rank's side of the protocol: the last local plan this rank completed a
// round with, and the final plan it wrote with in that round.
class RankPlanCache {
 public:
  // `rank` only names this rank in error messages.
  explicit RankPlanCache(int64_t rank) : rank_(rank) {}

  // Starts a round with `local_plan` (this rank's full local plan). Returns
  // UnchangedPlaceholder() if `local_plan` is SamePlanForCaching as the local
  // plan of the last completed round, else `local_plan` itself. The plan is
  // kept as pending until FinishPlan. If the previous round was started but
  // never finished, the cache is dropped first (the full plan is sent).
  // Error (InvalidArgument naming the rank) if `local_plan` is itself a
  // placeholder.
  absl::StatusOr<SavePlan> PlanToSend(const SavePlan& local_plan);

  // Completes the round with the coordinator's answer for this rank and
  // returns the plan to write with: `received` if it is a full plan (which
  // becomes the cached final plan), or the cached final plan if `received` is a
  // placeholder. Promotes the pending local plan (PyTorch E7).
  // Errors (FailedPrecondition naming the rank; the cache is left unchanged,
  // the round stays unfinished): no PlanToSend since the last FinishPlan, or a
  // placeholder while no final plan is cached.
  absl::StatusOr<SavePlan> FinishPlan(const SavePlan& received);

  // Forgets everything: the next round sends the full plan.
  void Invalidate();

  int64_t rank() const { return rank_; }
  // True when the next unchanged local plan would be sent as a placeholder.
  bool has_cached_plan() const { return last_local_plan_.has_value() && !pending_local_plan_.has_value(); }

 private:
  int64_t rank_;
  std::optional<SavePlan> last_local_plan_;
  std::optional<SavePlan> final_plan_;
  std::optional<SavePlan> pending_local_plan_;  // set from PlanToSend to FinishPlan
};

// What CoordinatorPlanCache::CreateGlobalPlan did.
enum class CacheRound : uint8_t {
  // Planned from the received plans alone: nothing cached (first round, or
  // after Invalidate), or the world size changed. Every delta is a full plan.
  kFromScratch,
  // Every rank sent a placeholder and the options are unchanged: the cached
  // global plan and metadata were reused without planning. Every delta is a
  // placeholder.
  kAllUnchanged,
  // Re-planned from the cached local plans of ranks that sent placeholders and
  // the received plans of the others (also when only the options changed).
  kSomeChanged,
};

absl::string_view CacheRoundName(CacheRound round);  // "from_scratch", ...

struct CachedGlobalPlan {
  CacheRound round = CacheRound::kFromScratch;
  // Valid results: one plan per rank, to send to that rank: its full final
  // plan, or UnchangedPlaceholder() when the rank sent a placeholder and its
  // final plan equals the one of the last committed round. Empty when the
  // result is invalid (nothing may be sent).
  std::vector<SavePlan> deltas;
  // The global metadata (a copy when reused), also for invalid results.
  Metadata metadata;
  // CreateGlobalSavePlan's problems; empty iff valid.
  std::vector<PlanProblem> problems;

  bool valid() const { return problems.empty(); }
};

// The coordinator's side: every rank's local plan, every rank's final plan and
// the metadata of the last committed (valid) round, with the options it was
// planned with.
class CoordinatorPlanCache {
 public:
  // Plans a round from `received` (index = rank; full plans or placeholders)
  // with CreateGlobalSavePlan, or reuses the cached round (see CacheRound).
  // A valid result is committed to the cache; an invalid result or an error
  // leaves the cache unchanged. `timings` (optional) receives
  // CreateGlobalSavePlan's timings, or zeros when nothing was planned.
  // Errors: InvalidArgument if `received` is empty; FailedPrecondition naming
  // the ranks if a placeholder cannot be resolved (no cached round, or a world
  // size different from the cached round's); CreateGlobalSavePlan's errors.
  absl::StatusOr<CachedGlobalPlan> CreateGlobalPlan(const std::vector<SavePlan>& received,
                                                    const SavePlannerOptions& options,
                                                    SavePlanTimings* timings = nullptr);

  // Forgets everything: the next round must receive full plans from every
  // rank (invalidate every RankPlanCache of this namespace too).
  void Invalidate();

  bool has_cached_round() const { return cached_.has_value(); }
  // World size of the cached round, 0 if none.
  size_t world_size() const { return cached_ ? cached_->local_plans.size() : 0; }
  // Every rank's final plan of the cached round (empty if none): what each
  // rank writes with when it receives a placeholder.
  const std::vector<SavePlan>& cached_global_plans() const;

 private:
  struct Round {
    std::vector<SavePlan> local_plans;   // full plans, one per rank
    std::vector<SavePlan> global_plans;  // final plans, one per rank
    Metadata metadata;
    SavePlannerOptions options;
  };

  absl::StatusOr<CachedGlobalPlan> PlanAndCommit(std::vector<SavePlan> local_plans,
                                                 const std::vector<SavePlan>& received,
                                                 const SavePlannerOptions& options, CacheRound round,
                                                 SavePlanTimings* timings);

  std::optional<Round> cached_;
};

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_PLAN_CACHE_H_
