#include "l45/monitor/workers.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "l45/flow/flow_table.hpp"

namespace l45 {

namespace {

// A datagram's identity as the defragmenter sees it: innermost IP pair, id, protocol (IPv4),
// plus the link context (VLANs, MPLS labels, outer IP pairs) so equal ids on two links differ.
std::string datagram_id(const PacketView& v) {
  std::string k;
  auto add = [&k](const void* p, size_t n) { k.append(static_cast<const char*>(p), n); };
  const auto ips = v.ip_layers();
  for (const IpLayer& ip : ips) {
    const IpAddr s = ip.src(), d = ip.dst();
    k += char(ip.version);
    add(s.bytes().data(), s.bytes().size());
    add(d.bytes().data(), d.bytes().size());
  }
  const uint32_t id = v.fragment().id;
  add(&id, sizeof id);
  if (v.ip_version() == 4) k += char(v.l4_proto());
  for (uint16_t t : v.vlan_ids())
    add(&t, sizeof t);
  for (uint32_t l : v.mpls_labels())
    add(&l, sizeof l);
  return k;
}

// The fragments of one datagram that is not whole yet.
struct Held {
  std::vector<Packet> pkts;  // in arrival order
  unsigned by_pair = 0;      // where they go if the datagram never completes
  Timestamp first;
};

// Datagrams given up, oldest first (an order that does not depend on the hash map's).
void release(std::vector<Held>& groups, Timestamp clock, const FlowDispatcher::Emit& emit,
             uint64_t& released) {
  std::sort(groups.begin(), groups.end(), [](const Held& a, const Held& b) {
    return a.pkts.front().meta().frame < b.pkts.front().meta().frame;
  });
  for (const Held& h : groups)
    for (const Packet& x : h.pkts) {
      ++released;
      emit(h.by_pair, x, clock);
    }
}

}  // namespace

struct FlowDispatcher::Frags {
  explicit Frags(const DefragLimits& l) : defrag(l) {}
  struct Done {
    unsigned worker;
    Timestamp at;
  };
  IpDefragmenter defrag;
  std::unordered_map<std::string, Held> held;
  std::unordered_map<std::string, Done> done;  // recently completed: late fragments follow
  Timestamp next_scan{};
};

FlowDispatcher::FlowDispatcher(const DispatchConfig& cfg)
    : cfg_(cfg), frags_(std::make_unique<Frags>(cfg.defrag)) {
  if (cfg_.workers == 0) cfg_.workers = 1;
}

FlowDispatcher::~FlowDispatcher() = default;

unsigned FlowDispatcher::pick(uint64_t hash) const {
  // Lemire's range reduction: uses the hash's high bits, no division.
  return unsigned((unsigned __int128)hash * cfg_.workers >> 64);
}

unsigned FlowDispatcher::by_ip_pair(const PacketView& v) const {
  if (v.ip_layers().empty()) return 0;
  const KeyedPacket kp = make_flow_key(v.l4_proto(), v.src_addr(), 0, v.dst_addr(), 0);
  return pick(flow_key_hash(kp.key, cfg_.seed));
}

unsigned FlowDispatcher::worker_of(const PacketView& v) const {
  if (cfg_.workers <= 1 || v.ip_layers().empty()) return 0;
  // No VLAN in the key: the engine's key may have one (key_vlan), and a coarser key still keeps
  // each flow on one worker.
  if (auto kp = key_of(v, {})) return pick(flow_key_hash(kp->key, cfg_.seed));
  return by_ip_pair(v);
}

void FlowDispatcher::push(const Packet& p, const Emit& emit) {
  ++stats_.packets;
  const Timestamp before = clock_;
  if (p.meta().ts > clock_) clock_ = p.meta().ts;
  if (cfg_.workers <= 1) return emit(0, p, before);
  const PacketView v = PacketView::decode(p);
  if (!v.fragment().is_fragment || !v.ok()) return emit(worker_of(v), p, before);
  if (!cfg_.defragment) return emit(by_ip_pair(v), p, before);
  push_fragment(p, v, before, emit);
}

void FlowDispatcher::push_fragment(const Packet& p, const PacketView& v, Timestamp before,
                                   const Emit& emit) {
  Frags& f = *frags_;
  const Timestamp now = clock_;
  // Datagrams that will never complete: out by IP pair once the defragmenter gave up on them.
  if (f.next_scan <= now) {
    f.next_scan = now + Duration::seconds(1);
    f.defrag.expire(now);
    std::vector<Held> gone;
    for (auto it = f.held.begin(); it != f.held.end();) {
      if (now - it->second.first <= cfg_.defrag.timeout) {
        ++it;
        continue;
      }
      gone.push_back(std::move(it->second));
      it = f.held.erase(it);
    }
    release(gone, before, emit, stats_.fragments_released);
    for (auto it = f.done.begin(); it != f.done.end();)
      it = now - it->second.at > cfg_.defrag.timeout ? f.done.erase(it) : std::next(it);
  }

  std::string id = datagram_id(v);
  std::optional<Packet> whole;
  const PushResult r = f.defrag.push(p.share(), v, now, &whole);
  if (r.outcome == DefragOutcome::Passed) return emit(worker_of(v), p, before);  // atomic
  if (r.outcome == DefragOutcome::Reassembled && whole) {
    const unsigned w = worker_of(PacketView::decode(*whole));
    if (auto h = f.held.find(id); h != f.held.end()) {
      for (const Packet& x : h->second.pkts)
        emit(w, x, before);
      f.held.erase(h);
    }
    f.done[id] = {w, now};
    return emit(w, p, before);
  }
  // Held, duplicate or refused: it follows a datagram already sent, or waits with its own.
  if (auto d = f.done.find(id); d != f.done.end()) return emit(d->second.worker, p, before);
  auto [h, fresh] = f.held.try_emplace(std::move(id));
  if (fresh) {
    h->second.by_pair = by_ip_pair(v);
    h->second.first = now;
  }
  h->second.pkts.push_back(p.share());
  ++stats_.fragments_held;
}

void FlowDispatcher::flush(const Emit& emit) {
  std::vector<Held> all;
  for (auto& [id, h] : frags_->held)
    all.push_back(std::move(h));
  frags_->held.clear();
  release(all, clock_, emit, stats_.fragments_released);
  frags_->done.clear();
}

}  // namespace l45
