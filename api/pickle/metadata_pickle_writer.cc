// WriteMetadataPickle: the object graph of spec/format.md §5.3 as protocol-4
// opcodes, following the writer guidance of §5.7.

#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "api/pickle/metadata_pickle.h"
#include "api/pickle/pickle_allowlist.h"
#include "api/pickle/pickle_writer.h"

namespace dcplan {
namespace {

using pickle::kFilesystemModule;
using pickle::kMetadataModule;
using pickle::kSerializationModule;
using pickle::PickleWriter;

class MetadataWriter {
 public:
  std::string Write(const Metadata& metadata) && {
    BeginDataclass("Metadata");
    w_.EmptyDict();
    w_.Mark();
    w_.String("state_dict_metadata");
    StateDict(metadata.state_dict_metadata);
    w_.String("planner_data");
    if (metadata.planner_data) {
      PlannerData(*metadata.planner_data);
    } else {
      w_.None();
    }
    w_.String("storage_data");
    if (metadata.storage_data) {
      StorageDataDict(*metadata.storage_data);
    } else {
      w_.None();
    }
    w_.String("storage_meta");
    if (metadata.storage_meta) {
      Meta(*metadata.storage_meta);
    } else {
      w_.None();
    }
    w_.String("version");
    w_.String(metadata.version.value_or("1.0.0"));
    w_.SetItemsFromMark();
    w_.Build();
    return std::move(w_).Finish();
  }

 private:
  // cls() without arguments: the instance whose dict BUILD will fill.
  void BeginDataclass(absl::string_view name, absl::string_view module = kMetadataModule) {
    w_.Global(module, name);
    w_.EmptyTuple();
    w_.NewObj();
  }

  void OptionalString(const std::optional<std::string>& s) {
    if (s) {
      w_.String(*s);
    } else {
      w_.None();
    }
  }

  void StringList(const std::vector<std::string>& list) {
    w_.EmptyList();
    w_.ListItems(list.size(), [&](size_t i) { w_.String(list[i]); });
  }

  // torch.Size((d0, d1, ...)).
  void Size(const Shape& shape) {
    w_.Global("torch", "Size");
    Tuple(shape.size(), [&](size_t i) { w_.Int(shape[i]); });
    w_.SmallTuple(1);
    w_.Reduce();
  }

  template <typename F>
  void Tuple(size_t count, F&& write_item) {
    if (count == 0) {
      w_.EmptyTuple();
      return;
    }
    if (count > 3) w_.Mark();
    for (size_t i = 0; i < count; ++i) write_item(i);
    if (count > 3) {
      w_.TupleFromMark();
    } else {
      w_.SmallTuple(static_cast<int>(count));
    }
  }

  void Properties(const TensorProperties& p) {
    BeginDataclass("TensorProperties");
    w_.Mark();
    w_.Global("torch", DTypeName(p.dtype));
    w_.Global(kSerializationModule, "_get_layout");
    w_.String(absl::StrCat("torch.", LayoutName(p.layout)));
    w_.SmallTuple(1);
    w_.Reduce();
    w_.Bool(p.requires_grad);
    // _MEM_FORMAT_ENCODING(value): calling the enum with a value returns the
    // member, on every Python version.
    w_.Global(kMetadataModule, "_MEM_FORMAT_ENCODING");
    w_.Int(static_cast<int64_t>(p.memory_format));
    w_.SmallTuple(1);
    w_.Reduce();
    w_.Bool(p.pin_memory);
    w_.TupleFromMark();
    w_.Build();
  }

  void Chunk(const ChunkBox& box) {
    BeginDataclass("ChunkStorageMetadata");
    w_.EmptyDict();
    w_.Mark();
    w_.String("offsets");
    Size(box.offsets);
    w_.String("sizes");
    Size(box.sizes);
    w_.SetItemsFromMark();
    w_.Build();
  }

  void Storage(const StorageMetadata& storage) {
    if (std::holds_alternative<BytesStorageMetadata>(storage)) {
      BeginDataclass("BytesStorageMetadata");  // empty instance dict: no BUILD
      return;
    }
    const auto& tensor = std::get<TensorStorageMetadata>(storage);
    BeginDataclass("TensorStorageMetadata");
    w_.EmptyDict();
    w_.Mark();
    w_.String("properties");
    Properties(tensor.properties);
    w_.String("size");
    Size(tensor.size);
    w_.String("chunks");
    w_.EmptyList();
    w_.ListItems(tensor.chunks.size(), [&](size_t i) { Chunk(tensor.chunks[i]); });
    w_.SetItemsFromMark();
    w_.Build();
  }

  void StateDict(const StateDictMetadata& sdm) {
    w_.EmptyDict();
    w_.DictItems(sdm.size(), [&](size_t i) {
      const auto& [fqn, storage] = sdm.at_position(i);
      w_.String(fqn);
      Storage(storage);
    });
  }

  void PlannerData(const FlattenMapping& mapping) {
    w_.EmptyDict();
    w_.DictItems(mapping.size(), [&](size_t i) {
      // A named reference, not a structured binding: clang cannot capture
      // those in the lambda below (C++17).
      const auto& entry = mapping.at_position(i);
      const ObjectPath& path = entry.second;
      w_.String(entry.first);
      Tuple(path.size(), [&](size_t j) {
        if (const auto* name = std::get_if<std::string>(&path[j])) {
          w_.String(*name);
        } else {
          w_.Int(std::get<int64_t>(path[j]));
        }
      });
    });
  }

  // MetadataIndex state: fqn, index, then offset only when present. The key
  // is complete (BUILD done) before SETITEM(S) hashes it.
  void Index(const MetadataIndex& index) {
    BeginDataclass("MetadataIndex");
    w_.EmptyDict();
    w_.Mark();
    w_.String("fqn");
    w_.String(index.fqn);
    w_.String("index");
    if (index.index) {
      w_.Int(*index.index);
    } else {
      w_.None();
    }
    if (index.offset) {
      w_.String("offset");
      Size(*index.offset);
    }
    w_.SetItemsFromMark();
    w_.Build();
  }

  // _StorageInfo state: transform_descriptors only when present (E4+).
  void Info(const StorageInfo& info) {
    BeginDataclass("_StorageInfo", kFilesystemModule);
    w_.EmptyDict();
    w_.Mark();
    w_.String("relative_path");
    w_.String(info.relative_path);
    w_.String("offset");
    w_.Int(info.offset);
    w_.String("length");
    w_.Int(info.length);
    if (info.transform_descriptors) {
      w_.String("transform_descriptors");
      StringList(*info.transform_descriptors);
    }
    w_.SetItemsFromMark();
    w_.Build();
  }

  void StorageDataDict(const StorageData& data) {
    w_.EmptyDict();
    w_.DictItems(data.size(), [&](size_t i) {
      const auto& [index, info] = data.at_position(i);
      Index(index);
      Info(info);
    });
  }

  void Meta(const StorageMeta& meta) {
    BeginDataclass("StorageMeta");
    w_.EmptyDict();
    w_.Mark();
    w_.String("checkpoint_id");
    OptionalString(meta.checkpoint_id);
    w_.String("save_id");
    OptionalString(meta.save_id);
    w_.String("load_id");
    OptionalString(meta.load_id);
    w_.String("modules");
    StringList(meta.modules);
    w_.SetItemsFromMark();
    w_.Build();
  }

  PickleWriter w_{4};
};

}  // namespace

std::string WriteMetadataPickle(const Metadata& metadata) { return MetadataWriter().Write(metadata); }

}  // namespace dcplan
