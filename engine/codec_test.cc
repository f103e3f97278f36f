// Tests of the binary codec: exact bytes of small messages (hand-encoded from
// the layout documented in codec.h / codec.cc), round trips of every field
// combination, and robustness against truncated, corrupted and hostile input.
#include "engine/codec.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Header of a version-1 message of `kind`.
std::string Header(CodecKind kind) { return std::string("DCPB\x01", 5) + static_cast<char>(kind); }

std::string Varint(uint64_t v) {
  std::string out;
  do {
    out.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
    v >>= 7;
  } while (v != 0);
  return out;
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

WriteItem Shard(std::string fqn, Shape offsets, Shape chunk_sizes, Shape size, DType dtype = DType::kBFloat16) {
  return WriteItem{
      MetadataIndex{std::move(fqn), offsets, std::nullopt}, WriteItemType::kShard, std::nullopt,
      TensorWriteData{ChunkBox{offsets, std::move(chunk_sizes)}, TensorProperties{dtype}, std::move(size)}};
}

// Every optional field of a WriteItem on or off, every type, chunk offsets
// equal to or different from the index offset.
std::vector<WriteItem> AllWriteItemShapes() {
  std::vector<WriteItem> items;
  const WriteItemType types[] = {WriteItemType::kTensor, WriteItemType::kShard, WriteItemType::kByteIO};
  for (WriteItemType type : types) {
    for (int mask = 0; mask < 32; ++mask) {
      WriteItem item;
      item.type = type;
      item.index.fqn = absl::StrCat("t", mask);
      if (mask & 1) item.index.offset = Shape{mask, -mask};
      if (mask & 2) item.index.index = mask - 7;
      if (mask & 4) item.bytes_io_nbytes = mask * 1000;
      if (mask & 8) {
        TensorProperties props{static_cast<DType>(mask % kNumDTypes), Layout::kSparseCsr, true,
                               MemoryFormat::kChannelsLast, (mask & 16) != 0};
        Shape chunk_offsets = (mask & 16) && item.index.offset ? *item.index.offset : Shape{7, 7};
        item.tensor_data = TensorWriteData{ChunkBox{chunk_offsets, {1, 2}}, props, {mask + 10, 20}};
      }
      items.push_back(item);
    }
  }
  return items;
}

SavePlan RichSavePlan() {
  SavePlan plan;
  // Each flag combination once, with a varying type (all types and flag
  // combinations together are covered by the round-trip test below).
  const std::vector<WriteItem> shapes = AllWriteItemShapes();
  for (int mask = 0; mask < 32; ++mask) plan.items.push_back(shapes[(mask % 3) * 32 + mask]);
  // A 0-d tensor: empty offsets are not absent offsets.
  plan.items.push_back(WriteItem{MetadataIndex{"scalar", Shape{}, 0}, WriteItemType::kTensor, std::nullopt,
                                 TensorWriteData{ChunkBox{{}, {}}, TensorProperties{DType::kFloat64}, Shape{}}});
  plan.items.push_back(
      WriteItem{MetadataIndex{"step", std::nullopt, std::nullopt}, WriteItemType::kByteIO, 0, std::nullopt});
  // Extremes, negative offsets and a malformed box (ranks differ): the codec
  // carries values, it does not validate them.
  plan.items.push_back(WriteItem{
      MetadataIndex{"extreme", Shape{kMin, kMax, -1, 0}, kMin}, WriteItemType::kShard, kMax,
      TensorWriteData{ChunkBox{{kMax, kMin}, {kMin, kMax, -5}},
                      TensorProperties{DType::kQUInt2x4, Layout::kMkldnn, true, MemoryFormat::kPreserve, true},
                      Shape{kMax, kMin}}});
  plan.items.push_back(Shard("模型.层.0.权重", {0, 0}, {2, 2}, {4, 2}));
  plan.items.push_back(Shard("模型.层.0.权重", {2, 0}, {2, 2}, {4, 2}));
  plan.items.push_back(Shard(std::string("nul\0inside", 10), {0}, {3}, {3}));
  plan.items.push_back(Shard("", {0}, {1}, {1}));
  plan.items.push_back(Shard(std::string(300, 'L'), {0}, {1}, {2}));  // too long to intern
  plan.items.push_back(Shard(std::string(300, 'L'), {1}, {1}, {2}));
  plan.storage_data = std::string("\x80\x03prefix\xff", 10);
  plan.planner_data = FlattenMapping{
      {"模型.层.0.权重", {std::string("模型"), std::string("层"), int64_t{0}, std::string("权重")}},
      {"opt.state.3", {std::string("opt"), std::string("state"), int64_t{3}}},
      {"neg", {int64_t{kMin}, int64_t{-1}, int64_t{kMax}}},
      {"empty_path", {}},
      {"", {std::string("")}},
  };
  plan.usable = false;
  return plan;
}

LoadPlan RichLoadPlan() {
  LoadPlan plan;
  for (int mask = 0; mask < 16; ++mask) {
    ReadItem item;
    item.type = mask & 1 ? LoadItemType::kByteIO : LoadItemType::kTensor;
    item.dest_index = MetadataIndex{absl::StrCat("dest", mask / 4), Shape{mask, 0},
                                    mask & 2 ? std::optional<int64_t>(mask) : std::nullopt};
    // Same fqn or not; offsets present or absent; hints on or off.
    item.storage_index = MetadataIndex{mask & 4 ? item.dest_index.fqn : "other",
                                       mask & 8 ? std::optional<Shape>(Shape{-mask}) : std::nullopt,
                                       mask & 8 ? std::optional<int64_t>(kMin) : std::nullopt};
    item.dest_offsets = {mask, 1};
    item.storage_offsets = {0, kMax};
    item.lengths = {kMin, 2};
    plan.items.push_back(item);
  }
  plan.items.push_back(ReadItem{
      LoadItemType::kTensor, MetadataIndex{"s", Shape{}, std::nullopt}, {}, MetadataIndex{"s", Shape{}, 0}, {}, {}});
  plan.storage_data = "";
  plan.planner_data = FlattenMapping{{"dest0", {std::string("dest0")}}, {"x.1", {std::string("x"), int64_t{1}}}};
  return plan;
}

Metadata RichMetadata() {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign(
      "w", TensorStorageMetadata{
               TensorProperties{DType::kBFloat16}, {8, 4}, {ChunkBox{{0, 0}, {4, 4}}, ChunkBox{{4, 0}, {4, 4}}}});
  m.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  m.state_dict_metadata.InsertOrAssign("scalar", TensorStorageMetadata{TensorProperties{}, {}, {ChunkBox{}}});
  m.state_dict_metadata.InsertOrAssign(
      "odd", TensorStorageMetadata{
                 TensorProperties{DType::kBool, Layout::kSparseBsc, false, MemoryFormat::kPreserve, true}, {kMax}, {}});
  m.state_dict_metadata.InsertOrAssign("a", BytesStorageMetadata{});  // order is not sorted
  m.planner_data = FlattenMapping{{"w", {std::string("w")}}, {"step", {std::string("step")}}};
  StorageData storage;
  storage.InsertOrAssign(MetadataIndex{"w", Shape{0, 0}, 0}, StorageInfo{"__0_0.distcp", 0, 32, std::nullopt});
  storage.InsertOrAssign(MetadataIndex{"w", Shape{4, 0}, 1},
                         StorageInfo{"__1_0.distcp", 0, 32, std::vector<std::string>{}});
  storage.InsertOrAssign(MetadataIndex{"step", std::nullopt, std::nullopt},
                         StorageInfo{"__0_0.distcp", 32, 5, std::vector<std::string>{"zstd", "crc"}});
  storage.InsertOrAssign(MetadataIndex{"scalar", Shape{}, kMax}, StorageInfo{"__0_0.distcp", kMin, kMax, std::nullopt});
  m.storage_data = storage;
  m.storage_meta = StorageMeta{"/ckpt/step_10", "save-uuid", std::nullopt, {"model", "optim"}};
  m.version = "1.0.0";
  return m;
}

// A small plan of rank `rank` whose fqns other ranks' plans share.
SavePlan SmallSavePlan(int rank) {
  SavePlan plan;
  plan.items.push_back(Shard("layers.0.w", {4 * rank, 0}, {4, 8}, {16, 8}));
  plan.items.push_back(Shard("layers.1.w", {4 * rank}, {4}, {16}, DType::kFloat32));
  plan.storage_data = absl::StrCat("__", rank, "_");
  plan.planner_data = FlattenMapping{{"layers.0.w", {std::string("layers"), int64_t{0}, std::string("w")}},
                                     {"layers.1.w", {std::string("layers"), int64_t{1}, std::string("w")}}};
  return plan;
}

// --- Exact bytes --------------------------------------------------------------------

TEST(CodecBytesTest, EmptyValues) {
  EXPECT_EQ(EncodeSavePlan(SavePlan{}), Header(CodecKind::kSavePlan) + Bytes({0, 0, 0}));
  EXPECT_EQ(EncodeLoadPlan(LoadPlan{}), Header(CodecKind::kLoadPlan) + Bytes({0, 0, 0}));
  // flags 0, no state dict entries.
  EXPECT_EQ(EncodeMetadata(Metadata{}), Header(CodecKind::kMetadata) + Bytes({0, 0, 0}));
  EXPECT_EQ(EncodeSavePlans({}), Header(CodecKind::kSavePlanList) + Bytes({0, 0}));
  EXPECT_EQ(EncodeLoadPlans({}), Header(CodecKind::kLoadPlanList) + Bytes({0, 0}));
}

TEST(CodecBytesTest, OneShardItem) {
  SavePlan plan;
  plan.items.push_back(Shard("w", {4, 0}, {4, 4}, {8, 4}));
  const std::string expected =
      Header(CodecKind::kSavePlan) + Bytes({0,             // no interned strings ("w" is used once)
                                            0,             // flags: usable, no storage_data, no planner_data
                                            1,             // one item
                                            2 | 8 | 16,    // SHARD, tensor data, chunk offsets = index offset
                                            1, 'w',        // inline string of 1 byte
                                            (2 + 1) << 1,  // offset of rank 2, no hint
                                            8, 0,          // zigzag(4), zigzag(0)
                                            3,             // bfloat16, strided, contiguous, no flags
                                            2, 16, 8,      // size [8, 4]
                                            2, 8, 8});     // chunk sizes [4, 4]
  EXPECT_EQ(EncodeSavePlan(plan), expected);
  EXPECT_EQ(*DecodeSavePlan(expected), plan);
}

TEST(CodecBytesTest, RepeatedStringsAreInternedUpToTheLimit) {
  auto two_bytes_items = [](const std::string& fqn) {
    SavePlan plan;
    for (int i = 0; i < 2; ++i) {
      plan.items.push_back(WriteItem{MetadataIndex{fqn, std::nullopt, std::nullopt}, WriteItemType::kByteIO,
                                     std::nullopt, std::nullopt});
    }
    return plan;
  };
  const std::string at_limit(kCodecMaxInternedBytes, 'x');
  // Table of one 256-byte string (2-byte length), then two items
  // {BYTE_IO flags, reference 0, no offset}.
  EXPECT_EQ(EncodeSavePlan(two_bytes_items(at_limit)),
            Header(CodecKind::kSavePlan) + Bytes({1}) + Varint(256) + at_limit + Bytes({0, 2, 3, 0, 0, 3, 0, 0}));
  const std::string over_limit(kCodecMaxInternedBytes + 1, 'x');
  const std::string inline_item = Bytes({3}) + Varint(257) + over_limit + Bytes({0});
  EXPECT_EQ(EncodeSavePlan(two_bytes_items(over_limit)),
            Header(CodecKind::kSavePlan) + Bytes({0, 0, 2}) + inline_item + inline_item);
}

TEST(CodecBytesTest, ReadItemSharesTheDestFqn) {
  LoadPlan plan;
  plan.items.push_back(ReadItem{LoadItemType::kByteIO,
                                MetadataIndex{"b", std::nullopt, std::nullopt},
                                {0},
                                MetadataIndex{"b", std::nullopt, 5},
                                {0},
                                {0}});
  EXPECT_EQ(EncodeLoadPlan(plan), Header(CodecKind::kLoadPlan) + Bytes({0, 0, 1,
                                                                        1 | 2,      // BYTE_IO, storage fqn = dest fqn
                                                                        1, 'b', 0,  // dest index
                                                                        1, 0,       // dest offsets (0,)
                                                                        1, 10,      // storage index: hint 5 (zigzag 10)
                                                                        1, 0, 1, 0}));
}

// --- Round trips ------------------------------------------------------------------

TEST(CodecRoundTripTest, RichValues) {
  const SavePlan save = RichSavePlan();
  EXPECT_EQ(*DecodeSavePlan(EncodeSavePlan(save)), save);
  const LoadPlan load = RichLoadPlan();
  EXPECT_EQ(*DecodeLoadPlan(EncodeLoadPlan(load)), load);
  const Metadata metadata = RichMetadata();
  EXPECT_EQ(*DecodeMetadata(EncodeMetadata(metadata)), metadata);
  const std::vector<SavePlan> saves = {save, SavePlan{}, RichSavePlan()};
  EXPECT_EQ(*DecodeSavePlans(EncodeSavePlans(saves)), saves);
  const std::vector<LoadPlan> loads = {LoadPlan{}, load};
  EXPECT_EQ(*DecodeLoadPlans(EncodeLoadPlans(loads)), loads);
}

TEST(CodecRoundTripTest, EveryWriteItemFieldCombinationAlone) {
  for (const WriteItem& item : AllWriteItemShapes()) {
    SavePlan plan;
    plan.items = {item};
    absl::StatusOr<SavePlan> decoded = DecodeSavePlan(EncodeSavePlan(plan));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, plan) << ToString(item);
  }
}

