// FlowTable and FlowKey: key symmetry and ICMP error attribution on builder-made packets, the
// index under forced hash collisions and random operations against std::map, stale handles,
// caps, expiry order, memory per flow, and a real capture against tshark's conversations.
#include "l45/flow/flow_table.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

const MacAddr kMacA{{0x02, 0, 0, 0, 0, 1}};
const MacAddr kMacB{{0x02, 0, 0, 0, 0, 2}};

IpAddr ip(const char* s) {
  return *IpAddr::parse(s);
}

std::optional<KeyedPacket> key_of_packet(const Packet& p, FlowKeyOptions opt = {}) {
  return key_of(PacketView::decode(p), opt);
}

Packet tcp_packet(const char* src, uint16_t sp, const char* dst, uint16_t dp) {
  PacketBuilder b;
  b.ethernet(kMacA, kMacB);
  if (ip(src).is_v4())
    b.ipv4(ip(src), ip(dst));
  else
    b.ipv6(ip(src), ip(dst));
  return b.tcp(sp, dp).flags(tcp_flag::kSyn).build();
}

Packet udp_packet(const char* src, uint16_t sp, const char* dst, uint16_t dp) {
  PacketBuilder b;
  b.ethernet(kMacA, kMacB);
  if (ip(src).is_v4())
    b.ipv4(ip(src), ip(dst));
  else
    b.ipv6(ip(src), ip(dst));
  return b.udp(sp, dp).payload("hello").build();
}

// A distinct IPv4 TCP key per n.
FlowKey key_n(uint32_t n) {
  return make_flow_key(ip_proto::kTcp, IpAddr::from_host_v4(0x0a000000 + (n >> 8)),
                       uint16_t(1024 + (n & 0xff)), IpAddr::from_host_v4(0xc0000201), 80)
      .key;
}

Timestamp at(int64_t s) {
  return Timestamp::from_sec_nsec(s, 0);
}

struct Val {
  uint64_t id = 0;
};

// --- keys -------------------------------------------------------------------------------------

TEST(FlowKey, BothDirectionsOfATcpV4ConnectionGiveOneKeyAndOppositeDirs) {
  auto c2s = key_of_packet(tcp_packet("192.0.2.10", 40000, "198.51.100.1", 80));
  auto s2c = key_of_packet(tcp_packet("198.51.100.1", 80, "192.0.2.10", 40000));
  ASSERT_TRUE(c2s && s2c);
  EXPECT_EQ(c2s->key, s2c->key);
  EXPECT_NE(c2s->dir, s2c->dir);
  EXPECT_EQ(c2s->key.proto, ip_proto::kTcp);
  EXPECT_EQ(c2s->key.family, 4);
  EXPECT_EQ(c2s->key.a(), ip("192.0.2.10"));  // the lower address comes first
  EXPECT_EQ(c2s->key.port_a, 40000);
  EXPECT_EQ(c2s->dir, KeyDir::Forward);
  EXPECT_FALSE(c2s->icmp_error);
}

TEST(FlowKey, BothDirectionsOfAUdpV6FlowGiveOneKey) {
  auto fwd = key_of_packet(udp_packet("2001:db8::2", 5353, "2001:db8::1", 53));
  auto rev = key_of_packet(udp_packet("2001:db8::1", 53, "2001:db8::2", 5353));
  ASSERT_TRUE(fwd && rev);
  EXPECT_EQ(fwd->key, rev->key);
  EXPECT_EQ(fwd->dir, KeyDir::Reverse);
  EXPECT_EQ(rev->dir, KeyDir::Forward);
  EXPECT_EQ(fwd->key.family, 6);
  EXPECT_EQ(fwd->key.b(), ip("2001:db8::2"));
}

