// The pickle VM's containers, globals and object construction (NEWOBJ,
// REDUCE, BUILD): where the allowlist and the no-cycles rule are enforced.

#include <algorithm>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_allowlist.h"
#include "api/pickle/pickle_machine.h"

namespace dcplan::pickle {
namespace {

// Messages quote names from the input: keep them printable and short.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxShown = 120;
  std::string shown = absl::CHexEscape(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) absl::StrAppend(&shown, "...");
  return absl::StrCat("'", shown, "'");
}

bool IsDataclass(GlobalKind kind) {
  switch (kind) {
    case GlobalKind::kMetadata:
    case GlobalKind::kTensorStorageMetadata:
    case GlobalKind::kBytesStorageMetadata:
    case GlobalKind::kChunkStorageMetadata:
    case GlobalKind::kTensorProperties:
    case GlobalKind::kMetadataIndex:
    case GlobalKind::kStorageMeta:
    case GlobalKind::kStorageInfo:
      return true;
    default:
      return false;
  }
}

// Members of _MEM_FORMAT_ENCODING, for getattr(enum, name).
std::optional<int64_t> MemFormatMember(absl::string_view name) {
  if (name == "TORCH_CONTIGUOUS_FORMAT") return 0;
  if (name == "TORCH_CHANNELS_LAST") return 1;
  if (name == "TORCH_PRESERVE_FORMAT") return 2;
  return std::nullopt;
}

}  // namespace

absl::Status Machine::BuildSequence(ValueKind kind, size_t first) {
  Value* sequence = New(kind);
  doc_.Reserve(sequence->items, stack_.size() - first);
  for (size_t i = first; i < stack_.size(); ++i) {
    if (absl::Status s = Adopt(sequence, stack_[i]); !s.ok()) return s;
    doc_.Append(sequence->items, stack_[i]);
  }
  stack_.resize(first);
  Push(sequence);
  return absl::OkStatus();
}

absl::Status Machine::MakeTuple(size_t count) {
  if (stack_.size() < Base() + count) return Error("stack underflow");
  return BuildSequence(ValueKind::kTuple, stack_.size() - count);
}

absl::Status Machine::Appends() {
  absl::StatusOr<size_t> mark = PopMark();
  if (!mark.ok()) return mark.status();
  if (*mark == 0 || *mark - 1 < Base()) return Error("stack underflow");
  Value* list = stack_[*mark - 1];
  if (list->kind != ValueKind::kList) return Error(absl::StrCat("cannot append to ", DescribeValue(*list)));
  if (absl::Status s = CheckMutable(*list); !s.ok()) return s;
  doc_.Reserve(list->items, stack_.size() - *mark);
  for (size_t i = *mark; i < stack_.size(); ++i) {
    if (absl::Status s = Adopt(list, stack_[i]); !s.ok()) return s;
    doc_.Append(list->items, stack_[i]);
  }
  stack_.resize(*mark);
  return absl::OkStatus();
}

absl::Status Machine::SetItems(bool batch) {
  size_t first;
  if (batch) {
    absl::StatusOr<size_t> mark = PopMark();
    if (!mark.ok()) return mark.status();
    first = *mark;
  } else {
    if (stack_.size() < Base() + 2) return Error("stack underflow");
    first = stack_.size() - 2;
  }
  if (first == 0 || first - 1 < Base()) return Error("stack underflow");
  if ((stack_.size() - first) % 2 != 0) return Error("odd number of items for SETITEMS");
  Value* dict = stack_[first - 1];
  if (dict->kind != ValueKind::kDict) return Error(absl::StrCat("cannot set items of ", DescribeValue(*dict)));
  if (absl::Status s = CheckMutable(*dict); !s.ok()) return s;
  doc_.Reserve(dict->entries, (stack_.size() - first) / 2);
  for (size_t i = first; i < stack_.size(); i += 2) {
    if (absl::Status s = Adopt(dict, stack_[i]); !s.ok()) return s;
    if (absl::Status s = Adopt(dict, stack_[i + 1]); !s.ok()) return s;
    doc_.Append(dict->entries, DictEntry{stack_[i], stack_[i + 1]});
  }
  stack_.resize(first);
  return absl::OkStatus();
}

absl::Status Machine::MakeDict() {
  absl::StatusOr<size_t> mark = PopMark();
  if (!mark.ok()) return mark.status();
  // DICT = EMPTY_DICT under the items, then SETITEMS.
  stack_.insert(stack_.begin() + *mark, New(ValueKind::kDict));
  marks_.push_back(*mark + 1);
  return SetItems(true);
}

absl::Status Machine::PushGlobal(absl::string_view module, absl::string_view name) {
  std::optional<AllowedGlobal> allowed = vocabulary_ == PickleVocabulary::kTensorRecord
                                             ? ResolveTensorRecordGlobal(module, name)
                                             : ResolveGlobal(module, name);
  if (!allowed) return Error(absl::StrCat("global ", Quote(absl::StrCat(module, ".", name)), " is not allowed"));
  Value* value = New(ValueKind::kGlobal);
  value->global = allowed->kind;
  value->integer = allowed->payload;
  value->text = doc_.Intern(std::move(allowed->display_name));
  Push(value);
  return absl::OkStatus();
}

