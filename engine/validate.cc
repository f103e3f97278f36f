#include "engine/validate.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/box.h"
#include "engine/internal/checked_math.h"

namespace dcplan {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Ends are offset + size in 128 bits: chunks whose end overflows int64 are
// out of bounds but still take part in the overlap check.
__int128 EndOf(const ChunkBox& chunk, size_t dim) {
  return static_cast<__int128>(chunk.offsets[dim]) + chunk.sizes[dim];
}

// ---- Bounds -------------------------------------------------------------------

// Why `chunk` is not inside `size`; empty if it is.
std::string OutOfBoundsReason(const Shape& size, const ChunkBox& chunk) {
  if (chunk.offsets.size() != chunk.sizes.size()) {
    return absl::StrCat("it has ", chunk.offsets.size(), " offsets but ", chunk.sizes.size(), " sizes");
  }
  if (chunk.sizes.size() != size.size()) {
    return absl::StrCat("it has rank ", chunk.sizes.size(), " but the tensor has rank ", size.size());
  }
  for (size_t d = 0; d < size.size(); ++d) {
    if (chunk.offsets[d] < 0) return absl::StrCat("its offset in dim ", d, " is negative");
    if (chunk.sizes[d] < 0) return absl::StrCat("its size in dim ", d, " is negative");
    std::optional<int64_t> end = internal::CheckedAdd(chunk.offsets[d], chunk.sizes[d]);
    if (!end) return absl::StrCat("its end in dim ", d, " overflows int64");
    if (*end > size[d]) {
      return absl::StrCat("it ends at ", *end, " in dim ", d, ", past the tensor size ", ShapeToString(size));
    }
  }
  return "";
}

void AppendOutOfBoundsProblems(absl::string_view fqn, const TensorStorageMetadata& tensor,
                               const std::vector<size_t>& out_of_bounds, std::vector<PlanProblem>& problems) {
  for (size_t i : out_of_bounds) {
    const ChunkBox& chunk = tensor.chunks[i];
    PlanProblem problem;
    problem.kind = ProblemKind::kOutOfBounds;
    problem.fqn = std::string(fqn);
    problem.chunks = {static_cast<int64_t>(i)};
    problem.message = absl::StrCat("key:", fqn, " has out of bounds chunk ", i, " ", ToString(chunk), ": ",
                                   OutOfBoundsReason(tensor.size, chunk));
    problems.push_back(std::move(problem));
  }
}

// ---- Overlap ------------------------------------------------------------------

// Chunks that can share an element with another one: the tensor's rank and a
// positive size in every dim. Malformed chunks are left out (they are reported
// out of bounds already); zero-volume chunks overlap nothing by dcplan's rule.
bool TakesPartInOverlapCheck(const ChunkBox& chunk, size_t rank) {
  if (chunk.offsets.size() != rank || chunk.sizes.size() != rank) return false;
  return std::all_of(chunk.sizes.begin(), chunk.sizes.end(), [](int64_t s) { return s > 0; });
}

// The chunks taking part in the overlap check, as contiguous rows of starts
// and ends: the sweep's inner loop reads nothing else. For these chunks,
// Overlaps(a, b) is "a.start < b.end and b.start < a.end in every dim".
class FlatBoxes {
 public:
  // `capacity`: the number of chunks (a chunk of another rank has fewer
  // than `rank` dims, so starts_ and ends_ grow as chunks are added).
  FlatBoxes(size_t rank, size_t capacity) : rank_(rank) { ids_.reserve(capacity); }

  // Adds chunk `id` if it takes part in the overlap check.
  void Add(int64_t id, const ChunkBox& chunk) {
    if (!TakesPartInOverlapCheck(chunk, rank_)) return;
    ids_.push_back(id);
    for (size_t d = 0; d < rank_; ++d) {
      starts_.push_back(chunk.offsets[d]);
      ends_.push_back(EndOf(chunk, d));
    }
  }

