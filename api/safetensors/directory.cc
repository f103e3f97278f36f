#include "api/safetensors/directory.h"

#include <dirent.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/internal/confined_path.h"
#include "api/internal/file_io.h"
#include "api/internal/status_macros.h"

namespace dcplan::safetensors {
namespace {

constexpr char kFileSuffix[] = ".safetensors";
constexpr char kIndexSuffix[] = ".safetensors.index.json";

// The directory's regular entries, sorted; an unreadable directory is empty.
std::vector<std::string> ListNames(const std::string& directory) {
  std::vector<std::string> names;
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> NamesEndingWith(const std::vector<std::string>& names, absl::string_view suffix) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (name.size() > suffix.size() && absl::EndsWith(name, suffix)) out.push_back(name);
  }
  return out;
}

// The index file and the data files, by name, or nullopt for neither.
struct Layout {
  std::string index_file;
  std::string single_file;
};

std::optional<Layout> FindLayout(const std::vector<std::string>& names) {
  const auto has = [&](absl::string_view name) { return std::binary_search(names.begin(), names.end(), name); };
  if (has(kIndexFileName)) return Layout{kIndexFileName, ""};
  const std::vector<std::string> indexes = NamesEndingWith(names, kIndexSuffix);
  if (indexes.size() == 1) return Layout{indexes.front(), ""};
  if (has(kSingleFileName)) return Layout{"", kSingleFileName};
  const std::vector<std::string> files = NamesEndingWith(names, kFileSuffix);
  if (files.size() == 1) return Layout{"", files.front()};
  return std::nullopt;
}

absl::Status PrefixWithPath(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(), absl::StrCat("'", path, "': ", status.message()));
}

absl::StatusOr<Index> ReadIndex(const std::string& directory, const std::string& name) {
  const std::string path = internal::JoinPath(directory, name);
  DCPLAN_ASSIGN_OR_RETURN(internal::ScopedFd fd, internal::OpenForReading(path));
  DCPLAN_ASSIGN_OR_RETURN(int64_t size, internal::FileSize(fd));
  // An index names each tensor once: it is small. The same bound as a
  // header keeps a hostile one from filling memory.
  if (size > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': ", size, " bytes is more than an index may hold (", kMaxHeaderBytes, ")"));
  }
  std::string json(static_cast<size_t>(size), '\0');
  absl::Status read = internal::ReadExactlyAt(fd, 0, json.data(), json.size());
  if (!read.ok()) return PrefixWithPath(read, path);
  return ParseIndexJson(json, path);
}

