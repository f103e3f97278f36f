// ReadCheckpoint's cross-checks of index and files, PlanCheckpoint's
// canonical layout, and ForEachByteRun against a brute-force walk over
// elements.
#include "api/safetensors/directory.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/safetensors/byte_runs.h"
#include "api/safetensors/format.h"
#include "api/safetensors/layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_files.h"

namespace dcplan::safetensors {
namespace {

using ::dcplan::test_files::NewTempDir;
using ::dcplan::test_files::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Writes a file holding `tensors` (F32, 1-D, consecutive) with zero data.
void WriteTensors(const std::string& dir, const std::string& name, const std::map<std::string, int64_t>& tensors) {
  std::vector<TensorEntry> entries;
  int64_t offset = 0;
  for (const auto& [tensor, elements] : tensors) {
    entries.push_back({tensor, DType::kFloat32, {elements}, offset, offset + 4 * elements});
    offset += 4 * elements;
  }
  ASSERT_TRUE(WriteFile(dir + "/" + name, SerializeHeader(entries, {}) + std::string(offset, '\0')));
}

void WriteIndex(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                std::optional<int64_t> total = std::nullopt) {
  Index index;
  index.total_size = total;
  index.weight_map = weight_map;
  ASSERT_TRUE(WriteFile(dir + "/" + kIndexFileName, SerializeIndex(index)));
}

TEST(SafetensorsDirectoryTest, ReadsAnIndexedCheckpointAsDcpMetadata) {
  const std::string dir = NewTempDir("st_dir");
  WriteTensors(dir, "a.safetensors", {{"x", 2}, {"y", 3}});
  WriteTensors(dir, "b.safetensors", {{"z", 1}});
  WriteIndex(dir, {{"x", "a.safetensors"}, {"y", "a.safetensors"}, {"z", "b.safetensors"}}, 24);
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->files.size(), 2u);
  EXPECT_TRUE(IndexProblems(*checkpoint).empty());
  const Metadata metadata = ToDcpMetadata(*checkpoint);
  EXPECT_EQ(metadata.state_dict_metadata.size(), 3u);
  MetadataIndex y;
  y.fqn = "y";
  y.offset = Shape{0};
  const StorageInfo* where = metadata.storage_data->Find(y);
  ASSERT_NE(where, nullptr);
  EXPECT_EQ(where->relative_path, "a.safetensors");
  EXPECT_EQ(where->offset, checkpoint->files[0].header.data_start + 8);
  EXPECT_EQ(where->length, 12);
}

TEST(SafetensorsDirectoryTest, IndexAndFilesMustAgree) {
  const std::string dir = NewTempDir("st_disagree");
  WriteTensors(dir, "a.safetensors", {{"x", 2}, {"extra", 1}});
  WriteIndex(dir, {{"x", "a.safetensors"}, {"w", "missing.safetensors"}});
  EXPECT_THAT(ReadCheckpoint(dir).status().message(),
              AllOf(HasSubstr(kIndexFileName), HasSubstr("'missing.safetensors', which does not exist")));
  WriteIndex(dir, {{"x", "a.safetensors"}, {"w", "a.safetensors"}});
  EXPECT_THAT(ReadCheckpoint(dir).status().message(), HasSubstr("tensor 'extra' is in 'a.safetensors' but the index does not list it"));
  WriteIndex(dir, {{"x", "a.safetensors"}, {"extra", "a.safetensors"}, {"w", "a.safetensors"}});
  EXPECT_THAT(ReadCheckpoint(dir).status().message(),
              HasSubstr("tensor 'w' is mapped to 'a.safetensors', which has no such tensor"));
  WriteIndex(dir, {{"x", "a.safetensors"}, {"extra", "a.safetensors"}}, 99);
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT(IndexProblems(*checkpoint), ElementsAre(HasSubstr("total_size is 99 but the tensors hold 12 bytes")));
  WriteIndex(dir, {{"x", "../a.safetensors"}});
  EXPECT_THAT(ReadCheckpoint(dir).status().message(), HasSubstr("not a plain file name"));
}

TEST(SafetensorsDirectoryTest, FindsSingleFilesAndReportsEmptyDirectories) {
  const std::string dir = NewTempDir("st_single");
  EXPECT_FALSE(IsSafetensorsDirectory(dir));
  EXPECT_TRUE(absl::IsNotFound(ReadCheckpoint(dir).status()));
  WriteTensors(dir, "adapter.safetensors", {{"x", 1}});
  EXPECT_TRUE(IsSafetensorsDirectory(dir));
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->files[0].name, "adapter.safetensors");
  ASSERT_TRUE(WriteFile(dir + "/model.safetensors", std::string("\x10\0\0\0\0\0\0\0{}", 10)));
  EXPECT_THAT(ReadCheckpoint(dir).status().message(),
              AllOf(HasSubstr("model.safetensors"), HasSubstr("runs past the end of the file")));
}

