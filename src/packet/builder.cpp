// PacketBuilder, the packets derived from decoded ones, and checksum-keeping edits. Every write
// goes through store_* helpers at offsets into the one Packet buffer; offsets (not pointers)
// are kept because growing the buffer may move it.
#include "l45/packet/builder.hpp"

#include <algorithm>
#include <cstring>

#include "l45/packet/checksum.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/header_option.hpp"
#include "l45/packet/icmp.hpp"
#include "l45/packet/ip_proto.hpp"
#include "l45/packet/ipv6.hpp"

namespace l45 {
namespace {

constexpr size_t kEthLen = EthernetView::kHeaderLen;
constexpr size_t kVlanLen = VlanView::kHeaderLen;
constexpr size_t kArpLen = 28;                       // RFC 826, Ethernet/IPv4 form
constexpr size_t kMaxOptions = 40;                   // RFC 791 3.1 IHL, RFC 9293 3.1 data offset
constexpr size_t kMaxIpv6ExtLen = (255 + 1) * 8;     // RFC 8200 4.3: 8-bit length in 8-byte units
constexpr size_t kIcmpv4ErrorMax = 576;              // RFC 1812 4.3.2.3
constexpr size_t kIcmpv6ErrorMax = 1280;             // RFC 4443 2.4(c)
constexpr uint8_t kIpv4Lsrr = 131, kIpv4Ssrr = 137;  // RFC 791 3.1 source routes

void store_mac(std::byte* p, MacAddr m) {
  std::memcpy(p, m.b.data(), 6);
}
void store_addr(std::byte* p, const IpAddr& a) {
  std::memcpy(p, a.bytes().data(), a.bytes().size());
}

// The destination address a transport pseudo-header carries for the IP header at `ip` whose
// headers (options, extension headers) span `hdr_len` bytes: the final destination of a source
// route (RFC 791 3.1 with RFC 9293 3.1; one route only, as scapy's in4_chksum and the decoder
// read it) or of a routing header with segments left (RFC 8200 8.1; type 0/2: the last address,
// type 4: Segment List[0], RFC 8754 2), else the header's own destination.
const std::byte* pseudo_dst(const std::byte* ip, size_t hdr_len) {
  if ((load_u8(ip) >> 4) == 4) {
    const std::byte* dst = ip + 16;
    size_t hl = size_t(load_u8(ip) & 0x0f) * 4;
    if (hl <= Ipv4View::kMinHeaderLen || hl > hdr_len) return dst;
    OptionCursor c(Bytes(ip + 20, hl - 20), 20);
    int routes = 0;
    for (HeaderOption o; c.next(o);) {
      if ((o.kind == kIpv4Lsrr || o.kind == kIpv4Ssrr) && o.length >= 7) {
        ++routes;
        dst = ip + o.offset + 3 + 4 * ((o.length - 3) / 4 - 1);
      }
    }
    return routes == 1 ? dst : ip + 16;
  }
  const std::byte* dst = ip + 24;
  uint8_t nh = load_u8(ip + 6);
  for (size_t off = Ipv6View::kHeaderLen; Ipv6ExtView::is_extension(nh) && off + 2 <= hdr_len;) {
    const std::byte* e = ip + off;
    size_t len = Ipv6ExtView::length_of(nh, load_u8(e + 1));
    if (off + len > hdr_len) break;
    if (nh == ip_proto::kRouting && load_u8(e + 3) != 0) {
      uint8_t type = load_u8(e + 2);
      size_t n = load_u8(e + 1) / 2;
      if (n && 8 + 16 * n <= len) {
        if (type == 0 || type == 2) dst = e + 8 + 16 * (n - 1);
        if (type == 4) dst = e + 8;
      }
    }
    nh = load_u8(e);
    off += len;
  }
  return dst;
}

// The checksum to store for the `len` transport bytes at `l4` (checksum field already zero).
uint16_t transport_checksum(const std::byte* ip, size_t ip_hdr_len, uint8_t proto,
                            const std::byte* l4, size_t len, bool pseudo) {
  uint32_t sum = 0;
  if (pseudo) {
    const std::byte* dst = pseudo_dst(ip, ip_hdr_len);
    sum = (load_u8(ip) >> 4) == 4 ? pseudo_header_sum_v4(ip + 12, dst, proto, uint32_t(len))
                                  : pseudo_header_sum_v6(ip + 8, dst, proto, uint32_t(len));
  }
  uint16_t c = checksum_finish(checksum_add({l4, len}, sum));
  // RFC 768 / RFC 8200 8.1: 0 means "no checksum" on UDP, so a computed 0 goes out as 0xffff.
  if (c == 0 && proto == ip_proto::kUdp) c = 0xffff;
  return c;
}

void fill_ipv4_checksum(std::byte* ip) {
  size_t hl = size_t(load_u8(ip) & 0x0f) * 4;
  store_be16(ip + 10, 0);
  store_be16(ip + 10, checksum_finish(checksum_add({ip, hl})));
}

uint32_t offset_in(const PacketView& v, Bytes b) {
  return uint32_t(b.data() - v.data().data());
}

// Where the transport payload of the innermost IP datagram starts: after the TCP, UDP, ICMP or
// ICMPv6 header, else after the IP headers.
uint32_t transport_payload_offset(const PacketView& v) {
  if (auto t = v.tcp()) return offset_in(v, t->header()) + uint32_t(t->header_len());
  if (auto u = v.udp()) return offset_in(v, u->header()) + UdpView::kHeaderLen;
  if (auto i = v.icmp()) return offset_in(v, i->header()) + IcmpView::kHeaderLen;
  if (auto i = v.icmpv6()) return offset_in(v, i->header()) + Icmpv6View::kHeaderLen;
  return offset_in(v, v.payload());
}

// Encapsulations a reply cannot simply mirror.
bool reply_supported(const PacketView& v) {
  return !v.ip_layers().empty() && v.tunnel_depth() == 0 && v.mpls_labels().empty() &&
         !v.find(LayerKind::Pppoe) && v.fragment().offset_bytes == 0;
}

// Starts `b` with the link layer of a packet sent back to where `v` came from.
// `src`/`dst` replace the swapped MAC addresses when given.
void mirror_link(PacketBuilder& b, const PacketView& v, std::optional<MacAddr> src = {},
                 std::optional<MacAddr> dst = {}) {
  auto eth = v.ethernet();
  if (!eth) return;
  b.ethernet(src.value_or(eth->dst()), dst.value_or(eth->src()));
  for (const Layer& l : v.layers()) {
    if (l.kind != LayerKind::Dot1Q && l.kind != LayerKind::Dot1ad) continue;
    const std::byte* tag = v.data().data() + l.offset;
    uint16_t tci = load_be16(tag);
    b.vlan(tci & 0x0fff, uint8_t(tci >> 13), load_be16(tag - 2), (tci >> 12) & 1);
  }
}

// The builder of a reply to `v` (see reply_builder()).
std::optional<PacketBuilder> reply_for(const PacketView& v) {
  if (!reply_supported(v)) return std::nullopt;
  PacketBuilder b;
  mirror_link(b, v);
  if (v.ip_version() == 4)
    b.ipv4(v.dst_addr(), v.src_addr());
  else
    b.ipv6(v.dst_addr(), v.src_addr());
  if (auto t = v.tcp()) {
    // RFC 9293 3.4: SYN and FIN each occupy one sequence number.
    uint32_t len = v.payload_len() + (t->syn() ? 1 : 0) + (t->fin() ? 1 : 0);
    b.tcp(t->dst_port(), t->src_port())
        .seq(t->has_ack() ? t->ack() : TcpSeq(0))
        .ack(t->seq() + len)
        .flags(tcp_flag::kAck);
  } else if (auto u = v.udp()) {
    b.udp(u->dst_port(), u->src_port());
  } else if (auto i = v.icmp(); i && i->type() == icmp_type::kEchoRequest) {
    b.icmp_echo_reply(i->echo_id(), i->echo_seq()).payload(i->payload());
  } else if (auto i6 = v.icmpv6(); i6 && i6->type() == icmpv6_type::kEchoRequest) {
    b.icmpv6_echo_reply(i6->echo_id(), i6->echo_seq()).payload(i6->payload());
  } else {
    b.ip_protocol(v.l4_proto());
  }
  if (b.error() != BuildError::None) return std::nullopt;
  return b;
}

bool is_v4_multicast_or_broadcast(const IpAddr& a) {
  uint32_t x = a.v4_value();
  return (x >> 28) == 0xe || x == 0xffffffffu;  // 224.0.0.0/4 (RFC 5771), limited broadcast
}

}  // namespace

std::string_view build_error_name(BuildError e) {
  switch (e) {
    case BuildError::None:
      return "none";
    case BuildError::Empty:
      return "empty";
    case BuildError::LayerOrder:
      return "layer-order";
    case BuildError::MissingLayer:
      return "missing-layer";
    case BuildError::AddressFamily:
      return "address-family";
    case BuildError::OptionsTooLong:
      return "options-too-long";
    case BuildError::TooLong:
      return "too-long";
  }
  return "unknown";
}

// --- PacketBuilder: buffer management -------------------------------------------------------

PacketBuilder::PacketBuilder(size_t capacity, size_t headroom)
    : capacity_(capacity), headroom_(headroom) {}

PacketBuilder& PacketBuilder::fail(BuildError e) {
  if (error_ == BuildError::None) error_ = e;
  return *this;
}

void PacketBuilder::set_len(size_t len) {
  if (!started_) {
    // One allocation for the whole packet in the common case. The Packet stays at its full
    // zeroed length while layers are added; len_ is how much of it is used, and the bytes past
    // len_ are kept zero, so adding a layer is only a length change.
    pkt_ = Packet::zeroed(std::max(capacity_, len), {}, headroom_);
    base_ = pkt_.mutable_data().data();
    started_ = true;
  } else if (len > pkt_.size()) {
    pkt_.resize(std::max(len, 2 * pkt_.size()));  // the new bytes are zero
    base_ = pkt_.mutable_data().data();
  } else if (len < len_) {
    std::memset(base_ + len, 0, len_ - len);
  }
  len_ = uint32_t(len);
}

uint32_t PacketBuilder::append(size_t n) {
  uint32_t off = len_;
  set_len(len_ + n);
  return off;
}

void PacketBuilder::shift_offsets(uint32_t from, int64_t by) {
  auto shift = [&](uint32_t& o) {
    if (o != kNone && o >= from) o = uint32_t(int64_t(o) + by);
  };
  for (size_t i = 0; i < n_ip_; ++i)
    shift(ip_[i]);
  shift(eth_);
  shift(ip_end_);
  shift(l4_);
  shift(opt_end_);
  shift(payload_);
  shift(next_);
}

void PacketBuilder::insert(uint32_t off, size_t n) {
  if (n == 0) return;
  uint32_t old = len_;
  set_len(old + n);
  std::memmove(base_ + off + n, base_ + off, old - off);
  std::memset(base_ + off, 0, n);
  shift_offsets(off, int64_t(n));
}

void PacketBuilder::erase(uint32_t off, size_t n) {
  if (n == 0) return;
  uint32_t old = len_;
  std::memmove(base_ + off, base_ + off + n, old - off - n);
  set_len(old - n);
  shift_offsets(uint32_t(off + n), -int64_t(n));
}

void PacketBuilder::reset_layers() {
  pkt_ = Packet();
  base_ = nullptr;
  len_ = 0;
  started_ = false;
  ip_ = {};
  eth_ = ip_end_ = l4_ = opt_end_ = payload_ = next_ = kNone;
  pad_to_ = 0;
  n_ip_ = 0;
  next_kind_ = Next::None;
  l4_kind_ = L4::None;
  no_udp_csum_ = false;
}

bool PacketBuilder::link_next(int ether_type_value, int ip_proto_value) {
  switch (next_kind_) {
    case Next::EtherType:
      if (ether_type_value < 0) return false;
      store_be16(at(next_), uint16_t(ether_type_value));
      return true;
    case Next::IpProto:
      if (ip_proto_value < 0) return false;
      store_u8(at(next_), uint8_t(ip_proto_value));
      return true;
    case Next::None:
      break;
  }
  return false;
}

// --- link layer ------------------------------------------------------------------------------

PacketBuilder& PacketBuilder::ethernet(MacAddr src, MacAddr dst) {
  if (!ok()) return *this;
  if (len_ != 0 || payload_ != kNone) return fail(BuildError::LayerOrder);
  eth_ = append(kEthLen);
  std::byte* h = at(eth_);
  store_mac(h, dst);
  store_mac(h + 6, src);
  next_ = eth_ + 12;
  next_kind_ = Next::EtherType;
  return *this;
}

PacketBuilder& PacketBuilder::vlan(uint16_t vid, uint8_t pcp, uint16_t tpid, bool dei) {
  if (!ok()) return *this;
  if (next_kind_ != Next::EtherType || payload_ != kNone) return fail(BuildError::LayerOrder);
  link_next(tpid, -1);
  uint32_t t = append(kVlanLen);
  // IEEE 802.1Q 9.6: PCP (3 bits), DEI (1 bit), VID (12 bits).
  store_be16(at(t), uint16_t((pcp & 7) << 13 | (dei ? 1 : 0) << 12 | (vid & 0x0fff)));
  next_ = t + 2;
  return *this;
}

PacketBuilder& PacketBuilder::ethertype(uint16_t type) {
  if (!ok()) return *this;
  if (next_kind_ != Next::EtherType) return fail(BuildError::MissingLayer);
  store_be16(at(next_), type);
  return *this;
}

// --- ARP -------------------------------------------------------------------------------------

PacketBuilder& PacketBuilder::arp(uint16_t op, MacAddr sender_mac, IpAddr sender_ip,
                                  MacAddr target_mac, IpAddr target_ip) {
  if (!ok()) return *this;
  if (!sender_ip.is_v4() || !target_ip.is_v4()) return fail(BuildError::AddressFamily);
  if (payload_ != kNone || !link_next(ether_type::kArp, -1)) return fail(BuildError::LayerOrder);
  uint32_t a = append(kArpLen);
  std::byte* h = at(a);
  store_be16(h, 1);  // hardware: Ethernet
  store_be16(h + 2, ether_type::kIpv4);
  store_u8(h + 4, 6);
  store_u8(h + 5, 4);
  store_be16(h + 6, op);
  store_mac(h + 8, sender_mac);
  store_addr(h + 14, sender_ip);
  store_mac(h + 18, target_mac);
  store_addr(h + 24, target_ip);
  next_kind_ = Next::None;
  return *this;
}

PacketBuilder& PacketBuilder::arp_request(MacAddr sender_mac, IpAddr sender_ip, IpAddr target_ip) {
  // RFC 826 leaves the target hardware address of a request unset: zeros, as Linux sends.
  return arp(ArpView::kRequest, sender_mac, sender_ip, MacAddr{}, target_ip);
}

PacketBuilder& PacketBuilder::arp_reply(MacAddr sender_mac, IpAddr sender_ip, MacAddr target_mac,
                                        IpAddr target_ip) {
  return arp(ArpView::kReply, sender_mac, sender_ip, target_mac, target_ip);
}

// --- IP ----------------------------------------------------------------------------------------

PacketBuilder& PacketBuilder::add_ip(bool v6, IpAddr src, IpAddr dst) {
  if (!ok()) return *this;
  IpFamily fam = v6 ? IpFamily::V6 : IpFamily::V4;
  if (src.family() != fam || dst.family() != fam) return fail(BuildError::AddressFamily);
  if (!can_add_layer() || n_ip_ == kMaxIp) return fail(BuildError::LayerOrder);
  if (len_ != 0 && !link_next(v6 ? ether_type::kIpv6 : ether_type::kIpv4,
                              v6 ? ip_proto::kIpv6 : ip_proto::kIpip))
    return fail(BuildError::LayerOrder);
  uint32_t off = append(v6 ? Ipv6View::kHeaderLen : Ipv4View::kMinHeaderLen);
  std::byte* h = at(off);
  if (v6) {
    store_u8(h, 0x60);
    store_u8(h + 6, ip_proto::kNoNextHeader);  // RFC 8200 4.7, until a layer follows
    store_u8(h + 7, 64);
    store_addr(h + 8, src);
    store_addr(h + 24, dst);
    next_ = off + 6;
  } else {
    store_u8(h, 0x45);
    store_u8(h + 8, 64);
    store_addr(h + 12, src);
    store_addr(h + 16, dst);
    next_ = off + 9;
  }
  ip_[n_ip_++] = off;
  ip_end_ = len_;
  next_kind_ = Next::IpProto;
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(IpAddr src, IpAddr dst) {
  return add_ip(false, src, dst);
}
PacketBuilder& PacketBuilder::ipv6(IpAddr src, IpAddr dst) {
  return add_ip(true, src, dst);
}

PacketBuilder& PacketBuilder::ip_id(uint16_t id) {
  if (!ok()) return *this;
  if (!has_ip() || ip_is_v6()) return fail(BuildError::MissingLayer);
  store_be16(at(ip() + 4), id);
  return *this;
}

PacketBuilder& PacketBuilder::dont_fragment(bool df) {
  if (!ok()) return *this;
  if (!has_ip() || ip_is_v6()) return fail(BuildError::MissingLayer);
  uint16_t w = load_be16(at(ip() + 6));
  store_be16(at(ip() + 6), df ? (w | 0x4000) : (w & ~0x4000));
  return *this;
}

PacketBuilder& PacketBuilder::more_fragments(bool mf) {
  if (!ok()) return *this;
  if (!has_ip() || ip_is_v6()) return fail(BuildError::MissingLayer);
  uint16_t w = load_be16(at(ip() + 6));
  store_be16(at(ip() + 6), mf ? (w | 0x2000) : (w & ~0x2000));
  return *this;
}

PacketBuilder& PacketBuilder::fragment_offset(uint16_t units_of_8_bytes) {
  if (!ok()) return *this;
  if (!has_ip() || ip_is_v6()) return fail(BuildError::MissingLayer);
  uint16_t w = load_be16(at(ip() + 6));
  store_be16(at(ip() + 6), uint16_t((w & 0xe000) | (units_of_8_bytes & 0x1fff)));
  return *this;
}

PacketBuilder& PacketBuilder::ip_options(Bytes raw) {
  if (!ok()) return *this;
  if (!has_ip() || ip_is_v6()) return fail(BuildError::MissingLayer);
  // RFC 791 3.1: the option list ends with EOL and is padded with zeros to a 32-bit boundary.
  size_t padded = (raw.size() + 3) & ~size_t(3);
  if (padded > kMaxOptions) return fail(BuildError::OptionsTooLong);
  uint32_t h = ip();
  size_t old = size_t(byte_at(h) & 0x0f) * 4 - Ipv4View::kMinHeaderLen;
  erase(h + 20, old);
  insert(h + 20, padded);
  if (!raw.empty()) std::memcpy(at(h + 20), raw.data(), raw.size());
  store_u8(at(h), uint8_t(0x40 | (5 + padded / 4)));
  return *this;
}

PacketBuilder& PacketBuilder::flow_label(uint32_t label) {
  if (!ok()) return *this;
  if (!has_ip() || !ip_is_v6()) return fail(BuildError::MissingLayer);
  uint32_t w = load_be32(at(ip()));
  store_be32(at(ip()), (w & 0xfff00000u) | (label & 0xfffffu));
  return *this;
}

PacketBuilder& PacketBuilder::ttl(uint8_t hops) {
  if (!ok()) return *this;
  if (!has_ip()) return fail(BuildError::MissingLayer);
  store_u8(at(ip() + (ip_is_v6() ? 7 : 8)), hops);
  return *this;
}

PacketBuilder& PacketBuilder::tos(uint8_t value) {
  if (!ok()) return *this;
  if (!has_ip()) return fail(BuildError::MissingLayer);
  if (ip_is_v6()) {
    // RFC 8200 3: version (4 bits), traffic class (8), flow label (20).
    uint32_t w = load_be32(at(ip()));
    store_be32(at(ip()), (w & 0xf00fffffu) | (uint32_t(value) << 20));
  } else {
    store_u8(at(ip() + 1), value);
  }
  return *this;
}

PacketBuilder& PacketBuilder::ip_protocol(uint8_t proto) {
  if (!ok()) return *this;
  if (!has_ip()) return fail(BuildError::MissingLayer);
  if (next_kind_ != Next::IpProto || l4_kind_ != L4::None) return fail(BuildError::LayerOrder);
  store_u8(at(next_), proto);
  return *this;
}

// --- IPv6 extension headers (RFC 8200 4) -----------------------------------------------------

PacketBuilder& PacketBuilder::add_ipv6_ext(uint8_t type, size_t len) {
  if (!ok()) return *this;
  if (!has_ip() || !ip_is_v6()) return fail(BuildError::MissingLayer);
  if (!can_add_layer() || next_kind_ != Next::IpProto) return fail(BuildError::LayerOrder);
  if (len > kMaxIpv6ExtLen) return fail(BuildError::TooLong);
  link_next(-1, type);
  uint32_t e = append(len);
  store_u8(at(e), ip_proto::kNoNextHeader);
  // RFC 8200 4.3-4.6: length in 8-octet units, not counting the first 8; the Fragment header's
  // second octet is reserved (its length is fixed).
  if (type != ip_proto::kFragment) store_u8(at(e + 1), uint8_t(len / 8 - 1));
  next_ = e;
  ip_end_ = len_;
  return *this;
}

namespace {
// Writes `options` and Pad1/PadN padding (RFC 8200 4.2) into the option area at `p`, `area`
// bytes long.
void write_tlv_options(std::byte* p, size_t area, Bytes options) {
  if (!options.empty()) std::memcpy(p, options.data(), options.size());
  size_t pad = area - options.size();
  if (pad == 1) store_u8(p + options.size(), 0);  // Pad1
  if (pad >= 2) {
    store_u8(p + options.size(), 1);  // PadN
    store_u8(p + options.size() + 1, uint8_t(pad - 2));
  }
}
}  // namespace

PacketBuilder& PacketBuilder::ipv6_hop_by_hop(Bytes options) {
  size_t len = (2 + options.size() + 7) & ~size_t(7);
  add_ipv6_ext(ip_proto::kHopByHop, len);
  if (ok()) write_tlv_options(at(next_ + 2), len - 2, options);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_dest_opts(Bytes options) {
  size_t len = (2 + options.size() + 7) & ~size_t(7);
  add_ipv6_ext(ip_proto::kDestOpts, len);
  if (ok()) write_tlv_options(at(next_ + 2), len - 2, options);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_routing(uint8_t type, uint8_t segments_left,
                                           std::span<const IpAddr> addresses) {
  if (!ok()) return *this;
  for (const IpAddr& a : addresses)
    if (!a.is_v6()) return fail(BuildError::AddressFamily);
  if (addresses.size() > 127) return fail(BuildError::TooLong);  // 8-bit length, 2 per address
  add_ipv6_ext(ip_proto::kRouting, 8 + 16 * addresses.size());
  if (!ok()) return *this;
  std::byte* e = at(next_);
  store_u8(e + 2, type);
  store_u8(e + 3, segments_left);
  // RFC 8754 2: Last Entry indexes the last element of the Segment List.
  if (type == 4 && !addresses.empty()) store_u8(e + 4, uint8_t(addresses.size() - 1));
  for (size_t i = 0; i < addresses.size(); ++i)
    store_addr(e + 8 + 16 * i, addresses[i]);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6_fragment(uint32_t offset_bytes, bool more, uint32_t id) {
  add_ipv6_ext(ip_proto::kFragment, 8);
  if (!ok()) return *this;
  std::byte* e = at(next_);
  // RFC 8200 4.5: 13-bit offset in 8-octet units, 2 reserved bits, M flag.
  store_be16(e + 2, uint16_t((offset_bytes & 0xfff8) | (more ? 1 : 0)));
  store_be32(e + 4, id);
  return *this;
}

// --- transports --------------------------------------------------------------------------------

PacketBuilder& PacketBuilder::add_l4(L4 kind, uint8_t proto, size_t len) {
  if (!ok()) return *this;
  if (!has_ip()) return fail(BuildError::LayerOrder);
  if (!can_add_layer() || !link_next(-1, proto)) return fail(BuildError::LayerOrder);
  l4_ = append(len);
  l4_kind_ = kind;
  next_kind_ = Next::None;
  return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t src_port, uint16_t dst_port) {
  add_l4(L4::Tcp, ip_proto::kTcp, TcpView::kMinHeaderLen);
  if (!ok()) return *this;
  std::byte* h = at(l4_);
  store_be16(h, src_port);
  store_be16(h + 2, dst_port);
  store_u8(h + 12, 5 << 4);
  store_be16(h + 14, 65535);
  opt_end_ = l4_ + TcpView::kMinHeaderLen;
  return *this;
}

PacketBuilder& PacketBuilder::seq(TcpSeq s) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  store_be32(at(l4_ + 4), s.value());
  return *this;
}

PacketBuilder& PacketBuilder::ack(TcpSeq a) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  store_be32(at(l4_ + 8), a.value());
  return *this;
}

PacketBuilder& PacketBuilder::flags(uint8_t tcp_flags) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  store_u8(at(l4_ + 13), tcp_flags);
  return *this;
}

PacketBuilder& PacketBuilder::window(uint16_t w) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  store_be16(at(l4_ + 14), w);
  return *this;
}

PacketBuilder& PacketBuilder::urgent(uint16_t ptr) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  store_be16(at(l4_ + 18), ptr);
  return *this;
}

