#include "l45/monitor/monitor.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <utility>

#include "inline_state.hpp"
#include "l45/io/filter.hpp"
#include "l45/packet/decode.hpp"

namespace l45 {

namespace {

const EventDetail kNoDetail{};

}  // namespace

// One side's kept bytes: runs of contiguous stream bytes, oldest first (a gap starts a run).
struct MonitorContext::SideBuffer {
  struct Run {
    uint64_t off;
    std::deque<std::byte> bytes;
  };
  size_t limit = 0;
  size_t held = 0;
  uint64_t read = 0;  // the next byte peek() returns
  uint64_t dropped = 0;
  std::deque<Run> runs;

  void append(uint64_t off, Bytes b) {
    if (limit == 0 || b.empty()) return;
    if (b.size() > limit) {  // only the newest `limit` bytes can stay
      dropped += b.size() - limit;
      off += b.size() - limit;
      b = b.last(limit);
    }
    if (runs.empty() || runs.back().off + runs.back().bytes.size() != off)
      runs.push_back({off, {}});
    runs.back().bytes.insert(runs.back().bytes.end(), b.begin(), b.end());
    held += b.size();
    while (held > limit) {
      Run& r = runs.front();
      const size_t n = std::min(held - limit, r.bytes.size());
      // Unread bytes that go count as dropped.
      const uint64_t end = r.off + n;
      if (read < end) dropped += end - std::max(read, r.off);
      r.bytes.erase(r.bytes.begin(), r.bytes.begin() + ptrdiff_t(n));
      r.off += n;
      held -= n;
      if (r.bytes.empty()) runs.pop_front();
    }
    if (!runs.empty() && read < runs.front().off) read = runs.front().off;
  }
  // Copies from stream offset `off` within one run; 0 when it is not held.
  size_t copy(uint64_t off, std::span<std::byte> out) const {
    for (const Run& r : runs) {
      if (off < r.off || off >= r.off + r.bytes.size()) continue;
      const size_t n = std::min<uint64_t>(out.size(), r.off + r.bytes.size() - off);
      std::copy_n(r.bytes.begin() + ptrdiff_t(off - r.off), n, out.begin());
      return n;
    }
    return 0;
  }
  size_t peek(std::span<std::byte> out) {
    // Past a gap: the next run.
    for (const Run& r : runs)
      if (read < r.off + r.bytes.size()) {
        if (read < r.off) read = r.off;
        break;
      }
    const size_t n = copy(read, out);
    read += n;
    // Consumed runs go.
    while (!runs.empty() && runs.front().off + runs.front().bytes.size() <= read) {
      held -= runs.front().bytes.size();
      runs.pop_front();
    }
    if (!runs.empty() && runs.front().off < read) {
      const size_t k = size_t(read - runs.front().off);
      runs.front().bytes.erase(runs.front().bytes.begin(),
                               runs.front().bytes.begin() + ptrdiff_t(k));
      runs.front().off = read;
      held -= k;
    }
    return n;
  }
};

struct MonitorContext::Socket {
  SocketKind kind;
  std::string filter;
  size_t buffer = 0;                       // bytes kept per side for each flow it takes
  std::map<LinkType, BpfFilter> compiled;  // per link type, compiled when first needed
  Subscription sub;
  Socket(SocketKind k, std::string f, EventRegistry& reg)
      : kind(k), filter(std::move(f)), sub(reg) {}
};

struct MonitorContext::PerFlow {
  uint32_t generation = 0;             // the live flow's, 0 when the slot is free
  std::unique_ptr<SideBuffer> buf[2];  // with set_buffer() only
  Subscription sub;
  void* user = nullptr;
  bool stopped = false;
  bool side_stopped[2] = {false, false};
  uint32_t timers = 0;  // its timers in the heap, not cancelled
  explicit PerFlow(EventRegistry& reg) : sub(reg) {}
  // A new flow in the slot (generation), or none (0): nothing of the last one stays.
  void clear(uint32_t gen) {
    generation = gen;
    sub.reset();
    user = nullptr;
    buf[0].reset();
    buf[1].reset();
    stopped = false;
    side_stopped[0] = side_stopped[1] = false;
    timers = 0;
  }
};

// The engine's callbacks, turned into events.
class MonitorContext::Bridge final : public FlowObserver {
 public:
  explicit Bridge(MonitorContext& c) : c_(c) {}
  bool packet_seen = false;  // an event for the current packet reached the raw sockets

