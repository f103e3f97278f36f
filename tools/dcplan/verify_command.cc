#include "tools/dcplan/verify_command.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/dtype_conversion.h"
#include "api/item_reader.h"
#include "api/stream_transforms.h"
#include "api/tensor_record.h"
#include "api/zip_check.h"
#include "engine/box.h"
#include "engine/internal/checked_math.h"
#include "engine/metadata.h"
#include "engine/validate.h"
#include "tools/dcplan/checkpoint_report.h"
#include "tools/dcplan/json_reader.h"
#include "tools/dcplan/progress_bar.h"
#include "tools/dcplan/result_json.h"
#include "tools/dcplan/safetensors_commands.h"

namespace dcplan::tools {
namespace {

constexpr absl::string_view kPrefix = "dcplan verify: ";

// One fault. Item problems carry the item's file, location and key;
// checkpoint-wide ones (metadata, checksum file) only `file`.
struct Problem {
  std::string file;
  std::optional<int64_t> offset;
  std::optional<int64_t> length;
  std::optional<MetadataIndex> item;
  std::string message;
};

// Reads a data file's items in file order through one window of up to
// kWindowBytes, so that a checkpoint of a million small items does not cost a
// million system calls. Larger items are read on their own.
class ItemWindow {
 public:
  explicit ItemWindow(const ItemFile& file) : file_(file) {}

  // The `length` bytes at `offset`, valid until the next call. Errors as
  // ItemFile::ReadAt's.
  absl::Status Read(int64_t offset, int64_t length, absl::string_view* out) {
    const bool inside_file = offset >= 0 && length >= 0 && offset <= file_.size() && length <= file_.size() - offset;
    if (!inside_file || length > kWindowBytes / 2) {
      absl::Status read = file_.ReadAt(offset, length, &single_);
      *out = single_;
      return read;
    }
    const auto window_size = static_cast<int64_t>(window_.size());
    if (offset < window_offset_ || offset - window_offset_ > window_size - length) {
      absl::Status read = file_.ReadAt(offset, std::min(kWindowBytes, file_.size() - offset), &window_);
      if (!read.ok()) {
        window_.clear();  // its bytes are not the file's
        return read;
      }
      window_offset_ = offset;
    }
    *out = absl::string_view(window_).substr(static_cast<size_t>(offset - window_offset_), static_cast<size_t>(length));
    return absl::OkStatus();
  }

 private:
  static constexpr int64_t kWindowBytes = int64_t{4} << 20;
  const ItemFile& file_;
  std::string window_;
  int64_t window_offset_ = 0;
  std::string single_;
};

std::string ProblemLine(const Problem& problem) {
  std::string line = Printable(problem.file);
  if (problem.offset) absl::StrAppend(&line, " @", *problem.offset);
  if (problem.length) absl::StrAppend(&line, " +", *problem.length);
  if (problem.item) absl::StrAppend(&line, line.empty() ? "" : " ", ItemName(*problem.item));
  absl::StrAppend(&line, ": ", Printable(problem.message));
  return line;
}

Json ProblemJson(const Problem& problem) {
  Json json{{"file", problem.file}};
  json["offset"] = problem.offset ? Json(*problem.offset) : Json(nullptr);
  json["length"] = problem.length ? Json(*problem.length) : Json(nullptr);
  json["fqn"] = problem.item ? Json(problem.item->fqn) : Json(nullptr);
  json["chunk"] = problem.item && problem.item->offset ? Json(*problem.item->offset) : Json(nullptr);
  json["message"] = problem.message;
  return json;
}

std::string ChecksumSummary(ChecksumState state) {
  return state == ChecksumState::kThisSave ? "checked" : ChecksumStateName(state);
}

// A stored item and where it is (an entry of the metadata's storage_data,
// not a copy: a checkpoint may have millions).
class StoredItem {
 public:
  StoredItem(const MetadataIndex& index, const StorageInfo& info) : index_(&index), info_(&info) {}
  const MetadataIndex& index() const { return *index_; }
  const StorageInfo& info() const { return *info_; }