TEST(FlowKey, SameAddressesOrderByPortAndAnyFieldChangeGivesAnotherKey) {
  auto k = key_of_packet(tcp_packet("10.0.0.1", 2000, "10.0.0.1", 1000));
  auto r = key_of_packet(tcp_packet("10.0.0.1", 1000, "10.0.0.1", 2000));
  ASSERT_TRUE(k && r);
  EXPECT_EQ(k->key, r->key);
  EXPECT_EQ(k->key.port_a, 1000);
  auto base = key_of_packet(tcp_packet("10.0.0.1", 1000, "10.0.0.2", 80))->key;
  EXPECT_NE(base, key_of_packet(tcp_packet("10.0.0.1", 1001, "10.0.0.2", 80))->key);
  EXPECT_NE(base, key_of_packet(tcp_packet("10.0.0.3", 1000, "10.0.0.2", 80))->key);
  EXPECT_NE(base, key_of_packet(udp_packet("10.0.0.1", 1000, "10.0.0.2", 80))->key);
  // ::ffff:10.0.0.1 is IPv6, not the IPv4 address.
  EXPECT_NE(base, key_of_packet(tcp_packet("::ffff:10.0.0.1", 1000, "::ffff:10.0.0.2", 80))->key);
}

TEST(FlowKey, IcmpEchoRequestAndReplyShareAKeyByIdentifier) {
  Packet req = PacketBuilder()
                   .ethernet(kMacA, kMacB)
                   .ipv4(ip("192.0.2.1"), ip("192.0.2.9"))
                   .icmp_echo_request(77, 1)
                   .build();
  Packet rep = PacketBuilder()
                   .ethernet(kMacB, kMacA)
                   .ipv4(ip("192.0.2.9"), ip("192.0.2.1"))
                   .icmp_echo_reply(77, 1)
                   .build();
  Packet other = PacketBuilder()
                     .ethernet(kMacA, kMacB)
                     .ipv4(ip("192.0.2.1"), ip("192.0.2.9"))
                     .icmp_echo_request(78, 1)
                     .build();
  auto a = key_of_packet(req), b = key_of_packet(rep), c = key_of_packet(other);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->key, b->key);
  EXPECT_NE(a->dir, b->dir);
  EXPECT_EQ(a->key.port_a, 77);
  EXPECT_EQ(a->key.port_b, 77);
  EXPECT_NE(a->key, c->key);

  Packet req6 = PacketBuilder()
                    .ethernet(kMacA, kMacB)
                    .ipv6(ip("2001:db8::1"), ip("2001:db8::9"))
                    .icmpv6_echo_request(5, 1)
                    .build();
  Packet rep6 = PacketBuilder()
                    .ethernet(kMacB, kMacA)
                    .ipv6(ip("2001:db8::9"), ip("2001:db8::1"))
                    .icmpv6_echo_reply(5, 1)
                    .build();
  auto a6 = key_of_packet(req6), b6 = key_of_packet(rep6);
  ASSERT_TRUE(a6 && b6);
  EXPECT_EQ(a6->key, b6->key);
  EXPECT_EQ(a6->key.proto, ip_proto::kIcmpv6);
}

TEST(FlowKey, IcmpErrorKeysToTheTcpFlowItQuotesInTheReturnDirection) {
  Packet syn = tcp_packet("192.0.2.10", 40000, "198.51.100.1", 80);
  auto err = make_icmp_error(syn, icmp_type::kDestUnreachable, 3);
  ASSERT_TRUE(err);
  auto flow = key_of_packet(syn);
  auto e = key_of_packet(*err);
  ASSERT_TRUE(flow && e);
  EXPECT_EQ(e->key, flow->key);
  EXPECT_EQ(e->key.proto, ip_proto::kTcp);
  EXPECT_EQ(e->dir, reverse(flow->dir));
  EXPECT_TRUE(e->icmp_error);
}

TEST(FlowKey, Icmpv6ErrorKeysToTheUdpFlowItQuotes) {
  Packet dgram = udp_packet("2001:db8::2", 5353, "2001:db8::1", 53);
  auto err = make_icmp_error(dgram, icmpv6_type::kDestUnreachable, 4);
  ASSERT_TRUE(err);
  auto flow = key_of_packet(dgram);
  auto e = key_of_packet(*err);
  ASSERT_TRUE(flow && e);
  EXPECT_EQ(e->key, flow->key);
  EXPECT_EQ(e->dir, reverse(flow->dir));
  EXPECT_TRUE(e->icmp_error);
}

