#ifndef DCPLAN_ENGINE_INTERNAL_FLATTEN_IMPL_H_
#define DCPLAN_ENGINE_INTERNAL_FLATTEN_IMPL_H_

// Template bodies of engine/flatten.h. Include engine/flatten.h, not this.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/flatten.h"
#include "engine/object_path.h"

namespace dcplan {
namespace flatten_internal {

// Error builders (flatten.cc), kept out of the templates.
absl::Status RootNotMappingError(NestedKind kind);
absl::Status NestingTooDeepError(const ObjectPath& below);
absl::Status DuplicatedKeyError(const std::string& key);
absl::Status EmptyPathError();
absl::Status PathTooLongError(const ObjectPath& path);
// Step `step` of `path` cannot be applied to a value of kind `found`.
absl::Status BadStepError(const ObjectPath& path, size_t step, NestedKind found);
absl::Status BadListIndexError(const ObjectPath& path, size_t step, int64_t index);
absl::Status MissingPathError(const std::string& key);
absl::Status WithFlatKey(const absl::Status& status, const std::string& key);

template <typename Leaf>
class Traversal {
 public:
  using Node = Nested<Leaf>;

  Traversal(KeyFormat format, IsTensorLeaf<Leaf> is_tensor, FlattenVisitor<Leaf> visit)
      : format_(format), is_tensor_(is_tensor), visit_(visit) {}

  absl::Status Run(const Node& root) {
    if (!root.is_mapping()) return RootNotMappingError(root.kind());
    for (const auto& entry : root.entries()) {
      path_.emplace_back(entry.key);
      absl::Status status = Visit(entry.value);
      if (!status.ok()) return status;
      path_.pop_back();
    }
    return absl::OkStatus();
  }

 private:
  // `node` sits at path_.
  absl::Status Visit(const Node& node) {
    if (path_.size() > kMaxNestingDepth) return NestingTooDeepError(path_);
    absl::StatusOr<bool> terminal = IsTerminal(node, path_.size());
    if (!terminal.ok()) return terminal.status();
    if (*terminal) return visit_(path_, node);
    if (node.is_mapping()) {
      for (const auto& entry : node.entries()) {
        path_.emplace_back(entry.key);
        absl::Status status = Visit(entry.value);
        if (!status.ok()) return status;
        path_.pop_back();
      }
      return absl::OkStatus();
    }
    // Only containers can be non-terminal, and mappings were handled above.
    const std::vector<Node>& items = node.items();
    for (size_t i = 0; i < items.size(); ++i) {
      path_.emplace_back(static_cast<int64_t>(i));
      absl::Status status = Visit(items[i]);
      if (!status.ok()) return status;
      path_.pop_back();
    }
    return absl::OkStatus();
  }

  // PyTorch's is_terminal (kCurrent) / is_terminal_23 (kLegacy2_3), memoised
  // per container so that nested lists are scanned once, not once per level.
  // `depth` is the node's depth, for the nesting limit.
  absl::StatusOr<bool> IsTerminal(const Node& node, size_t depth) {
    if (node.is_mapping()) {
      if (format_ == KeyFormat::kCurrent) return false;
    } else if (!node.is_list()) {
      return true;
    }
    auto cached = terminal_.find(&node);
    if (cached != terminal_.end()) return cached->second;
    if (depth > kMaxNestingDepth) return NestingTooDeepError(path_);
    absl::StatusOr<bool> terminal = node.is_mapping() ? ChildrenAreTerminal(node.entries(), depth)
                                                      : ChildrenAreTerminal(node.items(), depth);
    if (terminal.ok()) terminal_.emplace(&node, *terminal);
    return terminal;
  }

  template <typename Children>
  absl::StatusOr<bool> ChildrenAreTerminal(const Children& children, size_t depth) {
    for (const auto& child : children) {
      const Node& value = ValueOf(child);
      if (value.is_leaf() && is_tensor_(*value.leaf())) return false;
      if (value.is_mapping() || value.is_list()) {
        absl::StatusOr<bool> terminal = IsTerminal(value, depth + 1);
        if (!terminal.ok() || !*terminal) return terminal;
      }
    }
    return true;
  }

  static const Node& ValueOf(const Node& item) { return item; }
  static const Node& ValueOf(const NestedEntry<Leaf>& entry) { return entry.value; }

