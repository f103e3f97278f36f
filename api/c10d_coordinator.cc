#include "api/c10d_coordinator.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "api/internal/c10d_failures.h"
#include "api/internal/c10d_liveness.h"

namespace dcplan {
namespace {

using internal::Guarded;
using internal::kWaitGrace;
using internal::OperationTimeout;

enum class Kind : int64_t { kGather = 1, kScatter = 2, kBroadcast = 3, kAllGather = 4, kBarrier = 5 };

const char* KindName(int64_t kind) {
  switch (static_cast<Kind>(kind)) {
    case Kind::kGather: return "gather";
    case Kind::kScatter: return "scatter";
    case Kind::kBroadcast: return "broadcast";
    case Kind::kAllGather: return "all_gather";
    case Kind::kBarrier: return "barrier";
  }
  return "unknown";
}

// What every rank announces at the start of a collective. `size` and `count`
// depend on the kind: the local payload size (gather, all-gather; broadcast on
// rank 0), or the largest value size and the list length (scatter on rank 0).
struct Header {
  int64_t kind = 0;
  int64_t sequence = 0;
  int64_t size = 0;
  int64_t count = 0;
};
constexpr int64_t kHeaderWords = 4;
constexpr int64_t kHeaderBytes = kHeaderWords * sizeof(int64_t);
// Each scatter chunk starts with its value's length (little-endian u64).
constexpr int64_t kLengthPrefixBytes = 8;

at::Tensor ByteTensor(int64_t size) { return at::empty({size}, at::TensorOptions().dtype(at::kByte)); }

// `bytes` followed by zeros up to `padded_size` (>= bytes.size()).
at::Tensor PaddedTensor(const std::string& bytes, int64_t padded_size) {
  at::Tensor tensor = ByteTensor(padded_size);
  uint8_t* data = tensor.data_ptr<uint8_t>();
  std::memcpy(data, bytes.data(), bytes.size());
  std::memset(data + bytes.size(), 0, padded_size - bytes.size());
  return tensor;
}

std::string Prefix(const at::Tensor& tensor, int64_t size) {
  return std::string(reinterpret_cast<const char*>(tensor.data_ptr<uint8_t>()), size);
}

void PutLength(uint64_t length, uint8_t* out) {
  for (int i = 0; i < kLengthPrefixBytes; ++i) out[i] = static_cast<uint8_t>(length >> (8 * i));
}

uint64_t GetLength(const uint8_t* in) {
  uint64_t length = 0;
  for (int i = 0; i < kLengthPrefixBytes; ++i) length |= uint64_t{in[i]} << (8 * i);
  return length;
}

int64_t LargestSize(const std::vector<Header>& headers) {
  int64_t largest = 0;
  for (const Header& h : headers) largest = std::max(largest, h.size);
  return largest;
}

// The same verdict on every rank, since every rank sees the same headers.
absl::Status CheckHeaders(const std::vector<Header>& headers) {
  const Header& first = headers[0];
  std::vector<std::string> differing;
  for (size_t r = 0; r < headers.size(); ++r) {
    const Header& h = headers[r];
    if (h.size < 0 || h.count < 0) {
      return absl::DataLossError(absl::StrCat("collective #", first.sequence, ": rank ", r,
                                              " sent a malformed header (size ", h.size, ", count ", h.count, ")"));
    }
    if (h.kind != first.kind || h.sequence != first.sequence) {
      differing.push_back(absl::StrCat("rank ", r, " called '", KindName(h.kind), "' as #", h.sequence));
    }
  }
  if (differing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "collective #", first.sequence, " differs between ranks: ", absl::StrJoin(differing, ", "), " but rank 0 called '",
      KindName(first.kind), "' as #", first.sequence, "; every rank must call the same collectives in the same order"));
}

}  // namespace