TEST(FlowKey, IcmpErrorQuotingAnEchoKeysToThePingFlow) {
  Packet req = PacketBuilder()
                   .ethernet(kMacA, kMacB)
                   .ipv4(ip("192.0.2.1"), ip("192.0.2.9"))
                   .icmp_echo_request(77, 1)
                   .build();
  // make_icmp_error refuses to answer ICMP; a router answers an echo with Time Exceeded.
  Bytes ip_part = PacketView::decode(req).data().subspan(14);
  Packet err = PacketBuilder()
                   .ethernet(kMacB, kMacA)
                   .ipv4(ip("203.0.113.1"), ip("192.0.2.1"))
                   .icmp_error(icmp_type::kTimeExceeded, 0, ip_part)
                   .build();
  auto k = key_of_packet(req), e = key_of_packet(err);
  ASSERT_TRUE(k && e);
  EXPECT_EQ(e->key, k->key);
}

TEST(FlowKey, IcmpErrorWithAQuoteTooShortForPortsHasNoKey) {
  Packet syn = tcp_packet("192.0.2.10", 40000, "198.51.100.1", 80);
  Bytes ip_part = PacketView::decode(syn).data().subspan(14, 22);  // IP header + 2 bytes
  Packet err = PacketBuilder()
                   .ethernet(kMacB, kMacA)
                   .ipv4(ip("198.51.100.1"), ip("192.0.2.10"))
                   .icmp_error(icmp_type::kDestUnreachable, 3, ip_part)
                   .build();
  EXPECT_FALSE(key_of_packet(err));
  Packet junk = PacketBuilder()
                    .ethernet(kMacB, kMacA)
                    .ipv4(ip("198.51.100.1"), ip("192.0.2.10"))
                    .icmp(icmp_type::kDestUnreachable, 3)
                    .payload("not an IP header")
                    .build();
  EXPECT_FALSE(key_of_packet(junk));
}

TEST(FlowKey, InnermostVlanIsPartOfTheKeyOnlyWhenAsked) {
  auto on_vlan = [](uint16_t vid) {
    return PacketBuilder()
        .ethernet(kMacA, kMacB)
        .vlan(100)
        .vlan(vid)
        .ipv4(ip("10.0.0.1"), ip("10.0.0.2"))
        .udp(1000, 53)
        .build();
  };
  FlowKeyOptions with{.key_vlan = true};
  auto a = key_of_packet(on_vlan(7), with), b = key_of_packet(on_vlan(8), with);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->key, b->key);
  EXPECT_EQ(a->key.vlan, 7);
  EXPECT_EQ(key_of_packet(on_vlan(7))->key, key_of_packet(on_vlan(8))->key);
  EXPECT_EQ(key_of_packet(on_vlan(7))->key.vlan, 0);
}

