// UndoStreamTransforms: zstd frames as PyTorch's ZStandard extension writes
// them (one frame, content size unknown), concatenated frames, the order of
// several transforms, and every refusal.
#include "api/stream_transforms.h"

#include <zstd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dcplan {
namespace {

// A zstd frame of `data` written as a stream (no content size in the header,
// like zstandard's stream_writer).
std::string ZstdStreamFrame(const std::string& data) {
  ZSTD_CStream* stream = ZSTD_createCStream();
  ZSTD_initCStream(stream, 3);
  std::string out(ZSTD_compressBound(data.size()) + 64, '\0');
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  ZSTD_inBuffer input{data.data(), data.size(), 0};
  ZSTD_compressStream(stream, &output, &input);
  while (ZSTD_endStream(stream, &output) != 0) {
  }
  ZSTD_freeCStream(stream);
  out.resize(output.pos);
  return out;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 300) & 0xff);
  return s;
}

const std::vector<std::string> kZstd = {"stream.zstd/1"};

TEST(StreamTransformsTest, DecodesAStreamFrameOfAnySize) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{700000}}) {
    const std::string data = Pattern(n);
    absl::StatusOr<std::string> decoded = UndoStreamTransforms(kZstd, ZstdStreamFrame(data), 1 << 20);
    ASSERT_TRUE(decoded.ok()) << n << ": " << decoded.status();
    EXPECT_EQ(*decoded, data) << n;
  }
}

TEST(StreamTransformsTest, NoDescriptorsIsTheIdentityAndMinorVersionsAreRead) {
  EXPECT_EQ(*UndoStreamTransforms({}, "abc", 10), "abc");
  EXPECT_EQ(*UndoStreamTransforms({"stream.zstd/1.2"}, ZstdStreamFrame("xyz"), 10), "xyz");
}

TEST(StreamTransformsTest, ConcatenatedFramesAndTwoTransformsOutermostLast) {
  const std::string two_frames = ZstdStreamFrame("first ") + ZstdStreamFrame("second");
  EXPECT_EQ(*UndoStreamTransforms(kZstd, two_frames, 100), "first second");
  const std::string twice = ZstdStreamFrame(ZstdStreamFrame("inner"));
  EXPECT_EQ(*UndoStreamTransforms({"stream.zstd/1", "stream.zstd/1"}, twice, 100), "inner");
}

TEST(StreamTransformsTest, RefusesUnknownTransformsAndVersions) {
  for (const std::string& descriptor : std::vector<std::string>{"stream.zstd/2", "stream.lz4/1", "stream.zstd"}) {
    absl::StatusOr<std::string> decoded = UndoStreamTransforms({descriptor}, "x", 10);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kUnimplemented) << descriptor;
    EXPECT_NE(decoded.status().message().find("'" + descriptor + "'"), std::string::npos) << decoded.status();
  }
}

TEST(StreamTransformsTest, DamagedFramesAreDataLoss) {
  const std::string frame = ZstdStreamFrame(Pattern(5000));
  absl::StatusOr<std::string> truncated = UndoStreamTransforms(kZstd, frame.substr(0, frame.size() - 5), 1 << 20);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss) << truncated.status();
  EXPECT_EQ(UndoStreamTransforms(kZstd, "not zstd at all", 1 << 20).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(UndoStreamTransforms(kZstd, frame + "tail", 1 << 20).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StreamTransformsTest, OutputIsBounded) {
  // 8 MiB of zeros compress to a few hundred bytes; the bound stops the decoder.
  const std::string bomb = ZstdStreamFrame(std::string(8 << 20, '\0'));
  absl::StatusOr<std::string> decoded = UndoStreamTransforms(kZstd, bomb, 1 << 20);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("more than 1048576 bytes"), std::string::npos) << decoded.status();
}

TEST(StreamTransformsTest, BoundIsTheChunkBytesPlusTheArchive) {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign(
      "w", TensorStorageMetadata{TensorProperties{}, {8, 4}, {{{0, 0}, {2, 4}}, {{2, 0}, {6, 4}}}});
  m.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  constexpr int64_t kMiB = int64_t{1} << 20;
  EXPECT_EQ(MaxDecodedItemBytes(m, MetadataIndex{"w", Shape{2, 0}, std::nullopt}), 6 * 4 * 4 + kMiB);
  EXPECT_EQ(MaxDecodedItemBytes(m, MetadataIndex{"step", std::nullopt, std::nullopt}), (kMiB << 10) + kMiB);
  EXPECT_EQ(MaxDecodedItemBytes(m, MetadataIndex{"w", Shape{1, 0}, std::nullopt}), (kMiB << 10) + kMiB);
  EXPECT_EQ(MaxDecodedItemBytes(m, MetadataIndex{"gone", Shape{0}, std::nullopt}), (kMiB << 10) + kMiB);
}

}  // namespace
}  // namespace dcplan
