#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/dtype_conversion.h"
#include "api/internal/file_io.h"
#include "api/internal/status_macros.h"
#include "api/safetensors/byte_runs.h"
#include "api/safetensors/storage.h"
#include "nlohmann/json.hpp"

namespace dcplan::safetensors {
namespace {

using Json = nlohmann::json;

constexpr char kTemporarySuffix[] = ".tmp";

// Where a rank's tensors go: file names (temporary ones) and, per tensor,
// the file and the absolute offset of its first byte; and the file the rank
// starts with. Travels in SavePlan::storage_data.
struct Placement {
  std::vector<std::string> files;
  std::map<std::string, std::pair<size_t, int64_t>> tensors;
  size_t first_file = 0;
};

std::string EncodePlacement(const Placement& placement) {
  Json json;
  json["files"] = placement.files;
  json["first_file"] = placement.first_file;
  json["tensors"] = Json::object();
  for (const auto& [name, where] : placement.tensors) json["tensors"][name] = {where.first, where.second};
  return json.dump();
}

absl::StatusOr<Placement> DecodePlacement(const std::optional<std::string>& text) {
  const absl::Status bad = absl::InvalidArgumentError("the plan's storage_data is not a safetensors placement");
  if (!text) return bad;
  const Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("files") || !json.contains("tensors") || !json.contains("first_file")) {
    return bad;
  }
  Placement placement;
  for (const Json& file : json["files"]) {
    if (!file.is_string() || !IsPlainFileName(file.get<std::string>())) return bad;
    placement.files.push_back(file.get<std::string>());
  }
  const Json& first_file = json["first_file"];
  if (!first_file.is_number_unsigned() || first_file.get<uint64_t>() >= std::max<size_t>(placement.files.size(), 1)) {
    return bad;
  }
  placement.first_file = first_file.get<size_t>();
  for (const auto& [name, where] : json["tensors"].items()) {
    if (!where.is_array() || where.size() != 2 || !where[0].is_number_unsigned() ||
        !where[1].is_number_unsigned() || where[0].get<uint64_t>() >= placement.files.size() ||
        where[1].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return bad;
    }
    placement.tensors[name] = {where[0].get<size_t>(), where[1].get<int64_t>()};
  }
  return placement;
}

std::string RankPrefix(int64_t rank) { return absl::StrCat("rank ", rank, ": "); }

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

bool HasTensor(const WriteItem& item) { return item.tensor_data.has_value(); }

// The tensors of the global plan, one spec per name; items of one tensor
// must agree on dtype and global shape.
absl::StatusOr<std::vector<TensorSpec>> TensorsOf(const std::vector<SavePlan>& plans) {
  std::map<std::string, TensorSpec> specs;
  for (const SavePlan& plan : plans) {
    for (const WriteItem& item : plan.items) {
      if (!HasTensor(item)) continue;
      TensorSpec spec{item.index.fqn, item.tensor_data->properties.dtype, item.tensor_data->size};
      auto [it, inserted] = specs.emplace(spec.name, spec);
      if (!inserted && (it->second.dtype != spec.dtype || it->second.shape != spec.shape)) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name, "': ranks disagree on its dtype or shape (",
                                                       DTypeName(it->second.dtype), " ", ShapeToString(it->second.shape),
                                                       " vs ", DTypeName(spec.dtype), " ", ShapeToString(spec.shape), ")"));
      }
    }
  }
  std::vector<TensorSpec> out;
  for (auto& [name, spec] : specs) out.push_back(std::move(spec));
  return out;
}

