// PacketView::decode: every DropReason it returns, each encapsulation it walks, and what the
// accessors say about the innermost IP header and its transport.
#include "l45/packet/decode.hpp"

#include <gtest/gtest.h>

#include <set>
#include <type_traits>

#include "l45/packet/packet.hpp"
#include "test_frames.hpp"

namespace l45 {
namespace {

using test::Frame;
using Buf = std::vector<std::byte>;

static_assert(std::is_trivially_copyable_v<PacketView>);
static_assert(sizeof(PacketView) <= 512, "PacketView is copied by value: keep it small");

Bytes B(const Buf& b) {
  return {b.data(), b.size()};
}
Buf cut(Buf b, size_t n) {
  b.resize(n);
  return b;
}
Buf pad(Buf b, size_t n) {
  if (b.size() < n) b.resize(n, std::byte{0});
  return b;
}

std::string kinds(const PacketView& v) {
  std::string s;
  for (const Layer& l : v.layers()) {
    if (!s.empty()) s += ' ';
    s += layer_kind_name(l.kind);
  }
  return s;
}

PacketView decode(const Buf& b, LinkType link = LinkType::Ethernet, uint32_t wire = 0,
                  DecodeOptions opt = {}) {
  return PacketView::decode(link, B(b), wire ? wire : uint32_t(b.size()), opt);
}
// A view reads the caller's bytes: decoding a temporary buffer would leave it dangling.
PacketView decode(Buf&&, LinkType = LinkType::Ethernet, uint32_t = 0, DecodeOptions = {}) = delete;

Buf eth_ip_tcp(test::TcpSpec t = {}, const std::string& data = "") {
  return Frame().eth(0x0800).ipv4().tcp(t).payload(data).build();
}

// --- every reason the decoder returns ------------------------------------------------------

struct ReasonCase {
  const char* name;
  Buf bytes;
  DropReason want;
  std::string layers;  // what stays decoded
  LinkType link = LinkType::Ethernet;
  uint32_t wire_len = 0;  // 0: the captured length
};

Buf many_vlans(int n) {
  Frame f;
  f.eth(0x8100);
  for (int i = 0; i < n; ++i)
    f.vlan(uint16_t(i + 1), i + 1 < n ? 0x8100 : 0x0800);
  return f.ipv4({.proto = 59}).build();
}

Buf many_labels(int n) {
  Frame f;
  f.eth(0x8847);
  for (int i = 0; i < n; ++i)
    f.mpls(uint32_t(16 + i), false);
  return f.ipv4({.proto = 59}).build();
}

Buf many_hbh(int n) {
  Frame f;
  f.eth(0x86dd).ipv6({.nh = 0});
  for (int i = 0; i < n; ++i)
    f.ext(i + 1 < n ? 0 : 59);
  return f.build();
}

Buf nested_ipip(int n) {
  Frame f;
  f.eth(0x0800);
  for (int i = 0; i < n; ++i)
    f.ipv4({.proto = 4});
  return f.ipv4().tcp().build();
}

// 32 layer slots: eth + 8 tags + IPv6 + 8 hop-by-hop + GRE, twice, then one more header.
Buf layer_table_overflow() {
  Frame f;
  f.eth(0x8100);
  for (int i = 0; i < 8; ++i)
    f.vlan(uint16_t(i + 1), i + 1 < 8 ? 0x8100 : 0x86dd);
  f.ipv6({.nh = 0});
  for (int i = 0; i < 8; ++i)
    f.ext(i + 1 < 8 ? 0 : 47);
  f.gre(0x6558).eth(0x86dd).ipv6({.nh = 0});
  for (int i = 0; i < 8; ++i)
    f.ext(i + 1 < 8 ? 0 : 47);
  f.gre(0x86dd).ipv6({.nh = 0});
  for (int i = 0; i < 8; ++i)
    f.ext(i + 1 < 8 ? 0 : 6);
  return f.tcp().build();
}

std::string repeat(const char* k, int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += std::string(" ") + k;
  return s;
}

std::vector<ReasonCase> reason_cases() {
  Buf full = eth_ip_tcp({}, "0123456789");
  Buf opt_ip = Frame().eth(0x0800).ipv4({.options = std::vector<uint8_t>(24, 1)}).tcp().build();
  Buf v6 = Frame().eth(0x86dd).ipv6().tcp().build();
  return {
      {"complete frame", full, DropReason::None, "eth ip tcp"},
      {"13-byte frame", cut(full, 13), DropReason::EthTruncated, ""},
      {"TCP header cut by snaplen", cut(full, 40), DropReason::SnapCut, "eth ip",
       LinkType::Ethernet, uint32_t(full.size())},
      {"IPv4 options cut by snaplen", cut(opt_ip, 40), DropReason::SnapCut, "eth",
       LinkType::Ethernet, uint32_t(opt_ip.size())},
      {"IPv6 header cut by snaplen", cut(v6, 30), DropReason::SnapCut, "eth", LinkType::Ethernet,
       uint32_t(v6.size())},
      {"VLAN tag of 2 bytes", cut(many_vlans(1), 16), DropReason::VlanTruncated, "eth"},
      {"nine VLAN tags", many_vlans(9), DropReason::VlanTooDeep, "eth" + repeat("vlan", 8)},
      {"MPLS entry of 3 bytes", cut(many_labels(1), 17), DropReason::MplsTruncated, "eth"},
      {"MPLS stack with nothing after it", Frame().eth(0x8847).mpls(16, true).build(),
       DropReason::MplsTruncated, "eth mpls"},
      {"nine MPLS labels", many_labels(9), DropReason::MplsTooDeep, "eth" + repeat("mpls", 8)},
      {"MPLS payload neither IPv4 nor IPv6",
       Frame().eth(0x8847).mpls(16, true).bytes({0x50}).build(), DropReason::UnknownEtherType,
       "eth mpls"},
      {"PPPoE header of 7 bytes", cut(Frame().eth(0x8864).pppoe(0x21).ipv4().build(), 21),
       DropReason::PppoeTruncated, "eth"},
      {"PPPoE length 1", Frame().eth(0x8864).pppoe(0x21, 1).ipv4().build(),
       DropReason::PppoeBadLength, "eth"},
      {"PPPoE length past the frame", Frame().eth(0x8864).pppoe(0x21, 500).ipv4().build(),
       DropReason::PppoeBadLength, "eth"},
      {"PPPoE carrying LCP", Frame().eth(0x8864).pppoe(0xc021).zeros(4).build(),
       DropReason::UnknownEtherType, "eth pppoes"},
      {"SLL header of 15 bytes", Frame().zeros(15).build(), DropReason::SllTruncated, "",
       LinkType::LinuxSll},
      {"SLL2 header of 19 bytes", Frame().zeros(19).build(), DropReason::SllTruncated, "",
       LinkType::LinuxSll2},
      {"ARP of 27 bytes", Frame().eth(0x0806).be16(1).be16(0x0800).bytes({6, 4}).zeros(19).build(),
       DropReason::ArpTruncated, "eth"},
      {"IPv4 header of 19 bytes", cut(full, 33), DropReason::Ipv4Truncated, "eth"},
      {"version 6 under EtherType IPv4", Frame().eth(0x0800).ipv4({.version = 6}).build(),
       DropReason::Ipv4BadVersion, "eth"},
      {"IHL 4", Frame().eth(0x0800).ipv4({.ihl = 4}).tcp().build(), DropReason::Ipv4BadIhl, "eth"},
      {"IHL past the packet", Frame().eth(0x0800).ipv4({.proto = 59, .ihl = 15}).build(),
       DropReason::Ipv4BadIhl, "eth"},
      {"IPv4 total length below the header",
       Frame().eth(0x0800).ipv4({.total_len = 19}).tcp().build(), DropReason::Ipv4BadTotalLength,
       "eth ip"},
      {"IPv4 total length past the frame",
       Frame().eth(0x0800).ipv4({.total_len = 1000}).tcp().build(), DropReason::Truncated,
       "eth ip"},
      {"malformed IPv4 option keeps decoding",
       Frame().eth(0x0800).ipv4({.options = {7, 9, 4, 0}}).tcp().build(),
       DropReason::Ipv4BadOptions, "eth ip tcp"},
      {"IPv6 header of 39 bytes", cut(v6, 53), DropReason::Ipv6Truncated, "eth"},
      {"version 4 under EtherType IPv6", Frame().eth(0x86dd).ipv6({.version = 4}).build(),
       DropReason::Ipv6BadVersion, "eth"},
      {"IPv6 payload length past the frame",
       Frame().eth(0x86dd).ipv6({.payload_len = 1000}).tcp().build(),
       DropReason::Ipv6BadPayloadLength, "eth ipv6"},
      {"hop-by-hop longer than the datagram",
       Frame().eth(0x86dd).ipv6({.nh = 0}).bytes({59, 1}).zeros(6).build(),
       DropReason::Ipv6ExtTruncated, "eth ipv6"},
      {"AH length below 12", Frame().eth(0x86dd).ipv6({.nh = 51}).bytes({59, 0}).zeros(6).build(),
       DropReason::Ipv6ExtTruncated, "eth ipv6"},
      {"nine hop-by-hop headers", many_hbh(9), DropReason::Ipv6ExtTooMany,
       "eth ipv6" + repeat("ipv6.hopopts", 8)},
      {"TCP header past the datagram", Frame().eth(0x0800).ipv4({.total_len = 30}).tcp().build(),
       DropReason::TcpTruncated, "eth ip"},
      {"TCP data offset 4", eth_ip_tcp({.doff = 4}), DropReason::TcpBadDataOffset, "eth ip"},
      {"TCP data offset past the segment", eth_ip_tcp({.doff = 15}), DropReason::TcpBadDataOffset,
       "eth ip"},
      {"malformed TCP option keeps decoding", eth_ip_tcp({.options = {2, 3, 5, 0}}),
       DropReason::TcpBadOption, "eth ip tcp"},
      {"UDP header of 7 bytes", Frame().eth(0x0800).ipv4({.proto = 17}).zeros(7).build(),
       DropReason::UdpTruncated, "eth ip"},
      {"UDP length 7", Frame().eth(0x0800).ipv4({.proto = 17}).udp({.length = 7}).build(),
       DropReason::UdpBadLength, "eth ip"},
      {"UDP length past the datagram",
       Frame().eth(0x0800).ipv4({.proto = 17}).udp({.length = 100}).build(),
       DropReason::UdpBadLength, "eth ip"},
      {"ICMP header of 7 bytes", Frame().eth(0x0800).ipv4({.proto = 1}).zeros(7).build(),
       DropReason::IcmpTruncated, "eth ip"},
      {"ICMPv6 header of 7 bytes", Frame().eth(0x86dd).ipv6({.nh = 58}).zeros(7).build(),
       DropReason::Icmpv6Truncated, "eth ipv6"},
      {"GRE header of 3 bytes", Frame().eth(0x0800).ipv4({.proto = 47}).zeros(3).build(),
       DropReason::GreTruncated, "eth ip"},
      {"GRE checksum field missing",
       Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x0800, 0x8000).zeros(2).build(),
       DropReason::GreTruncated, "eth ip"},
      {"PPTP payload length past the datagram",
       Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x880b, 0x2001).be16(100).be16(1).build(),
       DropReason::GreTruncated, "eth ip gre"},
      {"GRE version 2", Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x0800, 2).ipv4().build(),
       DropReason::GreUnsupported, "eth ip"},
      {"GRE routing bit",
       Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x0800, 0x4000).zeros(8).build(),
       DropReason::GreUnsupported, "eth ip"},
      {"GRE with an unknown protocol",
       Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x88be).zeros(8).build(),
       DropReason::UnknownEtherType, "eth ip gre"},
      {"VXLAN header of 7 bytes",
       Frame().eth(0x0800).ipv4({.proto = 17}).udp({.dport = 4789}).zeros(7).build(),
       DropReason::VxlanTruncated, "eth ip udp"},
      {"four nested IP-in-IP tunnels", nested_ipip(4), DropReason::TunnelTooDeep,
       "eth ip ip ip ip"},
      {"link type 999", full, DropReason::UnknownLinkType, "", LinkType(999)},
      {"LLDP EtherType", Frame().eth(0x88cc).zeros(30).build(), DropReason::UnknownEtherType,
       "eth"},
      {"loopback family 7", Frame().bytes({7, 0, 0, 0}).ipv4().build(),
       DropReason::UnknownEtherType, "null", LinkType::Null},
      {"loopback header of 3 bytes", Frame().bytes({2, 0, 0}).build(), DropReason::Truncated, "",
       LinkType::Null},
      {"empty raw packet", Frame().build(), DropReason::Truncated, "", LinkType::Raw},
      {"raw packet of version 5", Frame().ipv4({.version = 5}).build(), DropReason::Ipv4BadVersion,
       "", LinkType::Raw},
      {"ESP of 4 bytes", Frame().ipv4({.proto = 50}).zeros(4).build(), DropReason::Truncated, "ip",
       LinkType::Ipv4},
      {"layer table overflow", layer_table_overflow(), DropReason::HeadersTooMany,
       "eth" + repeat("vlan", 8) + " ipv6" + repeat("ipv6.hopopts", 8) + " gre eth ipv6" +
           repeat("ipv6.hopopts", 8) + " gre ipv6 ipv6.hopopts"},
  };
}

