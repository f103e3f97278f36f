#include "tools/dcplan/convert_pickle.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::tools::convert {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<int64_t> NoStorage(const PyNode&, const std::string&, int64_t) {
  return absl::InvalidArgumentError("no storages here");
}
absl::StatusOr<std::string> NoKey(const PyNode&) { return absl::InternalError("no storages here"); }

absl::StatusOr<std::string> Canonical(const std::string& pickle) {
  PyGraph graph;
  absl::StatusOr<const PyNode*> root = ParsePickle(pickle, graph, NoStorage);
  if (!root.ok()) return root.status();
  return EmitPickle(**root, NoKey);
}

std::string Pickle(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& part : parts) out += part;
  return out;
}

// BINUNICODE of an ASCII string.
std::string Str(const std::string& s) { return Pickle({"X", std::string(1, static_cast<char>(s.size())), std::string(3, '\0'), s}); }

TEST(ConvertPickleTest, MemoReferencesBecomeCopiesAndTheFormIsStable) {
  // Python's pickle of ['a', 'a']: EMPTY_LIST BINPUT 0 MARK 'a' BINPUT 1 BINGET 1 APPENDS STOP.
  const std::string python = Pickle({"\x80\x02]q", std::string(1, '\0'), "(", Str("a"), "q\x01h\x01" "e."});
  absl::StatusOr<std::string> canonical = Canonical(python);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  EXPECT_EQ(*canonical, Pickle({"\x80\x02](", Str("a"), Str("a"), "e."}));
  absl::StatusOr<std::string> again = Canonical(*canonical);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *canonical);
}

TEST(ConvertPickleTest, IntsUseTheSmallestEncoding) {
  // LONG1 of 300 (2 bytes) becomes BININT2; 2**31 stays LONG1 with 5 bytes.
  absl::StatusOr<std::string> small = Canonical(Pickle({"\x80\x02\x8a\x02", "\x2c\x01", "."}));
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(*small, Pickle({"\x80\x02M\x2c\x01."}));
  absl::StatusOr<std::string> large =
      Canonical(Pickle({"\x80\x02\x8a\x05", std::string(3, '\0'), "\x80", std::string(1, '\0'), "."}));
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_EQ(*large, Pickle({"\x80\x02\x8a\x05", std::string(3, '\0'), "\x80", std::string(1, '\0'), "."}));
}

TEST(ConvertPickleTest, ByteArraysKeepTheEightByteLength) {
  // Protocol 5's BYTEARRAY8 (0x96) of b"ab": the length is always 8 bytes.
  const std::string bytearray = Pickle({"\x80\x05\x96\x02", std::string(7, '\0'), "ab."});
  absl::StatusOr<std::string> canonical = Canonical(bytearray);
  ASSERT_TRUE(canonical.ok()) << canonical.status();
  EXPECT_EQ(*canonical, Pickle({"\x80\x02\x96\x02", std::string(7, '\0'), "ab."}));
  absl::StatusOr<std::string> again = Canonical(*canonical);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *canonical);
}

TEST(ConvertPickleTest, MalformedPicklesAreErrors) {
  auto error = [](const std::string& pickle) {
    absl::StatusOr<std::string> result = Canonical(pickle);
    return result.ok() ? std::string("ok") : std::string(result.status().message());
  };
  EXPECT_THAT(error("\x80\x02N"), HasSubstr("ends without STOP"));
  EXPECT_THAT(error("\x80\x02N.N"), HasSubstr("bytes after STOP"));
  EXPECT_THAT(error("\x80\x02h\x05."), HasSubstr("memo 5 is not set"));
  EXPECT_THAT(error("\x80\x02" "a."), HasSubstr("stack underflow"));
  EXPECT_THAT(error("\x80\x02(i__main__\nX\n."), HasSubstr("unsupported opcode 0x69"));
  // A list appended to itself.
  EXPECT_THAT(error(Pickle({"\x80\x02]q", std::string(1, '\0'), "h", std::string(1, '\0'), "a."})),
              HasSubstr("cannot contain itself"));
  // STACK_GLOBAL of module "a\nb": EmitPickle's GLOBAL line could not hold it.
  EXPECT_THAT(error("\x80\x04\x8c\x03" "a\nb" "\x8c\x01" "c\x93."), HasSubstr("name contains a newline"));
  EXPECT_THAT(error("\x80\x04\x8c\x01" "a" "\x8c\x02" "b\n\x93."), HasSubstr("name contains a newline"));
  // A persistent id that is not a torch storage.
  EXPECT_THAT(error(Pickle({"\x80\x02", Str("x"), "Q."})), HasSubstr("is not a torch storage"));
  // Nesting beyond the limit: 1100 lists, each appended to the one below.
  std::string deep = "\x80\x02";
  for (int i = 0; i < 1100; ++i) deep += "]";
  for (int i = 0; i < 1099; ++i) deep += "a";
  deep += ".";
  EXPECT_THAT(error(deep), HasSubstr("nest deeper than 1000"));
  // A list modified after it was stored in another one.
  EXPECT_THAT(error(Pickle({"\x80\x02]q", std::string(1, '\0'), "\x85h", std::string(1, '\0'), "Na0."})),
              HasSubstr("modified after it was stored"));
}

}  // namespace
}  // namespace dcplan::tools::convert
