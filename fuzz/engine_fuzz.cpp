// libFuzzer target for the flow Engine: the input is a sequence of captured packets, run through
// one engine with small caps and short timeouts so eviction, refusal, budget, expiry and
// defragmentation limits are all reached with a few packets.
//   byte 0      config: bit 0 OverlapPolicy::Last, bit 1 RefuseNew, bit 2 key_vlan,
//               bit 3 verify_checksums, bit 4 depth 200, bit 5 history 0, bit 6 no reassembly,
//               bit 7 no defragmentation
//   then records: kind (1 byte), time step (1 byte), length (2 bytes BE), that many bytes (fewer
//               if the input ends).
//     kind < 0xf0: a packet; its link type is kLinks[kind % 8]
//     kind 0xf0:   advance() the clock by the time step; 0xf1: stop_tracking() of the latest
//                  flow opened; 0xf2 / 0xf3: disable_side() Client / Server of it (no bytes);
//                  0xf4: batch mode on or off (packets go through process(span) in batches of
//                  up to 5, flushed before any other record); 0xf5 / 0xf6: the latest flow's
//                  client side Last, server side First (set_overlap_policy)
//     time step:   < 200: that many milliseconds; else (step - 199) * 7 s (past every timeout)
//   An input of odd length: the observer asks for every callback; of even length, not for
//   on_packet, so batches read the commonest frames without a PacketView (step_framed()).
// Invariants: every flow is closed at most once and, after finish(), every flow not stopped
// is closed; delivery per side is contiguous from 0 and within the depth; a state change
// changes something, a handshake completes once and never for a flow picked up mid-stream, a
// retransmission covers only delivered bytes; the caps (flows, buffered bytes) hold after
// every packet; finish() leaves nothing held.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <unordered_map>
#include <vector>

#include "l45/flow/engine.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

constexpr l45::LinkType kLinks[] = {
    l45::LinkType::Ethernet, l45::LinkType::Raw,       l45::LinkType::Ipv4, l45::LinkType::Ipv6,
    l45::LinkType::LinuxSll, l45::LinkType::LinuxSll2, l45::LinkType::Null, l45::LinkType::Loop,
};

// Reads every byte it is given (so ASan sees any span that points at freed or foreign memory).
uint64_t touch(l45::Bytes b) {
  uint64_t h = 0;
  for (std::byte x : b)
    h = h * 31 + uint8_t(x);
  return h;
}

struct Observer : l45::FlowObserver {
  struct Per {
    uint64_t next[2] = {0, 0};
    uint64_t delivered[2] = {0, 0};
    bool closed = false;
    bool stopped = false;
    bool handshake = false;
  };
  std::unordered_map<uint64_t, Per> flows;  // by serial
  l45::FlowHandle latest;
  uint64_t depth = 0;
  uint64_t sink = 0;
  bool packets = true;  // on_packet is asked for

