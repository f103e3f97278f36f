#include "fuzz/pipeline_checks.h"

#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/codec.h"
#include "engine/testing/validate_oracle.h"
#include "engine/validate.h"
#include "fuzz/pipeline_oracles.h"
#include "property_tests/oracles.h"

namespace dcplan::fuzzing {
namespace {

bool SameExceptHint(const WriteItem& a, const WriteItem& b) {
  return a.index == b.index && a.type == b.type && a.bytes_io_nbytes == b.bytes_io_nbytes &&
         a.tensor_data == b.tensor_data;
}

std::string DescribePlans(const std::vector<SavePlan>& plans) {
  std::string text;
  for (size_t r = 0; r < plans.size(); ++r) absl::StrAppend(&text, "rank ", r, ":\n", ToString(plans[r]), "\n");
  return text;
}

// ---- Global save plan ------------------------------------------------------------

void CheckPlansAreSubsequences(const std::vector<SavePlan>& local_plans, const GlobalSavePlan& global,
                               bool rewrite_index_hints) {
  FUZZ_CHECK(global.plans.size() == local_plans.size(),
             absl::StrCat(global.plans.size(), " global plans for ", local_plans.size(), " ranks"));
  for (size_t r = 0; r < local_plans.size(); ++r) {
    const SavePlan& local = local_plans[r];
    const SavePlan& kept = global.plans[r];
    size_t next = 0;
    for (const WriteItem& item : kept.items) {
      const bool keeps_hint = !rewrite_index_hints || item.type == WriteItemType::kByteIO;
      while (next < local.items.size() &&
             !(SameExceptHint(local.items[next], item) &&
               (!keeps_hint || local.items[next].index.index == item.index.index))) {
        ++next;
      }
      FUZZ_CHECK(next < local.items.size(), absl::StrCat("rank ", r, "'s global plan has ", ToString(item),
                                                         " which is not (in order) in its local plan:\n",
                                                         ToString(local), "\nglobal:\n", ToString(kept)));
      ++next;
    }
    FUZZ_CHECK(kept.storage_data == local.storage_data && kept.planner_data == local.planner_data &&
                   kept.usable == local.usable,
               absl::StrCat("rank ", r, ": dedup or the global plan changed a plan's other fields"));
  }
}

void CheckKeyOwnership(const std::vector<SavePlan>& local_plans, const SavePlannerOptions& options,
                       const GlobalSavePlan& global, bool clean) {
  absl::flat_hash_map<MetadataIndex, std::vector<int64_t>> writers;  // distinct ranks, ascending
  absl::flat_hash_map<MetadataIndex, int64_t> copies;
  for (size_t r = 0; r < global.plans.size(); ++r) {
    for (const WriteItem& item : global.plans[r].items) {
      std::vector<int64_t>& ranks = writers[item.index];
      if (ranks.empty() || ranks.back() != static_cast<int64_t>(r)) ranks.push_back(static_cast<int64_t>(r));
      ++copies[item.index];
    }
  }
  absl::flat_hash_set<std::string> dropped_fqns;
  for (const PlanProblem& problem : global.problems) {
    if (problem.kind == ProblemKind::kPlanError) dropped_fqns.insert(problem.fqn);
  }
  absl::flat_hash_map<MetadataIndex, int64_t> owners;
  if (clean && options.dedup != DedupPolicy::kBalanced) {
    absl::StatusOr<absl::flat_hash_map<MetadataIndex, int64_t>> reference =
        DedupOwnersReference(local_plans, options.dedup);
    FUZZ_CHECK(reference.ok(), "clean scenario, yet an item size overflows: " + reference.status().ToString());
    owners = *std::move(reference);
  }
  for (const SavePlan& plan : local_plans) {
    for (const WriteItem& item : plan.items) {
      const std::vector<int64_t>& ranks = writers[item.index];
      FUZZ_CHECK(ranks.size() <= 1, absl::StrCat(ToString(item.index), " is written by ", ranks.size(), " ranks (",
                                                 DedupPolicyName(options.dedup), " dedup)"));
      FUZZ_CHECK(ranks.size() == 1 || dropped_fqns.contains(item.index.fqn),
                 absl::StrCat(ToString(item.index), " is written by no rank and no plan error explains it"));
      if (!clean) continue;
      FUZZ_CHECK(copies[item.index] == 1, absl::StrCat(ToString(item.index), " is written ", copies[item.index],
                                                       " times in a clean scenario"));
      if (!owners.empty()) {
        FUZZ_CHECK(ranks.front() == owners[item.index],
                   absl::StrCat(ToString(item.index), " is written by rank ", ranks.front(), ", ",
                                DedupPolicyName(options.dedup), " dedup picks rank ", owners[item.index], "\n",
                                DescribePlans(local_plans)));
      }
    }
  }
}

// The metadata lists exactly the kept items, in plan order.
void CheckMetadataMatchesPlans(const GlobalSavePlan& global, bool rewrite_index_hints) {
  const StateDictMetadata& metadata = global.metadata.state_dict_metadata;
  std::vector<std::string> first_seen;
  absl::flat_hash_map<std::string, size_t> chunks_seen;
  for (size_t r = 0; r < global.plans.size(); ++r) {
    for (const WriteItem& item : global.plans[r].items) {
      const std::string& fqn = item.index.fqn;
      const StorageMetadata* entry = metadata.Find(fqn);
      FUZZ_CHECK(entry != nullptr, absl::StrCat("kept item ", ToString(item), " has no metadata entry"));
      auto [count, first] = chunks_seen.try_emplace(fqn, 0);
      if (first) first_seen.push_back(fqn);
      if (item.type == WriteItemType::kByteIO) {
        FUZZ_CHECK(std::holds_alternative<BytesStorageMetadata>(*entry),
                   absl::StrCat("bytes item ", ToString(item), " but metadata ", ToString(*entry)));
        continue;
      }
      const auto* tensor = std::get_if<TensorStorageMetadata>(entry);
      FUZZ_CHECK(tensor != nullptr && item.tensor_data.has_value(),
                 absl::StrCat("tensor item ", ToString(item), " but metadata ", ToString(*entry)));
      const size_t k = count->second++;
      FUZZ_CHECK(k < tensor->chunks.size() && tensor->chunks[k] == item.tensor_data->chunk,
                 absl::StrCat("chunk ", k, " of '", fqn, "' in plan order is ", ToString(item.tensor_data->chunk),
                              ", metadata says ", ToString(*entry)));
      if (k == 0) {
        FUZZ_CHECK(tensor->properties == item.tensor_data->properties && tensor->size == item.tensor_data->size,
                   absl::StrCat("metadata of '", fqn, "' does not take its first item's properties and size: ",
                                ToString(*entry), " vs ", ToString(item)));
      }
      if (rewrite_index_hints) {
        FUZZ_CHECK(item.index.index == static_cast<int64_t>(k),
                   absl::StrCat(ToString(item), " should have index hint ", k));
      }
    }
  }
  FUZZ_CHECK(first_seen.size() == metadata.size(),
             absl::StrCat(metadata.size(), " metadata entries for ", first_seen.size(), " kept keys"));
  for (size_t i = 0; i < first_seen.size(); ++i) {
    const auto& [fqn, entry] = metadata.at_position(i);
    FUZZ_CHECK(fqn == first_seen[i], absl::StrCat("metadata key ", i, " is '", fqn, "', the plans first write '",
                                                  first_seen[i], "'"));
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&entry)) {
      FUZZ_CHECK(tensor->chunks.size() == chunks_seen[fqn],
                 absl::StrCat("'", fqn, "' has ", tensor->chunks.size(), " chunks for ", chunks_seen[fqn], " items"));
    }
  }
}

