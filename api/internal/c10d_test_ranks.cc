#include "api/internal/c10d_test_ranks.h"

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/c10d_coordinator.h"
#include "api/coordinator.h"

namespace dcplan::internal {

std::string SerializeRankReport(const RankReport& report) {
  std::string text;
  for (const auto& [name, status] : report.statuses) {
    absl::StrAppend(&text, "status\t", name, "\t", static_cast<int>(status.code()), "\t",
                    absl::CEscape(status.message()), "\n");
  }
  for (const auto& [name, value] : report.counters) absl::StrAppend(&text, "counter\t", name, "\t", value, "\n");
  return text;
}

absl::StatusOr<RankReport> ParseRankReport(const std::string& text) {
  RankReport report;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    int64_t number = 0;
    std::string message;
    if (fields.size() == 4 && fields[0] == "status" && absl::SimpleAtoi(fields[2], &number) &&
        absl::CUnescape(fields[3], &message)) {
      report.statuses[fields[1]] = absl::Status(static_cast<absl::StatusCode>(number), message);
    } else if (fields.size() == 3 && fields[0] == "counter" && absl::SimpleAtoi(fields[2], &number)) {
      report.counters[fields[1]] = number;
    } else {
      return absl::DataLossError(absl::StrCat("unreadable rank report line: ", line));
    }
  }
  return report;
}

namespace {

constexpr int64_t kFourMiB = int64_t{4} << 20;

absl::Status Check(bool condition, const std::string& what) {
  return condition ? absl::OkStatus() : absl::InternalError(what);
}

// A short description of how two byte strings differ (they may be MiBs long).
std::string Difference(const std::string& got, const std::string& want) {
  if (got.size() != want.size()) return absl::StrCat("got ", got.size(), " bytes, want ", want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) return absl::StrCat("first difference at byte ", i);
  }
  return "equal";
}

absl::Status CheckBytes(const std::string& got, const std::string& want, const std::string& what) {
  return Check(got == want, absl::StrCat(what, ": ", Difference(got, want)));
}

absl::Status CheckList(const std::vector<std::string>& got, const std::vector<std::string>& want,
                       const std::string& what) {
  if (got.size() != want.size()) return absl::InternalError(absl::StrCat(what, ": got ", got.size(), " values, want ", want.size()));
  for (size_t i = 0; i < got.size(); ++i) {
    if (absl::Status same = CheckBytes(got[i], want[i], absl::StrCat(what, " [", i, "]")); !same.ok()) return same;
  }
  return absl::OkStatus();
}

