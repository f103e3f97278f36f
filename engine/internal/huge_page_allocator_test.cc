#include "engine/internal/huge_page_allocator.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace dcplan {
namespace internal {
namespace {

uintptr_t Address(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer); }

TEST(HugePageAllocatorTest, LargeArraysStartOnAHugePageBoundary) {
  if (!HugePagesSupported()) GTEST_SKIP() << "no huge page mappings on this system";
  ScratchVector<int64_t> values(kHugePageBytes / sizeof(int64_t) + 3);
  EXPECT_EQ(Address(values.data()) % kHugePageBytes, 0u);
}

TEST(HugePageAllocatorTest, ValuesSurviveGrowthAcrossTheThreshold) {
  // From operator new to mapped pages and on to a larger mapping: every
  // value written must be read back, the last byte of each mapping included.
  ScratchVector<uint32_t> values;
  const uint32_t count = static_cast<uint32_t>(3 * kHugePageBytes / sizeof(uint32_t)) + 17;
  for (uint32_t i = 0; i < count; ++i) values.push_back(i * 2654435761u);
  ASSERT_EQ(values.size(), count);
  for (uint32_t i = 0; i < count; ++i) ASSERT_EQ(values[i], i * 2654435761u) << "at " << i;
}

TEST(HugePageAllocatorTest, SmallArraysComeFromOperatorNew) {
  // A small array is not padded to 2 MiB: two of them are not both aligned
  // on huge pages (each would be, if mapped).
  ScratchVector<char> a(100);
  ScratchVector<char> b(100);
  EXPECT_FALSE(Address(a.data()) % kHugePageBytes == 0 && Address(b.data()) % kHugePageBytes == 0);
}

TEST(HugePageAllocatorTest, ReservedCapacityIsWritableToTheEnd) {
  ScratchVector<uint8_t> bytes;
  bytes.reserve(kHugePageBytes + 1);
  bytes.resize(bytes.capacity(), 0xAB);
  EXPECT_EQ(bytes.front(), 0xAB);
  EXPECT_EQ(bytes.back(), 0xAB);
}

}  // namespace
}  // namespace internal
}  // namespace dcplan
