#include "api/internal/crc32.h"

#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

std::string RandomBytes(size_t n, std::mt19937_64& rng) {
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

// Bit by bit, straight from the definition (reflected polynomial
// 0xEDB88320, pre- and post-inverted): independent of crc32.cc's tables.
uint32_t BitwiseCrc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

TEST(Crc32Test, PortableMatchesTheDefinition) {
  std::mt19937_64 rng(1);
  EXPECT_EQ(Crc32Portable(0, "123456789", 9), 0xCBF43926u);
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 1000}) {
    const std::string bytes = RandomBytes(n, rng);
    EXPECT_EQ(Crc32Portable(0, bytes.data(), n), BitwiseCrc32(bytes)) << n;
  }
}

constexpr Crc32Path kAllPaths[] = {Crc32Path::kTable, Crc32Path::kPclmul128, Crc32Path::kVpclmul256,
                                    Crc32Path::kVpclmul512};

TEST(Crc32Test, EveryPathMatchesThePortableOneOnRandomLengthsAndAlignments) {
  std::mt19937_64 rng(2);
  const std::string bytes = RandomBytes((size_t{1} << 20) + 4096, rng);
  std::uniform_int_distribution<size_t> start(0, 63);
  std::uniform_int_distribution<size_t> small_size(0, 2100);
  std::uniform_int_distribution<size_t> large_size(0, size_t{1} << 20);
  std::uniform_int_distribution<uint32_t> initial;
  for (int round = 0; round < 3000; ++round) {
    const size_t at = start(rng);
    const size_t n = round % 10 == 0 ? large_size(rng) : small_size(rng);
    const uint32_t crc = round % 2 == 0 ? 0 : initial(rng);
    const uint32_t expected = Crc32Portable(crc, bytes.data() + at, n);
    ASSERT_EQ(Crc32(crc, bytes.data() + at, n), expected) << "at " << at << " size " << n;
    for (Crc32Path path : kAllPaths) {
      ASSERT_EQ(Crc32With(path, crc, bytes.data() + at, n), expected)
          << Crc32PathName(path) << " at " << at << " size " << n;
    }
  }
  // Every size around the paths' thresholds (64, 256 and 512 bytes) and step multiples.
  for (size_t n = 0; n <= 2100; ++n) {
    for (Crc32Path path : kAllPaths) {
      ASSERT_EQ(Crc32With(path, 0x12345678u, bytes.data() + 3, n), Crc32Portable(0x12345678u, bytes.data() + 3, n))
          << Crc32PathName(path) << " size " << n;
    }
  }
}

TEST(Crc32Test, PathsAvailableHereAreNamedAndTheChosenOneIsTheFastest) {
  EXPECT_TRUE(Crc32PathAvailable(Crc32Path::kTable));
  const Crc32Path chosen = Crc32ChosenPath();
  EXPECT_TRUE(Crc32PathAvailable(chosen));
  EXPECT_STREQ(Crc32Implementation(), Crc32PathName(chosen));
  for (Crc32Path path : kAllPaths) {
    EXPECT_EQ(Crc32PathAvailable(path), static_cast<int>(path) <= static_cast<int>(chosen)) << Crc32PathName(path);
  }
  // Which fast paths this run really exercised, in the test log.
  std::cout << "Crc32 on this CPU: " << Crc32Implementation() << "\n";
}

TEST(Crc32Test, CombineEqualsTheCrcOfTheConcatenationOverRandomSplits) {
  std::mt19937_64 rng(3);
  const std::string bytes = RandomBytes(200000, rng);
  const uint32_t whole = BitwiseCrc32(bytes);
  std::uniform_int_distribution<size_t> cut(0, bytes.size());
  for (int round = 0; round < 200; ++round) {
    size_t a = cut(rng), b = cut(rng);
    if (a > b) std::swap(a, b);
    // Three pieces, any of them possibly empty, joined left to right.
    const uint32_t head = Crc32Portable(0, bytes.data(), a);
    const uint32_t middle = Crc32Portable(0, bytes.data() + a, b - a);
    const uint32_t tail = Crc32Portable(0, bytes.data() + b, bytes.size() - b);
    ASSERT_EQ(Crc32Combine(Crc32Combine(head, middle, b - a), tail, bytes.size() - b), whole)
        << "cuts " << a << ", " << b;
    ASSERT_EQ(Crc32Around(bytes.data(), a, middle, b - a, bytes.data() + b, bytes.size() - b), whole)
        << "cuts " << a << ", " << b;
  }
  EXPECT_EQ(Crc32Combine(0, 0, 0), 0u);
  EXPECT_EQ(Crc32Combine(whole, 0, 0), whole);
}

TEST(Crc32Test, CombineOverLongRunsOfZeros) {
  // The shift by x^(8n) for large n, against a straight CRC of the zeros.
  const std::string zeros(size_t{5} << 20, '\0');
  const uint32_t one = Crc32Portable(0, "a", 1);
  for (size_t n : {size_t{1} << 20, (size_t{5} << 20) - 7, size_t{123457}}) {
    const std::string joined = "a" + zeros.substr(0, n);
    EXPECT_EQ(Crc32Combine(one, Crc32Portable(0, zeros.data(), n), n), Crc32Portable(0, joined.data(), joined.size()))
        << n;
  }
}

}  // namespace
}  // namespace dcplan::internal
