#include "tools/dcplan/result_json.h"

#include <algorithm>
#include <limits>
#include <variant>

#include "engine/internal/checked_math.h"

namespace dcplan::tools {
namespace {

constexpr size_t kLineWidth = 100;

std::string Dumped(const Json& scalar) { return scalar.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json ShapeJson(const Shape& shape) {
  Json array = Json::array();
  for (int64_t n : shape) array.push_back(n);
  return array;
}

Json OptionalIndexJson(const std::optional<int64_t>& index) { return index ? Json(*index) : Json(nullptr); }

absl::string_view WriteTypeName(WriteItemType type) {
  switch (type) {
    case WriteItemType::kShard: return "shard";
    case WriteItemType::kTensor: return "tensor";
    case WriteItemType::kByteIO: break;
  }
  return "bytes";
}

Json WriteItemToJson(const WriteItem& item) {
  Json json = Json::object();
  json["fqn"] = item.index.fqn;
  json["type"] = std::string(WriteTypeName(item.type));
  json["index"] = OptionalIndexJson(item.index.index);
  if (item.tensor_data) {
    json["offsets"] = ShapeJson(item.tensor_data->chunk.offsets);
    json["lengths"] = ShapeJson(item.tensor_data->chunk.sizes);
  }
  return json;
}

Json MetadataIndexToJson(const MetadataIndex& index) {
  Json json = Json::object();
  json["fqn"] = index.fqn;
  json["offsets"] = index.offset ? ShapeJson(*index.offset) : Json(nullptr);
  json["index"] = OptionalIndexJson(index.index);
  return json;
}

Json ReadItemToJson(const ReadItem& item) {
  Json json = Json::object();
  if (item.type == LoadItemType::kByteIO) {
    json["type"] = "bytes";
    json["dest"] = MetadataIndexToJson(item.dest_index);
    json["storage"] = MetadataIndexToJson(item.storage_index);
    return json;
  }
  json["type"] = "tensor";
  json["dest"] = MetadataIndexToJson(item.dest_index);
  json["dest_offsets"] = ShapeJson(item.dest_offsets);
  json["storage"] = MetadataIndexToJson(item.storage_index);
  json["storage_offsets"] = ShapeJson(item.storage_offsets);
  json["lengths"] = ShapeJson(item.lengths);
  return json;
}

Json BalanceJson(const std::vector<int64_t>& per_rank_bytes) {
  int64_t total = 0;
  int64_t max_rank = 0;
  for (int64_t bytes : per_rank_bytes) {
    total = internal::CheckedAdd(total, bytes).value_or(std::numeric_limits<int64_t>::max());
    max_rank = std::max(max_rank, bytes);
  }
  Json json = Json::object();
  json["total_bytes"] = total;
  json["max_rank_bytes"] = max_rank;
  json["per_rank_bytes"] = ShapeJson(per_rank_bytes);
  return json;
}

// Appends the one-line form of `value`; stops early and returns false once
// `out` is longer than `limit` (so that deciding the layout of a large array
// costs no more than `limit` characters per level).
bool AppendOneLine(const Json& value, size_t limit, std::string* out) {
  if (value.is_object()) {
    out->push_back('{');
    bool first = true;
    for (const auto& [key, child] : value.items()) {
      if (!first) out->append(", ");
      first = false;
      out->append(Dumped(Json(key)));
      out->append(": ");
      if (out->size() > limit || !AppendOneLine(child, limit, out)) return false;
    }
    out->push_back('}');
  } else if (value.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const Json& child : value) {
      if (!first) out->append(", ");
      first = false;
      if (out->size() > limit || !AppendOneLine(child, limit, out)) return false;
    }
    out->push_back(']');
  } else {
    out->append(Dumped(value));
  }
  return out->size() <= limit;
}

// `column`: characters already on the current line before `value`.
void AppendLaidOut(const Json& value, size_t indent, size_t column, std::string* out) {
  std::string line;
  const size_t room = column < kLineWidth ? kLineWidth - column : 0;
  if (!value.is_structured() || value.empty() || AppendOneLine(value, room, &line)) {
    if (line.empty()) AppendOneLine(value, std::numeric_limits<size_t>::max(), &line);
    out->append(line);
    return;
  }
  const bool is_object = value.is_object();
  out->append(is_object ? "{\n" : "[\n");
  const std::string child_indent(indent + 2, ' ');
  size_t remaining = value.size();
  for (auto it = value.begin(); it != value.end(); ++it) {
    out->append(child_indent);
    size_t child_column = child_indent.size();
    if (is_object) {
      const std::string key = Dumped(Json(it.key()));
      out->append(key);
      out->append(": ");
      child_column += key.size() + 2;
    }
    AppendLaidOut(*it, indent + 2, child_column, out);
    out->append(--remaining > 0 ? ",\n" : "\n");
  }
  out->append(indent, ' ');
  out->push_back(is_object ? '}' : ']');
}

}  // namespace

Json ProblemToJson(const PlanProblem& problem) {
  Json json = Json::object();
  json["fqn"] = problem.fqn;
  json["kind"] = std::string(ProblemKindName(problem.kind));
  switch (problem.kind) {
    case ProblemKind::kOutOfBounds:
    case ProblemKind::kOverlap:
      json["chunks"] = ShapeJson(problem.chunks);
      break;
    case ProblemKind::kVolume:
      json["expected"] = problem.expected;
      json["actual"] = problem.actual;
      break;
    case ProblemKind::kConflict:
      json["offsets"] = ShapeJson(problem.offsets);
      break;
    case ProblemKind::kPlanError:
      break;
  }
  if (!problem.message.empty()) json["message"] = problem.message;
  return json;
}

Json StateDictMetadataToJson(const StateDictMetadata& metadata) {
  Json json = Json::object();
  for (const auto& [fqn, storage] : metadata) {
    Json entry = Json::object();
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&storage)) {
      entry["type"] = "tensor";
      entry["dtype"] = std::string(DTypeName(tensor->properties.dtype));
      entry["size"] = ShapeJson(tensor->size);
      Json chunks = Json::array();
      for (const ChunkBox& chunk : tensor->chunks) {
        Json box = Json::object();
        box["offsets"] = ShapeJson(chunk.offsets);
        box["sizes"] = ShapeJson(chunk.sizes);
        chunks.push_back(std::move(box));
      }
      entry["chunks"] = std::move(chunks);
    } else {
      entry["type"] = "bytes";
    }
    json[fqn] = std::move(entry);
  }
  return json;
}

