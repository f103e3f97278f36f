// The pickle VM and the opcode writer: opcode semantics, allowlist, limits and
// hostile inputs. Expected byte sequences are CPython's (pickle.dumps(v, 2)).
#include "api/pickle/pickle_reader.h"

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_writer.h"
#include "engine/dtype.h"
#include "engine/metadata.h"
#include "gtest/gtest.h"

namespace dcplan::pickle {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// SHORT_BINUNICODE `s` (protocol 4).
std::string Str(absl::string_view s) { return Bytes({0x8c, static_cast<int>(s.size())}) + std::string(s); }

const std::string kProto4 = Bytes({0x80, 0x04});
const std::string kProto2 = Bytes({0x80, 0x02});

::testing::AssertionResult FailsWith(absl::string_view pickle, absl::string_view needle) {
  absl::StatusOr<PickleDocument> doc = Unpickle(pickle);
  if (doc.ok()) return ::testing::AssertionFailure() << "unexpectedly parsed";
  if (doc.status().code() != absl::StatusCode::kInvalidArgument ||
      !absl::StrContains(doc.status().message(), needle)) {
    return ::testing::AssertionFailure() << "error '" << doc.status() << "' lacks '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

TEST(PickleReaderTest, ScalarsOfEveryEncoding) {
  const std::string pickle = kProto2 + "(" + "N" + Bytes({0x88, 0x89}) + Bytes({'K', 0xFF}) +
                             Bytes({'M', 0xFF, 0xFF}) + Bytes({'J', 0xFF, 0xFF, 0xFF, 0xFF}) +
                             Bytes({0x8a, 0x05, 0x00, 0x00, 0x00, 0x80, 0x00}) +          // 2**31
                             Bytes({0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80}) +              // -2**63
                             Bytes({0x8a, 0x00}) +                                          // 0
                             Bytes({0x8a, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00}) +
                             Bytes({0x8b, 0x02, 0x00, 0x00, 0x00, 0x34, 0x12}) +            // LONG4 0x1234
                             Bytes({'G', 0x3F, 0xF8, 0, 0, 0, 0, 0, 0}) +                   // 1.5
                             Bytes({'C', 0x02, 0x00, 0xFF}) +                               // b'\x00\xff'
                             Bytes({'X', 0x02, 0, 0, 0}) + "hi" + "t.";
  absl::StatusOr<PickleDocument> doc = Unpickle(pickle);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->protocol(), 2);
  const Value& root = doc->root();
  ASSERT_EQ(root.kind, ValueKind::kTuple);
  ASSERT_EQ(root.items.size(), 14u);
  EXPECT_EQ(root.items[0]->kind, ValueKind::kNone);
  EXPECT_TRUE(root.items[1]->boolean);
  EXPECT_EQ(root.items[2]->kind, ValueKind::kBool);
  EXPECT_FALSE(root.items[2]->boolean);
  EXPECT_EQ(root.items[3]->integer, 255);
  EXPECT_EQ(root.items[4]->integer, 65535);
  EXPECT_EQ(root.items[5]->integer, -1);
  EXPECT_EQ(root.items[6]->integer, int64_t{1} << 31);
  EXPECT_EQ(root.items[7]->integer, INT64_MIN);
  EXPECT_EQ(root.items[8]->integer, 0);
  EXPECT_EQ(root.items[9]->integer, INT64_MAX);  // 9 bytes, the last a sign extension
  EXPECT_EQ(root.items[10]->integer, 0x1234);
  EXPECT_EQ(root.items[11]->kind, ValueKind::kFloat);
  EXPECT_EQ(root.items[11]->real, 1.5);
  EXPECT_EQ(root.items[12]->kind, ValueKind::kBytes);
  EXPECT_EQ(root.items[12]->text, Bytes({0x00, 0xFF}));
  EXPECT_EQ(root.items[13]->kind, ValueKind::kString);
  EXPECT_EQ(root.items[13]->text, "hi");
}

TEST(PickleReaderTest, MemoSharesTheSameNode) {
  // ([], <memo 0>, <memo 300>) with BINPUT, LONG_BINPUT, BINGET, LONG_BINGET.
  const std::string pickle = kProto2 + "(" + "]" + Bytes({'q', 0x00}) + Bytes({'r', 0x2C, 0x01, 0, 0}) +
                             Bytes({'h', 0x00}) + Bytes({'j', 0x2C, 0x01, 0, 0}) + "t.";
  absl::StatusOr<PickleDocument> doc = Unpickle(pickle);
  ASSERT_TRUE(doc.ok()) << doc.status();
  const Value& root = doc->root();
  ASSERT_EQ(root.items.size(), 3u);
  EXPECT_EQ(root.items[0], root.items[1]);
  EXPECT_EQ(root.items[0], root.items[2]);
  EXPECT_TRUE(FailsWith(kProto2 + "N" + Bytes({'h', 0x05}) + ".", "memo key 5 not found"));
  // A huge index is fine (and allocates nothing in proportion to it).
  const std::string huge_index =
      kProto2 + "(" + Str("x") + Bytes({'r', 0xFF, 0xFF, 0xFF, 0xFF, 'j', 0xFF, 0xFF, 0xFF, 0xFF}) + "t.";
  doc = Unpickle(huge_index);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->root().items[1]->text, "x");
  // MEMOIZE numbers entries by the memo's size: index 1 after one entry.
  const std::string memoize = kProto4 + "(" + Str("a") + Bytes({0x94}) + Str("b") + Bytes({0x94, 'h', 0x01}) + "t.";
  doc = Unpickle(memoize);
  ASSERT_TRUE(doc.ok()) << doc.status();
  ASSERT_EQ(doc->root().items.size(), 3u);
  EXPECT_EQ(doc->root().items[2]->text, "b");
}

TEST(PickleReaderTest, ContainerOpcodes) {
  // {"k": [1, 2, 3]} built with DICT and LIST; POP, POP_MARK and DUP on the way.
  const std::string pickle = kProto2 + "(" + Str("k") + "(" + Bytes({'K', 1, 'K', 2, 'K', 3}) + "l" +
                             "N0" + "(NN1" + "2" + "0" + "d.";
  absl::StatusOr<PickleDocument> doc = Unpickle(pickle);
  ASSERT_TRUE(doc.ok()) << doc.status();
  const Value& root = doc->root();
  ASSERT_EQ(root.kind, ValueKind::kDict);
  ASSERT_EQ(root.entries.size(), 1u);
  EXPECT_EQ(root.entries[0].first->text, "k");
  const Value& list = *root.entries[0].second;
  ASSERT_EQ(list.kind, ValueKind::kList);
  ASSERT_EQ(list.items.size(), 3u);
  EXPECT_EQ(list.items[2]->integer, 3);
  EXPECT_EQ(root.depth, 3);  // dict > list > int
}

TEST(PickleReaderTest, AllowedGlobalsResolve) {
  const std::string pickle = kProto4 + "(" + Str("torch") + Str("bfloat16") + Bytes({0x93}) + "ctorch\nhalf\n" +
                             Str("torch") + Str("strided") + Bytes({0x93}) +
                             // getattr(_MEM_FORMAT_ENCODING, "TORCH_CHANNELS_LAST")
                             Str("builtins") + Str("getattr") + Bytes({0x93}) +
                             Str("torch.distributed.checkpoint.metadata") + Str("_MEM_FORMAT_ENCODING") +
                             Bytes({0x93}) + Str("TORCH_CHANNELS_LAST") + Bytes({0x86}) + "R" + "t.";
  absl::StatusOr<PickleDocument> doc = Unpickle(pickle);
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& items = doc->root().items;
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0]->kind, ValueKind::kGlobal);
  EXPECT_EQ(items[0]->global, GlobalKind::kDType);
  EXPECT_EQ(static_cast<DType>(items[0]->integer), DType::kBFloat16);
  EXPECT_EQ(static_cast<DType>(items[1]->integer), DType::kFloat16);  // alias torch.half
  EXPECT_EQ(items[2]->global, GlobalKind::kLayout);
  EXPECT_EQ(static_cast<Layout>(items[2]->integer), Layout::kStrided);
  ASSERT_EQ(items[3]->kind, ValueKind::kObject);
  EXPECT_EQ(items[3]->global, GlobalKind::kMemFormatEncoding);
  ASSERT_EQ(items[3]->items.size(), 1u);
  EXPECT_EQ(items[3]->items[0]->integer, 1);
}

