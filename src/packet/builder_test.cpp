#include "l45/packet/builder.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "l45/packet/checksum.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/ip_proto.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

using json = nlohmann::json;

// RFC 5737 / RFC 3849 documentation addresses, RFC 7042 documentation MACs.
MacAddr mac(uint8_t last) {
  return MacAddr{{0x00, 0x00, 0x5e, 0x00, 0x53, last}};
}
IpAddr ip(const char* text) {
  return *IpAddr::parse(text);
}
const MacAddr kClientMac = mac(0x01);
const MacAddr kServerMac = mac(0x02);
const IpAddr kClient4 = ip("192.0.2.10");
const IpAddr kServer4 = ip("198.51.100.20");
const IpAddr kClient6 = ip("2001:db8::10");
const IpAddr kServer6 = ip("2001:db8:1::20");

Bytes text(std::string_view s) {
  return as_bytes(s.data(), s.size());
}
std::vector<std::byte> pattern(size_t n, uint8_t seed = 1) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = std::byte(uint8_t(seed + 7 * i));
  return v;
}
std::string hex(Bytes b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += d[uint8_t(x) >> 4];
    s += d[uint8_t(x) & 15];
  }
  return s;
}
PacketView decoded(const Packet& p) {
  return PacketView::decode(p, DecodeOptions{.verify_checksums = true});
}
uint32_t off_of(const PacketView& v, Bytes b) {
  return uint32_t(b.data() - v.data().data());
}
Packet copy(const Packet& p) {
  return Packet::copy_of(p.data(), p.meta());
}

// The example of the header: a Linux-style SYN.
Packet linux_syn() {
  return PacketBuilder()
      .ethernet(kClientMac, kServerMac)
      .ipv4(kClient4, kServer4)
      .ttl(64)
      .ip_id(0x1c46)
      .dont_fragment()
      .tcp(40000, 80)
      .seq(TcpSeq(1000))
      .flags(tcp_flag::kSyn)
      .window(64240)
      .mss(1460)
      .sack_permitted()
      .timestamps(1, 0)
      .nop()
      .wscale(7)
      .build();
}

// =============================================================================================
// From scratch
// =============================================================================================

TEST(BuilderTcp, SynWithOptionsDecodesFieldForField) {
  Packet p = linux_syn();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.meta().link, LinkType::Ethernet);
  EXPECT_EQ(p.meta().wire_len, p.size());
  EXPECT_EQ(p.size(), 14u + 20 + 40);
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok()) << drop_reason_name(v.error());
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.ethernet()->src(), kClientMac);
  EXPECT_EQ(v.ethernet()->dst(), kServerMac);
  EXPECT_EQ(v.ethernet()->ether_type(), ether_type::kIpv4);
  auto ip4 = v.ipv4();
  ASSERT_TRUE(ip4);
  EXPECT_EQ(ip4->src(), kClient4);
  EXPECT_EQ(ip4->dst(), kServer4);
  EXPECT_EQ(ip4->ttl(), 64);
  EXPECT_EQ(ip4->id(), 0x1c46);
  EXPECT_TRUE(ip4->dont_fragment());
  EXPECT_EQ(ip4->total_length(), 60);
  EXPECT_EQ(ip4->protocol(), ip_proto::kTcp);
  auto t = v.tcp();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->src_port(), 40000);
  EXPECT_EQ(t->dst_port(), 80);
  EXPECT_EQ(t->seq(), TcpSeq(1000));
  EXPECT_EQ(t->ack(), TcpSeq(0));
  EXPECT_EQ(t->flags(), tcp_flag::kSyn);
  EXPECT_EQ(t->window(), 64240);
  EXPECT_EQ(t->header_len(), 40u);
  TcpOptions o = t->options();
  EXPECT_FALSE(o.malformed);
  EXPECT_EQ(o.mss, 1460);
  EXPECT_EQ(o.window_scale, 7);
  EXPECT_TRUE(o.sack_permitted);
  ASSERT_TRUE(o.timestamps);
  EXPECT_EQ(o.timestamps->value, 1u);
  EXPECT_EQ(o.timestamps->echo, 0u);
  // The Linux layout, byte for byte: MSS, SACK-permitted, TS, NOP, WS (no padding needed).
  EXPECT_EQ(hex(t->option_bytes()),
            "020405b40402080a0000000100000000"
            "01030307");
  EXPECT_EQ(v.payload_len(), 0u);
}

TEST(BuilderTcp, OptionsArePaddedWithEolToAWordBoundary) {
  Packet p = PacketBuilder().ipv4(kClient4, kServer4).tcp(1, 2).mss(536).sack_permitted().build();
  PacketView v = decoded(p);
  auto t = v.tcp();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->header_len(), 28u);  // 6 option bytes + 2 EOL
  EXPECT_EQ(hex(t->option_bytes()), "0204021804020000");
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderTcp, SackBlocksUrgentAndUnknownKindsRoundTrip) {
  std::byte exp[] = {std::byte{0xab}, std::byte{0xcd}};
  Packet p = PacketBuilder()
                 .ipv6(kClient6, kServer6)
                 .tcp(443, 50000)
                 .seq(TcpSeq(0xfffffff0))
                 .ack(TcpSeq(7))
                 .flags(tcp_flag::kAck | tcp_flag::kUrg)
                 .urgent(3)
                 .nop()
                 .nop()
                 .sack({{TcpSeq(100), TcpSeq(200)}, {TcpSeq(0xfffffff0), TcpSeq(16)}})
                 .tcp_option(253, exp)  // RFC 4727 experimental
                 .payload("hello")
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  auto t = v.tcp();
  EXPECT_EQ(t->urgent_pointer(), 3);
  EXPECT_EQ(t->seq(), TcpSeq(0xfffffff0));
  TcpOptions o = t->options();
  ASSERT_EQ(o.sack_count, 2);
  EXPECT_EQ(o.sack[1].left, TcpSeq(0xfffffff0));
  EXPECT_EQ(o.sack[1].right, TcpSeq(16));
  ASSERT_EQ(o.other_count, 1);
  EXPECT_EQ(o.other[0].kind, 253);
  EXPECT_EQ(o.other[0].length, 4);
  EXPECT_EQ(hex(v.payload()), hex(text("hello")));
}

TEST(BuilderTcp, OptionsPastFortyBytesFailWithOptionsTooLong) {
  PacketBuilder b;
  b.ipv4(kClient4, kServer4).tcp(1, 2).timestamps(1, 2).timestamps(3, 4).timestamps(5, 6);
  EXPECT_EQ(b.error(), BuildError::None);  // 30 bytes
  b.timestamps(7, 8);                      // 40 bytes: still fits
  EXPECT_EQ(b.error(), BuildError::None);
  b.nop();
  EXPECT_EQ(b.error(), BuildError::OptionsTooLong);
  EXPECT_TRUE(b.build().empty());
}

TEST(BuilderTcp, OptionsAddedAfterThePayloadMoveThePayload) {
  Packet p = PacketBuilder()
                 .ipv4(kClient4, kServer4)
                 .tcp(1, 2)
                 .flags(tcp_flag::kAck)
                 .payload("data")
                 .timestamps(10, 20)
                 .build();
  PacketView v = decoded(p);
  EXPECT_EQ(v.tcp()->header_len(), 32u);
  EXPECT_EQ(v.tcp()->options().timestamps->value, 10u);
  EXPECT_EQ(hex(v.payload()), hex(text("data")));
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderIpv4, FieldsFlagsAndOptionsRoundTrip) {
  // Router alert (RFC 2113) is 4 bytes; a 3-byte option gets one EOL octet of padding.
  std::byte opts[] = {std::byte{0x94}, std::byte{0x04}, std::byte{0},   std::byte{0},
                      std::byte{0x44}, std::byte{0x03}, std::byte{0x05}};
  Packet p = PacketBuilder()
                 .ipv4(kClient4, kServer4)
                 .tos(0xb8)
                 .ttl(3)
                 .ip_id(0xbeef)
                 .more_fragments()
                 .fragment_offset(0)
                 .ip_options(opts)
                 .udp(5000, 6000)
                 .payload("x")
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok()) << drop_reason_name(v.error());
  auto h = v.ipv4();
  EXPECT_EQ(h->ihl(), 7);
  EXPECT_EQ(h->tos(), 0xb8);
  EXPECT_EQ(h->ttl(), 3);
  EXPECT_EQ(h->id(), 0xbeef);
  EXPECT_TRUE(h->more_fragments());
  EXPECT_FALSE(h->dont_fragment());
  EXPECT_EQ(hex(h->options()),
            "94040000440305"
            "00");
  EXPECT_TRUE(h->header_checksum_ok());
  EXPECT_EQ(v.ip_checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(h->total_length(), 28 + 8 + 1);
  EXPECT_TRUE(v.fragment().is_fragment);
}

TEST(BuilderIpv4, OptionsCanBeReplacedAfterTheTransport) {
  std::byte long_opts[8] = {std::byte{1}, std::byte{1}, std::byte{1}, std::byte{1},
                            std::byte{1}, std::byte{1}, std::byte{1}, std::byte{0}};
  std::byte short_opts[1] = {std::byte{1}};
  Packet p = PacketBuilder()
                 .ipv4(kClient4, kServer4)
                 .ip_options(long_opts)
                 .tcp(1, 2)
                 .payload("abc")
                 .ip_options(short_opts)
                 .build();
  PacketView v = decoded(p);
  EXPECT_EQ(v.ipv4()->ihl(), 6);
  EXPECT_EQ(hex(v.ipv4()->options()), "01000000");
  EXPECT_EQ(v.tcp()->src_port(), 1);
  EXPECT_EQ(hex(v.payload()), hex(text("abc")));
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderIpv4, FragmentOffsetLeavesOnlyDataAndAValidHeaderChecksum) {
  Packet p = PacketBuilder()
                 .ipv4(kClient4, kServer4)
                 .fragment_offset(185)
                 .ip_protocol(ip_proto::kUdp)
                 .payload(pattern(17))
                 .build();
  PacketView v = decoded(p);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.fragment().offset_bytes, 1480u);
  EXPECT_FALSE(v.udp());
  EXPECT_EQ(v.l4_proto(), ip_proto::kUdp);
  EXPECT_EQ(v.ip_checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.payload_len(), 17u);
}

// RFC 791 3.1 / RFC 9293 3.1: with a source route, the pseudo-header carries the final
// destination (the last address of the route), not the next hop in the header.
TEST(BuilderIpv4, LooseSourceRouteChecksumUsesTheFinalDestination) {
  std::byte lsrr[] = {std::byte{131}, std::byte{11},  std::byte{4}, std::byte{203},
                      std::byte{0},   std::byte{113}, std::byte{1}, std::byte{198},
                      std::byte{51},  std::byte{100}, std::byte{99}};
  Packet p = PacketBuilder()
                 .ipv4(kClient4, ip("203.0.113.1"))
                 .ip_options(lsrr)
                 .tcp(1, 2)
                 .flags(tcp_flag::kSyn)
                 .build();
  PacketView v = decoded(p);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  // Recompute by hand with the final destination.
  auto t = v.tcp();
  std::byte final_dst[4] = {std::byte{198}, std::byte{51}, std::byte{100}, std::byte{99}};
  uint32_t s = pseudo_header_sum_v4(v.ipv4()->src_bytes(), final_dst, 6, 20);
  EXPECT_EQ(checksum_finish(checksum_add(t->header(), s)), 0);
}

TEST(BuilderIpv6, FieldsRoundTrip) {
  Packet p = PacketBuilder()
                 .ethernet(kClientMac, kServerMac)
                 .ipv6(kClient6, kServer6)
                 .traffic_class(0x2e)
                 .flow_label(0xabcde)
                 .hop_limit(255)
                 .udp(53000, 5353)
                 .payload(pattern(33))
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.ethernet()->ether_type(), ether_type::kIpv6);
  auto h = v.ipv6();
  EXPECT_EQ(h->traffic_class(), 0x2e);
  EXPECT_EQ(h->flow_label(), 0xabcdeu);
  EXPECT_EQ(h->hop_limit(), 255);
  EXPECT_EQ(h->payload_length(), 8 + 33);
  EXPECT_EQ(h->next_header(), ip_proto::kUdp);
  EXPECT_EQ(v.udp()->length(), 8 + 33);
}