TEST(PacketViewReasons, EachMalformationGetsItsNamedReasonAndKeepsWhatParsed) {
  for (const ReasonCase& c : reason_cases()) {
    PacketView v = decode(c.bytes, c.link, c.wire_len);
    EXPECT_EQ(drop_reason_name(v.error()), drop_reason_name(c.want)) << c.name;
    EXPECT_EQ(kinds(v), c.layers) << c.name;
  }
}

TEST(PacketViewReasons, EveryReasonTheDecoderCanReturnHasARow) {
  // What decode() can return (decode.cpp's fail() and anomaly() calls). Checksums are reported
  // apart (BadChecksum), non-first fragments are no error (Fragment); other layers own the
  // rest of the table.
  using R = DropReason;
  const R decoder[] = {
      R::None,
      R::Truncated,
      R::SnapCut,
      R::EthTruncated,
      R::VlanTruncated,
      R::VlanTooDeep,
      R::MplsTruncated,
      R::MplsTooDeep,
      R::PppoeTruncated,
      R::PppoeBadLength,
      R::SllTruncated,
      R::ArpTruncated,
      R::Ipv4Truncated,
      R::Ipv4BadVersion,
      R::Ipv4BadIhl,
      R::Ipv4BadTotalLength,
      R::Ipv4BadOptions,
      R::Ipv6Truncated,
      R::Ipv6BadVersion,
      R::Ipv6ExtTruncated,
      R::Ipv6ExtTooMany,
      R::Ipv6BadPayloadLength,
      R::TcpTruncated,
      R::TcpBadDataOffset,
      R::TcpBadOption,
      R::UdpTruncated,
      R::UdpBadLength,
      R::IcmpTruncated,
      R::Icmpv6Truncated,
      R::GreTruncated,
      R::GreUnsupported,
      R::VxlanTruncated,
      R::TunnelTooDeep,
      R::UnknownLinkType,
      R::UnknownEtherType,
      R::HeadersTooMany,
  };
  std::set<DropReason> rows;
  for (const ReasonCase& c : reason_cases())
    rows.insert(c.want);
  for (R r : decoder)
    EXPECT_TRUE(rows.count(r)) << drop_reason_name(r) << " has no row";
}

