#include "tools/dcplan/demo_model.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/flatten.h"

namespace dcplan::tools {
namespace {

ObjectPath Path(std::initializer_list<PathElement> elements) { return ObjectPath(elements); }

// Deterministic, dtype-exact contents: distinct per tensor, not all integers.
at::Tensor Filled(std::vector<int64_t> shape, at::ScalarType dtype, double seed) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  at::Tensor values = at::sin(at::arange(numel, at::kDouble) * 0.37 + seed) * 100.0;
  if (dtype == at::kBool) return (values > 0).reshape(shape);
  return values.to(dtype).reshape(shape);
}

// torch.chunk's split of `extent` into `parts`: piece `index` as
// (offset, length); trailing pieces may be empty.
std::pair<int64_t, int64_t> Piece(int64_t extent, int64_t parts, int64_t index) {
  const int64_t size = (extent + parts - 1) / parts;
  const int64_t begin = std::min(index * size, extent);
  return {begin, std::min(extent, begin + size) - begin};
}

// rows x columns grid of `world_size` ranks, as square as possible.
std::pair<int64_t, int64_t> Grid(int64_t world_size) {
  int64_t rows = 1;
  for (int64_t r = 1; r * r <= world_size; ++r) {
    if (world_size % r == 0) rows = r;
  }
  return {rows, world_size / rows};
}

struct Box {
  std::vector<int64_t> offsets;
  std::vector<int64_t> sizes;
};

// This rank's box of `shape` under `placement`, or nothing (an empty piece).
std::optional<Box> RankBox(const std::vector<int64_t>& shape, Placement placement, int64_t rank, int64_t world) {
  Box box{std::vector<int64_t>(shape.size(), 0), shape};
  auto split = [&](size_t dim, int64_t parts, int64_t index) {
    auto [offset, length] = Piece(shape[dim], parts, index);
    box.offsets[dim] = offset;
    box.sizes[dim] = length;
    return length > 0;
  };
  switch (placement) {
    case Placement::kReplicated: return box;
    case Placement::kRowShards:
      if (!split(0, world, rank)) return std::nullopt;
      return box;
    case Placement::kColumnShards:
      if (!split(1, world, rank)) return std::nullopt;
      return box;
    case Placement::kBlocks: {
      const auto [rows, columns] = Grid(world);
      if (!split(0, rows, rank / columns) || !split(1, columns, rank % columns)) return std::nullopt;
      return box;
    }
  }
  return std::nullopt;
}

at::Tensor Narrowed(const at::Tensor& t, const Box& box) {
  at::Tensor view = t;
  for (size_t d = 0; d < box.offsets.size(); ++d) view = view.narrow(static_cast<int64_t>(d), box.offsets[d], box.sizes[d]);
  return view;
}

// The leaf of `loaded` at `path`, or nullptr.
const StateDict* Find(const StateDict& root, const ObjectPath& path) {
  const StateDict* node = &root;
  for (const PathElement& element : path) {
    if (const auto* key = std::get_if<std::string>(&element)) {
      node = node->FindEntry(*key);
    } else {
      const int64_t index = std::get<int64_t>(element);
      node = index < static_cast<int64_t>(node->items().size()) ? &node->items()[index] : nullptr;
    }
    if (node == nullptr) return nullptr;
  }
  return node;
}

bool BitwiseEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// Structural equality: a loaded list's element type may be Any where the
// saved one was str, which IValue's own == tells apart.
bool EqualValues(const c10::IValue& a, const c10::IValue& b) {
  if (a.isList() && b.isList()) {
    const auto la = a.toListRef();
    const auto lb = b.toListRef();
    if (la.size() != lb.size()) return false;
    for (size_t i = 0; i < la.size(); ++i) {
      if (!EqualValues(la[i], lb[i])) return false;
    }
    return true;
  }
  return a == b;
}

absl::Status VerifyTensor(const DemoTensor& tensor, const StateDict* leaf, int64_t rank, int64_t world) {
  const std::string name = FlatKey(tensor.path);
  if (leaf == nullptr || !leaf->is_leaf()) return absl::NotFoundError(absl::StrCat("rank ", rank, ": '", name, "' missing after load"));
  std::optional<Box> box = RankBox(tensor.global.sizes().vec(), tensor.load_placement, rank, world);
  if (const auto* plain = std::get_if<at::Tensor>(leaf->leaf())) {
    if (BitwiseEqual(*plain, tensor.global)) return absl::OkStatus();
  } else if (const auto* sharded = std::get_if<ShardedTensorValue>(leaf->leaf())) {
    if (!box.has_value() && sharded->local_shards.empty()) return absl::OkStatus();
    if (box.has_value() && sharded->local_shards.size() == 1 &&
        BitwiseEqual(sharded->local_shards[0].tensor, Narrowed(tensor.global, *box))) {
      return absl::OkStatus();
    }
  }
  return absl::DataLossError(absl::StrCat("rank ", rank, ": '", name, "' differs from what was saved"));
}

}  // namespace

int64_t DemoModel::tensor_bytes() const {
  int64_t bytes = 0;
  for (const DemoTensor& t : tensors) bytes += t.global.numel() * t.global.element_size();
  return bytes;
}