PacketBuilder& PacketBuilder::add_tcp_option(const std::byte* opt, size_t len) {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Tcp) return fail(BuildError::MissingLayer);
  if (opt_end_ - l4_ - TcpView::kMinHeaderLen + len > kMaxOptions)
    return fail(BuildError::OptionsTooLong);
  uint32_t off = opt_end_;
  if (off == len_) {  // nothing after the options yet: no offset but opt_end_ moves
    set_len(len_ + len);
    opt_end_ += uint32_t(len);
  } else {
    insert(off, len);  // moves opt_end_ and any payload along
  }
  std::memcpy(at(off), opt, len);
  return *this;
}

PacketBuilder& PacketBuilder::mss(uint16_t bytes) {
  std::byte o[4] = {std::byte{tcp_option::kMss}, std::byte{4}};
  store_be16(o + 2, bytes);
  return add_tcp_option(o, sizeof o);
}

PacketBuilder& PacketBuilder::wscale(uint8_t shift) {
  std::byte o[3] = {std::byte{tcp_option::kWindowScale}, std::byte{3}, std::byte{shift}};
  return add_tcp_option(o, sizeof o);
}

PacketBuilder& PacketBuilder::sack_permitted() {
  std::byte o[2] = {std::byte{tcp_option::kSackPermitted}, std::byte{2}};
  return add_tcp_option(o, sizeof o);
}

