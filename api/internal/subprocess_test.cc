#include "api/internal/subprocess.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace dcplan::internal {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ProcessSpec Shell(const std::string& script) { return ProcessSpec{{"/bin/sh", "-c", script}, {}, ""}; }

TEST(RunProcessesTest, ReportsExitCodesInSpecOrder) {
  absl::StatusOr<std::vector<ProcessOutcome>> outcomes =
      RunProcesses({Shell("exit 0"), Shell("exit 3"), Shell("kill -9 $$")}, absl::Seconds(30));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 3u);
  EXPECT_TRUE((*outcomes)[0].Succeeded());
  EXPECT_TRUE((*outcomes)[1].exited);
  EXPECT_EQ((*outcomes)[1].exit_code, 3);
  EXPECT_FALSE((*outcomes)[1].Succeeded());
  EXPECT_FALSE((*outcomes)[2].exited);
  EXPECT_EQ((*outcomes)[2].signal, 9);
  for (const ProcessOutcome& outcome : *outcomes) EXPECT_FALSE(outcome.killed_at_deadline);
}

TEST(RunProcessesTest, ReportsEachProcesssPeakResidentMemory) {
  // dd reads its 64 MiB block into one buffer: it touches all of it.
  const ProcessSpec dd{{"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}, {}, TempPath("dd_output")};
  absl::StatusOr<std::vector<ProcessOutcome>> outcomes = RunProcesses({dd, Shell("exit 0")}, absl::Seconds(30));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_TRUE((*outcomes)[0].Succeeded()) << ToString((*outcomes)[0]);
  EXPECT_GE((*outcomes)[0].peak_rss_bytes, int64_t{64} << 20);
  EXPECT_GT((*outcomes)[1].peak_rss_bytes, 0);
  EXPECT_LT((*outcomes)[1].peak_rss_bytes, int64_t{32} << 20);
}

TEST(RunProcessesTest, KillsProcessesStillRunningAtTheDeadline) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<ProcessOutcome>> outcomes =
      RunProcesses({Shell("exec sleep 60"), Shell("exit 0")}, absl::Milliseconds(500));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE((*outcomes)[0].killed_at_deadline);
  EXPECT_FALSE((*outcomes)[0].Succeeded());
  EXPECT_EQ((*outcomes)[0].signal, 9);
  EXPECT_TRUE((*outcomes)[1].Succeeded());
  EXPECT_FALSE((*outcomes)[1].killed_at_deadline);
}

TEST(RunProcessesTest, SetsEnvironmentAndRedirectsOutput) {
  const std::string path = TempPath("subprocess_test_output.txt");
  ProcessSpec spec = Shell("echo \"out:$DCPLAN_SUBPROCESS_TEST\"; echo err >&2; test -n \"$PATH\"");
  spec.env = {{"DCPLAN_SUBPROCESS_TEST", "rank 2"}};
  spec.output_path = path;
  absl::StatusOr<std::vector<ProcessOutcome>> outcomes = RunProcesses({spec}, absl::Seconds(30));
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  // PATH survives: the override adds to the parent's environment.
  EXPECT_TRUE((*outcomes)[0].Succeeded()) << ToString((*outcomes)[0]);
  EXPECT_EQ(ReadAll(path), "out:rank 2\nerr\n");
}

TEST(RunProcessesTest, AMissingExecutableIsAnError) {
  absl::StatusOr<std::vector<ProcessOutcome>> outcomes =
      RunProcesses({Shell("exec sleep 60"), ProcessSpec{{"/nonexistent/dcplan-binary"}, {}, ""}}, absl::Seconds(30));
  EXPECT_FALSE(outcomes.ok());
  EXPECT_FALSE(RunProcesses({ProcessSpec{}}, absl::Seconds(1)).ok());
}

TEST(PickFreeLoopbackPortTest, GivesAUsablePort) {
  absl::StatusOr<int> port = PickFreeLoopbackPort();
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  EXPECT_LE(*port, 65535);
}

TEST(CurrentExecutableTest, NamesThisTest) {
  absl::StatusOr<std::string> path = CurrentExecutable();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_NE(path->find("subprocess_test"), std::string::npos) << *path;
}

}  // namespace
}  // namespace dcplan::internal
