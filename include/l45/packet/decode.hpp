// PacketView: the one-pass decoder every higher layer reads packets through.
//
// decode() walks link -> (802.1Q/802.1ad | MPLS | PPPoE)* -> IP (+ IPv6 extension headers, AH)
// -> (tunnel -> link? -> IP)* -> transport once, records each header as a Layer
// {kind, offset, length}, and keeps what flows key on: the innermost IP header and its
// transport. It allocates nothing, makes no virtual call and holds pointers only into the
// caller's bytes, which must outlive the view (and every view it hands out). The result is
// trivially copyable (432 bytes). The header views it returns are small values too: keep
// them by value (`auto t = v.tcp();`), not as references into the returned optional.
//
// Cost: common frames (Ethernet, one optional 802.1Q tag, IPv4 without options or fragments,
// TCP or UDP) take an inline fast path that agrees with the general walk on every input
// (decode_test, packet_decode_fuzz); everything else takes the general walk.
//
// Tunnels followed (DecodeOptions::follow_tunnels): IPv4/IPv6 in IP (protocols 4, 41), GRE
// (RFC 2784/2890 to IPv4, IPv6, Ethernet 0x6558, MPLS; PPTP enhanced GRE to PPP), VXLAN (UDP
// to vxlan_port, inner Ethernet). A tunnel inside an IP fragment is not followed: its inner
// packet is incomplete.
//
// error(): None when every header walked parsed. Otherwise the reason the walk stopped, and
// everything decoded before it stays readable. Two anomalies do not stop the walk because the
// header length is still known: Ipv4BadOptions and TcpBadOption (a later stopping reason
// replaces them). Length rules, for a header that does not fit:
//   - SnapCut when the packet on the wire (wire_len) was long enough: the capture cut it;
//   - the header's Truncated reason (EthTruncated, Ipv4Truncated, TcpTruncated, ...) when the
//     wire packet, or the IP datagram that carries it, is itself too short;
//   - a named length reason when a length field is bogus: Ipv4BadIhl, Ipv4BadTotalLength,
//     Ipv6BadPayloadLength, TcpBadDataOffset, UdpBadLength, PppoeBadLength; Truncated when an
//     IPv4 total length runs past the frame.
// An EtherType, PPP protocol, address family or GRE protocol the decoder does not follow is
// UnknownEtherType (ARP and IP are followed); an unknown IP protocol is not an error.
// Bad checksums never set error(): see checksum_status().
//
// Fragments: a non-first fragment has no transport header, so tcp()/udp()/... are empty and
// payload() is the fragment data; error() stays None. A first fragment decodes the transport
// header when it is inside the fragment (a tiny first fragment without one is no error).
// fragment() describes the innermost IP header; an IPv6 atomic fragment (RFC 6946) is
// is_fragment with offset 0 and no MF, and decodes and verifies as a whole packet.
//
// Lengths that deviate from the RFCs on purpose, as Wireshark reads them: an IPv4 total length
// of 0 (Linux TSO/GSO captures) and an IPv6 payload length of 0 with a next header other than
// 59 (RFC 2675 jumbograms, BIG TCP) extend to the end of the frame; PPPoE's PPP protocol may
// be compressed to one byte (RFC 1661 6.5).
//
//   PacketView v = PacketView::decode(LinkType::Ethernet, bytes, wire_len);
//   if (v.error() != DropReason::None) drops.add(v.error());
//   if (auto t = v.tcp()) track(v.src_addr(), t->src_port(), v.dst_addr(), t->dst_port());
//   for (const Layer& l : v.layers()) print(layer_kind_name(l.kind), l.offset, l.length);
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "l45/core/drop_reason.hpp"
#include "l45/packet/arp.hpp"
#include "l45/packet/bytes.hpp"
#include "l45/packet/ethernet.hpp"
#include "l45/packet/gre.hpp"
#include "l45/packet/icmp.hpp"
#include "l45/packet/ip_addr.hpp"
#include "l45/packet/ip_proto.hpp"
#include "l45/packet/ipv4.hpp"
#include "l45/packet/ipv6.hpp"
#include "l45/packet/link_type.hpp"
#include "l45/packet/loopback.hpp"
#include "l45/packet/mpls.hpp"
#include "l45/packet/pppoe.hpp"
#include "l45/packet/sll.hpp"
#include "l45/packet/tcp.hpp"
#include "l45/packet/udp.hpp"
#include "l45/packet/vxlan.hpp"

