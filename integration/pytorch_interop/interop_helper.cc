// The dcplan side of the PyTorch 2.13 interop tests (see BUILD.bazel).
//
//   interop_helper save SPEC DIR      the spec's world (threads) saves the spec's
//                                     tensors and values into the checkpoint DIR
//   interop_helper load SPEC DIR OUT  the spec's world loads DIR into the spec's
//                                     sharding; writes OUT/rank<r>/<fqn>.<k>.bin
//                                     (row-major bytes of shard k) and
//                                     OUT/rank<r>/values.json
//   interop_helper dtypes             the dtypes the linked LibTorch has, as JSON
//
// Exit 0 on success; otherwise 1 with every failing rank's error on stderr.

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/dtype_conversion.h"
#include "api/filesystem.h"
#include "api/state_dict.h"
#include "integration/pytorch_interop/interop_spec.h"

namespace dcplan::interop {
namespace {

using tools::Json;

absl::StatusOr<std::string> ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

absl::Status WriteBytes(const std::string& path, const void* data, size_t size) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

std::vector<int64_t> Dims(const Shape& shape) { return std::vector<int64_t>(shape.begin(), shape.end()); }

// A tensor of `shape` whose bytes are all 0xA5: a load that skips an element
// leaves a value no reference tensor is likely to hold.
absl::StatusOr<at::Tensor> PoisonedTensor(const TensorSpec& spec, const Shape& shape) {
  DCPLAN_TOOL_ASSIGN_OR_RETURN(c10::ScalarType scalar_type, ScalarTypeFromDType(spec.dtype));
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  at::Tensor bytes = at::full({numel * ElementSize(spec.dtype)}, 0xA5, at::TensorOptions().dtype(at::kByte));
  return bytes.view(scalar_type).reshape(Dims(shape));
}

absl::StatusOr<at::Tensor> ReferenceTensor(const TensorSpec& spec) {
  DCPLAN_TOOL_ASSIGN_OR_RETURN(c10::ScalarType scalar_type, ScalarTypeFromDType(spec.dtype));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(std::string bytes, ReadBytes(spec.file));
  int64_t numel = 1;
  for (int64_t d : spec.shape) numel *= d;
  if (static_cast<int64_t>(bytes.size()) != numel * ElementSize(spec.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(spec.file, ": ", bytes.size(), " bytes, tensor '", spec.fqn,
                                                   "' needs ", numel * ElementSize(spec.dtype)));
  }
  at::Tensor flat = at::empty({numel}, at::TensorOptions().dtype(scalar_type));
  std::memcpy(flat.data_ptr(), bytes.data(), bytes.size());
  return flat.reshape(Dims(spec.shape));
}

at::Tensor Box(const at::Tensor& tensor, const ShardBox& box) {
  at::Tensor out = tensor;
  for (size_t d = 0; d < box.offsets.size(); ++d) out = out.narrow(d, box.offsets[d], box.lengths[d]);
  return out.contiguous();
}

c10::IValue JsonToIValue(const Json& json) {
  if (json.is_boolean()) return c10::IValue(json.get<bool>());
  if (json.is_number_integer()) return c10::IValue(json.get<int64_t>());
  if (json.is_number_float()) return c10::IValue(json.get<double>());
  if (json.is_string()) return c10::IValue(json.get<std::string>());
  if (json.is_array()) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (const Json& item : json) list.push_back(JsonToIValue(item));
    return c10::IValue(list);
  }
  if (json.is_object()) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [key, item] : json.items()) dict.insert(key, JsonToIValue(item));
    return c10::IValue(dict);
  }
  return c10::IValue();
}

absl::StatusOr<Json> IValueToJson(const c10::IValue& value) {
  if (value.isNone()) return Json(nullptr);
  if (value.isBool()) return Json(value.toBool());
  if (value.isInt()) return Json(value.toInt());
  if (value.isDouble()) return Json(value.toDouble());
  if (value.isString()) return Json(value.toStringRef());
  if (value.isList() || value.isTuple()) {
    Json out = Json::array();
    const std::vector<c10::IValue> items =
        value.isList() ? value.toListRef().vec() : value.toTupleRef().elements().vec();
    for (const c10::IValue& item : items) {
      DCPLAN_TOOL_ASSIGN_OR_RETURN(Json json, IValueToJson(item));
      out.push_back(std::move(json));
    }
    return out;
  }
  if (value.isGenericDict()) {
    Json out = Json::object();
    for (const auto& entry : value.toGenericDict()) {
      const c10::IValue& key = entry.key();
      const std::string name = key.isString() ? key.toStringRef() : key.isInt() ? std::to_string(key.toInt()) : "?";
      DCPLAN_TOOL_ASSIGN_OR_RETURN(out[name], IValueToJson(entry.value()));
    }
    return out;
  }
  return absl::UnimplementedError(absl::StrCat("no JSON form for a value of type ", value.tagKind()));
}

