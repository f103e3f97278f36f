// C10dOptionsFromEnv and ConnectC10d (declared in api/c10d_coordinator.h).

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/c10d_coordinator.h"
#include "api/internal/c10d_failures.h"
#include "api/internal/torch_compat.h"

namespace dcplan {
namespace {

constexpr char kLauncherHint[] = "an env:// launcher such as torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT";

absl::StatusOr<std::string> RequiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is not set (", kLauncherHint, ")"));
  }
  return std::string(value);
}

absl::StatusOr<int64_t> IntegerEnv(const char* name) {
  absl::StatusOr<std::string> text = RequiredEnv(name);
  if (!text.ok()) return text.status();
  int64_t value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", name, "='", *text, "' is not an integer"));
  }
  return value;
}

bool IsLoopback(const std::string& address) {
  return address == "localhost" || absl::StartsWith(address, "127.");
}

absl::Status ValidateOptions(const C10dOptions& options) {
  if (options.world_size < 1 || options.world_size > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("C10dOptions: world_size must lie in [1, ", std::numeric_limits<int>::max(), "], got ",
                     options.world_size));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("C10dOptions: rank ", options.rank, " is outside [0, ", options.world_size, ")"));
  }
  if (options.port < 1 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("C10dOptions: port ", options.port, " is outside [1, 65535]"));
  }
  if (options.master_addr.empty()) return absl::InvalidArgumentError("C10dOptions: master_addr is empty");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("C10dOptions: timeout must be positive, got ", absl::FormatDuration(options.timeout)));
  }
  if (options.heartbeat_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("C10dOptions: heartbeat_interval must not be negative, got ",
                                                   absl::FormatDuration(options.heartbeat_interval)));
  }
  return absl::OkStatus();
}

std::shared_ptr<::gloo::transport::Device> GlooDevice(const C10dOptions& options) {
  if (!options.local_addr.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(options.local_addr);
  if (IsLoopback(options.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// A process group whose collectives run on Gloo, for CPU tensors.
c10::intrusive_ptr<c10d::ProcessGroup> GlooProcessGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                        const C10dOptions& options,
                                                        std::chrono::milliseconds timeout) {
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
  gloo_options->devices.push_back(GlooDevice(options));
  gloo_options->threads = 2;
  const int rank = static_cast<int>(options.rank);
  const int size = static_cast<int>(options.world_size);
#if DCPLAN_TORCH_C10D_HAS_BACKENDS
  auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, size);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  return group;
#else
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
#endif
}

}  // namespace

absl::StatusOr<C10dOptions> C10dOptionsFromEnv() {
  C10dOptions options;
  absl::StatusOr<int64_t> world_size = IntegerEnv("WORLD_SIZE");
  if (!world_size.ok()) return world_size.status();
  if (*world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable WORLD_SIZE=", *world_size, " is below 1"));
  }
  absl::StatusOr<int64_t> rank = IntegerEnv("RANK");
  if (!rank.ok()) return rank.status();
  if (*rank < 0 || *rank >= *world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable RANK=", *rank, " is outside [0, WORLD_SIZE=", *world_size, ")"));
  }
  absl::StatusOr<std::string> master_addr = RequiredEnv("MASTER_ADDR");
  if (!master_addr.ok()) return master_addr.status();
  absl::StatusOr<int64_t> port = IntegerEnv("MASTER_PORT");
  if (!port.ok()) return port.status();
  if (*port < 1 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable MASTER_PORT=", *port, " is outside [1, 65535]"));
  }
  options.world_size = *world_size;
  options.rank = *rank;
  options.master_addr = *master_addr;
  options.port = static_cast<int>(*port);
  return options;
}

absl::StatusOr<std::unique_ptr<C10dCoordinator>> ConnectC10d(const C10dOptions& options) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  const std::chrono::milliseconds timeout = internal::OperationTimeout(options.timeout);
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  c10::intrusive_ptr<c10d::Store> heartbeat_store;
  absl::Status connected = internal::Guarded(
      absl::StrCat("c10d rendezvous of rank ", options.rank, " of ", options.world_size, " at ", options.master_addr,
                   ":", options.port),
      [&] {
        c10d::TCPStoreOptions store_options;
        store_options.port = static_cast<uint16_t>(options.port);
        store_options.isServer = options.rank == 0;
        store_options.numWorkers = static_cast<size_t>(options.world_size);
        store_options.waitWorkers = true;
        store_options.timeout = timeout;
        const bool second_group = !options.store_prefix.empty();
        if (second_group) {
          store_options.isServer = false;
          store_options.waitWorkers = false;
        }
        c10::intrusive_ptr<c10d::Store> store =
            c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
        if (second_group) store = c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, store);
        group = GlooProcessGroup(store, options, timeout);
        if (options.heartbeat_interval > absl::ZeroDuration()) {
          // A client of its own, so heartbeats never queue behind the
          // process group's use of the store.
          c10d::TCPStoreOptions client_options;
          client_options.port = static_cast<uint16_t>(options.port);
          client_options.isServer = false;
          client_options.waitWorkers = false;
          client_options.timeout = timeout;
          heartbeat_store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, client_options);
          if (second_group) {
            heartbeat_store = c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, heartbeat_store);
          }
        }
      });
  if (!connected.ok()) return connected;
  auto coordinator = std::make_unique<C10dCoordinator>(std::move(group), options.timeout);
  if (heartbeat_store) {
    coordinator->WatchLiveness(std::move(heartbeat_store),
                               absl::StrCat("the TCPStore at ", options.master_addr, ":", options.port),
                               options.heartbeat_interval);
  }
  return coordinator;
}

}  // namespace dcplan
