// Events: mOS's programming model below the monitoring sockets. A middlebox is a set of (event,
// hook, handler) subscriptions; the flow stack raises events, and every flow runs the handlers
// of the subscriptions it holds.
//
// Events. Built-in ones (BuiltinEvent: packet, connection start, handshake done, new data,
// retransmission, TCP state change, connection end, orphan packet, timeout, gap, overlap
// mismatch, malformed packet) and user-defined ones (UDEs): a base event (built-in or another
// UDE, so they nest) plus a filter; a UDE is raised when its base is raised and its filter
// returns true. Every event has a name; list() shows them all. At most kMaxEvents in a registry.
//
// Hooks (mOS's MOS_HK_SND and MOS_HK_RCV): a subscription runs either after the sending side's
// state was updated (Hook::Sender) or after the receiving side's inferred state was
// (Hook::Receiver). The stack raises each event once per hook.
//
// Subscription sets and the dependency tree (mOS section 4.3). A flow holds one SubscriptionSet
// node: the set of its (event, hook, handler) triples. Flows with the same set share one node,
// found by the XOR of the triples' hashes, so adding or removing a triple moves a flow to another
// node with one XOR and one hash lookup (O(1) expected), however many flows there are. A node
// lives while a flow (or a Subscription) holds it. Its masks say which events anyone at the node
// listens to (a UDE's listener makes its bases listened to, so their filters run): raising an
// event nobody listens to is one test of a bit (raise() is inline for that).
//
// Dispatch order: an event's handlers in the order the handlers were added to the registry (the
// same for every flow at a node, whatever order its subscriptions came in), then each UDE based
// on it, in the order they were defined, whose filter returns true (and its handlers and UDEs,
// depth first). A handler may change the subscriptions of the flow it runs for: the event being
// dispatched finishes on the set the flow had when it was raised; the next one uses the new set.
//
// Errors are returned, never asserted: an unknown event or handler, a 65th event, a duplicate
// name.
//
//   EventRegistry reg;
//   HandlerId log = *reg.add_handler("log", [](const EventArgs& a) { ... });
//   EventId http = *reg.define("http_request", BuiltinEvent::Data,
//                              [](const EventArgs& a) { return is_http(a); });
//   Subscription sub(reg);
//   sub.add(http, Hook::Sender, log);
//   reg.raise(sub.node(), EventId(BuiltinEvent::Data), Hook::Sender, args);  // runs `log` if
//                                                                            // is_http(args)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "l45/core/result.hpp"

namespace l45 {

using EventId = uint8_t;
inline constexpr size_t kMaxEvents = 64;

enum class BuiltinEvent : EventId {
  Packet,          // a packet of the flow arrived
  ConnStart,       // a flow was created
  HandshakeDone,   // both endpoints established
  Data,            // new in-order bytes of one side
  Retransmission,  // a segment resent bytes already seen
  TcpState,        // an endpoint's TCP state changed (the side says which)
  ConnEnd,         // the flow ended
  Orphan,          // a packet matched no flow and started none
  Timeout,         // a timer of the flow expired
  Gap,             // bytes of one side will never be delivered
  Mismatch,        // resent bytes differ from the first copy
  Malformed,       // a packet the decoder refused
  Count
};
inline constexpr size_t kBuiltinEvents = size_t(BuiltinEvent::Count);
std::string_view builtin_event_name(BuiltinEvent e);  // "packet", "conn_start", ...

enum class Hook : uint8_t { Sender = 0, Receiver = 1 };
std::string_view hook_name(Hook h);  // "sender", "receiver"

// What a handler and a filter see. `subject` names the flow (the monitor layer packs its
// handle); `detail` points at event-specific data that lives during the call.
struct EventArgs {
  uint64_t subject = 0;
  uint8_t side = 0;  // 0 client, 1 server
  const void* detail = nullptr;
  void* user = nullptr;  // the caller's context (the monitor passes its worker context)
  // Filled by raise(): the event being dispatched (a UDE's id when its handlers run) and hook.
  EventId event = 0;
  Hook hook = Hook::Sender;
};

using HandlerId = uint16_t;
using Handler = std::function<void(const EventArgs&)>;
// A handler as a plain function and its context: one indirect call per event, no
// std::function (what the monitoring layer registers).
using RawHandler = void (*)(void* ctx, const EventArgs&);
using Filter = std::function<bool(const EventArgs&)>;

struct EventInfo {
  EventId id;
  std::string name;
  bool builtin;
  std::optional<EventId> base;  // UDEs only
};

class EventRegistry;

// One set of (event, hook, handler) triples: a node of the dependency tree. Opaque outside the
// registry except for its masks, which raise() reads inline.
class SubscriptionSet {
 public:
  struct Triple {
    EventId event;
    Hook hook;
    HandlerId handler;
    friend bool operator==(const Triple&, const Triple&) = default;
  };
  bool listens(EventId e, Hook h) const { return (mask_[size_t(h)] >> e) & 1; }
  // Exactly one handler for (e, h) and no UDE based on e listened to at h.
  bool single(EventId e, Hook h) const { return (single_[size_t(h)] >> e) & 1; }
  size_t size() const { return triples_.size(); }
  std::span<const Triple> triples() const { return triples_; }  // sorted
  uint32_t holders() const { return refs_; }

