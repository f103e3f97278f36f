#ifndef DCPLAN_TOOLS_DCPLAN_CONVERT_KEYS_H_
#define DCPLAN_TOOLS_DCPLAN_CONVERT_KEYS_H_

// `dcplan convert --keys`: which flattened keys a list of requested keys
// selects, with the rule of PyTorch's _EmptyStateDictLoadPlanner
// (spec/planner.md §5.8): a key is selected when it is requested, or when one
// of the dotted prefixes of its object path is ("model" and "model.embed"
// select "model.embed.weight"; list indices print in decimal).

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "engine/object_path.h"

namespace dcplan::tools::convert {

// `key` and the dotted prefixes of `path` (nullptr: no recorded path).
inline std::vector<std::string> SelectableNames(const std::string& key, const ObjectPath* path) {
  std::vector<std::string> names = {key};
  if (path == nullptr) return names;
  ObjectPath prefix;
  for (const PathElement& element : *path) {
    prefix.push_back(element);
    names.push_back(FlatKey(prefix));
  }
  return names;
}

inline bool IsSelected(const std::string& key, const ObjectPath* path, const absl::flat_hash_set<std::string>& keys) {
  for (const std::string& name : SelectableNames(key, path)) {
    if (keys.contains(name)) return true;
  }
  return false;
}

// Collects which requested keys select at least one key; call Add for every
// flattened key, then Unmatched.
class KeyMatcher {
 public:
  explicit KeyMatcher(const std::vector<std::string>& requested) : requested_(requested) {}
  void Add(const std::string& key, const ObjectPath* path) {
    for (std::string& name : SelectableNames(key, path)) names_.insert(std::move(name));
  }
  // The requested keys that selected nothing, in request order.
  std::vector<std::string> Unmatched() const {
    std::vector<std::string> unmatched;
    for (const std::string& key : requested_) {
      if (!names_.contains(key)) unmatched.push_back(key);
    }
    return unmatched;
  }

 private:
  std::vector<std::string> requested_;
  absl::flat_hash_set<std::string> names_;
};

}  // namespace dcplan::tools::convert

#endif  // DCPLAN_TOOLS_DCPLAN_CONVERT_KEYS_H_