void CheckProblemOrder(const GlobalSavePlan& global) {
  const std::vector<PlanProblem> validation = ValidateMetadata(global.metadata.state_dict_metadata);
  const std::vector<PlanProblem>& problems = global.problems;
  FUZZ_CHECK(problems.size() >= validation.size() &&
                 std::equal(validation.begin(), validation.end(), problems.end() - validation.size()),
             absl::StrCat("problems do not end with the validation problems:\n", Describe(problems),
                          "validation:\n", Describe(validation)));
  const size_t head = problems.size() - validation.size();
  size_t i = 0;
  while (i < head && problems[i].kind == ProblemKind::kConflict) ++i;
  while (i < head && problems[i].kind == ProblemKind::kPlanError) ++i;
  FUZZ_CHECK(i == head, "problems before validation's are not conflicts then plan errors:\n" + Describe(problems));
}

// ---- Load ---------------------------------------------------------------------------

int64_t LinearIndex(const Shape& coordinates, const Shape& extent) {
  int64_t index = 0;
  for (size_t d = 0; d < extent.size(); ++d) index = index * extent[d] + coordinates[d];
  return index;
}

// Calls `visit` with every coordinate inside [0, extent) in row-major order.
template <typename Visit>
void ForEachCoordinate(const Shape& extent, Visit visit) {
  for (int64_t n : extent) {
    if (n <= 0) return;
  }
  Shape coordinates(extent.size(), 0);
  while (true) {
    visit(coordinates);
    size_t d = extent.size();
    while (d > 0 && ++coordinates[d - 1] == extent[d - 1]) coordinates[--d] = 0;
    if (d == 0) return;
  }
}

