#include "tools/bench/plan_table.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "engine/load_planner.h"
#include "engine/save_planner.h"
#include "engine/validate.h"

namespace dcplan {
namespace bench {
namespace {

double ThreadCpuMs() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) * 1e-6;
}

// CPU milliseconds of one call of `f`.
template <typename F>
double CpuMs(F&& f) {
  const double start = ThreadCpuMs();
  f();
  return ThreadCpuMs() - start;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// Issue #15: any single tensor of 16 384 chunks validates in < 5 ms.
constexpr int64_t kLayoutChunks = 16384;

int RunsFor(int64_t ranks, const TableOptions& options) {
  return ranks >= options.single_run_ranks ? 1 : std::max(1, options.repeats);
}

// The input of run `run` of `runs`: a copy, except for the last run, which
// takes `source` itself (halving the peak memory of the largest worlds).
template <typename T>
T InputForRun(T& source, int run, int runs) {
  return run + 1 == runs ? std::move(source) : source;
}

absl::Status Invalid(const Scenario& scenario, absl::string_view what, const std::vector<PlanProblem>& problems) {
  return absl::InternalError(absl::StrCat(ScenarioName(scenario), " at ", scenario.ranks, " ranks: ", what, ", ",
                                          problems.size(), " problems, first: ", ToString(problems.front())));
}

// Load planning of a sample of the target world's ranks (evenly spaced, the
// first and the last included); fills the load fields of `row`.
absl::Status MeasureLoad(const Scenario& saved, const Metadata& metadata, const TableOptions& options, int runs,
                         ScalingRow& row) {
  const Scenario target = ReshardTarget(saved);
  const int64_t samples = std::max<int64_t>(1, std::min(options.load_sampled_ranks, target.ranks));
  std::vector<std::pair<int64_t, StateDictDescription>> requests;
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t rank = samples == 1 ? 0 : i * (target.ranks - 1) / (samples - 1);
    absl::StatusOr<StateDictDescription> request = SaveDescription(target, rank);
    if (!request.ok()) return request.status();
    requests.emplace_back(rank, *std::move(request));
  }
  std::vector<double> per_rank_ms;
  int64_t read_items = 0;
  for (int run = 0; run < runs; ++run) {
    read_items = 0;
    bool failed = false;
    const double ms = CpuMs([&] {
      for (const auto& request : requests) {
        LocalLoadPlan local = CreateLocalLoadPlan(request.second, metadata, LoadPlannerOptions(), request.first);
        failed = failed || !local.errors.empty();
        read_items += static_cast<int64_t>(local.plan.items.size());
      }
    });
    if (failed) return absl::InternalError(absl::StrCat(ScenarioName(saved), ": load planning reported errors"));
    per_rank_ms.push_back(ms / static_cast<double>(requests.size()));
  }
  row.load_ranks = target.ranks;
  row.load_rank_ms = Median(per_rank_ms);
  row.load_read_items = read_items / static_cast<int64_t>(requests.size());
  return absl::OkStatus();
}

std::string Ms(double ms) { return absl::StrFormat(ms < 10 ? "%.2f" : "%.0f", ms); }
std::string Ratio(double ratio) { return absl::StrFormat("%.3f", ratio); }

}  // namespace

double ScalingRow::DedupNsPerItem() const {
  return items == 0 ? 0 : dedup_ms * 1e6 / static_cast<double>(items);
}

double ScalingRow::GlobalPlanNsPerKeptItem() const {
  return kept_items == 0 ? 0 : global_plan_ms * 1e6 / static_cast<double>(kept_items);
}

double ScalingRow::ValidateNsPerKeptItem() const {
  return kept_items == 0 ? 0 : validate_ms * 1e6 / static_cast<double>(kept_items);
}

double LayoutRow::NsPerChunk() const { return chunks == 0 ? 0 : validate_ms * 1e6 / static_cast<double>(chunks); }

double ScalingRow::LoadNsPerStoredChunk() const {
  return stored_chunks == 0 ? 0 : load_rank_ms * 1e6 / static_cast<double>(stored_chunks);
}

