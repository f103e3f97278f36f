// A training stack's use of dcplan, built in its own Bazel workspace: saves a
// small state dict (two replicated tensors, one sharded tensor, a step count)
// into a fresh directory, loads it back into zeroed tensors, and checks that
// every value came back. Also calls the engine's ValidateMetadata directly,
// the way a tool that only inspects checkpoints would use @dcplan//engine.

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/state_dict.h"
#include "engine/metadata.h"
#include "engine/problem.h"
#include "engine/validate.h"

namespace {

constexpr int64_t kStep = 1234;

// The model's tensors, either with their training values or zeroed (the
// destinations of a load).
struct ModelTensors {
  at::Tensor weight;     // replicated, float32 [2, 3]
  at::Tensor bias;       // replicated, float64 [3]
  at::Tensor embedding;  // the one shard of a sharded [4, 2] tensor
};

ModelTensors MakeTrained() {
  return {at::arange(6, at::kFloat).reshape({2, 3}), at::arange(3, at::kDouble).add(0.5),
          at::arange(8, at::kFloat).reshape({4, 2}).mul(-1)};
}

ModelTensors MakeZeroed() {
  return {at::zeros({2, 3}, at::kFloat), at::zeros({3}, at::kDouble), at::zeros({4, 2}, at::kFloat)};
}

// The state dict shares the tensors' storage, so a load fills `tensors`.
dcplan::StateDict MakeStateDict(const ModelTensors& tensors, int64_t step) {
  dcplan::ShardedTensorValue embedding;
  embedding.global_shape = {4, 2};
  embedding.dtype = c10::ScalarType::Float;
  embedding.local_shards.push_back({tensors.embedding, {0, 0}});
  return dcplan::Dict({
      {"model", dcplan::Dict({{"weight", dcplan::Value(tensors.weight)},
                              {"bias", dcplan::Value(tensors.bias)},
                              {"embedding", dcplan::Value(std::move(embedding))}})},
      {"step", dcplan::Value(c10::IValue(step))},
  });
}

absl::StatusOr<std::string> MakeTempDirectory() {
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/consumer_ckpt_XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp failed for ", pattern));
  }
  // Save into a subdirectory the writer creates itself, as a trainer would
  // for each step.
  return absl::StrCat(pattern, "/step_", kStep);
}

absl::Status CheckSameTensor(const std::string& name, const at::Tensor& expected, const at::Tensor& actual) {
  if (expected.scalar_type() != actual.scalar_type() || !at::equal(expected, actual)) {
    return absl::DataLossError(absl::StrCat("tensor '", name, "' did not round-trip"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LoadedStep(const dcplan::StateDict& state_dict) {
  const dcplan::StateDict* step = state_dict.FindEntry("step");
  if (step == nullptr || !step->is_leaf()) return absl::NotFoundError("'step' missing after load");
  const auto* value = std::get_if<c10::IValue>(step->leaf());
  if (value == nullptr || !value->isInt()) return absl::DataLossError("'step' is not an int after load");
  return value->toInt();
}

// Returns the number of tensors saved, loaded and compared.
absl::StatusOr<int> RoundTrip() {
  absl::StatusOr<std::string> directory = MakeTempDirectory();
  if (!directory.ok()) return directory.status();
  dcplan::SingleProcessCoordinator coordinator;

  const ModelTensors trained = MakeTrained();
  dcplan::FileSystemWriter writer(*directory);
  absl::StatusOr<dcplan::Metadata> metadata = dcplan::Save(MakeStateDict(trained, kStep), writer, coordinator);
  if (!metadata.ok()) return metadata.status();

  std::vector<dcplan::PlanProblem> problems = dcplan::ValidateMetadata(metadata->state_dict_metadata);
  if (!problems.empty()) {
    return absl::InternalError(absl::StrCat("saved metadata is invalid: ", dcplan::ToString(problems.front())));
  }

  const ModelTensors loaded = MakeZeroed();
  dcplan::StateDict destination = MakeStateDict(loaded, /*step=*/0);
  dcplan::FileSystemReader reader(*directory);
  if (absl::Status s = dcplan::Load(destination, reader, coordinator); !s.ok()) return s;

  if (absl::Status s = CheckSameTensor("model.weight", trained.weight, loaded.weight); !s.ok()) return s;
  if (absl::Status s = CheckSameTensor("model.bias", trained.bias, loaded.bias); !s.ok()) return s;
  if (absl::Status s = CheckSameTensor("model.embedding", trained.embedding, loaded.embedding); !s.ok()) return s;
  absl::StatusOr<int64_t> step = LoadedStep(destination);
  if (!step.ok()) return step.status();
  if (*step != kStep) return absl::DataLossError(absl::StrCat("'step' loaded as ", *step, ", saved ", kStep));
  return 3;
}

}  // namespace

int main() {
  absl::StatusOr<int> tensors = RoundTrip();
  if (!tensors.ok()) {
    std::fprintf(stderr, "consumer: %s\n", tensors.status().ToString().c_str());
    return 1;
  }
  std::printf("consumer: saved and loaded %d tensors\n", *tensors);
  return 0;
}
