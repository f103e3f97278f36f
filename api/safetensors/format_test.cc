// The safetensors header and index parsers: well-formed bytes round trip;
// every malformed input is an error naming the file and the tensor.
#include "api/safetensors/format.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan::safetensors {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A file: little-endian length, `json` (unpadded), `data_bytes` zero bytes.
std::string FileWith(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t{json.size()} >> (8 * i)) & 0xff);
  return out + json + std::string(data_bytes, '\0');
}

std::string ErrorOf(const std::string& bytes) {
  absl::StatusOr<Header> header = ParseFileBytes(bytes, "f.safetensors");
  EXPECT_FALSE(header.ok());
  return std::string(header.status().message());
}

TEST(SafetensorsFormatTest, SerializedHeaderParsesBack) {
  const std::vector<TensorEntry> tensors = {{"a", DType::kFloat32, {2, 3}, 0, 24},
                                            {"b.weight", DType::kBFloat16, {4}, 24, 32},
                                            {"empty", DType::kInt64, {0, 5}, 32, 32},
                                            {"scalar", DType::kBool, {}, 32, 33}};
  const std::string header = SerializeHeader(tensors, {{"format", "pt"}});
  EXPECT_EQ(header.size() % 8, 0u);
  absl::StatusOr<Header> parsed = ParseFileBytes(header + std::string(33, 'x'), "f.safetensors");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tensors, tensors);
  EXPECT_EQ(parsed->metadata.at("format"), "pt");
  EXPECT_EQ(parsed->data_start, static_cast<int64_t>(header.size()));
  EXPECT_EQ(header.substr(8, 30), "{\"__metadata__\":{\"format\":\"pt\"");
}

TEST(SafetensorsFormatTest, EveryDTypeNameMapsBothWays) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64",
                           "BOOL", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"}) {
    absl::StatusOr<DType> dtype = DTypeFromName(name);
    ASSERT_TRUE(dtype.ok()) << name;
    EXPECT_EQ(*NameOfDType(*dtype), name);
  }
  EXPECT_FALSE(DTypeFromName("F4").ok());
  EXPECT_FALSE(NameOfDType(DType::kComplex128).ok());
  EXPECT_FALSE(NameOfDType(DType::kQInt8).ok());
}

TEST(SafetensorsFormatTest, HeaderLengthIsBoundedByTheFileAndTheLimit) {
  EXPECT_THAT(ErrorOf("abc"), AllOf(HasSubstr("f.safetensors"), HasSubstr("at least 8 bytes")));
  std::string beyond = FileWith("{}", 0);
  beyond[0] = 100;
  EXPECT_THAT(ErrorOf(beyond), HasSubstr("runs past the end of the file"));
  std::string huge(8, '\0');
  huge[4] = 1;  // 2^32
  EXPECT_THAT(ErrorOf(huge + "{}"), HasSubstr("exceeds the limit of 100000000"));
  std::string max(8, '\xff');
  EXPECT_THAT(ErrorOf(max + "{}"), HasSubstr("exceeds the limit"));
}

TEST(SafetensorsFormatTest, MalformedJsonIsRefused) {
  EXPECT_THAT(ErrorOf(FileWith("{\"a\":", 0)), HasSubstr("invalid JSON"));
  EXPECT_THAT(ErrorOf(FileWith("[1]", 0)), HasSubstr("not a JSON object"));
  EXPECT_THAT(ErrorOf(FileWith("{\"a\":{\"shape\":[[[1]]]}}", 0)), HasSubstr("nested deeper"));
  EXPECT_THAT(ErrorOf(FileWith(std::string(5000, '[') + std::string(5000, ']'), 0)), HasSubstr("nested deeper"));
  EXPECT_THAT(ErrorOf(FileWith("{\"__metadata__\":{\"k\":1}}", 0)), HasSubstr("'k' is not a string"));
  EXPECT_THAT(ErrorOf(FileWith("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                               "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}",
                               8)),
              HasSubstr("the name 'a' appears twice"));
  EXPECT_THAT(ErrorOf(FileWith("{\"a\":\"\xff\"}", 0)), HasSubstr("invalid JSON"));
}

TEST(SafetensorsFormatTest, TensorEntriesAreChecked) {
  auto one = [](const std::string& entry, size_t data) { return FileWith("{\"w\":" + entry + "}", data); };
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}", 4)),
              AllOf(HasSubstr("tensor 'w'"), HasSubstr("unknown safetensors dtype \"F33\"")));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}", 4)),
              HasSubstr("\"shape\" is not a non-negative integer"));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}", 4)),
              HasSubstr("hold 4 bytes, but F32 [2] needs 8"));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}", 4)),
              HasSubstr("overflows"));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}", 4)),
              HasSubstr("begin <= end"));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[1]}", 4)), HasSubstr("no \"data_offsets\""));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 8)),
              HasSubstr("the rest belongs to no tensor"));
  EXPECT_THAT(ErrorOf(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 4)),
              AllOf(HasSubstr("tensor 'w'"), HasSubstr("past the end of the data (4 bytes)")));
}

TEST(SafetensorsFormatTest, OffsetsMustTileTheData) {
  const std::string overlap =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
  EXPECT_THAT(ErrorOf(FileWith(overlap, 8)), AllOf(HasSubstr("tensor 'b'"), HasSubstr("overlap those of 'a'")));
  const std::string gap =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
  EXPECT_THAT(ErrorOf(FileWith(gap, 12)), AllOf(HasSubstr("tensor 'b'"), HasSubstr("a gap of 4 bytes")));
}

TEST(SafetensorsFormatTest, IndexRoundTripsAndRefusesEscapingFileNames) {
  Index index;
  index.total_size = 40;
  index.weight_map = {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}};
  const std::string json = SerializeIndex(index);
  EXPECT_THAT(json, HasSubstr("\"total_size\": 40"));
  absl::StatusOr<Index> parsed = ParseIndexJson(json, "i.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, index);

  for (const char* file : {"../x.safetensors", "", "a/b.safetensors", ".."}) {
    absl::StatusOr<Index> bad =
        ParseIndexJson(std::string("{\"weight_map\":{\"w\":\"") + file + "\"}}", "i.json");
    ASSERT_FALSE(bad.ok()) << file;
    EXPECT_THAT(bad.status().message(), AllOf(HasSubstr("i.json"), HasSubstr("tensor 'w'")));
  }
  EXPECT_THAT(ParseIndexJson("{\"metadata\":{}}", "i.json").status().message(), HasSubstr("no \"weight_map\""));
  EXPECT_THAT(ParseIndexJson("{\"metadata\":{\"total_size\":-3},\"weight_map\":{}}", "i.json").status().message(),
              HasSubstr("total_size"));
  EXPECT_THAT(ParseIndexJson("{\"weight_map\":{\"w\":\"a\",\"w\":\"b\"}}", "i.json").status().message(),
              HasSubstr("'w' appears twice"));
  absl::StatusOr<Index> float_total = ParseIndexJson("{\"metadata\":{\"total_size\":12.0},\"weight_map\":{}}", "i");
  ASSERT_TRUE(float_total.ok());
  EXPECT_EQ(float_total->total_size, 12);
}

}  // namespace
}  // namespace dcplan::safetensors
