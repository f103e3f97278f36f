// FileSystemWriter / FileSystemReader: the files a save leaves, the commit
// protocol, and every kind of damage a reader must report instead of loading
// wrong data.
#include "api/filesystem.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "api/checkpoint_test_util.h"
#include "api/filesystem_test_util.h"
#include "api/internal/checksums.h"
#include "api/internal/crc32.h"
#include "api/internal/write_results.h"
#include "api/pickle/metadata_pickle.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "api/tensor_record.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using namespace testing_util;  // NOLINT

// --- Internal formats --------------------------------------------------------------

TEST(WriteResultsTest, RoundTripsAndRejectsDamagedMessages) {
  WriteResult bytes_item;
  bytes_item.index = MetadataIndex{"step", std::nullopt, std::nullopt};
  bytes_item.size_in_bytes = 700;
  bytes_item.storage_info = StorageInfo{"__1_0.distcp", 0, 700, std::nullopt};
  bytes_item.checksum = 0x0123456789abcdefULL;
  WriteResult shard;
  shard.index = MetadataIndex{"layers.0.w", Shape{4, 0}, 3};
  shard.size_in_bytes = 1234;
  shard.storage_info = StorageInfo{"__1_0.distcp", 700, 1234, std::vector<std::string>{"stream.zstd/1"}};
  shard.checksum = ~uint64_t{0};
  WriteResult scalar;
  scalar.index = MetadataIndex{"scale", Shape{}, 0};
  const std::vector<WriteResult> results = {bytes_item, shard, scalar};

  const std::string encoded = internal::EncodeWriteResults(results);
  absl::StatusOr<std::vector<WriteResult>> decoded = internal::DecodeWriteResults(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE((*decoded)[i].index.IdenticalTo(results[i].index)) << i;
    EXPECT_EQ((*decoded)[i].size_in_bytes, results[i].size_in_bytes) << i;
    EXPECT_EQ((*decoded)[i].storage_info, results[i].storage_info) << i;
    EXPECT_EQ((*decoded)[i].checksum, results[i].checksum) << i;
  }
  // A 0-d offset is not an absent one.
  EXPECT_TRUE((*decoded)[2].index.offset.has_value());
  EXPECT_TRUE(internal::DecodeWriteResults(internal::EncodeWriteResults({}))->empty());

  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_EQ(internal::DecodeWriteResults(encoded.substr(0, cut)).status().code(), absl::StatusCode::kDataLoss)
        << cut;
  }
  EXPECT_THAT(std::string(internal::DecodeWriteResults(encoded + "x").status().message()),
              HasSubstr("trailing bytes"));
  std::string bad_magic = encoded;
  bad_magic[0] = 'X';
  EXPECT_FALSE(internal::DecodeWriteResults(bad_magic).ok());
}

// --- Helpers -----------------------------------------------------------------------

StateDict SimpleStateDict(double start) {
  return Dict({{"w", Value(Arange(at::kFloat, {8, 4}, start))},
               {"b", Value(Arange(at::kLong, {6}, start))},
               {"step", Value(c10::IValue(static_cast<int64_t>(start)))}});
}

absl::StatusOr<Metadata> SaveSimple(const std::string& dir, double start, bool overwrite = false) {
  FileSystemWriterOptions options;
  options.overwrite = overwrite;
  FileSystemWriter writer(dir, options);
  SingleProcessCoordinator coordinator;
  return Save(SimpleStateDict(start), writer, coordinator);
}

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const std::string& name : ListDir(dir)) files[name] = *ReadFile(dir + "/" + name);
  return files;
}

const StorageInfo& InfoOf(const Metadata& md, const std::string& fqn, std::optional<Shape> offset) {
  return *md.storage_data->Find(MetadataIndex{fqn, std::move(offset), std::nullopt});
}

// --- What a save leaves ------------------------------------------------------------

