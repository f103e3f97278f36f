// Properties of the binary codec (engine/codec.h): exact round trips, a
// canonical encoding, and total decoding of damaged input (truncated or with
// corrupted bytes: an error or a value, never a crash or an out-of-bounds
// read; run under --config=asan to check the latter).

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/codec.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "property_tests/generators.h"

// A decoder that trusted a corrupted count could try to allocate gigabytes.
// Cap that, so it fails as a reported property failure (std::bad_alloc, or
// an ASan allocation-size report) instead of exhausting the shared machine's
// memory. ASan reserves terabytes of address space for its shadow memory, so
// there its own allocation limit is used instead of RLIMIT_AS.
#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() { return "max_allocation_size_mb=2048"; }
#else
namespace {
[[maybe_unused]] const bool kAddressSpaceCapped = [] {
  const rlim_t limit = rlim_t{6} << 30;
  const struct rlimit cap = {limit, limit};
  return setrlimit(RLIMIT_AS, &cap) == 0;
}();
}  // namespace
#endif

namespace dcplan {
namespace proptest {
namespace {

// Metadata's operator== ignores the index hints of storage_data keys
// (MetadataIndex equality); the codec must keep them too.
bool IdenticalStorageKeys(const Metadata& a, const Metadata& b) {
  if (a.storage_data.has_value() != b.storage_data.has_value()) return false;
  if (!a.storage_data) return true;
  if (a.storage_data->size() != b.storage_data->size()) return false;
  for (size_t i = 0; i < a.storage_data->size(); ++i) {
    if (!a.storage_data->at_position(i).first.IdenticalTo(b.storage_data->at_position(i).first)) return false;
  }
  return true;
}

RC_GTEST_PROP(CodecProperty, SavePlanRoundTrips, ()) {
  const SavePlan plan = *GenAnySavePlan();
  const std::string bytes = EncodeSavePlan(plan);
  absl::StatusOr<SavePlan> decoded = DecodeSavePlan(bytes);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == plan);
  RC_ASSERT(EncodeSavePlan(*decoded) == bytes);
}

RC_GTEST_PROP(CodecProperty, LoadPlanRoundTrips, ()) {
  const LoadPlan plan = *GenAnyLoadPlan();
  const std::string bytes = EncodeLoadPlan(plan);
  absl::StatusOr<LoadPlan> decoded = DecodeLoadPlan(bytes);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == plan);
  RC_ASSERT(EncodeLoadPlan(*decoded) == bytes);
}

RC_GTEST_PROP(CodecProperty, MetadataRoundTrips, ()) {
  const Metadata metadata = *GenAnyMetadata();
  const std::string bytes = EncodeMetadata(metadata);
  absl::StatusOr<Metadata> decoded = DecodeMetadata(bytes);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == metadata);
  RC_ASSERT(IdenticalStorageKeys(*decoded, metadata));
  RC_ASSERT(EncodeMetadata(*decoded) == bytes);
}

RC_GTEST_PROP(CodecProperty, PlanListsRoundTrip, ()) {
  const std::vector<SavePlan> save = *rc::gen::resize(20, rc::gen::container<std::vector<SavePlan>>(GenAnySavePlan()));
  const std::string save_bytes = EncodeSavePlans(save);
  absl::StatusOr<std::vector<SavePlan>> save_decoded = DecodeSavePlans(save_bytes);
  RC_ASSERT(save_decoded.ok());
  RC_ASSERT(*save_decoded == save);
  RC_ASSERT(EncodeSavePlans(*save_decoded) == save_bytes);

  const std::vector<LoadPlan> load = *rc::gen::resize(20, rc::gen::container<std::vector<LoadPlan>>(GenAnyLoadPlan()));
  const std::string load_bytes = EncodeLoadPlans(load);
  absl::StatusOr<std::vector<LoadPlan>> load_decoded = DecodeLoadPlans(load_bytes);
  RC_ASSERT(load_decoded.ok());
  RC_ASSERT(*load_decoded == load);
  RC_ASSERT(EncodeLoadPlans(*load_decoded) == load_bytes);
}

// A valid encoding of a random value of a random kind.
struct Encoded {
  CodecKind kind;
  std::string bytes;
};

std::ostream& operator<<(std::ostream& os, const Encoded& e) {
  os << CodecKindName(e.kind) << " message of " << e.bytes.size() << " bytes:";
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char c : e.bytes) os << ' ' << kHex[c >> 4] << kHex[c & 15];
  return os;
}

rc::Gen<Encoded> GenEncoded() {
  return rc::gen::exec([] {
    const CodecKind kind = *rc::gen::element(CodecKind::kSavePlan, CodecKind::kLoadPlan, CodecKind::kMetadata,
                                             CodecKind::kSavePlanList, CodecKind::kLoadPlanList);
    switch (kind) {
      case CodecKind::kSavePlan: return Encoded{kind, EncodeSavePlan(*GenAnySavePlan())};
      case CodecKind::kLoadPlan: return Encoded{kind, EncodeLoadPlan(*GenAnyLoadPlan())};
      case CodecKind::kMetadata: return Encoded{kind, EncodeMetadata(*GenAnyMetadata())};
      case CodecKind::kSavePlanList:
        return Encoded{kind, EncodeSavePlans(*rc::gen::resize(8, rc::gen::container<std::vector<SavePlan>>(
                                                                     GenAnySavePlan())))};
      default:
        return Encoded{kind, EncodeLoadPlans(*rc::gen::resize(8, rc::gen::container<std::vector<LoadPlan>>(
                                                                     GenAnyLoadPlan())))};
    }
  });
}

