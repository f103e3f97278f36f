#include "engine/flatten.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "engine/object_path.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A leaf: a tensor (by name) or any other Python object (by repr).
struct Value {
  bool tensor = false;
  std::string text;
  friend bool operator==(const Value& a, const Value& b) { return a.tensor == b.tensor && a.text == b.text; }
};

using N = Nested<Value>;

N T(std::string name) { return N::MakeLeaf(Value{true, std::move(name)}); }
N S(std::string repr) { return N::MakeLeaf(Value{false, std::move(repr)}); }
N M(std::vector<N::Entry> entries) { return N::MakeMapping(std::move(entries)); }
N L(std::vector<N> items) { return N::MakeList(std::move(items)); }
N None() { return N::MakeNone(); }
PathElement K(std::string key) { return PathElement(std::move(key)); }
PathElement I(int64_t index) { return PathElement(index); }

bool IsTensor(const Value& v) { return v.tensor; }

void PrintTo(const N& n, std::ostream* os) {
  switch (n.kind()) {
    case NestedKind::kNone:
      *os << "None";
      return;
    case NestedKind::kLeaf:
      *os << (n.leaf()->tensor ? "T:" : "") << n.leaf()->text;
      return;
    case NestedKind::kMapping: {
      *os << "{";
      const char* sep = "";
      for (const auto& e : n.entries()) {
        *os << sep << "'" << e.key << "': ";
        PrintTo(e.value, os);
        sep = ", ";
      }
      *os << "}";
      return;
    }
    case NestedKind::kList: {
      *os << "[";
      const char* sep = "";
      for (const auto& item : n.items()) {
        *os << sep;
        PrintTo(item, os);
        sep = ", ";
      }
      *os << "]";
      return;
    }
  }
}

FlatStateDict<Value> Flatten(const N& sd, KeyFormat format) {
  absl::StatusOr<FlatStateDict<Value>> flat = FlattenStateDict(sd, format, IsTensor);
  EXPECT_TRUE(flat.ok()) << flat.status();
  return flat.ok() ? *std::move(flat) : FlatStateDict<Value>();
}

std::vector<std::string> Keys(const FlatStateDict<Value>& flat) {
  std::vector<std::string> keys;
  for (const auto& entry : flat.values) keys.push_back(entry.first);
  // The mapping must follow the same order, with one path per key.
  std::vector<std::string> mapping_keys;
  for (const auto& entry : flat.mapping) mapping_keys.push_back(entry.first);
  EXPECT_EQ(keys, mapping_keys);
  return keys;
}

N ValueAt(const FlatStateDict<Value>& flat, const std::string& key) {
  const N* value = flat.values.Find(key);
  return value ? *value : S("<missing>");
}

ObjectPath PathAt(const FlatStateDict<Value>& flat, const std::string& key) {
  const ObjectPath* path = flat.mapping.Find(key);
  return path ? *path : ObjectPath{K("<missing>")};
}

// --- Examples of §2.1 (same in both formats: every container holds a tensor) ---

TEST(FlattenTest, NestedMappingJoinsKeysWithDots) {
  const N sd = M({{"a", M({{"b", T("t")}})}});
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(sd, format);
    EXPECT_THAT(Keys(flat), ElementsAre("a.b"));
    EXPECT_EQ(ValueAt(flat, "a.b"), T("t"));
    EXPECT_EQ(PathAt(flat, "a.b"), (ObjectPath{K("a"), K("b")}));
  }
}

TEST(FlattenTest, OptimizerStateKeyIsAStringPathElement) {
  // PyTorch's int key 0 arrives stringified; the path element stays a string.
  const N sd = M({{"opt", M({{"state", M({{"0", M({{"exp_avg", T("m")}})}})}})}});
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(sd, format);
    EXPECT_THAT(Keys(flat), ElementsAre("opt.state.0.exp_avg"));
    EXPECT_EQ(PathAt(flat, "opt.state.0.exp_avg"), (ObjectPath{K("opt"), K("state"), K("0"), K("exp_avg")}));
  }
}