TEST(FileSystemWriterTest, OneFilePerRankBytesFirstItemsConcatenated) {
  const std::string dir = NewTempPath("layout");
  absl::StatusOr<Metadata> md = SaveSimple(dir, 1.0);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_THAT(ListDir(dir), ElementsAre(".dcplan_checksums", ".metadata", "__0_0.distcp"));
  const std::string data = *ReadFile(dir + "/__0_0.distcp");

  // storage_data in write order: the bytes item first, then the tensors in
  // plan order, back to back from offset 0 to the end of the file.
  ASSERT_TRUE(md->storage_data.has_value());
  std::vector<std::string> order;
  int64_t expected_offset = 0;
  for (const auto& [index, info] : *md->storage_data) {
    order.push_back(index.fqn);
    EXPECT_EQ(info.relative_path, "__0_0.distcp");
    EXPECT_EQ(info.offset, expected_offset) << index.fqn;
    EXPECT_FALSE(info.transform_descriptors.has_value());
    expected_offset += info.length;
  }
  EXPECT_THAT(order, ElementsAre("step", "w", "b"));
  EXPECT_EQ(expected_offset, static_cast<int64_t>(data.size()));

  // Each tensor slice is a torch.save archive of the tensor.
  const StorageInfo& w = InfoOf(*md, "w", Shape{0, 0});
  absl::StatusOr<at::Tensor> stored =
      ReadTensorRecord(BufferRecordSource(absl::string_view(data).substr(w.offset, w.length)));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(BitwiseEqual(*stored, Arange(at::kFloat, {8, 4}, 1.0)));
  // Whatever offset an item starts at, its tensor's bytes start on a 64-byte
  // boundary of the file.
  for (const auto& [index, info] : *md->storage_data) {
    if (index.fqn == "step") continue;
    absl::StatusOr<TensorRecordLayout> layout =
        ReadTensorRecordLayout(BufferRecordSource(absl::string_view(data).substr(info.offset, info.length)));
    ASSERT_TRUE(layout.ok()) << index.fqn << ": " << layout.status();
    EXPECT_EQ((info.offset + layout->data_offset) % 64, 0) << index.fqn << " at " << info.offset;
  }

  // The checksum file belongs to this save and hashes every slice.
  absl::StatusOr<internal::ChecksumTable> checksums =
      internal::ParseChecksums(*ReadFile(dir + "/.dcplan_checksums"), "checksums");
  ASSERT_TRUE(checksums.ok()) << checksums.status();
  EXPECT_EQ(checksums->save_id(), md->storage_meta->save_id);
  EXPECT_EQ(checksums->algorithm(), internal::ChecksumAlgorithm::kCrc32);
  EXPECT_EQ(checksums->size(), 3u);
  for (const auto& [index, info] : *md->storage_data) {
    const internal::ChecksumEntry* entry = checksums->Find(info.relative_path, info.offset);
    ASSERT_NE(entry, nullptr) << index.fqn;
    EXPECT_EQ(entry->length, info.length);
    const absl::string_view item = absl::string_view(data).substr(info.offset, info.length);
    EXPECT_EQ(entry->checksum, internal::Crc32Portable(0, item.data(), item.size()));
    EXPECT_EQ(entry->fqn, index.fqn);
    EXPECT_EQ(entry->chunk_offsets, index.offset);
  }
  EXPECT_EQ(md->version, "1.0.0");
  EXPECT_EQ(md->storage_meta->checkpoint_id, dir);
  EXPECT_THAT(*md->storage_meta->save_id,
              MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
}

TEST(FileSystemWriterTest, ARankWithNothingToWriteStillCreatesItsFile) {
  const std::string dir = NewTempPath("empty_rank");
  InProcessGroup group(2);
  std::vector<absl::Status> statuses = group.Run([&](int64_t rank, Coordinator& coordinator) {
    FileSystemWriter writer(dir);
    StateDict sd = rank == 0 ? Dict({{"w", Value(at::ones({3}))}}) : Dict({});
    return Save(sd, writer, coordinator).status();
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(ListDir(dir), ElementsAre(".dcplan_checksums", ".metadata", "__0_0.distcp", "__1_0.distcp"));
  EXPECT_EQ(ReadFile(dir + "/__1_0.distcp")->size(), 0u);
}

TEST(FileSystemWriterTest, AnExistingCheckpointNeedsOverwrite) {
  const std::string dir = NewTempPath("existing");
  absl::StatusOr<Metadata> first = SaveSimple(dir, 1.0);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::map<std::string, std::string> before = Snapshot(dir);

  absl::StatusOr<Metadata> refused = SaveSimple(dir, 100.0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(absl::StrCat("checkpoint directory ", dir,
                                     " already holds a checkpoint (.metadata); pass overwrite to replace it")));
  EXPECT_EQ(Snapshot(dir), before);

  absl::StatusOr<Metadata> second = SaveSimple(dir, 100.0, /*overwrite=*/true);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->storage_meta->save_id, first->storage_meta->save_id);
  EXPECT_THAT(ListDir(dir), ElementsAre(".dcplan_checksums", ".metadata", "__0_0.distcp"));
  StateDict loaded = SimpleStateDict(0.0);
  ASSERT_TRUE(LoadDirect(dir, loaded).ok());
  EXPECT_TRUE(BitwiseEqual(*PlainTensorOf(*loaded.FindEntry("w")->leaf()), Arange(at::kFloat, {8, 4}, 100.0)));
  EXPECT_EQ(std::get<c10::IValue>(*loaded.FindEntry("step")->leaf()).toInt(), 100);
}

// A planner whose data never resolves: the writer's error names rank, item
// and file.
class UnresolvableSavePlanner : public SavePlanner {
 public:
  absl::Status SetUpPlanner(const StateDict&, const std::optional<StorageMeta>&, bool) override {
    return absl::OkStatus();
  }
  absl::StatusOr<SavePlan> CreateLocalPlan() override { return SavePlan(); }
  absl::StatusOr<std::pair<std::vector<SavePlan>, Metadata>> CreateGlobalPlan(const std::vector<SavePlan>&) override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<SavePlan> FinishPlan(const SavePlan& plan) override { return plan; }
  absl::StatusOr<WriteData> ResolveData(const WriteItem&) override {
    return absl::ResourceExhaustedError("No space left on device");
  }
};

TEST(FileSystemWriterTest, WriteErrorsNameRankItemAndFileAndAbortCleansUp) {
  const std::string dir = NewTempPath("write_error");
  FileSystemWriter writer(dir);
  ASSERT_TRUE(writer.SetUpStorageWriter(false, 2).ok());
  SavePlan plan;
  WriteItem item;
  item.index = MetadataIndex{"layers.0.w", Shape{4, 0}, 1};
  item.type = WriteItemType::kShard;
  item.tensor_data = TensorWriteData{ChunkBox{{4, 0}, {4, 4}}, TensorProperties{}, Shape{8, 4}};
  plan.items.push_back(item);
  ASSERT_TRUE(writer.PrepareLocalPlan(plan).ok());
  absl::StatusOr<std::vector<SavePlan>> prepared = writer.PrepareGlobalPlan({SavePlan(), SavePlan(), plan});
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ((*prepared)[2].storage_data, "__2_");

  UnresolvableSavePlanner planner;
  absl::StatusOr<std::vector<WriteResult>> results = writer.WriteData((*prepared)[2], planner);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(results.status().message(),
            "rank 2: writing 'layers.0.w' shard at [4, 0] to __2_0.distcp.tmp: No space left on device");
  EXPECT_THAT(ListDir(dir), ElementsAre("__2_0.distcp.tmp"));
  writer.Abort();
  EXPECT_THAT(ListDir(dir), ElementsAre());
}

// --- What a reader must notice -----------------------------------------------------

class ReaderFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempPath("faults");
    absl::StatusOr<Metadata> md = SaveSimple(dir_, 1.0);
    ASSERT_TRUE(md.ok()) << md.status();
    metadata_ = *md;
    data_ = *ReadFile(dir_ + "/__0_0.distcp");
  }

  const StorageInfo& w() const { return InfoOf(metadata_, "w", Shape{0, 0}); }

  // The data file with byte `byte` of w's elements (found by their bytes)
  // xor-ed with `mask`: the archive stays valid, only checksums can tell.
  std::string WithElementByteFlipped(size_t byte, char mask) const {
    const size_t at = data_.find(TensorBytes(Arange(at::kFloat, {8, 4}, 1.0)));
    EXPECT_NE(at, std::string::npos);
    std::string damaged = data_;
    damaged[at + byte] ^= mask;
    return damaged;
  }

  // A checksum file of this save listing every item of `data` under `algorithm`.
  std::string ChecksumFileOf(absl::string_view data, internal::ChecksumAlgorithm algorithm) const {
    std::vector<internal::ChecksumEntry> entries;
    for (const auto& [index, info] : *metadata_.storage_data) {
      entries.push_back({info.relative_path, info.offset, info.length,
                         internal::ItemChecksumOf(algorithm, data.substr(info.offset, info.length)), index.fqn,
                         index.offset});
    }
    return internal::SerializeChecksums(*metadata_.storage_meta->save_id, entries, algorithm);
  }

  std::string dir_;
  Metadata metadata_;
  std::string data_;
};

