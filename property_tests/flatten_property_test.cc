// Properties of state-dict flattening (engine/flatten.h): flattening follows
// the traversal rules of spec/planner.md §2.2-2.3, unflattening restores the
// nested structure, and colliding keys are errors, never silent merges.

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/flatten.h"
#include "engine/object_path.h"
#include "property_tests/generators.h"
#include "property_tests/oracles.h"

namespace dcplan {
namespace proptest {
namespace {

// ---- Reference traversal (spec/planner.md §2.2, §2.3) ------------------------------

bool IsContainer(const TestTree& n) { return n.is_mapping() || n.is_list(); }
bool IsTensor(const TestTree& n) { return n.is_leaf() && n.leaf()->tensor; }

bool TerminalCurrent(const TestTree& n) {
  if (n.is_mapping()) return false;
  if (!n.is_list()) return true;
  for (const TestTree& e : n.items()) {
    if (IsContainer(e) && !TerminalCurrent(e)) return false;
    if (IsTensor(e)) return false;
  }
  return true;
}

bool TerminalLegacy(const TestTree& n) {
  if (!IsContainer(n)) return true;
  std::vector<const TestTree*> values;
  for (const auto& entry : n.entries()) values.push_back(&entry.value);
  for (const TestTree& item : n.items()) values.push_back(&item);
  for (const TestTree* e : values) {
    if (IsContainer(*e) && !TerminalLegacy(*e)) return false;
    if (IsTensor(*e)) return false;
  }
  return true;
}

struct Leaf {
  ObjectPath path;
  const TestTree* value;
};

void Visit(KeyFormat format, ObjectPath& path, const TestTree& n, std::vector<Leaf>& out) {
  const bool terminal = format == KeyFormat::kCurrent ? TerminalCurrent(n) : TerminalLegacy(n);
  const bool descend_mapping = n.is_mapping() && (format == KeyFormat::kCurrent || !terminal);
  if (descend_mapping) {
    for (const auto& entry : n.entries()) {
      path.emplace_back(entry.key);
      Visit(format, path, entry.value, out);
      path.pop_back();
    }
  } else if (terminal) {
    out.push_back(Leaf{path, &n});
  } else {
    for (size_t i = 0; i < n.items().size(); ++i) {
      path.emplace_back(static_cast<int64_t>(i));
      Visit(format, path, n.items()[i], out);
      path.pop_back();
    }
  }
}

std::vector<Leaf> ReferenceLeaves(const TestTree& root, KeyFormat format) {
  std::vector<Leaf> out;
  ObjectPath path;
  for (const auto& entry : root.entries()) {
    path.emplace_back(entry.key);
    Visit(format, path, entry.value, out);
    path.pop_back();
  }
  return out;
}

bool HasDuplicateKeys(const std::vector<Leaf>& leaves) {
  absl::flat_hash_set<std::string> keys;
  for (const Leaf& leaf : leaves) {
    if (!keys.insert(JoinedKey(leaf.path)).second) return true;
  }
  return false;
}

// A mapping somewhere holds the same key twice.
bool HasRepeatedMappingKey(const TestTree& n) {
  absl::flat_hash_set<std::string> keys;
  for (const auto& entry : n.entries()) {
    if (!keys.insert(entry.key).second || HasRepeatedMappingKey(entry.value)) return true;
  }
  for (const TestTree& item : n.items()) {
    if (HasRepeatedMappingKey(item)) return true;
  }
  return false;
}

KeyFormat GenFormat() { return *rc::gen::element(KeyFormat::kCurrent, KeyFormat::kLegacy2_3); }

// Flattening lists exactly the reference leaves, in order, with their values.
void CheckFlattening(const TestTree& tree, KeyFormat format, const FlatStateDict<TestLeaf>& flat) {
  const std::vector<Leaf> leaves = ReferenceLeaves(tree, format);
  RC_ASSERT(flat.values.size() == leaves.size());
  RC_ASSERT(flat.mapping.size() == leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    const std::string key = JoinedKey(leaves[i].path);
    RC_ASSERT(flat.mapping.at_position(i).first == key);
    RC_ASSERT(flat.mapping.at_position(i).second == leaves[i].path);
    RC_ASSERT(flat.values.at_position(i).first == key);
    RC_ASSERT(flat.values.at_position(i).second == *leaves[i].value);
  }
}

// Trees without colliding keys: flatten lists the reference leaves and
// unflatten restores the tree (the current format drops empty mappings, so
// they are generated only for the legacy format, which keeps them whole).
RC_GTEST_PROP(FlattenProperty, FlattenThenUnflattenRestores, ()) {
  const KeyFormat format = GenFormat();
  TreeLimits limits;
  limits.allow_empty_mappings = format == KeyFormat::kLegacy2_3;
  const TestTree tree = *GenTree(limits);
  RC_TAG(std::string(KeyFormatName(format)));
  absl::StatusOr<FlatStateDict<TestLeaf>> flat = FlattenStateDict<TestLeaf>(tree, format, IsTensorLeaf);
  RC_ASSERT(flat.ok());
  CheckFlattening(tree, format, *flat);
  RC_CLASSIFY(flat->values.size() > 10, ">10 leaves");
  absl::StatusOr<TestTree> restored = UnflattenStateDict<TestLeaf>(flat->values, flat->mapping);
  RC_ASSERT(restored.ok());
  RC_ASSERT(*restored == tree);
}

// Keys with dots and digits, repeated keys in one mapping: colliding flat
// keys are always an error naming the key; otherwise every leaf is listed,
// and the tree comes back unless one mapping repeats a key (two entries "0"
// holding mappings come back as one mapping, as with PyTorch's stringified
// int keys: the flat keys differ, so nothing is lost or overwritten).
RC_GTEST_PROP(FlattenProperty, CollidingKeysAreErrors, ()) {
  const KeyFormat format = GenFormat();
  TreeLimits limits;
  limits.allow_colliding_keys = true;
  limits.allow_empty_mappings = format == KeyFormat::kLegacy2_3;
  const TestTree tree = *GenTree(limits);
  const std::vector<Leaf> leaves = ReferenceLeaves(tree, format);
  const bool collide = HasDuplicateKeys(leaves);
  RC_CLASSIFY(collide, "colliding keys");
  absl::StatusOr<FlatStateDict<TestLeaf>> flat = FlattenStateDict<TestLeaf>(tree, format, IsTensorLeaf);
  if (collide) {
    RC_ASSERT(!flat.ok());
    RC_ASSERT(absl::IsInvalidArgument(flat.status()));
    RC_ASSERT(flat.status().message().find("duplicated flatten key") != absl::string_view::npos);
    return;
  }
  RC_ASSERT(flat.ok());
  CheckFlattening(tree, format, *flat);
  // With a key repeated in one mapping, unflattening may also fail (a later
  // entry steps into a leaf an earlier one stored), as PyTorch's does.
  if (HasRepeatedMappingKey(tree)) return;
  absl::StatusOr<TestTree> restored = UnflattenStateDict<TestLeaf>(flat->values, flat->mapping);
  RC_ASSERT(restored.ok());
  RC_ASSERT(*restored == tree);
}

// A deliberate collision: a tensor at a nested path (mapping keys and list
// indices) and a top-level entry whose key is that path joined by dots,
// among other entries, in either order.
RC_GTEST_PROP(FlattenProperty, ConstructedCollisionIsReported, ()) {
  const KeyFormat format = GenFormat();
  const TestTree others = *GenTree(TreeLimits{});
  const int depth = *rc::gen::inRange(1, 4);
  std::vector<PathElement> path = {std::string("c")};
  for (int d = 0; d < depth; ++d) {
    if (*rc::gen::arbitrary<bool>()) {
      path.emplace_back(std::string(d % 2 ? "p" : "q"));
    } else {
      path.emplace_back(int64_t{*rc::gen::inRange(0, 3)});
    }
  }
  // Build the nested value from the innermost tensor outwards; lists are
  // padded with tensors so the list is descended into in both formats.
  TestTree nested = TestTree::MakeLeaf(TestLeaf{true, 1000});
  for (size_t i = path.size(); i-- > 1;) {
    if (const auto* key = std::get_if<std::string>(&path[i])) {
      std::vector<TestTree::Entry> entries;
      entries.push_back(TestTree::Entry{*key, std::move(nested)});
      nested = TestTree::MakeMapping(std::move(entries));
    } else {
      const int64_t index = std::get<int64_t>(path[i]);
      std::vector<TestTree> items;
      for (int64_t k = 0; k < index; ++k) items.push_back(TestTree::MakeLeaf(TestLeaf{true, 2000 + k}));
      items.push_back(std::move(nested));
      nested = TestTree::MakeList(std::move(items));
    }
  }
  std::vector<TestTree::Entry> entries = others.entries();
  const size_t at_nested = *rc::gen::inRange<size_t>(0, entries.size() + 1);
  entries.insert(entries.begin() + at_nested, TestTree::Entry{"c", std::move(nested)});
  const size_t at_flat = *rc::gen::inRange<size_t>(0, entries.size() + 1);
  entries.insert(entries.begin() + at_flat, TestTree::Entry{JoinedKey(path), TestTree::MakeLeaf(TestLeaf{true, 3000})});
  const TestTree tree = TestTree::MakeMapping(std::move(entries));

  absl::StatusOr<FlatStateDict<TestLeaf>> flat = FlattenStateDict<TestLeaf>(tree, format, IsTensorLeaf);
  RC_ASSERT(!flat.ok());
  RC_ASSERT(absl::IsInvalidArgument(flat.status()));
  RC_ASSERT(flat.status().message().find("duplicated flatten key " + JoinedKey(path)) != absl::string_view::npos);
}

std::vector<std::string> Keys(const std::vector<Leaf>& leaves) {
  std::vector<std::string> keys;
  for (const Leaf& leaf : leaves) keys.push_back(JoinedKey(leaf.path));
  return keys;
}

bool Contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// The keys of a checkpoint saved from `tree` in `saved` format: the
// reference keys, sometimes with some left out (a partial load), a key of the
// other format or a foreign key added (a checkpoint of a slightly different
// model).
std::vector<std::string> CheckpointKeys(const TestTree& tree, KeyFormat saved) {
  const KeyFormat other = saved == KeyFormat::kCurrent ? KeyFormat::kLegacy2_3 : KeyFormat::kCurrent;
  std::vector<std::string> keys;
  for (const std::string& key : Keys(ReferenceLeaves(tree, saved))) {
    if (!Contains(keys, key)) keys.push_back(key);
  }
  const int change = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}, {2, 2}, {1, 3}});
  if (change == 1 && !keys.empty()) keys.erase(keys.begin() + *rc::gen::inRange<size_t>(0, keys.size()));
  const std::vector<std::string> other_keys = Keys(ReferenceLeaves(tree, other));
  if (change == 2 && !other_keys.empty()) {
    const std::string& key = other_keys[*rc::gen::inRange<size_t>(0, other_keys.size())];
    if (!Contains(keys, key)) keys.insert(keys.begin() + *rc::gen::inRange<size_t>(0, keys.size() + 1), key);
  }
  if (change == 3) keys.push_back("foreign.key");
  return keys;
}

