// Arbitrary plans and metadata (codec), nested state dicts (flatten), and
// printers for engine types RapidCheck cannot show.

#include "property_tests/generators.h"

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/codec.h"
#include "property_tests/generators_internal.h"

namespace dcplan {

void showValue(const StateDictDescription& description, std::ostream& os) {
  os << "{";
  const char* sep = "";
  for (const auto& [key, value] : description.values) {
    os << sep << "'" << key << "': " << value;
    sep = ", ";
  }
  os << "}";
}

void showValue(ProblemKind kind, std::ostream& os) { os << ProblemKindName(kind); }

void showValue(KeyFormat format, std::ostream& os) { os << KeyFormatName(format); }

namespace proptest {

using internal::kInt64Max;
using internal::kInt64Min;
using internal::Pick;
using internal::PickBool;
using internal::PickInt;
using internal::PickLogUniform;
using internal::PickScaled;
using internal::VolumeOf;

namespace {

// ---- Arbitrary values ------------------------------------------------------------------

template <typename T>
std::optional<T> MaybePick(const rc::Gen<T>& gen, size_t absent_weight = 1, size_t present_weight = 3) {
  if (*rc::gen::weightedElement<bool>({{absent_weight, false}, {present_weight, true}})) return *gen;
  return std::nullopt;
}

std::vector<std::string> StringPool() {
  return {"",
          "w",
          "layers.0.weight",
          "opt.state.0.exp_avg",
          "step",
          "\xc3\xbcnic\xc3\xb8" "de",
          std::string("nul\0byte", 8),
          std::string(kCodecMaxInternedBytes, 'i'),
          std::string(kCodecMaxInternedBytes + 1, 'j'),
          std::string(300, 'x')};
}

// ---- Trees ------------------------------------------------------------------------------

TestTree PickTree(int depth, const TreeLimits& limits, int64_t& next_id);

std::vector<std::string> PickKeys(const TreeLimits& limits, int count) {
  static const char* const kNames[] = {"w", "bias", "opt", "state", "lr", "step", "x", "y"};
  static const char* const kColliding[] = {"a", "b", "a.b", "b.0", "0", "1", "a.0"};
  std::vector<std::string> keys;
  if (limits.allow_colliding_keys) {
    for (int i = 0; i < count; ++i) keys.emplace_back(kColliding[Pick(0, 6)]);
    return keys;
  }
  const int start = PickInt(0, 7);
  for (int i = 0; i < count; ++i) keys.emplace_back(kNames[(start + i) % 8]);
  return keys;
}

TestTree PickTree(int depth, const TreeLimits& limits, int64_t& next_id) {
  enum Kind { kTensor, kObject, kNone, kMapping, kList };
  const bool may_nest = depth < limits.max_depth;
  const int kind = may_nest ? *rc::gen::weightedElement<int>({{3, kTensor}, {2, kObject}, {1, kNone}, {2, kMapping},
                                                              {2, kList}})
                            : *rc::gen::weightedElement<int>({{3, kTensor}, {2, kObject}, {1, kNone}});
  switch (kind) {
    case kTensor: return TestTree::MakeLeaf(TestLeaf{true, next_id++});
    case kObject: return TestTree::MakeLeaf(TestLeaf{false, next_id++});
    case kNone: return TestTree::MakeNone();
    case kMapping: {
      const int n = PickInt(limits.allow_empty_mappings ? 0 : 1, limits.max_width);
      std::vector<TestTree::Entry> entries;
      for (const std::string& key : PickKeys(limits, n)) {
        entries.push_back(TestTree::Entry{key, PickTree(depth + 1, limits, next_id)});
      }
      return TestTree::MakeMapping(std::move(entries));
    }
    default: {
      const int n = PickInt(0, limits.max_width);
      std::vector<TestTree> items;
      for (int i = 0; i < n; ++i) items.push_back(PickTree(depth + 1, limits, next_id));
      return TestTree::MakeList(std::move(items));
    }
  }
}

void PrintTree(const TestTree& tree, std::string& out) {
  switch (tree.kind()) {
    case NestedKind::kNone: out += "None"; return;
    case NestedKind::kLeaf:
      absl::StrAppend(&out, tree.leaf()->tensor ? "T" : "o", tree.leaf()->id);
      return;
    case NestedKind::kMapping: {
      out += "{";
      const char* sep = "";
      for (const auto& entry : tree.entries()) {
        absl::StrAppend(&out, sep, "'", entry.key, "': ");
        PrintTree(entry.value, out);
        sep = ", ";
      }
      out += "}";
      return;
    }
    case NestedKind::kList: {
      out += "[";
      const char* sep = "";
      for (const auto& item : tree.items()) {
        out += sep;
        PrintTree(item, out);
        sep = ", ";
      }
      out += "]";
      return;
    }
  }
}

}  // namespace

// ---- Arbitrary values -------------------------------------------------------------------

rc::Gen<std::string> GenCodecString() {
  return rc::gen::weightedOneOf<std::string>(
      {{4, rc::gen::elementOf(StringPool())}, {1, rc::gen::string<std::string>()}});
}

rc::Gen<int64_t> GenAnyInt64() {
  return rc::gen::weightedOneOf<int64_t>(
      {{4, rc::gen::inRange<int64_t>(-3, 100)},
       {2, rc::gen::arbitrary<int64_t>()},
       {1, rc::gen::elementOf(std::vector<int64_t>{kInt64Min, kInt64Max, kInt64Min + 1, kInt64Max - 1, -1, 0,
                                                   int64_t{1} << 32, kInt64Max / 3})}});
}

rc::Gen<Shape> GenAnyShape() {
  return rc::gen::exec([] {
    const int rank = PickScaled(0, 5);
    return *rc::gen::container<Shape>(static_cast<size_t>(rank), GenAnyInt64());
  });
}

rc::Gen<MetadataIndex> GenAnyMetadataIndex() {
  return rc::gen::exec([] {
    MetadataIndex index;
    index.fqn = *GenCodecString();
    const int offset_kind = *rc::gen::weightedElement<int>({{1, 0}, {1, 1}, {3, 2}});
    if (offset_kind == 1) index.offset = Shape{};
    if (offset_kind == 2) index.offset = *GenAnyShape();
    index.index = MaybePick(GenAnyInt64(), 1, 1);
    return index;
  });
}

rc::Gen<FlattenMapping> GenAnyFlattenMapping() {
  return rc::gen::exec([] {
    FlattenMapping mapping;
    const int n = PickScaled(0, 5);
    for (int i = 0; i < n; ++i) {
      const std::string key = *GenCodecString();
      ObjectPath path;
      const int length = PickScaled(0, 4);
      for (int e = 0; e < length; ++e) {
        if (PickBool()) {
          path.emplace_back(*GenAnyInt64());
        } else {
          path.emplace_back(*GenCodecString());
        }
      }
      mapping.InsertOrAssign(key, std::move(path));
    }
    return mapping;
  });
}

rc::Gen<WriteItem> GenAnyWriteItem() {
  return rc::gen::exec([] {
    WriteItem item;
    item.index = *GenAnyMetadataIndex();
    item.type = *rc::gen::element(WriteItemType::kTensor, WriteItemType::kShard, WriteItemType::kByteIO);
    item.bytes_io_nbytes = MaybePick(GenAnyInt64(), 1, 1);
    if (PickBool()) {
      TensorWriteData data;
      data.properties = *GenAnyProperties();
      data.size = *GenAnyShape();
      // Offsets equal to the index's offset take the encoder's short form.
      data.chunk.offsets = item.index.offset && PickBool() ? *item.index.offset : *GenAnyShape();
      data.chunk.sizes = *GenAnyShape();
      item.tensor_data = std::move(data);
    }
    return item;
  });
}

rc::Gen<SavePlan> GenAnySavePlan() {
  return rc::gen::exec([] {
    SavePlan plan;
    const int n = PickScaled(0, 12);
    for (int i = 0; i < n; ++i) plan.items.push_back(*GenAnyWriteItem());
    plan.storage_data = MaybePick(GenCodecString(), 1, 1);
    plan.planner_data = MaybePick(GenAnyFlattenMapping(), 1, 1);
    plan.usable = *rc::gen::weightedElement<bool>({{3, true}, {1, false}});
    return plan;
  });
}

rc::Gen<ReadItem> GenAnyReadItem() {
  return rc::gen::exec([] {
    ReadItem item;
    item.type = *rc::gen::element(LoadItemType::kTensor, LoadItemType::kByteIO);
    item.dest_index = *GenAnyMetadataIndex();
    item.dest_offsets = *GenAnyShape();
    item.storage_index = *GenAnyMetadataIndex();
    if (PickBool()) item.storage_index.fqn = item.dest_index.fqn;
    item.storage_offsets = *GenAnyShape();
    item.lengths = *GenAnyShape();
    return item;
  });
}

rc::Gen<LoadPlan> GenAnyLoadPlan() {
  return rc::gen::exec([] {
    LoadPlan plan;
    const int n = PickScaled(0, 12);
    for (int i = 0; i < n; ++i) plan.items.push_back(*GenAnyReadItem());
    plan.storage_data = MaybePick(GenCodecString(), 1, 1);
    plan.planner_data = MaybePick(GenAnyFlattenMapping(), 1, 1);
    return plan;
  });
}

rc::Gen<Metadata> GenAnyMetadata() {
  return rc::gen::exec([] {
    Metadata m;
    const int n = PickScaled(0, 6);
    for (int i = 0; i < n; ++i) {
      const std::string key = *GenCodecString();
      if (PickBool()) {
        m.state_dict_metadata.InsertOrAssign(key, BytesStorageMetadata{});
        continue;
      }
      TensorStorageMetadata t;
      t.properties = *GenAnyProperties();
      t.size = *GenAnyShape();
      const int chunks = PickScaled(0, 4);
      for (int c = 0; c < chunks; ++c) t.chunks.push_back(ChunkBox{*GenAnyShape(), *GenAnyShape()});
      m.state_dict_metadata.InsertOrAssign(key, std::move(t));
    }
    m.planner_data = MaybePick(GenAnyFlattenMapping(), 1, 1);
    if (PickBool()) {
      StorageData data;
      const int entries = PickScaled(0, 5);
      for (int i = 0; i < entries; ++i) {
        StorageInfo info;
        info.relative_path = *GenCodecString();
        info.offset = *GenAnyInt64();
        info.length = *GenAnyInt64();
        if (PickBool()) {
          info.transform_descriptors.emplace();
          const int t = PickScaled(0, 3);
          for (int k = 0; k < t; ++k) info.transform_descriptors->push_back(*GenCodecString());
        }
        data.InsertOrAssign(*GenAnyMetadataIndex(), std::move(info));
      }
      m.storage_data = std::move(data);
    }
    if (PickBool()) {
      StorageMeta meta;
      meta.checkpoint_id = MaybePick(GenCodecString(), 1, 1);
      meta.save_id = MaybePick(GenCodecString(), 1, 1);
      meta.load_id = MaybePick(GenCodecString(), 1, 1);
      const int modules = PickScaled(0, 3);
      for (int k = 0; k < modules; ++k) meta.modules.push_back(*GenCodecString());
      m.storage_meta = std::move(meta);
    }
    m.version = MaybePick(GenCodecString(), 1, 1);
    return m;
  });
}

// ---- Trees --------------------------------------------------------------------------------

bool IsTensorLeaf(const TestLeaf& leaf) { return leaf.tensor; }

rc::Gen<TestTree> GenTree(const TreeLimits& limits) {
  return rc::gen::exec([limits] {
    int64_t next_id = 0;
    const int n = PickInt(0, limits.max_width);
    std::vector<TestTree::Entry> entries;
    for (const std::string& key : PickKeys(limits, n)) {
      entries.push_back(TestTree::Entry{key, PickTree(1, limits, next_id)});
    }
    return TestTree::MakeMapping(std::move(entries));
  });
}

std::string TreeToString(const TestTree& tree) {
  std::string out;
  PrintTree(tree, out);
  return out;
}

}  // namespace proptest

void showValue(const proptest::TestTree& tree, std::ostream& os) { os << proptest::TreeToString(tree); }

}  // namespace dcplan
