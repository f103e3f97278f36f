// ParseMetadataPickle: maps the unpickled object graph to dcplan::Metadata.

#include "api/pickle/metadata_pickle.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/internal/confined_path.h"
#include "api/pickle/pickle_reader.h"

namespace dcplan {
namespace {

using pickle::GlobalKind;
using pickle::Value;
using pickle::ValueKind;

// Where a value sits in the metadata, rendered only when an error is reported
// ("state_dict_metadata['w'].chunks[3].offsets").
struct Where {
  enum Kind { kRoot, kField, kKey, kIndex, kKeyNumber, kIndexKey };
  const Where* parent = nullptr;
  Kind kind = kRoot;
  absl::string_view text;
  int64_t index = 0;
  const MetadataIndex* metadata_index = nullptr;

  Where Field(absl::string_view name) const { return {this, kField, name}; }
  Where Key(absl::string_view key) const { return {this, kKey, key}; }
  Where Index(int64_t i) const { return {this, kIndex, {}, i}; }
  // The i-th key of a dict (when the key itself is wrong).
  Where KeyNumber(int64_t i) const { return {this, kKeyNumber, {}, i}; }
  // The value stored under a MetadataIndex key.
  Where ValueOf(const MetadataIndex& key) const { return {this, kIndexKey, {}, 0, &key}; }

  std::string Render() const {
    std::string out = parent ? parent->Render() : std::string();
    switch (kind) {
      case kRoot: break;
      case kField: absl::StrAppend(&out, out.empty() ? "" : ".", text); break;
      case kKey: absl::StrAppend(&out, "['", absl::CHexEscape(text), "']"); break;
      case kIndex: absl::StrAppend(&out, "[", index, "]"); break;
      case kKeyNumber: absl::StrAppend(&out, "[key #", index, "]"); break;
      case kIndexKey: absl::StrAppend(&out, "[", ToString(*metadata_index), "]"); break;
    }
    return out;
  }
};

class Mapper {
 public:
  Mapper(absl::string_view source, size_t input_bytes)
      : source_(source),
        budget_(kMetadataCopyBaseBytes + kMetadataCopyBytesPerInputByte * static_cast<int64_t>(input_bytes)) {}

  absl::StatusOr<Metadata> MapMetadata(const Value& root) const;

 private:
  absl::Status Fail(const Where& where, absl::string_view message) const {
    const std::string path = where.Render();
    return absl::InvalidArgumentError(
        absl::StrCat("'", source_, "': ", path, path.empty() ? "" : ": ", message));
  }
  absl::Status Expected(const Where& where, absl::string_view what, const Value& found) const {
    return Fail(where, absl::StrCat("expected ", what, ", found ", pickle::DescribeValue(found)));
  }

  // The instance dict of a dataclass object of class `kind` (nullptr when it
  // was never BUILT, i.e. all fields have their class defaults).
  absl::StatusOr<const Value*> InstanceState(const Value& v, GlobalKind kind, absl::string_view class_name,
                                             const Where& where) const;
  absl::StatusOr<const Value*> Required(const Value* state, absl::string_view name, const Where& where) const;

  absl::StatusOr<int64_t> Int(const Value& v, const Where& where) const;
  absl::StatusOr<int64_t> NonNegativeInt(const Value& v, const Where& where) const;
  absl::StatusOr<std::string> Str(const Value& v, const Where& where) const;
  absl::StatusOr<std::optional<std::string>> OptionalStr(const Value* v, const Where& where) const;
  absl::StatusOr<bool> Bool(const Value& v, const Where& where) const;
  absl::StatusOr<std::vector<std::string>> StrList(const Value& v, const Where& where) const;
  absl::StatusOr<Shape> Size(const Value& v, const Where& where) const;

  absl::StatusOr<TensorProperties> Properties(const Value& v, const Where& where) const;
  absl::StatusOr<Layout> LayoutOf(const Value& v, const Where& where) const;
  absl::StatusOr<MemoryFormat> MemoryFormatOf(const Value& v, const Where& where) const;
  absl::StatusOr<StorageMetadata> Storage(const Value& v, const Where& where) const;
  absl::StatusOr<StateDictMetadata> StateDict(const Value& v, const Where& where) const;
  absl::StatusOr<FlattenMapping> PlannerData(const Value& v, const Where& where) const;
  absl::StatusOr<MetadataIndex> Index(const Value& v, const Where& where) const;
  absl::StatusOr<StorageInfo> Info(const Value& v, const Where& where) const;
  absl::StatusOr<StorageData> Locations(const Value& v, const Where& where) const;
  absl::StatusOr<std::optional<std::string>> CheckpointId(const Value* v, const Where& where) const;
  absl::StatusOr<StorageMeta> Meta(const Value& v, const Where& where) const;

