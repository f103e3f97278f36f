#ifndef DCPLAN_FUZZ_FUZZED_DATA_H_
#define DCPLAN_FUZZ_FUZZED_DATA_H_

// FuzzedData: turns fuzzer bytes into structured choices (counts, shapes,
// picks from a list), in the spirit of LLVM's FuzzedDataProvider but portable
// to any compiler, so that the structure-aware fuzz targets also build as
// plain gcc replay tests.
//
// Bytes are consumed from the front, so a mutation of byte k changes only the
// choices made from byte k on. Once the input is exhausted every choice takes
// its smallest value (lo, false, the first element): short inputs describe
// small scenarios, and every input, even the empty one, describes one.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace dcplan::fuzzing {

class FuzzedData {
 public:
  FuzzedData(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t remaining_bytes() const { return size_ - position_; }

  uint8_t ConsumeByte() { return position_ < size_ ? data_[position_++] : 0; }

  bool ConsumeBool() { return (ConsumeByte() & 1) != 0; }

  // True with probability about `chance_in_256` / 256 (one byte).
  bool ConsumeChance(int chance_in_256) { return static_cast<int>(ConsumeByte()) < chance_in_256; }

  // An integer in [lo, hi] (lo <= hi), reading only as many bytes as the
  // width of the range needs.
  template <typename T>
  T ConsumeInRange(T lo, T hi) {
    static_assert(std::is_integral<T>::value, "integral types only");
    if (hi <= lo) return lo;
    const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && (range >> shift) != 0 && position_ < size_; shift += 8) {
      value |= static_cast<uint64_t>(data_[position_++]) << shift;
    }
    if (range != std::numeric_limits<uint64_t>::max()) value %= range + 1;
    return static_cast<T>(static_cast<uint64_t>(lo) + value);
  }

  // Any int64 value (8 bytes).
  int64_t ConsumeInt64() {
    return ConsumeInRange<int64_t>(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  }

  // A position in a container of `count` > 0 elements.
  size_t ConsumeIndex(size_t count) { return count == 0 ? 0 : ConsumeInRange<size_t>(0, count - 1); }

  template <typename T, size_t N>
  const T& PickOne(const T (&choices)[N]) {
    return choices[ConsumeIndex(N)];
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

}  // namespace dcplan::fuzzing

#endif  // DCPLAN_FUZZ_FUZZED_DATA_H_
