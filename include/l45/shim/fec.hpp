// fec: forward error correction for UDP, Reed-Solomon from ISA-L. Both ends run the module.
//
// The sender groups its datagrams k at a time; each goes out at once with a 12-byte header, and
// when the group is full (or older than max_delay_ms when the next datagram comes, or the socket
// closes) m parity datagrams follow. The receiver rebuilds lost datagrams from any k of the
// group's k+m as soon as enough have arrived, and delivers in order: a datagram waits behind a
// gap until the gap is filled (arrival or rebuild) or for max_delay_ms at most, then the gap is
// given up (gaps_skipped). The shim wakes the module at that deadline from recv, poll, select
// and epoll_wait, so a waiting program gets what follows the gap in time. A datagram that comes
// after its gap was given up is delivered at once. Datagrams without a valid header pass
// through unchanged (no_header). Group numbers are not expected to wrap (2^32 groups).
//
// Wire format (integers big-endian):
//   offset size field
//   0      2    magic "LF" (0x4c 0x46)
//   2      1    version, 1
//   3      1    kind: 0 data, 1 parity
//   4      1    k: datagrams in the group (a parity datagram gives the group's real k, which is
//               smaller than the configured one for a group flushed early)
//   5      1    m: parity datagrams of the group
//   6      1    index in the group: data 0..k-1, parity k..k+m-1
//   7      1    reserved, 0
//   8      4    group number
//   12     ...  data: the application's datagram; parity: one coded shard of S bytes, where
//               each data datagram counts as the shard [length (2 bytes), bytes, zeros up to S]
//               and S = 2 + the group's longest datagram. The code is ISA-L's Cauchy matrix
//               (gf_gen_cauchy1_matrix with k+m rows), so any k shards give back the group.
//
// Parameters: k (1-128, default 10), m (1-64, default 3), max_delay_ms (0-10000, default 20).
// Counters: parity_sent, recovered (datagrams), groups_recovered, groups_unrecoverable,
// gaps_skipped, no_header.
//
//   name = "fec-video"
//   module = "fec"
//   [match]
//   protocol = "udp"
//   ports = [5000]
//   [params]
//   k = 10
//   m = 3
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace l45::shim {

constexpr size_t kFecHeader = 12;

struct FecParams {
  int k = 10;
  int m = 3;
  uint64_t max_delay_ns = 20'000'000;
};
// Reads the module's [params]; nullopt and `why` on a bad one.
std::optional<FecParams> parse_fec_params(const std::vector<std::pair<std::string, std::string>>& p,
                                          std::string* why);

using FecEmit = std::function<void(std::string_view)>;

class FecEncoder {
 public:
  explicit FecEncoder(FecParams p) : p_(p) {}
  // Emits the datagram with its header; then the group's parity when it is full. `now_ns` is a
  // monotonic time: a group older than max_delay is closed (parity sent) before this datagram.
  void send(std::string_view datagram, uint64_t now_ns, const FecEmit& emit);
  // Sends the parity of a group not yet full (at close).
  void flush(const FecEmit& emit);
  uint64_t groups_sent = 0, parity_sent = 0;

 private:
  FecParams p_;
  uint32_t group_ = 0;
  uint64_t started_ns_ = 0;
  std::vector<std::string> data_;
};

class FecDecoder {
 public:
  explicit FecDecoder(uint64_t max_delay_ns = 20'000'000) : max_delay_(max_delay_ns) {}
  // Takes one received datagram (at monotonic `now_ns`) and emits, in order, what the
  // application can have now: datagrams up to the first gap, rebuilt ones included.
  void receive(std::string_view datagram, uint64_t now_ns, const FecEmit& emit);
  // Gives up on gaps that have held datagrams back for max_delay, and emits what follows them.
  void tick(uint64_t now_ns, const FecEmit& emit);
  // When tick must run next; 0 when nothing is held.
  uint64_t deadline() const;
  uint64_t recovered = 0, groups_recovered = 0, groups_unrecoverable = 0, no_header = 0;
  uint64_t gaps_skipped = 0;
  ~FecDecoder();

 private:
  struct Group {
    int k = 0;  // data datagrams in the group: the configured k, the real one once parity came
    int m = 0;
    bool done = false;
    std::map<int, std::string> shards;  // index -> data payload or parity shard
    bool missing_data() const;
  };
  struct Held {
    std::string data;
    uint64_t arrival;
  };
  static uint64_t key(uint32_t group, int index) {
    return (uint64_t{group} << 8) | uint64_t(index);
  }
  void hold(uint32_t group, int index, std::string data, uint64_t now, const FecEmit& emit);
  void release(uint64_t now, const FecEmit& emit);
  void try_recover(uint32_t group, Group& g, uint64_t now, const FecEmit& emit);
  void evict(uint32_t newest);
  uint64_t max_delay_;
  std::map<uint32_t, Group> groups_;
  bool have_newest_ = false;
  uint32_t newest_ = 0;
  // In-order delivery: the next (group, index) the application gets, and what waits behind it.
  bool started_ = false;
  uint32_t next_group_ = 0;
  int next_index_ = 0;
  std::map<uint64_t, Held> held_;
  std::map<uint32_t, int> group_k_;  // data datagrams per group, for groups not yet passed
  std::multiset<uint64_t> arrivals_;
};

}  // namespace l45::shim
