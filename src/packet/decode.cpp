// The one-pass decoder behind PacketView::decode(). One PacketDecoder walks one packet: each
// step checks that its header is captured (need()), records it (push()), narrows the byte
// range to the datagram it belongs to, and hands over to the next header. The walk recurses
// only into tunnels, so its depth is bounded by PacketView::kMaxTunnels.
#include "l45/packet/decode.hpp"

#include <algorithm>

#include "l45/packet/checksum.hpp"
#include "l45/packet/ip_proto.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {
namespace detail {

class PacketDecoder {
 public:
  PacketDecoder(PacketView& v, const DecodeOptions& opt)
      : v_(v), opt_(opt), p_(v.data_), cap_end_(v.caplen_), wire_end_(v.wire_len_) {}

  void run(LinkType link) {
    switch (link) {
      case LinkType::Ethernet:
        return ethernet();
      case LinkType::LinuxSll:
        return sll();
      case LinkType::LinuxSll2:
        return sll2();
      case LinkType::Null:
        return null(false);
      case LinkType::Loop:
        return null(true);
      case LinkType::Raw:
        return raw_ip(DropReason::Truncated);
      case LinkType::Ipv4:
        return ipv4();
      case LinkType::Ipv6:
        return ipv6();
    }
    fail(DropReason::UnknownLinkType);
  }

 private:
  // Where the IP header that carries the current transport is, for pseudo-headers.
  struct IpCtx {
    const std::byte* src = nullptr;
    const std::byte* dst = nullptr;  // final destination (RFC 8200 8.1, RFC 791 3.1 routes)
    uint8_t version = 0;
    bool fragment = false;  // a first fragment: the transport header is there, not all data
  };

  // --- bookkeeping ----------------------------------------------------------------------

  void fail(DropReason r) {
    v_.error_ = r;
    // Whatever stopped the walk also stopped the transport checksum from being checked.
    v_.l4_csum_expected_ = true;
  }
  // A malformed part inside a header whose length is known: note it and keep walking.
  void anomaly(DropReason r) {
    if (v_.error_ == DropReason::None) v_.error_ = r;
  }
  uint32_t cap_left() const { return cap_end_ - off_; }
  uint32_t wire_left() const { return wire_end_ - off_; }
  // True when `n` bytes at off_ are captured inside the current datagram. Otherwise records
  // SnapCut when the wire packet had them (the capture cut it), else `truncated`.
  bool need(uint32_t n, DropReason truncated) {
    if (n <= cap_left()) return true;
    fail(n <= wire_left() ? DropReason::SnapCut : truncated);
    return false;
  }
  bool push(LayerKind k, uint32_t off, uint32_t len) {
    if (v_.n_layers_ == PacketView::kMaxLayers || off + len > 0xffff) {
      fail(DropReason::HeadersTooMany);
      return false;
    }
    v_.layers_[v_.n_layers_++] = {k, uint16_t(off), uint16_t(len)};
    return true;
  }
  // Limits the walk to a datagram that ends `len` bytes after `start` on the wire.
  void enter_datagram(uint32_t start, uint32_t len) {
    wire_end_ = start + len;
    cap_end_ = std::min(cap_end_, wire_end_);
  }
  bool enter_tunnel() {
    if (!opt_.follow_tunnels) return false;
    if (v_.tunnels_ == PacketView::kMaxTunnels) {
      fail(DropReason::TunnelTooDeep);
      return false;
    }
    ++v_.tunnels_;
    return true;
  }
  static void merge(ChecksumStatus& into, bool ok) {
    if (!ok)
      into = ChecksumStatus::Bad;
    else if (into == ChecksumStatus::Unverified)
      into = ChecksumStatus::Ok;
  }

  // --- link layers ----------------------------------------------------------------------

  void ethernet() {
    if (!need(EthernetView::kHeaderLen, DropReason::EthTruncated)) return;
    if (!push(LayerKind::Ethernet, off_, EthernetView::kHeaderLen)) return;
    uint16_t t = load_be16(p_ + off_ + 12);
    off_ += EthernetView::kHeaderLen;
    ether_type(t);
  }

  void sll() {
    if (!need(SllView::kHeaderLen, DropReason::SllTruncated)) return;
    if (!push(LayerKind::LinuxSll, off_, SllView::kHeaderLen)) return;
    uint16_t t = load_be16(p_ + off_ + 14);
    off_ += SllView::kHeaderLen;
    ether_type(t);
  }

