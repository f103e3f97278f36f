#ifndef DCPLAN_PROPERTY_TESTS_GENERATORS_INTERNAL_H_
#define DCPLAN_PROPERTY_TESTS_GENERATORS_INTERNAL_H_

// Picking helpers shared by the generator sources (call them inside
// rc::gen::exec or a property).

#include <algorithm>
#include <cstdint>
#include <limits>

#include <rapidcheck.h>

#include "engine/box.h"

namespace dcplan {
namespace proptest {
namespace internal {

inline constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// A value in [lo, hi] (inclusive), uniform whatever the test size (the
// distributions are shaped explicitly instead), shrinking towards lo; no pick
// when the range has one value.
inline int64_t Pick(int64_t lo, int64_t hi) {
  if (lo >= hi) return lo;
  return *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<int64_t>(lo, hi + 1));
}

// A value in [lo, hi] at most 2^b - 1 above lo, b picked uniformly among the
// bit lengths of hi - lo: small values are about as likely as large ones.
// Shrinks towards lo.
inline int64_t PickLogUniform(int64_t lo, int64_t hi) {
  if (lo >= hi) return lo;
  const uint64_t span = static_cast<uint64_t>(hi - lo);
  int bits = 0;
  while (bits < 63 && (span >> bits) > 0) ++bits;
  const int b = static_cast<int>(Pick(0, bits));
  const uint64_t top = b == 0 ? 0 : std::min<uint64_t>(span, (uint64_t{1} << b) - 1);
  return lo + Pick(0, static_cast<int64_t>(top));
}

inline int PickInt(int lo, int hi) { return static_cast<int>(Pick(lo, hi)); }

// A count in [lo, hi] that grows with the test size (rc::gen::resize bounds
// it), shrinking towards lo.
inline int PickScaled(int lo, int hi) {
  if (lo >= hi) return lo;
  return *rc::gen::inRange(lo, hi + 1);
}

inline bool PickBool() { return *rc::gen::arbitrary<bool>(); }

// Volume of a box known to be small enough not to overflow.
inline int64_t VolumeOf(const ChunkBox& box) {
  int64_t v = 1;
  for (int64_t s : box.sizes) v *= s;
  return v;
}

}  // namespace internal
}  // namespace proptest
}  // namespace dcplan

#endif  // DCPLAN_PROPERTY_TESTS_GENERATORS_INTERNAL_H_
