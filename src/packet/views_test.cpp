// The header views on their own: what parse() accepts and refuses, and what each accessor
// reads. Frames come from test_frames.hpp; the decoder's tests are in decode_test.cpp.
#include <gtest/gtest.h>

#include "l45/packet/arp.hpp"
#include "l45/packet/ethernet.hpp"
#include "l45/packet/gre.hpp"
#include "l45/packet/header_option.hpp"
#include "l45/packet/icmp.hpp"
#include "l45/packet/ipv4.hpp"
#include "l45/packet/ipv6.hpp"
#include "l45/packet/loopback.hpp"
#include "l45/packet/mpls.hpp"
#include "l45/packet/pppoe.hpp"
#include "l45/packet/sll.hpp"
#include "l45/packet/tcp.hpp"
#include "l45/packet/udp.hpp"
#include "l45/packet/vxlan.hpp"
#include "test_frames.hpp"

namespace l45 {
namespace {

using test::Frame;
using Buf = std::vector<std::byte>;

Bytes B(const Buf& b) {
  return {b.data(), b.size()};
}
Buf cut(Buf b, size_t n) {
  b.resize(n);
  return b;
}

TEST(EthernetView, ReadsAddressesAndType) {
  Buf f = Frame().eth(0x0800).payload("xy").build();
  auto e = EthernetView::parse(B(f));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dst().to_string(), "02:00:00:00:00:02");
  EXPECT_EQ(e->src().to_string(), "02:00:00:00:00:01");
  EXPECT_EQ(e->ether_type(), 0x0800);
  EXPECT_FALSE(e->is_length());
  EXPECT_EQ(e->header_len(), 14u);
  EXPECT_EQ(e->payload().size(), 2u);
}

TEST(EthernetView, ThirteenBytesIsNoHeader) {
  Buf f = Frame().eth(0x0800).build();
  EXPECT_FALSE(EthernetView::parse(B(f).first(13)));
}

TEST(EthernetView, TypeFieldUpTo1500IsAnIeee8023Length) {
  Buf f = Frame().eth(46).build();
  EXPECT_TRUE(EthernetView::parse(B(f))->is_length());
}

TEST(VlanView, SplitsTciIntoPcpDeiVid) {
  Buf f = Frame().be16(0xb00a | 0x1000).be16(0x86dd).build();  // pcp 5, dei 1, vid 10
  auto v = VlanView::parse(B(f));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->pcp(), 5);
  EXPECT_TRUE(v->dei());
  EXPECT_EQ(v->vid(), 10);
  EXPECT_EQ(v->ether_type(), 0x86dd);
  EXPECT_FALSE(VlanView::parse(B(f).first(3)));
  EXPECT_TRUE(is_vlan_tpid(0x8100) && is_vlan_tpid(0x88a8) && is_vlan_tpid(0x9100));
  EXPECT_FALSE(is_vlan_tpid(0x0800));
}

TEST(MplsView, ReadsLabelTcBottomAndTtl) {
  Buf f = Frame().be32(1048575u << 12 | 5u << 9 | 0x100 | 7).build();
  auto m = MplsView::parse(B(f));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->label(), 1048575u);
  EXPECT_EQ(m->traffic_class(), 5);
  EXPECT_TRUE(m->bottom_of_stack());
  EXPECT_EQ(m->ttl(), 7);
  EXPECT_FALSE(MplsView::parse(B(f).first(3)));
}

TEST(PppoeView, PayloadIsClippedToTheLengthField) {
  Buf f = Frame().pppoe(0x0021, 6).payload("abcdZZZZ").build();  // 2 + "abcd"
  auto p = PppoeView::parse(B(f));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->version(), 1);
  EXPECT_EQ(p->type(), 1);
  EXPECT_EQ(p->code(), 0);
  EXPECT_EQ(p->session_id(), 1);
  EXPECT_EQ(p->ppp_protocol(), ppp_proto::kIpv4);
  EXPECT_EQ(p->payload().size(), 4u);
}

TEST(PppoeView, CompressedPppProtocolIsOneByte) {
  Buf f = Frame().bytes({0x11, 0, 0, 9}).be16(3).bytes({0x21}).payload("ab").build();
  auto p = PppoeView::parse(B(f));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ppp_protocol(), 0x21);
  EXPECT_EQ(p->header_len(), 7u);
  EXPECT_EQ(p->payload().size(), 2u);
}

