// Fuzz target for the `.metadata` reader (api/pickle/metadata_pickle.h) and
// for what a loader does next with an untrusted checkpoint's metadata.
//
// For every input ParseMetadataPickle accepts:
// - validation agrees with the pairwise oracle (arbitrary int64 shapes,
//   offsets and sizes reach the validator here);
// - DescribeCheckpoint, of everything and of some keys, matches its
//   contract;
// - loading everything (DescribeCheckpoint + CreateLocalLoadPlan) produces
//   exactly the reference read items and no errors but invalid_checkpoint
//   for tensors whose stored chunks overlap, and for a valid small
//   tensor the reads fill every element once;
// - WriteMetadataPickle's output parses back to the same metadata (with the
//   version the writer fills in when there is none), and the codec round
//   trips it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "api/pickle/metadata_pickle.h"
#include "engine/load_planner.h"
#include "engine/metadata.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/pipeline_checks.h"
#include "fuzz/pipeline_oracles.h"
#include "property_tests/oracles.h"

namespace dcplan::fuzzing {
namespace {

// Keys to load selectively: an object-path prefix of the first key, the last
// key itself, and a list prefix that real checkpoints use.
absl::flat_hash_set<std::string> SomeKeys(const Metadata& metadata) {
  absl::flat_hash_set<std::string> keys = {"ema.0"};
  if (metadata.state_dict_metadata.empty()) return keys;
  keys.insert(metadata.state_dict_metadata.at_position(metadata.state_dict_metadata.size() - 1).first);
  const std::string& first = metadata.state_dict_metadata.at_position(0).first;
  const ObjectPath* path = metadata.planner_data ? metadata.planner_data->Find(first) : nullptr;
  if (path != nullptr && !path->empty()) {
    if (const auto* name = std::get_if<std::string>(&path->front())) keys.insert(*name);
  }
  return keys;
}

void FuzzMetadataPickle(absl::string_view bytes) {
  absl::StatusOr<Metadata> parsed = ParseMetadataPickle(bytes);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument && !parsed.status().message().empty(),
               "ParseMetadataPickle error is not a described InvalidArgument: " + parsed.status().ToString());
    return;
  }
  const Metadata& metadata = *parsed;
  CheckValidationMatchesOracle(metadata.state_dict_metadata);

  const StateDictDescription everything = DescribeCheckpoint(metadata, std::nullopt);
  FUZZ_CHECK(everything == proptest::DescribeCheckpointReference(metadata, std::nullopt),
             "DescribeCheckpoint(everything) differs from the reference:\n" + Describe(everything));
  const absl::flat_hash_set<std::string> keys = SomeKeys(metadata);
  const StateDictDescription some = DescribeCheckpoint(metadata, keys);
  FUZZ_CHECK(some == proptest::DescribeCheckpointReference(metadata, keys),
             absl::StrCat("DescribeCheckpoint(", absl::StrJoin(keys, ", "), ") differs from the reference:\n",
                          Describe(some), "expected:\n",
                          Describe(proptest::DescribeCheckpointReference(metadata, keys))));
  const LoadPlannerOptions strict{true};
  const LocalLoadPlan load = CreateLocalLoadPlan(everything, metadata, strict, 0);
  CheckLocalLoadPlan(everything, metadata, strict, 0, load);
  // Only a checkpoint whose stored chunks overlap may refuse to load.
  for (const LoadPlanError& error : load.errors) {
    FUZZ_CHECK(error.kind == LoadErrorKind::kInvalidCheckpoint,
               "loading everything a checkpoint describes fails: " + LoadErrorsToStatus(load.errors).ToString());
  }

  const std::string written = WriteMetadataPickle(metadata);
  absl::StatusOr<Metadata> reread = ParseMetadataPickle(written);
  FUZZ_CHECK(reread.ok(), "WriteMetadataPickle's output does not parse: " + reread.status().ToString());
  Metadata expected = metadata;
  if (!expected.version) expected.version = "1.0.0";
  FUZZ_CHECK(*reread == expected, absl::StrCat("metadata changed through WriteMetadataPickle\nparsed:\n",
                                               ToString(expected), "\nreread:\n", ToString(*reread)));
  CheckCodecRoundTrip(metadata);
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcplan::fuzzing::FuzzMetadataPickle(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
