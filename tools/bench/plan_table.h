#ifndef DCPLAN_TOOLS_BENCH_PLAN_TABLE_H_
#define DCPLAN_TOOLS_BENCH_PLAN_TABLE_H_

// `plan_bench --table`: the planning numbers of issue #6 as compact markdown
// tables, each figure measured in this run (thread CPU time: the machine is
// shared, wall time is noisy).
//
// Scaling table, one row per scenario and world size: dedup (PyTorch
// policy), global plan and validation, each also per item (dedup per local
// item, the other two per item kept after dedup: flat when the time grows
// linearly in the number of items), and load planning of one
// rank of the resharded world (ReshardTarget), averaged over a sample of its
// ranks, also per stored chunk.
//
// Layout table: validation of one tensor of 16 384 chunks in each
// ChunkLayout (chunk_layouts.h), also per chunk.
//
// Balance table, for the dedup-heavy scenarios: for each dedup policy, its
// CPU time and the largest per-rank bytes after dedup against the lower bound
// ceil(total / ranks), over all items and over the replicated items only.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/dedup.h"
#include "tools/bench/chunk_layouts.h"
#include "tools/bench/plan_scenarios.h"

namespace dcplan {
namespace bench {

struct TableOptions {
  int repeats = 3;                   // runs per figure; the median is reported
  int64_t single_run_ranks = 16384;  // from this world size on, one run
  int64_t max_ranks = 16384;         // scenarios above this are skipped
  int64_t load_sampled_ranks = 8;    // load-planning ranks timed per run
};

struct ScalingRow {
  std::string scenario;
  int64_t ranks = 0;
  int64_t items = 0;           // local save-plan items, all ranks
  int64_t kept_items = 0;      // items left after dedup
  int64_t stored_chunks = 0;   // tensor chunks in the metadata
  int runs = 0;
  double dedup_ms = 0;
  double global_plan_ms = 0;
  double validate_ms = 0;
  int64_t load_ranks = 0;
  double load_rank_ms = 0;     // one rank's load planning
  int64_t load_read_items = 0; // read items of the sampled ranks, per rank
  double DedupNsPerItem() const;        // per local item
  double GlobalPlanNsPerKeptItem() const;
  double ValidateNsPerKeptItem() const;
  double LoadNsPerStoredChunk() const;
};

// Measures one scenario. Error if planning fails or the plans do not
// validate (a benchmark of an invalid checkpoint is no benchmark).
absl::StatusOr<ScalingRow> MeasureScaling(const Scenario& scenario, const TableOptions& options);

struct BalanceRow {
  std::string scenario;
  int64_t ranks = 0;
  DedupPolicy policy = DedupPolicy::kPyTorch;
  int runs = 0;
  double dedup_ms = 0;
  Balance all;         // every item after dedup
  Balance replicated;  // the items whose key several ranks held
};

struct LayoutRow {
  ChunkLayout layout = ChunkLayout::kRows;
  int64_t chunks = 0;
  double validate_ms = 0;
  double NsPerChunk() const;
};

// Validation of one tensor of `chunks` chunks in `layout`. Error if the
// layout cannot be built or does not validate.
absl::StatusOr<LayoutRow> MeasureLayout(ChunkLayout layout, int64_t chunks, const TableOptions& options);

// One row per policy (pytorch, lowest_rank, balanced).
absl::StatusOr<std::vector<BalanceRow>> MeasureBalance(const Scenario& scenario, const TableOptions& options);

std::string FormatScalingTable(const std::vector<ScalingRow>& rows, const TableOptions& options);
std::string FormatLayoutTable(const std::vector<LayoutRow>& rows, const TableOptions& options);
std::string FormatBalanceTable(const std::vector<BalanceRow>& rows, const TableOptions& options);

// Bytes with a binary unit and 3 significant digits ("52.6 MiB", "512 B").
std::string FormatBytes(int64_t bytes);

// Runs every scenario of issue #6 (scaling: FSDP at 8 .. 16384 ranks, TP8 x
// FSDP at 64, 512, 4096, DDP at 256; the four layouts of 16 384 chunks; balance: DDP at 256 and 16, TP8 x FSDP
// at 64, 512, 4096) and prints both tables to `out`, progress to `log`.
// Returns the process exit code (1 if a scenario failed).
int RunPlanTables(const TableOptions& options, std::ostream& out, std::ostream& log);

// Parses "--table", "--table_repeats=N", "--table_max_ranks=N" out of argv
// (removing them). True if --table was given. Error for a malformed value.
absl::StatusOr<bool> ParseTableFlags(int* argc, char** argv, TableOptions* options);

}  // namespace bench
}  // namespace dcplan

#endif  // DCPLAN_TOOLS_BENCH_PLAN_TABLE_H_