TEST(PickleReaderTest, ForbiddenGlobalsAreNamed) {
  EXPECT_TRUE(FailsWith(kProto2 + "cos\nsystem\n(S'ls'\ntR.", "pickle: global 'os.system' is not allowed (offset 2)"));
  EXPECT_TRUE(FailsWith(kProto4 + Str("os") + Str("system") + Bytes({0x93}) + ".",
                        "pickle: global 'os.system' is not allowed"));
  EXPECT_TRUE(FailsWith(kProto2 + "cbuiltins\neval\n" + Bytes({'X', 1, 0, 0, 0}) + "1" + Bytes({0x85}) + "R.",
                        "global 'builtins.eval' is not allowed"));
  EXPECT_TRUE(FailsWith(kProto2 + "ctorch\nload\n.", "global 'torch.load' is not allowed"));
  EXPECT_TRUE(FailsWith(kProto2 + "ctorch\nfloat32.__class__\n.", "global 'torch.float32.__class__'"));
  EXPECT_TRUE(FailsWith(kProto2 + "cnemo_automodel.evil\n_StorageInfo\n.", "is not allowed"));
  // Non-printable names are escaped in the message.
  EXPECT_TRUE(FailsWith(kProto2 + "cos\nsys\x01tem\n.", "global 'os.sys\\x01tem' is not allowed"));
  EXPECT_TRUE(FailsWith(kProto4 + "K" + Bytes({1}) + Str("x") + Bytes({0x93}) + ".", "STACK_GLOBAL requires two str"));
}