 private:
  const MetadataIndex* index_;
  const StorageInfo* info_;
};

class Verifier {
 public:
  Verifier(const CheckpointOverview& overview, bool progress)
      : overview_(overview), chunks_(overview.metadata), progress_(progress) {}

  void Run() {
    const Metadata& metadata = overview_.metadata;
    if (!metadata.storage_data) {
      MetadataProblem("storage_data is None: the checkpoint records no item locations");
    }
    for (const PlanProblem& problem : ValidateMetadata(metadata.state_dict_metadata)) {
      MetadataProblem(problem.message);
    }
    CheckLocationsOfKeys();
    CheckChecksumFile();
    if (metadata.storage_data) CheckItems();
  }

  const std::vector<Problem>& problems() const { return problems_; }
  int64_t items() const { return items_; }
  int64_t bytes() const { return bytes_; }

 private:
  void MetadataProblem(std::string message) { problems_.push_back(Problem{".metadata", {}, {}, {}, std::move(message)}); }

  void ItemProblem(const StoredItem& item, std::string message) {
    problems_.push_back(Problem{item.info().relative_path, item.info().offset, item.info().length, item.index(),
                                std::move(message)});
  }

  const StorageInfo* Location(const MetadataIndex& index) const {
    return overview_.metadata.storage_data ? overview_.metadata.storage_data->Find(index) : nullptr;
  }

  // Every chunk and bytes value has a location (when there are locations at
  // all); location-less keys are named in metadata order.
  void CheckLocationsOfKeys() {
    if (!overview_.metadata.storage_data) return;
    LocationCursor locations(overview_.metadata);
    for (const auto& [fqn, stored] : overview_.metadata.state_dict_metadata) {
      if (const auto* tensor = std::get_if<TensorStorageMetadata>(&stored)) {
        for (const ChunkBox& chunk : tensor->chunks) {
          if (locations.Find(fqn, chunk.offsets) == nullptr) {
            const MetadataIndex index{fqn, chunk.offsets, std::nullopt};
            MetadataProblem(absl::StrCat(ItemName(index), " ", ToString(chunk), " has no storage_data location"));
          }
        }
      } else if (Location(MetadataIndex{fqn, std::nullopt, std::nullopt}) == nullptr) {
        MetadataProblem(absl::StrCat("bytes value ", ItemName(MetadataIndex{fqn, std::nullopt, std::nullopt}),
                                     " has no storage_data location"));
      }
    }
  }

  void CheckChecksumFile() {
    if (overview_.checksum_state == ChecksumState::kDamaged) {
      problems_.push_back(Problem{".dcplan_checksums", {}, {}, {}, overview_.checksum_error});
    }
  }

  // The storage_data entry names a chunk or bytes value of the metadata.
  // `tensor` and `chunk` are what chunks_ finds for it (looked up once per
  // item: a checkpoint may have millions).
  void CheckKnown(const StoredItem& item, const TensorStorageMetadata* tensor, const ChunkBox* chunk) {
    if (tensor != nullptr) {
      if (chunk == nullptr) {
        ItemProblem(item, item.index().offset ? "the metadata records no chunk of this tensor at these offsets"
                                              : "storage_data stores a tensor as a bytes value");
      }
      return;
    }
    const StorageMetadata* stored = overview_.metadata.state_dict_metadata.Find(item.index().fqn);
    if (stored == nullptr) {
      ItemProblem(item, "storage_data names a key the metadata does not have");
    } else if (std::holds_alternative<BytesStorageMetadata>(*stored) && item.index().offset) {
      ItemProblem(item, "storage_data stores a chunk of a bytes value");
    }
  }

  // Items grouped by file (first-seen order), sorted by offset.
  std::vector<std::pair<std::string, std::vector<StoredItem>>> GroupByFile() const {
    std::vector<std::pair<std::string, std::vector<StoredItem>>> files;
    absl::flat_hash_map<std::string, size_t> position;
    for (const auto& [index, info] : *overview_.metadata.storage_data) {
      const auto [it, inserted] = position.try_emplace(info.relative_path, files.size());
      if (inserted) files.emplace_back(info.relative_path, std::vector<StoredItem>{});
      files[it->second].second.push_back(StoredItem(index, info));
    }
    for (auto& file : files) {
      std::stable_sort(file.second.begin(), file.second.end(),
                       [](const StoredItem& a, const StoredItem& b) { return a.info().offset < b.info().offset; });
    }
    return files;
  }

