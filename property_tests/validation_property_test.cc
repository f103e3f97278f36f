// Properties of global-plan validation (engine/validate.h) and of the box
// predicates it rests on (engine/box.h).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "engine/box.h"
#include "engine/metadata.h"
#include "engine/problem.h"
#include "engine/testing/validate_oracle.h"
#include "engine/validate.h"
#include "property_tests/generators.h"
#include "property_tests/oracles.h"

namespace dcplan {
namespace proptest {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

TensorStorageMetadata Tensor(const Shape& shape, std::vector<ChunkBox> chunks) {
  TensorStorageMetadata t;
  t.size = shape;
  t.chunks = std::move(chunks);
  return t;
}

void ClassifyPartition(const Partition& p) {
  RC_TAG(std::string(PartitionKindName(p.kind)));
  RC_CLASSIFY(p.shape.empty(), "0-d");
  RC_CLASSIFY(std::find(p.shape.begin(), p.shape.end(), 0) != p.shape.end(), "zero-length dim");
  RC_CLASSIFY(p.chunks.size() > 100, ">100 chunks");
}

// Every exact partition validates, alone and next to other tensors.
RC_GTEST_PROP(ValidationProperty, ExactPartitionsHaveNoProblems, ()) {
  const Partition p = *GenShapeAndPartition(ShapeLimits{}, 4096);
  ClassifyPartition(p);
  const std::vector<PlanProblem> problems = ValidateTensor("w", Tensor(p.shape, p.chunks));
  RC_ASSERT(problems.empty());
}

RC_GTEST_PROP(ValidationProperty, ExactPartitionsOfSeveralTensorsHaveNoProblems, ()) {
  const int n = *rc::gen::inRange(1, 5);
  StateDictMetadata metadata;
  for (int i = 0; i < n; ++i) {
    const Partition p = *GenShapeAndPartition(ShapeLimits{}, 256);
    metadata.InsertOrAssign("t" + std::to_string(i), Tensor(p.shape, p.chunks));
    if (i % 2 == 1) metadata.InsertOrAssign("bytes" + std::to_string(i), BytesStorageMetadata{});
  }
  RC_ASSERT(ValidateMetadata(metadata).empty());
}

bool Reported(const std::vector<PlanProblem>& problems, const std::string& fqn, const InjectedFault& f) {
  for (const PlanProblem& p : problems) {
    if (p.kind != f.expected_kind || p.fqn != fqn) continue;
    if (f.expected_kind == ProblemKind::kVolume) {
      if (f.fault != FaultKind::kDrop || (p.expected == f.expected_volume && p.actual == f.actual_volume)) return true;
      continue;
    }
    if (f.chunks_exact) {
      if (p.chunks == f.expected_chunks) return true;
    } else if (std::find(p.chunks.begin(), p.chunks.end(), f.expected_chunks[0]) != p.chunks.end()) {
      return true;
    }
  }
  return false;
}

// One fault in one tensor among exact ones: reported, with the right kind,
// fqn and chunk(s), and nothing is reported for the other tensors.
RC_GTEST_PROP(ValidationProperty, InjectedFaultsAreReported, ()) {
  ShapeLimits limits;
  limits.min_dims = 1;
  const Partition p = *GenShapeAndPartition(limits, 256);
  const InjectedFault fault = *GenFault(p);
  RC_TAG(std::string(FaultKindName(fault.fault)));
  const Partition before = *GenShapeAndPartition(ShapeLimits{}, 16);
  const Partition after = *GenShapeAndPartition(ShapeLimits{}, 16);
  StateDictMetadata metadata;
  metadata.InsertOrAssign("before", Tensor(before.shape, before.chunks));
  metadata.InsertOrAssign("faulty", Tensor(fault.shape, fault.chunks));
  metadata.InsertOrAssign("after", Tensor(after.shape, after.chunks));

  const std::vector<PlanProblem> problems = ValidateMetadata(metadata);
  RC_LOG() << "problems:";
  for (const PlanProblem& problem : problems) RC_LOG() << "\n  " << problem;
  RC_ASSERT(!problems.empty());
  for (const PlanProblem& problem : problems) {
    RC_ASSERT(problem.fqn == "faulty");
    RC_ASSERT(problem.message.find("faulty") != std::string::npos);
  }
  RC_ASSERT(Reported(problems, "faulty", fault));
  // The fast sweep agrees with the all-pairs oracle on the faulted tensor,
  // and, when it is small enough to enumerate, with element enumeration.
  const std::vector<PlanProblem> faulty = ValidateTensor("faulty", Tensor(fault.shape, fault.chunks));
  RC_ASSERT(faulty == ValidateTensorPairwise("faulty", Tensor(fault.shape, fault.chunks)));
  const std::optional<std::vector<ExpectedProblem>> enumerated = ValidationByEnumeration(fault.shape, fault.chunks);
  RC_CLASSIFY(enumerated.has_value(), "enumerated");
  if (enumerated) RC_ASSERT(Summarize(faulty) == *enumerated);
}

// Coordinates from a small range, so that boxes often touch, overlap, nest
// or have zero volume; sometimes malformed or near INT64_MAX.
rc::Gen<ChunkBox> GenLooseBox(const Shape& shape) {
  return rc::gen::exec([shape] {
    const int flavour = *rc::gen::weightedElement<int>({{12, 0}, {1, 1}, {1, 2}, {1, 3}});
    size_t rank = shape.size();
    if (flavour == 1) rank = static_cast<size_t>(*rc::gen::inRange(0, 4));  // maybe another rank
    ChunkBox box;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t extent = d < shape.size() ? shape[d] : 3;
      box.offsets.push_back(*rc::gen::inRange<int64_t>(-1, extent + 2));
      box.sizes.push_back(*rc::gen::inRange<int64_t>(0, extent + 2));
    }
    if (rank > 0 && flavour == 2) {  // a negative size
      box.sizes[*rc::gen::inRange<size_t>(0, rank)] = -*rc::gen::inRange<int64_t>(1, 3);
    }
    if (rank > 0 && flavour == 3) {  // an offset near INT64_MAX
      const size_t d = *rc::gen::inRange<size_t>(0, rank);
      box.offsets[d] = kInt64Max - *rc::gen::inRange<int64_t>(0, 3);
    }
    if (flavour == 1 && *rc::gen::arbitrary<bool>() && !box.offsets.empty()) box.offsets.pop_back();
    return box;
  });
}

// The problems ValidateTensor reports (kinds, chunks, volumes) are those
// found by enumerating every element of every chunk (property_tests/
// oracles.h, independent of the engine's box predicates).
void CheckAgainstEnumeration(const TensorStorageMetadata& tensor, const std::vector<PlanProblem>& problems) {
  const std::optional<std::vector<ExpectedProblem>> expected = ValidationByEnumeration(tensor.size, tensor.chunks);
  RC_PRE(expected.has_value());
  RC_LOG() << "expected:";
  for (const ExpectedProblem& p : *expected) RC_LOG() << "\n  " << p;
  RC_ASSERT(Summarize(problems) == *expected);
}

RC_GTEST_PROP(ValidationProperty, SweepAgreesWithPairwiseOracle, ()) {
  ShapeLimits limits;
  limits.max_dims = 4;
  limits.max_dim = 6;
  const Shape shape = *GenShape(limits);
  const int n = *rc::gen::inRange(0, 80);
  std::vector<ChunkBox> chunks;
  for (int i = 0; i < n; ++i) chunks.push_back(*GenLooseBox(shape));
  const TensorStorageMetadata tensor = Tensor(shape, chunks);
  const std::vector<PlanProblem> fast = ValidateTensor("t", tensor);
  CheckAgainstEnumeration(tensor, fast);
  const std::vector<PlanProblem> oracle = ValidateTensorPairwise("t", tensor);
  RC_CLASSIFY(fast.empty(), "valid");
  RC_CLASSIFY(std::any_of(oracle.begin(), oracle.end(), [](const PlanProblem& p) { return p.kind == ProblemKind::kOverlap; }),
              "has overlap");
  RC_ASSERT(fast == oracle);
}

// The same, on an exact partition with a few boxes moved by one element:
// mostly touching boxes.
RC_GTEST_PROP(ValidationProperty, SweepAgreesWithOracleOnNearPartitions, ()) {
  ShapeLimits limits;
  limits.max_dim = 12;
  limits.max_dims = 3;
  Partition p = *GenShapeAndPartition(limits, 200);
  const int moves = p.chunks.empty() || p.shape.empty() ? 0 : *rc::gen::inRange(0, 4);
  for (int m = 0; m < moves; ++m) {
    ChunkBox& box = p.chunks[*rc::gen::inRange<size_t>(0, p.chunks.size())];
    const size_t d = *rc::gen::inRange<size_t>(0, p.shape.size());
    const int64_t delta = *rc::gen::element<int64_t>(-1, 1);
    if (*rc::gen::arbitrary<bool>()) {
      box.offsets[d] += delta;
    } else {
      box.sizes[d] = std::max<int64_t>(0, box.sizes[d] + delta);
    }
  }
  const TensorStorageMetadata tensor = Tensor(p.shape, p.chunks);
  const std::vector<PlanProblem> fast = ValidateTensor("t", tensor);
  RC_CLASSIFY(moves > 0 && fast.empty(), "moved but valid");
  RC_ASSERT(fast == ValidateTensorPairwise("t", tensor));
  CheckAgainstEnumeration(tensor, fast);
}

// A value in [lo, hi), uniform whatever the test size. rc::gen::inRange
// scales its range with the size, so most of the 100 cases would be rank-0 or
// one-element boxes that no off-by-one or min/max slip in the box algebra
// can change.
int64_t AnyIn(int64_t lo, int64_t hi) {
  return *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<int64_t>(lo, hi));
}

