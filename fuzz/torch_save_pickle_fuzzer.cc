// Fuzz target for the pickle graph of `dcplan convert`
// (tools/dcplan/convert_pickle.h): ParsePickle of an untrusted torch.save
// data.pkl, then EmitPickle's canonical form.
//
// For every input:
// - ParsePickle either fails with a described InvalidArgument ("pickle
//   offset N: ...") or returns a root within the documented limits (depth,
//   expanded size), every storage resolved by the resolver below;
// - for an accepted input, EmitPickle succeeds (unless the output would
//   exceed kMaxEmittedBytes), its size is linear in the expanded graph, and
//   parse(emit(g)) succeeds and emits exactly the same bytes (the canonical
//   form that makes `convert` round trips bitwise), with the same depth and
//   expanded size, and storage keys the parse resolved. Inputs whose
//   emission could exceed 32 MiB skip the emitting (memory limit).
//
// Storages: the resolver numbers record keys (the same key is the same
// source), and the keyer writes a source's key back, as `convert` keeps
// storages by key.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "tools/dcplan/convert_pickle.h"

namespace dcplan::fuzzing {
namespace {

using tools::convert::EmitPickle;
using tools::convert::kMaxEmittedBytes;
using tools::convert::kMaxExpandedNodes;
using tools::convert::kMaxPickleDepth;
using tools::convert::ParsePickle;
using tools::convert::PyGraph;
using tools::convert::PyKind;
using tools::convert::PyNode;

// Emitting (and re-parsing) more than this is skipped: a memo-sharing input
// of a few kilobytes can legitimately expand to kMaxEmittedBytes, which the
// fuzzer's memory limit cannot hold several times over.
constexpr int64_t kMaxCheckedEmittedBytes = int64_t{32} << 20;

// Storage keys in the order the parser resolved them (one entry per
// persistent id); sources index `keys`.
struct Storages {
  std::vector<std::string> keys;
  std::vector<int64_t> resolved;  // the source of each persistent id, in order
  absl::flat_hash_map<std::string, int64_t> source_of_key;

