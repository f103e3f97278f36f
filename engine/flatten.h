#ifndef DCPLAN_ENGINE_FLATTEN_H_
#define DCPLAN_ENGINE_FLATTEN_H_

// State-dict key flattening (spec/planner.md §2.1–2.5, §5.2), without LibTorch.
//
// A state dict is a tree of `Nested<Leaf>` values: mappings (string keys, in
// insertion order), lists, leaves (whatever the caller stores: tensors,
// tuples, scalars, opaque objects) and None. The LibTorch layer converts its
// IValues into this tree (stringifying int dict keys, turning tuples and sets
// into leaves) and supplies a predicate telling which leaves are tensors
// (plain, DTensor or ShardedTensor): that is the only thing the traversal
// needs to know about a leaf. Leaf must be copyable (flattening copies the
// values into the flat dict; for LibTorch values that is a reference-count
// bump); operator== on Nested needs Leaf's operator==.
//
// Flattening turns the tree into an ordered map "a.b.0" -> value plus the
// FlattenMapping "a.b.0" -> ('a', 'b', 0); unflattening rebuilds a tree from
// the two. Two key formats exist (KeyFormat): the current (E2+) traversal and
// the legacy E0–E1 one PyTorch calls "2_3". PyTorch selects between them with
// a process-global (`_version._derived_version`, anchor-defects.md); here the
// format is always an explicit argument, so concurrent saves and loads never
// influence each other and an error cannot leave a stale setting behind.
//
// Everything here is linear in the size of the tree: list terminal-ness is
// computed once per list (PyTorch recomputes it at every level), and mapping
// lookups in SetElement go through a hash index.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/object_path.h"
#include "engine/ordered_map.h"

namespace dcplan {

// Which traversal produces the flat keys.
enum class KeyFormat {
  // E2+ (`traverse_state_dict`): every mapping is descended into; a list is a
  // leaf unless it holds a tensor, a mapping, or a list that is not a leaf.
  kCurrent,
  // E0–E1 (`traverse_state_dict_v_2_3`): a mapping or list with no tensor
  // anywhere below it is one leaf, saved whole.
  kLegacy2_3,
};

// "current" or "2_3" (PyTorch's name for the legacy format).
absl::string_view KeyFormatName(KeyFormat format);

// Trees deeper than this are rejected (InvalidArgument) instead of risking
// the stack. Python's default recursion limit (1000 frames) means PyTorch
// could not have flattened such a state dict either.
inline constexpr size_t kMaxNestingDepth = 1000;

// SetElement refuses list indices above this. PyTorch pads lists with None up
// to any index; a corrupted mapping in a checkpoint could then demand
// terabytes, so the engine bounds it (about 1M placeholders).
inline constexpr int64_t kMaxListIndex = (int64_t{1} << 20) - 1;

enum class NestedKind { kNone, kLeaf, kMapping, kList };

absl::string_view NestedKindName(NestedKind kind);  // "None", "leaf", "mapping", "list"

template <typename Leaf>
struct NestedEntry;

// One value of a state dict. Default-constructed, it is None: Python's None as
// a value (a non-tensor leaf for the traversals) and the placeholder
// SetElement pads lists with.
//
// A mapping keeps its entries in insertion order and, unlike a Python dict,
// may hold the same key twice: the LibTorch layer stringifies keys, so
// {0: x, "0": y} arrives here as two "0" entries, and flattening must then
// report the duplicated key as PyTorch does rather than lose one silently.
// Lookups find the first entry with a key.
template <typename Leaf>
class Nested {
 public:
  using leaf_type = Leaf;
  using Entry = NestedEntry<Leaf>;

  Nested() = default;

  static Nested MakeNone() { return Nested(); }
  static Nested MakeLeaf(Leaf leaf) {
    Nested n(NestedKind::kLeaf);
    n.leaf_.emplace(std::move(leaf));
    return n;
  }
  static Nested MakeMapping(std::vector<Entry> entries = {}) {
    Nested n(NestedKind::kMapping);
    n.entries_ = std::move(entries);
    n.first_position_.reserve(n.entries_.size());
    for (size_t i = 0; i < n.entries_.size(); ++i) n.first_position_.try_emplace(n.entries_[i].key, i);
    return n;
  }
  static Nested MakeList(std::vector<Nested> items = {}) {
    Nested n(NestedKind::kList);
    n.items_ = std::move(items);
    return n;
  }

