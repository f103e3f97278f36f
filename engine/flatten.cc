#include "engine/flatten.h"

#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/object_path.h"

namespace dcplan {
namespace {

std::string DescribeElement(const PathElement& element) {
  if (const auto* key = std::get_if<std::string>(&element)) return absl::StrCat("key '", *key, "'");
  return absl::StrCat("index ", std::get<int64_t>(element));
}

std::string DescribePrefix(const ObjectPath& path, size_t length) {
  if (length == 0) return "the root";
  return ObjectPathToString(ObjectPath(path.begin(), path.begin() + length));
}

std::string StepContext(const ObjectPath& path, size_t step) {
  return absl::StrCat("cannot follow object path ", ObjectPathToString(path), " at element ", step, " (",
                      DescribeElement(path[step]), ")");
}

absl::flat_hash_set<absl::string_view> KeySet(absl::Span<const std::string> keys) {
  absl::flat_hash_set<absl::string_view> set;
  set.reserve(keys.size());
  for (const std::string& key : keys) set.insert(key);
  return set;
}

}  // namespace

absl::string_view KeyFormatName(KeyFormat format) {
  switch (format) {
    case KeyFormat::kCurrent:
      return "current";
    case KeyFormat::kLegacy2_3:
      return "2_3";
  }
  return "unknown";
}

absl::string_view NestedKindName(NestedKind kind) {
  switch (kind) {
    case NestedKind::kNone:
      return "None";
    case NestedKind::kLeaf:
      return "leaf";
    case NestedKind::kMapping:
      return "mapping";
    case NestedKind::kList:
      return "list";
  }
  return "unknown";
}

namespace flatten_internal {

absl::Status RootNotMappingError(NestedKind kind) {
  return absl::InvalidArgumentError(
      absl::StrCat("a state dict must be a mapping at the top level, got a ", NestedKindName(kind)));
}

absl::Status NestingTooDeepError(const ObjectPath& below) {
  return absl::InvalidArgumentError(
      absl::StrCat("state dict nests deeper than ", kMaxNestingDepth, " levels below '", FlatKey(below), "'"));
}

absl::Status DuplicatedKeyError(const std::string& key) {
  return absl::InvalidArgumentError(absl::StrCat("duplicated flatten key ", key));
}

absl::Status EmptyPathError() { return absl::InvalidArgumentError("object path is empty"); }

absl::Status PathTooLongError(const ObjectPath& path) {
  return absl::InvalidArgumentError(absl::StrCat("object path '", FlatKey(path), "' has ", path.size(),
                                                 " elements, more than the limit of ", kMaxNestingDepth));
}

absl::Status BadStepError(const ObjectPath& path, size_t step, NestedKind found) {
  const std::string where = DescribePrefix(path, step);
  std::string problem;
  switch (found) {
    case NestedKind::kNone:
    case NestedKind::kLeaf:
      problem = absl::StrCat(where, " is ", found == NestedKind::kNone ? "None" : "a leaf", ", not a container");
      break;
    case NestedKind::kMapping:
      problem = absl::StrCat(where, " is a mapping, not a list");
      break;
    case NestedKind::kList:
      problem = absl::StrCat(where, " is a list, not a mapping");
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(StepContext(path, step), ": ", problem));
}

absl::Status BadListIndexError(const ObjectPath& path, size_t step, int64_t index) {
  const std::string problem = index < 0 ? "a negative list index"
                                        : absl::StrCat("a list index above the limit of ", kMaxListIndex);
  return absl::InvalidArgumentError(absl::StrCat(StepContext(path, step), ": ", problem));
}

absl::Status MissingPathError(const std::string& key) {
  return absl::InvalidArgumentError(absl::StrCat("flat key '", key, "' has no object path in the flatten mapping"));
}

absl::Status WithFlatKey(const absl::Status& status, const std::string& key) {
  return absl::Status(status.code(), absl::StrCat("flat key '", key, "': ", status.message()));
}

}  // namespace flatten_internal

std::vector<std::string> ExtraCheckpointKeys(absl::Span<const std::string> checkpoint_keys,
                                             absl::Span<const std::string> current_keys) {
  const absl::flat_hash_set<absl::string_view> current = KeySet(current_keys);
  std::vector<std::string> extra;
  for (const std::string& key : checkpoint_keys) {
    if (!current.contains(key)) extra.push_back(key);
  }
  return extra;
}

KeyFormat ChooseLoadKeyFormat(absl::Span<const std::string> checkpoint_keys,
                              absl::Span<const std::string> current_keys,
                              absl::Span<const std::string> legacy_keys) {
  const std::vector<std::string> extra_keys = ExtraCheckpointKeys(checkpoint_keys, current_keys);
  if (extra_keys.empty()) return KeyFormat::kCurrent;
  const absl::flat_hash_set<absl::string_view> extra = KeySet(extra_keys);
  for (const std::string& key : legacy_keys) {
    if (extra.contains(key)) return KeyFormat::kLegacy2_3;
  }
  return KeyFormat::kCurrent;
}

}  // namespace dcplan
