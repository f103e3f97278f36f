#ifndef DCPLAN_API_INTERNAL_DATA_PICKLE_MEMO_H_
#define DCPLAN_API_INTERNAL_DATA_PICKLE_MEMO_H_

// Internal to //api:tensor_record: the verdicts on a tensor record's data.pkl
// (its structure check, the globals it names, its _rebuild_tensor_v2 / _v3
// call), remembered for the last data.pkl read on the calling thread.
//
// Why: every chunk of one shape and dtype is saved with a byte-identical
// data.pkl, and `dcplan verify` reads the layout of every item; on a
// checkpoint of a million chunks, re-running the unpickler on the same bytes
// dominated its time (issue #13). Each verdict is a function of the bytes
// alone, so repeating the remembered one is exact: callers see what the
// uncached call returns.
//
// Cost: one comparison of the bytes per call, O(size); a miss costs the
// underlying call plus a copy of the bytes. Only data.pkl records of at most
// kMaxMemoizedDataPickleBytes are remembered (larger ones are computed each
// time), so the memo holds at most that much per thread.

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/pickle/tensor_v3_pickle.h"

namespace dcplan::internal {

inline constexpr size_t kMaxMemoizedDataPickleBytes = size_t{64} << 10;

// pickle::CheckPickleStructure(pickle, globals) with a non-null `globals`
// (the names are appended to it).
absl::Status CheckDataPickleStructure(absl::string_view pickle, std::vector<std::string>* globals);

// pickle::ParseRebuildTensorV2(pickle) and pickle::ParseRebuildTensorV3(pickle).
absl::StatusOr<pickle::RebuildTensorCall> ParseDataPickleV2(absl::string_view pickle);
absl::StatusOr<pickle::RebuildTensorCall> ParseDataPickleV3(absl::string_view pickle);

}  // namespace dcplan::internal

#endif  // DCPLAN_API_INTERNAL_DATA_PICKLE_MEMO_H_