absl::StatusOr<ScalingRow> MeasureScaling(const Scenario& scenario, const TableOptions& options) {
  ScalingRow row;
  row.scenario = ScenarioName(scenario);
  row.ranks = scenario.ranks;
  row.runs = RunsFor(scenario.ranks, options);
  absl::StatusOr<std::vector<SavePlan>> local = LocalSavePlans(scenario);
  if (!local.ok()) return local.status();
  for (const SavePlan& plan : *local) row.items += static_cast<int64_t>(plan.items.size());

  std::vector<double> times;
  std::vector<SavePlan> deduped;
  ChunkCounts chunks_per_fqn;  // as CreateGlobalSavePlan hands it on
  for (int run = 0; run < row.runs; ++run) {
    std::vector<SavePlan> input = InputForRun(*local, run, row.runs);
    absl::StatusOr<DedupResult> result;
    times.push_back(CpuMs([&] { result = DedupSavePlans(std::move(input), DedupPolicy::kPyTorch); }));
    if (!result.ok()) return result.status();
    if (!result->conflicts.empty()) return Invalid(scenario, "dedup conflicts", result->conflicts);
    deduped = std::move(result->plans);
    chunks_per_fqn = std::move(result->chunks_per_fqn);
  }
  row.dedup_ms = Median(times);

  times.clear();
  GlobalPlanAndMetadata global;
  for (int run = 0; run < row.runs; ++run) {
    std::vector<SavePlan> input = InputForRun(deduped, run, row.runs);
    // A fresh result per run: assigning to `global` inside the timed call
    // would also time freeing the previous run's plans and metadata.
    GlobalPlanAndMetadata run_global;
    times.push_back(
        CpuMs([&] { run_global = CreateDefaultGlobalSavePlan(std::move(input), true, &chunks_per_fqn); }));
    if (!run_global.problems.empty()) return Invalid(scenario, "global plan errors", run_global.problems);
    global = std::move(run_global);
  }
  row.global_plan_ms = Median(times);

  times.clear();
  for (int run = 0; run < row.runs; ++run) {
    std::vector<PlanProblem> problems;
    times.push_back(CpuMs([&] { problems = ValidateMetadata(global.metadata.state_dict_metadata); }));
    if (!problems.empty()) return Invalid(scenario, "validation problems", problems);
  }
  row.validate_ms = Median(times);
  for (const auto& entry : global.metadata.state_dict_metadata) {
    if (const auto* tensor = std::get_if<TensorStorageMetadata>(&entry.second)) {
      row.stored_chunks += static_cast<int64_t>(tensor->chunks.size());
    }
  }
  for (const SavePlan& plan : global.plans) row.kept_items += static_cast<int64_t>(plan.items.size());
  global.plans.clear();
  global.plans.shrink_to_fit();
  // A loading rank reads the metadata from storage into fresh memory; the
  // global plan's metadata grew chunk by chunk, interleaved with other
  // allocations, and scans up to 3x slower at 4096 ranks. Copy it.
  Metadata loaded;
  loaded.state_dict_metadata = global.metadata.state_dict_metadata;
  global = GlobalPlanAndMetadata();
  if (absl::Status status = MeasureLoad(scenario, loaded, options, row.runs, row); !status.ok()) return status;
  return row;
}

absl::StatusOr<LayoutRow> MeasureLayout(ChunkLayout layout, int64_t chunks, const TableOptions& options) {
  absl::StatusOr<TensorStorageMetadata> tensor = ChunkLayoutTensor(layout, chunks);
  if (!tensor.ok()) return tensor.status();
  LayoutRow row;
  row.layout = layout;
  row.chunks = static_cast<int64_t>(tensor->chunks.size());
  std::vector<double> times;
  for (int run = 0; run < std::max(1, options.repeats); ++run) {
    std::vector<PlanProblem> problems;
    times.push_back(CpuMs([&] { problems = ValidateTensor("w", *tensor); }));
    if (!problems.empty()) {
      return absl::InternalError(absl::StrCat("layout ", ChunkLayoutName(layout), ": ", problems.size(),
                                              " problems, first: ", ToString(problems.front())));
    }
  }
  row.validate_ms = Median(times);
  return row;
}

absl::StatusOr<std::vector<BalanceRow>> MeasureBalance(const Scenario& scenario, const TableOptions& options) {
  absl::StatusOr<std::vector<SavePlan>> local = LocalSavePlans(scenario);
  if (!local.ok()) return local.status();
  const absl::flat_hash_set<MetadataIndex> replicated_keys = ReplicatedKeys(*local);
  const int runs = RunsFor(scenario.ranks, options);
  std::vector<BalanceRow> rows;
  for (DedupPolicy policy : {DedupPolicy::kPyTorch, DedupPolicy::kLowestRank, DedupPolicy::kBalanced}) {
    BalanceRow row;
    row.scenario = ScenarioName(scenario);
    row.ranks = scenario.ranks;
    row.policy = policy;
    row.runs = runs;
    std::vector<double> times;
    std::vector<SavePlan> deduped;
    for (int run = 0; run < runs; ++run) {
      std::vector<SavePlan> input = *local;
      absl::StatusOr<DedupResult> result;
      times.push_back(CpuMs([&] { result = DedupSavePlans(std::move(input), policy); }));
      if (!result.ok()) return result.status();
      if (!result->conflicts.empty()) return Invalid(scenario, "dedup conflicts", result->conflicts);
      deduped = std::move(result->plans);
    }
    row.dedup_ms = Median(times);
    absl::StatusOr<Balance> all = ComputeBalance(deduped);
    if (!all.ok()) return all.status();
    absl::StatusOr<Balance> replicated = ComputeBalance(RestrictToKeys(deduped, replicated_keys));
    if (!replicated.ok()) return replicated.status();
    row.all = *all;
    row.replicated = *replicated;
    rows.push_back(row);
  }
  return rows;
}

