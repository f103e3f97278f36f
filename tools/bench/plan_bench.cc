// Planning benchmarks at scale.
//
// Save: an FSDP-style checkpoint of Llama-7B (291 tensors, each split along
// dim 0 over all N ranks, uneven where N does not divide the rows, plus 3
// replicated small tensors and 2 bytes values held by every rank) at N = 8,
// 64, 512, 4096 ranks. Dedup, the global plan and validation are measured
// separately, and together through CreateGlobalSavePlan (with its
// SavePlanTimings as counters).
//
// Load: the N-rank checkpoint resharded onto N/2 ranks, each requesting its
// own dim-0 rows of every tensor (per-rank planning time, on a sample of the
// ranks at large N).
//
// Validation: one tensor of 100 000 chunks in four layouts.
//
//   bazel run -c opt //tools/bench:plan_bench

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/dedup.h"
#include "engine/description.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "engine/validate.h"

namespace dcplan {
namespace {

struct TensorSpec {
  std::string fqn;
  Shape size;
};

// Llama-7B's parameters: 1 + 32 * 9 + 2 = 291 tensors.
std::vector<TensorSpec> Llama7B() {
  constexpr int64_t kVocab = 32000, kHidden = 4096, kIntermediate = 11008;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", {kVocab, kHidden}}};
  for (int layer = 0; layer < 32; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      specs.push_back({absl::StrCat(prefix, "self_attn.", proj, ".weight"), {kHidden, kHidden}});
    }
    specs.push_back({prefix + "mlp.gate_proj.weight", {kIntermediate, kHidden}});
    specs.push_back({prefix + "mlp.up_proj.weight", {kIntermediate, kHidden}});
    specs.push_back({prefix + "mlp.down_proj.weight", {kHidden, kIntermediate}});
    specs.push_back({prefix + "input_layernorm.weight", {kHidden}});
    specs.push_back({prefix + "post_attention_layernorm.weight", {kHidden}});
  }
  specs.push_back({"model.norm.weight", {kHidden}});
  specs.push_back({"lm_head.weight", {kVocab, kHidden}});
  return specs;
}

// Rows [rank * rows / ranks, (rank + 1) * rows / ranks): uneven when ranks
// does not divide rows, never empty while rows >= ranks.
ChunkBox RowShard(const Shape& size, int64_t rank, int64_t ranks) {
  const int64_t begin = size[0] * rank / ranks;
  const int64_t end = size[0] * (rank + 1) / ranks;
  ChunkBox box{Shape(size.size(), 0), size};
  box.offsets[0] = begin;
  box.sizes[0] = end - begin;
  return box;
}

TensorProperties Props(DType dtype) {
  TensorProperties properties;
  properties.dtype = dtype;
  return properties;
}

// What one rank holds (save) or wants (load) in a world of `ranks`.
StateDictDescription FsdpRank(const std::vector<TensorSpec>& specs, int64_t rank, int64_t ranks,
                              bool with_replicated) {
  StateDictDescription description;
  description.values.reserve(specs.size() + 5);
  for (const TensorSpec& spec : specs) {
    description.values.InsertOrAssign(
        spec.fqn, ShardedTensor{spec.size, Props(DType::kBFloat16), {RowShard(spec.size, rank, ranks)}});
  }
  if (with_replicated) {
    description.values.InsertOrAssign("model.rotary_emb.inv_freq", WholeTensor{{64}, Props(DType::kFloat32)});
    description.values.InsertOrAssign("scaler.scale", WholeTensor{{}, Props(DType::kFloat32)});
    description.values.InsertOrAssign("ema.decay", WholeTensor{{1}, Props(DType::kFloat32)});
    description.values.InsertOrAssign("step", OpaqueValue{8});
    description.values.InsertOrAssign("rng_state", OpaqueValue{5056});
  }
  return description;
}

// Everything a save benchmark at N ranks needs, built once per N.
struct SaveFixture {
  std::vector<SavePlan> local_plans;
  std::vector<SavePlan> deduped;
  GlobalPlanAndMetadata global;
  size_t items = 0;
};

const SaveFixture& SaveFixtureFor(int64_t ranks) {
  static auto* fixtures = new std::map<int64_t, std::unique_ptr<SaveFixture>>();
  std::unique_ptr<SaveFixture>& fixture = (*fixtures)[ranks];
  // Worlds stay cached (about 1 GB at 4096 ranks): every benchmark family
  // runs all world sizes in turn.
  if (fixture) return *fixture;
  fixture = std::make_unique<SaveFixture>();
  const std::vector<TensorSpec> specs = Llama7B();
  fixture->local_plans.reserve(ranks);
  for (int64_t rank = 0; rank < ranks; ++rank) {
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(FsdpRank(specs, rank, ranks, true), rank == 0);
    if (!plan.ok()) std::abort();
    fixture->items += plan->items.size();
    fixture->local_plans.push_back(*std::move(plan));
  }
  absl::StatusOr<DedupResult> deduped = DedupSavePlans(fixture->local_plans, DedupPolicy::kPyTorch);
  if (!deduped.ok()) std::abort();
  fixture->deduped = std::move(deduped->plans);
  fixture->global = CreateDefaultGlobalSavePlan(fixture->deduped, true);
  if (!fixture->global.problems.empty() || !ValidateMetadata(fixture->global.metadata.state_dict_metadata).empty()) {
    std::abort();  // the scenario must be a valid checkpoint
  }
  return *fixture;
}

// The planning functions take their plans by value and move them through:
// a coordinator hands over the plans it gathered. The benchmarks copy the
// fixture's plans outside the timed region and move the copy in.
std::vector<SavePlan> UntimedCopy(benchmark::State& state, const std::vector<SavePlan>& plans) {
  state.PauseTiming();
  std::vector<SavePlan> copy = plans;
  state.ResumeTiming();
  return copy;
}

void SetItemCounters(benchmark::State& state, const SaveFixture& fixture) {
  state.counters["ranks"] = static_cast<double>(state.range(0));
  state.counters["items"] = static_cast<double>(fixture.items);
}

void BM_SaveDedup(benchmark::State& state) {
  const SaveFixture& fixture = SaveFixtureFor(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<DedupResult> result =
        DedupSavePlans(UntimedCopy(state, fixture.local_plans), DedupPolicy::kPyTorch);
    benchmark::DoNotOptimize(result);
  }
  SetItemCounters(state, fixture);
}

void BM_SaveDedupBalanced(benchmark::State& state) {
  const SaveFixture& fixture = SaveFixtureFor(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<DedupResult> result =
        DedupSavePlans(UntimedCopy(state, fixture.local_plans), DedupPolicy::kBalanced);
    benchmark::DoNotOptimize(result);
  }
  SetItemCounters(state, fixture);
}

void BM_SaveGlobalPlan(benchmark::State& state) {
  const SaveFixture& fixture = SaveFixtureFor(state.range(0));
  for (auto _ : state) {
    GlobalPlanAndMetadata result = CreateDefaultGlobalSavePlan(UntimedCopy(state, fixture.deduped), true);
    benchmark::DoNotOptimize(result);
  }
  SetItemCounters(state, fixture);
}

void BM_SaveValidate(benchmark::State& state) {
  const SaveFixture& fixture = SaveFixtureFor(state.range(0));
  for (auto _ : state) {
    std::vector<PlanProblem> problems = ValidateMetadata(fixture.global.metadata.state_dict_metadata);
    benchmark::DoNotOptimize(problems);
  }
  SetItemCounters(state, fixture);
}

// The coordinator's whole step; the counters are SavePlanTimings' per-step
// milliseconds, averaged over the iterations.
void BM_SaveCreateGlobalSavePlan(benchmark::State& state) {
  const SaveFixture& fixture = SaveFixtureFor(state.range(0));
  SavePlannerOptions options;
  options.flatten_state_dict = false;
  SavePlanTimings total;
  for (auto _ : state) {
    SavePlanTimings timings;
    absl::StatusOr<GlobalSavePlan> result =
        CreateGlobalSavePlan(UntimedCopy(state, fixture.local_plans), options, &timings);
    if (!result.ok() || !result->valid()) state.SkipWithError("the global plan is not valid");
    benchmark::DoNotOptimize(result);
    total.dedup_ms += timings.dedup_ms;
    total.global_plan_ms += timings.global_plan_ms;
    total.validate_ms += timings.validate_ms;
  }
  SetItemCounters(state, fixture);
  state.counters["dedup_ms"] = benchmark::Counter(total.dedup_ms, benchmark::Counter::kAvgIterations);
  state.counters["global_plan_ms"] = benchmark::Counter(total.global_plan_ms, benchmark::Counter::kAvgIterations);
  state.counters["validate_ms"] = benchmark::Counter(total.validate_ms, benchmark::Counter::kAvgIterations);
}

// Ranks of an N/2-rank world plan their loads of the N-rank checkpoint, each
// requesting its own dim-0 rows of every tensor. Every rank plans alone, so
// the benchmark plans an evenly spaced sample of at most kMaxPlannedRanks of
// them (all of them up to N = 128): `per_rank_ms` is one rank's planning
// time, `all_ranks_ms` the sum over the whole world (per_rank_ms * N/2).
constexpr int64_t kMaxPlannedRanks = 64;

void BM_LoadReshardToHalf(benchmark::State& state) {
  const int64_t ranks = state.range(0);
  const int64_t load_ranks = ranks > 1 ? ranks / 2 : 1;
  const SaveFixture& fixture = SaveFixtureFor(ranks);
  Metadata metadata;
  metadata.state_dict_metadata = fixture.global.metadata.state_dict_metadata;
  const std::vector<TensorSpec> specs = Llama7B();
  const int64_t stride = (load_ranks + kMaxPlannedRanks - 1) / kMaxPlannedRanks;
  std::vector<std::pair<int64_t, StateDictDescription>> requests;
  for (int64_t rank = 0; rank < load_ranks; rank += stride) {
    requests.emplace_back(rank, FsdpRank(specs, rank, load_ranks, true));
  }
  size_t read_items = 0;
  std::chrono::duration<double, std::milli> planning{0};
  for (auto _ : state) {
    read_items = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& [rank, request] : requests) {
      LocalLoadPlan local = CreateLocalLoadPlan(request, metadata, LoadPlannerOptions(), rank);
      if (!local.errors.empty()) state.SkipWithError("unexpected load error");
      read_items += local.plan.items.size();
      benchmark::DoNotOptimize(local);
    }
    planning += std::chrono::steady_clock::now() - start;
  }
  const double per_rank_ms = planning.count() / static_cast<double>(state.iterations() * requests.size());
  state.counters["per_rank_ms"] = per_rank_ms;
  state.counters["all_ranks_ms"] = per_rank_ms * static_cast<double>(load_ranks);
  state.counters["load_ranks"] = static_cast<double>(load_ranks);
  state.counters["planned_ranks"] = static_cast<double>(requests.size());
  state.counters["read_items_per_rank"] = static_cast<double>(read_items) / requests.size();
}

