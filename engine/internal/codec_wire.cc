#include "engine/internal/codec_wire.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dcplan::internal {
namespace {

bool Internable(absl::string_view s) { return s.size() <= kCodecMaxInternedBytes; }

// Labels come from untrusted bytes: quote them printable and short.
std::string QuoteLabel(const std::string& label) {
  constexpr size_t kMaxShown = 64;
  std::string shown = absl::Utf8SafeCHexEscape(absl::string_view(label).substr(0, kMaxShown));
  return absl::StrCat("('", shown, label.size() > kMaxShown ? "...'" : "'", ")");
}

}  // namespace

// --- WireWriter -------------------------------------------------------------------

void WireWriter::StartBody(CodecKind kind) {
  for (absl::string_view s : first_use_order_) {
    if (Internable(s) && use_counts_[s] >= 2) table_index_.emplace(s, table_index_.size());
  }
  table_size_ = table_index_.size();
  collecting_ = false;
  out_.append(kCodecMagic, sizeof(kCodecMagic));
  out_.push_back(static_cast<char>(kCodecFormatVersion));
  out_.push_back(static_cast<char>(kind));
  PutVarint(table_size_);
  for (absl::string_view s : first_use_order_) {
    if (!table_index_.contains(s)) continue;
    PutVarint(s.size());
    out_.append(s.data(), s.size());
  }
}

void WireWriter::PutString(absl::string_view s, uint64_t bias) {
  if (collecting_) {
    uint8_t& uses = use_counts_[s];  // saturates at 2: only "twice or more" matters
    if (uses == 0) first_use_order_.push_back(s);
    if (uses < 2) ++uses;
    return;
  }
  if (auto it = table_index_.find(s); it != table_index_.end()) {
    PutVarint(bias + it->second);
    return;
  }
  PutVarint(bias + table_size_ + s.size());
  out_.append(s.data(), s.size());
}

// --- WireReader -------------------------------------------------------------------

WireReader::WireReader(absl::string_view input, CodecKind kind) : input_(input), kind_(kind) {}

int WireReader::PushFrame(const char* name, bool bracket_index) {
  const int slot = depth_++;
  if (slot < kMaxDepth) frames_[slot] = Frame{name, bracket_index, -1, nullptr};
  return slot;
}

bool WireReader::Fail(absl::StatusCode code, absl::string_view problem, const char* what) {
  return FailAt(pos_, code, problem, what);
}

bool WireReader::FailAt(size_t field_start, absl::StatusCode code, absl::string_view problem, const char* what) {
  if (!status_.ok()) return false;
  std::string path;
  for (int i = 0; i < std::min(depth_, kMaxDepth); ++i) {
    const Frame& f = frames_[i];
    absl::StrAppend(&path, path.empty() ? "" : " ", f.name);
    if (f.index >= 0) absl::StrAppend(&path, f.bracket_index ? "[" : " ", f.index, f.bracket_index ? "]" : "");
    if (f.label != nullptr) absl::StrAppend(&path, " ", QuoteLabel(*f.label));
  }
  if (what != nullptr) absl::StrAppend(&path, path.empty() ? "" : " ", what);
  // "codec: truncated SavePlan at byte 37 while reading item 3 fqn: <why>" or
  // "codec: <problem> in SavePlan at byte 37 while reading item 3 flags".
  const absl::string_view kind = CodecKindName(kind_);
  const bool truncated = code == absl::StatusCode::kDataLoss;
  std::string message =
      truncated ? absl::StrCat("codec: truncated ", kind) : absl::StrCat("codec: ", problem, " in ", kind);
  absl::StrAppend(&message, " at byte ", field_start);
  if (!path.empty()) absl::StrAppend(&message, " while reading ", path);
  if (truncated && !problem.empty()) absl::StrAppend(&message, ": ", problem);
  status_ = absl::Status(code, message);
  // Nothing more can be read once an error is recorded.
  pos_ = input_.size();
  return false;
}

bool WireReader::ReadLongVarint(const char* what, uint64_t* v) {
  if (!status_.ok()) return false;
  const size_t start = pos_;
  uint64_t result = 0;
  for (size_t n = 0;; ++n) {
    if (start + n >= input_.size()) return FailAt(start, absl::StatusCode::kDataLoss, "", what);
    const uint8_t byte = static_cast<uint8_t>(input_[start + n]);
    if (n == 9 && byte > 1) {
      return FailAt(start, absl::StatusCode::kInvalidArgument,
                    byte & 0x80 ? "varint longer than 10 bytes" : "varint overflows 64 bits", what);
    }
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * n);
    if ((byte & 0x80) == 0) {
      if (byte == 0 && n > 0) {
        return FailAt(start, absl::StatusCode::kInvalidArgument, "non-minimal varint", what);
      }
      pos_ = start + n + 1;
      *v = result;
      return true;
    }
  }
}

bool WireReader::ReadSigned(const char* what, int64_t* v) {
  uint64_t u;
  if (!ReadVarint(what, &u)) return false;
  *v = UnZigZag(u);
  return true;
}

bool WireReader::ReadSmall(const char* what, uint64_t max_value, uint64_t* v) {
  const size_t start = pos_;
  if (!ReadVarint(what, v)) return false;
  if (*v <= max_value) return true;
  return FailAt(start, absl::StatusCode::kInvalidArgument, absl::StrCat("unknown value ", *v), what);
}