PacketBuilder& PacketBuilder::sack(std::span<const TcpSackBlock> blocks) {
  if (blocks.size() > TcpOptions::kMaxSackBlocks) return fail(BuildError::OptionsTooLong);
  std::byte o[2 + 8 * TcpOptions::kMaxSackBlocks];
  size_t len = 2 + 8 * blocks.size();
  store_u8(o, tcp_option::kSack);
  store_u8(o + 1, uint8_t(len));
  for (size_t i = 0; i < blocks.size(); ++i) {
    store_be32(o + 2 + 8 * i, blocks[i].left.value());
    store_be32(o + 6 + 8 * i, blocks[i].right.value());
  }
  return add_tcp_option(o, len);
}

PacketBuilder& PacketBuilder::timestamps(uint32_t value, uint32_t echo) {
  std::byte o[10] = {std::byte{tcp_option::kTimestamps}, std::byte{10}};
  store_be32(o + 2, value);
  store_be32(o + 6, echo);
  return add_tcp_option(o, sizeof o);
}

PacketBuilder& PacketBuilder::nop() {
  std::byte o[1] = {std::byte{tcp_option::kNop}};
  return add_tcp_option(o, 1);
}

PacketBuilder& PacketBuilder::tcp_option(uint8_t kind, Bytes value) {
  std::byte o[kMaxOptions];
  if (kind == tcp_option::kEol || kind == tcp_option::kNop) {  // RFC 9293 3.1: one octet
    store_u8(o, kind);
    return add_tcp_option(o, 1);
  }
  if (2 + value.size() > kMaxOptions) return fail(BuildError::OptionsTooLong);
  store_u8(o, kind);
  store_u8(o + 1, uint8_t(2 + value.size()));
  if (!value.empty()) std::memcpy(o + 2, value.data(), value.size());
  return add_tcp_option(o, 2 + value.size());
}

