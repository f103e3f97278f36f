#include "tools/dcplan/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dcplan::tools {
namespace {

constexpr int kBarWidth = 30;
constexpr std::chrono::milliseconds kRedrawInterval(100);

}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, std::string unit)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 0)),
      drawing_(enabled && isatty(STDERR_FILENO) == 1),
      unit_(std::move(unit)) {
  Draw(/*force=*/true);
}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Advance(int64_t amount) { Set(done_ + amount); }

void ProgressBar::Set(int64_t done) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  Draw(/*force=*/false);
}

void ProgressBar::Finish() {
  if (finished_) return;
  Draw(/*force=*/true);
  if (drawing_) std::fputs("\n", stderr);
  finished_ = true;
}

std::string ProgressBar::Amount(int64_t value) const {
  if (!unit_.empty()) return absl::StrCat(value);
  return absl::StrFormat("%.1f", static_cast<double>(value) / (1024.0 * 1024.0));
}

void ProgressBar::Draw(bool force) {
  if (!drawing_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  // A total of zero is complete work.
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(fraction * kBarWidth);
  const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
  const std::string unit = unit_.empty() ? "MiB" : unit_;
  const std::string line = absl::StrFormat("\r%s [%s] %3d%% %s/%s %s", label_, bar,
                                           static_cast<int>(fraction * 100), Amount(done_), Amount(total_), unit);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace dcplan::tools
