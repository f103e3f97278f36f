#include "api/stream_transforms.h"

#include <zstd.h>

#include <memory>
#include <optional>
#include <variant>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/box.h"
#include "engine/dtype.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

constexpr absl::string_view kZstdName = "stream.zstd";
constexpr int64_t kArchiveSlack = int64_t{1} << 20;
constexpr int64_t kBytesItemLimit = int64_t{1} << 30;

struct DStreamDeleter {
  void operator()(ZSTD_DStream* stream) const { ZSTD_freeDStream(stream); }
};

// Every frame of `stored`, concatenated, bounded by `limit`.
absl::StatusOr<std::string> DecodeZstd(absl::string_view stored, int64_t limit) {
  std::unique_ptr<ZSTD_DStream, DStreamDeleter> stream(ZSTD_createDStream());
  if (stream == nullptr) return absl::ResourceExhaustedError("zstd: cannot create a decoder");
  std::string out;
  std::string block(ZSTD_DStreamOutSize(), '\0');
  ZSTD_inBuffer in{stored.data(), stored.size(), 0};
  size_t pending = 1;  // non-zero while a frame is incomplete
  while (in.pos < in.size) {
    ZSTD_outBuffer block_out{block.data(), block.size(), 0};
    pending = ZSTD_decompressStream(stream.get(), &block_out, &in);
    if (ZSTD_isError(pending)) {
      return absl::DataLossError(absl::StrCat("zstd: corrupt stream at byte ", in.pos, ": ",
                                              ZSTD_getErrorName(pending)));
    }
    if (static_cast<int64_t>(out.size() + block_out.pos) > limit) {
      return absl::DataLossError(absl::StrCat("zstd: decodes to more than ", limit, " bytes"));
    }
    out.append(block.data(), block_out.pos);
    if (block_out.pos == 0 && in.pos == in.size) break;
  }
  // Flush what the decoder still holds once the input is consumed.
  while (pending != 0) {
    ZSTD_outBuffer block_out{block.data(), block.size(), 0};
    pending = ZSTD_decompressStream(stream.get(), &block_out, &in);
    if (ZSTD_isError(pending)) return absl::DataLossError(absl::StrCat("zstd: ", ZSTD_getErrorName(pending)));
    if (block_out.pos == 0 && pending != 0) {
      return absl::DataLossError(absl::StrCat("zstd: the stream ends inside a frame (", stored.size(), " bytes)"));
    }
    if (static_cast<int64_t>(out.size() + block_out.pos) > limit) {
      return absl::DataLossError(absl::StrCat("zstd: decodes to more than ", limit, " bytes"));
    }
    out.append(block.data(), block_out.pos);
  }
  return out;
}

absl::StatusOr<std::string> UndoOne(absl::string_view descriptor, absl::string_view stored, int64_t limit) {
  const std::pair<absl::string_view, absl::string_view> name_version = absl::StrSplit(descriptor, '/');
  if (name_version.first == kZstdName &&
      (name_version.second == "1" || absl::StartsWith(name_version.second, "1."))) {
    return DecodeZstd(stored, limit);
  }
  return absl::UnimplementedError(absl::StrCat("stream transform '", descriptor, "' is not supported (dcplan reads ",
                                               kZstdName, "/1)"));
}

}  // namespace

absl::StatusOr<std::string> UndoStreamTransforms(const std::vector<std::string>& descriptors,
                                                 absl::string_view stored, int64_t max_decoded_bytes) {
  std::string current(stored);
  // The last descriptor is the outermost encoding: undo it first.
  for (auto it = descriptors.rbegin(); it != descriptors.rend(); ++it) {
    absl::StatusOr<std::string> decoded = UndoOne(*it, current, max_decoded_bytes);
    if (!decoded.ok()) return decoded.status();
    current = *std::move(decoded);
  }
  return current;
}

int64_t MaxDecodedItemBytes(const Metadata& metadata, const MetadataIndex& index) {
  const StorageMetadata* entry = metadata.state_dict_metadata.Find(index.fqn);
  const auto* tensor = entry != nullptr ? std::get_if<TensorStorageMetadata>(entry) : nullptr;
  if (tensor == nullptr || !index.offset) return kBytesItemLimit + kArchiveSlack;
  for (const ChunkBox& box : tensor->chunks) {
    if (box.offsets != *index.offset) continue;
    absl::StatusOr<int64_t> volume = Volume(box);
    std::optional<int64_t> bytes;
    if (volume.ok()) bytes = internal::CheckedMul(*volume, ElementSize(tensor->properties.dtype));
    if (!bytes || *bytes > kBytesItemLimit) break;
    return *bytes + kArchiveSlack;
  }
  return kBytesItemLimit + kArchiveSlack;
}

}  // namespace dcplan
