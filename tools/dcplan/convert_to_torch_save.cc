// DcpToTorchSave: a DCP checkpoint -> one torch.save file, streamed.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <utility>
#include <variant>

#include <ATen/ATen.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/dtype_conversion.h"
#include "api/filesystem.h"
#include "api/internal/file_io.h"
#include "api/internal/torch_compat.h"
#include "api/planners.h"
#include "api/tensor_record.h"
#include "engine/box.h"
#include "engine/description.h"
#include "engine/dtype.h"
#include "engine/flatten.h"
#include "engine/load_planner.h"
#include "engine/validate.h"
#include "tools/dcplan/convert_archive.h"
#include "tools/dcplan/convert_keys.h"
#include "tools/dcplan/convert_pickle.h"
#include "tools/dcplan/convert_torch_save.h"

namespace dcplan::tools::convert {
namespace {

constexpr int64_t kBatchBytes = int64_t{64} << 20;

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// Receives what FileSystemReader::ReadData reads: tensor chunks into
// pre-allocated whole tensors, bytes values as they are stored.
class ChunkSink final : public LoadPlanner {
 public:
  absl::flat_hash_map<std::string, at::Tensor> tensors;
  absl::flat_hash_map<std::string, std::string> bytes;

  absl::Status SetUpPlanner(StateDict*, const Metadata&, bool) override { return absl::OkStatus(); }
  absl::StatusOr<LoadPlan> CreateLocalPlan() override { return absl::UnimplementedError("ChunkSink plans nothing"); }
  absl::StatusOr<std::vector<LoadPlan>> CreateGlobalPlan(std::vector<LoadPlan> plans) override { return plans; }
  absl::StatusOr<LoadPlan> FinishPlan(LoadPlan plan) override { return plan; }
  absl::Status LoadBytes(const ReadItem& item, absl::string_view data) override {
    // A value that would run code when unpickled is not copied into a file
    // that PyTorch may load.
    if (absl::Status policy = CheckWeightsOnlyArchive(data); !policy.ok()) {
      return absl::Status(policy.code(), absl::StrCat("bytes value '", item.dest_index.fqn, "': ", policy.message()));
    }
    bytes[item.dest_index.fqn] = std::string(data);
    return absl::OkStatus();
  }
  absl::StatusOr<at::Tensor> ResolveTensor(const ReadItem& item) override {
    auto it = tensors.find(item.dest_index.fqn);
    if (it == tensors.end()) return absl::InternalError(absl::StrCat("no destination for '", item.dest_index.fqn, "'"));
    at::Tensor view = it->second;
    for (size_t d = 0; d < item.lengths.size(); ++d) {
      view = view.narrow(static_cast<int64_t>(d), item.dest_offsets[d], item.lengths[d]);
    }
    return view;
  }
  absl::Status CommitTensor(const ReadItem&, const at::Tensor&) override { return absl::OkStatus(); }
};

// Where the bytes of one storage record come from.
struct Source {
  std::string fqn;  // a checkpoint tensor; empty for bytes held in memory
  const TensorStorageMetadata* tensor = nullptr;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::string bytes;  // a storage of a non-tensor value's archive
  int64_t nbytes = 0;
};

// PyTorch's contiguous strides (a size-0 dim counts as 1).
std::vector<int64_t> ContiguousStrides(const Shape& size) {
  std::vector<int64_t> strides(size.size(), 1);
  for (size_t d = size.size(); d-- > 1;) strides[d - 1] = strides[d] * std::max<int64_t>(size[d], 1);
  return strides;
}

class Converter {
 public:
  Converter(const std::string& directory, const Metadata& metadata, const ConvertProgress& progress)
      : directory_(directory), metadata_(metadata), reader_(directory), progress_(progress) {}

  absl::StatusOr<ConvertSummary> Run(const std::optional<absl::flat_hash_set<std::string>>& keys,
                                     const std::string& out_path);

 private:
  absl::StatusOr<PyNode*> TensorNode(const std::string& fqn, const TensorStorageMetadata& tensor);
  absl::StatusOr<PyNode*> ValueNode(const std::string& fqn, std::string archive_bytes);
  absl::StatusOr<PyNode*> ToPyNode(const Nested<PyNode*>& value);
  absl::Status WriteStorages(ArchiveWriter& writer);
  absl::Status FlushBatch(ArchiveWriter& writer, std::vector<size_t>& batch);

