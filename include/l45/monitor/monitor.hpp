// Monitoring sockets: mOS's programming model on the flow engine (first part: passive mode).
//
// A MonitorContext is one worker: a flow Engine, an EventRegistry and the monitoring sockets
// opened on it. A middlebox opens sockets, registers handlers, subscribes them to events, and
// feeds packets; the context does the flow management and runs the handlers.
//
// Sockets. A Stream socket takes the flows whose first packet its filter (tcpdump syntax; empty:
// every flow) matches; every flow it takes starts with the socket's subscriptions. A Raw socket
// sees packets, not flows: its subscriptions to BuiltinEvent::Packet, Orphan and Malformed run
// for every packet its filter matches (with the flow, when the packet has one).
//
// Per flow: its own subscription set (subscribe()/unsubscribe(), at any time, in a handler
// too), a user pointer (set_user()/user()), the peer of each side (peer()), stop(): no more
// events for it (the engine stops tracking it) or for one side (that side's reassembly stops).
// last_packet() is the packet being processed (mOS's getlastpkt).
//
// Events and hooks. The engine updates both endpoints of a segment in one step, so each event
// is raised at Hook::Sender and then at Hook::Receiver, both after that step (mOS runs the
// sender hook between the two updates; no built-in event of this version needs the difference).
// Per packet the order is: conn_start (new flow), tcp_state (each side that changed),
// handshake_done, retransmission / data / gap / mismatch (as the stream delivers), packet,
// conn_end (when the packet ends the flow or expires others). `side` is the side the event
// concerns: the sender for packet, data, retransmission, gap, mismatch; the changing side for
// tcp_state; the client for conn_start, handshake_done and conn_end.
//
// Timers: timer(flow, after) raises BuiltinEvent::Timeout for the flow on the engine's clock.
//
// Buffers (mOS's per-flow receive buffers): with set_buffer() (per socket, for the flows it
// takes, or per flow and side) the reassembled bytes of a side are kept, up to that many
// bytes; the oldest go first when the reader falls behind (counted in buffer_dropped()).
// peek() consumes them in order, ppeek() reads at a stream offset without consuming. A gap is
// a boundary: one call never returns bytes from both sides of it; read_offset() tells where the
// next peek() starts, so a jump shows.
//
// Inline mode (mOS's setlastpkt, sendpkt and reset): feed packets with process_inline()
// instead of process(); each comes back with its fate (InlineOutcome). During a handler:
//   drop()                       the packet is not forwarded
//   overwrite(region, off, b)    bytes of its IP header, transport header or TCP payload
//   insert(off, b), remove(off, n)  TCP payload bytes in or out: the length changes
//   send(packet), send(flow, to, flags, payload)   a packet of one's own (take_sent())
//   reset(flow)                  a RST to each side, in window, and the flow is dropped
// Checksums and lengths are always fixed. When payload edits change a side's length, the
// sequence numbers of that side's later segments and the acknowledgements (and SACK blocks)
// of the other side are remapped for the rest of the connection, so both endpoints keep a
// consistent byte stream; a retransmission that carries an edited range whole gets the same
// edit again. A segment an edit makes longer is cut into pieces no longer than it came (the
// path's MTU still holds): the first is the verdict's packet, the others are sent. Payload edits go
// forward: each one starts at or after the end of the side's last one. A retransmission that cuts
// an edited range is forwarded with its sequence number remapped and its bytes unedited (counted in
// inline_stats().partial). Bytes sent with send(flow, ...) take sequence space the sender does not
// know of: they are remapped like an insertion, but not sent again if lost. Events see the packets
// as the sender sent them (with the other side's acknowledgements already remapped).
//
// Workers (one context per core, packets spread by flow): l45/monitor/workers.hpp.
//
//   MonitorContext ctx;
//   SocketId s = *ctx.socket(SocketKind::Stream, "tcp port 80");
//   HandlerId h = *ctx.handler("count", [&](MonitorContext& c, FlowHandle f, Side side,
//                                           EventId e) { ... });
//   ctx.on(s, BuiltinEvent::Data, Hook::Receiver, h);
//   for (const Packet& p : packets) ctx.process(p);
//   ctx.finish();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/event/event.hpp"
#include "l45/flow/engine.hpp"

