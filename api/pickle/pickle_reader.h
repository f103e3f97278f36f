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
//   - at most one value is created per input byte (None, True, False, ()
//     and the ints -5 ... 256 are shared), and a container holds at most one
//     child per input byte, so memory is linear in the input size: at most
//     kMaxDocumentBytesPerInputByte per byte (a 48-byte Value, plus 8 bytes
//     of child pointers stored with up to 4x slack; a real `.metadata` takes
//     about 10); strings are views of the input, not copies; a memo index is
//     a hash-map entry unless it is the next one in sequence;
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
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/node_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::pickle {

inline constexpr int kMaxNestingDepth = 64;
inline constexpr int kMaxMarkDepth = 64;
// See the robustness contract; real `.metadata` files take about 10.
// Larger inputs are refused (children are counted in 32 bits).
inline constexpr size_t kMaxInputBytes = (size_t{1} << 31) - 1;
inline constexpr int kMaxDocumentBytesPerInputByte = 48 + 4 * 8;

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
  kRebuildTensorV2,    // torch._utils._rebuild_tensor_v2(...) (tensor records only)
  kRebuildTensorV3,    // torch._utils._rebuild_tensor_v3(...) (tensor records only)
  // A storage's persistent id (tensor records only): an object whose one
  // item is the id BINPERSID popped.
  kPersistentId,
  // Plain values.
  kDType,   // torch.<dtype>: Value::integer holds the dcplan::DType
  kLayout,  // torch.<layout>: Value::integer holds the dcplan::Layout
  kUntypedStorage,  // torch.storage.UntypedStorage (tensor records only)
  kTypedStorage,    // torch.<Name>Storage (tensor records only): Value::integer holds its dcplan::DType
};

// Which pickles Unpickle() reads: which globals it allows, and whether
// persistent ids are allowed.
enum class PickleVocabulary : uint8_t {
  kCheckpointMetadata,  // DCP's .metadata (spec/format.md §5); no persistent ids
  kTensorRecord,        // the data.pkl of a _rebuild_tensor_v2 / _v3 tensor record
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

struct Value;

// A key/value pair of a dict.
struct DictEntry {
  const Value* first;
  const Value* second;
};

// The children of a container or object: a read-only view of storage owned
// by the PickleDocument (16 bytes, so that a Value stays small).
template <typename T>
class Children {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T& operator[](size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  std::reverse_iterator<const T*> rbegin() const { return std::reverse_iterator<const T*>(end()); }
  std::reverse_iterator<const T*> rend() const { return std::reverse_iterator<const T*>(begin()); }

 private:
  friend class PickleDocument;
  T* data_;
  uint32_t size_;
  uint32_t capacity_;
};

// One node of the unpickled graph. Values are owned by their PickleDocument
// and refer to each other by pointer; shared references (memo) are shared
// pointers into the same node. A Value is 48 bytes (a DCP chunk takes about
// 20 of them), so fields that no kind uses together share storage: read only
// the ones of the value's kind.
struct Value {
  Value() : integer(0), items() {}

  ValueKind kind = ValueKind::kNone;
  GlobalKind global = GlobalKind::kMetadata;  // kGlobal, kObject
  bool boolean = false;                       // kBool
  // Bookkeeping of the VM (see the robustness contract above).
  bool contained = false;  // stored inside another value
  int32_t depth = 1;       // 1 for scalars, 1 + deepest child otherwise
  union {
    int64_t integer;     // kInt; kGlobal kDType/kLayout: the enum value
    double real;         // kFloat
    const Value* state;  // kObject: BUILD's state, if any (nullptr if none)
  };
  // kString (UTF-8), kBytes (raw): a view of the unpickled input, which
  // must outlive the document; kGlobal/kObject: the global's display name
  // ("torch.Size", "TensorStorageMetadata", "torch.float32").
  absl::string_view text;
  union {
    // kTuple, kList: the items; kObject: the arguments of NEWOBJ / REDUCE
    // (for getattr(enum, "NAME") the member's value, so both enum forms look
    // alike).
    Children<const Value*> items;
    // kDict: key/value pairs in SETITEM order. Repeated keys are kept as
    // they are: consumers apply Python's dict semantics (first position, last
    // value) with their own notion of key equality.
    Children<DictEntry> entries;
  };
};

// "None", "bool", "int", "str", "tuple", "torch.Size", "MetadataIndex", ...
std::string DescribeValue(const Value& value);

// The result of Unpickle(): owns every value (not the input strings refer
// to).
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
  Value* Allocate();
  // Appends to a container's children, moving them to twice the room when
  // full (the old room is not reused: at most as much again is wasted).
  void Append(Children<const Value*>& children, const Value* child);
  void Append(Children<DictEntry>& children, DictEntry entry);
  // The display name of a global, stored once per distinct name.
  absl::string_view Intern(std::string name);

  template <typename T>
  T* Room(size_t count);
  template <typename T>
  void AppendTo(Children<T>& children, T child);
  template <typename T>
  void ReserveIn(Children<T>& children, size_t more);
  // Room for `more` children beyond the current ones.
  void Reserve(Children<const Value*>& children, size_t more);
  void Reserve(Children<DictEntry>& children, size_t more);

  // Values and children live in blocks that never move (pointers stay
  // valid when the document is moved). Blocks grow from 4 KiB (all a tensor
  // record's data.pkl needs: one is read per item) to 1 MiB. (Transparent
  // huge pages for large blocks were measured slower: the kernel zeroes
  // each 2 MiB page in one go.)
  static constexpr size_t kFirstBlockBytes = size_t{4} << 10;
  static constexpr size_t kBlockBytes = size_t{1} << 20;
  struct FreeBlock {
    void operator()(char* block) const;
  };
  std::vector<std::unique_ptr<char, FreeBlock>> blocks_;
  size_t block_size_ = 0;
  size_t block_used_ = 0;
  absl::node_hash_set<std::string> names_;
  const Value* root_ = nullptr;
  int protocol_ = 0;
};

// Runs the pickle in `bytes` (exactly one pickle: bytes after STOP are an
// error; at most kMaxInputBytes). The document's strings are views of
// `bytes`, which must outlive it. Errors are InvalidArgument, start with "pickle: " and give the byte
// offset of the offending opcode, e.g.
//   "pickle: global 'os.system' is not allowed (offset 2)".
absl::StatusOr<PickleDocument> Unpickle(absl::string_view bytes,
                                        PickleVocabulary vocabulary = PickleVocabulary::kCheckpointMetadata);

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_READER_H_