// Loading (spec/planner.md §5.2): the current keys are used unless some
// checkpoint key is missing from them and one such key is a legacy key; then
// the legacy flattening, unless it fails itself (a duplicated key only the
// legacy traversal produces: dcplan then keeps the current format, an
// intended difference from PyTorch). The flattening returned is the
// reference flattening in the chosen format.
RC_GTEST_PROP(FlattenProperty, LoadFallsBackToTheLegacyKeysOfTheCheckpoint, ()) {
  const KeyFormat saved = GenFormat();
  TreeLimits limits;
  limits.allow_empty_mappings = true;
  limits.allow_colliding_keys = *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
  const TestTree tree = *GenTree(limits);
  const std::vector<std::string> checkpoint_keys = CheckpointKeys(tree, saved);
  const std::vector<Leaf> current = ReferenceLeaves(tree, KeyFormat::kCurrent);
  const std::vector<Leaf> legacy = ReferenceLeaves(tree, KeyFormat::kLegacy2_3);
  const std::vector<std::string> current_keys = Keys(current);
  const std::vector<std::string> legacy_keys = Keys(legacy);

  bool extra = false, extra_legacy = false;
  for (const std::string& key : checkpoint_keys) {
    if (Contains(current_keys, key)) continue;
    extra = true;
    extra_legacy = extra_legacy || Contains(legacy_keys, key);
  }
  const bool legacy_fails = HasDuplicateKeys(legacy);
  const KeyFormat expected = extra_legacy && !legacy_fails ? KeyFormat::kLegacy2_3 : KeyFormat::kCurrent;
  RC_TAG(absl::StrCat("saved ", KeyFormatName(saved), ", loaded ", KeyFormatName(expected)));
  RC_CLASSIFY(extra && !extra_legacy, "extra keys, none legacy");
  RC_CLASSIFY(extra_legacy && legacy_fails, "legacy flattening fails");
  RC_CLASSIFY(Keys(current) != Keys(legacy), "formats differ");

  absl::StatusOr<LoadFlattening<TestLeaf>> loaded =
      FlattenStateDictForLoad<TestLeaf>(tree, tree, checkpoint_keys, IsTensorLeaf);
  if (HasDuplicateKeys(current)) {
    RC_ASSERT(!loaded.ok());
    RC_ASSERT(absl::IsInvalidArgument(loaded.status()));
    return;
  }
  RC_ASSERT(loaded.ok());
  RC_ASSERT(loaded->format == expected);
  CheckFlattening(tree, expected, loaded->flat);
  // The two steps of the decision, on their own.
  std::vector<std::string> expected_extra;
  for (const std::string& key : checkpoint_keys) {
    if (!Contains(current_keys, key)) expected_extra.push_back(key);
  }
  RC_ASSERT(ExtraCheckpointKeys(checkpoint_keys, current_keys) == expected_extra);
  RC_ASSERT(ChooseLoadKeyFormat(checkpoint_keys, current_keys, legacy_keys) ==
            (extra_legacy ? KeyFormat::kLegacy2_3 : KeyFormat::kCurrent));
}

