#ifndef DCPLAN_ENGINE_INTERNAL_CHECKED_MATH_H_
#define DCPLAN_ENGINE_INTERNAL_CHECKED_MATH_H_

// Overflow-checked int64 arithmetic. Shapes and offsets come from untrusted
// plans and files; an overflow must be an error, never undefined behaviour.

#include <cstdint>
#include <optional>

namespace dcplan::internal {

inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<int64_t> CheckedSub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace dcplan::internal

#endif  // DCPLAN_ENGINE_INTERNAL_CHECKED_MATH_H_