TEST(FlowKey, NonFirstFragmentAndNonIpPacketsHaveNoKey) {
  Packet frag = PacketBuilder()
                    .ethernet(kMacA, kMacB)
                    .ipv4(ip("10.0.0.1"), ip("10.0.0.2"))
                    .fragment_offset(10)
                    .ip_protocol(ip_proto::kUdp)
                    .payload("rest of a datagram")
                    .build();
  EXPECT_FALSE(key_of_packet(frag));
  Packet arp = PacketBuilder()
                   .ethernet(kMacA, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                   .arp_request(kMacA, ip("10.0.0.1"), ip("10.0.0.2"))
                   .build();
  EXPECT_FALSE(key_of_packet(arp));
}

// key_into()'s inline IPv4 path builds the key's words itself: they must be make_flow_key()'s
// key, byte for byte, and hash as that key does.
TEST(FlowKey, InlineIpv4KeyAndItsWordsAreMakeFlowKeysKeyAndHash) {
  struct Case {
    const char *src, *dst;
    uint16_t sp, dp, vlan;
    bool udp;
  };
  const Case cases[] = {
      {"192.0.2.10", "198.51.100.1", 40000, 80, 0, false},
      {"198.51.100.1", "192.0.2.10", 80, 40000, 0, false},  // the higher address sends
      {"10.0.0.1", "10.0.0.1", 2000, 1000, 0, false},       // same address: by port
      {"203.0.113.255", "0.0.0.1", 1, 65535, 0, true},
      {"10.1.2.3", "10.3.2.1", 53, 5353, 4094, true},
  };
  FlowKeyHasher hasher(7);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.src) + " -> " + c.dst);
    PacketBuilder b;
    b.ethernet(kMacA, kMacB);
    if (c.vlan) b.vlan(c.vlan);
    b.ipv4(ip(c.src), ip(c.dst));
    if (c.udp)
      b.udp(c.sp, c.dp).payload("x");
    else
      b.tcp(c.sp, c.dp).flags(tcp_flag::kSyn);
    Packet p = b.build();
    const PacketView v = PacketView::decode(p);
    KeyedPacket kp;
    FlowKeyWords w{};
    ASSERT_TRUE(key_into(v, FlowKeyOptions{.key_vlan = true}, kp, w));
    const KeyedPacket want = make_flow_key(c.udp ? ip_proto::kUdp : ip_proto::kTcp, ip(c.src), c.sp,
                                           ip(c.dst), c.dp, c.vlan);
    EXPECT_EQ(std::memcmp(&kp.key, &want.key, sizeof(FlowKey)), 0);
    EXPECT_EQ(kp.dir, want.dir);
    FlowKey from_words;
    w.store(from_words);
    EXPECT_EQ(std::memcmp(&from_words, &want.key, sizeof(FlowKey)), 0);
    EXPECT_EQ(hasher.words(w), hasher(want.key));
  }
}

TEST(FlowKey, HashDependsOnSeedAndEveryField) {
  FlowKey k = key_n(1);
  std::set<uint64_t> seen{flow_key_hash(k, 1)};
  EXPECT_NE(flow_key_hash(k, 1), flow_key_hash(k, 2));
  for (int f = 0; f < 6; ++f) {
    FlowKey m = k;
    switch (f) {
      case 0:
        m.addr_a[15] ^= 1;
        break;
      case 1:
        m.addr_b[0] ^= 0x80;
        break;
      case 2:
        ++m.port_a;
        break;
      case 3:
        ++m.port_b;
        break;
      case 4:
        ++m.vlan;
        break;
      case 5:
        ++m.proto;
        break;
    }
    EXPECT_TRUE(seen.insert(flow_key_hash(m, 1)).second) << "field " << f;
  }
}

// --- the table --------------------------------------------------------------------------------

uint64_t constant_hash(const FlowKey&, uint64_t) {
  return 42;
}
uint64_t four_hashes(const FlowKey& k, uint64_t seed) {
  return flow_key_hash(k, seed) & 3;
}

TEST(FlowTable, FullKeyCompareSeparatesFlowsWhoseHashesAllCollide) {
  FlowTable<Val> t({.max_flows = 64, .hash_for_test = constant_hash});
  std::vector<FlowHandle> h;
  for (uint32_t n = 0; n < 40; ++n) {
    auto r = t.find_or_insert(key_n(n), KeyDir::Forward, at(0));
    ASSERT_TRUE(r.created);
    t.get(r.handle)->id = n;
    h.push_back(r.handle);
  }
  // Erasing in the middle of the one long chain leaves every other flow findable.
  for (uint32_t n = 0; n < 40; n += 3)
    ASSERT_TRUE(t.erase(h[n]));
  for (uint32_t n = 0; n < 40; ++n) {
    FlowHandle f = t.find(key_n(n));
    if (n % 3 == 0) {
      EXPECT_FALSE(f) << n;
    } else {
      ASSERT_TRUE(f) << n;
      EXPECT_EQ(t.get(f)->id, n);
    }
  }
  EXPECT_EQ(t.size(), 26u);
}

