// FileSystemReader's tensor read path: what reaches each destination, and
// that the checksum covers every byte however the read was split between the
// calling thread and the CRC-32 helper thread.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/checkpoint.h"
#include "api/checkpoint_test_util.h"
#include "api/coordinator.h"
#include "api/filesystem.h"
#include "api/filesystem_test_util.h"
#include "api/state_dict.h"
#include "gtest/gtest.h"

namespace dcplan {
namespace {

using namespace testing_util;  // NOLINT

// --- How a tensor reaches its destination -------------------------------------------

// A stored chunk whose destination is a contiguous tensor of its dtype and
// size is read straight into it (same memory, no other tensor); other
// destinations (a transposed view, another dtype, part of a chunk) get a
// copy from the stored tensor. Every path must load the same values.
TEST(ReadPathTest, DirectReadsAndCopiesLoadTheSameValues) {
  const std::string dir = NewTempPath("read_paths");
  const at::Tensor dense = Arange(at::kFloat, {8, 4}, 1.0);
  const at::Tensor half = Arange(at::kFloat, {6, 5}, -3.0).to(at::kBFloat16);
  const at::Tensor big = Arange(at::kFloat, {1536 * 1024}, 0.5);  // 6 MiB: read by two threads
  const at::Tensor converted = Arange(at::kFloat, {4, 3}, 2.0);
  const at::Tensor transposed = Arange(at::kDouble, {5, 6}, 7.0);
  ShardedTensorValue rows{{8, 4}, at::kFloat, {LocalShard{Arange(at::kFloat, {8, 4}, 100.0), {0, 0}}}};
  {
    FileSystemWriter writer(dir);
    SingleProcessCoordinator coordinator;
    absl::StatusOr<Metadata> saved = Save(Dict({{"dense", Value(dense)},
                                                {"half", Value(half)},
                                                {"big", Value(big)},
                                                {"converted", Value(converted)},
                                                {"transposed", Value(transposed)},
                                                {"rows", Value(rows)}}),
                                          writer, coordinator);
    ASSERT_TRUE(saved.ok()) << saved.status();
  }
  const at::Tensor dense_dest = at::zeros({8, 4}, at::kFloat);
  const at::Tensor half_dest = at::zeros({6, 5}, at::kBFloat16);
  const at::Tensor big_dest = at::zeros({1536 * 1024}, at::kFloat);
  const at::Tensor converted_dest = at::zeros({4, 3}, at::kDouble);    // float32 stored, float64 wanted
  const at::Tensor transposed_base = at::zeros({6, 5}, at::kDouble);
  const at::Tensor transposed_dest = transposed_base.t();              // sizes [5, 6], not contiguous
  ShardedTensorValue row_pieces{{8, 4}, at::kFloat, {}};                // two pieces of one stored chunk
  row_pieces.local_shards.push_back(LocalShard{at::zeros({3, 4}), {0, 0}});
  row_pieces.local_shards.push_back(LocalShard{at::zeros({5, 4}), {3, 0}});
  const void* dense_memory = dense_dest.data_ptr();
  StateDict loaded = Dict({{"dense", Value(dense_dest)},
                           {"half", Value(half_dest)},
                           {"big", Value(big_dest)},
                           {"converted", Value(converted_dest)},
                           {"transposed", Value(transposed_dest)},
                           {"rows", Value(row_pieces)}});
  for (bool verify : {true, false}) {
    for (const at::Tensor& t : {dense_dest, half_dest, big_dest, converted_dest, transposed_base}) t.zero_();
    for (const LocalShard& piece : row_pieces.local_shards) piece.tensor.zero_();
    FileSystemReaderOptions options;
    options.verify_checksums = verify;
    absl::Status status = LoadDirect(dir, loaded, options);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(BitwiseEqual(dense_dest, dense));
    EXPECT_EQ(dense_dest.data_ptr(), dense_memory);
    EXPECT_TRUE(BitwiseEqual(half_dest, half));
    EXPECT_TRUE(BitwiseEqual(big_dest, big));
    EXPECT_TRUE(BitwiseEqual(converted_dest, converted.to(at::kDouble)));
    EXPECT_TRUE(BitwiseEqual(transposed_dest.contiguous(), transposed));
    EXPECT_TRUE(BitwiseEqual(transposed_base, transposed.t().contiguous()));
    const at::Tensor whole = Arange(at::kFloat, {8, 4}, 100.0);
    EXPECT_TRUE(BitwiseEqual(row_pieces.local_shards[0].tensor, whole.narrow(0, 0, 3).contiguous()));
    EXPECT_TRUE(BitwiseEqual(row_pieces.local_shards[1].tensor, whole.narrow(0, 3, 5).contiguous()));
  }
}

// A damaged byte is caught wherever it lies in the tensor's bytes: in the
// part the reading thread reads and in the part SplitReader's helper thread
// reads (each checksums its own blocks), next to the split point (half of
// the bytes, rounded down to 64 KiB) and at both ends, for a tensor read
// straight into its destination and for one read into a storage and
// converted.
TEST(ReadPathTest, EveryPartOfATensorsBytesIsVerified) {
  const std::string dir = NewTempPath("read_verified");
  constexpr int64_t kElements = (int64_t{9} << 20) / 4 + 3;  // 9 MiB and 12 bytes: split in two, odd blocks
  const at::Tensor big = Arange(at::kFloat, {kElements}, 0.0);
  {
    FileSystemWriter writer(dir);
    SingleProcessCoordinator coordinator;
    ASSERT_TRUE(Save(Dict({{"big", Value(big)}}), writer, coordinator).ok());
  }
  const std::string intact = *ReadFile(dir + "/__0_0.distcp");
  const std::string bytes = TensorBytes(big);
  const size_t start = intact.find(bytes);
  ASSERT_NE(start, std::string::npos);
  const size_t size = bytes.size();
  const size_t split = size / 2 / 65536 * 65536;
  for (size_t at : {size_t{0}, size_t{1} << 20, split - 1, split, split + (size_t{1} << 20) + 5, size - 1}) {
    std::string damaged = intact;
    damaged[start + at] ^= 0x01;
    ASSERT_TRUE(WriteFile(dir + "/__0_0.distcp", damaged));
    for (at::ScalarType destination_type : {at::kFloat, at::kDouble}) {
      StateDict loaded = Dict({{"big", Value(at::zeros({kElements}, destination_type))}});
      absl::Status status = LoadDirect(dir, loaded);
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << "byte " << at << " " << destination_type;
      EXPECT_EQ(status.message(), "rank 0: checksum mismatch in __0_0.distcp at offset 0 (item 'big' chunk [0]): "
                                  "the file is corrupt")
          << "byte " << at << " " << destination_type;
    }
  }
  ASSERT_TRUE(WriteFile(dir + "/__0_0.distcp", intact));
  for (at::ScalarType destination_type : {at::kFloat, at::kDouble}) {
    StateDict loaded = Dict({{"big", Value(at::zeros({kElements}, destination_type))}});
    ASSERT_TRUE(LoadDirect(dir, loaded).ok()) << destination_type;
    EXPECT_TRUE(BitwiseEqual(*PlainTensorOf(*loaded.FindEntry("big")->leaf()), big.to(destination_type)));
  }
}

}  // namespace
}  // namespace dcplan