  void CheckItems() {
    const auto files = GroupByFile();
    int64_t total = 0;
    for (const auto& file : files) {
      for (const StoredItem& item : file.second) {
        total = internal::CheckedAdd(total, std::max<int64_t>(item.info().length, 0)).value_or(INT64_MAX);
      }
    }
    ProgressBar bar("verify", total, progress_);
    for (const auto& [name, items] : files) CheckFile(name, items, bar);
    bar.Finish();
    if (overview_.checksum_state == ChecksumState::kThisSave && overview_.checksums->size() > checksums_matched_) {
      problems_.push_back(Problem{".dcplan_checksums", {}, {}, {},
                                  absl::StrCat("lists ", overview_.checksums->size() - checksums_matched_,
                                               " items that .metadata does not have")});
    }
  }

  void CheckFile(const std::string& name, const std::vector<StoredItem>& items, ProgressBar& bar) {
    absl::StatusOr<ItemFile> file = ItemFile::Open(overview_.directory, name);
    int64_t previous_end = 0;
    const StoredItem* previous = nullptr;
    std::optional<ItemWindow> window;
    if (file.ok()) window.emplace(*file);
    std::string decoded_bytes;
    for (const StoredItem& item : items) {
      ++items_;
      const auto [tensor, chunk] = chunks_.Find(item.index());
      CheckKnown(item, tensor, chunk);
      if (!file.ok()) {
        ItemProblem(item, absl::StrCat("cannot open the data file: ", file.status().message()));
        continue;
      }
      if (previous != nullptr && item.info().offset < previous_end) {
        ItemProblem(item, absl::StrCat("overlaps ", ItemName(previous->index()), " (", previous->info().relative_path, " @",
                                       previous->info().offset, " +", previous->info().length, ")"));
      }
      const std::optional<int64_t> end = internal::CheckedAdd(item.info().offset, item.info().length);
      if (end && (previous == nullptr || *end > previous_end)) {
        previous_end = *end;
        previous = &item;
      }
      const std::optional<ItemChecksum> checksum = ExpectedChecksum(item);
      absl::string_view bytes;
      absl::Status read = window->Read(item.info().offset, item.info().length, &bytes);
      if (!read.ok()) {
        ItemProblem(item, absl::StrCat(read.message(), absl::IsOutOfRange(read) ? ": the file is truncated" : ""));
        continue;
      }
      bytes_ += item.info().length;
      if (checksum) CheckChecksum(item, *checksum, bytes);
      if (item.info().transform_descriptors && !item.info().transform_descriptors->empty()) {
        absl::StatusOr<std::string> decoded = UndoStreamTransforms(
            *item.info().transform_descriptors, bytes, MaxDecodedItemBytes(overview_.metadata, item.index()));
        if (!decoded.ok()) {
          ItemProblem(item, absl::StrCat("stream transforms [", absl::StrJoin(*item.info().transform_descriptors, ", "),
                                         "]: ", decoded.status().message()));
          continue;
        }
        decoded_bytes = *std::move(decoded);
        bytes = decoded_bytes;
      }
      CheckContent(item, tensor, chunk, bytes);
      bar.Advance(item.info().length);
    }
  }

  void CheckContent(const StoredItem& item, const TensorStorageMetadata* tensor, const ChunkBox* chunk,
                    absl::string_view bytes) {
    absl::Status zip = CheckZipArchive(bytes);
    if (!zip.ok()) ItemProblem(item, std::string(zip.message()));
    absl::Status decoded = chunk != nullptr ? CheckTensor(*tensor, *chunk, bytes) : CheckTorchSaveArchive(bytes);
    if (decoded.ok() && chunk == nullptr) decoded = CheckWeightsOnlyArchive(bytes);
    if (!decoded.ok()) ItemProblem(item, std::string(decoded.message()));
  }

