#ifndef DCPLAN_TOOLS_DCPLAN_CONVERT_PICKLE_H_
#define DCPLAN_TOOLS_DCPLAN_CONVERT_PICKLE_H_

// The object graph of a torch.save pickle, for `dcplan convert`.
//
// ParsePickle runs the opcodes of a pickle (protocols 2-5) without executing
// anything: a global is only a name, REDUCE / NEWOBJ / BUILD only record what
// they would call. EmitPickle writes a graph back as a protocol-2 pickle in a
// canonical form: no memo opcodes (a shared value is written once per use),
// fixed encodings per value. parse(emit(g)) emits the same bytes again, which
// is what makes `convert` round trips bitwise; and because the emitted pickle
// uses no memo, the pickle of one value can be spliced into the pickle of an
// enclosing container (each spliced part refers to nothing outside itself).
//
// Torch storages (the persistent id ("storage", torch.<X>Storage, key,
// location, numel)) become kStorage nodes that name a caller-defined source;
// the emitter asks the caller for each storage's key in the new archive.

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dcplan::tools::convert {

enum class PyKind : uint8_t {
  kNone,
  kBool,
  kInt,     // fits int64
  kBigInt,  // `text`: little-endian two's complement bytes (LONG1/LONG4)
  kFloat,
  kStr,        // `text`: UTF-8
  kBytes,      // `text`: raw
  kByteArray,  // `text`: raw
  kTuple,
  kList,
  kDict,
  kSet,
  kFrozenSet,
  kGlobal,    // `module`, `name`
  kReduce,    // items = {callable, args}
  kNewObj,    // items = {class, args}
  kNewObjEx,  // items = {class, args, kwargs}
  kStorage,   // a torch storage: `module`.`name` class, `integer` numel, `source`
};

struct PyNode {
  PyKind kind = PyKind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;
  std::string module;
  std::string name;
  std::vector<const PyNode*> items;
  // Items added by APPEND(S) / ADDITEMS to an object that is not a list or
  // set (a list subclass built by REDUCE), then SETITEM(S) entries (a dict,
  // or a dict subclass such as OrderedDict), then BUILD states, in order.
  std::vector<const PyNode*> appended;
  std::vector<std::pair<const PyNode*, const PyNode*>> entries;
  std::vector<const PyNode*> builds;
  int64_t source = -1;  // kStorage: the caller's storage source

  // Bookkeeping: nesting depth, and the number of nodes the value has when
  // shared parts are counted once per use (bounds every walk over it).
  int64_t depth = 1;
  int64_t expanded = 1;
  bool contained = false;  // stored inside another value: no longer mutable
};

// "dict", "list", "str", "global torch.FloatStorage", ...
std::string DescribeNode(const PyNode& node);

// True for kGlobal `module`.`name`.
bool IsGlobal(const PyNode& node, absl::string_view module, absl::string_view name);

// Owns the nodes of one or more parsed pickles (pointers stay valid).
class PyGraph {
 public:
  PyNode* New(PyKind kind);
  PyNode* NewStr(std::string text);
  PyNode* NewInt(int64_t value);
  PyNode* NewGlobal(std::string module, std::string name);
  // A tuple, list or dict from complete values (marks them contained).
  absl::StatusOr<PyNode*> NewContainer(PyKind kind, std::vector<PyNode*> items);
  absl::StatusOr<PyNode*> NewReduce(PyNode* callable, PyNode* args);
  // Adds an entry to a dict (or a dict-like object).
  absl::Status AddEntry(PyNode* dict, PyNode* key, PyNode* value);
  // Records that `child` is now part of `parent`, which must still be
  // mutable (not contained itself): updates depth and expanded size and
  // enforces their limits.
  absl::Status Insert(PyNode* parent, const PyNode* child);

 private:
  std::deque<PyNode> nodes_;
};

// Nesting deeper than this is refused (the walks over a graph recurse).
inline constexpr int64_t kMaxPickleDepth = 1000;
// Values larger than this when shared parts are expanded are refused.
inline constexpr int64_t kMaxExpandedNodes = int64_t{1} << 26;
// EmitPickle refuses to produce more bytes than this.
inline constexpr int64_t kMaxEmittedBytes = int64_t{1} << 30;

// Called for a torch storage persistent id: `storage_class` is the global
// (torch.FloatStorage, torch.storage.UntypedStorage, ...), `key` the record
// key, `numel` the count the id records. Returns the source id to store in
// the kStorage node, or an error.
using StorageResolver =
    std::function<absl::StatusOr<int64_t>(const PyNode& storage_class, const std::string& key, int64_t numel)>;

// Parses one whole pickle (PROTO ... STOP; bytes after STOP are an error)
// into `graph`. Errors (InvalidArgument, "pickle offset N: ..."): unknown or
// unsupported opcodes (INST/OBJ/EXT, text-mode opcodes), stack or memo
// misuse, a value modified after it was stored in another (never done by
// pickles of acyclic data), nesting deeper than kMaxPickleDepth, more than
// kMaxExpandedNodes, persistent ids that are not torch storages.
absl::StatusOr<const PyNode*> ParsePickle(absl::string_view bytes, PyGraph& graph, const StorageResolver& resolver);

// Returns the key ("0", "1", ...) under which a storage's bytes are stored in
// the archive being written.
using StorageKeyer = std::function<absl::StatusOr<std::string>(const PyNode& storage)>;

// Appends the opcodes that push `value` (no PROTO, no STOP) to `out`.
absl::Status EmitValue(const PyNode& value, const StorageKeyer& keyer, std::string* out);

// PROTO 2, EmitValue, STOP.
absl::StatusOr<std::string> EmitPickle(const PyNode& value, const StorageKeyer& keyer);

}  // namespace dcplan::tools::convert

#endif  // DCPLAN_TOOLS_DCPLAN_CONVERT_PICKLE_H_
