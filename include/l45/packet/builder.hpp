// PacketBuilder creates packets layer by layer, straight into the one buffer of the Packet it
// returns (no object per layer, no second copy), and fills in every length and checksum at
// build(). Beside it: packets derived from a decoded one (replies that answer for the other
// endpoint, a copy with a new payload, ICMP errors, ARP replies), field edits on an existing
// packet that keep its checksums valid by incremental update (RFC 1624: PacketEditor and the
// set_* functions), full recomputation (fix_lengths(), fix_checksums()), and VLAN/Ethernet
// encapsulation in the packet's headroom (push_vlan(), pop_vlan(), push_ethernet()).
//
// Layers go in wire order; each may be followed by its setters, in any order:
//
//   [ethernet [vlan]*]  (arp_* | (ipv4 | ipv6 [ipv6_<extension>]*)+ [tcp | udp | icmp* | icmpv6*])
//   [payload] [pad_to]
//
// (IP after IP is IP-in-IP, RFC 2003 / RFC 4213.) Setters change the most recent layer of their
// kind: ttl(), tos() the innermost IP header; seq(), mss() the TCP header. TCP options are
// written in call order and the option list is padded with EOL (zero) octets to a 32-bit
// boundary (RFC 9293 3.1); add nop() where an option should be aligned, as stacks do:
//
//   Packet syn = PacketBuilder()
//                    .ethernet(client_mac, server_mac)
//                    .ipv4(client, server).ttl(64).dont_fragment()
//                    .tcp(40000, 80).seq(TcpSeq(1000)).flags(tcp_flag::kSyn).window(64240)
//                    .mss(1460).sack_permitted().timestamps(1, 0).nop().wscale(7)
//                    .build();
//
// build() sets IPv4 total length and IHL, IPv6 payload length, every extension header's length,
// UDP length and TCP data offset, then the TCP/UDP/ICMPv6 checksums with their pseudo-header
// (RFC 9293 3.1, RFC 768, RFC 8200 8.1 — with the final destination of a source route or routing
// header), the ICMPv4 checksum (RFC 792) and the IPv4 header checksum (RFC 791 3.1). Over UDP a
// computed checksum of 0 is sent as 0xffff (RFC 768, RFC 8200 8.1). The Packet's PacketMeta link
// is Ethernet when the first layer is Ethernet, Raw when it is IP.
//
// Misuse (a layer where it cannot go, a setter with no layer for it, options past 40 bytes, a
// datagram past 65535 bytes) never throws: the builder records the first BuildError, ignores the
// calls after it, and build() returns an empty Packet; error() says why.
//
// Derived packets decode their input with PacketView::decode and return std::nullopt (or false)
// when it lacks the layer they need. Edits apply to the innermost IP header and its transport,
// the ones a flow is keyed on; outer tunnel checksums are not touched (use fix_checksums()).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>

#include "l45/packet/bytes.hpp"
#include "l45/packet/ethernet.hpp"
#include "l45/packet/ip_addr.hpp"
#include "l45/packet/mac_addr.hpp"
#include "l45/packet/packet.hpp"
#include "l45/packet/tcp.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {

enum class BuildError : uint8_t {
  None = 0,
  Empty,           // build() with no Ethernet, ARP or IP layer
  LayerOrder,      // a layer where it cannot go (VLAN after IP, TCP without IP, ...)
  MissingLayer,    // a setter whose layer was not added (seq() without tcp())
  AddressFamily,   // ipv4() given an IPv6 address, ICMPv4 over IPv6, ...
  OptionsTooLong,  // IPv4 or TCP options past 40 bytes (RFC 791 3.1, RFC 9293 3.1)
  TooLong,         // an IPv4 datagram, IPv6 payload, UDP datagram or header past its field
};
std::string_view build_error_name(BuildError e);  // "none", "layer-order", ...

class PacketBuilder {
 public:
  // Room reserved up front: Ethernet + VLAN + IPv4 + TCP with options + a small payload fit
  // without a reallocation. A larger payload grows the buffer once.
  static constexpr size_t kDefaultCapacity = 192;

