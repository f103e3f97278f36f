#include "engine/codec.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/codec_body.h"
#include "engine/internal/codec_wire.h"

// The body layouts are documented in engine/internal/codec_body.h.

namespace dcplan {
namespace internal {
namespace {

// Lower bounds on encoded sizes, to bound counts by the remaining bytes.
constexpr size_t kMinShapeValueBytes = 1;
constexpr size_t kMinPathElementBytes = 1;
constexpr size_t kMinStringBytes = 1;
constexpr size_t kMinMappingEntryBytes = 2;    // key, element count
constexpr size_t kMinWriteItemBytes = 3;       // flags, fqn, presence
constexpr size_t kMinReadItemBytes = 7;        // flags, 2 + 1 indexes' bytes, 3 shapes
constexpr size_t kMinStateDictEntryBytes = 2;  // key, kind
constexpr size_t kMinChunkBytes = 2;           // two shapes
constexpr size_t kMinStorageEntryBytes = 6;    // fqn, presence, path, offset, length, transforms
constexpr size_t kMinPlanBytes = 2;            // flags, item count

// Runs `put_body` twice: once to collect strings, once to write.
template <typename PutBody>
std::string Encode(CodecKind kind, const PutBody& put_body) {
  WireWriter w;
  put_body(w);
  w.StartBody(kind);
  put_body(w);
  return w.Release();
}

// --- Decoding ------------------------------------------------------------------

bool ReadShape(WireReader& r, const char* name, Shape* shape) {
  WireFrame frame(r, name, /*bracket_index=*/true);
  size_t rank;
  if (!r.ReadCount("rank", kMinShapeValueBytes, &rank)) return false;
  shape->resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    frame.SetIndex(static_cast<int64_t>(d));
    if (!r.ReadSigned(nullptr, &(*shape)[d])) return false;
  }
  return true;
}

bool ReadProperties(WireReader& r, uint64_t packed, size_t field_start, TensorProperties* p) {
  const uint64_t dtype = packed & kDTypeMask, layout = packed >> kLayoutShift & kLayoutMask,
                 memory_format = packed >> kMemoryFormatShift & kMemoryFormatMask;
  if (packed > kMaxProperties || dtype >= static_cast<uint64_t>(kNumDTypes) || layout >= kNumLayouts ||
      memory_format >= kNumMemoryFormats) {
    return r.FailAt(field_start, absl::StatusCode::kInvalidArgument,
                    absl::StrCat("unknown tensor properties code ", packed), "properties");
  }
  p->dtype = static_cast<DType>(dtype);
  p->layout = static_cast<Layout>(layout);
  p->memory_format = static_cast<MemoryFormat>(memory_format);
  p->requires_grad = (packed >> kRequiresGradShift & 1) != 0;
  p->pin_memory = (packed >> kPinMemoryShift & 1) != 0;
  return true;
}

bool ReadIndex(WireReader& r, const char* name, bool with_fqn, MetadataIndex* index) {
  WireFrame frame(r, name);
  if (with_fqn) {
    if (!r.ReadString("fqn", &index->fqn)) return false;
    frame.SetLabel(&index->fqn);
  }
  const size_t presence_start = r.position();
  uint64_t presence;
  if (!r.ReadVarint("offset presence", &presence)) return false;
  const uint64_t rank_code = presence >> 1;
  if (rank_code > 0) {
    if (rank_code - 1 > r.remaining()) {
      return r.FailAt(presence_start, absl::StatusCode::kDataLoss,
                      absl::StrCat("offset rank ", rank_code - 1, " but ", r.remaining(), " bytes remain"),
                      "offset presence");
    }
    index->offset.emplace(rank_code - 1);
    WireFrame offset_frame(r, "offset", /*bracket_index=*/true);
    for (size_t d = 0; d < index->offset->size(); ++d) {
      offset_frame.SetIndex(static_cast<int64_t>(d));
      if (!r.ReadSigned(nullptr, &(*index->offset)[d])) return false;
    }
  }
  if (presence & 1) {
    int64_t hint;
    if (!r.ReadSigned("index hint", &hint)) return false;
    index->index = hint;
  }
  return true;
}

bool ReadFlattenMapping(WireReader& r, FlattenMapping* mapping) {
  WireFrame frame(r, "planner_data entry");
  size_t count;
  if (!r.ReadCount("count", kMinMappingEntryBytes, &count)) return false;
  mapping->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    frame.SetLabel(nullptr);
    const size_t key_start = r.position();
    std::string key;
    if (!r.ReadString("key", &key)) return false;
    auto [path, inserted] = mapping->TryEmplace(key, ObjectPath{});
    if (!inserted) return r.FailAt(key_start, absl::StatusCode::kInvalidArgument, "duplicate key", "key");
    frame.SetLabel(&mapping->at_position(i).first);
    WireFrame element_frame(r, "path", /*bracket_index=*/true);
    size_t length;
    if (!r.ReadCount("length", kMinPathElementBytes, &length)) return false;
    path->reserve(length);
    for (size_t e = 0; e < length; ++e) {
      element_frame.SetIndex(static_cast<int64_t>(e));
      const size_t start = r.position();
      uint64_t tag;
      if (!r.ReadVarint(nullptr, &tag)) return false;
      if (tag == 0) {
        int64_t v;
        if (!r.ReadSigned(nullptr, &v)) return false;
        path->emplace_back(v);
      } else {
        std::string s;
        if (!r.ResolveString(nullptr, start, tag - 1, &s)) return false;
        path->emplace_back(std::move(s));
      }
    }
  }
  return true;
}

bool ReadTensorWriteData(WireReader& r, const MetadataIndex& index, bool offsets_from_index, TensorWriteData* tensor) {
  const size_t start = r.position();
  uint64_t packed;
  if (!r.ReadVarint("properties", &packed) || !ReadProperties(r, packed, start, &tensor->properties)) return false;
  if (!ReadShape(r, "size", &tensor->size)) return false;
  if (offsets_from_index) {
    tensor->chunk.offsets = *index.offset;
  } else if (!ReadShape(r, "chunk offsets", &tensor->chunk.offsets)) {
    return false;
  }
  if (!ReadShape(r, "chunk sizes", &tensor->chunk.sizes)) return false;
  if (!offsets_from_index && index.offset && tensor->chunk.offsets == *index.offset) {
    return r.FailAt(start, absl::StatusCode::kInvalidArgument,
                    "chunk offsets equal the index offset but are written out (non-canonical)", nullptr);
  }
  return true;
}

bool ReadWriteItem(WireReader& r, WireFrame& frame, WriteItem* item) {
  const size_t start = r.position();
  uint64_t flags;
  if (!r.ReadSmall("flags", kMaxWriteItemFlags, &flags)) return false;
  const uint64_t type = flags & 3;
  if (type == 0) return r.FailAt(start, absl::StatusCode::kInvalidArgument, "unknown WriteItemType 0", "flags");
  item->type = static_cast<WriteItemType>(type);
  if (!ReadIndex(r, "index", /*with_fqn=*/true, &item->index)) return false;
  frame.SetLabel(&item->index.fqn);
  const bool has_tensor = (flags & kWriteHasTensor) != 0;
  const bool offsets_from_index = (flags & kWriteChunkOffsetsFromIndex) != 0;
  if (offsets_from_index && (!has_tensor || !item->index.offset)) {
    return r.FailAt(start, absl::StatusCode::kInvalidArgument,
                    "chunk offsets taken from an index without offset or an item without tensor data", "flags");
  }
  if (flags & kWriteHasNbytes) {
    int64_t nbytes;
    if (!r.ReadSigned("bytes_io_nbytes", &nbytes)) return false;
    item->bytes_io_nbytes = nbytes;
  }
  if (!has_tensor) return true;
  return ReadTensorWriteData(r, item->index, offsets_from_index, &item->tensor_data.emplace());
}

bool ReadReadItem(WireReader& r, WireFrame& frame, ReadItem* item) {
  uint64_t flags;
  if (!r.ReadSmall("flags", kReadIsBytes | kReadSameFqn, &flags)) return false;
  item->type = flags & kReadIsBytes ? LoadItemType::kByteIO : LoadItemType::kTensor;
  const bool same_fqn = (flags & kReadSameFqn) != 0;
  if (!ReadIndex(r, "dest_index", /*with_fqn=*/true, &item->dest_index)) return false;
  frame.SetLabel(&item->dest_index.fqn);
  if (!ReadShape(r, "dest_offsets", &item->dest_offsets)) return false;
  const size_t storage_start = r.position();
  if (!ReadIndex(r, "storage_index", /*with_fqn=*/!same_fqn, &item->storage_index)) return false;
  if (same_fqn) {
    item->storage_index.fqn = item->dest_index.fqn;
  } else if (item->storage_index.fqn == item->dest_index.fqn) {
    return r.FailAt(storage_start, absl::StatusCode::kInvalidArgument,
                    "storage fqn equals the dest fqn but is written out (non-canonical)", "storage_index");
  }
  return ReadShape(r, "storage_offsets", &item->storage_offsets) && ReadShape(r, "lengths", &item->lengths);
}

bool ReadPlanFlags(WireReader& r, uint64_t max_flags, uint64_t* flags, size_t* item_count, size_t min_item_bytes) {
  return r.ReadSmall("flags", max_flags, flags) && r.ReadCount("item count", min_item_bytes, item_count);
}

bool ReadSavePlan(WireReader& r, SavePlan* plan) {
  uint64_t flags;
  size_t count;
  if (!ReadPlanFlags(r, kMaxSavePlanFlags, &flags, &count, kMinWriteItemBytes)) return false;
  plan->usable = (flags & kSavePlanNotUsable) == 0;
  plan->items.resize(count);
  {
    WireFrame frame(r, "item");
    for (size_t i = 0; i < count; ++i) {
      frame.SetIndex(static_cast<int64_t>(i));
      frame.SetLabel(nullptr);
      if (!ReadWriteItem(r, frame, &plan->items[i])) return false;
    }
  }
  if ((flags & kPlanHasStorageData) && !r.ReadString("storage_data", &plan->storage_data.emplace())) return false;
  return !(flags & kPlanHasPlannerData) || ReadFlattenMapping(r, &plan->planner_data.emplace());
}

bool ReadLoadPlan(WireReader& r, LoadPlan* plan) {
  uint64_t flags;
  size_t count;
  if (!ReadPlanFlags(r, kMaxLoadPlanFlags, &flags, &count, kMinReadItemBytes)) return false;
  plan->items.resize(count);
  {
    WireFrame frame(r, "item");
    for (size_t i = 0; i < count; ++i) {
      frame.SetIndex(static_cast<int64_t>(i));
      frame.SetLabel(nullptr);
      if (!ReadReadItem(r, frame, &plan->items[i])) return false;
    }
  }
  if ((flags & kPlanHasStorageData) && !r.ReadString("storage_data", &plan->storage_data.emplace())) return false;
  return !(flags & kPlanHasPlannerData) || ReadFlattenMapping(r, &plan->planner_data.emplace());
}

bool ReadStorageMetadata(WireReader& r, StorageMetadata* metadata) {
  const size_t start = r.position();
  uint64_t kind;
  if (!r.ReadVarint("kind", &kind)) return false;
  if (kind == 0) {
    *metadata = BytesStorageMetadata{};
    return true;
  }
  auto& tensor = metadata->emplace<TensorStorageMetadata>();
  if (!ReadProperties(r, kind - 1, start, &tensor.properties) || !ReadShape(r, "size", &tensor.size)) return false;
  WireFrame frame(r, "chunk");
  size_t count;
  if (!r.ReadCount("count", kMinChunkBytes, &count)) return false;
  tensor.chunks.resize(count);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    if (!ReadShape(r, "offsets", &tensor.chunks[i].offsets) || !ReadShape(r, "sizes", &tensor.chunks[i].sizes)) {
      return false;
    }
  }
  return true;
}

