#ifndef DCPLAN_API_PICKLE_WEIGHTS_ONLY_H_
#define DCPLAN_API_PICKLE_WEIGHTS_ONLY_H_

// The policy for pickled non-tensor values (bytes items of a checkpoint,
// values of a torch.save file): by default only the globals that PyTorch's
// `torch.load(weights_only=True)` accepts may appear, so that nothing dcplan
// reports as sound or writes out would run code when PyTorch loads it
// (PyTorch's DCP loader unpickles bytes items without weights_only).

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dcplan::pickle {

// True for "module.name" globals a weights_only load accepts: tensor, storage
// and parameter rebuilding (torch._utils._rebuild_*,
// torch._tensor._rebuild_from_type_v2, torch.nn.parameter.Parameter), torch
// dtypes, storage and tensor classes, torch.Size, torch.device,
// torch.serialization._get_layout, quantization schemes,
// collections.OrderedDict / Counter, builtins.set / bytearray / complex (also
// under protocol 2's name __builtin__) and _codecs.encode (how protocol 2
// pickles bytes). One intended difference: LibTorch's typed-list builders
// torch.jit._pickle.build_*list and restore_type_tag are accepted (they only
// construct lists; torch::pickle_save, which writes dcplan's bytes items,
// emits them, while PyTorch's weights_only allowlist lacks them).
bool IsWeightsOnlyGlobal(absl::string_view name);

// OK when the pickle is structurally sound (CheckPickleStructure) and names
// only weights_only globals; otherwise InvalidArgument naming the first
// offending global: "names global 'os.system', which a weights_only load
// refuses (it could run code)".
absl::Status CheckWeightsOnlyPickle(absl::string_view pickle);

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_WEIGHTS_ONLY_H_
