#include "l45/flow/engine.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

#include "l45/packet/icmp.hpp"
#include "l45/packet/ip_proto.hpp"
#include "l45/packet/tcp.hpp"

namespace l45 {

namespace {

// Timeout classes (FlowTable), one per state group.
enum : uint8_t {
  kTcpOpening,
  kTcpEstablished,
  kTcpClosing,
  kTcpClosed,
  kUdp,
  kIcmp,
  kOther,
};

constexpr std::string_view kEndNames[] = {"closed", "idle_timeout", "evicted", "reused",
                                          "end_of_input"};

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool closed_state(TcpEndpointState s) {
  return s == TcpEndpointState::Closed || s == TcpEndpointState::TimeWait ||
         s == TcpEndpointState::Reset;
}

FlowTableConfig table_config(const EngineConfig& c) {
  FlowTableConfig t;
  t.max_flows = c.max_flows;
  t.when_full = c.when_full;
  t.hash_seed = c.hash_seed;
  t.timeouts[kTcpOpening] = c.timeouts.tcp_opening;
  t.timeouts[kTcpEstablished] = c.timeouts.tcp_established;
  t.timeouts[kTcpClosing] = c.timeouts.tcp_closing;
  t.timeouts[kTcpClosed] = c.timeouts.tcp_closed;
  t.timeouts[kUdp] = c.timeouts.udp;
  t.timeouts[kIcmp] = c.timeouts.icmp;
  t.timeouts[kOther] = c.timeouts.other;
  return t;
}

}  // namespace

std::string_view flow_end_name(FlowEnd e) {
  return kEndNames[static_cast<size_t>(e)];
}

std::string Flow::uid() const {
  return flow_uid(serial_);
}

std::string flow_uid(uint64_t serial) {
  static constexpr char kB62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint64_t a = splitmix64(serial), b = splitmix64(a ^ serial);
  std::string s = "C";
  for (int i = 0; i < 17; ++i) {
    uint64_t& w = i < 9 ? a : b;
    s += kB62[w % 62];
    w /= 62;
  }
  return s;
}

uint64_t Flow::payload_size(Side s) const {
  return tcp_ ? tcp_->payload_size(s) : side_[size_t(s)].payload_bytes;
}

uint64_t Flow::missed_bytes() const {
  if (!tcp_) return 0;
  return tcp_->streams[0].counters().gap_bytes + tcp_->streams[1].counters().gap_bytes;
}

// Adapts one side's stream delivery to the observer and the engine's counters.
class Engine::Sink final : public StreamSink {
 public:
  Sink(Engine& e, const Flow& f, Side s) : e_(e), f_(f), s_(s) {}
  void on_data(uint64_t off, Bytes b) override {
    e_.stats_.stream_bytes += b.size();
    e_.obs_->on_data(f_, s_, off, b);
  }
  void on_gap(uint64_t off, uint64_t len) override {
    ++e_.stats_.stream_gaps;
    e_.stats_.stream_gap_bytes += len;
    e_.obs_->on_gap(f_, s_, off, len);
  }
  void on_retransmission(uint64_t off, uint64_t len) override {
    e_.obs_->on_retransmission(f_, s_, off, len);
  }
  void on_mismatch(const StreamMismatch& m) override {
    ++e_.stats_.stream_mismatches;
    e_.obs_->on_mismatch(f_, s_, m);
  }

