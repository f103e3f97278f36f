#ifndef DCPLAN_API_STREAM_TRANSFORMS_H_
#define DCPLAN_API_STREAM_TRANSFORMS_H_

// Undoing the stream transforms a DCP writer applied to an item
// (spec/format.md §3.3): `_StorageInfo.transform_descriptors` lists them,
// outermost last. Supported: "stream.zstd/1" (any 1.x minor version), the
// zstd frames of PyTorch's FileSystemWriter(_extensions=[ZStandard()]).
// Shared by FileSystemReader (load, convert) and `dcplan verify`.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/metadata.h"

namespace dcplan {

// The item's bytes before the transforms, from its stored bytes. The output
// never grows past `max_decoded_bytes` (a frame that would is DataLoss: the
// bound keeps a small hostile frame from claiming memory).
// Errors: an unknown descriptor or version (Unimplemented, naming it); a
// truncated or corrupt frame, trailing bytes, output over the bound (DataLoss).
absl::StatusOr<std::string> UndoStreamTransforms(const std::vector<std::string>& descriptors,
                                                 absl::string_view stored, int64_t max_decoded_bytes);

// The decoded-size bound for the item stored under `index`: the element bytes
// of its chunk per `metadata`, plus 1 MiB for the torch.save archive around
// them; for a bytes item, or one the metadata does not describe, 1 GiB + 1 MiB.
int64_t MaxDecodedItemBytes(const Metadata& metadata, const MetadataIndex& index);

}  // namespace dcplan

#endif  // DCPLAN_API_STREAM_TRANSFORMS_H_