// Overlaps(a, b) iff the boxes share an element, enumerated one by one.
RC_GTEST_PROP(BoxProperty, OverlapsIffSharedElement, ()) {
  const int rank = static_cast<int>(AnyIn(0, 4));
  auto gen_box = [rank] {
    ChunkBox box;
    for (int d = 0; d < rank; ++d) {
      box.offsets.push_back(AnyIn(0, 5));
      box.sizes.push_back(AnyIn(0, 4));
    }
    return box;
  };
  const ChunkBox a = gen_box();
  const ChunkBox b = gen_box();
  // Elements of the 8^rank cube (every box lies inside it).
  bool shared = false;
  int64_t cells = 1;
  for (int d = 0; d < rank; ++d) cells *= 8;
  for (int64_t cell = 0; cell < cells && !shared; ++cell) {
    bool in_a = true, in_b = true;
    int64_t rest = cell;
    for (int d = 0; d < rank; ++d) {
      const int64_t x = rest % 8;
      rest /= 8;
      in_a = in_a && a.offsets[d] <= x && x < a.offsets[d] + a.sizes[d];
      in_b = in_b && b.offsets[d] <= x && x < b.offsets[d] + b.sizes[d];
    }
    shared = in_a && in_b;
  }
  RC_CLASSIFY(shared, "overlapping");
  RC_LOG() << "a = " << a << ", b = " << b << (shared ? " share an element" : " share no element");
  RC_ASSERT(Overlaps(a, b) == shared);
  RC_ASSERT(Overlaps(b, a) == shared);
  RC_ASSERT(Intersection(a, b).has_value() == shared);
}