bool WireReader::ReadCount(const char* what, size_t min_element_bytes, size_t* n) {
  const size_t start = pos_;
  uint64_t count;
  if (!ReadVarint(what, &count)) return false;
  if (count > remaining() / min_element_bytes) {
    return FailAt(start, absl::StatusCode::kDataLoss,
                  absl::StrCat("count ", count, " needs at least ", min_element_bytes, " bytes each but ", remaining(),
                               " bytes remain"),
                  what);
  }
  *n = static_cast<size_t>(count);
  return true;
}

bool WireReader::ReadString(const char* what, std::string* out) {
  const size_t start = pos_;
  uint64_t ref;
  if (!ReadVarint(what, &ref)) return false;
  return ResolveString(what, start, ref, out);
}

bool WireReader::ResolveString(const char* what, size_t field_start, uint64_t ref, std::string* out) {
  const uint64_t table_size = table_.size();
  if (ref < table_size) {
    if (ref > next_new_entry_) {
      return FailAt(
          field_start, absl::StatusCode::kInvalidArgument,
          absl::StrCat("string table entry ", ref, " used before entry ", next_new_entry_, " (non-canonical)"), what);
    }
    if (ref == next_new_entry_) ++next_new_entry_;
    if (table_uses_[ref] < 2) ++table_uses_[ref];
    out->assign(table_[ref].data(), table_[ref].size());
    return true;
  }
  const uint64_t length = ref - table_size;
  if (length > remaining()) {
    return FailAt(field_start, absl::StatusCode::kDataLoss,
                  absl::StrCat("string of ", length, " bytes but ", remaining(), " bytes remain"), what);
  }
  const absl::string_view s = input_.substr(pos_, length);
  if (Internable(s) && (table_index_.contains(s) || !inline_short_strings_.insert(s).second)) {
    return FailAt(field_start, absl::StatusCode::kInvalidArgument,
                  "repeated short string written inline, not interned (non-canonical)", what);
  }
  pos_ += length;
  out->assign(s.data(), s.size());
  return true;
}

bool WireReader::ReadPrologue() {
  if (input_.size() < kCodecHeaderBytes) return Fail(absl::StatusCode::kDataLoss, "", "header");
  if (std::memcmp(input_.data(), kCodecMagic, sizeof(kCodecMagic)) != 0) {
    return Fail(absl::StatusCode::kInvalidArgument, "bad magic (not a dcplan codec message)", "header");
  }
  const uint8_t version = static_cast<uint8_t>(input_[sizeof(kCodecMagic)]);
  if (version != kCodecFormatVersion) {
    return FailAt(sizeof(kCodecMagic), absl::StatusCode::kInvalidArgument,
                  absl::StrCat("unsupported format version ", version, " (this build reads ", kCodecFormatVersion, ")"),
                  "header");
  }
  const uint8_t kind = static_cast<uint8_t>(input_[sizeof(kCodecMagic) + 1]);
  if (kind != static_cast<uint8_t>(kind_)) {
    const bool known =
        kind >= static_cast<uint8_t>(CodecKind::kSavePlan) && kind <= static_cast<uint8_t>(CodecKind::kLoadPlanList);
    return FailAt(sizeof(kCodecMagic) + 1, absl::StatusCode::kInvalidArgument,
                  known ? absl::StrCat("message holds a ", CodecKindName(static_cast<CodecKind>(kind)))
                        : absl::StrCat("unknown message kind ", kind),
                  "header");
  }
  pos_ = kCodecHeaderBytes;

  WireFrame frame(*this, "string table", /*bracket_index=*/true);
  size_t count;
  if (!ReadCount("count", 1, &count)) return false;
  table_.reserve(count);
  table_index_.reserve(count);
  table_uses_.assign(count, 0);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    const size_t start = pos_;
    uint64_t length;
    if (!ReadVarint("length", &length)) return false;
    if (length > kCodecMaxInternedBytes) {
      return FailAt(start, absl::StatusCode::kInvalidArgument,
                    absl::StrCat("interned string of ", length, " bytes (limit ", kCodecMaxInternedBytes, ")"),
                    "length");
    }
    if (length > remaining()) return FailAt(start, absl::StatusCode::kDataLoss, "", "bytes");
    const absl::string_view s = input_.substr(pos_, length);
    if (!table_index_.emplace(s, i).second) {
      return FailAt(start, absl::StatusCode::kInvalidArgument, "duplicate interned string", nullptr);
    }
    table_.push_back(s);
    pos_ += length;
  }
  return true;
}

bool WireReader::ReadEpilogue() {
  if (!status_.ok()) return false;
  if (pos_ != input_.size()) {
    return Fail(absl::StatusCode::kInvalidArgument, absl::StrCat(remaining(), " trailing bytes"), nullptr);
  }
  for (size_t i = 0; i < table_uses_.size(); ++i) {
    if (table_uses_[i] < 2) {
      return Fail(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("string table entry ", i, " used ", table_uses_[i],
                               " time(s); only strings used twice or more are interned (non-canonical)"),
                  nullptr);
    }
  }
  return true;
}

}  // namespace dcplan::internal
