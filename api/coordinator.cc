#include "api/coordinator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/step_envelope.h"

namespace dcplan {

// --- SingleProcessCoordinator ------------------------------------------------------

absl::StatusOr<std::vector<std::string>> SingleProcessCoordinator::Gather(std::string local) {
  std::vector<std::string> all;
  all.push_back(std::move(local));
  return all;
}

absl::StatusOr<std::string> SingleProcessCoordinator::Scatter(std::vector<std::string> per_rank) {
  if (per_rank.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("collective 'scatter': the coordinator passed ", per_rank.size(), " values for 1 rank"));
  }
  return std::move(per_rank[0]);
}

absl::StatusOr<std::string> SingleProcessCoordinator::Broadcast(std::string from_coordinator) {
  return from_coordinator;
}

absl::StatusOr<std::vector<std::string>> SingleProcessCoordinator::AllGather(std::string local) {
  return Gather(std::move(local));
}

absl::Status SingleProcessCoordinator::Barrier() { return absl::OkStatus(); }

// --- InProcessGroup ----------------------------------------------------------------

namespace {

enum class CollectiveKind { kGather, kScatter, kBroadcast, kAllGather, kBarrier };

const char* CollectiveName(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kGather: return "gather";
    case CollectiveKind::kScatter: return "scatter";
    case CollectiveKind::kBroadcast: return "broadcast";
    case CollectiveKind::kAllGather: return "all_gather";
    case CollectiveKind::kBarrier: return "barrier";
  }
  return "unknown";
}

// What one rank brings to a collective and, once it completed, takes away.
struct CollectiveData {
  std::string bytes;              // in: gather, broadcast, all-gather; out: scatter, broadcast
  std::vector<std::string> list;  // in: scatter (coordinator); out: gather (coordinator), all-gather
};

std::string NameRanks(const std::vector<int64_t>& ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

// Beyond this a timeout is treated as "wait forever" (steady_clock::now() plus
// a saturated duration would overflow).
constexpr absl::Duration kLongestFiniteTimeout = absl::Hours(24 * 365 * 100);

// Stands in for a rank that does not exist, so that coordinator(rank) need not
// abort on a bad rank: every collective reports the problem instead.
class InvalidCoordinator : public Coordinator {
 public:
  InvalidCoordinator(int64_t rank, int64_t world_size, absl::Status why)
      : rank_(rank), world_size_(world_size), why_(std::move(why)) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_size_; }
  absl::StatusOr<std::vector<std::string>> Gather(std::string) override { return why_; }
  absl::StatusOr<std::string> Scatter(std::vector<std::string>) override { return why_; }
  absl::StatusOr<std::string> Broadcast(std::string) override { return why_; }
  absl::StatusOr<std::vector<std::string>> AllGather(std::string) override { return why_; }
  absl::Status Barrier() override { return why_; }

 private:
  int64_t rank_;
  int64_t world_size_;
  absl::Status why_;
};

absl::Status InvalidWorldSize(int64_t world_size) {
  return absl::InvalidArgumentError(
      absl::StrCat("InProcessGroup: world size must be at least 1, got ", world_size));
}

}  // namespace

// The rendezvous shared by all ranks. Collectives are numbered per rank in
// call order (from 1); the ranks' n-th calls meet in round n, which lives until
// every rank has left it, so a fast rank can enter round n+1 while a slow one
// still collects round n's result.
class InProcessGroup::State {
 public:
  State(int64_t world_size, absl::Duration timeout)
      : world_size_(world_size),
        timeout_(timeout),
        entered_(std::max<int64_t>(world_size, 0), 0),
        busy_(std::max<int64_t>(world_size, 0), false) {}

  int64_t world_size() const { return world_size_; }

  absl::StatusOr<CollectiveData> Run(int64_t rank, CollectiveKind kind, CollectiveData input);

  // Owned by the state so that the reference stays valid while the group lives.
  Coordinator& AddInvalidCoordinator(int64_t rank, absl::Status why) {
    std::lock_guard<std::mutex> lock(mu_);
    invalid_coordinators_.push_back(std::make_unique<InvalidCoordinator>(rank, world_size_, std::move(why)));
    return *invalid_coordinators_.back();
  }