  void sll2() {
    if (!need(Sll2View::kHeaderLen, DropReason::SllTruncated)) return;
    if (!push(LayerKind::LinuxSll2, off_, Sll2View::kHeaderLen)) return;
    uint16_t t = load_be16(p_ + off_);
    off_ += Sll2View::kHeaderLen;
    ether_type(t);
  }

  void null(bool network_order) {
    if (!need(NullView::kHeaderLen, DropReason::Truncated)) return;
    if (!push(LayerKind::Null, off_, NullView::kHeaderLen)) return;
    uint8_t ver = NullView::parse(Bytes(p_ + off_, 4), network_order)->ip_version();
    off_ += NullView::kHeaderLen;
    if (ver == 4) return ipv4();
    if (ver == 6) return ipv6();
    fail(DropReason::UnknownEtherType);
  }

  // Raw IP (LINKTYPE_RAW) and what follows an MPLS stack: the version nibble says which.
  void raw_ip(DropReason empty, DropReason other = DropReason::Ipv4BadVersion) {
    if (!need(1, empty)) return;
    switch (load_u8(p_ + off_) >> 4) {
      case 4:
        return ipv4();
      case 6:
        return ipv6();
    }
    fail(other);
  }

  void ether_type(uint16_t t) {
    for (;;) {
      switch (t) {
        case ether_type::kVlan:
        case ether_type::kQinq:
        case ether_type::kQinqOld: {
          if (v_.n_vlan_ == PacketView::kMaxVlanTags) return fail(DropReason::VlanTooDeep);
          if (!need(VlanView::kHeaderLen, DropReason::VlanTruncated)) return;
          LayerKind k = t == ether_type::kVlan ? LayerKind::Dot1Q : LayerKind::Dot1ad;
          if (!push(k, off_, VlanView::kHeaderLen)) return;
          v_.vlan_[v_.n_vlan_++] = load_be16(p_ + off_) & 0x0fff;
          t = load_be16(p_ + off_ + 2);
          off_ += VlanView::kHeaderLen;
          continue;
        }
        case ether_type::kIpv4:
          return ipv4();
        case ether_type::kIpv6:
          return ipv6();
        case ether_type::kArp:
          return arp();
        case ether_type::kMpls:
        case ether_type::kMplsMulticast:
          return mpls();
        case ether_type::kPppoeSession:
          return pppoe();
        default:
          return fail(DropReason::UnknownEtherType);
      }
    }
  }

  void mpls() {
    for (;;) {
      if (v_.n_mpls_ == PacketView::kMaxMplsLabels) return fail(DropReason::MplsTooDeep);
      if (!need(MplsView::kHeaderLen, DropReason::MplsTruncated)) return;
      if (!push(LayerKind::Mpls, off_, MplsView::kHeaderLen)) return;
      uint32_t e = load_be32(p_ + off_);
      v_.mpls_[v_.n_mpls_++] = e >> 12;
      off_ += MplsView::kHeaderLen;
      if (e & 0x100) break;  // RFC 3032 2.1: bottom of stack
    }
    // RFC 3032 has no payload type; like tcpdump and Wireshark, guess from the first nibble.
    raw_ip(DropReason::MplsTruncated, DropReason::UnknownEtherType);
  }

  void pppoe() {
    if (!need(PppoeView::kMinHeaderLen, DropReason::PppoeTruncated)) return;
    uint32_t start = off_;
    uint32_t plen = uint32_t(PppoeView::protocol_len(load_u8(p_ + start + 6)));
    if (!need(6 + plen, DropReason::PppoeTruncated)) return;
    uint16_t len = load_be16(p_ + start + 4);
    // RFC 2516 4: LENGTH covers the PPPoE payload, which starts with the PPP protocol.
    if (len < plen || len > wire_left() - 6) return fail(DropReason::PppoeBadLength);
    if (!push(LayerKind::Pppoe, start, 6 + plen)) return;
    uint16_t proto = plen == 1 ? load_u8(p_ + start + 6) : load_be16(p_ + start + 6);
    enter_datagram(start + 6, len);  // Ethernet padding after it is not ours
    off_ = start + 6 + plen;
    if (proto == ppp_proto::kIpv4) return ipv4();
    if (proto == ppp_proto::kIpv6) return ipv6();
    fail(DropReason::UnknownEtherType);
  }

