#include "tools/dcplan/scenario_json.h"

#include <optional>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"

namespace dcplan::tools {
namespace {

enum class ItemType { kShard, kTensor, kBytes };

// One entry of `ranks[i].items`, checked.
struct ScenarioItem {
  std::string fqn;
  ItemType type = ItemType::kBytes;
  Shape size;              // shard, tensor
  ChunkBox chunk;          // shard
  TensorProperties properties;  // shard, tensor
  std::optional<int64_t> nbytes;  // bytes
};

std::string Quoted(absl::string_view text) {
  return Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<ItemType> ReadItemType(const Json& value, const JsonPath& path) {
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const std::string name, ReadString(value, path));
  if (name == "shard") return ItemType::kShard;
  if (name == "tensor") return ItemType::kTensor;
  if (name == "bytes") return ItemType::kBytes;
  return UsageError(path, absl::StrCat("unknown item type ", Quoted(name),
                                       " (expected \"shard\", \"tensor\" or \"bytes\")"));
}

// The tensor fields shared by shard and tensor items. `dtype` is required when
// `for_save` (it decides byte counts), optional on load (float32 if absent).
absl::Status ReadTensorFields(const Json& item, const JsonPath& path, bool for_save, ScenarioItem* out) {
  const JsonPath size_path = path.Field("size");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* size, RequireField(item, "size", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(out->size, ReadShape(*size, size_path, /*non_negative=*/true));
  const JsonPath dtype_path = path.Field("dtype");
  const Json* dtype = FindField(item, "dtype");
  if (dtype == nullptr && for_save) return UsageError(dtype_path, "missing field");
  if (dtype != nullptr) {
    DCPLAN_TOOL_ASSIGN_OR_RETURN(out->properties.dtype, ReadDType(*dtype, dtype_path));
  }
  if (for_save) DCPLAN_TOOL_RETURN_IF_ERROR(CheckByteSize(out->properties.dtype, out->size, size_path));
  return absl::OkStatus();
}

absl::Status ReadShardBox(const Json& item, const JsonPath& path, bool for_save, ScenarioItem* out) {
  const JsonPath offsets_path = path.Field("offsets");
  const JsonPath lengths_path = path.Field("lengths");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* offsets, RequireField(item, "offsets", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* lengths, RequireField(item, "lengths", path));
  // Negative offsets are accepted: validation reports them (out_of_bounds).
  DCPLAN_TOOL_ASSIGN_OR_RETURN(out->chunk.offsets, ReadShape(*offsets, offsets_path, /*non_negative=*/false));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(out->chunk.sizes, ReadShape(*lengths, lengths_path, /*non_negative=*/true));
  DCPLAN_TOOL_RETURN_IF_ERROR(
      CheckChunkShape(out->size, out->chunk.offsets, offsets_path, out->chunk.sizes, lengths_path));
  if (for_save) DCPLAN_TOOL_RETURN_IF_ERROR(CheckByteSize(out->properties.dtype, out->chunk.sizes, lengths_path));
  return absl::OkStatus();
}

absl::StatusOr<ScenarioItem> ReadScenarioItem(const Json& item, const JsonPath& path, bool for_save) {
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(item, path));
  ScenarioItem out;
  const JsonPath type_path = path.Field("type");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* type, RequireField(item, "type", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(out.type, ReadItemType(*type, type_path));
  const JsonPath fqn_path = path.Field("fqn");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* fqn, RequireField(item, "fqn", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(out.fqn, ReadString(*fqn, fqn_path));
  switch (out.type) {
    case ItemType::kShard:
      NoteUnknownFields(item, path, {"fqn", "type", "size", "offsets", "lengths", "dtype"});
      DCPLAN_TOOL_RETURN_IF_ERROR(ReadTensorFields(item, path, for_save, &out));
      DCPLAN_TOOL_RETURN_IF_ERROR(ReadShardBox(item, path, for_save, &out));
      break;
    case ItemType::kTensor:
      NoteUnknownFields(item, path, {"fqn", "type", "size", "dtype"});
      DCPLAN_TOOL_RETURN_IF_ERROR(ReadTensorFields(item, path, for_save, &out));
      out.chunk = ChunkBox{Shape(out.size.size(), 0), out.size};
      break;
    case ItemType::kBytes:
      NoteUnknownFields(item, path, {"fqn", "type", "bytes"});
      if (const Json* bytes = FindField(item, "bytes")) {
        const JsonPath bytes_path = path.Field("bytes");
        DCPLAN_TOOL_ASSIGN_OR_RETURN(out.nbytes, ReadNonNegativeInt64(*bytes, bytes_path));
      }
      break;
  }
  return out;
}

ValueDescription DescribeItem(const ScenarioItem& item) {
  switch (item.type) {
    case ItemType::kShard:
      return ShardedTensor{item.size, item.properties, {item.chunk}};
    case ItemType::kTensor:
      return WholeTensor{item.size, item.properties};
    case ItemType::kBytes:
      break;
  }
  return OpaqueValue{item.nbytes};
}

// Calls `visit(item, item_path)` for each item of each rank, after checking
// the rank entry itself; `start_rank(rank)` runs before a rank's items.
template <typename StartRank, typename VisitItem>
absl::Status ForEachRankItem(const Json& root, const JsonPath& root_path, bool for_save, StartRank start_rank,
                             VisitItem visit) {
  const JsonPath ranks_path = root_path.Field("ranks");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* ranks, RequireField(root, "ranks", root_path));
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectArray(*ranks, ranks_path));
  for (size_t r = 0; r < ranks->size(); ++r) {
    const Json& rank = (*ranks)[r];
    const JsonPath rank_path = ranks_path.Index(r);
    DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(rank, rank_path));
    NoteUnknownFields(rank, rank_path, {"rank", "items"});
    const JsonPath number_path = rank_path.Field("rank");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* number, RequireField(rank, "rank", rank_path));
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const int64_t rank_number, ReadInt64(*number, number_path));
    if (rank_number != static_cast<int64_t>(r)) {
      return UsageError(number_path, absl::StrCat("expected ", r, " (ranks are listed in rank order), got ",
                                                  rank_number));
    }
    const JsonPath items_path = rank_path.Field("items");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* items, RequireField(rank, "items", rank_path));
    DCPLAN_TOOL_RETURN_IF_ERROR(ExpectArray(*items, items_path));
    DCPLAN_TOOL_RETURN_IF_ERROR(start_rank(rank_number));
    for (size_t i = 0; i < items->size(); ++i) {
      const JsonPath item_path = items_path.Index(i);
      DCPLAN_TOOL_ASSIGN_OR_RETURN(ScenarioItem item, ReadScenarioItem((*items)[i], item_path, for_save));
      DCPLAN_TOOL_RETURN_IF_ERROR(visit(std::move(item), item_path, i));
    }
  }
  return absl::OkStatus();
}