  NestedKind kind() const { return kind_; }
  bool is_none() const { return kind_ == NestedKind::kNone; }
  bool is_leaf() const { return kind_ == NestedKind::kLeaf; }
  bool is_mapping() const { return kind_ == NestedKind::kMapping; }
  bool is_list() const { return kind_ == NestedKind::kList; }

  // The leaf, or nullptr unless is_leaf().
  const Leaf* leaf() const { return leaf_ ? &*leaf_ : nullptr; }
  Leaf* mutable_leaf() { return leaf_ ? &*leaf_ : nullptr; }

  // A mapping's entries in insertion order (empty for other kinds).
  const std::vector<Entry>& entries() const { return entries_; }
  // The value of the first entry named `key`, or nullptr (also when this is
  // not a mapping).
  const Nested* FindEntry(const std::string& key) const {
    auto it = first_position_.find(key);
    return it == first_position_.end() ? nullptr : &entries_[it->second].value;
  }
  Nested* FindEntry(const std::string& key) {
    auto it = first_position_.find(key);
    return it == first_position_.end() ? nullptr : &entries_[it->second].value;
  }
  // Appends an entry (even if `key` is already present) and returns its
  // value, or returns nullptr and changes nothing if this is not a mapping.
  Nested* AddEntry(std::string key, Nested value) {
    if (!is_mapping()) return nullptr;
    first_position_.try_emplace(key, entries_.size());
    entries_.push_back(Entry{std::move(key), std::move(value)});
    return &entries_.back().value;
  }

  // A list's items (empty for other kinds).
  const std::vector<Nested>& items() const { return items_; }
  // The items to modify, or nullptr unless is_list().
  std::vector<Nested>* mutable_items() { return is_list() ? &items_ : nullptr; }

  // Structural equality: same kind, leaves equal, entries equal in order,
  // items equal in order. Needs Leaf's operator==.
  friend bool operator==(const Nested& a, const Nested& b) {
    return a.kind_ == b.kind_ && a.leaf_ == b.leaf_ && a.entries_ == b.entries_ && a.items_ == b.items_;
  }
  friend bool operator!=(const Nested& a, const Nested& b) { return !(a == b); }

 private:
  explicit Nested(NestedKind kind) : kind_(kind) {}

  NestedKind kind_ = NestedKind::kNone;
  std::optional<Leaf> leaf_;
  std::vector<Entry> entries_;
  absl::flat_hash_map<std::string, size_t> first_position_;
  std::vector<Nested> items_;
};

template <typename Leaf>
struct NestedEntry {
  std::string key;
  Nested<Leaf> value;

