// Planning benchmarks at scale (issue #6).
//
// Save scenarios (tools/bench/plan_scenarios.h), all Llama-7B shapes (291
// bfloat16 tensors, plus 3 small whole tensors and 2 bytes values on every
// rank):
// - FSDP (FSDP2, DTensor Shard(0)): every tensor split along dim 0 over all N
//   ranks with torch.chunk semantics, N = 8, 64, 512, 4096, 16384 (where
//   the ceil(rows / N)-row pieces run out, the trailing ranks hold an empty
//   piece, a replicated item that dedup collapses);
// - TP8 x FSDP: column-parallel weights split on dim 0 by TP then by FSDP,
//   row-parallel weights on dim 1 by TP and dim 0 by FSDP (2-D chunks), norms
//   replicated over TP (dedup) and sharded by FSDP, N = 64, 512, 4096;
// - DDP: every tensor whole on all 256 ranks (dedup-heavy).
// Dedup (three policies), the global plan and validation are measured
// separately, and together through CreateGlobalSavePlan (with its
// SavePlanTimings as counters). Load: the checkpoint resharded onto FSDP over
// N/2 ranks, each requesting its own dim-0 rows of every tensor (per-rank
// planning time, on a sample of the ranks at large N). Validation alone: one
// tensor of 100 000 chunks in four layouts.
//
//   bazel run -c opt //tools/bench:plan_bench
//   bazel run -c opt //tools/bench:plan_bench -- --table   (markdown tables, plan_table.h)
//
// Benchmarks are registered world by world and only the current world is
// kept in memory (16384-rank FSDP: about 4.8 M items).

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/dedup.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "engine/plan.h"
#include "engine/save_planner.h"
#include "engine/validate.h"
#include "tools/bench/plan_scenarios.h"
#include "tools/bench/plan_table.h"

