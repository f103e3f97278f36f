#include "engine/internal/huge_page_allocator.h"

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dcplan {
namespace internal {
namespace {

size_t RoundUpToHugePage(size_t bytes) { return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes; }

}  // namespace

#if defined(__linux__) && defined(MADV_HUGEPAGE)

bool HugePagesSupported() { return true; }

void* MapHugePages(size_t bytes) {
  const size_t length = RoundUpToHugePage(bytes);
  if (length < bytes) return nullptr;  // overflow
  // mmap aligns on 4 KiB only: map one huge page more and trim both ends.
  const size_t padded = length + kHugePageBytes;
  if (padded < length) return nullptr;
  void* mapped = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const size_t head = aligned - start;
  const size_t tail = padded - head - length;
  if (head > 0) munmap(mapped, head);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + length), tail);
  void* pointer = reinterpret_cast<void*>(aligned);
  // Advice only: where huge pages are off, the mapping keeps 4 KiB pages.
  madvise(pointer, length, MADV_HUGEPAGE);
  return pointer;
}

void UnmapHugePages(void* pointer, size_t bytes) { munmap(pointer, RoundUpToHugePage(bytes)); }

#else

bool HugePagesSupported() { return false; }
void* MapHugePages(size_t) { return nullptr; }
void UnmapHugePages(void*, size_t) {}

#endif

}  // namespace internal
}  // namespace dcplan
