#ifndef DCPLAN_API_PICKLE_TEST_UTIL_H_
#define DCPLAN_API_PICKLE_TEST_UTIL_H_

// Shared by the pickle tests: runfile access and the canonical JSON form of a
// Metadata that testdata/check_metadata.py compares against.

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/metadata.h"
#include "testing/test_files.h"

namespace dcplan::pickle_test {

using ::dcplan::test_files::ReadFile;
using ::dcplan::test_files::RunfilePath;
using ::dcplan::test_files::WriteFile;

// A path under TEST_TMPDIR.
inline std::string TempPath(absl::string_view name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp ? tmp : "/tmp", "/", name);
}

inline std::optional<std::string> ReadFixture(absl::string_view name) {
  return ReadFile(RunfilePath(absl::StrCat("api/pickle/testdata/", name)));
}

// --- JSON (the format check_metadata.py's canonical() produces) -------------

inline std::string Json(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, c));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}
inline std::string Json(int64_t v) { return absl::StrCat(v); }
inline std::string Json(bool v) { return v ? "true" : "false"; }
inline std::string JsonOpt(const std::optional<std::string>& s) { return s ? Json(absl::string_view(*s)) : "null"; }
inline std::string Json(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&out, i ? "," : "", shape[i]);
  return out + "]";
}
inline std::string Json(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) absl::StrAppend(&out, i ? "," : "", Json(list[i]));
  return out + "]";
}

inline std::string Json(const StorageMetadata& storage) {
  if (std::holds_alternative<BytesStorageMetadata>(storage)) return R"({"type":"bytes"})";
  const auto& t = std::get<TensorStorageMetadata>(storage);
  std::string chunks = "[";
  for (size_t i = 0; i < t.chunks.size(); ++i) {
    absl::StrAppend(&chunks, i ? "," : "", R"({"offsets":)", Json(t.chunks[i].offsets), R"(,"sizes":)",
                    Json(t.chunks[i].sizes), "}");
  }
  chunks += "]";
  const TensorProperties& p = t.properties;
  return absl::StrCat(R"({"type":"tensor","dtype":)", Json(DTypeName(p.dtype)), R"(,"layout":)",
                      Json(LayoutName(p.layout)), R"(,"requires_grad":)", Json(p.requires_grad),
                      R"(,"memory_format":)", Json(MemoryFormatName(p.memory_format)), R"(,"pin_memory":)",
                      Json(p.pin_memory), R"(,"size":)", Json(t.size), R"(,"chunks":)", chunks, "}");
}

// The canonical JSON of `m`, as check_metadata.py builds it from the loaded
// pickle (the writer fills an unset version with "1.0.0": set it first).
inline std::string MetadataJson(const Metadata& m) {
  std::string sdm = "[";
  for (size_t i = 0; i < m.state_dict_metadata.size(); ++i) {
    const auto& [fqn, storage] = m.state_dict_metadata.at_position(i);
    absl::StrAppend(&sdm, i ? "," : "", "[", Json(fqn), ",", Json(storage), "]");
  }
  sdm += "]";
  std::string planner = "null";
  if (m.planner_data) {
    planner = "[";
    for (size_t i = 0; i < m.planner_data->size(); ++i) {
      const auto& [key, path] = m.planner_data->at_position(i);
      std::string elements = "[";
      for (size_t j = 0; j < path.size(); ++j) {
        const auto* s = std::get_if<std::string>(&path[j]);
        absl::StrAppend(&elements, j ? "," : "", s ? Json(*s) : Json(std::get<int64_t>(path[j])));
      }
      absl::StrAppend(&planner, i ? "," : "", "[", Json(key), ",", elements, "]]");
    }
    planner += "]";
  }
  std::string storage = "null";
  if (m.storage_data) {
    storage = "[";
    for (size_t i = 0; i < m.storage_data->size(); ++i) {
      const auto& [index, info] = m.storage_data->at_position(i);
      absl::StrAppend(&storage, i ? "," : "", R"([{"fqn":)", Json(index.fqn), R"(,"offset":)",
                      index.offset ? Json(*index.offset) : "null", R"(,"index":)",
                      index.index ? Json(*index.index) : "null", R"(},{"relative_path":)", Json(info.relative_path),
                      R"(,"offset":)", Json(info.offset), R"(,"length":)", Json(info.length),
                      R"(,"transform_descriptors":)",
                      info.transform_descriptors ? Json(*info.transform_descriptors) : "null", "}]");
    }
    storage += "]";
  }
  std::string meta = "null";
  if (m.storage_meta) {
    const StorageMeta& s = *m.storage_meta;
    meta = absl::StrCat(R"({"checkpoint_id":)", JsonOpt(s.checkpoint_id), R"(,"save_id":)", JsonOpt(s.save_id),
                        R"(,"load_id":)", JsonOpt(s.load_id), R"(,"modules":)", Json(s.modules), "}");
  }
  return absl::StrCat(R"({"state_dict_metadata":)", sdm, R"(,"planner_data":)", planner, R"(,"storage_data":)",
                      storage, R"(,"storage_meta":)", meta, R"(,"version":)", JsonOpt(m.version), "}");
}

