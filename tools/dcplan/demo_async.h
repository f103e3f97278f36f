#ifndef DCPLAN_TOOLS_DCPLAN_DEMO_ASYNC_H_
#define DCPLAN_TOOLS_DCPLAN_DEMO_ASYNC_H_

// `dcplan demo --async`: AsyncSave followed by a stand-in training loop that
// changes every tensor of the state dict in place while the checkpoint is
// written in the background. The demo then loads the checkpoint and checks it
// against the model, bitwise: it holds the snapshot taken when AsyncSave
// returned, not the tensors as training left them.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/async_save.h"
#include "api/c10d_coordinator.h"
#include "api/coordinator.h"
#include "api/state_dict.h"
#include "api/storage.h"
#include "engine/metadata.h"

namespace dcplan::tools {

// One training step: every tensor of `state` (plain tensors, IValue tensors
// and the local shards of sharded tensors) is overwritten in place with a
// value derived from `step`. Errors: flattening errors of `state`.
absl::Status TrainingStep(const StateDict& state, int64_t step);

struct AsyncSaveWhileTrainingResult {
  absl::StatusOr<Metadata> saved = absl::UnknownError("not run");
  absl::Duration blocked;       // the AsyncSave call: what training waited
  int64_t training_steps = 0;   // steps taken while the save ran (at least 1)
};

// AsyncSave(state, writer, coordinator, options), then TrainingStep until
// the save finished, then Wait().
AsyncSaveWhileTrainingResult AsyncSaveWhileTraining(const StateDict& state, StorageWriter& writer,
                                                    Coordinator& coordinator, const AsyncSaveOptions& options);

// AsyncSave's background coordinator over c10d: a second process group of
// the ranks of `options` (ConnectC10d with a store prefix of its own) on the
// store the training coordinator's ConnectC10d serves; every rank calls it
// after that ConnectC10d.
absl::StatusOr<std::unique_ptr<C10dCoordinator>> ConnectAsyncSaveGroup(C10dOptions options);

// "AsyncSave returned after 0.012 s; 37 training steps overwrote every tensor
// while the checkpoint was written".
std::string AsyncSaveSummary(const AsyncSaveWhileTrainingResult& result);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_DEMO_ASYNC_H_