TEST(FlattenTest, ListOfTensorsGetsIndexPathElements) {
  const N sd = M({{"x", L({T("t0"), T("t1")})}});
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(sd, format);
    EXPECT_THAT(Keys(flat), ElementsAre("x.0", "x.1"));
    EXPECT_EQ(PathAt(flat, "x.0"), (ObjectPath{K("x"), I(0)}));
    EXPECT_EQ(PathAt(flat, "x.1"), (ObjectPath{K("x"), I(1)}));
    EXPECT_EQ(ValueAt(flat, "x.1"), T("t1"));
  }
}

TEST(FlattenTest, TopLevelScalarHasOneElementPath) {
  const FlatStateDict<Value> flat = Flatten(M({{"step", S("5")}}), KeyFormat::kCurrent);
  EXPECT_THAT(Keys(flat), ElementsAre("step"));
  EXPECT_EQ(PathAt(flat, "step"), (ObjectPath{K("step")}));
  EXPECT_EQ(ValueAt(flat, "step"), S("5"));
}

// --- Lists (§2.2) ---------------------------------------------------------------

TEST(FlattenTest, ListOfScalarsIsOneLeaf) {
  const N list = L({S("1"), S("2"), S("3")});
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(M({{"l", list}}), format);
    EXPECT_THAT(Keys(flat), ElementsAre("l"));
    EXPECT_EQ(ValueAt(flat, "l"), list);
  }
}

TEST(FlattenTest, EmptyListIsALeaf) {
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(M({{"e", L({})}}), format);
    EXPECT_THAT(Keys(flat), ElementsAre("e"));
    EXPECT_EQ(ValueAt(flat, "e"), L({}));
  }
}

TEST(FlattenTest, ListOfScalarListsIsOneLeaf) {
  const N list = L({L({S("1"), S("2")}), L({S("3")})});
  const FlatStateDict<Value> flat = Flatten(M({{"x", list}}), KeyFormat::kCurrent);
  EXPECT_THAT(Keys(flat), ElementsAre("x"));
  EXPECT_EQ(ValueAt(flat, "x"), list);
}

TEST(FlattenTest, ListHoldingATensorListIsDescended) {
  // [[t0], 5]: the inner list holds a tensor, so neither list is terminal.
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(M({{"x", L({L({T("t0")}), S("5")})}}), format);
    EXPECT_THAT(Keys(flat), ElementsAre("x.0.0", "x.1"));
    EXPECT_EQ(PathAt(flat, "x.0.0"), (ObjectPath{K("x"), I(0), I(0)}));
    EXPECT_EQ(ValueAt(flat, "x.1"), S("5"));
  }
}

TEST(FlattenTest, ListContainingAMappingIsDescendedInCurrentFormat) {
  const N groups = L({M({{"lr", S("0.1")}, {"params", L({S("0"), S("1")})}})});
  const N sd = M({{"groups", groups}});

  const FlatStateDict<Value> current = Flatten(sd, KeyFormat::kCurrent);
  EXPECT_THAT(Keys(current), ElementsAre("groups.0.lr", "groups.0.params"));
  EXPECT_EQ(PathAt(current, "groups.0.lr"), (ObjectPath{K("groups"), I(0), K("lr")}));
  EXPECT_EQ(ValueAt(current, "groups.0.params"), L({S("0"), S("1")}));

  // No tensor below: the legacy traversal saves the whole list.
  const FlatStateDict<Value> legacy = Flatten(sd, KeyFormat::kLegacy2_3);
  EXPECT_THAT(Keys(legacy), ElementsAre("groups"));
  EXPECT_EQ(ValueAt(legacy, "groups"), groups);
}

TEST(FlattenTest, TupleIsALeafEvenWithTensorsInside) {
  // The LibTorch layer models a tuple as a non-tensor leaf; beside scalars in
  // a list it keeps the list terminal too.
  const N tuple = S("(T:t0, T:t1)");
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    const FlatStateDict<Value> flat = Flatten(M({{"tup", tuple}, {"l", L({tuple, S("1")})}}), format);
    EXPECT_THAT(Keys(flat), ElementsAre("tup", "l"));
    EXPECT_EQ(ValueAt(flat, "l"), L({tuple, S("1")}));
  }
}

TEST(FlattenTest, NoneIsANonTensorLeaf) {
  const FlatStateDict<Value> flat = Flatten(M({{"n", None()}, {"l", L({None(), S("1")})}}), KeyFormat::kCurrent);
  EXPECT_THAT(Keys(flat), ElementsAre("n", "l"));
  EXPECT_EQ(ValueAt(flat, "n"), None());
}