// Builds one rank's local save plan from its items, in input order (see
// ParseSaveScenario).
class LocalSavePlanBuilder {
 public:
  explicit LocalSavePlanBuilder(int64_t rank) : rank_(rank) {}

  absl::Status Add(ScenarioItem item) {
    if (ExtendsLastShardedTensor(item)) {
      std::get<ShardedTensor>(segment_.values.at_position(segment_.values.size() - 1).second)
          .local_chunks.push_back(std::move(item.chunk));
      return absl::OkStatus();
    }
    if (segment_.values.Contains(item.fqn)) DCPLAN_TOOL_RETURN_IF_ERROR(Flush());
    segment_.values.InsertOrAssign(item.fqn, DescribeItem(item));
    return absl::OkStatus();
  }

  absl::StatusOr<SavePlan> Finish() {
    DCPLAN_TOOL_RETURN_IF_ERROR(Flush());
    return std::move(plan_);
  }

 private:
  bool ExtendsLastShardedTensor(const ScenarioItem& item) const {
    if (item.type != ItemType::kShard || segment_.values.empty()) return false;
    const auto& [fqn, value] = segment_.values.at_position(segment_.values.size() - 1);
    const auto* sharded = std::get_if<ShardedTensor>(&value);
    return fqn == item.fqn && sharded != nullptr && sharded->global_shape == item.size &&
           sharded->properties == item.properties;
  }

  absl::Status Flush() {
    if (segment_.values.empty()) return absl::OkStatus();
    absl::StatusOr<SavePlan> local = CreateLocalSavePlan(segment_, /*is_coordinator=*/rank_ == 0);
    if (!local.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("ranks[", rank_, "]: ", local.status().message()));
    }
    for (WriteItem& item : local->items) plan_.items.push_back(std::move(item));
    segment_ = StateDictDescription();
    return absl::OkStatus();
  }

  int64_t rank_;
  StateDictDescription segment_;
  SavePlan plan_;
};