TEST(PppoeView, LengthBelowThePppProtocolIsRefused) {
  Buf f = Frame().pppoe(0x0021, 1).build();
  EXPECT_FALSE(PppoeView::parse(B(f)));
  Buf g = Frame().pppoe(0x0021, 2).build();
  EXPECT_FALSE(PppoeView::parse(B(g).first(7)));
}

TEST(PppView, ReadsFullAndCompressedProtocolWithAndWithoutAddressControl) {
  struct Row {
    Buf bytes;
    size_t header_len;
    uint16_t protocol;
    bool ac;
  } rows[] = {
      {Frame().bytes({0xff, 0x03, 0x00, 0x21}).build(), 4, 0x0021, true},
      {Frame().bytes({0xff, 0x03, 0x21}).build(), 3, 0x21, true},
      {Frame().bytes({0x00, 0x57}).build(), 2, 0x0057, false},
      {Frame().bytes({0x21, 0x45}).build(), 1, 0x21, false},
  };
  for (const Row& r : rows) {
    auto p = PppView::parse(B(r.bytes));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->header_len(), r.header_len);
    EXPECT_EQ(p->protocol(), r.protocol);
    EXPECT_EQ(p->has_address_control(), r.ac);
  }
  EXPECT_FALSE(PppView::parse(B(Frame().bytes({0xff, 0x03, 0x00}).build())));
}

TEST(SllView, ReadsTypeAddressAndProtocol) {
  Buf f = Frame().be16(4).be16(1).be16(6).bytes({1, 2, 3, 4, 5, 6, 0, 0}).be16(0x0800).build();
  auto s = SllView::parse(B(f));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->packet_type(), 4);
  EXPECT_EQ(s->arphrd_type(), 1);
  EXPECT_EQ(s->addr().size(), 6u);
  EXPECT_EQ(s->protocol(), 0x0800);
  EXPECT_EQ(s->header_len(), 16u);
  EXPECT_FALSE(SllView::parse(B(f).first(15)));
}

TEST(Sll2View, ReadsProtocolInterfaceAndAddress) {
  Buf f = Frame().be16(0x86dd).be16(0).be32(7).be16(1).bytes({0, 6}).zeros(8).build();
  auto s = Sll2View::parse(B(f));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->protocol(), 0x86dd);
  EXPECT_EQ(s->interface_index(), 7u);
  EXPECT_EQ(s->arphrd_type(), 1);
  EXPECT_EQ(s->packet_type(), 0);
  EXPECT_EQ(s->addr().size(), 6u);
  EXPECT_EQ(s->header_len(), 20u);
  EXPECT_FALSE(Sll2View::parse(B(f).first(19)));
}

TEST(NullView, AcceptsEitherByteOrderAndEveryAfInet6) {
  struct Row {
    Buf bytes;
    bool loop;
    uint32_t family;
    uint8_t ip;
  } rows[] = {
      {Frame().bytes({2, 0, 0, 0}).build(), false, 2, 4},    // little-endian host
      {Frame().bytes({0, 0, 0, 2}).build(), false, 2, 4},    // big-endian host
      {Frame().bytes({10, 0, 0, 0}).build(), false, 10, 6},  // Linux
      {Frame().bytes({24, 0, 0, 0}).build(), false, 24, 6},  // NetBSD, OpenBSD
      {Frame().bytes({0, 0, 0, 28}).build(), false, 28, 6},  // FreeBSD, big-endian
      {Frame().bytes({30, 0, 0, 0}).build(), false, 30, 6},  // macOS
      {Frame().bytes({0, 0, 0, 24}).build(), true, 24, 6},   // LOOP: network order
      {Frame().bytes({7, 0, 0, 0}).build(), false, 7, 0},
  };
  for (const Row& r : rows) {
    auto n = NullView::parse(B(r.bytes), r.loop);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->family(), r.family);
    EXPECT_EQ(n->ip_version(), r.ip);
  }
  EXPECT_FALSE(NullView::parse(B(rows[0].bytes).first(3)));
}

