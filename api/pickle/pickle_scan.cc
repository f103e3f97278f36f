#include "api/pickle/pickle_scan.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_opcodes.h"

namespace dcplan::pickle {
namespace {

namespace op = opcodes;

// Opcodes dcplan's writer does not name (pickletools' names).
constexpr uint8_t kInt = 'I';
constexpr uint8_t kLong = 'L';
constexpr uint8_t kFloat = 'F';
constexpr uint8_t kString = 'S';
constexpr uint8_t kBinString = 'T';
constexpr uint8_t kShortBinString = 'U';
constexpr uint8_t kUnicode = 'V';
constexpr uint8_t kPersId = 'P';
constexpr uint8_t kGet = 'g';
constexpr uint8_t kPut = 'p';
constexpr uint8_t kInst = 'i';
constexpr uint8_t kObj = 'o';
constexpr uint8_t kExt1 = 0x82;
constexpr uint8_t kExt2 = 0x83;
constexpr uint8_t kExt4 = 0x84;
constexpr uint8_t kNextBuffer = 0x97;
constexpr uint8_t kReadOnlyBuffer = 0x98;

// The scan: a stack of nesting depths instead of values.
class Scanner {
 public:
  Scanner(absl::string_view input, std::vector<std::string>* globals) : input_(input), globals_(globals) {}

  absl::Status Run() {
    while (position_ < input_.size()) {
      opcode_offset_ = position_;
      const auto opcode = static_cast<uint8_t>(input_[position_++]);
      if (opcode == op::kStop) return absl::OkStatus();
      if (absl::Status step = Step(opcode); !step.ok()) return step;
    }
    return Error("no STOP opcode before the end of the pickle");
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("pickle: ", what, " (offset ", opcode_offset_, ")"));
  }

  // Skips `n` argument bytes.
  absl::Status Skip(uint64_t n) {
    if (n > input_.size() - position_) {
      return Error(absl::StrCat("argument of ", n, " bytes runs past the end of the ", input_.size(),
                                "-byte pickle"));
    }
    position_ += n;
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Unsigned(int width) {
    if (absl::Status s = Skip(width); !s.ok()) return s;
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) {
      value = (value << 8) | static_cast<uint8_t>(input_[position_ - width + i]);
    }
    return value;
  }
  // A length prefix of `width` bytes, then that many bytes (returned).
  absl::StatusOr<absl::string_view> SkipCounted(int width) {
    absl::StatusOr<uint64_t> length = Unsigned(width);
    if (!length.ok()) return length.status();
    if (*length > input_.size() - position_) {
      return Error(absl::StrCat("string of ", *length, " bytes runs past the end of the ", input_.size(),
                                "-byte pickle"));
    }
    absl::string_view text = input_.substr(position_, *length);
    position_ += *length;
    return text;
  }
  absl::StatusOr<absl::string_view> Line() {
    const size_t end = input_.find('\n', position_);
    if (end == absl::string_view::npos) return Error("a text argument has no newline");
    absl::string_view line = input_.substr(position_, end - position_);
    position_ = end + 1;
    return line;
  }

