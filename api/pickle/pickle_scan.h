#ifndef DCPLAN_API_PICKLE_PICKLE_SCAN_H_
#define DCPLAN_API_PICKLE_PICKLE_SCAN_H_

// A structural pre-check of a pickle before it is handed to an unpickler
// that trusts its lengths (LibTorch's torch::jit::Unpickler allocates a
// string of the declared length before reading it, and frees nested values
// recursively).
//
// CheckPickleStructure walks every opcode once, without building values: it
// checks that every argument and length-prefixed string lies inside the
// input, that a STOP is reached, that memo references name stored entries,
// and it simulates the stack's nesting depth (a container holding a value
// nests one level deeper than it). Cost: O(input) time; memory O(input) for
// the simulated stack and memo (one small entry per opcode at most).

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dcplan::pickle {

// Deeper nesting is refused: real torch.save pickles nest a few levels.
inline constexpr int kMaxScannedNestingDepth = 512;

// OK when `pickle` is structurally sound as described above. Errors are
// InvalidArgument "pickle: <what> (offset N)": a length past the end
// ("string of 4294967296 bytes runs past the end of the 320-byte pickle"),
// an unknown opcode, stack underflow, a missing MARK, nesting deeper than
// kMaxScannedNestingDepth, no STOP.
// With `globals`, the names of the globals the pickle refers to
// ("module.name", in order) are appended to it; a STACK_GLOBAL whose operands
// are not strings pushed by the pickle is an error.
absl::Status CheckPickleStructure(absl::string_view pickle, std::vector<std::string>* globals = nullptr);

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_SCAN_H_
