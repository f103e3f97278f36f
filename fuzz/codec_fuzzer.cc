// Fuzz target for engine/codec.h: every decoder on arbitrary bytes.
//
// Input: one selector byte, then the message. Selector 0-4 feeds the message
// to one decoder (SavePlan, LoadPlan, Metadata, SavePlan list, LoadPlan list);
// any other selector feeds it to all five. Besides "never crash, never read
// out of bounds", codec.h promises a canonical encoding, checked here for
// every message a decoder accepts:
//   Encode(Decode(b)) == b  and  Decode(Encode(Decode(b))) == Decode(b),
// and PeekCodecKind(b) names the decoder's kind.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/codec.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "fuzz/fuzz_check.h"

namespace dcplan::fuzzing {
namespace {

std::string Describe(const SavePlan& plan) { return ToString(plan); }
std::string Describe(const LoadPlan& plan) { return ToString(plan); }
std::string Describe(const Metadata& metadata) { return ToString(metadata); }
template <typename Plan>
std::string Describe(const std::vector<Plan>& plans) {
  std::string text;
  for (size_t i = 0; i < plans.size(); ++i) absl::StrAppend(&text, "plan ", i, ":\n", Describe(plans[i]), "\n");
  return text;
}

std::string Hex(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

template <typename Value, typename Decoder, typename Encoder>
void CheckRoundTrip(absl::string_view message, CodecKind kind, Decoder decode, Encoder encode) {
  absl::StatusOr<Value> decoded = decode(message);
  if (!decoded.ok()) {
    // Decoding errors must carry a message (they name the kind and the byte).
    FUZZ_CHECK(!decoded.status().message().empty(), "empty decoding error");
    return;
  }
  absl::StatusOr<CodecKind> peeked = PeekCodecKind(message);
  FUZZ_CHECK(peeked.ok() && *peeked == kind,
             absl::StrCat(CodecKindName(kind), " decoded, but PeekCodecKind says ",
                          peeked.ok() ? CodecKindName(*peeked) : peeked.status().ToString()));
  const std::string reencoded = encode(*decoded);
  FUZZ_CHECK(reencoded == message, absl::StrCat("non-canonical ", CodecKindName(kind), "\n  input:     ", Hex(message),
                                                "\n  reencoded: ", Hex(reencoded), "\nvalue:\n", Describe(*decoded)));
  absl::StatusOr<Value> again = decode(reencoded);
  FUZZ_CHECK(again.ok(), absl::StrCat("re-encoded ", CodecKindName(kind), " does not decode: ",
                                      again.status().ToString()));
  FUZZ_CHECK(*again == *decoded, absl::StrCat(CodecKindName(kind), " changed in a round trip\nbefore:\n",
                                               Describe(*decoded), "\nafter:\n", Describe(*again)));
}

void FuzzOneKind(CodecKind kind, absl::string_view message) {
  switch (kind) {
    case CodecKind::kSavePlan:
      return CheckRoundTrip<SavePlan>(message, kind, DecodeSavePlan, EncodeSavePlan);
    case CodecKind::kLoadPlan:
      return CheckRoundTrip<LoadPlan>(message, kind, DecodeLoadPlan, EncodeLoadPlan);
    case CodecKind::kMetadata:
      return CheckRoundTrip<Metadata>(message, kind, DecodeMetadata, EncodeMetadata);
    case CodecKind::kSavePlanList:
      return CheckRoundTrip<std::vector<SavePlan>>(message, kind, DecodeSavePlans, [](const auto& plans) {
        return EncodeSavePlans(plans);
      });
    case CodecKind::kLoadPlanList:
      return CheckRoundTrip<std::vector<LoadPlan>>(message, kind, DecodeLoadPlans, [](const auto& plans) {
        return EncodeLoadPlans(plans);
      });
  }
}

constexpr CodecKind kKinds[] = {CodecKind::kSavePlan, CodecKind::kLoadPlan, CodecKind::kMetadata,
                                CodecKind::kSavePlanList, CodecKind::kLoadPlanList};

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dcplan::fuzzing::kKinds;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const absl::string_view message(reinterpret_cast<const char*>(data + 1), size - 1);
  if (selector < std::size(kKinds)) {
    dcplan::fuzzing::FuzzOneKind(kKinds[selector], message);
  } else {
    for (dcplan::CodecKind kind : kKinds) dcplan::fuzzing::FuzzOneKind(kind, message);
  }
  return 0;
}