namespace l45 {

enum class SocketKind : uint8_t { Stream, Raw };
using SocketId = uint32_t;

class MonitorContext;
// mOS's callback: (context, flow, side, event). The flow is null for a packet without one
// (orphan, malformed).
using MonitorCallback = std::function<void(MonitorContext&, FlowHandle, Side, EventId)>;
// A UDE's filter as the monitor calls it: the event is raised when it returns true.
using MonitorFilter = std::function<bool(MonitorContext&, FlowHandle, Side)>;

struct Peer {
  IpAddr addr;
  uint16_t port = 0;
};

// What the event being handled carries beyond (flow, side, event): MonitorContext::detail(),
// valid during the handler.
// What process_inline() decided for a packet.
struct InlineOutcome {
  Verdict verdict = Verdict::Accept;
  std::optional<Packet> packet;  // the packet to forward instead (changed); empty: unchanged
};

// Where overwrite() writes: offsets count from the start of that region of the packet.
enum class Region : uint8_t { Ip, Transport, Payload };

struct InlineStats {
  uint64_t dropped = 0;         // packets given Drop
  uint64_t modified = 0;        // packets forwarded changed (edits, remapped numbers)
  uint64_t sent = 0;            // packets send() and reset() made
  uint64_t reedited = 0;        // retransmissions that got their edit again
  uint64_t partial = 0;         // retransmissions that cut an edited range (bytes left as sent)
  uint64_t remapped_flows = 0;  // flows whose numbers were ever remapped
  uint64_t split = 0;           // extra pieces of segments an edit made longer than they came
};

struct EventDetail {
  uint64_t offset = 0;  // data, gap, retransmission, mismatch: stream offset of the bytes
  uint64_t length = 0;
  Bytes data;                                // data: the bytes delivered
  const StreamMismatch* mismatch = nullptr;  // mismatch: both versions
  TcpEndpointState before{}, after{};        // tcp_state
  DropReason reason = DropReason::None;      // orphan, malformed
  FlowEnd end = FlowEnd::EndOfInput;         // conn_end
  uint64_t timer = 0;                        // timeout: the timer's id
};

class MonitorContext {
 public:
  explicit MonitorContext(const EngineConfig& cfg = {});
  ~MonitorContext();
  MonitorContext(const MonitorContext&) = delete;
  MonitorContext& operator=(const MonitorContext&) = delete;

  EventRegistry& events() { return events_; }  // define UDEs here
  const Engine& engine() const { return *engine_; }

  // A bad filter is an error (EINVAL, with libpcap's message).
  Result<SocketId> socket(SocketKind kind, std::string filter = "");
  Result<HandlerId> handler(std::string name, MonitorCallback cb);
  // The same for any callable (a lambda, a function): the registry calls it through one plain
  // function, without a std::function in between.
  template <typename F>
  requires(std::is_invocable_v<F&, MonitorContext&, FlowHandle, Side, EventId> &&
           !std::is_same_v<std::remove_cvref_t<F>, MonitorCallback>)
      Result<HandlerId> handler(std::string name, F fn) {
    auto box = std::make_unique<HandlerBox<F>>(this, std::move(fn));
    return add_handler_box(std::move(name), std::move(box), &HandlerBox<F>::call);
  }
  // A UDE (events().define()) whose filter sees the flow and side as handlers do.
  Result<EventId> define(std::string name, EventId base, MonitorFilter filter);
  Result<EventId> define(std::string name, BuiltinEvent base, MonitorFilter filter) {
    return define(std::move(name), EventId(base), std::move(filter));
  }
  // What every flow the socket takes from now on starts with (for a Raw socket: what runs for
  // each packet it matches).
  Result<void> on(SocketId s, EventId e, Hook h, HandlerId handler);
  Result<void> on(SocketId s, BuiltinEvent e, Hook h, HandlerId handler) {
    return on(s, EventId(e), h, handler);
  }

  // The flow's own set. Errors for a flow that is gone.
  Result<void> subscribe(FlowHandle f, EventId e, Hook h, HandlerId handler);
  Result<void> unsubscribe(FlowHandle f, EventId e, Hook h, HandlerId handler);
  void set_user(FlowHandle f, void* p);
  void* user(FlowHandle f) const;  // nullptr for a flow that is gone
  std::optional<Peer> peer(FlowHandle f, Side s) const;
  // No more events for the flow (and the engine stops tracking it), or for one side of it.
  Result<void> stop(FlowHandle f, std::optional<Side> side = std::nullopt);
  // Which copy of overlapping out-of-order bytes one side delivers (OverlapPolicy::First, the
  // engine's default, or Last), from its next segment on: set it in conn_start to cover the
  // whole flow. Errors for a flow that is gone or is not TCP.
  Result<void> set_overlap_policy(FlowHandle f, Side side, OverlapPolicy p);
  // A timer on the engine's clock (packet time for a file): BuiltinEvent::Timeout is raised
  // for the flow (side: client) at the first packet or advance() at or after now + after, with
  // detail().timer = the id returned. A flow that ends first cancels its timers.
  Result<uint64_t> timer(FlowHandle f, Duration after);
  void cancel_timer(uint64_t id);
  // Timers held (pending ones, and a bounded number that will not fire: cancelled, or of
  // flows that ended, removed in batches).
  size_t timers_held() const { return timers_.size(); }
  // Buffers: 0 bytes turns one off (the default).
  Result<void> set_buffer(SocketId s, size_t bytes);
  Result<void> set_buffer(FlowHandle f, Side side, size_t bytes);
  // Up to out.size() of the side's oldest unread bytes, consumed; stops at a gap.
  Result<size_t> peek(FlowHandle f, Side side, std::span<std::byte> out);
  // Up to out.size() bytes at stream `offset`, not consumed; stops at a gap. An offset no
  // longer (or not yet) buffered is an error.
  Result<size_t> ppeek(FlowHandle f, Side side, uint64_t offset, std::span<std::byte> out) const;
  uint64_t read_offset(FlowHandle f, Side side) const;     // where the next peek() starts
  uint64_t buffer_dropped(FlowHandle f, Side side) const;  // bytes dropped unread
  const Packet* last_packet() const { return last_; }
  const EventDetail& detail() const;
  const Flow* flow(FlowHandle f) const { return engine_->flow(f); }