// --- links and encapsulations --------------------------------------------------------------

TEST(PacketView, EthIpv4TcpExposesEveryInnermostField) {
  Buf f = pad(Frame()
                  .eth(0x0800)
                  .ipv4({.src = "10.1.2.3", .dst = "10.4.5.6", .ttl = 33, .id = 77})
                  .tcp({.sport = 1234, .dport = 443, .seq = 5, .flags = 0x18})
                  .payload("hi")
                  .build(),
              60);
  PacketView v = decode(f);
  ASSERT_EQ(v.error(), DropReason::None);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.link(), LinkType::Ethernet);
  EXPECT_EQ(v.data().size(), 60u);
  EXPECT_EQ(v.wire_len(), 60u);
  EXPECT_EQ(v.ip_version(), 4);
  EXPECT_EQ(v.src_addr().to_string(), "10.1.2.3");
  EXPECT_EQ(v.dst_addr().to_string(), "10.4.5.6");
  EXPECT_EQ(v.ttl(), 33);
  EXPECT_EQ(v.ip_id(), 77u);
  EXPECT_EQ(v.ip_total_len(), 42u);
  EXPECT_EQ(v.l4_proto(), 6);
  EXPECT_FALSE(v.fragment().is_fragment);
  ASSERT_TRUE(v.ipv4());
  EXPECT_EQ(v.ipv4()->payload().size(), 22u);
  EXPECT_FALSE(v.ipv6());
  ASSERT_TRUE(v.tcp());
  EXPECT_EQ(v.tcp()->seq(), TcpSeq(5));
  EXPECT_FALSE(v.udp());
  EXPECT_EQ(v.src_port(), 1234);
  EXPECT_EQ(v.dst_port(), 443);
  ASSERT_TRUE(v.ethernet());
  EXPECT_EQ(v.ethernet()->ether_type(), 0x0800);
  // Ethernet padding (60-byte minimum frame) is not payload.
  EXPECT_EQ(v.payload_len(), 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload().data()), v.payload().size()),
            "hi");
  ASSERT_EQ(v.ip_layers().size(), 1u);
  EXPECT_EQ(v.ip_layers()[0].offset, 14);
  EXPECT_EQ(v.ip_layers()[0].header_len, 20);
  EXPECT_EQ(v.tunnel_depth(), 0);
  const Layer* t = v.find(LayerKind::Tcp);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->offset, 34);
  EXPECT_EQ(v.layer_bytes(*t).size(), 20u);
  EXPECT_EQ(v.find(LayerKind::Udp), nullptr);
}

TEST(PacketView, VlanIdsAreOutermostFirstAcrossQinQ) {
  Buf f = Frame().eth(0x88a8).vlan(100, 0x8100).vlan(200, 0x0800).ipv4().tcp().build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ieee8021ad vlan ip tcp");
  EXPECT_EQ(std::vector<uint16_t>(v.vlan_ids().begin(), v.vlan_ids().end()),
            (std::vector<uint16_t>{100, 200}));
}

