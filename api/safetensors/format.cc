#include "api/safetensors/format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/internal/status_macros.h"
#include "engine/internal/checked_math.h"
#include "nlohmann/json.hpp"

namespace dcplan::safetensors {
namespace {

using Json = nlohmann::json;

struct NamedDType {
  const char* name;
  DType dtype;
};

constexpr std::array<NamedDType, 18> kDTypeNames = {{
    {"F64", DType::kFloat64},
    {"F32", DType::kFloat32},
    {"F16", DType::kFloat16},
    {"BF16", DType::kBFloat16},
    {"I64", DType::kInt64},
    {"I32", DType::kInt32},
    {"I16", DType::kInt16},
    {"I8", DType::kInt8},
    {"U8", DType::kUInt8},
    {"U16", DType::kUInt16},
    {"U32", DType::kUInt32},
    {"U64", DType::kUInt64},
    {"BOOL", DType::kBool},
    {"F8_E4M3", DType::kFloat8E4M3FN},
    {"F8_E5M2", DType::kFloat8E5M2},
    {"F8_E4M3FNUZ", DType::kFloat8E4M3FNUZ},
    {"F8_E5M2FNUZ", DType::kFloat8E5M2FNUZ},
    {"C64", DType::kComplex64},
}};

// Containers at depth 0 (the header), 1 (a tensor, __metadata__) and 2 (a
// shape, data_offsets) are all the format has.
constexpr int kMaxContainerDepth = 2;

absl::Status Invalid(absl::string_view file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("'", file, "': ", what));
}

absl::Status InvalidTensor(absl::string_view file, absl::string_view tensor, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("'", file, "': tensor '", tensor, "': ", what));
}

// Parses `text` as JSON, refusing nesting deeper than `max_depth` and
// duplicate keys in any object (nlohmann keeps the last one silently).
absl::StatusOr<Json> ParseStrictJson(absl::string_view text, int max_depth, absl::string_view file) {
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  bool too_deep = false;
  const Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        [[fallthrough]];
      case Json::parse_event_t::array_start:
        if (depth > max_depth) too_deep = true;
        return depth <= max_depth;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        return true;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second &&
            !duplicate) {
          duplicate = parsed.get<std::string>();
        }
        return true;
      default:
        return true;
    }
  };
  Json json;
  try {
    json = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    return Invalid(file, absl::StrCat("invalid JSON: ", e.what()));
  }
  if (too_deep) return Invalid(file, absl::StrCat("JSON nested deeper than ", max_depth + 1, " levels"));
  if (duplicate) return Invalid(file, absl::StrCat("the name '", *duplicate, "' appears twice"));
  return json;
}

absl::StatusOr<int64_t> NonNegativeInt(const Json& value) {
  if (!value.is_number_unsigned()) return absl::InvalidArgumentError("not a non-negative integer");
  const uint64_t v = value.get<uint64_t>();
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(v, " is too large"));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<std::vector<int64_t>> NonNegativeInts(const Json& value) {
  if (!value.is_array()) return absl::InvalidArgumentError("not a list");
  std::vector<int64_t> out;
  for (const Json& element : value) {
    DCPLAN_ASSIGN_OR_RETURN(int64_t v, NonNegativeInt(element));
    out.push_back(v);
  }
  return out;
}

absl::Status WithField(const absl::Status& status, absl::string_view file, absl::string_view tensor,
                       absl::string_view field) {
  return InvalidTensor(file, tensor, absl::StrCat("\"", field, "\" is ", status.message()));
}

absl::StatusOr<int64_t> ByteSize(DType dtype, const Shape& shape) {
  std::optional<int64_t> bytes = ElementSize(dtype);
  for (int64_t dim : shape) {
    if (bytes) bytes = internal::CheckedMul(*bytes, dim);
  }
  if (!bytes) return absl::InvalidArgumentError("the byte size overflows 64 bits");
  return *bytes;
}