bool ReadStateDictMetadata(WireReader& r, StateDictMetadata* state_dict) {
  WireFrame frame(r, "state_dict_metadata entry");
  size_t count;
  if (!r.ReadCount("count", kMinStateDictEntryBytes, &count)) return false;
  state_dict->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    frame.SetLabel(nullptr);
    const size_t key_start = r.position();
    std::string fqn;
    if (!r.ReadString("fqn", &fqn)) return false;
    auto [metadata, inserted] = state_dict->TryEmplace(fqn, BytesStorageMetadata{});
    if (!inserted) return r.FailAt(key_start, absl::StatusCode::kInvalidArgument, "duplicate fqn", "fqn");
    frame.SetLabel(&state_dict->at_position(i).first);
    if (!ReadStorageMetadata(r, metadata)) return false;
  }
  return true;
}

bool ReadStorageInfo(WireReader& r, StorageInfo* info) {
  if (!r.ReadString("relative_path", &info->relative_path) || !r.ReadSigned("offset", &info->offset) ||
      !r.ReadSigned("length", &info->length)) {
    return false;
  }
  const size_t count_start = r.position();
  uint64_t count_plus_one;
  if (!r.ReadVarint("transform count", &count_plus_one)) return false;
  if (count_plus_one == 0) return true;
  if (count_plus_one - 1 > r.remaining() / kMinStringBytes) {
    return r.FailAt(count_start, absl::StatusCode::kDataLoss,
                    absl::StrCat("count ", count_plus_one - 1, " but ", r.remaining(), " bytes remain"),
                    "transform count");
  }
  auto& transforms = info->transform_descriptors.emplace(count_plus_one - 1);
  for (std::string& t : transforms) {
    if (!r.ReadString("transform", &t)) return false;
  }
  return true;
}

