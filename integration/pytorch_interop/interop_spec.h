#ifndef DCPLAN_INTEGRATION_PYTORCH_INTEROP_INTEROP_SPEC_H_
#define DCPLAN_INTEGRATION_PYTORCH_INTEROP_INTEROP_SPEC_H_

// The spec the PyTorch interop drivers (interop_common.py write_spec) hand to
// interop_helper: what every rank of a dcplan world holds or wants loaded.
//
//   {"world_size": 3,
//    "lists": ["optim.param_groups"],              // fqn prefixes that are lists
//    "tensors": {"model.w": {"dtype": "float32", "shape": [8, 6],
//                            "file": "/tmp/x/t0.bin",   // row-major bytes of the whole tensor
//                            "whole": false,            // true: a plain tensor on every rank
//                            "shards": [[[[0, 0], [3, 6]]], [[[3, 0], [3, 6]]], [[[6, 0], [2, 6]]]]}},
//    "values": {"step": 42, "optim.param_groups.0.lr": 0.01}}
//
// `shards[rank]` lists that rank's boxes as [offsets, lengths]. Keys are
// flattened fqns; the helper rebuilds the nesting by splitting them on '.'.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/box.h"
#include "engine/dtype.h"
#include "tools/dcplan/json_reader.h"

namespace dcplan::interop {

struct ShardBox {
  Shape offsets;
  Shape lengths;
};

struct TensorSpec {
  std::string fqn;
  DType dtype;
  Shape shape;
  std::string file;
  bool whole = false;
  std::vector<std::vector<ShardBox>> shards;  // one list per rank
};

struct ValueSpec {
  std::string fqn;
  tools::Json value;
};

struct InteropSpec {
  int64_t world_size = 0;
  std::vector<std::string> lists;
  std::vector<TensorSpec> tensors;
  std::vector<ValueSpec> values;
};

// Reads and checks a spec file (InvalidArgument naming the JSON path of a
// bad field: boxes outside the shape, a shard list per rank missing, ...).
absl::StatusOr<InteropSpec> ReadInteropSpec(const std::string& path);

}  // namespace dcplan::interop

#endif  // DCPLAN_INTEGRATION_PYTORCH_INTEROP_INTEROP_SPEC_H_
