#include "api/pickle/pickle_scan.h"

#include <vector>

#include <string>

#include "absl/status/status.h"
#include "api/pickle/weights_only.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::pickle {
namespace {

using ::testing::HasSubstr;

// A literal's bytes, NULs included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string Message(absl::string_view pickle) { return std::string(CheckPickleStructure(pickle).message()); }

TEST(CheckPickleStructureTest, AcceptsWhatPythonWrites) {
  // pickle.dumps({"a": [1, (2, "x")]}, protocol=2)
  const std::string dict = std::string("\x80\x02}q\x00X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01K\x02X\x01\x00\x00\x00xq\x03\x86q\x04" "es.", 35);
  EXPECT_TRUE(CheckPickleStructure(dict).ok()) << CheckPickleStructure(dict);
  // Memo references to a stored value.
  EXPECT_TRUE(CheckPickleStructure(std::string("\x80\x04]\x94h\x00h\x00\x86.", 10)).ok());
}

TEST(CheckPickleStructureTest, RefusesALengthPastTheEnd) {
  // BINUNICODE of 4 GiB - 1 in a 10-byte pickle.
  const std::string huge = std::string("\x80\x02X\xff\xff\xff\xff" "ab.", 10);
  EXPECT_TRUE(absl::IsInvalidArgument(CheckPickleStructure(huge)));
  EXPECT_THAT(Message(huge), HasSubstr("string of 4294967295 bytes runs past the end of the 10-byte pickle"));
  EXPECT_THAT(Message(std::string("\x80\x04\x8e\x00\x00\x00\x00\x01\x00\x00\x00.", 12)), HasSubstr("runs past"));
}

TEST(CheckPickleStructureTest, RefusesDeepNestingWithoutRecursion) {
  std::string deep = "\x80\x02";
  for (int i = 0; i < 100000; ++i) deep += "]";
  for (int i = 0; i < 100000; ++i) deep += "a";
  deep += ".";
  EXPECT_THAT(Message(deep), HasSubstr("nested deeper than 512 levels"));
}

TEST(CheckPickleStructureTest, RefusesBrokenStructure) {
  EXPECT_THAT(Message("\x80\x02N"), HasSubstr("no STOP"));
  EXPECT_THAT(Message("\x80\x02h\x05."), HasSubstr("memo entry 5 was never stored"));
  EXPECT_TRUE(IsWeightsOnlyGlobal("__builtin__.set"));
  EXPECT_TRUE(IsWeightsOnlyGlobal("torch.jit._pickle.build_intlist"));
  EXPECT_FALSE(IsWeightsOnlyGlobal("__builtin__.eval"));
  EXPECT_THAT(Message("\x80\x02" "a."), HasSubstr("stack underflow"));
  EXPECT_THAT(Message("\x80\x02t."), HasSubstr("no MARK"));
  EXPECT_THAT(Message("\x80\x02\xff."), HasSubstr("unknown opcode 0xff"));
  EXPECT_THAT(Message("\x80\x02" "cos\nsystem"), HasSubstr("no newline"));
}

TEST(CheckPickleStructureTest, ListsTheGlobalsNamed) {
  std::vector<std::string> globals;
  ASSERT_TRUE(CheckPickleStructure(Bytes("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\nq\x00."), &globals).ok());
  EXPECT_EQ(globals, std::vector<std::string>{"torch._utils._rebuild_tensor_v2"});
  // STACK_GLOBAL of two strings (protocol 4), and of something else.
  globals.clear();
  ASSERT_TRUE(CheckPickleStructure(std::string("\x80\x04\x8c\x02os\x8c\x06system\x93.", 16), &globals).ok());
  EXPECT_EQ(globals, std::vector<std::string>{"os.system"});
  EXPECT_THAT(Message(std::string("\x80\x04K\x01K\x02\x93.", 8)), HasSubstr("not strings"));
}

TEST(WeightsOnlyTest, AcceptsWhatTorchLoadWithWeightsOnlyAccepts) {
  for (const char* name : {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.FloatStorage",
                           "torch.float32", "torch.bfloat16", "torch.Size", "torch.device", "collections.OrderedDict",
                           "_codecs.encode", "torch.storage.UntypedStorage", "torch._tensor._rebuild_from_type_v2"}) {
    EXPECT_TRUE(IsWeightsOnlyGlobal(name)) << name;
  }
  for (const char* name : {"os.system", "subprocess.Popen", "builtins.eval", "builtins.exec", "torch.load",
                           "torch.autograd.Tensor", "torch._utils._rebuild_tensor_v2.x", "posix.system",
                           "builtins.getattr", "torch.storage._load_from_bytes"}) {
    EXPECT_FALSE(IsWeightsOnlyGlobal(name)) << name;
  }
}

TEST(WeightsOnlyTest, NamesTheGlobalOfAnExecutablePickle) {
  // pickle.dumps of a class whose __reduce__ returns (os.system, ("id",)).
  const std::string payload = Bytes("\x80\x02" "cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
  const absl::Status status = CheckWeightsOnlyPickle(payload);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(std::string(status.message()), HasSubstr("names global 'posix.system'"));
  EXPECT_TRUE(CheckWeightsOnlyPickle(Bytes("\x80\x02}q\x00.")).ok());
}

}  // namespace
}  // namespace dcplan::pickle