Buf arp_frame() {
  return Frame()
      .be16(1)
      .be16(0x0800)
      .bytes({6, 4})
      .be16(2)
      .bytes({0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 10, 0, 0, 1})
      .bytes({0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 10, 0, 0, 2})
      .build();
}

TEST(ArpView, ReadsEthernetIpv4Form) {
  Buf f = arp_frame();
  auto a = ArpView::parse(B(f));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_ether_ipv4());
  EXPECT_EQ(a->op(), ArpView::kReply);
  EXPECT_EQ(a->sender_mac().to_string(), "aa:bb:cc:dd:ee:ff");
  EXPECT_EQ(a->sender_ip().to_string(), "10.0.0.1");
  EXPECT_EQ(a->target_mac().to_string(), "11:22:33:44:55:66");
  EXPECT_EQ(a->target_ip().to_string(), "10.0.0.2");
  EXPECT_EQ(a->header_len(), 28u);
}

TEST(ArpView, AddressesPastTheBytesAreRefused) {
  Buf f = arp_frame();
  EXPECT_FALSE(ArpView::parse(B(f).first(27)));
  EXPECT_FALSE(ArpView::parse(B(f).first(7)));
}

TEST(ArpView, OtherFormsKeepGenericAddressesButNoMacOrIp) {
  Buf f = Frame().be16(6).be16(0x0800).bytes({2, 4}).be16(1).zeros(12).build();
  auto a = ArpView::parse(B(f));
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->is_ether_ipv4());
  EXPECT_EQ(a->sender_hw().size(), 2u);
  EXPECT_EQ(a->target_proto().size(), 4u);
  EXPECT_TRUE(a->sender_ip().empty());
  EXPECT_EQ(a->header_len(), 20u);
}

TEST(OptionCursor, WalksNopLengthOptionsAndStopsAfterEol) {
  Buf f = Frame().bytes({1, 7, 7, 4, 0, 0, 0, 0, 1, 0, 0xee, 0xee}).build();
  OptionCursor c(B(f), 20);
  std::vector<std::tuple<int, int, int, size_t>> seen;
  for (HeaderOption o; c.next(o);)
    seen.emplace_back(o.kind, o.offset, o.length, o.value.size());
  EXPECT_FALSE(c.malformed());
  std::vector<std::tuple<int, int, int, size_t>> want = {
      {1, 20, 1, 0}, {7, 21, 7, 5}, {1, 28, 1, 0}, {0, 29, 1, 0}};
  EXPECT_EQ(seen, want);
}

TEST(OptionCursor, BadLengthsAreMalformed) {
  struct Row {
    const char* what;
    Buf bytes;
  } rows[] = {
      {"length 0", Frame().bytes({7, 0, 0, 0}).build()},
      {"length 1", Frame().bytes({7, 1, 0, 0}).build()},
      {"past the end", Frame().bytes({1, 7, 9, 0}).build()},
      {"no length octet", Frame().bytes({1, 1, 1, 7}).build()},
  };
  for (const Row& r : rows) {
    OptionCursor c(B(r.bytes), 20);
    for (HeaderOption o; c.next(o);) {
    }
    EXPECT_TRUE(c.malformed()) << r.what;
  }
}

TEST(Ipv4View, ReadsEveryField) {
  Buf f = Frame()
              .ipv4({.proto = 17, .ttl = 9, .id = 0xbeef, .frag = 0x2000 | 3})
              .bytes({0xb8})
              .payload("hello")
              .build();
  f[1] = std::byte{0xb9};  // DSCP 46, ECN 1
  auto ip = Ipv4View::parse(B(f));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->version(), 4);
  EXPECT_EQ(ip->header_len(), 20u);
  EXPECT_EQ(ip->dscp(), 46);
  EXPECT_EQ(ip->ecn(), 1);
  EXPECT_EQ(ip->total_length(), 26);
  EXPECT_EQ(ip->id(), 0xbeef);
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_EQ(ip->fragment_offset_bytes(), 24u);
  EXPECT_TRUE(ip->is_fragment());
  EXPECT_EQ(ip->ttl(), 9);
  EXPECT_EQ(ip->protocol(), 17);
  EXPECT_EQ(ip->src().to_string(), "192.0.2.1");
  EXPECT_EQ(ip->dst().to_string(), "198.51.100.2");
  EXPECT_EQ(ip->payload().size(), 6u);
  EXPECT_FALSE(ip->header_checksum_ok());  // the TOS edit came after the checksum
}