  friend bool operator==(const NestedEntry& a, const NestedEntry& b) { return a.key == b.key && a.value == b.value; }
  friend bool operator!=(const NestedEntry& a, const NestedEntry& b) { return !(a == b); }
};

// Tells whether a leaf is a tensor (plain, DTensor or ShardedTensor). Tuples,
// sets and other objects are not, even when they contain tensors.
template <typename Leaf>
using IsTensorLeaf = absl::FunctionRef<bool(const typename Nested<Leaf>::leaf_type&)>;

// Called for each value the traversal treats as a leaf, with its object path.
// A non-OK status stops the traversal and is returned.
template <typename Leaf>
using FlattenVisitor =
    absl::FunctionRef<absl::Status(const ObjectPath&, const Nested<typename Nested<Leaf>::leaf_type>&)>;

// traverse_state_dict (kCurrent, §2.2) or traverse_state_dict_v_2_3
// (kLegacy2_3, §2.3): visits the leaves of `state_dict`, depth first, in
// entry and item order. The root itself is never a leaf, in either format:
// each top-level entry is visited separately. A mapping contributes its keys
// as path elements, a list its indices.
// Errors: InvalidArgument when the root is not a mapping or the tree nests
// deeper than kMaxNestingDepth; any error the visitor returns.
template <typename Leaf>
absl::Status TraverseStateDict(const Nested<Leaf>& state_dict, KeyFormat format, IsTensorLeaf<Leaf> is_tensor,
                               FlattenVisitor<Leaf> visit);

// The flattened state dict: flat key -> value (a copy of the leaf or, for
// a list or legacy mapping saved whole, of the subtree) and flat key -> object
// path, both in traversal order.
template <typename Leaf>
struct FlatStateDict {
  OrderedMap<std::string, Nested<Leaf>> values;
  FlattenMapping mapping;
};

// flatten_state_dict (§2.4) with the traversal of `format`. Every leaf gets a
// mapping entry, top-level scalars included ({"step": 5} -> ('step',)).
// Errors: TraverseStateDict's; InvalidArgument "duplicated flatten key a.b"
// when two leaves produce the same key ({"a.b": x, "a": {"b": y}}).
template <typename Leaf>
absl::StatusOr<FlatStateDict<Leaf>> FlattenStateDict(const Nested<Leaf>& state_dict, KeyFormat format,
                                                     IsTensorLeaf<Leaf> is_tensor);

// set_element (§2.5): walks `path` from `root`, creating what is missing, and
// stores `value` at its end. At each step the container to create is {} when
// the next element is a key and [] when it is an index; lists are padded with
// None up to the index, and a None met inside a list is replaced by the new
// container (a None met as a mapping value is not, as in PyTorch, and is an
// error on the next step). An existing mapping entry is overwritten in place.
// Errors (InvalidArgument naming the path and step; `root` may then hold the
// containers created before the failing step): empty path; path longer than
// kMaxNestingDepth; a key applied to a list or an index to a mapping (PyTorch
// would create an int dict key; flattening never produces that); a step into
// a leaf or a None; an index that is negative or above kMaxListIndex.
template <typename Leaf>
absl::Status SetElement(Nested<Leaf>& root, const ObjectPath& path, Nested<Leaf> value);

// unflatten_state_dict: starting from an empty mapping, SetElement of each
// flat value, in `flat` order, at mapping[key]. Int dict keys come back as
// strings, list indices as lists; empty mappings dropped by flattening do
// not come back. Errors: InvalidArgument naming the key when `mapping` has no
// path for it, or SetElement's error.
template <typename Leaf>
absl::StatusOr<Nested<Leaf>> UnflattenStateDict(OrderedMap<std::string, Nested<Leaf>> flat,
                                                const FlattenMapping& mapping);

// --- Legacy-key fallback on load (§5.2) ----------------------------------------

// The checkpoint keys absent from `current_keys`, in checkpoint order
// (PyTorch's "extra" keys). When empty, the load uses the current format and
// the legacy flattening need not be computed.
std::vector<std::string> ExtraCheckpointKeys(absl::Span<const std::string> checkpoint_keys,
                                             absl::Span<const std::string> current_keys);

// §5.2's decision: kLegacy2_3 when some checkpoint key is missing from the
// current keys and at least one such key is a legacy key; else kCurrent. All
// or nothing: one overlapping key switches the whole state dict (a heuristic
// kept for compatibility with PyTorch).
KeyFormat ChooseLoadKeyFormat(absl::Span<const std::string> checkpoint_keys,
                              absl::Span<const std::string> current_keys,
                              absl::Span<const std::string> legacy_keys);

template <typename Leaf>
struct LoadFlattening {
  KeyFormat format = KeyFormat::kCurrent;
  FlatStateDict<Leaf> flat;
};

// DefaultLoadPlanner's flattening with the legacy fallback: the current
// flattening of `state_dict` (after the sharded-tensor flattening of §2.6),
// replaced by the legacy flattening of `original_state_dict` (before it) when
// ChooseLoadKeyFormat says so. Pass the same tree twice when there is no
// sharded-tensor flattening.
// Errors: the current flattening's. Deliberate difference from PyTorch: when
// the legacy flattening fails (a duplicated key only the legacy traversal
// produces), PyTorch's load raises; here the current format is used, since an
// E0–E1 save of such a state dict would have failed the same way.
template <typename Leaf>
absl::StatusOr<LoadFlattening<Leaf>> FlattenStateDictForLoad(const Nested<Leaf>& state_dict,
                                                              const Nested<Leaf>& original_state_dict,
                                                              absl::Span<const std::string> checkpoint_keys,
                                                              IsTensorLeaf<Leaf> is_tensor);

}  // namespace dcplan

#include "engine/internal/flatten_impl.h"  // IWYU pragma: export

#endif  // DCPLAN_ENGINE_FLATTEN_H_