namespace dcplan {
namespace bench {
namespace {

// Everything the save benchmarks of one world need, built once.
struct SaveFixture {
  Scenario scenario;
  std::vector<SavePlan> local_plans;
  std::vector<SavePlan> deduped;
  ChunkCounts chunks_per_fqn;
  GlobalPlanAndMetadata global;
  size_t items = 0;
};

std::string FixtureKey(const Scenario& scenario) { return absl::StrCat(ScenarioName(scenario), "/", scenario.ranks); }

// The fixture of `scenario`, or nullptr (with the reason in *error) if the
// scenario does not plan into a valid checkpoint.
const SaveFixture* FixtureFor(const Scenario& scenario, std::string* error) {
  static auto* current = new std::unique_ptr<SaveFixture>();
  static auto* current_key = new std::string();
  const std::string key = FixtureKey(scenario);
  if (*current && *current_key == key) return current->get();
  current->reset();  // free the previous world first
  auto fixture = std::make_unique<SaveFixture>();
  fixture->scenario = scenario;
  absl::StatusOr<std::vector<SavePlan>> local = LocalSavePlans(scenario);
  if (!local.ok()) {
    *error = local.status().ToString();
    return nullptr;
  }
  fixture->local_plans = *std::move(local);
  for (const SavePlan& plan : fixture->local_plans) fixture->items += plan.items.size();
  absl::StatusOr<DedupResult> deduped = DedupSavePlans(fixture->local_plans, DedupPolicy::kPyTorch);
  if (!deduped.ok() || !deduped->conflicts.empty()) {
    *error = "dedup failed";
    return nullptr;
  }
  fixture->deduped = std::move(deduped->plans);
  fixture->chunks_per_fqn = std::move(deduped->chunks_per_fqn);
  fixture->global = CreateDefaultGlobalSavePlan(fixture->deduped, true, &fixture->chunks_per_fqn);
  if (!fixture->global.problems.empty() || !ValidateMetadata(fixture->global.metadata.state_dict_metadata).empty()) {
    *error = "the scenario is not a valid checkpoint";
    return nullptr;
  }
  *current = std::move(fixture);
  *current_key = key;
  return current->get();
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
  state.counters["ranks"] = static_cast<double>(fixture.scenario.ranks);
  state.counters["items"] = static_cast<double>(fixture.items);
  state.counters["ns_per_item"] = benchmark::Counter(static_cast<double>(fixture.items),
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

// Runs `body(state, fixture)` on the fixture of `scenario`.
template <typename Body>
void WithFixture(benchmark::State& state, const Scenario& scenario, Body body) {
  std::string error;
  const SaveFixture* fixture = FixtureFor(scenario, &error);
  if (fixture == nullptr) {
    state.SkipWithError(error.c_str());
    for (auto _ : state) {
    }
    return;
  }
  body(state, *fixture);
  SetItemCounters(state, *fixture);
}

void SaveDedup(benchmark::State& state, const Scenario& scenario, DedupPolicy policy) {
  WithFixture(state, scenario, [policy](benchmark::State& state, const SaveFixture& fixture) {
    for (auto _ : state) {
      absl::StatusOr<DedupResult> result = DedupSavePlans(UntimedCopy(state, fixture.local_plans), policy);
      benchmark::DoNotOptimize(result);
    }
  });
}

void SaveGlobalPlan(benchmark::State& state, const Scenario& scenario) {
  WithFixture(state, scenario, [](benchmark::State& state, const SaveFixture& fixture) {
    for (auto _ : state) {
      GlobalPlanAndMetadata result =
          CreateDefaultGlobalSavePlan(UntimedCopy(state, fixture.deduped), true, &fixture.chunks_per_fqn);
      benchmark::DoNotOptimize(result);
    }
  });
}

void SaveValidate(benchmark::State& state, const Scenario& scenario) {
  WithFixture(state, scenario, [](benchmark::State& state, const SaveFixture& fixture) {
    for (auto _ : state) {
      std::vector<PlanProblem> problems = ValidateMetadata(fixture.global.metadata.state_dict_metadata);
      benchmark::DoNotOptimize(problems);
    }
  });
}

// The coordinator's whole step; the counters are SavePlanTimings' per-step
// milliseconds, averaged over the iterations.
void SaveCreateGlobalSavePlan(benchmark::State& state, const Scenario& scenario) {
  WithFixture(state, scenario, [](benchmark::State& state, const SaveFixture& fixture) {
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
    state.counters["dedup_ms"] = benchmark::Counter(total.dedup_ms, benchmark::Counter::kAvgIterations);
    state.counters["global_plan_ms"] = benchmark::Counter(total.global_plan_ms, benchmark::Counter::kAvgIterations);
    state.counters["validate_ms"] = benchmark::Counter(total.validate_ms, benchmark::Counter::kAvgIterations);
  });
}

// Ranks of the resharded world (ReshardTarget: FSDP over N/2 ranks) plan
// their loads of the N-rank checkpoint. Every rank plans alone, so the
// benchmark plans an evenly spaced sample of at most kMaxPlannedRanks of them:
// `per_rank_ms` is one rank's planning time, `all_ranks_ms` the sum over the
// whole world (per_rank_ms * N/2).
constexpr int64_t kMaxPlannedRanks = 64;

void LoadReshard(benchmark::State& state, const Scenario& scenario) {
  WithFixture(state, scenario, [](benchmark::State& state, const SaveFixture& fixture) {
    Metadata metadata;
    metadata.state_dict_metadata = fixture.global.metadata.state_dict_metadata;
    const Scenario target = ReshardTarget(fixture.scenario);
    const int64_t stride = (target.ranks + kMaxPlannedRanks - 1) / kMaxPlannedRanks;
    std::vector<std::pair<int64_t, StateDictDescription>> requests;
    for (int64_t rank = 0; rank < target.ranks; rank += stride) {
      absl::StatusOr<StateDictDescription> request = SaveDescription(target, rank);
      if (!request.ok()) {
        state.SkipWithError("cannot describe the load");
        return;
      }
      requests.emplace_back(rank, *std::move(request));
    }
    size_t read_items = 0;
    std::chrono::duration<double, std::milli> planning{0};
    for (auto _ : state) {
      read_items = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const auto& request : requests) {
        LocalLoadPlan local = CreateLocalLoadPlan(request.second, metadata, LoadPlannerOptions(), request.first);
        if (!local.errors.empty()) state.SkipWithError("unexpected load error");
        read_items += local.plan.items.size();
        benchmark::DoNotOptimize(local);
      }
      planning += std::chrono::steady_clock::now() - start;
    }
    const double per_rank_ms = planning.count() / static_cast<double>(state.iterations() * requests.size());
    state.counters["per_rank_ms"] = per_rank_ms;
    state.counters["all_ranks_ms"] = per_rank_ms * static_cast<double>(target.ranks);
    state.counters["load_ranks"] = static_cast<double>(target.ranks);
    state.counters["planned_ranks"] = static_cast<double>(requests.size());
    state.counters["read_items_per_rank"] = static_cast<double>(read_items) / requests.size();
  });
}

// One tensor of 100 000 chunks.
TensorStorageMetadata ChunkLayout(int layout) {
  TensorStorageMetadata tensor;
  tensor.properties.dtype = DType::kBFloat16;
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
  const TensorStorageMetadata tensor = ChunkLayout(static_cast<int>(state.range(0)));
  state.SetLabel(kNames[state.range(0)]);
  for (auto _ : state) {
    std::vector<PlanProblem> problems = ValidateTensor("w", tensor);
    if (!problems.empty()) state.SkipWithError("the layout must be valid");
    benchmark::DoNotOptimize(problems);
  }
  state.counters["chunks"] = static_cast<double>(tensor.chunks.size());
}

BENCHMARK(BM_ValidateTensor100kChunks)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);

void RegisterWorld(const Scenario& scenario) {
  const std::string suffix = absl::StrCat("/", ScenarioName(scenario), "/", scenario.ranks);
  auto add = [](benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMillisecond); };
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    add(benchmark::RegisterBenchmark(absl::StrCat("BM_SaveDedup_", DedupPolicyName(policy), suffix).c_str(),
                                     SaveDedup, scenario, policy));
  }
  add(benchmark::RegisterBenchmark(("BM_SaveGlobalPlan" + suffix).c_str(), SaveGlobalPlan, scenario));
  add(benchmark::RegisterBenchmark(("BM_SaveValidate" + suffix).c_str(), SaveValidate, scenario));
  add(benchmark::RegisterBenchmark(("BM_SaveCreateGlobalSavePlan" + suffix).c_str(), SaveCreateGlobalSavePlan,
                                   scenario));
  add(benchmark::RegisterBenchmark(("BM_LoadReshardToHalf" + suffix).c_str(), LoadReshard, scenario));
}

void RegisterWorlds() {
  for (const Scenario& scenario : ScalingScenarios()) RegisterWorld(scenario);
}

}  // namespace
}  // namespace bench
}  // namespace dcplan

int main(int argc, char** argv) {
  dcplan::bench::TableOptions options;
  absl::StatusOr<bool> table = dcplan::bench::ParseTableFlags(&argc, argv, &options);
  if (!table.ok()) {
    std::cerr << "plan_bench: bad flag " << table.status().message() << "\n";
    return 2;
  }
  if (*table) return dcplan::bench::RunPlanTables(options, std::cout, std::cerr);
  dcplan::bench::RegisterWorlds();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
