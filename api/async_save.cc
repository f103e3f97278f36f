#include "api/async_save.h"

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "api/internal/save_phases.h"
#include "api/internal/status_macros.h"
#include "api/internal/step_errors.h"

namespace dcplan {
namespace internal {

// One save's outcome and its background thread.
class AsyncSaveState {
 public:
  ~AsyncSaveState() { Join(); }

  void Finish(absl::StatusOr<Metadata> result) {
    {
      absl::MutexLock lock(&mutex_);
      result_ = std::move(result);
    }
    done_.Notify();
  }
  bool Ready() const { return done_.HasBeenNotified(); }
  // Waits for the outcome without taking it (a later save waiting its turn).
  void WaitUntilDone() const { done_.WaitForNotification(); }
  // Waits for the outcome and for the background thread to end.
  void Settle() {
    done_.WaitForNotification();
    Join();
  }
  absl::StatusOr<Metadata> Wait() {
    Settle();
    absl::MutexLock lock(&mutex_);
    return result_;
  }
  void set_thread(std::thread thread) {
    absl::MutexLock lock(&join_mutex_);
    thread_ = std::move(thread);
  }

 private:
  void Join() {
    absl::MutexLock lock(&join_mutex_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  absl::Notification done_;
  mutable absl::Mutex mutex_;
  absl::StatusOr<Metadata> result_ ABSL_GUARDED_BY(mutex_) = absl::UnknownError("the save has not finished");
  absl::Mutex join_mutex_;
  std::thread thread_ ABSL_GUARDED_BY(join_mutex_);
};

}  // namespace internal

namespace {

using internal::AsyncSaveState;
using internal::WithoutRankPrefix;

// The save in flight of each coordinator (the caller's and the background
// one): a new save waits for it before it plans.
class InFlightSaves {
 public:
  static InFlightSaves& Get() {
    static InFlightSaves* const saves = new InFlightSaves();
    return *saves;
  }

  void WaitThenRegister(std::initializer_list<const Coordinator*> coordinators,
                        const std::shared_ptr<AsyncSaveState>& save) {
    std::vector<std::shared_ptr<AsyncSaveState>> previous;
    {
      absl::MutexLock lock(&mutex_);
      for (const Coordinator* c : coordinators) {
        auto it = saves_.find(c);
        if (it == saves_.end()) continue;
        if (std::shared_ptr<AsyncSaveState> p = it->second.lock()) previous.push_back(std::move(p));
      }
    }
    for (const auto& p : previous) p->WaitUntilDone();
    absl::MutexLock lock(&mutex_);
    for (const Coordinator* c : coordinators) {
      if (c != nullptr) saves_[c] = save;
    }
  }

 private:
  absl::Mutex mutex_;
  absl::flat_hash_map<const Coordinator*, std::weak_ptr<AsyncSaveState>> saves_ ABSL_GUARDED_BY(mutex_);
};

std::string ItemName(const WriteItem& item) {
  if (!item.index.offset) return absl::StrCat("'", item.index.fqn, "'");
  return absl::StrCat("'", item.index.fqn, "' chunk [", absl::StrJoin(*item.index.offset, ", "), "]");
}

// This rank's write items as snapshots: the planner the storage writer reads
// from in the background. Only ResolveData is meant to be called.
class StagedItems final : public SavePlanner {
 public:
  absl::Status Stage(const SavePlan& plan, SavePlanner& source, StagingPool& pool) {
    std::vector<std::pair<const WriteItem*, at::Tensor>> tensors;
    std::vector<int64_t> tensor_bytes;
    bool from_device = false;
    for (const WriteItem& item : plan.items) {
      DCPLAN_ASSIGN_OR_RETURN(WriteData data, source.ResolveData(item));
      if (auto* tensor = std::get_if<at::Tensor>(&data)) {
        if (!tensor->defined()) return absl::InvalidArgumentError(absl::StrCat(ItemName(item), " is undefined"));
        from_device = from_device || !tensor->device().is_cpu();
        tensor_bytes.push_back(static_cast<int64_t>(tensor->nbytes()));
        tensors.push_back({&item, *tensor});
      } else {
        data_[item.index] = std::move(data);  // serialized now: a snapshot already
      }
    }
    DCPLAN_ASSIGN_OR_RETURN(int64_t bytes, StagingBytes(tensor_bytes));
    DCPLAN_ASSIGN_OR_RETURN(buffer_, pool.Acquire(bytes, from_device));
    for (const auto& [item, tensor] : tensors) {
      absl::StatusOr<at::Tensor> staged = buffer_->Stage(tensor);
      if (!staged.ok()) return internal::WithContext(staged.status(), absl::StrCat("staging ", ItemName(*item)));
      data_[item->index] = *std::move(staged);
    }
    return absl::OkStatus();
  }

  // Gives the staging memory back to its pool.
  void Release() {
    data_.clear();
    buffer_.reset();
  }

  absl::StatusOr<WriteData> ResolveData(const WriteItem& item) override {
    auto it = data_.find(item.index);
    if (it == data_.end()) return absl::InternalError(absl::StrCat(ItemName(item), " was not staged"));
    return it->second;
  }

  absl::Status SetUpPlanner(const StateDict&, const std::optional<StorageMeta>&, bool) override { return Unused(); }
  absl::StatusOr<SavePlan> CreateLocalPlan() override { return Unused(); }
  absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> CreateGlobalPlan(const std::vector<SavePlan>&) override {
    return Unused();
  }
  absl::StatusOr<SavePlan> FinishPlan(const SavePlan&) override { return Unused(); }

