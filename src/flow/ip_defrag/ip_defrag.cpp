// IPv4/IPv6 fragment reassembly: see include/l45/flow/ip_defrag.hpp.
//
// Each datagram in flight holds its fragments' packets (shared, never copied: a fragment from a
// memory-mapped capture stays where it is) and a sorted list of disjoint pieces, each a byte
// range of the datagram's fragmentable part and where those bytes are in one held fragment.
// A new fragment adds only the ranges no piece covers yet (first data wins); the bytes it shares
// with held pieces are compared, which is how overlaps with different data are seen. The
// datagram is whole when its last fragment (MF = 0) set the end, the first (offset 0) is held
// and the pieces cover [0, end). Only then is one buffer allocated and the pieces copied in.
#include "l45/flow/ip_defrag.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "l45/packet/bytes.hpp"
#include "l45/packet/checksum.hpp"

namespace l45 {

namespace {

// Version, protocol, id, addresses, and the link context (ingress, VLANs, MPLS, outer IP
// addresses): at most 6 + 32 + 4 + 1 + 16 + 1 + 32 + 1 + 3 * 33 bytes.
struct Key {
  std::array<std::byte, 200> b;
  uint16_t n = 0;

  void put(const void* p, size_t len) {
    std::memcpy(b.data() + n, p, len);
    n = uint16_t(n + len);
  }
  void put8(uint8_t v) { put(&v, 1); }
  std::string_view view() const { return {reinterpret_cast<const char*>(b.data()), n}; }
  friend bool operator==(const Key& a, const Key& c) { return a.view() == c.view(); }
};

struct KeyHash {
  size_t operator()(const Key& k) const { return std::hash<std::string_view>()(k.view()); }
};

struct Piece {
  uint32_t start;     // in the fragmentable part
  uint32_t end;       // exclusive
  uint32_t frag;      // index into Datagram::frags
  uint32_t data_off;  // where `start` is in that fragment's bytes
};

struct OuterIp {
  uint16_t offset;
  uint8_t version;
};

struct Datagram {
  Timestamp first_seen;
  std::vector<Packet> frags;
  std::vector<Piece> pieces;  // sorted by start, disjoint
  size_t bytes = 0;           // captured bytes of the held fragments
  uint32_t covered = 0;       // sum of the pieces' lengths
  uint32_t end = 0;           // the fragmentable part's length, once the last fragment is seen
  bool have_last = false;
  int32_t first = -1;  // index in frags of the offset-0 fragment
  // Geometry of the first fragment, which gives the reassembled packet its headers.
  uint8_t version = 0;
  uint8_t frag_next_header = 0;    // IPv6: the Fragment header's Next Header
  uint16_t ip_offset = 0;          // innermost IP header
  uint32_t prefix = 0;             // bytes before the fragmentable part (IPv6: before Fragment hdr)
  uint32_t next_header_field = 0;  // IPv6: the field that names the Fragment header
  std::array<OuterIp, PacketView::kMaxIpLayers> outer{};
  uint8_t n_outer = 0;
};

// Bytes of the IP headers' addresses.
void put_addrs(Key& k, const IpLayer& ip) {
  if (ip.version == 4) {
    k.put(ip.header + 12, 8);
  } else {
    k.put(ip.header + 8, 32);
  }
}

void set_ipv4_checksum(std::byte* h) {
  const size_t ihl = size_t(load_u8(h) & 0x0f) * 4;
  store_be16(h + 10, 0);
  store_be16(h + 10, checksum_finish(checksum_add(Bytes(h, ihl))));
}

}  // namespace

struct IpDefragmenter::Impl {
  std::unordered_map<Key, Datagram, KeyHash> table;
  struct Gap {
    uint32_t start, end;
  };
  std::vector<Gap> gaps;  // scratch, reused across pushes
};

IpDefragmenter::IpDefragmenter(const DefragLimits& limits)
    : limits_(limits), impl_(std::make_unique<Impl>()) {}
IpDefragmenter::~IpDefragmenter() = default;
IpDefragmenter::IpDefragmenter(IpDefragmenter&&) noexcept = default;
IpDefragmenter& IpDefragmenter::operator=(IpDefragmenter&&) noexcept = default;

void IpDefragmenter::expire(Timestamp now) {
  auto& t = impl_->table;
  for (auto it = t.begin(); it != t.end();) {
    if (now - it->second.first_seen >= limits_.timeout) {
      stats_.bytes_held -= it->second.bytes;
      ++stats_.expired;
      stats_.drops.add(DropReason::FragTimeout);
      it = t.erase(it);
    } else {
      ++it;
    }
  }
  stats_.datagrams = t.size();
}

PushResult IpDefragmenter::push_fragment(Packet pkt, const PacketView& v, Timestamp now,
                                         std::optional<Packet>* out) {
  out->reset();
  ++stats_.fragments;
  auto refuse = [&](DropReason r, DropReason anomaly = DropReason::None) {
    stats_.drops.add(r);
    return PushResult{DefragOutcome::Dropped, r, anomaly};
  };

  const FragmentInfo f = v.fragment();
  const auto ips = v.ip_layers();
  if (ips.empty()) return refuse(DropReason::Fragment);  // the decoder promises one; be safe
  const IpLayer& ip = ips.back();

  // RFC 6946 4: an atomic fragment is a whole datagram and must not meet other fragments.
  if (ip.version == 6 && f.offset_bytes == 0 && !f.more_fragments) {
    ++stats_.atomic;
    out->emplace(std::move(pkt));
    return {};
  }

  // Reassembly needs the whole fragment: a capture that cut it cannot give its bytes.
  const size_t caplen = pkt.size();
  if (v.data().size() != caplen) return refuse(DropReason::Fragment);  // view of another buffer
  const size_t dgram_end = size_t(ip.offset) + ip.total_len;
  if (dgram_end > caplen)
    return refuse(v.error() != DropReason::None ? v.error() : DropReason::SnapCut);

  size_t data_start = 0;
  uint32_t ihl = 0, nh_field = 0;
  uint8_t frag_nh = 0;
  PushResult res{DefragOutcome::Held, DropReason::None, DropReason::None};
  if (ip.version == 4) {
    ihl = uint32_t(load_u8(ip.header) & 0x0f) * 4;
    data_start = size_t(ip.offset) + ihl;
    // RFC 791 3.1: a datagram marked Don't Fragment should never have been fragmented.
    if (load_be16(ip.header + 6) & 0x4000) {
      res.anomaly = DropReason::FragDfSet;
      stats_.drops.add(DropReason::FragDfSet);
    }
  } else {
    // The Fragment header of the innermost IPv6 header, and the field that names it.
    const auto layers = v.layers();
    size_t i = 0;
    while (i < layers.size() &&
           !(layers[i].kind == LayerKind::Ipv6Fragment && layers[i].offset > ip.offset))
      ++i;
    if (i == layers.size() || i == 0) return refuse(DropReason::Ipv6ExtTruncated);
    const Layer& prev = layers[i - 1];
    nh_field = prev.kind == LayerKind::Ipv6 ? prev.offset + 6u : prev.offset;
    frag_nh = load_u8(pkt.data().data() + layers[i].offset);
    data_start = size_t(layers[i].offset) + 8;
  }
  if (data_start > dgram_end) return refuse(DropReason::Truncated);
  const uint32_t len = uint32_t(dgram_end - data_start);
  const uint32_t off = f.offset_bytes;
  const uint32_t end = off + len;

  // RFC 8200 4.5: a fragment that is not the last must be a multiple of 8 octets long; an
  // empty fragment carries nothing and only costs state.
  if (len == 0 || (f.more_fragments && len % 8 != 0))
    return refuse(DropReason::FragBadLength, res.anomaly);
  // RFC 791: total length is 16 bits; RFC 8200 4.5: offset + length past 65535 is discarded.
  if (end + ihl > 65535) return refuse(DropReason::FragTooLong, res.anomaly);

  Key key;
  key.put8(ip.version);
  key.put8(ip.version == 4 ? ip.proto : 0);  // RFC 8200 4.5: IPv6 keys without the protocol
  key.put(&f.id, 4);
  put_addrs(key, ip);
  const uint32_t ingress = pkt.meta().ingress;
  key.put(&ingress, 4);
  const auto vl = v.vlan_ids();
  key.put8(uint8_t(vl.size()));
  if (!vl.empty()) key.put(vl.data(), vl.size() * 2);
  const auto ml = v.mpls_labels();
  key.put8(uint8_t(ml.size()));
  if (!ml.empty()) key.put(ml.data(), ml.size() * 4);
  key.put8(uint8_t(ips.size()));
  for (size_t j = 0; j + 1 < ips.size(); ++j) {
    key.put8(ips[j].version);
    put_addrs(key, ips[j]);
  }

  auto& table = impl_->table;
  auto drop_datagram = [&](auto it, DropReason r) {
    stats_.bytes_held -= it->second.bytes;
    table.erase(it);
    stats_.datagrams = table.size();
    return refuse(r, res.anomaly);
  };

  auto it = table.find(key);
  if (it != table.end() && now - it->second.first_seen >= limits_.timeout) {
    // Its time ran out before this fragment: count it expired and start afresh, as Linux does
    // when a timer has not fired yet.
    stats_.bytes_held -= it->second.bytes;
    ++stats_.expired;
    stats_.drops.add(DropReason::FragTimeout);
    table.erase(it);
    it = table.end();
  }
  if (it == table.end()) {
    if (table.size() >= limits_.max_datagrams) expire(now);
    if (table.size() >= limits_.max_datagrams)
      return refuse(DropReason::FragTableFull, res.anomaly);
    if (stats_.bytes_held + caplen > limits_.max_bytes)
      return refuse(DropReason::FragMemoryLimit, res.anomaly);
    it = table.try_emplace(key).first;
    it->second.first_seen = now;
    it->second.version = ip.version;
    stats_.datagrams = table.size();
  }
  Datagram& d = it->second;

  if (d.frags.size() >= limits_.max_fragments) return drop_datagram(it, DropReason::FragTooMany);
  if (stats_.bytes_held + caplen > limits_.max_bytes)
    return drop_datagram(it, DropReason::FragMemoryLimit);
  // RFC 791 3.2 / RFC 8200 4.5: the last fragment fixes the end; nothing may lie past it, and a
  // second "last" must agree (Linux discards such a queue as corrupt).
  const uint32_t max_end = d.pieces.empty() ? 0 : d.pieces.back().end;
  if (!f.more_fragments) {
    if ((d.have_last && d.end != end) || max_end > end)
      return drop_datagram(it, DropReason::FragLengthConflict);
  } else if (d.have_last && end > d.end) {
    return drop_datagram(it, DropReason::FragLengthConflict);
  }

  // Which parts of [off, end) are new, and do the held bytes agree with the rest?
  const std::byte* src = pkt.data().data() + data_start;
  auto& gaps = impl_->gaps;
  gaps.clear();
  bool overlap = false, mismatch = false;
  uint32_t cur = off;
  auto pit = std::upper_bound(d.pieces.begin(), d.pieces.end(), off,
                              [](uint32_t o, const Piece& p) { return o < p.end; });
  for (; pit != d.pieces.end() && pit->start < end; ++pit) {
    if (pit->start > cur) gaps.push_back({cur, pit->start});
    const uint32_t s = std::max(pit->start, off), e = std::min(pit->end, end);
    const std::byte* held = d.frags[pit->frag].data().data() + pit->data_off + (s - pit->start);
    overlap = true;
    if (std::memcmp(src + (s - off), held, e - s) != 0) mismatch = true;
    cur = std::max(cur, pit->end);
  }
  if (cur < end) gaps.push_back({cur, end});

  const bool v6_strict = ip.version == 6 && limits_.ipv6_drop_overlaps;
  if (mismatch || (overlap && !gaps.empty() && v6_strict)) {
    // RFC 5722 3: an IPv6 datagram with overlapping fragments is discarded whole (an attacker
    // could otherwise choose what a host behind us reassembles).
    if (v6_strict) return drop_datagram(it, DropReason::FragOverlapV6);
    res.anomaly = DropReason::FragOverlapMismatch;
    stats_.drops.add(DropReason::FragOverlapMismatch);
  }
  if (gaps.empty()) {
    ++stats_.duplicates;
    return {DefragOutcome::Duplicate, DropReason::None, res.anomaly};
  }

  const uint32_t idx = uint32_t(d.frags.size());
  for (const auto& g : gaps) {
    const Piece p{g.start, g.end, idx, uint32_t(data_start + (g.start - off))};
    auto at = std::upper_bound(d.pieces.begin(), d.pieces.end(), p.start,
                               [](uint32_t o, const Piece& q) { return o < q.start; });
    d.pieces.insert(at, p);
    d.covered += g.end - g.start;
  }
  if (off == 0 && d.first < 0) {
    d.first = int32_t(idx);
    d.ip_offset = ip.offset;
    d.prefix = uint32_t(ip.version == 4 ? data_start : data_start - 8);
    d.next_header_field = nh_field;
    d.frag_next_header = frag_nh;
    d.n_outer = uint8_t(ips.size() - 1);
    for (size_t j = 0; j + 1 < ips.size(); ++j)
      d.outer[j] = {ips[j].offset, ips[j].version};
  }
  if (!f.more_fragments) {
    d.have_last = true;
    d.end = end;
  }
  d.bytes += caplen;
  stats_.bytes_held += caplen;
  const PacketMeta last_meta = pkt.meta();
  d.frags.push_back(std::move(pkt));

  if (!d.have_last || d.first < 0 || d.covered != d.end) return res;

  // Whole: the first fragment's headers, then the pieces in order.
  const size_t total = size_t(d.prefix) + d.end;
  // RFC 8200 4.5: the reassembled payload length must fit its 16-bit field too.
  if (d.version == 6 && total - d.ip_offset - 40 > 65535)
    return drop_datagram(it, DropReason::FragTooLong);
  Packet whole = Packet::zeroed(total, last_meta);
  std::byte* o = whole.mutable_data().data();
  std::memcpy(o, d.frags[size_t(d.first)].data().data(), d.prefix);
  for (const Piece& p : d.pieces)
    std::memcpy(o + d.prefix + p.start, d.frags[p.frag].data().data() + p.data_off,
                p.end - p.start);
  std::byte* h = o + d.ip_offset;
  if (d.version == 4) {
    store_be16(h + 2, uint16_t(total - d.ip_offset));
    store_be16(h + 6, load_be16(h + 6) & 0xc000);  // keep reserved and DF; clear MF and offset
    set_ipv4_checksum(h);
  } else {
    store_u8(o + d.next_header_field, d.frag_next_header);
    store_be16(h + 4, uint16_t(total - d.ip_offset - 40));
  }
  // Outer (tunnel) IP headers now carry a longer datagram.
  for (size_t j = 0; j < d.n_outer; ++j) {
    std::byte* oh = o + d.outer[j].offset;
    if (d.outer[j].version == 4) {
      store_be16(oh + 2, uint16_t(std::min<size_t>(total - d.outer[j].offset, 65535)));
      set_ipv4_checksum(oh);
    } else {
      store_be16(oh + 4, uint16_t(std::min<size_t>(total - d.outer[j].offset - 40, 65535)));
    }
  }
  whole.meta().wire_len = uint32_t(total);
  stats_.bytes_held -= d.bytes;
  table.erase(it);
  stats_.datagrams = table.size();
  ++stats_.reassembled;
  out->emplace(std::move(whole));
  return {DefragOutcome::Reassembled, DropReason::None, res.anomaly};
}

}  // namespace l45
