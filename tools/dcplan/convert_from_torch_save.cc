// TorchSaveToDcp: one torch.save file -> a DCP checkpoint, tensors mapped
// from the file.

#include <cstring>
#include <exception>
#include <memory>
#include <utility>

#include <ATen/ATen.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/dtype_conversion.h"
#include "api/internal/status_macros.h"
#include "api/pickle/weights_only.h"
#include "api/state_dict.h"
#include "engine/dtype.h"
#include "engine/flatten.h"
#include "tools/dcplan/convert_archive.h"
#include "tools/dcplan/convert_keys.h"
#include "tools/dcplan/convert_pickle.h"
#include "tools/dcplan/convert_torch_save.h"

namespace dcplan::tools::convert {
namespace {

// One storage record of the file.
struct MappedStorage {
  c10::ScalarType dtype;
  int64_t numel;
  const char* data;
};

bool IsTensorNode(const PyNode& node);

const PyNode* CallArguments(const PyNode& node, absl::string_view module, absl::string_view name) {
  if (node.kind != PyKind::kReduce || !IsGlobal(*node.items[0], module, name)) return nullptr;
  return node.items[1];
}

// The arguments of a tensor rebuilt over a storage: _rebuild_tensor_v2 (a
// typed storage; its dtype), or _rebuild_tensor_v3 (an untyped storage of
// bytes; the dtype is the 7th argument, a torch.<dtype> global), which
// torch.save uses for dtypes without a legacy storage class (uint16/32/64,
// float8). Null for anything else.
const PyNode* TensorRebuildArguments(const PyNode& node, bool* untyped) {
  if (const PyNode* args = CallArguments(node, "torch._utils", "_rebuild_tensor_v2")) {
    *untyped = false;
    return args->items.size() >= 6 && args->items[0]->kind == PyKind::kStorage ? args : nullptr;
  }
  if (const PyNode* args = CallArguments(node, "torch._utils", "_rebuild_tensor_v3")) {
    *untyped = true;
    const bool valid = args->items.size() >= 7 && args->items[0]->kind == PyKind::kStorage &&
                       args->items[6]->kind == PyKind::kGlobal && args->items[6]->module == "torch";
    return valid ? args : nullptr;
  }
  return nullptr;
}

bool IsTensorNode(const PyNode& node) {
  bool untyped = false;
  if (TensorRebuildArguments(node, &untyped) != nullptr) return true;
  if (const PyNode* args = CallArguments(node, "torch._utils", "_rebuild_parameter")) {
    return !args->items.empty() && IsTensorNode(*args->items[0]);
  }
  return false;
}

// The scalar type a tensor rebuild call builds, and its storage's size in
// elements of that type.
absl::Status RebuiltScalarType(const PyNode* dtype_global, const MappedStorage& storage, c10::ScalarType* dtype,
                               int64_t* storage_numel) {
  if (dtype_global == nullptr) {
    *dtype = storage.dtype;
    *storage_numel = storage.numel;
    return absl::OkStatus();
  }
  const std::string& name = dtype_global->name;
  absl::StatusOr<DType> parsed = ParseDType(name);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("_rebuild_tensor_v3 of unknown dtype torch.", name));
  // LibTorch 1.13 lacks uint16/32/64 and float8: Unimplemented, naming the dtype.
  absl::StatusOr<c10::ScalarType> scalar_type = ScalarTypeFromDType(*parsed);
  if (!scalar_type.ok()) return scalar_type.status();
  const int64_t element_size = static_cast<int64_t>(c10::elementSize(*scalar_type));
  if (storage.numel % element_size != 0) {
    return absl::DataLossError(absl::StrCat("an untyped storage of ", storage.numel, " bytes is no whole number of ",
                                            name, " elements"));
  }
  *dtype = *scalar_type;
  *storage_numel = storage.numel / element_size;
  return absl::OkStatus();
}

// A dict, or an OrderedDict (whose attributes, e.g. a module state dict's
// `_metadata`, DCP does not keep either).
bool IsMappingNode(const PyNode& node) {
  if (node.kind == PyKind::kDict) return true;
  const PyNode* args = CallArguments(node, "collections", "OrderedDict");
  return args != nullptr && args->items.empty() && node.appended.empty();
}

// dcplan's (and PyTorch's) flattening treats a list as one value unless it
// holds a tensor, a mapping or a list that is not one value.
bool IsListSavedWhole(const PyNode& node) {
  for (const PyNode* item : node.items) {
    if (IsTensorNode(*item) || IsMappingNode(*item)) return false;
    if (item->kind == PyKind::kList && !IsListSavedWhole(*item)) return false;
  }
  return node.entries.empty() && node.appended.empty() && node.builds.empty();
}

class Converter {
 public:
  explicit Converter(std::shared_ptr<MappedTorchSave> file) : file_(std::move(file)) {}

