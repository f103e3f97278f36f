#ifndef DCPLAN_API_CHECKPOINT_TEST_UTIL_H_
#define DCPLAN_API_CHECKPOINT_TEST_UTIL_H_

// Helpers of the filesystem and checkpoint tests: temporary directories,
// files, bitwise tensor comparison, SHA-256 and Python reprs (for the
// fixtures' expected.txt lines).

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "testing/test_files.h"

namespace dcplan::testing_util {

using ::dcplan::test_files::NewTempPath;
using ::dcplan::test_files::ReadFile;
using ::dcplan::test_files::RunfilePath;
using ::dcplan::test_files::VenvPython;
using ::dcplan::test_files::WriteFile;

inline bool PathExistsForTest(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

// The names in a directory (dot files included), sorted.
inline std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// Copies every regular file of `from` into `to` (created).
inline bool CopyDir(const std::string& from, const std::string& to) {
  if (mkdir(to.c_str(), 0755) != 0) return false;
  for (const std::string& name : ListDir(from)) {
    std::optional<std::string> bytes = ReadFile(from + "/" + name);
    if (!bytes || !WriteFile(to + "/" + name, *bytes)) return false;
  }
  return true;
}

// The raw bytes of a tensor's elements in row-major order.
inline std::string TensorBytes(const at::Tensor& tensor) {
  const at::Tensor dense = tensor.contiguous();
  return std::string(static_cast<const char*>(dense.data_ptr()), dense.numel() * dense.element_size());
}

// Same dtype, same sizes, same bytes (NaN payloads and -0.0 included).
inline bool BitwiseEqual(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && TensorBytes(a) == TensorBytes(b);
}

// Every byte of the tensor set from a pattern: float tensors get arbitrary
// bit patterns (NaN payloads, -0.0, denormals), bools 0 or 1.
inline at::Tensor Patterned(at::ScalarType type, at::IntArrayRef shape, int seed) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  auto* bytes = static_cast<uint8_t*>(t.data_ptr());
  const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t b = static_cast<uint8_t>(i * 131 + seed * 17 + (i >> 3));
    bytes[i] = type == at::kBool ? (b >> 3) & 1 : b;
  }
  return t;
}

// --- SHA-256 (FIPS 180-4) ---------------------------------------------------------

inline std::string Sha256Hex(absl::string_view data) {
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };

  std::string message(data);
  const uint64_t bit_length = uint64_t{data.size()} * 8;
  message.push_back(static_cast<char>(0x80));
  while (message.size() % 64 != 56) message.push_back('\0');
  for (int i = 7; i >= 0; --i) message.push_back(static_cast<char>((bit_length >> (8 * i)) & 0xff));

  for (size_t block = 0; block < message.size(); block += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) {
      const auto* p = reinterpret_cast<const unsigned char*>(message.data() + block + 4 * t);
      w[t] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    }
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  std::string hex;
  for (uint32_t word : h) absl::StrAppend(&hex, absl::Hex(word, absl::kZeroPad8));
  return hex;
}

// --- Python reprs -------------------------------------------------------------------

// repr() of a float: the shortest text that reads back as the same double,
// with ".0" for integral values.
inline std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, v);
    if (std::strtod(buffer, nullptr) == v) break;
  }
  std::string text = buffer;
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

// repr() of a str or bytes body (Python's quoting: single quotes unless the
// text holds a single quote and no double quote).
inline std::string PythonQuoted(absl::string_view text, bool is_bytes) {
  const bool use_double = text.find('\'') != absl::string_view::npos && text.find('"') == absl::string_view::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out = is_bytes ? "b" : "";
  out.push_back(quote);
  for (unsigned char c : text) {
    if (c == quote || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || (is_bytes && c >= 0x80)) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back(quote);
  return out;
}

// The Python type name and repr of the simple values the fixtures hold, or
// nullopt for anything else.
inline std::optional<std::pair<std::string, std::string>> PythonTypeAndRepr(const c10::IValue& value) {
  if (value.isInt()) return std::make_pair(std::string("int"), absl::StrCat(value.toInt()));
  if (value.isBool()) return std::make_pair(std::string("bool"), std::string(value.toBool() ? "True" : "False"));
  if (value.isDouble()) return std::make_pair(std::string("float"), PythonFloatRepr(value.toDouble()));
  if (value.isNone()) return std::make_pair(std::string("NoneType"), std::string("None"));
  if (value.isString()) return std::make_pair(std::string("str"), PythonQuoted(value.toStringRef(), false));
  auto join = [](const std::vector<c10::IValue>& items, bool tuple) -> std::optional<std::string> {
    std::vector<std::string> parts;
    for (const c10::IValue& item : items) {
      auto inner = PythonTypeAndRepr(item);
      if (!inner) return std::nullopt;
      parts.push_back(inner->second);
    }
    if (!tuple) return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    if (parts.size() == 1) return absl::StrCat("(", parts[0], ",)");
    return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
  };
  if (value.isTuple()) {
    auto text = join(value.toTupleRef().elements().vec(), true);
    if (text) return std::make_pair(std::string("tuple"), *text);
    return std::nullopt;
  }
  if (value.isList()) {
    auto text = join(value.toListRef().vec(), false);
    if (text) return std::make_pair(std::string("list"), *text);
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace dcplan::testing_util

#endif  // DCPLAN_API_CHECKPOINT_TEST_UTIL_H_