  void arp() {
    if (!need(ArpView::kFixedLen, DropReason::ArpTruncated)) return;
    uint32_t len =
        ArpView::kFixedLen + 2 * (uint32_t(load_u8(p_ + off_ + 4)) + load_u8(p_ + off_ + 5));
    if (!need(len, DropReason::ArpTruncated)) return;
    if (!push(LayerKind::Arp, off_, len)) return;
    v_.arp_layer_ = int8_t(v_.n_layers_ - 1);
  }

  // --- IP -------------------------------------------------------------------------------

  // Records a new innermost IP header: the transport of any outer one is no longer what the
  // view's transport accessors describe.
  IpLayer* begin_ip(LayerKind k, uint32_t start, uint32_t hl) {
    if (v_.n_ip_ == PacketView::kMaxIpLayers) {
      fail(DropReason::TunnelTooDeep);
      return nullptr;
    }
    if (!push(k, start, hl)) return nullptr;
    IpLayer& ip = v_.ip_[v_.n_ip_++];
    ip.offset = uint16_t(start);
    ip.header_len = uint16_t(hl);
    v_.ip_cap_end_ = cap_end_;
    v_.l4_layer_ = -1;
    v_.frag_ = {};
    v_.l4_csum_ = ChecksumStatus::Unverified;
    v_.l4_csum_expected_ = false;
    v_.payload_off_ = v_.payload_caplen_ = v_.payload_len_ = 0;
    return &ip;
  }

  void ipv4() {
    uint32_t start = off_;
    if (!need(Ipv4View::kMinHeaderLen, DropReason::Ipv4Truncated)) return;
    const std::byte* h = p_ + start;
    uint8_t vihl = load_u8(h);
    if ((vihl >> 4) != 4) return fail(DropReason::Ipv4BadVersion);
    uint32_t hl = uint32_t(vihl & 0x0f) * 4;
    if (hl < Ipv4View::kMinHeaderLen) return fail(DropReason::Ipv4BadIhl);
    if (hl > cap_left())
      return fail(hl <= wire_left() ? DropReason::SnapCut : DropReason::Ipv4BadIhl);
    IpLayer* ip = begin_ip(LayerKind::Ipv4, start, hl);
    if (!ip) return;
    ip->src = IpAddr::v4(h + 12);
    ip->dst = IpAddr::v4(h + 16);
    ip->version = 4;
    ip->proto = load_u8(h + 9);
    uint32_t tl = load_be16(h + 2);
    // A total length of 0 is a TSO/GSO super-segment captured before segmentation (Linux
    // leaves the field for the NIC); read to the end of the frame, as Wireshark does.
    if (tl == 0) tl = wire_left();
    ip->total_len = tl;
    if (tl < hl) return fail(DropReason::Ipv4BadTotalLength);
    if (tl > wire_left()) return fail(DropReason::Truncated);
    enter_datagram(start, tl);
    v_.ip_cap_end_ = cap_end_;

    IpCtx ctx{h + 12, h + 16, 4, false};
    if (hl > Ipv4View::kMinHeaderLen) ipv4_options(h, hl, ctx);
    if (opt_.verify_checksums) merge(v_.ip_csum_, checksum_finish(checksum_add({h, hl})) == 0);

    uint16_t frag = load_be16(h + 6);
    off_ = start + hl;
    if (frag & 0x3fff) {  // MF or a fragment offset (RFC 791 3.1)
      v_.frag_ = {true, bool(frag & 0x2000), uint32_t(frag & 0x1fff) * 8, load_be16(h + 4)};
      ctx.fragment = true;
    }
    uint8_t proto = ip->proto;
    if (!v_.frag_.offset_bytes && proto == ip_proto::kAh) {
      // RFC 4302 3.1: AH sits between the IPv4 header and the protected protocol.
      if (!ext_chain(proto, false, ctx)) return;
      ip->proto = proto;
      ip->header_len = uint16_t(off_ - start);
    }
    upper(proto, ctx);
  }