  // Each packet, alone or in a batch: last_packet() during its events; then, for a packet the
  // engine took without a callback (a fragment held for reassembly, a packet of a flow no
  // longer tracked), the raw sockets' packet event; then the timers due at its time.
  bool packet_bounds() const override { return true; }
  void on_packet_begin(const Packet& p) override {
    c_.last_ = &p;
    packet_seen = false;
  }
  void on_packet_end(const Packet&) override {
    if (!packet_seen && c_.raw_sockets_ != 0)
      c_.raise_raw(EventId(BuiltinEvent::Packet), {}, Side::Client);
    c_.last_ = nullptr;
    if (!c_.timers_.empty()) c_.run_timers();
  }

  void on_open(const Flow& f) override {
    note(f);
    PerFlow& p = c_.flows_[f.handle().index];
    p.clear(f.handle().generation);
    // The flow starts with the union of the sets of the stream sockets its packet matches.
    // perf: with one such socket (the usual case) it shares the socket's node: O(1), no set
    // built per flow.
    bool first = true;
    for (auto& s : c_.sockets_) {
      if (s->kind != SocketKind::Stream || !c_.last_ || !c_.socket_matches(*s, *c_.last_)) continue;
      for (auto& b : p.buf)
        if (s->buffer) {
          if (!b) b = std::make_unique<SideBuffer>();
          b->limit = std::max(b->limit, s->buffer);
        }
      if (first) {
        p.sub = Subscription(c_.events_, s->sub.node());
        first = false;
        continue;
      }
      for (const SubscriptionSet::Triple& t : s->sub.node()->triples())
        (void)p.sub.add(t.event, t.hook, t.handler);  // valid triples: cannot fail
    }
    flow_event(f, BuiltinEvent::ConnStart, Side::Client);
  }
  void on_tcp_state(const Flow& f, Side side, TcpEndpointState before,
                    TcpEndpointState after) override {
    note(f);
    flow_event(f, BuiltinEvent::TcpState, side, {.before = before, .after = after});
  }
  void on_handshake(const Flow& f) override {
    note(f);
    flow_event(f, BuiltinEvent::HandshakeDone, Side::Client);
  }
  void on_data(const Flow& f, Side from, uint64_t off, Bytes b) override {
    note(f);
    PerFlow* p = c_.per_flow(f.handle());
    if (p && p->buf[size_t(from)]) p->buf[size_t(from)]->append(off, b);
    flow_event(p, f, BuiltinEvent::Data, from, {.offset = off, .length = b.size(), .data = b});
  }
  void on_retransmission(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    note(f);
    flow_event(f, BuiltinEvent::Retransmission, from, {.offset = off, .length = len});
  }
  void on_gap(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    note(f);
    flow_event(f, BuiltinEvent::Gap, from, {.offset = off, .length = len});
  }
  void on_mismatch(const Flow& f, Side from, const StreamMismatch& m) override {
    note(f);
    flow_event(f, BuiltinEvent::Mismatch, from,
               {.offset = m.offset, .length = m.length, .mismatch = &m});
  }
  void on_packet(const Flow& f, Side from, const PacketView&) override {
    note(f);
    packet(f, from);
  }
  void on_icmp_error(const Flow& f, Side from, const PacketView&) override { packet(f, from); }
  void on_orphan(const PacketView&, DropReason why) override {
    flowless(BuiltinEvent::Orphan, why);
  }
  void on_malformed(const Packet&, DropReason why) override {
    flowless(BuiltinEvent::Malformed, why);
  }
  void on_close(const Flow& f, FlowEnd why) override {
    flow_event(f, BuiltinEvent::ConnEnd, Side::Client, {.end = why});
    PerFlow& p = c_.flows_[f.handle().index];
    const uint32_t orphaned = p.generation == f.handle().generation ? p.timers : 0;
    p.clear(0);
    if (orphaned) c_.timers_dead(orphaned);
    c_.forget_remap(f);
  }