// Distinct bytes for every (rank, round, collective); sizes vary between
// ranks, including empty values, and once every ten rounds one rank sends
// 4 MiB.
std::string Payload(int64_t rank, int round, char tag, int64_t world_size) {
  static constexpr int64_t kSizes[] = {0, 1, 13, 1000, 65539};
  int64_t size = kSizes[(rank + round + tag) % 5];
  if (round % 10 == 4 && rank == (round / 10) % world_size) size = kFourMiB;
  std::string bytes(size, '\0');
  for (int64_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(rank * 131 + round * 17 + tag * 29 + i * 7 + i / 251);
  return bytes;
}

std::vector<std::string> Payloads(int round, char tag, int64_t world_size) {
  std::vector<std::string> all;
  for (int64_t r = 0; r < world_size; ++r) all.push_back(Payload(r, round, tag, world_size));
  return all;
}

absl::Status OneRound(Coordinator& c, int round) {
  const int64_t rank = c.rank();
  const int64_t n = c.world_size();
  const std::string where = absl::StrCat("round ", round, " on rank ", rank);

  absl::StatusOr<std::vector<std::string>> gathered = c.Gather(Payload(rank, round, 'g', n));
  if (!gathered.ok()) return gathered.status();
  const std::vector<std::string> want_gathered = rank == 0 ? Payloads(round, 'g', n) : std::vector<std::string>();
  if (absl::Status s = CheckList(*gathered, want_gathered, where + ": gather"); !s.ok()) return s;

  absl::StatusOr<std::string> scattered =
      c.Scatter(rank == 0 ? Payloads(round, 's', n) : std::vector<std::string>{"ignored"});
  if (!scattered.ok()) return scattered.status();
  if (absl::Status s = CheckBytes(*scattered, Payload(rank, round, 's', n), where + ": scatter"); !s.ok()) return s;

  absl::StatusOr<std::string> broadcast = c.Broadcast(Payload(rank, round, 'b', n));
  if (!broadcast.ok()) return broadcast.status();
  if (absl::Status s = CheckBytes(*broadcast, Payload(0, round, 'b', n), where + ": broadcast"); !s.ok()) return s;

  absl::StatusOr<std::vector<std::string>> everyone = c.AllGather(Payload(rank, round, 'a', n));
  if (!everyone.ok()) return everyone.status();
  if (absl::Status s = CheckList(*everyone, Payloads(round, 'a', n), where + ": all_gather"); !s.ok()) return s;

  return c.Barrier();
}

void CountTraffic(const C10dCoordinator& c, RankReport& report) {
  report.counters["bytes_sent"] = c.bytes_sent();
  report.counters["bytes_received"] = c.bytes_received();
}

absl::Status Collectives(C10dCoordinator& c, RankReport& report) {
  for (int round = 0; round < 50; ++round) {
    if (absl::Status s = OneRound(c, round); !s.ok()) return s;
  }
  CountTraffic(c, report);
  return absl::OkStatus();
}

// On 3 ranks; api/c10d_coordinator_test.cc derives the byte counts by hand.
absl::Status Traffic(C10dCoordinator& c, RankReport& report) {
  const int64_t rank = c.rank();
  if (c.world_size() != 3) return absl::InvalidArgumentError("the traffic scenario needs 3 ranks");
  absl::StatusOr<std::string> broadcast = c.Broadcast(rank == 0 ? "0123456789" : "ignored");
  if (!broadcast.ok()) return broadcast.status();
  if (absl::Status s = CheckBytes(*broadcast, "0123456789", "broadcast"); !s.ok()) return s;

  absl::StatusOr<std::string> empty_broadcast = c.Broadcast(rank == 0 ? "" : "x");
  if (!empty_broadcast.ok()) return empty_broadcast.status();
  if (absl::Status s = CheckBytes(*empty_broadcast, "", "empty broadcast"); !s.ok()) return s;

  const std::vector<std::string> gather_values = {"abcde", "", "xyz"};
  absl::StatusOr<std::vector<std::string>> gathered = c.Gather(gather_values[rank]);
  if (!gathered.ok()) return gathered.status();
  if (absl::Status s = CheckList(*gathered, rank == 0 ? gather_values : std::vector<std::string>(), "gather");
      !s.ok()) {
    return s;
  }

  const std::vector<std::string> all_values = {"a", "bb", "ccc"};
  absl::StatusOr<std::vector<std::string>> everyone = c.AllGather(all_values[rank]);
  if (!everyone.ok()) return everyone.status();
  if (absl::Status s = CheckList(*everyone, all_values, "all_gather"); !s.ok()) return s;

  const std::vector<std::string> scatter_values = {"a", "bcd", ""};
  absl::StatusOr<std::string> scattered = c.Scatter(rank == 0 ? scatter_values : std::vector<std::string>());
  if (!scattered.ok()) return scattered.status();
  if (absl::Status s = CheckBytes(*scattered, scatter_values[rank], "scatter"); !s.ok()) return s;

  if (absl::Status s = c.Barrier(); !s.ok()) return s;
  CountTraffic(c, report);
  return absl::OkStatus();
}

absl::Status Disagreement(C10dCoordinator& c, RankReport& report) {
  const int64_t rank = c.rank();
  report.statuses["scatter_wrong_length"] =
      c.Scatter(rank == 0 ? std::vector<std::string>{"one", "two"} : std::vector<std::string>()).status();
  report.statuses["mismatch"] = rank == 1 ? c.Broadcast("b").status() : c.Gather("g").status();
  absl::StatusOr<std::vector<std::string>> everyone = c.AllGather(absl::StrCat("rank", rank));
  report.statuses["after"] = everyone.status();
  if (!everyone.ok()) return absl::OkStatus();
  std::vector<std::string> want;
  for (int64_t r = 0; r < c.world_size(); ++r) want.push_back(absl::StrCat("rank", r));
  return CheckList(*everyone, want, "all_gather after the failures");
}

absl::Status Steps(C10dCoordinator& c, RankReport& report) {
  const int64_t rank = c.rank();
  const int64_t n = c.world_size();
  StepRunner runner(c);
  std::vector<std::string> labels;
  for (int64_t r = 0; r < n; ++r) labels.push_back(absl::StrCat("r", r));

  absl::StatusOr<std::string> mine = runner.ReduceScatter(
      "plan", [&]() -> absl::StatusOr<std::string> { return absl::StrCat("r", rank); },
      [&](std::vector<std::string> all) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> per_rank;
        for (int64_t r = 0; r < n; ++r) per_rank.push_back(absl::StrCat(absl::StrJoin(all, ","), "->", r));
        return per_rank;
      });
  report.statuses["reduce_scatter"] =
      mine.ok() ? Check(*mine == absl::StrCat(absl::StrJoin(labels, ","), "->", rank), "reduce_scatter result: " + *mine)
                : mine.status();

  absl::StatusOr<std::string> sum = runner.AllReduce(
      "sum", [&]() -> absl::StatusOr<std::string> { return absl::StrCat(rank + 1); },
      [](std::vector<std::string> all) -> absl::StatusOr<std::string> {
        int64_t total = 0;
        for (const std::string& value : all) {
          int64_t term = 0;
          if (!absl::SimpleAtoi(value, &term)) return absl::InvalidArgumentError(value);
          total += term;
        }
        return absl::StrCat(total);
      });
  report.statuses["all_reduce"] = sum.ok() ? Check(*sum == absl::StrCat(n * (n + 1) / 2), "sum " + *sum) : sum.status();

  absl::StatusOr<std::vector<std::string>> names =
      runner.AllGather("names", [&]() -> absl::StatusOr<std::string> { return absl::StrCat("r", rank); });
  report.statuses["all_gather"] = names.ok() ? CheckList(*names, labels, "all_gather step") : names.status();

  absl::StatusOr<std::string> failing = runner.ReduceScatter(
      "write",
      [&]() -> absl::StatusOr<std::string> {
        if (rank == 1) return absl::NotFoundError("disk of rank 1 is missing\nno such file");
        if (rank == n - 1 && n > 2) return absl::PermissionDeniedError("read-only");
        return std::string("fine");
      },
      [](std::vector<std::string>) -> absl::StatusOr<std::vector<std::string>> {
        return absl::InternalError("reduce ran although a map failed");
      });
  report.statuses["failing_step"] = failing.ok() ? absl::InternalError("the failing step succeeded") : failing.status();
  report.statuses["barrier_after"] = c.Barrier();
  return absl::OkStatus();
}