  const KeyFormat format_;
  const IsTensorLeaf<Leaf> is_tensor_;
  const FlattenVisitor<Leaf> visit_;
  ObjectPath path_;
  absl::flat_hash_map<const Node*, bool> terminal_;
};

inline bool IsIndex(const PathElement& element) {
  return std::holds_alternative<int64_t>(element);
}

// Pads `list` with None so that `index` exists; errors for impossible indices.
template <typename Leaf>
absl::StatusOr<Nested<Leaf>*> ListSlot(Nested<Leaf>& list, const ObjectPath& path, size_t step) {
  const int64_t index = std::get<int64_t>(path[step]);
  if (index < 0 || index > kMaxListIndex) return BadListIndexError(path, step, index);
  std::vector<Nested<Leaf>>& items = *list.mutable_items();
  if (items.size() <= static_cast<size_t>(index)) items.resize(static_cast<size_t>(index) + 1);
  return &items[static_cast<size_t>(index)];
}

// The child of `node` named by path[step], created as {} or [] (by the kind of
// path[step + 1]) when missing, or when a None list item.
template <typename Leaf>
absl::StatusOr<Nested<Leaf>*> ChildForStep(Nested<Leaf>& node, const ObjectPath& path, size_t step) {
  const bool next_is_index = IsIndex(path[step + 1]);
  Nested<Leaf> fresh = next_is_index ? Nested<Leaf>::MakeList() : Nested<Leaf>::MakeMapping();
  if (node.is_mapping() && !IsIndex(path[step])) {
    const std::string& key = std::get<std::string>(path[step]);
    if (Nested<Leaf>* existing = node.FindEntry(key)) return existing;
    return node.AddEntry(key, std::move(fresh));
  }
  if (node.is_list() && IsIndex(path[step])) {
    absl::StatusOr<Nested<Leaf>*> slot = ListSlot(node, path, step);
    if (slot.ok() && (*slot)->is_none()) **slot = std::move(fresh);
    return slot;
  }
  return BadStepError(path, step, node.kind());
}

}  // namespace flatten_internal

template <typename Leaf>
absl::Status TraverseStateDict(const Nested<Leaf>& state_dict, KeyFormat format, IsTensorLeaf<Leaf> is_tensor,
                               FlattenVisitor<Leaf> visit) {
  return flatten_internal::Traversal<Leaf>(format, is_tensor, visit).Run(state_dict);
}

template <typename Leaf>
absl::StatusOr<FlatStateDict<Leaf>> FlattenStateDict(const Nested<Leaf>& state_dict, KeyFormat format,
                                                     IsTensorLeaf<Leaf> is_tensor) {
  FlatStateDict<Leaf> flat;
  absl::Status status = TraverseStateDict<Leaf>(
      state_dict, format, is_tensor, [&flat](const ObjectPath& path, const Nested<Leaf>& value) -> absl::Status {
        std::string key = FlatKey(path);
        auto [slot, inserted] = flat.values.TryEmplace(key, Nested<Leaf>());
        if (!inserted) return flatten_internal::DuplicatedKeyError(key);
        *slot = value;
        flat.mapping.TryEmplace(std::move(key), path);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return flat;
}

template <typename Leaf>
absl::Status SetElement(Nested<Leaf>& root, const ObjectPath& path, Nested<Leaf> value) {
  if (path.empty()) return flatten_internal::EmptyPathError();
  if (path.size() > kMaxNestingDepth) return flatten_internal::PathTooLongError(path);
  Nested<Leaf>* node = &root;
  for (size_t step = 0; step + 1 < path.size(); ++step) {
    absl::StatusOr<Nested<Leaf>*> child = flatten_internal::ChildForStep(*node, path, step);
    if (!child.ok()) return child.status();
    node = *child;
  }
  const size_t last = path.size() - 1;
  if (node->is_mapping() && !flatten_internal::IsIndex(path[last])) {
    const std::string& key = std::get<std::string>(path[last]);
    if (Nested<Leaf>* existing = node->FindEntry(key)) {
      *existing = std::move(value);
    } else {
      node->AddEntry(key, std::move(value));
    }
    return absl::OkStatus();
  }
  if (node->is_list() && flatten_internal::IsIndex(path[last])) {
    absl::StatusOr<Nested<Leaf>*> slot = flatten_internal::ListSlot(*node, path, last);
    if (!slot.ok()) return slot.status();
    **slot = std::move(value);
    return absl::OkStatus();
  }
  return flatten_internal::BadStepError(path, last, node->kind());
}

template <typename Leaf>
absl::StatusOr<Nested<Leaf>> UnflattenStateDict(OrderedMap<std::string, Nested<Leaf>> flat,
                                                const FlattenMapping& mapping) {
  Nested<Leaf> root = Nested<Leaf>::MakeMapping();
  for (auto& [key, value] : flat) {
    const ObjectPath* path = mapping.Find(key);
    if (path == nullptr) return flatten_internal::MissingPathError(key);
    absl::Status status = SetElement(root, *path, std::move(value));
    if (!status.ok()) return flatten_internal::WithFlatKey(status, key);
  }
  return root;
}

template <typename Leaf>
absl::StatusOr<LoadFlattening<Leaf>> FlattenStateDictForLoad(const Nested<Leaf>& state_dict,
                                                              const Nested<Leaf>& original_state_dict,
                                                              absl::Span<const std::string> checkpoint_keys,
                                                              IsTensorLeaf<Leaf> is_tensor) {
  absl::StatusOr<FlatStateDict<Leaf>> current = FlattenStateDict(state_dict, KeyFormat::kCurrent, is_tensor);
  if (!current.ok()) return current.status();
  std::vector<std::string> current_keys;
  current_keys.reserve(current->values.size());
  for (const auto& entry : current->values) current_keys.push_back(entry.first);
  LoadFlattening<Leaf> result{KeyFormat::kCurrent, *std::move(current)};
  if (ExtraCheckpointKeys(checkpoint_keys, current_keys).empty()) return result;

  absl::StatusOr<FlatStateDict<Leaf>> legacy =
      FlattenStateDict(original_state_dict, KeyFormat::kLegacy2_3, is_tensor);
  if (!legacy.ok()) return result;
  std::vector<std::string> legacy_keys;
  legacy_keys.reserve(legacy->values.size());
  for (const auto& entry : legacy->values) legacy_keys.push_back(entry.first);
  if (ChooseLoadKeyFormat(checkpoint_keys, current_keys, legacy_keys) == KeyFormat::kLegacy2_3) {
    result.format = KeyFormat::kLegacy2_3;
    result.flat = *std::move(legacy);
  }
  return result;
}

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_INTERNAL_FLATTEN_IMPL_H_
