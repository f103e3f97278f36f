#include "tools/dcplan/checkpoint_report.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/filesystem.h"
#include "api/internal/confined_path.h"
#include "api/internal/file_io.h"
#include "api/pickle/metadata_pickle.h"
#include "tools/dcplan/user_path.h"

namespace dcplan::tools {
namespace {

namespace fs = std::filesystem;

// `.metadata`, read as FileSystemReader reads it (confined, size-limited),
// with messages that name the file as the tools print it.
absl::StatusOr<Metadata> ReadMetadataFile(const std::string& directory) {
  absl::StatusOr<std::string> bytes =
      dcplan::internal::ReadConfinedFile(directory, kMetadataFileName, dcplan::internal::kMaxMetadataFileBytes);
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("no checkpoint in ", directory, " (.metadata missing)"));
  }
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(), absl::StrCat("'", kMetadataFileName, "': ", bytes.status().message()));
  }
  return ParseMetadataPickle(*bytes, kMetadataFileName);
}

// The size of a data file, opened as a reader would open it (confined to
// the checkpoint, regular files only), so that inspect never stats a path
// outside the checkpoint.
DataFileEntry StatDataFile(const std::string& directory, const std::string& name, bool referenced) {
  DataFileEntry entry;
  entry.name = name;
  entry.referenced = referenced;
  absl::StatusOr<dcplan::internal::ScopedFd> fd = dcplan::internal::OpenConfined(directory, name);
  absl::StatusOr<int64_t> size = fd.ok() ? dcplan::internal::FileSize(*fd) : fd.status();
  if (size.ok()) {
    entry.size = *size;
  } else {
    entry.error = std::string(size.status().message());
  }
  return entry;
}

std::vector<DataFileEntry> ListDataFiles(const std::string& directory, const Metadata& metadata) {
  std::vector<DataFileEntry> files;
  absl::flat_hash_set<std::string> named;
  if (metadata.storage_data) {
    for (const auto& [index, info] : *metadata.storage_data) {
      if (named.insert(info.relative_path).second) files.push_back(StatDataFile(directory, info.relative_path, true));
    }
  }
  std::vector<std::string> stray;
  std::error_code error;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (absl::EndsWith(name, ".distcp") && !named.contains(name)) stray.push_back(name);
  }
  std::sort(stray.begin(), stray.end());
  for (const std::string& name : stray) files.push_back(StatDataFile(directory, name, false));
  return files;
}

void ReadChecksumState(CheckpointOverview* overview) {
  absl::StatusOr<std::optional<ItemChecksums>> checksums = ReadItemChecksums(overview->directory);
  if (!checksums.ok()) {
    overview->checksum_state = ChecksumState::kDamaged;
    overview->checksum_error = std::string(checksums.status().message());
    return;
  }
  if (!checksums->has_value()) {
    overview->checksum_state = ChecksumState::kAbsent;
    return;
  }
  const std::optional<StorageMeta>& meta = overview->metadata.storage_meta;
  const bool same_save = meta && meta->save_id && *meta->save_id == (*checksums)->save_id();
  overview->checksum_state = same_save ? ChecksumState::kThisSave : ChecksumState::kOtherSave;
  overview->checksums = std::move(*checksums);
}

bool IsFlag(const std::string& arg) { return arg.size() > 1 && arg[0] == '-'; }

}  // namespace

absl::StatusOr<CheckpointArgs> ParseCheckpointArgs(const std::vector<std::string>& args, bool allow_quiet) {
  CheckpointArgs parsed;
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    parsed.help = true;
    return parsed;
  }
  std::vector<std::string> directories;
  for (const std::string& arg : args) {
    if (arg == "--json") {
      parsed.json = true;
    } else if (arg == "--quiet" && allow_quiet) {
      parsed.quiet = true;
    } else if (IsFlag(arg)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument \"", arg, "\""));
    } else {
      directories.push_back(arg);
    }
  }
  if (directories.empty()) return absl::InvalidArgumentError("missing checkpoint directory DIR");
  if (directories.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("one checkpoint directory expected, got ", directories.size()));
  }
  parsed.directory = ResolveUserPath(directories[0]);
  std::error_code error;
  const fs::file_status status = fs::status(parsed.directory, error);
  if (!fs::exists(status)) {
    return absl::InvalidArgumentError(absl::StrCat(parsed.directory, " does not exist"));
  }
  if (!fs::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(parsed.directory, " is not a directory"));
  }
  return parsed;
}