  size_t size() const { return ids_.size(); }
  size_t rank() const { return rank_; }
  // Position of box k in the tensor's chunk list.
  int64_t id(size_t k) const { return ids_[k]; }
  int64_t start(size_t k, size_t d) const { return starts_[k * rank_ + d]; }
  __int128 end(size_t k, size_t d) const { return ends_[k * rank_ + d]; }

  bool IntersectIn(size_t k, size_t l, const std::vector<size_t>& dims) const {
    for (size_t d : dims) {
      if (!(start(k, d) < end(l, d) && start(l, d) < end(k, d))) return false;
    }
    return true;
  }

  // Boxes ordered by (start in dim d, k).
  std::vector<std::pair<int64_t, size_t>> SortedByStart(size_t d) const {
    std::vector<std::pair<int64_t, size_t>> order(size());
    for (size_t k = 0; k < size(); ++k) order[k] = {start(k, d), k};
    // Global plans list chunks rank by rank, usually in start order already.
    if (!std::is_sorted(order.begin(), order.end())) std::sort(order.begin(), order.end());
    return order;
  }

 private:
  size_t rank_;
  std::vector<int64_t> ids_;
  std::vector<int64_t> starts_;
  std::vector<__int128> ends_;
};

size_t CountDistinct(const std::vector<std::pair<int64_t, size_t>>& sorted) {
  size_t distinct = 0;
  for (size_t p = 0; p < sorted.size(); ++p) distinct += p == 0 || sorted[p].first != sorted[p - 1].first;
  return distinct;
}

// The sweep dimension (most distinct start offsets, lowest on ties) and the
// dimension the active set is indexed by (the runner-up; the sweep dimension
// itself for 1-d tensors). Sweeping along the dimension the tensor is split in
// keeps the active set small; indexing it by another dimension keeps grid
// layouts, whose active set is a whole slab, cheap too.
std::pair<size_t, size_t> ChooseDims(const std::vector<std::vector<std::pair<int64_t, size_t>>>& sorted_by_start) {
  const size_t rank = sorted_by_start.size();
  std::vector<size_t> distinct(rank);
  for (size_t d = 0; d < rank; ++d) distinct[d] = CountDistinct(sorted_by_start[d]);
  size_t sweep = 0;
  for (size_t d = 1; d < rank; ++d) {
    if (distinct[d] > distinct[sweep]) sweep = d;
  }
  if (rank == 1) return {sweep, sweep};
  size_t index = sweep == 0 ? 1 : 0;
  for (size_t d = 0; d < rank; ++d) {
    if (d != sweep && distinct[d] > distinct[index]) index = d;
  }
  return {sweep, index};
}

// The active chunks' intervals in one dimension: a max-segment tree over the
// chunks ordered by their start there, each leaf holding the end of an active
// chunk or kInactive. Finding the active intervals that intersect [start, end)
// costs O(log C) per interval found.
class ActiveIntervals {
 public:
  static constexpr __int128 kInactive = static_cast<__int128>(std::numeric_limits<int64_t>::min()) - 1;

  explicit ActiveIntervals(size_t count) {
    while (leaves_ < count) leaves_ *= 2;
    max_end_.assign(2 * leaves_, kInactive);
  }

  void Set(size_t position, __int128 end) {
    size_t node = leaves_ + position;
    max_end_[node] = end;
    // An unchanged node leaves its ancestors unchanged.
    for (node /= 2; node >= 1; node /= 2) {
      const __int128 updated = std::max(max_end_[2 * node], max_end_[2 * node + 1]);
      if (max_end_[node] == updated) break;
      max_end_[node] = updated;
    }
  }

  // Calls visit(position) for every active position below `limit` whose end
  // is past `start`, until visit returns false.
  template <typename Visit>
  void ForEachEndingAfter(size_t limit, __int128 start, const Visit& visit) const {
    Descend(1, 0, leaves_, limit, start, visit);
  }

