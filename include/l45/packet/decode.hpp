// PacketView: the one-pass decoder every higher layer reads packets through.
//
// decode() walks link -> (802.1Q/802.1ad | MPLS | PPPoE)* -> IP (+ IPv6 extension headers, AH)
// -> (tunnel -> link? -> IP)* -> transport once, records each header as a Layer
// {kind, offset, length}, and keeps what flows key on: the innermost IP header and its
// transport. It allocates nothing and holds no pointer but the one to the caller's bytes,
// which must outlive the view. The result is trivially copyable.
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
// header when it is inside the fragment. fragment() describes the innermost IP header.
//
//   PacketView v = PacketView::decode(LinkType::Ethernet, bytes, wire_len);
//   if (v.error() != DropReason::None) drops.add(v.error());
//   if (auto t = v.tcp()) track(v.src_addr(), t->src_port(), v.dst_addr(), t->dst_port());
#pragma once

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
namespace detail {
class PacketDecoder;
}

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

// One IP header of the packet (outer ones are tunnels).
struct IpLayer {
  IpAddr src;
  IpAddr dst;
  uint8_t version = 0;
  uint8_t proto = 0;        // upper-layer protocol after IPv6 extension headers / AH
  uint16_t offset = 0;      // of the IP header
  uint16_t header_len = 0;  // IP header + extension headers (IPv6) or AH: up to the upper layer
  uint32_t total_len = 0;   // datagram length by the header (IPv4 total length, IPv6 40 + payload)
};

class PacketView {
 public:
  static constexpr size_t kMaxLayers = 32;
  static constexpr size_t kMaxVlanTags = 8;    // over all encapsulation levels
  static constexpr size_t kMaxMplsLabels = 8;  // over all encapsulation levels
  static constexpr size_t kMaxTunnels = 3;     // nested tunnels followed
  static constexpr size_t kMaxIpLayers = kMaxTunnels + 1;
  static constexpr size_t kMaxIpv6Ext = 8;  // extension headers per IP header

  // `wire_len`: the packet's length on the wire (pcap orig_len); values below data.size() are
  // taken as data.size().
  static PacketView decode(LinkType link, Bytes data, uint32_t wire_len,
                           const DecodeOptions& opt = {});
  // Decodes p.data() with p.meta().link and p.meta().wire_len.
  static PacketView decode(const Packet& p, const DecodeOptions& opt = {});

  PacketView() = default;

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
  uint8_t tunnel_depth() const { return tunnels_; }

  // --- the innermost IP header
  std::span<const IpLayer> ip_layers() const { return {ip_.data(), n_ip_}; }  // outermost first
  uint8_t ip_version() const { return n_ip_ ? ip_[n_ip_ - 1].version : 0; }
  std::optional<Ipv4View> ipv4() const;
  std::optional<Ipv6View> ipv6() const;
  IpAddr src_addr() const { return n_ip_ ? ip_[n_ip_ - 1].src : IpAddr{}; }
  IpAddr dst_addr() const { return n_ip_ ? ip_[n_ip_ - 1].dst : IpAddr{}; }
  uint8_t ttl() const;  // hop limit for IPv6
  uint32_t ip_total_len() const { return n_ip_ ? ip_[n_ip_ - 1].total_len : 0; }
  uint32_t ip_id() const;  // IPv4 identification; IPv6 fragment identification or 0
  uint8_t l4_proto() const { return n_ip_ ? ip_[n_ip_ - 1].proto : 0; }
  FragmentInfo fragment() const { return frag_; }

  // --- transport of the innermost IP header (empty when absent or not decoded)
  std::optional<TcpView> tcp() const;
  std::optional<UdpView> udp() const;
  std::optional<IcmpView> icmp() const;
  std::optional<Icmpv6View> icmpv6() const;
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

  const std::byte* data_ = nullptr;
  uint32_t caplen_ = 0;
  uint32_t wire_len_ = 0;
  LinkType link_ = LinkType::Ethernet;
  DropReason error_ = DropReason::None;
  uint8_t n_layers_ = 0;
  uint8_t n_vlan_ = 0;
  uint8_t n_mpls_ = 0;
  uint8_t n_ip_ = 0;
  uint8_t tunnels_ = 0;
  int8_t l4_layer_ = -1;  // index in layers_ of the innermost IP's transport
  int8_t arp_layer_ = -1;
  ChecksumStatus ip_csum_ = ChecksumStatus::Unverified;
  ChecksumStatus l4_csum_ = ChecksumStatus::Unverified;
  bool verified_ = false;
  bool l4_csum_expected_ = false;  // the innermost packet has a transport checksum to verify
  FragmentInfo frag_;
  uint32_t ip_cap_end_ = 0;  // captured end of the innermost IP datagram
  uint32_t payload_off_ = 0;
  uint32_t payload_caplen_ = 0;
  uint32_t payload_len_ = 0;
  std::array<Layer, kMaxLayers> layers_{};
  std::array<uint16_t, kMaxVlanTags> vlan_{};
  std::array<uint32_t, kMaxMplsLabels> mpls_{};
  std::array<IpLayer, kMaxIpLayers> ip_{};
};

}  // namespace l45
