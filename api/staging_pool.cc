#include "api/staging_pool.h"

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace internal {

// The pool's arenas; shared with the buffers lent from them.
class StagingArenas {
 public:
  struct Lent {
    int64_t index;
    at::Tensor memory;
  };

  absl::StatusOr<Lent> Lend(int64_t bytes, bool pinned) {
    absl::MutexLock lock(&mutex_);
    const int64_t reuse = SmallestFreeHolding(bytes, pinned);
    if (reuse >= 0) {
      arenas_[reuse].lent = true;
      return Lent{reuse, arenas_[reuse].memory};
    }
    // Replace the largest free arena rather than keep it beside the new one,
    // so that what the pool holds stays the largest request.
    int64_t slot = LargestFree();
    if (slot >= 0) {
      reserved_ -= arenas_[slot].memory.numel();
      arenas_[slot].memory = at::Tensor();
    } else {
      slot = static_cast<int64_t>(arenas_.size());
      arenas_.push_back(Arena());
    }
    absl::StatusOr<at::Tensor> memory = Allocate(bytes, pinned);
    if (!memory.ok()) {
      if (slot + 1 == static_cast<int64_t>(arenas_.size())) arenas_.pop_back();
      return memory.status();
    }
    arenas_[slot] = Arena{*memory, pinned, /*lent=*/true};
    reserved_ += bytes;
    ++allocations_;
    return Lent{slot, *std::move(memory)};
  }

  void Return(int64_t index) {
    absl::MutexLock lock(&mutex_);
    arenas_[index].lent = false;
  }

  int64_t reserved_bytes() const {
    absl::MutexLock lock(&mutex_);
    return reserved_;
  }
  int64_t allocations() const {
    absl::MutexLock lock(&mutex_);
    return allocations_;
  }

 private:
  struct Arena {
    at::Tensor memory;  // empty while being replaced
    bool pinned = false;
    bool lent = false;
  };

  int64_t SmallestFreeHolding(int64_t bytes, bool pinned) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    int64_t best = -1;
    for (size_t i = 0; i < arenas_.size(); ++i) {
      const Arena& a = arenas_[i];
      if (a.lent || !a.memory.defined() || a.pinned != pinned || a.memory.numel() < bytes) continue;
      if (best < 0 || a.memory.numel() < arenas_[best].memory.numel()) best = static_cast<int64_t>(i);
    }
    return best;
  }

  int64_t LargestFree() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    int64_t best = -1;
    for (size_t i = 0; i < arenas_.size(); ++i) {
      if (arenas_[i].lent) continue;
      if (best < 0 || arenas_[i].memory.numel() > arenas_[best].memory.numel()) best = static_cast<int64_t>(i);
    }
    return best;
  }

  static absl::StatusOr<at::Tensor> Allocate(int64_t bytes, bool pinned) {
    at::TensorOptions options = at::TensorOptions().dtype(at::kByte);
#if defined(DCPLAN_WITH_CUDA)
    options = options.pinned_memory(pinned);
#else
    (void)pinned;  // no device tensors to copy from without CUDA
#endif
    try {
      return at::empty({bytes}, options);
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", bytes, " bytes of staging memory: ", e.what()));
    }
  }

  mutable absl::Mutex mutex_;
  std::vector<Arena> arenas_ ABSL_GUARDED_BY(mutex_);
  int64_t reserved_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t allocations_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace internal

namespace {

absl::StatusOr<int64_t> AlignedBytes(int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("negative staging size ", bytes));
  std::optional<int64_t> padded = internal::CheckedAdd(bytes, kStagingAlignment - 1);
  if (!padded) return absl::OutOfRangeError(absl::StrCat("staging size ", bytes, " overflows int64"));
  return *padded / kStagingAlignment * kStagingAlignment;
}

}  // namespace

absl::StatusOr<int64_t> StagingBytes(const std::vector<int64_t>& tensor_bytes) {
  int64_t total = 0;
  for (int64_t bytes : tensor_bytes) {
    absl::StatusOr<int64_t> aligned = AlignedBytes(bytes);
    if (!aligned.ok()) return aligned.status();
    std::optional<int64_t> sum = internal::CheckedAdd(total, *aligned);
    if (!sum) return absl::OutOfRangeError("the staging bytes of a save overflow int64");
    total = *sum;
  }
  return total;
}

StagingBuffer::StagingBuffer(std::shared_ptr<internal::StagingArenas> arenas, int64_t arena, at::Tensor memory)
    : arenas_(std::move(arenas)), arena_(arena), memory_(std::move(memory)), capacity_(memory_.numel()) {}

StagingBuffer::StagingBuffer(StagingBuffer&& other) noexcept { *this = std::move(other); }

StagingBuffer& StagingBuffer::operator=(StagingBuffer&& other) noexcept {
  if (this == &other) return *this;
  Release();
  arenas_ = std::move(other.arenas_);
  arena_ = std::exchange(other.arena_, -1);
  memory_ = std::move(other.memory_);
  capacity_ = std::exchange(other.capacity_, 0);
  used_ = std::exchange(other.used_, 0);
  return *this;
}

StagingBuffer::~StagingBuffer() { Release(); }

void StagingBuffer::Release() {
  if (arena_ >= 0 && arenas_) arenas_->Return(arena_);
  arena_ = -1;
  memory_ = at::Tensor();
  arenas_.reset();
}

absl::StatusOr<at::Tensor> StagingBuffer::Stage(const at::Tensor& tensor) {
  if (!tensor.defined()) return absl::InvalidArgumentError("cannot stage an undefined tensor");
  std::optional<int64_t> bytes = internal::CheckedMul(tensor.numel(), static_cast<int64_t>(tensor.element_size()));
  if (!bytes) return absl::OutOfRangeError("the tensor's byte size overflows int64");
  absl::StatusOr<int64_t> aligned = AlignedBytes(*bytes);
  if (!aligned.ok()) return aligned.status();
  if (arena_ < 0 || *aligned > capacity_ - used_) {
    return absl::ResourceExhaustedError(absl::StrCat("staging buffer full: ", *bytes, " bytes needed, ",
                                                     capacity_ - used_, " of ", capacity_, " left"));
  }
  try {
    // No bytes to hold (and an empty arena may have no address).
    if (*bytes == 0) return at::empty(tensor.sizes(), at::TensorOptions().dtype(tensor.scalar_type()));
    at::Tensor copy = at::from_blob(memory_.data_ptr<uint8_t>() + used_, tensor.sizes(),
                                    at::TensorOptions().dtype(tensor.scalar_type()));
    copy.copy_(tensor);
    used_ += *aligned;
    return copy;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("staging a tensor failed: ", e.what()));
  }
}

StagingPool::StagingPool() : arenas_(std::make_shared<internal::StagingArenas>()) {}
StagingPool::~StagingPool() = default;

absl::StatusOr<StagingBuffer> StagingPool::Acquire(int64_t bytes, bool pinned) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("negative staging size ", bytes));
  absl::StatusOr<internal::StagingArenas::Lent> lent = arenas_->Lend(bytes, pinned);
  if (!lent.ok()) return lent.status();
  return StagingBuffer(arenas_, lent->index, std::move(lent->memory));
}

int64_t StagingPool::reserved_bytes() const { return arenas_->reserved_bytes(); }
int64_t StagingPool::allocations() const { return arenas_->allocations(); }

}  // namespace dcplan
