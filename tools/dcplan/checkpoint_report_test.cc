// ChunkLookup and LocationCursor against linear scans of the metadata: their
// guesses of "the next chunk / entry" must never change an answer, whatever
// the order of the lookups, repeated offsets or missing entries.

#include "tools/dcplan/checkpoint_report.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "engine/metadata.h"
#include "gtest/gtest.h"

namespace dcplan::tools {
namespace {

// Two tensors of `chunks` one-dimensional chunks (offsets drawn from a small
// range, so some repeat), a bytes value, and storage_data entries for a
// shuffled subset of them plus a few that name nothing.
Metadata RandomMetadata(std::mt19937& random, int chunks) {
  Metadata metadata;
  metadata.storage_data.emplace();
  std::vector<MetadataIndex> keys;
  for (const std::string fqn : {"model.layers.0.attention.wq.weight", "b"}) {
    TensorStorageMetadata tensor;
    tensor.size = {chunks};
    for (int i = 0; i < chunks; ++i) {
      const int64_t offset = random() % 4 == 0 ? static_cast<int64_t>(random() % chunks) : i;
      tensor.chunks.push_back(ChunkBox{{offset}, {1}});
      keys.push_back(MetadataIndex{fqn, Shape{offset}, std::nullopt});
    }
    metadata.state_dict_metadata.InsertOrAssign(fqn, StorageMetadata(std::move(tensor)));
  }
  metadata.state_dict_metadata.InsertOrAssign("step", StorageMetadata(BytesStorageMetadata{}));
  keys.push_back(MetadataIndex{"step", std::nullopt, std::nullopt});
  keys.push_back(MetadataIndex{"b", Shape{chunks + 5}, std::nullopt});
  keys.push_back(MetadataIndex{"absent", Shape{0}, std::nullopt});
  if (random() % 2 == 0) std::shuffle(keys.begin(), keys.end(), random);
  int64_t offset = 0;
  for (const MetadataIndex& key : keys) {
    if (random() % 8 == 0) continue;  // no location
    metadata.storage_data->InsertOrAssign(key, StorageInfo{"__0_0.distcp", offset++, 1, std::nullopt});
  }
  return metadata;
}

// The first chunk of the tensor `fqn` at `offsets`, by a linear scan.
std::pair<const TensorStorageMetadata*, const ChunkBox*> ScanChunk(const Metadata& metadata,
                                                                   const MetadataIndex& index) {
  for (const auto& [fqn, stored] : metadata.state_dict_metadata) {
    if (fqn != index.fqn) continue;
    const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
    if (tensor == nullptr || !index.offset) return {tensor, nullptr};
    for (const ChunkBox& chunk : tensor->chunks) {
      if (chunk.offsets == *index.offset) return {tensor, &chunk};
    }
    return {tensor, nullptr};
  }
  return {nullptr, nullptr};
}

const StorageInfo* ScanLocation(const Metadata& metadata, const std::string& fqn, const Shape& offsets) {
  for (const auto& [key, info] : *metadata.storage_data) {
    if (key.fqn == fqn && key.offset && *key.offset == offsets) return &info;
  }
  return nullptr;
}

TEST(ChunkLookupTest, AgreesWithALinearScanInStorageOrder) {
  std::mt19937 random(7);
  for (int round = 0; round < 200; ++round) {
    const Metadata metadata = RandomMetadata(random, 1 + round % 20);
    const ChunkLookup lookup(metadata);
    for (const auto& [index, info] : *metadata.storage_data) {
      EXPECT_EQ(lookup.Find(index), ScanChunk(metadata, index)) << "round " << round << ": " << index;
    }
  }
}

TEST(LocationCursorTest, AgreesWithALinearScanInChunkOrder) {
  std::mt19937 random(11);
  for (int round = 0; round < 200; ++round) {
    const Metadata metadata = RandomMetadata(random, 1 + round % 20);
    LocationCursor cursor(metadata);
    for (const auto& [fqn, stored] : metadata.state_dict_metadata) {
      const auto* tensor = std::get_if<TensorStorageMetadata>(&stored);
      if (tensor == nullptr) continue;
      for (const ChunkBox& chunk : tensor->chunks) {
        EXPECT_EQ(cursor.Find(fqn, chunk.offsets), ScanLocation(metadata, fqn, chunk.offsets))
            << "round " << round << ": " << fqn << " " << ShapeToString(chunk.offsets);
      }
    }
  }
}

TEST(LocationCursorTest, NoStorageDataFindsNothing) {
  Metadata metadata;
  LocationCursor cursor(metadata);
  EXPECT_EQ(cursor.Find("w", Shape{0}), nullptr);
}

}  // namespace
}  // namespace dcplan::tools