// Every index entry is in its file, every file tensor is in the index under
// that file.
absl::Status CheckIndexAgainstFiles(const Checkpoint& checkpoint) {
  const Index& index = *checkpoint.index;
  std::map<std::string, const FileHeader*> files;
  for (const FileHeader& file : checkpoint.files) files.emplace(file.name, &file);
  std::map<std::pair<std::string, std::string>, bool> present;  // (file, tensor)
  for (const FileHeader& file : checkpoint.files) {
    for (const TensorEntry& tensor : file.header.tensors) {
      const auto mapped = index.weight_map.find(tensor.name);
      if (mapped == index.weight_map.end() || mapped->second != file.name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", checkpoint.index_file, "': tensor '", tensor.name, "' is in '", file.name, "' but the index ",
            mapped == index.weight_map.end() ? std::string("does not list it")
                                             : absl::StrCat("maps it to '", mapped->second, "'")));
      }
      present[{file.name, tensor.name}] = true;
    }
  }
  for (const auto& [name, file] : index.weight_map) {
    if (!present.count({file, name})) {
      return absl::InvalidArgumentError(absl::StrCat("'", checkpoint.index_file, "': tensor '", name,
                                                     "' is mapped to '", file, "', which has no such tensor"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int64_t Checkpoint::TensorBytes() const {
  int64_t total = 0;
  for (const FileHeader& file : files) {
    for (const TensorEntry& tensor : file.header.tensors) total += tensor.bytes();
  }
  return total;
}

bool IsSafetensorsDirectory(const std::string& directory) {
  return FindLayout(ListNames(directory)).has_value();
}

absl::StatusOr<FileHeader> ReadFileHeader(const std::string& directory, const std::string& name) {
  const std::string path = internal::JoinPath(directory, name);
  absl::StatusOr<internal::ScopedFd> fd = internal::OpenConfined(directory, name);
  if (!fd.ok()) return PrefixWithPath(fd.status(), path);
  FileHeader file;
  file.name = name;
  DCPLAN_ASSIGN_OR_RETURN(file.file_size, internal::FileSize(*fd));
  char first[kHeaderLengthBytes] = {};
  if (file.file_size >= kHeaderLengthBytes) {
    absl::Status read = internal::ReadExactlyAt(*fd, 0, first, sizeof(first));
    if (!read.ok()) return PrefixWithPath(read, path);
  }
  DCPLAN_ASSIGN_OR_RETURN(int64_t length,
                          ParseHeaderLength(absl::string_view(first, sizeof(first)), file.file_size, path));
  std::string json(static_cast<size_t>(length), '\0');
  absl::Status read = internal::ReadExactlyAt(*fd, kHeaderLengthBytes, json.data(), json.size());
  if (!read.ok()) return PrefixWithPath(read, path);
  const int64_t data_bytes = file.file_size - kHeaderLengthBytes - length;
  DCPLAN_ASSIGN_OR_RETURN(file.header, ParseHeaderJson(json, data_bytes, path));
  return file;
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& directory) {
  const std::optional<Layout> layout = FindLayout(ListNames(directory));
  if (!layout) {
    return absl::NotFoundError(absl::StrCat("no safetensors checkpoint in '", directory, "' (no ", kIndexFileName,
                                            " and no single *.safetensors file)"));
  }
  Checkpoint checkpoint;
  checkpoint.directory = directory;
  std::set<std::string> file_names;
  if (!layout->index_file.empty()) {
    checkpoint.index_file = layout->index_file;
    DCPLAN_ASSIGN_OR_RETURN(checkpoint.index, ReadIndex(directory, layout->index_file));
    for (const auto& [name, file] : checkpoint.index->weight_map) file_names.insert(file);
  } else {
    file_names.insert(layout->single_file);
  }
  for (const std::string& name : file_names) {
    absl::StatusOr<FileHeader> file = ReadFileHeader(directory, name);
    if (absl::IsNotFound(file.status()) && checkpoint.index) {
      return absl::NotFoundError(absl::StrCat("'", internal::JoinPath(directory, checkpoint.index_file),
                                              "' names '", name, "', which does not exist"));
    }
    if (!file.ok()) return file.status();
    checkpoint.files.push_back(*std::move(file));
  }
  if (checkpoint.index) DCPLAN_RETURN_IF_ERROR(CheckIndexAgainstFiles(checkpoint));
  return checkpoint;
}

std::vector<std::string> IndexProblems(const Checkpoint& checkpoint) {
  std::vector<std::string> problems;
  if (!checkpoint.index) return problems;
  const int64_t bytes = checkpoint.TensorBytes();
  if (!checkpoint.index->total_size) {
    problems.push_back(absl::StrCat("'", checkpoint.index_file, "': no metadata.total_size (the tensors hold ",
                                    bytes, " bytes)"));
  } else if (*checkpoint.index->total_size != bytes) {
    problems.push_back(absl::StrCat("'", checkpoint.index_file, "': metadata.total_size is ",
                                    *checkpoint.index->total_size, " but the tensors hold ", bytes, " bytes"));
  }
  return problems;
}

Metadata ToDcpMetadata(const Checkpoint& checkpoint) {
  Metadata metadata;
  metadata.storage_data.emplace();
  for (const FileHeader& file : checkpoint.files) {
    for (const TensorEntry& tensor : file.header.tensors) {
      TensorStorageMetadata stored;
      stored.properties.dtype = tensor.dtype;
      stored.size = tensor.shape;
      stored.chunks.push_back(ChunkBox{Shape(tensor.shape.size(), 0), tensor.shape});
      metadata.state_dict_metadata.InsertOrAssign(tensor.name, std::move(stored));
      MetadataIndex index;
      index.fqn = tensor.name;
      index.offset = Shape(tensor.shape.size(), 0);
      metadata.storage_data->InsertOrAssign(
          index, StorageInfo{file.name, file.header.data_start + tensor.begin, tensor.bytes(), std::nullopt});
    }
  }
  StorageMeta meta;
  meta.checkpoint_id = checkpoint.directory;
  metadata.storage_meta = std::move(meta);
  return metadata;
}

}  // namespace dcplan::safetensors