TEST(PacketView, MplsStackThenIpv6ByFirstNibble) {
  Buf f = Frame().eth(0x8847).mpls(100, false).mpls(200, true).ipv6({.nh = 17}).udp().build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth mpls mpls ipv6 udp");
  EXPECT_EQ(std::vector<uint32_t>(v.mpls_labels().begin(), v.mpls_labels().end()),
            (std::vector<uint32_t>{100, 200}));
  EXPECT_EQ(v.dst_port(), 53);
}

TEST(PacketView, PppoeSessionCarriesIpv6AndPaddingStaysOut) {
  Buf f = pad(Frame().eth(0x8864).pppoe(0x0057).ipv6({.nh = 59}).build(), 80);
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth pppoes ipv6");
  EXPECT_EQ(v.payload_len(), 0u);
}

TEST(PacketView, EveryLinkTypeReachesIp) {
  Buf ip = Frame().ipv4({.proto = 17}).udp().build();
  Buf ip6 = Frame().ipv6({.nh = 17}).udp().build();
  auto with = [](Frame f, const Buf& rest) {
    Buf b = f.build();
    b.insert(b.end(), rest.begin(), rest.end());
    return b;
  };
  struct Row {
    const char* name;
    LinkType link;
    Buf bytes;
    const char* layers;
  } rows[] = {
      {"SLL", LinkType::LinuxSll, with(Frame().be16(0).be16(1).be16(6).zeros(8).be16(0x0800), ip),
       "sll ip udp"},
      {"SLL2", LinkType::LinuxSll2, with(Frame().be16(0x86dd).zeros(18), ip6), "sll2 ipv6 udp"},
      {"SLL with VLAN", LinkType::LinuxSll,
       with(Frame().be16(0).be16(1).be16(6).zeros(8).be16(0x8100).vlan(5, 0x0800), ip),
       "sll vlan ip udp"},
      {"NULL little-endian", LinkType::Null, with(Frame().bytes({2, 0, 0, 0}), ip), "null ip udp"},
      {"NULL big-endian", LinkType::Null, with(Frame().bytes({0, 0, 0, 2}), ip), "null ip udp"},
      {"NULL AF_INET6 FreeBSD", LinkType::Null, with(Frame().bytes({28, 0, 0, 0}), ip6),
       "null ipv6 udp"},
      {"LOOP AF_INET6 OpenBSD", LinkType::Loop, with(Frame().bytes({0, 0, 0, 24}), ip6),
       "null ipv6 udp"},
      {"RAW v4", LinkType::Raw, ip, "ip udp"},
      {"RAW v6", LinkType::Raw, ip6, "ipv6 udp"},
      {"IPV4", LinkType::Ipv4, ip, "ip udp"},
      {"IPV6", LinkType::Ipv6, ip6, "ipv6 udp"},
  };
  for (const Row& r : rows) {
    PacketView v = decode(r.bytes, r.link);
    EXPECT_EQ(v.error(), DropReason::None) << r.name;
    EXPECT_EQ(kinds(v), r.layers) << r.name;
    EXPECT_EQ(v.dst_port(), 53) << r.name;
  }
}

TEST(PacketView, ArpIsDecodedAndHasNoIp) {
  Buf f = Frame()
              .eth(0x0806)
              .be16(1)
              .be16(0x0800)
              .bytes({6, 4})
              .be16(1)
              .bytes({0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 10, 0, 0, 1})
              .zeros(6)
              .bytes({10, 0, 0, 2})
              .build();
  Buf padded = pad(f, 60);
  PacketView v = decode(padded, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(v.error(), DropReason::None);
  ASSERT_TRUE(v.arp());
  EXPECT_EQ(v.arp()->target_ip().to_string(), "10.0.0.2");
  EXPECT_EQ(v.ip_version(), 0);
  EXPECT_TRUE(v.src_addr().empty());
  EXPECT_EQ(v.payload().size(), 0u);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Unverified);
}

TEST(PacketView, Ipv6ExtensionChainIsRecordedAndEndsAtTheUpperLayer) {
  Buf f = Frame()
              .eth(0x86dd)
              .ipv6({.nh = 0})
              .ext(60)     // hop-by-hop -> destination options
              .ext(43)     // destination options -> routing
              .ext(51, 2)  // routing -> AH
              .ah(6, 4)    // AH -> TCP
              .tcp()
              .build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ipv6 ipv6.hopopts ipv6.dstopts ipv6.routing ah tcp");
  EXPECT_EQ(v.l4_proto(), 6);
  EXPECT_EQ(v.ip_layers()[0].header_len, 40 + 8 + 8 + 16 + 24);
  EXPECT_EQ(v.ip_layers()[0].proto, 6);
  EXPECT_TRUE(v.tcp());
}

TEST(PacketView, EspAndNoNextHeaderEndTheChainWithoutError) {
  Buf esp = Frame().eth(0x86dd).ipv6({.nh = 0}).ext(50).be32(0x1001).be32(1).zeros(16).build();
  PacketView v = decode(esp);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ipv6 ipv6.hopopts esp");
  EXPECT_EQ(v.l4_proto(), 50);
  EXPECT_EQ(v.payload_len(), 24u);
  Buf none = Frame().eth(0x86dd).ipv6({.nh = 60}).ext(59).build();
  PacketView n = decode(none);
  EXPECT_EQ(n.error(), DropReason::None);
  EXPECT_EQ(n.l4_proto(), 59);
}

TEST(PacketView, AhOverIpv4IsWalked) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 51}).ah(17, 4).udp().build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ip ah udp");
  EXPECT_EQ(v.l4_proto(), 17);
  EXPECT_EQ(v.ip_layers()[0].header_len, 20 + 24);
}

// --- fragments -------------------------------------------------------------------------------

