#include "api/pickle/pickle_allowlist.h"

#include <array>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/dtype.h"
#include "engine/metadata.h"

namespace dcplan::pickle {
namespace {

struct Entry {
  absl::string_view module;
  absl::string_view name;
  GlobalKind kind;
};

constexpr absl::string_view kShardModule = "torch.distributed._shard.sharded_tensor.metadata";

// Exact (module, name) pairs. Dtypes and layouts (module "torch") are matched
// by name below.
constexpr Entry kEntries[] = {
    {kMetadataModule, "Metadata", GlobalKind::kMetadata},
    {kMetadataModule, "TensorStorageMetadata", GlobalKind::kTensorStorageMetadata},
    {kMetadataModule, "BytesStorageMetadata", GlobalKind::kBytesStorageMetadata},
    {kMetadataModule, "ChunkStorageMetadata", GlobalKind::kChunkStorageMetadata},
    {kMetadataModule, "TensorProperties", GlobalKind::kTensorProperties},
    {kShardModule, "TensorProperties", GlobalKind::kTensorProperties},
    {kMetadataModule, "MetadataIndex", GlobalKind::kMetadataIndex},
    {kMetadataModule, "StorageMeta", GlobalKind::kStorageMeta},
    {kMetadataModule, "_MEM_FORMAT_ENCODING", GlobalKind::kMemFormatEncoding},
    {kShardModule, "MEM_FORMAT_ENCODING", GlobalKind::kMemFormatEncoding},
    // Copies of the filesystem writer keep the class name (spec §5.5).
    {kFilesystemModule, "_StorageInfo", GlobalKind::kStorageInfo},
    {"nemo_automodel.components.checkpoint._backports.filesystem", "_StorageInfo", GlobalKind::kStorageInfo},
    {"nemo_automodel.checkpoint._backports.filesystem", "_StorageInfo", GlobalKind::kStorageInfo},
    {"torch", "Size", GlobalKind::kTorchSize},
    {kSerializationModule, "_get_layout", GlobalKind::kGetLayout},
    {"builtins", "getattr", GlobalKind::kGetattr},
    {"collections", "OrderedDict", GlobalKind::kOrderedDict},
    // pathlib classes differ by the writer's Python version (spec §5.3).
    {"pathlib", "PosixPath", GlobalKind::kPosixPath},
    {"pathlib", "PurePosixPath", GlobalKind::kPosixPath},
    {"pathlib", "Path", GlobalKind::kPosixPath},
    {"pathlib", "PurePath", GlobalKind::kPosixPath},
    {"pathlib", "WindowsPath", GlobalKind::kWindowsPath},
    {"pathlib", "PureWindowsPath", GlobalKind::kWindowsPath},
    {"pathlib._local", "PosixPath", GlobalKind::kPosixPath},
    {"pathlib._local", "PurePosixPath", GlobalKind::kPosixPath},
    {"pathlib._local", "Path", GlobalKind::kPosixPath},
    {"pathlib._local", "PurePath", GlobalKind::kPosixPath},
    {"pathlib._local", "WindowsPath", GlobalKind::kWindowsPath},
    {"pathlib._local", "PureWindowsPath", GlobalKind::kWindowsPath},
};

// Python repr names of the torch.layout singletons, by dcplan::Layout.
constexpr std::array<std::pair<absl::string_view, Layout>, 7> kLayouts = {{
    {"strided", Layout::kStrided},
    {"sparse_coo", Layout::kSparseCoo},
    {"sparse_csr", Layout::kSparseCsr},
    {"sparse_csc", Layout::kSparseCsc},
    {"sparse_bsr", Layout::kSparseBsr},
    {"sparse_bsc", Layout::kSparseBsc},
    {"_mkldnn", Layout::kMkldnn},
}};

// The class name a message should use: torch's own names keep their module.
std::string DisplayName(absl::string_view module, absl::string_view name) {
  if (module == "torch" || module == "pathlib" || module == "collections") return absl::StrCat(module, ".", name);
  return std::string(name);
}

std::optional<AllowedGlobal> ResolveTorchAttribute(absl::string_view name) {
  // A dotted name would be an attribute path in Python; none is allowed.
  if (absl::StrContains(name, '.') || name.empty()) return std::nullopt;
  for (const auto& [layout_name, layout] : kLayouts) {
    if (name == layout_name) {
      return AllowedGlobal{GlobalKind::kLayout, static_cast<int64_t>(layout), absl::StrCat("torch.", name)};
    }
  }
  absl::StatusOr<DType> dtype = ParseDType(name);
  if (!dtype.ok()) return std::nullopt;
  return AllowedGlobal{GlobalKind::kDType, static_cast<int64_t>(*dtype), absl::StrCat("torch.", name)};
}

// The dtype of a legacy typed storage class (torch.FloatStorage, ...), the
// storage argument of _rebuild_tensor_v2. The quantized ones are left out:
// dcplan reads no quantized tensor record.
std::optional<DType> LegacyStorageDType(absl::string_view name) {
  constexpr std::pair<absl::string_view, DType> kStorages[] = {
      {"FloatStorage", DType::kFloat32},    {"DoubleStorage", DType::kFloat64},
      {"HalfStorage", DType::kFloat16},     {"BFloat16Storage", DType::kBFloat16},
      {"ByteStorage", DType::kUInt8},       {"CharStorage", DType::kInt8},
      {"ShortStorage", DType::kInt16},      {"IntStorage", DType::kInt32},
      {"LongStorage", DType::kInt64},       {"BoolStorage", DType::kBool},
      {"ComplexFloatStorage", DType::kComplex64}, {"ComplexDoubleStorage", DType::kComplex128},
  };
  for (const auto& [storage_name, dtype] : kStorages) {
    if (name == storage_name) return dtype;
  }
  return std::nullopt;
}

}  // namespace

std::optional<AllowedGlobal> ResolveGlobal(absl::string_view module, absl::string_view name) {
  for (const Entry& entry : kEntries) {
    if (entry.module == module && entry.name == name) {
      return AllowedGlobal{entry.kind, 0, DisplayName(module, name)};
    }
  }
  if (module == "torch") return ResolveTorchAttribute(name);
  return std::nullopt;
}

std::optional<AllowedGlobal> ResolveTensorRecordGlobal(absl::string_view module, absl::string_view name) {
  constexpr Entry kTensorRecordEntries[] = {
      {"torch._utils", "_rebuild_tensor_v2", GlobalKind::kRebuildTensorV2},
      {"torch._utils", "_rebuild_tensor_v3", GlobalKind::kRebuildTensorV3},
      {"torch.storage", "UntypedStorage", GlobalKind::kUntypedStorage},
      {"collections", "OrderedDict", GlobalKind::kOrderedDict},
  };
  for (const Entry& entry : kTensorRecordEntries) {
    if (entry.module == module && entry.name == name) {
      return AllowedGlobal{entry.kind, 0, absl::StrCat(module, ".", name)};
    }
  }
  if (module != "torch") return std::nullopt;
  if (std::optional<DType> dtype = LegacyStorageDType(name)) {
    return AllowedGlobal{GlobalKind::kTypedStorage, static_cast<int64_t>(*dtype), absl::StrCat("torch.", name)};
  }
  std::optional<AllowedGlobal> attribute = ResolveTorchAttribute(name);
  if (!attribute || attribute->kind != GlobalKind::kDType) return std::nullopt;
  return attribute;
}

}  // namespace dcplan::pickle
