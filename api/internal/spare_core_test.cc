#include "api/internal/spare_core.h"

#include <optional>

#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

TEST(SpareCoreTest, TwoCpusPerLocalRank) {
  EXPECT_TRUE(SpareCoreForHelperThreads(2, std::nullopt));  // one rank when unset
  EXPECT_FALSE(SpareCoreForHelperThreads(1, std::nullopt));
  EXPECT_TRUE(SpareCoreForHelperThreads(2, "1"));
  EXPECT_FALSE(SpareCoreForHelperThreads(2, "2"));
  EXPECT_FALSE(SpareCoreForHelperThreads(3, "2"));
  EXPECT_TRUE(SpareCoreForHelperThreads(4, "2"));
  EXPECT_TRUE(SpareCoreForHelperThreads(128, "8"));
  EXPECT_FALSE(SpareCoreForHelperThreads(8, "8"));
  EXPECT_FALSE(SpareCoreForHelperThreads(0, std::nullopt));
}

TEST(SpareCoreTest, AnUnreadableLocalWorldSizeCountsAsOneRank) {
  for (const char* value : {"", "x", "0", "-4", "2x", "99999999999999999999999"}) {
    EXPECT_TRUE(SpareCoreForHelperThreads(2, value)) << value;
    EXPECT_FALSE(SpareCoreForHelperThreads(1, value)) << value;
  }
}

}  // namespace
}  // namespace dcplan::internal