TEST(PacketView, Ipv4FirstFragmentDecodesTransportNonFirstHasNone) {
  Buf first = Frame()
                  .eth(0x0800)
                  .ipv4({.proto = 17, .frag = 0x2000})
                  .udp({.length = 3000})
                  .zeros(64)
                  .build();
  PacketView a = decode(first, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(a.error(), DropReason::None);
  EXPECT_TRUE(a.fragment().is_fragment);
  EXPECT_TRUE(a.fragment().more_fragments);
  EXPECT_EQ(a.fragment().offset_bytes, 0u);
  EXPECT_EQ(a.fragment().id, 0x1234u);
  ASSERT_TRUE(a.udp());
  EXPECT_EQ(a.payload_len(), 64u);  // what this fragment carries
  EXPECT_EQ(a.ip_checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(a.checksum_status(), ChecksumStatus::Unverified);

  Buf later = Frame().eth(0x0800).ipv4({.proto = 6, .frag = 185}).zeros(100).build();
  PacketView b = decode(later, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(b.error(), DropReason::None);
  EXPECT_EQ(kinds(b), "eth ip");
  EXPECT_EQ(b.fragment().offset_bytes, 1480u);
  EXPECT_FALSE(b.fragment().more_fragments);
  EXPECT_FALSE(b.tcp());
  EXPECT_EQ(b.l4_proto(), 6);
  EXPECT_EQ(b.payload_len(), 100u);
  EXPECT_EQ(b.checksum_status(), ChecksumStatus::Unverified);
}

TEST(PacketView, Ipv6FragmentsCarryTheirIdAndNonFirstStopAtTheFragmentHeader) {
  Buf first =
      Frame().eth(0x86dd).ipv6({.nh = 44}).frag6(6, 0, true, 0xabcdef01).tcp().zeros(40).build();
  PacketView a = decode(first);
  EXPECT_EQ(a.error(), DropReason::None);
  EXPECT_EQ(kinds(a), "eth ipv6 ipv6.fraghdr tcp");
  EXPECT_EQ(a.ip_id(), 0xabcdef01u);
  EXPECT_EQ(a.fragment().id, 0xabcdef01u);
  EXPECT_EQ(a.payload_len(), 40u);

  Buf later = Frame().eth(0x86dd).ipv6({.nh = 44}).frag6(6, 1232, false, 9).zeros(50).build();
  PacketView b = decode(later);
  EXPECT_EQ(b.error(), DropReason::None);
  EXPECT_EQ(kinds(b), "eth ipv6 ipv6.fraghdr");
  EXPECT_EQ(b.fragment().offset_bytes, 1232u);
  EXPECT_EQ(b.l4_proto(), 6);
  EXPECT_FALSE(b.tcp());
  EXPECT_EQ(b.payload_len(), 50u);
}

TEST(PacketView, AtomicFragmentIsAFragmentThatDecodesAndVerifiesWhole) {
  Buf f = Frame().eth(0x86dd).ipv6({.nh = 44}).frag6(17, 0, false, 5).udp().payload("x").build();
  PacketView v = decode(f, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_TRUE(v.fragment().is_fragment);
  EXPECT_FALSE(v.fragment().more_fragments);
  EXPECT_EQ(v.fragment().offset_bytes, 0u);
  ASSERT_TRUE(v.udp());
  EXPECT_EQ(v.l4_checksum_status(), ChecksumStatus::Ok);
}

TEST(PacketView, TinyFirstFragmentHasNoTransportAndNoError) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 6, .frag = 0x2000}).zeros(8).build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_FALSE(v.tcp());
  EXPECT_EQ(v.payload_len(), 8u);
}

// --- lengths ---------------------------------------------------------------------------------

TEST(PacketView, SnapCutPacketKeepsLengthsFromTheHeaders) {
  Buf f = eth_ip_tcp({}, std::string(1000, 'x'));
  Buf captured = cut(f, 64);
  PacketView v =
      decode(captured, LinkType::Ethernet, uint32_t(f.size()), {.verify_checksums = true});
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(v.wire_len(), f.size());
  EXPECT_EQ(v.payload_len(), 1000u);
  EXPECT_EQ(v.payload().size(), 10u);
  EXPECT_EQ(v.ip_total_len(), 1040u);
  EXPECT_EQ(v.ip_checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.l4_checksum_status(), ChecksumStatus::Unverified);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Unverified);
}

TEST(PacketView, UdpPayloadIsClippedToTheUdpLength) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 17}).udp({.length = 12}).payload("abcdefgh").build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(v.payload_len(), 4u);
  EXPECT_EQ(v.payload().size(), 4u);
}

TEST(PacketView, IcmpPayloadIsTheWholeMessageAsTcpdumpCountsIt) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 1}).icmp(8, 0, 1, 2).payload("abcd").build();
  PacketView v = decode(f);
  ASSERT_TRUE(v.icmp());
  EXPECT_EQ(v.icmp()->echo_seq(), 2);
  EXPECT_EQ(v.payload_len(), 12u);
  EXPECT_EQ(v.src_port(), 0);
}

TEST(PacketView, TsoTotalLengthZeroReadsToTheEndOfTheFrame) {
  Buf f = Frame().eth(0x0800).ipv4({.total_len = 0}).tcp().payload(std::string(3000, 'a')).build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(v.ip_total_len(), 3040u);
  EXPECT_EQ(v.payload_len(), 3000u);
}

TEST(PacketView, RefusedIpLengthsKeepTheAddressesButGiveNoView) {
  // Found by packet_decode_fuzz: the view of a header recorded before its total length was
  // refused must not be built on that length.
  Buf f = Frame().eth(0x0800).ipv4({.src = "10.0.0.1", .total_len = 1}).tcp().build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::Ipv4BadTotalLength);
  EXPECT_EQ(v.src_addr().to_string(), "10.0.0.1");
  EXPECT_FALSE(v.ipv4());
  EXPECT_FALSE(v.tcp());
  EXPECT_EQ(v.payload().size(), 0u);
}

TEST(PacketView, WireLengthBelowTheCapturedLengthIsTheCapturedLength) {
  Buf f = eth_ip_tcp();
  PacketView v = PacketView::decode(LinkType::Ethernet, B(f), 10);
  EXPECT_EQ(v.wire_len(), f.size());
  EXPECT_EQ(v.error(), DropReason::None);
}