  void ipv4_options(const std::byte* h, uint32_t hl, IpCtx& ctx) {
    OptionCursor c(Bytes(h + 20, hl - 20), 20);
    int routes = 0;
    for (HeaderOption o; c.next(o);) {
      // RFC 791 3.1 loose/strict source route: the pseudo-header of RFC 793 3.1 carries the
      // final destination, the last address of the route (scapy's in4_chksum agrees).
      if ((o.kind == 131 || o.kind == 137) && o.length >= 7) {
        ++routes;
        size_t n = (o.length - 3) / 4;
        ctx.dst = h + o.offset + 3 + 4 * (n - 1);
      }
    }
    if (routes > 1) ctx.dst = h + 16;  // ambiguous: RFC 791 allows one route option
    if (c.malformed()) anomaly(DropReason::Ipv4BadOptions);
  }

  void ipv6() {
    uint32_t start = off_;
    if (!need(Ipv6View::kHeaderLen, DropReason::Ipv6Truncated)) return;
    const std::byte* h = p_ + start;
    if ((load_u8(h) >> 4) != 6) return fail(DropReason::Ipv6BadVersion);
    IpLayer* ip = begin_ip(LayerKind::Ipv6, start, Ipv6View::kHeaderLen);
    if (!ip) return;
    ip->src = IpAddr::v6(h + 8);
    ip->dst = IpAddr::v6(h + 24);
    ip->version = 6;
    uint8_t nh = load_u8(h + 6);
    ip->proto = nh;
    uint32_t plen = load_be16(h + 4);
    // RFC 2675 jumbograms and Linux BIG TCP/GSO super-segments carry payload length 0; the
    // frame bounds them. (An empty packet says No Next Header.)
    uint32_t tl = plen == 0 && nh != ip_proto::kNoNextHeader ? wire_left() : 40 + plen;
    ip->total_len = tl;
    if (tl > wire_left()) return fail(DropReason::Ipv6BadPayloadLength);
    enter_datagram(start, tl);
    v_.ip_cap_end_ = cap_end_;

    IpCtx ctx{h + 8, h + 24, 6, false};
    off_ = start + Ipv6View::kHeaderLen;
    if (!ext_chain(nh, true, ctx)) return;
    ip->proto = nh;
    ip->header_len = uint16_t(off_ - start);
    // An atomic fragment (RFC 6946: offset 0, M 0) is a whole packet: decode it as one.
    ctx.fragment = v_.frag_.more_fragments || v_.frag_.offset_bytes != 0;
    upper(nh, ctx);
  }

  // Walks extension headers from off_ (IPv6: RFC 8200 4; IPv4: AH only), leaving `nh` at the
  // upper-layer protocol. False when the walk failed.
  bool ext_chain(uint8_t& nh, bool v6, IpCtx& ctx) {
    DropReason truncated = v6 ? DropReason::Ipv6ExtTruncated : DropReason::Truncated;
    for (size_t n = 0; v6 ? Ipv6ExtView::is_extension(nh) : nh == ip_proto::kAh; ++n) {
      // The chain is linear in the packet, so a "loop" is a long repetition: bound it.
      if (n == PacketView::kMaxIpv6Ext) {
        fail(v6 ? DropReason::Ipv6ExtTooMany : DropReason::HeadersTooMany);
        return false;
      }
      if (!need(2, truncated)) return false;
      const std::byte* e = p_ + off_;
      uint32_t len = uint32_t(Ipv6ExtView::length_of(nh, load_u8(e + 1)));
      if (nh == ip_proto::kAh && len < 12) {  // RFC 4302 2.2: SPI and sequence are mandatory
        fail(truncated);
        return false;
      }
      if (!need(len, truncated)) return false;
      LayerKind k = nh == ip_proto::kHopByHop   ? LayerKind::Ipv6HopByHop
                    : nh == ip_proto::kRouting  ? LayerKind::Ipv6Routing
                    : nh == ip_proto::kFragment ? LayerKind::Ipv6Fragment
                    : nh == ip_proto::kAh       ? LayerKind::Ah
                                                : LayerKind::Ipv6DestOpts;
      if (!push(k, off_, len)) return false;
      if (nh == ip_proto::kRouting) routing_final_dst(e, len, ctx);
      bool last = false;
      if (nh == ip_proto::kFragment) {
        uint16_t fo = load_be16(e + 2);
        // RFC 8200 4.5; RFC 6946: offset 0 and M 0 is an atomic fragment, a whole packet.
        v_.frag_ = {true, bool(fo & 1), uint32_t(fo & 0xfff8), load_be32(e + 4)};
        last = v_.frag_.offset_bytes != 0;  // what follows is data, not a header
      }
      nh = load_u8(e);
      off_ += len;
      if (last) break;
    }
    return true;
  }

