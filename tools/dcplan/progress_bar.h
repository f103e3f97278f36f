#ifndef DCPLAN_TOOLS_DCPLAN_PROGRESS_BAR_H_
#define DCPLAN_TOOLS_DCPLAN_PROGRESS_BAR_H_

// A progress bar for long work of the command-line tool, drawn on standard
// error. It is drawn only when enabled and standard error is a terminal, so
// scripts and logs never see control characters:
//
//   ProgressBar bar("verify", total_bytes, /*enabled=*/!quiet);
//   for (...) bar.Advance(n);
//   bar.Finish();
//
// Redraws are limited to about ten a second.

#include <chrono>
#include <cstdint>
#include <string>

namespace dcplan::tools {

class ProgressBar {
 public:
  // `total` is in bytes (shown as MiB) unless `unit` is given ("files").
  ProgressBar(std::string label, int64_t total, bool enabled, std::string unit = "");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Whether anything is drawn (enabled and standard error is a terminal).
  bool drawing() const { return drawing_; }

  void Advance(int64_t amount);
  void Set(int64_t done);
  // Draws the final state and ends the line; later calls do nothing.
  void Finish();

 private:
  void Draw(bool force);
  std::string Amount(int64_t value) const;

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool drawing_;
  bool finished_ = false;
  std::string unit_;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace dcplan::tools

#endif  // DCPLAN_TOOLS_DCPLAN_PROGRESS_BAR_H_