bool ReadStorageData(WireReader& r, StorageData* storage) {
  WireFrame frame(r, "storage_data entry");
  size_t count;
  if (!r.ReadCount("count", kMinStorageEntryBytes, &count)) return false;
  storage->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    frame.SetLabel(nullptr);
    const size_t key_start = r.position();
    MetadataIndex index;
    if (!ReadIndex(r, "index", /*with_fqn=*/true, &index)) return false;
    auto [info, inserted] = storage->TryEmplace(index, StorageInfo{});
    if (!inserted) return r.FailAt(key_start, absl::StatusCode::kInvalidArgument, "duplicate index", "index");
    frame.SetLabel(&storage->at_position(i).first.fqn);
    if (!ReadStorageInfo(r, info)) return false;
  }
  return true;
}

bool ReadStorageMeta(WireReader& r, StorageMeta* meta) {
  WireFrame frame(r, "storage_meta");
  uint64_t flags;
  if (!r.ReadSmall("flags", kMaxStorageMetaFlags, &flags)) return false;
  if ((flags & kStorageMetaHasCheckpointId) && !r.ReadString("checkpoint_id", &meta->checkpoint_id.emplace())) {
    return false;
  }
  if ((flags & kStorageMetaHasSaveId) && !r.ReadString("save_id", &meta->save_id.emplace())) return false;
  if ((flags & kStorageMetaHasLoadId) && !r.ReadString("load_id", &meta->load_id.emplace())) return false;
  size_t count;
  if (!r.ReadCount("module count", kMinStringBytes, &count)) return false;
  meta->modules.resize(count);
  for (std::string& m : meta->modules) {
    if (!r.ReadString("module", &m)) return false;
  }
  return true;
}