TEST(BuilderIpv6, ExtensionHeadersChainPadAndRouteTheChecksum) {
  std::byte router_alert[] = {std::byte{5}, std::byte{2}, std::byte{0}, std::byte{0}};
  IpAddr segs[] = {ip("2001:db8:2::1"), ip("2001:db8:3::1")};
  Packet p = PacketBuilder()
                 .ipv6(kClient6, kServer6)
                 .ipv6_hop_by_hop(router_alert)
                 .ipv6_routing(0, 2, segs)
                 .ipv6_dest_opts()
                 .tcp(1, 2)
                 .flags(tcp_flag::kSyn)
                 .payload("z")
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok()) << drop_reason_name(v.error());
  std::vector<LayerKind> kinds;
  for (const Layer& l : v.layers())
    kinds.push_back(l.kind);
  EXPECT_EQ(kinds, (std::vector<LayerKind>{LayerKind::Ipv6, LayerKind::Ipv6HopByHop,
                                           LayerKind::Ipv6Routing, LayerKind::Ipv6DestOpts,
                                           LayerKind::Tcp}));
  EXPECT_EQ(v.find(LayerKind::Ipv6HopByHop)->length, 8);
  EXPECT_EQ(v.find(LayerKind::Ipv6Routing)->length, 40);
  EXPECT_EQ(v.find(LayerKind::Ipv6DestOpts)->length, 8);
  // RFC 8200 4.2: PadN fills the 2 bytes after the router alert option.
  EXPECT_EQ(hex(v.layer_bytes(*v.find(LayerKind::Ipv6HopByHop))), "2b00050200000100");
  EXPECT_EQ(v.l4_proto(), ip_proto::kTcp);
  EXPECT_EQ(v.ipv6()->payload_length(), 8 + 40 + 8 + 20 + 1);
  // The decoder uses the last routing address (RFC 8200 8.1): Ok means we did too.
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderIpv6, FragmentHeaderMakesAFragment) {
  Packet p = PacketBuilder()
                 .ipv6(kClient6, kServer6)
                 .ipv6_fragment(0, true, 0x12345678)
                 .udp(1, 2)
                 .payload(pattern(16))
                 .build();
  PacketView v = decoded(p);
  EXPECT_TRUE(v.ok());
  EXPECT_TRUE(v.fragment().more_fragments);
  EXPECT_EQ(v.fragment().id, 0x12345678u);
  EXPECT_EQ(v.l4_proto(), ip_proto::kUdp);
}

// RFC 768: a computed UDP checksum of 0 is sent as all ones (0 would mean "none"). The payload
// word is chosen so the one's-complement sum comes out as exactly 0xffff.
TEST(BuilderUdp, ComputedZeroChecksumIsSentAsAllOnes) {
  for (bool v6 : {false, true}) {
    auto build = [&](uint16_t word) {
      std::byte pl[2];
      store_be16(pl, word);
      PacketBuilder b;
      if (v6)
        b.ipv6(kClient6, kServer6);
      else
        b.ipv4(kClient4, kServer4);
      return b.udp(1234, 5678).payload(Bytes(pl, 2)).build();
    };
    Packet first = build(0);
    uint16_t c = decoded(first).udp()->checksum();
    ASSERT_NE(c, 0xffff);
    Packet p = build(c);  // adds ~sum to the sum: the total becomes 0xffff
    PacketView v = decoded(p);
    EXPECT_EQ(v.udp()->checksum(), 0xffff) << (v6 ? "IPv6" : "IPv4");
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  }
}

TEST(BuilderUdp, NoChecksumOverIpv4SendsZero) {
  Packet p =
      PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).no_udp_checksum().payload("a").build();
  PacketView v = decoded(p);
  EXPECT_EQ(v.udp()->checksum(), 0);
  EXPECT_EQ(v.l4_checksum_status(), ChecksumStatus::Unverified);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);  // the IPv4 header is
}

TEST(BuilderIcmp, EchoRequestAndReplyCarryIdSequenceAndChecksum) {
  for (bool reply : {false, true}) {
    PacketBuilder b;
    b.ipv4(kClient4, kServer4);
    if (reply)
      b.icmp_echo_reply(0x1234, 7);
    else
      b.icmp_echo_request(0x1234, 7);
    Packet p = b.payload(pattern(31)).build();
    PacketView v = decoded(p);
    auto ic = v.icmp();
    ASSERT_TRUE(ic);
    EXPECT_EQ(ic->type(), reply ? icmp_type::kEchoReply : icmp_type::kEchoRequest);
    EXPECT_EQ(ic->echo_id(), 0x1234);
    EXPECT_EQ(ic->echo_seq(), 7);
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
    // RFC 792: no pseudo-header.
    EXPECT_EQ(checksum_finish(checksum_add(v.ipv4()->payload())), 0);
  }
}

TEST(BuilderIcmp, ErrorQuotesTheInvokingDatagramWithin576Bytes) {
  Packet big = PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).payload(pattern(1000)).build();
  Packet small = PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).payload("q").build();
  for (const Packet* inv : {&big, &small}) {
    Packet p = PacketBuilder()
                   .ipv4(kServer4, kClient4)
                   .icmp_error(icmp_type::kDestUnreachable, 4, inv->data(), 1400)
                   .build();
    PacketView v = decoded(p);
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
    auto ic = v.icmp();
    EXPECT_EQ(ic->next_hop_mtu(), 1400);
    size_t quoted = std::min<size_t>(inv->size(), 576 - 28);
    EXPECT_EQ(p.size(), 28 + quoted);
    EXPECT_EQ(hex(ic->quoted()), hex(inv->data().first(quoted)));
  }
}

TEST(BuilderIcmpv6, EchoChecksumCoversThePseudoHeader) {
  Packet p = PacketBuilder()
                 .ipv6(kClient6, kServer6)
                 .icmpv6_echo_request(9, 10)
                 .payload(pattern(5))
                 .build();
  PacketView v = decoded(p);
  auto ic = v.icmpv6();
  ASSERT_TRUE(ic);
  EXPECT_EQ(ic->type(), icmpv6_type::kEchoRequest);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  // RFC 4443 2.3: without the pseudo-header the sum does not verify.
  EXPECT_NE(checksum_finish(checksum_add(v.ipv6()->payload())), 0);
}

TEST(BuilderIcmpv6, ErrorIsCutToTheMinimumMtu) {
  Packet big = PacketBuilder().ipv6(kClient6, kServer6).udp(1, 2).payload(pattern(3000)).build();
  Packet p = PacketBuilder()
                 .ipv6(kServer6, kClient6)
                 .icmpv6_error(icmpv6_type::kPacketTooBig, 0, big.data(), 1280)
                 .build();
  EXPECT_EQ(p.size(), 1280u);
  PacketView v = decoded(p);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.icmpv6()->mtu(), 1280u);
}

TEST(BuilderIcmp, IcmpOverIpv6IsAnAddressFamilyError) {
  PacketBuilder b;
  b.ipv6(kClient6, kServer6).icmp_echo_request(1, 1);
  EXPECT_EQ(b.error(), BuildError::AddressFamily);
}

TEST(BuilderArp, RequestAndReplyDecode) {
  Packet req = PacketBuilder()
                   .ethernet(kClientMac, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                   .arp_request(kClientMac, kClient4, kServer4)
                   .pad_to(60)
                   .build();
  EXPECT_EQ(req.size(), 60u);
  PacketView v = decoded(req);
  ASSERT_TRUE(v.ok());
  auto a = v.arp();
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_ether_ipv4());
  EXPECT_EQ(a->op(), ArpView::kRequest);
  EXPECT_EQ(a->sender_mac(), kClientMac);
  EXPECT_EQ(a->sender_ip(), kClient4);
  EXPECT_EQ(a->target_mac(), MacAddr{});
  EXPECT_EQ(a->target_ip(), kServer4);
  Packet rep = PacketBuilder()
                   .ethernet(kServerMac, kClientMac)
                   .arp_reply(kServerMac, kServer4, kClientMac, kClient4)
                   .build();
  EXPECT_EQ(decoded(rep).arp()->op(), ArpView::kReply);
  EXPECT_EQ(decoded(rep).arp()->target_mac(), kClientMac);
}

TEST(BuilderEthernet, VlanTagsStackOuterFirst) {
  Packet p = PacketBuilder()
                 .ethernet(kClientMac, kServerMac)
                 .vlan(200, 0, ether_type::kQinq)
                 .vlan(100, 5, ether_type::kVlan, true)
                 .ipv4(kClient4, kServer4)
                 .udp(1, 2)
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v.vlan_ids().size(), 2u);
  EXPECT_EQ(v.vlan_ids()[0], 200);
  EXPECT_EQ(v.vlan_ids()[1], 100);
  EXPECT_EQ(v.layers()[1].kind, LayerKind::Dot1ad);
  EXPECT_EQ(v.ethernet()->ether_type(), ether_type::kQinq);
  auto inner = VlanView::parse(v.layer_bytes(v.layers()[2]));
  EXPECT_EQ(inner->pcp(), 5);
  EXPECT_TRUE(inner->dei());
  EXPECT_EQ(inner->ether_type(), ether_type::kIpv4);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderEthernet, PadToPadsOutsideTheDatagram) {
  Packet p = PacketBuilder()
                 .ethernet(kClientMac, kServerMac)
                 .ipv4(kClient4, kServer4)
                 .tcp(1, 2)
                 .flags(tcp_flag::kRst)
                 .pad_to(60)
                 .build();
  EXPECT_EQ(p.size(), 60u);
  EXPECT_EQ(hex(p.data().subspan(54)), "000000000000");
  PacketView v = decoded(p);
  EXPECT_EQ(v.ip_total_len(), 40u);
  EXPECT_EQ(v.payload().size(), 0u);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderLink, PacketStartingAtIpHasRawLinkAndKeepsOtherMeta) {
  PacketMeta meta;
  meta.ingress = 7;
  meta.direction = Direction::Outbound;
  Packet p = PacketBuilder().ipv6(kClient6, kServer6).udp(1, 2).build(meta);
  EXPECT_EQ(p.meta().link, LinkType::Raw);
  EXPECT_EQ(p.meta().ingress, 7u);
  EXPECT_EQ(p.meta().direction, Direction::Outbound);
  EXPECT_EQ(p.meta().wire_len, 48u);
  EXPECT_TRUE(decoded(p).ok());
}