 private:
  Engine& e_;
  const Flow& f_;
  Side s_;
};

Engine::Engine(const EngineConfig& cfg, FlowObserver* observer)
    : cfg_(cfg),
      obs_(observer ? observer : &none_),
      budget_(cfg.max_buffered_bytes),
      table_(table_config(cfg)),
      defrag_(cfg.defrag) {
  cfg_.stream.budget = &budget_;
  cfg_.stream.totals = &stream_totals_;
  cfg_.stream.blocks = &stream_blocks_;
  bounds_ = obs_->packet_bounds();
  const uint32_t cb = observer ? obs_->callbacks() : 0;
  want_packet_ = cb & FlowObserver::kOnPacket;
  want_tcp_state_ = cb & FlowObserver::kOnTcpState;
}

// Flows still open (no finish()) give their TCP state back; finish() would report them.
Engine::~Engine() {
  table_.clear([this](FlowHandle, CloseReason, Flow& f) { free_tcp(f); });
}

void* Engine::TcpSlab::take_fresh() {
  if (fresh_ == kBlocksPerChunk) {
    chunks_.emplace_back(HugeAlloc<std::byte>().allocate(kChunkBytes));
    fresh_ = 0;
  }
  return chunks_.back().get() + fresh_++ * sizeof(Flow::Tcp);
}

void Engine::TcpSlab::give(void* block) {
  std::memcpy(block, &free_, sizeof free_);
  free_ = block;
}

size_t Engine::TcpSlab::bytes() const {
  return chunks_.size() * kChunkBytes + chunks_.capacity() * sizeof(chunks_[0]);
}

void Engine::free_tcp(Flow& f) {
  if (!f.tcp_) return;
  f.tcp_->~Tcp();
  tcp_slab_.give(f.tcp_);
  f.tcp_ = nullptr;
}

const EngineStats& Engine::stats() const {
  stats_.buffered_bytes = budget_.used();
  return stats_;
}

size_t Engine::tcp_state_bytes() {
  return sizeof(Flow::Tcp);
}

size_t Engine::memory_bytes() const {
  return table_.memory_bytes() + tcp_slab_.bytes() + budget_.used();
}

// Every packet first: counted, and the clock moved to it (expiring what is due).
[[gnu::always_inline]] inline void Engine::begin(const Packet& pkt) {
  ++stats_.packets;
  stats_.bytes += pkt.meta().wire_len;
  pkt_ts_ = pkt.meta().ts;
  if (pkt_ts_ > now_) now_ = pkt_ts_;
  // perf: the check inline, the call (a large frame) only when a flow is due (l45 bench
  // bench-small: the call was ~20 instructions a packet).
  if (table_.expiry_due(now_)) expire();
}

// One packet, decoded: everything process() does after the decode. `ahead`: its key and hash
// when the batch driver computed them (nullptr: computed here).
// perf: step(), handle() and tcp_segment() are inlined into their callers (each has one or
// two): their call frames were ~55 instructions a packet (l45 bench many-flows).
[[gnu::always_inline]] inline void Engine::step(const Packet& pkt, const PacketView& v,
                                                const Ahead* ahead) {
  begin(pkt);

  if (!v.ok()) {
    ++stats_.undecodable;
    stats_.drops.add(v.error());
    obs_->on_malformed(pkt, v.error());
    return;
  }
  if (v.fragment().is_fragment && cfg_.defragment) {
    DecodeOptions opt;
    opt.verify_checksums = cfg_.verify_checksums;
    std::optional<Packet> whole;
    PushResult r = defrag_.push(pkt.share(), v, now_, &whole);
    if (r.anomaly != DropReason::None) stats_.drops.add(r.anomaly);
    if (r.outcome == DefragOutcome::Dropped) stats_.drops.add(r.reason);
    if (!whole) {
      ++stats_.fragments_absorbed;
      return;
    }
    PacketView w = PacketView::decode(*whole, opt);
    if (!w.ok()) {
      ++stats_.undecodable;
      stats_.drops.add(w.error());
      obs_->on_malformed(*whole, w.error());
      return;
    }
    cur_pkt_ = &*whole;
    handle(w, nullptr);
    cur_pkt_ = nullptr;
    return;
  }
  cur_pkt_ = &pkt;
  handle(v, ahead);
  cur_pkt_ = nullptr;
}

// The packet's flow key (none: a.kp empty) and its hash.
// perf: inline in its two callers, with key_into()'s fast path (l45 bench many-flows: the
// calls were ~25 instructions a packet).
[[gnu::always_inline]] inline bool Engine::key_ahead(const PacketView& v, Ahead& a) const {
  FlowKeyOptions ko;
  ko.key_vlan = cfg_.key_vlan;
  a.done = true;
  FlowKeyWords w;
  a.keyed = key_into(v, ko, a.kp, w);
  if (a.keyed) a.hash = table_.hash(a.kp.key, w);
  return a.keyed;
}

[[gnu::always_inline]] inline void Engine::handle(const PacketView& v, const Ahead* ahead) {
  if (v.ip_layers().empty()) {
    ++stats_.non_ip;
    obs_->on_orphan(v, DropReason::None);
    return;
  }
  Ahead here;
  if (!ahead || !ahead->done) {
    key_ahead(v, here);
    ahead = &here;
  }
  if (!ahead->keyed) {
    ++stats_.no_key;
    stats_.drops.add(DropReason::FlowNoKey);
    obs_->on_orphan(v, DropReason::FlowNoKey);
    return;
  }
  const KeyedPacket& kp = ahead->kp;
  if (kp.icmp_error) {
    FlowHandle h = table_.find(kp.key, ahead->hash);
    Flow* f = table_.get(h);
    if (!f) {
      ++stats_.no_key;
      stats_.drops.add(DropReason::IcmpErrorNoFlow);
      obs_->on_orphan(v, DropReason::IcmpErrorNoFlow);
      return;
    }
    ++f->icmp_errors_;
    ++stats_.icmp_errors;
    ++stats_.flow_packets;
    const FlowDir dir = table_.flow_dir(h, kp.dir);
    const Side from =
        f->tcp_ ? f->tcp_->side_of(dir) : (dir == FlowDir::Forward ? Side::Client : Side::Server);
    if (!f->stopped_) obs_->on_icmp_error(*f, from, v);
    return;
  }
  track(v, kp, ahead->hash);
}

void Engine::process(const Packet& pkt) {
  DecodeOptions opt;
  opt.verify_checksums = cfg_.verify_checksums;
  const PacketView v = PacketView::decode(pkt, opt);
  if (bounds_) obs_->on_packet_begin(pkt);
  step(pkt, v, nullptr);
  if (bounds_) obs_->on_packet_end(pkt);
}

// The batch driver: every packet of a batch is decoded and keyed first (neither depends on
// the engine's state), then the flows they name are prefetched in two more passes (the index
// bucket; then the record and the Flow; then its TCP state), each pass over the whole batch so
// the misses of one pass have the length of a pass to arrive; then each packet gets the same
// step() as process() gives it (or, read as a TcpFrame, step_framed(), with the same effects),
// in order. Lookups stay exact: only the prefetches guess.
void Engine::process(std::span<const Packet> pkts) {
  if (!batch_) batch_ = std::make_unique<Batch>();
  // perf: views built in place (PacketView is trivially destructible, 432 bytes): no copy.
  auto& views = batch_->views;
  Ahead* const ahead = batch_->ahead;
  const Flow** const guess = batch_->guess;
  DecodeOptions opt;
  opt.verify_checksums = cfg_.verify_checksums;
  const bool framing = !bounds_ && !want_packet_ && !cfg_.verify_checksums &&
                       std::endian::native == std::endian::little;
  while (!pkts.empty()) {
    const size_t n = std::min(pkts.size(), kBatch);
    // perf: the next batch's headers are fetched while this one is worked on (l45 bench
    // bench-small, 1,500-byte frames in a trace larger than the LLC: each header was a miss the
    // decode waited for; median 0.052 -> 0.042 s, REP=5 /tmp/ab runs alternating). Two lines:
    // the link, IP and TCP headers may cross one.
    for (size_t i = n, e = std::min(pkts.size(), n + kBatch); i < e; ++i) {
      const Bytes d = pkts[i].data();
      if (d.empty()) continue;
      __builtin_prefetch(d.data());
      if (d.size() > 63) __builtin_prefetch(d.data() + 63);
    }
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = pkts[i];
      ahead[i].done = false;
      batch_->framed[i] = false;
      // perf: the commonest frame without a PacketView (step_framed()), when nothing asks
      // for the view of every packet (on_packet, the packet bounds) and checksums are not
      // verified. Its key is key_into()'s for the view.
      if (framing && p.meta().link == LinkType::Ethernet &&
          batch_->frame[i].parse(p.data(), p.meta().wire_len)) {
        const TcpFrame& fr = batch_->frame[i];
        const TcpView t = fr.tcp();
        FlowKeyWords w;
        key_ipv4(fr.ip_header(), t.src_port(), t.dst_port(), 0, ip_proto::kTcp, ahead[i].kp, w);
        ahead[i].done = ahead[i].keyed = true;
        ahead[i].hash = table_.hash(ahead[i].kp.key, w);
        table_.prefetch_index(ahead[i].hash);
        batch_->framed[i] = true;
        continue;
      }
      // perf: the inline decode (its fast path in this loop), not the call decode(Packet).
      const PacketView* v = new (views[i])
          PacketView(PacketView::decode(p.meta().link, p.data(), p.meta().wire_len, opt));
      // A fragment to reassemble is keyed on its datagram, once that is whole.
      if (v->ok() && !(v->fragment().is_fragment && cfg_.defragment) && key_ahead(*v, ahead[i]))
        table_.prefetch_index(ahead[i].hash);
    }
    for (size_t i = 0; i < n; ++i)
      guess[i] = ahead[i].done && ahead[i].keyed ? table_.prefetch_flow(ahead[i].hash) : nullptr;
    for (size_t i = 0; i < n; ++i)
      if (guess[i]) prefetch_tcp(*guess[i]);
    for (size_t i = 0; i < n; ++i) {
      // perf: the streams' history a few packets ahead, once their TCP state has arrived: a
      // data segment adds to it, and the close releases it (l45 bench many-flows: the release
      // at the close waited on that line, 5% of the samples, perf). A guess only: the flow may
      // be another by then, but its TCP state is live or null, never freed memory (the slab
      // keeps its chunks until finish()).
      if (const size_t j = i + kHistoryAhead; j < n && guess[j] && guess[j]->tcp_) {
        guess[j]->tcp_->streams[0].prefetch_history();
        guess[j]->tcp_->streams[1].prefetch_history();
      }
      if (batch_->framed[i]) {
        step_framed(pkts[i], batch_->frame[i], ahead[i], views[i]);
        continue;
      }
      if (bounds_) obs_->on_packet_begin(pkts[i]);
      step(pkts[i], *std::launder(reinterpret_cast<const PacketView*>(views[i])), &ahead[i]);
      if (bounds_) obs_->on_packet_end(pkts[i]);
    }
    pkts = pkts.subspan(n);
  }
}

