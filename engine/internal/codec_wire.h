#ifndef DCPLAN_ENGINE_INTERNAL_CODEC_WIRE_H_
#define DCPLAN_ENGINE_INTERNAL_CODEC_WIRE_H_

// The primitives of engine/codec.h's format: varints, zigzag, the string
// table, the message header, and error reporting with a field path. The
// structure of plans and metadata is in engine/codec.cc.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/codec.h"

namespace dcplan::internal {

inline constexpr char kCodecMagic[4] = {'D', 'C', 'P', 'B'};
inline constexpr size_t kCodecHeaderBytes = sizeof(kCodecMagic) + 2;

inline uint64_t ZigZag(int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  return (u << 1) ^ (0 - (u >> 63));
}
inline int64_t UnZigZag(uint64_t u) { return static_cast<int64_t>((u >> 1) ^ (0 - (u & 1))); }

// Writes a message in two passes over the same encoding code: the first pass
// only records which strings are used how often (every Put except PutString
// does nothing); StartBody() then fixes the string table and writes the
// header, and the second pass writes the body.
class WireWriter {
 public:
  WireWriter() = default;
  WireWriter(const WireWriter&) = delete;
  WireWriter& operator=(const WireWriter&) = delete;

  void StartBody(CodecKind kind);

  void PutVarint(uint64_t v) {
    if (collecting_) return;
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void PutSigned(int64_t v) { PutVarint(ZigZag(v)); }
  // Writes `s` as a string reference plus `bias` (see codec.h). The views
  // must stay valid until Release().
  void PutString(absl::string_view s, uint64_t bias = 0);

  std::string Release() { return std::move(out_); }

 private:
  bool collecting_ = true;
  absl::flat_hash_map<absl::string_view, uint8_t> use_counts_;
  std::vector<absl::string_view> first_use_order_;
  absl::flat_hash_map<absl::string_view, uint64_t> table_index_;
  uint64_t table_size_ = 0;
  std::string out_;
};

// Reads a message. The first error sticks: every later read fails too, so
// callers can just return false up the (fixed-depth) call chain.
class WireReader {
 public:
  WireReader(absl::string_view input, CodecKind kind);
  WireReader(const WireReader&) = delete;
  WireReader& operator=(const WireReader&) = delete;

  // Header and string table.
  bool ReadPrologue();
  // After the body: no trailing bytes, every interned string used twice.
  bool ReadEpilogue();

  bool ReadVarint(const char* what, uint64_t* v) {
    // Most varints are one byte. After an error pos_ is at the end, so this
    // path never hides it.
    if (pos_ < input_.size() && static_cast<uint8_t>(input_[pos_]) < 0x80) {
      *v = static_cast<uint8_t>(input_[pos_++]);
      return true;
    }
    return ReadLongVarint(what, v);
  }
  bool ReadSigned(const char* what, int64_t* v);
  // A varint that must be <= max_value (flag sets, enum-carrying headers).
  bool ReadSmall(const char* what, uint64_t max_value, uint64_t* v);
  // A count of elements each needing at least `min_element_bytes`; rejected
  // (DataLoss) when the remaining input cannot hold that many.
  bool ReadCount(const char* what, size_t min_element_bytes, size_t* n);
  bool ReadString(const char* what, std::string* out);
  // Resolves a string reference whose varint (minus its bias) was already read
  // at `field_start`.
  bool ResolveString(const char* what, size_t field_start, uint64_t ref, std::string* out);

  // Fails at the field starting at `field_start` (or the current position).
  bool Fail(absl::StatusCode code, absl::string_view problem, const char* what);
  bool FailAt(size_t field_start, absl::StatusCode code, absl::string_view problem, const char* what);

  size_t position() const { return pos_; }
  size_t remaining() const { return input_.size() - pos_; }
  const absl::Status& status() const { return status_; }

  // The path to the field being read, for error messages. Frames nest with
  // the (fixed) structure of the format, never with the input.
  // PushFrame returns the frame's slot for SetFrameIndex / SetFrameLabel.
  int PushFrame(const char* name, bool bracket_index);
  void SetFrameIndex(int slot, int64_t index) {
    if (slot < kMaxDepth) frames_[slot].index = index;
  }
  void SetFrameLabel(int slot, const std::string* label) {
    if (slot < kMaxDepth) frames_[slot].label = label;
  }
  void PopFrame() { --depth_; }

 private:
  static constexpr int kMaxDepth = 8;
  struct Frame {
    const char* name;
    bool bracket_index;
    int64_t index;
    const std::string* label;
  };

  bool ReadLongVarint(const char* what, uint64_t* v);

  absl::string_view input_;
  CodecKind kind_;
  size_t pos_ = 0;
  absl::Status status_;
  Frame frames_[kMaxDepth];
  int depth_ = 0;

  std::vector<absl::string_view> table_;
  absl::flat_hash_map<absl::string_view, uint64_t> table_index_;
  std::vector<uint8_t> table_uses_;  // saturates at 2
  uint64_t next_new_entry_ = 0;
  absl::flat_hash_set<absl::string_view> inline_short_strings_;
};

// Scoped path frame: "item 3", "offset[1]", "planner_data".
class WireFrame {
 public:
  WireFrame(WireReader& reader, const char* name, bool bracket_index = false)
      : reader_(reader), slot_(reader.PushFrame(name, bracket_index)) {}
  ~WireFrame() { reader_.PopFrame(); }
  WireFrame(const WireFrame&) = delete;
  WireFrame& operator=(const WireFrame&) = delete;
  void SetIndex(int64_t index) { reader_.SetFrameIndex(slot_, index); }
  // Names the tensor the frame is about; `label` must outlive the frame.
  void SetLabel(const std::string* label) { reader_.SetFrameLabel(slot_, label); }

 private:
  WireReader& reader_;
  int slot_;
};

}  // namespace dcplan::internal

#endif  // DCPLAN_ENGINE_INTERNAL_CODEC_WIRE_H_