TEST_F(ReaderFaultTest, IntactCheckpointLoads) {
  StateDict loaded = SimpleStateDict(0.0);
  ASSERT_TRUE(LoadDirect(dir_, loaded).ok());
  EXPECT_TRUE(BitwiseEqual(*PlainTensorOf(*loaded.FindEntry("w")->leaf()), Arange(at::kFloat, {8, 4}, 1.0)));
}

TEST_F(ReaderFaultTest, TruncatedDataFile) {
  const int64_t cut = w().offset + w().length / 2;
  ASSERT_TRUE(WriteFile(dir_ + "/__0_0.distcp", data_.substr(0, cut)));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), absl::StrCat("rank 0: item 'w' chunk [0, 0] at __0_0.distcp offset ", w().offset,
                                           " length ", w().length, " ends past the end of the file (", cut,
                                           " bytes)"));
}

TEST_F(ReaderFaultTest, FlippedByteInAnItem) {
  ASSERT_TRUE(WriteFile(dir_ + "/__0_0.distcp", WithElementByteFlipped(5, 0x40)));

  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), absl::StrCat("rank 0: checksum mismatch in __0_0.distcp at offset ", w().offset,
                                           " (item 'w' chunk [0, 0]): the file is corrupt"));

  // Without verification the damage loads silently.
  FileSystemReaderOptions unchecked;
  unchecked.verify_checksums = false;
  StateDict unverified = SimpleStateDict(0.0);
  ASSERT_TRUE(LoadDirect(dir_, unverified, unchecked).ok());
  EXPECT_FALSE(BitwiseEqual(*PlainTensorOf(*unverified.FindEntry("w")->leaf()), Arange(at::kFloat, {8, 4}, 1.0)));
}