  // RFC 8200 8.1: with a Routing header the pseudo-header carries the final destination.
  void routing_final_dst(const std::byte* e, uint32_t len, IpCtx& ctx) {
    uint8_t type = load_u8(e + 2), left = load_u8(e + 3);
    if (left == 0) return;            // already at the final destination
    uint32_t n = load_u8(e + 1) / 2;  // addresses in a type 0/2/4 header
    if (n == 0 || 8 + 16 * n > len) return;
    if (type == 0 || type == 2)  // RFC 5095 / RFC 6275 6.4: the last address
      ctx.dst = e + 8 + 16 * (n - 1);
    else if (type == 4)  // RFC 8754 2: Segment List[0] is the final segment
      ctx.dst = e + 8;
  }

  // --- transport and tunnels ------------------------------------------------------------

  void set_payload(uint32_t at, uint32_t cap_end, uint32_t wire_len) {
    v_.payload_off_ = at;
    v_.payload_caplen_ = cap_end > at ? cap_end - at : 0;
    v_.payload_len_ = wire_len;
  }

  // The transport checksum over [start, start + len) when all of it is captured.
  void verify_l4(const IpCtx& ctx, uint8_t proto, uint32_t start, uint32_t len, bool pseudo) {
    v_.l4_csum_expected_ = true;
    if (!opt_.verify_checksums || ctx.fragment || start + len > cap_end_) return;
    uint32_t sum = 0;
    if (pseudo)
      sum = ctx.version == 4 ? pseudo_header_sum_v4(ctx.src, ctx.dst, proto, len)
                             : pseudo_header_sum_v6(ctx.src, ctx.dst, proto, len);
    merge(v_.l4_csum_, checksum_finish(checksum_add({p_ + start, len}, sum)) == 0);
  }

  void upper(uint8_t proto, const IpCtx& ctx) {
    set_payload(off_, cap_end_, wire_left());
    if (v_.frag_.offset_bytes != 0) {  // RFC 791/8200: a non-first fragment is data only
      v_.l4_csum_expected_ = true;
      return;
    }
    switch (proto) {
      case ip_proto::kTcp:
        return tcp(ctx);
      case ip_proto::kUdp:
        return udp(ctx);
      case ip_proto::kIcmp:
        if (ctx.version == 4) icmp(ctx, LayerKind::Icmp, DropReason::IcmpTruncated);
        return;
      case ip_proto::kIcmpv6:
        if (ctx.version == 6) icmp(ctx, LayerKind::Icmpv6, DropReason::Icmpv6Truncated);
        return;
      case ip_proto::kGre:
        return gre(ctx);
      case ip_proto::kEsp:
        // RFC 4303 2: SPI and sequence number; the rest is ciphertext.
        if (need(8, DropReason::Truncated)) push(LayerKind::Esp, off_, 8);
        return;
      case ip_proto::kIpip:
      case ip_proto::kIpv6:
        if (ctx.fragment || !enter_tunnel()) return;
        return proto == ip_proto::kIpip ? ipv4() : ipv6();
      default:
        return;
    }
  }

  void tcp(const IpCtx& ctx) {
    uint32_t start = off_;
    // A first fragment too short for the header (RFC 1858 tiny fragment) carries none.
    if (ctx.fragment && wire_left() < TcpView::kMinHeaderLen) return;
    if (!need(TcpView::kMinHeaderLen, DropReason::TcpTruncated)) return;
    uint32_t hl = uint32_t(load_u8(p_ + start + 12) >> 4) * 4;
    if (hl < TcpView::kMinHeaderLen) return fail(DropReason::TcpBadDataOffset);
    if (hl > wire_left()) {
      if (!ctx.fragment) fail(DropReason::TcpBadDataOffset);
      return;
    }
    if (hl > cap_left()) return fail(DropReason::SnapCut);
    if (!push(LayerKind::Tcp, start, hl)) return;
    v_.l4_layer_ = int8_t(v_.n_layers_ - 1);
    if (hl > TcpView::kMinHeaderLen && !TcpView::parse(Bytes(p_ + start, hl))->options_valid())
      anomaly(DropReason::TcpBadOption);
    set_payload(start + hl, cap_end_, wire_end_ - start - hl);
    verify_l4(ctx, ip_proto::kTcp, start, wire_left(), true);
  }