 private:
  // Inline mode: every callback but on_close and on_icmp_error concerns the flow of the packet
  // being processed (a close can be another flow's expiry); its first one names the flow and
  // the sending side, for the payload edits.
  void note(const Flow& f) {
    Current* c = c_.cur_.get();
    if (!c || c->flow) return;
    c->flow = f.handle();
    c->from = sender_side(c->view, f.addr(Side::Client), f.port(Side::Client));
  }
  // The event for the flow's own subscriptions, with `d` as MonitorContext::detail().
  // perf: detail() points at `d` (no copy per event).
  void flow_event(const Flow& f, BuiltinEvent e, Side side, const EventDetail& d = kNoDetail) {
    flow_event(c_.per_flow(f.handle()), f, e, side, d);
  }
  void flow_event(PerFlow* p, const Flow& f, BuiltinEvent e, Side side, const EventDetail& d) {
    if (!p || p->stopped || p->side_stopped[size_t(side)]) return;
    c_.detail_ = &d;
    c_.raise(p->sub.node(), EventId(e), f.handle(), side);
    c_.detail_ = nullptr;
  }
  // A packet of a flow (ICMP errors included): the flow's packet event, then the raw sockets'.
  void packet(const Flow& f, Side from) {
    flow_event(f, BuiltinEvent::Packet, from);
    packet_seen = true;
    if (c_.raw_sockets_ != 0) c_.raise_raw(EventId(BuiltinEvent::Packet), f.handle(), from);
  }
  // A packet without a flow: for the raw sockets only, its kind and then the packet event.
  void flowless(BuiltinEvent e, DropReason why) {
    packet_seen = true;
    const EventDetail d{.reason = why};
    c_.detail_ = &d;
    c_.raise_raw(EventId(e), {}, Side::Client);
    c_.raise_raw(EventId(BuiltinEvent::Packet), {}, Side::Client);
    c_.detail_ = nullptr;
  }
  MonitorContext& c_;
};

MonitorContext::MonitorContext(const EngineConfig& cfg) {
  flows_.reserve(cfg.max_flows);
  for (uint32_t i = 0; i < cfg.max_flows; ++i)
    flows_.emplace_back(events_);
  bridge_ = std::make_unique<Bridge>(*this);
  engine_ = std::make_unique<Engine>(cfg, bridge_.get());
}

MonitorContext::~MonitorContext() {
  engine_.reset();  // its last callbacks still reach the bridge and the flows
}

Result<SocketId> MonitorContext::socket(SocketKind kind, std::string filter) {
  if (!filter.empty()) {
    // Checked now, on Ethernet, so a typo is an error here and not a socket that sees nothing.
    auto f = BpfFilter::compile(filter, LinkType::Ethernet);
    if (!f.ok()) return f.error();
  }
  sockets_.push_back(std::make_unique<Socket>(kind, std::move(filter), events_));
  if (kind == SocketKind::Raw) ++raw_sockets_;
  return SocketId(sockets_.size() - 1);
}

Result<HandlerId> MonitorContext::handler(std::string name, MonitorCallback cb) {
  if (!cb) return Error::invalid("handler '" + name + "' has no function");
  auto box = std::make_unique<HandlerBox<MonitorCallback>>(this, std::move(cb));
  return add_handler_box(std::move(name), std::move(box), &HandlerBox<MonitorCallback>::call);
}

Result<HandlerId> MonitorContext::add_handler_box(std::string name,
                                                  std::unique_ptr<HandlerBoxBase> box,
                                                  RawHandler call) {
  auto id = events_.add_handler(std::move(name), call, box.get());
  if (id.ok()) handler_boxes_.push_back(std::move(box));
  return id;
}

Result<EventId> MonitorContext::define(std::string name, EventId base, MonitorFilter filter) {
  if (!filter) return Error::invalid("event '" + name + "' has no filter");
  return events_.define(std::move(name), base, [this, f = std::move(filter)](const EventArgs& a) {
    return f(*this, unpack(a.subject), Side(a.side));
  });
}

Result<void> MonitorContext::on(SocketId s, EventId e, Hook h, HandlerId handler) {
  if (s >= sockets_.size()) return Error::invalid("no monitoring socket " + std::to_string(s));
  return sockets_[s]->sub.add(e, h, handler);
}

const EventDetail& MonitorContext::detail() const {
  return detail_ ? *detail_ : kNoDetail;
}

MonitorContext::PerFlow* MonitorContext::per_flow(FlowHandle f) {
  if (!f || f.index >= flows_.size() || flows_[f.index].generation != f.generation) return nullptr;
  return &flows_[f.index];
}

const MonitorContext::PerFlow* MonitorContext::per_flow(FlowHandle f) const {
  return const_cast<MonitorContext*>(this)->per_flow(f);
}

Result<void> MonitorContext::subscribe(FlowHandle f, EventId e, Hook h, HandlerId handler) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  return p->sub.add(e, h, handler);
}