// Anywhere in a tensor item (ZIP headers, data.pkl, the tensor's bytes, the
// data descriptor, the directory): a flipped byte fails the load.
TEST_F(ReaderFaultTest, AFlippedByteAnywhereInATensorItemFailsTheLoad) {
  for (int64_t at = w().offset; at < w().offset + w().length; ++at) {
    std::string damaged = data_;
    damaged[at] ^= 0x01;
    ASSERT_TRUE(WriteFile(dir_ + "/__0_0.distcp", damaged));
    StateDict loaded = SimpleStateDict(0.0);
    absl::Status status = LoadDirect(dir_, loaded);
    ASSERT_EQ(status.code(), absl::StatusCode::kDataLoss) << "byte " << at << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("item 'w' chunk [0, 0]")) << "byte " << at;
  }
}

// A version 1 checksum file (XXH3-64, written by earlier dcplan) is checked.
TEST_F(ReaderFaultTest, Version1ChecksumFilesAreStillChecked) {
  ASSERT_TRUE(WriteFile(dir_ + "/.dcplan_checksums", ChecksumFileOf(data_, internal::ChecksumAlgorithm::kXxh3_64)));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(BitwiseEqual(*PlainTensorOf(*loaded.FindEntry("w")->leaf()), Arange(at::kFloat, {8, 4}, 1.0)));

  ASSERT_TRUE(WriteFile(dir_ + "/__0_0.distcp", WithElementByteFlipped(9, 0x10)));
  status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), absl::StrCat("rank 0: checksum mismatch in __0_0.distcp at offset ", w().offset,
                                           " (item 'w' chunk [0, 0]): the file is corrupt"));
}

