#include "api/internal/c10d_liveness.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace dcplan::internal {
namespace {

// How many ranks finished comparing heartbeats after a failure.
constexpr char kDiagnosedKey[] = "dcplan/heartbeat_diagnosed";
// The first survivor to claim kLeaderKey samples the heartbeats and posts its
// verdict ("<ranks alive>\n<text>") under kVerdictKey for the others.
constexpr char kLeaderKey[] = "dcplan/heartbeat_leader";
constexpr char kVerdictKey[] = "dcplan/heartbeat_verdict";

std::vector<uint8_t> Bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

// Every rank's counter, or the exception's message when the store fails.
struct Sample {
  std::vector<int64_t> counters;
  std::optional<std::string> store_error;
};

}  // namespace

RankLiveness::RankLiveness(c10::intrusive_ptr<c10d::Store> store, std::string store_description, int64_t rank,
                           int64_t world_size, absl::Duration interval)
    : store_(std::move(store)),
      store_description_(std::move(store_description)),
      rank_(rank),
      world_size_(world_size),
      interval_(interval) {
  Beat();
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
}

RankLiveness::~RankLiveness() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  heartbeat_.join();
}

std::string RankLiveness::Key(int64_t rank) const { return absl::StrCat("dcplan/heartbeat/", rank); }

void RankLiveness::Beat() {
  try {
    store_->add(Key(rank_), 1);
  } catch (const std::exception&) {
    // The store is gone (its rank died); DescribeUnresponsiveRanks says so.
  }
}

void RankLiveness::HeartbeatLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_signal_.wait_for(lock, absl::ToChronoMilliseconds(interval_), [this] { return stopping_; })) {
    lock.unlock();
    Beat();
    lock.lock();
  }
}

void RankLiveness::ReportDiagnosed() {
  try {
    store_->add(kDiagnosedKey, 1);
  } catch (const std::exception&) {
  }
}

void RankLiveness::WaitForOtherDiagnoses(int64_t alive) {
  const absl::Time give_up = absl::Now() + interval_ * kSamplesApart + absl::Seconds(2);
  try {
    while (store_->add(kDiagnosedKey, 0) < alive && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  } catch (const std::exception&) {
  }
}

RankLiveness::Verdict RankLiveness::SampleHeartbeats() {
  auto sample = [this] {
    Sample result;
    try {
      // add(key, 0) reads without blocking on a key that was never set.
      for (int64_t r = 0; r < world_size_; ++r) result.counters.push_back(store_->add(Key(r), 0));
    } catch (const std::exception& e) {
      result.store_error = e.what();
    }
    return result;
  };
  const absl::Duration apart = interval_ * kSamplesApart;
  const Sample before = sample();
  if (!before.store_error) absl::SleepFor(apart);
  const Sample after = before.store_error ? before : sample();
  if (after.store_error) {
    std::string reason = *after.store_error;
    if (const size_t newline = reason.find('\n'); newline != std::string::npos) reason.resize(newline);
    return Verdict{0, absl::StrCat("; ", store_description_, " (served by rank 0) is unreachable (", reason,
                                   "): rank 0 is presumably dead or has exited")};
  }
  std::vector<int64_t> stopped;
  for (int64_t r = 0; r < world_size_; ++r) {
    if (r != rank_ && after.counters[r] == before.counters[r]) stopped.push_back(r);
  }
  const int64_t alive = world_size_ - static_cast<int64_t>(stopped.size());
  if (stopped.empty()) return Verdict{alive, "; every rank's heartbeat is alive"};
  return Verdict{alive, absl::StrCat("; ", stopped.size() == 1 ? "rank " : "ranks ", absl::StrJoin(stopped, ", "),
                                     " stopped responding (", stopped.size() == 1 ? "its heartbeat" : "their heartbeats",
                                     " did not move in ", absl::FormatDuration(apart), "): ",
                                     stopped.size() == 1 ? "the process is" : "the processes are", " presumably dead")};
}

std::optional<RankLiveness::Verdict> RankLiveness::LeadersVerdict() {
  try {
    const std::vector<uint8_t> mine = Bytes(absl::StrCat(rank_));
    if (store_->compareSet(kLeaderKey, {}, mine) == mine) {
      Verdict verdict = SampleHeartbeats();
      if (verdict.alive > 0) store_->set(kVerdictKey, Bytes(absl::StrCat(verdict.alive, "\n", verdict.text)));
      return verdict;
    }
    // The leader needs kSamplesApart intervals plus 2 * world_size reads.
    // Polled, not Store::wait: a TCPStore client serves one operation at a
    // time, and a blocking wait would stall this rank's own heartbeat.
    const absl::Time give_up =
        absl::Now() + interval_ * kSamplesApart + absl::Seconds(5) + absl::Milliseconds(world_size_);
    while (!store_->check({kVerdictKey})) {
      if (absl::Now() > give_up) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(50));
    }
    const std::vector<uint8_t> value = store_->get(kVerdictKey);
    const std::string text(value.begin(), value.end());
    const size_t newline = text.find('\n');
    Verdict verdict;
    if (newline == std::string::npos || !absl::SimpleAtoi(text.substr(0, newline), &verdict.alive)) {
      return std::nullopt;
    }
    verdict.text = text.substr(newline + 1);
    return verdict;
  } catch (const std::exception&) {
    return std::nullopt;  // the leader died, or the store: sample ourselves
  }
}

std::string RankLiveness::DescribeUnresponsiveRanks() {
  std::optional<Verdict> verdict = LeadersVerdict();
  if (!verdict) verdict = SampleHeartbeats();
  if (verdict->alive > 0) {
    ReportDiagnosed();
    if (rank_ == 0) WaitForOtherDiagnoses(verdict->alive);
  }
  return verdict->text;
}

}  // namespace dcplan::internal
