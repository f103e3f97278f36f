// ParsePickle: the pickle virtual machine, building a PyGraph.

#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_opcodes.h"
#include "tools/dcplan/convert_pickle.h"

namespace dcplan::tools::convert {
namespace {

namespace op = ::dcplan::pickle::opcodes;

class Parser {
 public:
  Parser(absl::string_view bytes, PyGraph& graph, const StorageResolver& resolver)
      : bytes_(bytes), graph_(graph), resolver_(resolver) {}

  absl::StatusOr<const PyNode*> Run() {
    while (true) {
      const size_t at = pos_;
      if (pos_ >= bytes_.size()) return Fail(at, "the pickle ends without STOP");
      const uint8_t code = static_cast<uint8_t>(bytes_[pos_++]);
      if (code == op::kStop) {
        if (stack_.size() != 1 || !marks_.empty()) return Fail(at, "STOP with a malformed stack");
        if (pos_ != bytes_.size()) return Fail(pos_, "bytes after STOP");
        return stack_.back();
      }
      absl::Status status = Step(code);
      if (!status.ok()) return Fail(at, status.message());
    }
  }

 private:
  absl::Status Fail(size_t at, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("pickle offset ", at, ": ", message));
  }

  absl::StatusOr<absl::string_view> Take(uint64_t n) {
    if (n > bytes_.size() - pos_) return absl::InvalidArgumentError("the pickle is truncated");
    absl::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint64_t> Unsigned(int n) {
    absl::StatusOr<absl::string_view> raw = Take(n);
    if (!raw.ok()) return raw.status();
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>((*raw)[i]);
    return v;
  }
  absl::StatusOr<std::string> Line() {
    const size_t end = bytes_.find('\n', pos_);
    if (end == absl::string_view::npos) return absl::InvalidArgumentError("the pickle is truncated");
    std::string line(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  absl::StatusOr<PyNode*> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return absl::InvalidArgumentError("stack underflow");
    }
    PyNode* top = stack_.back();
    stack_.pop_back();
    return top;
  }
  absl::StatusOr<PyNode*> Top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return absl::InvalidArgumentError("stack underflow");
    }
    return stack_.back();
  }
  absl::StatusOr<std::vector<PyNode*>> PopToMark() {
    if (marks_.empty()) return absl::InvalidArgumentError("no MARK");
    std::vector<PyNode*> items(stack_.begin() + static_cast<ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  absl::Status PushContainer(PyKind kind, std::vector<PyNode*> items) {
    absl::StatusOr<PyNode*> node = graph_.NewContainer(kind, std::move(items));
    if (!node.ok()) return node.status();
    stack_.push_back(*node);
    return absl::OkStatus();
  }
  absl::Status PushText(PyKind kind, absl::StatusOr<uint64_t> length) {
    if (!length.ok()) return length.status();
    absl::StatusOr<absl::string_view> raw = Take(*length);
    if (!raw.ok()) return raw.status();
    PyNode* node = graph_.New(kind);
    node->text = std::string(*raw);
    stack_.push_back(node);
    return absl::OkStatus();
  }
  absl::Status PushLong(absl::StatusOr<uint64_t> length) {
    if (!length.ok()) return length.status();
    absl::StatusOr<absl::string_view> raw = Take(*length);
    if (!raw.ok()) return raw.status();
    if (raw->size() <= 8) {
      uint64_t v = 0;
      for (size_t i = raw->size(); i-- > 0;) v = (v << 8) | static_cast<uint8_t>((*raw)[i]);
      if (!raw->empty() && raw->size() < 8 && (static_cast<uint8_t>(raw->back()) & 0x80)) {
        v |= ~uint64_t{0} << (8 * raw->size());  // sign extension
      }
      stack_.push_back(graph_.NewInt(static_cast<int64_t>(v)));
      return absl::OkStatus();
    }
    PyNode* node = graph_.New(PyKind::kBigInt);
    node->text = std::string(*raw);
    stack_.push_back(node);
    return absl::OkStatus();
  }

  // APPEND(S) / ADDITEMS: into a list or set, or recorded on an object.
  absl::Status AddItems(PyNode* target, const std::vector<PyNode*>& items) {
    for (PyNode* item : items) {
      absl::Status status = graph_.Insert(target, item);
      if (!status.ok()) return status;
      if (target->kind == PyKind::kList || target->kind == PyKind::kSet) {
        target->items.push_back(item);
      } else {
        target->appended.push_back(item);
      }
    }
    return absl::OkStatus();
  }
  absl::Status SetItems(PyNode* target, const std::vector<PyNode*>& items) {
    if (items.size() % 2 != 0) return absl::InvalidArgumentError("SETITEMS with an odd number of values");
    for (size_t i = 0; i < items.size(); i += 2) {
      absl::Status status = graph_.AddEntry(target, items[i], items[i + 1]);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status PersistentLoad(PyNode* pid) {
    const auto& f = pid->items;
    const bool storage = pid->kind == PyKind::kTuple && f.size() == 5 && f[0]->kind == PyKind::kStr &&
                         f[0]->text == "storage" && f[1]->kind == PyKind::kGlobal && f[2]->kind == PyKind::kStr &&
                         f[3]->kind == PyKind::kStr && f[4]->kind == PyKind::kInt && f[4]->integer >= 0;
    if (!storage) {
      return absl::InvalidArgumentError(
          absl::StrCat("persistent id ", DescribeNode(*pid), " is not a torch storage"));
    }
    absl::StatusOr<int64_t> source = resolver_(*f[1], f[2]->text, f[4]->integer);
    if (!source.ok()) return source.status();
    PyNode* node = graph_.New(PyKind::kStorage);
    node->module = f[1]->module;
    node->name = f[1]->name;
    node->integer = f[4]->integer;
    node->source = *source;
    stack_.push_back(node);
    return absl::OkStatus();
  }

  absl::Status Memo(uint32_t index) {
    absl::StatusOr<PyNode*> top = Top();
    if (!top.ok()) return top.status();
    memo_[index] = *top;
    return absl::OkStatus();
  }
  absl::Status Recall(absl::StatusOr<uint64_t> index) {
    if (!index.ok()) return index.status();
    auto it = memo_.find(static_cast<uint32_t>(*index));
    if (it == memo_.end()) return absl::InvalidArgumentError(absl::StrCat("memo ", *index, " is not set"));
    stack_.push_back(it->second);
    return absl::OkStatus();
  }

  absl::Status Step(uint8_t code);

  absl::string_view bytes_;
  PyGraph& graph_;
  const StorageResolver& resolver_;
  size_t pos_ = 0;
  std::vector<PyNode*> stack_;
  std::vector<size_t> marks_;
  absl::flat_hash_map<uint32_t, PyNode*> memo_;
};

absl::Status Parser::Step(uint8_t code) {
  switch (code) {
    case op::kProto: return Unsigned(1).status();
    case op::kFrame: return Unsigned(8).status();
    case op::kMark: marks_.push_back(stack_.size()); return absl::OkStatus();
    case op::kPop: return Pop().status();
    case op::kPopMark: return PopToMark().status();
    case op::kDup: {
      absl::StatusOr<PyNode*> top = Top();
      if (!top.ok()) return top.status();
      stack_.push_back(*top);
      return absl::OkStatus();
    }
    case op::kNone: stack_.push_back(graph_.New(PyKind::kNone)); return absl::OkStatus();
    case op::kNewTrue:
    case op::kNewFalse: {
      PyNode* node = graph_.New(PyKind::kBool);
      node->boolean = code == op::kNewTrue;
      stack_.push_back(node);
      return absl::OkStatus();
    }
    case op::kBinInt: {
      absl::StatusOr<uint64_t> v = Unsigned(4);
      if (!v.ok()) return v.status();
      stack_.push_back(graph_.NewInt(static_cast<int32_t>(static_cast<uint32_t>(*v))));
      return absl::OkStatus();
    }
    case op::kBinInt1:
    case op::kBinInt2: {
      absl::StatusOr<uint64_t> v = Unsigned(code == op::kBinInt1 ? 1 : 2);
      if (!v.ok()) return v.status();
      stack_.push_back(graph_.NewInt(static_cast<int64_t>(*v)));
      return absl::OkStatus();
    }
    case op::kLong1: return PushLong(Unsigned(1));
    case op::kLong4: return PushLong(Unsigned(4));
    case op::kBinFloat: {
      absl::StatusOr<absl::string_view> raw = Take(8);
      if (!raw.ok()) return raw.status();
      uint64_t bits = 0;
      for (char c : *raw) bits = (bits << 8) | static_cast<uint8_t>(c);
      PyNode* node = graph_.New(PyKind::kFloat);
      std::memcpy(&node->real, &bits, sizeof(bits));
      stack_.push_back(node);
      return absl::OkStatus();
    }
    case op::kShortBinUnicode: return PushText(PyKind::kStr, Unsigned(1));
    case op::kBinUnicode: return PushText(PyKind::kStr, Unsigned(4));
    case op::kBinUnicode8: return PushText(PyKind::kStr, Unsigned(8));
    case op::kShortBinBytes: return PushText(PyKind::kBytes, Unsigned(1));
    case op::kBinBytes: return PushText(PyKind::kBytes, Unsigned(4));
    case op::kBinBytes8: return PushText(PyKind::kBytes, Unsigned(8));
    case op::kByteArray8: return PushText(PyKind::kByteArray, Unsigned(8));
    case op::kEmptyTuple: return PushContainer(PyKind::kTuple, {});
    case op::kTuple1:
    case op::kTuple2:
    case op::kTuple3: {
      std::vector<PyNode*> items(code - op::kTuple1 + 1);
      for (size_t i = items.size(); i-- > 0;) {
        absl::StatusOr<PyNode*> item = Pop();
        if (!item.ok()) return item.status();
        items[i] = *item;
      }
      return PushContainer(PyKind::kTuple, std::move(items));
    }
    case op::kTuple:
    case op::kList:
    case op::kFrozenSet: {
      absl::StatusOr<std::vector<PyNode*>> items = PopToMark();
      if (!items.ok()) return items.status();
      const PyKind kind = code == op::kTuple ? PyKind::kTuple : code == op::kList ? PyKind::kList : PyKind::kFrozenSet;
      return PushContainer(kind, *std::move(items));
    }
    case op::kEmptyList: return PushContainer(PyKind::kList, {});
    case op::kEmptyDict: return PushContainer(PyKind::kDict, {});
    case op::kEmptySet: return PushContainer(PyKind::kSet, {});
    case op::kDict: {
      absl::StatusOr<std::vector<PyNode*>> items = PopToMark();
      if (!items.ok()) return items.status();
      stack_.push_back(graph_.New(PyKind::kDict));
      return SetItems(stack_.back(), *items);
    }
    case op::kAppend:
    case op::kSetItem: {
      std::vector<PyNode*> items(code == op::kAppend ? 1 : 2);
      for (size_t i = items.size(); i-- > 0;) {
        absl::StatusOr<PyNode*> item = Pop();
        if (!item.ok()) return item.status();
        items[i] = *item;
      }
      absl::StatusOr<PyNode*> target = Top();
      if (!target.ok()) return target.status();
      return code == op::kAppend ? AddItems(*target, items) : SetItems(*target, items);
    }
    case op::kAppends:
    case op::kAddItems:
    case op::kSetItems: {
      absl::StatusOr<std::vector<PyNode*>> items = PopToMark();
      if (!items.ok()) return items.status();
      absl::StatusOr<PyNode*> target = Top();
      if (!target.ok()) return target.status();
      return code == op::kSetItems ? SetItems(*target, *items) : AddItems(*target, *items);
    }
    case op::kGlobal: {
      absl::StatusOr<std::string> module = Line();
      if (!module.ok()) return module.status();
      absl::StatusOr<std::string> name = Line();
      if (!name.ok()) return name.status();
      stack_.push_back(graph_.NewGlobal(*std::move(module), *std::move(name)));
      return absl::OkStatus();
    }
    case op::kStackGlobal: {
      absl::StatusOr<PyNode*> name = Pop();
      if (!name.ok()) return name.status();
      absl::StatusOr<PyNode*> module = Pop();
      if (!module.ok()) return module.status();
      if ((*module)->kind != PyKind::kStr || (*name)->kind != PyKind::kStr) {
        return absl::InvalidArgumentError("STACK_GLOBAL needs two strings");
      }
      // No importable name has one, and EmitPickle writes names as GLOBAL lines.
      if (absl::StrContains((*module)->text, '\n') || absl::StrContains((*name)->text, '\n')) {
        return absl::InvalidArgumentError("STACK_GLOBAL name contains a newline");
      }
      stack_.push_back(graph_.NewGlobal((*module)->text, (*name)->text));
      return absl::OkStatus();
    }
    case op::kReduce:
    case op::kNewObj:
    case op::kNewObjEx: {
      std::vector<PyNode*> parts(code == op::kNewObjEx ? 3 : 2);
      for (size_t i = parts.size(); i-- > 0;) {
        absl::StatusOr<PyNode*> part = Pop();
        if (!part.ok()) return part.status();
        parts[i] = *part;
      }
      if (parts[1]->kind != PyKind::kTuple) return absl::InvalidArgumentError("call arguments are not a tuple");
      PyNode* node = graph_.New(code == op::kReduce ? PyKind::kReduce : code == op::kNewObj ? PyKind::kNewObj
                                                                                             : PyKind::kNewObjEx);
      for (PyNode* part : parts) {
        absl::Status status = graph_.Insert(node, part);
        if (!status.ok()) return status;
        node->items.push_back(part);
      }
      stack_.push_back(node);
      return absl::OkStatus();
    }
    case op::kBuild: {
      absl::StatusOr<PyNode*> state = Pop();
      if (!state.ok()) return state.status();
      absl::StatusOr<PyNode*> target = Top();
      if (!target.ok()) return target.status();
      absl::Status status = graph_.Insert(*target, *state);
      if (!status.ok()) return status;
      (*target)->builds.push_back(*state);
      return absl::OkStatus();
    }
    case op::kBinPersId: {
      absl::StatusOr<PyNode*> pid = Pop();
      if (!pid.ok()) return pid.status();
      return PersistentLoad(*pid);
    }
    case op::kBinPut: {
      absl::StatusOr<uint64_t> index = Unsigned(1);
      return index.ok() ? Memo(static_cast<uint32_t>(*index)) : index.status();
    }
    case op::kLongBinPut: {
      absl::StatusOr<uint64_t> index = Unsigned(4);
      return index.ok() ? Memo(static_cast<uint32_t>(*index)) : index.status();
    }
    case op::kMemoize: return Memo(static_cast<uint32_t>(memo_.size()));
    case op::kBinGet: return Recall(Unsigned(1));
    case op::kLongBinGet: return Recall(Unsigned(4));
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported opcode 0x", absl::Hex(code, absl::kZeroPad2)));
  }
}

}  // namespace

absl::StatusOr<const PyNode*> ParsePickle(absl::string_view bytes, PyGraph& graph, const StorageResolver& resolver) {
  return Parser(bytes, graph, resolver).Run();
}

}  // namespace dcplan::tools::convert