  // Charges `bytes` of copied strings and shapes against the budget (see
  // the header): a value shared through the pickle memo is copied at each
  // use, so many references to one large value could otherwise expand a
  // small file into gigabytes.
  absl::Status Charge(size_t bytes, const Where& where) const {
    budget_ -= static_cast<int64_t>(bytes) + kCopyOverheadBytes;
    if (budget_ < 0) {
      return Fail(where, absl::StrCat("the values referenced through the pickle memo expand beyond ",
                                      kMetadataCopyBytesPerInputByte, " times the file size plus ",
                                      kMetadataCopyBaseBytes >> 20, " MiB (a memo amplification bomb?)"));
    }
    return absl::OkStatus();
  }
  static constexpr int64_t kCopyOverheadBytes = 16;

  absl::string_view source_;
  mutable int64_t budget_;
};

// The last value stored under the str key `name` (Python's dict update keeps
// the last one), or nullptr.
const Value* FieldOf(const Value* state, absl::string_view name) {
  if (state == nullptr) return nullptr;
  for (auto it = state->entries.rbegin(); it != state->entries.rend(); ++it) {
    if (it->first->kind == ValueKind::kString && it->first->text == name) return it->second;
  }
  return nullptr;
}

bool IsNone(const Value* v) { return v == nullptr || v->kind == ValueKind::kNone; }

absl::StatusOr<const Value*> Mapper::InstanceState(const Value& v, GlobalKind kind, absl::string_view class_name,
                                                   const Where& where) const {
  if (v.kind != ValueKind::kObject || v.global != kind) return Expected(where, class_name, v);
  if (v.state != nullptr && v.state->kind != ValueKind::kDict) {
    return Fail(where, absl::StrCat(class_name, " state: expected dict, found ", pickle::DescribeValue(*v.state)));
  }
  return v.state;
}

absl::StatusOr<const Value*> Mapper::Required(const Value* state, absl::string_view name,
                                              const Where& where) const {
  const Value* v = FieldOf(state, name);
  if (v == nullptr) return Fail(where, absl::StrCat("missing field '", name, "'"));
  return v;
}

absl::StatusOr<int64_t> Mapper::Int(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kInt) return Expected(where, "int", v);
  return v.integer;
}

absl::StatusOr<int64_t> Mapper::NonNegativeInt(const Value& v, const Where& where) const {
  absl::StatusOr<int64_t> i = Int(v, where);
  if (i.ok() && *i < 0) return Fail(where, absl::StrCat("must not be negative, found ", *i));
  return i;
}

absl::StatusOr<std::string> Mapper::Str(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kString) return Expected(where, "str", v);
  if (absl::Status charged = Charge(v.text.size(), where); !charged.ok()) return charged;
  return std::string(v.text);
}

absl::StatusOr<std::optional<std::string>> Mapper::OptionalStr(const Value* v, const Where& where) const {
  if (IsNone(v)) return std::optional<std::string>();
  absl::StatusOr<std::string> s = Str(*v, where);
  if (!s.ok()) return s.status();
  return std::optional<std::string>(*std::move(s));
}

absl::StatusOr<bool> Mapper::Bool(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kBool) return Expected(where, "bool", v);
  return v.boolean;
}

absl::StatusOr<std::vector<std::string>> Mapper::StrList(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kList) return Expected(where, "list of str", v);
  std::vector<std::string> out;
  out.reserve(v.items.size());
  for (size_t i = 0; i < v.items.size(); ++i) {
    absl::StatusOr<std::string> s = Str(*v.items[i], where.Index(i));
    if (!s.ok()) return s.status();
    out.push_back(*std::move(s));
  }
  return out;
}

