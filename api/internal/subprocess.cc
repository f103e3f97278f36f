#include "api/internal/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace dcplan::internal {
namespace {

absl::Status ErrnoError(const std::string& what, int error) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

// The parent's environment with `overrides` replacing or adding variables.
std::vector<std::string> MergedEnvironment(const std::vector<std::pair<std::string, std::string>>& overrides) {
  absl::flat_hash_set<std::string> overridden;
  for (const auto& [name, value] : overrides) overridden.insert(name);
  std::vector<std::string> merged;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text(*entry);
    const size_t equals = text.find('=');
    const std::string name(text.substr(0, equals));
    if (!overridden.contains(name)) merged.emplace_back(*entry);
  }
  for (const auto& [name, value] : overrides) merged.push_back(absl::StrCat(name, "=", value));
  return merged;
}

std::vector<char*> NullTerminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

absl::StatusOr<pid_t> Spawn(const ProcessSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("RunProcesses: a process spec has an empty argv");
  std::vector<std::string> argv = spec.argv;
  std::vector<std::string> env = MergedEnvironment(spec.env);
  std::vector<char*> argv_pointers = NullTerminated(argv);
  std::vector<char*> env_pointers = NullTerminated(env);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!spec.output_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, spec.output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  pid_t pid = -1;
  const int error = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, argv_pointers.data(), env_pointers.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return ErrnoError(absl::StrCat("posix_spawn of ", argv[0]), error);
  return pid;
}

ProcessOutcome FromWaitStatus(pid_t pid, int status, const rusage& usage) {
  ProcessOutcome outcome;
  outcome.pid = pid;
  outcome.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux counts KiB
  if (WIFEXITED(status)) {
    outcome.exited = true;
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
  return outcome;
}

// Reaps `pid` if it has ended; false while it still runs.
bool TryReap(pid_t pid, ProcessOutcome& outcome) {
  int status = 0;
  rusage usage{};
  pid_t result;
  do {
    result = wait4(pid, &status, WNOHANG, &usage);
  } while (result < 0 && errno == EINTR);
  if (result == 0) return false;
  if (result < 0) {  // not our child any more; nothing left to wait for
    outcome.pid = pid;
    return true;
  }
  outcome = FromWaitStatus(pid, status, usage);
  return true;
}

void KillAndReap(pid_t pid, ProcessOutcome& outcome) {
  kill(pid, SIGKILL);
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  outcome = FromWaitStatus(pid, status, usage);
  outcome.killed_at_deadline = true;
}

// Picked ports start here, above the well-known and common service ports.
constexpr int kLowestPickedPort = 20000;

// The lower bound of /proc/sys/net/ipv4/ip_local_port_range (Linux's
// default if unreadable).
int FirstEphemeralPort() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  if (range >> low >> high && low > 0) return low;
  return 32768;
}

// Binds a TCP socket to 127.0.0.1:`port`, then releases it; returns the port
// bound (the kernel's pick for port 0).
absl::StatusOr<int> BindLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoError(absl::StrCat("binding a TCP socket to 127.0.0.1:", port), error);
  }
  close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

}  // namespace

absl::StatusOr<std::string> CurrentExecutable() {
  std::vector<char> buffer(PATH_MAX + 1);
  const ssize_t length = readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  if (length < 0) return ErrnoError("readlink /proc/self/exe", errno);
  return std::string(buffer.data(), length);
}

std::vector<std::pair<std::string, std::string>> LoopbackRankEnv(int64_t rank, int64_t world_size, int port) {
  return {{"RANK", absl::StrCat(rank)},
          {"WORLD_SIZE", absl::StrCat(world_size)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", absl::StrCat(port)},
          {"LOCAL_RANK", absl::StrCat(rank)},
          {"LOCAL_WORLD_SIZE", absl::StrCat(world_size)}};
}

absl::StatusOr<int> PickFreeLoopbackPort() {
  // Below the kernel's ephemeral range no outgoing connection (and no bind
  // to port 0, as Gloo's listeners do) can take the port before the caller
  // binds it; only another explicit pick can, hence the random start.
  const int first_ephemeral = FirstEphemeralPort();
  if (first_ephemeral > kLowestPickedPort + 100) {
    std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<int> pick(kLowestPickedPort, first_ephemeral - 1);
    for (int attempt = 0; attempt < 50; ++attempt) {
      const int port = pick(random);
      if (BindLoopback(port).ok()) return port;
    }
  }
  return BindLoopback(0);
}

std::string ToString(const ProcessOutcome& outcome) {
  std::string text = absl::StrCat("process ", outcome.pid, " ");
  if (outcome.killed_at_deadline) absl::StrAppend(&text, "was still running at the deadline (killed); ");
  if (outcome.exited) return absl::StrCat(text, "exited with code ", outcome.exit_code);
  if (outcome.signal != 0) return absl::StrCat(text, "was killed by signal ", outcome.signal);
  return absl::StrCat(text, "ended in an unknown way");
}

absl::StatusOr<std::vector<ProcessOutcome>> RunProcesses(const std::vector<ProcessSpec>& specs,
                                                         absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  std::vector<ProcessOutcome> outcomes(specs.size());
  std::vector<pid_t> pids;
  for (const ProcessSpec& spec : specs) {
    absl::StatusOr<pid_t> pid = Spawn(spec);
    if (!pid.ok()) {
      for (size_t i = 0; i < pids.size(); ++i) KillAndReap(pids[i], outcomes[i]);
      return pid.status();
    }
    pids.push_back(*pid);
  }
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  while (remaining > 0 && absl::Now() < end) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (!done[i] && TryReap(pids[i], outcomes[i])) {
        done[i] = true;
        --remaining;
      }
    }
    if (remaining > 0) absl::SleepFor(absl::Milliseconds(10));
  }
  for (size_t i = 0; i < pids.size(); ++i) {
    if (!done[i] && !TryReap(pids[i], outcomes[i])) KillAndReap(pids[i], outcomes[i]);
  }
  return outcomes;
}

}  // namespace dcplan::internal
