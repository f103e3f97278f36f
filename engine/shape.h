#ifndef DCPLAN_ENGINE_SHAPE_H_
#define DCPLAN_ENGINE_SHAPE_H_

// Shape: the offsets, sizes or global shape of a tensor or chunk, one int64
// per dimension.
//
// Up to 4 dimensions are stored inline (absl::InlinedVector): a plan holds
// several shapes per item (the chunk's offsets and sizes, the index's offsets,
// the global size), and a heap block for each dominated planning time.
// Beyond that, a Shape is a plain contiguous container of int64_t:
// - it converts implicitly from any contiguous int64 range (std::vector,
//   absl::Span, c10::IntArrayRef), so `Shape s = tensor.sizes();` works;
// - absl::Span<const int64_t> and c10::IntArrayRef view it (data()/size());
// - it compares equal to a std::vector<int64_t> with the same elements;
// - ordering is lexicographic, hashing is absl's for InlinedVector.

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace dcplan {

class Shape : public absl::InlinedVector<int64_t, 4> {
  using Base = absl::InlinedVector<int64_t, 4>;

 public:
  using Base::Base;
  Shape() = default;

  template <typename Range,
            typename = std::enable_if_t<!std::is_base_of<Base, Range>::value &&
                                        std::is_convertible<const Range&, absl::Span<const int64_t>>::value>>
  Shape(const Range& range)  // NOLINT: implicit, like std::vector's copy
      : Shape(absl::Span<const int64_t>(range), 0) {}

  friend bool operator==(const Shape& a, const std::vector<int64_t>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator==(const std::vector<int64_t>& a, const Shape& b) { return b == a; }
  friend bool operator!=(const Shape& a, const std::vector<int64_t>& b) { return !(a == b); }
  friend bool operator!=(const std::vector<int64_t>& a, const Shape& b) { return !(b == a); }

 private:
  Shape(absl::Span<const int64_t> range, int /*tag*/) : Base(range.begin(), range.end()) {}
};

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_SHAPE_H_
