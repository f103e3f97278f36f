#ifndef DCPLAN_API_FILESYSTEM_TEST_UTIL_H_
#define DCPLAN_API_FILESYSTEM_TEST_UTIL_H_

// Helpers shared by the FileSystemWriter / FileSystemReader tests.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/filesystem.h"
#include "api/planners.h"
#include "api/state_dict.h"
#include "engine/metadata.h"
#include "engine/plan.h"

namespace dcplan::testing_util {

// start, start + 1, ... in `type`, shaped `shape`.
inline at::Tensor Arange(at::ScalarType type, at::IntArrayRef shape, double start) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  return at::arange(start, start + static_cast<double>(numel), at::TensorOptions().dtype(type)).reshape(shape);
}

// One rank's load without a coordinator, so that messages are the storage
// layer's own.
inline absl::Status LoadDirect(const std::string& dir, StateDict& sd, FileSystemReaderOptions options = {},
                               LoadPlanner* planner = nullptr) {
  FileSystemReader reader(dir, std::move(options));
  DefaultLoadPlanner default_planner;
  if (planner == nullptr) planner = &default_planner;
  absl::StatusOr<Metadata> md = reader.ReadMetadata();
  if (!md.ok()) return md.status();
  absl::Status status = planner->SetUpPlanner(&sd, *md, true);
  if (status.ok()) status = reader.SetUpStorageReader(*md, true, 0);
  if (!status.ok()) return status;
  absl::StatusOr<LoadPlan> plan = planner->CreateLocalPlan();
  if (!plan.ok()) return plan.status();
  absl::StatusOr<std::vector<LoadPlan>> global = planner->CreateGlobalPlan({*plan});
  if (!global.ok()) return global.status();
  absl::StatusOr<LoadPlan> final_plan = planner->FinishPlan(global->at(0));
  if (!final_plan.ok()) return final_plan.status();
  return reader.ReadData(*final_plan, *planner);
}

}  // namespace dcplan::testing_util

#endif  // DCPLAN_API_FILESYSTEM_TEST_UTIL_H_