PacketBuilder& PacketBuilder::udp(uint16_t src_port, uint16_t dst_port) {
  add_l4(L4::Udp, ip_proto::kUdp, UdpView::kHeaderLen);
  if (!ok()) return *this;
  store_be16(at(l4_), src_port);
  store_be16(at(l4_ + 2), dst_port);
  return *this;
}

PacketBuilder& PacketBuilder::no_udp_checksum() {
  if (!ok()) return *this;
  if (l4_kind_ != L4::Udp) return fail(BuildError::MissingLayer);
  no_udp_csum_ = true;
  return *this;
}

PacketBuilder& PacketBuilder::add_icmp(bool v6, uint8_t type, uint8_t code, uint32_t rest) {
  if (!ok()) return *this;
  if (!has_ip()) return fail(BuildError::LayerOrder);
  if (ip_is_v6() != v6) return fail(BuildError::AddressFamily);
  add_l4(v6 ? L4::Icmpv6 : L4::Icmp, v6 ? ip_proto::kIcmpv6 : ip_proto::kIcmp,
         IcmpView::kHeaderLen);
  if (!ok()) return *this;
  std::byte* h = at(l4_);
  store_u8(h, type);
  store_u8(h + 1, code);
  store_be32(h + 4, rest);
  return *this;
}

