#ifndef DCPLAN_API_PICKLE_METADATA_PICKLE_H_
#define DCPLAN_API_PICKLE_METADATA_PICKLE_H_

// DCP's `.metadata` file (spec/format.md §5): a Python pickle of
// torch.distributed.checkpoint.metadata.Metadata, read and written without
// Python or LibTorch.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/metadata.h"

namespace dcplan {

inline constexpr int64_t kMetadataCopyBaseBytes = int64_t{64} << 20;
inline constexpr int64_t kMetadataCopyBytesPerInputByte = 16;

// Parses the bytes of a `.metadata` (or rank-local `__{r}.metadata`) file with
// the allowlisted unpickler of api/pickle/pickle_reader.h and maps the object
// graph to Metadata. Accepts every layout of spec §5.5: protocols 2-5, both
// TensorProperties module paths and both enum pickles (value call or
// getattr), missing storage_meta / version / modules / transform_descriptors,
// planner_data None or a dict of tuples of str/int, MetadataIndex with or
// without offset, checkpoint_id as any pathlib class (parts joined with '/',
// or '\' for Windows classes), a str or None. Unknown extra fields in any
// instance state are ignored. Dict semantics are Python's: a repeated key
// keeps its first position and takes the last value (MetadataIndex keys
// compare by (fqn, offset)).
//
// Only types are checked, plus non-negative _StorageInfo offset/length and
// relative paths that stay inside the checkpoint directory
// (internal::CheckRelativePath: no '..', no absolute path, no NUL): shapes,
// chunk bounds and consistency are the validator's business.
//
// Memory is bounded by the input: the unpickler creates at most one value per
// input byte and keeps memo references shared; mapping copies strings and
// shapes at each use, and those copies may total at most
// kMetadataCopyBaseBytes + kMetadataCopyBytesPerInputByte * bytes.size()
// (an InvalidArgument "... memo amplification ..." otherwise). Real files
// copy each fqn about twice per chunk, far below the factor.
//
// Errors are InvalidArgument and name the file and the place, e.g.
//   "'.metadata': state_dict_metadata['w'].chunks[3].offsets: expected
//    torch.Size, found str"
//   "'.metadata': pickle: global 'os.system' is not allowed (offset 2)".
// `source_name` is the file name used in messages.
absl::StatusOr<Metadata> ParseMetadataPickle(absl::string_view bytes,
                                             absl::string_view source_name = ".metadata");

// Serializes `metadata` as PyTorch 2.x's `pickle.load` expects (spec §5.7):
// protocol 4, the E2+ module paths, dataclasses as NEWOBJ + BUILD of their
// instance dict (BytesStorageMetadata without BUILD, TensorProperties with its
// 5-tuple state), torch.Size / _get_layout / _MEM_FORMAT_ENCODING as REDUCE,
// dtypes as bare `torch.<name>` globals, each MetadataIndex fully built before
// it is used as a dict key, MetadataIndex.offset and
// _StorageInfo.transform_descriptors omitted when absent, checkpoint_id as a
// plain str. `version` is written as given, or "1.0.0" when unset; an unset
// storage_meta / planner_data / storage_data is written as None.
//
// Strings (fqns, paths, ids) must be valid UTF-8, as Python requires.
std::string WriteMetadataPickle(const Metadata& metadata);

}  // namespace dcplan

#endif  // DCPLAN_API_PICKLE_METADATA_PICKLE_H_