// Drops (or refuses, listing them) the non-tensor items of every plan.
absl::Status HandleNonTensorValues(std::vector<SavePlan>& plans, bool skip) {
  std::set<std::string> keys;
  for (const SavePlan& plan : plans) {
    for (const WriteItem& item : plan.items) {
      if (!HasTensor(item)) keys.insert(item.index.fqn);
    }
  }
  if (keys.empty()) return absl::OkStatus();
  if (!skip) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors holds tensors only; these values are not tensors: ", absl::StrJoin(keys, ", "),
        " (leave them out with skip_non_tensor_values, or save them elsewhere)"));
  }
  for (SavePlan& plan : plans) {
    plan.items.erase(std::remove_if(plan.items.begin(), plan.items.end(), [](const WriteItem& i) { return !HasTensor(i); }),
                     plan.items.end());
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ResolvedTensor(const WriteItem& item, SavePlanner& planner) {
  DCPLAN_ASSIGN_OR_RETURN(WriteData data, planner.ResolveData(item));
  const auto* tensor = std::get_if<at::Tensor>(&data);
  if (tensor == nullptr) return absl::InvalidArgumentError("the planner resolved bytes for a tensor item");
  DCPLAN_ASSIGN_OR_RETURN(c10::ScalarType expected, ScalarTypeFromDType(item.tensor_data->properties.dtype));
  if (!tensor->defined() || !tensor->device().is_cpu() || tensor->layout() != at::kStrided ||
      tensor->scalar_type() != expected || tensor->sizes().vec() != item.tensor_data->chunk.sizes) {
    return absl::InvalidArgumentError(absl::StrCat("the planner resolved a tensor that is not a CPU ",
                                                   DTypeName(item.tensor_data->properties.dtype), " tensor of size ",
                                                   ShapeToString(item.tensor_data->chunk.sizes)));
  }
  return tensor->resolve_conj().resolve_neg().contiguous();
}

// The items ordered by their file, starting with the rank's first file and
// wrapping around (items the placement lacks first, to be reported).
std::vector<const WriteItem*> InFileOrder(const std::vector<WriteItem>& items, const Placement& placement) {
  const auto turn_of = [&](const WriteItem& item) -> size_t {
    const auto where = placement.tensors.find(item.index.fqn);
    if (where == placement.tensors.end()) return 0;
    const size_t files = placement.files.size();
    return 1 + (where->second.first + files - placement.first_file) % files;
  };
  std::vector<const WriteItem*> ordered;
  for (const WriteItem& item : items) ordered.push_back(&item);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [&](const WriteItem* a, const WriteItem* b) { return turn_of(*a) < turn_of(*b); });
  return ordered;
}

// Writes one chunk into its tensor's place; returns the bytes written.
absl::StatusOr<int64_t> WriteChunk(const WriteItem& item, const at::Tensor& chunk, const internal::ScopedFd& fd,
                                   int64_t tensor_start) {
  const TensorWriteData& data = *item.tensor_data;
  const char* bytes = static_cast<const char*>(chunk.data_ptr());
  DCPLAN_RETURN_IF_ERROR(ForEachByteRun(data.size, ElementSize(data.properties.dtype), data.chunk.offsets,
                                        data.chunk.sizes, [&](const ByteRun& run) {
                                          return internal::WriteExactlyAt(fd, tensor_start + run.tensor_offset,
                                                                          bytes + run.box_offset, run.length);
                                        }));
  return static_cast<int64_t>(chunk.numel()) * chunk.element_size();
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string directory, SafetensorsWriterOptions options)
    : directory_(std::move(directory)), options_(std::move(options)) {}

absl::Status SafetensorsWriter::SetUpStorageWriter(bool is_coordinator, int64_t rank) {
  if (rank < 0) return absl::InvalidArgumentError(absl::StrCat("negative rank ", rank));
  is_coordinator_ = is_coordinator;
  rank_ = rank;
  planned_.reset();
  temporary_files_.clear();
  return absl::OkStatus();
}

std::optional<StorageMeta> SafetensorsWriter::GetStorageMeta() const {
  StorageMeta meta;
  meta.checkpoint_id = directory_;
  return meta;
}

absl::StatusOr<SavePlan> SafetensorsWriter::PrepareLocalPlan(SavePlan plan) {
  if (!is_coordinator_) return plan;
  absl::Status made = internal::MakeDirectories(directory_);
  if (!made.ok()) return WithContext(made, absl::StrCat("creating '", directory_, "'"));
  if (!options_.overwrite && IsSafetensorsDirectory(directory_)) {
    return absl::FailedPreconditionError(absl::StrCat("'", directory_,
                                                      "' already holds a safetensors checkpoint; pass overwrite to replace it"));
  }
  return plan;
}