Result<void> MonitorContext::unsubscribe(FlowHandle f, EventId e, Hook h, HandlerId handler) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  return p->sub.remove(e, h, handler);
}

void MonitorContext::set_user(FlowHandle f, void* u) {
  if (PerFlow* p = per_flow(f)) p->user = u;
}

void* MonitorContext::user(FlowHandle f) const {
  const PerFlow* p = per_flow(f);
  return p ? p->user : nullptr;
}

std::optional<Peer> MonitorContext::peer(FlowHandle f, Side s) const {
  const Flow* fl = engine_->flow(f);
  if (!fl) return std::nullopt;
  return Peer{fl->addr(s), fl->port(s)};
}

Result<void> MonitorContext::stop(FlowHandle f, std::optional<Side> side) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  if (side) {
    p->side_stopped[size_t(*side)] = true;
    engine_->disable_side(f, *side);
  } else {
    p->stopped = true;
    engine_->stop_tracking(f);
  }
  return {};
}

Result<void> MonitorContext::set_overlap_policy(FlowHandle f, Side side, OverlapPolicy p) {
  if (!per_flow(f)) return Error::invalid("no such flow (it ended)");
  const Flow* fl = engine_->flow(f);
  if (!fl || !fl->tcp()) return Error::invalid("an overlap policy is for TCP flows only");
  engine_->set_overlap_policy(f, side, p);
  return {};
}

Result<void> MonitorContext::set_buffer(SocketId s, size_t bytes) {
  if (s >= sockets_.size()) return Error::invalid("no monitoring socket " + std::to_string(s));
  sockets_[s]->buffer = bytes;
  return {};
}

Result<void> MonitorContext::set_buffer(FlowHandle f, Side side, size_t bytes) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  auto& b = p->buf[size_t(side)];
  if (bytes == 0) {
    b.reset();
    return {};
  }
  if (!b) b = std::make_unique<SideBuffer>();
  b->limit = bytes;  // a smaller limit trims at the next bytes
  return {};
}

Result<size_t> MonitorContext::peek(FlowHandle f, Side side, std::span<std::byte> out) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  if (!p->buf[size_t(side)]) return Error::invalid("no buffer on that side (set_buffer)");
  return p->buf[size_t(side)]->peek(out);
}

Result<size_t> MonitorContext::ppeek(FlowHandle f, Side side, uint64_t offset,
                                     std::span<std::byte> out) const {
  const PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  const SideBuffer* b = p->buf[size_t(side)].get();
  if (!b) return Error::invalid("no buffer on that side (set_buffer)");
  if (out.empty()) return size_t{0};
  const size_t n = b->copy(offset, out);
  if (n == 0)
    return Error::invalid("offset " + std::to_string(offset) +
                          " is not buffered (dropped, consumed, in a gap or not yet seen)");
  return n;
}

uint64_t MonitorContext::read_offset(FlowHandle f, Side side) const {
  const PerFlow* p = per_flow(f);
  return p && p->buf[size_t(side)] ? p->buf[size_t(side)]->read : 0;
}

uint64_t MonitorContext::buffer_dropped(FlowHandle f, Side side) const {
  const PerFlow* p = per_flow(f);
  return p && p->buf[size_t(side)] ? p->buf[size_t(side)]->dropped : 0;
}

bool MonitorContext::socket_matches(Socket& s, const Packet& p) {
  if (s.filter.empty()) return true;
  auto compiled = [&](LinkType link) -> const BpfFilter& {
    auto it = s.compiled.find(link);
    if (it == s.compiled.end()) {
      auto f = BpfFilter::compile(s.filter, link);
      it =
          s.compiled.emplace(link, f.ok() ? std::move(f).value() : BpfFilter::never(s.filter, link))
              .first;
    }
    return it->second;
  };
  // An encapsulated packet (VLAN, MPLS, PPPoE, GRE, VXLAN) is matched on the IP datagram its
  // flow is keyed on, as a raw IP packet: "tcp port 80" takes the flows a VLAN trunk carries,
  // as the engine sees them (tcpdump would need "vlan and ..."). An expression about the link
  // itself (ether, vlan), which a raw packet cannot answer, is matched on the frame.
  const PacketView v = PacketView::decode(p);
  const bool wrapped = !v.vlan_ids().empty() || !v.mpls_labels().empty() || v.tunnel_depth() > 0 ||
                       v.find(LayerKind::Pppoe) != nullptr;
  if (wrapped && !v.ip_layers().empty()) {
    const BpfFilter& inner = compiled(LinkType::Raw);
    if (!inner.is_never()) {
      const size_t off = size_t(v.ip_layers().back().header - v.data().data());
      const Bytes ip = p.data().subspan(off);
      return inner.matches(ip, uint32_t(ip.size()));
    }
  }
  return compiled(p.meta().link).matches(p);
}