  // The checksum of `item` when this save's checksum file is there; a
  // problem if that file does not list the item.
  std::optional<ItemChecksum> ExpectedChecksum(const StoredItem& item) {
    if (overview_.checksum_state != ChecksumState::kThisSave) return std::nullopt;
    const std::optional<ItemChecksum> expected = overview_.checksums->Find(item.info().relative_path, item.info().offset);
    if (!expected || expected->length != item.info().length) {
      ItemProblem(item, ".dcplan_checksums does not list this item: it does not match .metadata");
      return std::nullopt;
    }
    ++checksums_matched_;
    return expected;
  }

  void CheckChecksum(const StoredItem& item, const ItemChecksum& expected, absl::string_view bytes) {
    const uint64_t actual = ItemChecksumOf(expected, bytes);
    if (actual != expected.value) {
      ItemProblem(item, absl::StrCat("checksum mismatch (", ItemChecksumText(expected, actual),
                                     ", .dcplan_checksums records ", ItemChecksumText(expected, expected.value),
                                     "): the file is corrupt"));
    }
  }

  // The stored tensor decodes with the metadata's dtype and the chunk's
  // sizes. Decoded as load decodes it (api/filesystem_read.cc): the record's
  // layout, or LibTorch's whole-record reader for the archives the layout
  // path leaves to it; one verdict, without LibTorch's loader per item.
  static absl::Status CheckTensor(const TensorStorageMetadata& tensor, const ChunkBox& chunk, absl::string_view bytes) {
    absl::StatusOr<c10::ScalarType> expected_type = ScalarTypeFromDType(tensor.properties.dtype);
    if (!expected_type.ok()) return expected_type.status();
    const BufferRecordSource source(bytes);
    c10::ScalarType stored_type;
    Shape sizes;
    if (absl::StatusOr<TensorRecordLayout> layout = ReadTensorRecordLayout(source); layout.ok()) {
      stored_type = layout->dtype;
      sizes = std::move(layout->sizes);
    } else if (absl::IsUnimplemented(layout.status())) {
      absl::StatusOr<at::Tensor> stored = ReadTensorRecord(source);
      if (!stored.ok()) return stored.status();
      stored_type = stored->scalar_type();
      sizes = stored->sizes().vec();
    } else {
      return layout.status();
    }
    if (stored_type != *expected_type) {
      return absl::DataLossError(absl::StrCat("the stored tensor has dtype ", c10::toString(stored_type),
                                              ", the metadata says ", c10::toString(*expected_type)));
    }
    if (sizes != chunk.sizes) {
      return absl::DataLossError(absl::StrCat("the stored tensor has size ", ShapeToString(sizes),
                                              ", the metadata records the chunk as ", ToString(chunk)));
    }
    return absl::OkStatus();
  }