class C10dCoordinator::Call {
 public:
  Call(C10dCoordinator& coordinator, Kind kind) : c_(coordinator), kind_(kind) {}
  ~Call() {
    if (owns_guard_) c_.busy_.store(false);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  absl::Status Begin() {
    if (c_.busy_.exchange(true)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rank ", c_.rank_, " called collective '", Name(), "' before its previous collective returned; a ",
          "C10dCoordinator serves one thread at a time"));
    }
    owns_guard_ = true;
    number_ = ++c_.collectives_called_;
    if (c_.process_group_.get() == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(Where(), ": the coordinator has no process group"));
    }
    if (!c_.broken_.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Where(), ": the coordinator is unusable after an earlier collective failed: ", c_.broken_.message()));
    }
    return absl::OkStatus();
  }

  // Every rank's header, checked for agreement.
  absl::StatusOr<std::vector<Header>> ExchangeHeaders(int64_t size, int64_t count) {
    const int64_t n = c_.world_size_;
    std::vector<at::Tensor> input;
    std::vector<std::vector<at::Tensor>> output(1);
    absl::Status status = Run("header all-gather", [&] {
      input.push_back(at::empty({kHeaderWords}, at::TensorOptions().dtype(at::kLong)));
      int64_t* words = input[0].data_ptr<int64_t>();
      words[0] = static_cast<int64_t>(kind_);
      words[1] = number_;
      words[2] = size;
      words[3] = count;
      for (int64_t r = 0; r < n; ++r) output[0].push_back(at::empty({kHeaderWords}, at::TensorOptions().dtype(at::kLong)));
      c10d::AllgatherOptions options;
      options.timeout = Timeout();
      return c_.process_group_->allgather(output, input, options);
    });
    if (!status.ok()) return status;
    Count((n - 1) * kHeaderBytes, (n - 1) * kHeaderBytes);
    std::vector<Header> headers(n);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t* words = output[0][r].data_ptr<int64_t>();
      headers[r] = Header{words[0], words[1], words[2], words[3]};
    }
    absl::Status agreed = CheckHeaders(headers);
    if (!agreed.ok()) return agreed;
    return headers;
  }

  // Every rank's payload (sizes from the headers), on every rank (`all`) or
  // on rank 0 only (others get an empty list).
  absl::StatusOr<std::vector<std::string>> GatherPayloads(const std::string& local, const std::vector<Header>& headers,
                                                          bool all) {
    const int64_t n = c_.world_size_;
    const bool receives = all || c_.rank_ == 0;
    const int64_t padded = LargestSize(headers);
    if (padded > 0) {
      std::vector<at::Tensor> input;
      std::vector<std::vector<at::Tensor>> output;
      absl::Status status = Run(all ? "payload all-gather" : "payload gather", [&] {
        input.push_back(PaddedTensor(local, padded));
        if (receives) {
          output.emplace_back();
          for (int64_t r = 0; r < n; ++r) output[0].push_back(ByteTensor(padded));
        }
        if (all) {
          c10d::AllgatherOptions options;
          options.timeout = Timeout();
          return c_.process_group_->allgather(output, input, options);
        }
        c10d::GatherOptions options;
        options.rootRank = 0;
        options.timeout = Timeout();
        return c_.process_group_->gather(output, input, options);
      });
      if (!status.ok()) return status;
      if (all) {
        Count((n - 1) * padded, (n - 1) * padded);
      } else {
        if (c_.rank_ == 0) {
          Count(0, (n - 1) * padded);
        } else {
          Count(padded, 0);
        }
      }
      if (!receives) return std::vector<std::string>();
      std::vector<std::string> values(n);
      for (int64_t r = 0; r < n; ++r) values[r] = Prefix(output[0][r], headers[r].size);
      return values;
    }
    if (!receives) return std::vector<std::string>();
    return std::vector<std::string>(n);
  }

  absl::StatusOr<std::string> BroadcastPayload(std::string from_coordinator, int64_t size) {
    if (size == 0) return std::string();
    const bool root = c_.rank_ == 0;
    std::vector<at::Tensor> tensors;
    absl::Status status = Run("payload broadcast", [&] {
      tensors.push_back(root ? PaddedTensor(from_coordinator, size) : ByteTensor(size));
      c10d::BroadcastOptions options;
      options.rootRank = 0;
      options.timeout = Timeout();
      return c_.process_group_->broadcast(tensors, options);
    });
    if (!status.ok()) return status;
    if (root) {
      Count((c_.world_size_ - 1) * size, 0);
    } else {
      Count(0, size);
    }
    if (root) return from_coordinator;
    return Prefix(tensors[0], size);
  }

  absl::StatusOr<std::string> ScatterPayloads(const std::vector<std::string>& per_rank, int64_t largest) {
    if (largest == 0) return std::string();
    const int64_t n = c_.world_size_;
    const bool root = c_.rank_ == 0;
    const int64_t chunk = kLengthPrefixBytes + largest;
    std::vector<at::Tensor> output;
    std::vector<std::vector<at::Tensor>> input;
    absl::Status status = Run("payload scatter", [&] {
      output.push_back(ByteTensor(chunk));
      if (root) {
        input.emplace_back();
        for (int64_t r = 0; r < n; ++r) {
          at::Tensor tensor = ByteTensor(chunk);
          uint8_t* data = tensor.data_ptr<uint8_t>();
          PutLength(per_rank[r].size(), data);
          std::memcpy(data + kLengthPrefixBytes, per_rank[r].data(), per_rank[r].size());
          std::memset(data + kLengthPrefixBytes + per_rank[r].size(), 0, largest - per_rank[r].size());
          input[0].push_back(std::move(tensor));
        }
      }
      c10d::ScatterOptions options;
      options.rootRank = 0;
      options.timeout = Timeout();
      return c_.process_group_->scatter(output, input, options);
    });
    if (!status.ok()) return status;
    if (root) {
      Count((n - 1) * chunk, 0);
    } else {
      Count(0, chunk);
    }
    const uint8_t* data = output[0].data_ptr<uint8_t>();
    const uint64_t length = GetLength(data);
    if (length > static_cast<uint64_t>(largest)) {
      return absl::DataLossError(absl::StrCat(Where(), ": the chunk from rank 0 announces ", length,
                                              " bytes but holds at most ", largest));
    }
    return std::string(reinterpret_cast<const char*>(data + kLengthPrefixBytes), length);
  }

  std::string Where() const {
    return absl::StrCat("collective '", Name(), "' #", number_, " on rank ", c_.rank_, " of ", c_.world_size_);
  }

 private:
  const char* Name() const { return KindName(static_cast<int64_t>(kind_)); }
  std::chrono::milliseconds Timeout() const { return OperationTimeout(c_.timeout_); }

  // Starts one tensor operation and waits for it. The operation carries the
  // timeout, so the backend ends it cleanly; the wait allows a little more and
  // only matters for a backend that ignores the operation's timeout. A failure
  // leaves the ranks out of step, so it breaks the coordinator.
  absl::Status Run(const char* step, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    const std::string where =
        absl::StrCat(Where(), " (", step, ", timeout ", absl::FormatDuration(absl::FromChrono(Timeout())), ")");
    absl::Status status = Guarded(where, [&] {
      c10::intrusive_ptr<c10d::Work> work = start();
      if (!work->wait(Timeout() + kWaitGrace)) throw std::runtime_error("the operation was aborted");
    });
    if (status.ok()) return status;
    if (c_.liveness_ != nullptr) {
      status = absl::Status(status.code(), absl::StrCat(status.message(), c_.liveness_->DescribeUnresponsiveRanks()));
    }
    c_.broken_ = status;
    return status;
  }

  void Count(int64_t sent, int64_t received) {
    c_.bytes_sent_ += sent;
    c_.bytes_received_ += received;
  }

  C10dCoordinator& c_;
  const Kind kind_;
  bool owns_guard_ = false;
  int64_t number_ = 0;
};

