#ifndef DCPLAN_PROPERTY_TESTS_ORACLES_H_
#define DCPLAN_PROPERTY_TESTS_ORACLES_H_

// Reference computations for the property tests, written from the contracts
// (engine/*.h, spec/) without calling the engine's own helpers: a bug in
// Overlaps, InBounds, Volume, ElementSize, FlatKey or MergePlannerData must
// not hide itself by also changing the expectation. They are slow and meant
// for small inputs (element by element, plain loops).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "engine/box.h"
#include "engine/description.h"
#include "engine/dtype.h"
#include "engine/metadata.h"
#include "engine/object_path.h"
#include "engine/plan.h"
#include "engine/problem.h"

namespace dcplan {
namespace proptest {

// Bytes per element, from PyTorch's dtype sizes (quint4x2 and quint2x4 take
// one byte per element in storage_size computations).
int64_t ElementBytesReference(DType dtype);

// Bytes an item writes: its chunk's element count times the element size
// (zero if a dim is zero); a bytes item its nbytes, or 0 when unknown.
// Small items only (no overflow check).
int64_t PayloadBytesReference(const WriteItem& item);

// PyTorch's tensor_storage_size(): the global size's element count times the
// element size; nullopt for bytes items.
std::optional<int64_t> StorageBytesReference(const WriteItem& item);

// DescribeCheckpoint's contract (load_planner.h): a key is included when
// `keys` is unset, holds the key, or holds one of the key's object-path
// prefixes joined by "." (only for keys with a recorded path).
StateDictDescription DescribeCheckpointReference(const Metadata& metadata,
                                                 const std::optional<absl::flat_hash_set<std::string>>& keys);

// "a.b.0": the elements joined by '.', indices in decimal.
std::string JoinedKey(const ObjectPath& path);

// dict(ChainMap(*mappings)): key order = the last plan's keys, then each
// earlier plan's new keys, down to plan 0; a key's path from the lowest plan
// that has it. Every plan must have planner_data.
FlattenMapping ChainMapReference(const std::vector<SavePlan>& plans);

// The problems ValidateTensor must report (message aside), found by
// enumerating elements: out-of-bounds chunks (offset or size negative,
// offset + size past the tensor's size in some dim, wrong number of dims) in
// chunk order, then every pair (i, j), i < j, of chunks with the tensor's
// rank that share an element, then the volume problem when the chunks hold
// another number of elements than the tensor (negative sizes count 0). 0-d
// tensors have none. Every chunk must have at most `max_chunk_elements`
// elements (checked: returns nullopt otherwise), so that enumeration is
// cheap; coordinates may be anywhere in int64.
struct ExpectedProblem {
  ProblemKind kind = ProblemKind::kVolume;
  std::vector<int64_t> chunks;
  int64_t expected = 0;  // kVolume
  int64_t actual = 0;    // kVolume

  friend bool operator==(const ExpectedProblem& a, const ExpectedProblem& b) {
    return a.kind == b.kind && a.chunks == b.chunks && a.expected == b.expected && a.actual == b.actual;
  }
};
std::ostream& operator<<(std::ostream& os, const ExpectedProblem& p);

std::optional<std::vector<ExpectedProblem>> ValidationByEnumeration(const Shape& size,
                                                                    const std::vector<ChunkBox>& chunks,
                                                                    int64_t max_chunk_elements = 1 << 12);

// The same fields of the engine's problems, for comparison.
std::vector<ExpectedProblem> Summarize(const std::vector<PlanProblem>& problems);

// Every element (coordinates in 128 bits) of a box with non-negative sizes
// and matching ranks, in row-major order; empty otherwise.
std::vector<std::vector<__int128>> ElementsOf(const ChunkBox& box);

}  // namespace proptest
}  // namespace dcplan

#endif  // DCPLAN_PROPERTY_TESTS_ORACLES_H_
