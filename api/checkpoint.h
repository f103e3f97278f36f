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
// DefaultSavePlanner; pass one explicitly to keep plan caching across saves
// (a DefaultSavePlanner passed in gets set_rank(coordinator.rank())).
// Returns, on every rank, the metadata as committed (StorageWriter::Finish).
//
// Steps (spec/planner.md §6.2): reduce_scatter "plan" (local plans; global
// plan and file prefixes on the coordinator), then all_reduce "write" (every
// rank writes its items; the coordinator commits with Finish and broadcasts
// the metadata). On any failure every rank calls writer.Abort().
absl::StatusOr<Metadata> Save(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                              SavePlanner* planner = nullptr);

// Loads into `state_dict` (this rank's destination tensors, filled in place;
// non-tensor values replaced). Top-level keys are processed in sorted order,
// as PyTorch does: the planner works on a copy of the top-level mapping with
// sorted keys whose values share the caller's tensors (so the planner's
// state-dict pointer is valid only during the call); on success, the copy's
// top-level values are put back into the caller's mapping, which keeps its
// key order (entries a planner created, e.g. EmptyStateDictLoadPlanner's,
// are appended). A state dict that is not a mapping (None) is loaded as a
// copy that replaces it on success. On failure the caller's non-tensor values are
// unchanged. `planner` defaults to a DefaultLoadPlanner; a DefaultLoadPlanner
// passed in gets set_rank(coordinator.rank()).
//
// Steps (spec/planner.md §6.3): reduce_scatter "plan" (read metadata, set up
// planner and reader, local plans; global plan on the coordinator), then
// all_gather "read" (ReadData with the finished plan).
absl::Status Load(StateDict& state_dict, StorageReader& reader, Coordinator& coordinator,
                  LoadPlanner* planner = nullptr);

}  // namespace dcplan

#endif  // DCPLAN_API_CHECKPOINT_H_