TEST(BuilderTunnel, IpInIpSetsOuterProtocolAndBothLengths) {
  Packet p = PacketBuilder()
                 .ipv4(ip("203.0.113.1"), ip("203.0.113.2"))
                 .ipv6(kClient6, kServer6)
                 .tcp(1, 2)
                 .flags(tcp_flag::kAck)
                 .payload("tunnelled")
                 .build();
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.tunnel_depth(), 1);
  ASSERT_EQ(v.ip_layers().size(), 2u);
  EXPECT_EQ(v.ip_layers()[0].proto, ip_proto::kIpv6);
  EXPECT_EQ(v.ip_layers()[0].total_len, p.size());
  EXPECT_EQ(v.ip_layers()[1].total_len, p.size() - 20);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderBuffer, BuilderIsReusableAfterBuild) {
  PacketBuilder b(16, 0);  // tiny: every layer grows the buffer
  Packet a =
      b.ethernet(kClientMac, kServerMac).ipv4(kClient4, kServer4).udp(1, 2).payload("1").build();
  Packet c = b.ipv6(kClient6, kServer6).udp(3, 4).payload(pattern(500)).build();
  EXPECT_EQ(decoded(a).checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(a.meta().link, LinkType::Ethernet);
  EXPECT_EQ(decoded(c).checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(c.meta().link, LinkType::Raw);
  EXPECT_EQ(decoded(c).payload_len(), 500u);
}

// The bytes past a shortened payload are zero again: padding added later shows no stale data.
TEST(BuilderBuffer, ReplacingThePayloadWithAShorterOneLeavesNoStaleBytes) {
  Packet p = PacketBuilder()
                 .ethernet(kClientMac, kServerMac)
                 .ipv4(kClient4, kServer4)
                 .tcp(1, 2)
                 .flags(tcp_flag::kAck)
                 .payload(pattern(40, 0x80))
                 .payload("ab")
                 .mss(1460)
                 .pad_to(80)
                 .build();
  ASSERT_EQ(p.size(), 80u);
  PacketView v = decoded(p);
  EXPECT_EQ(hex(v.payload()), hex(text("ab")));
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  size_t end = 14 + v.ip_total_len();
  EXPECT_EQ(hex(p.data().subspan(end)), std::string(2 * (80 - end), '0'));
}

struct MisuseCase {
  const char* name;
  std::function<void(PacketBuilder&)> steps;
  BuildError want;
};

TEST(BuilderErrors, EveryMisuseIsNamedAndBuildsNothing) {
  const std::vector<MisuseCase> cases = {
      {"nothing", [](PacketBuilder&) {}, BuildError::Empty},
      {"payload only", [](PacketBuilder& b) { b.payload("x"); }, BuildError::Empty},
      {"tcp without ip", [](PacketBuilder& b) { b.tcp(1, 2); }, BuildError::LayerOrder},
      {"ethernet twice",
       [](PacketBuilder& b) {
         b.ethernet(kClientMac, kServerMac).ethernet(kClientMac, kServerMac);
       },
       BuildError::LayerOrder},
      {"vlan after ip",
       [](PacketBuilder& b) {
         b.ethernet(kClientMac, kServerMac).ipv4(kClient4, kServer4).vlan(1);
       },
       BuildError::LayerOrder},
      {"vlan without ethernet", [](PacketBuilder& b) { b.vlan(1); }, BuildError::LayerOrder},
      {"arp without ethernet",
       [](PacketBuilder& b) { b.arp_request(kClientMac, kClient4, kServer4); },
       BuildError::LayerOrder},
      {"ip after tcp",
       [](PacketBuilder& b) { b.ipv4(kClient4, kServer4).tcp(1, 2).ipv4(kClient4, kServer4); },
       BuildError::LayerOrder},
      {"udp after payload",
       [](PacketBuilder& b) { b.ipv4(kClient4, kServer4).payload("x").udp(1, 2); },
       BuildError::LayerOrder},
      {"ipv6 extension after tcp",
       [](PacketBuilder& b) { b.ipv6(kClient6, kServer6).tcp(1, 2).ipv6_dest_opts(); },
       BuildError::LayerOrder},
      {"seq without tcp",
       [](PacketBuilder& b) { b.ipv4(kClient4, kServer4).udp(1, 2).seq(TcpSeq(1)); },
       BuildError::MissingLayer},
      {"ttl without ip", [](PacketBuilder& b) { b.ethernet(kClientMac, kServerMac).ttl(1); },
       BuildError::MissingLayer},
      {"ip id on ipv6", [](PacketBuilder& b) { b.ipv6(kClient6, kServer6).ip_id(1); },
       BuildError::MissingLayer},
      {"flow label on ipv4", [](PacketBuilder& b) { b.ipv4(kClient4, kServer4).flow_label(1); },
       BuildError::MissingLayer},
      {"ipv4 with ipv6 addresses", [](PacketBuilder& b) { b.ipv4(kClient6, kServer6); },
       BuildError::AddressFamily},
      {"icmpv6 over ipv4",
       [](PacketBuilder& b) { b.ipv4(kClient4, kServer4).icmpv6_echo_request(1, 1); },
       BuildError::AddressFamily},
      {"ip options past 40 bytes",
       [](PacketBuilder& b) {
         std::vector<std::byte> o(41, std::byte{1});
         b.ipv4(kClient4, kServer4).ip_options(o);
       },
       BuildError::OptionsTooLong},
      {"five sack blocks",
       [](PacketBuilder& b) {
         std::vector<TcpSackBlock> s(5);
         b.ipv4(kClient4, kServer4).tcp(1, 2).sack(s);
       },
       BuildError::OptionsTooLong},
      {"ipv4 datagram past 65535",
       [](PacketBuilder& b) {
         b.ipv4(kClient4, kServer4).udp(1, 2).payload(pattern(65535 - 28 + 1));
       },
       BuildError::TooLong},
      {"ipv6 udp past 65535",
       [](PacketBuilder& b) {
         b.ipv6(kClient6, kServer6).udp(1, 2).payload(pattern(65535 - 8 + 1));
       },
       BuildError::TooLong},
  };
  for (const MisuseCase& c : cases) {
    PacketBuilder b;
    c.steps(b);
    Packet p = b.build();
    EXPECT_TRUE(p.empty()) << c.name;
    EXPECT_EQ(b.error(), c.want) << c.name << ": got " << build_error_name(b.error());
  }
  // The largest datagram that fits is fine.
  Packet max =
      PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).payload(pattern(65535 - 28)).build();
  EXPECT_EQ(max.size(), 65535u);
  EXPECT_EQ(decoded(max).checksum_status(), ChecksumStatus::Ok);
}

// Every link x IP x transport x payload-length combination decodes to what was built, with
// every checksum valid.
TEST(BuilderRoundTrip, EveryLayerCombinationDecodesWithValidChecksums) {
  enum class Link { Raw, Eth, Vlan, QinQ };
  enum class Ip { V4, V4Options, V6, V6Ext };
  enum class L4 { None, Tcp, TcpOptions, Udp, Echo };
  int combos = 0;
  for (Link link : {Link::Raw, Link::Eth, Link::Vlan, Link::QinQ}) {
    for (Ip ipk : {Ip::V4, Ip::V4Options, Ip::V6, Ip::V6Ext}) {
      for (L4 l4 : {L4::None, L4::Tcp, L4::TcpOptions, L4::Udp, L4::Echo}) {
        for (size_t len : {0, 1, 2, 7, 64, 1459}) {
          SCOPED_TRACE(::testing::Message() << "link " << int(link) << " ip " << int(ipk) << " l4 "
                                            << int(l4) << " len " << len);
          bool v6 = ipk == Ip::V6 || ipk == Ip::V6Ext;
          PacketBuilder b;
          if (link != Link::Raw) b.ethernet(kClientMac, kServerMac);
          if (link == Link::QinQ) b.vlan(300, 1, ether_type::kQinq);
          if (link == Link::Vlan || link == Link::QinQ) b.vlan(42, 3);
          if (v6)
            b.ipv6(kClient6, kServer6);
          else
            b.ipv4(kClient4, kServer4);
          std::byte nops[2] = {std::byte{1}, std::byte{1}};
          if (ipk == Ip::V4Options) b.ip_options(nops);
          if (ipk == Ip::V6Ext) b.ipv6_hop_by_hop().ipv6_dest_opts(nops);
          switch (l4) {
            case L4::None:
              b.ip_protocol(253);
              break;
            case L4::Tcp:
              b.tcp(1025, 80).seq(TcpSeq(uint32_t(len))).flags(tcp_flag::kAck);
              break;
            case L4::TcpOptions:
              b.tcp(1025, 80).flags(tcp_flag::kSyn).mss(1400).wscale(2).sack_permitted();
              break;
            case L4::Udp:
              b.udp(1025, 53);
              break;
            case L4::Echo:
              if (v6)
                b.icmpv6_echo_request(1, 2);
              else
                b.icmp_echo_request(1, 2);
              break;
          }
          auto data = pattern(len, uint8_t(len));
          Packet p = b.payload(data).build();
          ASSERT_FALSE(p.empty()) << build_error_name(b.error());
          PacketView v = decoded(p);
          ASSERT_TRUE(v.ok()) << drop_reason_name(v.error());
          EXPECT_EQ(v.ip_version(), v6 ? 6 : 4);
          EXPECT_EQ(v.ip_total_len(), p.size() - (link == Link::Raw    ? 0
                                                  : link == Link::Eth  ? 14
                                                  : link == Link::Vlan ? 18
                                                                       : 22));
          EXPECT_EQ(v.vlan_ids().size(), link == Link::QinQ ? 2u : link == Link::Vlan ? 1u : 0u);
          if (l4 == L4::Tcp || l4 == L4::TcpOptions) {
            ASSERT_TRUE(v.tcp());
            EXPECT_EQ(hex(v.payload()), hex(data));
          } else if (l4 == L4::Udp) {
            ASSERT_TRUE(v.udp());
            EXPECT_EQ(v.udp()->length(), 8 + len);
            EXPECT_EQ(hex(v.payload()), hex(data));
          } else if (l4 == L4::Echo) {
            EXPECT_TRUE(v6 ? bool(v.icmpv6()) : bool(v.icmp()));
          } else {
            EXPECT_EQ(v.l4_proto(), 253);
            EXPECT_EQ(hex(v.payload()), hex(data));
          }
          // IPv6 with no transport has nothing to verify.
          EXPECT_EQ(v.checksum_status(),
                    v6 && l4 == L4::None ? ChecksumStatus::Unverified : ChecksumStatus::Ok);
          ++combos;
        }
      }
    }
  }
  EXPECT_EQ(combos, 4 * 4 * 5 * 6);
}

// =============================================================================================
// Derived from an existing packet
// =============================================================================================

Packet tcp_segment(uint8_t flags, TcpSeq seq, TcpSeq ack, size_t len, bool vlan = false) {
  PacketBuilder b;
  b.ethernet(kClientMac, kServerMac);
  if (vlan) b.vlan(10, 2);
  return b.ipv4(kClient4, kServer4)
      .tcp(40000, 443)
      .seq(seq)
      .ack(ack)
      .flags(flags)
      .payload(pattern(len))
      .build();
}

TEST(BuilderReply, TcpReplySwapsEndpointsAndAcknowledgesPayloadPlusSynAndFin) {
  struct Case {
    const char* name;
    uint8_t flags;
    uint32_t seq, ack;
    size_t len;
    uint32_t want_seq, want_ack;
  };
  const Case cases[] = {
      // RFC 9293 3.10.7.1: no ACK in the original: seq 0.
      {"syn", tcp_flag::kSyn, 1000, 0, 0, 0, 1001},
      {"data", tcp_flag::kAck | tcp_flag::kPsh, 5000, 9000, 100, 9000, 5100},
      {"fin with data", tcp_flag::kAck | tcp_flag::kFin, 7000, 300, 10, 300, 7011},
      {"wraps", tcp_flag::kAck, 0xffffffff, 1, 2, 1, 1},
  };
  for (const Case& c : cases) {
    Packet orig = tcp_segment(c.flags, TcpSeq(c.seq), TcpSeq(c.ack), c.len, true);
    auto r = make_reply(orig, tcp_flag::kAck);
    ASSERT_TRUE(r) << c.name;
    PacketView v = decoded(*r);
    ASSERT_TRUE(v.ok()) << c.name;
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok) << c.name;
    EXPECT_EQ(v.ethernet()->src(), kServerMac);
    EXPECT_EQ(v.ethernet()->dst(), kClientMac);
    ASSERT_EQ(v.vlan_ids().size(), 1u);
    EXPECT_EQ(v.vlan_ids()[0], 10);
    EXPECT_EQ(v.src_addr(), kServer4);
    EXPECT_EQ(v.dst_addr(), kClient4);
    EXPECT_EQ(v.src_port(), 443);
    EXPECT_EQ(v.dst_port(), 40000);
    EXPECT_EQ(v.tcp()->seq(), TcpSeq(c.want_seq)) << c.name;
    EXPECT_EQ(v.tcp()->ack(), TcpSeq(c.want_ack)) << c.name;
    EXPECT_EQ(v.tcp()->flags(), tcp_flag::kAck);
    EXPECT_EQ(v.payload_len(), 0u);
  }
}

TEST(BuilderReply, ReplyBuilderTakesMoreSettersForASynAck) {
  Packet syn = linux_syn();
  auto b = reply_builder(syn);
  ASSERT_TRUE(b);
  Packet synack = b->seq(TcpSeq(5000))
                      .flags(tcp_flag::kSyn | tcp_flag::kAck)
                      .window(65160)
                      .mss(1400)
                      .sack_permitted()
                      .timestamps(77, 1)
                      .nop()
                      .wscale(9)
                      .build();
  PacketView v = decoded(synack);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.tcp()->seq(), TcpSeq(5000));
  EXPECT_EQ(v.tcp()->ack(), TcpSeq(1001));
  EXPECT_EQ(v.tcp()->options().mss, 1400);
  EXPECT_EQ(v.tcp()->options().timestamps->echo, 1u);
}