namespace l45 {

class Packet;
class PacketView;
struct TcpFrame;
struct DecodeOptions;
namespace detail {
class PacketDecoder;
// PacketView::decode() without its fast path for common packets, and a comparison of
// everything two views expose: tests and the fuzzer check that both paths agree. Not for
// other use.
PacketView decode_general(LinkType link, Bytes data, uint32_t wire_len, const DecodeOptions& opt);
bool same_decode(const PacketView& a, const PacketView& b);
}  // namespace detail

enum class LayerKind : uint8_t {
  Null,  // BSD loopback (LINKTYPE_NULL and LINKTYPE_LOOP)
  Ethernet,
  LinuxSll,
  LinuxSll2,
  Dot1Q,   // 802.1Q C-tag: the 4 bytes after TPID 0x8100
  Dot1ad,  // 802.1ad S-tag (0x88a8, or pre-standard 0x9100)
  Mpls,    // one label stack entry
  Pppoe,   // PPPoE session header + PPP protocol
  Ppp,     // PPP in enhanced GRE
  Arp,
  Ipv4,
  Ipv6,
  Ipv6HopByHop,
  Ipv6Routing,
  Ipv6Fragment,
  Ipv6DestOpts,
  Ah,   // IPsec AH, over IPv4 or IPv6
  Esp,  // IPsec ESP: SPI and sequence number; the rest is opaque
  Tcp,
  Udp,
  Icmp,
  Icmpv6,
  Gre,
  Vxlan,
};
inline constexpr size_t kLayerKindCount = size_t(LayerKind::Vxlan) + 1;
// "eth", "vlan", "ipv4", "tcp", ... (lower-case, stable: used in CLI output and JSON).
std::string_view layer_kind_name(LayerKind k);

struct Layer {
  LayerKind kind;
  uint16_t offset;  // from the start of the packet
  uint16_t length;  // header length (Mpls: one 4-byte label stack entry)
};

enum class ChecksumStatus : uint8_t { Unverified, Ok, Bad };
std::string_view checksum_status_name(ChecksumStatus s);  // "unverified", "ok", "bad"

struct DecodeOptions {
  // Verify IPv4 header checksums and the innermost TCP/UDP/ICMP/ICMPv6 checksum.
  bool verify_checksums = false;
  // Descend into IP-in-IP, GRE and VXLAN; false stops at the outer transport (GRE, UDP).
  bool follow_tunnels = true;
  uint16_t vxlan_port = VxlanView::kPort;
};

struct FragmentInfo {
  bool is_fragment = false;  // IPv4 MF or offset != 0; IPv6: any Fragment header (RFC 8200 4.5)
  bool more_fragments = false;
  uint32_t offset_bytes = 0;
  uint32_t id = 0;  // IPv4 identification or IPv6 fragment identification
};

// One IP header of the packet (outer ones are tunnels), as the decoder filled it in (no
// default values). Addresses are read from the packet bytes on demand (perf: no 34-byte
// copies per header while decoding).
struct IpLayer {
  const std::byte* header;  // the IP header, inside PacketView::data()
  uint8_t version;
  uint8_t proto;        // upper-layer protocol after IPv6 extension headers / AH
  uint16_t offset;      // of the IP header
  uint16_t header_len;  // IP header + extension headers (IPv6) or AH: up to the upper layer
  uint32_t total_len;   // datagram length by the header (IPv4 total length, IPv6 40 + payload)

  IpAddr src() const { return version == 4 ? IpAddr::v4(header + 12) : IpAddr::v6(header + 8); }
  IpAddr dst() const { return version == 4 ? IpAddr::v4(header + 16) : IpAddr::v6(header + 24); }
};

class PacketView {
 public:
  static constexpr LayerKind kNoLayer = LayerKind(0xff);
  static constexpr size_t kMaxLayers = 32;
  static constexpr size_t kMaxVlanTags = 8;    // over all encapsulation levels
  static constexpr size_t kMaxMplsLabels = 8;  // over all encapsulation levels
  static constexpr size_t kMaxTunnels = 3;     // nested tunnels followed
  static constexpr size_t kMaxIpLayers = kMaxTunnels + 1;
  static constexpr size_t kMaxIpv6Ext = 8;  // extension headers per IP header