Shape Plus(const Shape& a, const Shape& b) {
  Shape sum(a.size());
  for (size_t d = 0; d < a.size(); ++d) sum[d] = a[d] + b[d];
  return sum;
}

bool BoxInside(const Shape& offsets, const Shape& lengths, const Shape& extent) {
  if (offsets.size() != extent.size() || lengths.size() != extent.size()) return false;
  for (size_t d = 0; d < extent.size(); ++d) {
    if (offsets[d] < 0 || lengths[d] < 0 || offsets[d] > extent[d] - lengths[d]) return false;
  }
  return true;
}

constexpr int64_t kMaxSimulatedElements = 4096;

// Stored chunks hold the global row-major index of each of their elements;
// the read items copy them into destination arrays, which must end up holding
// their own global indices, each element written once.
void SimulateReads(const ExpectedRequest& request) {
  const TensorStorageMetadata& stored = *request.stored;
  absl::StatusOr<int64_t> volume = ShapeVolume(stored.size);
  if (stored.size.empty() || !volume.ok() || *volume > kMaxSimulatedElements) return;
  if (!ValidateTensor(request.fqn, stored).empty()) return;
  std::vector<std::vector<int64_t>> sources;
  for (const ChunkBox& chunk : stored.chunks) {
    std::vector<int64_t>& values = sources.emplace_back();
    ForEachCoordinate(chunk.sizes,
                      [&](const Shape& c) { values.push_back(LinearIndex(Plus(chunk.offsets, c), stored.size)); });
  }
  std::vector<std::vector<int64_t>> destinations;
  for (const ChunkBox& chunk : request.destination_chunks) destinations.emplace_back(*Volume(chunk), -1);
  for (const ReadItem& item : request.items) {
    const int64_t p = item.storage_index.index.value_or(-1);
    const int64_t q = item.dest_index.index.value_or(-1);
    FUZZ_CHECK(p >= 0 && p < static_cast<int64_t>(stored.chunks.size()) && q >= 0 &&
                   q < static_cast<int64_t>(destinations.size()),
               "read item with bad hints: " + ToString(item));
    const ChunkBox& source = stored.chunks[p];
    const ChunkBox& dest = request.destination_chunks[q];
    FUZZ_CHECK(BoxInside(item.storage_offsets, item.lengths, source.sizes) &&
                   BoxInside(item.dest_offsets, item.lengths, dest.sizes),
               absl::StrCat(ToString(item), " reads outside ", ToString(source), " or writes outside ",
                            ToString(dest)));
    ForEachCoordinate(item.lengths, [&](const Shape& c) {
      int64_t& slot = destinations[q][LinearIndex(Plus(item.dest_offsets, c), dest.sizes)];
      FUZZ_CHECK(slot == -1, absl::StrCat(ToString(item), " writes an element of '", request.fqn, "' ",
                                          ToString(dest), " already written"));
      slot = sources[p][LinearIndex(Plus(item.storage_offsets, c), source.sizes)];
    });
  }
  for (size_t q = 0; q < destinations.size(); ++q) {
    const ChunkBox& dest = request.destination_chunks[q];
    size_t e = 0;
    ForEachCoordinate(dest.sizes, [&](const Shape& c) {
      const int64_t want = LinearIndex(Plus(dest.offsets, c), stored.size);
      FUZZ_CHECK(destinations[q][e] == want,
                 absl::StrCat("'", request.fqn, "' destination ", ToString(dest), " element ", ShapeToString(c),
                              " holds ", destinations[q][e], " after the reads, expected ", want, "\nitems:\n",
                              DescribeAll(request.items), "stored: ", ToString(StorageMetadata(stored))));
      ++e;
    });
  }
}