// One tensor of 100 000 chunks.
TensorStorageMetadata Layout(int layout) {
  TensorStorageMetadata tensor;
  tensor.properties = Props(DType::kBFloat16);
  switch (layout) {
    case 0:  // 1-D: 100 000 runs of 10 elements
      tensor.size = {1'000'000};
      for (int64_t i = 0; i < 100'000; ++i) tensor.chunks.push_back({{i * 10}, {10}});
      break;
    case 1:  // column split of [vocab, hidden]: 100 000 columns of 32000 rows
      tensor.size = {32'000, 100'000};
      for (int64_t j = 0; j < 100'000; ++j) tensor.chunks.push_back({{0, j}, {32'000, 1}});
      break;
    case 2:  // 2-D grid: 250 x 400 blocks of 4 x 4
      tensor.size = {1'000, 1'600};
      for (int64_t i = 0; i < 250; ++i) {
        for (int64_t j = 0; j < 400; ++j) tensor.chunks.push_back({{i * 4, j * 4}, {4, 4}});
      }
      break;
    default:  // 3-D grid: 40 x 50 x 50 blocks of 10 x 10 x 10
      tensor.size = {400, 500, 500};
      for (int64_t i = 0; i < 40; ++i) {
        for (int64_t j = 0; j < 50; ++j) {
          for (int64_t k = 0; k < 50; ++k) tensor.chunks.push_back({{i * 10, j * 10, k * 10}, {10, 10, 10}});
        }
      }
      break;
  }
  return tensor;
}