std::string FormatBytes(int64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrCat(absl::StrFormat(value < 10 ? "%.2f" : value < 100 ? "%.1f" : "%.0f", value), " ",
                      kUnits[unit]);
}

std::string FormatScalingTable(const std::vector<ScalingRow>& rows, const TableOptions& options) {
  std::string out = absl::StrFormat(
      "### Planning time vs world size (CPU time of the planning thread, ms; median of %d runs, 1 run from %d "
      "ranks; wall time is noisy on a shared machine)\n\n",
      options.repeats, options.single_run_ranks);
  absl::StrAppend(&out,
                  "| scenario | ranks | items | kept | dedup | global plan | validate | dedup ns/item | "
                  "global plan ns/item | validate ns/item | load into | load ms/rank | read items/rank | "
                  "load ns/stored chunk |\n",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const ScalingRow& row : rows) {
    absl::StrAppend(&out, "| ", row.scenario, " | ", row.ranks, " | ", row.items, " | ", row.kept_items, " | ",
                    Ms(row.dedup_ms), " | ", Ms(row.global_plan_ms), " | ", Ms(row.validate_ms), " | ",
                    absl::StrFormat("%.0f", row.DedupNsPerItem()), " | ",
                    absl::StrFormat("%.0f", row.GlobalPlanNsPerKeptItem()), " | ",
                    absl::StrFormat("%.0f", row.ValidateNsPerKeptItem()), " | FSDP ", row.load_ranks, " | ",
                    Ms(row.load_rank_ms), " | ", row.load_read_items, " | ",
                    absl::StrFormat("%.1f", row.LoadNsPerStoredChunk()), " |\n");
  }
  absl::StrAppend(&out,
                  "\nitems: local save-plan items of all ranks; kept: items left after dedup (PyTorch policy); "
                  "dedup ns/item = dedup / items; global plan ns/item and validate ns/item are per kept item "
                  "(global plan / kept, validate / kept): flat columns mean linear growth. load: one rank of the resharded world (FSDP over half the ranks) "
                  "planning its reads from the metadata, averaged over a sample of its ranks; it scans every stored "
                  "chunk of each tensor, hence ns per stored chunk.\n");
  return out;
}

std::string FormatLayoutTable(const std::vector<LayoutRow>& rows, const TableOptions& options) {
  std::string out = absl::StrFormat(
      "### Validation of one tensor by chunk layout (CPU ms, median of %d runs)\n\n", options.repeats);
  absl::StrAppend(&out, "| layout | chunks | validate ms | ns/chunk |\n", "|---|---:|---:|---:|\n");
  for (const LayoutRow& row : rows) {
    absl::StrAppend(&out, "| ", ChunkLayoutName(row.layout), " | ", row.chunks, " | ", Ms(row.validate_ms), " | ",
                    absl::StrFormat("%.0f", row.NsPerChunk()), " |\n");
  }
  absl::StrAppend(&out,
                  "\nrows: a [16384 x 64] tensor split along dim 0; columns: a [64 x 16384] tensor split along "
                  "dim 1; grid: 128 x 128 blocks of 4 x 4; random: guillotine cuts at random positions of a "
                  "[4096 x 4096] tensor, chunks listed in random order (tools/bench/chunk_layouts.h).\n");
  return out;
}