 private:
  struct Round {
    Round(int64_t world_size, CollectiveKind kind, int64_t first_rank)
        : kind(kind), first_rank(first_rank), arrived(world_size, false), data(world_size) {}
    CollectiveKind kind;  // the first arrival's; every other rank must match it
    int64_t first_rank;
    std::vector<bool> arrived;
    int64_t arrived_count = 0;
    int64_t departed_count = 0;
    std::vector<CollectiveData> data;  // per rank: inputs, then outputs
    bool done = false;
    absl::Status failure;
    std::condition_variable changed;
  };

  Round& FindOrStartRound(int64_t number, CollectiveKind kind, int64_t rank);
  void Complete(Round& round, int64_t number);
  void WaitUntilDone(std::unique_lock<std::mutex>& lock, Round& round, int64_t number,
                     std::chrono::steady_clock::time_point deadline);
  void Leave(Round& round, int64_t number, int64_t rank);

  static void Finish(Round& round, absl::Status failure) {
    round.done = true;
    round.failure = std::move(failure);
    if (!round.failure.ok()) round.data.clear();
    round.changed.notify_all();
  }

  const int64_t world_size_;
  const absl::Duration timeout_;
  std::mutex mu_;
  std::vector<int64_t> entered_;  // per rank: how many collectives it has called
  std::vector<bool> busy_;        // per rank: inside a collective now
  std::map<int64_t, std::unique_ptr<Round>> rounds_;
  std::vector<std::unique_ptr<Coordinator>> invalid_coordinators_;
};

absl::StatusOr<CollectiveData> InProcessGroup::State::Run(int64_t rank, CollectiveKind kind, CollectiveData input) {
  const bool forever = timeout_ >= kLongestFiniteTimeout;
  const auto deadline =
      forever ? std::chrono::steady_clock::time_point::max()
              : std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(timeout_));
  std::unique_lock<std::mutex> lock(mu_);
  if (busy_[rank]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", rank, " called collective '", CollectiveName(kind),
        "' before its previous collective returned; a rank's coordinator serves one thread at a time"));
  }
  busy_[rank] = true;
  const int64_t number = ++entered_[rank];
  Round& round = FindOrStartRound(number, kind, rank);
  if (!round.done && round.kind != kind) {
    Finish(round, absl::FailedPreconditionError(absl::StrCat(
                      "collective #", number, " differs between ranks: rank ", rank, " called '", CollectiveName(kind),
                      "' but rank ", round.first_rank, " called '", CollectiveName(round.kind),
                      "'; every rank must call the same collectives in the same order")));
  }
  if (!round.done) {
    round.data[rank] = std::move(input);
    round.arrived[rank] = true;
    if (++round.arrived_count == world_size_) {
      Complete(round, number);
    } else {
      WaitUntilDone(lock, round, number, deadline);
    }
  }
  absl::StatusOr<CollectiveData> result =
      round.failure.ok() ? absl::StatusOr<CollectiveData>(std::move(round.data[rank]))
                         : absl::StatusOr<CollectiveData>(round.failure);
  Leave(round, number, rank);
  return result;
}

InProcessGroup::State::Round& InProcessGroup::State::FindOrStartRound(int64_t number, CollectiveKind kind,
                                                                       int64_t rank) {
  std::unique_ptr<Round>& slot = rounds_[number];
  if (slot == nullptr) slot = std::make_unique<Round>(world_size_, kind, rank);
  return *slot;
}

void InProcessGroup::State::WaitUntilDone(std::unique_lock<std::mutex>& lock, Round& round, int64_t number,
                                          std::chrono::steady_clock::time_point deadline) {
  auto done = [&round] { return round.done; };
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    round.changed.wait(lock, done);
    return;
  }
  if (round.changed.wait_until(lock, deadline, done)) return;
  std::vector<int64_t> missing;
  for (int64_t r = 0; r < world_size_; ++r) {
    if (!round.arrived[r]) missing.push_back(r);
  }
  Finish(round, absl::DeadlineExceededError(absl::StrCat("collective '", CollectiveName(round.kind), "' #", number,
                                                         " timed out after ", absl::FormatDuration(timeout_),
                                                         " waiting for ", NameRanks(missing))));
}