// A loaded value as JSON: lists and mappings of a value may come back as
// state-dict containers (FromIValue) or as one IValue leaf.
// A SavedObject (a value this LibTorch cannot build) is written next to the
// JSON as <saved_prefix><n>.pt and shown as {"saved_object": path}, so that
// the driver can torch.load it and check that nothing was lost.
absl::StatusOr<Json> StateDictToJson(const StateDict& node, const std::string& saved_prefix, int* saved_count) {
  if (node.is_none()) return Json(nullptr);
  if (node.is_list() || node.is_mapping()) {
    Json out = node.is_list() ? Json::array() : Json::object();
    for (const StateDict& item : node.items()) {
      DCPLAN_TOOL_ASSIGN_OR_RETURN(Json json, StateDictToJson(item, saved_prefix, saved_count));
      out.push_back(std::move(json));
    }
    for (const auto& entry : node.entries()) {
      DCPLAN_TOOL_ASSIGN_OR_RETURN(out[entry.key], StateDictToJson(entry.value, saved_prefix, saved_count));
    }
    return out;
  }
  if (const auto* saved = std::get_if<SavedObject>(node.leaf())) {
    const std::string path = absl::StrCat(saved_prefix, (*saved_count)++, ".pt");
    DCPLAN_TOOL_RETURN_IF_ERROR(WriteBytes(path, saved->archive.data(), saved->archive.size()));
    return Json{{"saved_object", path}};
  }
  if (const auto* ivalue = std::get_if<c10::IValue>(node.leaf())) return IValueToJson(*ivalue);
  return Json("<a tensor where a value was saved>");
}

// Finds or makes the container at `path`, a prefix of some fqn: lists where the
// spec says so, mappings elsewhere.
absl::StatusOr<StateDict*> ChildOf(StateDict* parent, const std::string& key, bool make_list) {
  StateDict child = make_list ? List({}) : Dict({});
  if (parent->is_mapping()) {
    if (StateDict* found = parent->FindEntry(key)) return found;
    return parent->AddEntry(key, std::move(child));
  }
  int index = 0;
  if (!absl::SimpleAtoi(key, &index) || index < 0) {
    return absl::InvalidArgumentError(absl::StrCat("list index '", key, "' is not a number"));
  }
  std::vector<StateDict>& items = *parent->mutable_items();
  while (static_cast<int>(items.size()) <= index) items.push_back(StateDict());
  if (items[index].is_none()) items[index] = std::move(child);
  return &items[index];
}

absl::Status Insert(StateDict& root, const std::vector<std::string>& lists, const std::string& fqn, StateDict leaf) {
  const std::vector<std::string> parts = absl::StrSplit(fqn, '.');
  StateDict* node = &root;
  std::string prefix;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix = i == 0 ? parts[i] : absl::StrCat(prefix, ".", parts[i]);
    const bool is_list = std::find(lists.begin(), lists.end(), prefix) != lists.end();
    DCPLAN_TOOL_ASSIGN_OR_RETURN(node, ChildOf(node, parts[i], is_list));
  }
  DCPLAN_TOOL_ASSIGN_OR_RETURN(StateDict * slot, ChildOf(node, parts.back(), /*make_list=*/false));
  *slot = std::move(leaf);
  return absl::OkStatus();
}

const StateDict* Find(const StateDict& root, const std::string& fqn) {
  const StateDict* node = &root;
  for (absl::string_view part : absl::StrSplit(fqn, '.')) {
    if (node->is_mapping()) {
      node = node->FindEntry(std::string(part));
    } else if (int index = 0; node->is_list() && absl::SimpleAtoi(part, &index) && index >= 0 &&
                              index < static_cast<int>(node->items().size())) {
      node = &node->items()[index];
    } else {
      return nullptr;
    }
    if (node == nullptr) return nullptr;
  }
  return node;
}

// One rank's state dict. With `reference`, tensors hold the spec's data and
// values the spec's values (for saving); without, tensors are poisoned and
// values None (for loading). `tensors` receives each tensor's shards in spec
// order, sharing storage with the state dict.
absl::StatusOr<StateDict> RankStateDict(const InteropSpec& spec, int64_t rank, bool reference,
                                        std::vector<std::vector<at::Tensor>>* tensors) {
  StateDict root = Dict({});
  for (const TensorSpec& t : spec.tensors) {
    at::Tensor full;
    if (reference) {
      DCPLAN_TOOL_ASSIGN_OR_RETURN(full, ReferenceTensor(t));
    }
    std::vector<at::Tensor> pieces;
    ShardedTensorValue sharded{t.shape, c10::ScalarType::Undefined, {}};
    DCPLAN_TOOL_ASSIGN_OR_RETURN(sharded.dtype, ScalarTypeFromDType(t.dtype));
    for (const ShardBox& box : t.shards[rank]) {
      at::Tensor piece;
      if (reference) {
        piece = Box(full, box);
      } else {
        DCPLAN_TOOL_ASSIGN_OR_RETURN(piece, PoisonedTensor(t, box.lengths));
      }
      pieces.push_back(piece);
      sharded.local_shards.push_back(LocalShard{piece, box.offsets});
    }
    if (t.whole && pieces.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("'", t.fqn, "' is whole: rank ", rank, " holds at most one box"));
    }
    if (!t.whole || !pieces.empty()) {
      DCPLAN_TOOL_RETURN_IF_ERROR(
          Insert(root, spec.lists, t.fqn, t.whole ? Value(pieces[0]) : Value(std::move(sharded))));
    }
    tensors->push_back(std::move(pieces));
  }
  for (const ValueSpec& v : spec.values) {
    DCPLAN_TOOL_RETURN_IF_ERROR(
        Insert(root, spec.lists, v.fqn, Value(reference ? JsonToIValue(v.value) : c10::IValue())));
  }
  return root;
}

