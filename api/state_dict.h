#ifndef DCPLAN_API_STATE_DICT_H_
#define DCPLAN_API_STATE_DICT_H_

// StateDict: what a training stack saves and loads. A nested structure of
// string-keyed mappings and lists (engine/flatten.h's Nested) whose leaves are
//   - a torch::Tensor: replicated, every rank holding the key holds the whole
//     tensor (saved as one TENSOR item, deduplicated across ranks);
//   - a ShardedTensorValue: the global shape plus this rank's local shards,
//     each a tensor with its global offsets (FSDP, TP, 2-D; one SHARD item per
//     shard; no shard: no item, the key stays in the flatten mapping);
//   - any other c10::IValue LibTorch can pickle (ints, floats, strings, lists,
//     dicts, tuples, ...): saved as a BYTE_IO item in torch.save format;
//   - a SavedObject: a loaded value LibTorch cannot build, kept as its
//     torch.save bytes and saved again unchanged.
// Keys are flattened exactly like PyTorch's DCP, so checkpoints interoperate.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include "absl/status/statusor.h"
#include "engine/box.h"
#include "engine/description.h"
#include "engine/flatten.h"

namespace dcplan {

// One piece of a sharded tensor held by this rank.
struct LocalShard {
  at::Tensor tensor;  // its sizes are the piece's sizes
  Shape offsets;      // where the piece starts in the global tensor
};

// A sharded tensor as the training stack holds it. (Named apart from the
// engine's description type dcplan::ShardedTensor, engine/description.h, which
// holds chunk boxes instead of tensors.)
struct ShardedTensorValue {
  Shape global_shape;
  // The dtype of every shard; needed when this rank holds no shard.
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<LocalShard> local_shards;
};

// A saved value dcplan cannot turn into an IValue: Python-only types (bytes,
// numpy arrays, custom classes, or containers holding them). Loading keeps
// the value's torch.save archive exactly as stored; saving writes those bytes
// back unchanged, so Python's torch.load sees the original value.
struct SavedObject {
  std::string archive;  // the BYTE_IO item's bytes, a torch.save archive

  friend bool operator==(const SavedObject& a, const SavedObject& b) { return a.archive == b.archive; }
};

using StateValue = std::variant<at::Tensor, ShardedTensorValue, c10::IValue, SavedObject>;
using StateDict = Nested<StateValue>;

// Convenience constructors for building state dicts in code.
//   StateDict sd = Dict({{"model", Dict({{"w", Value(w)}})}, {"step", Value(c10::IValue(5))}});
// Value(IValue) of a tensor IValue stores the tensor (a tensor leaf); None is
// stored as an IValue leaf (saved as a bytes value, like a Python None).
StateDict Value(at::Tensor tensor);
StateDict Value(ShardedTensorValue tensor);
StateDict Value(c10::IValue value);
StateDict Value(SavedObject object);
StateDict Dict(std::vector<std::pair<std::string, StateDict>> entries);
StateDict List(std::vector<StateDict> items);

// True for tensor leaves (plain, sharded, or an IValue holding a tensor): what
// the flattening traversal needs to know.
bool IsTensorValue(const StateValue& value);

// The plain tensor of a leaf (an at::Tensor, or an IValue holding a tensor),
// or nullptr (sharded tensors and other values).
const at::Tensor* PlainTensorOf(const StateValue& value);

// Flattens like PyTorch's set_up_planner (flatten_state_dict, current key
// format). Errors: duplicated keys, a root that is not a mapping.
absl::StatusOr<FlatStateDict<StateValue>> FlattenForSave(const StateDict& state_dict);

// The engine description of a flattened state dict: WholeTensor for tensors
// (dtype, requires_grad, pin_memory from the tensor; layout strided, memory
// format contiguous), ShardedTensor for sharded ones (properties: the declared
// dtype, every other field default, so that ranks without shards describe the
// tensor alike), OpaqueValue (nbytes unknown) for everything else (None,
// values and subtrees saved whole; a SavedObject leaf with nbytes = its
// archive's size), with `flat.mapping` as the mapping.
// Errors (InvalidArgument naming the key, and the shard): an undefined or
// non-strided (sparse, mkldnn) tensor, a dtype DCP cannot record, a negative
// global dim, a shard whose offsets or dims do not have the global shape's
// rank, that does not lie inside the global shape, or whose dtype differs from
// the declared one.
absl::StatusOr<StateDictDescription> Describe(const FlatStateDict<StateValue>& flat);

// A non-tensor value (leaf or subtree saved whole) as the IValue that is
// pickled: None, scalars and objects as they are, mappings as
// Dict[str, Any], lists as List[Any]. Errors: a tensor found inside
// a subtree that is saved whole (PyTorch would pickle it inside the blob;
// dcplan supports that only for IValue leaves); a SavedObject (it is no
// IValue: its archive is written as is, see DefaultSavePlanner).
absl::StatusOr<c10::IValue> ToIValue(const StateDict& value);

// A nested IValue (GenericDict / List / Tuple / Tensor / scalars) as a
// StateDict: dicts become mappings (keys stringified like PyTorch), lists
// become lists, tensors become tensor leaves, everything else (tuples
// included) IValue leaves.
absl::StatusOr<StateDict> FromIValue(const c10::IValue& value);

}  // namespace dcplan

#endif  // DCPLAN_API_STATE_DICT_H_