absl::StatusOr<SavePlannerOptions> ReadSaveOptions(const Json& root, const JsonPath& root_path) {
  SavePlannerOptions options;
  options.flatten_state_dict = false;  // scenarios carry no flatten mapping
  const Json* json = FindField(root, "options");
  if (json == nullptr) return options;
  const JsonPath path = root_path.Field("options");
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(*json, path));
  NoteUnknownFields(*json, path, {"dedup", "dedup_save_to_lowest_rank", "rewrite_index_hints"});
  if (const Json* dedup = FindField(*json, "dedup")) {
    const JsonPath dedup_path = path.Field("dedup");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const std::string name, ReadString(*dedup, dedup_path));
    if (name == "pytorch") {
      options.dedup = DedupPolicy::kPyTorch;
    } else if (name == "balanced") {
      options.dedup = DedupPolicy::kBalanced;
    } else if (name == "lowest_rank") {
      options.dedup = DedupPolicy::kLowestRank;
    } else {
      return UsageError(dedup_path, absl::StrCat("unknown dedup policy ", Quoted(name),
                                                 " (expected \"pytorch\", \"balanced\" or \"lowest_rank\")"));
    }
  }
  if (const Json* lowest = FindField(*json, "dedup_save_to_lowest_rank")) {
    const JsonPath lowest_path = path.Field("dedup_save_to_lowest_rank");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const bool to_lowest, ReadBool(*lowest, lowest_path));
    if (to_lowest) options.dedup = DedupPolicy::kLowestRank;
  }
  if (const Json* rewrite = FindField(*json, "rewrite_index_hints")) {
    const JsonPath rewrite_path = path.Field("rewrite_index_hints");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(options.rewrite_index_hints, ReadBool(*rewrite, rewrite_path));
  }
  return options;
}

absl::StatusOr<LoadPlannerOptions> ReadLoadOptions(const Json& root, const JsonPath& root_path) {
  LoadPlannerOptions options;
  const Json* json = FindField(root, "options");
  if (json == nullptr) return options;
  const JsonPath path = root_path.Field("options");
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(*json, path));
  NoteUnknownFields(*json, path, {"strict"});
  if (const Json* strict = FindField(*json, "strict")) {
    const JsonPath strict_path = path.Field("strict");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(options.strict, ReadBool(*strict, strict_path));
  }
  return options;
}

// Adds one requested item to a rank's load description (see
// ParseLoadScenario for what may repeat).
absl::Status AddLoadRequest(ScenarioItem item, const JsonPath& path, size_t position,
                            absl::flat_hash_map<std::string, size_t>* first_position, RankLoadRequest* request) {
  auto [first, inserted] = first_position->try_emplace(item.fqn, position);
  if (inserted) {
    const int64_t hint = item.type == ItemType::kBytes ? -1 : 0;
    request->input_position[{item.fqn, hint}] = position;
    request->description.values.InsertOrAssign(item.fqn, DescribeItem(item));
    return absl::OkStatus();
  }
  auto* sharded = std::get_if<ShardedTensor>(request->description.values.Find(item.fqn));
  if (item.type != ItemType::kShard || sharded == nullptr) {
    const JsonPath fqn_path = path.Field("fqn");
    return UsageError(fqn_path, absl::StrCat(Quoted(item.fqn), " is already requested by items[", first->second,
                                             "] (only shard items may repeat an fqn)"));
  }
  if (sharded->global_shape != item.size) {
    const JsonPath size_path = path.Field("size");
    return UsageError(size_path, absl::StrCat("differs from the size ", ShapeToString(sharded->global_shape),
                                              " of items[", first->second, "] (same fqn)"));
  }
  request->input_position[{item.fqn, static_cast<int64_t>(sharded->local_chunks.size())}] = position;
  sharded->local_chunks.push_back(std::move(item.chunk));
  return absl::OkStatus();
}

absl::Status ReadChunkList(const Json& value, const JsonPath& path, const Shape& size,
                           std::vector<ChunkBox>* chunks) {
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectArray(value, path));
  for (size_t c = 0; c < value.size(); ++c) {
    const Json& chunk = value[c];
    const JsonPath chunk_path = path.Index(c);
    DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(chunk, chunk_path));
    NoteUnknownFields(chunk, chunk_path, {"offsets", "sizes"});
    const JsonPath offsets_path = chunk_path.Field("offsets");
    const JsonPath sizes_path = chunk_path.Field("sizes");
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* offsets, RequireField(chunk, "offsets", chunk_path));
    DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* sizes, RequireField(chunk, "sizes", chunk_path));
    ChunkBox box;
    DCPLAN_TOOL_ASSIGN_OR_RETURN(box.offsets, ReadShape(*offsets, offsets_path, /*non_negative=*/false));
    DCPLAN_TOOL_ASSIGN_OR_RETURN(box.sizes, ReadShape(*sizes, sizes_path, /*non_negative=*/true));
    DCPLAN_TOOL_RETURN_IF_ERROR(CheckChunkShape(size, box.offsets, offsets_path, box.sizes, sizes_path));
    chunks->push_back(std::move(box));
  }
  return absl::OkStatus();
}