absl::Status DumpRank(const InteropSpec& spec, int64_t rank, const StateDict& state_dict,
                      const std::vector<std::vector<at::Tensor>>& tensors, const std::string& out) {
  const std::string dir = absl::StrCat(out, "/rank", rank);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return absl::InternalError(absl::StrCat(dir, ": mkdir"));
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    for (size_t k = 0; k < tensors[i].size(); ++k) {
      const at::Tensor piece = tensors[i][k].contiguous();
      DCPLAN_TOOL_RETURN_IF_ERROR(WriteBytes(absl::StrCat(dir, "/", spec.tensors[i].fqn, ".", k, ".bin"),
                                             piece.data_ptr(), piece.nbytes()));
    }
  }
  Json values = Json::object();
  int saved_count = 0;
  for (const ValueSpec& v : spec.values) {
    const StateDict* node = Find(state_dict, v.fqn);
    if (node == nullptr) {
      values[v.fqn] = "<missing after load>";
      continue;
    }
    DCPLAN_TOOL_ASSIGN_OR_RETURN(values[v.fqn], StateDictToJson(*node, absl::StrCat(dir, "/saved"), &saved_count));
  }
  const std::string text = values.dump(1);
  return WriteBytes(absl::StrCat(dir, "/values.json"), text.data(), text.size());
}

// Runs fn on every rank of the spec's world (threads); every rank's error,
// prefixed by the rank, on failure.
absl::Status RunWorld(const InteropSpec& spec, const std::function<absl::Status(int64_t, Coordinator&)>& fn) {
  InProcessGroup group(spec.world_size, absl::Seconds(120));
  const std::vector<absl::Status> statuses = group.Run(fn);
  std::vector<std::string> errors;
  for (size_t rank = 0; rank < statuses.size(); ++rank) {
    if (!statuses[rank].ok()) errors.push_back(absl::StrCat("rank ", rank, ": ", statuses[rank].ToString()));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrJoin(errors, "\n"));
}

absl::Status SaveCommand(const std::string& spec_path, const std::string& directory) {
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const InteropSpec spec, ReadInteropSpec(spec_path));
  return RunWorld(spec, [&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    std::vector<std::vector<at::Tensor>> tensors;
    DCPLAN_TOOL_ASSIGN_OR_RETURN(StateDict state_dict, RankStateDict(spec, rank, /*reference=*/true, &tensors));
    FileSystemWriter writer(directory);
    return Save(state_dict, writer, coordinator).status();
  });
}

absl::Status LoadCommand(const std::string& spec_path, const std::string& directory, const std::string& out) {
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const InteropSpec spec, ReadInteropSpec(spec_path));
  return RunWorld(spec, [&](int64_t rank, Coordinator& coordinator) -> absl::Status {
    std::vector<std::vector<at::Tensor>> tensors;
    DCPLAN_TOOL_ASSIGN_OR_RETURN(StateDict state_dict, RankStateDict(spec, rank, /*reference=*/false, &tensors));
    FileSystemReader reader(directory);
    DCPLAN_TOOL_RETURN_IF_ERROR(Load(state_dict, reader, coordinator));
    return DumpRank(spec, rank, state_dict, tensors, out);
  });
}

void PrintDTypes() {
  Json names = Json::array();
  for (int i = 0; i < kNumDTypes; ++i) {
    const DType dtype = static_cast<DType>(i);
    if (ScalarTypeFromDType(dtype).ok()) names.push_back(std::string(DTypeName(dtype)));
  }
  std::cout << names.dump() << "\n";
}

int Main(const std::vector<std::string>& args) {
  absl::Status status;
  if (args.size() == 1 && args[0] == "dtypes") {
    PrintDTypes();
    return 0;
  } else if (args.size() == 3 && args[0] == "save") {
    status = SaveCommand(args[1], args[2]);
  } else if (args.size() == 4 && args[0] == "load") {
    status = LoadCommand(args[1], args[2], args[3]);
  } else {
    std::cerr << "usage: interop_helper save SPEC DIR | load SPEC DIR OUT | dtypes\n";
    return 2;
  }
  if (!status.ok()) {
    std::cerr << "interop_helper " << args[0] << ": " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace dcplan::interop

int main(int argc, char** argv) {
  try {
    return dcplan::interop::Main(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "interop_helper: unexpected exception: " << e.what() << "\n";
    return 1;
  }
}
