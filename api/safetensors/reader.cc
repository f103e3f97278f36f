#include <ATen/ATen.h>

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/internal/confined_path.h"
#include "api/internal/file_io.h"
#include "api/internal/status_macros.h"
#include "api/safetensors/byte_runs.h"
#include "api/safetensors/storage.h"

namespace dcplan::safetensors {
namespace {

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// A destination the stored bytes can go to as they are.
bool IsDirectTarget(const at::Tensor& target, c10::ScalarType stored, const Shape& lengths) {
  return target.defined() && target.device().is_cpu() && target.layout() == at::kStrided &&
         target.scalar_type() == stored && target.sizes().vec() == lengths && target.is_contiguous() &&
         !target.is_conj() && !target.is_neg() && target.has_storage() &&
         (target.numel() == 0 || target.data_ptr() != nullptr);
}

// Reads the item's box of the tensor stored at `tensor_start` into `out`
// (row-major, the box's size).
absl::Status ReadBox(const internal::ScopedFd& fd, int64_t tensor_start, const TensorStorageMetadata& stored,
                     const ReadItem& item, char* out) {
  return ForEachByteRun(stored.size, ElementSize(stored.properties.dtype), item.storage_offsets, item.lengths,
                        [&](const ByteRun& run) {
                          return internal::ReadExactlyAt(fd, tensor_start + run.tensor_offset,
                                                         out + run.box_offset, run.length);
                        });
}

absl::Status ReadTensorItem(const internal::ScopedFd& fd, const StorageInfo& where,
                            const TensorStorageMetadata& stored, const ReadItem& item, LoadPlanner& planner) {
  absl::StatusOr<c10::ScalarType> type = ScalarTypeFromDType(stored.properties.dtype);
  if (!type.ok()) {
    const absl::StatusOr<std::string> name = NameOfDType(stored.properties.dtype);
    return absl::UnimplementedError(absl::StrCat("its dtype ", name.ok() ? *name : "?", " (",
                                                 DTypeName(stored.properties.dtype),
                                                 ") has no LibTorch scalar type in this build"));
  }
  DCPLAN_ASSIGN_OR_RETURN(at::Tensor destination, planner.ResolveTensor(item));
  at::Tensor target = destination.detach();
  if (IsDirectTarget(target, *type, item.lengths)) {
    DCPLAN_RETURN_IF_ERROR(ReadBox(fd, where.offset, stored, item, static_cast<char*>(target.data_ptr())));
  } else {
    at::Tensor buffer = at::empty(item.lengths, at::TensorOptions().dtype(*type));
    DCPLAN_RETURN_IF_ERROR(ReadBox(fd, where.offset, stored, item, static_cast<char*>(buffer.data_ptr())));
    if (target.sizes() != buffer.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("the destination has size ", ShapeToString(target.sizes().vec()),
                                                     ", the read item ", ShapeToString(item.lengths)));
    }
    target.copy_(buffer);
  }
  return planner.CommitTensor(item, target);
}

}  // namespace

SafetensorsReader::SafetensorsReader(std::string directory, SafetensorsReaderOptions options)
    : directory_(std::move(directory)), options_(std::move(options)) {}

absl::StatusOr<Metadata> SafetensorsReader::ReadMetadata() {
  DCPLAN_ASSIGN_OR_RETURN(Checkpoint checkpoint, ReadCheckpoint(directory_));
  return ToDcpMetadata(checkpoint);
}

absl::Status SafetensorsReader::SetUpStorageReader(const Metadata& metadata, bool is_coordinator, int64_t rank) {
  (void)is_coordinator;
  if (!metadata.storage_data) return absl::FailedPreconditionError("the metadata has no storage_data");
  metadata_ = metadata;
  rank_ = rank;
  return absl::OkStatus();
}

absl::StatusOr<LoadPlan> SafetensorsReader::PrepareLocalPlan(LoadPlan plan) { return plan; }

absl::StatusOr<std::vector<LoadPlan>> SafetensorsReader::PrepareGlobalPlan(std::vector<LoadPlan> plans) {
  return plans;
}

absl::Status SafetensorsReader::ReadData(const LoadPlan& plan, LoadPlanner& planner) {
  if (!metadata_) return absl::FailedPreconditionError("ReadData before SetUpStorageReader");
  std::map<std::string, internal::ScopedFd> open_files;
  const auto item_bytes = [&](const ReadItem& item) {
    const StorageMetadata* stored = metadata_->state_dict_metadata.Find(item.storage_index.fqn);
    const auto* tensor = stored == nullptr ? nullptr : std::get_if<TensorStorageMetadata>(stored);
    int64_t bytes = tensor == nullptr ? 0 : ElementSize(tensor->properties.dtype);
    for (int64_t length : item.lengths) bytes *= length;  // inside a stored tensor: no overflow
    return bytes;
  };
  int64_t total = 0, done = 0;
  for (const ReadItem& item : plan.items) total += item_bytes(item);
  for (const ReadItem& item : plan.items) {
    const StorageInfo* where = metadata_->storage_data->Find(item.storage_index);
    const StorageMetadata* stored = metadata_->state_dict_metadata.Find(item.storage_index.fqn);
    const auto* tensor = stored == nullptr ? nullptr : std::get_if<TensorStorageMetadata>(stored);
    const std::string context =
        absl::StrCat("rank ", rank_, ": reading '", item.storage_index.fqn, "' ",
                     ShapeToString(item.storage_offsets), " +", ShapeToString(item.lengths), " from '",
                     where == nullptr ? std::string("?") : where->relative_path, "'");
    if (item.type != LoadItemType::kTensor || where == nullptr || tensor == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(context, ": the checkpoint holds no such tensor"));
    }
    absl::Status status = [&]() -> absl::Status {
      if (!open_files.count(where->relative_path)) {
        if (!IsPlainFileName(where->relative_path)) return absl::InvalidArgumentError("not a plain file name");
        DCPLAN_ASSIGN_OR_RETURN(open_files[where->relative_path],
                                internal::OpenConfined(directory_, where->relative_path));
      }
      return ReadTensorItem(open_files[where->relative_path], *where, *tensor, item, planner);
    }();
    if (!status.ok()) return WithContext(status, context);
    done += item_bytes(item);
    if (options_.progress) options_.progress(done, total);
  }
  return absl::OkStatus();
}

}  // namespace dcplan::safetensors