absl::Status Machine::StackGlobal() {
  absl::StatusOr<Value*> name = Pop();
  if (!name.ok()) return name.status();
  absl::StatusOr<Value*> module = Pop();
  if (!module.ok()) return module.status();
  if ((*name)->kind != ValueKind::kString || (*module)->kind != ValueKind::kString) {
    return Error("STACK_GLOBAL requires two str");
  }
  return PushGlobal((*module)->text, (*name)->text);
}

absl::Status Machine::NewObj() {
  absl::StatusOr<Value*> args = Pop();
  if (!args.ok()) return args.status();
  absl::StatusOr<Value*> cls = Pop();
  if (!cls.ok()) return cls.status();
  if ((*cls)->kind != ValueKind::kGlobal || !IsDataclass((*cls)->global)) {
    return Error(absl::StrCat("NEWOBJ of ", DescribeValue(**cls), " is not allowed"));
  }
  if ((*args)->kind != ValueKind::kTuple || !(*args)->items.empty()) {
    return Error(absl::StrCat("NEWOBJ of ", (*cls)->text, " with arguments is not supported"));
  }
  Value* object = New(ValueKind::kObject);
  object->global = (*cls)->global;
  object->text = (*cls)->text;
  object->state = nullptr;
  Push(object);
  return absl::OkStatus();
}

absl::Status Machine::Reduce() {
  absl::StatusOr<Value*> args = Pop();
  if (!args.ok()) return args.status();
  absl::StatusOr<Value*> callable = Pop();
  if (!callable.ok()) return callable.status();
  const Value& function = **callable;
  if ((*args)->kind != ValueKind::kTuple) return Error("REDUCE arguments must be a tuple");
  if (function.kind != ValueKind::kGlobal) {
    return Error(absl::StrCat("REDUCE of ", DescribeValue(function), " is not allowed"));
  }
  switch (function.global) {
    case GlobalKind::kGetattr:
      return ReduceGetattr(**args);
    case GlobalKind::kOrderedDict:
      if (!(*args)->items.empty()) return Error("collections.OrderedDict with arguments is not supported");
      Push(New(ValueKind::kDict));
      return absl::OkStatus();
    case GlobalKind::kRebuildTensorV2:
    case GlobalKind::kRebuildTensorV3:
    case GlobalKind::kTorchSize:
    case GlobalKind::kGetLayout:
    case GlobalKind::kMemFormatEncoding:
    case GlobalKind::kPosixPath:
    case GlobalKind::kWindowsPath: {
      Value* object = New(ValueKind::kObject);
      object->global = function.global;
      object->text = function.text;
      object->state = nullptr;
      for (const Value* item : (*args)->items) {
        // Tuple items are already contained; only the depth matters here.
        object->depth = std::max(object->depth, item->depth + 1);
        doc_.Append(object->items, item);
      }
      if (object->depth > kMaxNestingDepth) {
        return Error(absl::StrCat("values nested deeper than ", kMaxNestingDepth, " levels"));
      }
      Push(object);
      return absl::OkStatus();
    }
    default:
      return Error(absl::StrCat("REDUCE of ", DescribeValue(function), " is not allowed"));
  }
}

// builtins.getattr is only allowed to fetch a member of the memory-format
// enum (how Python 3.11+ pickles enum members).
absl::Status Machine::ReduceGetattr(const Value& args) {
  if (args.items.size() != 2 || args.items[0]->kind != ValueKind::kGlobal ||
      args.items[0]->global != GlobalKind::kMemFormatEncoding || args.items[1]->kind != ValueKind::kString) {
    return Error("builtins.getattr is only allowed on the memory-format enum");
  }
  std::optional<int64_t> member = MemFormatMember(args.items[1]->text);
  if (!member) return Error(absl::StrCat("unknown memory-format enum member ", Quote(args.items[1]->text)));
  Value* value = New(ValueKind::kInt);
  value->integer = *member;
  value->contained = true;
  Value* object = New(ValueKind::kObject);
  object->global = GlobalKind::kMemFormatEncoding;
  object->state = nullptr;
  object->text = args.items[0]->text;
  doc_.Append(object->items, value);
  object->depth = 2;
  Push(object);
  return absl::OkStatus();
}

// BINPERSID: torch.save refers to each storage by a persistent id, which
// the reader of the document resolves; here it is only recorded.
absl::Status Machine::PersistentId() {
  absl::StatusOr<Value*> id = Pop();
  if (!id.ok()) return id.status();
  Value* object = New(ValueKind::kObject);
  object->global = GlobalKind::kPersistentId;
  object->text = "persistent id";
  if (absl::Status s = Adopt(object, *id); !s.ok()) return s;
  doc_.Append(object->items, *id);
  Push(object);
  return absl::OkStatus();
}

absl::Status Machine::Build() {
  absl::StatusOr<Value*> state = Pop();
  if (!state.ok()) return state.status();
  absl::StatusOr<Value*> target = Top();
  if (!target.ok()) return target.status();
  Value& object = **target;
  if (object.kind != ValueKind::kObject || !IsDataclass(object.global)) {
    return Error(absl::StrCat("BUILD of ", DescribeValue(object), " is not allowed"));
  }
  if (object.state != nullptr) return Error(absl::StrCat("BUILD applied twice to ", object.text));
  if (absl::Status s = CheckMutable(object); !s.ok()) return s;
  if (absl::Status s = Adopt(&object, *state); !s.ok()) return s;
  object.state = *state;
  return absl::OkStatus();
}

}  // namespace dcplan::pickle