bool ReadMetadata(WireReader& r, Metadata* m) {
  uint64_t flags;
  if (!r.ReadSmall("flags", kMaxMetadataFlags, &flags) || !ReadStateDictMetadata(r, &m->state_dict_metadata)) {
    return false;
  }
  if ((flags & kMetaHasPlannerData) && !ReadFlattenMapping(r, &m->planner_data.emplace())) return false;
  if ((flags & kMetaHasStorageData) && !ReadStorageData(r, &m->storage_data.emplace())) return false;
  if ((flags & kMetaHasStorageMeta) && !ReadStorageMeta(r, &m->storage_meta.emplace())) return false;
  return !(flags & kMetaHasVersion) || r.ReadString("version", &m->version.emplace());
}

template <typename Plan, bool (*kReadPlan)(WireReader&, Plan*)>
bool ReadPlanList(WireReader& r, std::vector<Plan>* plans) {
  WireFrame frame(r, "plan");
  size_t count;
  if (!r.ReadCount("count", kMinPlanBytes, &count)) return false;
  plans->resize(count);
  for (size_t i = 0; i < count; ++i) {
    frame.SetIndex(static_cast<int64_t>(i));
    if (!kReadPlan(r, &(*plans)[i])) return false;
  }
  return true;
}

// Reads a whole message of `kind` whose body `read_body` decodes.
template <typename T, typename ReadBody>
absl::StatusOr<T> Decode(absl::string_view bytes, CodecKind kind, const ReadBody& read_body) {
  WireReader r(bytes, kind);
  T value;
  if (r.ReadPrologue() && read_body(r, &value) && r.ReadEpilogue()) return value;
  return r.status();
}

}  // namespace
}  // namespace internal