PacketBuilder& PacketBuilder::add_quote(Bytes invoking, size_t limit) {
  if (!ok()) return *this;
  size_t used = len_ - ip_[0];
  size_t room = limit > used ? limit - used : 0;
  return payload(invoking.first(std::min(room, invoking.size())));
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint32_t rest) {
  return add_icmp(false, type, code, rest);
}
PacketBuilder& PacketBuilder::icmp_echo_request(uint16_t id, uint16_t sequence) {
  return add_icmp(false, icmp_type::kEchoRequest, 0, uint32_t(id) << 16 | sequence);
}
PacketBuilder& PacketBuilder::icmp_echo_reply(uint16_t id, uint16_t sequence) {
  return add_icmp(false, icmp_type::kEchoReply, 0, uint32_t(id) << 16 | sequence);
}
PacketBuilder& PacketBuilder::icmp_error(uint8_t type, uint8_t code, Bytes invoking,
                                         uint32_t rest) {
  add_icmp(false, type, code, rest);
  return add_quote(invoking, kIcmpv4ErrorMax);
}
PacketBuilder& PacketBuilder::icmpv6(uint8_t type, uint8_t code, uint32_t rest) {
  return add_icmp(true, type, code, rest);
}
PacketBuilder& PacketBuilder::icmpv6_echo_request(uint16_t id, uint16_t sequence) {
  return add_icmp(true, icmpv6_type::kEchoRequest, 0, uint32_t(id) << 16 | sequence);
}
PacketBuilder& PacketBuilder::icmpv6_echo_reply(uint16_t id, uint16_t sequence) {
  return add_icmp(true, icmpv6_type::kEchoReply, 0, uint32_t(id) << 16 | sequence);
}
PacketBuilder& PacketBuilder::icmpv6_error(uint8_t type, uint8_t code, Bytes invoking,
                                           uint32_t rest) {
  add_icmp(true, type, code, rest);
  return add_quote(invoking, kIcmpv6ErrorMax);
}

// --- payload and build -------------------------------------------------------------------------

PacketBuilder& PacketBuilder::payload(Bytes data) {
  if (!ok()) return *this;
  if (payload_ == kNone) payload_ = len_;
  set_len(payload_ + data.size());
  if (!data.empty()) std::memcpy(at(payload_), data.data(), data.size());
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view text) {
  return payload(as_bytes(text.data(), text.size()));
}

PacketBuilder& PacketBuilder::pad_to(size_t frame_len) {
  pad_to_ = frame_len;
  return *this;
}