  // --- the simulated stack ---
  size_t Base() const { return marks_.empty() ? 0 : marks_.back(); }
  absl::Status Push(int depth, const absl::string_view* text = nullptr) {
    if (depth > kMaxScannedNestingDepth) {
      return Error(absl::StrCat("values nested deeper than ", kMaxScannedNestingDepth, " levels"));
    }
    stack_.push_back(depth);
    texts_.push_back(text == nullptr ? std::nullopt : std::optional<absl::string_view>(*text));
    return absl::OkStatus();
  }
  absl::StatusOr<int> Pop() {
    if (stack_.size() <= Base()) return Error("stack underflow");
    const int depth = stack_.back();
    stack_.pop_back();
    texts_.pop_back();
    return depth;
  }
  // Pops the items above the topmost MARK and the MARK; their deepest depth.
  absl::StatusOr<int> PopToMark() {
    if (marks_.empty()) return Error("no MARK on the stack");
    const size_t mark = marks_.back();
    marks_.pop_back();
    int deepest = 0;
    for (size_t i = mark; i < stack_.size(); ++i) deepest = std::max(deepest, stack_[i]);
    stack_.resize(mark);
    texts_.resize(mark);
    return deepest;
  }
  // The top value now holds a value of depth `child`.
  absl::Status Nest(int child) {
    if (stack_.size() <= Base()) return Error("stack underflow");
    stack_.back() = std::max(stack_.back(), child + 1);
    if (stack_.back() > kMaxScannedNestingDepth) {
      return Error(absl::StrCat("values nested deeper than ", kMaxScannedNestingDepth, " levels"));
    }
    return absl::OkStatus();
  }
  // Pops `count` values and pushes one holding them.
  absl::Status Combine(int count) {
    int deepest = 0;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<int> depth = Pop();
      if (!depth.ok()) return depth.status();
      deepest = std::max(deepest, *depth);
    }
    return Push(deepest + 1);
  }
  absl::Status CombineMarked() {
    absl::StatusOr<int> deepest = PopToMark();
    if (!deepest.ok()) return deepest.status();
    return Push(*deepest + 1);
  }
  absl::Status AddMarkedToTop() {
    absl::StatusOr<int> deepest = PopToMark();
    if (!deepest.ok()) return deepest.status();
    return Nest(*deepest);
  }
  absl::Status Store(uint64_t index) {
    if (stack_.size() <= Base()) return Error("memo store from an empty stack");
    memo_[index] = {stack_.back(), texts_.back()};
    return absl::OkStatus();
  }
  absl::Status Fetch(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return Error(absl::StrCat("memo entry ", index, " was never stored"));
    return Push(it->second.first, it->second.second ? &*it->second.second : nullptr);
  }
  absl::Status StoreAt(int width) {
    absl::StatusOr<uint64_t> index = Unsigned(width);
    return index.ok() ? Store(*index) : index.status();
  }
  absl::Status FetchAt(int width) {
    absl::StatusOr<uint64_t> index = Unsigned(width);
    return index.ok() ? Fetch(*index) : index.status();
  }
  absl::Status TextIndex(bool store) {
    absl::StatusOr<absl::string_view> line = Line();
    if (!line.ok()) return line.status();
    uint64_t index = 0;
    if (!absl::SimpleAtoi(*line, &index)) return Error("bad memo index");
    return store ? Store(index) : Fetch(index);
  }
  absl::Status SkipLinesThenPush(int lines) {
    for (int i = 0; i < lines; ++i) {
      if (absl::StatusOr<absl::string_view> line = Line(); !line.ok()) return line.status();
    }
    return Push(1);
  }
  absl::Status SkipThenPush(int width) {
    if (absl::Status s = Skip(width); !s.ok()) return s;
    return Push(1);
  }
  absl::Status SkipCountedThenPush(int width) {
    absl::StatusOr<absl::string_view> text = SkipCounted(width);
    if (!text.ok()) return text.status();
    return Push(1, &*text);
  }
  // GLOBAL: "module\nname\n".
  absl::Status Global() {
    absl::StatusOr<absl::string_view> module = Line();
    if (!module.ok()) return module.status();
    absl::StatusOr<absl::string_view> name = Line();
    if (!name.ok()) return name.status();
    if (globals_ != nullptr) globals_->push_back(absl::StrCat(*module, ".", *name));
    return Push(1);
  }
  // STACK_GLOBAL: the module and name strings on the stack. Names computed
  // any other way cannot be checked against a policy, so they are refused.
  absl::Status StackGlobal() {
    if (stack_.size() < Base() + 2) return Error("stack underflow");
    const std::optional<absl::string_view> module = texts_[texts_.size() - 2];
    const std::optional<absl::string_view> name = texts_.back();
    if (!module || !name) return Error("STACK_GLOBAL of values that are not strings");
    if (globals_ != nullptr) globals_->push_back(absl::StrCat(*module, ".", *name));
    return Combine(2);
  }

  absl::Status Step(uint8_t opcode);