absl::Status Stalled(C10dCoordinator& c, absl::Duration timeout, RankReport& report) {
  if (c.rank() == c.world_size() - 1) {
    absl::SleepFor(timeout + absl::Seconds(4));
    report.statuses["late"] = c.Barrier();
    return absl::OkStatus();
  }
  const absl::Time start = absl::Now();
  report.statuses["gather"] = c.Gather("never completes").status();
  report.counters["gather_ms"] = absl::ToInt64Milliseconds(absl::Now() - start);
  report.statuses["after"] = c.Barrier();
  // Stay connected until every waiting rank's own timeout has fired, so that
  // none of them sees this process go away first.
  absl::SleepFor(2 * timeout);
  return absl::OkStatus();
}

// The victim rank dies (SIGKILL: no cleanup, no goodbye on any socket) once
// every rank is connected; the others then gather.
absl::Status Killed(C10dCoordinator& c, int64_t victim, RankReport& report) {
  if (absl::Status connected = c.Barrier(); !connected.ok()) return connected;
  if (c.rank() == victim) raise(SIGKILL);
  const absl::Time start = absl::Now();
  report.statuses["gather"] = c.Gather("to a rank that died").status();
  report.counters["gather_ms"] = absl::ToInt64Milliseconds(absl::Now() - start);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> IntegerEnv(const char* name) {
  const char* text = std::getenv(name);
  int64_t value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("the test harness did not set ", name));
  }
  return value;
}

// A process may take seconds to load LibTorch on a busy machine; meeting here
// first keeps that out of the rendezvous and collective timeouts.
absl::Status WaitUntilAllStarted(int64_t rank) {
  const char* dir = std::getenv(kRankStartDirEnv);
  absl::StatusOr<int64_t> started = IntegerEnv(kRankStartedEnv);
  if (dir == nullptr || !started.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the test harness did not set ", kRankStartDirEnv, " and ", kRankStartedEnv));
  }
  std::ofstream(absl::StrCat(dir, "/ready_", rank)).close();
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while (absl::Now() < give_up) {
    std::error_code error;
    int64_t ready = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      if (absl::StartsWith(entry.path().filename().string(), "ready_")) ++ready;
    }
    if (!error && ready >= *started) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError("not every rank process started within 120 s");
}

absl::Status RunScenario(const std::string& scenario, RankReport& report) {
  absl::StatusOr<C10dOptions> options = C10dOptionsFromEnv();
  if (!options.ok()) return options.status();
  absl::StatusOr<int64_t> timeout_ms = IntegerEnv(kRankTimeoutMsEnv);
  if (!timeout_ms.ok()) return timeout_ms.status();
  options->timeout = absl::Milliseconds(*timeout_ms);
  if (absl::Status started = WaitUntilAllStarted(options->rank); !started.ok()) return started;

  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<C10dCoordinator>> coordinator = ConnectC10d(*options);
  if (scenario == "rendezvous") {
    report.statuses["connect"] = coordinator.status();
    report.counters["connect_ms"] = absl::ToInt64Milliseconds(absl::Now() - start);
    return absl::OkStatus();
  }
  if (!coordinator.ok()) return coordinator.status();
  C10dCoordinator& c = **coordinator;
  if (scenario == "collectives") return Collectives(c, report);
  if (scenario == "traffic") return Traffic(c, report);
  if (scenario == "disagreement") return Disagreement(c, report);
  if (scenario == "steps") return Steps(c, report);
  if (scenario == "stalled") return Stalled(c, options->timeout, report);
  if (scenario == "killed_last") return Killed(c, c.world_size() - 1, report);
  if (scenario == "killed_first") return Killed(c, 0, report);
  return absl::InvalidArgumentError(absl::StrCat("unknown scenario '", scenario, "'"));
}

}  // namespace

int RunRankScenario() {
  const char* scenario = std::getenv(kRankScenarioEnv);
  const char* report_path = std::getenv(kRankReportEnv);
  if (scenario == nullptr || report_path == nullptr) return 2;
  RankReport report;
  report.statuses["scenario"] = RunScenario(scenario, report);
  std::ofstream out(report_path, std::ios::trunc);
  out << SerializeRankReport(report);
  out.close();
  return out ? 0 : 3;
}

}  // namespace dcplan::internal
