// fec: forward error correction for UDP, Reed-Solomon from ISA-L. Both ends run the module.
//
// The sender groups its datagrams k at a time; each goes out at once with a 12-byte header, and
// when the group is full (or older than max_delay_ms when the next datagram comes, or the socket
// closes) m parity datagrams follow. The receiver delivers every datagram as it arrives and, when
// a group has lost some, rebuilds them from any k of the group's k+m datagrams as soon as enough
// have arrived, and delivers them then. So a recovered datagram may come after later ones: the
// added delay is bounded by one group's span (in-order delivery is not implemented yet).
// Datagrams without a valid header pass through unchanged (counted as no_header).
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
// Counters: groups_sent, parity_sent, recovered (datagrams), groups_recovered,
// groups_unrecoverable, no_header.
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
  // Emits what the application gets for one received datagram: itself (without the header),
  // and any datagram of its group that can now be rebuilt.
  void receive(std::string_view datagram, const FecEmit& emit);
  uint64_t recovered = 0, groups_recovered = 0, groups_unrecoverable = 0, no_header = 0;
  ~FecDecoder();

 private:
  struct Group {
    int k = 0;  // the group's real k, known from a parity datagram
    int m = 0;
    bool done = false;
    std::map<int, std::string> shards;  // index -> data payload or parity shard
    bool missing_data() const;
  };
  void try_recover(Group& g, const FecEmit& emit);
  void evict(uint32_t newest);
  std::map<uint32_t, Group> groups_;
  bool have_newest_ = false;
  uint32_t newest_ = 0;
};

}  // namespace l45::shim
