#ifndef DCPLAN_API_PICKLE_PICKLE_READER_H_
#define DCPLAN_API_PICKLE_PICKLE_READER_H_

// A restricted Python unpickler for DCP's `.metadata` files.
//
// Unpickle() runs a small pickle virtual machine over a byte span: protocols
// 2-5 with the opcodes of spec/format.md §5.1 (PROTO, FRAME, STOP, GLOBAL,
// STACK_GLOBAL, NEWOBJ, REDUCE, BUILD, MARK, the tuple/list/dict builders, the
// scalar and string encodings, MEMOIZE/BINPUT/LONG_BINPUT/BINGET/LONG_BINGET)
// plus a few harmless neighbours (POP, POP_MARK, DUP, LIST, DICT, LONG4, the
// BINBYTES family). Anything else (INST, OBJ, PERSID, EXT*, sets, buffers,
// the text protocol-0 opcodes) is an error.
//
// The result is the object graph as plain values. Nothing is ever executed:
// GLOBAL / STACK_GLOBAL resolve only the names of an allowlist (the DCP
// metadata classes, torch.Size, torch dtypes and layouts, the memory-format
// enum, pathlib paths, collections.OrderedDict and builtins.getattr restricted
// to the enum's members); any other name is an error that names it. NEWOBJ
// and REDUCE record "an instance of class C built from these arguments" and
// BUILD attaches the state; interpreting those objects is the caller's job
// (api/pickle/metadata_pickle.h).
//
// Robustness contract (inputs are untrusted):
//   - every read is bounds-checked; a length prefix larger than the remaining
//     input is an error before anything is allocated;
//   - at most one value is created per input byte (None, True, False and ()
//     are shared), so memory is linear in the input size (a Value is about
//     150 bytes, in the range of CPython's own objects); a memo index is a
//     hash-map entry unless it is the next one in sequence;
//   - the graph is acyclic and at most kMaxNestingDepth levels deep: a
//     container or object may not be modified (APPEND, SETITEM, BUILD, ...)
//     once it has been stored inside another value, which is never needed by
//     the pickles CPython writes for acyclic data, and rules out cycles;
//   - memo indices, MARKs and stack underflow are checked;
//   - no exceptions, no aborts, no recursion over the input.
//
// A second vocabulary (PickleVocabulary::kTensorRecord) reads the data.pkl of
// a torch.save'd tensor rebuilt by torch._utils._rebuild_tensor_v3: it
// allows BINPERSID (the storage's persistent id) and exactly the globals a
// weights_only load needs for such a record (api/pickle/tensor_v3_pickle.h
// interprets the result).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::pickle {

inline constexpr int kMaxNestingDepth = 64;
inline constexpr int kMaxMarkDepth = 64;

// What an allowlisted global is.
enum class GlobalKind : uint8_t {
  // DCP dataclasses: instantiated with NEWOBJ, state attached by BUILD.
  kMetadata,
  kTensorStorageMetadata,
  kBytesStorageMetadata,
  kChunkStorageMetadata,
  kTensorProperties,  // both module paths (spec §5.4)
  kMetadataIndex,
  kStorageMeta,
  kStorageInfo,  // _StorageInfo under any of its known module paths
  // Callables applied with REDUCE.
  kTorchSize,          // torch.Size((ints...),)
  kGetLayout,          // torch.serialization._get_layout("torch.strided")
  kMemFormatEncoding,  // _MEM_FORMAT_ENCODING(0) / MEM_FORMAT_ENCODING(0)
  kGetattr,            // builtins.getattr(<enum class>, "<member>") only
  kPosixPath,          // pathlib (Pure)PosixPath / Path and pathlib._local variants
  kWindowsPath,        // pathlib (Pure)WindowsPath and pathlib._local variants
  kOrderedDict,        // collections.OrderedDict() -> an empty dict
  kRebuildTensorV3,    // torch._utils._rebuild_tensor_v3(...) (tensor records only)
  // A storage's persistent id (tensor records only): an object whose one
  // item is the id BINPERSID popped.
  kPersistentId,
  // Plain values.
  kDType,   // torch.<dtype>: Value::integer holds the dcplan::DType
  kLayout,  // torch.<layout>: Value::integer holds the dcplan::Layout
  kUntypedStorage,  // torch.storage.UntypedStorage (tensor records only)
};

// Which pickles Unpickle() reads: which globals it allows, and whether
// persistent ids are allowed.
enum class PickleVocabulary : uint8_t {
  kCheckpointMetadata,  // DCP's .metadata (spec/format.md §5); no persistent ids
  kTensorRecord,        // the data.pkl of a _rebuild_tensor_v3 tensor record
};

enum class ValueKind : uint8_t {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kGlobal,  // an allowlisted global itself (a class, callable, dtype, layout)
  kObject,  // the result of NEWOBJ or REDUCE of an allowlisted callable
};

// One node of the unpickled graph. Values are owned by their PickleDocument
// and refer to each other by pointer; shared references (memo) are shared
// pointers into the same node.
struct Value {
  ValueKind kind = ValueKind::kNone;
  bool boolean = false;  // kBool
  int64_t integer = 0;   // kInt; kGlobal kDType/kLayout: the enum value
  double real = 0;       // kFloat
  // kString (UTF-8), kBytes (raw); kGlobal/kObject: the global's display
  // name ("torch.Size", "TensorStorageMetadata", "torch.float32").
  std::string text;
  // kTuple, kList: the items; kObject: the arguments of NEWOBJ / REDUCE (for
  // getattr(enum, "NAME") the member's value, so both enum forms look alike).
  std::vector<const Value*> items;
  // kDict: key/value pairs in SETITEM order. Repeated keys are kept as they
  // are: consumers apply Python's dict semantics (first position, last value)
  // with their own notion of key equality.
  std::vector<std::pair<const Value*, const Value*>> entries;
  GlobalKind global = GlobalKind::kMetadata;  // kGlobal, kObject
  const Value* state = nullptr;               // kObject: BUILD's state, if any

  // Bookkeeping of the VM (see the robustness contract above).
  int32_t depth = 1;       // 1 for scalars, 1 + deepest child otherwise
  bool contained = false;  // stored inside another value
};

// "None", "bool", "int", "str", "tuple", "torch.Size", "MetadataIndex", ...
std::string DescribeValue(const Value& value);

// The result of Unpickle(): owns every value.
class PickleDocument {
 public:
  PickleDocument() = default;
  PickleDocument(PickleDocument&&) = default;
  PickleDocument& operator=(PickleDocument&&) = default;
  PickleDocument(const PickleDocument&) = delete;
  PickleDocument& operator=(const PickleDocument&) = delete;

  const Value& root() const { return *root_; }
  // The protocol named by the PROTO opcode (0 if there was none).
  int protocol() const { return protocol_; }

 private:
  friend class Machine;
  // Values live in fixed-size blocks that never move (pointers stay valid
  // when the document is moved).
  Value* Allocate();

  static constexpr size_t kBlockSize = 128;
  std::vector<std::unique_ptr<Value[]>> blocks_;
  size_t last_block_used_ = kBlockSize;
  const Value* root_ = nullptr;
  int protocol_ = 0;
};

// Runs the pickle in `bytes` (exactly one pickle: bytes after STOP are an
// error). Errors are InvalidArgument, start with "pickle: " and give the byte
// offset of the offending opcode, e.g.
//   "pickle: global 'os.system' is not allowed (offset 2)".
absl::StatusOr<PickleDocument> Unpickle(absl::string_view bytes,
                                        PickleVocabulary vocabulary = PickleVocabulary::kCheckpointMetadata);

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_READER_H_