template <typename Value, typename Encode, typename Decode>
void RoundTrip(const Value& value, Encode encode, Decode decode, absl::string_view what) {
  absl::StatusOr<Value> decoded = decode(encode(value));
  FUZZ_CHECK(decoded.ok(), absl::StrCat(what, " does not decode: ", decoded.status().ToString()));
  FUZZ_CHECK(*decoded == value, absl::StrCat(what, " changed in a codec round trip"));
}

}  // namespace

std::string Describe(const StateDictDescription& description) {
  std::ostringstream out;
  for (const auto& [fqn, value] : description.values) out << "  '" << fqn << "': " << value << "\n";
  return out.str();
}

std::string Describe(const std::vector<PlanProblem>& problems) { return DescribeAll(problems); }

void CheckValidationMatchesOracle(const StateDictMetadata& metadata) {
  std::vector<PlanProblem> all;
  for (const auto& [fqn, entry] : metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&entry);
    if (tensor == nullptr) continue;
    std::vector<PlanProblem> found = ValidateTensor(fqn, *tensor);
    const std::vector<PlanProblem> expected = ValidateTensorPairwise(fqn, *tensor);
    FUZZ_CHECK(found == expected, absl::StrCat("ValidateTensor disagrees with the pairwise oracle on '", fqn, "' ",
                                               ToString(entry), "\nValidateTensor:\n", Describe(found),
                                               "oracle:\n", Describe(expected)));
    all.insert(all.end(), found.begin(), found.end());
  }
  FUZZ_CHECK(ValidateMetadata(metadata) == all, "ValidateMetadata is not the concatenation of ValidateTensor");
}

void CheckLocalSavePlan(const StateDictDescription& description, const SavePlan& plan) {
  SavePlan expected;
  for (const auto& [key, value] : description.values) {
    const std::string& fqn = key;  // lambdas cannot capture structured bindings in C++17
    auto add_tensor = [&](WriteItemType type, const ChunkBox& chunk, const TensorProperties& properties,
                          const Shape& size) {
      WriteItem& item = expected.items.emplace_back();
      item.index = MetadataIndex{fqn, chunk.offsets, std::nullopt};
      item.type = type;
      item.tensor_data = TensorWriteData{chunk, properties, size};
    };
    if (const auto* whole = std::get_if<WholeTensor>(&value)) {
      add_tensor(WriteItemType::kTensor, ChunkBox{Shape(whole->shape.size(), 0), whole->shape}, whole->properties,
                 whole->shape);
    } else if (const auto* sharded = std::get_if<ShardedTensor>(&value)) {
      for (const ChunkBox& chunk : sharded->local_chunks) {
        add_tensor(WriteItemType::kShard, chunk, sharded->properties, sharded->global_shape);
      }
    } else {
      WriteItem& item = expected.items.emplace_back();
      item.index.fqn = fqn;
      item.type = WriteItemType::kByteIO;
      item.bytes_io_nbytes = std::get<OpaqueValue>(value).nbytes;
    }
  }
  expected.planner_data = description.mapping;
  FUZZ_CHECK(plan == expected, absl::StrCat("local save plan of\n", Describe(description), "is\n", ToString(plan),
                                            "\nexpected\n", ToString(expected)));
}

