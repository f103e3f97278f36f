#ifndef DCPLAN_API_INTERNAL_STEP_ENVELOPE_H_
#define DCPLAN_API_INTERNAL_STEP_ENVELOPE_H_

// The envelope in which StepRunner ships one rank's step outcome (a payload,
// or the absl::Status of a failure) through a Coordinator's byte-string
// collectives, so that a failure travels like any other value instead of
// leaving the other ranks waiting.
//
// Layout (all integers little-endian):
//
//   magic 0xD5 | version 1 | kind (0 = ok, 1 = error)
//   ok:    payload length (u64) | payload bytes
//   error: status code (u32, 1..16) | message length (u64) | message bytes
//
// The length must account for every remaining byte. Status payloads
// (absl::Status::SetPayload) do not travel.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dcplan::internal {

std::string EncodeStepPayload(const std::string& payload);
// `failure` must not be OK (an OK status is encoded as an Internal error
// saying so, so that a caller's bug still reaches every rank as a failure).
std::string EncodeStepFailure(const absl::Status& failure);

// The inverse: the payload, or the failure that was encoded. Bytes that are
// not an envelope (truncated, trailing bytes, unknown magic, version, kind or
// status code) give a DataLoss error describing the defect. Takes `envelope`
// by value so that the payload is cut out in place rather than copied.
absl::StatusOr<std::string> DecodeStepEnvelope(std::string envelope);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_STEP_ENVELOPE_H_