TEST(PickleReaderTest, AllowedGlobalsCannotBeMisused) {
  const std::string getattr = Str("builtins") + Str("getattr") + Bytes({0x93});
  const std::string size = Str("torch") + Str("Size") + Bytes({0x93});
  const std::string enum_class =
      Str("torch.distributed.checkpoint.metadata") + Str("_MEM_FORMAT_ENCODING") + Bytes({0x93});
  EXPECT_TRUE(FailsWith(kProto4 + getattr + size + Str("__class__") + Bytes({0x86}) + "R.",
                        "builtins.getattr is only allowed on the memory-format enum"));
  EXPECT_TRUE(FailsWith(kProto4 + getattr + enum_class + Str("__class__") + Bytes({0x86}) + "R.",
                        "unknown memory-format enum member '__class__'"));
  EXPECT_TRUE(FailsWith(kProto4 + Str("torch") + Str("float32") + Bytes({0x93}) + ")R.",
                        "REDUCE of global torch.float32 is not allowed"));
  EXPECT_TRUE(FailsWith(kProto4 + size + ")" + Bytes({0x81}) + ".", "NEWOBJ of global torch.Size is not allowed"));
  const std::string metadata = Str("torch.distributed.checkpoint.metadata") + Str("Metadata") + Bytes({0x93});
  EXPECT_TRUE(FailsWith(kProto4 + metadata + ")R.", "REDUCE of global Metadata is not allowed"));
  EXPECT_TRUE(FailsWith(kProto4 + metadata + "N" + Bytes({0x85, 0x81}) + ".", "with arguments is not supported"));
  EXPECT_TRUE(FailsWith(kProto4 + "]}b.", "BUILD of list is not allowed"));
  EXPECT_TRUE(FailsWith(kProto4 + metadata + ")" + Bytes({0x81}) + "}b}b.", "BUILD applied twice"));
  EXPECT_TRUE(FailsWith(kProto4 + "N)R.", "REDUCE of None is not allowed"));
  EXPECT_TRUE(FailsWith(kProto4 + size + "NR.", "REDUCE arguments must be a tuple"));
}