  // `wire_len`: the packet's length on the wire (pcap orig_len); values below data.size() are
  // taken as data.size().
  [[gnu::always_inline]] static PacketView decode(LinkType link, Bytes data, uint32_t wire_len,
                                                  const DecodeOptions& opt = {}) {
    // perf: inline, so the common case costs no call; the fast path writes every field once,
    // so nothing is initialised before it (see fast_path()).
    PacketView v(Uninitialised{});
    if (link == LinkType::Ethernet && v.fast_path(data, wire_len, opt)) return v;
    v.reset(link, data, wire_len, opt.verify_checksums);
    v.walk(opt);
    return v;
  }
  // Decodes p.data() with p.meta().link and p.meta().wire_len.
  static PacketView decode(const Packet& p, const DecodeOptions& opt = {});
  // The view decode() gives the frame `f` parsed (without checksums verified), from what the
  // parse found: no second walk.
  explicit PacketView(const TcpFrame& f);

  PacketView() { reset(LinkType::Ethernet, {}, 0, false); }

  DropReason error() const { return error_; }
  bool ok() const { return error_ == DropReason::None; }
  LinkType link() const { return link_; }
  Bytes data() const { return {data_, caplen_}; }
  uint32_t wire_len() const { return wire_len_; }

  std::span<const Layer> layers() const { return {layers_.data(), n_layers_}; }
  // The outermost layer of `kind`, or nullptr.
  const Layer* find(LayerKind kind) const;
  Bytes layer_bytes(const Layer& l) const { return {data_ + l.offset, l.length}; }
  std::span<const uint16_t> vlan_ids() const { return {vlan_.data(), n_vlan_}; }  // outermost first
  std::span<const uint32_t> mpls_labels() const { return {mpls_.data(), n_mpls_}; }
  // Number of tunnels descended into.
  uint8_t tunnel_depth() const { return uint8_t(tunnels_); }

  // --- the innermost IP header
  // Outermost first.
  std::span<const IpLayer> ip_layers() const {
    // perf: one IP header (no tunnel) lives only in inner_; see fast_path().
    return n_ip_ == 1 ? std::span<const IpLayer>(&inner_, 1)
                      : std::span<const IpLayer>(ip_.data(), n_ip_);
  }
  uint8_t ip_version() const { return n_ip_ ? inner_.version : 0; }
  std::optional<Ipv4View> ipv4() const;
  std::optional<Ipv6View> ipv6() const;
  IpAddr src_addr() const { return n_ip_ ? inner_.src() : IpAddr{}; }
  IpAddr dst_addr() const { return n_ip_ ? inner_.dst() : IpAddr{}; }
  uint8_t ttl() const;  // hop limit for IPv6
  uint32_t ip_total_len() const { return n_ip_ ? inner_.total_len : 0; }
  uint32_t ip_id() const;  // IPv4 identification; IPv6 fragment identification or 0
  uint8_t l4_proto() const { return n_ip_ ? inner_.proto : 0; }
  FragmentInfo fragment() const { return frag_; }

  // --- transport of the innermost IP header (empty when absent or not decoded)
  std::optional<TcpView> tcp() const;
  std::optional<UdpView> udp() const;
  std::optional<IcmpView> icmp() const;
  std::optional<Icmpv6View> icmpv6() const;
  // A TCP or UDP header the decoder accepted (src_port() and dst_port() are its ports).
  bool has_ports() const { return l4_kind_ == LayerKind::Tcp || l4_kind_ == LayerKind::Udp; }
  uint16_t src_port() const;  // TCP or UDP, else 0
  uint16_t dst_port() const;
  // Captured transport payload, clipped to what the IP (and UDP) lengths say: no Ethernet
  // padding. TCP: after the TCP header; UDP: after the UDP header; otherwise the IP payload
  // (after extension headers), e.g. the whole ICMP message as tcpdump counts it.
  Bytes payload() const { return {data_ + payload_off_, payload_caplen_}; }
  // The payload length the headers give, even when the capture is cut: TCP: IP payload - TCP
  // header; UDP: UDP length - 8; otherwise the IP payload length. For a fragment, what this
  // fragment carries.
  uint32_t payload_len() const { return payload_len_; }