void MonitorContext::raise(const SubscriptionSet* set, EventId e, FlowHandle f, Side side) {
  EventArgs a;
  a.subject = pack(f);
  a.side = uint8_t(side);
  a.user = this;
  events_.raise_both(set, e, a);
}

void MonitorContext::raise_raw(EventId e, FlowHandle f, Side side) {
  if (raw_sockets_ == 0) return;
  for (auto& s : sockets_) {
    if (s->kind != SocketKind::Raw) continue;
    const SubscriptionSet* set = s->sub.node();
    if (!set->listens(e, Hook::Sender) && !set->listens(e, Hook::Receiver)) continue;
    if (!last_ || !socket_matches(*s, *last_)) continue;
    raise(set, e, f, side);
  }
}

Result<uint64_t> MonitorContext::timer(FlowHandle f, Duration after) {
  PerFlow* p = per_flow(f);
  if (!p) return Error::invalid("no such flow (it ended)");
  if (after.ns < 0) return Error::invalid("a timer cannot fire in the past");
  const uint64_t id = next_timer_++;
  timers_.push_back({engine_->now() + after, id, f});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
  ++p->timers;
  return id;
}

void MonitorContext::cancel_timer(uint64_t id) {
  if (std::find(cancelled_.begin(), cancelled_.end(), id) != cancelled_.end()) return;
  for (const Timer& t : timers_)
    if (t.id == id) {
      cancelled_.push_back(id);
      if (PerFlow* p = per_flow(t.flow); p && p->timers) --p->timers;
      timers_dead(1);
      return;
    }
}

// Timers that will never fire (cancelled, or of flows that ended) stay in the heap until they
// are due; once they are most of it, they go in one pass, so a churn of flows that each set a
// long timer keeps the heap as large as the live flows' timers, not as all flows'.
void MonitorContext::timers_dead(size_t n) {
  dead_timers_ += n;
  if (dead_timers_ < 64 || dead_timers_ * 2 < timers_.size()) return;
  std::sort(cancelled_.begin(), cancelled_.end());
  std::erase_if(timers_, [this](const Timer& t) {
    const PerFlow* p = per_flow(t.flow);
    return !p || std::binary_search(cancelled_.begin(), cancelled_.end(), t.id);
  });
  cancelled_.clear();  // each was in the heap: none is now
  std::make_heap(timers_.begin(), timers_.end(), std::greater<>());
  dead_timers_ = 0;
}

// Timers due at the engine's time, in (time, id) order. A handler may add timers; one due at
// once runs in this same pass.
void MonitorContext::run_timers() {
  const Timestamp now = engine_->now();
  while (!timers_.empty() && timers_.front().at <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
    const Timer t = timers_.back();
    timers_.pop_back();
    if (auto c = std::find(cancelled_.begin(), cancelled_.end(), t.id); c != cancelled_.end()) {
      cancelled_.erase(c);
      if (dead_timers_) --dead_timers_;
      continue;
    }
    PerFlow* p = per_flow(t.flow);
    if (!p) {  // the flow ended: counted dead then
      if (dead_timers_) --dead_timers_;
      continue;
    }
    --p->timers;
    if (p->stopped) continue;  // no longer monitored
    const EventDetail d{.timer = t.id};
    detail_ = &d;
    raise(p->sub.node(), EventId(BuiltinEvent::Timeout), t.flow, Side::Client);
    detail_ = nullptr;
  }
}

void MonitorContext::process(const Packet& p) {
  engine_->process(p);  // the bridge's on_packet_begin/end do the rest
}

void MonitorContext::process(std::span<const Packet> pkts) {
  engine_->process(pkts);
}

void MonitorContext::advance(Timestamp now) {
  engine_->advance(now);
  if (!timers_.empty()) run_timers();
}

void MonitorContext::finish() {
  engine_->finish();
}

}  // namespace l45
