#include "tools/dcplan/inspect_command.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/box.h"
#include "engine/dtype.h"
#include "engine/internal/checked_math.h"
#include "engine/metadata.h"
#include "tools/dcplan/checkpoint_report.h"
#include "tools/dcplan/json_reader.h"
#include "tools/dcplan/result_json.h"
#include "tools/dcplan/safetensors_commands.h"

namespace dcplan::tools {
namespace {

constexpr absl::string_view kPrefix = "dcplan inspect: ";

// Sums that saturate: absurd metadata must not overflow the totals.
void AddTo(int64_t* total, int64_t amount) {
  *total = internal::CheckedAdd(*total, amount).value_or(INT64_MAX);
}

// numel × element size, or nullopt when it overflows or a dim is negative.
std::optional<int64_t> LogicalBytes(const TensorStorageMetadata& tensor) {
  absl::StatusOr<int64_t> volume = ShapeVolume(tensor.size);
  if (!volume.ok()) return std::nullopt;
  return internal::CheckedMul(*volume, ElementSize(tensor.properties.dtype));
}

const StorageInfo* Location(const Metadata& metadata, const MetadataIndex& index) {
  return metadata.storage_data ? metadata.storage_data->Find(index) : nullptr;
}

std::string LocationText(const StorageInfo* info) {
  if (info == nullptr) return "(no location in storage_data)";
  return absl::StrCat(Printable(info->relative_path), " @", info->offset, " +", info->length);
}

Json LocationJson(const StorageInfo* info, Json object) {
  object["file"] = info ? Json(info->relative_path) : Json(nullptr);
  object["offset"] = info ? Json(info->offset) : Json(nullptr);
  object["length"] = info ? Json(info->length) : Json(nullptr);
  return object;
}

Json OptionalString(const std::optional<std::string>& value) { return value ? Json(*value) : Json(nullptr); }

struct Totals {
  int64_t keys = 0;
  int64_t tensors = 0;
  int64_t bytes_items = 0;
  int64_t chunks = 0;
  int64_t stored_bytes = 0;
  int64_t logical_bytes = 0;
  int64_t data_file_bytes = 0;
};

// Entries of storage_data that name no chunk or bytes value of the metadata.
std::vector<std::pair<MetadataIndex, StorageInfo>> UnknownStorageEntries(const Metadata& metadata) {
  std::vector<std::pair<MetadataIndex, StorageInfo>> unknown;
  if (!metadata.storage_data) return unknown;
  const ChunkLookup lookup(metadata);
  for (const auto& [index, info] : *metadata.storage_data) {
    const auto [tensor, chunk] = lookup.Find(index);
    const bool is_bytes_value = tensor == nullptr && metadata.state_dict_metadata.Find(index.fqn) != nullptr;
    const bool known = chunk != nullptr || (is_bytes_value && !index.offset.has_value());
    if (!known) unknown.emplace_back(index, info);
  }
  return unknown;
}

// Builds the text report and the JSON document together, so both always
// state the same facts; the per-chunk part of the one not asked for is
// skipped (a tensor may have a million chunks).
class Report {
 public:
  Report(const CheckpointOverview& overview, bool json)
      : overview_(overview), json_wanted_(json), locations_(overview.metadata) {}

  void Build() {
    Header();
    const Metadata& metadata = overview_.metadata;
    Json keys = Json::array();
    absl::StrAppend(&text_, "\n");
    for (const auto& [fqn, stored] : metadata.state_dict_metadata) {
      ++totals_.keys;
      if (const auto* tensor = std::get_if<TensorStorageMetadata>(&stored)) {
        keys.push_back(TensorKey(fqn, *tensor));
      } else {
        keys.push_back(BytesKey(fqn));
      }
    }
    json_["keys"] = std::move(keys);
    UnknownEntries();
    Footer();
  }

  const std::string& text() const { return text_; }
  const Json& json() const { return json_; }