  const CheckpointOverview& overview_;
  const ChunkLookup chunks_;
  bool progress_;
  std::vector<Problem> problems_;
  int64_t items_ = 0;
  int64_t bytes_ = 0;
  size_t checksums_matched_ = 0;
};

std::string Summary(const Verifier& verifier, ChecksumState checksums) {
  if (verifier.problems().empty()) {
    return absl::StrCat("verify: OK (", verifier.items(), " items, ", verifier.bytes(),
                        " bytes, checksums: ", ChecksumSummary(checksums), ")\n");
  }
  const size_t count = verifier.problems().size();
  return absl::StrCat("verify: ", count, count == 1 ? " problem" : " problems", " in ", verifier.items(), " items, ",
                      verifier.bytes(), " bytes (checksums: ", ChecksumSummary(checksums), ")\n");
}

// A checkpoint that cannot even be opened: one problem, no items.
int Unreadable(const std::string& directory, const absl::Status& status, bool json, std::string* stdout_text) {
  const Problem problem{".metadata", {}, {}, {}, std::string(status.message())};
  if (json) {
    stdout_text->append(FormatJson(Json{{"ok", false},
                                        {"directory", directory},
                                        {"items", 0},
                                        {"bytes", 0},
                                        {"checksums", nullptr},
                                        {"problems", Json::array({ProblemJson(problem)})}}));
  } else {
    absl::StrAppend(stdout_text, ProblemLine(problem), "\nverify: 1 problem in 0 items, 0 bytes\n");
  }
  return kCheckpointFault;
}

}  // namespace

int VerifyMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<CheckpointArgs> parsed = ParseCheckpointArgs(args, /*allow_quiet=*/true);
  if (!parsed.ok()) {
    absl::StrAppend(stderr_text, kPrefix, parsed.status().message(), "\nusage: dcplan verify DIR [--quiet] [--json]\n");
    return kCheckpointUsage;
  }
  if (parsed->help) {
    stdout_text->append(VerifyHelp());
    return kCheckpointOk;
  }
  if (IsSafetensorsCheckpoint(parsed->directory)) {
    return VerifySafetensors(parsed->directory, parsed->json, stdout_text, stderr_text);
  }
  absl::StatusOr<CheckpointOverview> overview = ReadCheckpointOverview(parsed->directory);
  if (!overview.ok()) return Unreadable(parsed->directory, overview.status(), parsed->json, stdout_text);
  Verifier verifier(*overview, /*progress=*/!parsed->quiet);
  verifier.Run();
  if (parsed->json) {
    Json problems = Json::array();
    for (const Problem& problem : verifier.problems()) problems.push_back(ProblemJson(problem));
    stdout_text->append(FormatJson(Json{{"ok", verifier.problems().empty()},
                                        {"directory", overview->directory},
                                        {"items", verifier.items()},
                                        {"bytes", verifier.bytes()},
                                        {"checksums", ChecksumSummary(overview->checksum_state)},
                                        {"problems", std::move(problems)}}));
  } else {
    for (const Problem& problem : verifier.problems()) absl::StrAppend(stdout_text, ProblemLine(problem), "\n");
    stdout_text->append(Summary(verifier, overview->checksum_state));
  }
  return verifier.problems().empty() ? kCheckpointOk : kCheckpointFault;
}

std::string VerifyHelp() {
  return R"(usage: dcplan verify DIR [--quiet] [--json]

Reads every item of the checkpoint in DIR (PyTorch DCP format, written by
PyTorch or dcplan) and checks:
  - .metadata parses; the chunks of every tensor lie inside it, do not share
    an element and cover it exactly;
  - every chunk and bytes value has a location in storage_data and every
    location names one; every item lies inside its data file (a truncated or
    missing file is reported) and items of one file do not overlap;
  - .dcplan_checksums, when present and written by this save: every item's
    CRC-32 (XXH3-64 in files of dcplan before version 2 of the checksum
    file; a checksum file of another save is ignored, as loads do);
  - every item is a well-formed torch.save ZIP archive whose records' CRC-32s
    match, so a flipped byte is found even without a checksum file;
  - every tensor item decodes to the dtype and chunk size the metadata
    records; every bytes item is a readable torch.save archive whose pickle
    names only globals that torch.load(weights_only=True) accepts (anything
    else could run code when PyTorch loads it);
  - at most 64 overlapping chunk pairs are listed per tensor, then their count.
Keys, paths and messages are printed with control characters escaped (\x1b).

Every problem is reported, one line each, naming the data file, the item's
offset (@) and length (+), its key and chunk, e.g.
  __1_0.distcp @5321 +1213 'model.w' chunk [4, 0]: zip record 'archive/data/0': CRC-32 is ...
then a summary line:
  verify: OK (N items, B bytes, checksums: checked | absent | ...)
  verify: K problems in N items, B bytes (checksums: ...)

  --quiet  no progress bar (it is drawn on standard error, and only when that
           is a terminal)
  --json   one JSON document instead: {"ok", "directory", "items", "bytes",
           "checksums", "problems": [{"file", "offset", "length", "fqn",
           "chunk", "message"}]}

Exit status:
  0  every check passed
  1  a checkpoint fault: any problem above, including no checkpoint in DIR
     (.metadata missing) or a .metadata that does not parse
  2  usage error: unknown flag, no DIR or more than one, DIR does not exist or
     is not a directory
)";
}

}  // namespace dcplan::tools
