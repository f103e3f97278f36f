#include "api/pickle/pickle_writer.h"

#include "absl/strings/str_cat.h"
#include "api/pickle/pickle_opcodes.h"

namespace dcplan::pickle {

using namespace opcodes;  // NOLINT: opcode names read best unqualified

PickleWriter::PickleWriter(int protocol) : protocol_(protocol == 2 ? 2 : 4) {
  Op(kProto);
  Op(static_cast<uint8_t>(protocol_));
}

void PickleWriter::LittleEndian(uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void PickleWriter::Remember(absl::flat_hash_map<std::string, uint32_t>& table, std::string key) {
  const uint32_t index = memo_size_++;
  table.emplace(std::move(key), index);
  if (protocol_ >= 4) {
    Op(kMemoize);
  } else if (index < 256) {
    Op(kBinPut);
    LittleEndian(index, 1);
  } else {
    Op(kLongBinPut);
    LittleEndian(index, 4);
  }
}

bool PickleWriter::Recall(const absl::flat_hash_map<std::string, uint32_t>& table, absl::string_view key) {
  auto it = table.find(key);
  if (it == table.end()) return false;
  if (it->second < 256) {
    Op(kBinGet);
    LittleEndian(it->second, 1);
  } else {
    Op(kLongBinGet);
    LittleEndian(it->second, 4);
  }
  return true;
}

void PickleWriter::None() { Op(kNone); }

void PickleWriter::Bool(bool value) { Op(value ? kNewTrue : kNewFalse); }

void PickleWriter::Int(int64_t value) {
  if (value >= 0 && value < 256) {
    Op(kBinInt1);
    LittleEndian(static_cast<uint64_t>(value), 1);
  } else if (value >= 0 && value < 65536) {
    Op(kBinInt2);
    LittleEndian(static_cast<uint64_t>(value), 2);
  } else if (value >= INT32_MIN && value <= INT32_MAX) {
    Op(kBinInt);
    LittleEndian(static_cast<uint32_t>(static_cast<int32_t>(value)), 4);
  } else {
    // Shortest little-endian two's complement that keeps the sign bit right.
    const uint64_t bits = static_cast<uint64_t>(value);
    int bytes = 8;
    while (bytes > 1) {
      const int64_t truncated = static_cast<int64_t>(bits << (64 - 8 * (bytes - 1))) >> (64 - 8 * (bytes - 1));
      if (truncated != value) break;
      --bytes;
    }
    Op(kLong1);
    LittleEndian(static_cast<uint64_t>(bytes), 1);
    LittleEndian(bits, bytes);
  }
}

void PickleWriter::String(absl::string_view utf8) {
  if (Recall(strings_, utf8)) return;
  const uint64_t n = utf8.size();
  if (protocol_ >= 4 && n < 256) {
    Op(kShortBinUnicode);
    LittleEndian(n, 1);
  } else if (n <= UINT32_MAX) {
    Op(kBinUnicode);
    LittleEndian(n, 4);
  } else {
    Op(kBinUnicode8);  // protocol 4 only; a >4 GiB string cannot occur in protocol 2
    LittleEndian(n, 8);
  }
  out_.append(utf8.data(), utf8.size());
  Remember(strings_, std::string(utf8));
}

void PickleWriter::Global(absl::string_view module, absl::string_view name) {
  const std::string key = absl::StrCat(module, "\n", name);
  if (Recall(globals_, key)) return;
  if (protocol_ >= 4) {
    String(module);
    String(name);
    Op(kStackGlobal);
  } else {
    Op(kGlobal);
    absl::StrAppend(&out_, key, "\n");
  }
  Remember(globals_, key);
}

void PickleWriter::Mark() { Op(kMark); }
void PickleWriter::EmptyTuple() { Op(kEmptyTuple); }
void PickleWriter::SmallTuple(int count) { Op(count == 1 ? kTuple1 : count == 2 ? kTuple2 : kTuple3); }
void PickleWriter::TupleFromMark() { Op(kTuple); }
void PickleWriter::EmptyList() { Op(kEmptyList); }
void PickleWriter::Append() { Op(kAppend); }
void PickleWriter::AppendsFromMark() { Op(kAppends); }
void PickleWriter::EmptyDict() { Op(kEmptyDict); }
void PickleWriter::SetItem() { Op(kSetItem); }
void PickleWriter::SetItemsFromMark() { Op(kSetItems); }
void PickleWriter::NewObj() { Op(kNewObj); }
void PickleWriter::Reduce() { Op(kReduce); }
void PickleWriter::Build() { Op(kBuild); }

std::string PickleWriter::Finish() && {
  Op(kStop);
  return std::move(out_);
}

}  // namespace dcplan::pickle