  // --- other layers
  std::optional<EthernetView> ethernet() const;  // outermost
  std::optional<ArpView> arp() const;
  std::optional<GreView> gre() const;      // outermost
  std::optional<VxlanView> vxlan() const;  // outermost

  // --- checksums (DecodeOptions::verify_checksums)
  // Bad if any verified part is bad; Ok when the IPv4 header(s) and the transport checksum
  // that applies were verified; Unverified when not asked, when the capture is cut or the
  // packet is a fragment, or when nothing could be checked (ARP, IPv6 with no transport).
  ChecksumStatus checksum_status() const;
  ChecksumStatus ip_checksum_status() const { return ip_csum_; }  // all IPv4 headers
  ChecksumStatus l4_checksum_status() const { return l4_csum_; }  // innermost transport

 private:
  friend class detail::PacketDecoder;
  friend PacketView detail::decode_general(LinkType, Bytes, uint32_t, const DecodeOptions&);

  struct Uninitialised {};
  explicit PacketView(Uninitialised) {}
  // Every scalar field to its empty value (the tables need none: they are read only up to
  // their counts).
  void reset(LinkType link, Bytes data, uint32_t wire_len, bool verify) {
    data_ = data.data();
    caplen_ = uint32_t(std::min<size_t>(data.size(), UINT32_MAX));
    wire_len_ = std::max(wire_len, caplen_);
    link_ = link;
    ip_cap_end_ = payload_off_ = payload_caplen_ = payload_len_ = 0;
    frag_ = {};
    error_ = DropReason::None;
    n_layers_ = n_vlan_ = n_mpls_ = n_ip_ = tunnels_ = l4_off_ = 0;
    ip_csum_ = l4_csum_ = ChecksumStatus::Unverified;
    verified_ = verify;
    l4_csum_expected_ = false;
    arp_layer_ = -1;
    l4_kind_ = kNoLayer;
  }
  inline bool fast_path(Bytes data, uint32_t wire_len, const DecodeOptions& opt);
  // What the fast path found in a frame of Ethernet (at most one 802.1Q tag, `vid` or -1),
  // one IP header at `off` and TCP or UDP at `l4`; fill_simple() writes every field from it
  // (the fast path, and the view of a TcpFrame).
  struct Simple {
    const std::byte* data;
    uint32_t cap, wire;
    int vid;
    uint32_t off, ip_hl, tl;
    uint8_t version, proto;
    LayerKind kind;
    uint32_t l4, l4_hl, ip_cap_end, pay_cap_end, pay_len;
    bool csum_expected;
  };
  inline void fill_simple(const Simple& f);
  void walk(const DecodeOptions& opt);  // the general one-pass walk (decode.cpp)

  // perf: no default member initialisers: decode() writes each field once (reset() or the
  // fast path), and the zero ones are contiguous so reset() fills them with a few wide stores.
  const std::byte* data_;
  uint32_t caplen_;
  uint32_t wire_len_;
  LinkType link_;
  uint32_t ip_cap_end_;  // captured end of the innermost IP datagram
  uint32_t payload_off_;
  uint32_t payload_caplen_;
  uint32_t payload_len_;
  FragmentInfo frag_;
  DropReason error_;
  // perf: 16-bit counters, not uint8_t: a store through a char type may alias anything and
  // would make the decoder reload its state after every layer it records.
  uint16_t n_layers_;
  uint16_t n_vlan_;
  uint16_t n_mpls_;
  uint16_t n_ip_;
  uint16_t tunnels_;
  uint16_t l4_off_;
  ChecksumStatus ip_csum_;
  ChecksumStatus l4_csum_;
  bool verified_;
  bool l4_csum_expected_;  // the innermost packet has a transport checksum to verify
  int16_t arp_layer_;
  // perf: the innermost IP header and its transport are kept directly, not as indexes into
  // the tables, so a flow lookup reads them without a chain of dependent loads.
  LayerKind l4_kind_;
  IpLayer inner_;  // the innermost IP header: == ip_[n_ip_ - 1] (ip_ unused when n_ip_ == 1)
  // perf: left uninitialised; only the first n_* entries are ever written or read. Zeroing
  // them cost more than the whole Eth/IPv4/TCP walk (measured against a plain header walk).
  std::array<Layer, kMaxLayers> layers_;
  std::array<uint16_t, kMaxVlanTags> vlan_;
  std::array<uint32_t, kMaxMplsLabels> mpls_;
  std::array<IpLayer, kMaxIpLayers> ip_;

