#include "api/safetensors/layout.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/status_macros.h"
#include "engine/internal/checked_math.h"

namespace dcplan::safetensors {
namespace {

struct Sized {
  TensorSpec spec;
  int64_t bytes = 0;
};

absl::StatusOr<int64_t> TensorBytes(const TensorSpec& tensor) {
  DCPLAN_RETURN_IF_ERROR(NameOfDType(tensor.dtype).status());
  std::optional<int64_t> bytes = ElementSize(tensor.dtype);
  for (int64_t dim : tensor.shape) {
    if (bytes && dim >= 0) bytes = internal::CheckedMul(*bytes, dim);
    if (dim < 0) bytes.reset();
  }
  if (!bytes) return absl::InvalidArgumentError("its byte size is negative or overflows 64 bits");
  return *bytes;
}

absl::Status InvalidTensor(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what));
}

// Groups of tensors (indices into `sorted`) and their file names.
struct Grouping {
  std::vector<std::string> names;
  std::vector<std::vector<size_t>> members;
};

absl::StatusOr<Grouping> GroupBySize(const std::vector<Sized>& sorted, int64_t max_shard_bytes) {
  if (max_shard_bytes < 1) return absl::InvalidArgumentError("the maximum shard size must be at least 1 byte");
  Grouping grouping;
  int64_t current = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (grouping.members.empty() || (current > 0 && sorted[i].bytes > max_shard_bytes - current)) {
      grouping.members.emplace_back();
      current = 0;
    }
    grouping.members.back().push_back(i);
    current += sorted[i].bytes;  // <= max_shard_bytes, or a lone tensor's size
  }
  if (grouping.members.empty()) grouping.members.emplace_back();
  const size_t n = grouping.members.size();
  for (size_t i = 0; i < n; ++i) {
    grouping.names.push_back(n == 1 ? std::string(kSingleFileName)
                                    : absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n));
  }
  return grouping;
}

absl::StatusOr<Grouping> GroupByMapping(const std::vector<Sized>& sorted,
                                        const std::map<std::string, std::string>& file_of) {
  std::map<std::string, std::vector<size_t>> by_file;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto it = file_of.find(sorted[i].spec.name);
    if (it == file_of.end()) return InvalidTensor(sorted[i].spec.name, "the file mapping does not place it");
    if (!IsPlainFileName(it->second) || !absl::EndsWith(it->second, ".safetensors")) {
      return InvalidTensor(sorted[i].spec.name,
                           absl::StrCat("'", it->second, "' is not a plain *.safetensors file name"));
    }
    by_file[it->second].push_back(i);
  }
  Grouping grouping;
  for (auto& [name, members] : by_file) {
    grouping.names.push_back(name);
    grouping.members.push_back(std::move(members));
  }
  if (grouping.members.empty()) {
    grouping.names.emplace_back(kSingleFileName);
    grouping.members.emplace_back();
  }
  return grouping;
}

absl::Status PlanFile(const std::vector<Sized>& sorted, const std::string& name, const std::vector<size_t>& members,
                      PlannedCheckpoint& out) {
  FileHeader file;
  file.name = name;
  file.header.metadata = {{"format", "pt"}};
  int64_t offset = 0;
  for (size_t i : members) {
    const Sized& tensor = sorted[i];
    std::optional<int64_t> end = internal::CheckedAdd(offset, tensor.bytes);
    if (!end) return absl::InvalidArgumentError(absl::StrCat("file '", name, "' would exceed 2^63 bytes"));
    file.header.tensors.push_back(TensorEntry{tensor.spec.name, tensor.spec.dtype, tensor.spec.shape, offset, *end});
    offset = *end;
  }
  std::string header = SerializeHeader(file.header.tensors, file.header.metadata);
  file.header.data_start = static_cast<int64_t>(header.size());
  std::optional<int64_t> size = internal::CheckedAdd(file.header.data_start, offset);
  if (!size) return absl::InvalidArgumentError(absl::StrCat("file '", name, "' would exceed 2^63 bytes"));
  file.file_size = *size;
  out.checkpoint.files.push_back(std::move(file));
  out.header_bytes.push_back(std::move(header));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PlannedCheckpoint> PlanCheckpoint(std::vector<TensorSpec> tensors, const LayoutOptions& options) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  std::vector<Sized> sorted;
  int64_t total = 0;
  for (TensorSpec& tensor : tensors) {
    if (!sorted.empty() && sorted.back().spec.name == tensor.name) return InvalidTensor(tensor.name, "named twice");
    absl::StatusOr<int64_t> bytes = TensorBytes(tensor);
    if (!bytes.ok()) return InvalidTensor(tensor.name, bytes.status().message());
    std::optional<int64_t> sum = internal::CheckedAdd(total, *bytes);
    if (!sum) return absl::InvalidArgumentError("the tensors' bytes overflow 64 bits");
    total = *sum;
    sorted.push_back(Sized{std::move(tensor), *bytes});
  }
  DCPLAN_ASSIGN_OR_RETURN(Grouping grouping, options.file_of ? GroupByMapping(sorted, *options.file_of)
                                                             : GroupBySize(sorted, options.max_shard_bytes));
  PlannedCheckpoint planned;
  for (size_t f = 0; f < grouping.names.size(); ++f) {
    DCPLAN_RETURN_IF_ERROR(PlanFile(sorted, grouping.names[f], grouping.members[f], planned));
  }
  if (planned.checkpoint.files.size() > 1 || planned.checkpoint.files.front().name != kSingleFileName) {
    Index index;
    index.total_size = total;
    for (const FileHeader& file : planned.checkpoint.files) {
      for (const TensorEntry& tensor : file.header.tensors) index.weight_map.emplace(tensor.name, file.name);
    }
    planned.checkpoint.index_file = kIndexFileName;
    planned.index_json = SerializeIndex(index);
    planned.checkpoint.index = std::move(index);
  }
  return planned;
}

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  size_t digits = 0;
  while (digits < upper.size() && std::isdigit(static_cast<unsigned char>(upper[digits]))) ++digits;
  const absl::string_view unit = absl::string_view(upper).substr(digits);
  static const std::pair<absl::string_view, int64_t> kUnits[] = {
      {"", 1},           {"B", 1},
      {"KB", 1000},      {"MB", 1000 * 1000},      {"GB", 1000 * 1000 * 1000},      {"TB", int64_t{1000} * 1000 * 1000 * 1000},
      {"KIB", 1 << 10},  {"MIB", 1 << 20},         {"GIB", int64_t{1} << 30},       {"TIB", int64_t{1} << 40}};
  int64_t number = 0;
  if (digits == 0 || !absl::SimpleAtoi(upper.substr(0, digits), &number)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a size such as 5GB, 500MB or 1000"));
  }
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    std::optional<int64_t> bytes = internal::CheckedMul(number, factor);
    if (!bytes || *bytes < 1) return absl::InvalidArgumentError(absl::StrCat("size '", text, "' is out of range"));
    return *bytes;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "': unknown unit (use B, KB, MB, GB, KiB, MiB, GiB)"));
}

}  // namespace dcplan::safetensors
