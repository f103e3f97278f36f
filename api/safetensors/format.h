#ifndef DCPLAN_API_SAFETENSORS_FORMAT_H_
#define DCPLAN_API_SAFETENSORS_FORMAT_H_

// The Hugging Face safetensors format, bytes only (no LibTorch, no files):
// one file's header and a multi-file checkpoint's index, parsed and written.
//
// A file: an unsigned 64-bit little-endian header length N, N bytes of JSON
//   {NAME: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//    "__metadata__": {str: str}}
// padded with spaces so the data starts 8-byte aligned, then the data buffer.
// Offsets are relative to the buffer; the tensors, in offset order, cover it
// with no gap and no overlap.
//
// Budget: the parsers hold nothing larger than the bytes they are given. A
// header is refused before it is read when its length exceeds
// kMaxHeaderBytes or the file; JSON nesting deeper than the format uses is
// refused; counts (shapes, offsets) are checked against the bytes present
// and never used to size an allocation. Every error names the file, and the
// tensor where there is one.

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/box.h"
#include "engine/dtype.h"

namespace dcplan::safetensors {

// Readers (the Rust reference included) refuse headers above 100 MB.
inline constexpr int64_t kMaxHeaderBytes = 100'000'000;
inline constexpr int64_t kHeaderLengthBytes = 8;
inline constexpr char kMetadataKey[] = "__metadata__";
inline constexpr char kSingleFileName[] = "model.safetensors";
inline constexpr char kIndexFileName[] = "model.safetensors.index.json";

// "F32" <-> DType::kFloat32. Names: F64 F32 F16 BF16 I64 I32 I16 I8 U8 U16 U32
// U64 BOOL F8_E4M3 F8_E5M2 F8_E4M3FNUZ F8_E5M2FNUZ C64. Unknown names and
// dtypes safetensors cannot hold (complex32/128, quantized) are errors.
absl::StatusOr<DType> DTypeFromName(absl::string_view name);
absl::StatusOr<std::string> NameOfDType(DType dtype);

// One tensor of a file. `begin`/`end` are relative to the data buffer.
struct TensorEntry {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  int64_t begin = 0;
  int64_t end = 0;

  int64_t bytes() const { return end - begin; }
  friend bool operator==(const TensorEntry& a, const TensorEntry& b) {
    return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.begin == b.begin && a.end == b.end;
  }
  friend bool operator!=(const TensorEntry& a, const TensorEntry& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const TensorEntry& t);
};

// A parsed header: tensors in offset order, and where the data buffer starts
// in the file (8 + N).
struct Header {
  std::vector<TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
  int64_t data_start = 0;

  friend bool operator==(const Header& a, const Header& b) {
    return a.tensors == b.tensors && a.metadata == b.metadata && a.data_start == b.data_start;
  }
  friend bool operator!=(const Header& a, const Header& b) { return !(a == b); }
};

// N from a file's first 8 bytes. Errors: fewer than 8 bytes, N above
// kMaxHeaderBytes, 8 + N beyond `file_size`.
absl::StatusOr<int64_t> ParseHeaderLength(absl::string_view first_bytes, int64_t file_size,
                                          absl::string_view file);

// The header JSON (N bytes) of a file whose data buffer holds `data_bytes`.
// Errors: invalid JSON, not an object, nesting deeper than the format's,
// duplicate names, an unknown dtype, a shape that is not a list of
// non-negative integers, data_offsets not [begin, end] with begin <= end,
// end - begin != element size x shape (overflow-checked), offsets that
// leave a gap, overlap, or do not end at `data_bytes`, __metadata__ that is
// not {str: str}.
absl::StatusOr<Header> ParseHeaderJson(absl::string_view json, int64_t data_bytes, absl::string_view file);

// Both steps over a whole file held in memory (tests, fuzzing).
absl::StatusOr<Header> ParseFileBytes(absl::string_view bytes, absl::string_view file);

// The bytes a file starts with: the 8-byte length, the compact JSON
// (__metadata__ first, then the tensors in the given order) padded with
// spaces to a multiple of 8. `tensors` must be in offset order.
std::string SerializeHeader(const std::vector<TensorEntry>& tensors,
                            const std::map<std::string, std::string>& metadata);

// model.safetensors.index.json.
struct Index {
  std::optional<int64_t> total_size;
  std::map<std::string, std::string> weight_map;  // tensor name -> file name

  friend bool operator==(const Index& a, const Index& b) {
    return a.total_size == b.total_size && a.weight_map == b.weight_map;
  }
  friend bool operator!=(const Index& a, const Index& b) { return !(a == b); }
};

// Errors: invalid JSON, no "weight_map" object, a file name that is not a
// plain name inside the directory (empty, ".", "..", or holding '/'), a
// non-string file, duplicate names, total_size that is not a non-negative
// integer. Other "metadata" entries are ignored.
absl::StatusOr<Index> ParseIndexJson(absl::string_view json, absl::string_view file);

// {"metadata": {"total_size": N}, "weight_map": {...}} (sorted names),
// indented like Hugging Face's.
std::string SerializeIndex(const Index& index);

// Whether `name` may name a file of the checkpoint's directory.
bool IsPlainFileName(absl::string_view name);

}  // namespace dcplan::safetensors

#endif  // DCPLAN_API_SAFETENSORS_FORMAT_H_