 private:
  friend class EventRegistry;
  std::array<uint64_t, 2> mask_{};    // per hook: events handled here or needed by a UDE here
  std::array<uint64_t, 2> single_{};  // per hook: events single() holds for
  // perf: triples_[first_[2e + h] .. first_[2e + h + 1]) are event e's at hook h (no search
  // per dispatch).
  std::array<uint16_t, 2 * kMaxEvents + 1> first_{};
  uint64_t key_ = 0;  // XOR of the triples' hashes
  uint32_t refs_ = 0;
  std::vector<Triple> triples_;  // sorted by (event, hook, handler)
};

class EventRegistry {
 public:
  EventRegistry();
  ~EventRegistry();
  EventRegistry(const EventRegistry&) = delete;
  EventRegistry& operator=(const EventRegistry&) = delete;

  Result<HandlerId> add_handler(std::string name, Handler fn);
  // `ctx` must outlive the registry's dispatches.
  Result<HandlerId> add_handler(std::string name, RawHandler fn, void* ctx);
  // A UDE: raised when `base` is and `filter` returns true.
  Result<EventId> define(std::string name, EventId base, Filter filter);
  Result<EventId> define(std::string name, BuiltinEvent base, Filter filter) {
    return define(std::move(name), EventId(base), std::move(filter));
  }
  std::optional<EventId> find(std::string_view name) const;
  std::vector<EventInfo> list() const;
  size_t events() const { return events_.size(); }

  // The empty set (never freed; holders are not counted).
  SubscriptionSet* empty() { return empty_; }
  // The node of `from`'s set with the triple added (or removed), found by key; `from` itself
  // when it already has (lacks) the triple. Neither changes holder counts: see Subscription.
  Result<SubscriptionSet*> with(SubscriptionSet* from, EventId e, Hook h, HandlerId handler);
  Result<SubscriptionSet*> without(SubscriptionSet* from, EventId e, Hook h, HandlerId handler);
  void retain(SubscriptionSet* s) { ++s->refs_; }
  // A node no flow holds is freed (after the dispatch in progress, if any).
  void release(SubscriptionSet* s);
  size_t nodes() const { return live_nodes_; }  // live nodes, the empty one included

  // Runs the handlers `set` has for event `e` at hook `h` (and the UDEs based on it). An event
  // nobody at the node listens to returns after one bit test.
  void raise(const SubscriptionSet* set, EventId e, Hook h, EventArgs args) {
    if (!set->listens(e, h)) return;
    if (set->single(e, h)) return run_single(set, e, h, args);
    dispatch(set, e, h == Hook::Sender ? kSender : kReceiver, args);
  }
  // Both hooks, sender first, with one EventArgs: one dispatch, so the node stays valid for
  // the receiver's handlers even when a sender's handler moved the flow elsewhere.
  void raise_both(const SubscriptionSet* set, EventId e, EventArgs& args) {
    const bool snd = set->listens(e, Hook::Sender), rcv = set->listens(e, Hook::Receiver);
    if (snd != rcv) {
      const Hook h = snd ? Hook::Sender : Hook::Receiver;
      if (set->single(e, h)) return run_single(set, e, h, args);
    }
    if (snd || rcv) dispatch(set, e, (snd ? kSender : 0u) | (rcv ? kReceiver : 0u), args);
  }
  void raise(const SubscriptionSet* set, BuiltinEvent e, Hook h, EventArgs args) {
    raise(set, EventId(e), h, args);
  }