// Runs once the last rank arrived: turns the inputs into every rank's output.
void InProcessGroup::State::Complete(Round& round, int64_t number) {
  std::vector<CollectiveData>& data = round.data;
  const size_t n = data.size();
  switch (round.kind) {
    case CollectiveKind::kGather: {
      std::vector<std::string> all(n);
      for (size_t r = 0; r < n; ++r) all[r] = std::move(data[r].bytes);
      for (CollectiveData& d : data) d = CollectiveData();
      data[0].list = std::move(all);
      break;
    }
    case CollectiveKind::kScatter: {
      std::vector<std::string> per_rank = std::move(data[0].list);
      if (per_rank.size() != n) {
        Finish(round, absl::InvalidArgumentError(absl::StrCat("collective 'scatter' #", number,
                                                              ": the coordinator (rank 0) passed ", per_rank.size(),
                                                              " values for ", n, " ranks")));
        return;
      }
      for (size_t r = 0; r < n; ++r) data[r] = CollectiveData{std::move(per_rank[r]), {}};
      break;
    }
    case CollectiveKind::kBroadcast:
      for (size_t r = 1; r < n; ++r) data[r].bytes = data[0].bytes;
      break;
    case CollectiveKind::kAllGather: {
      std::vector<std::string> all(n);
      for (size_t r = 0; r < n; ++r) all[r] = std::move(data[r].bytes);
      for (size_t r = 0; r + 1 < n; ++r) data[r].list = all;
      data[n - 1].list = std::move(all);
      break;
    }
    case CollectiveKind::kBarrier:
      break;
  }
  Finish(round, absl::OkStatus());
}

void InProcessGroup::State::Leave(Round& round, int64_t number, int64_t rank) {
  busy_[rank] = false;
  // A rank that never arrives keeps a failed round alive: if it arrives late
  // it must still find the failure there rather than start a new round.
  if (++round.departed_count == world_size_) rounds_.erase(number);
}

class InProcessGroup::RankCoordinator : public Coordinator {
 public:
  RankCoordinator(State& state, int64_t rank) : state_(state), rank_(rank) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return state_.world_size(); }

  absl::StatusOr<std::vector<std::string>> Gather(std::string local) override {
    return List(state_.Run(rank_, CollectiveKind::kGather, CollectiveData{std::move(local), {}}));
  }
  absl::StatusOr<std::string> Scatter(std::vector<std::string> per_rank) override {
    return Bytes(state_.Run(rank_, CollectiveKind::kScatter, CollectiveData{{}, std::move(per_rank)}));
  }
  absl::StatusOr<std::string> Broadcast(std::string from_coordinator) override {
    return Bytes(state_.Run(rank_, CollectiveKind::kBroadcast, CollectiveData{std::move(from_coordinator), {}}));
  }
  absl::StatusOr<std::vector<std::string>> AllGather(std::string local) override {
    return List(state_.Run(rank_, CollectiveKind::kAllGather, CollectiveData{std::move(local), {}}));
  }
  absl::Status Barrier() override { return state_.Run(rank_, CollectiveKind::kBarrier, CollectiveData()).status(); }

 private:
  static absl::StatusOr<std::string> Bytes(absl::StatusOr<CollectiveData> out) {
    if (!out.ok()) return out.status();
    return std::move(out->bytes);
  }
  static absl::StatusOr<std::vector<std::string>> List(absl::StatusOr<CollectiveData> out) {
    if (!out.ok()) return out.status();
    return std::move(out->list);
  }

  State& state_;
  const int64_t rank_;
};

InProcessGroup::InProcessGroup(int64_t world_size, absl::Duration timeout)
    : state_(std::make_shared<State>(world_size, timeout)) {
  for (int64_t r = 0; r < world_size; ++r) ranks_.push_back(std::make_unique<RankCoordinator>(*state_, r));
}

