#ifndef DCPLAN_TOOLS_DCPLAN_CONVERT_TORCH_SAVE_H_
#define DCPLAN_TOOLS_DCPLAN_CONVERT_TORCH_SAVE_H_

// The two conversions of `dcplan convert` (spec/planner.md §5.9):
//   DcpToTorchSave: a DCP checkpoint -> one torch.save file (PyTorch's
//     dcp_to_torch_save): the nested dict that _EmptyStateDictLoadPlanner
//     loads, tensors re-assembled from their chunks;
//   TorchSaveToDcp: a torch.save file holding a (nested) dict -> a DCP
//     checkpoint saved with the default planner (torch_save_to_dcp).
//
// Both write pickles through convert_pickle.h's canonical form, so that
// DCP -> .pt -> DCP -> .pt gives the same file twice.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/metadata.h"

namespace dcplan::tools::convert {

// Called with the bytes done so far and the total.
using ConvertProgress = std::function<void(int64_t done, int64_t total)>;

struct ConvertSummary {
  int64_t tensors = 0;
  int64_t tensor_bytes = 0;  // element bytes of the tensors
  int64_t values = 0;        // non-tensor values (leaves or lists saved whole)
};

// Requested keys that select no key of `metadata` (convert_keys.h's rule over
// the keys of state_dict_metadata and their planner_data paths).
std::vector<std::string> UnmatchedCheckpointKeys(const Metadata& metadata, const std::vector<std::string>& keys);

// Writes the torch.save archive of checkpoint `directory` (whose metadata is
// `metadata`, as read by FileSystemReader) to `out_path` (created or
// truncated, fsynced; the caller renames it into place or removes it).
//
// The archive: data.pkl first (the nested dict: keys in metadata order nested
// by planner_data like set_element; tensors as _rebuild_tensor_v2 of their
// metadata size and dtype, contiguous; non-tensor values as the pickles they
// were saved as, re-emitted canonically), "byteorder", then one storage record
// per tensor in the pickle's order, "version". Streaming: tensors are read
// and written in batches of at most 64 MiB (a larger tensor is a batch of its
// own), so memory stays near max(64 MiB, largest tensor) plus the non-tensor
// values. `keys`: only the selected keys. Errors (the key, file and chunk
// where known): unreadable data, tensors whose chunks do not cover them
// exactly, dtypes without a torch.save storage class, malformed values.
absl::StatusOr<ConvertSummary> DcpToTorchSave(const std::string& directory, const Metadata& metadata,
                                              const std::optional<absl::flat_hash_set<std::string>>& keys,
                                              const std::string& out_path, const ConvertProgress& progress);

struct TorchSaveToDcpOptions {
  std::optional<std::vector<std::string>> keys;
  bool overwrite = false;  // FileSystemWriter's overwrite
  ConvertProgress progress;
};

// Saves the dict in torch.save file `in_path` as a DCP checkpoint in
// `out_directory` (FileSystemWriter, SingleProcessCoordinator, default
// planner). The file is mapped, and tensors are views of their storage
// records (no copy, except a tensor that does not own exactly its elements,
// copied while it is written). Mappings become mappings, lists holding
// tensors or mappings become lists, tensors (_rebuild_tensor_v2,
// _rebuild_parameter) tensors; every other value (a list without tensors or
// mappings included) is saved as the torch.save archive of its canonical
// pickle, with the tensors it holds as storage records of its own. Integer
// dict keys become their decimal strings. Keys in `options.keys` that select
// nothing are stored in `unmatched_keys` and nothing is written (error
// FailedPrecondition). Errors: unreadable or malformed file (DataLoss /
// InvalidArgument naming it), a root that is not a dict, dict keys other
// than str and int, storage classes or tensors dcplan cannot rebuild, save
// errors.
absl::StatusOr<ConvertSummary> TorchSaveToDcp(const std::string& in_path, const std::string& out_directory,
                                              const TorchSaveToDcpOptions& options,
                                              std::vector<std::string>* unmatched_keys);

}  // namespace dcplan::tools::convert

#endif  // DCPLAN_TOOLS_DCPLAN_CONVERT_TORCH_SAVE_H_
