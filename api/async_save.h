#ifndef DCPLAN_API_ASYNC_SAVE_H_
#define DCPLAN_API_ASYNC_SAVE_H_

// AsyncSave: a save that returns as soon as this rank's data is snapshotted;
// the checkpoint is written and committed on a background thread while
// training goes on.
//
//   dcplan::StagingPool pool;                         // kept across saves
//   dcplan::DefaultSavePlanner planner(cached);       // kept: plan caching
//   dcplan::AsyncSaveOptions options;
//   options.planner = &planner;
//   options.staging_pool = &pool;
//   options.background_coordinator = background.get();  // its own group
//   dcplan::FileSystemWriter writer("/ckpt/step_100");
//   dcplan::AsyncSaveHandle save = dcplan::AsyncSave(state_dict, writer, coordinator, options);
//   ... train: the tensors may be changed, reused or freed ...
//   absl::StatusOr<dcplan::Metadata> md = save.Wait();
//
// Order of work, on every rank:
//   1. wait for the previous AsyncSave of the same coordinator (or of the
//      same background coordinator) to finish: at most one save in flight;
//      that save's result stays with its own handle;
//   2. plan, on the caller's thread over `coordinator` (the collective "plan"
//      step of Save, plan caching included);
//   3. stage: copy the tensors of the items this rank writes *after dedup*
//      into a buffer of the staging pool (non-tensor values are serialized
//      now). A replicated tensor is staged by the one rank that writes it,
//      not by every rank that holds it;
//   4. return. The background thread runs the "write" step of Save over
//      `background_coordinator`: every rank writes its staged items, rank 0
//      commits, every rank receives the metadata.
//
// Failure semantics are those of Save: any failure of any rank (in planning,
// staging or writing) is returned by every rank's Wait(), naming the rank; a
// failed save commits nothing (no `.metadata`) and every rank calls
// writer.Abort(). A rank that dies during the background write makes the
// others' Wait() fail naming it (over c10d with liveness watched), and the
// previous checkpoint stays loadable.
//
// Lifetimes: `writer` and the background coordinator must outlive the save
// (until Wait() returned or the handle was destroyed); the planner, the
// state dict and the staging pool are free once AsyncSave returned (the pool
// is kept alive by the save's buffer). The planner keeps references to the
// state dict's tensors until its next SetUpPlanner, like Save's.

#include <memory>

#include "absl/status/statusor.h"
#include "api/coordinator.h"
#include "api/planners.h"
#include "api/staging_pool.h"
#include "api/state_dict.h"
#include "api/storage.h"
#include "engine/metadata.h"

namespace dcplan {

struct AsyncSaveOptions {
  // Defaults to a DefaultSavePlanner of the save's own; pass one to keep plan
  // caching across saves (a DefaultSavePlanner gets set_rank).
  SavePlanner* planner = nullptr;
  // Where snapshots go. Null: a pool of the save's own (it allocates on
  // every save; keep a pool to make warm saves allocation-free).
  StagingPool* staging_pool = nullptr;
  // The coordinator of the background phase: the same ranks with the same
  // numbers as `coordinator`, used by nothing else while saves run (for
  // c10d: ConnectC10d with a store_prefix of its own; for threads: a rank of
  // a second InProcessGroup). Null is allowed only for a world size of 1.
  Coordinator* background_coordinator = nullptr;
};

namespace internal {
class AsyncSaveState;
}  // namespace internal

// The result of one AsyncSave. Move-only. Destroying a handle waits for its
// save (a save is never silently dropped).
class AsyncSaveHandle {
 public:
  AsyncSaveHandle() = default;
  explicit AsyncSaveHandle(std::shared_ptr<internal::AsyncSaveState> state);
  AsyncSaveHandle(AsyncSaveHandle&&) noexcept;
  AsyncSaveHandle& operator=(AsyncSaveHandle&& other) noexcept;  // waits for the save it replaces
  ~AsyncSaveHandle();

  // True once Wait() would return at once.
  bool Ready() const;
  // Blocks until the save finished; the committed metadata, the same on
  // every rank, or the save's error. May be called again (same result).
  // A default-constructed or moved-from handle: FailedPrecondition.
  absl::StatusOr<Metadata> Wait();

 private:
  std::shared_ptr<internal::AsyncSaveState> state_;
};

AsyncSaveHandle AsyncSave(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                          const AsyncSaveOptions& options = {});

}  // namespace dcplan

#endif  // DCPLAN_API_ASYNC_SAVE_H_