 private:
  // False once `visit` has asked to stop.
  template <typename Visit>
  bool Descend(size_t node, size_t low, size_t high, size_t limit, __int128 start, const Visit& visit) const {
    if (low >= limit || max_end_[node] <= start) return true;
    if (high - low == 1) return visit(low);
    const size_t middle = low + (high - low) / 2;
    return Descend(2 * node, low, middle, limit, start, visit) &&
           Descend(2 * node + 1, middle, high, limit, start, visit);
  }

  size_t leaves_ = 1;
  std::vector<__int128> max_end_;
};

// True if, in start order along `dim`, every box starts at or after the ends
// of all the boxes before it: slabs (row or column splits) share no element,
// whatever their other dims.
bool DisjointAlong(const FlatBoxes& boxes, const std::vector<std::pair<int64_t, size_t>>& by_start, size_t dim) {
  __int128 reached = std::numeric_limits<int64_t>::min();
  for (const auto& [start, k] : by_start) {
    if (start < reached) return false;
    reached = std::max(reached, boxes.end(k, dim));
  }
  return true;
}

// The overlapping pairs of a tensor's chunks, bounded: the smallest
// kMaxListedOverlapPairs pairs (i, j), i < j, ascending, and how many pairs
// there are in all (`complete` false when the search stopped after
// kMaxOverlapCandidates candidate pairs: `total` is then a lower bound).
struct OverlapReport {
  std::vector<std::pair<int64_t, int64_t>> listed;
  int64_t total = 0;
  bool complete = true;
};

// Keeps the smallest `capacity` pairs seen (a max-heap of them).
class SmallestPairs {
 public:
  explicit SmallestPairs(size_t capacity) : capacity_(capacity) {}
  void Add(std::pair<int64_t, int64_t> pair) {
    if (heap_.size() < capacity_) {
      heap_.push_back(pair);
      std::push_heap(heap_.begin(), heap_.end());
    } else if (capacity_ > 0 && pair < heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = pair;
      std::push_heap(heap_.begin(), heap_.end());
    }
  }
  std::vector<std::pair<int64_t, int64_t>> Sorted() && {
    std::sort_heap(heap_.begin(), heap_.end());
    return std::move(heap_);
  }

