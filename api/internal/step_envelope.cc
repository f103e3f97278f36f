#include "api/internal/step_envelope.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dcplan::internal {
namespace {

constexpr unsigned char kMagic = 0xD5;
constexpr unsigned char kVersion = 1;
constexpr unsigned char kKindOk = 0;
constexpr unsigned char kKindError = 1;
constexpr size_t kPreambleBytes = 3;  // magic, version, kind

void PutLittleEndian(uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint64_t GetLittleEndian(const std::string& in, size_t at, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
  return value;
}

std::string Preamble(unsigned char kind) {
  std::string out;
  out.push_back(static_cast<char>(kMagic));
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(kind));
  return out;
}

absl::Status Malformed(const std::string& what) {
  return absl::DataLossError(absl::StrCat("malformed step envelope: ", what));
}

// Checks that `length` bytes starting at `at` are exactly the rest of `in`.
absl::Status CheckLengthIsRest(const std::string& in, size_t at, uint64_t length, const char* field) {
  const uint64_t rest = in.size() - at;
  if (length == rest) return absl::OkStatus();
  return Malformed(absl::StrCat(field, " length ", length, " at byte ", at, " but ", rest, " bytes follow"));
}

absl::StatusOr<std::string> DecodeOk(std::string envelope) {
  constexpr size_t kHeader = kPreambleBytes + 8;
  if (envelope.size() < kHeader) return Malformed(absl::StrCat("ok envelope of ", envelope.size(), " bytes is truncated"));
  absl::Status length_ok = CheckLengthIsRest(envelope, kHeader, GetLittleEndian(envelope, kPreambleBytes, 8), "payload");
  if (!length_ok.ok()) return length_ok;
  envelope.erase(0, kHeader);
  return envelope;
}

absl::StatusOr<std::string> DecodeError(const std::string& envelope) {
  constexpr size_t kHeader = kPreambleBytes + 4 + 8;
  if (envelope.size() < kHeader) {
    return Malformed(absl::StrCat("error envelope of ", envelope.size(), " bytes is truncated"));
  }
  const uint64_t code = GetLittleEndian(envelope, kPreambleBytes, 4);
  if (code < 1 || code > 16) return Malformed(absl::StrCat("status code ", code, " is not an error code"));
  absl::Status length_ok =
      CheckLengthIsRest(envelope, kHeader, GetLittleEndian(envelope, kPreambleBytes + 4, 8), "message");
  if (!length_ok.ok()) return length_ok;
  return absl::Status(static_cast<absl::StatusCode>(code), envelope.substr(kHeader));
}

}  // namespace

std::string EncodeStepPayload(const std::string& payload) {
  std::string out = Preamble(kKindOk);
  out.reserve(kPreambleBytes + 8 + payload.size());
  PutLittleEndian(payload.size(), 8, out);
  out.append(payload);
  return out;
}

std::string EncodeStepFailure(const absl::Status& failure) {
  const absl::Status sent =
      failure.ok() ? absl::InternalError("a step failure was reported with an OK status") : failure;
  const std::string message(sent.message());
  std::string out = Preamble(kKindError);
  PutLittleEndian(static_cast<uint64_t>(sent.code()), 4, out);
  PutLittleEndian(message.size(), 8, out);
  out.append(message);
  return out;
}

absl::StatusOr<std::string> DecodeStepEnvelope(std::string envelope) {
  if (envelope.size() < kPreambleBytes) {
    return Malformed(absl::StrCat("only ", envelope.size(), " bytes, shorter than the 3-byte preamble"));
  }
  const int magic = static_cast<unsigned char>(envelope[0]);
  const int version = static_cast<unsigned char>(envelope[1]);
  const int kind = static_cast<unsigned char>(envelope[2]);
  if (magic != kMagic) return Malformed(absl::StrCat("magic byte ", magic, " (expected ", int{kMagic}, ")"));
  if (version != kVersion) {
    return Malformed(absl::StrCat("format version ", version, " (expected ", int{kVersion}, ")"));
  }
  if (kind == kKindOk) return DecodeOk(std::move(envelope));
  if (kind == kKindError) return DecodeError(envelope);
  return Malformed(absl::StrCat("unknown kind ", kind));
}

}  // namespace dcplan::internal