Packet PacketBuilder::build(PacketMeta meta) {
  if (ok() && eth_ == kNone && !has_ip()) fail(BuildError::Empty);
  if (!ok()) {
    reset_layers();
    return Packet();
  }
  if (l4_kind_ == L4::Tcp) {
    // RFC 9293 3.1: the header ends on a 32-bit boundary; the padding is zeros (EOL).
    size_t opts = opt_end_ - l4_ - TcpView::kMinHeaderLen;
    insert(opt_end_, (4 - opts % 4) % 4);
    size_t hl = opt_end_ - l4_;
    store_u8(at(l4_ + 12), uint8_t((hl / 4) << 4 | (byte_at(l4_ + 12) & 0x0f)));
  }
  const uint32_t end = len_;
  for (size_t i = 0; i < n_ip_; ++i) {
    uint32_t h = ip_[i];
    bool v6 = (byte_at(h) >> 4) == 6;
    size_t len = end - h - (v6 ? Ipv6View::kHeaderLen : 0);
    if (len > 0xffff) {  // RFC 2675 jumbograms are not built here
      fail(BuildError::TooLong);
      reset_layers();
      return Packet();
    }
    store_be16(at(h + (v6 ? 4 : 2)), uint16_t(len));
  }
  if (l4_kind_ != L4::None) {
    uint32_t len = end - l4_;
    uint32_t h = ip();
    size_t ip_hdr_len = ip_end_ - h;
    std::byte* l4 = at(l4_);
    switch (l4_kind_) {
      case L4::Tcp:
        store_be16(l4 + 16, 0);
        store_be16(l4 + 16, transport_checksum(at(h), ip_hdr_len, ip_proto::kTcp, l4, len, true));
        break;
      case L4::Udp:
        if (len > 0xffff) {
          fail(BuildError::TooLong);
          reset_layers();
          return Packet();
        }
        store_be16(l4 + 4, uint16_t(len));
        store_be16(l4 + 6, 0);
        if (!no_udp_csum_)
          store_be16(l4 + 6, transport_checksum(at(h), ip_hdr_len, ip_proto::kUdp, l4, len, true));
        break;
      case L4::Icmp:  // RFC 792: over the ICMP message only
        store_be16(l4 + 2, 0);
        store_be16(l4 + 2, transport_checksum(at(h), ip_hdr_len, ip_proto::kIcmp, l4, len, false));
        break;
      case L4::Icmpv6:  // RFC 4443 2.3: with the IPv6 pseudo-header
        store_be16(l4 + 2, 0);
        store_be16(l4 + 2, transport_checksum(at(h), ip_hdr_len, ip_proto::kIcmpv6, l4, len, true));
        break;
      case L4::None:
        break;
    }
  }
  // After the transport: an inner IPv4 header of IP-in-IP is plain payload to the outer one,
  // which has no transport checksum to cover it.
  for (size_t i = 0; i < n_ip_; ++i)
    if ((byte_at(ip_[i]) >> 4) == 4) fill_ipv4_checksum(at(ip_[i]));
  if (pad_to_ > end) set_len(pad_to_);

  pkt_.resize(len_);  // drops the unused zeroed bytes; the capacity stays
  Packet out = std::move(pkt_);
  meta.link = eth_ != kNone ? LinkType::Ethernet : LinkType::Raw;
  meta.wire_len = uint32_t(out.size());
  out.meta() = meta;
  reset_layers();
  return out;
}

// --- derived packets ---------------------------------------------------------------------------

std::optional<PacketBuilder> reply_builder(const Packet& original) {
  return reply_for(PacketView::decode(original));
}

std::optional<Packet> make_reply(const Packet& original, uint8_t tcp_flags, Bytes payload) {
  PacketView v = PacketView::decode(original);
  auto b = reply_for(v);
  if (!b) return std::nullopt;
  if (v.tcp()) b->flags(tcp_flags);
  if (!payload.empty()) b->payload(payload);
  Packet p = b->build();
  if (p.empty()) return std::nullopt;
  return p;
}

std::optional<Packet> make_arp_reply(const Packet& request, MacAddr answer) {
  PacketView v = PacketView::decode(request);
  auto a = v.arp();
  if (!a || !v.ethernet() || !a->is_ether_ipv4() || a->op() != ArpView::kRequest)
    return std::nullopt;
  // RFC 826 "Packet Reception": the reply's sender is the answer for the address asked about;
  // its target is the requester, to whose hardware address (ar$sha) it is sent.
  PacketBuilder b;
  mirror_link(b, v, answer, a->sender_mac());
  Packet p = b.arp_reply(answer, a->target_ip(), a->sender_mac(), a->sender_ip()).build();
  if (p.empty()) return std::nullopt;
  return p;
}

std::optional<Packet> make_icmp_error(const Packet& offending, uint8_t type, uint8_t code,
                                      uint32_t rest) {
  PacketView v = PacketView::decode(offending);
  if (!reply_supported(v)) return std::nullopt;  // includes non-first fragments
  if (auto eth = v.ethernet(); eth && eth->dst().is_multicast()) return std::nullopt;
  IpAddr src = v.src_addr(), dst = v.dst_addr();
  const IpLayer& ip = v.ip_layers().back();
  if (ip.version == 4) {
    // RFC 1812 4.3.2.7: never about an ICMP error, a broadcast or multicast destination, or a
    // source that does not name one host.
    if (auto ic = v.icmp(); ic && ic->is_error()) return std::nullopt;
    if (is_v4_multicast_or_broadcast(dst) || is_v4_multicast_or_broadcast(src) ||
        src.v4_value() == 0)
      return std::nullopt;
  } else {
    // RFC 4443 2.4(e): not about an ICMPv6 error, never from an unspecified or multicast
    // source. (2.4(e.3) allows Packet Too Big about a multicast destination, but the error would
    // then come from a multicast address: not an endpoint one can answer for.)
    if (auto ic = v.icmpv6(); ic && ic->is_error()) return std::nullopt;
    if (dst.bytes()[0] == 0xff || src.bytes()[0] == 0xff ||
        src == IpAddr::v6(std::array<uint8_t, 16>{}))
      return std::nullopt;
  }
  Bytes quoted = v.data().subspan(ip.offset);
  quoted = quoted.first(std::min<size_t>(quoted.size(), ip.total_len));
  // From the offending packet's destination: the endpoint a transparent service answers for.
  PacketBuilder b;
  mirror_link(b, v);
  if (ip.version == 4)
    b.ipv4(dst, src).icmp_error(type, code, quoted, rest);
  else
    b.ipv6(dst, src).icmpv6_error(type, code, quoted, rest);
  Packet p = b.build();
  if (p.empty()) return std::nullopt;
  return p;
}