// torch.Size is REDUCE(torch.Size, (tuple_of_ints,)); torch.Size() is empty.
absl::StatusOr<Shape> Mapper::Size(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kObject || v.global != GlobalKind::kTorchSize) return Expected(where, "torch.Size", v);
  if (v.items.empty()) return Shape();
  const Value& dims = *v.items[0];
  if (v.items.size() != 1 || (dims.kind != ValueKind::kTuple && dims.kind != ValueKind::kList)) {
    return Fail(where, "torch.Size must be built from one tuple of ints");
  }
  if (absl::Status charged = Charge(dims.items.size() * sizeof(int64_t), where); !charged.ok()) return charged;
  Shape shape;
  shape.reserve(dims.items.size());
  for (size_t i = 0; i < dims.items.size(); ++i) {
    absl::StatusOr<int64_t> d = Int(*dims.items[i], where.Index(i));
    if (!d.ok()) return d.status();
    shape.push_back(*d);
  }
  return shape;
}

absl::StatusOr<Layout> Mapper::LayoutOf(const Value& v, const Where& where) const {
  if (v.kind == ValueKind::kGlobal && v.global == GlobalKind::kLayout) return static_cast<Layout>(v.integer);
  if (v.kind != ValueKind::kObject || v.global != GlobalKind::kGetLayout) return Expected(where, "torch.layout", v);
  if (v.items.size() != 1 || v.items[0]->kind != ValueKind::kString) {
    return Fail(where, "_get_layout takes one str");
  }
  for (Layout layout : {Layout::kStrided, Layout::kSparseCoo, Layout::kSparseCsr, Layout::kSparseCsc,
                        Layout::kSparseBsr, Layout::kSparseBsc, Layout::kMkldnn}) {
    if (v.items[0]->text == absl::StrCat("torch.", LayoutName(layout))) return layout;
  }
  return Fail(where, absl::StrCat("unknown layout '", absl::CHexEscape(v.items[0]->text), "'"));
}

absl::StatusOr<MemoryFormat> Mapper::MemoryFormatOf(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kObject || v.global != GlobalKind::kMemFormatEncoding) {
    return Expected(where, "_MEM_FORMAT_ENCODING", v);
  }
  if (v.items.size() != 1 || v.items[0]->kind != ValueKind::kInt || v.items[0]->integer < 0 ||
      v.items[0]->integer > 2) {
    return Fail(where, "_MEM_FORMAT_ENCODING takes one of 0, 1, 2");
  }
  return static_cast<MemoryFormat>(v.items[0]->integer);
}

// TensorProperties pickles a 5-tuple (dtype, layout, requires_grad,
// memory-format enum, pin_memory) through __getstate__.
absl::StatusOr<TensorProperties> Mapper::Properties(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kObject || v.global != GlobalKind::kTensorProperties) {
    return Expected(where, "TensorProperties", v);
  }
  if (v.state == nullptr || v.state->kind != ValueKind::kTuple || v.state->items.size() != 5) {
    return Fail(where, absl::StrCat("TensorProperties state: expected 5-tuple, found ",
                                    v.state ? pickle::DescribeValue(*v.state) : "nothing"));
  }
  const pickle::Children<const Value*>& s = v.state->items;
  TensorProperties p;
  if (s[0]->kind != ValueKind::kGlobal || s[0]->global != GlobalKind::kDType) {
    return Expected(where.Field("dtype"), "torch.dtype", *s[0]);
  }
  p.dtype = static_cast<DType>(s[0]->integer);
  absl::StatusOr<Layout> layout = LayoutOf(*s[1], where.Field("layout"));
  if (!layout.ok()) return layout.status();
  p.layout = *layout;
  absl::StatusOr<bool> requires_grad = Bool(*s[2], where.Field("requires_grad"));
  if (!requires_grad.ok()) return requires_grad.status();
  p.requires_grad = *requires_grad;
  absl::StatusOr<MemoryFormat> format = MemoryFormatOf(*s[3], where.Field("memory_format"));
  if (!format.ok()) return format.status();
  p.memory_format = *format;
  absl::StatusOr<bool> pin_memory = Bool(*s[4], where.Field("pin_memory"));
  if (!pin_memory.ok()) return pin_memory.status();
  p.pin_memory = *pin_memory;
  return p;
}