std::string FormatBalanceTable(const std::vector<BalanceRow>& rows, const TableOptions& options) {
  std::string out = absl::StrFormat(
      "### Dedup balance (bytes each rank writes after dedup; bound = ceil(total / ranks); dedup CPU ms, median "
      "of %d runs)\n\n",
      options.repeats);
  absl::StrAppend(&out,
                  "| scenario | ranks | policy | dedup ms | all: bound | all: max rank | all: max/bound | "
                  "replicated: total | bound | largest item | max rank | max/bound | max/max(bound, largest) |\n",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const BalanceRow& row : rows) {
    absl::StrAppend(&out, "| ", row.scenario, " | ", row.ranks, " | ", DedupPolicyName(row.policy), " | ",
                    Ms(row.dedup_ms), " | ", FormatBytes(row.all.LowerBound()), " | ",
                    FormatBytes(row.all.max_rank_bytes), " | ", Ratio(row.all.Ratio()), " | ",
                    FormatBytes(row.replicated.total_bytes), " | ", FormatBytes(row.replicated.LowerBound()), " | ",
                    FormatBytes(row.replicated.largest_item), " | ", FormatBytes(row.replicated.max_rank_bytes),
                    " | ", Ratio(row.replicated.Ratio()), " | ", Ratio(row.replicated.TightRatio()), " |\n");
  }
  absl::StrAppend(&out,
                  "\nall: every item after dedup; replicated: only the items whose (fqn, offsets) several ranks "
                  "held (for DDP, all of them). No policy can beat max(bound, largest item). pytorch = PyTorch's "
                  "greedy (weighs items by global tensor size), balanced = dcplan's (real bytes).\n");
  return out;
}

int RunPlanTables(const TableOptions& options, std::ostream& out, std::ostream& log) {
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = ThreadCpuMs();
  const std::vector<TensorSpec> llama = Llama7B();
  auto scenario = [&](Parallelism parallelism, int64_t ranks) { return MakeScenario(parallelism, ranks, llama); };
  const std::vector<Scenario> scaling = ScalingScenarios();
  // DDP on 16 ranks: the bound (1/16 of the model) exceeds the largest
  // tensor, so the policies' assignments, not one tensor, set the maximum.
  const std::vector<Scenario> balance = {scenario(Parallelism::kDdp, 256), scenario(Parallelism::kDdp, 16),
                                         scenario(Parallelism::kTpFsdp, 64),
                                         scenario(Parallelism::kTpFsdp, 512), scenario(Parallelism::kTpFsdp, 4096)};
  int exit_code = 0;
  std::vector<ScalingRow> scaling_rows;
  for (const Scenario& s : scaling) {
    if (s.ranks > options.max_ranks) continue;
    log << "plan_bench --table: scaling " << ScenarioName(s) << " at " << s.ranks << " ranks" << std::endl;
    absl::StatusOr<ScalingRow> row = MeasureScaling(s, options);
    if (!row.ok()) {
      log << "  failed: " << row.status().ToString() << std::endl;
      exit_code = 1;
      continue;
    }
    scaling_rows.push_back(*row);
  }
  std::vector<LayoutRow> layout_rows;
  for (ChunkLayout layout : {ChunkLayout::kRows, ChunkLayout::kColumns, ChunkLayout::kGrid, ChunkLayout::kRandom}) {
    log << "plan_bench --table: layout " << ChunkLayoutName(layout) << std::endl;
    absl::StatusOr<LayoutRow> row = MeasureLayout(layout, kLayoutChunks, options);
    if (!row.ok()) {
      log << "  failed: " << row.status().ToString() << std::endl;
      exit_code = 1;
      continue;
    }
    layout_rows.push_back(*row);
  }
  std::vector<BalanceRow> balance_rows;
  for (const Scenario& s : balance) {
    if (s.ranks > options.max_ranks) continue;
    log << "plan_bench --table: balance " << ScenarioName(s) << " at " << s.ranks << " ranks" << std::endl;
    absl::StatusOr<std::vector<BalanceRow>> rows = MeasureBalance(s, options);
    if (!rows.ok()) {
      log << "  failed: " << rows.status().ToString() << std::endl;
      exit_code = 1;
      continue;
    }
    balance_rows.insert(balance_rows.end(), rows->begin(), rows->end());
  }
  out << FormatScalingTable(scaling_rows, options) << "\n"
      << FormatLayoutTable(layout_rows, options) << "\n"
      << FormatBalanceTable(balance_rows, options);
  const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - wall_start;
  out << absl::StrFormat("\n(plan_bench --table: %.0f s wall, %.0f s CPU, including building the scenarios)\n",
                         wall.count(), (ThreadCpuMs() - cpu_start) / 1e3);
  return exit_code;
}

absl::StatusOr<bool> ParseTableFlags(int* argc, char** argv, TableOptions* options) {
  bool table = false;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    absl::string_view arg = argv[i];
    int64_t value = 0;
    if (arg == "--table") {
      table = true;
    } else if (absl::ConsumePrefix(&arg, "--table_repeats=")) {
      if (!absl::SimpleAtoi(arg, &value) || value < 1) return absl::InvalidArgumentError(argv[i]);
      options->repeats = static_cast<int>(value);
    } else if (absl::ConsumePrefix(&arg, "--table_max_ranks=")) {
      if (!absl::SimpleAtoi(arg, &value) || value < 1) return absl::InvalidArgumentError(argv[i]);
      options->max_ranks = value;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  return table;
}

}  // namespace bench
}  // namespace dcplan
