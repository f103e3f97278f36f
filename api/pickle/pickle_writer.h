#ifndef DCPLAN_API_PICKLE_PICKLE_WRITER_H_
#define DCPLAN_API_PICKLE_PICKLE_WRITER_H_

// PickleWriter: emits Python pickle opcodes (protocol 2 or 4) into a string.
//
// A thin, explicit layer: the caller decides the object graph opcode by
// opcode (globals, NEWOBJ, REDUCE, BUILD, containers). The writer chooses the
// compact encodings CPython uses (BININT1/BININT2/BININT/LONG1,
// SHORT_BINUNICODE/BINUNICODE/BINUNICODE8, TUPLE1-3) and memoizes globals and
// strings so that repeats become BINGET/LONG_BINGET. It does not emit FRAME
// opcodes (optional in protocol 4). Strings must be valid UTF-8 for Python to
// load the result; the writer does not check.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace dcplan::pickle {

class PickleWriter {
 public:
  // Writes PROTO `protocol` (2 or 4; any other value is treated as 4).
  explicit PickleWriter(int protocol = 4);

  void None();
  void Bool(bool value);
  void Int(int64_t value);
  void String(absl::string_view utf8);  // memoized by content
  // GLOBAL (protocol 2) or STACK_GLOBAL (protocol 4), memoized.
  void Global(absl::string_view module, absl::string_view name);

  void Mark();
  void EmptyTuple();
  // Packs the top `count` values (1-3) into a tuple with TUPLE1/2/3.
  void SmallTuple(int count);
  void TupleFromMark();  // TUPLE
  void EmptyList();
  void Append();          // APPEND
  void AppendsFromMark();  // APPENDS
  void EmptyDict();
  void SetItem();          // SETITEM
  void SetItemsFromMark();  // SETITEMS
  void NewObj();
  void Reduce();
  void Build();

  // Emits `count` list items (written by `write_item(i)`) into the list on
  // top of the stack, batched like CPython: APPENDS per 1000, APPEND for a
  // batch of one.
  template <typename F>
  void ListItems(size_t count, F&& write_item) {
    Batched(count, write_item, /*dict=*/false);
  }
  // The same for dict items: `write_item(i)` writes key then value.
  template <typename F>
  void DictItems(size_t count, F&& write_item) {
    Batched(count, write_item, /*dict=*/true);
  }

  // Writes STOP and returns the pickle.
  std::string Finish() &&;

 private:
  static constexpr size_t kBatchSize = 1000;  // CPython's batch size

  template <typename F>
  void Batched(size_t count, F& write_item, bool dict) {
    for (size_t start = 0; start < count; start += kBatchSize) {
      const size_t end = count - start > kBatchSize ? start + kBatchSize : count;
      if (end - start == 1) {
        write_item(start);
        dict ? SetItem() : Append();
        continue;
      }
      Mark();
      for (size_t i = start; i < end; ++i) write_item(i);
      dict ? SetItemsFromMark() : AppendsFromMark();
    }
  }

  void Op(uint8_t op) { out_.push_back(static_cast<char>(op)); }
  void LittleEndian(uint64_t value, int bytes);
  // Memoizes the value on top of the stack under the next index.
  void Remember(absl::flat_hash_map<std::string, uint32_t>& table, std::string key);
  // Emits a memo reference; true if `key` was memoized.
  bool Recall(const absl::flat_hash_map<std::string, uint32_t>& table, absl::string_view key);

  int protocol_;
  std::string out_;
  uint32_t memo_size_ = 0;
  absl::flat_hash_map<std::string, uint32_t> strings_;
  absl::flat_hash_map<std::string, uint32_t> globals_;
};

}  // namespace dcplan::pickle

#endif  // DCPLAN_API_PICKLE_PICKLE_WRITER_H_