absl::StatusOr<StorageMetadata> Mapper::Storage(const Value& v, const Where& where) const {
  if (v.kind == ValueKind::kObject && v.global == GlobalKind::kBytesStorageMetadata) {
    absl::StatusOr<const Value*> state =
        InstanceState(v, GlobalKind::kBytesStorageMetadata, "BytesStorageMetadata", where);
    if (!state.ok()) return state.status();
    return BytesStorageMetadata{};
  }
  if (v.kind != ValueKind::kObject || v.global != GlobalKind::kTensorStorageMetadata) {
    return Expected(where, "TensorStorageMetadata or BytesStorageMetadata", v);
  }
  absl::StatusOr<const Value*> state =
      InstanceState(v, GlobalKind::kTensorStorageMetadata, "TensorStorageMetadata", where);
  if (!state.ok()) return state.status();
  TensorStorageMetadata out;
  absl::StatusOr<const Value*> properties = Required(*state, "properties", where);
  if (!properties.ok()) return properties.status();
  absl::StatusOr<TensorProperties> p = Properties(**properties, where.Field("properties"));
  if (!p.ok()) return p.status();
  out.properties = *p;
  absl::StatusOr<const Value*> size = Required(*state, "size", where);
  if (!size.ok()) return size.status();
  absl::StatusOr<Shape> shape = Size(**size, where.Field("size"));
  if (!shape.ok()) return shape.status();
  out.size = *std::move(shape);
  absl::StatusOr<const Value*> chunks = Required(*state, "chunks", where);
  if (!chunks.ok()) return chunks.status();
  const Where chunks_where = where.Field("chunks");
  if ((*chunks)->kind != ValueKind::kList) return Expected(chunks_where, "list", **chunks);
  out.chunks.reserve((*chunks)->items.size());
  for (size_t i = 0; i < (*chunks)->items.size(); ++i) {
    const Where chunk_where = chunks_where.Index(i);
    absl::StatusOr<const Value*> chunk = InstanceState(*(*chunks)->items[i], GlobalKind::kChunkStorageMetadata,
                                                       "ChunkStorageMetadata", chunk_where);
    if (!chunk.ok()) return chunk.status();
    ChunkBox box;
    for (auto [name, target] : {std::pair{"offsets", &box.offsets}, std::pair{"sizes", &box.sizes}}) {
      absl::StatusOr<const Value*> field = Required(*chunk, name, chunk_where);
      if (!field.ok()) return field.status();
      absl::StatusOr<Shape> dims = Size(**field, chunk_where.Field(name));
      if (!dims.ok()) return dims.status();
      *target = *std::move(dims);
    }
    out.chunks.push_back(std::move(box));
  }
  return StorageMetadata(std::move(out));
}

absl::StatusOr<StateDictMetadata> Mapper::StateDict(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kDict) return Expected(where, "dict", v);
  StateDictMetadata out;
  out.reserve(v.entries.size());
  for (size_t i = 0; i < v.entries.size(); ++i) {
    const auto& [key, value] = v.entries[i];
    absl::StatusOr<std::string> fqn = Str(*key, where.KeyNumber(i));
    if (!fqn.ok()) return fqn.status();
    absl::StatusOr<StorageMetadata> storage = Storage(*value, where.Key(*fqn));
    if (!storage.ok()) return storage.status();
    out.InsertOrAssign(*fqn, *std::move(storage));
  }
  return out;
}

absl::StatusOr<FlattenMapping> Mapper::PlannerData(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kDict) return Expected(where, "None or dict", v);
  FlattenMapping out;
  out.reserve(v.entries.size());
  for (size_t i = 0; i < v.entries.size(); ++i) {
    const auto& [key, value] = v.entries[i];
    absl::StatusOr<std::string> flat_key = Str(*key, where.KeyNumber(i));
    if (!flat_key.ok()) return flat_key.status();
    const Where path_where = where.Key(*flat_key);
    if (value->kind != ValueKind::kTuple && value->kind != ValueKind::kList) {
      return Expected(path_where, "tuple of str and int", *value);
    }
    ObjectPath path;
    path.reserve(value->items.size());
    for (size_t j = 0; j < value->items.size(); ++j) {
      const Value& element = *value->items[j];
      if (absl::Status charged = Charge(element.text.size(), path_where); !charged.ok()) return charged;
      if (element.kind == ValueKind::kString) {
        path.emplace_back(std::string(element.text));
      } else if (element.kind == ValueKind::kInt) {
        path.emplace_back(element.integer);
      } else {
        return Expected(path_where.Index(j), "str or int", element);
      }
    }
    out.InsertOrAssign(*flat_key, std::move(path));
  }
  return out;
}

