#include "api/internal/c10d_liveness.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace dcplan::internal {
namespace {

// How many ranks finished comparing heartbeats after a failure.
constexpr char kDiagnosedKey[] = "dcplan/heartbeat_diagnosed";

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

void RankLiveness::WaitForOtherDiagnoses(const std::vector<int64_t>& before, const std::vector<int64_t>& after) {
  int64_t alive = 0;
  for (int64_t r = 0; r < world_size_; ++r) alive += (r == rank_ || after[r] != before[r]) ? 1 : 0;
  const absl::Time give_up = absl::Now() + interval_ * kSamplesApart + absl::Seconds(2);
  try {
    while (store_->add(kDiagnosedKey, 0) < alive && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  } catch (const std::exception&) {
  }
}

std::string RankLiveness::DescribeUnresponsiveRanks() {
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
  if (!after.store_error) {
    ReportDiagnosed();
    if (rank_ == 0) WaitForOtherDiagnoses(before.counters, after.counters);
  }
  if (after.store_error) {
    std::string reason = *after.store_error;
    if (const size_t newline = reason.find('\n'); newline != std::string::npos) reason.resize(newline);
    return absl::StrCat("; ", store_description_, " (served by rank 0) is unreachable (", reason,
                        "): rank 0 is presumably dead or has exited");
  }
  std::vector<int64_t> stopped;
  for (int64_t r = 0; r < world_size_; ++r) {
    if (r != rank_ && after.counters[r] == before.counters[r]) stopped.push_back(r);
  }
  if (stopped.empty()) return "; every rank's heartbeat is alive";
  return absl::StrCat("; ", stopped.size() == 1 ? "rank " : "ranks ", absl::StrJoin(stopped, ", "),
                      " stopped responding (", stopped.size() == 1 ? "its heartbeat" : "their heartbeats",
                      " did not move in ", absl::FormatDuration(apart), "): ",
                      stopped.size() == 1 ? "the process is" : "the processes are", " presumably dead");
}

}  // namespace dcplan::internal
