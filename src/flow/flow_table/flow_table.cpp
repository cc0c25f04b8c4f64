#include "l45/flow/flow_table.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "l45/core/assert.hpp"
#include "l45/packet/decode.hpp"

namespace l45 {

namespace {

IpAddr addr_from(const std::array<uint8_t, 16>& b, uint8_t family) {
  const auto* p = reinterpret_cast<const std::byte*>(b.data());
  return family == 4 ? IpAddr::v4(p) : family == 6 ? IpAddr::v6(p) : IpAddr{};
}

void copy_addr(std::array<uint8_t, 16>& out, const IpAddr& a) {
  auto b = a.bytes();
  std::memcpy(out.data(), b.data(), b.size());
}

// Ports (or the echo id standing in for them) of a transport header at `l4` inside `data`,
// read directly: a quoted packet is cut after 8 bytes, so the decoder has no view for it.
bool ports_at(Bytes data, size_t l4, uint8_t proto, uint8_t ip_version, uint16_t* sport,
              uint16_t* dport) {
  if (l4 > data.size()) return false;
  Bytes t = data.subspan(l4);
  if (proto == ip_proto::kTcp || proto == ip_proto::kUdp) {
    if (t.size() < 4) return false;
    *sport = load_be16(t.data());
    *dport = load_be16(t.data() + 2);
    return true;
  }
  bool icmp4 = proto == ip_proto::kIcmp && ip_version == 4;
  bool icmp6 = proto == ip_proto::kIcmpv6 && ip_version == 6;
  if (icmp4 || icmp6) {
    if (t.size() < 8) return false;
    uint8_t type = load_u8(t.data());
    bool echo = icmp4 ? (type == icmp_type::kEchoRequest || type == icmp_type::kEchoReply ||
                         type == icmp_type::kTimestamp || type == icmp_type::kTimestampReply)
                      : (type == icmpv6_type::kEchoRequest || type == icmpv6_type::kEchoReply);
    *sport = *dport = echo ? load_be16(t.data() + 4) : 0;
    return true;
  }
  *sport = *dport = 0;  // a protocol without ports: the flow is the address pair
  return true;
}

// The key of the packet an ICMP error quotes (RFC 792: IP header + 8 bytes; RFC 4443 2.4(c)).
std::optional<KeyedPacket> quoted_key(Bytes quoted, uint16_t vlan) {
  // The quote is cut: a wire length past it makes the decoder read the cut as a snap cut and
  // keep the IP header it did read.
  PacketView q = PacketView::decode(LinkType::Raw, quoted, 65535);
  auto ips = q.ip_layers();
  if (ips.empty()) return std::nullopt;
  const IpLayer& ip = ips.back();
  FragmentInfo f = q.fragment();
  if (f.is_fragment && f.offset_bytes != 0) return std::nullopt;
  uint16_t sp = 0, dp = 0;
  if (!ports_at(q.data(), size_t(ip.offset) + ip.header_len, ip.proto, ip.version, &sp, &dp))
    return std::nullopt;
  KeyedPacket k = make_flow_key(ip.proto, ip.src(), sp, ip.dst(), dp, vlan);
  // The error travels back toward the quoted packet's sender.
  k.dir = reverse(k.dir);
  k.icmp_error = true;
  return k;
}

}  // namespace

IpAddr FlowKey::a() const {
  return addr_from(addr_a, family);
}
IpAddr FlowKey::b() const {
  return addr_from(addr_b, family);
}

KeyedPacket make_flow_key(uint8_t proto, IpAddr src, uint16_t sport, IpAddr dst, uint16_t dport,
                          uint16_t vlan) {
  KeyedPacket k;
  // perf: IPv4 by value (the same order as the memcmp of IpAddr's <=>, without the call).
  bool src_first;
  if (src.is_v4() && dst.is_v4()) {
    const uint32_t s = src.v4_value(), d = dst.v4_value();
    src_first = s < d || (s == d && sport <= dport);
  } else {
    src_first = src < dst || (src == dst && sport <= dport);
  }
  const IpAddr& a = src_first ? src : dst;
  const IpAddr& b = src_first ? dst : src;
  copy_addr(k.key.addr_a, a);
  copy_addr(k.key.addr_b, b);
  k.key.port_a = src_first ? sport : dport;
  k.key.port_b = src_first ? dport : sport;
  k.key.vlan = vlan;
  k.key.proto = proto;
  k.key.family = uint8_t(src.family());
  k.dir = src_first ? KeyDir::Forward : KeyDir::Reverse;
  return k;
}

std::optional<KeyedPacket> key_of(const PacketView& v, const FlowKeyOptions& opt) {
  KeyedPacket k;
  if (!key_into(v, opt, k)) return std::nullopt;
  return k;
}

// Everything the inline fast path of key_into() leaves (flow_table.hpp).
bool key_into_general(const PacketView& v, const FlowKeyOptions& opt, KeyedPacket& out) {
  const uint16_t vlan = opt.key_vlan && !v.vlan_ids().empty() ? v.vlan_ids().back() : 0;
  auto ips = v.ip_layers();
  if (ips.empty()) return false;
  const IpLayer& ip = ips.back();
  const FragmentInfo& f = v.fragment();
  if (f.is_fragment && f.offset_bytes != 0) return false;
  uint16_t sp = 0, dp = 0;
  switch (ip.proto) {
    case ip_proto::kTcp:
    case ip_proto::kUdp:
      if (!v.has_ports()) return false;
      sp = v.src_port();
      dp = v.dst_port();
      break;
    case ip_proto::kIcmp:
      if (ip.version == 4) {
        auto ic = v.icmp();
        if (!ic) return false;
        if (ic->is_error()) {
          auto q = quoted_key(ic->quoted(), vlan);
          if (q) out = *q;
          return q.has_value();
        }
        if (ic->is_echo()) sp = dp = ic->echo_id();
      }
      break;
    case ip_proto::kIcmpv6:
      if (ip.version == 6) {
        auto ic = v.icmpv6();
        if (!ic) return false;
        if (ic->is_error()) {
          auto q = quoted_key(ic->quoted(), vlan);
          if (q) out = *q;
          return q.has_value();
        }
        if (ic->is_echo()) sp = dp = ic->echo_id();
      }
      break;
    default:
      break;
  }
  out = make_flow_key(ip.proto, ip.src(), sp, ip.dst(), dp, vlan);
  return true;
}

FlowKeyHasher::FlowKeyHasher(uint64_t seed) {
  // Secrets drawn from the seed (splitmix64 steps), odd so no product is trivially zero.
  uint64_t x = seed;
  for (uint64_t& s : secret_) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s = (z ^ (z >> 31)) | 1;
  }
}