 private:
  size_t capacity_;
  std::vector<std::pair<int64_t, int64_t>> heap_;
};

// Sweep along one dimension in start order: a chunk meets the chunks still
// active there (end past its start); among those, the index over a second
// dimension yields the ones that intersect it there too, and the remaining
// dimensions decide. Every candidate costs O(log C); the search stops after
// kMaxOverlapCandidates of them, so that degenerate inputs (thousands of
// copies of one chunk, with millions of pairs) stay cheap.
OverlapReport OverlappingPairs(const FlatBoxes& boxes, int64_t stop_after_pairs = INT64_MAX) {
  OverlapReport report;
  const size_t rank = boxes.rank();
  if (rank == 0 || boxes.size() < 2) return report;
  std::vector<std::vector<std::pair<int64_t, size_t>>> sorted_by_start(rank);
  for (size_t d = 0; d < rank; ++d) sorted_by_start[d] = boxes.SortedByStart(d);
  const auto [sweep_dim, index_dim] = ChooseDims(sorted_by_start);
  if (DisjointAlong(boxes, sorted_by_start[sweep_dim], sweep_dim)) return report;
  std::vector<size_t> other_dims;
  for (size_t d = 0; d < rank; ++d) {
    if (d != sweep_dim && d != index_dim) other_dims.push_back(d);
  }

  const std::vector<std::pair<int64_t, size_t>>& by_index_start = sorted_by_start[index_dim];
  std::vector<size_t> position_of(boxes.size());
  for (size_t p = 0; p < by_index_start.size(); ++p) position_of[by_index_start[p].second] = p;

  SmallestPairs listed(kMaxListedOverlapPairs);
  int64_t candidates = 0;
  ActiveIntervals active(boxes.size());
  using Expiry = std::pair<__int128, size_t>;  // (end in sweep_dim, position)
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiries;
  for (const auto& [sweep_start, sweep_box] : sorted_by_start[sweep_dim]) {
    // A plain copy: C++17 lambdas cannot capture structured bindings (clang
    // refuses; gcc accepts).
    const size_t k = sweep_box;
    while (!expiries.empty() && expiries.top().first <= sweep_start) {
      active.Set(expiries.top().second, ActiveIntervals::kInactive);
      expiries.pop();
    }
    const __int128 index_end = boxes.end(k, index_dim);
    const size_t limit =
        std::lower_bound(by_index_start.begin(), by_index_start.end(), index_end,
                         [](const std::pair<int64_t, size_t>& entry, __int128 end) { return entry.first < end; }) -
        by_index_start.begin();
    active.ForEachEndingAfter(limit, boxes.start(k, index_dim), [&](size_t position) {
      if (++candidates > kMaxOverlapCandidates) return false;
      const size_t other = by_index_start[position].second;
      if (!boxes.IntersectIn(k, other, other_dims)) return true;
      ++report.total;
      listed.Add({std::min(boxes.id(k), boxes.id(other)), std::max(boxes.id(k), boxes.id(other))});
      return report.total < stop_after_pairs;
    });
    if (report.total >= stop_after_pairs) {
      report.complete = false;
      break;
    }
    if (candidates > kMaxOverlapCandidates) {
      report.complete = false;
      break;
    }
    active.Set(position_of[k], index_end);
    expiries.emplace(boxes.end(k, sweep_dim), position_of[k]);
  }
  report.listed = std::move(listed).Sorted();
  return report;
}

void AppendOverlapProblems(absl::string_view fqn, const TensorStorageMetadata& tensor, const FlatBoxes& boxes,
                           std::vector<PlanProblem>& problems) {
  const OverlapReport report = OverlappingPairs(boxes);
  for (const auto& [i, j] : report.listed) {
    PlanProblem problem;
    problem.kind = ProblemKind::kOverlap;
    problem.fqn = std::string(fqn);
    problem.chunks = {i, j};
    problem.message = absl::StrCat("key:", fqn, " has overlapping chunks ", i, " ", ToString(tensor.chunks[i]),
                                   " and ", j, " ", ToString(tensor.chunks[j]));
    problems.push_back(std::move(problem));
  }
  if (report.complete && report.total <= static_cast<int64_t>(report.listed.size())) return;
  PlanProblem summary;
  summary.kind = ProblemKind::kOverlap;
  summary.fqn = std::string(fqn);
  summary.message = OverlapSummaryMessage(fqn, report.total, report.complete, report.listed.size());
  problems.push_back(std::move(summary));
}

// ---- Volume -------------------------------------------------------------------

// Sum of the chunks' volumes, exact in 128 bits: a chunk whose volume does not
// fit in int64 counts INT64_MAX + 1 (enough to make any comparison with an
// int64 tensor volume fail), a chunk with a negative size counts 0.
struct ChunksVolume {
  __int128 sum = 0;
  bool has_negative_size = false;
};

void AddChunkVolume(const ChunkBox& chunk, ChunksVolume& total) {
  absl::StatusOr<int64_t> volume = Volume(chunk);
  if (volume.ok()) {
    total.sum += *volume;
  } else if (volume.status().code() == absl::StatusCode::kOutOfRange) {
    total.sum += static_cast<__int128>(kInt64Max) + 1;
  } else {
    total.has_negative_size = true;
  }
}

int64_t Saturate(__int128 value) { return value > kInt64Max ? kInt64Max : static_cast<int64_t>(value); }

std::string CoveredText(__int128 sum) {
  if (sum > kInt64Max) return absl::StrCat("more than ", kInt64Max);
  return absl::StrCat(static_cast<int64_t>(sum));
}

void AppendVolumeProblem(absl::string_view fqn, const TensorStorageMetadata& tensor,
                         const ChunksVolume& chunks_volume, std::vector<PlanProblem>& problems) {
  PlanProblem problem;
  problem.kind = ProblemKind::kVolume;
  problem.fqn = std::string(fqn);
  problem.actual = Saturate(chunks_volume.sum);
  absl::StatusOr<int64_t> tensor_volume = ShapeVolume(tensor.size);
  if (!tensor_volume.ok()) {
    const bool overflow = tensor_volume.status().code() == absl::StatusCode::kOutOfRange;
    problem.expected = overflow ? kInt64Max : 0;
    problem.message = absl::StrCat("key:", fqn, " has size ", ShapeToString(tensor.size),
                                   overflow ? " whose volume overflows int64" : " with a negative dimension");
    problems.push_back(std::move(problem));
    return;
  }
  if (chunks_volume.sum == *tensor_volume) return;
  problem.expected = *tensor_volume;
  problem.message = absl::StrCat("key:", fqn, " has ", tensor.chunks.size(), " chunks covering ",
                                 CoveredText(chunks_volume.sum), " elements but its size ",
                                 ShapeToString(tensor.size), " has ", *tensor_volume);
  if (chunks_volume.has_negative_size) absl::StrAppend(&problem.message, " (chunks with a negative size count 0)");
  problems.push_back(std::move(problem));
}

// ---- One pass over the chunks ---------------------------------------------------

// What the three checks need from a tensor's chunks. Each chunk's offsets and
// sizes are separate heap blocks, scattered over the heap (the global plan
// appends chunks rank by rank, tensor by tensor): reading them once, not once
// per check, keeps the cache misses down.
struct ChunkFacts {
  ChunkFacts(size_t rank, size_t num_chunks) : boxes(rank, num_chunks) {}

