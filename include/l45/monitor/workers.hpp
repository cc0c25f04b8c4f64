// Shared-nothing workers: which worker (one flow engine, one MonitorContext, one core) each
// packet goes to, so that every packet of a flow meets the same engine (mOS's per-core model,
// as a NIC's receive-side scaling spreads packets over queues).
//
// The rule. A packet goes to worker hash(key) * N >> 64, where key is the flow key the engine
// itself keys the packet on (key_of(): innermost IP pair, protocol and ports in canonical
// order, so both directions give one key; an ICMP error gives the key of the flow it quotes),
// hashed with flow_key_hash() under the dispatcher's seed. Packets with no such key go by their
// innermost IP pair and protocol (canonical too); packets without IP go to worker 0.
//
// IP fragments. A non-first fragment carries no ports and a tunnelled datagram's first fragment
// does not show its inner flow, so no rule on one fragment alone can send every fragment where
// the flow's whole packets go. The dispatcher runs the engine's own defragmenter (same limits)
// on the side: a fragment is held until its datagram is whole, then the datagram's key picks
// the worker and every fragment of it goes there, in arrival order, right after one another
// (the worker's engine reassembles the same datagram again: its fragment counters match a
// single engine's). Fragments arriving after their datagram completed follow it there. A
// datagram that never completes is released, by its IP pair, when it times out (the
// defragmenter's timeout, in packet time) or at flush(). Addresses alone for every packet
// would need none of this but spreads a trace with few hosts over few workers (a NIC's
// 2-tuple mode); the hash of the 4-tuple keeps any trace's flows spread.
//
// Time. The dispatcher tells each emitted packet the clock of the whole input before it (the
// largest timestamp pushed before the packet that caused the emission). A worker that calls
// MonitorContext::advance(clock) before process() expires idle flows and fragments at the same
// packet times as one engine over the whole input would: per-worker results, merged, equal the
// single engine's (workers_test checks it on the bundled and the shared captures).
//
// Flow ids: each engine numbers its own flows (Flow::serial, Flow::uid), so merge by content or
// by PacketMeta::frame of the packet that opened the flow, not by uid.
//
// The dispatcher is single-threaded (the reader's thread); workers share nothing with it but
// the packets it hands out (shares of the reader's buffers: Packet::share()).
//
//   FlowDispatcher d({.workers = 2});
//   std::vector<std::vector<std::pair<Packet, Timestamp>>> share(2);
//   auto emit = [&](unsigned w, const Packet& p, Timestamp clock) {
//     share[w].emplace_back(p.share(), clock);
//   };
//   for (const Packet& p : pkts) d.push(p, emit);
//   d.flush(emit);
//   // worker w: for (auto& [p, clock] : share[w]) { ctx.advance(clock); ctx.process(p); }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "l45/core/time.hpp"
#include "l45/flow/ip_defrag.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

struct DispatchConfig {
  unsigned workers = 1;
  // The same as the engines' (EngineConfig::hash_seed): fixed, so a file splits the same way
  // every run; draw a random one live, so traffic cannot be aimed at one worker.
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  bool defragment = true;  // as EngineConfig::defragment: false sends fragments by IP pair
  DefragLimits defrag;     // as EngineConfig::defrag
};

struct DispatchStats {
  uint64_t packets = 0;
  uint64_t fragments_held = 0;      // fragments that waited for their datagram
  uint64_t fragments_released = 0;  // of those, sent by IP pair (datagram never completed)
};

class FlowDispatcher {
 public:
  // (worker, packet, clock): `p` is valid during the call only (share() it to keep it).
  using Emit = std::function<void(unsigned worker, const Packet& p, Timestamp clock)>;

  explicit FlowDispatcher(const DispatchConfig& cfg = {});
  ~FlowDispatcher();
  FlowDispatcher(const FlowDispatcher&) = delete;
  FlowDispatcher& operator=(const FlowDispatcher&) = delete;

  // Emits `p` now, or (an IP fragment) once its datagram is whole or given up.
  void push(const Packet& p, const Emit& emit);
  // End of input: fragments still held go out, by their IP pair.
  void flush(const Emit& emit);

  // The worker of a packet that is not a fragment (or of a reassembled datagram): a pure
  // function of its decode and the seed.
  unsigned worker_of(const PacketView& v) const;
  unsigned workers() const { return cfg_.workers; }
  const DispatchStats& stats() const { return stats_; }

 private:
  struct Frags;
  unsigned by_ip_pair(const PacketView& v) const;
  unsigned pick(uint64_t hash) const;
  void push_fragment(const Packet& p, const PacketView& v, Timestamp before, const Emit& emit);

  DispatchConfig cfg_;
  DispatchStats stats_;
  Timestamp clock_{};
  std::unique_ptr<Frags> frags_;
};

}  // namespace l45