  absl::StatusOr<const PyNode*> Parse() {
    StorageResolver resolver = [this](const PyNode& storage_class, const std::string& key,
                                      int64_t numel) -> absl::StatusOr<int64_t> {
      if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
      absl::StatusOr<c10::ScalarType> dtype = ScalarTypeOfStorageClass(storage_class.module, storage_class.name);
      if (!dtype.ok()) return dtype.status();
      const uint64_t element_size = c10::elementSize(*dtype);
      if (static_cast<uint64_t>(numel) > UINT64_MAX / element_size) return absl::DataLossError("storage too large");
      absl::StatusOr<const char*> data = file_->StoredRecord("data/" + key, static_cast<uint64_t>(numel) * element_size);
      if (!data.ok()) return data.status();
      const int64_t id = static_cast<int64_t>(storages_.size());
      storages_.push_back(MappedStorage{*dtype, numel, *data});
      by_key_.emplace(key, id);
      return id;
    };
    return ParsePickle(file_->data_pkl(), graph_, resolver);
  }

  absl::StatusOr<StateDict> ToStateDict(const PyNode& node, const std::string& where) {
    if (IsMappingNode(node)) {
      StateDict mapping = StateDict::MakeMapping();
      for (const auto& [key_node, value_node] : node.entries) {
        std::string key;
        if (key_node->kind == PyKind::kStr) {
          key = key_node->text;
        } else if (key_node->kind == PyKind::kInt) {
          key = absl::StrCat(key_node->integer);
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": a dict key of type ", DescribeNode(*key_node), " (only str and int keys)"));
        }
        absl::StatusOr<StateDict> value = ToStateDict(*value_node, where.empty() ? key : where + "." + key);
        if (!value.ok()) return value.status();
        mapping.AddEntry(std::move(key), *std::move(value));
      }
      return mapping;
    }
    if (node.kind == PyKind::kList && !IsListSavedWhole(node)) {
      std::vector<StateDict> items;
      for (size_t i = 0; i < node.items.size(); ++i) {
        absl::StatusOr<StateDict> item = ToStateDict(*node.items[i], absl::StrCat(where, ".", i));
        if (!item.ok()) return item.status();
        items.push_back(*std::move(item));
      }
      return StateDict::MakeList(std::move(items));
    }
    if (IsTensorNode(node)) {
      absl::StatusOr<at::Tensor> tensor = Tensor(node);
      if (!tensor.ok()) return absl::Status(tensor.status().code(), absl::StrCat(where, ": ", tensor.status().message()));
      return Value(*std::move(tensor));
    }
    absl::StatusOr<std::string> archive = Archive(node);
    if (!archive.ok()) return absl::Status(archive.status().code(), absl::StrCat(where, ": ", archive.status().message()));
    return Value(SavedObject{*std::move(archive)});
  }

 private:
  // A tensor viewing its storage record in the mapped file.
  absl::StatusOr<at::Tensor> Tensor(const PyNode& node) {
    if (const PyNode* args = CallArguments(node, "torch._utils", "_rebuild_parameter")) return Tensor(*args->items[0]);
    bool untyped = false;
    const std::vector<const PyNode*>& args = TensorRebuildArguments(node, &untyped)->items;
    const MappedStorage& storage = storages_[static_cast<size_t>(args[0]->source)];
    if (args[1]->kind != PyKind::kInt || args[2]->kind != PyKind::kTuple || args[3]->kind != PyKind::kTuple ||
        args[2]->items.size() != args[3]->items.size()) {
      return absl::InvalidArgumentError("malformed tensor rebuild arguments");
    }
    const size_t metadata = untyped ? 7 : 6;
    if (args.size() > metadata && !(args[metadata]->kind == PyKind::kDict && args[metadata]->entries.empty()) &&
        args[metadata]->kind != PyKind::kNone) {
      return absl::UnimplementedError("tensors with extra metadata (conjugate or negative bits) are not supported");
    }
    c10::ScalarType dtype;
    int64_t storage_numel = 0;
    DCPLAN_RETURN_IF_ERROR(RebuiltScalarType(untyped ? args[6] : nullptr, storage, &dtype, &storage_numel));
    std::vector<int64_t> sizes;
    std::vector<int64_t> strides;
    // Each dimension's reach is compared with the storage before it is
    // added, so the sum cannot overflow.
    __int128 last = args[1]->integer;
    bool empty = false;
    bool beyond = false;
    for (size_t d = 0; d < args[2]->items.size(); ++d) {
      const PyNode* size = args[2]->items[d];
      const PyNode* stride = args[3]->items[d];
      if (size->kind != PyKind::kInt || stride->kind != PyKind::kInt || size->integer < 0 || stride->integer < 0) {
        return absl::InvalidArgumentError("tensor sizes and strides must be non-negative ints");
      }
      sizes.push_back(size->integer);
      strides.push_back(stride->integer);
      if (size->integer == 0) empty = true;
      const __int128 reach = static_cast<__int128>(size->integer - 1) * stride->integer;
      if (reach >= storage_numel) beyond = true;
      if (!beyond) last += reach;
    }
    if (args[1]->integer < 0 || (!empty && (beyond || last >= storage_numel))) {
      return absl::DataLossError(absl::StrCat("the tensor lies outside its storage of ", storage_numel, " elements"));
    }
    const size_t element_size = c10::elementSize(dtype);
    const auto options = at::TensorOptions().dtype(dtype).device(c10::kCPU);
    try {
      char* data = const_cast<char*>(storage.data) + args[1]->integer * static_cast<int64_t>(element_size);
      if (empty) return at::empty(sizes, options);
      if (reinterpret_cast<uintptr_t>(data) % element_size != 0) {
        // Not aligned for its dtype: copy the storage (memcpy does not mind).
        at::Tensor copy = at::empty({storage_numel}, options);
        std::memcpy(copy.data_ptr(), storage.data, static_cast<size_t>(storage_numel) * element_size);
        return copy.as_strided(sizes, strides, args[1]->integer);
      }
      std::shared_ptr<MappedTorchSave> keep = file_;
      return at::from_blob(data, sizes, strides, [keep](void*) {}, options);
    } catch (const std::exception& e) {
      std::string what = e.what();
      return absl::InternalError(what.substr(0, what.find('\n')));
    }
  }

  // The torch.save archive of a non-tensor value, with its own storages.
  absl::StatusOr<std::string> Archive(const PyNode& node) {
    std::vector<std::pair<std::string, absl::string_view>> records;
    absl::flat_hash_map<int64_t, std::string> keys;
    StorageKeyer keyer = [&](const PyNode& storage) -> absl::StatusOr<std::string> {
      auto [it, inserted] = keys.try_emplace(storage.source, absl::StrCat(records.size()));
      if (inserted) {
        const MappedStorage& mapped = storages_[static_cast<size_t>(storage.source)];
        records.emplace_back(absl::StrCat("data/", it->second),
                             absl::string_view(mapped.data, static_cast<size_t>(mapped.numel) *
                                                                c10::elementSize(mapped.dtype)));
      }
      return it->second;
    };
    absl::StatusOr<std::string> pickle = EmitPickle(node, keyer);
    if (!pickle.ok()) return pickle.status();
    // A value that would run code when PyTorch unpickles it is not laundered
    // into a checkpoint that `verify` would then call sound.
    if (absl::Status policy = dcplan::pickle::CheckWeightsOnlyPickle(*pickle); !policy.ok()) return policy;
    return WriteArchiveToString(*pickle, records);
  }

  std::shared_ptr<MappedTorchSave> file_;
  PyGraph graph_;
  std::vector<MappedStorage> storages_;
  absl::flat_hash_map<std::string, int64_t> by_key_;
};

