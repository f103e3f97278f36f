#ifndef DCPLAN_API_STAGING_POOL_H_
#define DCPLAN_API_STAGING_POOL_H_

// StagingPool: host memory for snapshots of tensors (AsyncSave's staging),
// kept and reused across saves so that a warm pool allocates nothing.
//
//   dcplan::StagingPool pool;                       // one per trainer, kept
//   absl::StatusOr<dcplan::StagingBuffer> buffer = pool.Acquire(bytes);
//   absl::StatusOr<at::Tensor> copy = buffer->Stage(tensor);   // a snapshot
//   // buffer destroyed: its memory goes back to the pool.
//
// The pool holds arenas (one allocation each). Acquire lends the smallest
// free arena that holds `bytes`; when none does, it replaces the largest free
// arena (or adds one) with an arena of exactly `bytes`. So a loop of saves of
// the same plan allocates once, and the memory held is the largest request
// (per save in flight), not a multiple of it. Staged tensors are packed with
// kStagingAlignment-byte alignment: request StagingBytes(sizes) for them.
//
// Where LibTorch is built with CUDA (DCPLAN_WITH_CUDA defined), an arena
// acquired with `pinned` is page-locked host memory, so device-to-host
// copies run at full speed; without CUDA `pinned` is ignored.
//
// Thread-safe. A buffer keeps the pool's memory alive: the pool may be
// destroyed before its buffers.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace dcplan {

inline constexpr int64_t kStagingAlignment = 64;

// The bytes StagingBuffer::Stage needs for tensors of these byte sizes
// (each rounded up to kStagingAlignment). InvalidArgument for a negative
// size, OutOfRange on int64 overflow.
absl::StatusOr<int64_t> StagingBytes(const std::vector<int64_t>& tensor_bytes);

namespace internal {
class StagingArenas;
}  // namespace internal

// One lent arena: a bump allocator over it. Move-only; returns the arena to
// its pool when destroyed. Tensors from Stage point into the arena: they must
// not be used after the buffer is destroyed.
class StagingBuffer {
 public:
  StagingBuffer(StagingBuffer&& other) noexcept;
  StagingBuffer& operator=(StagingBuffer&& other) noexcept;
  ~StagingBuffer();

  // A contiguous CPU copy of `tensor` (same sizes and dtype) in the next free
  // bytes. ResourceExhausted when the buffer has no room left; the copy's
  // own failure (a LibTorch error) is Internal.
  absl::StatusOr<at::Tensor> Stage(const at::Tensor& tensor);

  int64_t capacity() const { return capacity_; }
  int64_t used() const { return used_; }

 private:
  friend class StagingPool;
  StagingBuffer(std::shared_ptr<internal::StagingArenas> arenas, int64_t arena, at::Tensor memory);
  void Release();

  std::shared_ptr<internal::StagingArenas> arenas_;
  int64_t arena_ = -1;  // index in arenas_, -1 once released or moved from
  at::Tensor memory_;   // uint8, capacity_ bytes
  int64_t capacity_ = 0;
  int64_t used_ = 0;
};

class StagingPool {
 public:
  StagingPool();
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // Lends an arena of at least `bytes` (see above). InvalidArgument for a
  // negative size; ResourceExhausted when the allocation fails.
  absl::StatusOr<StagingBuffer> Acquire(int64_t bytes, bool pinned = false);

  // Bytes held in arenas (lent or free).
  int64_t reserved_bytes() const;
  // Arena allocations made so far (flat once the pool is warm).
  int64_t allocations() const;

 private:
  std::shared_ptr<internal::StagingArenas> arenas_;
};

}  // namespace dcplan

#endif  // DCPLAN_API_STAGING_POOL_H_