  std::string directory_;
  const Metadata& metadata_;
  FileSystemReader reader_;
  const ConvertProgress& progress_;
  PyGraph graph_;
  std::vector<Source> sources_;
  std::vector<size_t> key_order_;  // source of storage key i
  int64_t done_ = 0;
  int64_t total_ = 0;
};

absl::StatusOr<PyNode*> Converter::TensorNode(const std::string& fqn, const TensorStorageMetadata& tensor) {
  std::vector<PlanProblem> problems = ValidateTensor(fqn, tensor);
  if (!problems.empty()) return absl::DataLossError(ToString(problems.front()));
  if (tensor.size.empty() && tensor.chunks.empty()) return absl::DataLossError("no stored chunk");
  absl::StatusOr<c10::ScalarType> dtype = ScalarTypeFromDType(tensor.properties.dtype);
  if (!dtype.ok()) return dtype.status();
  // Dtypes without a legacy storage class (uint16/32/64, float8) are
  // written as torch.save writes them: _rebuild_tensor_v3 over an untyped
  // storage, whose numel counts bytes, with the dtype as a 7th argument.
  absl::StatusOr<std::string> storage_class = StorageClassName(*dtype);
  const bool untyped = !storage_class.ok();
  // (Quantized tensors are pickled another way; on LibTorch 1.13 the legacy
  // classes are all dcplan writes, as api/internal/tensor_pickle.cc does.)
  if (untyped && (!DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED || c10::isQIntType(*dtype))) {
    return storage_class.status();
  }
  absl::StatusOr<int64_t> numel = ShapeVolume(tensor.size);
  if (!numel.ok()) return numel.status();
  const int64_t element_size = static_cast<int64_t>(c10::elementSize(*dtype));
  if (*numel > INT64_MAX / element_size) return absl::DataLossError("the tensor's byte size overflows int64");

  PyNode* storage = graph_.New(PyKind::kStorage);
  storage->module = untyped ? "torch.storage" : "torch";
  storage->name = untyped ? "UntypedStorage" : *storage_class;
  storage->integer = untyped ? *numel * element_size : *numel;
  storage->source = static_cast<int64_t>(sources_.size());
  sources_.push_back(Source{fqn, &tensor, *dtype, "", *numel * element_size});

  std::vector<PyNode*> sizes;
  std::vector<PyNode*> strides;
  for (int64_t s : tensor.size) sizes.push_back(graph_.NewInt(s));
  for (int64_t s : ContiguousStrides(tensor.size)) strides.push_back(graph_.NewInt(s));
  absl::StatusOr<PyNode*> size_tuple = graph_.NewContainer(PyKind::kTuple, std::move(sizes));
  absl::StatusOr<PyNode*> stride_tuple = graph_.NewContainer(PyKind::kTuple, std::move(strides));
  absl::StatusOr<PyNode*> no_args = graph_.NewContainer(PyKind::kTuple, {});
  if (!size_tuple.ok() || !stride_tuple.ok() || !no_args.ok()) return absl::InternalError("building a tensor");
  absl::StatusOr<PyNode*> hooks = graph_.NewReduce(graph_.NewGlobal("collections", "OrderedDict"), *no_args);
  if (!hooks.ok()) return hooks.status();
  PyNode* requires_grad = graph_.New(PyKind::kBool);
  std::vector<PyNode*> arguments = {storage, graph_.NewInt(0), *size_tuple, *stride_tuple, requires_grad, *hooks};
  if (untyped) arguments.push_back(graph_.NewGlobal("torch", std::string(DTypeName(tensor.properties.dtype))));
  absl::StatusOr<PyNode*> args = graph_.NewContainer(PyKind::kTuple, std::move(arguments));
  if (!args.ok()) return args.status();
  return graph_.NewReduce(graph_.NewGlobal("torch._utils", untyped ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2"),
                          *args);
}

absl::StatusOr<PyNode*> Converter::ValueNode(const std::string& fqn, std::string archive_bytes) {
  absl::StatusOr<std::unique_ptr<MemoryArchive>> archive = MemoryArchive::Open(std::move(archive_bytes));
  if (!archive.ok()) return archive.status();
  absl::flat_hash_map<std::string, int64_t> by_key;
  StorageResolver resolver = [&](const PyNode& storage_class, const std::string& key,
                                 int64_t numel) -> absl::StatusOr<int64_t> {
    if (auto it = by_key.find(key); it != by_key.end()) return it->second;
    absl::StatusOr<c10::ScalarType> dtype = ScalarTypeOfStorageClass(storage_class.module, storage_class.name);
    if (!dtype.ok()) return dtype.status();
    absl::StatusOr<std::string> bytes = (*archive)->Record("data/" + key);
    if (!bytes.ok()) return bytes.status();
    if (static_cast<int64_t>(bytes->size()) / static_cast<int64_t>(c10::elementSize(*dtype)) != numel) {
      return absl::DataLossError(absl::StrCat("storage ", key, " holds ", bytes->size(), " bytes, not ", numel,
                                              " elements of ", c10::toString(*dtype)));
    }
    const int64_t id = static_cast<int64_t>(sources_.size());
    const int64_t nbytes = static_cast<int64_t>(bytes->size());
    sources_.push_back(Source{"", nullptr, *dtype, *std::move(bytes), nbytes});
    by_key.emplace(key, id);
    return id;
  };
  absl::StatusOr<const PyNode*> root = ParsePickle((*archive)->data_pkl(), graph_, resolver);
  if (!root.ok()) return root.status();
  return const_cast<PyNode*>(*root);
}

absl::StatusOr<PyNode*> Converter::ToPyNode(const Nested<PyNode*>& value) {
  switch (value.kind()) {
    case NestedKind::kNone: return graph_.New(PyKind::kNone);
    case NestedKind::kLeaf: return *value.leaf();
    case NestedKind::kList: {
      std::vector<PyNode*> items;
      for (const Nested<PyNode*>& item : value.items()) {
        absl::StatusOr<PyNode*> node = ToPyNode(item);
        if (!node.ok()) return node.status();
        items.push_back(*node);
      }
      return graph_.NewContainer(PyKind::kList, std::move(items));
    }
    case NestedKind::kMapping: {
      PyNode* dict = graph_.New(PyKind::kDict);
      for (const auto& entry : value.entries()) {
        absl::StatusOr<PyNode*> node = ToPyNode(entry.value);
        if (!node.ok()) return node.status();
        absl::Status status = graph_.AddEntry(dict, graph_.NewStr(entry.key), *node);
        if (!status.ok()) return status;
      }
      return dict;
    }
  }
  return absl::InternalError("unknown nested kind");
}

absl::Status Converter::FlushBatch(ArchiveWriter& writer, std::vector<size_t>& batch) {
  if (batch.empty()) return absl::OkStatus();
  ChunkSink sink;
  LoadPlan plan;
  for (size_t key : batch) {
    const Source& source = sources_[key_order_[key]];
    try {
      sink.tensors[source.fqn] =
          at::empty(source.tensor->size, at::TensorOptions().dtype(source.dtype).device(c10::kCPU));
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(absl::StrCat("'", source.fqn, "': cannot allocate ", source.nbytes, " bytes"));
    }
    const ChunkBox whole{Shape(source.tensor->size.size(), 0), source.tensor->size};
    for (ReadItem& item : CreateReadItemsForChunkList(source.fqn, *source.tensor, {whole})) {
      plan.items.push_back(std::move(item));
    }
  }
  absl::Status status = reader_.ReadData(plan, sink);
  if (!status.ok()) return status;
  for (size_t key : batch) {
    const Source& source = sources_[key_order_[key]];
    at::Tensor& tensor = sink.tensors[source.fqn];
    const void* data = source.nbytes > 0 ? tensor.data_ptr() : "";
    status = writer.WriteRecord(absl::StrCat("data/", key), data, static_cast<size_t>(source.nbytes));
    if (!status.ok()) return WithContext(status, absl::StrCat("'", source.fqn, "'"));
    tensor = at::Tensor();
    done_ += source.nbytes;
    if (progress_) progress_(done_, total_);
  }
  batch.clear();
  return absl::OkStatus();
}

absl::Status Converter::WriteStorages(ArchiveWriter& writer) {
  for (size_t id : key_order_) total_ += sources_[id].nbytes;
  std::vector<size_t> batch;
  int64_t batch_bytes = 0;
  for (size_t key = 0; key < key_order_.size(); ++key) {
    Source& source = sources_[key_order_[key]];
    if (source.tensor == nullptr) {
      absl::Status status = FlushBatch(writer, batch);
      if (status.ok()) status = writer.WriteRecord(absl::StrCat("data/", key), source.bytes.data(), source.bytes.size());
      if (!status.ok()) return status;
      done_ += source.nbytes;
      source.bytes = std::string();
      continue;
    }
    if (!batch.empty() && batch_bytes + source.nbytes > kBatchBytes) {
      absl::Status status = FlushBatch(writer, batch);
      if (!status.ok()) return status;
      batch_bytes = 0;
    }
    batch.push_back(key);
    batch_bytes += source.nbytes;
  }
  return FlushBatch(writer, batch);
}

absl::StatusOr<ConvertSummary> Converter::Run(const std::optional<absl::flat_hash_set<std::string>>& keys,
                                              const std::string& out_path) {
  absl::Status status = reader_.SetUpStorageReader(metadata_, /*is_coordinator=*/true, /*rank=*/0);
  if (!status.ok()) return status;
  const StateDictDescription description = DescribeCheckpoint(metadata_, keys);
  ConvertSummary summary;

  // The non-tensor values first: they are spliced into data.pkl.
  ChunkSink values;
  LoadPlan value_plan;
  for (const auto& [fqn, value] : description.values) {
    if (std::holds_alternative<OpaqueValue>(value)) {
      ReadItem item;
      item.type = LoadItemType::kByteIO;
      item.dest_index = MetadataIndex{fqn, std::nullopt, std::nullopt};
      item.storage_index = item.dest_index;
      value_plan.items.push_back(std::move(item));
    }
  }
  if (!value_plan.items.empty()) {
    status = reader_.ReadData(value_plan, values);
    if (!status.ok()) return status;
  }

  Nested<PyNode*> root = Nested<PyNode*>::MakeMapping();
  for (const auto& [fqn, value] : description.values) {
    absl::StatusOr<PyNode*> node;
    if (std::holds_alternative<OpaqueValue>(value)) {
      node = ValueNode(fqn, std::move(values.bytes[fqn]));
      ++summary.values;
    } else {
      const StorageMetadata* stored = metadata_.state_dict_metadata.Find(fqn);
      node = TensorNode(fqn, std::get<TensorStorageMetadata>(*stored));
      ++summary.tensors;
    }
    if (!node.ok()) return WithContext(node.status(), absl::StrCat("checkpoint key '", fqn, "'"));
    const ObjectPath* path = description.mapping.has_value() ? description.mapping->Find(fqn) : nullptr;
    if (path != nullptr) {
      status = SetElement(root, *path, Nested<PyNode*>::MakeLeaf(*node));
      if (!status.ok()) return WithContext(status, absl::StrCat("checkpoint key '", fqn, "'"));
    } else if (Nested<PyNode*>* entry = root.FindEntry(fqn)) {
      *entry = Nested<PyNode*>::MakeLeaf(*node);
    } else {
      root.AddEntry(fqn, Nested<PyNode*>::MakeLeaf(*node));
    }
  }
  absl::StatusOr<PyNode*> tree = ToPyNode(root);
  if (!tree.ok()) return tree.status();

  absl::flat_hash_map<int64_t, std::string> keys_by_source;
  StorageKeyer keyer = [&](const PyNode& storage) -> absl::StatusOr<std::string> {
    auto [it, inserted] = keys_by_source.try_emplace(storage.source, absl::StrCat(key_order_.size()));
    if (inserted) key_order_.push_back(static_cast<size_t>(storage.source));
    return it->second;
  };
  absl::StatusOr<std::string> data_pkl = EmitPickle(**tree, keyer);
  if (!data_pkl.ok()) return data_pkl.status();
  for (const Source& source : sources_) {
    if (source.tensor != nullptr) summary.tensor_bytes += source.nbytes;
  }

  // A planted symlink at the temporary path is replaced, never written through.
  absl::StatusOr<dcplan::internal::ScopedFd> created = dcplan::internal::CreateExclusively(out_path);
  if (!created.ok()) {
    return absl::Status(created.status().code(), absl::StrCat("cannot create ", out_path, ": ",
                                                             created.status().message()));
  }
  const int fd = created->Release();
  {
    ArchiveWriter writer([fd, &out_path](const char* data, size_t n) -> absl::Status {
      while (n > 0) {
        const ssize_t written = write(fd, data, n);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return absl::InternalError(absl::StrCat("writing ", out_path, ": ", std::strerror(errno)));
        data += written;
        n -= static_cast<size_t>(written);
      }
      return absl::OkStatus();
    });
    status = writer.WriteRecord("data.pkl", data_pkl->data(), data_pkl->size());
    if (status.ok()) status = writer.WriteRecord("byteorder", "little", 6);
    if (status.ok()) status = WriteStorages(writer);
    if (status.ok()) status = writer.Finish();
  }
  if (status.ok() && fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat("fsync ", out_path, ": ", std::strerror(errno)));
  }
  if (close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat("closing ", out_path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) return status;
  return summary;
}

}  // namespace

std::vector<std::string> UnmatchedCheckpointKeys(const Metadata& metadata, const std::vector<std::string>& keys) {
  KeyMatcher matcher(keys);
  for (const auto& entry : metadata.state_dict_metadata) {
    const ObjectPath* path = metadata.planner_data.has_value() ? metadata.planner_data->Find(entry.first) : nullptr;
    matcher.Add(entry.first, path);
  }
  return matcher.Unmatched();
}

absl::StatusOr<ConvertSummary> DcpToTorchSave(const std::string& directory, const Metadata& metadata,
                                              const std::optional<absl::flat_hash_set<std::string>>& keys,
                                              const std::string& out_path, const ConvertProgress& progress) {
  return Converter(directory, metadata, progress).Run(keys, out_path);
}

}  // namespace dcplan::tools::convert