 private:
  void Header() {
    const Metadata& metadata = overview_.metadata;
    absl::StrAppend(&text_, "checkpoint: ", overview_.directory, "\n");
    absl::StrAppend(&text_, "version: ", Printable(metadata.version.value_or("None")), "\n");
    json_["directory"] = overview_.directory;
    json_["version"] = OptionalString(metadata.version);
    if (metadata.storage_meta) {
      const StorageMeta& meta = *metadata.storage_meta;
      absl::StrAppend(&text_, "storage_meta: checkpoint_id=", Printable(meta.checkpoint_id.value_or("None")),
                      " save_id=", Printable(meta.save_id.value_or("None")), "\n");
      json_["storage_meta"] = Json{{"checkpoint_id", OptionalString(meta.checkpoint_id)},
                                   {"save_id", OptionalString(meta.save_id)},
                                   {"load_id", OptionalString(meta.load_id)},
                                   {"modules", meta.modules}};
    } else {
      absl::StrAppend(&text_, "storage_meta: None\n");
      json_["storage_meta"] = nullptr;
    }
    const std::string checksums = ChecksumStateName(overview_.checksum_state);
    absl::StrAppend(&text_, ".dcplan_checksums: ", checksums,
                    overview_.checksum_error.empty() ? "" : absl::StrCat(" (", overview_.checksum_error, ")"), "\n");
    json_["checksums"] = checksums;
    DataFiles();
  }

  void DataFiles() {
    Json files = Json::array();
    std::string lines;
    int64_t referenced = 0;
    for (const DataFileEntry& file : overview_.data_files) {
      referenced += file.referenced ? 1 : 0;
      Json entry{{"name", file.name}, {"size", file.size ? Json(*file.size) : Json(nullptr)},
                 {"referenced", file.referenced}};
      absl::StrAppend(&lines, "  ", Printable(file.name), "  ");
      if (file.size) {
        AddTo(&totals_.data_file_bytes, *file.size);
        absl::StrAppend(&lines, *file.size, " bytes");
      } else {
        absl::StrAppend(&lines, "unavailable (", file.error, ")");
        entry["error"] = file.error;
      }
      if (!file.referenced) absl::StrAppend(&lines, " (not named by .metadata)");
      absl::StrAppend(&lines, "\n");
      files.push_back(std::move(entry));
    }
    absl::StrAppend(&text_, "data files: ", referenced, " (", totals_.data_file_bytes, " bytes)\n", lines);
    json_["data_files"] = std::move(files);
  }

  Json TensorKey(const std::string& fqn, const TensorStorageMetadata& tensor) {
    ++totals_.tensors;
    int64_t stored_bytes = 0;
    std::string chunk_lines;
    Json chunks = Json::array();
    for (const ChunkBox& chunk : tensor.chunks) {
      ++totals_.chunks;
      const StorageInfo* info = locations_.Find(fqn, chunk.offsets);
      if (info != nullptr) AddTo(&stored_bytes, info->length);
      if (json_wanted_) {
        chunks.push_back(LocationJson(info, Json{{"offsets", chunk.offsets}, {"sizes", chunk.sizes}}));
      } else {
        absl::StrAppend(&chunk_lines, "  offsets ", ShapeToString(chunk.offsets), " sizes ",
                        ShapeToString(chunk.sizes), " -> ", LocationText(info), "\n");
      }
    }
    const std::optional<int64_t> logical = LogicalBytes(tensor);
    AddTo(&totals_.stored_bytes, stored_bytes);
    AddTo(&totals_.logical_bytes, logical.value_or(0));
    const absl::string_view dtype = DTypeName(tensor.properties.dtype);
    absl::StrAppend(&text_, Printable(fqn), "  ", dtype, " ", ShapeToString(tensor.size), "  chunks=", tensor.chunks.size(),
                    "  bytes=", stored_bytes, " (logical ", logical ? absl::StrCat(*logical) : "overflow", ")\n",
                    chunk_lines);
    return Json{{"fqn", fqn},
                {"type", "tensor"},
                {"dtype", std::string(dtype)},
                {"size", tensor.size},
                {"stored_bytes", stored_bytes},
                {"logical_bytes", logical ? Json(*logical) : Json(nullptr)},
                {"chunks", std::move(chunks)}};
  }

  Json BytesKey(const std::string& fqn) {
    ++totals_.bytes_items;
    const StorageInfo* info = Location(overview_.metadata, MetadataIndex{fqn, std::nullopt, std::nullopt});
    if (info != nullptr) AddTo(&totals_.stored_bytes, info->length);
    absl::StrAppend(&text_, Printable(fqn), "  bytes -> ", LocationText(info), "\n");
    return LocationJson(info, Json{{"fqn", fqn}, {"type", "bytes"}});
  }

