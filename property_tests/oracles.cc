#include "property_tests/oracles.h"

#include <map>
#include <ostream>
#include <set>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dcplan {
namespace proptest {

int64_t ElementBytesReference(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kComplex64:
    case DType::kInt64:
    case DType::kUInt64:
      return 8;
    case DType::kComplex128:
      return 16;
    case DType::kFloat32:
    case DType::kComplex32:
    case DType::kInt32:
    case DType::kUInt32:
    case DType::kQInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
    case DType::kUInt16:
      return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E5M2:
    case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2FNUZ:
    case DType::kQInt8:
    case DType::kQUInt8:
    case DType::kQUInt4x2:
    case DType::kQUInt2x4:
      return 1;
  }
  return 0;
}

namespace {

int64_t Product(const Shape& dims) {
  int64_t product = 1;
  for (int64_t d : dims) product *= d;
  return product;
}

}  // namespace

int64_t PayloadBytesReference(const WriteItem& item) {
  if (!item.tensor_data) return item.bytes_io_nbytes.value_or(0);
  return Product(item.tensor_data->chunk.sizes) * ElementBytesReference(item.tensor_data->properties.dtype);
}

std::optional<int64_t> StorageBytesReference(const WriteItem& item) {
  if (!item.tensor_data) return std::nullopt;
  return Product(item.tensor_data->size) * ElementBytesReference(item.tensor_data->properties.dtype);
}

std::string JoinedKey(const ObjectPath& path) {
  std::string key;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i > 0) key += ".";
    if (const auto* name = std::get_if<std::string>(&path[i])) {
      key += *name;
    } else {
      key += std::to_string(std::get<int64_t>(path[i]));
    }
  }
  return key;
}

StateDictDescription DescribeCheckpointReference(const Metadata& metadata,
                                                 const std::optional<absl::flat_hash_set<std::string>>& keys) {
  StateDictDescription description;
  if (metadata.planner_data) description.mapping.emplace();
  for (const auto& [key, entry] : metadata.state_dict_metadata) {
    const ObjectPath* path = metadata.planner_data ? metadata.planner_data->Find(key) : nullptr;
    bool included = !keys || keys->contains(key);
    std::string prefix;
    for (size_t i = 0; path != nullptr && !included && i < path->size(); ++i) {
      if (i > 0) prefix += ".";
      const PathElement& element = (*path)[i];
      prefix += std::holds_alternative<std::string>(element) ? std::get<std::string>(element)
                                                            : std::to_string(std::get<int64_t>(element));
      included = keys->contains(prefix);
    }
    if (!included) continue;
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&entry)) {
      description.values.InsertOrAssign(key, WholeTensor{tensor->size, tensor->properties});
    } else {
      description.values.InsertOrAssign(key, OpaqueValue{});
    }
    if (description.mapping) description.mapping->InsertOrAssign(key, path ? *path : ObjectPath{key});
  }
  return description;
}

FlattenMapping ChainMapReference(const std::vector<SavePlan>& plans) {
  std::vector<std::string> order;
  std::set<std::string> listed;
  for (size_t r = plans.size(); r > 0; --r) {
    for (const auto& [key, path] : *plans[r - 1].planner_data) {
      if (listed.insert(key).second) order.push_back(key);
    }
  }
  FlattenMapping merged;
  for (const std::string& key : order) {
    for (const SavePlan& plan : plans) {
      if (const ObjectPath* path = plan.planner_data->Find(key)) {
        merged.InsertOrAssign(key, *path);
        break;
      }
    }
  }
  return merged;
}

std::ostream& operator<<(std::ostream& os, const ExpectedProblem& p) {
  os << ProblemKindName(p.kind) << " chunks=[" << absl::StrJoin(p.chunks, ", ") << "]";
  if (p.kind == ProblemKind::kVolume) os << " expected=" << p.expected << " actual=" << p.actual;
  return os;
}

std::vector<std::vector<__int128>> ElementsOf(const ChunkBox& box) {
  std::vector<std::vector<__int128>> elements;
  if (box.offsets.size() != box.sizes.size()) return elements;
  for (int64_t s : box.sizes) {
    if (s <= 0) return elements;
  }
  std::vector<__int128> at(box.offsets.begin(), box.offsets.end());
  while (true) {
    elements.push_back(at);
    // Odometer over the dims, last dim fastest.
    size_t d = box.sizes.size();
    while (d > 0) {
      --d;
      if (++at[d] < static_cast<__int128>(box.offsets[d]) + box.sizes[d]) break;
      at[d] = box.offsets[d];
      if (d == 0) return elements;
    }
    if (box.sizes.empty()) return elements;
  }
}

std::optional<std::vector<ExpectedProblem>> ValidationByEnumeration(const Shape& size,
                                                                    const std::vector<ChunkBox>& chunks,
                                                                    int64_t max_chunk_elements) {
  std::vector<ExpectedProblem> problems;
  for (int64_t d : size) {
    if (d < 0) return std::nullopt;
  }
  if (size.empty()) return problems;
  const size_t rank = size.size();
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkBox& c = chunks[i];
    bool inside = c.offsets.size() == rank && c.sizes.size() == rank;
    for (size_t d = 0; inside && d < rank; ++d) {
      inside = c.offsets[d] >= 0 && c.sizes[d] >= 0 && static_cast<__int128>(c.offsets[d]) + c.sizes[d] <= size[d];
    }
    if (!inside) problems.push_back(ExpectedProblem{ProblemKind::kOutOfBounds, {static_cast<int64_t>(i)}, 0, 0});
  }

  std::map<std::vector<__int128>, std::vector<int64_t>> owners;
  __int128 covered = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkBox& c = chunks[i];
    __int128 count = 1;
    for (int64_t s : c.sizes) count *= s < 0 ? 0 : s;
    if (count > max_chunk_elements) return std::nullopt;
    covered += count;
    if (c.offsets.size() != rank || c.sizes.size() != rank) continue;
    for (std::vector<__int128>& element : ElementsOf(c)) owners[std::move(element)].push_back(static_cast<int64_t>(i));
  }
  std::set<std::pair<int64_t, int64_t>> pairs;
  for (const auto& [element, ids] : owners) {
    for (size_t a = 0; a < ids.size(); ++a) {
      for (size_t b = a + 1; b < ids.size(); ++b) pairs.insert({ids[a], ids[b]});
    }
  }
  // The documented report limit (engine/validate.h): the 64 smallest pairs,
  // then one summary problem without chunks when there are more.
  constexpr size_t kListedPairs = 64;
  size_t listed = 0;
  for (const auto& [i, j] : pairs) {
    if (listed++ == kListedPairs) break;
    problems.push_back(ExpectedProblem{ProblemKind::kOverlap, {i, j}, 0, 0});
  }
  if (pairs.size() > kListedPairs) problems.push_back(ExpectedProblem{ProblemKind::kOverlap, {}, 0, 0});

  int64_t tensor_elements = 1;
  for (int64_t d : size) tensor_elements *= d;
  if (covered != tensor_elements) {
    problems.push_back(ExpectedProblem{ProblemKind::kVolume, {}, tensor_elements, static_cast<int64_t>(covered)});
  }
  return problems;
}

std::vector<ExpectedProblem> Summarize(const std::vector<PlanProblem>& problems) {
  std::vector<ExpectedProblem> out;
  for (const PlanProblem& p : problems) {
    ExpectedProblem e{p.kind, p.chunks, 0, 0};
    if (p.kind == ProblemKind::kVolume) {
      e.expected = p.expected;
      e.actual = p.actual;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace proptest
}  // namespace dcplan