TEST(FlowTable, RandomOperationsAgreeWithAStdMap) {
  FlowTable<Val> t(
      {.max_flows = 256, .when_full = FullPolicy::RefuseNew, .hash_for_test = four_hashes});
  std::map<uint32_t, FlowHandle> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    uint32_t n = rng() % 400;
    if (rng() % 3 == 0) {
      auto it = model.find(n);
      FlowHandle f = t.find(key_n(n));
      ASSERT_EQ(bool(f), it != model.end()) << step;
      if (f) {
        ASSERT_EQ(f, it->second);
        ASSERT_TRUE(t.erase(f));
        ASSERT_FALSE(t.get(f));
        model.erase(it);
      }
    } else {
      auto r = t.find_or_insert(key_n(n), KeyDir::Forward, at(step));
      if (model.count(n)) {
        ASSERT_FALSE(r.created);
        ASSERT_EQ(r.handle, model[n]);
        ASSERT_EQ(t.get(r.handle)->id, n);
      } else if (model.size() == 256) {
        ASSERT_FALSE(r.handle);
      } else {
        ASSERT_TRUE(r.created);
        t.get(r.handle)->id = n;
        model[n] = r.handle;
      }
    }
    ASSERT_EQ(t.size(), model.size());
  }
  EXPECT_GT(t.stats().refused, 0u);
  EXPECT_EQ(t.stats().drops.get(DropReason::FlowTableFull), t.stats().refused);
}

TEST(FlowTable, HandleToAnErasedFlowGoesStaleWhenTheKeyIsInsertedAgain) {
  FlowTable<Val> t({.max_flows = 4});
  auto first = t.find_or_insert(key_n(1), KeyDir::Forward, at(0));
  t.get(first.handle)->id = 111;
  ASSERT_TRUE(t.erase(first.handle));
  EXPECT_FALSE(t.get(first.handle));
  EXPECT_FALSE(t.erase(first.handle));
  // The 4-tuple reused after close is a new connection: same slot, new generation.
  auto second = t.find_or_insert(key_n(1), KeyDir::Reverse, at(1));
  ASSERT_TRUE(second.created);
  EXPECT_EQ(second.handle.index, first.handle.index);
  EXPECT_NE(second.handle.generation, first.handle.generation);
  EXPECT_FALSE(t.get(first.handle));
  EXPECT_FALSE(t.contains(first.handle));
  ASSERT_TRUE(t.get(second.handle));
  EXPECT_EQ(t.get(second.handle)->id, 0u);  // a fresh value, not the old flow's
  t.touch(first.handle, at(5));             // a stale touch is ignored
  EXPECT_EQ(*t.last_seen(second.handle), at(1));
  EXPECT_FALSE(t.get(FlowHandle{}));
  EXPECT_EQ(t.stats().created, 2u);
  EXPECT_EQ(t.stats().erased, 1u);
}

TEST(FlowTable, TheEndpointThatCreatedTheFlowIsTheClient) {
  FlowTable<Val> t({.max_flows = 4});
  auto c2s = key_of_packet(tcp_packet("198.51.100.1", 40000, "192.0.2.10", 80));
  auto s2c = key_of_packet(tcp_packet("192.0.2.10", 80, "198.51.100.1", 40000));
  auto r = t.find_or_insert(c2s->key, c2s->dir, at(0));
  EXPECT_EQ(t.side_of(r.handle, c2s->dir), Side::Client);
  EXPECT_EQ(t.side_of(t.find(s2c->key), s2c->dir), Side::Server);
}

