#ifndef DCPLAN_ENGINE_OBJECT_PATH_H_
#define DCPLAN_ENGINE_OBJECT_PATH_H_

// ObjectPath: where a flattened state-dict value lives in the nested original,
// as a tuple of mapping keys (strings) and list indices (ints), exactly like
// the tuples in PyTorch's flatten mapping (`Metadata.planner_data`).

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "engine/ordered_map.h"

namespace dcplan {

// A mapping key (always a string: PyTorch stringifies dict keys) or a list
// index.
using PathElement = std::variant<std::string, int64_t>;
using ObjectPath = std::vector<PathElement>;

// The flattened key of `path`: elements joined by "." ("opt.state.0.exp_avg").
std::string FlatKey(const ObjectPath& path);

// Python repr of the path tuple: ('a', 0) or ('a',).
std::string ObjectPathToString(const ObjectPath& path);

// Flattened key -> object path, in flattening order (PyTorch's `mappings`).
using FlattenMapping = OrderedMap<std::string, ObjectPath>;

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_OBJECT_PATH_H_