absl::StatusOr<CheckpointOverview> ReadCheckpointOverview(const std::string& directory) {
  absl::StatusOr<Metadata> metadata = ReadMetadataFile(directory);
  if (!metadata.ok()) return metadata.status();
  CheckpointOverview overview;
  overview.directory = directory;
  overview.metadata = *std::move(metadata);
  overview.data_files = ListDataFiles(directory, overview.metadata);
  ReadChecksumState(&overview);
  return overview;
}

ChunkLookup::ChunkLookup(const Metadata& metadata) : metadata_(metadata) {
  for (const auto& entry : metadata.state_dict_metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&entry.second);
    if (tensor == nullptr) continue;
    // The first chunk at given offsets wins, as a linear scan would find it.
    for (const ChunkBox& chunk : tensor->chunks) {
      if (!chunks_.try_emplace(std::make_pair(tensor, absl::MakeConstSpan(chunk.offsets)), &chunk).second) {
        repeated_offsets_ = true;
      }
    }
  }
}

std::pair<const TensorStorageMetadata*, const ChunkBox*> ChunkLookup::Find(const MetadataIndex& index) const {
  if (last_chunk_ != nullptr && index.offset && *last_fqn_ == index.fqn) {
    const ChunkBox* next = last_chunk_ + 1;
    if (next != last_tensor_->chunks.data() + last_tensor_->chunks.size() && next->offsets == *index.offset) {
      last_chunk_ = next;
      return {last_tensor_, next};
    }
  }
  const ptrdiff_t position = metadata_.state_dict_metadata.PositionOf(index.fqn);
  if (position < 0) return {nullptr, nullptr};
  const auto& [fqn, stored] = metadata_.state_dict_metadata.at_position(static_cast<size_t>(position));
  const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
  if (tensor == nullptr || !index.offset) return {tensor, nullptr};
  auto it = chunks_.find(std::make_pair(tensor, absl::MakeConstSpan(*index.offset)));
  if (it == chunks_.end()) return {tensor, nullptr};
  if (!repeated_offsets_) {
    last_fqn_ = &fqn;  // the metadata's own key: it lives as long as metadata_
    last_tensor_ = tensor;
    last_chunk_ = it->second;
  }
  return {tensor, it->second};
}

const StorageInfo* LocationCursor::Find(const std::string& fqn, const Shape& offsets) {
  if (!metadata_.storage_data) return nullptr;
  const StorageData& data = *metadata_.storage_data;
  if (next_ < data.size()) {
    const MetadataIndex& key = data.at_position(next_).first;
    if (key.offset && key.fqn == fqn && *key.offset == offsets) return &data.at_position(next_++).second;
  }
  const ptrdiff_t position = data.PositionOf(MetadataIndex{fqn, offsets, std::nullopt});
  if (position < 0) return nullptr;
  next_ = static_cast<size_t>(position) + 1;
  return &data.at_position(static_cast<size_t>(position)).second;
}

std::string Printable(absl::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && !(keep_newlines && c == '\n')) || byte == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(byte, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string ItemName(const MetadataIndex& index) {
  std::string name = absl::StrCat("'", Printable(index.fqn), "'");
  if (index.offset) absl::StrAppend(&name, " chunk ", ShapeToString(*index.offset));
  return name;
}

std::string ChecksumStateName(ChecksumState state) {
  switch (state) {
    case ChecksumState::kAbsent:
      return "absent";
    case ChecksumState::kThisSave:
      return "present";
    case ChecksumState::kOtherSave:
      return "from another save (ignored)";
    case ChecksumState::kDamaged:
      return "damaged";
  }
  return "unknown";
}

}  // namespace dcplan::tools