TEST(FlowTable, EvictOldestIdleClosesTheLeastRecentlySeenFlow) {
  FlowTable<Val> t({.max_flows = 3, .when_full = FullPolicy::EvictOldestIdle});
  std::vector<FlowHandle> h;
  for (uint32_t n = 0; n < 3; ++n) {
    h.push_back(t.find_or_insert(key_n(n), KeyDir::Forward, at(n)).handle);
    t.get(h.back())->id = n;
  }
  t.touch(h[0], at(10));  // flow 1 is now the one idle longest, then 2, then 0
  std::vector<uint64_t> closed;
  auto on_close = [&](FlowHandle fh, CloseReason why, Val& v) {
    EXPECT_EQ(why, CloseReason::Evicted);
    EXPECT_TRUE(t.contains(fh));  // still readable during the callback
    closed.push_back(v.id);
  };
  auto r3 = t.find_or_insert(key_n(3), KeyDir::Forward, at(11), on_close);
  ASSERT_TRUE(r3.created);
  t.get(r3.handle)->id = 3;
  auto r4 = t.find_or_insert(key_n(4), KeyDir::Forward, at(12), on_close);
  ASSERT_TRUE(r4.created);
  EXPECT_EQ(closed, (std::vector<uint64_t>{1, 2}));
  EXPECT_FALSE(t.get(h[1]));
  EXPECT_FALSE(t.get(h[2]));
  EXPECT_TRUE(t.get(h[0]));
  EXPECT_EQ(t.stats().evicted, 2u);
  EXPECT_EQ(t.stats().drops.get(DropReason::FlowEvicted), 2u);
  EXPECT_EQ(t.stats().refused, 0u);
  EXPECT_EQ(t.stats().peak, 3u);
}

TEST(FlowTable, RefuseNewCountsFlowTableFullAndKeepsEveryExistingFlow) {
  FlowTable<Val> t({.max_flows = 2, .when_full = FullPolicy::RefuseNew});
  auto a = t.find_or_insert(key_n(0), KeyDir::Forward, at(0));
  auto b = t.find_or_insert(key_n(1), KeyDir::Forward, at(1));
  auto c = t.find_or_insert(key_n(2), KeyDir::Forward, at(2));
  EXPECT_FALSE(c.handle);
  EXPECT_FALSE(c.created);
  EXPECT_TRUE(t.get(a.handle) && t.get(b.handle));
  // An existing key is still found when full.
  EXPECT_EQ(t.find_or_insert(key_n(1), KeyDir::Reverse, at(3)).handle, b.handle);
  EXPECT_EQ(t.stats().refused, 1u);
  EXPECT_EQ(t.stats().drops.get(DropReason::FlowTableFull), 1u);
  EXPECT_EQ(t.stats().evicted, 0u);
}

TEST(FlowTable, ExpireClosesFlowsIdlePastTheirClassTimeoutOldestFirst) {
  FlowTableConfig cfg{.max_flows = 16};
  cfg.timeouts[0] = Duration::seconds(30);   // e.g. handshake
  cfg.timeouts[1] = Duration::seconds(300);  // e.g. established
  cfg.timeouts[2] = Duration{0};             // never by idleness
  FlowTable<Val> t(cfg);
  std::vector<FlowHandle> h;
  for (uint32_t n = 0; n < 6; ++n) {
    h.push_back(t.find_or_insert(key_n(n), KeyDir::Forward, at(n)).handle);
    t.get(h.back())->id = n;
  }
  t.set_timeout_class(h[1], 1);
  t.set_timeout_class(h[4], 2);
  t.touch(h[2], at(20));
  std::vector<uint64_t> closed;
  auto on_close = [&](FlowHandle fh, CloseReason why, Val& v) {
    EXPECT_EQ(why, CloseReason::IdleTimeout);
    EXPECT_TRUE(t.contains(fh));
    closed.push_back(v.id);
  };
  // At 34 s: flows 0 (seen 0 s) and 3 (3 s) have been idle over 30 s; 1 has 300 s; 2 was
  // seen at 20 s; 5 at 5 s is idle exactly 29 s.
  EXPECT_EQ(t.expire(at(34), on_close), 2u);
  EXPECT_EQ(closed, (std::vector<uint64_t>{0, 3}));
  // A budget bounds the work: one per call, still oldest first.
  closed.clear();
  EXPECT_EQ(t.expire(at(400), on_close, 1), 1u);
  EXPECT_EQ(closed, (std::vector<uint64_t>{1}));
  EXPECT_EQ(t.expire(at(400), on_close), 2u);
  EXPECT_EQ(closed, (std::vector<uint64_t>{1, 5, 2}));
  EXPECT_TRUE(t.get(h[4]));  // class 2 never expires
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.stats().expired, 5u);
  EXPECT_EQ(t.stats().drops.get(DropReason::FlowIdleTimeout), 5u);
}

