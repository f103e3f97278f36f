#include "engine/validate.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/box.h"
#include "engine/internal/checked_math.h"
#include "engine/internal/overlap_pairs.h"

namespace dcplan {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

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

void AppendOverlapProblems(absl::string_view fqn, const TensorStorageMetadata& tensor,
                           const internal::FlatBoxes& boxes, std::vector<PlanProblem>& problems) {
  const internal::OverlapReport report =
      internal::OverlappingPairs(boxes, kMaxListedOverlapPairs, kMaxOverlapCandidates, kInt64Max);
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
  if (std::optional<int64_t> volume = CheckedShapeVolume(chunk.sizes)) {
    total.sum += *volume;
  } else if (std::any_of(chunk.sizes.begin(), chunk.sizes.end(), [](int64_t size) { return size < 0; })) {
    total.has_negative_size = true;
  } else {
    total.sum += static_cast<__int128>(kInt64Max) + 1;
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
  internal::FlatBoxes boxes;
  ChunksVolume volume;
};

// True if `chunk` has the tensor's rank and a positive size in every dim, and
// lies inside the tensor: it is then in bounds, takes part in the overlap
// check and has the product of its sizes as volume. Valid layouts have
// little else; one pass over the chunk's dims, without the Status of the
// general checks, halves the scan of a tensor of many chunks.
bool InsideWithPositiveSizes(const Shape& size, const ChunkBox& chunk) {
  const size_t rank = size.size();
  if (chunk.offsets.size() != rank || chunk.sizes.size() != rank) return false;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t offset = chunk.offsets[d];
    const int64_t extent = chunk.sizes[d];
    // With 0 <= offset <= size[d], size[d] - offset does not overflow.
    if (offset < 0 || extent <= 0 || offset > size[d] || extent > size[d] - offset) return false;
  }
  return true;
}

ChunkFacts ScanChunks(const TensorStorageMetadata& tensor) {
  ChunkFacts facts(tensor.size.size(), tensor.chunks.size());
  for (size_t i = 0; i < tensor.chunks.size(); ++i) {
    const ChunkBox& chunk = tensor.chunks[i];
    if (InsideWithPositiveSizes(tensor.size, chunk)) {
      facts.boxes.AddTakingPart(static_cast<int64_t>(i), chunk);
      AddChunkVolume(chunk, facts.volume);
      continue;
    }
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
  internal::FlatBoxes boxes(tensor.size.size(), tensor.chunks.size());
  for (size_t i = 0; i < tensor.chunks.size(); ++i) boxes.Add(static_cast<int64_t>(i), tensor.chunks[i]);
  return internal::OverlappingPairs(boxes, kMaxListedOverlapPairs, kMaxOverlapCandidates, /*stop_after_pairs=*/1)
             .total > 0;
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
