#ifndef DCPLAN_API_INTERNAL_WRITE_RESULTS_H_
#define DCPLAN_API_INTERNAL_WRITE_RESULTS_H_

// The wire form of one rank's WriteResults, sent to the coordinator in the
// "write" step of a save (engine/codec.h covers plans and metadata only).
//
// Layout (integers little-endian, fixed width; a string is its u64 length
// then its bytes):
//
//   magic "DCWR" | version (u8, = 1) | count (u64)
//   per result:
//     fqn (string) | flags (u8: 1 = offset, 2 = index hint, 4 = transforms)
//     [offset: ndim (u64), ndim x i64] [index: i64]
//     size_in_bytes (i64) | relative_path (string) | offset (i64) | length (i64)
//     [transforms: count (u64), count x string]
//     checksum (u64)
//
// Decoding treats the input as untrusted: every count and length is checked
// against the bytes that remain before anything is reserved.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/storage.h"

namespace dcplan::internal {

std::string EncodeWriteResults(const std::vector<WriteResult>& results);

// Errors (DataLoss): truncated input, bad magic or version, unknown flag
// bits, trailing bytes; the message names the byte offset and the result.
absl::StatusOr<std::vector<WriteResult>> DecodeWriteResults(absl::string_view bytes);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_WRITE_RESULTS_H_
