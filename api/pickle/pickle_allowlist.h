#ifndef DCPLAN_API_PICKLE_PICKLE_ALLOWLIST_H_
#define DCPLAN_API_PICKLE_PICKLE_ALLOWLIST_H_

// The globals a DCP `.metadata` pickle may name (spec/format.md §5.3-§5.5),
// and the module paths the writer uses for them.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "api/pickle/pickle_reader.h"

namespace dcplan::pickle {

struct AllowedGlobal {
  GlobalKind kind;
  int64_t payload = 0;       // the DType / Layout for kDType / kLayout
  std::string display_name;  // what error messages call it
};

// The allowlisted meaning of `module`.`name`, or nullopt if it is not allowed.
std::optional<AllowedGlobal> ResolveGlobal(absl::string_view module, absl::string_view name);

// The allowlisted meaning of `module`.`name` in the data.pkl of a tensor
// record: exactly the globals a weights_only load needs for one
// (torch._utils._rebuild_tensor_v2 with a legacy storage class
// torch.<Name>Storage of a non-quantized dtype, or
// torch._utils._rebuild_tensor_v3 with torch.storage.UntypedStorage and
// torch.<dtype>; collections.OrderedDict), or nullopt.
std::optional<AllowedGlobal> ResolveTensorRecordGlobal(absl::string_view module, absl::string_view name);

// Module paths of PyTorch 2.x (epochs E2+), used by the writer.
inline constexpr absl::string_view kMetadataModule = "torch.distributed.checkpoint.metadata";
inline constexpr absl::string_view kFilesystemModule = "torch.distributed.checkpoint.filesystem";
inline constexpr absl::string_view kSerializationModule = "torch.serialization";

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_ALLOWLIST_H_