// The rarest branch of that decision, drawn on purpose: the model's legacy
// flattening fails (only the legacy traversal duplicates a key) while the
// checkpoint holds a legacy-only key. dcplan keeps the current format (an
// intended difference: PyTorch fails the load there).
RC_GTEST_PROP(FlattenProperty, FailingLegacyFlatteningKeepsTheCurrentKeys, ()) {
  TreeLimits limits;
  limits.allow_empty_mappings = true;
  limits.allow_colliding_keys = true;
  const TestTree tree = *rc::gen::suchThat(GenTree(limits), [](const TestTree& t) {
    return HasDuplicateKeys(ReferenceLeaves(t, KeyFormat::kLegacy2_3)) &&
           !HasDuplicateKeys(ReferenceLeaves(t, KeyFormat::kCurrent));
  });
  const std::vector<std::string> current_keys = Keys(ReferenceLeaves(tree, KeyFormat::kCurrent));
  std::vector<std::string> legacy_only;
  for (const std::string& key : Keys(ReferenceLeaves(tree, KeyFormat::kLegacy2_3))) {
    if (!Contains(current_keys, key) && !Contains(legacy_only, key)) legacy_only.push_back(key);
  }
  RC_PRE(!legacy_only.empty());
  std::vector<std::string> checkpoint_keys = current_keys;
  checkpoint_keys.push_back(*rc::gen::elementOf(legacy_only));

  absl::StatusOr<LoadFlattening<TestLeaf>> loaded =
      FlattenStateDictForLoad<TestLeaf>(tree, tree, checkpoint_keys, IsTensorLeaf);
  RC_ASSERT(loaded.ok());
  RC_ASSERT(loaded->format == KeyFormat::kCurrent);
  CheckFlattening(tree, KeyFormat::kCurrent, loaded->flat);
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
