#include "api/internal/split_read.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "api/internal/crc32.h"
#include "api/internal/status_macros.h"

namespace dcplan::internal {
namespace {

// The helper's part starts on this boundary of the range, so that neither
// thread's blocks share a cache line or a page of the destination.
constexpr int64_t kSplitAlignment = int64_t{64} << 10;

absl::StatusOr<uint32_t> ReadPart(SplitReader::ReadAtFn read, int64_t begin, int64_t end, char* out, bool crc) {
  uint32_t value = 0;
  for (int64_t at = begin; at < end;) {
    const int64_t n = std::min(SplitReader::kBlockBytes, end - at);
    DCPLAN_RETURN_IF_ERROR(read(at, out, n));
    if (crc) value = Crc32(value, out, static_cast<size_t>(n));
    out += n;
    at += n;
  }
  return value;
}

}  // namespace

// One thread running one task at a time.
struct SplitReader::Helper {
  std::mutex mutex;
  std::condition_variable changed;
  std::function<void()> task;
  bool busy = false;
  bool stop = false;
  std::thread thread;

  void Loop() {
    std::unique_lock<std::mutex> lock(mutex);
    while (true) {
      changed.wait(lock, [&] { return stop || task != nullptr; });
      if (task == nullptr) return;
      std::function<void()> run = std::move(task);
      task = nullptr;
      lock.unlock();
      run();
      lock.lock();
      busy = false;
      changed.notify_all();
    }
  }

  void Start(std::function<void()> run) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      task = std::move(run);
      busy = true;
    }
    changed.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return !busy; });
  }

  ~Helper() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
    if (thread.joinable()) thread.join();
  }
};

SplitReader::SplitReader() = default;
SplitReader::~SplitReader() = default;

absl::StatusOr<uint32_t> SplitReader::Read(ReadAtFn read, ReadAtFn helper_read, int64_t begin, int64_t end,
                                           char* out, bool crc) {
  if (end - begin >= kMinSplitBytes && helper_ == nullptr && !helper_failed_) {
    auto helper = std::make_unique<Helper>();
    try {
      helper->thread = std::thread([state = helper.get()] { state->Loop(); });
      helper_ = std::move(helper);
    } catch (const std::system_error&) {
      helper_failed_ = true;  // no thread: the caller reads everything
    }
  }
  if (end - begin < kMinSplitBytes || helper_ == nullptr) return ReadPart(read, begin, end, out, crc);

  const int64_t first_bytes = (end - begin) / 2 / kSplitAlignment * kSplitAlignment;
  const int64_t split = begin + first_bytes;
  absl::StatusOr<uint32_t> second = uint32_t{0};
  helper_->Start([&] { second = ReadPart(helper_read, split, end, out + first_bytes, crc); });
  absl::StatusOr<uint32_t> first = ReadPart(read, begin, split, out, crc);
  helper_->Wait();
  if (!first.ok()) return first.status();
  if (!second.ok()) return second.status();
  return crc ? Crc32Combine(*first, *second, static_cast<uint64_t>(end - split)) : 0;
}

}  // namespace dcplan::internal
