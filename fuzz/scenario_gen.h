#ifndef DCPLAN_FUZZ_SCENARIO_GEN_H_
#define DCPLAN_FUZZ_SCENARIO_GEN_H_

// Structure-aware generation for pipeline_fuzzer: fuzzer bytes -> what every
// rank holds on save (a sharding: FSDP splits, grids, guillotine cuts,
// replicated tensors and bytes, occasional faults) and what every rank wants
// on load (another random partition of each saved tensor).

#include <cstdint>
#include <string>
#include <vector>

#include "engine/box.h"
#include "engine/description.h"
#include "engine/metadata.h"
#include "fuzz/fuzzed_data.h"

namespace dcplan::fuzzing {

struct SaveScenario {
  // One description per rank.
  std::vector<StateDictDescription> ranks;
  bool flatten_state_dict = true;
  bool rewrite_index_hints = true;
  // The faults injected, in words. Without faults the ranks hold an exact
  // sharding of every tensor and the global plan must be valid.
  std::vector<std::string> faults;
  // Some tensor has a dimension far beyond what the scenario could hold in
  // memory (tests overflow handling): sizes may not fit in int64.
  bool huge = false;
};

SaveScenario GenerateSaveScenario(FuzzedData& in);

// Disjoint boxes covering [0, shape) exactly (all non-negative dims): one of
// an FSDP split of dim 0 into `world` parts (torch.chunk sizes, trailing
// parts empty), a grid of random cuts, or random guillotine cuts. 0-d shapes
// get the one 0-d box.
std::vector<ChunkBox> GeneratePartition(FuzzedData& in, const Shape& shape, int64_t world);

// 1-10 arbitrary boxes near [0, shape): possibly overlapping, out of bounds,
// empty, now and then with an extreme value or a wrong number of dims.
std::vector<ChunkBox> GenerateRandomBoxes(FuzzedData& in, const Shape& shape);

struct LoadScenario {
  std::vector<StateDictDescription> ranks;
  bool strict = true;
  // Some request deliberately does not match the checkpoint (wrong size,
  // chunk out of bounds, wrong type, missing key): errors are expected.
  bool mismatched_requests = false;
};

// Requests for the entries of `metadata`: per tensor, either every rank asks
// for the whole tensor, or each box of a new partition goes to one rank;
// bytes entries are requested by some ranks; occasionally a request is
// mismatched or asks for a missing key, and some rank may instead ask for
// everything (DescribeCheckpoint).
LoadScenario GenerateLoadScenario(FuzzedData& in, const Metadata& metadata);

}  // namespace dcplan::fuzzing

#endif  // DCPLAN_FUZZ_SCENARIO_GEN_H_