  tools::convert::StorageResolver Resolver() {
    return [this](const PyNode& storage_class, const std::string& key, int64_t numel) -> absl::StatusOr<int64_t> {
      FUZZ_CHECK(storage_class.kind == PyKind::kGlobal, "the storage class is a " + tools::convert::DescribeNode(storage_class));
      FUZZ_CHECK(numel >= 0, absl::StrCat("negative numel ", numel));
      auto [it, inserted] = source_of_key.try_emplace(key, static_cast<int64_t>(keys.size()));
      if (inserted) keys.push_back(key);
      resolved.push_back(it->second);
      return it->second;
    };
  }
  tools::convert::StorageKeyer Keyer() const {
    return [this](const PyNode& storage) -> absl::StatusOr<std::string> {
      FUZZ_CHECK(storage.kind == PyKind::kStorage && storage.source >= 0 &&
                     storage.source < static_cast<int64_t>(keys.size()),
                 absl::StrCat("the emitter asks for the key of a ", tools::convert::DescribeNode(storage),
                              " with source ", storage.source));
      return keys[static_cast<size_t>(storage.source)];
    };
  }
};

int64_t SaturatingAdd(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

// An upper bound of the emitted size of `node`, shared parts counted once
// per use: a constant per node and per opcode batch plus its strings.
// Memoized per node, so the walk is linear in the number of distinct nodes.
int64_t EmittedSizeBound(const PyNode& node, absl::flat_hash_map<const PyNode*, int64_t>& memo) {
  auto found = memo.find(&node);
  if (found != memo.end()) return found->second;
  int64_t bound = 64 + static_cast<int64_t>(node.text.size() + node.module.size() + node.name.size());
  const size_t parts = node.items.size() + node.appended.size() + 2 * node.entries.size() + node.builds.size();
  bound = SaturatingAdd(bound, static_cast<int64_t>(4 * parts));
  for (const PyNode* child : node.items) bound = SaturatingAdd(bound, EmittedSizeBound(*child, memo));
  for (const PyNode* child : node.appended) bound = SaturatingAdd(bound, EmittedSizeBound(*child, memo));
  for (const auto& [key, value] : node.entries) {
    bound = SaturatingAdd(bound, EmittedSizeBound(*key, memo));
    bound = SaturatingAdd(bound, EmittedSizeBound(*value, memo));
  }
  for (const PyNode* child : node.builds) bound = SaturatingAdd(bound, EmittedSizeBound(*child, memo));
  memo.emplace(&node, bound);
  return bound;
}

void CheckAccepted(const PyNode& root, const std::string& what) {
  FUZZ_CHECK(root.depth >= 1 && root.depth <= kMaxPickleDepth,
             absl::StrCat(what, ": the root nests ", root.depth, " levels"));
  FUZZ_CHECK(root.expanded >= 1 && root.expanded <= kMaxExpandedNodes,
             absl::StrCat(what, ": the root expands to ", root.expanded, " nodes"));
}

void FuzzTorchSavePickle(absl::string_view bytes) {
  PyGraph graph;
  Storages storages;
  absl::StatusOr<const PyNode*> root = ParsePickle(bytes, graph, storages.Resolver());
  if (!root.ok()) {
    FUZZ_CHECK(root.status().code() == absl::StatusCode::kInvalidArgument &&
                   absl::StartsWith(root.status().message(), "pickle offset "),
               "ParsePickle error is not a located InvalidArgument: " + root.status().ToString());
    return;
  }
  FUZZ_CHECK(*root != nullptr, "ParsePickle returned no root");
  CheckAccepted(**root, "parsed");

  absl::flat_hash_map<const PyNode*, int64_t> memo;
  const int64_t bound = EmittedSizeBound(**root, memo);
  if (bound > kMaxCheckedEmittedBytes) return;

  absl::StatusOr<std::string> emitted = EmitPickle(**root, storages.Keyer());
  FUZZ_CHECK(emitted.ok(), "EmitPickle fails on a parsed pickle: " + emitted.status().ToString());
  FUZZ_CHECK(static_cast<int64_t>(emitted->size()) <= bound && static_cast<int64_t>(emitted->size()) <= kMaxEmittedBytes,
             absl::StrCat("EmitPickle wrote ", emitted->size(), " bytes, more than the bound ", bound));
  FUZZ_CHECK(absl::StartsWith(*emitted, "\x80\x02") && absl::EndsWith(*emitted, "."),
             "EmitPickle's output is not PROTO 2 ... STOP");

  PyGraph regraph;
  Storages restorages;
  absl::StatusOr<const PyNode*> reparsed = ParsePickle(*emitted, regraph, restorages.Resolver());
  FUZZ_CHECK(reparsed.ok(), "EmitPickle's output does not parse: " + reparsed.status().ToString());
  CheckAccepted(**reparsed, "re-parsed");
  FUZZ_CHECK((*reparsed)->depth == (**root).depth,
             absl::StrCat("depth changed through EmitPickle: ", (**root).depth, " -> ", (*reparsed)->depth));
  FUZZ_CHECK((*reparsed)->expanded == (**root).expanded,
             absl::StrCat("expanded size changed through EmitPickle: ", (**root).expanded, " -> ",
                          (*reparsed)->expanded));
  // Emission order may differ from parse order, and storages the root does
  // not reach are gone; every key written must be one that was read.
  for (const std::string& key : restorages.keys) {
    FUZZ_CHECK(storages.source_of_key.contains(key), "EmitPickle wrote a storage key it was never given");
  }
  absl::StatusOr<std::string> reemitted = EmitPickle(**reparsed, restorages.Keyer());
  FUZZ_CHECK(reemitted.ok(), "EmitPickle fails on its own output's graph: " + reemitted.status().ToString());
  if (*reemitted != *emitted) {
    size_t at = 0;
    while (at < emitted->size() && at < reemitted->size() && (*emitted)[at] == (*reemitted)[at]) ++at;
    FUZZ_CHECK(false, absl::StrCat("parse(emit(g)) emits different bytes (", emitted->size(), " vs ",
                                   reemitted->size(), " bytes, first difference at offset ", at, ")"));
  }
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzTorchSavePickle(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