  void udp(const IpCtx& ctx) {
    uint32_t start = off_;
    if (ctx.fragment && wire_left() < UdpView::kHeaderLen) return;
    if (!need(UdpView::kHeaderLen, DropReason::UdpTruncated)) return;
    uint32_t ulen = load_be16(p_ + start + 4);
    // RFC 768: the length counts the header. In a first fragment it covers later fragments.
    if (ulen < UdpView::kHeaderLen || (!ctx.fragment && ulen > wire_left()))
      return fail(DropReason::UdpBadLength);
    if (!push(LayerKind::Udp, start, UdpView::kHeaderLen)) return;
    v_.l4_layer_ = int8_t(v_.n_layers_ - 1);
    uint32_t body = start + UdpView::kHeaderLen;
    if (ctx.fragment) {
      set_payload(body, cap_end_, wire_end_ - body);
      v_.l4_csum_expected_ = true;
      return;
    }
    uint32_t end = start + ulen;
    set_payload(body, std::min(cap_end_, end), ulen - UdpView::kHeaderLen);
    uint16_t csum = load_be16(p_ + start + 6);
    // RFC 768: 0 means the sender computed none (IPv4 only; RFC 8200 8.1 makes it mandatory
    // over IPv6, so there 0 is simply wrong).
    if (ctx.version == 4 && csum == 0) {
      v_.l4_csum_expected_ = false;
    } else if (ctx.version == 6 && csum == 0) {
      v_.l4_csum_expected_ = true;
      if (opt_.verify_checksums) v_.l4_csum_ = ChecksumStatus::Bad;
    } else {
      verify_l4(ctx, ip_proto::kUdp, start, ulen, true);
    }
    if (load_be16(p_ + start + 2) == opt_.vxlan_port && opt_.follow_tunnels) {
      off_ = body;
      enter_datagram(start, ulen);
      vxlan();
    }
  }

  void vxlan() {
    if (!need(VxlanView::kHeaderLen, DropReason::VxlanTruncated)) return;
    if (!enter_tunnel()) return;
    if (!push(LayerKind::Vxlan, off_, VxlanView::kHeaderLen)) return;
    off_ += VxlanView::kHeaderLen;
    ethernet();
  }

  void icmp(const IpCtx& ctx, LayerKind k, DropReason truncated) {
    uint32_t start = off_;
    if (ctx.fragment && wire_left() < IcmpView::kHeaderLen) return;
    if (!need(IcmpView::kHeaderLen, truncated)) return;
    if (!push(k, start, IcmpView::kHeaderLen)) return;
    v_.l4_layer_ = int8_t(v_.n_layers_ - 1);
    // RFC 792: the ICMP checksum has no pseudo-header; RFC 4443 2.3: ICMPv6's has.
    bool v6 = k == LayerKind::Icmpv6;
    verify_l4(ctx, v6 ? ip_proto::kIcmpv6 : ip_proto::kIcmp, start, wire_left(), v6);
  }

  void gre(const IpCtx& ctx) {
    uint32_t start = off_;
    if (!need(GreView::kMinHeaderLen, DropReason::GreTruncated)) return;
    uint16_t fv = load_be16(p_ + start);
    if (!GreView::supported(fv)) return fail(DropReason::GreUnsupported);
    uint32_t hl = uint32_t(GreView::length_of(fv));
    if (!need(hl, DropReason::GreTruncated)) return;
    if (!push(LayerKind::Gre, start, hl)) return;
    if (ctx.fragment || !enter_tunnel()) return;
    uint16_t proto = load_be16(p_ + start + 2);
    off_ = start + hl;
    if ((fv & 7) == 1) {
      // RFC 2637 4.1: the key's upper half is the payload length; 0 is an ack-only packet.
      uint32_t plen = load_be16(p_ + start + 4 + ((fv & 0x8000) ? 4 : 0));
      if (plen > wire_left()) return fail(DropReason::GreTruncated);
      enter_datagram(off_, plen);
      if (plen == 0) return;
      if (proto != ether_type::kPpp) return fail(DropReason::UnknownEtherType);
      return ppp();
    }
    switch (proto) {
      case ether_type::kIpv4:
        return ipv4();
      case ether_type::kIpv6:
        return ipv6();
      case ether_type::kTeb:
        return ethernet();
      case ether_type::kMpls:
      case ether_type::kMplsMulticast:
        return mpls();
      default:
        return fail(DropReason::UnknownEtherType);
    }
  }

