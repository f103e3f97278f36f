// WriteMetadataPickle: round trips through ParseMetadataPickle, the shape of
// what it writes (spec §5.7), and the parser's robustness on truncated and
// corrupted fixtures.
#include <optional>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/pickle/metadata_pickle.h"
#include "api/pickle/pickle_reader.h"
#include "api/pickle/test_util.h"
#include "engine/metadata.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using pickle_test::ReadFixture;
using pickle_test::RichMetadata;

// Equality including MetadataIndex hints (Metadata's == ignores them).
void ExpectIdentical(const Metadata& actual, const Metadata& expected) {
  EXPECT_EQ(actual, expected);
  if (!actual.storage_data || !expected.storage_data) return;
  ASSERT_EQ(actual.storage_data->size(), expected.storage_data->size());
  for (size_t i = 0; i < actual.storage_data->size(); ++i) {
    EXPECT_TRUE(actual.storage_data->at_position(i).first.IdenticalTo(expected.storage_data->at_position(i).first))
        << ToString(actual.storage_data->at_position(i).first);
  }
}

void ExpectRoundTrip(const Metadata& metadata) {
  const std::string bytes = WriteMetadataPickle(metadata);
  absl::StatusOr<Metadata> back = ParseMetadataPickle(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectIdentical(*back, metadata);
}

TEST(MetadataPickleRoundTripTest, RichMetadata) { ExpectRoundTrip(RichMetadata()); }

TEST(MetadataPickleRoundTripTest, ManyEntriesSpanBatchesAndLongMemoIndices) {
  Metadata m;
  StorageData storage;
  for (int i = 0; i < 1500; ++i) {
    const std::string fqn = absl::StrCat("layers.", i, ".weight");
    m.state_dict_metadata.InsertOrAssign(fqn, TensorStorageMetadata{{}, {4}, {{{0}, {2}}, {{2}, {2}}}});
    storage.InsertOrAssign(MetadataIndex{fqn, Shape{0}, 0}, StorageInfo{"__0_0.distcp", 10 * i, 10, {}});
    storage.InsertOrAssign(MetadataIndex{fqn, Shape{2}, 1}, StorageInfo{"__1_0.distcp", 10 * i, 10, {}});
  }
  m.storage_data = storage;
  m.version = "1.0.0";
  ExpectRoundTrip(m);
}

TEST(MetadataPickleRoundTripTest, UnsetFieldsAndVersion) {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign("b", BytesStorageMetadata{});
  const std::string bytes = WriteMetadataPickle(m);
  absl::StatusOr<Metadata> back = ParseMetadataPickle(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  Metadata expected = m;
  expected.version = "1.0.0";  // spec §5.7: the writer fills the only defined version in
  ExpectIdentical(*back, expected);
  m.version = "2.0.0-test";  // an explicit version is kept
  ExpectRoundTrip(m);
  m.storage_meta = StorageMeta{};
  ExpectRoundTrip(m);
}

TEST(MetadataPickleRoundTripTest, Fixtures) {
  for (const char* name : {"tp2d_4rank.metadata", "fsdp2_toy.metadata"}) {
    std::optional<std::string> bytes = ReadFixture(name);
    ASSERT_TRUE(bytes.has_value()) << name;
    absl::StatusOr<Metadata> original = ParseMetadataPickle(*bytes);
    ASSERT_TRUE(original.ok()) << original.status();
    absl::StatusOr<Metadata> back = ParseMetadataPickle(WriteMetadataPickle(*original));
    ASSERT_TRUE(back.ok()) << back.status();
    Metadata expected = *original;
    expected.version = "1.0.0";
    ExpectIdentical(*back, expected);
  }
}

// The object graph the writer produces, checked on the unpickled values.
TEST(MetadataPickleWriterTest, WritesTheLayoutOfSpec57) {
  Metadata m;
  m.state_dict_metadata.InsertOrAssign("w", TensorStorageMetadata{{}, {2, 3}, {{{0, 0}, {2, 3}}}});
  m.state_dict_metadata.InsertOrAssign("step", BytesStorageMetadata{});
  m.storage_data = StorageData{{MetadataIndex{"step", std::nullopt, std::nullopt}, {"__0_0.distcp", 0, 10, {}}},
                               {MetadataIndex{"w", Shape{0, 0}, 0}, {"__0_0.distcp", 10, 20, {}}}};
  m.storage_meta = StorageMeta{"/ckpt", "id", std::nullopt, {}};
  const std::string bytes = WriteMetadataPickle(m);
  EXPECT_EQ(bytes.substr(0, 2), "\x80\x04");
  // No pathlib, no getattr: only the classes and callables of §5.3.
  EXPECT_FALSE(absl::StrContains(bytes, "pathlib"));
  EXPECT_FALSE(absl::StrContains(bytes, "getattr"));
  // The VM rejects a value changed after it was stored, so parsing at all
  // shows every MetadataIndex was BUILT before SETITEM(S) used it as a key.
  absl::StatusOr<pickle::PickleDocument> doc = pickle::Unpickle(bytes);
  ASSERT_TRUE(doc.ok()) << doc.status();
  using pickle::ValueKind;
  const pickle::Value& root = doc->root();
  ASSERT_EQ(root.kind, ValueKind::kObject);
  EXPECT_EQ(root.global, pickle::GlobalKind::kMetadata);
  const auto keys = [](const pickle::Value& dict) {
    std::vector<std::string> out;
    for (const auto& [k, v] : dict.entries) out.emplace_back(k->text);
    return out;
  };
  ASSERT_NE(root.state, nullptr);
  EXPECT_EQ(keys(*root.state), (std::vector<std::string>{"state_dict_metadata", "planner_data", "storage_data",
                                                         "storage_meta", "version"}));
  const pickle::Value& sdm = *root.state->entries[0].second;
  const pickle::Value& tensor = *sdm.entries[0].second;
  EXPECT_EQ(keys(*tensor.state), (std::vector<std::string>{"properties", "size", "chunks"}));
  const pickle::Value& properties = *tensor.state->entries[0].second;
  ASSERT_EQ(properties.state->kind, ValueKind::kTuple);
  EXPECT_EQ(properties.state->items.size(), 5u);
  EXPECT_EQ(sdm.entries[1].second->state, nullptr);  // BytesStorageMetadata: no BUILD
  const pickle::Value& storage = *root.state->entries[2].second;
  EXPECT_EQ(keys(*storage.entries[0].first->state), (std::vector<std::string>{"fqn", "index"}));
  EXPECT_EQ(keys(*storage.entries[1].first->state), (std::vector<std::string>{"fqn", "index", "offset"}));
  EXPECT_EQ(keys(*storage.entries[1].second->state), (std::vector<std::string>{"relative_path", "offset", "length"}));
  const pickle::Value& meta = *root.state->entries[3].second;
  EXPECT_EQ(keys(*meta.state), (std::vector<std::string>{"checkpoint_id", "save_id", "load_id", "modules"}));
  EXPECT_EQ(meta.state->entries[0].second->kind, ValueKind::kString);
  EXPECT_EQ(root.state->entries[4].second->text, "1.0.0");
}

std::vector<std::string> Fixtures() {
  std::vector<std::string> fixtures;
  for (const char* name : {"tp2d_4rank.metadata", "fsdp2_toy.metadata"}) {
    std::optional<std::string> bytes = ReadFixture(name);
    if (bytes) fixtures.push_back(*bytes);
  }
  return fixtures;
}

// The fixtures are one FRAME (PROTO, FRAME n, opcodes..., STOP). FRAME only
// groups opcodes, so the file without it is the same pickle.
std::string WithoutFrame(const std::string& framed) {
  if (framed.size() < 11 || framed[2] != '\x95') return framed;
  return framed.substr(0, 2) + framed.substr(11);
}

TEST(MetadataPickleRobustnessTest, FramesAreOptional) {
  for (const std::string& framed : Fixtures()) {
    ASSERT_EQ(framed[2], '\x95');
    absl::StatusOr<Metadata> a = ParseMetadataPickle(framed);
    absl::StatusOr<Metadata> b = ParseMetadataPickle(WithoutFrame(framed));
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    ExpectIdentical(*b, *a);
  }
}

TEST(MetadataPickleRobustnessTest, EveryProperPrefixIsAnError) {
  const std::vector<std::string> fixtures = Fixtures();
  ASSERT_EQ(fixtures.size(), 2u);
  // With the frame, a prefix fails at the FRAME length check; without it
  // (one fixture, to keep the quadratic cost down), the VM runs up to the cut.
  for (const std::string& bytes : {fixtures[0], fixtures[1], WithoutFrame(fixtures[0])}) {
    for (size_t n = 0; n < bytes.size(); ++n) {
      absl::StatusOr<Metadata> m = ParseMetadataPickle(absl::string_view(bytes).substr(0, n));
      ASSERT_FALSE(m.ok()) << "prefix of " << n << " bytes parsed";
      ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
    }
  }
}

// A corrupted file either fails cleanly or yields a Metadata that the writer
// reproduces (so nothing half-parsed escapes). Crashes and sanitizer reports
// are what this test is for.
struct Outcomes {
  int parsed = 0;
  int rejected = 0;
};

void CheckCorrupted(const std::string& bytes, Outcomes& outcomes) {
  absl::StatusOr<Metadata> m = ParseMetadataPickle(bytes);
  if (!m.ok()) {
    ++outcomes.rejected;
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
    return;
  }
  ++outcomes.parsed;
  absl::StatusOr<Metadata> again = ParseMetadataPickle(WriteMetadataPickle(*m));
  ASSERT_TRUE(again.ok()) << again.status();
  Metadata expected = *m;
  if (!expected.version) expected.version = "1.0.0";
  ASSERT_EQ(*again, expected);
}

TEST(MetadataPickleRobustnessTest, EveryByteOfAFixtureFlipped) {
  std::optional<std::string> fixture = ReadFixture("tp2d_4rank.metadata");
  ASSERT_TRUE(fixture.has_value());
  std::string bytes = *fixture;
  Outcomes outcomes;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char saved = bytes[i];
    bytes[i] = static_cast<char>(saved ^ 0xFF);
    CheckCorrupted(bytes, outcomes);
    if (HasFatalFailure()) FAIL() << "byte " << i << " flipped";
    bytes[i] = saved;
  }
  // Both paths were exercised (e.g. a flipped int parses, a flipped opcode not).
  EXPECT_GT(outcomes.parsed, 0);
  EXPECT_GT(outcomes.rejected, 0);
}

TEST(MetadataPickleRobustnessTest, RandomSingleByteCorruptions) {
  std::vector<std::string> corpus = Fixtures();
  corpus.push_back(WriteMetadataPickle(RichMetadata()));
  std::mt19937 rng(20240601);
  Outcomes outcomes;
  for (const std::string& original : corpus) {
    std::string bytes = original;
    for (int trial = 0; trial < 600; ++trial) {
      const size_t i = rng() % bytes.size();
      const char replacement = static_cast<char>(rng() & 0xFF);
      bytes[i] = replacement;
      CheckCorrupted(bytes, outcomes);
      if (HasFatalFailure()) FAIL() << "byte " << i << " set to " << (replacement & 0xFF);
      bytes[i] = original[i];
    }
  }
  EXPECT_GT(outcomes.parsed, 0);
  EXPECT_GT(outcomes.rejected, 0);
}

}  // namespace
}  // namespace dcplan