TEST(PacketView, BadOptionsAnomalyIsReplacedByALaterStoppingReason) {
  Buf f = Frame().eth(0x0800).ipv4({.options = {7, 9, 4, 0}}).tcp({.doff = 4}).build();
  EXPECT_EQ(decode(f).error(), DropReason::TcpBadDataOffset);
  Buf g =
      Frame().eth(0x0800).ipv4({.options = {7, 9, 4, 0}}).tcp({.options = {2, 3, 5, 0}}).build();
  EXPECT_EQ(decode(g).error(), DropReason::Ipv4BadOptions);  // the first anomaly stays
}

// --- tunnels ---------------------------------------------------------------------------------

TEST(PacketView, IpInIpKeysOnTheInnerHeaderAndKeepsTheOuter) {
  Buf f = Frame()
              .eth(0x0800)
              .ipv4({.proto = 41, .src = "192.0.2.1", .dst = "192.0.2.2"})
              .ipv6({.nh = 6, .src = "2001:db8::a", .dst = "2001:db8::b"})
              .tcp({.dport = 22})
              .build();
  PacketView v = decode(f, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ip ipv6 tcp");
  EXPECT_EQ(v.tunnel_depth(), 1);
  ASSERT_EQ(v.ip_layers().size(), 2u);
  EXPECT_EQ(v.ip_layers()[0].src().to_string(), "192.0.2.1");
  EXPECT_EQ(v.ip_layers()[0].proto, 41);
  EXPECT_EQ(v.ip_version(), 6);
  EXPECT_EQ(v.src_addr().to_string(), "2001:db8::a");
  EXPECT_EQ(v.dst_port(), 22);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(PacketView, GreBridgesEthernetWhoseVlanTagsJoinTheList) {
  Buf f = Frame()
              .eth(0x8100)
              .vlan(10, 0x0800)
              .ipv4({.proto = 47})
              .gre(0x6558, 0x2000)
              .be32(77)
              .eth(0x8100)
              .vlan(20, 0x0800)
              .ipv4({.proto = 17, .src = "10.9.9.9"})
              .udp()
              .build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth vlan ip gre eth vlan ip udp");
  EXPECT_EQ(std::vector<uint16_t>(v.vlan_ids().begin(), v.vlan_ids().end()),
            (std::vector<uint16_t>{10, 20}));
  EXPECT_EQ(v.gre()->key(), 77u);
  EXPECT_EQ(v.ethernet()->ether_type(), 0x8100);  // the outer one
  EXPECT_EQ(v.src_addr().to_string(), "10.9.9.9");
}

TEST(PacketView, GreCarriesMplsAndPptpCarriesPpp) {
  Buf m = Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x8847).mpls(300, true).ipv4().tcp().build();
  PacketView a = decode(m);
  EXPECT_EQ(a.error(), DropReason::None);
  EXPECT_EQ(kinds(a), "eth ip gre mpls ip tcp");

  Buf inner = Frame().ipv4({.proto = 17}).udp().build();
  Frame p;
  p.eth(0x0800).ipv4({.proto = 47}).gre(0x880b, 0x3001).be16(uint16_t(inner.size() + 4)).be16(7);
  p.be32(1).bytes({0xff, 0x03, 0x00, 0x21});
  Buf pptp = p.build();
  pptp.insert(pptp.end(), inner.begin(), inner.end());
  // The outer IPv4 total length did not see the inner bytes appended after build().
  store_be16(pptp.data() + 16, uint16_t(pptp.size() - 14));
  PacketView b = decode(pptp);
  EXPECT_EQ(b.error(), DropReason::None);
  EXPECT_EQ(kinds(b), "eth ip gre ppp ip udp");
  EXPECT_EQ(b.gre()->pptp_call_id(), 7);
}

TEST(PacketView, VxlanInnerFrameIsDecodedToItsTransport) {
  Buf f = Frame()
              .eth(0x0800)
              .ipv4({.proto = 17})
              .udp({.sport = 50000, .dport = 4789})
              .vxlan(4242)
              .eth(0x0800)
              .ipv4({.proto = 6, .dst = "172.16.0.9"})
              .tcp({.dport = 8080})
              .build();
  PacketView v = decode(f, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ip udp vxlan eth ip tcp");
  EXPECT_EQ(v.vxlan()->vni(), 4242u);
  EXPECT_FALSE(v.udp());
  EXPECT_EQ(v.dst_port(), 8080);
  EXPECT_EQ(v.dst_addr().to_string(), "172.16.0.9");
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
}

TEST(PacketView, NotFollowingTunnelsStopsAtTheOuterTransport) {
  DecodeOptions opt{.follow_tunnels = false};
  Buf vx =
      Frame().eth(0x0800).ipv4({.proto = 17}).udp({.dport = 4789}).vxlan(1).eth(0x0800).build();
  PacketView a = decode(vx, LinkType::Ethernet, 0, opt);
  EXPECT_EQ(a.error(), DropReason::None);
  EXPECT_EQ(kinds(a), "eth ip udp");
  EXPECT_EQ(a.dst_port(), 4789);
  Buf gre = Frame().eth(0x0800).ipv4({.proto = 47}).gre(0x0800).ipv4().build();
  PacketView b = decode(gre, LinkType::Ethernet, 0, opt);
  EXPECT_EQ(kinds(b), "eth ip gre");
  EXPECT_EQ(b.l4_proto(), 47);
  EXPECT_EQ(b.tunnel_depth(), 0);
}

TEST(PacketView, VxlanPortIsAnOption) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 17}).udp({.dport = 8472}).vxlan(3).eth(0x88cc).build();
  EXPECT_EQ(kinds(decode(f)), "eth ip udp");
  PacketView v = decode(f, LinkType::Ethernet, 0, {.vxlan_port = 8472});
  EXPECT_EQ(kinds(v), "eth ip udp vxlan eth");
  EXPECT_EQ(v.error(), DropReason::UnknownEtherType);
}

TEST(PacketView, TunnelInsideAFragmentIsNotFollowed) {
  Buf f = Frame().eth(0x0800).ipv4({.proto = 4, .frag = 0x2000}).ipv4().tcp().build();
  PacketView v = decode(f);
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_EQ(kinds(v), "eth ip");
}