TEST(CodecRoundTripTest, EveryPlanAndMetadataFlagCombination) {
  for (int mask = 0; mask < 8; ++mask) {
    SavePlan save;
    if (mask & 1) save.storage_data = "p";
    if (mask & 2) save.planner_data = FlattenMapping{{"k", {int64_t{1}}}};
    save.usable = (mask & 4) == 0;
    EXPECT_EQ(*DecodeSavePlan(EncodeSavePlan(save)), save) << mask;
    LoadPlan load;
    if (mask & 1) load.storage_data = "";
    if (mask & 2) load.planner_data = FlattenMapping{};
    EXPECT_EQ(*DecodeLoadPlan(EncodeLoadPlan(load)), load) << mask;
  }
  for (int mask = 0; mask < 16; ++mask) {
    Metadata m;
    if (mask & 1) m.planner_data = FlattenMapping{};
    if (mask & 2) m.storage_data = StorageData{};
    if (mask & 4) m.storage_meta = StorageMeta{};
    if (mask & 8) m.version = "";
    EXPECT_EQ(*DecodeMetadata(EncodeMetadata(m)), m) << mask;
  }
  for (int mask = 0; mask < 8; ++mask) {
    Metadata m;
    m.storage_meta.emplace();
    if (mask & 1) m.storage_meta->checkpoint_id = "c";
    if (mask & 2) m.storage_meta->save_id = "s";
    if (mask & 4) m.storage_meta->load_id = "l";
    EXPECT_EQ(*DecodeMetadata(EncodeMetadata(m)), m) << mask;
  }
}