TEST(FlowTable, ATouchWithAnOlderTimeKeepsTheFlowsLastSeenTime) {
  FlowTable<Val> t({.max_flows = 4});
  auto a = t.find_or_insert(key_n(0), KeyDir::Forward, at(10)).handle;
  auto b = t.find_or_insert(key_n(1), KeyDir::Forward, at(5)).handle;  // reordered capture
  EXPECT_EQ(*t.last_seen(a), at(10));
  EXPECT_EQ(*t.last_seen(b), at(10));  // not older than the flow before it in its list
  t.touch(a, at(7));
  EXPECT_EQ(*t.last_seen(a), at(10));
}

TEST(FlowTable, ClearClosesEveryFlow) {
  FlowTable<Val> t({.max_flows = 8});
  for (uint32_t n = 0; n < 5; ++n)
    t.find_or_insert(key_n(n), KeyDir::Forward, at(n));
  int n = 0;
  t.clear([&](FlowHandle, CloseReason why, Val&) {
    EXPECT_EQ(why, CloseReason::Cleared);
    ++n;
  });
  EXPECT_EQ(n, 5);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FlowTable, OneMillionConcurrentFlowsFitInOneGibibyte) {
  constexpr uint32_t kFlows = 1'000'000;
  FlowTable<Val> t({.max_flows = kFlows, .when_full = FullPolicy::RefuseNew});
  for (uint32_t n = 0; n < kFlows; ++n) {
    auto r = t.find_or_insert(key_n(n), KeyDir::Forward, at(n / 1000));
    ASSERT_TRUE(r.created) << n;
  }
  EXPECT_EQ(t.size(), kFlows);
  EXPECT_EQ(t.stats().refused, 0u);
  EXPECT_TRUE(t.find(key_n(123456)));
  size_t bytes = t.memory_bytes();
  std::printf("flow table: %u flows, %zu bytes, %.1f bytes/flow (sizeof T = %zu)\n", kFlows, bytes,
              double(bytes) / kFlows, sizeof(Val));
  EXPECT_LT(bytes, size_t(1) << 30);
  EXPECT_LE(bytes / kFlows, 512u);
}

TEST(FlowTable, WikipediaCaptureHasAsManyFlowsAsTsharkHasTcpAndUdpConversations) {
  auto dir = testing::shared_pcaps_dir();
  std::filesystem::path pcap = dir ? *dir / "zeek-wikipedia/wikipedia.pcap" : "";
  if (!dir || !std::filesystem::exists(pcap))
    GTEST_SKIP() << "no ../shared/pcaps/zeek-wikipedia/wikipedia.pcap (set L45_PCAPS)";
  std::string out;
  // tshark 4.0 on this file: 10 TCP and 24 UDP conversations (34).
  if (testing::run("tshark -r '" + pcap.string() + "' -q -z conv,tcp -z conv,udp", &out) != 0)
    GTEST_SKIP() << "tshark not available";
  size_t expected = 0;
  for (size_t p = 0; (p = out.find("<->", p)) != std::string::npos; p += 3)
    ++expected;
  ASSERT_GT(expected, 0u);

  auto pkts = read_capture(pcap.string());
  ASSERT_TRUE(pkts.ok());
  FlowTable<Val> t({.max_flows = 1024, .when_full = FullPolicy::RefuseNew});
  size_t tcp_udp = 0;
  for (const Packet& p : pkts.value()) {
    PacketView v = PacketView::decode(p);
    auto k = key_of(v);
    if (!k) continue;
    auto r = t.find_or_insert(k->key, k->dir, p.meta().ts);
    ASSERT_TRUE(r.handle);
    t.touch(r.handle, p.meta().ts);
    if (r.created && !k->icmp_error &&
        (k->key.proto == ip_proto::kTcp || k->key.proto == ip_proto::kUdp))
      ++tcp_udp;
  }
  EXPECT_EQ(tcp_udp, expected);
  EXPECT_GT(t.stats().hits, 0u);
}

}  // namespace
}  // namespace l45
