// The near-canonical seeds of codec_fuzzer: each is rejected by the decoder
// for exactly the non-canonical detail it carries (so that a decoder missing
// that check fails the fuzz replay), and the committed corpus holds them.

#include "fuzz/codec_near_canonical.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "engine/codec.h"
#include "gtest/gtest.h"

namespace dcplan::fuzzing {
namespace {

absl::Status Decode(char selector, const std::string& message) {
  if (selector == 0) return DecodeSavePlan(message).status();
  return DecodeLoadPlan(message).status();
}

TEST(CodecNearCanonical, EachIsRejectedForItsOwnDetail) {
  for (const NearCanonical& seed : NearCanonicalMessages()) {
    SCOPED_TRACE(seed.name);
    const absl::Status status = Decode(seed.selector, seed.message);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_NE(status.message().find(seed.rejected_because), absl::string_view::npos) << status;
  }
}

TEST(CodecNearCanonical, CommittedAsFuzzSeeds) {
  for (const NearCanonical& seed : NearCanonicalMessages()) {
    std::ifstream in(std::string("fuzz/corpus/codec/") + seed.name, std::ios::binary);
    ASSERT_TRUE(in) << seed.name << " is missing from fuzz/corpus/codec (run //fuzz:codec_seed_generator)";
    std::stringstream content;
    content << in.rdbuf();
    EXPECT_EQ(content.str(), std::string(1, seed.selector) + seed.message) << seed.name;
  }
}

}  // namespace
}  // namespace dcplan::fuzzing