TEST(Ipv4View, ParseRefusesWhatTheBytesDisprove) {
  struct Row {
    const char* what;
    Buf bytes;
    bool ok;
  } rows[] = {
      {"plain", Frame().ipv4().build(), true},
      {"19 bytes", cut(Frame().ipv4().build(), 19), false},
      {"version 6", Frame().ipv4({.version = 6}).build(), false},
      {"IHL 4", Frame().ipv4({.ihl = 4}).build(), false},
      {"IHL past the bytes", Frame().ipv4({.ihl = 6}).build(), false},
      {"total length below header", Frame().ipv4({.total_len = 19}).build(), false},
      {"total length past the bytes only clips", Frame().ipv4({.total_len = 1000}).build(), true},
      {"total length 0 (TSO)", Frame().ipv4({.total_len = 0}).payload("abc").build(), true},
  };
  for (const Row& r : rows)
    EXPECT_EQ(Ipv4View::parse(B(r.bytes)).has_value(), r.ok) << r.what;
}

TEST(Ipv4View, TsoZeroTotalLengthReadsToTheEnd) {
  Buf f = Frame().ipv4({.total_len = 0}).payload("abc").build();
  EXPECT_EQ(Ipv4View::parse(B(f))->payload().size(), 3u);
}

TEST(Ipv4View, OptionsAreIteratedAndValidated) {
  // Record route (7) with room for one address, NOP, router alert (148), EOL.
  Buf f = Frame().ipv4({.options = {7, 7, 4, 0, 0, 0, 0, 1, 148, 4, 0, 0, 0}}).build();
  auto ip = Ipv4View::parse(B(f));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->header_len(), 36u);
  EXPECT_TRUE(ip->options_valid());
  EXPECT_TRUE(ip->header_checksum_ok());
  std::vector<int> kinds;
  auto c = ip->option_cursor();
  for (HeaderOption o; c.next(o);)
    kinds.push_back(o.kind);
  EXPECT_EQ(kinds, (std::vector<int>{7, 1, 148, 0}));

  Buf bad = Frame().ipv4({.options = {7, 9, 4, 0}}).build();
  EXPECT_FALSE(Ipv4View::parse(B(bad))->options_valid());
}

TEST(Ipv6View, ReadsEveryField) {
  Buf f = Frame().ipv6({.nh = 59, .hop_limit = 3}).payload("abcd").build();
  f[0] = std::byte{0x6a};  // traffic class 0xa5, flow label 0x54321
  f[1] = std::byte{0x55};
  f[2] = std::byte{0x43};
  f[3] = std::byte{0x21};
  auto ip = Ipv6View::parse(B(f));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->traffic_class(), 0xa5);
  EXPECT_EQ(ip->flow_label(), 0x54321u);
  EXPECT_EQ(ip->payload_length(), 4);
  EXPECT_EQ(ip->next_header(), 59);
  EXPECT_EQ(ip->hop_limit(), 3);
  EXPECT_EQ(ip->src().to_string(), "2001:db8::1");
  EXPECT_EQ(ip->dst().to_string(), "2001:db8::2");
  EXPECT_EQ(ip->payload().size(), 4u);
  EXPECT_FALSE(Ipv6View::parse(B(f).first(39)));
  EXPECT_FALSE(Ipv6View::parse(B(Frame().ipv6({.version = 4}).build())));
}

