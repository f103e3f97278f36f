#include "api/internal/write_results.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dcplan::internal {
namespace {

constexpr char kMagic[4] = {'D', 'C', 'W', 'R'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kHasOffset = 1;
constexpr uint8_t kHasIndex = 2;
constexpr uint8_t kHasTransforms = 4;

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutI64(std::string& out, int64_t v) { PutU64(out, static_cast<uint64_t>(v)); }
void PutString(std::string& out, absl::string_view s) {
  PutU64(out, s.size());
  out.append(s.data(), s.size());
}

class Reader {
 public:
  explicit Reader(absl::string_view input) : input_(input) {}

  bool U8(const char* what, uint8_t* v) {
    if (!Need(what, 1)) return false;
    *v = static_cast<uint8_t>(input_[pos_++]);
    return true;
  }
  bool U64(const char* what, uint64_t* v) {
    if (!Need(what, 8)) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= uint64_t{static_cast<uint8_t>(input_[pos_ + i])} << (8 * i);
    pos_ += 8;
    *v = r;
    return true;
  }
  bool I64(const char* what, int64_t* v) {
    uint64_t u;
    if (!U64(what, &u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  // A count of elements of at least `element_bytes` each that must fit in
  // the rest of the input.
  bool Count(const char* what, size_t element_bytes, size_t* n) {
    uint64_t v;
    if (!U64(what, &v)) return false;
    if (v > (input_.size() - pos_) / element_bytes) return Fail(what, absl::StrCat("count ", v, " exceeds the input"));
    *n = static_cast<size_t>(v);
    return true;
  }
  bool String(const char* what, std::string* out) {
    size_t n;
    if (!Count(what, 1, &n)) return false;
    out->assign(input_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Magic() {
    if (!Need("magic", sizeof(kMagic))) return false;
    if (std::memcmp(input_.data(), kMagic, sizeof(kMagic)) != 0) return Fail("magic", "not a write-result message");
    pos_ += sizeof(kMagic);
    return true;
  }
  bool Fail(const char* what, absl::string_view problem) {
    if (status_.ok()) {
      status_ = absl::DataLossError(absl::StrCat("write results: ", problem, " at byte ", pos_, " while reading ",
                                                 what, context_));
    }
    pos_ = input_.size();
    return false;
  }
  void SetContext(std::string context) { context_ = std::move(context); }
  bool AtEnd() const { return pos_ == input_.size(); }
  const absl::Status& status() const { return status_; }

 private:
  bool Need(const char* what, size_t n) {
    if (input_.size() - pos_ >= n) return true;
    return Fail(what, "truncated input");
  }

  absl::string_view input_;
  size_t pos_ = 0;
  absl::Status status_;
  std::string context_;
};

bool ReadOne(Reader& r, WriteResult* out) {
  uint8_t flags;
  if (!r.String("fqn", &out->index.fqn) || !r.U8("flags", &flags)) return false;
  if ((flags & ~(kHasOffset | kHasIndex | kHasTransforms)) != 0) return r.Fail("flags", "unknown flag bits");
  if (flags & kHasOffset) {
    size_t ndim;
    if (!r.Count("offset rank", 8, &ndim)) return false;
    out->index.offset.emplace(ndim);
    for (size_t d = 0; d < ndim; ++d) {
      if (!r.I64("offset", &(*out->index.offset)[d])) return false;
    }
  }
  if (flags & kHasIndex) {
    int64_t hint;
    if (!r.I64("index hint", &hint)) return false;
    out->index.index = hint;
  }
  StorageInfo& info = out->storage_info;
  if (!r.I64("size_in_bytes", &out->size_in_bytes) || !r.String("relative_path", &info.relative_path) ||
      !r.I64("file offset", &info.offset) || !r.I64("length", &info.length)) {
    return false;
  }
  if (flags & kHasTransforms) {
    size_t n;
    if (!r.Count("transform count", 8, &n)) return false;
    info.transform_descriptors.emplace(n);
    for (size_t i = 0; i < n; ++i) {
      if (!r.String("transform descriptor", &(*info.transform_descriptors)[i])) return false;
    }
  }
  return r.U64("checksum", &out->checksum);
}

}  // namespace

std::string EncodeWriteResults(const std::vector<WriteResult>& results) {
  std::string out(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kVersion));
  PutU64(out, results.size());
  for (const WriteResult& result : results) {
    const MetadataIndex& index = result.index;
    const StorageInfo& info = result.storage_info;
    PutString(out, index.fqn);
    const uint8_t flags = (index.offset ? kHasOffset : 0) | (index.index ? kHasIndex : 0) |
                          (info.transform_descriptors ? kHasTransforms : 0);
    out.push_back(static_cast<char>(flags));
    if (index.offset) {
      PutU64(out, index.offset->size());
      for (int64_t v : *index.offset) PutI64(out, v);
    }
    if (index.index) PutI64(out, *index.index);
    PutI64(out, result.size_in_bytes);
    PutString(out, info.relative_path);
    PutI64(out, info.offset);
    PutI64(out, info.length);
    if (info.transform_descriptors) {
      PutU64(out, info.transform_descriptors->size());
      for (const std::string& d : *info.transform_descriptors) PutString(out, d);
    }
    PutU64(out, result.checksum);
  }
  return out;
}

absl::StatusOr<std::vector<WriteResult>> DecodeWriteResults(absl::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  size_t count = 0;
  // The smallest result takes 8 (fqn) + 1 + 8 + 8 (path) + 8 + 8 + 8 + 8 bytes.
  constexpr size_t kMinResultBytes = 57;
  if (!r.Magic() || !r.U8("version", &version)) return r.status();
  if (version != kVersion) {
    r.Fail("version", absl::StrCat("unsupported format version ", version));
    return r.status();
  }
  if (!r.Count("result count", kMinResultBytes, &count)) return r.status();
  std::vector<WriteResult> results(count);
  for (size_t i = 0; i < count; ++i) {
    r.SetContext(absl::StrCat(" of result ", i));
    if (!ReadOne(r, &results[i])) return r.status();
  }
  r.SetContext("");
  if (!r.AtEnd()) {
    r.Fail("the end", "trailing bytes");
    return r.status();
  }
  return results;
}

}  // namespace dcplan::internal