DemoModel MakeDemoModel(int64_t scale_mib) {
  const int64_t hidden = 128 * std::max<int64_t>(1, scale_mib);
  const int64_t vocab = 2 * hidden;
  DemoModel m;
  double seed = 0;
  auto add = [&](ObjectPath path, std::vector<int64_t> shape, at::ScalarType dtype, Placement save, Placement load) {
    m.tensors.push_back(DemoTensor{std::move(path), Filled(std::move(shape), dtype, seed += 1.0), save, load});
  };
  using P = Placement;
  const std::string model = "model", optim = "optim", state = "state";
  add(Path({model, std::string("embed"), std::string("weight")}), {vocab, hidden}, at::kFloat, P::kRowShards, P::kRowShards);
  for (int64_t layer = 0; layer < 2; ++layer) {
    const std::string l = absl::StrCat(layer);
    add(Path({model, std::string("layers"), l, std::string("attn"), std::string("qkv"), std::string("weight")}),
        {3 * hidden, hidden}, at::kBFloat16, P::kRowShards, P::kColumnShards);
    add(Path({model, std::string("layers"), l, std::string("mlp"), std::string("weight")}), {2 * hidden, hidden},
        at::kFloat, P::kBlocks, P::kRowShards);
    add(Path({model, std::string("layers"), l, std::string("norm"), std::string("weight")}), {hidden}, at::kFloat,
        P::kReplicated, P::kReplicated);
  }
  add(Path({model, std::string("head"), std::string("bias")}), {2}, at::kFloat, P::kRowShards, P::kReplicated);
  add(Path({model, std::string("scale")}), {}, at::kFloat, P::kReplicated, P::kReplicated);
  add(Path({model, std::string("buffers"), std::string("position_ids")}), {hidden}, at::kLong, P::kReplicated,
      P::kRowShards);
  add(Path({model, std::string("buffers"), std::string("mask")}), {64}, at::kBool, P::kRowShards, P::kRowShards);
  for (const char* param : {"model.embed.weight", "model.layers.0.attn.qkv.weight"}) {
    const at::Tensor& like = param[6] == 'e' ? m.tensors[0].global : m.tensors[1].global;
    add(Path({optim, state, std::string(param), std::string("exp_avg")}), like.sizes().vec(), at::kFloat,
        P::kRowShards, P::kBlocks);
    add(Path({optim, state, std::string(param), std::string("step")}), {}, at::kFloat, P::kReplicated,
        P::kReplicated);
  }
  const std::string groups = "param_groups";
  m.values.push_back({Path({optim, groups, int64_t{0}, std::string("lr")}), c10::IValue(0.001)});
  m.values.push_back({Path({optim, groups, int64_t{0}, std::string("betas")}),
                      c10::IValue(c10::ivalue::Tuple::create({0.9, 0.999}))});
  m.values.push_back({Path({optim, groups, int64_t{0}, std::string("params")}),
                      c10::IValue(c10::List<std::string>({"model.embed.weight", "model.layers.0.attn.qkv.weight"}))});
  m.values.push_back({Path({std::string("extra"), std::string("step")}), c10::IValue(int64_t{1000})});
  m.values.push_back({Path({std::string("extra"), std::string("tag")}), c10::IValue(std::string("dcplan-demo"))});
  return m;
}

absl::StatusOr<StateDict> RankStateDict(const DemoModel& model, int64_t rank, int64_t world_size, bool for_load) {
  StateDict root = StateDict::MakeMapping();
  for (const DemoTensor& t : model.tensors) {
    const Placement placement = for_load ? t.load_placement : t.save_placement;
    const std::vector<int64_t> shape = t.global.sizes().vec();
    StateDict leaf;
    if (placement == Placement::kReplicated) {
      leaf = Value(for_load ? at::zeros_like(t.global) : t.global);
    } else {
      ShardedTensorValue sharded{shape, t.global.scalar_type(), {}};
      if (std::optional<Box> box = RankBox(shape, placement, rank, world_size)) {
        at::Tensor piece = Narrowed(t.global, *box);
        piece = for_load ? at::zeros_like(piece, at::MemoryFormat::Contiguous) : piece.clone(at::MemoryFormat::Contiguous);
        sharded.local_shards.push_back(LocalShard{piece, box->offsets});
      }
      leaf = Value(std::move(sharded));
    }
    absl::Status placed = SetElement(root, t.path, std::move(leaf));
    if (!placed.ok()) return placed;
  }
  for (const DemoValue& v : model.values) {
    absl::Status placed = SetElement(root, v.path, Value(for_load ? c10::IValue() : v.value));
    if (!placed.ok()) return placed;
  }
  return root;
}

absl::Status VerifyRankStateDict(const DemoModel& model, const StateDict& loaded, int64_t rank, int64_t world_size) {
  for (const DemoTensor& t : model.tensors) {
    absl::Status status = VerifyTensor(t, Find(loaded, t.path), rank, world_size);
    if (!status.ok()) return status;
  }
  for (const DemoValue& v : model.values) {
    // A loaded list may come back as a nested list of leaves rather than one
    // list leaf: both flatten to the same key, so compare as IValues.
    const StateDict* node = Find(loaded, v.path);
    absl::StatusOr<c10::IValue> value =
        node == nullptr ? absl::NotFoundError("missing") : ToIValue(*node);
    if (!value.ok() || !EqualValues(*value, v.value)) {
      std::ostringstream loaded_text;
      if (value.ok()) {
        loaded_text << *value;
      } else {
        loaded_text << "not a value (" << value.status().message() << ")";
      }
      std::ostringstream saved_text;
      saved_text << v.value;
      return absl::DataLossError(absl::StrCat("rank ", rank, ": value '", FlatKey(v.path), "' is ",
                                              loaded_text.str(), " after loading, ", saved_text.str(),
                                              " when saved"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dcplan::tools
