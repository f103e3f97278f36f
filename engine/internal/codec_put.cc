#include <string>
#include <variant>

#include "engine/internal/codec_body.h"

namespace dcplan::internal {
namespace {

void PutShape(WireWriter& w, const Shape& shape) {
  w.PutVarint(shape.size());
  for (int64_t v : shape) w.PutSigned(v);
}

uint64_t PackProperties(const TensorProperties& p) {
  return static_cast<uint64_t>(p.dtype) | static_cast<uint64_t>(p.layout) << kLayoutShift |
         static_cast<uint64_t>(p.memory_format) << kMemoryFormatShift |
         uint64_t{p.requires_grad} << kRequiresGradShift | uint64_t{p.pin_memory} << kPinMemoryShift;
}

void PutIndex(WireWriter& w, const MetadataIndex& index, bool with_fqn) {
  if (with_fqn) w.PutString(index.fqn);
  const uint64_t rank_code = index.offset ? index.offset->size() + 1 : 0;
  w.PutVarint(rank_code << 1 | uint64_t{index.index.has_value()});
  if (index.offset) {
    for (int64_t v : *index.offset) w.PutSigned(v);
  }
  if (index.index) w.PutSigned(*index.index);
}

void PutFlattenMapping(WireWriter& w, const FlattenMapping& mapping) {
  w.PutVarint(mapping.size());
  for (const auto& [key, path] : mapping) {
    w.PutString(key);
    w.PutVarint(path.size());
    for (const PathElement& element : path) {
      if (const auto* s = std::get_if<std::string>(&element)) {
        w.PutString(*s, /*bias=*/1);
      } else {
        w.PutVarint(0);
        w.PutSigned(std::get<int64_t>(element));
      }
    }
  }
}

void PutWriteItem(WireWriter& w, const WriteItem& item) {
  const TensorWriteData* tensor = item.tensor_data ? &*item.tensor_data : nullptr;
  const bool offsets_from_index = tensor && item.index.offset && tensor->chunk.offsets == *item.index.offset;
  w.PutVarint(static_cast<uint64_t>(item.type) | (item.bytes_io_nbytes ? kWriteHasNbytes : 0) |
              (tensor ? kWriteHasTensor : 0) | (offsets_from_index ? kWriteChunkOffsetsFromIndex : 0));
  PutIndex(w, item.index, /*with_fqn=*/true);
  if (item.bytes_io_nbytes) w.PutSigned(*item.bytes_io_nbytes);
  if (!tensor) return;
  w.PutVarint(PackProperties(tensor->properties));
  PutShape(w, tensor->size);
  if (!offsets_from_index) PutShape(w, tensor->chunk.offsets);
  PutShape(w, tensor->chunk.sizes);
}

void PutReadItem(WireWriter& w, const ReadItem& item) {
  const bool same_fqn = item.dest_index.fqn == item.storage_index.fqn;
  w.PutVarint((item.type == LoadItemType::kByteIO ? kReadIsBytes : 0) | (same_fqn ? kReadSameFqn : 0));
  PutIndex(w, item.dest_index, /*with_fqn=*/true);
  PutShape(w, item.dest_offsets);
  PutIndex(w, item.storage_index, /*with_fqn=*/!same_fqn);
  PutShape(w, item.storage_offsets);
  PutShape(w, item.lengths);
}

void PutStorageMetadata(WireWriter& w, const StorageMetadata& metadata) {
  const auto* tensor = std::get_if<TensorStorageMetadata>(&metadata);
  if (tensor == nullptr) {
    w.PutVarint(0);
    return;
  }
  w.PutVarint(PackProperties(tensor->properties) + 1);
  PutShape(w, tensor->size);
  w.PutVarint(tensor->chunks.size());
  for (const ChunkBox& chunk : tensor->chunks) {
    PutShape(w, chunk.offsets);
    PutShape(w, chunk.sizes);
  }
}

void PutStorageData(WireWriter& w, const StorageData& storage) {
  w.PutVarint(storage.size());
  for (const auto& [index, info] : storage) {
    PutIndex(w, index, /*with_fqn=*/true);
    w.PutString(info.relative_path);
    w.PutSigned(info.offset);
    w.PutSigned(info.length);
    if (!info.transform_descriptors) {
      w.PutVarint(0);
      continue;
    }
    w.PutVarint(info.transform_descriptors->size() + 1);
    for (const std::string& t : *info.transform_descriptors) w.PutString(t);
  }
}

void PutStorageMeta(WireWriter& w, const StorageMeta& meta) {
  w.PutVarint((meta.checkpoint_id ? kStorageMetaHasCheckpointId : 0) | (meta.save_id ? kStorageMetaHasSaveId : 0) |
              (meta.load_id ? kStorageMetaHasLoadId : 0));
  if (meta.checkpoint_id) w.PutString(*meta.checkpoint_id);
  if (meta.save_id) w.PutString(*meta.save_id);
  if (meta.load_id) w.PutString(*meta.load_id);
  w.PutVarint(meta.modules.size());
  for (const std::string& m : meta.modules) w.PutString(m);
}

}  // namespace

void PutSavePlan(WireWriter& w, const SavePlan& plan) {
  w.PutVarint((plan.storage_data ? kPlanHasStorageData : 0) | (plan.planner_data ? kPlanHasPlannerData : 0) |
              (plan.usable ? 0 : kSavePlanNotUsable));
  w.PutVarint(plan.items.size());
  for (const WriteItem& item : plan.items) PutWriteItem(w, item);
  if (plan.storage_data) w.PutString(*plan.storage_data);
  if (plan.planner_data) PutFlattenMapping(w, *plan.planner_data);
}

void PutLoadPlan(WireWriter& w, const LoadPlan& plan) {
  w.PutVarint((plan.storage_data ? kPlanHasStorageData : 0) | (plan.planner_data ? kPlanHasPlannerData : 0));
  w.PutVarint(plan.items.size());
  for (const ReadItem& item : plan.items) PutReadItem(w, item);
  if (plan.storage_data) w.PutString(*plan.storage_data);
  if (plan.planner_data) PutFlattenMapping(w, *plan.planner_data);
}

void PutMetadata(WireWriter& w, const Metadata& m) {
  w.PutVarint((m.planner_data ? kMetaHasPlannerData : 0) | (m.storage_data ? kMetaHasStorageData : 0) |
              (m.storage_meta ? kMetaHasStorageMeta : 0) | (m.version ? kMetaHasVersion : 0));
  w.PutVarint(m.state_dict_metadata.size());
  for (const auto& [fqn, metadata] : m.state_dict_metadata) {
    w.PutString(fqn);
    PutStorageMetadata(w, metadata);
  }
  if (m.planner_data) PutFlattenMapping(w, *m.planner_data);
  if (m.storage_data) PutStorageData(w, *m.storage_data);
  if (m.storage_meta) PutStorageMeta(w, *m.storage_meta);
  if (m.version) w.PutString(*m.version);
}

}  // namespace dcplan::internal
