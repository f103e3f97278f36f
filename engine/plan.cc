#include "engine/plan.h"

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "engine/internal/checked_math.h"

namespace dcplan {

absl::string_view WriteItemTypeName(WriteItemType type) {
  switch (type) {
    case WriteItemType::kTensor: return "TENSOR";
    case WriteItemType::kShard: return "SHARD";
    case WriteItemType::kByteIO: return "BYTE_IO";
  }
  return "?";
}

absl::string_view LoadItemTypeName(LoadItemType type) {
  switch (type) {
    case LoadItemType::kTensor: return "TENSOR";
    case LoadItemType::kByteIO: return "BYTE_IO";
  }
  return "?";
}

absl::StatusOr<std::optional<int64_t>> WriteItem::TensorStorageSize() const {
  if (!tensor_data) return std::optional<int64_t>();
  absl::StatusOr<int64_t> numel = ShapeVolume(tensor_data->size);
  if (!numel.ok()) return numel.status();
  std::optional<int64_t> bytes = internal::CheckedMul(*numel, ElementSize(tensor_data->properties.dtype));
  if (!bytes) return absl::OutOfRangeError(absl::StrCat("storage size of ", ToString(index), " overflows int64"));
  return bytes;
}

absl::StatusOr<int64_t> WriteItem::PayloadBytes() const {
  if (!tensor_data) return bytes_io_nbytes.value_or(0);
  absl::StatusOr<int64_t> numel = Volume(tensor_data->chunk);
  if (!numel.ok()) return numel.status();
  std::optional<int64_t> bytes = internal::CheckedMul(*numel, ElementSize(tensor_data->properties.dtype));
  if (!bytes) return absl::OutOfRangeError(absl::StrCat("payload size of ", ToString(index), " overflows int64"));
  return *bytes;
}

std::string ToString(const WriteItem& w) {
  std::string out = absl::StrCat("WriteItem(", ToString(w.index), ", ", WriteItemTypeName(w.type));
  if (w.bytes_io_nbytes) absl::StrAppend(&out, ", nbytes=", *w.bytes_io_nbytes);
  if (w.tensor_data) {
    absl::StrAppend(&out, ", chunk=", ToString(w.tensor_data->chunk), ", dtype=", DTypeName(w.tensor_data->properties.dtype),
                    ", size=", ShapeToString(w.tensor_data->size));
  }
  return out + ")";
}

std::string ToString(const SavePlan& p) {
  std::string out = absl::StrCat("SavePlan(usable=", p.usable ? "True" : "False", ", ", p.items.size(), " items");
  if (p.storage_data) absl::StrAppend(&out, ", storage_data='", *p.storage_data, "'");
  if (p.planner_data) absl::StrAppend(&out, ", planner_data: ", p.planner_data->size(), " keys");
  out += ")";
  for (const WriteItem& item : p.items) absl::StrAppend(&out, "\n  ", ToString(item));
  return out;
}

std::string ToString(const ReadItem& r) {
  return absl::StrCat("ReadItem(", LoadItemTypeName(r.type), ", dest=", ToString(r.dest_index), " at ",
                      ShapeToString(r.dest_offsets), ", storage=", ToString(r.storage_index), " at ",
                      ShapeToString(r.storage_offsets), ", lengths=", ShapeToString(r.lengths), ")");
}

std::string ToString(const LoadPlan& p) {
  std::string out = absl::StrCat("LoadPlan(", p.items.size(), " items");
  if (p.storage_data) absl::StrAppend(&out, ", storage_data='", *p.storage_data, "'");
  if (p.planner_data) absl::StrAppend(&out, ", planner_data: ", p.planner_data->size(), " keys");
  out += ")";
  for (const ReadItem& item : p.items) absl::StrAppend(&out, "\n  ", ToString(item));
  return out;
}


std::ostream& operator<<(std::ostream& os, const WriteItem& w) { return os << ToString(w); }
std::ostream& operator<<(std::ostream& os, const SavePlan& p) { return os << ToString(p); }
std::ostream& operator<<(std::ostream& os, const ReadItem& r) { return os << ToString(r); }
std::ostream& operator<<(std::ostream& os, const LoadPlan& p) { return os << ToString(p); }

}  // namespace dcplan