  // PPP as PPTP carries it (RFC 2637 4.1): see PppView.
  void ppp() {
    const DropReason truncated = DropReason::GreTruncated;
    uint32_t ac = 0;
    if (!need(1, truncated)) return;
    if (load_u8(p_ + off_) == 0xff) {
      if (!need(2, truncated)) return;
      if (load_u8(p_ + off_ + 1) == 0x03) ac = 2;
    }
    if (!need(ac + 1, truncated)) return;
    uint32_t plen = (load_u8(p_ + off_ + ac) & 1) ? 1 : 2;  // RFC 1661 6.5 field compression
    if (!need(ac + plen, truncated)) return;
    uint16_t proto = plen == 1 ? load_u8(p_ + off_ + ac) : load_be16(p_ + off_ + ac);
    if (!push(LayerKind::Ppp, off_, ac + plen)) return;
    off_ += ac + plen;
    if (proto == ppp_proto::kIpv4) return ipv4();
    if (proto == ppp_proto::kIpv6) return ipv6();
    fail(DropReason::UnknownEtherType);
  }

  PacketView& v_;
  const DecodeOptions& opt_;
  const std::byte* p_;
  uint32_t off_ = 0;
  uint32_t cap_end_;   // end of the captured bytes of the current datagram
  uint32_t wire_end_;  // end of the current datagram on the wire (>= cap_end_)
};

}  // namespace detail

PacketView PacketView::decode(LinkType link, Bytes data, uint32_t wire_len,
                              const DecodeOptions& opt) {
  PacketView v;
  v.data_ = data.data();
  v.caplen_ = uint32_t(std::min<size_t>(data.size(), UINT32_MAX));
  v.wire_len_ = std::max(wire_len, v.caplen_);
  v.link_ = link;
  v.verified_ = opt.verify_checksums;
  detail::PacketDecoder(v, opt).run(link);
  return v;
}

PacketView PacketView::decode(const Packet& p, const DecodeOptions& opt) {
  return decode(p.meta().link, p.data(), p.meta().wire_len, opt);
}

const Layer* PacketView::find(LayerKind kind) const {
  for (size_t i = 0; i < n_layers_; ++i)
    if (layers_[i].kind == kind) return &layers_[i];
  return nullptr;
}

// The accessors build views through parse(): cheap, and a view's invariants then hold even for
// a header the decoder recorded before refusing its lengths (IPv4 total length below IHL).