namespace {
// A packet carried in a tunnel: a VLAN tag, an MPLS label or more than one IP header.
bool tunnelled(const PacketView& v) {
  return !v.vlan_ids().empty() || !v.mpls_labels().empty() || v.ip_layers().size() > 1;
}
}  // namespace

// Only for a tunnelled() flow (start_flow(); others have path id 0).
uint32_t Engine::intern_tunnel(const PacketView& v) {
  auto ips = v.ip_layers();
  std::string path;
  auto add = [&path](const std::string& s) {
    if (!path.empty()) path += ' ';
    path += s;
  };
  for (uint16_t id : v.vlan_ids())
    add("vlan:" + std::to_string(id));
  for (uint32_t l : v.mpls_labels())
    add("mpls:" + std::to_string(l));
  // Outer IP headers: which tunnel they carry is the next layer after each of them.
  auto layers = v.layers();
  size_t ip_seen = 0;
  for (size_t i = 0; i < layers.size() && ip_seen + 1 < ips.size(); ++i) {
    if (layers[i].kind != LayerKind::Ipv4 && layers[i].kind != LayerKind::Ipv6) continue;
    std::string kind = "ipip";
    if (i + 1 < layers.size()) {
      LayerKind k = layers[i + 1].kind;
      if (k == LayerKind::Gre) kind = "gre";
      if (k == LayerKind::Udp && i + 2 < layers.size() && layers[i + 2].kind == LayerKind::Vxlan)
        kind = "vxlan";
    }
    const IpLayer& ip = ips[ip_seen++];
    add(kind + ":" + ip.src().to_string() + ">" + ip.dst().to_string());
  }
  // Few distinct paths exist, and this runs once per new tunnelled flow: a linear search.
  for (size_t id = 1; id < tunnels_.size(); ++id)
    if (tunnels_[id] == path) return uint32_t(id);
  tunnels_.push_back(path);
  return uint32_t(tunnels_.size() - 1);
}