absl::StatusOr<TensorEntry> ParseTensor(const std::string& name, const Json& value, absl::string_view file) {
  if (!value.is_object()) return InvalidTensor(file, name, "not an object");
  TensorEntry entry;
  entry.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) return InvalidTensor(file, name, "no \"dtype\" string");
  absl::StatusOr<DType> parsed_dtype = DTypeFromName(dtype->get<std::string>());
  if (!parsed_dtype.ok()) return InvalidTensor(file, name, parsed_dtype.status().message());
  entry.dtype = *parsed_dtype;
  const auto shape = value.find("shape");
  if (shape == value.end()) return InvalidTensor(file, name, "no \"shape\"");
  absl::StatusOr<std::vector<int64_t>> dims = NonNegativeInts(*shape);
  if (!dims.ok()) return WithField(dims.status(), file, name, "shape");
  entry.shape = *std::move(dims);
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end()) return InvalidTensor(file, name, "no \"data_offsets\"");
  absl::StatusOr<std::vector<int64_t>> range = NonNegativeInts(*offsets);
  if (!range.ok()) return WithField(range.status(), file, name, "data_offsets");
  if (range->size() != 2 || (*range)[0] > (*range)[1]) {
    return InvalidTensor(file, name, "\"data_offsets\" is not [begin, end] with begin <= end");
  }
  entry.begin = (*range)[0];
  entry.end = (*range)[1];
  absl::StatusOr<int64_t> expected = ByteSize(entry.dtype, entry.shape);
  if (!expected.ok()) return InvalidTensor(file, name, expected.status().message());
  if (*expected != entry.bytes()) {
    return InvalidTensor(file, name,
                         absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] hold ", entry.bytes(),
                                      " bytes, but ", dtype->get<std::string>(), " ", ShapeToString(entry.shape),
                                      " needs ", *expected));
  }
  return entry;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const Json& value, absl::string_view file) {
  if (!value.is_object()) return Invalid(file, "\"__metadata__\" is not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string()) return Invalid(file, absl::StrCat("\"__metadata__\" entry '", key, "' is not a string"));
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

// The tensors, sorted by offset, must tile [0, data_bytes).
absl::Status CheckTiling(std::vector<TensorEntry>& tensors, int64_t data_bytes, absl::string_view file) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  int64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& t : tensors) {
    if (t.begin < covered) {
      return InvalidTensor(file, t.name,
                           absl::StrCat("its bytes [", t.begin, ", ", t.end, ") overlap those of '",
                                        previous->name, "'"));
    }
    if (t.begin > covered) {
      return InvalidTensor(file, t.name, absl::StrCat("a gap of ", t.begin - covered, " bytes precedes it"));
    }
    covered = t.end;
    previous = &t;
  }
  if (covered > data_bytes) {
    return InvalidTensor(file, previous->name,
                         absl::StrCat("its bytes end at ", covered, ", past the end of the data (", data_bytes,
                                      " bytes)"));
  }
  if (covered < data_bytes) {
    return Invalid(file, absl::StrCat("the tensors cover ", covered, " of the ", data_bytes,
                                      " data bytes; the rest belongs to no tensor"));
  }
  return absl::OkStatus();
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const TensorEntry& t) {
  absl::StatusOr<std::string> name = NameOfDType(t.dtype);
  return os << t.name << ": " << (name.ok() ? *name : std::string(DTypeName(t.dtype))) << " "
            << ShapeToString(t.shape) << " [" << t.begin << ", " << t.end << ")";
}

absl::StatusOr<DType> DTypeFromName(absl::string_view name) {
  for (const NamedDType& entry : kDTypeNames) {
    if (name == entry.name) return entry.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype \"", name, "\""));
}