using internal::Decode;
using internal::Encode;
using internal::WireWriter;

absl::string_view CodecKindName(CodecKind kind) {
  switch (kind) {
    case CodecKind::kSavePlan: return "SavePlan";
    case CodecKind::kLoadPlan: return "LoadPlan";
    case CodecKind::kMetadata: return "Metadata";
    case CodecKind::kSavePlanList: return "SavePlan list";
    case CodecKind::kLoadPlanList: return "LoadPlan list";
  }
  return "unknown kind";
}

absl::StatusOr<CodecKind> PeekCodecKind(absl::string_view bytes) {
  using internal::kCodecHeaderBytes;
  using internal::kCodecMagic;
  constexpr size_t kKindByte = kCodecHeaderBytes - 1;
  if (bytes.size() < kCodecHeaderBytes) return absl::DataLossError("codec: truncated message header");
  if (bytes.substr(0, sizeof(kCodecMagic)) != absl::string_view(kCodecMagic, sizeof(kCodecMagic))) {
    return absl::InvalidArgumentError("codec: bad magic (not a dcplan codec message)");
  }
  const uint8_t version = static_cast<uint8_t>(bytes[kKindByte - 1]);
  if (version != kCodecFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("codec: unsupported format version ", version, " (this build reads ", kCodecFormatVersion, ")"));
  }
  const uint8_t kind = static_cast<uint8_t>(bytes[kKindByte]);
  if (kind < static_cast<uint8_t>(CodecKind::kSavePlan) || kind > static_cast<uint8_t>(CodecKind::kLoadPlanList)) {
    return absl::InvalidArgumentError(absl::StrCat("codec: unknown message kind ", kind));
  }
  return static_cast<CodecKind>(kind);
}

std::string EncodeSavePlan(const SavePlan& plan) {
  return Encode(CodecKind::kSavePlan, [&](WireWriter& w) { internal::PutSavePlan(w, plan); });
}

absl::StatusOr<SavePlan> DecodeSavePlan(absl::string_view bytes) {
  return Decode<SavePlan>(bytes, CodecKind::kSavePlan, internal::ReadSavePlan);
}

std::string EncodeLoadPlan(const LoadPlan& plan) {
  return Encode(CodecKind::kLoadPlan, [&](WireWriter& w) { internal::PutLoadPlan(w, plan); });
}

absl::StatusOr<LoadPlan> DecodeLoadPlan(absl::string_view bytes) {
  return Decode<LoadPlan>(bytes, CodecKind::kLoadPlan, internal::ReadLoadPlan);
}

std::string EncodeMetadata(const Metadata& metadata) {
  return Encode(CodecKind::kMetadata, [&](WireWriter& w) { internal::PutMetadata(w, metadata); });
}

absl::StatusOr<Metadata> DecodeMetadata(absl::string_view bytes) {
  return Decode<Metadata>(bytes, CodecKind::kMetadata, internal::ReadMetadata);
}

std::string EncodeSavePlans(absl::Span<const SavePlan> plans) {
  return Encode(CodecKind::kSavePlanList, [&](WireWriter& w) {
    w.PutVarint(plans.size());
    for (const SavePlan& plan : plans) internal::PutSavePlan(w, plan);
  });
}

absl::StatusOr<std::vector<SavePlan>> DecodeSavePlans(absl::string_view bytes) {
  return Decode<std::vector<SavePlan>>(bytes, CodecKind::kSavePlanList,
                                       internal::ReadPlanList<SavePlan, internal::ReadSavePlan>);
}

std::string EncodeLoadPlans(absl::Span<const LoadPlan> plans) {
  return Encode(CodecKind::kLoadPlanList, [&](WireWriter& w) {
    w.PutVarint(plans.size());
    for (const LoadPlan& plan : plans) internal::PutLoadPlan(w, plan);
  });
}

absl::StatusOr<std::vector<LoadPlan>> DecodeLoadPlans(absl::string_view bytes) {
  return Decode<std::vector<LoadPlan>>(bytes, CodecKind::kLoadPlanList,
                                       internal::ReadPlanList<LoadPlan, internal::ReadLoadPlan>);
}

}  // namespace dcplan
