#ifndef DCPLAN_FUZZ_PIPELINE_ORACLES_H_
#define DCPLAN_FUZZ_PIPELINE_ORACLES_H_

// Reference implementations for the fuzz targets: the obvious, slow
// transcriptions of the contracts in engine/*.h, written independently of the
// engine's code. The fuzzers compare the engine's answers with them.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/dedup.h"
#include "engine/description.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan::fuzzing {

// CreateReadItemsForChunkList by comparing every destination chunk with every
// stored chunk (load_planner.h: OverlapsPyTorch, malformed or wrong-rank
// chunks match nothing, per-dim offsets relative to each chunk).
std::vector<ReadItem> ReadItemsPairwise(absl::string_view fqn, const TensorStorageMetadata& stored,
                                        const std::vector<ChunkBox>& local_chunks);

// What one requested value of CreateLocalLoadPlan must produce.
struct ExpectedRequest {
  std::string fqn;
  std::vector<ChunkBox> destination_chunks;  // tensor requests without errors
  const TensorStorageMetadata* stored = nullptr;
  std::vector<ReadItem> items;
  std::vector<LoadErrorKind> errors;
};

// CreateLocalLoadPlan's contract, value by value (error messages aside).
std::vector<ExpectedRequest> LocalLoadPlanReference(const StateDictDescription& description,
                                                    const Metadata& metadata, bool strict);

// The rank each item key is written by after kPyTorch or kLowestRank dedup
// (dedup.h), for plans without conflicts. Error if an item's storage size
// overflows.
absl::StatusOr<absl::flat_hash_map<MetadataIndex, int64_t>> DedupOwnersReference(const std::vector<SavePlan>& plans,
                                                                                  DedupPolicy policy);

}  // namespace dcplan::fuzzing

#endif  // DCPLAN_FUZZ_PIPELINE_ORACLES_H_
