#include "engine/plan_cache.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dcplan {
namespace {

bool SameTensorData(const std::optional<TensorWriteData>& a, const std::optional<TensorWriteData>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a.has_value()) return true;
  return a->chunk.offsets == b->chunk.offsets && a->chunk.sizes == b->chunk.sizes && a->size == b->size &&
         a->properties == b->properties;
}

bool SameItem(const WriteItem& a, const WriteItem& b) {
  return a.type == b.type && a.index.fqn == b.index.fqn && a.index.offset == b.index.offset &&
         a.index.index == b.index.index && a.bytes_io_nbytes == b.bytes_io_nbytes &&
         SameTensorData(a.tensor_data, b.tensor_data);
}

// A cached global plan is only reusable under the options it was planned with.
bool SameOptions(const SavePlannerOptions& a, const SavePlannerOptions& b) {
  return a.flatten_state_dict == b.flatten_state_dict && a.dedup == b.dedup &&
         a.rewrite_index_hints == b.rewrite_index_hints;
}

std::vector<size_t> PlaceholderRanks(const std::vector<SavePlan>& received) {
  std::vector<size_t> ranks;
  for (size_t r = 0; r < received.size(); ++r) {
    if (!received[r].usable) ranks.push_back(r);
  }
  return ranks;
}

std::string NameRanks(const std::vector<size_t>& ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

absl::Status UnresolvablePlaceholders(const std::vector<size_t>& ranks, size_t cached_world_size,
                                      size_t world_size) {
  const std::string why =
      cached_world_size == 0
          ? std::string("the coordinator has no cached plan for them (first round, coordinator restarted or "
                        "its cache invalidated)")
          : absl::StrCat("the world size changed from ", cached_world_size, " to ", world_size,
                         " since the cached round");
  return absl::FailedPreconditionError(
      absl::StrCat("plan cache: ", NameRanks(ranks), " sent an 'unchanged' placeholder (usable=false) but ", why,
                   "; their items cannot be recovered. Invalidate every rank's plan cache and save again."));
}

}  // namespace

SavePlan UnchangedPlaceholder() {
  SavePlan placeholder;
  placeholder.usable = false;
  return placeholder;
}

bool SamePlanForCaching(const SavePlan& a, const SavePlan& b) {
  if (a.usable != b.usable || a.items.size() != b.items.size()) return false;
  if (a.storage_data != b.storage_data || a.planner_data != b.planner_data) return false;
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (!SameItem(a.items[i], b.items[i])) return false;
  }
  return true;
}

// --- RankPlanCache ---------------------------------------------------------------

absl::StatusOr<SavePlan> RankPlanCache::PlanToSend(const SavePlan& local_plan) {
  if (!local_plan.usable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan cache: rank ", rank_,
        ": the local plan given to PlanToSend is an 'unchanged' placeholder (usable=false); pass the full plan"));
  }
  // The previous round failed somewhere after PlanToSend; the coordinator may
  // or may not have committed it, so this rank's cache cannot be trusted.
  if (pending_local_plan_.has_value()) Invalidate();
  const bool unchanged = last_local_plan_.has_value() && final_plan_.has_value() &&
                         SamePlanForCaching(local_plan, *last_local_plan_);
  pending_local_plan_ = local_plan;
  if (unchanged) return UnchangedPlaceholder();
  return local_plan;
}

absl::StatusOr<SavePlan> RankPlanCache::FinishPlan(const SavePlan& received) {
  if (!pending_local_plan_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plan cache: rank ", rank_, ": FinishPlan without a round started by PlanToSend (or finished twice)"));
  }
  if (!received.usable && !final_plan_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plan cache: rank ", rank_,
        " received an 'unchanged' placeholder (usable=false) from the coordinator but holds no cached final "
        "plan (its cache was invalidated or the process restarted while the coordinator kept its cache). "
        "Invalidate the coordinator's plan cache and save again."));
  }
  if (received.usable) final_plan_ = received;
  last_local_plan_ = std::move(pending_local_plan_);
  pending_local_plan_.reset();
  return *final_plan_;
}