void Engine::start_flow(FlowHandle h, Flow& f, const PacketView& v, const KeyedPacket& kp) {
  f.handle_ = h;
  f.key_ = table_.key(h);
  f.client_is_a_ = kp.dir == KeyDir::Forward;  // the first packet's sender is the client
  if (auto ic = v.icmp()) {
    f.icmp_type_ = ic->type();
    f.icmp_code_ = ic->code();
  } else if (auto ic6 = v.icmpv6()) {
    f.icmp_type_ = ic6->type();
    f.icmp_code_ = ic6->code();
  }
  f.vlan_ = v.vlan_ids().empty() ? 0 : v.vlan_ids().back();
  f.serial_ = ++serial_;
  f.first_ = f.last_ = pkt_ts_;
  // perf: the call only for a tunnelled flow (l45 bench many-flows: ~30 instructions a flow).
  f.tunnel_ = tunnelled(v) ? intern_tunnel(v) : 0;
  if (f.proto() == ip_proto::kTcp) {
    f.tcp_ = new (tcp_slab_.take()) Flow::Tcp(cfg_.stream);
  }
  ++stats_.flows_created;
  table_.set_timeout_class(h, timeout_class(f));
}

// perf: inline (l45 bench many-flows: called on half the packets, the call was a third of it).
[[gnu::always_inline]] inline uint8_t Engine::timeout_class(const Flow& f) const {
  if (f.tcp_) {
    const TcpEndpoint& c = f.tcp_->endpoint(Side::Client);
    const TcpEndpoint& s = f.tcp_->endpoint(Side::Server);
    if (c.state == TcpEndpointState::Reset || s.state == TcpEndpointState::Reset ||
        (closed_state(c.state) && closed_state(s.state)) || (c.fin_sent && s.fin_sent))
      return kTcpClosed;
    if (c.fin_sent || s.fin_sent) return kTcpClosing;
    if (c.state == TcpEndpointState::Established && s.state == TcpEndpointState::Established)
      return kTcpEstablished;
    return kTcpOpening;
  }
  if (f.proto() == ip_proto::kUdp) return kUdp;
  if (f.proto() == ip_proto::kIcmp || f.proto() == ip_proto::kIcmpv6) return kIcmp;
  return kOther;
}