  absl::string_view input_;
  size_t position_ = 0;
  size_t opcode_offset_ = 0;
  std::vector<std::string>* globals_;
  // Per stack slot: the nesting depth, and the text when it is a string.
  std::vector<int> stack_;
  std::vector<std::optional<absl::string_view>> texts_;
  std::vector<size_t> marks_;
  absl::flat_hash_map<uint64_t, std::pair<int, std::optional<absl::string_view>>> memo_;
  uint64_t next_memo_ = 0;
};

absl::Status Scanner::Step(uint8_t opcode) {
  switch (opcode) {
    case op::kProto: return Skip(1);
    case op::kFrame: return Skip(8);
    case op::kMark:
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case op::kNone: case op::kNewTrue: case op::kNewFalse: case op::kEmptyTuple: case op::kEmptyList:
    case op::kEmptyDict: case op::kEmptySet: case kNextBuffer:
      return Push(1);
    case kReadOnlyBuffer: return absl::OkStatus();
    case op::kBinInt: return SkipThenPush(4);
    case op::kBinInt1: return SkipThenPush(1);
    case op::kBinInt2: return SkipThenPush(2);
    case op::kBinFloat: return SkipThenPush(8);
    case kExt1: return SkipThenPush(1);
    case kExt2: return SkipThenPush(2);
    case kExt4: return SkipThenPush(4);
    case op::kLong1: case op::kShortBinUnicode: case op::kShortBinBytes: case kShortBinString:
      return SkipCountedThenPush(1);
    case op::kLong4: case op::kBinUnicode: case op::kBinBytes: case kBinString:
      return SkipCountedThenPush(4);
    case op::kBinUnicode8: case op::kBinBytes8: case op::kByteArray8:
      return SkipCountedThenPush(8);
    case kInt: case kLong: case kFloat: case kString: case kUnicode: case kPersId:
      return SkipLinesThenPush(1);
    case op::kGlobal: return Global();
    case op::kStackGlobal: return StackGlobal();
    case op::kPop: return Pop().status();
    case op::kPopMark: return PopToMark().status();
    case op::kDup:
      if (stack_.size() <= Base()) return Error("stack underflow");
      return Push(stack_.back(), texts_.back() ? &*texts_.back() : nullptr);
    case op::kMemoize: return Store(next_memo_++);
    case op::kBinPut: return StoreAt(1);
    case op::kLongBinPut: return StoreAt(4);
    case kPut: return TextIndex(/*store=*/true);
    case op::kBinGet: return FetchAt(1);
    case op::kLongBinGet: return FetchAt(4);
    case kGet: return TextIndex(/*store=*/false);
    case op::kAppend: case op::kBuild: {
      absl::StatusOr<int> child = Pop();
      return child.ok() ? Nest(*child) : child.status();
    }
    case op::kSetItem: {
      absl::StatusOr<int> value = Pop();
      if (!value.ok()) return value.status();
      absl::StatusOr<int> key = Pop();
      return key.ok() ? Nest(std::max(*key, *value)) : key.status();
    }
    case op::kAppends: case op::kSetItems: case op::kAddItems: return AddMarkedToTop();
    case op::kTuple: case op::kList: case op::kDict: case op::kFrozenSet: case kObj: return CombineMarked();
    case kInst: {
      absl::StatusOr<absl::string_view> module = Line();
      if (!module.ok()) return module.status();
      absl::StatusOr<absl::string_view> name = Line();
      if (!name.ok()) return name.status();
      if (globals_ != nullptr) globals_->push_back(absl::StrCat(*module, ".", *name));
      return CombineMarked();
    }
    case op::kTuple1: return Combine(1);
    case op::kTuple2: return Combine(2);
    case op::kTuple3: return Combine(3);
    case op::kReduce: case op::kNewObj: return Combine(2);
    case op::kNewObjEx: return Combine(3);
    case op::kBinPersId: return Combine(1);
    default: return Error(absl::StrCat("unknown opcode 0x", absl::Hex(opcode, absl::kZeroPad2)));
  }
}

}  // namespace

absl::Status CheckPickleStructure(absl::string_view pickle, std::vector<std::string>* globals) {
  return Scanner(pickle, globals).Run();
}

}  // namespace dcplan::pickle