absl::StatusOr<StorageMetadata> ReadStorageMetadata(const Json& entry, const JsonPath& path) {
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(entry, path));
  const JsonPath type_path = path.Field("type");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* type_json, RequireField(entry, "type", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const std::string type, ReadString(*type_json, type_path));
  if (type == "bytes") {
    NoteUnknownFields(entry, path, {"type"});
    return BytesStorageMetadata();
  }
  if (type != "tensor") {
    return UsageError(type_path, absl::StrCat("unknown entry type ", Quoted(type),
                                              " (expected \"tensor\" or \"bytes\")"));
  }
  NoteUnknownFields(entry, path, {"type", "dtype", "size", "chunks"});
  TensorStorageMetadata tensor;
  const JsonPath dtype_path = path.Field("dtype");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* dtype, RequireField(entry, "dtype", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.properties.dtype, ReadDType(*dtype, dtype_path));
  const JsonPath size_path = path.Field("size");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* size, RequireField(entry, "size", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.size, ReadShape(*size, size_path, /*non_negative=*/true));
  const JsonPath chunks_path = path.Field("chunks");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* chunks, RequireField(entry, "chunks", path));
  DCPLAN_TOOL_RETURN_IF_ERROR(ReadChunkList(*chunks, chunks_path, tensor.size, &tensor.chunks));
  return tensor;
}

}  // namespace

absl::StatusOr<std::string> ReadScenarioKind(const Json& root) {
  const JsonPath root_path = JsonPath::Root();
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(root, root_path));
  const JsonPath kind_path = root_path.Field("kind");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* kind_json, RequireField(root, "kind", root_path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(std::string kind, ReadString(*kind_json, kind_path));
  if (kind != "save" && kind != "load") {
    return UsageError(kind_path, absl::StrCat("unknown scenario kind ", Quoted(kind),
                                              " (expected \"save\" or \"load\")"));
  }
  return kind;
}

absl::StatusOr<SaveScenario> ParseSaveScenario(const Json& root) {
  const JsonPath root_path = JsonPath::Root();
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(root, root_path));
  NoteUnknownFields(root, root_path, {"kind", "options", "ranks"});
  SaveScenario scenario;
  DCPLAN_TOOL_ASSIGN_OR_RETURN(scenario.options, ReadSaveOptions(root, root_path));
  std::optional<LocalSavePlanBuilder> builder;
  auto finish_rank = [&]() -> absl::Status {
    if (!builder) return absl::OkStatus();
    DCPLAN_TOOL_ASSIGN_OR_RETURN(SavePlan plan, builder->Finish());
    scenario.local_plans.push_back(std::move(plan));
    return absl::OkStatus();
  };
  DCPLAN_TOOL_RETURN_IF_ERROR(ForEachRankItem(
      root, root_path, /*for_save=*/true,
      [&](int64_t rank) -> absl::Status {
        DCPLAN_TOOL_RETURN_IF_ERROR(finish_rank());
        builder.emplace(rank);
        return absl::OkStatus();
      },
      [&](ScenarioItem item, const JsonPath&, size_t) { return builder->Add(std::move(item)); }));
  DCPLAN_TOOL_RETURN_IF_ERROR(finish_rank());
  return scenario;
}

absl::StatusOr<LoadScenario> ParseLoadScenario(const Json& root) {
  const JsonPath root_path = JsonPath::Root();
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(root, root_path));
  NoteUnknownFields(root, root_path, {"kind", "options", "metadata", "ranks"});
  LoadScenario scenario;
  DCPLAN_TOOL_ASSIGN_OR_RETURN(scenario.options, ReadLoadOptions(root, root_path));
  const JsonPath metadata_path = root_path.Field("metadata");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* metadata, RequireField(root, "metadata", root_path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(scenario.metadata.state_dict_metadata,
                               ParseStateDictMetadata(*metadata, metadata_path));
  absl::flat_hash_map<std::string, size_t> first_position;
  DCPLAN_TOOL_RETURN_IF_ERROR(ForEachRankItem(
      root, root_path, /*for_save=*/false,
      [&](int64_t) {
        scenario.ranks.emplace_back();
        first_position.clear();
        return absl::OkStatus();
      },
      [&](ScenarioItem item, const JsonPath& path, size_t position) {
        return AddLoadRequest(std::move(item), path, position, &first_position, &scenario.ranks.back());
      }));
  return scenario;
}

absl::StatusOr<StateDictMetadata> ParseStateDictMetadata(const Json& value, const JsonPath& path) {
  DCPLAN_TOOL_RETURN_IF_ERROR(ExpectObject(value, path));
  StateDictMetadata metadata;
  metadata.reserve(value.size());
  for (const auto& [fqn, entry] : value.items()) {
    const JsonPath entry_path = path.Key(fqn);
    DCPLAN_TOOL_ASSIGN_OR_RETURN(StorageMetadata storage, ReadStorageMetadata(entry, entry_path));
    metadata.InsertOrAssign(fqn, std::move(storage));
  }
  return metadata;
}

}  // namespace dcplan::tools