absl::StatusOr<MetadataIndex> Mapper::Index(const Value& v, const Where& where) const {
  absl::StatusOr<const Value*> state = InstanceState(v, GlobalKind::kMetadataIndex, "MetadataIndex", where);
  if (!state.ok()) return state.status();
  MetadataIndex index;
  absl::StatusOr<const Value*> fqn = Required(*state, "fqn", where);
  if (!fqn.ok()) return fqn.status();
  absl::StatusOr<std::string> fqn_text = Str(**fqn, where.Field("fqn"));
  if (!fqn_text.ok()) return fqn_text.status();
  index.fqn = *std::move(fqn_text);
  if (const Value* offset = FieldOf(*state, "offset"); !IsNone(offset)) {
    absl::StatusOr<Shape> shape = Size(*offset, where.Field("offset"));
    if (!shape.ok()) return shape.status();
    index.offset = *std::move(shape);
  }
  // `index` is only a lookup hint (spec §5.5: accept any value); anything
  // but an int reads as no hint.
  if (const Value* hint = FieldOf(*state, "index"); hint != nullptr && hint->kind == ValueKind::kInt) {
    index.index = hint->integer;
  }
  return index;
}

absl::StatusOr<StorageInfo> Mapper::Info(const Value& v, const Where& where) const {
  absl::StatusOr<const Value*> state = InstanceState(v, GlobalKind::kStorageInfo, "_StorageInfo", where);
  if (!state.ok()) return state.status();
  StorageInfo info;
  absl::StatusOr<const Value*> path = Required(*state, "relative_path", where);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> path_text = Str(**path, where.Field("relative_path"));
  if (!path_text.ok()) return path_text.status();
  if (absl::Status confined = internal::CheckRelativePath(*path_text); !confined.ok()) {
    return Fail(where.Field("relative_path"),
                absl::StrCat("'", absl::CHexEscape(*path_text), "': ", confined.message()));
  }
  info.relative_path = *std::move(path_text);
  for (auto [name, target] : {std::pair{"offset", &info.offset}, std::pair{"length", &info.length}}) {
    absl::StatusOr<const Value*> field = Required(*state, name, where);
    if (!field.ok()) return field.status();
    absl::StatusOr<int64_t> n = NonNegativeInt(**field, where.Field(name));
    if (!n.ok()) return n.status();
    *target = *n;
  }
  if (const Value* descriptors = FieldOf(*state, "transform_descriptors"); !IsNone(descriptors)) {
    absl::StatusOr<std::vector<std::string>> list = StrList(*descriptors, where.Field("transform_descriptors"));
    if (!list.ok()) return list.status();
    info.transform_descriptors = *std::move(list);
  }
  return info;
}

absl::StatusOr<StorageData> Mapper::Locations(const Value& v, const Where& where) const {
  if (v.kind != ValueKind::kDict) return Expected(where, "None or dict", v);
  StorageData out;
  out.reserve(v.entries.size());
  for (size_t i = 0; i < v.entries.size(); ++i) {
    const auto& [key, value] = v.entries[i];
    absl::StatusOr<MetadataIndex> index = Index(*key, where.KeyNumber(i));
    if (!index.ok()) return index.status();
    absl::StatusOr<StorageInfo> info = Info(*value, where.ValueOf(*index));
    if (!info.ok()) return info.status();
    out.InsertOrAssign(*index, *std::move(info));
  }
  return out;
}