  // The decoder records a transport layer only after the checks its view's parse() makes, so
  // the view is built without repeating them.
  template <typename View>
  std::optional<View> transport(LayerKind kind) const {
    if (l4_kind_ != kind) return std::nullopt;
    return View(Bytes(data_ + l4_off_, ip_cap_end_ - l4_off_));
  }
};

// perf: Ethernet, at most one 802.1Q tag, IPv4 without options or fragments or IPv6 without
// extension headers, then TCP (with well-formed options) or UDP (not VXLAN), all
// inside the capture, checksums not asked for: most packets of most traces. It records
// exactly what the general walk records for such a packet (decode_test and
// packet_decode_fuzz compare the two); anything else returns false before writing a field
// and takes the general walk. Measured with a throwaway loop over Eth/IPv4/TCP frames: 10 ns
// per packet against 28 ns for the general walk and 4 ns for a bare field walk.
[[gnu::always_inline]] inline bool PacketView::fast_path(Bytes data, uint32_t wire_len,
                                                         const DecodeOptions& opt) {
  if (opt.verify_checksums || data.size() > UINT32_MAX) return false;
  const std::byte* p = data.data();
  const uint32_t cap = uint32_t(data.size());
  if (cap < 14 + 20 + 8) return false;
  const uint32_t wire = std::max(wire_len, cap);
  uint16_t et = load_be16(p + 12);
  uint32_t off = 14;
  int vid = -1;
  if (et == ether_type::kVlan) {
    vid = load_be16(p + 14) & 0x0fff;
    et = load_be16(p + 16);
    off = 18;
  }
  const std::byte* h = p + off;
  uint32_t ip_hl, tl;
  uint8_t version, proto;
  if (et == ether_type::kIpv4) {
    ip_hl = 20;
    version = 4;
    if (cap < off + 20 + 8 || load_u8(h) != 0x45 || (load_be16(h + 6) & 0x3fff)) return false;
    tl = load_be16(h + 2);
    proto = load_u8(h + 9);
  } else if (et == ether_type::kIpv6) {
    ip_hl = 40;
    version = 6;
    if (cap < off + 40 + 8 || (load_u8(h) >> 4) != 6) return false;
    tl = 40 + uint32_t(load_be16(h + 4));
    proto = load_u8(h + 6);
  } else {
    return false;
  }
  if (tl < ip_hl + 8 || tl > wire - off) return false;
  // cap >= l4 + 8 and tl >= ip_hl + 8, so at least 8 bytes of transport are captured.
  const uint32_t ip_cap_end = std::min(cap, off + tl);
  const uint32_t l4 = off + ip_hl;
  uint32_t l4_hl, pay_cap_end, pay_len;
  LayerKind kind;
  bool csum_expected = true;
  if (proto == ip_proto::kTcp) {
    if (ip_cap_end - l4 < 20) return false;
    l4_hl = uint32_t(load_u8(p + l4 + 12) >> 4) * 4;
    if (l4_hl < 20 || l4_hl > ip_cap_end - l4) return false;
    // A malformed option is left to the general walk, which records TcpBadOption.
    if (l4_hl != 20 && !TcpView(Bytes(p + l4, l4_hl)).options_valid()) return false;
    pay_cap_end = ip_cap_end;
    pay_len = off + tl - (l4 + l4_hl);
    kind = LayerKind::Tcp;
  } else if (proto == ip_proto::kUdp) {
    const uint32_t ulen = load_be16(p + l4 + 4);
    if (ulen < 8 || ulen > tl - ip_hl) return false;
    if (opt.follow_tunnels && load_be16(p + l4 + 2) == opt.vxlan_port) return false;
    l4_hl = 8;
    pay_cap_end = std::min(ip_cap_end, l4 + ulen);
    pay_len = ulen - 8;
    // RFC 768: 0 is "no checksum" over IPv4; RFC 8200 8.1: over IPv6 there is always one.
    csum_expected = version == 6 || load_be16(p + l4 + 6) != 0;
    kind = LayerKind::Udp;
  } else {
    return false;
  }
  fill_simple({.data = p,
               .cap = cap,
               .wire = wire,
               .vid = vid,
               .off = off,
               .ip_hl = ip_hl,
               .tl = tl,
               .version = version,
               .proto = proto,
               .kind = kind,
               .l4 = l4,
               .l4_hl = l4_hl,
               .ip_cap_end = ip_cap_end,
               .pay_cap_end = pay_cap_end,
               .pay_len = pay_len,
               .csum_expected = csum_expected});
  return true;
}

// Every field, as reset() and the general walk would leave them for such a frame.
[[gnu::always_inline]] inline void PacketView::fill_simple(const Simple& f) {
  data_ = f.data;
  caplen_ = f.cap;
  wire_len_ = f.wire;
  link_ = LinkType::Ethernet;
  frag_ = {};
  error_ = DropReason::None;
  n_mpls_ = tunnels_ = 0;
  ip_csum_ = l4_csum_ = ChecksumStatus::Unverified;
  verified_ = false;
  arp_layer_ = -1;
  uint16_t n = 0;
  layers_[n++] = {LayerKind::Ethernet, 0, 14};
  n_vlan_ = 0;
  if (f.vid >= 0) {
    layers_[n++] = {LayerKind::Dot1Q, 14, 4};
    vlan_[0] = uint16_t(f.vid);
    n_vlan_ = 1;
  }
  layers_[n++] = {f.version == 4 ? LayerKind::Ipv4 : LayerKind::Ipv6, uint16_t(f.off),
                  uint16_t(f.ip_hl)};
  // ip_layers() reads inner_ when there is one IP header.
  inner_ = {f.data + f.off, f.version, f.proto, uint16_t(f.off), uint16_t(f.ip_hl), f.tl};
  n_ip_ = 1;
  l4_kind_ = f.kind;
  l4_off_ = uint16_t(f.l4);
  layers_[n++] = {f.kind, uint16_t(f.l4), uint16_t(f.l4_hl)};
  n_layers_ = n;
  ip_cap_end_ = f.ip_cap_end;
  l4_csum_expected_ = f.csum_expected;
  payload_off_ = f.l4 + f.l4_hl;
  payload_caplen_ = f.pay_cap_end - (f.l4 + f.l4_hl);
  payload_len_ = f.pay_len;
}

// perf: the commonest frame, Ethernet (no tag) / IPv4 (no options, not a fragment) / TCP
// (options well formed), read without a PacketView: what a flow engine needs of it (the
// engine's batch driver, Engine::step_framed()). parse() accepts a subset of what PacketView's
// fast path accepts (false: not such a frame, nothing written; decode it as usual), and what
// it reads equals what that view gives (decode_test and packet_decode_fuzz compare them).
struct TcpFrame {
  static constexpr uint16_t kIp = 14;        // offset of the IPv4 header
  static constexpr uint16_t kL4 = kIp + 20;  // offset of the TCP header

