#include "tools/dcplan/json_reader.h"

#include <limits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/internal/checked_math.h"

namespace dcplan::tools {
namespace {

// A SAX consumer that accepts every event and remembers the first syntax
// error: the DOM parser without exceptions reports only "discarded", never
// where the input went wrong.
class SyntaxErrorRecorder final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Enter(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Leave(); }
  bool start_array(std::size_t) override { return Enter(); }
  bool end_array() override { return Leave(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& error) override {
    failed_ = true;
    position_ = position;
    message_ = error.what();
    return false;
  }

  bool failed() const { return failed_; }
  bool too_deep() const { return too_deep_; }
  size_t position() const { return position_; }
  // nlohmann's message without its "[json.exception.KIND.ID] " and "parse
  // error at line L, column C: " prefixes (the byte offset is reported
  // instead).
  std::string reason() const {
    absl::string_view reason = message_;
    if (absl::ConsumePrefix(&reason, "[json.exception.")) {
      const size_t end = reason.find("] ");
      reason.remove_prefix(end == absl::string_view::npos ? reason.size() : end + 2);
    }
    if (absl::StartsWith(reason, "parse error")) {
      const size_t colon = reason.find(": ");
      if (colon != absl::string_view::npos) reason.remove_prefix(colon + 2);
    }
    return std::string(reason.empty() ? absl::string_view(message_) : reason);
  }

 private:
  // Nesting is limited before the document is built: nlohmann's parser is
  // iterative, but copying a parsed document recurses over its depth.
  bool Enter() {
    if (++depth_ <= kMaxJsonNestingDepth) return true;
    too_deep_ = true;
    return false;
  }
  bool Leave() {
    --depth_;
    return true;
  }

  bool failed_ = false;
  bool too_deep_ = false;
  int depth_ = 0;
  size_t position_ = 0;
  std::string message_;
};

absl::StatusOr<int64_t> ByteCount(DType dtype, const Shape& shape) {
  absl::StatusOr<int64_t> volume = ShapeVolume(shape);
  if (!volume.ok()) return volume.status();
  std::optional<int64_t> bytes = internal::CheckedMul(*volume, ElementSize(dtype));
  if (!bytes) return absl::OutOfRangeError("overflow");
  return *bytes;
}

}  // namespace

void JsonPath::AppendTo(std::string* out) const {
  if (parent_ != nullptr) parent_->AppendTo(out);
  switch (kind_) {
    case Kind::kRoot:
      return;
    case Kind::kField:
      if (!out->empty()) out->push_back('.');
      out->append(name_.data(), name_.size());
      return;
    case Kind::kIndex:
      absl::StrAppend(out, "[", index_, "]");
      return;
    case Kind::kKey:
      absl::StrAppend(out, "[",
                      Json(std::string(name_)).dump(-1, ' ', false, Json::error_handler_t::replace), "]");
      return;
  }
}

std::string JsonPath::ToString() const {
  std::string out;
  AppendTo(&out);
  return out.empty() ? "(top level)" : out;
}

absl::Status UsageError(const JsonPath& path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path.ToString(), ": ", message));
}