TEST(Ipv6ExtView, LengthFollowsEachHeaderTypesRule) {
  struct Row {
    const char* what;
    uint8_t type;
    Buf bytes;
    size_t len;  // 0: refused
  } rows[] = {
      {"hop-by-hop 8", 0, Frame().ext(6, 1).build(), 8},
      {"destination options 16", 60, Frame().ext(6, 2).build(), 16},
      {"routing 24", 43, Frame().ext(6, 3).build(), 24},
      {"fragment is always 8", 44, Frame().frag6(6, 8, true, 7).build(), 8},
      {"AH (4 + 2) * 4", 51, Frame().ah(6, 4).build(), 24},
      {"AH (1 + 2) * 4 = 12", 51, Frame().ah(6, 1).build(), 12},
      {"AH length 0 is below 12", 51, Frame().bytes({6, 0}).zeros(10).build(), 0},
      {"past the bytes", 0, Frame().bytes({6, 1}).zeros(6).build(), 0},
      {"not an extension", 6, Frame().ext(6, 1).build(), 0},
  };
  for (const Row& r : rows) {
    auto e = Ipv6ExtView::parse(r.type, B(r.bytes));
    EXPECT_EQ(e ? e->header_len() : 0, r.len) << r.what;
    if (e) {
      EXPECT_EQ(e->next_header(), 6) << r.what;
    }
  }
}

TEST(Ipv6ExtView, FragmentRoutingAndAhFields) {
  Buf fr = Frame().frag6(17, 1480, true, 0xdeadbeef).build();
  auto f = Ipv6ExtView::parse(44, B(fr));
  EXPECT_EQ(f->fragment_offset_bytes(), 1480u);
  EXPECT_TRUE(f->more_fragments());
  EXPECT_EQ(f->fragment_id(), 0xdeadbeefu);
  Buf rt = Frame().bytes({6, 2, 2, 1}).zeros(4).raw(std::vector<uint8_t>(16, 0xab)).build();
  auto r = Ipv6ExtView::parse(43, B(rt));
  EXPECT_EQ(r->routing_type(), 2);
  EXPECT_EQ(r->segments_left(), 1);
  Buf a = Frame().ah(6, 4).build();
  auto h = Ipv6ExtView::parse(51, B(a));
  EXPECT_EQ(h->spi(), 0x100u);
  EXPECT_EQ(h->sequence(), 1u);
}

TEST(TcpView, ReadsEveryField) {
  Buf f =
      Frame()
          .tcp({.sport = 1, .dport = 2, .seq = 0xfffffffe, .ack = 9, .flags = 0xff, .window = 7})
          .payload("data")
          .build();
  auto t = TcpView::parse(B(f));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->src_port(), 1);
  EXPECT_EQ(t->dst_port(), 2);
  EXPECT_EQ(t->seq(), TcpSeq(0xfffffffe));
  EXPECT_EQ(t->ack(), TcpSeq(9));
  EXPECT_EQ(t->header_len(), 20u);
  EXPECT_TRUE(t->fin() && t->syn() && t->rst() && t->psh() && t->has_ack() && t->urg() &&
              t->ece() && t->cwr());
  EXPECT_EQ(t->window(), 7);
  EXPECT_EQ(t->payload().size(), 4u);
}

TEST(TcpView, DataOffsetBelowFiveOrPastTheBytesIsRefused) {
  EXPECT_FALSE(TcpView::parse(B(Frame().tcp({.doff = 4}).build())));
  EXPECT_FALSE(TcpView::parse(B(Frame().tcp({.doff = 6}).build())));
  EXPECT_FALSE(TcpView::parse(B(Frame().tcp().build()).first(19)));
  EXPECT_TRUE(TcpView::parse(B(Frame().tcp({.doff = 6}).zeros(4).build())));
}

TEST(TcpOptions, EveryKnownOptionAndUnknownKindsAreRead) {
  Buf f = Frame()
              .tcp({.options = {2,   4,  0x05, 0xb4,                      // MSS 1460
                                1,   3,  3,    7,                         // NOP, WS 7
                                4,   2,                                   // SACK permitted
                                8,   10, 0,    0,    0, 1,  0, 0, 0, 2,   // TS 1, 2
                                5,   10, 0,    0,    0, 10, 0, 0, 0, 20,  // SACK 10-20
                                254, 4,  0xf9, 0x89}})                    // experimental
              .build();
  auto t = TcpView::parse(B(f));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->options_valid());
  TcpOptions o = t->options();
  EXPECT_FALSE(o.malformed);
  EXPECT_EQ(o.mss, 1460);
  EXPECT_EQ(o.window_scale, 7);
  EXPECT_TRUE(o.sack_permitted);
  ASSERT_TRUE(o.timestamps);
  EXPECT_EQ(o.timestamps->value, 1u);
  EXPECT_EQ(o.timestamps->echo, 2u);
  ASSERT_EQ(o.sack_blocks().size(), 1u);
  EXPECT_EQ(o.sack_blocks()[0].left, TcpSeq(10));
  EXPECT_EQ(o.sack_blocks()[0].right, TcpSeq(20));
  ASSERT_EQ(o.others().size(), 1u);
  EXPECT_EQ(o.others()[0].kind, 254);
  EXPECT_EQ(o.others()[0].offset, 20 + 30);
  EXPECT_EQ(o.others()[0].length, 4);
}