TEST(PickleReaderTest, DeepNestingIsAnErrorNotACrash) {
  constexpr int kDepth = 100000;
  EXPECT_TRUE(FailsWith(kProto2 + std::string(kDepth, '(') + ".", "nested MARKs"));
  EXPECT_TRUE(FailsWith(kProto2 + "N" + std::string(kDepth, '\x85') + ".", "nested deeper than 64 levels"));
  // [[[...]]] built inside out: each APPEND puts the top list into the one below.
  EXPECT_TRUE(FailsWith(kProto2 + std::string(kDepth, ']') + std::string(kDepth - 1, 'a') + ".",
                        "nested deeper than 64 levels"));
  // {"k": {"k": ...}} likewise.
  std::string dicts = kProto2;
  for (int i = 0; i < kDepth; ++i) dicts += "}" + Str("k");
  dicts += "N" + std::string(kDepth, 's') + ".";
  EXPECT_TRUE(FailsWith(dicts, "nested deeper than 64 levels"));
  // 64 levels are fine.
  EXPECT_TRUE(Unpickle(kProto2 + "N" + std::string(63, '\x85') + ".").ok());
}

TEST(PickleReaderTest, CyclesAndLateMutationAreRejected) {
  EXPECT_TRUE(FailsWith(kProto4 + "]" + Bytes({0x94, 'h', 0x00}) + "a.", "cannot contain itself"));
  // list0 is stored in list1, then list0 is appended to.
  EXPECT_TRUE(FailsWith(kProto4 + "]" + Bytes({0x94}) + "]" + Bytes({'h', 0x00}) + "a" + "0" + "Na.",
                        "modified after being stored"));
  // An object's BUILD after it was stored in a dict.
  const std::string metadata = Str("torch.distributed.checkpoint.metadata") + Str("Metadata") + Bytes({0x93});
  EXPECT_TRUE(FailsWith(kProto4 + metadata + ")" + Bytes({0x81, 0x94}) + "}" + Str("k") + Bytes({'h', 0x00}) +
                            "s0" + Bytes({'h', 0x00}) + "}b.",
                        "modified after being stored"));
}

TEST(PickleReaderTest, LengthsBeyondTheInputAreErrors) {
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8d, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) + "abc.",
                        "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({'X', 0xFF, 0xFF, 0xFF, 0xFF}) + ".", "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8e, 0, 0, 0, 0, 0, 0, 0, 0x80}) + ".", "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8c, 0xFF}) + "ab.", "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x95, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}) + "N.",
                        "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8b, 0xFF, 0xFF, 0xFF, 0x7F}) + ".", "truncated input"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({'J', 0x01}), "truncated input"));
  EXPECT_TRUE(FailsWith(kProto2 + "cos\nsystem", "missing newline"));
}

TEST(PickleReaderTest, MalformedStreams) {
  EXPECT_TRUE(FailsWith("", "no STOP opcode"));
  EXPECT_TRUE(FailsWith(kProto4 + "N", "no STOP opcode"));
  EXPECT_TRUE(FailsWith(kProto4 + ".", "stack underflow"));
  EXPECT_TRUE(FailsWith(kProto4 + "N(.", "stack underflow"));  // the None is below the MARK
  EXPECT_TRUE(FailsWith(kProto4 + "N(NR.", "stack underflow"));
  EXPECT_TRUE(FailsWith(kProto4 + "Nt.", "no MARK"));
  EXPECT_TRUE(FailsWith(kProto4 + "Na.", "stack underflow"));
  EXPECT_TRUE(FailsWith(kProto4 + "}(Ne.", "cannot append to dict"));
  EXPECT_TRUE(FailsWith(kProto4 + "](NNNu.", "odd number of items"));
  EXPECT_TRUE(FailsWith(kProto4 + "](NNu.", "cannot set items of list"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x87}) + ".", "stack underflow"));
  EXPECT_TRUE(FailsWith(kProto4 + "N.N", "1 bytes after STOP"));
  EXPECT_TRUE(FailsWith(kProto4 + "i", "unsupported opcode 0x69"));
  EXPECT_TRUE(FailsWith(Bytes({0x80, 0x06}) + "N.", "unsupported protocol 6"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8c, 0x02, 0xC3, 0x28}) + ".", "not valid UTF-8"));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8c, 0x02, 0xC0, 0x80}) + ".", "not valid UTF-8"));  // overlong
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8c, 0x04, 0xF4, 0x90, 0x80, 0x80}) + ".", "not valid UTF-8"));
  // Python's "surrogatepass" accepts an encoded lone surrogate (U+D800).
  const std::string surrogate_pickle = kProto2 + Bytes({'X', 3, 0, 0, 0, 0xED, 0xA0, 0x80}) + ".";
  absl::StatusOr<PickleDocument> surrogate = Unpickle(surrogate_pickle);
  ASSERT_TRUE(surrogate.ok()) << surrogate.status();
  EXPECT_EQ(surrogate->root().text, Bytes({0xED, 0xA0, 0x80}));
  EXPECT_TRUE(FailsWith(kProto4 + Bytes({0x8a, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00}) + ".",
                        "integer does not fit in 64 bits"));  // 2**63
}

