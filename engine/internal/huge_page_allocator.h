#ifndef DCPLAN_ENGINE_INTERNAL_HUGE_PAGE_ALLOCATOR_H_
#define DCPLAN_ENGINE_INTERNAL_HUGE_PAGE_ALLOCATOR_H_

// An allocator for the planning steps' per-item scratch arrays (several
// bytes per item of every rank: tens of MB at 512 ranks, hundreds at
// 16384). Arrays of kHugePageBytes or more are mapped on 2 MiB boundaries
// and marked for transparent huge pages, where Linux has them: with 4 KiB
// pages, first touching such an array costs a page fault per 4 KiB and
// reading it a TLB miss per 4 KiB, a quarter of dedup's time at 512 ranks
// (perf, issue #15). Smaller arrays, and other systems, use operator new.
// A failed mapping is std::bad_alloc, as operator new's is.

#include <cstddef>
#include <new>
#include <vector>

namespace dcplan {
namespace internal {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// Memory for `bytes` (>= kHugePageBytes) aligned on kHugePageBytes, or
// nullptr where the system has no such mapping (then the caller falls back
// to operator new).
void* MapHugePages(size_t bytes);
void UnmapHugePages(void* pointer, size_t bytes);
bool HugePagesSupported();

template <typename T>
class HugePageAllocator {
 public:
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: allocators convert implicitly

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = n * sizeof(T);
    if (UsesHugePages(bytes)) {
      void* pointer = MapHugePages(bytes);
      if (pointer == nullptr) throw std::bad_alloc();
      return static_cast<T*>(pointer);
    }
    return static_cast<T*>(::operator new(bytes));
  }

  void deallocate(T* pointer, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (UsesHugePages(bytes)) {
      UnmapHugePages(pointer, bytes);
    } else {
      ::operator delete(pointer);
    }
  }

  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) { return true; }
  friend bool operator!=(const HugePageAllocator&, const HugePageAllocator&) { return false; }

 private:
  static bool UsesHugePages(size_t bytes) { return bytes >= kHugePageBytes && HugePagesSupported(); }
};

// A per-item scratch array of the planning steps.
template <typename T>
using ScratchVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace internal
}  // namespace dcplan

#endif  // DCPLAN_ENGINE_INTERNAL_HUGE_PAGE_ALLOCATOR_H_