void RankPlanCache::Invalidate() {
  last_local_plan_.reset();
  final_plan_.reset();
  pending_local_plan_.reset();
}

// --- CoordinatorPlanCache --------------------------------------------------------

absl::string_view CacheRoundName(CacheRound round) {
  switch (round) {
    case CacheRound::kFromScratch:
      return "from_scratch";
    case CacheRound::kAllUnchanged:
      return "all_unchanged";
    case CacheRound::kSomeChanged:
      return "some_changed";
  }
  return "unknown";
}

absl::StatusOr<CachedGlobalPlan> CoordinatorPlanCache::CreateGlobalPlan(const std::vector<SavePlan>& received,
                                                                        const SavePlannerOptions& options,
                                                                        SavePlanTimings* timings) {
  if (received.empty()) {
    return absl::InvalidArgumentError("plan cache: CreateGlobalPlan received no plans (world size 0)");
  }
  const std::vector<size_t> placeholders = PlaceholderRanks(received);
  if (!cached_.has_value() || cached_->local_plans.size() != received.size()) {
    if (!placeholders.empty()) return UnresolvablePlaceholders(placeholders, world_size(), received.size());
    return PlanAndCommit(received, received, options, CacheRound::kFromScratch, timings);
  }
  if (placeholders.size() == received.size() && SameOptions(options, cached_->options)) {
    if (timings != nullptr) *timings = SavePlanTimings{};
    CachedGlobalPlan result;
    result.round = CacheRound::kAllUnchanged;
    result.deltas.assign(received.size(), UnchangedPlaceholder());
    result.metadata = cached_->metadata;
    return result;
  }
  std::vector<SavePlan> merged;
  merged.reserve(received.size());
  for (size_t r = 0; r < received.size(); ++r) {
    merged.push_back(received[r].usable ? received[r] : cached_->local_plans[r]);
  }
  return PlanAndCommit(std::move(merged), received, options, CacheRound::kSomeChanged, timings);
}

absl::StatusOr<CachedGlobalPlan> CoordinatorPlanCache::PlanAndCommit(std::vector<SavePlan> local_plans,
                                                                     const std::vector<SavePlan>& received,
                                                                     const SavePlannerOptions& options,
                                                                     CacheRound round, SavePlanTimings* timings) {
  absl::StatusOr<GlobalSavePlan> planned = CreateGlobalSavePlan(local_plans, options, timings);
  if (!planned.ok()) return planned.status();
  const size_t world = local_plans.size();
  if (planned->plans.size() != world) {
    return absl::InternalError(absl::StrCat("plan cache: CreateGlobalSavePlan returned ", planned->plans.size(),
                                            " plans for ", world, " ranks"));
  }
  CachedGlobalPlan result;
  result.round = round;
  result.metadata = planned->metadata;
  result.problems = std::move(planned->problems);
  if (!result.valid()) return result;

  // Only a rank that sent a placeholder can resolve one: a rank that sent its
  // full plan may have lost its cache.
  const bool comparable = cached_.has_value() && cached_->global_plans.size() == world;
  result.deltas.reserve(world);
  for (size_t r = 0; r < world; ++r) {
    const bool unchanged =
        !received[r].usable && comparable && SamePlanForCaching(planned->plans[r], cached_->global_plans[r]);
    result.deltas.push_back(unchanged ? UnchangedPlaceholder() : planned->plans[r]);
  }
  cached_ = Round{std::move(local_plans), std::move(planned->plans), std::move(planned->metadata), options};
  return result;
}

void CoordinatorPlanCache::Invalidate() { cached_.reset(); }

const std::vector<SavePlan>& CoordinatorPlanCache::cached_global_plans() const {
  static const std::vector<SavePlan>* const kNone = new std::vector<SavePlan>();
  return cached_.has_value() ? cached_->global_plans : *kNone;
}

}  // namespace dcplan