TEST(PacketView, IcmpErrorQuoteDecodesAsACutPacket) {
  Buf f = Frame()
              .eth(0x0800)
              .ipv4({.proto = 1})
              .icmp(11, 0)
              .ipv4({.proto = 6, .src = "10.0.0.7", .total_len = 40})
              .be16(1234)
              .be16(80)
              .be32(99)
              .build();
  PacketView v = decode(f);
  ASSERT_TRUE(v.icmp());
  Bytes q = v.icmp()->quoted();
  EXPECT_EQ(q.size(), 28u);
  // The quote says how long the original was; decoding it with that wire length is SnapCut.
  PacketView inner = PacketView::decode(LinkType::Ipv4, q, 40);
  EXPECT_EQ(inner.error(), DropReason::SnapCut);
  EXPECT_EQ(inner.src_addr().to_string(), "10.0.0.7");
}

// --- the fast path ---------------------------------------------------------------------------

TEST(PacketViewFastPath, AgreesWithTheGeneralWalkOnEveryPrefixOfCommonAndNearMissFrames) {
  std::vector<Buf> frames = {
      eth_ip_tcp({}, "payload"),
      eth_ip_tcp({.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}}, "ts"),
      eth_ip_tcp({.options = {2, 4, 5, 180}}),  // other options: general walk
      eth_ip_tcp({.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0}, .doff = 7}),  // bad TS length
      eth_ip_tcp({.doff = 4}),
      eth_ip_tcp({.doff = 15}),
      pad(eth_ip_tcp({}, "x"), 60),
      Frame().eth(0x8100).vlan(7, 0x0800).ipv4().tcp().payload("v").build(),
      Frame().eth(0x8100).vlan(7, 0x8100).vlan(8, 0x0800).ipv4().tcp().build(),
      Frame().eth(0x0800).ipv4({.proto = 17}).udp().payload("dns").build(),
      Frame().eth(0x0800).ipv4({.proto = 17}).udp({.checksum = 0}).payload("nocsum").build(),
      Frame().eth(0x0800).ipv4({.proto = 17}).udp({.length = 9}).payload("longer").build(),
      Frame().eth(0x0800).ipv4({.proto = 17}).udp({.length = 7}).payload("short").build(),
      Frame()
          .eth(0x0800)
          .ipv4({.proto = 17})
          .udp({.dport = 4789})
          .vxlan(1)
          .eth(0x0800)
          .ipv4()
          .tcp()
          .build(),
      Frame().eth(0x0800).ipv4({.proto = 1}).icmp(8, 0, 1, 1).build(),
      Frame().eth(0x0800).ipv4({.frag = 0x2000}).tcp().build(),
      Frame().eth(0x0800).ipv4({.frag = 0x4000}).tcp().build(),  // DF only
      Frame().eth(0x0800).ipv4({.options = {1, 1, 1, 1}}).tcp().build(),
      Frame().eth(0x0800).ipv4({.total_len = 0}).tcp().payload("tso").build(),
      Frame().eth(0x0800).ipv4({.total_len = 30}).tcp().build(),
      Frame().eth(0x0800).ipv4({.total_len = 1000}).tcp().build(),
      Frame().eth(0x86dd).ipv6().tcp().payload("v6").build(),
      Frame().eth(0x86dd).ipv6().tcp({.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}}).build(),
      Frame().eth(0x86dd).ipv6({.nh = 17}).udp().payload("v6udp").build(),
      Frame().eth(0x86dd).ipv6({.nh = 17}).udp({.checksum = 0}).build(),
      Frame().eth(0x86dd).ipv6({.nh = 17, .payload_len = 4}).udp().build(),
      Frame().eth(0x86dd).ipv6({.nh = 6, .payload_len = 0}).tcp().build(),
      Frame().eth(0x86dd).ipv6({.nh = 0}).ext(6).tcp().build(),
      Frame().eth(0x86dd).ipv6({.nh = 59}).zeros(8).build(),
      Frame().eth(0x8100).vlan(9, 0x86dd).ipv6({.nh = 17}).udp({.dport = 4789}).vxlan(2).build(),
      Frame().eth(0x8100).vlan(9, 0x86dd).ipv6({.version = 4}).tcp().build(),
  };
  DecodeOptions options[] = {{}, {.follow_tunnels = false}, {.verify_checksums = true}};
  size_t compared = 0, framed = 0;
  for (const Buf& f : frames) {
    for (size_t n = 0; n <= f.size(); ++n) {
      for (uint32_t wire : {uint32_t(n), uint32_t(f.size()), uint32_t(f.size() + 100)}) {
        for (const DecodeOptions& o : options) {
          Bytes b = B(f).first(n);
          PacketView fast = PacketView::decode(LinkType::Ethernet, b, wire, o);
          PacketView slow = detail::decode_general(LinkType::Ethernet, b, wire, o);
          ASSERT_TRUE(detail::same_decode(fast, slow))
              << "frame " << (&f - frames.data()) << " cut to " << n << " wire " << wire;
          ++compared;
          // The flow engine's TcpFrame takes a subset of these frames: what it reads, and the
          // view it builds, are the decoder's.
          TcpFrame fr;
          if (o.verify_checksums || !fr.parse(b, wire)) continue;
          SCOPED_TRACE("frame " + std::to_string(&f - frames.data()) + " cut to " +
                       std::to_string(n) + " wire " + std::to_string(wire));
          ASSERT_TRUE(detail::same_decode(PacketView(fr), slow));
          ASSERT_TRUE(slow.ok() && slow.tcp() && !slow.fragment().is_fragment);
          EXPECT_EQ(fr.ip_header(), slow.ip_layers().back().header);
          EXPECT_EQ(fr.ip_total_len, slow.ip_total_len());
          EXPECT_EQ(fr.payload_len, slow.payload_len());
          EXPECT_EQ(fr.payload().data(), slow.payload().data());
          EXPECT_EQ(fr.payload().size(), slow.payload().size());
          EXPECT_EQ(fr.tcp().header_len(), slow.tcp()->header_len());
          EXPECT_EQ(fr.tcp().src_port(), slow.src_port());
          EXPECT_EQ(fr.tcp().payload().size(), slow.tcp()->payload().size());
          ++framed;
        }
      }
    }
  }
  EXPECT_GT(compared, 5000u);
  EXPECT_GT(framed, 50u);
}