TEST(BuilderReply, UdpReplyOverIpv6SwapsPortsAndCarriesThePayload) {
  Packet q = PacketBuilder().ipv6(kClient6, kServer6).udp(53001, 53).payload("query").build();
  auto r = make_reply(q, 0, text("answer!"));
  ASSERT_TRUE(r);
  PacketView v = decoded(*r);
  EXPECT_EQ(r->meta().link, LinkType::Raw);
  EXPECT_EQ(v.src_addr(), kServer6);
  EXPECT_EQ(v.src_port(), 53);
  EXPECT_EQ(v.dst_port(), 53001);
  EXPECT_EQ(hex(v.payload()), hex(text("answer!")));
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderReply, EchoRequestGetsAnEchoReplyWithTheSameIdSequenceAndData) {
  Packet q4 = PacketBuilder()
                  .ethernet(kClientMac, kServerMac)
                  .ipv4(kClient4, kServer4)
                  .icmp_echo_request(77, 3)
                  .payload(pattern(56))
                  .build();
  Packet q6 =
      PacketBuilder().ipv6(kClient6, kServer6).icmpv6_echo_request(78, 4).payload("ping").build();
  auto r4 = make_reply(q4);
  auto r6 = make_reply(q6);
  ASSERT_TRUE(r4 && r6);
  PacketView v4 = decoded(*r4), v6 = decoded(*r6);
  EXPECT_EQ(v4.icmp()->type(), icmp_type::kEchoReply);
  EXPECT_EQ(v4.icmp()->echo_id(), 77);
  EXPECT_EQ(v4.icmp()->echo_seq(), 3);
  EXPECT_EQ(hex(v4.icmp()->payload()), hex(pattern(56)));
  EXPECT_EQ(v4.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v6.icmpv6()->type(), icmpv6_type::kEchoReply);
  EXPECT_EQ(v6.icmpv6()->echo_id(), 78);
  EXPECT_EQ(hex(v6.icmpv6()->payload()), hex(text("ping")));
  EXPECT_EQ(v6.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderReply, PacketsThatCannotBeMirroredHaveNoReply) {
  Packet arp = PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .arp_request(kClientMac, kClient4, kServer4)
                   .build();
  Packet tunnel =
      PacketBuilder().ipv4(kClient4, kServer4).ipv4(kClient4, kServer4).udp(1, 2).build();
  Packet later_fragment = PacketBuilder()
                              .ipv4(kClient4, kServer4)
                              .fragment_offset(10)
                              .ip_protocol(6)
                              .payload("x")
                              .build();
  EXPECT_FALSE(reply_builder(arp));
  EXPECT_FALSE(reply_builder(tunnel));
  EXPECT_FALSE(reply_builder(later_fragment));
  EXPECT_FALSE(make_reply(Packet::copy_of(text("garbage"))));
}

TEST(BuilderArpReply, AnswersTheRequestedAddressToTheRequester) {
  Packet req = PacketBuilder()
                   .ethernet(kClientMac, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                   .vlan(5)
                   .arp_request(kClientMac, kClient4, kServer4)
                   .build();
  const MacAddr answer = mac(0x99);
  auto r = make_arp_reply(req, answer);
  ASSERT_TRUE(r);
  PacketView v = decoded(*r);
  EXPECT_EQ(v.ethernet()->src(), answer);
  EXPECT_EQ(v.ethernet()->dst(), kClientMac);
  EXPECT_EQ(v.vlan_ids()[0], 5);
  auto a = v.arp();
  EXPECT_EQ(a->op(), ArpView::kReply);
  EXPECT_EQ(a->sender_mac(), answer);
  EXPECT_EQ(a->sender_ip(), kServer4);
  EXPECT_EQ(a->target_mac(), kClientMac);
  EXPECT_EQ(a->target_ip(), kClient4);
  EXPECT_FALSE(make_arp_reply(*r, answer));  // a reply is not a request
}

TEST(BuilderIcmpError, PortUnreachableQuotesTheOffendingDatagramFromItsDestination) {
  Packet udp = PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .ipv4(kClient4, kServer4)
                   .udp(40000, 9)
                   .payload(pattern(20))
                   .pad_to(80)
                   .build();
  auto e = make_icmp_error(udp, icmp_type::kDestUnreachable, 3);
  ASSERT_TRUE(e);
  PacketView v = decoded(*e);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.src_addr(), kServer4);
  EXPECT_EQ(v.dst_addr(), kClient4);
  EXPECT_EQ(v.ethernet()->dst(), kClientMac);
  auto ic = v.icmp();
  EXPECT_EQ(ic->type(), icmp_type::kDestUnreachable);
  EXPECT_EQ(ic->code(), 3);
  // The IP datagram, without the Ethernet padding.
  EXPECT_EQ(hex(ic->quoted()), hex(udp.data().subspan(14, 20 + 8 + 20)));
  auto inner = PacketView::decode(LinkType::Raw, ic->quoted(), uint32_t(ic->quoted().size()));
  EXPECT_EQ(inner.dst_port(), 9);

  Packet v6 = PacketBuilder().ipv6(kClient6, kServer6).tcp(1, 2).flags(tcp_flag::kSyn).build();
  auto e6 = make_icmp_error(v6, icmpv6_type::kDestUnreachable, 4);
  ASSERT_TRUE(e6);
  PacketView w = decoded(*e6);
  EXPECT_EQ(w.icmpv6()->type(), icmpv6_type::kDestUnreachable);
  EXPECT_EQ(w.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(hex(w.icmpv6()->quoted()), hex(v6.data()));
}

TEST(BuilderIcmpError, NeverAboutAnErrorAFragmentOrABroadcast) {
  Packet err = *make_icmp_error(PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).build(), 3, 3);
  Packet frag = PacketBuilder()
                    .ipv4(kClient4, kServer4)
                    .fragment_offset(1)
                    .ip_protocol(17)
                    .payload("x")
                    .build();
  Packet bcast = PacketBuilder().ipv4(kClient4, ip("255.255.255.255")).udp(68, 67).build();
  Packet mcast6 = PacketBuilder().ipv6(kClient6, ip("ff02::1")).udp(1, 2).build();
  Packet eth_bcast = PacketBuilder()
                         .ethernet(kClientMac, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                         .ipv4(kClient4, kServer4)
                         .udp(1, 2)
                         .build();
  Packet unspecified = PacketBuilder().ipv4(ip("0.0.0.0"), kServer4).udp(68, 67).build();
  Packet err6 =
      PacketBuilder().ipv6(kServer6, kClient6).icmpv6(icmpv6_type::kTimeExceeded, 0).build();
  for (const Packet* p : {&err, &frag, &bcast, &mcast6, &eth_bcast, &unspecified, &err6})
    EXPECT_FALSE(make_icmp_error(*p, 3, 1));
  // An echo request is not an error: it may be answered with one.
  Packet echo = PacketBuilder().ipv4(kClient4, kServer4).icmp_echo_request(1, 1).build();
  EXPECT_TRUE(make_icmp_error(echo, icmp_type::kTimeExceeded, 0));
}

TEST(BuilderWithPayload, ReplacesThePayloadAndFixesEveryLengthAndChecksum) {
  struct Case {
    const char* name;
    Packet pkt;
  };
  std::vector<Case> cases;
  cases.push_back({"tcp v4 vlan",
                   tcp_segment(tcp_flag::kAck | tcp_flag::kPsh, TcpSeq(1), TcpSeq(2), 100, true)});
  cases.push_back({"tcp v6 ext", PacketBuilder()
                                     .ethernet(kClientMac, kServerMac)
                                     .ipv6(kClient6, kServer6)
                                     .ipv6_dest_opts()
                                     .tcp(1, 2)
                                     .timestamps(5, 6)
                                     .payload("old")
                                     .build()});
  cases.push_back(
      {"udp v6", PacketBuilder().ipv6(kClient6, kServer6).udp(1, 2).payload(pattern(9)).build()});
  cases.push_back({"icmp echo", PacketBuilder()
                                    .ipv4(kClient4, kServer4)
                                    .icmp_echo_request(1, 2)
                                    .payload(pattern(64))
                                    .build()});
  cases.push_back({"icmpv6 echo", PacketBuilder()
                                      .ipv6(kClient6, kServer6)
                                      .icmpv6_echo_reply(1, 2)
                                      .payload(pattern(3))
                                      .build()});
  for (Case& c : cases) {
    for (size_t len : {0, 1, 3, 100, 1001}) {
      SCOPED_TRACE(::testing::Message() << c.name << " len " << len);
      PacketView before = decoded(c.pkt);
      uint32_t hdr = uint32_t(c.pkt.size());
      if (auto t = before.tcp()) hdr = off_of(before, t->payload());
      if (auto u = before.udp()) hdr = off_of(before, u->payload());
      if (auto i = before.icmp()) hdr = off_of(before, i->payload());
      if (auto i = before.icmpv6()) hdr = off_of(before, i->payload());
      auto data = pattern(len, 0x40);
      auto p = with_payload(c.pkt, data);
      ASSERT_TRUE(p);
      EXPECT_EQ(p->size(), hdr + len);
      EXPECT_EQ(p->meta().wire_len, p->size());
      EXPECT_EQ(p->meta().link, c.pkt.meta().link);
      PacketView v = decoded(*p);
      ASSERT_TRUE(v.ok()) << drop_reason_name(v.error());
      EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
      EXPECT_EQ(hex(p->data().subspan(hdr)), hex(data));
      EXPECT_EQ(v.ip_total_len(), p->size() - v.ip_layers().back().offset);
      if (auto u = v.udp()) {
        EXPECT_EQ(u->length(), 8 + len);
      }
      // Headers are kept: the same layers at the same offsets, the same addresses and ports.
      ASSERT_EQ(v.layers().size(), before.layers().size());
      for (size_t i = 0; i < v.layers().size(); ++i) {
        EXPECT_EQ(v.layers()[i].kind, before.layers()[i].kind);
        EXPECT_EQ(v.layers()[i].offset, before.layers()[i].offset);
      }
      EXPECT_EQ(v.src_addr(), before.src_addr());
      EXPECT_EQ(v.dst_port(), before.dst_port());
      EXPECT_EQ(v.vlan_ids().size(), before.vlan_ids().size());
    }
  }
}

TEST(BuilderWithPayload, KeepsAZeroIpv4UdpChecksumAndDropsEthernetPadding) {
  Packet orig = PacketBuilder()
                    .ethernet(kClientMac, kServerMac)
                    .ipv4(kClient4, kServer4)
                    .udp(1, 2)
                    .no_udp_checksum()
                    .payload("a")
                    .pad_to(60)
                    .build();
  auto p = with_payload(orig, text("bc"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size(), 14u + 20 + 8 + 2);
  PacketView v = decoded(*p);
  EXPECT_EQ(v.udp()->checksum(), 0);
  EXPECT_EQ(v.udp()->length(), 10);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderWithPayload, TunnelledPacketGetsOuterLengthsToo) {
  Packet orig = PacketBuilder()
                    .ipv6(ip("2001:db8:ffff::1"), ip("2001:db8:ffff::2"))
                    .ipv4(kClient4, kServer4)
                    .tcp(1, 2)
                    .flags(tcp_flag::kAck)
                    .payload("x")
                    .build();
  auto p = with_payload(orig, pattern(333));
  ASSERT_TRUE(p);
  PacketView v = decoded(*p);
  ASSERT_EQ(v.ip_layers().size(), 2u);
  EXPECT_EQ(v.ip_layers()[0].total_len, p->size());
  EXPECT_EQ(v.ip_layers()[1].total_len, p->size() - 40);
  EXPECT_EQ(v.payload_len(), 333u);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(BuilderWithPayload, NoIpLayerNoCopy) {
  Packet arp = PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .arp_request(kClientMac, kClient4, kServer4)
                   .build();
  EXPECT_FALSE(with_payload(arp, text("x")));
}

// =============================================================================================
// Edits that keep checksums valid
// =============================================================================================

// The packets the edit tests run over: every transport and IP version, the RFC 768 zero
// checksum, and both kinds of routed pseudo-header destination.
std::vector<std::pair<std::string, Packet>> edit_corpus() {
  std::vector<std::pair<std::string, Packet>> c;
  c.emplace_back("tcp4", tcp_segment(tcp_flag::kAck, TcpSeq(100), TcpSeq(200), 33, true));
  c.emplace_back("udp4", PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).payload("odd").build());
  c.emplace_back(
      "udp4 no checksum",
      PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).no_udp_checksum().payload("z").build());
  c.emplace_back("tcp6", PacketBuilder()
                             .ethernet(kClientMac, kServerMac)
                             .ipv6(kClient6, kServer6)
                             .tcp(3, 4)
                             .flags(tcp_flag::kSyn)
                             .mss(1220)
                             .build());
  c.emplace_back("udp6",
                 PacketBuilder().ipv6(kClient6, kServer6).udp(5, 6).payload(pattern(7)).build());
  c.emplace_back("icmp4", PacketBuilder().ipv4(kClient4, kServer4).icmp_echo_request(1, 1).build());
  c.emplace_back("icmp6",
                 PacketBuilder().ipv6(kClient6, kServer6).icmpv6_echo_request(1, 1).build());
  std::byte lsrr[] = {std::byte{131}, std::byte{7},   std::byte{4}, std::byte{198},
                      std::byte{51},  std::byte{100}, std::byte{99}};
  c.emplace_back(
      "tcp4 source route",
      PacketBuilder().ipv4(kClient4, kServer4).ip_options(lsrr).tcp(7, 8).payload("r").build());
  IpAddr seg[] = {ip("2001:db8:9::9")};
  c.emplace_back("udp6 routing header", PacketBuilder()
                                            .ipv6(kClient6, kServer6)
                                            .ipv6_routing(0, 1, seg)
                                            .udp(9, 10)
                                            .payload("rh")
                                            .build());
  return c;
}

TEST(BuilderEdit, EverySetterKeepsEveryChecksumValid) {
  using Setter = std::function<bool(Packet&, bool v6)>;
  const std::vector<std::pair<std::string, Setter>> setters = {
      {"src",
       [](Packet& p, bool v6) { return set_ip_src(p, v6 ? ip("2001:db8::77") : ip("10.1.2.3")); }},
      {"dst",
       [](Packet& p, bool v6) { return set_ip_dst(p, v6 ? ip("fd00::1:2") : ip("172.16.9.8")); }},
      {"ttl", [](Packet& p, bool) { return set_ttl(p, 1); }},
      {"sport", [](Packet& p, bool) { return set_src_port(p, 65535); }},
      {"dport", [](Packet& p, bool) { return set_dst_port(p, 8080); }},
      {"seq", [](Packet& p, bool) { return set_tcp_seq(p, TcpSeq(0xdeadbeef)); }},
      {"ack", [](Packet& p, bool) { return set_tcp_ack(p, TcpSeq(0x01020304)); }},
      {"window", [](Packet& p, bool) { return set_tcp_window(p, 1); }},
      {"flags", [](Packet& p, bool) { return set_tcp_flags(p, tcp_flag::kFin | tcp_flag::kAck); }},
  };
  for (auto& [name, pkt] : edit_corpus()) {
    for (auto& [sname, set] : setters) {
      SCOPED_TRACE(name + " / " + sname);
      Packet p = copy(pkt);
      bool v6 = decoded(p).ip_version() == 6;
      ChecksumStatus before = decoded(p).checksum_status();
      bool applied = set(p, v6);
      PacketView v = decoded(p);
      EXPECT_EQ(v.checksum_status(), before);
      if (!applied) {
        EXPECT_EQ(hex(p.data()), hex(pkt.data()));
      }
      bool has_ports = v.tcp() || v.udp();
      bool want = sname == "src" || sname == "dst" || sname == "ttl" ||
                  ((sname == "sport" || sname == "dport") && has_ports) || bool(v.tcp());
      EXPECT_EQ(applied, want);
    }
  }
}

TEST(BuilderEdit, SettersReportAMissingLayerAndChangeNothing) {
  Packet arp = PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .arp_request(kClientMac, kClient4, kServer4)
                   .build();
  Packet udp = PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).build();
  std::string arp_before = hex(arp.data()), udp_before = hex(udp.data());
  EXPECT_FALSE(set_ip_src(arp, kClient4));
  EXPECT_FALSE(set_ttl(arp, 1));
  EXPECT_FALSE(set_src_port(arp, 1));
  EXPECT_FALSE(set_tcp_seq(udp, TcpSeq(1)));
  EXPECT_FALSE(set_tcp_window(udp, 1));
  EXPECT_FALSE(set_ip_src(udp, kClient6));  // family differs
  EXPECT_FALSE(PacketEditor(arp).has_ip());
  EXPECT_EQ(hex(arp.data()), arp_before);
  EXPECT_EQ(hex(udp.data()), udp_before);
}

TEST(BuilderEdit, Ipv4UdpZeroChecksumStaysZero) {
  Packet p = PacketBuilder().ipv4(kClient4, kServer4).udp(1, 2).no_udp_checksum().build();
  ASSERT_TRUE(set_ip_dst(p, ip("10.0.0.1")));
  ASSERT_TRUE(set_dst_port(p, 99));
  EXPECT_EQ(decoded(p).udp()->checksum(), 0);
  EXPECT_EQ(decoded(p).checksum_status(), ChecksumStatus::Ok);
}

// The header destination of a source-routed packet is the next hop, not in the pseudo-header:
// rewriting it must leave the transport checksum as it was.
TEST(BuilderEdit, NextHopChangeUnderASourceRouteLeavesTheTransportChecksum) {
  for (auto& [name, pkt] : edit_corpus()) {
    if (name.find("route") == std::string::npos) continue;
    SCOPED_TRACE(name);
    Packet p = copy(pkt);
    PacketView before = decoded(p);
    uint16_t l4c = before.tcp() ? before.tcp()->checksum() : before.udp()->checksum();
    ASSERT_TRUE(set_ip_dst(p, before.ip_version() == 4 ? ip("10.9.9.9") : ip("2001:db8:8::8")));
    PacketView v = decoded(p);
    EXPECT_EQ(v.tcp() ? v.tcp()->checksum() : v.udp()->checksum(), l4c);
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  }
}

TEST(BuilderEdit, EditorAppliesADnatWithOneDecode) {
  Packet p = tcp_segment(tcp_flag::kAck | tcp_flag::kPsh, TcpSeq(1), TcpSeq(1), 10);
  PacketEditor e(p);
  ASSERT_TRUE(e.has_ip());
  EXPECT_TRUE(e.set_ip_dst(ip("10.0.0.80")) && e.set_dst_port(8080) && e.set_ttl(63));
  PacketView v = decoded(p);
  EXPECT_EQ(v.dst_addr(), ip("10.0.0.80"));
  EXPECT_EQ(v.dst_port(), 8080);
  EXPECT_EQ(v.ttl(), 63);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

// Writes a field with no checksum care, for comparison with the incremental setters.
enum class Field { Src, Dst, Ttl, SrcPort, DstPort, Seq, Ack, Window, Flags };
void raw_set(Packet& p, Field f, const IpAddr& a, uint32_t x) {
  PacketView v = PacketView::decode(p);
  const IpLayer ipl = v.ip_layers().back();
  uint32_t l4 = v.tcp() ? off_of(v, v.tcp()->header()) : v.udp() ? off_of(v, v.udp()->header()) : 0;
  std::byte* d = p.mutable_data().data();
  bool v4 = ipl.version == 4;
  switch (f) {
    case Field::Src:
      std::memcpy(d + ipl.offset + (v4 ? 12 : 8), a.bytes().data(), a.bytes().size());
      break;
    case Field::Dst:
      std::memcpy(d + ipl.offset + (v4 ? 16 : 24), a.bytes().data(), a.bytes().size());
      break;
    case Field::Ttl:
      store_u8(d + ipl.offset + (v4 ? 8 : 7), uint8_t(x));
      break;
    case Field::SrcPort:
      store_be16(d + l4, uint16_t(x));
      break;
    case Field::DstPort:
      store_be16(d + l4 + 2, uint16_t(x));
      break;
    case Field::Seq:
      store_be32(d + l4 + 4, x);
      break;
    case Field::Ack:
      store_be32(d + l4 + 8, x);
      break;
    case Field::Window:
      store_be16(d + l4 + 14, uint16_t(x));
      break;
    case Field::Flags:
      store_u8(d + l4 + 13, uint8_t(x));
      break;
  }
}

// RFC 1624 eqn. 3 gives exactly the checksum a full recomputation gives (no -0/+0 mismatch),
// for any values: checked byte for byte over seeded random packets and edits.
TEST(BuilderEdit, IncrementalUpdateEqualsFullRecomputationForRandomValues) {
  std::mt19937 rng(0x145);
  auto r32 = [&] { return uint32_t(rng()); };
  auto v4addr = [&] { return IpAddr::from_host_v4(r32()); };
  auto v6addr = [&] {
    std::array<uint8_t, 16> b;
    for (auto& x : b)
      x = uint8_t(rng());
    return IpAddr::v6(b);
  };
  int checked = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    bool v6 = rng() & 1, tcp = rng() & 1, zero = !v6 && !tcp && (rng() % 4 == 0);
    bool routed = rng() % 5 == 0;
    PacketBuilder b;
    if (rng() & 1) b.ethernet(kClientMac, kServerMac);
    if (v6) {
      b.ipv6(v6addr(), v6addr());
      IpAddr seg[] = {v6addr()};
      if (routed) b.ipv6_routing(0, 1, seg);
    } else {
      b.ipv4(v4addr(), v4addr()).ttl(uint8_t(rng()));
      if (routed) {
        std::byte lsrr[7] = {std::byte{131}, std::byte{7}, std::byte{4}};
        store_be32(lsrr + 3, r32());
        b.ip_options(lsrr);
      }
    }
    if (tcp)
      b.tcp(uint16_t(rng()), uint16_t(rng()))
          .seq(TcpSeq(r32()))
          .ack(TcpSeq(r32()))
          .flags(uint8_t(rng()))
          .window(uint16_t(rng()));
    else
      b.udp(uint16_t(rng()), uint16_t(rng()));
    if (zero) b.no_udp_checksum();
    std::vector<std::byte> data(rng() % 80);
    for (auto& x : data)
      x = std::byte(uint8_t(rng()));
    Packet orig = b.payload(data).build();
    ASSERT_FALSE(orig.empty());

    Field f = Field(rng() % (tcp ? 9 : 5));
    IpAddr a = v6 ? v6addr() : v4addr();
    uint32_t x = r32();
    Packet inc = copy(orig), full = copy(orig);
    bool ok = false;
    switch (f) {
      case Field::Src:
        ok = set_ip_src(inc, a);
        break;
      case Field::Dst:
        ok = set_ip_dst(inc, a);
        break;
      case Field::Ttl:
        ok = set_ttl(inc, uint8_t(x));
        break;
      case Field::SrcPort:
        ok = set_src_port(inc, uint16_t(x));
        break;
      case Field::DstPort:
        ok = set_dst_port(inc, uint16_t(x));
        break;
      case Field::Seq:
        ok = set_tcp_seq(inc, TcpSeq(x));
        break;
      case Field::Ack:
        ok = set_tcp_ack(inc, TcpSeq(x));
        break;
      case Field::Window:
        ok = set_tcp_window(inc, uint16_t(x));
        break;
      case Field::Flags:
        ok = set_tcp_flags(inc, uint8_t(x));
        break;
    }
    ASSERT_TRUE(ok) << "iteration " << iter;
    raw_set(full, f, a, x);
    ASSERT_TRUE(fix_checksums(full));
    ASSERT_EQ(hex(inc.data()), hex(full.data())) << "iteration " << iter << " field " << int(f);
    ASSERT_EQ(decoded(inc).checksum_status(), ChecksumStatus::Ok) << "iteration " << iter;
    ++checked;
  }
  EXPECT_EQ(checked, 3000);
}

TEST(BuilderEdit, MutatingASharedPacketCopiesAndLeavesTheOriginalUnchanged) {
  Packet orig = tcp_segment(tcp_flag::kAck, TcpSeq(10), TcpSeq(20), 5);
  const std::string before = hex(orig.data());
  Packet shared = orig.share();
  EXPECT_FALSE(orig.is_unique());
  EXPECT_EQ(shared.data().data(), orig.data().data());
  PacketEditor e(shared);
  ASSERT_TRUE(e.set_ttl(1));
  ASSERT_TRUE(e.set_tcp_seq(TcpSeq(99)));
  EXPECT_NE(shared.data().data(), orig.data().data());
  EXPECT_TRUE(shared.is_unique());
  EXPECT_TRUE(orig.is_unique());
  EXPECT_EQ(hex(orig.data()), before);
  EXPECT_EQ(decoded(orig).ttl(), 64);
  EXPECT_EQ(decoded(shared).ttl(), 1);
  EXPECT_EQ(decoded(shared).tcp()->seq(), TcpSeq(99));
  EXPECT_EQ(decoded(orig).checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(decoded(shared).checksum_status(), ChecksumStatus::Ok);
  // fix_checksums too copies before it writes.
  store_be16(shared.mutable_data().data() + 14 + 10, 0);  // on the unique copy
  Packet third = shared.share();
  ASSERT_TRUE(fix_checksums(third));
  EXPECT_EQ(decoded(third).checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(decoded(shared).ip_checksum_status(), ChecksumStatus::Bad);
}

// =============================================================================================
// Recomputation from scratch
// =============================================================================================

TEST(BuilderFix, FixChecksumsRepairsEveryCorruptedChecksum) {
  for (auto& [name, pkt] : edit_corpus()) {
    SCOPED_TRACE(name);
    Packet p = copy(pkt);
    PacketView v = PacketView::decode(p);
    std::byte* d = p.mutable_data().data();
    for (const IpLayer& l : v.ip_layers())
      if (l.version == 4) store_be16(d + l.offset + 10, 0x1234);
    uint32_t csum = 0;
    if (auto t = v.tcp()) csum = off_of(v, t->header()) + 16;
    if (auto u = v.udp(); u && u->checksum() != 0) csum = off_of(v, u->header()) + 6;
    if (auto i = v.icmp()) csum = off_of(v, i->header()) + 2;
    if (auto i = v.icmpv6()) csum = off_of(v, i->header()) + 2;
    if (csum) store_be16(d + csum, 0x4321);
    EXPECT_NE(decoded(p).checksum_status(), ChecksumStatus::Ok);
    ASSERT_TRUE(fix_checksums(p));
    EXPECT_EQ(hex(p.data()), hex(pkt.data()));
  }
}

TEST(BuilderFix, FixLengthsRepairsLengthsThatAreTooShortOrTooLong) {
  struct Case {
    const char* name;
    uint32_t field;  // offset of the length field to corrupt, from the IP header
    uint16_t value;
  };
  Packet v4 = PacketBuilder()
                  .ethernet(kClientMac, kServerMac)
                  .ipv4(kClient4, kServer4)
                  .udp(1, 2)
                  .payload(pattern(21))
                  .build();
  Packet v6 = PacketBuilder().ipv6(kClient6, kServer6).tcp(1, 2).payload(pattern(21)).build();
  const Case cases4[] = {{"ip total too short", 2, 30},
                         {"ip total too long", 2, 1000},
                         {"ip total zero (TSO)", 2, 0},
                         {"udp length too long", 20 + 4, 200},
                         {"udp length too short", 20 + 4, 9}};
  for (const Case& c : cases4) {
    Packet p = copy(v4);
    store_be16(p.mutable_data().data() + 14 + c.field, c.value);
    ASSERT_TRUE(fix_lengths(p)) << c.name;
    ASSERT_TRUE(fix_checksums(p)) << c.name;
    EXPECT_EQ(hex(p.data()), hex(v4.data())) << c.name;
  }
  const Case cases6[] = {{"payload length too short", 4, 3}, {"payload length too long", 4, 900}};
  for (const Case& c : cases6) {
    Packet p = copy(v6);
    store_be16(p.mutable_data().data() + c.field, c.value);
    ASSERT_TRUE(fix_lengths(p)) << c.name;
    ASSERT_TRUE(fix_checksums(p)) << c.name;
    EXPECT_EQ(hex(p.data()), hex(v6.data())) << c.name;
  }
  Packet arp = PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .arp_request(kClientMac, kClient4, kServer4)
                   .build();
  EXPECT_FALSE(fix_lengths(arp));
  EXPECT_FALSE(fix_checksums(arp));
}

// An outer UDP checksum (VXLAN over IPv6, where it is mandatory) covers the inner frame, so the
// inner checksums must be fixed before it.
TEST(BuilderFix, OuterVxlanUdpChecksumIsFixedAfterTheInnerPacket) {
  Packet inner = tcp_segment(tcp_flag::kAck, TcpSeq(1), TcpSeq(2), 40);
  std::vector<std::byte> vx(8 + inner.size());
  store_u8(vx.data(), 0x08);  // RFC 7348 5: I flag
  store_be32(vx.data() + 4, 4242u << 8);
  std::memcpy(vx.data() + 8, inner.data().data(), inner.size());
  Packet p = PacketBuilder()
                 .ethernet(mac(0x10), mac(0x20))
                 .ipv6(ip("2001:db8:a::1"), ip("2001:db8:b::1"))
                 .udp(49152, 4789)
                 .payload(vx)
                 .build();
  const std::string good = hex(p.data());
  PacketView v = decoded(p);
  ASSERT_EQ(v.tunnel_depth(), 1);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  // Corrupt the inner IPv4 and TCP checksums, and the outer UDP one.
  const Layer* in_ip = &v.layers()[0];
  for (const Layer& l : v.layers())
    if (l.kind == LayerKind::Ipv4) in_ip = &l;
  std::byte* d = p.mutable_data().data();
  store_be16(d + in_ip->offset + 10, 0);
  store_be16(d + off_of(v, v.tcp()->header()) + 16, 0);
  store_be16(d + v.find(LayerKind::Udp)->offset + 6, 0x7777);
  ASSERT_TRUE(fix_checksums(p));
  EXPECT_EQ(hex(p.data()), good);
}

// =============================================================================================
// Headroom and encapsulation
// =============================================================================================

TEST(BuilderHeadroom, PushVlanUsesHeadroomWithoutMovingTheDatagram) {
  Packet p = tcp_segment(tcp_flag::kAck, TcpSeq(1), TcpSeq(2), 10);
  const std::byte* ip_before = p.data().data() + 14;
  ASSERT_TRUE(push_vlan(p, 123, 4));
  EXPECT_EQ(p.data().data() + 18, ip_before);
  EXPECT_EQ(p.meta().wire_len, p.size());
  PacketView v = decoded(p);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v.vlan_ids().size(), 1u);
  EXPECT_EQ(v.vlan_ids()[0], 123);
  EXPECT_EQ(v.ethernet()->src(), kClientMac);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  ASSERT_TRUE(push_vlan(p, 7, 0, ether_type::kQinq));  // the new tag is the outer one
  EXPECT_EQ(decoded(p).vlan_ids()[0], 7);
  EXPECT_EQ(decoded(p).vlan_ids()[1], 123);
}

TEST(BuilderHeadroom, PushBeyondTheHeadroomReallocatesAndKeepsTheBytes) {
  Packet p = PacketBuilder(64, 0)
                 .ethernet(kClientMac, kServerMac)
                 .ipv4(kClient4, kServer4)
                 .udp(1, 2)
                 .build();
  const std::string frame = hex(p.data());
  ASSERT_TRUE(push_vlan(p, 9));
  PacketView v = decoded(p);
  EXPECT_EQ(v.vlan_ids()[0], 9);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  ASSERT_TRUE(pop_vlan(p));
  EXPECT_EQ(hex(p.data()), frame);
  EXPECT_FALSE(pop_vlan(p));
}

TEST(BuilderHeadroom, PushEthernetTurnsARawDatagramIntoAFrame) {
  Packet p = PacketBuilder().ipv6(kClient6, kServer6).udp(1, 2).payload("6").build();
  ASSERT_TRUE(push_ethernet(p, kClientMac, kServerMac));
  EXPECT_EQ(p.meta().link, LinkType::Ethernet);
  PacketView v = decoded(p);
  EXPECT_EQ(v.ethernet()->ether_type(), ether_type::kIpv6);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_FALSE(push_ethernet(p, kClientMac, kServerMac));  // already Ethernet
}

TEST(BuilderHeadroom, PushingOntoASharedPacketLeavesTheOriginalUnchanged) {
  Packet orig = tcp_segment(tcp_flag::kAck, TcpSeq(1), TcpSeq(2), 10);
  const std::string before = hex(orig.data());
  Packet tagged = orig.share();
  ASSERT_TRUE(push_vlan(tagged, 5));
  EXPECT_EQ(hex(orig.data()), before);
  EXPECT_EQ(decoded(tagged).vlan_ids()[0], 5);
}

// =============================================================================================
// VTL's create_data_pkt
// =============================================================================================

// What VTL's TCP connection model keeps for one connection, recorded from its handshake.
struct ConnState {
  MacAddr client_mac, server_mac;
  IpAddr client, server;
  uint16_t client_port = 0, server_port = 0;
  TcpSeq client_next;  // the client's next sequence number (SND.NXT)
  TcpSeq server_next;  // what the client acknowledges (RCV.NXT)
  uint16_t window = 0;

  static ConnState record(const Packet& syn, const Packet& syn_ack) {
    PacketView s = PacketView::decode(syn), sa = PacketView::decode(syn_ack);
    ConnState c;
    c.client_mac = s.ethernet()->src();
    c.server_mac = s.ethernet()->dst();
    c.client = s.src_addr();
    c.server = s.dst_addr();
    c.client_port = s.src_port();
    c.server_port = s.dst_port();
    c.client_next = s.tcp()->seq() + 1;  // the SYN takes one
    c.server_next = sa.tcp()->seq() + 1;
    c.window = s.tcp()->window();
    return c;
  }
};

// VTL's create_data_pkt: an empty packet for the connection from its state, the data copied in
// after the headers, then lengths and checksums fixed.
Packet create_data_pkt(const ConnState& c, Bytes data) {
  Packet p = PacketBuilder()
                 .ethernet(c.client_mac, c.server_mac)
                 .ipv4(c.client, c.server)
                 .dont_fragment()
                 .tcp(c.client_port, c.server_port)
                 .seq(c.client_next)
                 .ack(c.server_next)
                 .flags(tcp_flag::kAck | tcp_flag::kPsh)
                 .window(c.window)
                 .build();
  size_t hdr = p.size();
  p.resize(hdr + data.size());
  if (!data.empty()) std::memcpy(p.mutable_data().data() + hdr, data.data(), data.size());
  fix_lengths(p);
  fix_checksums(p);
  return p;
}

struct Handshake {
  Packet syn, syn_ack, data;
  std::string text;
};

Handshake vtl_handshake() {
  Handshake h;
  h.syn = linux_syn();
  h.syn_ack = reply_builder(h.syn)
                  ->seq(TcpSeq(0xfffffff0))  // the server's ISN, near the wrap
                  .flags(tcp_flag::kSyn | tcp_flag::kAck)
                  .window(65160)
                  .mss(1460)
                  .build();
  h.text = "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n";
  h.data = create_data_pkt(ConnState::record(h.syn, h.syn_ack), text(h.text));
  return h;
}

TEST(BuilderVtl, CreateDataPktFromARecordedConnectionIsItsNextSegment) {
  Handshake h = vtl_handshake();
  PacketView syn = decoded(h.syn), sa = decoded(h.syn_ack), d = decoded(h.data);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.checksum_status(), ChecksumStatus::Ok);
  // The next segment of the client's side: seq just after its SYN, acknowledging the SYN-ACK.
  EXPECT_EQ(d.tcp()->seq(), syn.tcp()->seq() + 1);
  EXPECT_EQ(d.tcp()->seq(), sa.tcp()->ack());
  EXPECT_EQ(d.tcp()->ack(), sa.tcp()->seq() + 1);
  EXPECT_EQ(d.tcp()->ack(), TcpSeq(0xfffffff1));
  EXPECT_EQ(d.src_addr(), syn.src_addr());
  EXPECT_EQ(d.dst_port(), syn.dst_port());
  EXPECT_EQ(d.ip_total_len(), 20 + 20 + h.text.size());
  EXPECT_EQ(d.payload_len(), h.text.size());
  EXPECT_EQ(hex(d.payload()), hex(text(h.text)));
  EXPECT_EQ(h.data.meta().wire_len, h.data.size());
  // The same packet, three ways: with_payload() on the empty one, and the reply to the SYN-ACK.
  Packet empty = create_data_pkt(ConnState::record(h.syn, h.syn_ack), {});
  EXPECT_EQ(hex(with_payload(empty, text(h.text))->data()), hex(h.data.data()));
  Packet reply = reply_builder(h.syn_ack)
                     ->dont_fragment()
                     .flags(tcp_flag::kAck | tcp_flag::kPsh)
                     .window(64240)
                     .payload(h.text)
                     .build();
  EXPECT_EQ(hex(reply.data()), hex(h.data.data()));
}

// =============================================================================================
// Scapy, the other way round: what scapy sees in packets l45 built
// =============================================================================================

struct Named {
  std::string name;
  Packet pkt;
  std::vector<std::string> scapy_layers;  // scapy's class names, in order
};

// Runs tests/scapy/check_built.py with `args` and returns the JSON it prints; nullopt (with
// `why`) when scapy cannot be used.
std::optional<json> run_check_built(const std::string& args, std::string* why) {
  const std::string py = "/usr/bin/python3";
  std::string out;
  if (testing::run(py + " -c 'import scapy.all'", &out) != 0) {
    *why = "scapy is not importable by " + py + ": " + out.substr(0, out.find('\n'));
    return std::nullopt;
  }
  namespace fs = std::filesystem;
  fs::path json_out =
      fs::temp_directory_path() / ("l45_check_built_" + std::to_string(getpid()) + ".json");
  fs::path script = testing::source_dir() / "tests" / "scapy" / "check_built.py";
  // Only stdout goes to the file: testing::run() merges stderr into `out`.
  int rc = testing::run(
      "{ " + py + " " + script.string() + " " + args + " > " + json_out.string() + "; }", &out);
  std::ifstream in(json_out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(json_out);
  if (rc != 0) {
    ADD_FAILURE() << "check_built.py " << args << " failed (" << rc << "): " << out;
    return std::nullopt;
  }
  return json::parse(text);
}

// Writes the packets to a fresh directory and returns what check_built.py sees in them.
std::optional<json> scapy_view(const std::vector<Named>& pkts, std::string* why) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::temp_directory_path() / ("l45_builder_" + std::to_string(getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const Named& n : pkts) {
    std::ofstream f(dir / (n.name + (n.pkt.meta().link == LinkType::Ethernet ? ".eth" : ".ip")),
                    std::ios::binary);
    f.write(reinterpret_cast<const char*>(n.pkt.data().data()), std::streamsize(n.pkt.size()));
  }
  auto s = run_check_built(dir.string(), why);
  fs::remove_all(dir);
  return s;
}

// `call` may use `why`, which says why scapy cannot be used.
#define L45_SCAPY_OR_SKIP(var, call) \
  std::string why;                   \
  auto var = call;                   \
  if (!var && !why.empty()) {        \
    GTEST_SKIP() << why;             \
  }                                  \
  ASSERT_TRUE(var)

// The scapy name and value of every TCP option l45 wrote, in order, as check_built.py prints them.
json tcp_options_as_scapy(const TcpView& t) {
  json out = json::array();
  OptionCursor c(t.option_bytes(), 20);
  for (HeaderOption o; c.next(o);) {
    switch (o.kind) {
      case tcp_option::kEol:
        out.push_back({"EOL", nullptr});
        break;
      case tcp_option::kNop:
        out.push_back({"NOP", nullptr});
        break;
      case tcp_option::kMss:
        out.push_back({"MSS", load_be16(o.value.data())});
        break;
      case tcp_option::kWindowScale:
        out.push_back({"WScale", load_u8(o.value.data())});
        break;
      case tcp_option::kSackPermitted:
        out.push_back({"SAckOK", ""});
        break;
      case tcp_option::kSack: {
        json edges = json::array();
        for (size_t i = 0; i < o.value.size(); i += 4)
          edges.push_back(load_be32(o.value.data() + i));
        out.push_back({"SAck", edges});
        break;
      }
      case tcp_option::kTimestamps:
        out.push_back({"Timestamp", {load_be32(o.value.data()), load_be32(o.value.data() + 4)}});
        break;
      default:
        out.push_back({o.kind, hex(o.value)});
    }
  }
  return out;
}

// Compares every field scapy decoded with what l45's decoder reads from the same bytes, and
// every length/checksum scapy recomputes with the one l45 stored.
void expect_scapy_agrees(const Named& n, const json& s) {
  SCOPED_TRACE(n.name + ": " + s.value("summary", ""));
  PacketView v = PacketView::decode(n.pkt);
  std::vector<std::string> names;
  for (const json& l : s["layers"])
    names.push_back(l["name"]);
  EXPECT_EQ(names, n.scapy_layers);
  size_t vlan = 0, ipn = 0;
  const Layer* vlan_layers[PacketView::kMaxVlanTags] = {};
  size_t nv = 0;
  for (const Layer& l : v.layers())
    if (l.kind == LayerKind::Dot1Q || l.kind == LayerKind::Dot1ad) vlan_layers[nv++] = &l;
  bool quoted = false;
  for (const json& l : s["layers"]) {
    const std::string name = l["name"];
    const json& f = l["fields"];
    if (name.ends_with("error") || name.ends_with("error6")) quoted = true;
    if (quoted) continue;
    if (name == "Ether") {
      auto e = v.ethernet();
      EXPECT_EQ(f["src"], e->src().to_string());
      EXPECT_EQ(f["dst"], e->dst().to_string());
      EXPECT_EQ(f["type"], e->ether_type());
    } else if (name == "Dot1Q" || name == "Dot1AD") {
      auto t = VlanView::parse(v.layer_bytes(*vlan_layers[vlan++]));
      EXPECT_EQ(f["vlan"], t->vid());
      EXPECT_EQ(f["prio"], t->pcp());
      EXPECT_EQ(f["id"], t->dei() ? 1 : 0);
      EXPECT_EQ(f["type"], t->ether_type());
    } else if (name == "ARP") {
      auto a = v.arp();
      EXPECT_EQ(f["op"], a->op());
      EXPECT_EQ(f["hwsrc"], a->sender_mac().to_string());
      EXPECT_EQ(f["psrc"], a->sender_ip().to_string());
      EXPECT_EQ(f["hwdst"], a->target_mac().to_string());
      EXPECT_EQ(f["pdst"], a->target_ip().to_string());
    } else if (name == "IP") {
      const IpLayer& L = v.ip_layers()[ipn++];
      auto h = Ipv4View::parse(v.data().subspan(L.offset));
      EXPECT_EQ(f["version"], 4);
      EXPECT_EQ(f["ihl"], h->ihl());
      EXPECT_EQ(f["tos"], h->tos());
      EXPECT_EQ(f["len"], h->total_length());
      EXPECT_EQ(f["id"], h->id());
      EXPECT_EQ(f["flags"], (h->dont_fragment() ? 2 : 0) | (h->more_fragments() ? 1 : 0));
      EXPECT_EQ(f["frag"], h->fragment_offset());
      EXPECT_EQ(f["ttl"], h->ttl());
      EXPECT_EQ(f["proto"], h->protocol());
      EXPECT_EQ(f["chksum"], h->checksum());
      EXPECT_EQ(f["src"], h->src().to_string());
      EXPECT_EQ(f["dst"], h->dst().to_string());
      std::string opts;
      for (const json& o : f["options"])
        opts += o["bytes"].get<std::string>();
      EXPECT_EQ(opts, hex(h->options()).substr(0, opts.size()));
      EXPECT_EQ(opts.empty(), h->options().empty());
    } else if (name == "IPv6") {
      const IpLayer& L = v.ip_layers()[ipn++];
      auto h = Ipv6View::parse(v.data().subspan(L.offset));
      EXPECT_EQ(f["tc"], h->traffic_class());
      EXPECT_EQ(f["fl"], h->flow_label());
      EXPECT_EQ(f["plen"], h->payload_length());
      EXPECT_EQ(f["nh"], h->next_header());
      EXPECT_EQ(f["hlim"], h->hop_limit());
      EXPECT_EQ(f["src"], h->src().to_string());
      EXPECT_EQ(f["dst"], h->dst().to_string());
    } else if (name == "TCP") {
      auto t = v.tcp();
      EXPECT_EQ(f["sport"], t->src_port());
      EXPECT_EQ(f["dport"], t->dst_port());
      EXPECT_EQ(f["seq"], t->seq().value());
      EXPECT_EQ(f["ack"], t->ack().value());
      EXPECT_EQ(f["dataofs"], t->data_offset());
      EXPECT_EQ(f["flags"], t->flags());
      EXPECT_EQ(f["window"], t->window());
      EXPECT_EQ(f["chksum"], t->checksum());
      EXPECT_EQ(f["urgptr"], t->urgent_pointer());
      // scapy shows an empty option list as b"".
      EXPECT_EQ(f["options"] == "" ? json::array() : f["options"], tcp_options_as_scapy(*t));
    } else if (name == "UDP") {
      auto u = v.udp();
      EXPECT_EQ(f["sport"], u->src_port());
      EXPECT_EQ(f["dport"], u->dst_port());
      EXPECT_EQ(f["len"], u->length());
      EXPECT_EQ(f["chksum"], u->checksum());
    } else if (name == "ICMP") {
      auto i = v.icmp();
      EXPECT_EQ(f["type"], i->type());
      EXPECT_EQ(f["code"], i->code());
      EXPECT_EQ(f["chksum"], i->checksum());
      if (i->is_echo()) {
        EXPECT_EQ(f["id"], i->echo_id());
        EXPECT_EQ(f["seq"], i->echo_seq());
      }
    } else if (name.starts_with("ICMPv6")) {
      auto i = v.icmpv6();
      EXPECT_EQ(f["type"], i->type());
      EXPECT_EQ(f["code"], i->code());
      EXPECT_EQ(f["cksum"], i->checksum());
      if (i->is_echo()) {
        EXPECT_EQ(f["id"], i->echo_id());
        EXPECT_EQ(f["seq"], i->echo_seq());
      }
    } else if (name == "IPv6ExtHdrRouting") {
      auto r = Ipv6ExtView::parse(ip_proto::kRouting,
                                  v.data().subspan(v.find(LayerKind::Ipv6Routing)->offset));
      EXPECT_EQ(f["segleft"], r->segments_left());
      EXPECT_EQ(f["type"], r->routing_type());
      EXPECT_EQ(f["len"], load_u8(r->header().data() + 1));
    } else if (name == "IPv6ExtHdrFragment") {
      auto r = Ipv6ExtView::parse(ip_proto::kFragment,
                                  v.data().subspan(v.find(LayerKind::Ipv6Fragment)->offset));
      EXPECT_EQ(f["offset"], r->fragment_offset_bytes() / 8);
      EXPECT_EQ(f["m"], r->more_fragments() ? 1 : 0);
      EXPECT_EQ(f["id"], r->fragment_id());
    } else if (name == "Raw") {
      Bytes data = v.icmp()     ? v.icmp()->payload()
                   : v.icmpv6() ? v.icmpv6()->payload()
                                : v.payload();
      EXPECT_EQ(f["load"], hex(data));
    } else if (name == "Padding") {
      size_t end = v.arp() ? v.find(LayerKind::Arp)->offset + v.find(LayerKind::Arp)->length
                           : v.ip_layers().back().offset + v.ip_total_len();
      EXPECT_EQ(f["load"], hex(n.pkt.data().subspan(end)));
    }
  }
  // Every length and checksum l45 stored is the one scapy computes.
  const json& rec = s["recomputed"];
  for (size_t i = 0; i < rec.size(); ++i) {
    for (auto& [field, value] : rec[i]["fields"].items())
      EXPECT_EQ(s["layers"][i]["fields"][field], value)
          << rec[i]["name"].get<std::string>() << "." << field << " is not what scapy computes";
  }
}

std::vector<Named> scapy_corpus() {
  std::vector<Named> c;
  c.push_back({"syn_linux", linux_syn(), {"Ether", "IP", "TCP"}});
  c.push_back({"data_vlan_odd",
               tcp_segment(tcp_flag::kAck | tcp_flag::kPsh | tcp_flag::kUrg, TcpSeq(0xfffffffe),
                           TcpSeq(42), 33, true),
               {"Ether", "Dot1Q", "IP", "TCP", "Raw"}});
  c.push_back({"qinq_udp",
               PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .vlan(1000, 6, ether_type::kQinq, true)
                   .vlan(20, 1)
                   .ipv4(kClient4, kServer4)
                   .tos(0x2e)
                   .ip_id(777)
                   .udp(40001, 4000)
                   .payload(pattern(7))
                   .build(),
               {"Ether", "Dot1AD", "Dot1Q", "IP", "UDP", "Raw"}});
  std::byte lsrr[] = {std::byte{131}, std::byte{7},   std::byte{4}, std::byte{198},
                      std::byte{51},  std::byte{100}, std::byte{99}};
  c.push_back({"lsrr_tcp",
               PacketBuilder()
                   .ipv4(kClient4, ip("203.0.113.1"))
                   .ip_options(lsrr)
                   .tcp(1234, 4321)
                   .flags(tcp_flag::kAck)
                   .sack({{TcpSeq(10), TcpSeq(20)}})
                   .tcp_option(253, text("xy"))
                   .payload("abc")
                   .build(),
               {"IP", "TCP", "Raw"}});
  c.push_back({"udp6_flow",
               PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .ipv6(kClient6, kServer6)
                   .traffic_class(0xb8)
                   .flow_label(0x12345)
                   .hop_limit(7)
                   .udp(5000, 6000)
                   .payload(pattern(1))
                   .build(),
               {"Ether", "IPv6", "UDP", "Raw"}});
  IpAddr segs[] = {ip("2001:db8:5::5"), ip("2001:db8:6::6")};
  c.push_back({"tcp6_routing",
               PacketBuilder()
                   .ipv6(kClient6, kServer6)
                   .ipv6_routing(0, 2, segs)
                   .tcp(80, 1025)
                   .flags(tcp_flag::kSyn | tcp_flag::kAck)
                   .timestamps(0xffffffff, 1)
                   .payload("routed")
                   .build(),
               {"IPv6", "IPv6ExtHdrRouting", "TCP", "Raw"}});
  c.push_back({"udp6_fragment",
               PacketBuilder()
                   .ipv6(kClient6, kServer6)
                   .ipv6_fragment(0, false, 99)
                   .udp(1, 2)
                   .payload("atomic")
                   .build(),
               {"IPv6", "IPv6ExtHdrFragment", "UDP", "Raw"}});
  c.push_back({"icmp_echo",
               PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .ipv4(kClient4, kServer4)
                   .icmp_echo_request(0xabcd, 1)
                   .payload(pattern(56))
                   .build(),
               {"Ether", "IP", "ICMP", "Raw"}});
  c.push_back(
      {"icmpv6_echo",
       PacketBuilder().ipv6(kClient6, kServer6).icmpv6_echo_reply(5, 6).payload("pong").build(),
       {"IPv6", "ICMPv6EchoReply"}});
  Packet offending = PacketBuilder()
                         .ethernet(kClientMac, kServerMac)
                         .ipv4(kClient4, kServer4)
                         .udp(40000, 33434)
                         .payload(pattern(12))
                         .build();
  c.push_back({"icmp_port_unreachable",
               *make_icmp_error(offending, 3, 3),
               {"Ether", "IP", "ICMP", "IPerror", "UDPerror", "Raw"}});
  c.push_back({"arp_request_padded",
               PacketBuilder()
                   .ethernet(kClientMac, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                   .arp_request(kClientMac, kClient4, kServer4)
                   .pad_to(60)
                   .build(),
               {"Ether", "ARP", "Padding"}});
  c.push_back({"rst_padded",
               PacketBuilder()
                   .ethernet(kClientMac, kServerMac)
                   .ipv4(kClient4, kServer4)
                   .tcp(1, 2)
                   .flags(tcp_flag::kRst | tcp_flag::kAck)
                   .pad_to(60)
                   .build(),
               {"Ether", "IP", "TCP", "Padding"}});
  c.push_back(
      {"udp_zero_sum",
       [] {
         // A payload word that makes the checksum compute to 0, sent as 0xffff.
         std::byte zero[2] = {};
         Packet first =
             PacketBuilder().ipv4(kClient4, kServer4).udp(7, 7).payload(Bytes(zero, 2)).build();
         uint16_t csum = PacketView::decode(first).udp()->checksum();
         std::byte w[2];
         store_be16(w, csum);
         return PacketBuilder().ipv4(kClient4, kServer4).udp(7, 7).payload(Bytes(w, 2)).build();
       }(),
       {"IP", "UDP", "Raw"}});
  return c;
}

TEST(BuilderScapy, BuiltPacketsMatchScapyFieldForField) {
  std::vector<Named> pkts = scapy_corpus();
  L45_SCAPY_OR_SKIP(s, scapy_view(pkts, &why));
  for (const Named& n : pkts) {
    ASSERT_TRUE(s->contains(n.name)) << n.name;
    expect_scapy_agrees(n, (*s)[n.name]);
  }
  // The zero-sum case really is the RFC 768 one.
  EXPECT_EQ((*s)["udp_zero_sum"]["layers"][1]["fields"]["chksum"], 0xffff);
}

TEST(BuilderScapy, EditedAndDerivedPacketsMatchScapy) {
  std::vector<Named> pkts;
  Packet nat = tcp_segment(tcp_flag::kAck, TcpSeq(5), TcpSeq(6), 17, true);
  PacketEditor e(nat);
  e.set_ip_src(ip("100.64.0.1"));
  e.set_src_port(61000);
  e.set_tcp_seq(TcpSeq(0x80000000));
  e.set_ttl(1);
  pkts.push_back({"snat", std::move(nat), {"Ether", "Dot1Q", "IP", "TCP", "Raw"}});
  Packet v6 = PacketBuilder().ipv6(kClient6, kServer6).udp(1, 2).payload("abc").build();
  set_ip_dst(v6, ip("64:ff9b::c000:201"));
  set_dst_port(v6, 8053);
  pkts.push_back({"udp6_dnat", std::move(v6), {"IPv6", "UDP", "Raw"}});
  pkts.push_back(
      {"with_payload", *with_payload(linux_syn(), pattern(101)), {"Ether", "IP", "TCP", "Raw"}});
  pkts.push_back({"reply",
                  *make_reply(tcp_segment(tcp_flag::kAck, TcpSeq(1), TcpSeq(2), 9, true),
                              tcp_flag::kAck | tcp_flag::kFin, text("bye")),
                  {"Ether", "Dot1Q", "IP", "TCP", "Raw"}});
  L45_SCAPY_OR_SKIP(s, scapy_view(pkts, &why));
  for (const Named& n : pkts)
    expect_scapy_agrees(n, (*s)[n.name]);
}

// VTL's data packet, checked by scapy as the next segment of the handshake it follows.
TEST(BuilderScapy, VtlDataPacketIsTheNextSegmentOfItsConnection) {
  Handshake h = vtl_handshake();
  std::vector<Named> pkts;
  pkts.push_back({"1_syn", std::move(h.syn), {"Ether", "IP", "TCP"}});
  pkts.push_back({"2_syn_ack", std::move(h.syn_ack), {"Ether", "IP", "TCP"}});
  pkts.push_back({"3_data", std::move(h.data), {"Ether", "IP", "TCP", "Raw"}});
  L45_SCAPY_OR_SKIP(s, scapy_view(pkts, &why));
  for (const Named& n : pkts)
    expect_scapy_agrees(n, (*s)[n.name]);
  auto tcp = [&](const char* n) { return (*s)[n]["layers"][2]["fields"]; };
  auto ip4 = [&](const char* n) { return (*s)[n]["layers"][1]["fields"]; };
  const json syn = tcp("1_syn"), sa = tcp("2_syn_ack"), d = tcp("3_data");
  EXPECT_EQ(sa["ack"], syn["seq"].get<uint32_t>() + 1);
  EXPECT_EQ(d["seq"], sa["ack"]);
  EXPECT_EQ(d["ack"], uint32_t(sa["seq"].get<uint32_t>() + 1));
  EXPECT_EQ(d["sport"], syn["sport"]);
  EXPECT_EQ(d["dport"], syn["dport"]);
  EXPECT_EQ(d["flags"], tcp_flag::kAck | tcp_flag::kPsh);
  EXPECT_EQ(ip4("3_data")["src"], ip4("1_syn")["src"]);
  EXPECT_EQ(ip4("3_data")["len"], 20 + 20 + h.text.size());
  EXPECT_EQ((*s)["3_data"]["layers"][3]["fields"]["load"], hex(text(h.text)));
}

// The other way round: scapy crafts a packet and the result of an edit (recomputing lengths and
// checksums itself); l45 applies the same edit to the same bytes and must produce exactly
// scapy's packet.
std::vector<std::byte> unhex(const std::string& h) {
  std::vector<std::byte> b(h.size() / 2);
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = std::byte(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return b;
}

TEST(BuilderScapy, ScapyCraftedEditsAreReproducedByteForByte) {
  L45_SCAPY_OR_SKIP(s, run_check_built("--edits", &why));
  ASSERT_GE(s->size(), 20u);
  for (const json& e : *s) {
    const std::string name = e["name"], op = e["op"];
    SCOPED_TRACE(name + " (" + op + ")");
    PacketMeta meta;
    meta.link = e["link"] == "eth" ? LinkType::Ethernet : LinkType::Raw;
    auto in_bytes = unhex(e["in"]);
    Packet p = Packet::copy_of(in_bytes, meta);
    const json& a = e["args"];
    auto addr = [&] { return ip(a[0].get<std::string>().c_str()); };
    std::optional<Packet> result;
    bool ok = true;
    if (op == "set_ip_src") {
      ok = set_ip_src(p, addr());
    } else if (op == "set_ip_dst") {
      ok = set_ip_dst(p, addr());
    } else if (op == "set_ttl") {
      ok = set_ttl(p, a[0].get<uint8_t>());
    } else if (op == "set_src_port") {
      ok = set_src_port(p, a[0].get<uint16_t>());
    } else if (op == "set_dst_port") {
      ok = set_dst_port(p, a[0].get<uint16_t>());
    } else if (op == "set_tcp_seq") {
      ok = set_tcp_seq(p, TcpSeq(a[0].get<uint32_t>()));
    } else if (op == "set_tcp_ack") {
      ok = set_tcp_ack(p, TcpSeq(a[0].get<uint32_t>()));
    } else if (op == "set_tcp_window") {
      ok = set_tcp_window(p, a[0].get<uint16_t>());
    } else if (op == "set_tcp_flags") {
      ok = set_tcp_flags(p, a[0].get<uint8_t>());
    } else if (op == "fix_checksums") {
      ok = fix_checksums(p);
    } else if (op == "fix_lengths_and_checksums") {
      ok = fix_lengths(p) && fix_checksums(p);
    } else if (op == "with_payload") {
      result = with_payload(p, unhex(a[0]));
    } else if (op == "make_reply") {
      result = make_reply(p, a[0].get<uint8_t>(), unhex(a[1]));
    } else if (op == "make_icmp_error") {
      result = make_icmp_error(p, a[0].get<uint8_t>(), a[1].get<uint8_t>());
    } else {
      ADD_FAILURE() << "unknown op";
      continue;
    }
    if (op == "with_payload" || op == "make_reply" || op == "make_icmp_error") {
      ASSERT_TRUE(result);
      p = std::move(*result);
    }
    EXPECT_TRUE(ok);
    EXPECT_EQ(hex(p.data()), e["want"].get<std::string>());
    EXPECT_EQ(decoded(p).checksum_status(), ChecksumStatus::Ok);
  }
}

}  // namespace
}  // namespace l45