std::optional<Packet> with_payload(const Packet& original, Bytes new_payload) {
  PacketView v = PacketView::decode(original);
  if (v.ip_layers().empty()) return std::nullopt;
  uint32_t off = transport_payload_offset(v);
  PacketMeta meta = original.meta();
  meta.wire_len = 0;
  Packet p = Packet::zeroed(off + new_payload.size(), meta);
  MutBytes d = p.mutable_data();
  std::memcpy(d.data(), original.data().data(), off);
  if (!new_payload.empty()) std::memcpy(d.data() + off, new_payload.data(), new_payload.size());
  if (!fix_lengths(p)) return std::nullopt;
  fix_checksums(p);
  return p;
}

// --- recomputation -----------------------------------------------------------------------------

bool fix_lengths(Packet& p) {
  struct Write {
    uint32_t off;
    uint16_t value;
  };
  bool found_ip = false;
  // Each pass fixes what the decoder reached; a wrong length stops the decoder at that header,
  // so the next pass reaches further. Bounded by the headers that carry a length.
  for (size_t pass = 0; pass < 2 * PacketView::kMaxIpLayers + 2; ++pass) {
    const size_t size = p.size();
    PacketView v = PacketView::decode(p.meta().link, p.data(), uint32_t(size));
    auto ips = v.ip_layers();
    if (ips.empty()) break;
    found_ip = true;
    std::array<Write, PacketView::kMaxLayers + PacketView::kMaxIpLayers> w;
    size_t n = 0;
    auto want = [&](uint32_t field, size_t value) {
      if (value > 0xffff) return false;
      if (load_be16(p.data().data() + field) != value) w[n++] = {field, uint16_t(value)};
      return true;
    };
    for (const IpLayer& ip : ips) {
      size_t len = size - ip.offset;
      bool fits = ip.version == 4 ? want(ip.offset + 2, len)
                                  : want(ip.offset + 4, len - Ipv6View::kHeaderLen);
      if (!fits) return false;
    }
    for (const Layer& l : v.layers())
      if (l.kind == LayerKind::Udp && !want(l.offset + 4, size - l.offset)) return false;
    // A UDP length past the datagram stops the decoder before it records the UDP layer.
    const IpLayer& inner = ips.back();
    uint32_t udp_off = inner.offset + inner.header_len;
    if (v.error() == DropReason::UdpBadLength && udp_off + UdpView::kHeaderLen <= size &&
        !want(udp_off + 4, size - udp_off))
      return false;
    if (n == 0) break;
    std::byte* d = p.mutable_data().data();
    for (size_t i = 0; i < n; ++i)
      store_be16(d + w[i].off, w[i].value);
  }
  if (found_ip) p.meta().wire_len = uint32_t(p.size());
  return found_ip;
}

bool fix_checksums(Packet& p) {
  PacketView v = PacketView::decode(p);
  auto ips = v.ip_layers();
  if (ips.empty()) return false;
  const FragmentInfo frag = v.fragment();
  const bool inner_fragment = frag.more_fragments || frag.offset_bytes != 0;
  const size_t size = p.size();
  // Innermost first: an outer UDP checksum covers the inner headers and their checksums.
  struct Job {
    LayerKind kind;
    uint32_t off;
    uint32_t len;  // transport bytes covered
    int ip = -1;   // index in ips of the enclosing IP header
  };
  std::array<Job, PacketView::kMaxLayers> jobs;
  size_t n = 0;
  auto layers = v.layers();
  for (size_t k = layers.size(); k-- > 0;) {
    const Layer& l = layers[k];
    Job j{l.kind, l.offset, l.length};
    for (size_t i = 0; i < ips.size(); ++i)
      if (ips[i].offset < l.offset) j.ip = int(i);
    if (l.kind == LayerKind::Ipv4) {
      jobs[n++] = j;
      continue;
    }
    if (l.kind != LayerKind::Tcp && l.kind != LayerKind::Udp && l.kind != LayerKind::Icmp &&
        l.kind != LayerKind::Icmpv6)
      continue;
    if (j.ip < 0) continue;
    const IpLayer& ip = ips[size_t(j.ip)];
    if (size_t(j.ip) == ips.size() - 1 && inner_fragment) continue;
    const std::byte* h = v.data().data() + l.offset;
    if (l.kind == LayerKind::Udp) {
      j.len = load_be16(h + 4);
      if (ip.version == 4 && load_be16(h + 6) == 0) continue;  // RFC 768: none was sent
    } else {
      j.len = ip.offset + ip.total_len - l.offset;
    }
    if (l.offset + j.len > size) continue;  // cut by the capture, or a bogus length
    jobs[n++] = j;
  }
  std::byte* d = p.mutable_data().data();
  for (size_t i = 0; i < n; ++i) {
    const Job& j = jobs[i];
    std::byte* h = d + j.off;
    if (j.kind == LayerKind::Ipv4) {
      fill_ipv4_checksum(h);
      continue;
    }
    const IpLayer& ip = ips[size_t(j.ip)];
    const std::byte* iph = d + ip.offset;
    switch (j.kind) {
      case LayerKind::Tcp:
        store_be16(h + 16, 0);
        store_be16(h + 16, transport_checksum(iph, ip.header_len, ip_proto::kTcp, h, j.len, true));
        break;
      case LayerKind::Udp:
        store_be16(h + 6, 0);
        store_be16(h + 6, transport_checksum(iph, ip.header_len, ip_proto::kUdp, h, j.len, true));
        break;
      case LayerKind::Icmp:
        store_be16(h + 2, 0);
        store_be16(h + 2, transport_checksum(iph, ip.header_len, ip_proto::kIcmp, h, j.len, false));
        break;
      case LayerKind::Icmpv6:
        store_be16(h + 2, 0);
        store_be16(h + 2,
                   transport_checksum(iph, ip.header_len, ip_proto::kIcmpv6, h, j.len, true));
        break;
      default:
        break;
    }
  }
  return true;
}

// --- PacketEditor ------------------------------------------------------------------------------

PacketEditor::PacketEditor(Packet& p) : p_(p) {
  PacketView v = PacketView::decode(p);
  auto ips = v.ip_layers();
  if (ips.empty()) return;
  const IpLayer& ip = ips.back();
  ip_ = ip.offset;
  version_ = ip.version;
  const std::byte* h = v.data().data() + ip.offset;
  dst_in_pseudo_ = pseudo_dst(h, ip.header_len) == h + (version_ == 4 ? 16 : 24);
  if (auto t = v.tcp()) {
    l4_ = offset_in(v, t->header());
    l4_csum_ = l4_ + 16;
    tcp_ = true;
  } else if (auto u = v.udp()) {
    l4_ = offset_in(v, u->header());
    udp_ = true;
    // RFC 768: an IPv4 UDP checksum of 0 was not computed, and stays so.
    if (!(version_ == 4 && u->checksum() == 0)) l4_csum_ = l4_ + 6;
  } else if (auto i6 = v.icmpv6()) {
    l4_csum_ = offset_in(v, i6->header()) + 2;
  }
}