InProcessGroup::~InProcessGroup() = default;

int64_t InProcessGroup::world_size() const { return state_->world_size(); }

Coordinator& InProcessGroup::coordinator(int64_t rank) {
  if (world_size() < 1) return state_->AddInvalidCoordinator(rank, InvalidWorldSize(world_size()));
  if (rank < 0 || rank >= world_size()) {
    return state_->AddInvalidCoordinator(
        rank, absl::InvalidArgumentError(absl::StrCat("InProcessGroup: rank ", rank, " is outside [0, ",
                                                      world_size(), ")")));
  }
  return *ranks_[rank];
}

std::vector<absl::Status> InProcessGroup::Run(
    const std::function<absl::Status(int64_t rank, Coordinator& coordinator)>& fn) {
  if (world_size() < 1) return {InvalidWorldSize(world_size())};
  std::vector<absl::Status> statuses(world_size());
  std::vector<std::thread> threads;
  threads.reserve(world_size());
  for (int64_t r = 0; r < world_size(); ++r) {
    threads.emplace_back([&fn, &statuses, this, r] { statuses[r] = fn(r, *ranks_[r]); });
  }
  for (std::thread& thread : threads) thread.join();
  return statuses;
}

// --- StepRunner --------------------------------------------------------------------

namespace {

struct RankFailure {
  int64_t rank;
  absl::Status status;
};

// The one error every rank returns for a failed step. The status code is the
// lowest failing rank's; continuation lines of a rank's message are indented
// under it.
absl::Status StepFailed(const std::string& step, int64_t world_size, std::vector<RankFailure> failures) {
  std::stable_sort(failures.begin(), failures.end(),
                   [](const RankFailure& a, const RankFailure& b) { return a.rank < b.rank; });
  std::string message =
      absl::StrCat("checkpoint step '", step, "' failed on ", failures.size(), " of ", world_size, " ranks:");
  for (const RankFailure& failure : failures) {
    absl::StrAppend(&message, "\n  rank ", failure.rank, ": ",
                    absl::StrReplaceAll(failure.status.message(), {{"\n", "\n    "}}));
  }
  return absl::Status(failures.front().status.code(), message);
}

std::string RunMap(const std::string& step, const std::function<absl::StatusOr<std::string>()>& map) {
  if (!map) return internal::EncodeStepFailure(absl::InvalidArgumentError(absl::StrCat("step '", step, "' has no map function")));
  absl::StatusOr<std::string> local = map();
  return local.ok() ? internal::EncodeStepPayload(*local) : internal::EncodeStepFailure(local.status());
}

// Every rank's map payload, or the step's failure listing the ranks whose map
// failed (or whose envelope was unreadable).
absl::StatusOr<std::vector<std::string>> OpenEnvelopes(const std::string& step, const Coordinator& coordinator,
                                                       const char* collective, std::vector<std::string> envelopes) {
  const int64_t world_size = coordinator.world_size();
  if (static_cast<int64_t>(envelopes.size()) != world_size) {
    return StepFailed(step, world_size,
                      {{coordinator.rank(), absl::InternalError(absl::StrCat(collective, " returned ", envelopes.size(),
                                                                             " values for ", world_size, " ranks"))}});
  }
  std::vector<std::string> payloads;
  std::vector<RankFailure> failures;
  for (int64_t r = 0; r < world_size; ++r) {
    absl::StatusOr<std::string> payload = internal::DecodeStepEnvelope(std::move(envelopes[r]));
    if (payload.ok()) {
      payloads.push_back(std::move(*payload));
    } else {
      failures.push_back({r, payload.status()});
    }
  }
  if (!failures.empty()) return StepFailed(step, world_size, std::move(failures));
  return payloads;
}

// On the coordinator: one envelope per rank, each its reduced result or all the
// same failure.
std::vector<std::string> ReduceToPerRank(
    const std::string& step, const Coordinator& coordinator, std::vector<std::string> envelopes,
    const std::function<absl::StatusOr<std::vector<std::string>>(std::vector<std::string>)>& reduce) {
  const int64_t world_size = coordinator.world_size();
  auto fail_everywhere = [world_size](const absl::Status& failure) {
    return std::vector<std::string>(world_size, internal::EncodeStepFailure(failure));
  };
  absl::StatusOr<std::vector<std::string>> payloads = OpenEnvelopes(step, coordinator, "gather", std::move(envelopes));
  if (!payloads.ok()) return fail_everywhere(payloads.status());
  absl::StatusOr<std::vector<std::string>> results =
      reduce ? reduce(std::move(*payloads))
             : absl::InvalidArgumentError(absl::StrCat("step '", step, "' has no reduce function"));
  if (results.ok() && static_cast<int64_t>(results->size()) != world_size) {
    results = absl::InternalError(
        absl::StrCat("reduce returned ", results->size(), " results for ", world_size, " ranks"));
  }
  if (!results.ok()) return fail_everywhere(StepFailed(step, world_size, {{coordinator.rank(), results.status()}}));
  std::vector<std::string> per_rank;
  per_rank.reserve(world_size);
  for (const std::string& result : *results) per_rank.push_back(internal::EncodeStepPayload(result));
  return per_rank;
}

// On the coordinator: the envelope of the single reduced value, or of the failure.
std::string ReduceToOne(const std::string& step, const Coordinator& coordinator, std::vector<std::string> envelopes,
                        const std::function<absl::StatusOr<std::string>(std::vector<std::string>)>& reduce) {
  absl::StatusOr<std::vector<std::string>> payloads = OpenEnvelopes(step, coordinator, "gather", std::move(envelopes));
  if (!payloads.ok()) return internal::EncodeStepFailure(payloads.status());
  absl::StatusOr<std::string> result =
      reduce ? reduce(std::move(*payloads))
             : absl::InvalidArgumentError(absl::StrCat("step '", step, "' has no reduce function"));
  if (!result.ok()) {
    return internal::EncodeStepFailure(
        StepFailed(step, coordinator.world_size(), {{coordinator.rank(), result.status()}}));
  }
  return internal::EncodeStepPayload(*result);
}

}  // namespace