C10dCoordinator::C10dCoordinator(c10::intrusive_ptr<c10d::ProcessGroup> process_group, absl::Duration timeout)
    : process_group_(std::move(process_group)), timeout_(timeout) {
  if (process_group_.get() != nullptr) {
    rank_ = process_group_->getRank();
    world_size_ = process_group_->getSize();
  }
}

C10dCoordinator::~C10dCoordinator() = default;

void C10dCoordinator::WatchLiveness(c10::intrusive_ptr<c10d::Store> store, std::string store_description,
                                    absl::Duration interval) {
  liveness_.reset();
  liveness_ = std::make_unique<internal::RankLiveness>(std::move(store), std::move(store_description), rank_,
                                                       world_size_, interval);
}

absl::StatusOr<std::vector<std::string>> C10dCoordinator::Gather(std::string local) {
  Call call(*this, Kind::kGather);
  if (absl::Status begun = call.Begin(); !begun.ok()) return begun;
  absl::StatusOr<std::vector<Header>> headers = call.ExchangeHeaders(local.size(), 0);
  if (!headers.ok()) return headers.status();
  return call.GatherPayloads(local, *headers, /*all=*/false);
}

absl::StatusOr<std::vector<std::string>> C10dCoordinator::AllGather(std::string local) {
  Call call(*this, Kind::kAllGather);
  if (absl::Status begun = call.Begin(); !begun.ok()) return begun;
  absl::StatusOr<std::vector<Header>> headers = call.ExchangeHeaders(local.size(), 0);
  if (!headers.ok()) return headers.status();
  return call.GatherPayloads(local, *headers, /*all=*/true);
}

absl::StatusOr<std::string> C10dCoordinator::Broadcast(std::string from_coordinator) {
  Call call(*this, Kind::kBroadcast);
  if (absl::Status begun = call.Begin(); !begun.ok()) return begun;
  const int64_t size = is_coordinator() ? static_cast<int64_t>(from_coordinator.size()) : 0;
  absl::StatusOr<std::vector<Header>> headers = call.ExchangeHeaders(size, 0);
  if (!headers.ok()) return headers.status();
  return call.BroadcastPayload(std::move(from_coordinator), (*headers)[0].size);
}

absl::StatusOr<std::string> C10dCoordinator::Scatter(std::vector<std::string> per_rank) {
  Call call(*this, Kind::kScatter);
  if (absl::Status begun = call.Begin(); !begun.ok()) return begun;
  int64_t largest = 0;
  int64_t count = 0;
  if (is_coordinator()) {
    for (const std::string& value : per_rank) largest = std::max<int64_t>(largest, value.size());
    count = per_rank.size();
  }
  absl::StatusOr<std::vector<Header>> headers = call.ExchangeHeaders(largest, count);
  if (!headers.ok()) return headers.status();
  if ((*headers)[0].count != world_size_) {
    return absl::InvalidArgumentError(absl::StrCat("collective 'scatter' #", (*headers)[0].sequence,
                                                   ": the coordinator (rank 0) passed ", (*headers)[0].count,
                                                   " values for ", world_size_, " ranks"));
  }
  return call.ScatterPayloads(per_rank, (*headers)[0].size);
}

absl::Status C10dCoordinator::Barrier() {
  Call call(*this, Kind::kBarrier);
  if (absl::Status begun = call.Begin(); !begun.ok()) return begun;
  return call.ExchangeHeaders(0, 0).status();
}

}  // namespace dcplan