// With a version 2 file, the tensor's bytes must also match their ZIP
// record's CRC-32 (here the record is rewritten consistently with the side
// file, as a buggy or hostile writer might).
TEST_F(ReaderFaultTest, TheZipRecordsCrcOfATensorIsChecked) {
  const std::string damaged = WithElementByteFlipped(0, 0x01);
  ASSERT_TRUE(WriteFile(dir_ + "/__0_0.distcp", damaged));
  ASSERT_TRUE(WriteFile(dir_ + "/.dcplan_checksums", ChecksumFileOf(damaged, internal::ChecksumAlgorithm::kCrc32)));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat("rank 0: CRC-32 mismatch in __0_0.distcp at offset ", w().offset,
                                     " (item 'w' chunk [0, 0]): the tensor's bytes have CRC-32 ")));
}

TEST_F(ReaderFaultTest, DamagedMetadataIsAnErrorNeverACrash) {
  const std::string path = dir_ + "/.metadata";
  const std::string original = *ReadFile(path);
  FileSystemReader reader(dir_);
  int errors = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    std::string damaged = original;
    damaged[i] ^= 0x5a;
    ASSERT_TRUE(WriteFile(path, damaged));
    if (!reader.ReadMetadata().ok()) ++errors;
  }
  EXPECT_GT(errors, 0);
  std::string bad_protocol = original;
  bad_protocol[0] ^= 0x5a;
  ASSERT_TRUE(WriteFile(path, bad_protocol));
  absl::Status status = reader.ReadMetadata().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat("'", path, "'")));
  ASSERT_TRUE(WriteFile(path, original.substr(0, original.size() / 2)));
  EXPECT_FALSE(reader.ReadMetadata().ok());
}

TEST_F(ReaderFaultTest, MissingFiles) {
  ASSERT_EQ(std::remove((dir_ + "/__0_0.distcp").c_str()), 0);
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("rank 0: data file __0_0.distcp of " + dir_));

  ASSERT_EQ(std::remove((dir_ + "/.metadata").c_str()), 0);
  status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), absl::StrCat("no checkpoint in ", dir_, " (.metadata missing)"));
}

TEST_F(ReaderFaultTest, DamagedChecksumFile) {
  const std::string path = dir_ + "/.dcplan_checksums";
  std::string checksums = *ReadFile(path);
  checksums[checksums.size() / 2] ^= 0x01;
  ASSERT_TRUE(WriteFile(path, checksums));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat("'", path, "' is corrupt")));
}

TEST_F(ReaderFaultTest, ChecksumFileWithoutAnItem) {
  std::vector<internal::ChecksumEntry> entries;
  for (const auto& [index, info] : *metadata_.storage_data) {
    if (index.fqn != "w") entries.push_back({info.relative_path, info.offset, info.length, 0, index.fqn, index.offset});
  }
  // Same save, wrong sums for "step" and "b", no entry for "w": the first
  // stored chunk in file order ("step") fails.
  ASSERT_TRUE(WriteFile(dir_ + "/.dcplan_checksums",
                        internal::SerializeChecksums(*metadata_.storage_meta->save_id, entries)));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_THAT(std::string(status.message()), HasSubstr("checksum mismatch in __0_0.distcp at offset 0 (item 'step')"));
  entries.erase(entries.begin());  // now "step", the first chunk in file order, is unlisted
  ASSERT_TRUE(WriteFile(dir_ + "/.dcplan_checksums",
                        internal::SerializeChecksums(*metadata_.storage_meta->save_id, entries)));
  status = LoadDirect(dir_, loaded);
  EXPECT_THAT(std::string(status.message()), HasSubstr(".dcplan_checksums does not list item 'step'"));
}