// Decodes `bytes` as `kind`. Returns the status; on success also checks the
// canonical-encoding promise: the value re-encodes to exactly `bytes`.
absl::Status DecodeAndCheckCanonical(CodecKind kind, const std::string& bytes) {
  switch (kind) {
    case CodecKind::kSavePlan: {
      absl::StatusOr<SavePlan> v = DecodeSavePlan(bytes);
      if (v.ok()) RC_ASSERT(EncodeSavePlan(*v) == bytes);
      return v.status();
    }
    case CodecKind::kLoadPlan: {
      absl::StatusOr<LoadPlan> v = DecodeLoadPlan(bytes);
      if (v.ok()) RC_ASSERT(EncodeLoadPlan(*v) == bytes);
      return v.status();
    }
    case CodecKind::kMetadata: {
      absl::StatusOr<Metadata> v = DecodeMetadata(bytes);
      if (v.ok()) RC_ASSERT(EncodeMetadata(*v) == bytes);
      return v.status();
    }
    case CodecKind::kSavePlanList: {
      absl::StatusOr<std::vector<SavePlan>> v = DecodeSavePlans(bytes);
      if (v.ok()) RC_ASSERT(EncodeSavePlans(*v) == bytes);
      return v.status();
    }
    case CodecKind::kLoadPlanList: {
      absl::StatusOr<std::vector<LoadPlan>> v = DecodeLoadPlans(bytes);
      if (v.ok()) RC_ASSERT(EncodeLoadPlans(*v) == bytes);
      return v.status();
    }
  }
  return absl::InternalError("unknown kind");
}

// Every proper prefix of a valid message is "input ends early".
RC_GTEST_PROP(CodecProperty, TruncationIsDataLoss, ()) {
  const Encoded e = *GenEncoded();
  const size_t cut = *rc::gen::inRange<size_t>(0, e.bytes.size());
  const std::string truncated = e.bytes.substr(0, cut);
  const absl::Status status = DecodeAndCheckCanonical(e.kind, truncated);
  RC_LOG() << "status: " << status.ToString();
  RC_ASSERT(absl::IsDataLoss(status));
}

// At most this many decodes per case in the exhaustive properties below.
constexpr size_t kMaxDecodesPerCase = 200;

size_t Step(size_t size) { return std::max<size_t>(1, size / kMaxDecodesPerCase); }

// Also every prefix (every Step-th on long messages), one after the other.
RC_GTEST_PROP(CodecProperty, EveryTruncationIsAnError, ()) {
  const Encoded e = *rc::gen::resize(30, GenEncoded());
  for (size_t cut = 0; cut < e.bytes.size(); cut += Step(e.bytes.size())) {
    RC_ASSERT(absl::IsDataLoss(DecodeAndCheckCanonical(e.kind, e.bytes.substr(0, cut))));
  }
}

// One to four bytes overwritten: an error, or a value whose encoding is
// exactly the damaged message.
RC_GTEST_PROP(CodecProperty, CorruptionIsAnErrorOrACanonicalValue, ()) {
  const Encoded e = *GenEncoded();
  std::string damaged = e.bytes;
  const int changes = *rc::gen::inRange(1, 5);
  for (int i = 0; i < changes; ++i) {
    const size_t at = *rc::gen::inRange<size_t>(0, damaged.size());
    damaged[at] = static_cast<char>(*rc::gen::arbitrary<uint8_t>());
  }
  const absl::Status status = DecodeAndCheckCanonical(e.kind, damaged);
  RC_CLASSIFY(status.ok(), "decoded");
}

// Every single-byte change (every Step-th on long messages).
RC_GTEST_PROP(CodecProperty, EverySingleByteChangeIsHandled, ()) {
  const Encoded e = *rc::gen::resize(20, GenEncoded());
  const uint8_t delta = *rc::gen::inRange<uint8_t>(1, 255);
  for (size_t at = 0; at < e.bytes.size(); at += Step(e.bytes.size())) {
    std::string damaged = e.bytes;
    damaged[at] = static_cast<char>(static_cast<uint8_t>(damaged[at]) + delta);
    DecodeAndCheckCanonical(e.kind, damaged).IgnoreError();
  }
}

// Each byte of the body (every Step-th on long messages) replaced in turn by
// a long varint (up to 10 bytes, the longest the format allows, and one
// more): counts, lengths and ranks become huge. The decoder must bound them by
// the bytes left before it allocates (no exception, no giant allocation).
RC_GTEST_PROP(CodecProperty, HugeCountsAreHandled, ()) {
  const Encoded e = *rc::gen::resize(30, GenEncoded());
  const int continuation = *rc::gen::inRange(1, 11);
  std::string varint(static_cast<size_t>(continuation), static_cast<char>(0xff));
  varint.push_back(static_cast<char>(*rc::gen::inRange(1, 128)));
  for (size_t at = 6; at < e.bytes.size(); at += Step(e.bytes.size())) {
    const std::string damaged = e.bytes.substr(0, at) + varint + e.bytes.substr(at + 1);
    DecodeAndCheckCanonical(e.kind, damaged).IgnoreError();
  }
}

// Random bytes after a valid header: never a crash.
RC_GTEST_PROP(CodecProperty, ArbitraryBodiesAreHandled, ()) {
  const Encoded e = *GenEncoded();
  const std::string body = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const std::string message = e.bytes.substr(0, 6) + body;
  DecodeAndCheckCanonical(e.kind, message).IgnoreError();
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