uint64_t flow_key_hash(const FlowKey& k, uint64_t seed) {
  return FlowKeyHasher(seed)(k);
}

const char* close_reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::IdleTimeout:
      return "idle_timeout";
    case CloseReason::Evicted:
      return "evicted";
    case CloseReason::Erased:
      return "erased";
    case CloseReason::Cleared:
      return "cleared";
  }
  return "?";
}

namespace detail {

// The 64 bytes per flow the header promises.
static_assert(sizeof(FlowTableCore::Record) == 64);

FlowTableCore::FlowTableCore(const FlowTableConfig& cfg) : cfg_(cfg), hasher_(cfg.hash_seed) {
  L45_CHECK(cfg.max_flows > 0 && cfg.max_flows < (1u << 30));
  recs_.resize(cfg.max_flows);
  for (uint32_t i = 0; i < cfg.max_flows; ++i)
    recs_[i].next = i + 1 < cfg.max_flows ? i + 1 : kNil;
  free_head_ = 0;
  // At most half full: linear probes stay short and always end at an empty bucket.
  buckets_.resize(std::bit_ceil(size_t(cfg.max_flows) * 2));
  mask_ = uint32_t(buckets_.size() - 1);
  slot_bits_ = uint32_t(std::bit_width(cfg.max_flows));  // slot + 1 <= max_flows; at most 30
  slot_mask_ = (1u << slot_bits_) - 1;
}

uint32_t FlowTableCore::insert_new(const FlowKey& k, uint64_t h, KeyDir initiator, Timestamp now) {
  if (free_head_ == kNil) return kNil;
  uint32_t i = free_head_;
  Record& r = recs_[i];
  free_head_ = r.next;
  r.key = k;
  r.last_seen = now;
  r.cls = 0;
  r.initiator = uint8_t(initiator);
  r.live = true;
  uint32_t pos = uint32_t(h) & mask_;
  while (buckets_[pos] != 0)
    pos = (pos + 1) & mask_;
  buckets_[pos] = tag_of(h) << slot_bits_ | (i + 1);
  link_tail(i);
  ++stats_.created;
  if (++stats_.active > stats_.peak) stats_.peak = stats_.active;
  return i;
}

void FlowTableCore::index_erase(uint32_t i) {
  // The key is hashed again rather than kept: a record of 64 bytes, not 72.
  uint32_t j = uint32_t(hash(recs_[i].key)) & mask_;
  while ((buckets_[j] & slot_mask_) != i + 1)
    j = (j + 1) & mask_;
  // Backward-shift deletion (Knuth 6.4 algorithm R): pull later entries of the run back into
  // the hole unless that would move one before its home bucket (their keys hashed again: at
  // half load a run is short).
  for (uint32_t k = j;;) {
    buckets_[j] = 0;
    for (;;) {
      k = (k + 1) & mask_;
      if (buckets_[k] == 0) return;
      uint32_t home = uint32_t(hash(recs_[(buckets_[k] & slot_mask_) - 1].key)) & mask_;
      bool stays = j <= k ? (j < home && home <= k) : (j < home || home <= k);
      if (!stays) break;
    }
    buckets_[j] = buckets_[k];
    j = k;
  }
}

void FlowTableCore::release(uint32_t i) {
  Record& r = recs_[i];
  L45_CHECK(r.live);
  index_erase(i);
  unlink(i);
  r.live = false;
  if (++r.generation == 0) r.generation = 1;  // 0 is the null handle's
  r.next = free_head_;
  free_head_ = i;
  --stats_.active;
}

uint32_t FlowTableCore::oldest() const {
  uint32_t best = kNil;
  for (const List& l : lists_)
    if (l.head != kNil && (best == kNil || recs_[l.head].last_seen < recs_[best].last_seen))
      best = l.head;
  return best;
}

uint32_t FlowTableCore::scan_expired(Timestamp now) const {
  uint32_t best = kNil;
  int64_t min_deadline = INT64_MAX;
  for (size_t c = 0; c < kMaxTimeoutClasses; ++c) {
    uint32_t h = lists_[c].head;
    Duration t = cfg_.timeouts[c];
    if (h == kNil || t.ns <= 0) continue;
    min_deadline = std::min(min_deadline, recs_[h].last_seen.ns + t.ns);
    if (!(now - recs_[h].last_seen > t)) continue;
    if (best == kNil || recs_[h].last_seen < recs_[best].last_seen) best = h;
  }
  // Heads only move to later flows (lists are sorted) or come in through link_tail().
  min_deadline_ns_ = min_deadline;
  return best;
}

void FlowTableCore::change_class(uint32_t i, uint8_t cls) {
  unlink(i);
  recs_[i].cls = cls;
  link_tail(i);
}

size_t FlowTableCore::memory_bytes() const {
  return sizeof(*this) + recs_.capacity() * sizeof(Record) + buckets_.capacity() * sizeof(Bucket);
}

void FlowTableCore::count_close(CloseReason r) {
  switch (r) {
    case CloseReason::IdleTimeout:
      ++stats_.expired;
      stats_.drops.add(DropReason::FlowIdleTimeout);
      break;
    case CloseReason::Evicted:
      ++stats_.evicted;
      stats_.drops.add(DropReason::FlowEvicted);
      break;
    case CloseReason::Erased:
      ++stats_.erased;
      break;
    case CloseReason::Cleared:
      break;
  }
}

void FlowTableCore::count_refused() {
  ++stats_.refused;
  stats_.drops.add(DropReason::FlowTableFull);
}

}  // namespace detail
}  // namespace l45