TEST_F(ReaderFaultTest, AChecksumFileOfAnotherSaveIsIgnored) {
  // What PyTorch leaves when it overwrites a dcplan checkpoint: a checksum
  // file whose save id is not the one in .metadata.
  ASSERT_TRUE(WriteFile(dir_ + "/.dcplan_checksums", internal::SerializeChecksums("another-save", {})));
  StateDict loaded = SimpleStateDict(0.0);
  absl::Status status = LoadDirect(dir_, loaded);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(BitwiseEqual(*PlainTensorOf(*loaded.FindEntry("w")->leaf()), Arange(at::kFloat, {8, 4}, 1.0)));
}

TEST_F(ReaderFaultTest, StoredDtypeMustMatchTheMetadata) {
  Metadata lying = metadata_;
  std::get<TensorStorageMetadata>(*lying.state_dict_metadata.Find("w")).properties.dtype = DType::kFloat64;
  ASSERT_TRUE(WriteFile(dir_ + "/.metadata", WriteMetadataPickle(lying)));
  StateDict loaded = Dict({{"w", Value(at::zeros({8, 4}, at::kDouble))},
                           {"b", Value(at::zeros({6}, at::kLong))},
                           {"step", Value(c10::IValue(int64_t{0}))}});
  absl::Status status = LoadDirect(dir_, loaded);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("item 'w' chunk [0, 0] at __0_0.distcp offset " + std::to_string(w().offset)));
  EXPECT_THAT(std::string(status.message()), HasSubstr("the stored tensor has dtype Float, the metadata says Double"));
}

// A chunk that feeds several destination pieces is read and decoded once.
class CountingLoadPlanner : public DefaultLoadPlanner {
 public:
  explicit CountingLoadPlanner(Options options) : DefaultLoadPlanner(options) {}
  absl::StatusOr<at::Tensor> ResolveTensor(const ReadItem& item) override {
    ++resolved;
    return DefaultLoadPlanner::ResolveTensor(item);
  }
  int resolved = 0;
};

TEST_F(ReaderFaultTest, AStoredChunkIsReadOnceForManyReadItems) {
  ShardedTensorValue pieces;
  pieces.global_shape = {8, 4};
  for (int64_t row = 0; row < 8; row += 2) pieces.local_shards.push_back(LocalShard{at::zeros({2, 4}), {row, 0}});
  StateDict loaded = Dict({{"w", Value(pieces)}});
  std::vector<std::pair<int64_t, int64_t>> progress;
  FileSystemReaderOptions options;
  options.progress = [&](int64_t done, int64_t total) { progress.push_back({done, total}); };
  DefaultLoadPlanner::Options partial;
  partial.allow_partial_load = true;  // "b" and "step" stay behind
  CountingLoadPlanner planner(partial);
  absl::Status status = LoadDirect(dir_, loaded, options, &planner);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(planner.resolved, 4);
  EXPECT_THAT(progress, ElementsAre(std::make_pair(w().length, w().length)));
  const at::Tensor original = Arange(at::kFloat, {8, 4}, 1.0);
  for (const LocalShard& shard : std::get<ShardedTensorValue>(*loaded.FindEntry("w")->leaf()).local_shards) {
    EXPECT_TRUE(BitwiseEqual(shard.tensor, original.slice(0, shard.offsets[0], shard.offsets[0] + 2)));
  }
}

}  // namespace
}  // namespace dcplan