void Engine::track(const PacketView& v, const KeyedPacket& kp, uint64_t hash) {
  auto on_evict = [this](FlowHandle, CloseReason, Flow& f) { close_flow(f, FlowEnd::Evicted); };
  track_found(v, kp, hash, table_.find_or_insert(kp.key, hash, kp.dir, now_, on_evict));
}

// A packet the batch driver read as a TcpFrame: step() and track() for a segment header
// prediction takes, with what track() does for it (the same counters, touch, delivery) and no
// PacketView; any other segment gets its view, built from the frame in `view`, and track()'s
// general path with the lookup already made (and the prediction not tried again). perf: l45
// bench bench-small (data segments) 0.0160 -> 0.0145 s; many-flows: 8.7% fewer instructions
// (callgrind) for the same time (0.1622 -> 0.1620 s), without `unpredicted` 7% slower.
void Engine::step_framed(const Packet& pkt, const TcpFrame& fr, const Ahead& a, std::byte* view) {
  begin(pkt);
  auto on_evict = [this](FlowHandle, CloseReason, Flow& f) { close_flow(f, FlowEnd::Evicted); };
  const auto r = table_.find_or_insert(a.kp.key, a.hash, a.kp.dir, now_, on_evict);
  bool unpredicted = false;
  if (r.handle && !r.created) {
    Flow& f = table_.live(r.handle);
    if (f.tcp_ && !f.stopped_) {
      const FlowDir dir = table_.live_flow_dir(r.handle, a.kp.dir);
      const TcpView t = fr.tcp();
      TcpConnection::SegmentMeta meta;
      meta.captured_len = fr.payload_caplen;
      if (f.tcp_->predict(dir, t, fr.payload_len, meta)) {
        table_.live_touch(r.handle, now_);
        ++stats_.flow_packets;
        ++stats_.tcp_packets;
        if (pkt_ts_ > f.last_) f.last_ = pkt_ts_;
        const Side from = f.tcp_->side_of(dir);
        FlowSideCounters& c = f.side_[size_t(from)];
        ++c.packets;
        c.ip_bytes += fr.ip_total_len;
        cur_pkt_ = &pkt;
        tcp_segment(f, from, t, fr.payload());
        cur_pkt_ = nullptr;
        return;
      }
      unpredicted = true;
    }
  }
  const PacketView* v = new (view) PacketView(fr);
  cur_pkt_ = &pkt;
  track_found(*v, a.kp, a.hash, r, unpredicted);
  cur_pkt_ = nullptr;
}

