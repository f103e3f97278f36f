#include "engine/internal/overlap_pairs.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "engine/internal/disjoint_by_cuts.h"
#include "engine/internal/stable_order.h"

namespace dcplan {
namespace internal {

FlatBoxes::FlatBoxes(size_t rank, size_t capacity) : rank_(rank) {
  ids_.reserve(capacity);
  starts_.reserve(capacity * rank);
  sizes_.reserve(capacity * rank);
}

void FlatBoxes::Add(int64_t id, const ChunkBox& chunk) {
  if (chunk.offsets.size() != rank_ || chunk.sizes.size() != rank_) return;
  if (!std::all_of(chunk.sizes.begin(), chunk.sizes.end(), [](int64_t s) { return s > 0; })) return;
  AddTakingPart(id, chunk);
}

namespace {

// ---- Boxes as ranks -------------------------------------------------------------
//
// The sweep compares ends with starts only: along one dimension, with boxes
// in (start, box) order, "end of b > start of k" is "limit(b) > first(k)",
// where first(k) counts the boxes starting before k and limit(b) those
// starting before b's end. Ranks are small integers (32 bits below 2^32
// boxes): the active set's tree is a quarter of a tree of 128-bit ends, and
// expiries need no heap.

template <typename Rank>
struct Ranks {
  std::vector<Rank> first;   // per box: the boxes starting before it
  std::vector<Rank> limit;   // per box: the boxes starting before its end
  std::vector<Rank> by_end;  // boxes in (end, box) order: by limit too
};

template <typename Rank>
std::vector<Rank> OrderByStart(const FlatBoxes& boxes, size_t d) {
  std::vector<uint64_t> keys(boxes.size());
  for (size_t k = 0; k < boxes.size(); ++k) keys[k] = OrderedKey(boxes.start(k, d));
  return StableOrder<Rank>(keys);
}

template <typename Rank>
size_t CountDistinctStarts(const FlatBoxes& boxes, size_t d, const std::vector<Rank>& by_start) {
  size_t distinct = 0;
  for (size_t p = 0; p < by_start.size(); ++p) {
    distinct += p == 0 || boxes.start(by_start[p], d) != boxes.start(by_start[p - 1], d);
  }
  return distinct;
}

template <typename Rank>
Ranks<Rank> RanksAlong(const FlatBoxes& boxes, size_t d, const std::vector<Rank>& by_start) {
  const size_t n = boxes.size();
  Ranks<Rank> ranks;
  ranks.first.resize(n);
  ranks.limit.resize(n);
  Rank run = 0;
  for (size_t p = 0; p < n; ++p) {
    if (p > 0 && boxes.start(by_start[p], d) != boxes.start(by_start[p - 1], d)) run = static_cast<Rank>(p);
    ranks.first[by_start[p]] = run;
  }
  // Ends are at least INT64_MIN + 1 (sizes are positive): their ordered keys
  // minus one leave the largest key to the ends past INT64_MAX.
  std::vector<uint64_t> end_keys(n);
  for (size_t k = 0; k < n; ++k) {
    const __int128 end = boxes.end(k, d);
    end_keys[k] = end > std::numeric_limits<int64_t>::max() ? std::numeric_limits<uint64_t>::max()
                                                             : OrderedKey(static_cast<int64_t>(end)) - 1;
  }
  ranks.by_end = StableOrder<Rank>(end_keys);
  size_t below = 0;  // boxes starting before the current end
  for (Rank k : ranks.by_end) {
    const __int128 end = boxes.end(k, d);
    while (below < n && boxes.start(by_start[below], d) < end) ++below;
    ranks.limit[k] = static_cast<Rank>(below);
  }
  return ranks;
}

// The sweep dimension (most distinct starts, lowest on ties) and the index
// dimension (the runner-up; the sweep dimension itself for 1-d boxes).
std::pair<size_t, size_t> ChooseDims(const std::vector<size_t>& distinct) {
  const size_t rank = distinct.size();
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

// True if, in start order along `d`, every box starts at or after the ends
// of all the boxes before it: slabs (row or column splits) share no element,
// whatever their other dims.
template <typename Rank>
bool DisjointAlong(const FlatBoxes& boxes, const std::vector<Rank>& by_start, size_t d) {
  __int128 reached = std::numeric_limits<int64_t>::min();
  for (Rank k : by_start) {
    if (boxes.start(k, d) < reached) return false;
    reached = std::max(reached, boxes.end(k, d));
  }
  return true;
}

// ---- The active set ---------------------------------------------------------------

// The active boxes along the index dimension: a max-segment tree over the
// boxes in (start, box) order there, each leaf holding the limit of an
// active box or 0 (no box is active there; limits are at least 1). Finding
// the active boxes that start before position `limit` and end after the
// start of a box of rank `first` costs O(log C) per box found.
template <typename Rank>
class ActiveRanks {
 public:
  explicit ActiveRanks(size_t count) {
    while (leaves_ < count) leaves_ *= 2;
    max_limit_.assign(2 * leaves_, 0);
  }

  void Set(size_t position, Rank limit) {
    size_t node = leaves_ + position;
    max_limit_[node] = limit;
    // An unchanged node leaves its ancestors unchanged.
    for (node /= 2; node >= 1; node /= 2) {
      const Rank updated = std::max(max_limit_[2 * node], max_limit_[2 * node + 1]);
      if (max_limit_[node] == updated) break;
      max_limit_[node] = updated;
    }
  }

  // Calls visit(position) for every active position below `limit` whose
  // limit is above `first`, in ascending order, until visit returns false.
  template <typename Visit>
  void ForEachEndingAfter(size_t limit, Rank first, const Visit& visit) const {
    Descend(1, 0, leaves_, limit, first, visit);
  }

 private:
  // False once `visit` has asked to stop.
  template <typename Visit>
  bool Descend(size_t node, size_t low, size_t high, size_t limit, Rank first, const Visit& visit) const {
    if (low >= limit || max_limit_[node] <= first) return true;
    if (high - low == 1) return visit(low);
    const size_t middle = low + (high - low) / 2;
    return Descend(2 * node, low, middle, limit, first, visit) &&
           Descend(2 * node + 1, middle, high, limit, first, visit);
  }

  size_t leaves_ = 1;
  std::vector<Rank> max_limit_;
};

// ---- The candidate-free check -----------------------------------------------------
//
// In a valid layout no two chunks share an element, and for rank 2 the
// sweep's candidates are overlapping pairs: it finds none, yet pays for a
// tree update per activation and expiry. While no candidate has appeared,
// the active boxes all contain the sweep point, so their intervals in the
// index dimension are disjoint: sorted by start, they are sorted by end too,
// and a box's interval meets one of them iff it meets the last one starting
// before its end. A bit set of the active positions finds that one.

// Positions 0..n-1 as bits, each level summarising the words of the one
// below (a bit per non-zero word) up to a single word: insertion, removal and
// the largest member below a bound cost O(log_64 n).
class PositionSet {
 public:
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();

  explicit PositionSet(size_t n) {
    size_t bits = std::max<size_t>(n, 1);
    do {
      bits = (bits + 63) / 64;
      levels_.emplace_back(bits, 0);
    } while (bits > 1);
  }

  void Insert(size_t position) {
    for (std::vector<uint64_t>& level : levels_) {
      uint64_t& word = level[position / 64];
      const bool was_empty = word == 0;
      word |= uint64_t{1} << (position % 64);
      if (!was_empty) return;
      position /= 64;
    }
  }

  void Erase(size_t position) {
    for (std::vector<uint64_t>& level : levels_) {
      uint64_t& word = level[position / 64];
      word &= ~(uint64_t{1} << (position % 64));
      if (word != 0) return;
      position /= 64;
    }
  }

  // The largest member below `limit`, or kNone.
  size_t Below(size_t limit) const {
    size_t level = 0;
    size_t bound = limit;  // exclusive, in the units of `level`
    for (;; ++level) {
      if (level == levels_.size() || bound == 0) return kNone;
      const size_t last = bound - 1;
      const uint64_t word = levels_[level][last / 64] & (~uint64_t{0} >> (63 - last % 64));
      if (word != 0) {
        bound = last / 64 * 64 + Highest(word);
        break;
      }
      bound = last / 64;  // the words before this one
    }
    // `bound` is now a member of `level`; below it, take the highest member.
    while (level > 0) bound = bound * 64 + Highest(levels_[--level][bound]);
    return bound;
  }

 private:
  static size_t Highest(uint64_t word) { return 63 - static_cast<size_t>(__builtin_clzll(word)); }

  std::vector<std::vector<uint64_t>> levels_;
};

// True if no two boxes intersect in both the sweep and the index dimension:
// the sweep would then find no candidate (and no pair).
template <typename Rank>
bool NoCandidates(const std::vector<Rank>& by_sweep_start, const Ranks<Rank>& sweep, const Ranks<Rank>& index,
                  const std::vector<Rank>& by_index_start, const std::vector<Rank>& position_of) {
  const size_t n = by_sweep_start.size();
  PositionSet active(n);
  size_t expired = 0;  // boxes in sweep.by_end order already expired
  for (Rank k : by_sweep_start) {
    while (expired < n && sweep.limit[sweep.by_end[expired]] <= sweep.first[k]) {
      active.Erase(position_of[sweep.by_end[expired++]]);
    }
    const size_t last = active.Below(index.limit[k]);
    if (last != PositionSet::kNone && index.limit[by_index_start[last]] > index.first[k]) return false;
    active.Insert(position_of[k]);
  }
  return true;
}

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

struct Limits {
  size_t max_listed;
  int64_t max_candidates;
  int64_t stop_after_pairs;
};

template <typename Rank>
OverlapReport Sweep(const FlatBoxes& boxes, const Limits& limits) {
  OverlapReport report;
  const size_t rank = boxes.rank();
  std::vector<std::vector<Rank>> by_start(rank);
  std::vector<size_t> distinct(rank);
  for (size_t d = 0; d < rank; ++d) {
    by_start[d] = OrderByStart<Rank>(boxes, d);
    distinct[d] = CountDistinctStarts(boxes, d, by_start[d]);
  }
  const auto [sweep_dim, index_dim] = ChooseDims(distinct);
  if (DisjointAlong(boxes, by_start[sweep_dim], sweep_dim)) return report;
  std::vector<size_t> other_dims;
  for (size_t d = 0; d < rank; ++d) {
    if (d != sweep_dim && d != index_dim) other_dims.push_back(d);
  }
  const Ranks<Rank> sweep = RanksAlong(boxes, sweep_dim, by_start[sweep_dim]);
  const Ranks<Rank> index = RanksAlong(boxes, index_dim, by_start[index_dim]);
  const std::vector<Rank>& by_index_start = by_start[index_dim];
  std::vector<Rank> position_of(boxes.size());
  for (size_t p = 0; p < by_index_start.size(); ++p) position_of[by_index_start[p]] = static_cast<Rank>(p);
  if (NoCandidates(by_start[sweep_dim], sweep, index, by_index_start, position_of)) return report;

  SmallestPairs listed(limits.max_listed);
  int64_t candidates = 0;
  ActiveRanks<Rank> active(boxes.size());
  size_t expired = 0;  // boxes in sweep.by_end order already expired
  for (Rank k : by_start[sweep_dim]) {
    // A box ending at or before k's start started before it: it is active.
    while (expired < boxes.size() && sweep.limit[sweep.by_end[expired]] <= sweep.first[k]) {
      active.Set(position_of[sweep.by_end[expired++]], 0);
    }
    active.ForEachEndingAfter(index.limit[k], index.first[k], [&](size_t position) {
      if (++candidates > limits.max_candidates) return false;
      const size_t other = by_index_start[position];
      for (size_t d : other_dims) {
        if (!(boxes.start(k, d) < boxes.end(other, d) && boxes.start(other, d) < boxes.end(k, d))) return true;
      }
      ++report.total;
      listed.Add({std::min(boxes.id(k), boxes.id(other)), std::max(boxes.id(k), boxes.id(other))});
      return report.total < limits.stop_after_pairs;
    });
    if (report.total >= limits.stop_after_pairs || candidates > limits.max_candidates) {
      report.complete = false;
      break;
    }
    active.Set(position_of[k], index.limit[k]);
  }
  report.listed = std::move(listed).Sorted();
  return report;
}

// True if, in the boxes' own order, each starts along `d` at or after the
// end of the one before (and so of all before: sizes are positive).
bool DisjointInListOrder(const FlatBoxes& boxes, size_t d) {
  for (size_t k = 1; k < boxes.size(); ++k) {
    if (boxes.start(k, d) < boxes.end(k - 1, d)) return false;
  }
  return true;
}

}  // namespace

OverlapReport OverlappingPairs(const FlatBoxes& boxes, size_t max_listed, int64_t max_candidates,
                               int64_t stop_after_pairs) {
  if (boxes.rank() == 0 || boxes.size() < 2) return OverlapReport();
  // Global plans list a tensor's chunks rank by rank, and row or column
  // splits come in order along the split dim: no pair, found without the
  // sweep's sorts (most of validation's time on such tensors). Only for
  // rank 1 and 2, where the sweep's candidates are overlapping pairs and it
  // would report no pair either; from rank 3 on, it may give up first, and
  // it keeps deciding.
  if (boxes.rank() <= 2) {
    for (size_t d = 0; d < boxes.rank(); ++d) {
      if (DisjointInListOrder(boxes, d)) return OverlapReport();
    }
  }
  // The sweep sees n candidates per box of an n x n x n grid; cuts prove
  // such layouts disjoint with R (R + 1) / 2 passes over the boxes (a grid),
  // and 2 R more leave room for uneven guillotine layouts.
  if (boxes.rank() >= 3) {
    const __int128 rank = boxes.rank();
    const __int128 budget = static_cast<__int128>(boxes.size()) * (rank * (rank + 1) / 2 + 2 * rank);
    if (DisjointByCuts(boxes, static_cast<int64_t>(std::min<__int128>(budget, INT64_MAX)))) return OverlapReport();
  }
  const Limits limits{max_listed, max_candidates, stop_after_pairs};
  // Ranks go up to the number of boxes.
  if (boxes.size() <= std::numeric_limits<uint32_t>::max()) return Sweep<uint32_t>(boxes, limits);
  return Sweep<uint64_t>(boxes, limits);
}

}  // namespace internal
}  // namespace dcplan