 private:
  struct Event {
    std::string name;
    std::optional<EventId> base;
    Filter filter;
    std::vector<EventId> children;  // UDEs based on it, in definition order
  };
  struct HandlerEntry {
    std::string name;
    std::unique_ptr<Handler> fn;  // a std::function handler's, which `call` gets as its context
  };
  // perf: what dispatch reads per handler, apart from the names: a pointer and a context.
  struct HandlerCall {
    RawHandler fn;
    void* ctx;
  };
  static constexpr unsigned kSender = 1, kReceiver = 2;

  static uint64_t triple_hash(EventId e, Hook h, HandlerId handler);
  Result<SubscriptionSet*> move_to(SubscriptionSet* from, SubscriptionSet::Triple t, bool add);
  SubscriptionSet* lookup(uint64_t key, const std::vector<SubscriptionSet::Triple>& triples);
  void fill_masks(SubscriptionSet& s) const;
  Result<HandlerId> add_call(std::string name, HandlerCall call, std::unique_ptr<Handler> owned);
  // The hooks given (kSender, kReceiver), sender first; nodes released meanwhile are freed
  // when the outermost dispatch returns.
  void dispatch(const SubscriptionSet* set, EventId e, unsigned hooks, EventArgs& args);
  // One hook: sets args.hook and args.event (a UDE's handlers see its id: restored after them).
  void run(const SubscriptionSet* set, EventId e, Hook h, EventArgs& args);
  void run_children(const SubscriptionSet* set, EventId e, Hook h, EventArgs& args);  // UDEs
  // perf: dispatch() for an event single() holds for, inline: one handler call between the
  // guard's counter updates.
  // The event's own handlers at one hook (not its UDEs), in order.
  void call_handlers(const SubscriptionSet* set, EventId e, Hook h, const EventArgs& args) {
    const size_t slot = size_t(e) * 2 + size_t(h);
    for (size_t i = set->first_[slot], end = set->first_[slot + 1]; i < end; ++i) {
      const HandlerCall& c = calls_[set->triples_[i].handler];
      c.fn(c.ctx, args);
    }
  }
  void run_single(const SubscriptionSet* set, EventId e, Hook h, EventArgs& args) {
    ++dispatching_;
    args.hook = h;
    args.event = e;
    const HandlerCall& c = calls_[set->triples_[set->first_[size_t(e) * 2 + size_t(h)]].handler];
    c.fn(c.ctx, args);
    if (--dispatching_ == 0 && !garbage_.empty()) collect();
  }
  void free_node(SubscriptionSet* s);
  void collect();  // frees the nodes released during the dispatch that just ended

  std::vector<Event> events_;
  std::vector<HandlerEntry> handlers_;
  std::vector<HandlerCall> calls_;  // by HandlerId
  // Nodes by key; a vector per key in case two sets' XORs collide (sets are compared whole).
  std::unordered_map<uint64_t, std::vector<SubscriptionSet*>> by_key_;
  SubscriptionSet* empty_ = nullptr;
  size_t live_nodes_ = 0;
  int dispatching_ = 0;                    // depth of raise() calls in progress
  std::vector<SubscriptionSet*> garbage_;  // released during a dispatch: freed after it
};

// What a flow (or a monitoring socket, for the flows it starts) holds: its node, kept alive,
// moved on add() and remove(). Moves only.
class Subscription {
 public:
  explicit Subscription(EventRegistry& reg) : reg_(&reg), node_(reg.empty()) {}
  // A copy of another's set (a new flow takes its socket's subscriptions).
  Subscription(EventRegistry& reg, SubscriptionSet* start) : reg_(&reg), node_(start) {
    if (node_ != reg.empty()) reg.retain(node_);
  }
  ~Subscription() { reset(); }
  Subscription(Subscription&& o) noexcept : reg_(o.reg_), node_(o.node_) {
    o.node_ = o.reg_->empty();
  }
  Subscription& operator=(Subscription&& o) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  Result<void> add(EventId e, Hook h, HandlerId handler);
  Result<void> add(BuiltinEvent e, Hook h, HandlerId handler) {
    return add(EventId(e), h, handler);
  }
  Result<void> remove(EventId e, Hook h, HandlerId handler);
  Result<void> remove(BuiltinEvent e, Hook h, HandlerId handler) {
    return remove(EventId(e), h, handler);
  }
  void reset();  // back to the empty set
  SubscriptionSet* node() const { return node_; }

 private:
  void move_to(SubscriptionSet* n);
  EventRegistry* reg_;
  SubscriptionSet* node_;
};

}  // namespace l45