absl::StatusOr<Json> ParseJsonText(absl::string_view text) {
  const std::string input(text);
  SyntaxErrorRecorder recorder;
  Json::sax_parse(input.begin(), input.end(), &recorder);
  if (recorder.too_deep()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: arrays and objects nested deeper than ", kMaxJsonNestingDepth, " levels"));
  }
  if (recorder.failed()) {
    // nlohmann counts the bytes read, including the offending one.
    const size_t offset = recorder.position() > 0 ? recorder.position() - 1 : 0;
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at byte ", offset, ": ", recorder.reason()));
  }
  Json parsed = Json::parse(input.begin(), input.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError("invalid JSON");
  return parsed;
}

std::string JsonTypeName(const Json& value) {
  if (value.is_number_float()) return "floating-point number";
  if (value.is_number_integer()) return "integer";
  return value.type_name();
}

absl::Status ExpectObject(const Json& value, const JsonPath& path) {
  if (value.is_object()) return absl::OkStatus();
  return UsageError(path, absl::StrCat("expected an object, got ", JsonTypeName(value)));
}

absl::Status ExpectArray(const Json& value, const JsonPath& path) {
  if (value.is_array()) return absl::OkStatus();
  return UsageError(path, absl::StrCat("expected an array, got ", JsonTypeName(value)));
}

namespace {
thread_local UnknownFieldWarnings* active_unknown_field_warnings = nullptr;
}  // namespace

UnknownFieldWarnings::UnknownFieldWarnings() : previous_(active_unknown_field_warnings) {
  active_unknown_field_warnings = this;
}

UnknownFieldWarnings::~UnknownFieldWarnings() { active_unknown_field_warnings = previous_; }

void NoteUnknownFields(const Json& object, const JsonPath& path, std::initializer_list<absl::string_view> allowed) {
  UnknownFieldWarnings* sink = active_unknown_field_warnings;
  if (sink == nullptr) return;
  for (const auto& [name, value] : object.items()) {
    bool known = false;
    for (absl::string_view a : allowed) known = known || a == name;
    // Escaped so that a key holding a newline cannot split the warning line.
    if (!known) {
      sink->warnings_.push_back(absl::StrCat("ignoring unknown field ", absl::CEscape(path.Field(name).ToString())));
    }
  }
}

const Json* FindField(const Json& object, absl::string_view name) {
  const auto it = object.find(std::string(name));
  return it == object.end() ? nullptr : &*it;
}

absl::StatusOr<const Json*> RequireField(const Json& object, absl::string_view name, const JsonPath& path) {
  const Json* value = FindField(object, name);
  if (value == nullptr) return UsageError(path.Field(name), "missing field");
  return value;
}

absl::StatusOr<int64_t> ReadInt64(const Json& value, const JsonPath& path) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return UsageError(path, absl::StrCat("integer ", u, " does not fit in int64"));
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    return UsageError(path, absl::StrCat("expected an integer that fits in int64, got ",
                                         value.dump(-1, ' ', false, Json::error_handler_t::replace)));
  }
  return UsageError(path, absl::StrCat("expected an integer, got ", JsonTypeName(value)));
}

absl::StatusOr<int64_t> ReadNonNegativeInt64(const Json& value, const JsonPath& path) {
  absl::StatusOr<int64_t> n = ReadInt64(value, path);
  if (n.ok() && *n < 0) return UsageError(path, absl::StrCat("must not be negative, got ", *n));
  return n;
}

absl::StatusOr<bool> ReadBool(const Json& value, const JsonPath& path) {
  if (!value.is_boolean()) return UsageError(path, absl::StrCat("expected true or false, got ", JsonTypeName(value)));
  return value.get<bool>();
}

absl::StatusOr<std::string> ReadString(const Json& value, const JsonPath& path) {
  if (!value.is_string()) return UsageError(path, absl::StrCat("expected a string, got ", JsonTypeName(value)));
  return value.get<std::string>();
}

absl::StatusOr<Shape> ReadShape(const Json& value, const JsonPath& path, bool non_negative) {
  if (absl::Status s = ExpectArray(value, path); !s.ok()) return s;
  Shape shape;
  shape.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const JsonPath element = path.Index(i);
    absl::StatusOr<int64_t> n = non_negative ? ReadNonNegativeInt64(value[i], element) : ReadInt64(value[i], element);
    if (!n.ok()) return n.status();
    shape.push_back(*n);
  }
  return shape;
}

absl::StatusOr<DType> ReadDType(const Json& value, const JsonPath& path) {
  absl::StatusOr<std::string> name = ReadString(value, path);
  if (!name.ok()) return name.status();
  absl::StatusOr<DType> dtype = ParseDType(*name);
  if (!dtype.ok()) {
    return UsageError(path, absl::StrCat("unknown dtype ", value.dump(-1, ' ', false, Json::error_handler_t::replace)));
  }
  return dtype;
}

absl::Status CheckChunkShape(const Shape& tensor_size, const Shape& offsets, const JsonPath& offsets_path,
                             const Shape& sizes, const JsonPath& sizes_path) {
  if (offsets.size() != tensor_size.size()) {
    return UsageError(offsets_path, absl::StrCat("has ", offsets.size(), " dimensions, the tensor's size has ",
                                                 tensor_size.size()));
  }
  if (sizes.size() != tensor_size.size()) {
    return UsageError(sizes_path, absl::StrCat("has ", sizes.size(), " dimensions, the tensor's size has ",
                                               tensor_size.size()));
  }
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (!internal::CheckedAdd(offsets[d], sizes[d])) {
      const JsonPath element = sizes_path.Index(d);
      return UsageError(element, absl::StrCat("offset ", offsets[d], " + length ", sizes[d], " overflows int64"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckByteSize(DType dtype, const Shape& shape, const JsonPath& path) {
  if (ByteCount(dtype, shape).ok()) return absl::OkStatus();
  return UsageError(path, absl::StrCat(ShapeToString(shape), " elements of ", DTypeName(dtype),
                                       " take more than INT64_MAX bytes"));
}

}  // namespace dcplan::tools
