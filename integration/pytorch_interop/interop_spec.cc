#include "integration/pytorch_interop/interop_spec.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dcplan::interop {
namespace {

using tools::Json;
using tools::JsonPath;

absl::StatusOr<std::vector<ShardBox>> ReadRankShards(const Json& boxes, const TensorSpec& tensor,
                                                     const JsonPath& path) {
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectArray(boxes, path));
  std::vector<ShardBox> out;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const JsonPath box_path = path.Index(i);
    DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectArray(boxes[i], box_path));
    if (boxes[i].size() != 2) return tools::UsageError(box_path, "expected [offsets, lengths]");
    const JsonPath offsets_path = box_path.Index(0);
    const JsonPath lengths_path = box_path.Index(1);
    ShardBox box;
    DCPLAN_TOOL_ASSIGN_OR_RETURN(box.offsets, tools::ReadShape(boxes[i][0], offsets_path, /*non_negative=*/true));
    DCPLAN_TOOL_ASSIGN_OR_RETURN(box.lengths, tools::ReadShape(boxes[i][1], lengths_path, /*non_negative=*/true));
    DCPLAN_TOOL_RETURN_IF_ERROR(
        tools::CheckChunkShape(tensor.shape, box.offsets, offsets_path, box.lengths, lengths_path));
    for (size_t d = 0; d < tensor.shape.size(); ++d) {
      if (box.offsets[d] + box.lengths[d] > tensor.shape[d]) {
        return tools::UsageError(box_path, absl::StrCat("box leaves the tensor in dim ", d));
      }
    }
    out.push_back(std::move(box));
  }
  return out;
}

absl::StatusOr<TensorSpec> ReadTensor(const std::string& fqn, const Json& json, int64_t world_size,
                                      const JsonPath& path) {
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectObject(json, path));
  TensorSpec tensor;
  tensor.fqn = fqn;
  const JsonPath dtype_path = path.Field("dtype");
  const JsonPath shape_path = path.Field("shape");
  const JsonPath file_path = path.Field("file");
  const JsonPath shards_path = path.Field("shards");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* dtype, tools::RequireField(json, "dtype", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.dtype, tools::ReadDType(*dtype, dtype_path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* shape, tools::RequireField(json, "shape", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.shape, tools::ReadShape(*shape, shape_path, /*non_negative=*/true));
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::CheckByteSize(tensor.dtype, tensor.shape, shape_path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* file, tools::RequireField(json, "file", path));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.file, tools::ReadString(*file, file_path));
  if (const Json* whole = tools::FindField(json, "whole")) {
    DCPLAN_TOOL_ASSIGN_OR_RETURN(tensor.whole, tools::ReadBool(*whole, path.Field("whole")));
  }
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* shards, tools::RequireField(json, "shards", path));
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectArray(*shards, shards_path));
  if (static_cast<int64_t>(shards->size()) != world_size) {
    return tools::UsageError(shards_path, absl::StrCat("expected one shard list per rank (", world_size, ")"));
  }
  for (size_t rank = 0; rank < shards->size(); ++rank) {
    DCPLAN_TOOL_ASSIGN_OR_RETURN(std::vector<ShardBox> boxes,
                                 ReadRankShards((*shards)[rank], tensor, shards_path.Index(rank)));
    tensor.shards.push_back(std::move(boxes));
  }
  return tensor;
}

}  // namespace

absl::StatusOr<InteropSpec> ReadInteropSpec(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open the spec"));
  std::ostringstream text;
  text << file.rdbuf();
  DCPLAN_TOOL_ASSIGN_OR_RETURN(Json json, tools::ParseJsonText(text.str()));
  const JsonPath root = JsonPath::Root();
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectObject(json, root));
  InteropSpec spec;
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* world, tools::RequireField(json, "world_size", root));
  DCPLAN_TOOL_ASSIGN_OR_RETURN(spec.world_size, tools::ReadNonNegativeInt64(*world, root.Field("world_size")));
  if (spec.world_size < 1) return tools::UsageError(root.Field("world_size"), "must be at least 1");
  if (const Json* lists = tools::FindField(json, "lists")) {
    const JsonPath lists_path = root.Field("lists");
    DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectArray(*lists, lists_path));
    for (size_t i = 0; i < lists->size(); ++i) {
      DCPLAN_TOOL_ASSIGN_OR_RETURN(std::string prefix, tools::ReadString((*lists)[i], lists_path.Index(i)));
      spec.lists.push_back(std::move(prefix));
    }
  }
  const JsonPath tensors_path = root.Field("tensors");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* tensors, tools::RequireField(json, "tensors", root));
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectObject(*tensors, tensors_path));
  for (const auto& [fqn, entry] : tensors->items()) {
    DCPLAN_TOOL_ASSIGN_OR_RETURN(TensorSpec tensor, ReadTensor(fqn, entry, spec.world_size, tensors_path.Key(fqn)));
    spec.tensors.push_back(std::move(tensor));
  }
  const JsonPath values_path = root.Field("values");
  DCPLAN_TOOL_ASSIGN_OR_RETURN(const Json* values, tools::RequireField(json, "values", root));
  DCPLAN_TOOL_RETURN_IF_ERROR(tools::ExpectObject(*values, values_path));
  for (const auto& [fqn, value] : values->items()) spec.values.push_back(ValueSpec{fqn, value});
  return spec;
}

}  // namespace dcplan::interop