absl::StatusOr<std::vector<SavePlan>> SafetensorsWriter::PrepareGlobalPlan(std::vector<SavePlan> plans) {
  for (size_t r = 0; r < plans.size(); ++r) {
    if (!plans[r].usable) {
      return absl::FailedPreconditionError(
          absl::StrCat("the plan of rank ", r, " is a plan-caching placeholder; safetensors saves need full plans"));
    }
  }
  DCPLAN_RETURN_IF_ERROR(HandleNonTensorValues(plans, options_.skip_non_tensor_values));
  DCPLAN_ASSIGN_OR_RETURN(std::vector<TensorSpec> tensors, TensorsOf(plans));
  DCPLAN_ASSIGN_OR_RETURN(planned_, PlanCheckpoint(std::move(tensors), options_.layout));
  planned_->checkpoint.directory = directory_;
  DCPLAN_RETURN_IF_ERROR(CreateTemporaryFiles());
  std::map<std::string, std::pair<size_t, int64_t>> where;
  Placement all;
  for (size_t f = 0; f < planned_->checkpoint.files.size(); ++f) {
    const FileHeader& file = planned_->checkpoint.files[f];
    all.files.push_back(file.name + kTemporarySuffix);
    for (const TensorEntry& t : file.header.tensors) where[t.name] = {f, file.header.data_start + t.begin};
  }
  for (size_t r = 0; r < plans.size(); ++r) {
    // Buffered writes to one file are serialized by the kernel (the inode
    // lock), so ranks that start on different files write in parallel.
    Placement placement{all.files, {}, r * all.files.size() / plans.size()};
    for (const WriteItem& item : plans[r].items) placement.tensors[item.index.fqn] = where.at(item.index.fqn);
    plans[r].storage_data = EncodePlacement(placement);
  }
  return plans;
}

