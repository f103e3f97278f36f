#include "engine/metadata.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dcplan {
namespace {

std::string OrNone(const std::optional<std::string>& s) { return s ? absl::StrCat("'", *s, "'") : "None"; }

}  // namespace

absl::string_view LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kStrided: return "strided";
    case Layout::kSparseCoo: return "sparse_coo";
    case Layout::kSparseCsr: return "sparse_csr";
    case Layout::kSparseCsc: return "sparse_csc";
    case Layout::kSparseBsr: return "sparse_bsr";
    case Layout::kSparseBsc: return "sparse_bsc";
    case Layout::kMkldnn: return "_mkldnn";
  }
  return "?";
}

absl::string_view MemoryFormatName(MemoryFormat format) {
  switch (format) {
    case MemoryFormat::kContiguous: return "contiguous_format";
    case MemoryFormat::kChannelsLast: return "channels_last";
    case MemoryFormat::kPreserve: return "preserve_format";
  }
  return "?";
}

std::string ToString(const MetadataIndex& i) {
  return absl::StrCat("MetadataIndex(fqn='", i.fqn, "', offset=", i.offset ? ShapeToString(*i.offset) : "None",
                      ", index=", i.index ? absl::StrCat(*i.index) : "None", ")");
}

std::string ToString(const TensorProperties& p) {
  return absl::StrCat("TensorProperties(dtype=", DTypeName(p.dtype), ", layout=", LayoutName(p.layout),
                      ", requires_grad=", p.requires_grad ? "True" : "False",
                      ", memory_format=", MemoryFormatName(p.memory_format),
                      ", pin_memory=", p.pin_memory ? "True" : "False", ")");
}

std::string ToString(const StorageMetadata& m) {
  if (std::holds_alternative<BytesStorageMetadata>(m)) return "BytesStorageMetadata()";
  const auto& t = std::get<TensorStorageMetadata>(m);
  std::string chunks;
  for (const ChunkBox& c : t.chunks) absl::StrAppend(&chunks, chunks.empty() ? "" : ", ", ToString(c));
  return absl::StrCat("TensorStorageMetadata(", ToString(t.properties), ", size=", ShapeToString(t.size),
                      ", chunks=[", chunks, "])");
}

std::string ToString(const StorageInfo& s) {
  std::string out = absl::StrCat("StorageInfo(relative_path='", s.relative_path, "', offset=", s.offset,
                                 ", length=", s.length);
  if (s.transform_descriptors) {
    absl::StrAppend(&out, ", transform_descriptors=[", absl::StrJoin(*s.transform_descriptors, ", "), "]");
  }
  return out + ")";
}

std::string ToString(const StorageMeta& m) {
  return absl::StrCat("StorageMeta(checkpoint_id=", OrNone(m.checkpoint_id), ", save_id=", OrNone(m.save_id),
                      ", load_id=", OrNone(m.load_id), ", modules=[", absl::StrJoin(m.modules, ", "), "])");
}

std::string ToString(const Metadata& m) {
  std::string out = "Metadata(\n  state_dict_metadata={\n";
  for (const auto& [fqn, md] : m.state_dict_metadata) absl::StrAppend(&out, "    '", fqn, "': ", ToString(md), ",\n");
  out += "  },\n  planner_data=";
  if (m.planner_data) {
    out += "{\n";
    for (const auto& [key, path] : *m.planner_data) {
      absl::StrAppend(&out, "    '", key, "': ", ObjectPathToString(path), ",\n");
    }
    out += "  }";
  } else {
    out += "None";
  }
  out += ",\n  storage_data=";
  if (m.storage_data) {
    out += "{\n";
    for (const auto& [index, info] : *m.storage_data) {
      absl::StrAppend(&out, "    ", ToString(index), ": ", ToString(info), ",\n");
    }
    out += "  }";
  } else {
    out += "None";
  }
  absl::StrAppend(&out, ",\n  storage_meta=", m.storage_meta ? ToString(*m.storage_meta) : "None",
                  ",\n  version=", OrNone(m.version), ")");
  return out;
}

std::ostream& operator<<(std::ostream& os, const MetadataIndex& i) { return os << ToString(i); }
std::ostream& operator<<(std::ostream& os, const TensorProperties& p) { return os << ToString(p); }
std::ostream& operator<<(std::ostream& os, const TensorStorageMetadata& t) {
  return os << ToString(StorageMetadata(t));
}
std::ostream& operator<<(std::ostream& os, const StorageMetadata& m) { return os << ToString(m); }
std::ostream& operator<<(std::ostream& os, const StorageInfo& s) { return os << ToString(s); }
std::ostream& operator<<(std::ostream& os, const StorageMeta& m) { return os << ToString(m); }
std::ostream& operator<<(std::ostream& os, const Metadata& m) { return os << ToString(m); }

}  // namespace dcplan