// A pathlib object is REDUCE(cls, parts): join the parts like PurePath(*parts)
// (a part starting at a root replaces what came before).
absl::StatusOr<std::optional<std::string>> Mapper::CheckpointId(const Value* v, const Where& where) const {
  if (IsNone(v) || v->kind == ValueKind::kString) return OptionalStr(v, where);
  if (v->kind != ValueKind::kObject ||
      (v->global != GlobalKind::kPosixPath && v->global != GlobalKind::kWindowsPath)) {
    return Expected(where, "str, pathlib path or None", *v);
  }
  const bool windows = v->global == GlobalKind::kWindowsPath;
  const auto is_separator = [windows](char c) { return c == '/' || (windows && c == '\\'); };
  std::string joined;
  for (size_t i = 0; i < v->items.size(); ++i) {
    absl::StatusOr<std::string> part = Str(*v->items[i], where.Index(i));
    if (!part.ok()) return part.status();
    if (part->empty()) continue;
    const bool rooted = is_separator(part->front()) || (windows && part->size() >= 2 && (*part)[1] == ':');
    if (rooted || joined.empty()) {
      joined = *std::move(part);
    } else {
      if (!is_separator(joined.back())) joined.push_back(windows ? '\\' : '/');
      joined += *part;
    }
  }
  if (joined.empty()) joined = ".";
  return std::optional<std::string>(std::move(joined));
}

absl::StatusOr<StorageMeta> Mapper::Meta(const Value& v, const Where& where) const {
  absl::StatusOr<const Value*> state = InstanceState(v, GlobalKind::kStorageMeta, "StorageMeta", where);
  if (!state.ok()) return state.status();
  StorageMeta meta;
  absl::StatusOr<std::optional<std::string>> id =
      CheckpointId(FieldOf(*state, "checkpoint_id"), where.Field("checkpoint_id"));
  if (!id.ok()) return id.status();
  meta.checkpoint_id = *std::move(id);
  for (auto [name, target] : {std::pair{"save_id", &meta.save_id}, std::pair{"load_id", &meta.load_id}}) {
    absl::StatusOr<std::optional<std::string>> text = OptionalStr(FieldOf(*state, name), where.Field(name));
    if (!text.ok()) return text.status();
    *target = *std::move(text);
  }
  if (const Value* modules = FieldOf(*state, "modules"); modules != nullptr) {
    absl::StatusOr<std::vector<std::string>> list = StrList(*modules, where.Field("modules"));
    if (!list.ok()) return list.status();
    meta.modules = *std::move(list);
  }
  return meta;
}

absl::StatusOr<Metadata> Mapper::MapMetadata(const Value& root) const {
  const Where where;
  absl::StatusOr<const Value*> state = InstanceState(root, GlobalKind::kMetadata, "Metadata", where);
  if (!state.ok()) return state.status();
  Metadata metadata;
  absl::StatusOr<const Value*> state_dict = Required(*state, "state_dict_metadata", where);
  if (!state_dict.ok()) return state_dict.status();
  absl::StatusOr<StateDictMetadata> sdm = StateDict(**state_dict, where.Field("state_dict_metadata"));
  if (!sdm.ok()) return sdm.status();
  metadata.state_dict_metadata = *std::move(sdm);
  if (const Value* planner = FieldOf(*state, "planner_data"); !IsNone(planner)) {
    absl::StatusOr<FlattenMapping> mapping = PlannerData(*planner, where.Field("planner_data"));
    if (!mapping.ok()) return mapping.status();
    metadata.planner_data = *std::move(mapping);
  }
  if (const Value* storage = FieldOf(*state, "storage_data"); !IsNone(storage)) {
    absl::StatusOr<StorageData> data = Locations(*storage, where.Field("storage_data"));
    if (!data.ok()) return data.status();
    metadata.storage_data = *std::move(data);
  }
  if (const Value* meta = FieldOf(*state, "storage_meta"); !IsNone(meta)) {
    absl::StatusOr<StorageMeta> storage_meta = Meta(*meta, where.Field("storage_meta"));
    if (!storage_meta.ok()) return storage_meta.status();
    metadata.storage_meta = *std::move(storage_meta);
  }
  absl::StatusOr<std::optional<std::string>> version =
      OptionalStr(FieldOf(*state, "version"), where.Field("version"));
  if (!version.ok()) return version.status();
  metadata.version = *std::move(version);
  return metadata;
}

}  // namespace

absl::StatusOr<Metadata> ParseMetadataPickle(absl::string_view bytes, absl::string_view source_name) {
  absl::StatusOr<pickle::PickleDocument> document = pickle::Unpickle(bytes);
  if (!document.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("'", source_name, "': ", document.status().message()));
  }
  return Mapper(source_name, bytes.size()).MapMetadata(document->root());
}

}  // namespace dcplan