absl::StatusOr<ConvertSummary> Summarize(const StateDict& state_dict) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(state_dict);
  if (!flat.ok()) return flat.status();
  ConvertSummary summary;
  for (const auto& [key, value] : flat->values) {
    const at::Tensor* tensor = value.is_leaf() ? PlainTensorOf(*value.leaf()) : nullptr;
    if (tensor == nullptr) {
      ++summary.values;
      continue;
    }
    ++summary.tensors;
    summary.tensor_bytes += tensor->numel() * static_cast<int64_t>(tensor->element_size());
  }
  return summary;
}

// The state dict holding only the keys `keys` selects.
absl::StatusOr<StateDict> SelectKeys(const StateDict& state_dict, const std::vector<std::string>& keys,
                                     std::vector<std::string>* unmatched_keys) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(state_dict);
  if (!flat.ok()) return flat.status();
  KeyMatcher matcher(keys);
  for (const auto& [key, path] : flat->mapping) matcher.Add(key, &path);
  *unmatched_keys = matcher.Unmatched();
  if (!unmatched_keys->empty()) return absl::FailedPreconditionError("--keys selects nothing for some keys");
  const absl::flat_hash_set<std::string> wanted(keys.begin(), keys.end());
  OrderedMap<std::string, StateDict> selected;
  for (auto& [key, value] : flat->values) {
    if (IsSelected(key, flat->mapping.Find(key), wanted)) selected.InsertOrAssign(key, value);
  }
  return UnflattenStateDict(std::move(selected), flat->mapping);
}

}  // namespace