  explicit PacketBuilder(size_t capacity = kDefaultCapacity,
                         size_t headroom = Packet::kDefaultHeadroom);
  PacketBuilder(PacketBuilder&&) noexcept = default;
  PacketBuilder& operator=(PacketBuilder&&) noexcept = default;

  // --- link layer (IEEE 802.3 3.2.6, IEEE 802.1Q 9.6)
  PacketBuilder& ethernet(MacAddr src, MacAddr dst);
  PacketBuilder& vlan(uint16_t vid, uint8_t pcp = 0, uint16_t tpid = ether_type::kVlan,
                      bool dei = false);
  // The EtherType for a payload that is not built here (IP and ARP set their own).
  PacketBuilder& ethertype(uint16_t type);

  // --- ARP (RFC 826), Ethernet/IPv4 form; needs ethernet() first
  PacketBuilder& arp(uint16_t op, MacAddr sender_mac, IpAddr sender_ip, MacAddr target_mac,
                     IpAddr target_ip);
  PacketBuilder& arp_request(MacAddr sender_mac, IpAddr sender_ip, IpAddr target_ip);
  PacketBuilder& arp_reply(MacAddr sender_mac, IpAddr sender_ip, MacAddr target_mac,
                           IpAddr target_ip);

  // --- IPv4 (RFC 791 3.1). Defaults: TTL 64, id 0, no flags.
  PacketBuilder& ipv4(IpAddr src, IpAddr dst);
  PacketBuilder& ip_id(uint16_t id);
  PacketBuilder& dont_fragment(bool df = true);
  PacketBuilder& more_fragments(bool mf = true);
  PacketBuilder& fragment_offset(uint16_t units_of_8_bytes);  // 13 bits
  // The whole option area (replacing any set before), padded with EOL octets to 4 bytes.
  PacketBuilder& ip_options(Bytes raw);

  // --- IPv6 (RFC 8200 3). Defaults: hop limit 64, Next Header 59 until a layer follows.
  PacketBuilder& ipv6(IpAddr src, IpAddr dst);
  PacketBuilder& flow_label(uint32_t label);  // 20 bits
  // Extension headers (RFC 8200 4), in the order called. Hop-by-Hop and Destination Options
  // take the options area and pad it with Pad1/PadN to 8 bytes (RFC 8200 4.2).
  PacketBuilder& ipv6_hop_by_hop(Bytes options = {});
  PacketBuilder& ipv6_dest_opts(Bytes options = {});
  // Routing header of `type` carrying `addresses` (type 4 is RFC 8754 Segment Routing: Last
  // Entry is filled in; Segment List[0] is the final segment).
  PacketBuilder& ipv6_routing(uint8_t type, uint8_t segments_left,
                              std::span<const IpAddr> addresses);
  PacketBuilder& ipv6_fragment(uint32_t offset_bytes, bool more, uint32_t id);

  // --- either IP version: the innermost header
  PacketBuilder& ttl(uint8_t hops);  // IPv4 TTL or IPv6 hop limit
  PacketBuilder& hop_limit(uint8_t h) { return ttl(h); }
  PacketBuilder& tos(uint8_t value);  // IPv4 TOS or IPv6 traffic class (DSCP << 2 | ECN)
  PacketBuilder& traffic_class(uint8_t tc) { return tos(tc); }
  // Protocol / Next Header for a payload that is not built here (transports set their own).
  PacketBuilder& ip_protocol(uint8_t proto);

  // --- TCP (RFC 9293 3.1). Defaults: seq 0, ack 0, no flags, window 65535.
  PacketBuilder& tcp(uint16_t src_port, uint16_t dst_port);
  PacketBuilder& seq(TcpSeq s);
  PacketBuilder& ack(TcpSeq a);             // the number only: flags() says whether ACK is set
  PacketBuilder& flags(uint8_t tcp_flags);  // tcp_flag::k*
  PacketBuilder& window(uint16_t w);        // as sent (unscaled)
  PacketBuilder& urgent(uint16_t ptr);
  PacketBuilder& mss(uint16_t bytes);                         // RFC 9293 3.7.1
  PacketBuilder& wscale(uint8_t shift);                       // RFC 7323 2.2
  PacketBuilder& sack_permitted();                            // RFC 2018 2
  PacketBuilder& sack(std::span<const TcpSackBlock> blocks);  // RFC 2018 3, up to 4 blocks
  PacketBuilder& sack(std::initializer_list<TcpSackBlock> blocks) {
    return sack(std::span<const TcpSackBlock>(blocks.begin(), blocks.size()));
  }
  PacketBuilder& timestamps(uint32_t value, uint32_t echo);  // RFC 7323 3.2
  PacketBuilder& nop();
  // Any other kind (MD5, TCP-AO, MPTCP, Fast Open, experimental): kind, length, value.
  PacketBuilder& tcp_option(uint8_t kind, Bytes value);