absl::Status SafetensorsWriter::CreateTemporaryFiles() {
  for (size_t f = 0; f < planned_->checkpoint.files.size(); ++f) {
    const FileHeader& file = planned_->checkpoint.files[f];
    const std::string path = internal::JoinPath(directory_, file.name + kTemporarySuffix);
    temporary_files_.push_back(path);
    absl::Status status = [&]() -> absl::Status {
      DCPLAN_ASSIGN_OR_RETURN(internal::ScopedFd fd, internal::CreateExclusively(path));
      const std::string& header = planned_->header_bytes[f];
      DCPLAN_RETURN_IF_ERROR(internal::WriteExactlyAt(fd, 0, header.data(), header.size()));
      DCPLAN_RETURN_IF_ERROR(internal::SetFileSize(fd, file.file_size));
      return fd.Close();
    }();
    if (!status.ok()) return WithContext(status, absl::StrCat("creating '", path, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WriteResult>> SafetensorsWriter::WriteData(const SavePlan& plan, SavePlanner& planner) {
  absl::StatusOr<Placement> placement = DecodePlacement(plan.storage_data);
  if (!placement.ok()) return WithContext(placement.status(), absl::StrCat("rank ", rank_));
  std::map<size_t, internal::ScopedFd> open_files;
  std::vector<WriteResult> results;
  int64_t total = 0, done = 0;
  for (const WriteItem& item : plan.items) total += item.PayloadBytes().value_or(0);
  for (const WriteItem* item_pointer : InFileOrder(plan.items, *placement)) {
    const WriteItem& item = *item_pointer;
    const auto where = placement->tensors.find(item.index.fqn);
    const std::string context =
        absl::StrCat(RankPrefix(rank_), "writing '", item.index.fqn, "' shard at ",
                     HasTensor(item) ? ShapeToString(item.tensor_data->chunk.offsets) : std::string("?"), " to ",
                     where == placement->tensors.end() ? std::string("?") : placement->files[where->second.first]);
    if (!HasTensor(item) || where == placement->tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat(context, ": the plan does not place this item"));
    }
    const auto [file, tensor_start] = where->second;
    absl::StatusOr<int64_t> written = [&, file = file, tensor_start = tensor_start]() -> absl::StatusOr<int64_t> {
      if (!open_files.count(file)) {
        DCPLAN_ASSIGN_OR_RETURN(open_files[file],
                                internal::OpenForUpdate(internal::JoinPath(directory_, placement->files[file])));
      }
      DCPLAN_ASSIGN_OR_RETURN(at::Tensor chunk, ResolvedTensor(item, planner));
      return WriteChunk(item, chunk, open_files[file], tensor_start);
    }();
    if (!written.ok()) return WithContext(written.status(), context);
    const std::string& temporary = placement->files[file];
    WriteResult result;
    result.index = item.index;
    result.size_in_bytes = *written;
    result.storage_info = StorageInfo{temporary.substr(0, temporary.size() - strlen(kTemporarySuffix)),
                                      tensor_start, *written, std::nullopt};
    results.push_back(std::move(result));
    done += *written;
    if (options_.progress) options_.progress(done, total);
  }
  for (auto& [file, fd] : open_files) {
    absl::Status closed = fd.Close();
    if (!closed.ok()) return WithContext(closed, absl::StrCat(RankPrefix(rank_), "closing ", placement->files[file]));
  }
  return results;
}

absl::Status SafetensorsWriter::CheckEveryByteWritten(const std::vector<std::vector<WriteResult>>& results) const {
  std::map<std::string, int64_t> written;
  for (const auto& rank_results : results) {
    for (const WriteResult& result : rank_results) written[result.index.fqn] += result.size_in_bytes;
  }
  for (const FileHeader& file : planned_->checkpoint.files) {
    for (const TensorEntry& t : file.header.tensors) {
      if (written[t.name] != t.bytes()) {
        return absl::InternalError(absl::StrCat("tensor '", t.name, "': the ranks wrote ", written[t.name], " of its ",
                                                t.bytes(), " bytes to '", file.name, "'"));
      }
    }
  }
  return absl::OkStatus();
}

// With overwrite: the previous checkpoint's index goes first (so no index
// ever names files of two saves), then its data files the new one does not
// reuse.
absl::Status SafetensorsWriter::ReplacePreviousCheckpoint() const {
  std::set<std::string> keep;
  for (const FileHeader& file : planned_->checkpoint.files) keep.insert(file.name);
  std::set<std::string> stale = {kSingleFileName};
  const std::string index_path = internal::JoinPath(directory_, kIndexFileName);
  absl::StatusOr<std::string> index_json = internal::ReadWholeFile(index_path);
  if (index_json.ok() && index_json->size() <= static_cast<size_t>(kMaxHeaderBytes)) {
    absl::StatusOr<Index> index = ParseIndexJson(*index_json, index_path);
    if (index.ok()) {
      for (const auto& [name, file] : index->weight_map) stale.insert(file);
    }
  }
  DCPLAN_RETURN_IF_ERROR(internal::RemoveIfExists(index_path));
  for (const std::string& name : stale) {
    if (!keep.count(name)) DCPLAN_RETURN_IF_ERROR(internal::RemoveIfExists(internal::JoinPath(directory_, name)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Metadata> SafetensorsWriter::Finish(const Metadata& metadata,
                                                   const std::vector<std::vector<WriteResult>>& results) {
  (void)metadata;  // the layout, not the sharded save metadata, describes the files
  if (!planned_) return absl::InternalError("Finish without PrepareGlobalPlan on this coordinator");
  DCPLAN_RETURN_IF_ERROR(CheckEveryByteWritten(results));
  if (!options_.overwrite && IsSafetensorsDirectory(directory_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", directory_, "' received a safetensors checkpoint during the save; not replacing it"));
  }
  if (options_.sync_files) {
    for (const std::string& path : temporary_files_) {
      absl::Status synced = [&]() -> absl::Status {
        DCPLAN_ASSIGN_OR_RETURN(internal::ScopedFd fd, internal::OpenForReading(path));
        DCPLAN_RETURN_IF_ERROR(internal::SyncFile(fd));
        return fd.Close();
      }();
      if (!synced.ok()) return WithContext(synced, absl::StrCat("syncing '", path, "'"));
    }
  }
  if (options_.overwrite) DCPLAN_RETURN_IF_ERROR(ReplacePreviousCheckpoint());
  for (const FileHeader& file : planned_->checkpoint.files) {
    const std::string final_path = internal::JoinPath(directory_, file.name);
    if (::rename((final_path + kTemporarySuffix).c_str(), final_path.c_str()) != 0) {
      return WithContext(internal::ErrnoStatus(errno), absl::StrCat("renaming '", final_path, kTemporarySuffix, "'"));
    }
  }
  temporary_files_.clear();
  if (options_.sync_files) DCPLAN_RETURN_IF_ERROR(internal::SyncDirectory(directory_));
  if (!planned_->index_json.empty()) {
    DCPLAN_RETURN_IF_ERROR(internal::WriteFileAtomically(directory_, kIndexFileName, planned_->index_json,
                                                         options_.sync_files, &temporary_files_));
    temporary_files_.clear();
    if (options_.sync_files) DCPLAN_RETURN_IF_ERROR(internal::SyncDirectory(directory_));
  }
  return ToDcpMetadata(planned_->checkpoint);
}

void SafetensorsWriter::Abort() {
  for (const std::string& path : temporary_files_) (void)internal::RemoveIfExists(path);
  temporary_files_.clear();
  planned_.reset();
}

}  // namespace dcplan::safetensors
