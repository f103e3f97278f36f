#ifndef DCPLAN_TOOLS_DCPLAN_DEMO_MODEL_H_
#define DCPLAN_TOOLS_DCPLAN_DEMO_MODEL_H_

// The demo's model: the full (global) tensors and values, and how each rank
// of a world of a given size holds them.

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include "absl/status/statusor.h"
#include "api/state_dict.h"
#include "engine/object_path.h"

namespace dcplan::tools {

enum class Placement {
  kRowShards,     // split along dim 0 over all ranks (FSDP), uneven, maybe empty
  kColumnShards,  // split along dim 1 over all ranks
  kBlocks,        // a rows x columns grid of blocks (2-D / TP x FSDP)
  kReplicated,    // every rank holds the whole tensor
};

struct DemoTensor {
  ObjectPath path;
  at::Tensor global;
  Placement save_placement;
  Placement load_placement;
};

struct DemoValue {
  ObjectPath path;
  c10::IValue value;
};

struct DemoModel {
  std::vector<DemoTensor> tensors;
  std::vector<DemoValue> values;
  int64_t tensor_bytes() const;
};

// A deterministic model of about `scale` MiB of tensors.
DemoModel MakeDemoModel(int64_t scale_mib);

// What rank `rank` of `world_size` holds. With `for_load`, tensors use their
// load placement and are zero-filled destinations, and values are
// placeholders (None) to be replaced by the load.
absl::StatusOr<StateDict> RankStateDict(const DemoModel& model, int64_t rank, int64_t world_size, bool for_load);

// Checks a loaded rank state dict against the model: every element of every
// tensor piece bitwise equal, every value equal. Returns a description of the
// first mismatch as an error.
absl::Status VerifyRankStateDict(const DemoModel& model, const StateDict& loaded, int64_t rank, int64_t world_size);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_DEMO_MODEL_H_