  std::vector<size_t> out_of_bounds;  // positions, ascending
  FlatBoxes boxes;
  ChunksVolume volume;
};

ChunkFacts ScanChunks(const TensorStorageMetadata& tensor) {
  ChunkFacts facts(tensor.size.size(), tensor.chunks.size());
  for (size_t i = 0; i < tensor.chunks.size(); ++i) {
    const ChunkBox& chunk = tensor.chunks[i];
    if (!InBounds(tensor.size, chunk)) facts.out_of_bounds.push_back(i);
    facts.boxes.Add(static_cast<int64_t>(i), chunk);
    AddChunkVolume(chunk, facts.volume);
  }
  return facts;
}

}  // namespace

std::string OverlapSummaryMessage(absl::string_view fqn, int64_t total, bool complete, size_t listed) {
  return absl::StrCat("key:", fqn, " has ", complete ? "" : "at least ", total, " overlapping chunk pairs; ",
                      listed, " are listed", complete ? "" : " (the search stopped early)");
}

std::vector<PlanProblem> ValidateTensor(absl::string_view fqn, const TensorStorageMetadata& tensor) {
  std::vector<PlanProblem> problems;
  if (tensor.size.empty()) return problems;
  const ChunkFacts facts = ScanChunks(tensor);
  AppendOutOfBoundsProblems(fqn, tensor, facts.out_of_bounds, problems);
  AppendOverlapProblems(fqn, tensor, facts.boxes, problems);
  AppendVolumeProblem(fqn, tensor, facts.volume, problems);
  return problems;
}

bool HasOverlappingChunks(const TensorStorageMetadata& tensor) {
  if (tensor.size.empty()) return false;
  FlatBoxes boxes(tensor.size.size(), tensor.chunks.size());
  for (size_t i = 0; i < tensor.chunks.size(); ++i) boxes.Add(static_cast<int64_t>(i), tensor.chunks[i]);
  return OverlappingPairs(boxes, /*stop_after_pairs=*/1).total > 0;
}

std::vector<PlanProblem> ValidateMetadata(const StateDictMetadata& metadata) {
  std::vector<PlanProblem> problems;
  for (const auto& [fqn, value] : metadata) {
    const auto* tensor = std::get_if<TensorStorageMetadata>(&value);
    if (tensor == nullptr) continue;
    std::vector<PlanProblem> tensor_problems = ValidateTensor(fqn, *tensor);
    problems.insert(problems.end(), std::make_move_iterator(tensor_problems.begin()),
                    std::make_move_iterator(tensor_problems.end()));
  }
  return problems;
}

}  // namespace dcplan