TEST(SafetensorsLayoutTest, SplitsBySizeInNameOrder) {
  std::vector<TensorSpec> tensors = {{"c", DType::kFloat32, {25}},   // 100 bytes
                                     {"a", DType::kFloat32, {10}},   // 40
                                     {"b", DType::kFloat32, {10}},   // 40
                                     {"d", DType::kFloat32, {100}}}; // 400 (over the limit: alone)
  LayoutOptions options;
  options.max_shard_bytes = 100;
  absl::StatusOr<PlannedCheckpoint> planned = PlanCheckpoint(tensors, options);
  ASSERT_TRUE(planned.ok()) << planned.status();
  std::vector<std::vector<std::string>> files;
  for (const FileHeader& file : planned->checkpoint.files) {
    files.emplace_back();
    for (const TensorEntry& t : file.header.tensors) files.back().push_back(t.name);
  }
  EXPECT_THAT(files, ElementsAre(ElementsAre("a", "b"), ElementsAre("c"), ElementsAre("d")));
  EXPECT_EQ(planned->checkpoint.files[2].name, "model-00003-of-00003.safetensors");
  EXPECT_THAT(planned->index_json, HasSubstr("\"total_size\": 580"));
  for (size_t f = 0; f < 3; ++f) {
    absl::StatusOr<Header> header =
        ParseFileBytes(planned->header_bytes[f] + std::string(planned->checkpoint.files[f].file_size -
                                                                  planned->header_bytes[f].size(), '\0'),
                       "f");
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(*header, planned->checkpoint.files[f].header);
  }
  options.max_shard_bytes = 10000;
  planned = PlanCheckpoint(tensors, options);
  ASSERT_TRUE(planned.ok());
  EXPECT_EQ(planned->checkpoint.files.size(), 1u);
  EXPECT_EQ(planned->checkpoint.files[0].name, "model.safetensors");
  EXPECT_TRUE(planned->index_json.empty());
}

TEST(SafetensorsLayoutTest, UserMappingAndBadInput) {
  LayoutOptions options;
  options.file_of = std::map<std::string, std::string>{{"a", "z.safetensors"}, {"b", "y.safetensors"}};
  absl::StatusOr<PlannedCheckpoint> planned =
      PlanCheckpoint({{"a", DType::kInt8, {1}}, {"b", DType::kInt8, {1}}}, options);
  ASSERT_TRUE(planned.ok()) << planned.status();
  EXPECT_EQ(planned->checkpoint.files[0].name, "y.safetensors");
  EXPECT_THAT(PlanCheckpoint({{"c", DType::kInt8, {1}}}, options).status().message(),
              HasSubstr("tensor 'c': the file mapping does not place it"));
  options.file_of = std::map<std::string, std::string>{{"a", "../a.safetensors"}};
  EXPECT_THAT(PlanCheckpoint({{"a", DType::kInt8, {1}}}, options).status().message(), HasSubstr("not a plain"));
  EXPECT_THAT(PlanCheckpoint({{"a", DType::kComplex128, {1}}}, {}).status().message(),
              AllOf(HasSubstr("tensor 'a'"), HasSubstr("no dtype for complex128")));
  EXPECT_THAT(PlanCheckpoint({{"a", DType::kInt8, {1}}, {"a", DType::kInt8, {1}}}, {}).status().message(),
              HasSubstr("named twice"));
  EXPECT_THAT(PlanCheckpoint({{"a", DType::kInt64, {int64_t{1} << 62}}}, {}).status().message(),
              HasSubstr("overflows"));
}

