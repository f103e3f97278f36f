#ifndef DCPLAN_ENGINE_INTERNAL_OVERLAP_PAIRS_H_
#define DCPLAN_ENGINE_INTERNAL_OVERLAP_PAIRS_H_

// The overlapping pairs among a tensor's chunks, for validate.cc: a sweep
// along the dimension with the most distinct chunk starts, its active chunks
// indexed by a second dimension (see OverlappingPairs).
//
// Cost: O(C·R·B + min(C·A, max_candidates) log C) for C chunks of rank R,
// where B (at most 8) is the number of bytes the chunk starts span in a
// dimension (stable_order.h) and A the number of chunks the sweep keeps
// active at once;
// O(C) for chunks listed in start order along a dimension in which they are
// disjoint (row or column splits), and for rank 1 and 2 no sort then either
// (one pass over the chunks per dimension). Without candidates (a valid rank-2
// layout: see OverlappingPairs), a first pass proves there are none in
// O(C log_64 C) after the sorts and the sweep proper does not run.
// For rank 3 and more, DisjointByCuts (disjoint_by_cuts.h) runs first: a
// layout that guillotine cuts take apart (an n x n x n grid, on which the
// sweep meets n candidates per box and stops at max_candidates with no
// answer) is proved disjoint in O(R·C log C) and the sweep does not run.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/box.h"

namespace dcplan {
namespace internal {

// The chunks taking part in the overlap check (the tensor's rank and a
// positive size in every dim: malformed chunks are reported out of bounds
// already, zero-volume chunks overlap nothing by dcplan's rule), as
// contiguous rows of starts and sizes: the sweep reads nothing else. For
// these chunks, two share an element iff "a.start < b.end and b.start <
// a.end" in every dim, with ends in 128 bits (an end past INT64_MAX is out of
// bounds but still takes part).
class FlatBoxes {
 public:
  // `capacity`: the number of chunks.
  FlatBoxes(size_t rank, size_t capacity);

  // Adds chunk `id` if it takes part in the overlap check.
  void Add(int64_t id, const ChunkBox& chunk);
  // Adds chunk `id`, known to take part in the overlap check. Inline: it
  // runs for every chunk validated.
  void AddTakingPart(int64_t id, const ChunkBox& chunk) {
    ids_.push_back(id);
    const int64_t* offsets = chunk.offsets.data();
    const int64_t* extents = chunk.sizes.data();
    for (size_t d = 0; d < rank_; ++d) {
      starts_.push_back(offsets[d]);
      sizes_.push_back(extents[d]);
    }
  }

  size_t size() const { return ids_.size(); }
  size_t rank() const { return rank_; }
  // Position of box k in the tensor's chunk list.
  int64_t id(size_t k) const { return ids_[k]; }
  int64_t start(size_t k, size_t d) const { return starts_[k * rank_ + d]; }
  __int128 end(size_t k, size_t d) const {
    return static_cast<__int128>(starts_[k * rank_ + d]) + sizes_[k * rank_ + d];
  }

 private:
  size_t rank_;
  std::vector<int64_t> ids_;
  std::vector<int64_t> starts_;
  std::vector<int64_t> sizes_;  // all positive
};

// The overlapping pairs of the boxes, bounded: the smallest `max_listed`
// pairs (i, j) of chunk ids, i < j, ascending, and how many pairs there are in
// all (`complete` false when the search stopped after `max_candidates`
// candidate pairs, or at `stop_after_pairs` pairs: `total` is then a lower
// bound).
struct OverlapReport {
  std::vector<std::pair<int64_t, int64_t>> listed;
  int64_t total = 0;
  bool complete = true;
};

// The sweep runs along the dimension with the most distinct starts (lowest on
// ties), in (start, box) order; a box meets the boxes still active there (end
// past its start) whose interval in the index dimension (the runner-up;
// the sweep dimension for 1-d boxes) intersects its own, in ascending
// (start, box) order of that dimension: these are the candidates, and the
// remaining dimensions decide. Sweeping along the dimension the tensor is
// split in keeps the active set small; indexing it by another dimension keeps
// grid layouts, whose active set is a whole slab, cheap too. Capping the
// candidates keeps degenerate inputs (thousands of copies of one chunk, with
// millions of pairs) cheap.
OverlapReport OverlappingPairs(const FlatBoxes& boxes, size_t max_listed, int64_t max_candidates,
                               int64_t stop_after_pairs);

}  // namespace internal
}  // namespace dcplan

#endif  // DCPLAN_ENGINE_INTERNAL_OVERLAP_PAIRS_H_
