#ifndef DCPLAN_API_PICKLE_PY_BUILDER_H_
#define DCPLAN_API_PICKLE_PY_BUILDER_H_

// Tests only: describe a Python object graph as a tree and pickle it, so that
// tests can produce every layout a `.metadata` may have (other protocols,
// older module paths, missing or extra fields, wrong types) without Python.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "api/pickle/pickle_writer.h"

namespace dcplan::pickle_test {

inline constexpr absl::string_view kMetaModule = "torch.distributed.checkpoint.metadata";
inline constexpr absl::string_view kShardModule = "torch.distributed._shard.sharded_tensor.metadata";
inline constexpr absl::string_view kFsModule = "torch.distributed.checkpoint.filesystem";

struct Py {
  enum Kind { kNone, kBool, kInt, kStr, kTuple, kList, kDict, kOrderedDict, kGlobal, kNewObj, kReduce };
  Kind kind = kNone;
  int64_t number = 0;
  std::string text;          // kStr
  std::string module, name;  // kGlobal, kNewObj, kReduce
  std::vector<Py> items;     // tuple/list items, dict k,v,k,v..., REDUCE args, NEWOBJ state (0 or 1)
};

inline Py None() { return Py{}; }
inline Py Bool(bool b) { return Py{Py::kBool, b}; }
inline Py Int(int64_t i) { return Py{Py::kInt, i}; }
inline Py S(absl::string_view s) { return Py{Py::kStr, 0, std::string(s)}; }
inline Py Seq(Py::Kind kind, std::vector<Py> items) {
  Py p{kind};
  p.items = std::move(items);
  return p;
}
inline Py T(std::vector<Py> items) { return Seq(Py::kTuple, std::move(items)); }
inline Py L(std::vector<Py> items) { return Seq(Py::kList, std::move(items)); }
// Key, value, key, value, ...
inline Py D(std::vector<Py> items) { return Seq(Py::kDict, std::move(items)); }
inline Py OrderedD(std::vector<Py> items) { return Seq(Py::kOrderedDict, std::move(items)); }
inline Py Named(Py::Kind kind, absl::string_view module, absl::string_view name, std::vector<Py> items) {
  Py p{kind};
  p.module = std::string(module);
  p.name = std::string(name);
  p.items = std::move(items);
  return p;
}
inline Py G(absl::string_view module, absl::string_view name) { return Named(Py::kGlobal, module, name, {}); }
// cls.__new__(cls) without BUILD.
inline Py Obj(absl::string_view module, absl::string_view name) { return Named(Py::kNewObj, module, name, {}); }
// cls.__new__(cls), then BUILD(state).
inline Py Obj(absl::string_view module, absl::string_view name, Py state) {
  return Named(Py::kNewObj, module, name, {std::move(state)});
}
inline Py Call(absl::string_view module, absl::string_view name, std::vector<Py> args) {
  return Named(Py::kReduce, module, name, std::move(args));
}

inline void Emit(pickle::PickleWriter& w, const Py& p);

inline void EmitTuple(pickle::PickleWriter& w, const std::vector<Py>& items) {
  if (items.empty()) return w.EmptyTuple();
  if (items.size() > 3) w.Mark();
  for (const Py& item : items) Emit(w, item);
  if (items.size() > 3) return w.TupleFromMark();
  w.SmallTuple(static_cast<int>(items.size()));
}

inline void Emit(pickle::PickleWriter& w, const Py& p) {
  switch (p.kind) {
    case Py::kNone: return w.None();
    case Py::kBool: return w.Bool(p.number != 0);
    case Py::kInt: return w.Int(p.number);
    case Py::kStr: return w.String(p.text);
    case Py::kTuple: return EmitTuple(w, p.items);
    case Py::kList:
      w.EmptyList();
      return w.ListItems(p.items.size(), [&](size_t i) { Emit(w, p.items[i]); });
    case Py::kDict:
    case Py::kOrderedDict:
      if (p.kind == Py::kDict) {
        w.EmptyDict();
      } else {
        w.Global("collections", "OrderedDict");
        w.EmptyTuple();
        w.Reduce();
      }
      return w.DictItems(p.items.size() / 2, [&](size_t i) {
        Emit(w, p.items[2 * i]);
        Emit(w, p.items[2 * i + 1]);
      });
    case Py::kGlobal: return w.Global(p.module, p.name);
    case Py::kNewObj:
      w.Global(p.module, p.name);
      w.EmptyTuple();
      w.NewObj();
      if (p.items.empty()) return;
      Emit(w, p.items[0]);
      return w.Build();
    case Py::kReduce:
      w.Global(p.module, p.name);
      EmitTuple(w, p.items);
      return w.Reduce();
  }
}

inline std::string Pickle(const Py& root, int protocol = 4) {
  pickle::PickleWriter w(protocol);
  Emit(w, root);
  return std::move(w).Finish();
}

// --- The pieces of a DCP Metadata, as PyTorch 2.x pickles them ----------------

inline Py Ints(const std::vector<int64_t>& values) {
  std::vector<Py> items;
  for (int64_t v : values) items.push_back(Int(v));
  return T(std::move(items));
}
inline Py Size(const std::vector<int64_t>& dims) { return Call("torch", "Size", {Ints(dims)}); }
inline Py LayoutRepr(absl::string_view repr = "torch.strided") {
  return Call("torch.serialization", "_get_layout", {S(repr)});
}
inline Py MemFormat(int64_t value) { return Call(kMetaModule, "_MEM_FORMAT_ENCODING", {Int(value)}); }
inline Py Props(absl::string_view dtype = "float32", Py layout = LayoutRepr(), Py format = MemFormat(0),
                bool requires_grad = false, bool pin_memory = false) {
  return Obj(kMetaModule, "TensorProperties",
             T({G("torch", dtype), std::move(layout), Bool(requires_grad), std::move(format), Bool(pin_memory)}));
}
inline Py Chunk(const std::vector<int64_t>& offsets, const std::vector<int64_t>& sizes) {
  return Obj(kMetaModule, "ChunkStorageMetadata", D({S("offsets"), Size(offsets), S("sizes"), Size(sizes)}));
}
inline Py TensorMeta(Py properties, const std::vector<int64_t>& size, std::vector<Py> chunks) {
  return Obj(kMetaModule, "TensorStorageMetadata",
             D({S("properties"), std::move(properties), S("size"), Size(size), S("chunks"), L(std::move(chunks))}));
}
inline Py BytesMeta() { return Obj(kMetaModule, "BytesStorageMetadata"); }
inline Py Index(absl::string_view fqn, Py index, std::vector<int64_t> offset) {
  return Obj(kMetaModule, "MetadataIndex", D({S("fqn"), S(fqn), S("index"), std::move(index), S("offset"), Size(offset)}));
}
inline Py BytesIndex(absl::string_view fqn) {
  return Obj(kMetaModule, "MetadataIndex", D({S("fqn"), S(fqn), S("index"), None()}));
}
inline Py Info(absl::string_view file, int64_t offset, int64_t length, absl::string_view module = kFsModule) {
  return Obj(module, "_StorageInfo",
             D({S("relative_path"), S(file), S("offset"), Int(offset), S("length"), Int(length)}));
}
inline Py StorageMetaOf(Py checkpoint_id, Py save_id, Py load_id, Py modules) {
  return Obj(kMetaModule, "StorageMeta",
             D({S("checkpoint_id"), std::move(checkpoint_id), S("save_id"), std::move(save_id), S("load_id"),
                std::move(load_id), S("modules"), std::move(modules)}));
}
inline Py MetadataOf(std::vector<Py> state_items) { return Obj(kMetaModule, "Metadata", D(std::move(state_items))); }

}  // namespace dcplan::pickle_test

#endif  // DCPLAN_API_PICKLE_PY_BUILDER_H_
