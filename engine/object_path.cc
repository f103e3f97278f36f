#include "engine/object_path.h"

#include "absl/strings/str_cat.h"

namespace dcplan {
namespace {

std::string ElementKey(const PathElement& e) {
  if (const auto* s = std::get_if<std::string>(&e)) return *s;
  return absl::StrCat(std::get<int64_t>(e));
}

// Python's repr of a str: single quotes unless the string holds a single quote
// and no double quote; backslashes and control characters escaped.
std::string PyRepr(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string FlatKey(const ObjectPath& path) {
  std::string key;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i > 0) key += '.';
    key += ElementKey(path[i]);
  }
  return key;
}

std::string ObjectPathToString(const ObjectPath& path) {
  std::string out = "(";
  for (size_t i = 0; i < path.size(); ++i) {
    if (i > 0) out += ", ";
    if (const auto* s = std::get_if<std::string>(&path[i])) {
      out += PyRepr(*s);
    } else {
      absl::StrAppend(&out, std::get<int64_t>(path[i]));
    }
  }
  if (path.size() == 1) out += ",";
  out += ")";
  return out;
}

}  // namespace dcplan