void BM_ValidateTensor100kChunks(benchmark::State& state) {
  static const char* const kNames[] = {"1-D", "column split", "2-D grid", "3-D grid"};
  const TensorStorageMetadata tensor = Layout(static_cast<int>(state.range(0)));
  state.SetLabel(kNames[state.range(0)]);
  for (auto _ : state) {
    std::vector<PlanProblem> problems = ValidateTensor("w", tensor);
    if (!problems.empty()) state.SkipWithError("the layout must be valid");
    benchmark::DoNotOptimize(problems);
  }
  state.counters["chunks"] = static_cast<double>(tensor.chunks.size());
}

void WorldSizes(benchmark::internal::Benchmark* b) {
  for (int64_t ranks : {8, 64, 512, 4096}) b->Arg(ranks);
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_SaveDedup)->Apply(WorldSizes);
BENCHMARK(BM_SaveDedupBalanced)->Apply(WorldSizes);
BENCHMARK(BM_SaveGlobalPlan)->Apply(WorldSizes);
BENCHMARK(BM_SaveValidate)->Apply(WorldSizes);
BENCHMARK(BM_SaveCreateGlobalSavePlan)->Apply(WorldSizes);
BENCHMARK(BM_LoadReshardToHalf)->Apply(WorldSizes);
BENCHMARK(BM_ValidateTensor100kChunks)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dcplan
