#include "tools/bench/plan_scenarios.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/dedup.h"
#include "engine/save_planner.h"

namespace dcplan {
namespace bench {
namespace {

TensorProperties Props(DType dtype) {
  TensorProperties properties;
  properties.dtype = dtype;
  return properties;
}

ChunkBox WholeBox(const Shape& size) { return ChunkBox{Shape(size.size(), 0), size}; }

// The chunk of `spec` that `rank` holds in a TP x FSDP world.
absl::StatusOr<ChunkBox> TpFsdpChunk(const TensorSpec& spec, int64_t rank, int64_t tp_degree,
                                     int64_t fsdp_degree) {
  const int64_t tp_index = rank % tp_degree;
  const int64_t fsdp_index = rank / tp_degree;
  const ChunkBox whole = WholeBox(spec.size);
  const int64_t rows = spec.size[0];
  switch (spec.tp_style) {
    case TpStyle::kColumn:
      return ShardDim(ShardDim(whole, 0, tp_index, tp_degree, rows), 0, fsdp_index, fsdp_degree, rows);
    case TpStyle::kRow:
      if (spec.size.size() < 2) {
        return absl::InvalidArgumentError(absl::StrCat("row-parallel tensor '", spec.fqn, "' has fewer than 2 dims"));
      }
      return ShardDim(ShardDim(whole, 1, tp_index, tp_degree, spec.size[1]), 0, fsdp_index, fsdp_degree, rows);
    case TpStyle::kReplicated:
      return ShardDim(whole, 0, fsdp_index, fsdp_degree, rows);
  }
  return absl::InternalError("unknown TpStyle");
}

void AddExtras(StateDictDescription& description) {
  description.values.InsertOrAssign("model.rotary_emb.inv_freq", WholeTensor{{64}, Props(DType::kFloat32)});
  description.values.InsertOrAssign("scaler.scale", WholeTensor{{}, Props(DType::kFloat32)});
  description.values.InsertOrAssign("ema.decay", WholeTensor{{1}, Props(DType::kFloat32)});
  description.values.InsertOrAssign("step", OpaqueValue{8});
  description.values.InsertOrAssign("rng_state", OpaqueValue{5056});
}

absl::Status CheckScenario(const Scenario& scenario) {
  if (scenario.ranks < 1) return absl::InvalidArgumentError("a scenario needs at least one rank");
  if (scenario.parallelism == Parallelism::kTpFsdp &&
      (scenario.tp_degree < 1 || scenario.ranks % scenario.tp_degree != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_degree ", scenario.tp_degree, " does not divide ", scenario.ranks, " ranks"));
  }
  for (const TensorSpec& spec : scenario.model) {
    if (scenario.parallelism != Parallelism::kDdp && spec.size.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sharded tensor '", spec.fqn, "' has no dims"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StateDictDescription> DescribeRank(const Scenario& scenario, int64_t rank) {
  StateDictDescription description;
  description.values.reserve(scenario.model.size() + 5);
  for (const TensorSpec& spec : scenario.model) {
    switch (scenario.parallelism) {
      case Parallelism::kFsdp:
        description.values.InsertOrAssign(
            spec.fqn,
            ShardedTensor{spec.size, Props(spec.dtype),
                          {ShardDim(WholeBox(spec.size), 0, rank, scenario.ranks, spec.size[0])}});
        break;
      case Parallelism::kTpFsdp: {
        absl::StatusOr<ChunkBox> chunk =
            TpFsdpChunk(spec, rank, scenario.tp_degree, scenario.ranks / scenario.tp_degree);
        if (!chunk.ok()) return chunk.status();
        description.values.InsertOrAssign(spec.fqn, ShardedTensor{spec.size, Props(spec.dtype), {*std::move(chunk)}});
        break;
      }
      case Parallelism::kDdp:
        description.values.InsertOrAssign(spec.fqn, WholeTensor{spec.size, Props(spec.dtype)});
        break;
    }
  }
  if (scenario.with_extras) AddExtras(description);
  return description;
}

}  // namespace

std::vector<TensorSpec> Llama7B() {
  constexpr int64_t kVocab = 32000, kHidden = 4096, kIntermediate = 11008;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", {kVocab, kHidden}, TpStyle::kColumn}};
  for (int layer = 0; layer < 32; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
      specs.push_back({absl::StrCat(prefix, "self_attn.", proj, ".weight"), {kHidden, kHidden}, TpStyle::kColumn});
    }
    specs.push_back({prefix + "self_attn.o_proj.weight", {kHidden, kHidden}, TpStyle::kRow});
    specs.push_back({prefix + "mlp.gate_proj.weight", {kIntermediate, kHidden}, TpStyle::kColumn});
    specs.push_back({prefix + "mlp.up_proj.weight", {kIntermediate, kHidden}, TpStyle::kColumn});
    specs.push_back({prefix + "mlp.down_proj.weight", {kHidden, kIntermediate}, TpStyle::kRow});
    specs.push_back({prefix + "input_layernorm.weight", {kHidden}, TpStyle::kReplicated});
    specs.push_back({prefix + "post_attention_layernorm.weight", {kHidden}, TpStyle::kReplicated});
  }
  specs.push_back({"model.norm.weight", {kHidden}, TpStyle::kReplicated});
  specs.push_back({"lm_head.weight", {kVocab, kHidden}, TpStyle::kColumn});
  return specs;
}

Scenario MakeScenario(Parallelism parallelism, int64_t ranks, std::vector<TensorSpec> model) {
  Scenario scenario;
  scenario.parallelism = parallelism;
  scenario.ranks = ranks;
  scenario.tp_degree = parallelism == Parallelism::kTpFsdp ? 8 : 1;
  scenario.model = std::move(model);
  return scenario;
}

std::vector<Scenario> ScalingScenarios() {
  const std::vector<TensorSpec> llama = Llama7B();
  std::vector<Scenario> scenarios;
  for (int64_t ranks : {8, 64, 512, 4096, 16384}) scenarios.push_back(MakeScenario(Parallelism::kFsdp, ranks, llama));
  for (int64_t ranks : {64, 512, 4096}) scenarios.push_back(MakeScenario(Parallelism::kTpFsdp, ranks, llama));
  scenarios.push_back(MakeScenario(Parallelism::kDdp, 256, llama));
  return scenarios;
}

std::string ScenarioName(const Scenario& scenario) {
  switch (scenario.parallelism) {
    case Parallelism::kFsdp:
      return "FSDP";
    case Parallelism::kTpFsdp:
      return absl::StrCat("TP", scenario.tp_degree, "xFSDP",
                          scenario.tp_degree > 0 ? scenario.ranks / scenario.tp_degree : 0);
    case Parallelism::kDdp:
      return "DDP";
  }
  return "?";
}

ChunkBox ShardDim(const ChunkBox& box, size_t dim, int64_t index, int64_t parts, int64_t global_rows) {
  ChunkBox piece = box;
  const int64_t rows = box.sizes[dim];
  const int64_t piece_rows = rows % parts == 0 ? rows / parts : rows / parts + 1;
  const int64_t begin = std::min(rows, index * piece_rows);
  const int64_t end = std::min(rows, begin + piece_rows);
  piece.sizes[dim] = end - begin;
  piece.offsets[dim] = end > begin ? box.offsets[dim] + begin : global_rows;
  return piece;
}

absl::StatusOr<StateDictDescription> SaveDescription(const Scenario& scenario, int64_t rank) {
  if (absl::Status status = CheckScenario(scenario); !status.ok()) return status;
  if (rank < 0 || rank >= scenario.ranks) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " outside a world of ", scenario.ranks));
  }
  return DescribeRank(scenario, rank);
}

absl::StatusOr<std::vector<SavePlan>> LocalSavePlans(const Scenario& scenario) {
  if (absl::Status status = CheckScenario(scenario); !status.ok()) return status;
  std::vector<SavePlan> plans;
  plans.reserve(scenario.ranks);
  for (int64_t rank = 0; rank < scenario.ranks; ++rank) {
    absl::StatusOr<StateDictDescription> description = DescribeRank(scenario, rank);
    if (!description.ok()) return description.status();
    absl::StatusOr<SavePlan> plan = CreateLocalSavePlan(*description, rank == 0);
    if (!plan.ok()) return plan.status();
    plans.push_back(*std::move(plan));
  }
  return plans;
}

Scenario ReshardTarget(const Scenario& saved) {
  Scenario target = saved;
  target.parallelism = Parallelism::kFsdp;
  target.ranks = std::max<int64_t>(1, saved.ranks / 2);
  target.tp_degree = 1;
  return target;
}

absl::flat_hash_set<MetadataIndex> ReplicatedKeys(const std::vector<SavePlan>& plans) {
  // The last rank seen holding each key, or -1 once a second rank holds it.
  absl::flat_hash_map<MetadataIndex, int64_t> sole_holder;
  for (int64_t rank = 0; rank < static_cast<int64_t>(plans.size()); ++rank) {
    for (const WriteItem& item : plans[rank].items) {
      auto [it, inserted] = sole_holder.try_emplace(item.index, rank);
      if (!inserted && it->second != rank) it->second = -1;
    }
  }
  absl::flat_hash_set<MetadataIndex> replicated;
  for (const auto& entry : sole_holder) {
    if (entry.second < 0) replicated.insert(entry.first);
  }
  return replicated;
}

std::vector<SavePlan> RestrictToKeys(const std::vector<SavePlan>& plans,
                                     const absl::flat_hash_set<MetadataIndex>& keys) {
  std::vector<SavePlan> restricted(plans.size());
  for (size_t rank = 0; rank < plans.size(); ++rank) {
    restricted[rank].storage_data = plans[rank].storage_data;
    restricted[rank].planner_data = plans[rank].planner_data;
    restricted[rank].usable = plans[rank].usable;
    for (const WriteItem& item : plans[rank].items) {
      if (keys.contains(item.index)) restricted[rank].items.push_back(item);
    }
  }
  return restricted;
}

int64_t Balance::LowerBound() const {
  if (ranks <= 0) return 0;
  return total_bytes / ranks + (total_bytes % ranks != 0 ? 1 : 0);
}

double Balance::Ratio() const {
  const int64_t bound = LowerBound();
  return bound == 0 ? 1.0 : static_cast<double>(max_rank_bytes) / static_cast<double>(bound);
}

double Balance::TightRatio() const {
  const int64_t bound = std::max(LowerBound(), largest_item);
  return bound == 0 ? 1.0 : static_cast<double>(max_rank_bytes) / static_cast<double>(bound);
}

absl::StatusOr<Balance> ComputeBalance(const std::vector<SavePlan>& deduped) {
  absl::StatusOr<std::vector<int64_t>> per_rank = PlanBytes(deduped);
  if (!per_rank.ok()) return per_rank.status();
  Balance balance;
  balance.ranks = static_cast<int64_t>(deduped.size());
  for (int64_t bytes : *per_rank) {
    if (bytes > std::numeric_limits<int64_t>::max() - balance.total_bytes) return absl::OutOfRangeError("total bytes overflow int64");
    balance.total_bytes += bytes;
    balance.max_rank_bytes = std::max(balance.max_rank_bytes, bytes);
  }
  for (const SavePlan& plan : deduped) {
    for (const WriteItem& item : plan.items) {
      absl::StatusOr<int64_t> bytes = item.PayloadBytes();
      if (!bytes.ok()) return bytes.status();
      balance.largest_item = std::max(balance.largest_item, *bytes);
    }
  }
  return balance;
}

}  // namespace bench
}  // namespace dcplan
