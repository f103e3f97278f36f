#ifndef DCPLAN_TOOLS_BENCH_CHUNK_LAYOUTS_H_
#define DCPLAN_TOOLS_BENCH_CHUNK_LAYOUTS_H_

// One tensor cut into many chunks, for the validation benchmarks (issue #15:
// "any single tensor of 16 384 chunks validates in < 5 ms in every layout").
// Every layout tiles its tensor exactly (a valid checkpoint):
// - rows:    a [chunks x 64] tensor, one row per chunk (split along dim 0);
// - columns: a [64 x chunks] tensor, one column per chunk (split along dim 1,
//            the dimension PyTorch's sweep does not sort by);
// - grid:    a square grid of 4 x 4 blocks (128 x 128 blocks for 16 384);
// - random:  guillotine cuts at random positions of a [4096 x 4096] tensor,
//            always splitting the chunk with the most elements in its longer
//            dimension (deterministic for a seed), so that chunk sizes and
//            alignments vary and no dimension orders them.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/metadata.h"

namespace dcplan {
namespace bench {

enum class ChunkLayout : uint8_t { kRows, kColumns, kGrid, kRandom };

absl::string_view ChunkLayoutName(ChunkLayout layout);  // "rows", "columns", "grid", "random"

// A bfloat16 tensor of `chunks` chunks in `layout`. Error if `chunks` is not
// positive, and for kGrid if it is not a perfect square.
absl::StatusOr<TensorStorageMetadata> ChunkLayoutTensor(ChunkLayout layout, int64_t chunks, uint64_t seed = 15);

}  // namespace bench
}  // namespace dcplan

#endif  // DCPLAN_TOOLS_BENCH_CHUNK_LAYOUTS_H_