void Engine::track_found(const PacketView& v, const KeyedPacket& kp, uint64_t hash,
                         const FlowTable<Flow>::InsertResult& r, bool unpredicted) {
  if (!r.handle) {
    ++stats_.flows_refused;
    obs_->on_orphan(v, DropReason::FlowTableFull);
    return;
  }
  // perf: the handle is live until a callback runs (one might close flows through advance()),
  // so what needs the table is read here, unchecked; on a new flow the touch is a no-op.
  Flow* f = &table_.live(r.handle);
  table_.live_touch(r.handle, now_);
  const FlowDir dir = table_.live_flow_dir(r.handle, kp.dir);
  // The class the last packet set (timeout_class() of the TCP state before this segment).
  const uint8_t cls_before = r.created ? uint8_t(kTcpOpening) : table_.live_timeout_class(r.handle);
  if (r.created) {
    start_flow(r.handle, *f, v, kp);
    obs_->on_open(*f);
  }
  ++stats_.flow_packets;

  if (f->tcp_) {
    ++stats_.tcp_packets;
    if (f->stopped_) {
      // Its state is not followed, so a stopped flow never sees its connection end: a SYN with
      // another ISN on its tuple is a new connection, tracked from scratch (nothing is lost:
      // the old one was not tracked), not hidden in the old slot until that idles out.
      auto t = v.tcp();
      const TcpEndpoint& sender = f->tcp_->endpoint(f->tcp_->side_of(dir));
      // Not for the packet that made the flow (an observer stopped it in on_open): that SYN
      // is this connection's, and restarting would open the flow again, and again.
      if (!r.created && t->syn() && !t->has_ack() && !(sender.isn_known && sender.isn == t->seq()))
        return restart(r.handle, *f, v, kp, hash);
      f->side_[size_t(f->tcp_->side_of(dir))].packets++;
      if (pkt_ts_ > f->last_) f->last_ = pkt_ts_;
      return;
    }
    // perf: the header's view and the payload once, for the tracker and the reassembly (l45
    // bench many-flows: ~15 instructions a packet when tcp_segment() built them again).
    const TcpView t = *v.tcp();
    const Bytes payload = v.payload();
    TcpConnection::SegmentMeta meta;
    meta.captured_len = uint32_t(payload.size());
    meta.bad_checksum = cfg_.verify_checksums && (v.l4_checksum_status() == ChecksumStatus::Bad ||
                                                  v.ip_checksum_status() == ChecksumStatus::Bad);
    // perf: the endpoints' state before the segment is read only when header prediction did
    // not take it: a predicted one found both sides established, neither with a FIN, and
    // changed neither (l45 bench many-flows: ~12 instructions on each of them, ~6 a packet).
    TcpResult res{.outcome = TcpOutcome::Ok, .predicted = true};
    TcpEndpointState before[2] = {};
    bool was_reset = false, both_closed = false;
    if (unpredicted || !f->tcp_->predict(dir, t, v.payload_len(), meta)) {
      const TcpEndpoint& ce = f->tcp_->endpoint(Side::Client);
      const TcpEndpoint& se = f->tcp_->endpoint(Side::Server);
      before[0] = ce.state, before[1] = se.state;
      const bool fin_before[2] = {ce.fin_sent, se.fin_sent};
      res = f->tcp_->on_unpredicted(dir, t, v.payload_len(), now_, meta);
      if (res.outcome == TcpOutcome::NewConnection) return restart(r.handle, *f, v, kp, hash);
      constexpr auto kReset = TcpEndpointState::Reset;
      was_reset = before[0] == kReset || before[1] == kReset;
      // Zeek's duration stops once both sides have closed (FIN or RST): later ACKs and
      // retransmissions do not lengthen the connection.
      both_closed =
          (fin_before[0] || before[0] == kReset) && (fin_before[1] || before[1] == kReset);
    }
    if (!both_closed && pkt_ts_ > f->last_) f->last_ = pkt_ts_;
    // Roles and a mid-stream pickup are decided by a connection's first segment, the one that
    // made the flow.
    if (r.created) {
      if (f->tcp_->flipped()) {
        f->client_is_a_ = !f->client_is_a_;
        std::swap(f->side_[0], f->side_[1]);
      }
      if (f->tcp_->partial()) ++stats_.tcp_partial;
    }
    // perf: the call only when a state changed (l45 bench many-flows: ~25 instructions on each
    // segment header prediction did not take).
    if (!res.predicted && (f->tcp_->endpoint(Side::Client).state != before[0] ||
                           f->tcp_->endpoint(Side::Server).state != before[1]))
      report_tcp_states(*f, before);
    const Side from = f->tcp_->side_of(dir);
    FlowSideCounters& c = f->side_[size_t(from)];
    ++c.packets;
    c.ip_bytes += v.ip_total_len();
    if (res.anomaly != DropReason::None) {
      stats_.drops.add(res.anomaly);
      obs_->on_anomaly(*f, from, res.anomaly);
    }
    // After an accepted RST the receiving stack discards data still in flight (RFC 9293
    // 3.10.7): counted, and delivered only when the config asks for the wire's view.
    if (res.outcome == TcpOutcome::Ok && was_reset && v.payload_len()) {
      stats_.drops.add(DropReason::StreamAfterReset);
      obs_->on_anomaly(*f, from, DropReason::StreamAfterReset);
      if (cfg_.deliver_after_reset) tcp_segment(*f, from, t, payload);
    } else if (res.outcome == TcpOutcome::Ok) {
      tcp_segment(*f, from, t, payload);
    }
    if (want_packet_) obs_->on_packet(*f, from, v);
    // perf: a predicted segment changed neither endpoint's state, so neither did the class.
    if (res.predicted) return;
    const uint8_t cls = timeout_class(*f);
    // Both sides are done: what is buffered will not be completed.
    if (cls == kTcpClosed && cls_before != kTcpClosed) flush_streams(*f, true);
    // perf: the table only for a new class (l45 bench many-flows: its handle check on every
    // segment header prediction did not take was ~3 instructions a packet). Only track() and
    // start_flow() set a flow's class, so the record still has cls_before (or, closed by a
    // callback, is not this flow's any more: the call would do nothing either).
    if (cls != cls_before) table_.set_timeout_class(r.handle, cls);
    return;
  }

  if (pkt_ts_ > f->last_) f->last_ = pkt_ts_;
  const Side from = dir == FlowDir::Forward ? Side::Client : Side::Server;
  FlowSideCounters& c = f->side_[size_t(from)];
  ++c.packets;
  c.ip_bytes += v.ip_total_len();
  if (f->proto() == ip_proto::kUdp)
    ++stats_.udp_packets;
  else if (f->proto() == ip_proto::kIcmp || f->proto() == ip_proto::kIcmpv6)
    ++stats_.icmp_packets;
  else
    ++stats_.other_packets;
  // UDP: the datagram's payload; ICMP: what follows its 8-byte header (Zeek's ICMP bytes).
  const bool icmp = f->proto() == ip_proto::kIcmp || f->proto() == ip_proto::kIcmpv6;
  const uint32_t len = v.payload_len();
  c.payload_bytes += icmp ? (len > IcmpView::kHeaderLen ? len - IcmpView::kHeaderLen : 0) : len;
  if (!f->stopped_ && want_packet_) obs_->on_packet(*f, from, v);
}