// Counts are bounded by the remaining bytes over each element's smallest
// encoding; elements of exactly that size ending the message must still fit.
TEST(CodecRoundTripTest, SmallestElementsAtTheEnd) {
  Metadata m;
  m.storage_data.emplace().InsertOrAssign(MetadataIndex{"s", std::nullopt, std::nullopt},
                                          StorageInfo{"", 0, 0, std::vector<std::string>{"", ""}});
  const std::string bytes = EncodeMetadata(m);
  // ... 3 (two transforms), then two 1-byte references to the interned "".
  EXPECT_EQ(bytes.substr(bytes.size() - 3), Bytes({3, 0, 0}));
  EXPECT_EQ(*DecodeMetadata(bytes), m);
  SavePlan save;  // Three 3-byte items referring to one interned fqn.
  save.items.assign(
      3, WriteItem{MetadataIndex{"b", std::nullopt, std::nullopt}, WriteItemType::kByteIO, std::nullopt, std::nullopt});
  EXPECT_EQ(EncodeSavePlan(save), Header(CodecKind::kSavePlan) + Bytes({1, 1, 'b', 0, 3, 3, 0, 0, 3, 0, 0, 3, 0, 0}));
  EXPECT_EQ(*DecodeSavePlan(EncodeSavePlan(save)), save);
  LoadPlan load;  // Two 7-byte items.
  load.items.assign(2, ReadItem{LoadItemType::kTensor,
                                MetadataIndex{"b", std::nullopt, std::nullopt},
                                {},
                                MetadataIndex{"b", std::nullopt, std::nullopt},
                                {},
                                {}});
  EXPECT_EQ(EncodeLoadPlan(load),
            Header(CodecKind::kLoadPlan) + Bytes({1, 1, 'b', 0, 2, 2, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(*DecodeLoadPlan(EncodeLoadPlan(load)), load);
}

TEST(CodecRoundTripTest, DistinguishesEmptyFromAbsent) {
  auto with_index = [](MetadataIndex index) {
    SavePlan plan;
    plan.items.push_back(WriteItem{std::move(index), WriteItemType::kByteIO, std::nullopt, std::nullopt});
    return plan;
  };
  const SavePlan zero_d = with_index({"s", Shape{}, std::nullopt});
  const SavePlan absent = with_index({"s", std::nullopt, std::nullopt});
  const SavePlan hinted = with_index({"s", std::nullopt, 0});
  EXPECT_NE(EncodeSavePlan(zero_d), EncodeSavePlan(absent));
  EXPECT_NE(EncodeSavePlan(hinted), EncodeSavePlan(absent));
  EXPECT_TRUE(DecodeSavePlan(EncodeSavePlan(zero_d))->items[0].index.offset.has_value());
  EXPECT_FALSE(DecodeSavePlan(EncodeSavePlan(absent))->items[0].index.offset.has_value());
  EXPECT_EQ(DecodeSavePlan(EncodeSavePlan(hinted))->items[0].index.index, 0);
}

TEST(CodecRoundTripTest, EncodingIsCanonical) {
  // Same value, same bytes, regardless of how the value was built.
  EXPECT_EQ(EncodeSavePlan(RichSavePlan()), EncodeSavePlan(RichSavePlan()));
  const std::string bytes = EncodeMetadata(RichMetadata());
  EXPECT_EQ(EncodeMetadata(*DecodeMetadata(bytes)), bytes);
}

// --- Hostile input ----------------------------------------------------------------

struct Sample {
  std::string name;
  std::string bytes;
  // Decodes and, on success, re-encodes.
  std::function<absl::StatusOr<std::string>(absl::string_view)> reencode;
};

template <typename T>
absl::StatusOr<std::string> Reencode(absl::StatusOr<T> decoded, std::string (*encode)(const T&)) {
  if (!decoded.ok()) return decoded.status();
  return encode(*decoded);
}

std::string EncodeSaves(const std::vector<SavePlan>& p) { return EncodeSavePlans(p); }
std::string EncodeLoads(const std::vector<LoadPlan>& p) { return EncodeLoadPlans(p); }

std::vector<Sample> Samples() {
  return {
      {"SavePlan", EncodeSavePlan(RichSavePlan()),
       [](absl::string_view b) { return Reencode(DecodeSavePlan(b), EncodeSavePlan); }},
      {"LoadPlan", EncodeLoadPlan(RichLoadPlan()),
       [](absl::string_view b) { return Reencode(DecodeLoadPlan(b), EncodeLoadPlan); }},
      {"Metadata", EncodeMetadata(RichMetadata()),
       [](absl::string_view b) { return Reencode(DecodeMetadata(b), EncodeMetadata); }},
      {"SavePlans", EncodeSavePlans({SmallSavePlan(0), SavePlan{}, SmallSavePlan(3)}),
       [](absl::string_view b) { return Reencode(DecodeSavePlans(b), EncodeSaves); }},
      {"LoadPlans", EncodeLoadPlans({RichLoadPlan(), LoadPlan{}}),
       [](absl::string_view b) { return Reencode(DecodeLoadPlans(b), EncodeLoads); }},
  };
}

TEST(CodecHostileTest, EveryTruncationIsDataLoss) {
  for (const Sample& sample : Samples()) {
    ASSERT_TRUE(sample.reencode(sample.bytes).ok()) << sample.name;
    for (size_t n = 0; n < sample.bytes.size(); ++n) {
      // A copy, so that ASan sees any read past the prefix.
      const std::string prefix = sample.bytes.substr(0, n);
      absl::StatusOr<std::string> result = sample.reencode(prefix);
      ASSERT_FALSE(result.ok()) << sample.name << " prefix " << n;
      EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
      EXPECT_EQ(result.status().message().substr(0, 17), "codec: truncated ") << result.status();
    }
  }
}

TEST(CodecHostileTest, SingleByteCorruptionsErrorOrDecodeCanonically) {
  for (const Sample& sample : Samples()) {
    for (size_t pos = 0; pos < sample.bytes.size(); ++pos) {
      for (int mask : {0x01, 0x02, 0x40, 0x7f, 0x80, 0xff}) {
        std::string corrupted = sample.bytes;
        corrupted[pos] = static_cast<char>(corrupted[pos] ^ mask);
        absl::StatusOr<std::string> result = sample.reencode(corrupted);
        if (result.ok()) {
          // Whatever the decoder accepts is exactly what the encoder writes.
          EXPECT_EQ(*result, corrupted) << sample.name << " byte " << pos << " ^ " << mask;
        } else {
          EXPECT_EQ(result.status().message().substr(0, 7), "codec: ") << result.status();
        }
      }
    }
  }
}

TEST(CodecHostileTest, RandomMultiByteCorruptionsNeverCrash) {
  std::mt19937_64 rng(20240611);
  for (const Sample& sample : Samples()) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string corrupted = sample.bytes;
      for (int k = 0; k < 4; ++k) corrupted[rng() % corrupted.size()] = static_cast<char>(rng());
      absl::StatusOr<std::string> result = sample.reencode(corrupted);
      if (result.ok()) {
        EXPECT_EQ(*result, corrupted) << sample.name;
      }
    }
  }
}

TEST(CodecHostileTest, HugeCountsAreRejectedBeforeAllocating) {
  const uint64_t huge = uint64_t{1} << 60;
  // String table count, item count, plan count, shape rank, offset rank, string length.
  const std::string save = Header(CodecKind::kSavePlan);
  const std::vector<std::string> messages = {
      save + Varint(huge),
      save + Bytes({0, 0}) + Varint(huge),
      Header(CodecKind::kSavePlanList) + Bytes({0}) + Varint(huge),
      save + Bytes({0, 0, 1, 2 | 8, 1, 'w', 0, 0}) + Varint(huge),
      save + Bytes({0, 0, 1, 3, 1, 'w'}) + Varint((huge + 1) << 1),
      save + Bytes({0, 0, 1, 3}) + Varint(huge),
      Header(CodecKind::kMetadata) + Bytes({0, 0}) + Varint(huge),
  };
  for (const std::string& bytes : messages) {
    absl::StatusOr<SavePlan> save_result = DecodeSavePlan(bytes);
    absl::StatusOr<std::vector<SavePlan>> list_result = DecodeSavePlans(bytes);
    absl::StatusOr<Metadata> metadata_result = DecodeMetadata(bytes);
    EXPECT_FALSE(save_result.ok() || list_result.ok() || metadata_result.ok());
  }
  absl::Status status = DecodeSavePlan(save + Bytes({0, 0}) + Varint(huge)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(),
            "codec: truncated SavePlan at byte 8 while reading item count: count 1152921504606846976 needs at "
            "least 3 bytes each but 0 bytes remain");
}

TEST(CodecHostileTest, MalformedVarints) {
  const std::string prefix = Header(CodecKind::kSavePlan) + Bytes({0});
  auto flags_error = [&](const std::string& flags) { return DecodeSavePlan(prefix + flags + Bytes({0})).status(); };
  EXPECT_EQ(flags_error(Bytes({0x80, 0})).message(),
            "codec: non-minimal varint in SavePlan at byte 7 while reading flags");
  EXPECT_EQ(flags_error(std::string(10, '\xff') + Bytes({1})).message(),
            "codec: varint longer than 10 bytes in SavePlan at byte 7 while reading flags");
  EXPECT_EQ(flags_error(std::string(9, '\xff') + Bytes({2})).message(),
            "codec: varint overflows 64 bits in SavePlan at byte 7 while reading flags");
  EXPECT_EQ(flags_error(std::string(9, '\xff') + Bytes({1})).message(),
            "codec: unknown value 18446744073709551615 in SavePlan at byte 7 while reading flags");
  // The largest varint, INT64_MIN zigzagged, is accepted where a signed value goes.
  SavePlan plan;
  plan.items.push_back(
      WriteItem{MetadataIndex{"n", std::nullopt, std::nullopt}, WriteItemType::kByteIO, kMin, std::nullopt});
  EXPECT_EQ(EncodeSavePlan(plan), prefix + Bytes({0, 1, 3 | 4, 1, 'n', 0}) + std::string(9, '\xff') + Bytes({1}));
}

TEST(CodecHostileTest, HeaderErrors) {
  const std::string load = EncodeLoadPlan(RichLoadPlan());
  absl::Status wrong_kind = DecodeSavePlan(load).status();
  EXPECT_EQ(wrong_kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong_kind.message(), "codec: message holds a LoadPlan in SavePlan at byte 5 while reading header");
  EXPECT_EQ(*PeekCodecKind(load), CodecKind::kLoadPlan);
  EXPECT_FALSE(DecodeLoadPlans(load).ok());

  std::string other_version = load;
  other_version[4] = 2;
  EXPECT_EQ(DecodeLoadPlan(other_version).status().message(),
            "codec: unsupported format version 2 (this build reads 1) in LoadPlan at byte 4 while reading header");
  EXPECT_FALSE(PeekCodecKind(other_version).ok());
  std::string bad_magic = load;
  bad_magic[0] = 'X';
  EXPECT_EQ(DecodeLoadPlan(bad_magic).status().code(), absl::StatusCode::kInvalidArgument);
  std::string unknown_kind = load;
  unknown_kind[5] = 9;
  EXPECT_EQ(DecodeLoadPlan(unknown_kind).status().message(),
            "codec: unknown message kind 9 in LoadPlan at byte 5 while reading header");
  EXPECT_EQ(PeekCodecKind("DCP").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CodecHostileTest, TrailingBytes) {
  for (const Sample& sample : Samples()) {
    absl::StatusOr<std::string> result = sample.reencode(sample.bytes + std::string(1, '\0'));
    ASSERT_FALSE(result.ok()) << sample.name;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find("1 trailing bytes"), absl::string_view::npos) << result.status();
  }
}

TEST(CodecHostileTest, ErrorsNameTheFieldAndTensor) {
  // Two BYTE_IO items "a" and "b": item 1 starts at byte 13, its fqn at 14.
  SavePlan plan;
  for (const char* fqn : {"a", "b"}) {
    plan.items.push_back(
        WriteItem{MetadataIndex{fqn, std::nullopt, std::nullopt}, WriteItemType::kByteIO, std::nullopt, std::nullopt});
  }
  const std::string bytes = EncodeSavePlan(plan);
  ASSERT_EQ(bytes, Header(CodecKind::kSavePlan) + Bytes({0, 0, 2, 3, 1, 'a', 0, 3, 1, 'b', 0}));
  EXPECT_EQ(DecodeSavePlan(bytes.substr(0, 15)).status().message(),
            "codec: truncated SavePlan at byte 14 while reading item 1 index fqn: string of 1 bytes but 0 "
            "bytes remain");
  EXPECT_EQ(DecodeSavePlan(bytes.substr(0, 16)).status().message(),
            "codec: truncated SavePlan at byte 16 while reading item 1 index ('b') offset presence");
  std::string unknown_type = bytes;
  unknown_type[13] = 8;  // tensor data flag, type 0
  EXPECT_EQ(DecodeSavePlan(unknown_type).status().message(),
            "codec: unknown WriteItemType 0 in SavePlan at byte 13 while reading item 1 flags");
}

TEST(CodecHostileTest, UnknownEnumValues) {
  // One TENSOR item "w" with a 0-d offset and tensor data; byte 13 is the properties code.
  // Chunk offsets come from the index offset; size and chunk sizes are empty.
  const std::string prefix = Header(CodecKind::kSavePlan) + Bytes({0, 0, 1, 1 | 8 | 16, 1, 'w', 2});
  auto decode_properties = [&](uint64_t code) {
    return DecodeSavePlan(prefix + Varint(code) + Bytes({0, 0})).status();
  };
  EXPECT_TRUE(decode_properties(kNumDTypes - 1).ok());
  EXPECT_EQ(decode_properties(kNumDTypes).message(),
            "codec: unknown tensor properties code 25 in SavePlan at byte 13 while reading item 0 ('w') properties");
  EXPECT_FALSE(decode_properties(7 << 5).ok());   // layout 7
  EXPECT_FALSE(decode_properties(3 << 8).ok());   // memory format 3
  EXPECT_FALSE(decode_properties(1 << 12).ok());  // unknown flag bit
  EXPECT_TRUE(decode_properties((6 << 5) | (2 << 8) | (3 << 10)).ok());
  // ReadItem flags above 3, LoadPlan flags above 3.
  EXPECT_FALSE(DecodeLoadPlan(Header(CodecKind::kLoadPlan) + Bytes({0, 0, 1, 4, 1, 'x', 0, 0, 0, 0, 0})).ok());
  EXPECT_FALSE(DecodeLoadPlan(Header(CodecKind::kLoadPlan) + Bytes({0, 4, 0})).ok());
}

TEST(CodecHostileTest, NonCanonicalEncodingsAreRejected) {
  const std::string save = Header(CodecKind::kSavePlan);
  auto bytes_item = [](int ref) { return Bytes({3, ref, 0}); };
  auto error = [](const std::string& bytes) { return std::string(DecodeSavePlan(bytes).status().message()); };
  // Baseline: "a" interned and used twice.
  EXPECT_TRUE(DecodeSavePlan(save + Bytes({1, 1, 'a', 0, 2}) + bytes_item(0) + bytes_item(0)).ok());
  // "a" inline twice instead of interned.
  EXPECT_EQ(error(save + Bytes({0, 0, 2, 3, 1, 'a', 0, 3, 1, 'a', 0})),
            "codec: repeated short string written inline, not interned (non-canonical) in SavePlan at byte 14 "
            "while reading item 1 index fqn");
  // Interned but used once.
  EXPECT_EQ(error(save + Bytes({1, 1, 'a', 0, 1}) + bytes_item(0)),
            "codec: string table entry 0 used 1 time(s); only strings used twice or more are interned "
            "(non-canonical) in SavePlan at byte 14");
  // Table entries used out of order, and duplicate entries.
  EXPECT_EQ(
      error(save + Bytes({2, 1, 'a', 1, 'b', 0, 4}) + bytes_item(1) + bytes_item(0) + bytes_item(1) + bytes_item(0)),
      "codec: string table entry 1 used before entry 0 (non-canonical) in SavePlan at byte 14 while "
      "reading item 0 index fqn");
  EXPECT_EQ(
      error(save + Bytes({2, 1, 'a', 1, 'a', 0, 4}) + bytes_item(0) + bytes_item(1) + bytes_item(0) + bytes_item(1)),
      "codec: duplicate interned string in SavePlan at byte 9 while reading string table[1]");
  // An interned string longer than the limit.
  EXPECT_EQ(
      error(save + Bytes({1}) + Varint(257) + std::string(257, 'x') + Bytes({0, 2}) + bytes_item(0) + bytes_item(0)),
      "codec: interned string of 257 bytes (limit 256) in SavePlan at byte 7 while reading string "
      "table[0] length");
  // Chunk offsets [1] written out although equal to the index offset [1].
  EXPECT_EQ(error(save + Bytes({0, 0, 1, 2 | 8, 1, 'w', 4, 2, 3, 1, 0, 1, 2, 1, 0})),
            "codec: chunk offsets equal the index offset but are written out (non-canonical) in SavePlan at "
            "byte 14 while reading item 0 ('w')");
  // Duplicate flatten-mapping keys.
  EXPECT_EQ(error(save + Bytes({1, 1, 'k', 2, 0, 2, 0, 0, 0, 0})),
            "codec: duplicate key in SavePlan at byte 14 while reading planner_data entry 1 key");
}

// --- Size ---------------------------------------------------------------------------

// rank 3 of 8 in an FSDP run: one row-shard per tensor, and the flatten mapping
// fqn -> (fqn,) that the default planner attaches.
TEST(CodecSizeTest, FsdpSavePlanIsCompact) {
  constexpr int kItems = 290;
  SavePlan plan;
  plan.planner_data.emplace();
  for (int i = 0; i < kItems; ++i) {
    std::string fqn = absl::StrCat("model.layers.", 100 + i % 100, ".attn.q_proj.", i / 100);  // 30 chars
    ASSERT_EQ(fqn.size(), 30u);
    const int64_t rows = 8 * (64 + i * 3 % 960), cols = 1024 + i * 7 % 4096;  // both < 8192
    plan.items.push_back(Shard(fqn, {3 * rows / 8, 0}, {rows / 8, cols}, {rows, cols}));
    plan.planner_data->InsertOrAssign(fqn, ObjectPath{fqn});
  }
  const std::string bytes = EncodeSavePlan(plan);
  ASSERT_EQ(*DecodeSavePlan(bytes), plan);
  // Per item, at most: the interned fqn (1 + 30), the WriteItem (flags 1,
  // reference 2, presence 1, two offsets of 2 bytes each, properties 1, size
  // and chunk sizes 1 + 2 * 2 each = 19) and the mapping entry (key 2,
  // length 1, element 2). Values below 8192 zigzag into 2-byte varints.
  // Fixed: header 6, table count 2, plan flags 1, item count 2, mapping count 2.
  const size_t bound = 6 + 2 + 1 + 2 + 2 + kItems * (31 + 19 + 5);
  EXPECT_LE(bytes.size(), bound);
  EXPECT_LT(bytes.size() / static_cast<double>(kItems), 56.0);
}

}  // namespace
}  // namespace dcplan