// --- checksums -------------------------------------------------------------------------------

struct CsumCase {
  const char* name;
  Buf bytes;
  ChecksumStatus all, ip, l4;
  uint32_t wire_len = 0;
};

Buf corrupt(Buf b, size_t at) {
  b[at] ^= std::byte{0x40};
  return b;
}

TEST(PacketViewChecksums, StatusFollowsWhatCouldBeVerified) {
  Buf tcp4 = eth_ip_tcp({}, "payload");
  Buf udp4_zero = Frame().eth(0x0800).ipv4({.proto = 17}).udp({.checksum = 0}).payload("a").build();
  Buf udp6_zero = Frame().eth(0x86dd).ipv6({.nh = 17}).udp({.checksum = 0}).payload("a").build();
  Buf icmp4 = Frame().eth(0x0800).ipv4({.proto = 1}).icmp(8, 0, 1, 1).payload("abc").build();
  Buf icmp6 = Frame().eth(0x86dd).ipv6({.nh = 58}).icmpv6(128, 0, 1, 1).payload("abc").build();
  Buf udp6 = Frame().eth(0x86dd).ipv6({.nh = 17}).udp().payload("abc").build();
  Buf nonext = Frame().eth(0x86dd).ipv6({.nh = 59}).build();
  using S = ChecksumStatus;
  CsumCase rows[] = {
      {"TCP over IPv4", tcp4, S::Ok, S::Ok, S::Ok},
      // The TTL is not in the TCP pseudo-header: TCP stays good.
      {"IPv4 header corrupted", corrupt(tcp4, 14 + 8), S::Bad, S::Bad, S::Ok},
      {"TCP payload corrupted", corrupt(tcp4, tcp4.size() - 1), S::Bad, S::Ok, S::Bad},
      {"UDP over IPv4 without checksum", udp4_zero, S::Ok, S::Ok, S::Unverified},
      {"UDP over IPv6 without checksum", udp6_zero, S::Bad, S::Unverified, S::Bad},
      {"UDP over IPv6", udp6, S::Ok, S::Unverified, S::Ok},
      {"ICMP", icmp4, S::Ok, S::Ok, S::Ok},
      {"ICMP corrupted", corrupt(icmp4, icmp4.size() - 1), S::Bad, S::Ok, S::Bad},
      {"ICMPv6", icmp6, S::Ok, S::Unverified, S::Ok},
      {"ICMPv6 corrupted", corrupt(icmp6, icmp6.size() - 1), S::Bad, S::Unverified, S::Bad},
      {"IPv6 with nothing to check", nonext, S::Unverified, S::Unverified, S::Unverified},
      {"TCP header cut", cut(tcp4, 40), S::Unverified, S::Ok, S::Unverified, uint32_t(tcp4.size())},
  };
  for (const CsumCase& c : rows) {
    PacketView v = decode(c.bytes, LinkType::Ethernet, c.wire_len, {.verify_checksums = true});
    EXPECT_EQ(checksum_status_name(v.checksum_status()), checksum_status_name(c.all)) << c.name;
    EXPECT_EQ(checksum_status_name(v.ip_checksum_status()), checksum_status_name(c.ip)) << c.name;
    EXPECT_EQ(checksum_status_name(v.l4_checksum_status()), checksum_status_name(c.l4)) << c.name;
  }
}

TEST(PacketViewChecksums, NothingIsVerifiedUnlessAsked) {
  Buf f = eth_ip_tcp();
  PacketView v = decode(f);
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Unverified);
  EXPECT_EQ(v.ip_checksum_status(), ChecksumStatus::Unverified);
  EXPECT_EQ(v.l4_checksum_status(), ChecksumStatus::Unverified);
}

TEST(PacketViewChecksums, SourceRouteOptionMovesThePseudoHeaderDestination) {
  // LSRR through 203.0.113.9: the TCP pseudo-header uses that final destination (RFC 791 3.1,
  // RFC 9293 3.1). The composer uses the header's destination, so the checksum must be Bad
  // there and Ok once recomputed against the route's last address.
  Buf f = Frame().eth(0x0800).ipv4({.options = {1, 131, 7, 4, 203, 0, 113, 9}}).tcp().build();
  PacketView v = decode(f, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(v.l4_checksum_status(), ChecksumStatus::Bad);
  std::byte* tcp = f.data() + 14 + 28;
  store_be16(tcp + 16, 0);
  uint32_t sum = pseudo_header_sum_v4(f.data() + 14 + 12, f.data() + 14 + 24, 6, 20);
  store_be16(tcp + 16, checksum_finish(checksum_add({tcp, 20}, sum)));
  PacketView w = decode(f, LinkType::Ethernet, 0, {.verify_checksums = true});
  EXPECT_EQ(w.l4_checksum_status(), ChecksumStatus::Ok);
}

TEST(PacketView, DecodesAnOwnedPacketWithItsMetadata) {
  Buf f = eth_ip_tcp({}, "abc");
  PacketMeta m;
  m.link = LinkType::Ethernet;
  m.wire_len = uint32_t(f.size() + 100);
  Packet p = Packet::copy_of(B(f), m);
  PacketView v = PacketView::decode(p);
  EXPECT_EQ(v.wire_len(), f.size() + 100);
  // The wire frame was longer than the IP datagram: trailing bytes, not an error.
  EXPECT_EQ(v.error(), DropReason::None);
}

TEST(PacketView, DefaultViewIsEmpty) {
  PacketView v;
  EXPECT_EQ(v.error(), DropReason::None);
  EXPECT_TRUE(v.layers().empty());
  EXPECT_EQ(v.ip_version(), 0);
  EXPECT_EQ(v.ttl(), 0);
  EXPECT_FALSE(v.tcp() || v.udp() || v.icmp() || v.icmpv6() || v.arp() || v.ethernet());
}

TEST(LayerKind, NamesAreDistinct) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kLayerKindCount; ++i)
    names.insert(layer_kind_name(LayerKind(i)));
  EXPECT_EQ(names.size(), kLayerKindCount);
}

}  // namespace
}  // namespace l45