TEST(TcpOptions, FourSackBlocksFillTheOptionSpace) {
  std::vector<uint8_t> opt = {1, 1, 5, 34};
  for (uint8_t i = 1; i <= 8; ++i)
    opt.insert(opt.end(), {0, 0, 0, uint8_t(i * 10)});
  Buf f = Frame().tcp({.options = opt}).build();
  TcpOptions o = TcpView::parse(B(f))->options();
  ASSERT_EQ(o.sack_blocks().size(), 4u);
  EXPECT_EQ(o.sack_blocks()[3].left, TcpSeq(70));
  EXPECT_EQ(o.sack_blocks()[3].right, TcpSeq(80));
}

TEST(TcpOptions, WrongLengthsAreMalformedAndKeepWhatCameBefore) {
  struct Row {
    const char* what;
    std::vector<uint8_t> opts;
  } rows[] = {
      {"MSS length 3", {2, 4, 5, 180, 2, 3, 5, 0}},
      {"window scale length 4", {2, 4, 5, 180, 3, 4, 7, 0}},
      {"SACK-permitted length 3", {2, 4, 5, 180, 4, 3, 0, 0}},
      {"timestamps length 9", {2, 4, 5, 180, 8, 9, 0, 0, 0, 1, 0, 0}},
      {"SACK length 11", {2, 4, 5, 180, 5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}},
      {"SACK with no block", {2, 4, 5, 180, 5, 2, 0, 0}},
      {"length below 2", {2, 4, 5, 180, 30, 1, 0, 0}},
      {"length past the header", {2, 4, 5, 180, 30, 8, 0, 0}},
      {"kind with no length octet", {2, 4, 5, 180, 1, 1, 1, 30}},
  };
  for (const Row& r : rows) {
    Buf f = Frame().tcp({.options = r.opts}).build();
    auto t = TcpView::parse(B(f));
    ASSERT_TRUE(t) << r.what;
    EXPECT_FALSE(t->options_valid()) << r.what;
    TcpOptions o = t->options();
    EXPECT_TRUE(o.malformed) << r.what;
    EXPECT_EQ(o.mss, 1460) << r.what;
  }
}

TEST(TcpOptions, EolEndsTheListBeforeGarbage) {
  Buf f = Frame().tcp({.options = {2, 4, 5, 180, 0, 99, 99, 99}}).build();
  auto t = TcpView::parse(B(f));
  EXPECT_TRUE(t->options_valid());
  EXPECT_FALSE(t->options().malformed);
}

TEST(UdpView, PayloadIsClippedToTheLength) {
  Buf f = Frame().udp({.length = 10}).payload("abcdef").build();
  auto u = UdpView::parse(B(f));
  ASSERT_TRUE(u);
  EXPECT_EQ(u->src_port(), 5353);
  EXPECT_EQ(u->dst_port(), 53);
  EXPECT_EQ(u->length(), 10);
  EXPECT_EQ(u->payload().size(), 2u);
  EXPECT_FALSE(UdpView::parse(B(Frame().udp({.length = 7}).build())));
  EXPECT_FALSE(UdpView::parse(B(f).first(7)));
  // A length past the bytes (cut capture) clips.
  EXPECT_EQ(UdpView::parse(B(Frame().udp({.length = 100}).payload("ab").build()))->payload().size(),
            2u);
}

