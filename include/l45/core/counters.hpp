// Named counters that a component exposes to the user (`--stats`, JSON). A component owns a
// CounterSet, registers its counters once at construction and bumps them by reference on the
// hot path (a plain uint64_t increment, no lookup).
//
//   CounterSet stats;
//   uint64_t& packets = stats.add("packets", "packets read");
//   ++packets;
#pragma once

#include <cstdint>
#include <deque>
#include <string>

namespace l45 {

class CounterSet {
 public:
  struct Entry {
    std::string name;
    std::string help;
    uint64_t value = 0;
  };
  // The returned reference stays valid for the life of the set.
  uint64_t& add(std::string name, std::string help = {});
  const std::deque<Entry>& entries() const { return entries_; }
  const uint64_t* find(std::string_view name) const;

 private:
  std::deque<Entry> entries_;  // deque: references survive growth
};

}  // namespace l45