// --- PickleWriter ------------------------------------------------------------

std::string Ints(int protocol, std::initializer_list<int64_t> values) {
  PickleWriter w(protocol);
  for (int64_t v : values) w.Int(v);
  return std::move(w).Finish();
}

TEST(PickleWriterTest, IntsUseCPythonsEncodings) {
  EXPECT_EQ(Ints(2, {0}), kProto2 + Bytes({'K', 0x00}) + ".");
  EXPECT_EQ(Ints(2, {256}), kProto2 + Bytes({'M', 0x00, 0x01}) + ".");
  EXPECT_EQ(Ints(2, {65536}), kProto2 + Bytes({'J', 0x00, 0x00, 0x01, 0x00}) + ".");
  EXPECT_EQ(Ints(2, {-1}), kProto2 + Bytes({'J', 0xFF, 0xFF, 0xFF, 0xFF}) + ".");
  EXPECT_EQ(Ints(2, {int64_t{1} << 31}), kProto2 + Bytes({0x8a, 0x05, 0x00, 0x00, 0x00, 0x80, 0x00}) + ".");
  EXPECT_EQ(Ints(2, {-(int64_t{1} << 31) - 1}), kProto2 + Bytes({0x8a, 0x05, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF}) + ".");
  EXPECT_EQ(Ints(2, {INT64_MAX}),
            kProto2 + Bytes({0x8a, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}) + ".");
  EXPECT_EQ(Ints(2, {INT64_MIN}), kProto2 + Bytes({0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80}) + ".");
}

TEST(PickleWriterTest, StringsAndGlobalsAreMemoized) {
  PickleWriter w4(4);
  w4.Mark();
  w4.String("ab");
  w4.String("ab");
  w4.Global("torch", "Size");
  w4.Global("torch", "Size");
  w4.TupleFromMark();
  // "torch" and "Size" are memo 1 and 2, the global 3.
  EXPECT_EQ(std::move(w4).Finish(), kProto4 + "(" + Str("ab") + Bytes({0x94, 'h', 0x00}) + Str("torch") +
                                        Bytes({0x94}) + Str("Size") + Bytes({0x94, 0x93, 0x94, 'h', 0x03}) + "t.");
  PickleWriter w2(2);
  w2.Mark();
  w2.String("ab");
  w2.String("ab");
  w2.Global("torch", "Size");
  w2.TupleFromMark();
  EXPECT_EQ(std::move(w2).Finish(), kProto2 + "(" + Bytes({'X', 2, 0, 0, 0}) + "ab" + Bytes({'q', 0, 'h', 0}) +
                                        "ctorch\nSize\n" + Bytes({'q', 1}) + "t.");
}

TEST(PickleWriterTest, BatchesLikeCPythonAndReadsBack) {
  PickleWriter w(4);
  w.EmptyList();
  w.ListItems(2001, [&](size_t i) { w.Int(static_cast<int64_t>(i)); });  // 1000 + 1000 + 1
  std::string bytes = std::move(w).Finish();
  // Two APPENDS batches and one APPEND.
  // The last batch is the single item 2000 (BININT2 0x07D0) with APPEND,
  // right after the second batch's APPENDS.
  EXPECT_EQ(bytes.substr(bytes.size() - 6), Bytes({'e', 'M', 0xD0, 0x07, 'a', '.'}));
  absl::StatusOr<PickleDocument> doc = Unpickle(bytes);
  ASSERT_TRUE(doc.ok()) << doc.status();
  ASSERT_EQ(doc->root().items.size(), 2001u);
  EXPECT_EQ(doc->root().items[2000]->integer, 2000);
}

}  // namespace
}  // namespace dcplan::pickle