absl::StatusOr<std::string> NameOfDType(DType dtype) {
  for (const NamedDType& entry : kDTypeNames) {
    if (dtype == entry.dtype) return std::string(entry.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("safetensors has no dtype for ", DTypeName(dtype)));
}

absl::StatusOr<int64_t> ParseHeaderLength(absl::string_view first_bytes, int64_t file_size,
                                          absl::string_view file) {
  if (first_bytes.size() < kHeaderLengthBytes || file_size < kHeaderLengthBytes) {
    return Invalid(file, absl::StrCat("a safetensors file is at least 8 bytes long; this one has ", file_size));
  }
  uint64_t length = 0;
  for (int i = kHeaderLengthBytes - 1; i >= 0; --i) {
    length = (length << 8) | static_cast<unsigned char>(first_bytes[i]);
  }
  if (length > static_cast<uint64_t>(kMaxHeaderBytes)) {
    return Invalid(file, absl::StrCat("header length ", length, " exceeds the limit of ", kMaxHeaderBytes,
                                      " bytes"));
  }
  if (static_cast<int64_t>(length) > file_size - kHeaderLengthBytes) {
    return Invalid(file, absl::StrCat("header length ", length, " runs past the end of the file (", file_size,
                                      " bytes)"));
  }
  return static_cast<int64_t>(length);
}

absl::StatusOr<Header> ParseHeaderJson(absl::string_view json, int64_t data_bytes, absl::string_view file) {
  DCPLAN_ASSIGN_OR_RETURN(Json root, ParseStrictJson(json, kMaxContainerDepth, file));
  if (!root.is_object()) return Invalid(file, "the header is not a JSON object");
  Header header;
  header.data_start = kHeaderLengthBytes + static_cast<int64_t>(json.size());
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      DCPLAN_ASSIGN_OR_RETURN(header.metadata, ParseMetadata(value, file));
      continue;
    }
    DCPLAN_ASSIGN_OR_RETURN(TensorEntry entry, ParseTensor(name, value, file));
    header.tensors.push_back(std::move(entry));
  }
  DCPLAN_RETURN_IF_ERROR(CheckTiling(header.tensors, data_bytes, file));
  return header;
}

absl::StatusOr<Header> ParseFileBytes(absl::string_view bytes, absl::string_view file) {
  const auto size = static_cast<int64_t>(bytes.size());
  DCPLAN_ASSIGN_OR_RETURN(int64_t length, ParseHeaderLength(bytes, size, file));
  const int64_t data_start = kHeaderLengthBytes + length;
  return ParseHeaderJson(bytes.substr(kHeaderLengthBytes, length), size - data_start, file);
}

std::string SerializeHeader(const std::vector<TensorEntry>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) root[kMetadataKey] = metadata;
  for (const TensorEntry& t : tensors) {
    nlohmann::ordered_json entry;
    absl::StatusOr<std::string> dtype = NameOfDType(t.dtype);
    entry["dtype"] = dtype.ok() ? *dtype : std::string(DTypeName(t.dtype));
    entry["shape"] = t.shape;
    entry["data_offsets"] = {t.begin, t.end};
    root[t.name] = std::move(entry);
  }
  std::string json = root.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(kHeaderLengthBytes, '\0');
  const uint64_t length = json.size();
  for (int i = 0; i < kHeaderLengthBytes; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + json;
}

bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == absl::string_view::npos &&
         name.find('\0') == absl::string_view::npos;
}

absl::StatusOr<Index> ParseIndexJson(absl::string_view json, absl::string_view file) {
  // {"metadata": {...}, "weight_map": {name: file}}: containers to depth 1;
  // "metadata" may carry more than total_size, which is not ours to limit.
  DCPLAN_ASSIGN_OR_RETURN(Json root, ParseStrictJson(json, /*max_depth=*/4, file));
  if (!root.is_object()) return Invalid(file, "the index is not a JSON object");
  Index index;
  const auto metadata = root.find("metadata");
  if (metadata != root.end() && metadata->is_object()) {
    const auto total = metadata->find("total_size");
    if (total != metadata->end()) {
      // Some writers store it as a float.
      if (total->is_number_float() && std::floor(total->get<double>()) == total->get<double>() &&
          total->get<double>() >= 0 && total->get<double>() < 9.0e18) {
        index.total_size = static_cast<int64_t>(total->get<double>());
      } else {
        absl::StatusOr<int64_t> size = NonNegativeInt(*total);
        if (!size.ok()) return Invalid(file, absl::StrCat("\"total_size\" is ", size.status().message()));
        index.total_size = *size;
      }
    }
  }
  const auto weight_map = root.find("weight_map");
  if (weight_map == root.end() || !weight_map->is_object()) return Invalid(file, "no \"weight_map\" object");
  for (const auto& [name, value] : weight_map->items()) {
    if (!value.is_string() || !IsPlainFileName(value.get<std::string>())) {
      return InvalidTensor(file, name, "the weight_map entry is not a plain file name in the directory");
    }
    index.weight_map.emplace(name, value.get<std::string>());
  }
  return index;
}

std::string SerializeIndex(const Index& index) {
  Json root;
  root["metadata"] = Json::object();
  if (index.total_size) root["metadata"]["total_size"] = *index.total_size;
  root["weight_map"] = index.weight_map;
  return root.dump(2) + "\n";
}

}  // namespace dcplan::safetensors