// --- Empty mappings and the two formats (§2.2, §2.3) ------------------------------

TEST(FlattenTest, EmptyMappingsVanishInCurrentFormat) {
  const N sd = M({{"a", T("t")}, {"empty", M({})}, {"nested", M({{"inner", M({})}})}});
  EXPECT_THAT(Keys(Flatten(sd, KeyFormat::kCurrent)), ElementsAre("a"));
}

TEST(FlattenTest, EmptyMappingsAreLeavesInLegacyFormat) {
  const N sd = M({{"a", T("t")}, {"empty", M({})}, {"nested", M({{"inner", M({})}})}});
  const FlatStateDict<Value> flat = Flatten(sd, KeyFormat::kLegacy2_3);
  EXPECT_THAT(Keys(flat), ElementsAre("a", "empty", "nested"));
  EXPECT_EQ(ValueAt(flat, "empty"), M({}));
  EXPECT_EQ(ValueAt(flat, "nested"), M({{"inner", M({})}}));
}

TEST(FlattenTest, ListOfEmptyMappingVanishesInCurrentFormat) {
  // [{}] holds a mapping, so it is descended, and the mapping yields nothing.
  EXPECT_THAT(Keys(Flatten(M({{"x", L({M({})})}}), KeyFormat::kCurrent)), IsEmpty());
  EXPECT_THAT(Keys(Flatten(M({{"x", L({S("1"), M({})})}}), KeyFormat::kCurrent)), ElementsAre("x.0"));
  EXPECT_THAT(Keys(Flatten(M({{"x", L({M({})})}}), KeyFormat::kLegacy2_3)), ElementsAre("x"));
}

TEST(FlattenTest, SchedulerIsOneKeyInLegacyAndTwoInCurrent) {
  const N sched = M({{"lr", S("0.1")}, {"step", S("3")}});
  const N sd = M({{"sched", sched}});
  const FlatStateDict<Value> legacy = Flatten(sd, KeyFormat::kLegacy2_3);
  EXPECT_THAT(Keys(legacy), ElementsAre("sched"));
  EXPECT_EQ(ValueAt(legacy, "sched"), sched);
  EXPECT_EQ(PathAt(legacy, "sched"), (ObjectPath{K("sched")}));

  const FlatStateDict<Value> current = Flatten(sd, KeyFormat::kCurrent);
  EXPECT_THAT(Keys(current), ElementsAre("sched.lr", "sched.step"));
  EXPECT_EQ(ValueAt(current, "sched.step"), S("3"));
}

TEST(FlattenTest, TrainingStateInBothFormats) {
  const N sd = M({{"model", M({{"w", T("w")}})},
                  {"opt", M({{"state", M({{"0", M({{"step", S("1")}, {"exp_avg", T("m")}})}})},
                             {"param_groups", L({M({{"lr", S("0.1")}, {"params", L({S("0")})}})})}})}});
  EXPECT_THAT(Keys(Flatten(sd, KeyFormat::kCurrent)),
              ElementsAre("model.w", "opt.state.0.step", "opt.state.0.exp_avg", "opt.param_groups.0.lr",
                          "opt.param_groups.0.params"));
  // Legacy: state.0 holds a tensor so its scalar is a key of its own;
  // param_groups holds none and is saved whole.
  EXPECT_THAT(Keys(Flatten(sd, KeyFormat::kLegacy2_3)),
              ElementsAre("model.w", "opt.state.0.step", "opt.state.0.exp_avg", "opt.param_groups"));
}

TEST(FlattenTest, LegacyRootIsNeverALeaf) {
  // No tensor anywhere, yet each top-level entry is its own key.
  EXPECT_THAT(Keys(Flatten(M({{"step", S("5")}, {"sched", M({{"a", S("1")}})}}), KeyFormat::kLegacy2_3)),
              ElementsAre("step", "sched"));
}

// --- Errors -----------------------------------------------------------------------

TEST(FlattenTest, DottedKeyCollidingWithNestedKeyIsAnError) {
  const N sd = M({{"a.b", T("x")}, {"a", M({{"b", T("y")}})}});
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    absl::StatusOr<FlatStateDict<Value>> flat = FlattenStateDict(sd, format, IsTensor);
    EXPECT_EQ(flat.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(flat.status().message(), "duplicated flatten key a.b");
  }
}

