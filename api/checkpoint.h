#ifndef DCPLAN_API_CHECKPOINT_H_
#define DCPLAN_API_CHECKPOINT_H_

// save() and load(): one call per rank, the whole DCP protocol
// (spec/planner.md §6) over a Coordinator.
//
//   dcplan::FileSystemWriter writer("/ckpt/step_100");
//   dcplan::SingleProcessCoordinator coordinator;
//   absl::StatusOr<dcplan::Metadata> md = dcplan::Save(state_dict, writer, coordinator);
//
//   dcplan::FileSystemReader reader("/ckpt/step_100");
//   absl::Status s = dcplan::Load(state_dict, reader, coordinator);
//
// Any failure on any rank is returned on every rank, listing each rank's
// error (rank, key, file, offset where known). A failed save commits nothing
// (no `.metadata`). A failed load may have filled some of the caller's tensors:
// the error says so ("tensors of this state dict may be partly loaded").

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/coordinator.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "api/storage.h"
#include "engine/metadata.h"

namespace dcplan {

// Saves `state_dict` (this rank's part). `planner` defaults to a
// DefaultSavePlanner; pass one explicitly to keep plan caching across saves.
absl::StatusOr<Metadata> Save(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                              SavePlanner* planner = nullptr);

// Loads into `state_dict` (this rank's destination tensors, filled in place;
// non-tensor values replaced). Top-level keys are processed in sorted order,
// as PyTorch does. `planner` defaults to a DefaultLoadPlanner.
absl::Status Load(StateDict& state_dict, StorageReader& reader, Coordinator& coordinator,
                  LoadPlanner* planner = nullptr);

}  // namespace dcplan

#endif  // DCPLAN_API_CHECKPOINT_H_
