#include "api/internal/checksums.h"

#include <xxhash.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/internal/crc32.h"

namespace dcplan::internal {
namespace {

constexpr absl::string_view kHeaderV1 = "dcplan-checksums\t1\txxh3-64";
constexpr absl::string_view kHeaderV2 = "dcplan-checksums\t2\tcrc32";
constexpr absl::string_view kEndTag = "end\t";

absl::string_view Header(ChecksumAlgorithm algorithm) {
  return algorithm == ChecksumAlgorithm::kCrc32 ? kHeaderV2 : kHeaderV1;
}

size_t HexDigits(ChecksumAlgorithm algorithm) { return algorithm == ChecksumAlgorithm::kCrc32 ? 8 : 16; }

std::string Hex16(uint64_t v) { return absl::StrCat(absl::Hex(v, absl::kZeroPad16)); }

// Exactly `digits` lower-case hex digits.
bool ParseHex(absl::string_view s, size_t digits, uint64_t* out) {
  if (s.size() != digits) return false;
  uint64_t v = 0;
  for (char c : s) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(digit);
  }
  *out = v;
  return true;
}

std::string OffsetsText(const std::optional<Shape>& offsets) {
  return offsets ? absl::StrCat("[", absl::StrJoin(*offsets, ", "), "]") : "-";
}

bool ParseHex16(absl::string_view s, uint64_t* out) { return ParseHex(s, 16, out); }

std::optional<Shape> ParseOffsets(absl::string_view s, bool* ok) {
  *ok = true;
  if (s == "-") return std::nullopt;
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') {
    *ok = false;
    return std::nullopt;
  }
  Shape offsets;
  const absl::string_view inner = s.substr(1, s.size() - 2);
  if (inner.empty()) return offsets;
  for (absl::string_view part : absl::StrSplit(inner, ", ")) {
    int64_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      *ok = false;
      return std::nullopt;
    }
    offsets.push_back(v);
  }
  return offsets;
}

}  // namespace

uint64_t Xxh3(absl::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

const char* ChecksumAlgorithmName(ChecksumAlgorithm algorithm) {
  return algorithm == ChecksumAlgorithm::kCrc32 ? "CRC-32" : "XXH3-64";
}

uint64_t ItemChecksumOf(ChecksumAlgorithm algorithm, absl::string_view bytes) {
  return algorithm == ChecksumAlgorithm::kCrc32 ? Crc32(0, bytes.data(), bytes.size()) : Xxh3(bytes);
}

std::string ChecksumText(ChecksumAlgorithm algorithm, uint64_t checksum) {
  return algorithm == ChecksumAlgorithm::kCrc32 ? absl::StrCat(absl::Hex(checksum & 0xFFFFFFFFu, absl::kZeroPad8))
                                                : Hex16(checksum);
}

const ChecksumEntry* ChecksumTable::Find(const std::string& relative_path, int64_t offset) const {
  auto it = entries_.find(std::make_pair(relative_path, offset));
  return it == entries_.end() ? nullptr : &it->second;
}

std::string SerializeChecksums(absl::string_view save_id, const std::vector<ChecksumEntry>& entries,
                               ChecksumAlgorithm algorithm) {
  std::string out = absl::StrCat(Header(algorithm), "\nsave_id\t", absl::CEscape(save_id), "\n");
  for (const ChecksumEntry& e : entries) {
    absl::StrAppend(&out, ChecksumText(algorithm, e.checksum), "\t", absl::CEscape(e.relative_path), "\t", e.offset, "\t", e.length,
                    "\t", absl::CEscape(e.fqn), "\t", OffsetsText(e.chunk_offsets), "\n");
  }
  absl::StrAppend(&out, kEndTag, Hex16(Xxh3(out)), "\n");
  return out;
}

absl::StatusOr<ChecksumTable> ParseChecksums(absl::string_view bytes, absl::string_view source_name) {
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("'", source_name, "' is corrupt: ", why));
  };
  // The trailer: "end\t<hash>\n" closes the file.
  constexpr size_t kTrailerBytes = 4 + 16 + 1;
  if (bytes.size() < kTrailerBytes || bytes.back() != '\n') return corrupt("it does not end with its hash line");
  const size_t body_size = bytes.size() - kTrailerBytes;
  const absl::string_view trailer = bytes.substr(body_size);
  uint64_t recorded = 0;
  if (!absl::StartsWith(trailer, kEndTag) || !ParseHex16(trailer.substr(4, 16), &recorded)) {
    return corrupt("it does not end with its hash line");
  }
  const absl::string_view body = bytes.substr(0, body_size);
  if (Xxh3(body) != recorded) return corrupt("its hash does not match its content");

  std::vector<absl::string_view> lines = absl::StrSplit(body, '\n');
  // The body ends with a newline: the last piece is empty.
  if (lines.size() < 3 || !lines.back().empty() || (lines[0] != kHeaderV2 && lines[0] != kHeaderV1)) {
    return corrupt(
        "unknown format (expected the header line 'dcplan-checksums<TAB>2<TAB>crc32' or, from earlier dcplan, "
        "'dcplan-checksums<TAB>1<TAB>xxh3-64')");
  }
  lines.pop_back();
  ChecksumTable table;
  table.algorithm_ = lines[0] == kHeaderV2 ? ChecksumAlgorithm::kCrc32 : ChecksumAlgorithm::kXxh3_64;
  const size_t digits = HexDigits(table.algorithm_);
  if (!absl::StartsWith(lines[1], "save_id\t") ||
      !absl::CUnescape(lines[1].substr(std::string("save_id\t").size()), &table.save_id_)) {
    return corrupt("line 2 is not a save_id line");
  }
  for (size_t i = 2; i < lines.size(); ++i) {
    const std::vector<absl::string_view> fields = absl::StrSplit(lines[i], '\t');
    ChecksumEntry e;
    bool offsets_ok = false;
    if (fields.size() == 6) e.chunk_offsets = ParseOffsets(fields[5], &offsets_ok);
    if (fields.size() != 6 || !ParseHex(fields[0], digits, &e.checksum) || !absl::CUnescape(fields[1], &e.relative_path) ||
        !absl::SimpleAtoi(fields[2], &e.offset) || !absl::SimpleAtoi(fields[3], &e.length) ||
        !absl::CUnescape(fields[4], &e.fqn) || !offsets_ok || e.offset < 0 || e.length < 0) {
      return corrupt(absl::StrCat("line ", i + 1, " is malformed"));
    }
    auto key = std::make_pair(e.relative_path, e.offset);
    if (!table.entries_.try_emplace(std::move(key), std::move(e)).second) {
      return corrupt(absl::StrCat("line ", i + 1, " repeats an item location"));
    }
  }
  return table;
}

