#include "api/pickle/pickle_reader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_machine.h"
#include "api/pickle/pickle_opcodes.h"

namespace dcplan::pickle {
namespace {

// Python decodes pickled str with "utf-8" and "surrogatepass": well-formed
// UTF-8 where encoded surrogates (U+D800..U+DFFF) are also accepted.
bool IsPythonUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra;
    uint32_t min_code;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min_code = 0x80, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min_code = 0x800, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min_code = 0x10000, code = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= static_cast<size_t>(extra)) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i + k] & 0x3F);
    }
    if (code < min_code || code > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace

std::string DescribeValue(const Value& value) {
  switch (value.kind) {
    case ValueKind::kNone: return "None";
    case ValueKind::kBool: return "bool";
    case ValueKind::kInt: return "int";
    case ValueKind::kFloat: return "float";
    case ValueKind::kString: return "str";
    case ValueKind::kBytes: return "bytes";
    case ValueKind::kTuple: return "tuple";
    case ValueKind::kList: return "list";
    case ValueKind::kDict: return "dict";
    case ValueKind::kGlobal: return absl::StrCat("global ", value.text);
    case ValueKind::kObject: return std::string(value.text);
  }
  return "?";
}

void PickleDocument::FreeBlock::operator()(char* block) const { std::free(block); }

namespace {

// A block of `bytes`, not zeroed: placement-new or copies fill it.
// A large block's pages are mapped in one call (MADV_POPULATE_WRITE, Linux
// 5.14+; ignored where unsupported): faulting them in one by one as values
// are written cost more than the kernel's zeroing of them on a `.metadata`
// of a million chunks (issue #13). Blocks are filled in order, so only the
// tail a block is left with (less than the array that did not fit in it, at
// most a quarter block; and the unused end of the last block) is mapped
// without being written: at most a third more than the values need.
char* NewBlock(size_t bytes) {
  void* block = std::malloc(bytes);
  if (block == nullptr) throw std::bad_alloc();
#ifdef MADV_POPULATE_WRITE
  constexpr size_t kPopulatedBlockBytes = size_t{256} << 10;
  if (bytes >= kPopulatedBlockBytes) {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t first = (reinterpret_cast<uintptr_t>(block) + page - 1) / page * page;
    const uintptr_t last = (reinterpret_cast<uintptr_t>(block) + bytes) / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
  }
#endif
  return static_cast<char*>(block);
}

}  // namespace

template <typename T>
T* PickleDocument::Room(size_t count) {
  const size_t bytes = count * sizeof(T);
  if (bytes > kBlockBytes / 4) {  // a large array gets a block of its own
    std::unique_ptr<char, FreeBlock> block(NewBlock(bytes));
    T* room = reinterpret_cast<T*>(block.get());
    blocks_.insert(blocks_.end() - (blocks_.empty() ? 0 : 1), std::move(block));
    return room;
  }
  block_used_ = (block_used_ + alignof(T) - 1) / alignof(T) * alignof(T);
  if (blocks_.empty() || block_used_ + bytes > block_size_) {
    block_size_ = std::max(std::min(block_size_ * 2, kBlockBytes), std::max(kFirstBlockBytes, bytes));
    blocks_.emplace_back(NewBlock(block_size_));
    block_used_ = 0;
  }
  T* room = reinterpret_cast<T*>(blocks_.back().get() + block_used_);
  block_used_ += bytes;
  return room;
}

Value* PickleDocument::Allocate() { return new (Room<Value>(1)) Value(); }

// Children hold 32-bit counts: Unpickle() refuses larger inputs (a child
// takes at least one input byte).
template <typename T>
void PickleDocument::ReserveIn(Children<T>& children, size_t more) {
  const size_t needed = children.size_ + more;
  if (needed <= children.capacity_) return;
  // The first batch gets exactly its room (tuples, and the dicts and lists
  // of one SETITEMS / APPENDS); later growth doubles.
  const auto grown = static_cast<uint32_t>(
      children.capacity_ == 0 ? needed : std::max<size_t>(needed, size_t{children.capacity_} * 2));
  T* moved = Room<T>(grown);
  std::copy(children.data_, children.data_ + children.size_, moved);
  children.data_ = moved;
  children.capacity_ = grown;
}

template <typename T>
void PickleDocument::AppendTo(Children<T>& children, T child) {
  ReserveIn(children, 1);
  children.data_[children.size_++] = child;
}

void PickleDocument::Reserve(Children<const Value*>& children, size_t more) { ReserveIn(children, more); }
void PickleDocument::Reserve(Children<DictEntry>& children, size_t more) { ReserveIn(children, more); }
void PickleDocument::Append(Children<const Value*>& children, const Value* child) { AppendTo(children, child); }
void PickleDocument::Append(Children<DictEntry>& children, DictEntry entry) { AppendTo(children, entry); }

absl::string_view PickleDocument::Intern(std::string name) { return *names_.insert(std::move(name)).first; }

absl::StatusOr<PickleDocument> Machine::Run() {
  none_ = New(ValueKind::kNone);
  true_ = New(ValueKind::kBool);
  true_->boolean = true;
  false_ = New(ValueKind::kBool);
  empty_tuple_ = New(ValueKind::kTuple);
  bool stop = false;
  while (!stop) {
    op_offset_ = pos_;
    if (Remaining() == 0) return Error("truncated input: no STOP opcode");
    const uint8_t op = static_cast<uint8_t>(input_[pos_++]);
    if (absl::Status s = Step(op, &stop); !s.ok()) return s;
  }
  if (Remaining() != 0) return Error(absl::StrCat(Remaining(), " bytes after STOP"));
  return std::move(doc_);
}

absl::Status Machine::Step(uint8_t op, bool* stop) {
  using namespace opcodes;  // NOLINT: the opcode names read best unqualified here
  switch (op) {
    case kProto: {
      absl::StatusOr<uint64_t> version = ReadLength(1);
      if (!version.ok()) return version.status();
      if (*version > 5) return Error(absl::StrCat("unsupported protocol ", *version));
      doc_.protocol_ = static_cast<int>(*version);
      return absl::OkStatus();
    }
    case kFrame: {
      absl::StatusOr<uint64_t> size = ReadLength(8);
      if (!size.ok()) return size.status();
      return Need(*size);  // frames only group opcodes; their bytes follow
    }
    case kStop: {
      absl::StatusOr<Value*> root = Pop();
      if (!root.ok()) return root.status();
      doc_.root_ = *root;
      *stop = true;
      return absl::OkStatus();
    }
    case kMark:
      if (marks_.size() >= static_cast<size_t>(kMaxMarkDepth)) {
        return Error(absl::StrCat("more than ", kMaxMarkDepth, " nested MARKs"));
      }
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case kPop:
      if (stack_.size() > Base()) return Pop().status();
      return PopMark().status();
    case kPopMark: {
      absl::StatusOr<size_t> mark = PopMark();
      if (!mark.ok()) return mark.status();
      stack_.resize(*mark);
      return absl::OkStatus();
    }
    case kDup: {
      absl::StatusOr<Value*> top = Top();
      if (!top.ok()) return top.status();
      Push(*top);
      return absl::OkStatus();
    }
    case kNone: Push(none_); return absl::OkStatus();
    case kNewTrue: Push(true_); return absl::OkStatus();
    case kNewFalse: Push(false_); return absl::OkStatus();
    case kBinInt1:
    case kBinInt2: {
      absl::StatusOr<uint64_t> v = ReadLength(op == kBinInt1 ? 1 : 2);
      if (!v.ok()) return v.status();
      return PushInt(static_cast<int64_t>(*v));
    }
    case kBinInt: {
      absl::StatusOr<uint64_t> v = ReadLength(4);
      if (!v.ok()) return v.status();
      return PushInt(static_cast<int32_t>(static_cast<uint32_t>(*v)));
    }
    case kLong1: return PushLong(1);
    case kLong4: return PushLong(4);
    case kBinFloat: return PushFloat();
    case kShortBinUnicode: return PushText(ValueKind::kString, 1);
    case kBinUnicode: return PushText(ValueKind::kString, 4);
    case kBinUnicode8: return PushText(ValueKind::kString, 8);
    case kShortBinBytes: return PushText(ValueKind::kBytes, 1);
    case kBinBytes: return PushText(ValueKind::kBytes, 4);
    case kBinBytes8: return PushText(ValueKind::kBytes, 8);
    case kEmptyTuple: Push(empty_tuple_); return absl::OkStatus();  // () is a singleton
    case kTuple1: return MakeTuple(1);
    case kTuple2: return MakeTuple(2);
    case kTuple3: return MakeTuple(3);
    case kTuple: {
      absl::StatusOr<size_t> mark = PopMark();
      if (!mark.ok()) return mark.status();
      return BuildSequence(ValueKind::kTuple, *mark);
    }
    case kEmptyList: Push(New(ValueKind::kList)); return absl::OkStatus();
    case kList: {
      absl::StatusOr<size_t> mark = PopMark();
      if (!mark.ok()) return mark.status();
      return BuildSequence(ValueKind::kList, *mark);
    }
    case kAppend: {
      // Reuse APPENDS on a one-item segment.
      if (stack_.size() < Base() + 2) return Error("stack underflow");
      marks_.push_back(stack_.size() - 1);
      return Appends();
    }
    case kAppends: return Appends();
    case kEmptyDict: Push(New(ValueKind::kDict)); return absl::OkStatus();
    case kDict: return MakeDict();
    case kSetItem: return SetItems(false);
    case kSetItems: return SetItems(true);
    case kGlobal: {
      absl::StatusOr<absl::string_view> module = ReadLine();
      if (!module.ok()) return module.status();
      absl::StatusOr<absl::string_view> name = ReadLine();
      if (!name.ok()) return name.status();
      return PushGlobal(*module, *name);
    }
    case kStackGlobal: return StackGlobal();
    case kNewObj: return NewObj();
    case kReduce: return Reduce();
    case kBuild: return Build();
    case kBinPersId:
      if (vocabulary_ != PickleVocabulary::kTensorRecord) return Error("unsupported opcode 0x51");
      return PersistentId();
    case kMemoize: return Memo(memo_size_);
    case kBinPut:
    case kLongBinPut: {
      absl::StatusOr<uint64_t> index = ReadLength(op == kBinPut ? 1 : 4);
      if (!index.ok()) return index.status();
      return Memo(*index);
    }
    case kBinGet:
    case kLongBinGet: {
      absl::StatusOr<uint64_t> index = ReadLength(op == kBinGet ? 1 : 4);
      if (!index.ok()) return index.status();
      return Get(*index);
    }
    default:
      return Error(absl::StrCat("unsupported opcode 0x", absl::Hex(op, absl::kZeroPad2)));
  }
}

absl::Status Machine::PushInt(int64_t v) {
  // Small ints are shared, as CPython shares them (values are immutable).
  if (v >= kFirstSharedInt && v < kFirstSharedInt + static_cast<int64_t>(shared_ints_.size())) {
    Value*& shared = shared_ints_[v - kFirstSharedInt];
    if (shared == nullptr) {
      shared = New(ValueKind::kInt);
      shared->integer = v;
    }
    Push(shared);
    return absl::OkStatus();
  }
  Value* value = New(ValueKind::kInt);
  value->integer = v;
  Push(value);
  return absl::OkStatus();
}

absl::Status Machine::PushLong(int width) {
  absl::StatusOr<uint64_t> n = ReadLength(width);
  if (!n.ok()) return n.status();
  absl::StatusOr<absl::string_view> bytes = ReadBytes(*n);
  if (!bytes.ok()) return bytes.status();
  // Little-endian two's complement of any length; it must fit in int64.
  const auto byte = [&](size_t i) { return static_cast<unsigned char>((*bytes)[i]); };
  const size_t low = std::min<size_t>(bytes->size(), 8);
  uint64_t v = 0;
  for (size_t i = 0; i < low; ++i) v |= uint64_t{byte(i)} << (8 * i);
  const bool negative = low > 0 && (byte(low - 1) & 0x80) != 0;
  if (negative && low < 8) v |= ~uint64_t{0} << (8 * low);
  for (size_t i = low; i < bytes->size(); ++i) {
    if (byte(i) != (negative ? 0xFF : 0x00)) return Error("integer does not fit in 64 bits");
  }
  return PushInt(static_cast<int64_t>(v));
}

absl::Status Machine::PushFloat() {
  if (absl::Status s = Need(8); !s.ok()) return s;
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(input_[pos_ + i]);
  pos_ += 8;
  Value* value = New(ValueKind::kFloat);
  std::memcpy(&value->real, &bits, sizeof bits);
  Push(value);
  return absl::OkStatus();
}

absl::Status Machine::PushText(ValueKind kind, int width) {
  absl::StatusOr<uint64_t> n = ReadLength(width);
  if (!n.ok()) return n.status();
  absl::StatusOr<absl::string_view> bytes = ReadBytes(*n);
  if (!bytes.ok()) return bytes.status();
  if (kind == ValueKind::kString && !IsPythonUtf8(*bytes)) return Error("str is not valid UTF-8");
  Value* value = New(kind);
  value->text = *bytes;
  Push(value);
  return absl::OkStatus();
}

absl::Status Machine::Memo(uint64_t index) {
  absl::StatusOr<Value*> top = Top();
  if (!top.ok()) return top.status();
  if (index < dense_memo_.size()) {
    dense_memo_[index] = *top;
  } else if (index == dense_memo_.size() && !sparse_memo_.contains(index)) {
    dense_memo_.push_back(*top);
    ++memo_size_;
  } else if (sparse_memo_.insert_or_assign(index, *top).second) {
    ++memo_size_;
  }
  return absl::OkStatus();
}

absl::Status Machine::Get(uint64_t index) {
  if (index < dense_memo_.size()) {
    Push(dense_memo_[index]);
    return absl::OkStatus();
  }
  auto it = sparse_memo_.find(index);
  if (it == sparse_memo_.end()) return Error(absl::StrCat("memo key ", index, " not found"));
  Push(it->second);
  return absl::OkStatus();
}

absl::StatusOr<PickleDocument> Unpickle(absl::string_view bytes, PickleVocabulary vocabulary) {
  if (bytes.size() > kMaxInputBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("pickle: ", bytes.size(), " bytes is more than the ", kMaxInputBytes, " this reader accepts"));
  }
  return Machine(bytes, vocabulary).Run();
}

}  // namespace dcplan::pickle
