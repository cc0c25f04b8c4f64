#include "l45/event/event.hpp"

#include <algorithm>
#include <utility>

namespace l45 {

namespace {

constexpr std::string_view kBuiltinNames[] = {
    "packet",   "conn_start", "handshake_done", "data", "retransmission", "tcp_state",
    "conn_end", "orphan",     "timeout",        "gap",  "mismatch",       "malformed"};
static_assert(std::size(kBuiltinNames) == kBuiltinEvents);

uint64_t mix(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool triple_less(const SubscriptionSet::Triple& a, const SubscriptionSet::Triple& b) {
  if (a.event != b.event) return a.event < b.event;
  if (a.hook != b.hook) return a.hook < b.hook;
  return a.handler < b.handler;
}

}  // namespace

std::string_view builtin_event_name(BuiltinEvent e) {
  return size_t(e) < kBuiltinEvents ? kBuiltinNames[size_t(e)] : "?";
}

std::string_view hook_name(Hook h) {
  return h == Hook::Sender ? "sender" : "receiver";
}

EventRegistry::EventRegistry() {
  for (size_t i = 0; i < kBuiltinEvents; ++i)
    events_.push_back({std::string(kBuiltinNames[i]), std::nullopt, {}, {}});
  empty_ = new SubscriptionSet();
  by_key_[0].push_back(empty_);
  live_nodes_ = 1;
}

EventRegistry::~EventRegistry() {
  for (auto& [key, nodes] : by_key_)
    for (SubscriptionSet* n : nodes)
      delete n;
}

Result<HandlerId> EventRegistry::add_handler(std::string name, Handler fn) {
  if (!fn) return Error::invalid("handler '" + name + "' has no function");
  auto owned = std::make_unique<Handler>(std::move(fn));
  const HandlerCall call{[](void* ctx, const EventArgs& a) { (*static_cast<Handler*>(ctx))(a); },
                         owned.get()};
  return add_call(std::move(name), call, std::move(owned));
}

Result<HandlerId> EventRegistry::add_handler(std::string name, RawHandler fn, void* ctx) {
  if (!fn) return Error::invalid("handler '" + name + "' has no function");
  return add_call(std::move(name), {fn, ctx}, nullptr);
}

Result<HandlerId> EventRegistry::add_call(std::string name, HandlerCall call,
                                          std::unique_ptr<Handler> owned) {
  if (name.empty()) return Error::invalid("a handler needs a name");
  if (handlers_.size() > UINT16_MAX) return Error::invalid("too many handlers (65536)");
  for (const HandlerEntry& h : handlers_)
    if (h.name == name) return Error::invalid("a handler named '" + name + "' exists");
  handlers_.push_back({std::move(name), std::move(owned)});
  calls_.push_back(call);
  return HandlerId(handlers_.size() - 1);
}

Result<EventId> EventRegistry::define(std::string name, EventId base, Filter filter) {
  if (name.empty()) return Error::invalid("an event needs a name");
  if (base >= events_.size())
    return Error::invalid("event '" + name + "': no base event " + std::to_string(base));
  if (!filter) return Error::invalid("event '" + name + "' has no filter");
  if (find(name)) return Error::invalid("an event named '" + name + "' exists");
  if (events_.size() >= kMaxEvents)
    return Error::invalid("event '" + name + "': at most " + std::to_string(kMaxEvents) +
                          " events (" + std::to_string(kBuiltinEvents) + " built in)");
  const EventId id = EventId(events_.size());
  events_.push_back({std::move(name), base, std::move(filter), {}});
  events_[base].children.push_back(id);
  return id;
}

std::optional<EventId> EventRegistry::find(std::string_view name) const {
  for (size_t i = 0; i < events_.size(); ++i)
    if (events_[i].name == name) return EventId(i);
  return std::nullopt;
}

std::vector<EventInfo> EventRegistry::list() const {
  std::vector<EventInfo> out;
  for (size_t i = 0; i < events_.size(); ++i)
    out.push_back({EventId(i), events_[i].name, i < kBuiltinEvents, events_[i].base});
  return out;
}

uint64_t EventRegistry::triple_hash(EventId e, Hook h, HandlerId handler) {
  return mix((uint64_t{e} | uint64_t(h) << 8 | uint64_t{handler} << 16) + 0x9e3779b97f4a7c15ull);
}

Result<SubscriptionSet*> EventRegistry::with(SubscriptionSet* from, EventId e, Hook h,
                                             HandlerId handler) {
  return move_to(from, {e, h, handler}, true);
}

Result<SubscriptionSet*> EventRegistry::without(SubscriptionSet* from, EventId e, Hook h,
                                                HandlerId handler) {
  return move_to(from, {e, h, handler}, false);
}

Result<SubscriptionSet*> EventRegistry::move_to(SubscriptionSet* from, SubscriptionSet::Triple t,
                                                bool add) {
  if (t.event >= events_.size()) return Error::invalid("no event " + std::to_string(t.event));
  if (t.handler >= handlers_.size())
    return Error::invalid("no handler " + std::to_string(t.handler));
  if (t.hook != Hook::Sender && t.hook != Hook::Receiver) return Error::invalid("no such hook");
  const auto& tr = from->triples_;
  const auto it = std::lower_bound(tr.begin(), tr.end(), t, triple_less);
  const bool has = it != tr.end() && *it == t;
  if (has == add) return from;  // nothing to change
  // perf: the target node is found by its key, one XOR away, and checked against `from` plus
  // or minus t without building its set (sets are a handful of triples).
  const uint64_t key = from->key_ ^ triple_hash(t.event, t.hook, t.handler);
  const size_t want = add ? tr.size() + 1 : tr.size() - 1;
  if (auto found = by_key_.find(key); found != by_key_.end()) {
    for (SubscriptionSet* n : found->second) {
      if (n->triples_.size() != want) continue;
      // n == from with t inserted (add) or with t removed: walk both, skipping t once.
      const auto& big = add ? n->triples_ : tr;
      const auto& small = add ? tr : n->triples_;
      size_t i = 0, j = 0;
      bool skipped = false, same = true;
      while (i < big.size() && same) {
        if (!skipped && big[i] == t) {
          skipped = true;
          ++i;
        } else if (j < small.size() && big[i] == small[j]) {
          ++i, ++j;
        } else {
          same = false;
        }
      }
      if (same && skipped && j == small.size()) return n;
    }
  }
  auto* n = new SubscriptionSet();
  n->triples_ = tr;
  if (add)
    n->triples_.insert(n->triples_.begin() + (it - tr.begin()), t);
  else
    n->triples_.erase(n->triples_.begin() + (it - tr.begin()));
  n->key_ = key;
  fill_masks(*n);
  by_key_[key].push_back(n);
  ++live_nodes_;
  return n;
}

void EventRegistry::fill_masks(SubscriptionSet& s) const {
  s.mask_ = {};
  size_t i = 0;
  for (size_t slot = 0; slot < 2 * kMaxEvents; ++slot) {
    s.first_[slot] = uint16_t(i);
    while (i < s.triples_.size() &&
           size_t(s.triples_[i].event) * 2 + size_t(s.triples_[i].hook) == slot)
      ++i;
  }
  s.first_[2 * kMaxEvents] = uint16_t(i);
  for (const SubscriptionSet::Triple& t : s.triples_) {
    // The event itself and every base it hangs from: their filters must run to reach it.
    for (std::optional<EventId> e = t.event; e; e = events_[*e].base)
      s.mask_[size_t(t.hook)] |= uint64_t{1} << *e;
  }
  s.single_ = {};
  for (size_t e = 0; e < events_.size(); ++e)
    for (size_t h = 0; h < 2; ++h) {
      const size_t slot = e * 2 + h;
      if (s.first_[slot + 1] - s.first_[slot] != 1) continue;
      bool udes = false;
      for (EventId c : events_[e].children)
        udes = udes || s.listens(c, Hook(h));
      if (!udes) s.single_[h] |= uint64_t{1} << e;
    }
}

void EventRegistry::release(SubscriptionSet* s) {
  if (s == empty_ || s->refs_ == 0) return;
  if (--s->refs_ != 0) return;
  if (dispatching_) {
    if (std::find(garbage_.begin(), garbage_.end(), s) == garbage_.end()) garbage_.push_back(s);
    return;
  }
  free_node(s);
}

void EventRegistry::free_node(SubscriptionSet* s) {
  auto found = by_key_.find(s->key_);
  if (found != by_key_.end()) {
    auto& v = found->second;
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    if (v.empty()) by_key_.erase(found);
  }
  delete s;
  --live_nodes_;
}

void EventRegistry::dispatch(const SubscriptionSet* set, EventId e, unsigned hooks,
                             EventArgs& args) {
  // Nodes released while handlers run are freed only once the outermost dispatch returns, so
  // `set` stays valid even when a handler moves its flow elsewhere.
  ++dispatching_;
  // perf: the event's own handlers run here, in one frame; UDEs (rare) go through run_children().
  const bool udes = !events_[e].children.empty();
  for (unsigned h = 0; h < 2; ++h) {
    if (!(hooks & (1u << h))) continue;
    args.hook = Hook(h);
    args.event = e;
    call_handlers(set, e, Hook(h), args);
    if (udes) run_children(set, e, Hook(h), args);
  }
  if (--dispatching_ == 0 && !garbage_.empty()) collect();
}

void EventRegistry::run(const SubscriptionSet* set, EventId e, Hook h, EventArgs& args) {
  args.hook = h;
  args.event = e;
  call_handlers(set, e, h, args);
  run_children(set, e, h, args);
}

void EventRegistry::run_children(const SubscriptionSet* set, EventId e, Hook h, EventArgs& args) {
  for (EventId c : events_[e].children) {
    if (!set->listens(c, h)) continue;
    args.event = c;
    if (events_[c].filter(args)) run(set, c, h, args);
    args.event = e;
    args.hook = h;
  }
}

void EventRegistry::collect() {
  std::vector<SubscriptionSet*> g;
  g.swap(garbage_);
  for (SubscriptionSet* n : g)
    if (n->refs_ == 0) free_node(n);  // unless a flow came back to it meanwhile
}

Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    reset();
    reg_ = o.reg_;
    node_ = o.node_;
    o.node_ = o.reg_->empty();
  }
  return *this;
}

void Subscription::move_to(SubscriptionSet* n) {
  if (n == node_) return;
  if (n != reg_->empty()) reg_->retain(n);
  reg_->release(node_);
  node_ = n;
}

Result<void> Subscription::add(EventId e, Hook h, HandlerId handler) {
  auto r = reg_->with(node_, e, h, handler);
  if (!r.ok()) return r.error();
  move_to(r.value());
  return {};
}

Result<void> Subscription::remove(EventId e, Hook h, HandlerId handler) {
  auto r = reg_->without(node_, e, h, handler);
  if (!r.ok()) return r.error();
  move_to(r.value());
  return {};
}

void Subscription::reset() {
  move_to(reg_->empty());
}

}  // namespace l45
