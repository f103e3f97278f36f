#include "tools/dcplan/demo_command.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/dcplan/demo_model.h"

namespace dcplan::tools {
namespace {

using ::testing::HasSubstr;

std::string TempDir(const std::string& name) { return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name); }

TEST(DemoTest, SavesLoadsReshardedAndKeepsTheCheckpointWithDir) {
  const std::string dir = TempDir("demo_ckpt");
  std::string out, err;
  ASSERT_EQ(DemoMain({"--dir", dir, "--scale", "1"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("loaded and verified"), std::string::npos) << out;
  for (const char* file : {".metadata", ".dcplan_checksums", "__0_0.distcp", "__3_0.distcp"}) {
    EXPECT_TRUE(std::filesystem::exists(absl::StrCat(dir, "/", file))) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dir, "/__4_0.distcp")));
  // The directory now holds a checkpoint: refused without --overwrite.
  out.clear();
  err.clear();
  EXPECT_EQ(DemoMain({"--dir", dir, "--scale", "1"}, &out, &err), 1);
  EXPECT_NE(err.find("already holds a checkpoint"), std::string::npos) << err;
  EXPECT_EQ(DemoMain({"--dir", dir, "--scale", "1", "--overwrite", "--ranks", "2", "--load-ranks", "5"}, &out, &err),
            0)
      << err;
}

TEST(DemoTest, AsyncSaveKeepsTheSnapshotWhileTrainingOverwritesTheTensors) {
  const std::string dir = TempDir("async");
  std::string out, err;
  ASSERT_EQ(DemoMain({"--async", "--dir", dir, "--scale", "1", "--ranks", "3", "--load-ranks", "2"}, &out, &err), 0)
      << err << out;
  EXPECT_THAT(out, HasSubstr("AsyncSave returned after"));
  EXPECT_THAT(out, HasSubstr("training steps overwrote every tensor"));
  EXPECT_THAT(out, HasSubstr("loaded and verified"));
}

TEST(DemoTest, UsageErrors) {
  std::string out, err;
  EXPECT_EQ(DemoMain({"--ranks", "0"}, &out, &err), 2);
  EXPECT_EQ(DemoMain({"--bogus"}, &out, &err), 2);
  EXPECT_NE(err.find("unknown argument"), std::string::npos);
  out.clear();
  EXPECT_EQ(DemoMain({"--help"}, &out, &err), 0);
  EXPECT_NE(out.find("usage: dcplan demo"), std::string::npos);
}

TEST(DemoModelTest, VerificationCatchesAWrongElementAndAWrongValue) {
  const DemoModel model = MakeDemoModel(1);
  for (int64_t rank = 0; rank < 3; ++rank) {
    absl::StatusOr<StateDict> saved_view = RankStateDict(model, rank, 3, /*for_load=*/false);
    ASSERT_TRUE(saved_view.ok()) << saved_view.status();
    // What a rank saves under the save placement is not what it loads: verify
    // a state dict built directly with the load placement instead.
    absl::StatusOr<StateDict> destination = RankStateDict(model, rank, 3, /*for_load=*/true);
    ASSERT_TRUE(destination.ok());
    // Zero-filled destinations do not verify.
    EXPECT_FALSE(VerifyRankStateDict(model, *destination, rank, 3).ok());
  }
  // Fill rank 0's destinations with the true contents, then break one element.
  DemoModel loaded_model = model;
  for (DemoTensor& t : loaded_model.tensors) t.save_placement = t.load_placement;
  absl::StatusOr<StateDict> correct = RankStateDict(loaded_model, 0, 3, /*for_load=*/false);
  ASSERT_TRUE(correct.ok());
  EXPECT_TRUE(VerifyRankStateDict(model, *correct, 0, 3).ok());
  const StateDict* embed = correct->FindEntry("model")->FindEntry("embed")->FindEntry("weight");
  const auto& shard = std::get<ShardedTensorValue>(*embed->leaf()).local_shards[0].tensor;
  shard.view({-1})[5].add_(1.0);
  absl::Status broken = VerifyRankStateDict(model, *correct, 0, 3);
  EXPECT_EQ(broken.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(broken.message()).find("model.embed.weight"), std::string::npos) << broken;
}

}  // namespace
}  // namespace dcplan::tools