struct AsyncChecksum::State {
  ChecksumAlgorithm algorithm = ChecksumAlgorithm::kCrc32;
  XXH3_state_t* xxh3 = XXH3_createState();
  uint32_t crc = 0;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::pair<const void*, size_t>> queue;
  bool busy = false;  // the worker is on a piece taken off the queue
  bool stop = false;
  std::thread worker;

  ~State() { XXH3_freeState(xxh3); }

  void Add(const void* data, size_t size) {
    if (algorithm == ChecksumAlgorithm::kCrc32) {
      crc = Crc32(crc, data, size);
    } else {
      XXH3_64bits_update(xxh3, data, size);
    }
  }

  void Work() {
    std::unique_lock<std::mutex> lock(mutex);
    while (true) {
      changed.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;  // stop, nothing left
      const auto piece = queue.front();
      queue.pop_front();
      busy = true;
      lock.unlock();
      Add(piece.first, piece.second);
      lock.lock();
      busy = false;
      changed.notify_all();
    }
  }
};

AsyncChecksum::AsyncChecksum() : state_(std::make_unique<State>()) {
  XXH3_64bits_reset(state_->xxh3);
  try {
    state_->worker = std::thread([state = state_.get()] { state->Work(); });
  } catch (const std::system_error&) {
    // No helper thread: every piece is done by the caller.
  }
}

AsyncChecksum::~AsyncChecksum() {
  if (!state_->worker.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->changed.notify_all();
  state_->worker.join();
}

void AsyncChecksum::Drain() {
  std::unique_lock<std::mutex> lock(state_->mutex);
  state_->changed.wait(lock, [&] { return state_->queue.empty() && !state_->busy; });
}

void AsyncChecksum::Reset(ChecksumAlgorithm algorithm) {
  Drain();
  state_->algorithm = algorithm;
  state_->crc = 0;
  XXH3_64bits_reset(state_->xxh3);
}

void AsyncChecksum::Update(const void* data, size_t size) {
  if (size >= kAsyncBytes && state_->worker.joinable()) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->queue.emplace_back(data, size);
    }
    state_->changed.notify_all();
    return;
  }
  Drain();
  state_->Add(data, size);
}

uint64_t AsyncChecksum::Digest() {
  Drain();
  return state_->algorithm == ChecksumAlgorithm::kCrc32 ? state_->crc : XXH3_64bits_digest(state_->xxh3);
}

}  // namespace dcplan::internal