TEST(IcmpView, EchoFieldsAndErrorQuote) {
  Buf echo = Frame().icmp(8, 0, 0x1234, 7).payload("ping").build();
  auto e = IcmpView::parse(B(echo));
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->is_echo());
  EXPECT_FALSE(e->is_error());
  EXPECT_EQ(e->echo_id(), 0x1234);
  EXPECT_EQ(e->echo_seq(), 7);
  EXPECT_TRUE(e->quoted().empty());
  EXPECT_EQ(e->payload().size(), 4u);

  Buf err = Frame().icmp(3, 4, 0, 1400).ipv4({.proto = 6}).tcp().build();
  auto u = IcmpView::parse(B(err));
  EXPECT_TRUE(u->is_error());
  EXPECT_EQ(u->next_hop_mtu(), 1400);
  EXPECT_EQ(u->quoted().size(), 40u);
  EXPECT_FALSE(IcmpView::parse(B(err).first(7)));
}

TEST(Icmpv6View, EchoFieldsAndErrorQuote) {
  Buf echo = Frame().icmpv6(128, 0, 1, 2).build();
  auto e = Icmpv6View::parse(B(echo));
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->is_echo());
  EXPECT_EQ(e->echo_id(), 1);
  EXPECT_EQ(e->echo_seq(), 2);
  EXPECT_FALSE(e->is_error());
  Buf big = Frame().icmpv6(2, 0).ipv6().build();
  auto b = Icmpv6View::parse(B(big));
  EXPECT_TRUE(b->is_error());
  EXPECT_EQ(b->quoted().size(), 40u);
  EXPECT_FALSE(Icmpv6View::parse(B(big).first(7)));
}

TEST(GreView, OptionalFieldsSetTheHeaderLength) {
  struct Row {
    const char* what;
    uint16_t fv;
    size_t len;
  } rows[] = {
      {"plain", 0x0000, 4},  {"C", 0x8000, 8},    {"K", 0x2000, 8},         {"S", 0x1000, 8},
      {"C K S", 0xb000, 16}, {"v1 K", 0x2001, 8}, {"v1 K S A", 0x3081, 16},
  };
  for (const Row& r : rows) {
    Buf f = Frame().gre(0x0800, r.fv).zeros(12).build();
    auto g = GreView::parse(B(f));
    ASSERT_TRUE(g) << r.what;
    EXPECT_EQ(g->header_len(), r.len) << r.what;
    EXPECT_EQ(g->protocol(), 0x0800) << r.what;
    EXPECT_FALSE(GreView::parse(B(f).first(r.len - 1))) << r.what;
  }
}

TEST(GreView, ReadsKeySequenceAndPptpFields) {
  Buf f = Frame().gre(0x6558, 0xb000).be16(0xabcd).be16(0).be32(42).be32(7).build();
  auto g = GreView::parse(B(f));
  EXPECT_EQ(g->checksum(), 0xabcd);
  EXPECT_EQ(g->key(), 42u);
  EXPECT_EQ(g->sequence(), 7u);
  EXPECT_FALSE(g->ack());

  Buf p = Frame().gre(0x880b, 0x3081).be16(3).be16(99).be32(5).be32(4).payload("abcdef").build();
  auto v1 = GreView::parse(B(p));
  EXPECT_EQ(v1->version(), 1);
  EXPECT_EQ(v1->pptp_payload_length(), 3);
  EXPECT_EQ(v1->pptp_call_id(), 99);
  EXPECT_EQ(v1->sequence(), 5u);
  EXPECT_EQ(v1->ack(), 4u);
  EXPECT_EQ(v1->payload().size(), 3u);
}

TEST(GreView, RoutingVersionTwoAndKeylessPptpAreRefused) {
  EXPECT_FALSE(GreView::parse(B(Frame().gre(0x0800, 0x4000).zeros(8).build())));
  EXPECT_FALSE(GreView::parse(B(Frame().gre(0x0800, 0x0002).zeros(8).build())));
  EXPECT_FALSE(GreView::parse(B(Frame().gre(0x880b, 0x0001).zeros(8).build())));
}

TEST(VxlanView, ReadsVniAndValidFlag) {
  Buf f = Frame().vxlan(0xabcdef).build();
  auto v = VxlanView::parse(B(f));
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->vni_valid());
  EXPECT_EQ(v->vni(), 0xabcdefu);
  EXPECT_FALSE(VxlanView::parse(B(f).first(7)));
}

}  // namespace
}  // namespace l45