// State changes of either endpoint (the caller saw one), then the handshake's completion
// (endpoint(Client) is the client before and after, even when this segment flipped the roles).
// perf: inline in track(), its one caller (l45 bench many-flows: the call was ~10 instructions
// on half the packets).
[[gnu::always_inline]] inline void Engine::report_tcp_states(const Flow& f,
                                                             const TcpEndpointState before[2]) {
  if (f.stopped_) return;
  const TcpConnection& t = *f.tcp_;
  const TcpEndpointState after[2] = {t.endpoint(Side::Client).state,
                                     t.endpoint(Side::Server).state};
  // perf: the flag tested once, not in the loop's condition (l45 bench many-flows: ~5
  // instructions a packet).
  if (want_tcp_state_)
    for (size_t i = 0; i < 2; ++i)
      if (after[i] != before[i]) obs_->on_tcp_state(f, Side(i), before[i], after[i]);
  constexpr auto kEst = TcpEndpointState::Established;
  if (after[0] == kEst && after[1] == kEst && !(before[0] == kEst && before[1] == kEst) &&
      !t.partial())
    obs_->on_handshake(f);
}

// A new connection on this flow's 4-tuple: the old one ends here (Reused), the SYN starts the
// next and is counted there, not twice.
void Engine::restart(FlowHandle h, Flow& f, const PacketView& v, const KeyedPacket& kp,
                     uint64_t hash) {
  --stats_.flow_packets;
  --stats_.tcp_packets;
  close_flow(f, FlowEnd::Reused);
  table_.erase(h);
  track(v, kp, hash);
}

[[gnu::always_inline]] inline void Engine::tcp_segment(Flow& f, Side from, const TcpView& t,
                                                       Bytes payload) {
  if (!cfg_.reassemble) return;
  // perf: a pure ACK after both sides closed (the last one of a close) leaves nothing to
  // flush, so the flow's expiry need not flush again (l45 bench many-flows: the expiry's flush
  // missed the cache on the flow's TCP state).
  if (f.flushed_) [[unlikely]]
    f.flushed_ =
        payload.empty() && !(t.flags() & (tcp_flag::kSyn | tcp_flag::kFin | tcp_flag::kRst));
  Flow::Tcp& tcp = *f.tcp_;
  const size_t s = size_t(from), r = 1 - s;
  if (!f.disabled_[s]) {
    Sink sink(*this, f, from);
    // A SYN with another ISN before any byte was delivered (the sender gave up on its first
    // attempt and drew a new ISN): the tracker took the new ISN, so the stream restarts there
    // too, or every byte would sit behind a hole as wide as the ISN change.
    TcpStream& st = tcp.streams[s];
    if (t.syn() && st.initialized() && st.next_offset() == 0 && st.next_seq() != t.seq() + 1 &&
        tcp.endpoint(from).isn == t.seq())
      st.init(t.seq());
    DropReason why = tcp.streams[s].add(t.seq(), t.flags(), payload, sink, cur_pkt_);
    if (why != DropReason::None) {
      stats_.drops.add(why);
      obs_->on_anomaly(f, from, why);
    }
    if (budget_.used() > stats_.buffered_peak) stats_.buffered_peak = budget_.used();
  }
  // The receiver acknowledged bytes of the other side: what is still missing below its ACK
  // was lost to the capture; deliver it as a gap. Never past what the peer was seen to send
  // (a bogus ACK must not push the stream ahead), nor past its FIN.
  TcpStream& peer = tcp.streams[r];
  if (t.has_ack() && !f.disabled_[r] && peer.initialized() && !peer.disabled()) {
    const TcpEndpoint& pe = tcp.endpoint(Side(r));
    TcpSeq limit = pe.fin_sent ? pe.fin_seq : pe.snd_nxt;
    TcpSeq ack = t.ack();
    if (limit - ack < 0) ack = limit;
    if (ack - peer.next_seq() > 0) {
      if (!tcp.hole_ms[r]) {
        f.flushed_ = false;
        const int64_t ms = std::max<int64_t>(0, (now_ - f.first_).ns / 1000000);
        tcp.hole_ms[r] = uint32_t(std::min<int64_t>(ms, UINT32_MAX - 1)) + 1;
        tcp.hole_ack[r] = ack;
      } else if (ack - tcp.hole_ack[r] > 0) {
        tcp.hole_ack[r] = ack;
      }
    }
  }
  if (tcp.hole_ms[0] | tcp.hole_ms[1]) settle_holes(f, false);
}