  void UnknownEntries() {
    Json unknown = Json::array();
    const auto entries = UnknownStorageEntries(overview_.metadata);
    if (!entries.empty()) absl::StrAppend(&text_, "\nstorage_data entries that name no key of the metadata:\n");
    for (const auto& entry : entries) {
      absl::StrAppend(&text_, "  ", ItemName(entry.first), " -> ", LocationText(&entry.second), "\n");
      Json item{{"fqn", entry.first.fqn},
                {"offsets", entry.first.offset ? Json(*entry.first.offset) : Json(nullptr)}};
      unknown.push_back(LocationJson(&entry.second, std::move(item)));
    }
    json_["unknown_storage_entries"] = std::move(unknown);
    if (!overview_.metadata.storage_data) absl::StrAppend(&text_, "\nstorage_data: None (no item locations)\n");
  }

  void Footer() {
    absl::StrAppend(&text_, "\ntotals: ", totals_.keys, " keys (", totals_.tensors, " tensors, ", totals_.bytes_items,
                    " bytes items), ", totals_.chunks, " chunks, ", totals_.stored_bytes, " stored bytes, ",
                    totals_.logical_bytes, " logical tensor bytes\n");
    json_["totals"] = Json{{"keys", totals_.keys},
                           {"tensors", totals_.tensors},
                           {"bytes_items", totals_.bytes_items},
                           {"chunks", totals_.chunks},
                           {"stored_bytes", totals_.stored_bytes},
                           {"logical_tensor_bytes", totals_.logical_bytes},
                           {"data_file_bytes", totals_.data_file_bytes}};
  }

  const CheckpointOverview& overview_;
  const bool json_wanted_;
  LocationCursor locations_;  // chunk locations, looked up in chunk order
  std::string text_;
  Json json_ = Json::object();
  Totals totals_;
};

}  // namespace

int InspectMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<CheckpointArgs> parsed = ParseCheckpointArgs(args, /*allow_quiet=*/false);
  if (!parsed.ok()) {
    absl::StrAppend(stderr_text, kPrefix, parsed.status().message(), "\nusage: dcplan inspect DIR [--json]\n");
    return kCheckpointUsage;
  }
  if (parsed->help) {
    stdout_text->append(InspectHelp());
    return kCheckpointOk;
  }
  if (IsSafetensorsCheckpoint(parsed->directory)) {
    return InspectSafetensors(parsed->directory, parsed->json, stdout_text, stderr_text);
  }
  absl::StatusOr<CheckpointOverview> overview = ReadCheckpointOverview(parsed->directory);
  if (!overview.ok()) {
    absl::StrAppend(stderr_text, kPrefix, overview.status().message(), "\n");
    return kCheckpointFault;
  }
  Report report(*overview, parsed->json);
  report.Build();
  stdout_text->append(parsed->json ? FormatJson(report.json()) : Printable(report.text(), /*keep_newlines=*/true));
  return kCheckpointOk;
}

std::string InspectHelp() {
  return R"(usage: dcplan inspect DIR [--json]

Prints what the checkpoint in DIR holds (PyTorch DCP format, written by
PyTorch or dcplan), from its .metadata and the sizes of its data files; data
files are not read (use `dcplan verify DIR` to check them).

  header   directory, version (1.0.0 from dcplan and recent PyTorch, None
           from older PyTorch), storage_meta checkpoint_id/save_id,
           .dcplan_checksums (present | absent | from another save (ignored) |
           damaged), data files and their sizes
  keys     in metadata order:
             FQN  DTYPE [SHAPE]  chunks=K  bytes=B (logical L)
               offsets [..] sizes [..] -> FILE @OFFSET +LENGTH     (one per chunk)
             FQN  bytes -> FILE @OFFSET +LENGTH                    (non-tensor value)
           B = stored bytes (torch.save archives), L = elements x element size
  totals   keys, tensors, bytes items, chunks, stored bytes, logical tensor bytes

  --json   one JSON document instead: {"directory", "version", "storage_meta",
           "checksums", "data_files": [{"name", "size", "referenced"}],
           "keys": [{"fqn", "type": "tensor", "dtype", "size", "stored_bytes",
           "logical_bytes", "chunks": [{"offsets", "sizes", "file", "offset",
           "length"}]} | {"fqn", "type": "bytes", "file", "offset", "length"}],
           "unknown_storage_entries", "totals"}

Exit status:
  0  the metadata was read and printed
  1  no checkpoint in DIR (.metadata missing) or .metadata unreadable
  2  usage error: unknown flag, no DIR or more than one, DIR does not exist or
     is not a directory
)";
}

}  // namespace dcplan::tools