TEST(SafetensorsLayoutTest, ParsesByteSizes) {
  EXPECT_EQ(*ParseByteSize("5GB"), 5'000'000'000);
  EXPECT_EQ(*ParseByteSize("500mb"), 500'000'000);
  EXPECT_EQ(*ParseByteSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("1000"), 1000);
  EXPECT_FALSE(ParseByteSize("GB").ok());
  EXPECT_FALSE(ParseByteSize("5XB").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("9999999999TB").ok());
}

// Oracle: every element of the box, in row-major box order, with its byte
// offset in the tensor; consecutive elements that are adjacent in the
// tensor merge into one run.
std::vector<ByteRun> BruteForceRuns(const Shape& shape, int64_t element_size, const Shape& offsets,
                                    const Shape& sizes) {
  std::vector<ByteRun> runs;
  int64_t volume = 1;
  for (int64_t s : sizes) volume *= s;
  for (int64_t e = 0; e < volume; ++e) {
    int64_t rest = e, linear = 0, stride = 1;
    std::vector<int64_t> index(sizes.size());
    for (size_t d = sizes.size(); d-- > 0;) {
      index[d] = rest % sizes[d];
      rest /= sizes[d];
    }
    for (size_t d = shape.size(); d-- > 0;) {
      linear += (offsets[d] + index[d]) * stride;
      stride *= shape[d];
    }
    const int64_t at = linear * element_size;
    if (!runs.empty() && runs.back().tensor_offset + runs.back().length == at) {
      runs.back().length += element_size;
    } else {
      runs.push_back({at, e * element_size, element_size});
    }
  }
  return runs;
}

TEST(SafetensorsByteRunsTest, MatchesABruteForceWalkOverElements) {
  const Shape shape = {4, 3, 5};
  int cases = 0;
  for (int64_t o0 = 0; o0 < 4; ++o0)
    for (int64_t s0 = 0; o0 + s0 <= 4; ++s0)
      for (int64_t o1 = 0; o1 < 3; ++o1)
        for (int64_t s1 = 1; o1 + s1 <= 3; ++s1)
          for (int64_t o2 = 0; o2 < 5; o2 += 2)
            for (int64_t s2 = 1; o2 + s2 <= 5; s2 += 2) {
              std::vector<ByteRun> runs;
              ASSERT_TRUE(ForEachByteRun(shape, 2, {o0, o1, o2}, {s0, s1, s2}, [&](const ByteRun& run) {
                            runs.push_back(run);
                            return absl::OkStatus();
                          }).ok());
              const std::vector<ByteRun> expected = BruteForceRuns(shape, 2, {o0, o1, o2}, {s0, s1, s2});
              ASSERT_EQ(runs.size(), expected.size()) << o0 << s0 << o1 << s1 << o2 << s2;
              for (size_t i = 0; i < runs.size(); ++i) {
                EXPECT_EQ(runs[i].tensor_offset, expected[i].tensor_offset);
                EXPECT_EQ(runs[i].box_offset, expected[i].box_offset);
                EXPECT_EQ(runs[i].length, expected[i].length);
              }
              ++cases;
            }
  EXPECT_GT(cases, 100);
  std::vector<ByteRun> scalar;
  ASSERT_TRUE(ForEachByteRun({}, 8, {}, {}, [&](const ByteRun& run) {
                scalar.push_back(run);
                return absl::OkStatus();
              }).ok());
  ASSERT_EQ(scalar.size(), 1u);
  EXPECT_EQ(scalar[0].length, 8);
  EXPECT_FALSE(ForEachByteRun({4}, 4, {3}, {2}, [](const ByteRun&) { return absl::OkStatus(); }).ok());
}

}  // namespace
}  // namespace dcplan::safetensors
