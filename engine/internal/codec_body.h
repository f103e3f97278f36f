#ifndef DCPLAN_ENGINE_INTERNAL_CODEC_BODY_H_
#define DCPLAN_ENGINE_INTERNAL_CODEC_BODY_H_

// Body layouts (format version 1). `count` and `flags` are varints, `sint`
// a zigzag varint, `str` a string reference (codec.h), `shape` = count + sints.
//
//   SavePlan:  flags{1 storage_data, 2 planner_data, 4 NOT usable}
//              count WriteItem* [str storage_data] [FlattenMapping]
//   WriteItem: flags{bits 0-1 type, 4 bytes_io_nbytes, 8 tensor_data,
//              16 chunk offsets = index offset} Index [sint nbytes]
//              [Properties shape(size) [shape(chunk offsets)] shape(chunk sizes)]
//   Index:     [str fqn] presence{2 * (offset rank + 1 or 0) + (hint present)}
//              [sint* offset] [sint hint]
//   Properties: varint dtype | layout << 5 | memory_format << 8 |
//              requires_grad << 10 | pin_memory << 11
//   LoadPlan:  flags{1 storage_data, 2 planner_data} count ReadItem* [str] [FlattenMapping]
//   ReadItem:  flags{1 BYTE_IO, 2 storage fqn = dest fqn} Index(dest) shape(dest offsets)
//              Index(storage, fqn omitted if flag 2) shape(storage offsets) shape(lengths)
//   FlattenMapping: count (str key, count (element)*)*; element = varint 0 + sint
//              for an int, or a string reference + 1
//   Metadata:  flags{1 planner_data, 2 storage_data, 4 storage_meta, 8 version}
//              count (str key, varint 0 (bytes) or Properties + 1 then shape(size)
//              count (shape offsets, shape sizes)*)* [FlattenMapping]
//              [count (Index, str path, sint offset, sint length,
//              varint 0 or n + 1 then n str transforms)*]
//              [flags{1 checkpoint_id, 2 save_id, 4 load_id} strs, count str modules]
//              [str version]
//   SavePlan / LoadPlan list: count, then the plan bodies.
//
// Flags that say "same as another field" are set exactly when the fields are
// equal, so that the encoding stays canonical.

#include <cstdint>

#include "engine/internal/codec_wire.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan::internal {

inline constexpr uint64_t kMaxWriteItemFlags = 31;
inline constexpr uint64_t kWriteHasNbytes = 4, kWriteHasTensor = 8, kWriteChunkOffsetsFromIndex = 16;
inline constexpr uint64_t kReadIsBytes = 1, kReadSameFqn = 2;
inline constexpr uint64_t kPlanHasStorageData = 1, kPlanHasPlannerData = 2, kSavePlanNotUsable = 4;
inline constexpr uint64_t kMaxSavePlanFlags = 7, kMaxLoadPlanFlags = 3, kMaxMetadataFlags = 15,
                          kMaxStorageMetaFlags = 7;
inline constexpr uint64_t kMetaHasPlannerData = 1, kMetaHasStorageData = 2, kMetaHasStorageMeta = 4,
                          kMetaHasVersion = 8;
inline constexpr uint64_t kStorageMetaHasCheckpointId = 1, kStorageMetaHasSaveId = 2, kStorageMetaHasLoadId = 4;
// TensorProperties packed into one varint.
inline constexpr uint64_t kDTypeMask = 31, kLayoutMask = 7, kMemoryFormatMask = 3;
inline constexpr int kLayoutShift = 5, kMemoryFormatShift = 8, kRequiresGradShift = 10, kPinMemoryShift = 11;
inline constexpr uint64_t kMaxProperties = (uint64_t{1} << (kPinMemoryShift + 1)) - 1;
inline constexpr int kNumLayouts = static_cast<int>(Layout::kMkldnn) + 1;
inline constexpr int kNumMemoryFormats = static_cast<int>(MemoryFormat::kPreserve) + 1;

// Encoders of the bodies (engine/internal/codec_put.cc); the decoders are in
// engine/codec.cc.
void PutSavePlan(WireWriter& w, const SavePlan& plan);
void PutLoadPlan(WireWriter& w, const LoadPlan& plan);
void PutMetadata(WireWriter& w, const Metadata& metadata);

}  // namespace dcplan::internal

#endif  // DCPLAN_ENGINE_INTERNAL_CODEC_BODY_H_
