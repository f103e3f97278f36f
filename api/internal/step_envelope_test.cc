#include "api/internal/step_envelope.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

TEST(StepEnvelopeTest, PayloadRoundTripsIncludingEmptyAndBinary) {
  for (const std::string& payload : {std::string(), std::string("plan"), std::string("\0\xff\n\xd5", 4)}) {
    absl::StatusOr<std::string> decoded = DecodeStepEnvelope(EncodeStepPayload(payload));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, payload);
  }
}

TEST(StepEnvelopeTest, PayloadLayoutIsPreambleLengthBytes) {
  // magic 0xD5, version 1, kind 0, u64 little-endian length 2, then "ab".
  EXPECT_EQ(EncodeStepPayload("ab"), std::string("\xd5\x01\x00\x02\x00\x00\x00\x00\x00\x00\x00" "ab", 13));
}

TEST(StepEnvelopeTest, FailureRoundTripsCodeAndMessage) {
  const absl::Status failure = absl::NotFoundError("rank 3: no such file\nsecond line");
  absl::StatusOr<std::string> decoded = DecodeStepEnvelope(EncodeStepFailure(failure));
  EXPECT_EQ(decoded.status(), failure);
}

TEST(StepEnvelopeTest, FailureLayoutIsCodeLengthMessage) {
  // kind 1, code 5 (NOT_FOUND) as u32, length 1 as u64, "x".
  EXPECT_EQ(EncodeStepFailure(absl::NotFoundError("x")),
            std::string("\xd5\x01\x01\x05\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00" "x", 16));
}

TEST(StepEnvelopeTest, OkStatusAsFailureStillFails) {
  absl::StatusOr<std::string> decoded = DecodeStepEnvelope(EncodeStepFailure(absl::OkStatus()));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInternal);
}

void ExpectMalformed(const std::string& bytes, const std::string& fragment) {
  absl::StatusOr<std::string> decoded = DecodeStepEnvelope(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << decoded.status();
  EXPECT_NE(decoded.status().message().find(fragment), absl::string_view::npos) << decoded.status();
}

TEST(StepEnvelopeTest, RejectsMalformedBytes) {
  const std::string ok = EncodeStepPayload("abc");
  const std::string failed = EncodeStepFailure(absl::AbortedError("boom"));
  ExpectMalformed("", "preamble");
  ExpectMalformed(ok.substr(0, 2), "preamble");
  ExpectMalformed(ok.substr(0, 10), "truncated");
  ExpectMalformed(ok.substr(0, ok.size() - 1), "payload length 3");
  ExpectMalformed(ok + "!", "payload length 3");
  ExpectMalformed(failed.substr(0, 14), "truncated");
  ExpectMalformed(failed + "!", "message length 4");
  std::string bad_magic = ok;
  bad_magic[0] = 'D';
  ExpectMalformed(bad_magic, "magic");
  std::string bad_version = ok;
  bad_version[1] = 2;
  ExpectMalformed(bad_version, "version 2");
  std::string bad_kind = ok;
  bad_kind[2] = 7;
  ExpectMalformed(bad_kind, "kind 7");
  std::string code_zero = failed;
  code_zero[3] = 0;
  ExpectMalformed(code_zero, "status code 0");
  std::string code_17 = failed;
  code_17[3] = 17;
  ExpectMalformed(code_17, "status code 17");
}

TEST(StepEnvelopeTest, HugeDeclaredLengthIsRejectedWithoutAllocating) {
  std::string ok = EncodeStepPayload("abc");
  for (int i = 3; i < 11; ++i) ok[i] = '\xff';
  ExpectMalformed(ok, "3 bytes follow");
}

}  // namespace
}  // namespace dcplan::internal