  const std::byte* data;  // the frame
  uint16_t l4_hl;         // TCP header length
  uint32_t ip_cap_end;    // captured end of the IP datagram
  uint32_t payload_len;   // PacketView::payload_len()
  uint32_t ip_total_len;  // PacketView::ip_total_len()
  uint32_t payload_caplen;
  uint32_t caplen;    // PacketView::data().size()
  uint32_t wire_len;  // PacketView::wire_len()

  [[gnu::always_inline]] bool parse(Bytes d, uint32_t wire_len_in) {
    const std::byte* p = d.data();
    if (d.size() < kL4 + 20 || d.size() > UINT32_MAX) return false;
    const uint32_t cap = uint32_t(d.size());
    const uint32_t wire = std::max(wire_len_in, cap);
    const std::byte* h = p + kIp;
    if (load_be16(p + 12) != ether_type::kIpv4 || load_u8(h) != 0x45 ||
        (load_be16(h + 6) & 0x3fff) || load_u8(h + 9) != ip_proto::kTcp)
      return false;
    const uint32_t tl = load_be16(h + 2);
    if (tl < 20 + 20 || tl > wire - kIp) return false;
    const uint32_t end = std::min(cap, kIp + tl);
    const uint32_t hl = uint32_t(load_u8(p + kL4 + 12) >> 4) * 4;
    if (end < kL4 + 20 || hl < 20 || hl > end - kL4) return false;
    if (hl != 20 && !TcpView(Bytes(p + kL4, hl)).options_valid()) return false;
    data = p;
    l4_hl = uint16_t(hl);
    ip_cap_end = end;
    ip_total_len = tl;
    payload_len = tl - 20 - hl;
    payload_caplen = end - kL4 - hl;
    caplen = cap;
    wire_len = wire;
    return true;
  }
  TcpView tcp() const { return TcpView(Bytes(data + kL4, ip_cap_end - kL4)); }
  Bytes payload() const { return {data + kL4 + l4_hl, payload_caplen}; }
  const std::byte* ip_header() const { return data + kIp; }
};

[[gnu::always_inline]] inline PacketView::PacketView(const TcpFrame& f) {
  fill_simple({.data = f.data,
               .cap = f.caplen,
               .wire = f.wire_len,
               .vid = -1,
               .off = TcpFrame::kIp,
               .ip_hl = 20,
               .tl = f.ip_total_len,
               .version = 4,
               .proto = ip_proto::kTcp,
               .kind = LayerKind::Tcp,
               .l4 = TcpFrame::kL4,
               .l4_hl = f.l4_hl,
               .ip_cap_end = f.ip_cap_end,
               .pay_cap_end = f.ip_cap_end,
               .pay_len = f.payload_len,
               .csum_expected = true});
}

// The accessors are inline (flows call them per packet) and build views through parse():
// cheap, and a view's invariants then hold even for a header the decoder recorded before
// refusing its lengths (an IPv4 total length below IHL).

inline std::optional<Ipv4View> PacketView::ipv4() const {
  if (ip_version() != 4) return std::nullopt;
  uint32_t off = inner_.offset;
  return Ipv4View::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

inline std::optional<Ipv6View> PacketView::ipv6() const {
  if (ip_version() != 6) return std::nullopt;
  uint32_t off = inner_.offset;
  return Ipv6View::parse(Bytes(data_ + off, ip_cap_end_ - off));
}

inline uint8_t PacketView::ttl() const {
  if (!n_ip_) return 0;
  const IpLayer& ip = inner_;
  return load_u8(ip.header + (ip.version == 4 ? 8 : 7));
}

inline uint32_t PacketView::ip_id() const {
  if (!n_ip_) return 0;
  const IpLayer& ip = inner_;
  if (ip.version == 4) return load_be16(ip.header + 4);
  return frag_.is_fragment ? frag_.id : 0;
}

inline std::optional<TcpView> PacketView::tcp() const {
  return transport<TcpView>(LayerKind::Tcp);
}
inline std::optional<UdpView> PacketView::udp() const {
  return transport<UdpView>(LayerKind::Udp);
}
inline std::optional<IcmpView> PacketView::icmp() const {
  return transport<IcmpView>(LayerKind::Icmp);
}
inline std::optional<Icmpv6View> PacketView::icmpv6() const {
  return transport<Icmpv6View>(LayerKind::Icmpv6);
}

inline uint16_t PacketView::src_port() const {
  if (l4_kind_ != LayerKind::Tcp && l4_kind_ != LayerKind::Udp) return 0;
  return load_be16(data_ + l4_off_);
}

inline uint16_t PacketView::dst_port() const {
  if (l4_kind_ != LayerKind::Tcp && l4_kind_ != LayerKind::Udp) return 0;
  return load_be16(data_ + l4_off_ + 2);
}

}  // namespace l45