  uint32_t callbacks() const override { return packets ? kAllCallbacks : kOnTcpState; }
  Per& of(const l45::Flow& f) {
    auto it = flows.find(f.serial());
    require(it != flows.end() && !it->second.closed);
    return it->second;
  }
  void on_open(const l45::Flow& f) override {
    require(flows.emplace(f.serial(), Per{}).second);
    latest = f.handle();
    sink += f.uid().size() + f.proto();
  }
  void on_packet(const l45::Flow& f, l45::Side from, const l45::PacketView& v) override {
    of(f);
    sink += touch(v.payload()) + f.counters(from).packets + f.payload_size(from);
    if (f.tcp()) sink += f.tcp()->history().size();
  }
  void on_data(const l45::Flow& f, l45::Side from, uint64_t off, l45::Bytes b) override {
    Per& p = of(f);
    const size_t s = size_t(from);
    require(off == p.next[s] && !b.empty());
    p.next[s] += b.size();
    p.delivered[s] += b.size();
    if (depth) require(p.delivered[s] <= depth);
    sink += touch(b);
  }
  void on_gap(const l45::Flow& f, l45::Side from, uint64_t off, uint64_t len) override {
    Per& p = of(f);
    require(off == p.next[size_t(from)] && len > 0);
    p.next[size_t(from)] += len;
  }
  void on_mismatch(const l45::Flow& f, l45::Side, const l45::StreamMismatch& m) override {
    of(f);
    require(m.length > 0 && m.original.size() == m.length && m.replacement.size() == m.length);
    sink += touch(m.original) + touch(m.replacement);
  }
  void on_anomaly(const l45::Flow& f, l45::Side, l45::DropReason why) override {
    of(f);
    require(why != l45::DropReason::None);
  }
  void on_icmp_error(const l45::Flow& f, l45::Side, const l45::PacketView& v) override {
    of(f);
    sink += touch(v.payload()) + f.icmp_errors();
  }
  void on_tcp_state(const l45::Flow& f, l45::Side, l45::TcpEndpointState before,
                    l45::TcpEndpointState after) override {
    of(f);
    require(before != after && f.tcp());
  }
  void on_handshake(const l45::Flow& f) override {
    Per& p = of(f);
    require(!p.handshake && !f.tcp()->partial());  // once per connection, never mid-stream
    p.handshake = true;
  }
  void on_retransmission(const l45::Flow& f, l45::Side from, uint64_t off, uint64_t len) override {
    Per& p = of(f);
    require(len > 0 && off + len <= p.next[size_t(from)]);  // only bytes already delivered
  }
  void on_orphan(const l45::PacketView& v, l45::DropReason) override { sink += touch(v.data()); }
  void on_malformed(const l45::Packet& pkt, l45::DropReason why) override {
    require(why != l45::DropReason::None);
    sink += touch(pkt.data());
  }
  void on_close(const l45::Flow& f, l45::FlowEnd why) override {
    Per& p = of(f);
    p.closed = true;
    sink += uint8_t(why) + f.missed_bytes();
    for (int s = 0; s < 2; ++s)
      if (const l45::TcpStream* st = f.stream(l45::Side(s)); st && !st->disabled())
        require(st->buffered_bytes() == 0);  // flushed before on_close
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  if (n < 1) return 0;
  const uint8_t c = d[0];
  l45::EngineConfig cfg;
  cfg.max_flows = 64;
  cfg.when_full = c & 2 ? l45::FullPolicy::RefuseNew : l45::FullPolicy::EvictOldestIdle;
  cfg.max_buffered_bytes = 4096;
  cfg.key_vlan = c & 4;
  cfg.verify_checksums = c & 8;
  cfg.reassemble = !(c & 64);
  cfg.defragment = !(c & 128);
  cfg.stream.policy = c & 1 ? l45::OverlapPolicy::Last : l45::OverlapPolicy::First;
  cfg.stream.depth = c & 16 ? 200 : 0;
  cfg.stream.history = c & 32 ? 0 : 256;
  cfg.stream.max_buffered = 2048;
  cfg.stream.max_chunks = 16;
  cfg.timeouts.tcp_opening = l45::Duration::seconds(2);
  cfg.timeouts.tcp_established = l45::Duration::seconds(20);
  cfg.timeouts.tcp_closing = l45::Duration::seconds(5);
  cfg.timeouts.tcp_closed = l45::Duration::seconds(1);
  cfg.timeouts.udp = l45::Duration::seconds(3);
  cfg.timeouts.icmp = l45::Duration::seconds(2);
  cfg.timeouts.other = l45::Duration::seconds(3);
  cfg.defrag.max_datagrams = 8;
  cfg.defrag.max_fragments = 8;
  cfg.defrag.max_bytes = 16384;
  cfg.defrag.timeout = l45::Duration::seconds(2);

  Observer obs;
  obs.depth = cfg.stream.depth;
  obs.packets = n % 2;
  {
    l45::Engine e(cfg, &obs);
    l45::Timestamp now = l45::Timestamp::from_sec_usec(1700000000, 0);
    bool batching = false;
    std::vector<l45::Packet> batch;
    auto checks = [&] {
      require(e.active_flows() <= cfg.max_flows);
      require(e.stats().buffered_bytes <= cfg.max_buffered_bytes);
    };
    auto flush = [&] {
      if (batch.empty()) return;
      e.process(std::span<const l45::Packet>(batch));
      require(e.now() >= batch.back().meta().ts);
      batch.clear();
      checks();
    };
    size_t i = 1;
    while (i + 4 <= n) {
      const uint8_t kind = d[i], step = d[i + 1];
      size_t len = (size_t(d[i + 2]) << 8) | d[i + 3];
      i += 4;
      now = now +
            (step < 200 ? l45::Duration::millis(step) : l45::Duration::seconds(7 * (step - 199)));
      if (kind >= 0xf0) {
        flush();
        if (kind == 0xf4) batching = !batching;
        if (kind == 0xf5)
          e.set_overlap_policy(obs.latest, l45::Side::Client, l45::OverlapPolicy::Last);
        if (kind == 0xf6)
          e.set_overlap_policy(obs.latest, l45::Side::Server, l45::OverlapPolicy::First);
        if (kind == 0xf0) e.advance(now);
        if (kind == 0xf1) {
          if (const l45::Flow* f = e.flow(obs.latest)) obs.flows[f->serial()].stopped = true;
          e.stop_tracking(obs.latest);
        }
        if (kind == 0xf2) e.disable_side(obs.latest, l45::Side::Client);
        if (kind == 0xf3) e.disable_side(obs.latest, l45::Side::Server);
        continue;
      }
      if (len > n - i) len = n - i;
      l45::PacketMeta meta;
      meta.ts = now;
      meta.wire_len = uint32_t(len);
      meta.link = kLinks[kind % 8];
      // A copy: the engine may hold fragments past this call.
      l45::Packet pkt =
          l45::Packet::copy_of({reinterpret_cast<const std::byte*>(d + i), len}, meta);
      i += len;
      if (batching) {
        batch.push_back(std::move(pkt));
        if (batch.size() == 5) flush();
        continue;
      }
      e.process(pkt);
      checks();
      require(e.now() >= now);
    }
    flush();
    e.finish();
    require(e.active_flows() == 0);
    require(e.stats().buffered_bytes == 0);
    uint64_t closed = 0;
    for (const auto& s : e.stats().flows_closed)
      closed += s;
    require(closed == e.stats().flows_created);
  }
  for (const auto& [serial, p] : obs.flows)
    require(p.closed || p.stopped);
  return 0;
}