  // --- UDP (RFC 768)
  PacketBuilder& udp(uint16_t src_port, uint16_t dst_port);
  // Sends checksum 0, "not computed" (RFC 768; IPv4 only, RFC 8200 8.1 forbids it over IPv6).
  PacketBuilder& no_udp_checksum();

  // --- ICMP (RFC 792) and ICMPv6 (RFC 4443). `rest` is the 4 type-specific header bytes.
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint32_t rest = 0);
  PacketBuilder& icmp_echo_request(uint16_t id, uint16_t sequence);
  PacketBuilder& icmp_echo_reply(uint16_t id, uint16_t sequence);
  // An error quoting the invoking datagram (from its IP header on) as its payload, cut so the
  // error stays within 576 bytes (RFC 1812 4.3.2.3).
  PacketBuilder& icmp_error(uint8_t type, uint8_t code, Bytes invoking, uint32_t rest = 0);
  PacketBuilder& icmpv6(uint8_t type, uint8_t code, uint32_t rest = 0);
  PacketBuilder& icmpv6_echo_request(uint16_t id, uint16_t sequence);
  PacketBuilder& icmpv6_echo_reply(uint16_t id, uint16_t sequence);
  // Cut so the error stays within the IPv6 minimum MTU, 1280 bytes (RFC 4443 2.4(c)).
  PacketBuilder& icmpv6_error(uint8_t type, uint8_t code, Bytes invoking, uint32_t rest = 0);

  // --- payload: replaces any payload set before (an ICMP error's quote included)
  PacketBuilder& payload(Bytes data);
  PacketBuilder& payload(std::string_view text);
  // Pads the frame with zeros to `frame_len` (60: the Ethernet minimum without FCS) after
  // every length is set, so the padding is outside the IP datagram, as on the wire.
  PacketBuilder& pad_to(size_t frame_len);

  // The packet, lengths and checksums filled in; meta.link and meta.wire_len are set, the rest
  // of `meta` is kept. Empty when error() is set. Afterwards the builder has no layers and can
  // start another packet; error() stays set (a builder that failed keeps failing).
  Packet build(PacketMeta meta = {});
  BuildError error() const { return error_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr size_t kMaxIp = 4;  // IP-in-IP nesting
  enum class L4 : uint8_t { None, Tcp, Udp, Icmp, Icmpv6 };
  enum class Next : uint8_t { None, EtherType, IpProto };

  PacketBuilder& fail(BuildError e);
  bool ok() const { return error_ == BuildError::None; }
  std::byte* at(uint32_t off) { return base_ + off; }
  uint8_t byte_at(uint32_t off) const { return load_u8(base_ + off); }
  void set_len(size_t len);
  uint32_t append(size_t n);
  void insert(uint32_t off, size_t n);
  void erase(uint32_t off, size_t n);
  void shift_offsets(uint32_t from, int64_t by);
  void reset_layers();
  // Fills the field of the previous layer that names what follows; -1: not allowed there.
  bool link_next(int ether_type_value, int ip_proto_value);
  bool can_add_layer() const { return ok() && l4_kind_ == L4::None && payload_ == kNone; }
  PacketBuilder& add_ip(bool v6, IpAddr src, IpAddr dst);
  PacketBuilder& add_ipv6_ext(uint8_t type, size_t len);
  PacketBuilder& add_l4(L4 kind, uint8_t proto, size_t len);
  PacketBuilder& add_icmp(bool v6, uint8_t type, uint8_t code, uint32_t rest);
  PacketBuilder& add_tcp_option(const std::byte* opt, size_t len);
  PacketBuilder& add_quote(Bytes invoking, size_t limit);
  bool has_ip() const { return n_ip_ != 0; }
  uint32_t ip() const { return ip_[n_ip_ - 1]; }
  bool ip_is_v6() const { return (byte_at(ip()) >> 4) == 6; }

  Packet pkt_;  // allocated at the first layer (capacity_ + headroom_), always unique
  std::byte* base_ = nullptr;  // pkt_'s bytes; moves only when set_len() grows the buffer
  uint32_t len_ = 0;           // bytes in use; the rest of pkt_ is zero
  size_t capacity_;
  size_t headroom_;
  std::array<uint32_t, kMaxIp> ip_{};  // IP headers, outermost first
  uint32_t eth_ = kNone;
  uint32_t ip_end_ = kNone;   // end of the innermost IP header and its extension headers
  uint32_t l4_ = kNone;       // transport header
  uint32_t opt_end_ = kNone;  // end of the TCP options written so far (unpadded)
  uint32_t payload_ = kNone;  // start of the payload, which runs to the end
  uint32_t next_ = kNone;     // the field that names the next layer
  size_t pad_to_ = 0;
  uint8_t n_ip_ = 0;
  Next next_kind_ = Next::None;
  L4 l4_kind_ = L4::None;
  bool started_ = false;
  bool no_udp_csum_ = false;
  BuildError error_ = BuildError::None;
};

