#include "engine/testing/validate_oracle.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/box.h"
#include "engine/validate.h"

namespace dcplan {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

PlanProblem Problem(ProblemKind kind, absl::string_view fqn, std::vector<int64_t> chunks, std::string message) {
  PlanProblem p;
  p.kind = kind;
  p.fqn = std::string(fqn);
  p.chunks = std::move(chunks);
  p.message = std::move(message);
  return p;
}

// First violated condition, checked in the order the contract documents.
std::string BoundsReason(const Shape& size, const ChunkBox& c) {
  if (c.offsets.size() != c.sizes.size()) {
    return absl::StrCat("it has ", c.offsets.size(), " offsets but ", c.sizes.size(), " sizes");
  }
  if (c.sizes.size() != size.size()) {
    return absl::StrCat("it has rank ", c.sizes.size(), " but the tensor has rank ", size.size());
  }
  for (size_t d = 0; d < size.size(); ++d) {
    if (c.offsets[d] < 0) return absl::StrCat("its offset in dim ", d, " is negative");
    if (c.sizes[d] < 0) return absl::StrCat("its size in dim ", d, " is negative");
    const __int128 end = static_cast<__int128>(c.offsets[d]) + c.sizes[d];
    if (end > kMax) return absl::StrCat("its end in dim ", d, " overflows int64");
    if (end > size[d]) {
      return absl::StrCat("it ends at ", static_cast<int64_t>(end), " in dim ", d, ", past the tensor size ",
                          ShapeToString(size));
    }
  }
  return "";
}

bool HasTensorRank(const ChunkBox& c, size_t rank) { return c.offsets.size() == rank && c.sizes.size() == rank; }

}  // namespace

std::vector<PlanProblem> ValidateTensorPairwise(absl::string_view fqn, const TensorStorageMetadata& tensor) {
  std::vector<PlanProblem> problems;
  const Shape& size = tensor.size;
  const std::vector<ChunkBox>& chunks = tensor.chunks;
  if (size.empty()) return problems;

  for (size_t i = 0; i < chunks.size(); ++i) {
    if (InBounds(size, chunks[i])) continue;
    problems.push_back(Problem(ProblemKind::kOutOfBounds, fqn, {static_cast<int64_t>(i)},
                               absl::StrCat("key:", fqn, " has out of bounds chunk ", i, " ", ToString(chunks[i]),
                                            ": ", BoundsReason(size, chunks[i]))));
  }

  int64_t overlapping_pairs = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    for (size_t j = i + 1; j < chunks.size(); ++j) {
      if (!HasTensorRank(chunks[i], size.size()) || !HasTensorRank(chunks[j], size.size())) continue;
      if (!Overlaps(chunks[i], chunks[j])) continue;
      if (++overlapping_pairs > static_cast<int64_t>(kMaxListedOverlapPairs)) continue;
      problems.push_back(Problem(ProblemKind::kOverlap, fqn, {static_cast<int64_t>(i), static_cast<int64_t>(j)},
                                 absl::StrCat("key:", fqn, " has overlapping chunks ", i, " ", ToString(chunks[i]),
                                              " and ", j, " ", ToString(chunks[j]))));
    }
  }

  if (overlapping_pairs > static_cast<int64_t>(kMaxListedOverlapPairs)) {
    problems.push_back(Problem(ProblemKind::kOverlap, fqn, {},
                               absl::StrCat("key:", fqn, " has ", overlapping_pairs, " overlapping chunk pairs; ",
                                            kMaxListedOverlapPairs, " are listed")));
  }

  // Chunk volumes: negative sizes count 0, volumes past int64 count
  // INT64_MAX + 1 (the sum then exceeds any valid tensor volume).
  __int128 sum = 0;
  bool negative_chunk = false;
  for (const ChunkBox& c : chunks) {
    absl::StatusOr<int64_t> v = Volume(c);
    if (v.ok()) {
      sum += *v;
    } else if (absl::IsOutOfRange(v.status())) {
      sum += static_cast<__int128>(kMax) + 1;
    } else {
      negative_chunk = true;
    }
  }
  const int64_t actual = sum > kMax ? kMax : static_cast<int64_t>(sum);
  const std::string covered = sum > kMax ? absl::StrCat("more than ", kMax) : absl::StrCat(actual);

  absl::StatusOr<int64_t> expected = ShapeVolume(size);
  PlanProblem volume = Problem(ProblemKind::kVolume, fqn, {}, "");
  volume.actual = actual;
  if (!expected.ok()) {
    const bool overflow = absl::IsOutOfRange(expected.status());
    volume.expected = overflow ? kMax : 0;
    volume.message = absl::StrCat("key:", fqn, " has size ", ShapeToString(size),
                                  overflow ? " whose volume overflows int64" : " with a negative dimension");
    problems.push_back(volume);
  } else if (sum != *expected) {
    volume.expected = *expected;
    volume.message = absl::StrCat("key:", fqn, " has ", chunks.size(), " chunks covering ", covered,
                                  " elements but its size ", ShapeToString(size), " has ", *expected);
    if (negative_chunk) absl::StrAppend(&volume.message, " (chunks with a negative size count 0)");
    problems.push_back(volume);
  }
  return problems;
}

}  // namespace dcplan
