#ifndef DCPLAN_API_PICKLE_PICKLE_MACHINE_H_
#define DCPLAN_API_PICKLE_PICKLE_MACHINE_H_

// Internal to //api:pickle_reader: the pickle virtual machine behind
// Unpickle(). pickle_reader.cc holds the input, scalar and memo opcodes;
// pickle_objects.cc the containers, globals and object construction.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "api/pickle/pickle_reader.h"

namespace dcplan::pickle {

// The virtual machine. One instance runs one pickle.
class Machine {
 public:
  Machine(absl::string_view input, PickleVocabulary vocabulary) : input_(input), vocabulary_(vocabulary) {}

  absl::StatusOr<PickleDocument> Run();

 private:
  // --- input ---
  size_t Remaining() const { return input_.size() - pos_; }
  absl::Status Need(uint64_t n) const {
    if (n > Remaining()) {
      return Error(absl::StrCat("truncated input: need ", n, " bytes, ", Remaining(), " left"));
    }
    return absl::OkStatus();
  }
  uint64_t ReadLittleEndian(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(input_[pos_ + i])} << (8 * i);
    pos_ += n;
    return v;
  }
  absl::StatusOr<uint64_t> ReadLength(int width) {
    if (absl::Status s = Need(width); !s.ok()) return s;
    return ReadLittleEndian(width);
  }
  absl::StatusOr<absl::string_view> ReadBytes(uint64_t n) {
    if (absl::Status s = Need(n); !s.ok()) return s;
    absl::string_view out = input_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<absl::string_view> ReadLine() {
    const size_t end = input_.find('\n', pos_);
    if (end == absl::string_view::npos) return Error("truncated input: missing newline");
    absl::string_view line = input_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("pickle: ", message, " (offset ", op_offset_, ")"));
  }

  // --- values ---
  Value* New(ValueKind kind) {
    Value* v = doc_.Allocate();
    v->kind = kind;
    return v;
  }
  // Records that `child` is now stored inside `parent` (see the header).
  absl::Status Adopt(Value* parent, Value* child) {
    if (child == parent) return Error("a value cannot contain itself (cycles are not supported)");
    child->contained = true;
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxNestingDepth) {
      return Error(absl::StrCat("values nested deeper than ", kMaxNestingDepth, " levels"));
    }
    return absl::OkStatus();
  }
  absl::Status CheckMutable(const Value& target) const {
    if (target.contained) return Error("value modified after being stored in another (cycles are not supported)");
    return absl::OkStatus();
  }

  // --- stack (Python's stack + metastack: marks_ holds segment starts) ---
  size_t Base() const { return marks_.empty() ? 0 : marks_.back(); }
  void Push(Value* v) { stack_.push_back(v); }
  absl::StatusOr<Value*> Pop() {
    if (stack_.size() <= Base()) return Error("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  absl::StatusOr<Value*> Top() const {
    if (stack_.size() <= Base()) return Error("stack underflow");
    return stack_.back();
  }
  // Pops the topmost mark; returns the position of the items above it.
  absl::StatusOr<size_t> PopMark() {
    if (marks_.empty()) return Error("no MARK on the stack");
    const size_t mark = marks_.back();
    marks_.pop_back();
    return mark;
  }

  absl::Status Step(uint8_t op, bool* stop);
  absl::Status PushInt(int64_t v);
  absl::Status PushLong(int width);
  absl::Status PushFloat();
  absl::Status PushText(ValueKind kind, int width);
  absl::Status BuildSequence(ValueKind kind, size_t first);
  absl::Status MakeTuple(size_t count);
  absl::Status Appends();
  absl::Status SetItems(bool batch);
  absl::Status MakeDict();
  absl::Status PushGlobal(absl::string_view module, absl::string_view name);
  absl::Status StackGlobal();
  absl::Status NewObj();
  absl::Status Reduce();
  absl::Status ReduceGetattr(const Value& args);
  absl::Status Build();
  absl::Status PersistentId();
  absl::Status Memo(uint64_t index);
  absl::Status Get(uint64_t index);

  absl::string_view input_;
  PickleVocabulary vocabulary_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  PickleDocument doc_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  // The memo: CPython numbers entries 0, 1, 2, ...; those live in a vector
  // grown one entry at a time, any other index in a hash map (so a huge
  // index allocates nothing). memo_size_ counts the distinct indices set,
  // which MEMOIZE uses as its index.
  std::vector<Value*> dense_memo_;
  absl::flat_hash_map<uint64_t, Value*> sparse_memo_;
  uint64_t memo_size_ = 0;
  Value* none_ = nullptr;
  Value* true_ = nullptr;
  Value* false_ = nullptr;
  Value* empty_tuple_ = nullptr;
  static constexpr int64_t kFirstSharedInt = -5;
  std::array<Value*, 262> shared_ints_{};  // -5 ... 256, made on first use
};

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_MACHINE_H_