 private:
  static absl::Status Unused() { return absl::InternalError("staged items only resolve data"); }

  std::optional<StagingBuffer> buffer_;
  absl::flat_hash_map<MetadataIndex, WriteData> data_;
};

// What the background thread needs, owned by it.
struct BackgroundWrite {
  BackgroundWrite(StorageWriter& writer, SavePlanner& planner) : phases(writer, planner) {}

  absl::StatusOr<Metadata> Run(StorageWriter& writer, Coordinator& background) {
    const int64_t rank = background.rank();
    absl::StatusOr<Metadata> metadata =
        phases.WriteAndCommit(background, [&]() -> absl::StatusOr<std::vector<WriteResult>> {
          DCPLAN_RETURN_IF_ERROR(staged_status);
          return WithoutRankPrefix(writer.WriteData(plan, staged), rank);
        });
    if (!metadata.ok()) writer.Abort();
    staged.Release();
    return metadata;
  }

  internal::SavePhases phases;
  SavePlan plan;
  StagedItems staged;
  // This rank's own failure before the write (finishing the plan, staging):
  // reported in the "write" step, so that every rank returns it.
  absl::Status staged_status;
  std::unique_ptr<SavePlanner> own_planner;
  std::unique_ptr<StagingPool> own_pool;
  std::unique_ptr<Coordinator> own_background;  // world size 1 without one given
};

absl::Status CheckBackgroundCoordinator(const Coordinator& coordinator, const Coordinator* background) {
  if (background == nullptr) {
    if (coordinator.world_size() == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", coordinator.rank(), ": AsyncSave on ", coordinator.world_size(),
        " ranks needs AsyncSaveOptions::background_coordinator (a coordinator of its own for the background write)"));
  }
  if (background == &coordinator) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", coordinator.rank(), ": the background coordinator of AsyncSave must not be the caller's coordinator"));
  }
  if (background->rank() != coordinator.rank() || background->world_size() != coordinator.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", coordinator.rank(), " of ", coordinator.world_size(),
                                                   ": the background coordinator is rank ", background->rank(), " of ",
                                                   background->world_size()));
  }
  return absl::OkStatus();
}

void StartBackground(std::shared_ptr<AsyncSaveState> state, std::unique_ptr<BackgroundWrite> job,
                     StorageWriter& writer, Coordinator& background) {
  auto run = [state, job = std::shared_ptr<BackgroundWrite>(std::move(job)), &writer, &background] {
    state->Finish(job->Run(writer, background));
  };
  try {
    state->set_thread(std::thread(run));
  } catch (const std::exception&) {
    run();  // no thread to be had: write now, so that the other ranks are not left waiting
  }
}

}  // namespace

AsyncSaveHandle::AsyncSaveHandle(std::shared_ptr<internal::AsyncSaveState> state) : state_(std::move(state)) {}
AsyncSaveHandle::AsyncSaveHandle(AsyncSaveHandle&& other) noexcept = default;

AsyncSaveHandle& AsyncSaveHandle::operator=(AsyncSaveHandle&& other) noexcept {
  if (this != &other) {
    if (state_) state_->Settle();
    state_ = std::move(other.state_);
  }
  return *this;
}

AsyncSaveHandle::~AsyncSaveHandle() {
  if (state_) state_->Settle();
}

bool AsyncSaveHandle::Ready() const { return state_ != nullptr && state_->Ready(); }

absl::StatusOr<Metadata> AsyncSaveHandle::Wait() {
  if (!state_) return absl::FailedPreconditionError("this AsyncSaveHandle holds no save (moved from or default)");
  return state_->Wait();
}

AsyncSaveHandle AsyncSave(const StateDict& state_dict, StorageWriter& writer, Coordinator& coordinator,
                          const AsyncSaveOptions& options) {
  auto state = std::make_shared<AsyncSaveState>();
  AsyncSaveHandle handle(state);
  Coordinator* background = options.background_coordinator;
  if (absl::Status usable = CheckBackgroundCoordinator(coordinator, background); !usable.ok()) {
    state->Finish(usable);
    return handle;
  }
  InFlightSaves::Get().WaitThenRegister({&coordinator, background}, state);

  SavePlanner* planner = options.planner;
  std::unique_ptr<SavePlanner> own_planner;
  if (planner == nullptr) planner = (own_planner = std::make_unique<DefaultSavePlanner>()).get();
  if (auto* with_rank = dynamic_cast<DefaultSavePlanner*>(planner)) with_rank->set_rank(coordinator.rank());

  auto job = std::make_unique<BackgroundWrite>(writer, *planner);
  job->own_planner = std::move(own_planner);
  absl::StatusOr<std::string> central_plan = job->phases.Plan(state_dict, coordinator);
  if (!central_plan.ok()) {  // the same error on every rank: nobody writes
    writer.Abort();
    state->Finish(central_plan.status());
    return handle;
  }
  StagingPool* pool = options.staging_pool;
  if (pool == nullptr) pool = (job->own_pool = std::make_unique<StagingPool>()).get();
  absl::StatusOr<SavePlan> plan = job->phases.FinishPlan(*central_plan, coordinator.rank());
  if (plan.ok()) {
    job->plan = *std::move(plan);
    job->staged_status = WithoutRankPrefix(job->staged.Stage(job->plan, *planner, *pool), coordinator.rank());
  } else {
    job->staged_status = plan.status();
  }
  if (background == nullptr) background = (job->own_background = std::make_unique<SingleProcessCoordinator>()).get();
  StartBackground(state, std::move(job), writer, *background);
  return handle;
}

}  // namespace dcplan
