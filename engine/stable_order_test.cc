#include "engine/internal/stable_order.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dcplan {
namespace internal {
namespace {

// The oracle: positions in (key, position) order by insertion into a sorted
// list, quadratic but obviously right.
std::vector<uint32_t> InsertionOrder(const std::vector<uint64_t>& keys) {
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < keys.size(); ++i) {
    size_t at = order.size();
    while (at > 0 && keys[order[at - 1]] > keys[i]) --at;
    order.insert(order.begin() + at, i);
  }
  return order;
}

TEST(StableOrderTest, EmptyAndSingle) {
  EXPECT_TRUE(StableOrder<uint32_t>({}).empty());
  EXPECT_EQ(StableOrder<uint32_t>({42}), std::vector<uint32_t>({0}));
}

TEST(StableOrderTest, EqualKeysKeepTheirPositionOrder) {
  EXPECT_EQ(StableOrder<uint32_t>({5, 3, 5, 3, 0}), std::vector<uint32_t>({4, 1, 3, 0, 2}));
  EXPECT_EQ(StableOrder<uint32_t>({7, 7, 7}), std::vector<uint32_t>({0, 1, 2}));
}

TEST(StableOrderTest, KeysDifferingInHighBytesOnly) {
  const uint64_t top = uint64_t{1} << 56;
  EXPECT_EQ(StableOrder<uint32_t>({3 * top, top, 2 * top, top}), std::vector<uint32_t>({1, 3, 2, 0}));
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(StableOrder<uint64_t>({max, 0, max - 1, 0}), std::vector<uint64_t>({1, 3, 2, 0}));
}

TEST(StableOrderTest, SignedValuesOrderLikeTheirKeys) {
  const int64_t min = std::numeric_limits<int64_t>::min();
  const int64_t max = std::numeric_limits<int64_t>::max();
  const std::vector<int64_t> values = {0, -1, max, min, 1, min + 1, -1};
  std::vector<uint64_t> keys;
  for (int64_t v : values) keys.push_back(OrderedKey(v));
  EXPECT_EQ(StableOrder<uint32_t>(keys), std::vector<uint32_t>({3, 5, 1, 6, 0, 4, 2}));
}

TEST(StableOrderTest, AgreesWithInsertionOrder) {
  std::mt19937_64 random(15);
  for (int round = 0; round < 300; ++round) {
    const size_t n = random() % 200;
    // Narrow and wide key ranges, with and without a common offset.
    const int bits = 1 + static_cast<int>(random() % 64);
    const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    const uint64_t base = round % 2 == 0 ? 0 : random() >> 1;
    std::vector<uint64_t> keys(n);
    for (uint64_t& key : keys) key = base + ((random() & mask) >> 1);
    if (round % 5 == 0) std::sort(keys.begin(), keys.end());
    EXPECT_EQ(StableOrder<uint32_t>(keys), InsertionOrder(keys)) << "round " << round;
  }
}

}  // namespace
}  // namespace internal
}  // namespace dcplan