TEST(FlattenTest, IntAndStringKeysStringifiedAlikeCollide) {
  // {0: x, "0": y} after the LibTorch layer stringified the keys.
  N sd = M({});
  ASSERT_NE(sd.AddEntry("0", T("x")), nullptr);
  ASSERT_NE(sd.AddEntry("0", T("y")), nullptr);
  EXPECT_EQ(sd.entries().size(), 2u);
  EXPECT_EQ(*sd.FindEntry("0"), T("x"));
  absl::StatusOr<FlatStateDict<Value>> flat = FlattenStateDict(sd, KeyFormat::kCurrent, IsTensor);
  EXPECT_EQ(flat.status().message(), "duplicated flatten key 0");
}

TEST(FlattenTest, CollisionOnlyTheLegacyTraversalProduces) {
  // Current: a.b.c, a.b.d, a.w. Legacy: "a" holds a tensor and is descended,
  // and both tensor-free mappings become "a.b".
  const N sd = M({{"a.b", M({{"c", S("1")}})}, {"a", M({{"b", M({{"d", S("2")}})}, {"w", T("w")}})}});
  EXPECT_THAT(Keys(Flatten(sd, KeyFormat::kCurrent)), ElementsAre("a.b.c", "a.b.d", "a.w"));
  EXPECT_EQ(FlattenStateDict(sd, KeyFormat::kLegacy2_3, IsTensor).status().message(), "duplicated flatten key a.b");
}