Json SaveResultToJson(const GlobalSavePlan& result, const std::vector<int64_t>& per_rank_bytes,
                      const SavePlanTimings& timings) {
  Json json = Json::object();
  json["valid"] = result.valid();
  Json problems = Json::array();
  for (const PlanProblem& problem : result.problems) problems.push_back(ProblemToJson(problem));
  json["problems"] = std::move(problems);
  Json plans = Json::array();
  for (size_t rank = 0; rank < result.plans.size(); ++rank) {
    Json items = Json::array();
    for (const WriteItem& item : result.plans[rank].items) items.push_back(WriteItemToJson(item));
    Json plan = Json::object();
    plan["rank"] = rank;
    plan["items"] = std::move(items);
    plans.push_back(std::move(plan));
  }
  json["plans"] = std::move(plans);
  json["metadata"] = StateDictMetadataToJson(result.metadata.state_dict_metadata);
  json["balance"] = BalanceJson(per_rank_bytes);
  Json times = Json::object();
  times["dedup"] = timings.dedup_ms;
  times["global_plan"] = timings.global_plan_ms;
  times["validate"] = timings.validate_ms;
  json["timings_ms"] = std::move(times);
  return json;
}

Json LoadResultToJson(const std::vector<LoadPlan>& plans, const std::vector<LoadPlanError>& errors,
                      double local_plans_ms) {
  Json json = Json::object();
  Json plans_json = Json::array();
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    Json items = Json::array();
    for (const ReadItem& item : plans[rank].items) items.push_back(ReadItemToJson(item));
    Json plan = Json::object();
    plan["rank"] = rank;
    plan["items"] = std::move(items);
    plans_json.push_back(std::move(plan));
  }
  json["plans"] = std::move(plans_json);
  Json errors_json = Json::array();
  for (const LoadPlanError& error : errors) {
    Json e = Json::object();
    e["rank"] = error.rank;
    e["fqn"] = error.fqn;
    e["kind"] = std::string(LoadErrorKindName(error.kind));
    if (!error.message.empty()) e["message"] = error.message;
    errors_json.push_back(std::move(e));
  }
  json["errors"] = std::move(errors_json);
  Json times = Json::object();
  times["local_plans"] = local_plans_ms;
  json["timings_ms"] = std::move(times);
  return json;
}

std::string FormatJson(const Json& value) {
  std::string out;
  AppendLaidOut(value, 0, 0, &out);
  out.push_back('\n');
  return out;
}

}  // namespace dcplan::tools
