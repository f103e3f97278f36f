#ifndef DCPLAN_TOOLS_DCPLAN_JSON_READER_H_
#define DCPLAN_TOOLS_DCPLAN_JSON_READER_H_

// Typed, exception-free access to parsed JSON with usage errors that name the
// JSON path of the offending value (`ranks[3].items[17].lengths[1]`,
// `metadata["w"].chunks[2].sizes[0]`), as spec/plan-json.md requires.
//
// Every reader checks the value's type before touching it, so no nlohmann
// exception can escape. Errors are absl::InvalidArgumentError whose message is
// one line: "<path>: <what is wrong>".

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/status_macros.h"
#include "engine/box.h"
#include "engine/dtype.h"

// Early returns for Status-returning parsers: the API layer's macros.
#define DCPLAN_TOOL_RETURN_IF_ERROR(expr) DCPLAN_RETURN_IF_ERROR(expr)
#define DCPLAN_TOOL_ASSIGN_OR_RETURN(lhs, expr) DCPLAN_ASSIGN_OR_RETURN(lhs, expr)

namespace dcplan::tools {

using Json = nlohmann::ordered_json;

// The deepest nesting of arrays and objects ParseJsonText accepts (scenarios
// need fewer than 10 levels).
inline constexpr int kMaxJsonNestingDepth = 256;

// A path into the input document, built on the stack as the parser descends
// and rendered only when an error is reported (parsing a scenario with a
// million items must not build a million path strings).
//
// A child keeps a pointer to its parent: the parent must outlive it. Bind
// every level that is used across statements to a named local.
class JsonPath {
 public:
  static JsonPath Root() { return JsonPath(nullptr, Kind::kRoot, "", 0); }

  // `.name` (just `name` at the top level).
  JsonPath Field(absl::string_view name) const { return JsonPath(this, Kind::kField, name, 0); }
  // `[index]`.
  JsonPath Index(size_t index) const { return JsonPath(this, Kind::kIndex, "", index); }
  // `["key"]` with the key JSON-escaped (for maps keyed by fqn).
  JsonPath Key(absl::string_view key) const { return JsonPath(this, Kind::kKey, key, 0); }

  // "ranks[3].items[17].lengths[1]"; "(top level)" for the root.
  std::string ToString() const;

 private:
  enum class Kind { kRoot, kField, kIndex, kKey };
  JsonPath(const JsonPath* parent, Kind kind, absl::string_view name, size_t index)
      : parent_(parent), kind_(kind), name_(name), index_(index) {}
  void AppendTo(std::string* out) const;

  const JsonPath* parent_;
  Kind kind_;
  absl::string_view name_;
  size_t index_;
};

// InvalidArgumentError("<path>: <message>").
absl::Status UsageError(const JsonPath& path, absl::string_view message);

// Parses `text` strictly (RFC 8259, no comments, no trailing garbage). A
// syntax error is InvalidArgumentError("invalid JSON at byte N: ...") with N
// the 0-based offset of the byte where the parser stopped; nesting deeper
// than kMaxJsonNestingDepth is "invalid JSON: ... nested deeper than ...".
absl::StatusOr<Json> ParseJsonText(absl::string_view text);

// "object", "array", "string", "integer", "floating-point number", ...
std::string JsonTypeName(const Json& value);

absl::Status ExpectObject(const Json& value, const JsonPath& path);
absl::Status ExpectArray(const Json& value, const JsonPath& path);

// Fields outside plan-json.md are not usage errors (the spec lists what is),
// but silently ignoring a misspelt field would hide mistakes: they are
// reported as warnings on stderr. While an UnknownFieldWarnings is alive on
// this thread, NoteUnknownFields records "ignoring unknown field <path>" for
// each field of `object` not in `allowed`; without one it does nothing.
class UnknownFieldWarnings {
 public:
  UnknownFieldWarnings();
  ~UnknownFieldWarnings();
  UnknownFieldWarnings(const UnknownFieldWarnings&) = delete;
  UnknownFieldWarnings& operator=(const UnknownFieldWarnings&) = delete;
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  friend void NoteUnknownFields(const Json&, const JsonPath&, std::initializer_list<absl::string_view>);
  std::vector<std::string> warnings_;
  UnknownFieldWarnings* previous_;
};

void NoteUnknownFields(const Json& object, const JsonPath& path, std::initializer_list<absl::string_view> allowed);

// The field's value, or nullptr if absent. `object` must be an object.
const Json* FindField(const Json& object, absl::string_view name);

// The field's value, or a "missing field" usage error at `path`.`name`.
absl::StatusOr<const Json*> RequireField(const Json& object, absl::string_view name, const JsonPath& path);

// A JSON integer that fits in int64 (floats and integers above INT64_MAX are
// errors).
absl::StatusOr<int64_t> ReadInt64(const Json& value, const JsonPath& path);
// ReadInt64, and >= 0.
absl::StatusOr<int64_t> ReadNonNegativeInt64(const Json& value, const JsonPath& path);
absl::StatusOr<bool> ReadBool(const Json& value, const JsonPath& path);
absl::StatusOr<std::string> ReadString(const Json& value, const JsonPath& path);
// An array of int64; with `non_negative` every element must be >= 0.
absl::StatusOr<Shape> ReadShape(const Json& value, const JsonPath& path, bool non_negative);
// A PyTorch dtype name (see engine/dtype.h ParseDType).
absl::StatusOr<DType> ReadDType(const Json& value, const JsonPath& path);

// Checks a box against its tensor: `offsets` (at `offsets_path`) and
// `sizes` (at `sizes_path`) have the tensor's rank, and every offset + size
// fits in int64. Sizes are already known to be non-negative.
absl::Status CheckChunkShape(const Shape& tensor_size, const Shape& offsets, const JsonPath& offsets_path,
                             const Shape& sizes, const JsonPath& sizes_path);

// Checks that element_size(dtype) × product(shape) fits in int64 (every byte
// count the planners compute is then representable).
absl::Status CheckByteSize(DType dtype, const Shape& shape, const JsonPath& path);

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_JSON_READER_H_