void PacketEditor::l4_update(uint16_t old_v, uint16_t new_v) {
  if (l4_csum_ == kNone) return;
  std::byte* c = at(l4_csum_);
  uint16_t sum = checksum_update16(load_be16(c), old_v, new_v);
  if (udp_ && sum == 0) sum = 0xffff;  // RFC 768: 0 would mean "no checksum"
  store_be16(c, sum);
}

void PacketEditor::put16_l4(uint32_t off, uint16_t v) {
  std::byte* f = at(off);
  uint16_t old = load_be16(f);
  store_be16(f, v);
  l4_update(old, v);
}

void PacketEditor::put32_l4(uint32_t off, uint32_t v) {
  put16_l4(off, uint16_t(v >> 16));
  put16_l4(off + 2, uint16_t(v));
}

bool PacketEditor::set_addr(IpAddr a, uint32_t field, bool in_pseudo) {
  if (!has_ip() || a.family() != (version_ == 4 ? IpFamily::V4 : IpFamily::V6)) return false;
  std::span<const uint8_t> nb = a.bytes();
  for (size_t i = 0; i < nb.size(); i += 2) {
    std::byte* f = at(ip_ + field + uint32_t(i));
    uint16_t old = load_be16(f);
    uint16_t now = uint16_t(nb[i] << 8 | nb[i + 1]);
    store_be16(f, now);
    if (version_ == 4) {  // RFC 791 3.1: the header checksum covers the addresses
      std::byte* c = at(ip_ + 10);
      store_be16(c, checksum_update16(load_be16(c), old, now));
    }
    if (in_pseudo) l4_update(old, now);
  }
  return true;
}

bool PacketEditor::set_ip_src(IpAddr a) {
  return set_addr(a, version_ == 4 ? 12 : 8, true);
}

bool PacketEditor::set_ip_dst(IpAddr a) {
  return set_addr(a, version_ == 4 ? 16 : 24, dst_in_pseudo_);
}

bool PacketEditor::set_ttl(uint8_t ttl) {
  if (!has_ip()) return false;
  if (version_ == 6) {
    store_u8(at(ip_ + 7), ttl);  // no IPv6 header checksum (RFC 8200 3)
    return true;
  }
  // TTL shares its 16-bit word with the protocol (RFC 1624 4: the TTL-decrement case).
  std::byte* w = at(ip_ + 8);
  uint16_t old = load_be16(w);
  uint16_t now = uint16_t(ttl << 8 | (old & 0xff));
  store_be16(w, now);
  std::byte* c = at(ip_ + 10);
  store_be16(c, checksum_update16(load_be16(c), old, now));
  return true;
}

bool PacketEditor::set_src_port(uint16_t port) {
  if (l4_ == kNone) return false;
  put16_l4(l4_, port);
  return true;
}

bool PacketEditor::set_dst_port(uint16_t port) {
  if (l4_ == kNone) return false;
  put16_l4(l4_ + 2, port);
  return true;
}

bool PacketEditor::set_tcp_seq(TcpSeq s) {
  if (!tcp_) return false;
  put32_l4(l4_ + 4, s.value());
  return true;
}

bool PacketEditor::set_tcp_ack(TcpSeq a) {
  if (!tcp_) return false;
  put32_l4(l4_ + 8, a.value());
  return true;
}

bool PacketEditor::set_tcp_window(uint16_t w) {
  if (!tcp_) return false;
  put16_l4(l4_ + 14, w);
  return true;
}

bool PacketEditor::set_tcp_flags(uint8_t tcp_flags) {
  if (!tcp_) return false;
  // The flags share a 16-bit word with the data offset and reserved bits.
  put16_l4(l4_ + 12, uint16_t((load_be16(p_.data().data() + l4_ + 12) & 0xff00) | tcp_flags));
  return true;
}

bool set_ip_src(Packet& p, IpAddr a) {
  return PacketEditor(p).set_ip_src(a);
}
bool set_ip_dst(Packet& p, IpAddr a) {
  return PacketEditor(p).set_ip_dst(a);
}
bool set_ttl(Packet& p, uint8_t ttl) {
  return PacketEditor(p).set_ttl(ttl);
}
bool set_src_port(Packet& p, uint16_t port) {
  return PacketEditor(p).set_src_port(port);
}
bool set_dst_port(Packet& p, uint16_t port) {
  return PacketEditor(p).set_dst_port(port);
}
bool set_tcp_seq(Packet& p, TcpSeq s) {
  return PacketEditor(p).set_tcp_seq(s);
}
bool set_tcp_ack(Packet& p, TcpSeq a) {
  return PacketEditor(p).set_tcp_ack(a);
}
bool set_tcp_window(Packet& p, uint16_t w) {
  return PacketEditor(p).set_tcp_window(w);
}
bool set_tcp_flags(Packet& p, uint8_t tcp_flags) {
  return PacketEditor(p).set_tcp_flags(tcp_flags);
}

// --- link-layer encapsulation ------------------------------------------------------------------

bool push_vlan(Packet& p, uint16_t vid, uint8_t pcp, uint16_t tpid) {
  if (p.meta().link != LinkType::Ethernet || p.size() < kEthLen) return false;
  // The tag goes into the headroom and only the 12 address bytes move, not the datagram.
  std::byte* d = p.push_front(kVlanLen).data();
  std::memmove(d, d + kVlanLen, 12);
  store_be16(d + 12, tpid);
  store_be16(d + 14, uint16_t((pcp & 7) << 13 | (vid & 0x0fff)));
  return true;
}

bool pop_vlan(Packet& p) {
  if (p.meta().link != LinkType::Ethernet || p.size() < kEthLen + kVlanLen) return false;
  if (!is_vlan_tpid(load_be16(p.data().data() + 12))) return false;
  std::byte* d = p.mutable_data().data();
  std::memmove(d + kVlanLen, d, 12);
  p.pull_front(kVlanLen);
  return true;
}

bool push_ethernet(Packet& p, MacAddr src, MacAddr dst) {
  LinkType l = p.meta().link;
  if ((l != LinkType::Raw && l != LinkType::Ipv4 && l != LinkType::Ipv6) || p.empty()) return false;
  uint8_t version = load_u8(p.data().data()) >> 4;
  if (version != 4 && version != 6) return false;
  std::byte* d = p.push_front(kEthLen).data();
  store_mac(d, dst);
  store_mac(d + 6, src);
  store_be16(d + 12, version == 4 ? ether_type::kIpv4 : ether_type::kIpv6);
  p.meta().link = LinkType::Ethernet;
  return true;
}

}  // namespace l45