std::optional<Ipv4View> PacketView::ipv4() const {
  if (ip_version() != 4) return std::nullopt;
  uint32_t off = ip_[n_ip_ - 1].offset;
  return Ipv4View::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

std::optional<Ipv6View> PacketView::ipv6() const {
  if (ip_version() != 6) return std::nullopt;
  uint32_t off = ip_[n_ip_ - 1].offset;
  return Ipv6View::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

uint8_t PacketView::ttl() const {
  if (!n_ip_) return 0;
  const IpLayer& ip = ip_[n_ip_ - 1];
  return load_u8(data_ + ip.offset + (ip.version == 4 ? 8 : 7));
}

uint32_t PacketView::ip_id() const {
  if (!n_ip_) return 0;
  const IpLayer& ip = ip_[n_ip_ - 1];
  if (ip.version == 4) return load_be16(data_ + ip.offset + 4);
  return frag_.is_fragment ? frag_.id : 0;
}

std::optional<TcpView> PacketView::tcp() const {
  if (l4_layer_ < 0 || layers_[l4_layer_].kind != LayerKind::Tcp) return std::nullopt;
  uint32_t off = layers_[l4_layer_].offset;
  return TcpView::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

std::optional<UdpView> PacketView::udp() const {
  if (l4_layer_ < 0 || layers_[l4_layer_].kind != LayerKind::Udp) return std::nullopt;
  uint32_t off = layers_[l4_layer_].offset;
  return UdpView::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

std::optional<IcmpView> PacketView::icmp() const {
  if (l4_layer_ < 0 || layers_[l4_layer_].kind != LayerKind::Icmp) return std::nullopt;
  uint32_t off = layers_[l4_layer_].offset;
  return IcmpView::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

std::optional<Icmpv6View> PacketView::icmpv6() const {
  if (l4_layer_ < 0 || layers_[l4_layer_].kind != LayerKind::Icmpv6) return std::nullopt;
  uint32_t off = layers_[l4_layer_].offset;
  return Icmpv6View::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

uint16_t PacketView::src_port() const {
  if (l4_layer_ < 0) return 0;
  const Layer& l = layers_[l4_layer_];
  if (l.kind != LayerKind::Tcp && l.kind != LayerKind::Udp) return 0;
  return load_be16(data_ + l.offset);
}

uint16_t PacketView::dst_port() const {
  if (l4_layer_ < 0) return 0;
  const Layer& l = layers_[l4_layer_];
  if (l.kind != LayerKind::Tcp && l.kind != LayerKind::Udp) return 0;
  return load_be16(data_ + l.offset + 2);
}

std::optional<EthernetView> PacketView::ethernet() const {
  const Layer* l = find(LayerKind::Ethernet);
  if (!l) return std::nullopt;
  return EthernetView::parse(Bytes(data_ + l->offset, caplen_ - l->offset));
}

std::optional<ArpView> PacketView::arp() const {
  if (arp_layer_ < 0) return std::nullopt;
  uint32_t off = layers_[arp_layer_].offset;
  return ArpView::parse(Bytes(data_ + off, caplen_ - off));
}

std::optional<GreView> PacketView::gre() const {
  const Layer* l = find(LayerKind::Gre);
  if (!l) return std::nullopt;
  return GreView::parse(Bytes(data_ + l->offset, caplen_ - l->offset));
}

std::optional<VxlanView> PacketView::vxlan() const {
  const Layer* l = find(LayerKind::Vxlan);
  if (!l) return std::nullopt;
  return VxlanView::parse(Bytes(data_ + l->offset, caplen_ - l->offset));
}

ChecksumStatus PacketView::checksum_status() const {
  if (!verified_) return ChecksumStatus::Unverified;
  if (ip_csum_ == ChecksumStatus::Bad || l4_csum_ == ChecksumStatus::Bad)
    return ChecksumStatus::Bad;
  if (l4_csum_expected_ && l4_csum_ != ChecksumStatus::Ok) return ChecksumStatus::Unverified;
  if (ip_csum_ == ChecksumStatus::Ok || l4_csum_ == ChecksumStatus::Ok) return ChecksumStatus::Ok;
  return ChecksumStatus::Unverified;
}

std::string_view layer_kind_name(LayerKind k) {
  // tshark's protocol names (frame.protocols) where it has one.
  switch (k) {
    case LayerKind::Null:
      return "null";
    case LayerKind::Ethernet:
      return "eth";
    case LayerKind::LinuxSll:
      return "sll";
    case LayerKind::LinuxSll2:
      return "sll2";
    case LayerKind::Dot1Q:
      return "vlan";
    case LayerKind::Dot1ad:
      return "ieee8021ad";
    case LayerKind::Mpls:
      return "mpls";
    case LayerKind::Pppoe:
      return "pppoes";
    case LayerKind::Ppp:
      return "ppp";
    case LayerKind::Arp:
      return "arp";
    case LayerKind::Ipv4:
      return "ip";
    case LayerKind::Ipv6:
      return "ipv6";
    case LayerKind::Ipv6HopByHop:
      return "ipv6.hopopts";
    case LayerKind::Ipv6Routing:
      return "ipv6.routing";
    case LayerKind::Ipv6Fragment:
      return "ipv6.fraghdr";
    case LayerKind::Ipv6DestOpts:
      return "ipv6.dstopts";
    case LayerKind::Ah:
      return "ah";
    case LayerKind::Esp:
      return "esp";
    case LayerKind::Tcp:
      return "tcp";
    case LayerKind::Udp:
      return "udp";
    case LayerKind::Icmp:
      return "icmp";
    case LayerKind::Icmpv6:
      return "icmpv6";
    case LayerKind::Gre:
      return "gre";
    case LayerKind::Vxlan:
      return "vxlan";
  }
  return "unknown";
}

std::string_view checksum_status_name(ChecksumStatus s) {
  switch (s) {
    case ChecksumStatus::Unverified:
      return "unverified";
    case ChecksumStatus::Ok:
      return "ok";
    case ChecksumStatus::Bad:
      return "bad";
  }
  return "unknown";
}

}  // namespace l45
