#include "tools/dcplan/convert_pickle.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_opcodes.h"

namespace dcplan::tools::convert {
namespace {

namespace op = ::dcplan::pickle::opcodes;

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}


// --- Emitting ----------------------------------------------------------------------

class Emitter {
 public:
  Emitter(const StorageKeyer& keyer, std::string* out) : keyer_(keyer), out_(*out) {}

  absl::Status Value(const PyNode& node) {
    if (static_cast<int64_t>(out_.size()) > kMaxEmittedBytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the pickle would exceed ", kMaxEmittedBytes, " bytes"));
    }
    absl::Status status = Base(node);
    if (!status.ok()) return status;
    if (!node.appended.empty()) {
      status = Batched(node.appended.size(), false, op::kAppends, [&](size_t i) { return Value(*node.appended[i]); });
      if (!status.ok()) return status;
    }
    if (node.kind != PyKind::kDict && !node.entries.empty()) {
      status = Entries(node);
      if (!status.ok()) return status;
    }
    for (const PyNode* state : node.builds) {
      status = Value(*state);
      if (!status.ok()) return status;
      Op(op::kBuild);
    }
    return absl::OkStatus();
  }

 private:
  void Op(uint8_t code) { out_.push_back(static_cast<char>(code)); }
  void LittleEndian(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void Text(uint8_t short_op, uint8_t op4, uint8_t op8, const std::string& text) {
    if (short_op != 0 && text.size() < 256) {
      Op(short_op);
      LittleEndian(text.size(), 1);
    } else if (text.size() <= std::numeric_limits<uint32_t>::max()) {
      Op(op4);
      LittleEndian(text.size(), 4);
    } else {
      Op(op8);
      LittleEndian(text.size(), 8);
    }
    out_ += text;
  }
  void Int(int64_t v) {
    if (v >= 0 && v < 256) {
      Op(op::kBinInt1);
      LittleEndian(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      Op(op::kBinInt2);
      LittleEndian(static_cast<uint64_t>(v), 2);
    } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      Op(op::kBinInt);
      LittleEndian(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    } else {
      // The fewest two's complement bytes that keep the sign (Python's form).
      int n = 8;
      const auto u = static_cast<uint64_t>(v);
      while (n > 1) {
        const uint8_t last = (u >> (8 * (n - 1))) & 0xff;
        const bool prev_negative = (u >> (8 * (n - 1) - 1)) & 1;
        if ((last == 0x00 && !prev_negative) || (last == 0xff && prev_negative)) {
          --n;
        } else {
          break;
        }
      }
      Op(op::kLong1);
      LittleEndian(static_cast<uint64_t>(n), 1);
      LittleEndian(u, n);
    }
  }
  void String(const std::string& text) { Text(0, op::kBinUnicode, op::kBinUnicode8, text); }

  template <typename F>
  absl::Status Batched(size_t count, bool pairs, uint8_t many_op, F&& write) {
    constexpr size_t kBatch = 1000;
    for (size_t start = 0; start < count; start += kBatch) {
      const size_t end = std::min(count, start + kBatch);
      const bool single = end - start == 1 && many_op != op::kAddItems;
      if (!single) Op(op::kMark);
      for (size_t i = start; i < end; ++i) {
        absl::Status status = write(i);
        if (!status.ok()) return status;
      }
      Op(single ? (pairs ? op::kSetItem : op::kAppend) : many_op);
    }
    return absl::OkStatus();
  }
  absl::Status Entries(const PyNode& node) {
    return Batched(node.entries.size(), true, op::kSetItems, [&](size_t i) {
      absl::Status status = Value(*node.entries[i].first);
      return status.ok() ? Value(*node.entries[i].second) : status;
    });
  }
  absl::Status Items(const PyNode& node) {
    for (const PyNode* item : node.items) {
      absl::Status status = Value(*item);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status Base(const PyNode& node) {
    switch (node.kind) {
      case PyKind::kNone: Op(op::kNone); return absl::OkStatus();
      case PyKind::kBool: Op(node.boolean ? op::kNewTrue : op::kNewFalse); return absl::OkStatus();
      case PyKind::kInt: Int(node.integer); return absl::OkStatus();
      case PyKind::kBigInt:
        Text(op::kLong1, op::kLong4, op::kLong4, node.text);
        return absl::OkStatus();
      case PyKind::kFloat: {
        uint64_t bits;
        std::memcpy(&bits, &node.real, sizeof(bits));
        Op(op::kBinFloat);
        for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
        return absl::OkStatus();
      }
      case PyKind::kStr: String(node.text); return absl::OkStatus();
      case PyKind::kBytes: Text(op::kShortBinBytes, op::kBinBytes, op::kBinBytes8, node.text); return absl::OkStatus();
      case PyKind::kByteArray:  // BYTEARRAY8 has only the 8-byte length form
        Op(op::kByteArray8);
        LittleEndian(node.text.size(), 8);
        out_ += node.text;
        return absl::OkStatus();
      case PyKind::kTuple: {
        const size_t n = node.items.size();
        if (n == 0) {
          Op(op::kEmptyTuple);
          return absl::OkStatus();
        }
        if (n > 3) Op(op::kMark);
        absl::Status status = Items(node);
        if (!status.ok()) return status;
        Op(n > 3 ? op::kTuple : static_cast<uint8_t>(op::kTuple1 + n - 1));
        return absl::OkStatus();
      }
      case PyKind::kList:
        Op(op::kEmptyList);
        return Batched(node.items.size(), false, op::kAppends, [&](size_t i) { return Value(*node.items[i]); });
      case PyKind::kSet:
        Op(op::kEmptySet);
        return Batched(node.items.size(), false, op::kAddItems, [&](size_t i) { return Value(*node.items[i]); });
      case PyKind::kFrozenSet: {
        Op(op::kMark);
        absl::Status status = Items(node);
        Op(op::kFrozenSet);
        return status;
      }
      case PyKind::kDict: Op(op::kEmptyDict); return Entries(node);
      case PyKind::kGlobal:
        Op(op::kGlobal);
        absl::StrAppend(&out_, node.module, "\n", node.name, "\n");
        return absl::OkStatus();
      case PyKind::kReduce:
      case PyKind::kNewObj:
      case PyKind::kNewObjEx: {
        absl::Status status = Items(node);
        if (!status.ok()) return status;
        Op(node.kind == PyKind::kReduce ? op::kReduce : node.kind == PyKind::kNewObj ? op::kNewObj : op::kNewObjEx);
        return absl::OkStatus();
      }
      case PyKind::kStorage: {
        absl::StatusOr<std::string> key = keyer_(node);
        if (!key.ok()) return key.status();
        Op(op::kMark);
        String("storage");
        Op(op::kGlobal);
        absl::StrAppend(&out_, node.module, "\n", node.name, "\n");
        String(*key);
        String("cpu");
        Int(node.integer);
        Op(op::kTuple);
        Op(op::kBinPersId);
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unknown node kind");
  }

  const StorageKeyer& keyer_;
  std::string& out_;
};

}  // namespace

std::string DescribeNode(const PyNode& node) {
  switch (node.kind) {
    case PyKind::kNone: return "None";
    case PyKind::kBool: return "bool";
    case PyKind::kInt:
    case PyKind::kBigInt: return "int";
    case PyKind::kFloat: return "float";
    case PyKind::kStr: return "str";
    case PyKind::kBytes: return "bytes";
    case PyKind::kByteArray: return "bytearray";
    case PyKind::kTuple: return "tuple";
    case PyKind::kList: return "list";
    case PyKind::kDict: return "dict";
    case PyKind::kSet: return "set";
    case PyKind::kFrozenSet: return "frozenset";
    case PyKind::kGlobal: return absl::StrCat("global ", node.module, ".", node.name);
    case PyKind::kReduce:
    case PyKind::kNewObj:
    case PyKind::kNewObjEx: {
      const PyNode& callable = *node.items[0];
      return callable.kind == PyKind::kGlobal ? absl::StrCat(callable.module, ".", callable.name, "(...)")
                                              : "object";
    }
    case PyKind::kStorage: return absl::StrCat("storage ", node.module, ".", node.name);
  }
  return "value";
}

bool IsGlobal(const PyNode& node, absl::string_view module, absl::string_view name) {
  return node.kind == PyKind::kGlobal && node.module == module && node.name == name;
}

PyNode* PyGraph::New(PyKind kind) {
  nodes_.emplace_back();
  nodes_.back().kind = kind;
  return &nodes_.back();
}

PyNode* PyGraph::NewStr(std::string text) {
  PyNode* node = New(PyKind::kStr);
  node->text = std::move(text);
  return node;
}

PyNode* PyGraph::NewInt(int64_t value) {
  PyNode* node = New(PyKind::kInt);
  node->integer = value;
  return node;
}

PyNode* PyGraph::NewGlobal(std::string module, std::string name) {
  PyNode* node = New(PyKind::kGlobal);
  node->module = std::move(module);
  node->name = std::move(name);
  return node;
}

absl::StatusOr<PyNode*> PyGraph::NewContainer(PyKind kind, std::vector<PyNode*> items) {
  PyNode* node = New(kind);
  for (PyNode* item : items) {
    absl::Status status = Insert(node, item);
    if (!status.ok()) return status;
    node->items.push_back(item);
  }
  return node;
}

absl::StatusOr<PyNode*> PyGraph::NewReduce(PyNode* callable, PyNode* args) {
  PyNode* node = New(PyKind::kReduce);
  for (PyNode* part : {callable, args}) {
    absl::Status status = Insert(node, part);
    if (!status.ok()) return status;
    node->items.push_back(part);
  }
  return node;
}

absl::Status PyGraph::Insert(PyNode* parent, const PyNode* child) {
  if (parent == child) return absl::InvalidArgumentError("a value cannot contain itself");
  if (parent->contained) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", DescribeNode(*parent), " is modified after it was stored in another value"));
  }
  const_cast<PyNode*>(child)->contained = true;
  parent->depth = std::max(parent->depth, child->depth + 1);
  parent->expanded = SaturatingAdd(parent->expanded, child->expanded);
  if (parent->depth > kMaxPickleDepth) {
    return absl::InvalidArgumentError(absl::StrCat("values nest deeper than ", kMaxPickleDepth, " levels"));
  }
  if (parent->expanded > kMaxExpandedNodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a value has more than ", kMaxExpandedNodes, " parts (counting shared parts once per use)"));
  }
  return absl::OkStatus();
}

absl::Status PyGraph::AddEntry(PyNode* dict, PyNode* key, PyNode* value) {
  absl::Status status = Insert(dict, key);
  if (status.ok()) status = Insert(dict, value);
  if (!status.ok()) return status;
  dict->entries.emplace_back(key, value);
  return absl::OkStatus();
}

absl::Status EmitValue(const PyNode& value, const StorageKeyer& keyer, std::string* out) {
  return Emitter(keyer, out).Value(value);
}

absl::StatusOr<std::string> EmitPickle(const PyNode& value, const StorageKeyer& keyer) {
  std::string out = {static_cast<char>(op::kProto), '\x02'};
  absl::Status status = EmitValue(value, keyer, &out);
  if (!status.ok()) return status;
  out.push_back(static_cast<char>(op::kStop));
  return out;
}

}  // namespace dcplan::tools::convert
