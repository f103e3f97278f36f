#ifndef DCPLAN_ENGINE_ORDERED_MAP_H_
#define DCPLAN_ENGINE_ORDERED_MAP_H_

// OrderedMap: a map that iterates in insertion order, like a Python dict.
//
// DCP's metadata is built from Python dicts whose order is part of the format
// (the order of `state_dict_metadata`, `planner_data` and `storage_data` is
// what PyTorch writes and reads), so the engine keeps that order explicitly.
// Lookup is O(1) through an index of positions; erasure is not supported
// because no planning step needs it (Python dicts used by DCP only grow).

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace dcplan {

template <typename K, typename V, typename Hash = typename absl::flat_hash_map<K, size_t>::hasher,
          typename Eq = typename absl::flat_hash_map<K, size_t>::key_equal>
class OrderedMap {
 public:
  using value_type = std::pair<K, V>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  OrderedMap() = default;
  OrderedMap(std::initializer_list<value_type> init) {
    for (const auto& kv : init) InsertOrAssign(kv.first, kv.second);
  }

  // Inserts `key` at the end, or assigns in place (keeping its position) if
  // present, exactly like `d[key] = value` in Python.
  V& InsertOrAssign(const K& key, V value) {
    auto [it, inserted] = index_.try_emplace(key, entries_.size());
    if (inserted) {
      entries_.emplace_back(key, std::move(value));
      return entries_.back().second;
    }
    entries_[it->second].second = std::move(value);
    return entries_[it->second].second;
  }

  // Python's `d.setdefault(key, value)`: the existing value, or `value` newly
  // inserted at the end. `inserted` tells which.
  std::pair<V*, bool> TryEmplace(const K& key, V value) {
    auto [it, inserted] = index_.try_emplace(key, entries_.size());
    if (inserted) entries_.emplace_back(key, std::move(value));
    return {&entries_[it->second].second, inserted};
  }

  const V* Find(const K& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  V* Find(const K& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  bool Contains(const K& key) const { return index_.contains(key); }
  // Position of `key` in insertion order, or -1.
  ptrdiff_t PositionOf(const K& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? -1 : static_cast<ptrdiff_t>(it->second);
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  void clear() {
    entries_.clear();
    index_.clear();
  }
  void reserve(size_t n) {
    entries_.reserve(n);
    index_.reserve(n);
  }

  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  const value_type& at_position(size_t i) const { return entries_[i]; }
  value_type& at_position(size_t i) { return entries_[i]; }

  // Equal when the same pairs appear in the same order (order is part of the
  // DCP format, so two maps with the same pairs in another order differ).
  friend bool operator==(const OrderedMap& a, const OrderedMap& b) { return a.entries_ == b.entries_; }
  friend bool operator!=(const OrderedMap& a, const OrderedMap& b) { return !(a == b); }

 private:
  std::vector<value_type> entries_;
  absl::flat_hash_map<K, size_t, Hash, Eq> index_;
};

}  // namespace dcplan

#endif  // DCPLAN_ENGINE_ORDERED_MAP_H_
