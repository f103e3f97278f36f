#include "api/state_dict.h"

#include <exception>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/jit_type.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "engine/metadata.h"

namespace dcplan {
namespace {

absl::Status KeyError(const std::string& key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("state dict value '", key, "': ", what));
}

absl::StatusOr<ValueDescription> DescribeTensor(const std::string& key, const at::Tensor& tensor) {
  if (!tensor.defined()) return KeyError(key, "undefined tensor");
  if (tensor.layout() != c10::kStrided) {
    return KeyError(key, absl::StrCat("only strided tensors can be saved, this one has layout ",
                                      c10::toString(tensor.layout())));
  }
  absl::StatusOr<DType> dtype = DTypeFromScalarType(tensor.scalar_type());
  if (!dtype.ok()) return KeyError(key, dtype.status().message());
  WholeTensor whole;
  whole.shape = tensor.sizes().vec();
  whole.properties.dtype = *dtype;
  whole.properties.requires_grad = tensor.requires_grad();
  try {
    whole.properties.pin_memory = tensor.is_pinned();
  } catch (const std::exception& e) {
    return KeyError(key, absl::StrCat("cannot tell whether the tensor is pinned: ", e.what()));
  }
  return whole;
}

absl::Status ShardError(const std::string& key, size_t shard, absl::string_view what) {
  return KeyError(key, absl::StrCat("local shard ", shard, ": ", what));
}

absl::Status CheckShard(const std::string& key, size_t i, const LocalShard& shard, const ShardedTensorValue& sharded,
                        const ChunkBox& box) {
  const at::Tensor& tensor = shard.tensor;
  const size_t rank = sharded.global_shape.size();
  if (!tensor.defined()) return ShardError(key, i, "undefined tensor");
  if (tensor.layout() != c10::kStrided) return ShardError(key, i, "not a strided tensor");
  if (shard.offsets.size() != rank || static_cast<size_t>(tensor.dim()) != rank) {
    return ShardError(key, i,
                      absl::StrCat(shard.offsets.size(), " offsets and ", tensor.dim(),
                                   " dims for a tensor of global shape ", ShapeToString(sharded.global_shape)));
  }
  if (!InBounds(sharded.global_shape, box)) {
    return ShardError(key, i,
                      absl::StrCat(ToString(box), " does not lie inside the global shape ",
                                   ShapeToString(sharded.global_shape)));
  }
  if (tensor.scalar_type() != sharded.dtype) {
    return ShardError(key, i,
                      absl::StrCat("dtype ", c10::toString(tensor.scalar_type()), " differs from the declared ",
                                   c10::toString(sharded.dtype)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ValueDescription> DescribeSharded(const std::string& key, const ShardedTensorValue& sharded) {
  for (int64_t dim : sharded.global_shape) {
    if (dim < 0) {
      return KeyError(key, absl::StrCat("negative dim in global shape ", ShapeToString(sharded.global_shape)));
    }
  }
  absl::StatusOr<DType> dtype = DTypeFromScalarType(sharded.dtype);
  if (!dtype.ok()) return KeyError(key, dtype.status().message());
  ShardedTensor description;
  description.global_shape = sharded.global_shape;
  description.properties.dtype = *dtype;
  description.local_chunks.reserve(sharded.local_shards.size());
  for (size_t i = 0; i < sharded.local_shards.size(); ++i) {
    const LocalShard& shard = sharded.local_shards[i];
    ChunkBox box{shard.offsets, shard.tensor.defined() ? shard.tensor.sizes().vec() : Shape()};
    absl::Status status = CheckShard(key, i, shard, sharded, box);
    if (!status.ok()) return status;
    description.local_chunks.push_back(std::move(box));
  }
  return description;
}

absl::StatusOr<ValueDescription> DescribeValue(const std::string& key, const StateDict& value) {
  if (value.is_leaf()) {
    if (const at::Tensor* tensor = PlainTensorOf(*value.leaf())) return DescribeTensor(key, *tensor);
    if (const auto* sharded = std::get_if<ShardedTensorValue>(value.leaf())) return DescribeSharded(key, *sharded);
    if (const auto* saved = std::get_if<SavedObject>(value.leaf())) {
      return OpaqueValue{static_cast<int64_t>(saved->archive.size())};
    }
  }
  return OpaqueValue{};
}

absl::Status TooDeep() {
  return absl::InvalidArgumentError(absl::StrCat("value nests deeper than ", kMaxNestingDepth, " levels"));
}

absl::StatusOr<c10::IValue> ToIValueAt(const StateDict& value, size_t depth) {
  if (depth > kMaxNestingDepth) return TooDeep();
  switch (value.kind()) {
    case NestedKind::kNone:
      return c10::IValue();
    case NestedKind::kLeaf: {
      if (const auto* ivalue = std::get_if<c10::IValue>(value.leaf())) return *ivalue;
      if (std::holds_alternative<SavedObject>(*value.leaf())) {
        return absl::InvalidArgumentError(
            "a saved object (a value LibTorch cannot build, kept as its torch.save bytes) is not an IValue");
      }
      return absl::InvalidArgumentError(
          "a tensor inside a value saved whole cannot be serialized (only as part of an IValue leaf)");
    }
    case NestedKind::kMapping: {
      c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
      dict.reserve(value.entries().size());
      for (const auto& entry : value.entries()) {
        absl::StatusOr<c10::IValue> item = ToIValueAt(entry.value, depth + 1);
        if (!item.ok()) return item.status();
        if (!dict.insert(c10::IValue(entry.key), *std::move(item)).second) {
          return absl::InvalidArgumentError(absl::StrCat("duplicated key '", entry.key, "' in a mapping"));
        }
      }
      return c10::IValue(std::move(dict));
    }
    case NestedKind::kList: {
      c10::impl::GenericList list(c10::AnyType::get());
      list.reserve(value.items().size());
      for (const StateDict& element : value.items()) {
        absl::StatusOr<c10::IValue> item = ToIValueAt(element, depth + 1);
        if (!item.ok()) return item.status();
        list.push_back(*std::move(item));
      }
      return c10::IValue(std::move(list));
    }
  }
  return absl::InternalError("unknown NestedKind");
}

// Python's str() of a dict key, as PyTorch builds object paths.
absl::StatusOr<std::string> KeyString(const c10::IValue& key) {
  if (key.isString()) return key.toStringRef();
  if (key.isInt()) return absl::StrCat(key.toInt());
  if (key.isBool()) return std::string(key.toBool() ? "True" : "False");
  return absl::InvalidArgumentError(
      absl::StrCat("dict keys of type ", key.tagKind(), " are not supported (str, int and bool are)"));
}

absl::StatusOr<StateDict> FromIValueAt(const c10::IValue& value, size_t depth) {
  if (depth > kMaxNestingDepth) return TooDeep();
  if (value.isNone()) return StateDict::MakeNone();
  if (value.isTensor()) return Value(value.toTensor());
  if (value.isGenericDict()) {
    StateDict mapping = StateDict::MakeMapping();
    for (const auto& entry : value.toGenericDict()) {
      absl::StatusOr<std::string> key = KeyString(entry.key());
      if (!key.ok()) return key.status();
      absl::StatusOr<StateDict> item = FromIValueAt(entry.value(), depth + 1);
      if (!item.ok()) return item.status();
      mapping.AddEntry(*std::move(key), *std::move(item));
    }
    return mapping;
  }
  if (value.isList()) {
    const c10::List<c10::IValue> list = value.toList();
    std::vector<StateDict> items;
    items.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      absl::StatusOr<StateDict> item = FromIValueAt(list.get(i), depth + 1);
      if (!item.ok()) return item.status();
      items.push_back(*std::move(item));
    }
    return StateDict::MakeList(std::move(items));
  }
  return StateDict::MakeLeaf(value);
}

}  // namespace

StateDict Value(at::Tensor tensor) { return StateDict::MakeLeaf(std::move(tensor)); }
StateDict Value(ShardedTensorValue tensor) { return StateDict::MakeLeaf(std::move(tensor)); }
StateDict Value(c10::IValue value) {
  if (value.isTensor()) return Value(value.toTensor());
  return StateDict::MakeLeaf(std::move(value));
}
StateDict Value(SavedObject object) { return StateDict::MakeLeaf(std::move(object)); }

StateDict Dict(std::vector<std::pair<std::string, StateDict>> entries) {
  std::vector<StateDict::Entry> nested;
  nested.reserve(entries.size());
  for (auto& [key, value] : entries) nested.push_back(StateDict::Entry{std::move(key), std::move(value)});
  return StateDict::MakeMapping(std::move(nested));
}

StateDict List(std::vector<StateDict> items) { return StateDict::MakeList(std::move(items)); }

const at::Tensor* PlainTensorOf(const StateValue& value) {
  if (const auto* tensor = std::get_if<at::Tensor>(&value)) return tensor;
  if (const auto* ivalue = std::get_if<c10::IValue>(&value); ivalue != nullptr && ivalue->isTensor()) {
    return &ivalue->toTensor();
  }
  return nullptr;
}

bool IsTensorValue(const StateValue& value) {
  return PlainTensorOf(value) != nullptr || std::holds_alternative<ShardedTensorValue>(value);
}

absl::StatusOr<FlatStateDict<StateValue>> FlattenForSave(const StateDict& state_dict) {
  return FlattenStateDict<StateValue>(state_dict, KeyFormat::kCurrent, IsTensorValue);
}

absl::StatusOr<StateDictDescription> Describe(const FlatStateDict<StateValue>& flat) {
  StateDictDescription description;
  description.values.reserve(flat.values.size());
  for (const auto& [key, value] : flat.values) {
    absl::StatusOr<ValueDescription> described = DescribeValue(key, value);
    if (!described.ok()) return described.status();
    description.values.InsertOrAssign(key, *std::move(described));
  }
  description.mapping = flat.mapping;
  return description;
}

absl::StatusOr<c10::IValue> ToIValue(const StateDict& value) { return ToIValueAt(value, 0); }

absl::StatusOr<StateDict> FromIValue(const c10::IValue& value) { return FromIValueAt(value, 0); }

}  // namespace dcplan
