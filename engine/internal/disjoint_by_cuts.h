#ifndef DCPLAN_ENGINE_INTERNAL_DISJOINT_BY_CUTS_H_
#define DCPLAN_ENGINE_INTERNAL_DISJOINT_BY_CUTS_H_

// A proof that boxes of rank 3 or more share no element, for layouts that
// guillotine cuts take apart (grids, and every layout that splits one dim at
// a time): overlap_pairs.cc's sweep indexes two dims only, so an n x n x n
// grid gives it n candidates per box and, past its candidate cap, no answer.
//
// The boxes are split at every coordinate of one dim that no box crosses,
// and each part again, trying the dims in order, until every part holds one
// box (proved disjoint) or a part of two or more boxes has no cut in any dim
// (no proof: the caller runs the sweep).
//
// Cost: each attempt on a part of m boxes sorts them along one dim,
// O(m log m); the attempts stop, without a proof, once the parts tried hold
// `budget` boxes in all. A grid of C boxes of rank R needs R (R + 1) / 2 · C.
// No recursion: the parts wait on an explicit stack.

#include <cstdint>

#include "engine/internal/overlap_pairs.h"

namespace dcplan {
namespace internal {

// True if guillotine cuts take `boxes` apart into single boxes within
// `budget`: then no two share an element. False says nothing.
bool DisjointByCuts(const FlatBoxes& boxes, int64_t budget);

}  // namespace internal
}  // namespace dcplan

#endif  // DCPLAN_ENGINE_INTERNAL_DISJOINT_BY_CUTS_H_
