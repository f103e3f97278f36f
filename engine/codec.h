#ifndef DCPLAN_ENGINE_CODEC_H_
#define DCPLAN_ENGINE_CODEC_H_

// A compact, versioned binary encoding of plans and metadata, for exchanging
// them between ranks (gather of local plans, scatter of global plans,
// broadcast of the metadata) without pickling.
//
// Every value round-trips exactly: Decode(Encode(x)) == x, including index
// hints, 0-d offsets (an empty Shape) versus absent offsets, the order of
// every OrderedMap, and fields PyTorch never fills. The encoding is also
// canonical: every message the decoder accepts is the one the encoder would
// produce for the decoded value, so Encode(Decode(b)) == b whenever Decode
// succeeds.
//
// Layout of a message (format version 1):
//
//   magic "DCPB" | version (1 byte, = 1) | kind (1 byte, CodecKind)
//   string table: count, then each string as length + bytes
//   body (per kind, see codec.cc)
//
// Integers are LEB128 varints: unsigned ones plainly, signed int64 values
// zigzag-mapped. Varints are minimal (no redundant 0x80 0x00 groups) and at
// most 10 bytes. Every string field is written as one varint `ref` relative to
// the string table of T entries: ref < T names table entry `ref`; ref >= T is
// an inline string of ref - T bytes that follow. The table interns each string
// of at most kCodecMaxInternedBytes bytes that the message uses two or more
// times, in order of first use (plans repeat fqns: an item's index, the
// flatten mapping's key and path, the storage index of a read item).
//
// Decoding treats its input as untrusted: it never reads out of bounds, never
// recurses, and bounds every count by the bytes left to decode before
// reserving, so the decoded value is at most a constant factor larger than
// the input (an interned string of at most kCodecMaxInternedBytes bytes per
// byte of reference). Errors name the message kind, the byte offset of the
// field being read and the path to it ("codec: truncated SavePlan at byte 37
// while reading item 3 ('layers.0.w') offset[1]"):
//   - absl::StatusCode::kDataLoss: the input ends early, or a count or length
//     needs more bytes than remain;
//   - absl::StatusCode::kInvalidArgument: anything else (bad magic, another
//     format version, the wrong kind, an unknown enum value or flag bit, an
//     overlong or overflowing varint, a duplicate map key, a non-canonical
//     string table, trailing bytes).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan {

inline constexpr uint8_t kCodecFormatVersion = 1;
// Longer strings are always written inline (this bounds how much a one-byte
// reference can expand to when decoding).
inline constexpr size_t kCodecMaxInternedBytes = 256;

// The kind byte of a message.
enum class CodecKind : uint8_t {
  kSavePlan = 1,
  kLoadPlan = 2,
  kMetadata = 3,
  kSavePlanList = 4,
  kLoadPlanList = 5,
};

// "SavePlan", "LoadPlan", "Metadata", "SavePlan list", "LoadPlan list".
absl::string_view CodecKindName(CodecKind kind);

// The kind of message `bytes` claims to hold, from its 6-byte header only
// (magic, version and kind are checked; the body is not).
absl::StatusOr<CodecKind> PeekCodecKind(absl::string_view bytes);

std::string EncodeSavePlan(const SavePlan& plan);
absl::StatusOr<SavePlan> DecodeSavePlan(absl::string_view bytes);

std::string EncodeLoadPlan(const LoadPlan& plan);
absl::StatusOr<LoadPlan> DecodeLoadPlan(absl::string_view bytes);

std::string EncodeMetadata(const Metadata& metadata);
absl::StatusOr<Metadata> DecodeMetadata(absl::string_view bytes);

// One rank's plan per element, in rank order; one string table is shared by
// all plans of the message.
std::string EncodeSavePlans(absl::Span<const SavePlan> plans);
absl::StatusOr<std::vector<SavePlan>> DecodeSavePlans(absl::string_view bytes);

std::string EncodeLoadPlans(absl::Span<const LoadPlan> plans);
absl::StatusOr<std::vector<LoadPlan>> DecodeLoadPlans(absl::string_view bytes);

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_CODEC_H_
