#include "fuzz/codec_near_canonical.h"

#include "engine/codec.h"

namespace dcplan::fuzzing {
namespace {

std::string Header(CodecKind kind) {
  std::string header = "DCPB";
  header.push_back(static_cast<char>(kCodecFormatVersion));
  header.push_back(static_cast<char>(kind));
  return header;
}

constexpr char kByteIoItemFlags = 3;  // type BYTE_IO, no nbytes, no tensor data
constexpr char kNoOffsetNoHint = 0;   // index presence

// A SavePlan (no storage_data, no planner_data) of `count` items.
std::string SavePlanPrefix(const std::string& table, char count) {
  return Header(CodecKind::kSavePlan) + table + std::string{0, count};
}

// A bytes item whose fqn is the string reference `ref` (+ inline bytes).
std::string BytesItemBody(const std::string& fqn_ref) {
  return std::string{kByteIoItemFlags} + fqn_ref + std::string{kNoOffsetNoHint};
}

}  // namespace

std::vector<NearCanonical> NearCanonicalMessages() {
  const std::string no_table(1, 0);
  const std::string inline_a = "\x01" "a";  // ref 0 + 1 with an empty table: one inline byte
  std::vector<NearCanonical> seeds;
  // The item count 0 as a two-byte varint.
  seeds.push_back({"noncanonical_varint", 0, Header(CodecKind::kSavePlan) + no_table + std::string("\x00\x80\x00", 3), "non-minimal varint"});
  // nbytes as a ten-byte varint whose last byte carries bits past 64.
  seeds.push_back({"varint_past_64_bits", 0,
                   SavePlanPrefix(no_table, 1) + std::string{kByteIoItemFlags | 4} + inline_a +
                       std::string{kNoOffsetNoHint} + std::string(9, '\xff') + "\x02", "varint overflows 64 bits"});
  // Table ["a", "b"], both used twice, but "b" (entry 1) used first.
  seeds.push_back({"table_used_out_of_order", 0,
                   SavePlanPrefix("\x02\x01" "a\x01" "b", 4) + BytesItemBody("\x01") + BytesItemBody(std::string(1, 0)) +
                       BytesItemBody("\x01") + BytesItemBody(std::string(1, 0)), "used before entry"});
  // Table ["a"] used once.
  seeds.push_back({"table_entry_used_once", 0,
                   SavePlanPrefix("\x01\x01" "a", 1) + BytesItemBody(std::string(1, 0)), "only strings used twice or more are interned"});
  // "a" written inline twice instead of interned.
  seeds.push_back({"repeated_inline_string", 0,
                   SavePlanPrefix(no_table, 2) + BytesItemBody(inline_a) + BytesItemBody(inline_a), "repeated short string written inline"});
  // A shard whose chunk offsets [0] equal its index offset but are written
  // out (flag 16 unset): flags SHARD | tensor, fqn "w" inline, offset rank 1,
  // offset 0, float32 properties, size [1], chunk offsets [0], sizes [1].
  seeds.push_back({"chunk_offsets_written_out", 0,
                   SavePlanPrefix(no_table, 1) + std::string("\x0a\x01w\x04\x00\x00\x01\x02\x01\x00\x01\x02", 12), "chunk offsets equal the index offset"});
  // A tensor read item whose storage fqn equals its dest fqn but is written
  // out (flag 2 unset); "w" interned since it is used twice.
  seeds.push_back({"storage_fqn_written_out", 1,
                   Header(CodecKind::kLoadPlan) + "\x01\x01w" + std::string("\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00", 10), "storage fqn equals the dest fqn"});
  return seeds;
}

}  // namespace dcplan::fuzzing