// --- packets derived from a decoded one -------------------------------------------------------

// A builder preset to answer `original` on behalf of its destination: MACs, VLAN tags (same
// VLANs), IP addresses and ports swapped. TCP: seq = the original's ack (0 when it has no ACK),
// ack = its seq + payload length + 1 for SYN + 1 for FIN, flags ACK — the values RFC 9293
// 3.10.7.1 gives a reset, and what the next segment of a transparent proxy's side carries. An
// ICMP/ICMPv6 echo request becomes an echo reply with its id, sequence number and data (RFC
// 792, RFC 4443 4.2). Any other protocol gets IP only, with the same protocol number. Chain
// more setters (seq(), flags(), timestamps(), payload()) and build(). nullopt for a packet
// without IP, an MPLS/PPPoE/tunnelled one, or a non-first fragment.
std::optional<PacketBuilder> reply_builder(const Packet& original);
// reply_builder() with `tcp_flags` (TCP only) and `payload`; for an echo request an empty
// payload echoes the request's data.
std::optional<Packet> make_reply(const Packet& original, uint8_t tcp_flags = tcp_flag::kAck,
                                 Bytes payload = {});
// The ARP reply that announces `answer` for the address an ARP request asks about (RFC 826
// "Packet Reception"), sent to the requester. nullopt when `request` is not an Ethernet/IPv4
// ARP request.
std::optional<Packet> make_arp_reply(const Packet& request, MacAddr answer);
// An ICMP (IPv4) or ICMPv6 (IPv6) error about `offending`, sent to its source from its
// destination (the endpoint a transparent service answers for), quoting its innermost IP
// datagram (cut to 576 / 1280 bytes). nullopt where RFC 1812 4.3.2.7 / RFC 4443 2.4(e) forbid an
// error: about an ICMP error, a non-first fragment, a multicast or broadcast destination (IP or
// Ethernet), an unspecified or multicast source; and for packets reply_builder() refuses.
std::optional<Packet> make_icmp_error(const Packet& offending, uint8_t type, uint8_t code,
                                      uint32_t rest = 0);
// A copy of `original` whose transport payload (after the TCP/UDP/ICMP header, else after the
// IP headers) is `new_payload`; link layer, VLAN tags, IP and transport headers are kept, any
// Ethernet padding is dropped, every IP/UDP length and checksum is recomputed (an IPv4 UDP
// checksum of 0 stays 0). nullopt without an IP layer.
std::optional<Packet> with_payload(const Packet& original, Bytes new_payload);

// --- recomputation from scratch ------------------------------------------------------------