void CheckGlobalSavePlan(const std::vector<SavePlan>& local_plans, const SavePlannerOptions& options,
                         const GlobalSavePlan& global, bool clean) {
  CheckPlansAreSubsequences(local_plans, global, options.rewrite_index_hints);
  CheckKeyOwnership(local_plans, options, global, clean);
  CheckMetadataMatchesPlans(global, options.rewrite_index_hints);
  const Metadata& metadata = global.metadata;
  if (options.flatten_state_dict) {
    FUZZ_CHECK(metadata.planner_data == proptest::ChainMapReference(local_plans),
               "metadata.planner_data is not the ChainMap merge of the ranks' mappings");
  } else {
    FUZZ_CHECK(!metadata.planner_data.has_value(), "planner_data set without flatten_state_dict");
  }
  FUZZ_CHECK(!metadata.storage_data && !metadata.storage_meta && !metadata.version,
             "the planner filled metadata fields that belong to the storage layer");
  CheckProblemOrder(global);
  CheckValidationMatchesOracle(metadata.state_dict_metadata);
  FUZZ_CHECK(!clean || global.problems.empty(),
             absl::StrCat("problems in a clean scenario (", DedupPolicyName(options.dedup), " dedup):\n",
                          Describe(global.problems), "local plans:\n", DescribePlans(local_plans)));
}

void CheckLocalLoadPlan(const StateDictDescription& description, const Metadata& metadata,
                        const LoadPlannerOptions& options, int64_t rank, const LocalLoadPlan& local) {
  const std::vector<ExpectedRequest> expected = LocalLoadPlanReference(description, metadata, options.strict);
  std::vector<ReadItem> items;
  std::vector<std::pair<std::string, LoadErrorKind>> errors;
  for (const ExpectedRequest& request : expected) {
    items.insert(items.end(), request.items.begin(), request.items.end());
    for (LoadErrorKind kind : request.errors) errors.emplace_back(request.fqn, kind);
  }
  FUZZ_CHECK(local.plan.items == items,
             absl::StrCat("rank ", rank, " load plan differs from the reference\nrequests:\n", Describe(description),
                          "plan:\n", ToString(local.plan), "\nreference:\n", DescribeAll(items)));
  FUZZ_CHECK(local.plan.planner_data == description.mapping && !local.plan.storage_data,
             "load plan's planner_data is not the description's mapping");
  FUZZ_CHECK(local.errors.size() == errors.size(),
             absl::StrCat("rank ", rank, ": ", local.errors.size(), " load errors, expected ", errors.size(), ":\n",
                          LoadErrorsToStatus(local.errors).ToString(), "\nrequests:\n", Describe(description)));
  for (size_t i = 0; i < errors.size(); ++i) {
    const LoadPlanError& error = local.errors[i];
    FUZZ_CHECK(error.rank == rank && error.fqn == errors[i].first && error.kind == errors[i].second &&
                   error.message.find(error.fqn) != std::string::npos,
               absl::StrCat("load error ", i, " is '", LoadErrorsToStatus({error}).ToString(), "', expected ",
                            LoadErrorKindName(errors[i].second), " for '", errors[i].first, "' of rank ", rank));
  }
  for (const ExpectedRequest& request : expected) {
    if (request.stored != nullptr) SimulateReads(request);
  }
}

void CheckCodecRoundTrip(const std::vector<SavePlan>& plans) {
  RoundTrip(plans, [](const auto& p) { return EncodeSavePlans(p); }, DecodeSavePlans, "save plans");
}

void CheckCodecRoundTrip(const std::vector<LoadPlan>& plans) {
  RoundTrip(plans, [](const auto& p) { return EncodeLoadPlans(p); }, DecodeLoadPlans, "load plans");
}

void CheckCodecRoundTrip(const Metadata& metadata) { RoundTrip(metadata, EncodeMetadata, DecodeMetadata, "metadata"); }

}  // namespace dcplan::fuzzing