absl::StatusOr<ConvertSummary> TorchSaveToDcp(const std::string& in_path, const std::string& out_directory,
                                              const TorchSaveToDcpOptions& options,
                                              std::vector<std::string>* unmatched_keys) {
  unmatched_keys->clear();
  absl::StatusOr<std::shared_ptr<MappedTorchSave>> file = MappedTorchSave::Open(in_path);
  if (!file.ok()) return file.status();
  Converter converter(*file);
  absl::StatusOr<const PyNode*> root = converter.Parse();
  if (!root.ok()) return absl::DataLossError(absl::StrCat("'", in_path, "' data.pkl: ", root.status().message()));
  if (!IsMappingNode(**root)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", in_path, "' holds a ", DescribeNode(**root), ", not a dict: nothing to save as a checkpoint"));
  }
  absl::StatusOr<StateDict> state_dict = converter.ToStateDict(**root, "");
  if (!state_dict.ok()) return absl::Status(state_dict.status().code(),
                                            absl::StrCat("'", in_path, "' ", state_dict.status().message()));
  if (options.keys.has_value()) {
    state_dict = SelectKeys(*state_dict, *options.keys, unmatched_keys);
    if (!state_dict.ok()) return state_dict.status();
  }
  absl::StatusOr<ConvertSummary> summary = Summarize(*state_dict);
  if (!summary.ok()) return summary.status();
  FileSystemWriterOptions writer_options;
  writer_options.overwrite = options.overwrite;
  writer_options.progress = options.progress;
  FileSystemWriter writer(out_directory, writer_options);
  SingleProcessCoordinator coordinator;
  absl::StatusOr<Metadata> saved = Save(*state_dict, writer, coordinator);
  if (!saved.ok()) return saved.status();
  return summary;
}

}  // namespace dcplan::tools::convert