// Holes the peer acknowledged: forgotten once filled, declared gaps once gap_delay passed (or
// all of them with `all`, at the end).
void Engine::settle_holes(Flow& f, bool all) {
  Flow::Tcp& tcp = *f.tcp_;
  const int64_t now_ms = std::max<int64_t>(0, (now_ - f.first_).ns / 1000000);
  for (size_t i = 0; i < 2; ++i) {
    if (!tcp.hole_ms[i]) continue;
    TcpStream& st = tcp.streams[i];
    if (st.disabled() || tcp.hole_ack[i] - st.next_seq() <= 0) {
      tcp.hole_ms[i] = 0;
      continue;
    }
    if (!all && now_ms - int64_t(tcp.hole_ms[i] - 1) < cfg_.gap_delay.ns / 1000000) continue;
    Sink sink(*this, f, Side(i));
    st.skip_to(tcp.hole_ack[i], sink);
    tcp.hole_ms[i] = 0;
  }
}

void Engine::flush_streams(Flow& f, bool release) {
  if (!f.tcp_ || f.stopped_ || !cfg_.reassemble) return;
  // perf: the call only for a hole (l45 bench many-flows: ~30 instructions a connection).
  if (f.tcp_->hole_ms[0] | f.tcp_->hole_ms[1]) settle_holes(f, true);
  for (int s = 0; s < 2; ++s) {
    Sink sink(*this, f, Side(s));
    f.tcp_->streams[s].flush(sink);
    if (release) f.tcp_->streams[s].release_buffers();
  }
  f.flushed_ = release;
}

void Engine::close_flow(Flow& f, FlowEnd why) {
  if (!f.flushed_) flush_streams(f, false);
  if (!f.stopped_) obs_->on_close(f, why);
  ++stats_.flows_closed[size_t(why)];
  free_tcp(f);
}

void Engine::expire() {
  table_.expire(now_, [this](FlowHandle, CloseReason, Flow& f) {
    prefetch_tcp(f);  // perf: what free_tcp() will read, while the observer sees the close
    close_flow(f, timeout_class(f) == kTcpClosed ? FlowEnd::Closed : FlowEnd::IdleTimeout);
  });
}

void Engine::advance(Timestamp now) {
  if (now > now_) now_ = now;
  expire();
  defrag_.expire(now_);
}

void Engine::finish() {
  table_.clear([this](FlowHandle, CloseReason, Flow& f) { close_flow(f, FlowEnd::EndOfInput); });
  tcp_slab_ = TcpSlab{};  // every block is free now: the chunks go back too
}

void Engine::stop_tracking(FlowHandle h) {
  Flow* f = table_.get(h);
  if (!f || f->stopped_) return;
  f->stopped_ = true;
  ++stats_.flows_stopped;
  if (f->tcp_)
    for (auto& s : f->tcp_->streams)
      s.disable();
}

void Engine::disable_side(FlowHandle h, Side s) {
  Flow* f = table_.get(h);
  if (!f || f->disabled_[size_t(s)]) return;
  f->disabled_[size_t(s)] = true;
  ++stats_.sides_disabled;
  if (f->tcp_) f->tcp_->streams[size_t(s)].disable();
}

void Engine::set_overlap_policy(FlowHandle h, Side s, OverlapPolicy p) {
  Flow* f = table_.get(h);
  if (f && f->tcp_) f->tcp_->streams[size_t(s)].set_policy(p);
}

}  // namespace l45
