#ifndef DCPLAN_TOOLS_DCPLAN_DEMO_COMMAND_H_
#define DCPLAN_TOOLS_DCPLAN_DEMO_COMMAND_H_

// `dcplan demo`: the main job. Saves a small sharded model (nested model and
// optimizer-like state: FSDP shards, a 2-D block-sharded tensor, replicated
// tensors, non-tensor values) from N in-process ranks, loads it into M ranks
// with another sharding, verifies every element and value, and reports files,
// bytes and throughput.

#include <string>
#include <vector>

namespace dcplan::tools {

// 0: saved, loaded and verified; 1: a save, load or verification failed; 2:
// usage error.
int DemoMain(const std::vector<std::string>& args, std::string* stdout_text, std::string* stderr_text);

std::string DemoHelp();

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_DEMO_COMMAND_H_