TEST(FlattenTest, RootMustBeAMapping) {
  for (const N& root : {L({T("t")}), T("t"), None()}) {
    EXPECT_EQ(FlattenStateDict(root, KeyFormat::kCurrent, IsTensor).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// Chains are built by moving (a braced list would copy the whole chain at
// every level).
N MappingChain(size_t levels, N bottom) {
  for (size_t i = 0; i < levels; ++i) {
    N outer = N::MakeMapping();
    outer.AddEntry("k", std::move(bottom));
    bottom = std::move(outer);
  }
  return bottom;
}

N ListChain(size_t levels, N bottom) {
  for (size_t i = 0; i < levels; ++i) {
    N outer = N::MakeList();
    outer.mutable_items()->push_back(std::move(bottom));
    bottom = std::move(outer);
  }
  return bottom;
}

TEST(FlattenTest, NestingLimitIsAnErrorNotACrash) {
  // MappingChain(n) as the root gives a leaf path of n elements.
  const FlatStateDict<Value> deepest = Flatten(MappingChain(kMaxNestingDepth, T("t")), KeyFormat::kCurrent);
  ASSERT_EQ(deepest.mapping.size(), 1u);
  EXPECT_EQ(deepest.mapping.begin()->second.size(), kMaxNestingDepth);
  absl::Status too_deep = FlattenStateDict(MappingChain(kMaxNestingDepth + 1, T("t")), KeyFormat::kCurrent, IsTensor)
                              .status();
  EXPECT_EQ(too_deep.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_deep.message(), HasSubstr("deeper than 1000"));

  // Terminal lists: the innermost of n nested lists sits at depth n.
  EXPECT_THAT(Keys(Flatten(M({{"k", ListChain(kMaxNestingDepth, S("1"))}}), KeyFormat::kCurrent)),
              ElementsAre("k"));
  for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
    EXPECT_EQ(FlattenStateDict(M({{"k", ListChain(kMaxNestingDepth + 1, S("1"))}}), format, IsTensor).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(FlattenTest, VisitorErrorStopsTheTraversal) {
  int visited = 0;
  absl::Status status = TraverseStateDict<Value>(M({{"a", T("1")}, {"b", T("2")}, {"c", T("3")}}),
                                                 KeyFormat::kCurrent, IsTensor,
                                                 [&](const ObjectPath& path, const N&) -> absl::Status {
                                                   ++visited;
                                                   if (FlatKey(path) == "b") return absl::CancelledError("stop");
                                                   return absl::OkStatus();
                                                 });
  EXPECT_EQ(status, absl::CancelledError("stop"));
  EXPECT_EQ(visited, 2);
}

TEST(FlattenTest, HundredThousandLeaves) {
  std::vector<N::Entry> layers;
  std::vector<N> list;
  for (int i = 0; i < 50000; ++i) {
    layers.push_back({absl::StrCat("layer", i), M({{"w", T(absl::StrCat("w", i))}})});
    list.push_back(S(absl::StrCat(i)));
  }
  // A wide scalar list at the bottom of a list chain, with one tensor at the
  // end: every level must see the tensor (PyTorch rescans at each level).
  list.push_back(T("last"));
  const N sd = M({{"model", M(std::move(layers))}, {"deep", ListChain(10, L(std::move(list)))}});
  const FlatStateDict<Value> flat = Flatten(sd, KeyFormat::kCurrent);
  ASSERT_EQ(flat.values.size(), 100001u);
  EXPECT_EQ(flat.values.at_position(0).first, "model.layer0.w");
  EXPECT_EQ(flat.values.at_position(49999).first, "model.layer49999.w");
  const std::string last_key = flat.values.at_position(100000).first;
  EXPECT_EQ(last_key, "deep.0.0.0.0.0.0.0.0.0.0.50000");
  EXPECT_EQ(ValueAt(flat, last_key), T("last"));
}

// --- SetElement (§2.5) --------------------------------------------------------------

TEST(SetElementTest, PadsListsWithNoneAndCreatesContainersByNextElement) {
  N root = M({});
  ASSERT_TRUE(SetElement(root, {K("a"), I(3), I(1)}, T("v")).ok());
  EXPECT_EQ(root, M({{"a", L({None(), None(), None(), L({None(), T("v")})})}}));
  // A None list item on the way is replaced by the container the next step needs.
  ASSERT_TRUE(SetElement(root, {K("a"), I(0), K("k")}, T("w")).ok());
  EXPECT_EQ(root, M({{"a", L({M({{"k", T("w")}}), None(), None(), L({None(), T("v")})})}}));
  // An existing item is overwritten.
  ASSERT_TRUE(SetElement(root, {K("a"), I(3), I(0)}, S("1")).ok());
  EXPECT_EQ(root, M({{"a", L({M({{"k", T("w")}}), None(), None(), L({S("1"), T("v")})})}}));
}

TEST(SetElementTest, OverwritesMappingEntryInPlace) {
  N root = M({{"a", S("1")}, {"b", S("2")}});
  ASSERT_TRUE(SetElement(root, {K("a")}, S("3")).ok());
  EXPECT_EQ(root, M({{"a", S("3")}, {"b", S("2")}}));
}

TEST(SetElementTest, ListRoot) {
  N root = L({});
  ASSERT_TRUE(SetElement(root, {I(1)}, S("x")).ok());
  EXPECT_EQ(root, L({None(), S("x")}));
}

void ExpectBadPath(N root, const ObjectPath& path, const std::string& fragment) {
  absl::Status status = SetElement(root, path, T("v"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << ObjectPathToString(path);
  EXPECT_THAT(status.message(), HasSubstr(fragment)) << ObjectPathToString(path);
}

TEST(SetElementTest, ImpossiblePathsAreErrors) {
  ExpectBadPath(M({}), {}, "empty");
  ExpectBadPath(M({{"a", S("1")}}), {K("a"), K("b")}, "('a',) is a leaf");
  ExpectBadPath(M({{"a", S("1")}}), {K("a"), I(0), K("b")}, "('a',) is a leaf");
  ExpectBadPath(M({{"a", None()}}), {K("a"), K("b")}, "('a',) is None");
  ExpectBadPath(M({{"a", M({})}}), {K("a"), I(0)}, "('a',) is a mapping, not a list");
  ExpectBadPath(M({{"a", L({})}}), {K("a"), K("b")}, "('a',) is a list, not a mapping");
  ExpectBadPath(M({}), {I(0)}, "the root is a mapping");
  ExpectBadPath(S("1"), {K("a")}, "the root is a leaf");
  ExpectBadPath(M({}), {K("a"), I(-1)}, "negative");
  ExpectBadPath(M({}), {K("a"), I(-1), K("b")}, "negative");
  ExpectBadPath(M({}), {K("a"), I(kMaxListIndex + 1)}, "above the limit");
  ExpectBadPath(M({}), ObjectPath(kMaxNestingDepth + 1, K("k")), "more than the limit");
}

// --- Unflatten and round trips ------------------------------------------------------

N RoundTrip(const N& sd, KeyFormat format) {
  const FlatStateDict<Value> flat = Flatten(sd, format);
  absl::StatusOr<N> back = UnflattenStateDict(flat.values, flat.mapping);
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *std::move(back) : S("<failed>");
}

N DeepAlternating(int levels) {
  N value = T("bottom");
  for (int i = 0; i < levels; ++i) {
    value = i % 2 == 0 ? L({S("pad"), std::move(value)}) : M({{absl::StrCat("m", i), std::move(value)}});
  }
  return M({{"deep", std::move(value)}});
}

TEST(UnflattenTest, RoundTripRestoresStructure) {
  const std::vector<N> shapes = {
      M({{"model", M({{"layer", M({{"w", T("w")}, {"b", T("b")}})}})}, {"step", S("5")}}),
      M({{"opt", M({{"state", M({{"0", M({{"exp_avg", T("m")}, {"step", S("3")}})}})},
                    {"param_groups", L({M({{"lr", S("0.1")}, {"params", L({S("0"), S("1")})}})})}})}}),
      M({{"x", L({M({{"w", T("t0")}}), M({{"w", T("t1")}, {"meta", L({S("1"), S("2")})}})})}}),
      M({{"x", L({T("t0"), S("3"), L({T("t1"), S("'s'")}), None()})}}),
      M({{"sched", M({{"lr", S("0.1")}})}, {"empty_list", L({})}, {"tuple", S("(T:t, 1)")}}),
      DeepAlternating(60),
  };
  for (const N& sd : shapes) {
    for (KeyFormat format : {KeyFormat::kCurrent, KeyFormat::kLegacy2_3}) {
      EXPECT_EQ(RoundTrip(sd, format), sd) << KeyFormatName(format) << " " << ::testing::PrintToString(sd);
    }
  }
}

TEST(UnflattenTest, EmptyMappingsDoNotComeBackInCurrentFormat) {
  const N sd = M({{"a", T("t")}, {"e", M({})}});
  EXPECT_EQ(RoundTrip(sd, KeyFormat::kCurrent), M({{"a", T("t")}}));
  EXPECT_EQ(RoundTrip(sd, KeyFormat::kLegacy2_3), sd);
  // A vanished empty mapping inside a list leaves a None hole.
  EXPECT_EQ(RoundTrip(M({{"x", L({M({}), M({{"w", T("t")}})})}}), KeyFormat::kCurrent),
            M({{"x", L({None(), M({{"w", T("t")}})})}}));
}

TEST(UnflattenTest, KeyWithoutPathIsAnError) {
  OrderedMap<std::string, N> flat;
  flat.InsertOrAssign("a", T("t"));
  absl::StatusOr<N> back = UnflattenStateDict(flat, FlattenMapping{});
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("'a'"));
}

TEST(UnflattenTest, ConflictingPathsNameTheKey) {
  OrderedMap<std::string, N> flat;
  flat.InsertOrAssign("a", S("1"));
  flat.InsertOrAssign("a.b", S("2"));
  FlattenMapping mapping;
  mapping.InsertOrAssign("a", ObjectPath{K("a")});
  mapping.InsertOrAssign("a.b", ObjectPath{K("a"), K("b")});
  absl::StatusOr<N> back = UnflattenStateDict(flat, mapping);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("flat key 'a.b'"));
}

// --- Legacy-key fallback (§5.2) -----------------------------------------------------

using Keys_ = std::vector<std::string>;

TEST(ChooseLoadKeyFormatTest, NoExtraKeysKeepsCurrent) {
  // Even though the legacy keys overlap the checkpoint's, nothing is extra.
  EXPECT_EQ(ChooseLoadKeyFormat(Keys_{"a", "b"}, Keys_{"a", "b", "c"}, Keys_{"a", "b"}), KeyFormat::kCurrent);
  EXPECT_THAT(ExtraCheckpointKeys(Keys_{"a", "b"}, Keys_{"a", "b", "c"}), IsEmpty());
}

TEST(ChooseLoadKeyFormatTest, ExtraKeyThatIsALegacyKeySwitchesToLegacy) {
  const Keys_ checkpoint = {"model.w", "sched"};
  const Keys_ current = {"model.w", "sched.lr", "sched.step"};
  const Keys_ legacy = {"model.w", "sched"};
  EXPECT_THAT(ExtraCheckpointKeys(checkpoint, current), ElementsAre("sched"));
  EXPECT_EQ(ChooseLoadKeyFormat(checkpoint, current, legacy), KeyFormat::kLegacy2_3);
}

TEST(ChooseLoadKeyFormatTest, ExtraKeysUnknownToLegacyKeepCurrent) {
  EXPECT_EQ(ChooseLoadKeyFormat(Keys_{"model.w", "other", "x"}, Keys_{"model.w"}, Keys_{"model.w"}),
            KeyFormat::kCurrent);
  EXPECT_THAT(ExtraCheckpointKeys(Keys_{"x", "model.w", "other"}, Keys_{"model.w"}), ElementsAre("x", "other"));
}

TEST(FlattenForLoadTest, PicksTheFormatTheCheckpointUses) {
  const N sd = M({{"model", M({{"w", T("w")}})}, {"sched", M({{"lr", S("0.1")}, {"step", S("3")}})}});

  absl::StatusOr<LoadFlattening<Value>> old = FlattenStateDictForLoad(sd, sd, Keys_{"model.w", "sched"}, IsTensor);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->format, KeyFormat::kLegacy2_3);
  EXPECT_THAT(Keys(old->flat), ElementsAre("model.w", "sched"));

  absl::StatusOr<LoadFlattening<Value>> now =
      FlattenStateDictForLoad(sd, sd, Keys_{"model.w", "sched.lr", "sched.step"}, IsTensor);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->format, KeyFormat::kCurrent);
  EXPECT_THAT(Keys(now->flat), ElementsAre("model.w", "sched.lr", "sched.step"));

  // A partial load from a bigger checkpoint: extra keys, none legacy.
  absl::StatusOr<LoadFlattening<Value>> partial =
      FlattenStateDictForLoad(sd, sd, Keys_{"model.w", "sched.lr", "sched.step", "opt.m"}, IsTensor);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->format, KeyFormat::kCurrent);
}

TEST(FlattenForLoadTest, LegacyTraversalRunsOnTheOriginalStateDict) {
  const N original = M({{"sched", M({{"lr", S("0.1")}})}, {"w", T("w")}});
  const N rebuilt = M({{"sched", M({{"lr", S("0.1")}})}, {"w", T("w2")}});
  absl::StatusOr<LoadFlattening<Value>> r = FlattenStateDictForLoad(rebuilt, original, Keys_{"sched", "w"}, IsTensor);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->format, KeyFormat::kLegacy2_3);
  EXPECT_EQ(ValueAt(r->flat, "w"), T("w"));
}

TEST(FlattenForLoadTest, FailingLegacyTraversalFallsBackToCurrent) {
  const N sd = M({{"a.b", M({{"c", S("1")}})}, {"a", M({{"b", M({{"d", S("2")}})}, {"w", T("w")}})}});
  absl::StatusOr<LoadFlattening<Value>> r = FlattenStateDictForLoad(sd, sd, Keys_{"a.b"}, IsTensor);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->format, KeyFormat::kCurrent);
  EXPECT_THAT(Keys(r->flat), ElementsAre("a.b.c", "a.b.d", "a.w"));

  const N broken = M({{"a.b", T("x")}, {"a", M({{"b", T("y")}})}});
  EXPECT_EQ(FlattenStateDictForLoad(broken, broken, Keys_{}, IsTensor).status().message(),
            "duplicated flatten key a.b");
}

// --- Nested itself ------------------------------------------------------------------

TEST(NestedTest, MutatorsRefuseTheWrongKind) {
  N leaf = S("1");
  EXPECT_EQ(leaf.AddEntry("a", S("2")), nullptr);
  EXPECT_EQ(leaf.mutable_items(), nullptr);
  EXPECT_EQ(leaf, S("1"));
  N list = L({});
  EXPECT_EQ(list.leaf(), nullptr);
  EXPECT_EQ(list.FindEntry("a"), nullptr);
  ASSERT_NE(list.mutable_items(), nullptr);
  EXPECT_NE(L({}), M({}));
  EXPECT_NE(None(), S("None"));
}

}  // namespace
}  // namespace dcplan