// --- Test data ----------------------------------------------------------------

inline bool InTorch113(DType dtype) {
  switch (dtype) {
    case DType::kUInt16:
    case DType::kUInt32:
    case DType::kUInt64:
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E5M2:
    case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2FNUZ:
      return false;
    default:
      return true;
  }
}

// Every dtype, layout and memory format; ints of every width; 0-d; bytes;
// non-ASCII and long names; optional fields set and unset. The Python check
// runs on torch 1.13, which lacks the uint16+ and float8 dtypes.
inline Metadata RichMetadata(bool torch_1_13_dtypes_only = false) {
  Metadata m;
  FlattenMapping mapping;
  StorageData storage;
  constexpr Layout kLayouts[] = {Layout::kStrided,   Layout::kSparseCoo, Layout::kSparseCsr, Layout::kSparseCsc,
                                 Layout::kSparseBsr, Layout::kSparseBsc, Layout::kMkldnn};
  for (int i = 0; i < kNumDTypes; ++i) {
    if (torch_1_13_dtypes_only && !InTorch113(static_cast<DType>(i))) continue;
    const std::string fqn = absl::StrCat("t.", DTypeName(static_cast<DType>(i)));
    TensorProperties p{static_cast<DType>(i), kLayouts[i % 7], i % 2 == 1, static_cast<MemoryFormat>(i % 3),
                       i % 3 == 0};
    const int64_t rows = i + 1;
    TensorStorageMetadata t{p, {rows, 70000}, {{{0, 0}, {rows, 70000}}, {{rows, 0}, {0, 70000}}}};
    m.state_dict_metadata.InsertOrAssign(fqn, t);
    mapping.InsertOrAssign(fqn, {std::string("t"), int64_t{i}, std::string(DTypeName(p.dtype))});
    storage.InsertOrAssign(MetadataIndex{fqn, Shape{0, 0}, 0},
                           StorageInfo{absl::StrCat("__", i, "_0.distcp"), (int64_t{1} << 33) + i, 65536 + i, {}});
  }
  // Extreme int64 values are only types to the pickle layer.
  m.state_dict_metadata.InsertOrAssign(
      "extreme", TensorStorageMetadata{{}, {INT64_MAX}, {{{INT64_MIN}, {-1}}, {{-(int64_t{1} << 31) - 1}, {1}}}});
  m.state_dict_metadata.InsertOrAssign("scalar", TensorStorageMetadata{{}, {}, {{{}, {}}}});
  m.state_dict_metadata.InsertOrAssign("blob", BytesStorageMetadata{});
  m.state_dict_metadata.InsertOrAssign("w\xC3\xA9ight.\xC3\x9F", BytesStorageMetadata{});
  const std::string long_name(300, 'n');  // BINUNICODE rather than SHORT_BINUNICODE
  m.state_dict_metadata.InsertOrAssign(long_name, BytesStorageMetadata{});
  mapping.InsertOrAssign("scalar", {});
  mapping.InsertOrAssign("blob", {std::string("a"), int64_t{-1}, std::string("b"), int64_t{1} << 40,
                                  std::string("c")});
  m.planner_data = mapping;
  storage.InsertOrAssign(MetadataIndex{"scalar", Shape{}, 0}, StorageInfo{"__0_0.distcp", 0, 1, std::nullopt});
  storage.InsertOrAssign(MetadataIndex{"blob", std::nullopt, std::nullopt},
                         StorageInfo{"__0_0.distcp", 1, 2, std::vector<std::string>{"stream.zstd/1", "x@y/2"}});
  storage.InsertOrAssign(MetadataIndex{long_name, std::nullopt, std::nullopt},
                         StorageInfo{long_name, INT64_MAX, 0, std::vector<std::string>{}});
  storage.InsertOrAssign(MetadataIndex{"extreme", Shape{INT64_MIN}, std::nullopt},
                         StorageInfo{"__1_0.distcp", 0, 0, std::nullopt});
  m.storage_data = storage;
  m.storage_meta = StorageMeta{"/ckpts/step100", "5b3c-uuid", "load-1", {"model", "optim"}};
  m.version = "1.0.0";
  return m;
}

}  // namespace dcplan::pickle_test

#endif  // DCPLAN_API_PICKLE_TEST_UTIL_H_
