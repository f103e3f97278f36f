#include "tools/dcplan/demo_async.h"

#include <variant>

#include <ATen/ATen.h>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace dcplan::tools {
namespace {

void Overwrite(at::Tensor tensor, int64_t step) {
  if (tensor.defined()) tensor.fill_(static_cast<double>(step % 5 + 1) * -3.0);
}

}  // namespace

absl::Status TrainingStep(const StateDict& state, int64_t step) {
  absl::StatusOr<FlatStateDict<StateValue>> flat = FlattenForSave(state);
  if (!flat.ok()) return flat.status();
  for (const auto& [key, value] : flat->values) {
    const StateValue* leaf = value.leaf();
    if (leaf == nullptr) continue;
    if (const at::Tensor* tensor = PlainTensorOf(*leaf)) Overwrite(*tensor, step);
    if (const auto* sharded = std::get_if<ShardedTensorValue>(leaf)) {
      for (const LocalShard& shard : sharded->local_shards) Overwrite(shard.tensor, step);
    }
  }
  return absl::OkStatus();
}

AsyncSaveWhileTrainingResult AsyncSaveWhileTraining(const StateDict& state, StorageWriter& writer,
                                                    Coordinator& coordinator, const AsyncSaveOptions& options) {
  AsyncSaveWhileTrainingResult result;
  const absl::Time start = absl::Now();
  AsyncSaveHandle save = AsyncSave(state, writer, coordinator, options);
  result.blocked = absl::Now() - start;
  do {
    absl::Status step = TrainingStep(state, result.training_steps++);
    if (!step.ok()) {
      result.saved = step;
      return result;  // the handle's destructor waits for the save
    }
  } while (!save.Ready());
  result.saved = save.Wait();
  return result;
}

absl::StatusOr<std::unique_ptr<C10dCoordinator>> ConnectAsyncSaveGroup(C10dOptions options) {
  options.store_prefix = "dcplan_async_save/";
  return ConnectC10d(options);
}

std::string AsyncSaveSummary(const AsyncSaveWhileTrainingResult& result) {
  return absl::StrFormat(
      "AsyncSave returned after %.3f s; %d training steps overwrote every tensor while the checkpoint was written",
      absl::ToDoubleSeconds(result.blocked), result.training_steps);
}

}  // namespace dcplan::tools