// Makes every IP datagram (total length, IPv6 payload length) and every UDP datagram run to the
// end of the packet, as when data was copied in after the headers (VTL's create_data_pkt), and
// sets meta().wire_len to size(). Checksums are not touched: call fix_checksums() next. False
// without an IP layer or when a length does not fit its field.
bool fix_lengths(Packet& p);
// Recomputes every IPv4 header checksum and every TCP/UDP/ICMP/ICMPv6 checksum the decoder
// finds, innermost first (an outer VXLAN UDP checksum covers the inner packet). Left alone: an
// IPv4 UDP checksum of 0 (the sender chose none, RFC 768), a transport inside a fragment (its
// checksum covers the whole datagram), one the capture cut. False without an IP layer.
bool fix_checksums(Packet& p);

// --- edits that keep checksums valid (RFC 1624 eqn. 3) -------------------------------------

// Decodes once and then edits the innermost IP header and its transport in place (copying the
// bytes first when they are shared: the Packet's copy-on-write). Each setter returns false and
// changes nothing when the packet lacks its layer (or, for addresses, the family differs). The
// editor must not outlive the packet or see it resized by anyone else.
//
//   PacketEditor e(pkt);
//   e.set_ip_dst(backend) && e.set_dst_port(8080);   // DNAT, checksums still valid
class PacketEditor {
 public:
  explicit PacketEditor(Packet& p);

  bool has_ip() const { return ip_ != kNone; }
  bool set_ip_src(IpAddr a);  // IPv4: header checksum and pseudo-header; IPv6: pseudo-header
  bool set_ip_dst(IpAddr a);
  bool set_ttl(uint8_t ttl);         // IPv4 TTL or IPv6 hop limit
  bool set_src_port(uint16_t port);  // TCP or UDP
  bool set_dst_port(uint16_t port);
  bool set_tcp_seq(TcpSeq s);
  bool set_tcp_ack(TcpSeq a);
  bool set_tcp_window(uint16_t w);
  bool set_tcp_flags(uint8_t tcp_flags);

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  bool set_addr(IpAddr a, uint32_t field, bool in_pseudo);
  // Writes a 16-bit word at `off` and folds the change into the transport checksum.
  void put16_l4(uint32_t off, uint16_t v);
  void put32_l4(uint32_t off, uint32_t v);
  void l4_update(uint16_t old_v, uint16_t new_v);
  std::byte* at(uint32_t off) { return p_.mutable_data().data() + off; }

  Packet& p_;
  uint32_t ip_ = kNone;
  uint32_t l4_ = kNone;       // TCP or UDP header
  uint32_t l4_csum_ = kNone;  // transport checksum that covers the pseudo-header and l4_
  uint8_t version_ = 0;
  bool tcp_ = false;
  bool udp_ = false;
  bool dst_in_pseudo_ = true;  // false when a source route / routing header names the final one
};

// One-shot forms of the PacketEditor setters.
bool set_ip_src(Packet& p, IpAddr a);
bool set_ip_dst(Packet& p, IpAddr a);
bool set_ttl(Packet& p, uint8_t ttl);
bool set_src_port(Packet& p, uint16_t port);
bool set_dst_port(Packet& p, uint16_t port);
bool set_tcp_seq(Packet& p, TcpSeq s);
bool set_tcp_ack(Packet& p, TcpSeq a);
bool set_tcp_window(Packet& p, uint16_t w);
bool set_tcp_flags(Packet& p, uint8_t tcp_flags);

// --- link-layer encapsulation, using the Packet's headroom -------------------------------------

// Inserts an 802.1Q/802.1ad tag after the MAC addresses of an Ethernet frame (outermost).
bool push_vlan(Packet& p, uint16_t vid, uint8_t pcp = 0, uint16_t tpid = ether_type::kVlan);
// Removes the outermost tag; false when there is none.
bool pop_vlan(Packet& p);
// Puts an Ethernet header in front of a raw IPv4/IPv6 packet (link Raw, Ipv4 or Ipv6) and sets
// meta().link to Ethernet.
bool push_ethernet(Packet& p, MacAddr src, MacAddr dst);

}  // namespace l45