  void process(const Packet& p);
  // The same for each packet in order, through the engine's batch path (decoded and keyed
  // first, the flows prefetched): events, timers and last_packet() as one by one.
  void process(std::span<const Packet> pkts);
  void advance(Timestamp now);
  void finish();

  // Inline mode (see the top of this file).
  InlineOutcome process_inline(const Packet& p);
  // In a handler of process_inline(): errors elsewhere, or when the packet lacks the region.
  Result<void> drop();
  Result<void> overwrite(Region r, size_t offset, Bytes data);
  Result<void> insert(size_t offset, Bytes data);     // into the TCP payload
  Result<void> remove(size_t offset, size_t length);  // from the TCP payload
  // Any IP packet (link Raw), sent as it is.
  Result<void> send(Packet p);
  // A TCP segment of the flow to side `to`, from the other side's endpoint, at its next
  // sequence number (remapped) and acknowledging what `to` sent.
  Result<void> send(FlowHandle f, Side to, uint8_t tcp_flags, Bytes payload = {});
  // A RST to each side that has sent something (seq and ack in its window); the current packet
  // is dropped when it is the flow's, and the flow stops being monitored.
  Result<void> reset(FlowHandle f);
  // The packets send() and reset() made since the last call, in order.
  std::vector<Packet> take_sent();
  const InlineStats& inline_stats() const { return inline_stats_; }

 private:
  class Bridge;
  struct Socket;
  // EventArgs::subject is the flow handle, packed: index << 32 | generation.
  static uint64_t pack(FlowHandle h) { return uint64_t{h.index} << 32 | h.generation; }
  static FlowHandle unpack(uint64_t v) { return {uint32_t(v >> 32), uint32_t(v)}; }
  // A handler's callable at a stable address: the registry calls `call` with the box as its
  // context.
  struct HandlerBoxBase {
    explicit HandlerBoxBase(MonitorContext* c) : self(c) {}
    virtual ~HandlerBoxBase() = default;
    MonitorContext* self;
  };
  template <typename F>
  struct HandlerBox final : HandlerBoxBase {
    HandlerBox(MonitorContext* c, F f) : HandlerBoxBase(c), fn(std::move(f)) {}
    static void call(void* ctx, const EventArgs& a) {
      auto* b = static_cast<HandlerBox*>(ctx);
      b->fn(*b->self, unpack(a.subject), Side(a.side), a.event);
    }
    F fn;
  };
  Result<HandlerId> add_handler_box(std::string name, std::unique_ptr<HandlerBoxBase> box,
                                    RawHandler call);
  struct PerFlow;
  struct SideBuffer;
  struct Remap;
  struct Current;

  PerFlow* per_flow(FlowHandle f);
  const PerFlow* per_flow(FlowHandle f) const;
  bool socket_matches(Socket& s, const Packet& p);
  void raise(const SubscriptionSet* set, EventId e, FlowHandle f, Side side);
  void raise_raw(EventId e, FlowHandle f, Side side);
  void run_timers();

  EventRegistry events_;
  std::vector<std::unique_ptr<HandlerBoxBase>> handler_boxes_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  size_t raw_sockets_ = 0;
  std::vector<PerFlow> flows_;  // by FlowHandle::index
  std::unique_ptr<Bridge> bridge_;
  std::unique_ptr<Engine> engine_;
  const Packet* last_ = nullptr;
  const EventDetail* detail_ = nullptr;  // the event's, while its handlers run
  struct Timer {
    Timestamp at;
    uint64_t id;
    FlowHandle flow;
    friend bool operator>(const Timer& a, const Timer& b) {
      return a.at != b.at ? a.at > b.at : a.id > b.id;
    }
  };
  std::vector<Timer> timers_;        // a min-heap by (time, id)
  std::vector<uint64_t> cancelled_;  // ids cancelled and still in the heap
  size_t dead_timers_ = 0;           // heap entries that will not fire (cancelled, flow ended)
  void timers_dead(size_t n);
  uint64_t next_timer_ = 1;
  // Inline mode.
  std::unique_ptr<Current> cur_;  // the packet process_inline() is on; null outside it
  std::unordered_map<std::string, std::unique_ptr<Remap>> remaps_;  // by endpoint pair
  std::vector<Packet> sent_;
  InlineStats inline_stats_;

  Remap* remap_for(const Flow& f, bool create);
  void forget_remap(const Flow& f);
  Result<void> edit(size_t offset, size_t removed, Bytes data, bool same_length);
};

}  // namespace l45
