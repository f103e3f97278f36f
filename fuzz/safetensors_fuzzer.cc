// Fuzz target for the safetensors header and index parsers
// (api/safetensors/format.h), which read untrusted checkpoint files first.
//
// Input: a selector byte, then the bytes. Selector even: a whole
// .safetensors file (ParseFileBytes); odd: an index JSON (ParseIndexJson).
// For every input the parser returns OK or InvalidArgument naming the file
// (ASan/UBSan watch the rest). For an accepted header:
// - the tensors, in order, tile [0, data bytes) exactly, and each holds
//   element size x volume bytes (computed here in 128 bits);
// - SerializeHeader of what was parsed parses back to the same tensors and
//   metadata.
// For an accepted index: every file name is plain, and SerializeIndex parses
// back to the same index.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "api/safetensors/format.h"
#include "fuzz/fuzz_check.h"

namespace dcplan::fuzzing {
namespace {

using namespace ::dcplan::safetensors;  // NOLINT

void CheckRejection(const absl::Status& status) {
  FUZZ_CHECK(absl::IsInvalidArgument(status), status.ToString());
  FUZZ_CHECK(absl::StrContains(status.message(), "in.safetensors") || absl::StrContains(status.message(), "in.json"),
             status.ToString());
}

void CheckHeader(absl::string_view bytes) {
  absl::StatusOr<Header> header = ParseFileBytes(bytes, "in.safetensors");
  if (!header.ok()) return CheckRejection(header.status());
  const int64_t data_bytes = static_cast<int64_t>(bytes.size()) - header->data_start;
  int64_t covered = 0;
  for (const TensorEntry& t : header->tensors) {
    FUZZ_CHECK(t.begin == covered, absl::StrCat(t.name, " begins at ", t.begin, ", expected ", covered));
    __int128 expected = ElementSize(t.dtype);
    for (int64_t dim : t.shape) expected *= dim;
    FUZZ_CHECK(expected == t.bytes(), absl::StrCat(t.name, " holds ", t.bytes(), " bytes"));
    covered = t.end;
  }
  FUZZ_CHECK(covered == data_bytes, absl::StrCat("covered ", covered, " of ", data_bytes));
  const std::string again = SerializeHeader(header->tensors, header->metadata) + std::string(data_bytes, '\0');
  absl::StatusOr<Header> reparsed = ParseFileBytes(again, "in.safetensors");
  FUZZ_CHECK(reparsed.ok(), reparsed.status().ToString());
  FUZZ_CHECK(reparsed->tensors == header->tensors && reparsed->metadata == header->metadata,
             "the re-serialized header parses differently");
}

void CheckIndex(absl::string_view bytes) {
  absl::StatusOr<Index> index = ParseIndexJson(bytes, "in.json");
  if (!index.ok()) return CheckRejection(index.status());
  for (const auto& [name, file] : index->weight_map) FUZZ_CHECK(IsPlainFileName(file), file);
  absl::StatusOr<Index> reparsed = ParseIndexJson(SerializeIndex(*index), "in.json");
  FUZZ_CHECK(reparsed.ok() && *reparsed == *index, "the re-serialized index parses differently");
}

}  // namespace
}  // namespace dcplan::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    dcplan::fuzzing::CheckHeader(bytes);
  } else {
    dcplan::fuzzing::CheckIndex(bytes);
  }
  return 0;
}