absl::StatusOr<std::string> StepRunner::ReduceScatter(
    const std::string& step, const std::function<absl::StatusOr<std::string>()>& map,
    const std::function<absl::StatusOr<std::vector<std::string>>(std::vector<std::string>)>& reduce) {
  absl::StatusOr<std::vector<std::string>> gathered = coordinator_.Gather(RunMap(step, map));
  if (!gathered.ok()) return gathered.status();
  std::vector<std::string> per_rank;
  if (coordinator_.is_coordinator()) per_rank = ReduceToPerRank(step, coordinator_, std::move(*gathered), reduce);
  absl::StatusOr<std::string> mine = coordinator_.Scatter(std::move(per_rank));
  if (!mine.ok()) return mine.status();
  return internal::DecodeStepEnvelope(std::move(*mine));
}

absl::StatusOr<std::string> StepRunner::AllReduce(
    const std::string& step, const std::function<absl::StatusOr<std::string>()>& map,
    const std::function<absl::StatusOr<std::string>(std::vector<std::string>)>& reduce) {
  absl::StatusOr<std::vector<std::string>> gathered = coordinator_.Gather(RunMap(step, map));
  if (!gathered.ok()) return gathered.status();
  std::string outcome;
  if (coordinator_.is_coordinator()) outcome = ReduceToOne(step, coordinator_, std::move(*gathered), reduce);
  absl::StatusOr<std::string> shared = coordinator_.Broadcast(std::move(outcome));
  if (!shared.ok()) return shared.status();
  return internal::DecodeStepEnvelope(std::move(*shared));
}

absl::StatusOr<std::vector<std::string>> StepRunner::AllGather(
    const std::string& step, const std::function<absl::StatusOr<std::string>()>& map) {
  absl::StatusOr<std::vector<std::string>> everyone = coordinator_.AllGather(RunMap(step, map));
  if (!everyone.ok()) return everyone.status();
  return OpenEnvelopes(step, coordinator_, "all_gather", std::move(*everyone));
}

}  // namespace dcplan
