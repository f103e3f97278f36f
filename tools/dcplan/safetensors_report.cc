// inspect and verify of safetensors directories: both read the checkpoint
// through api/safetensors/directory.h (the one reader of the format).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/filesystem.h"
#include "api/safetensors/directory.h"
#include "tools/dcplan/checkpoint_report.h"
#include "tools/dcplan/result_json.h"
#include "tools/dcplan/safetensors_commands.h"

namespace dcplan::tools {
namespace {

using safetensors::Checkpoint;
using safetensors::FileHeader;
using safetensors::TensorEntry;

std::string DTypeText(const TensorEntry& t) {
  absl::StatusOr<std::string> name = safetensors::NameOfDType(t.dtype);
  return name.ok() ? *name : std::string(DTypeName(t.dtype));
}

Json FileJson(const FileHeader& file) {
  Json tensors = Json::array();
  for (const TensorEntry& t : file.header.tensors) {
    tensors.push_back(Json{{"name", t.name},
                           {"dtype", DTypeText(t)},
                           {"shape", t.shape},
                           {"offset", file.header.data_start + t.begin},
                           {"length", t.bytes()}});
  }
  return Json{{"name", file.name},
              {"size", file.file_size},
              {"data_start", file.header.data_start},
              {"metadata", file.header.metadata},
              {"tensors", std::move(tensors)}};
}

std::string InspectText(const Checkpoint& checkpoint) {
  size_t tensors = 0;
  for (const FileHeader& file : checkpoint.files) tensors += file.header.tensors.size();
  std::string text = absl::StrCat("safetensors checkpoint ", checkpoint.directory, ": ", checkpoint.files.size(),
                                  " file(s), ", tensors, " tensors, ", checkpoint.TensorBytes(), " tensor bytes\n");
  if (checkpoint.index) {
    absl::StrAppend(&text, "index ", checkpoint.index_file, ": total_size ",
                    checkpoint.index->total_size ? absl::StrCat(*checkpoint.index->total_size) : "absent", "\n");
  }
  for (const FileHeader& file : checkpoint.files) {
    absl::StrAppend(&text, "file ", file.name, ": ", file.file_size, " bytes, header ", file.header.data_start,
                    " bytes, ", file.header.tensors.size(), " tensors\n");
    for (const TensorEntry& t : file.header.tensors) {
      absl::StrAppend(&text, "  ", t.name, "  ", DTypeText(t), " ", ShapeToString(t.shape), "  bytes [",
                      file.header.data_start + t.begin, ", ", file.header.data_start + t.end, ")\n");
    }
  }
  return text;
}

// Problems of files ReadCheckpoint did not get to (it stops at the first).
void AddFileProblems(const std::string& directory, std::vector<std::string>* problems) {
  std::set<std::string> seen(problems->begin(), problems->end());
  std::vector<std::string> names;
  if (DIR* dir = opendir(directory.c_str())) {
    while (const dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
    closedir(dir);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (!absl::EndsWith(name, ".safetensors")) continue;
    absl::StatusOr<FileHeader> file = safetensors::ReadFileHeader(directory, name);
    if (!file.ok() && seen.insert(std::string(file.status().message())).second) {
      problems->emplace_back(file.status().message());
    }
  }
}

}  // namespace

bool IsSafetensorsCheckpoint(const std::string& directory) {
  struct stat info;
  return safetensors::IsSafetensorsDirectory(directory) &&
         stat((directory + "/" + kMetadataFileName).c_str(), &info) != 0;
}

int InspectSafetensors(const std::string& directory, bool json, std::string* stdout_text, std::string* stderr_text) {
  absl::StatusOr<Checkpoint> checkpoint = safetensors::ReadCheckpoint(directory);
  if (!checkpoint.ok()) {
    absl::StrAppend(stderr_text, "dcplan inspect: ", checkpoint.status().message(), "\n");
    return kCheckpointFault;
  }
  if (!json) {
    stdout_text->append(InspectText(*checkpoint));
    return kCheckpointOk;
  }
  Json files = Json::array();
  for (const FileHeader& file : checkpoint->files) files.push_back(FileJson(file));
  Json report{{"format", "safetensors"}, {"directory", directory}, {"tensor_bytes", checkpoint->TensorBytes()}};
  report["index"] = checkpoint->index ? Json(checkpoint->index_file) : Json(nullptr);
  report["total_size"] =
      checkpoint->index && checkpoint->index->total_size ? Json(*checkpoint->index->total_size) : Json(nullptr);
  report["files"] = std::move(files);
  stdout_text->append(FormatJson(report));
  return kCheckpointOk;
}

int VerifySafetensors(const std::string& directory, bool json, std::string* stdout_text, std::string* stderr_text) {
  (void)stderr_text;
  std::vector<std::string> problems;
  absl::StatusOr<Checkpoint> checkpoint = safetensors::ReadCheckpoint(directory);
  size_t tensors = 0;
  if (checkpoint.ok()) {
    problems = safetensors::IndexProblems(*checkpoint);
    for (const FileHeader& file : checkpoint->files) tensors += file.header.tensors.size();
  } else {
    problems.emplace_back(checkpoint.status().message());
    AddFileProblems(directory, &problems);
  }
  if (json) {
    stdout_text->append(FormatJson(Json{{"ok", problems.empty()},
                                        {"format", "safetensors"},
                                        {"directory", directory},
                                        {"tensors", tensors},
                                        {"problems", problems}}));
  } else {
    for (const std::string& problem : problems) absl::StrAppend(stdout_text, "problem: ", problem, "\n");
    if (problems.empty()) {
      absl::StrAppend(stdout_text, "ok: safetensors checkpoint ", directory, ": ", checkpoint->files.size(),
                      " file(s), ", tensors, " tensors, ", checkpoint->TensorBytes(), " tensor bytes\n");
    } else {
      absl::StrAppend(stdout_text, problems.size(), " problem(s) in safetensors checkpoint ", directory, "\n");
    }
  }
  return problems.empty() ? kCheckpointOk : kCheckpointFault;
}

}  // namespace dcplan::tools