// A box of `rank` dims with coordinates in 0..7 (sizes may be 0).
ChunkBox SmallBox(int rank) {
  ChunkBox box;
  for (int d = 0; d < rank; ++d) {
    box.offsets.push_back(AnyIn(0, 5));
    box.sizes.push_back(AnyIn(0, 4));
  }
  return box;
}

// Intersection(a, b) is exactly the common elements: its elements are the
// elements of a that are also elements of b, in the same row-major order.
RC_GTEST_PROP(BoxProperty, IntersectionIsExactlyTheCommonElements, ()) {
  const int rank = static_cast<int>(AnyIn(0, 4));
  const ChunkBox a = SmallBox(rank);
  const ChunkBox b = SmallBox(rank);
  const std::vector<std::vector<__int128>> in_b = ElementsOf(b);
  std::vector<std::vector<__int128>> common;
  for (const std::vector<__int128>& element : ElementsOf(a)) {
    if (std::find(in_b.begin(), in_b.end(), element) != in_b.end()) common.push_back(element);
  }
  const std::optional<ChunkBox> intersection = Intersection(a, b);
  RC_LOG() << "a = " << a << ", b = " << b << ", intersection = "
           << (intersection ? ToString(*intersection) : std::string("none"));
  RC_CLASSIFY(!common.empty(), "non-empty");
  RC_ASSERT(intersection.has_value() == !common.empty());
  if (!intersection) return;
  RC_ASSERT(intersection->rank() == static_cast<size_t>(rank));
  RC_ASSERT(ElementsOf(*intersection) == common);
}

// PyTorch's strict test (spec/planner.md §5.5): in every dim each box starts
// before the other one ends; zero-size boxes included.
RC_GTEST_PROP(BoxProperty, OverlapsPyTorchIsTheStrictIntervalTest, ()) {
  const int rank = static_cast<int>(AnyIn(0, 4));
  const ChunkBox a = SmallBox(rank);
  const ChunkBox b = SmallBox(rank);
  bool expected = true;
  for (int d = 0; d < rank; ++d) {
    const bool a_starts_before_b_ends = a.offsets[d] < b.offsets[d] + b.sizes[d];
    const bool b_starts_before_a_ends = b.offsets[d] < a.offsets[d] + a.sizes[d];
    expected = expected && a_starts_before_b_ends && b_starts_before_a_ends;
  }
  RC_CLASSIFY(expected, "overlapping");
  RC_ASSERT(OverlapsPyTorch(a, b) == expected);
  RC_ASSERT(OverlapsPyTorch(b, a) == expected);
}

}  // namespace
}  // namespace proptest
}  // namespace dcplan
