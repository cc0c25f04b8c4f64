#include "l45/packet/ip_addr.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <unordered_set>

#include "l45/packet/mac_addr.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {
namespace {

std::string libc_ntop(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN];
  int af = a.is_v4() ? AF_INET : AF_INET6;
  return inet_ntop(af, a.bytes().data(), buf, sizeof buf);
}

TEST(IpAddr, Ipv4TextIsDottedQuad) {
  EXPECT_EQ(IpAddr::from_host_v4(0xc0000201).to_string(), "192.0.2.1");
  EXPECT_EQ(IpAddr::from_host_v4(0).to_string(), "0.0.0.0");
  EXPECT_EQ(IpAddr::from_host_v4(0xffffffff).to_string(), "255.255.255.255");
  EXPECT_EQ(IpAddr::from_host_v4(0x0a000a64).to_string(), "10.0.10.100");
}

TEST(IpAddr, Ipv6TextMatchesInetNtopOnSpecialCases) {
  const char* cases[] = {
      "::",
      "::1",
      "1::",
      "2001:db8::1",
      "2001:db8:0:1:1:1:1:1",
      "2001:0:0:1::1",
      "1:0:0:2:0:0:0:3",
      "fe80::1:2:3:4",
      "::ffff:192.0.2.1",
      "::192.0.2.1",
      "::ffff:0:1.2.3.4",
      "::0.0.1.0",
      "1:2:3:4:5:6:7:8",
      "0:1:0:1:0:1:0:1",
      "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7::",
      "ff02::fb",
      "64:ff9b::192.0.2.33",
      "::fffe:1.2.3.4",
  };
  for (const char* c : cases) {
    auto a = IpAddr::parse(c);
    ASSERT_TRUE(a) << c;
    EXPECT_EQ(a->to_string(), libc_ntop(*a)) << c;
  }
}

TEST(IpAddr, Ipv6TextMatchesInetNtopOnRandomAddressesWithZeroRuns) {
  std::mt19937_64 rng(45);
  for (int i = 0; i < 20000; ++i) {
    std::array<uint8_t, 16> b{};
    for (int w = 0; w < 8; ++w) {
      // Mostly zero groups, so runs of every length and position occur.
      uint16_t v = (rng() % 3) ? 0 : uint16_t(rng() % 4 ? rng() : rng() % 16);
      b[2 * w] = uint8_t(v >> 8);
      b[2 * w + 1] = uint8_t(v);
    }
    if (rng() % 8 == 0) b[10] = b[11] = 0xff;
    IpAddr a = IpAddr::v6(b);
    ASSERT_EQ(a.to_string(), libc_ntop(a));
  }
}

TEST(IpAddr, ToCharsFitsTheLongestForm) {
  auto a = IpAddr::parse("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
  ASSERT_TRUE(a);
  char buf[IpAddr::kMaxStringLen];
  size_t n = a->to_chars(buf);
  EXPECT_LT(n, IpAddr::kMaxStringLen);
  EXPECT_EQ(std::string(buf, n), libc_ntop(*a));
}

TEST(IpAddr, ParseRejectsGarbageAndRoundTrips) {
  EXPECT_FALSE(IpAddr::parse(""));
  EXPECT_FALSE(IpAddr::parse("1.2.3"));
  EXPECT_FALSE(IpAddr::parse("300.1.1.1"));
  EXPECT_FALSE(IpAddr::parse("1:::2"));
  EXPECT_FALSE(IpAddr::parse(std::string(100, '1')));
  EXPECT_EQ(IpAddr::parse("10.1.2.3")->v4_value(), 0x0a010203u);
  EXPECT_EQ(IpAddr::parse("2001:db8::7")->to_string(), "2001:db8::7");
  EXPECT_TRUE(IpAddr::parse("::1")->is_v6());
}

TEST(IpAddr, EmptyAddressPrintsNothing) {
  IpAddr a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.to_string(), "");
  EXPECT_TRUE(a.bytes().empty());
}

TEST(IpAddr, Ipv4SortsBeforeIpv6AndWithinFamilyNumerically) {
  auto a = *IpAddr::parse("10.0.0.1");
  auto b = *IpAddr::parse("10.0.0.2");
  auto c = *IpAddr::parse("::1");
  auto d = *IpAddr::parse("9.255.255.255");
  EXPECT_LT(a, b);
  EXPECT_LT(d, a);
  EXPECT_LT(b, c);
  EXPECT_LT(IpAddr{}, d);
  EXPECT_EQ(a, *IpAddr::parse("10.0.0.1"));
  // Same leading bytes, different family: not equal.
  EXPECT_NE(IpAddr::from_host_v4(0), *IpAddr::parse("::"));
}

TEST(IpAddr, EqualAddressesHashEqualAndNeighboursSpread) {
  std::hash<IpAddr> h;
  const std::array<uint8_t, 16> raw{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(h(*IpAddr::parse("2001:db8::1")), h(IpAddr::v6(raw)));
  EXPECT_NE(h(IpAddr::from_host_v4(0x0a000001)), h(IpAddr::from_host_v4(0x0a000002)));
  std::unordered_set<size_t> buckets;
  for (uint32_t i = 0; i < 256; ++i)
    buckets.insert(h(IpAddr::from_host_v4(0x0a000000 | i)) % 64);
  EXPECT_GT(buckets.size(), 48u);
}

TEST(MacAddr, PrintsLowerCaseColonHex) {
  const std::byte raw[6] = {std::byte{0x00}, std::byte{0x1b}, std::byte{0x21},
                            std::byte{0x3c}, std::byte{0x9d}, std::byte{0xf8}};
  MacAddr m = MacAddr::from(raw);
  EXPECT_EQ(m.to_string(), "00:1b:21:3c:9d:f8");
  EXPECT_FALSE(m.is_multicast());
  MacAddr bcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
  MacAddr mcast{{0x01, 0, 0x5e, 0, 0, 1}};
  EXPECT_TRUE(bcast.is_broadcast());
  EXPECT_TRUE(mcast.is_multicast());
}

TEST(TcpSeq, ComparisonIsWrapAware) {
  TcpSeq hi(0xfffffff0u), lo(0x10u);
  EXPECT_LT(hi, lo);
  EXPECT_GT(lo, hi);
  EXPECT_TRUE(before(hi, lo));
  EXPECT_TRUE(after(lo, hi));
  EXPECT_LE(lo, lo);
  EXPECT_GE(lo, lo);
  EXPECT_FALSE(lo < lo);
  EXPECT_EQ(hi + 0x20u, lo);
  EXPECT_EQ(lo - 0x20u, hi);
}

TEST(TcpSeq, DifferenceIsSignedAcrossTheWrap) {
  TcpSeq hi(0xfffffff0u), lo(0x10u);
  EXPECT_EQ(lo - hi, 0x20);
  EXPECT_EQ(hi - lo, -0x20);
  TcpSeq s(5);
  s += 10;
  EXPECT_EQ(s.value(), 15u);
  s -= 20;
  EXPECT_EQ(s.value(), 0xfffffffbu);
}

TEST(TcpSeq, BetweenFollowsTheKernelAcrossTheWrap) {
  EXPECT_TRUE(between(TcpSeq(5), TcpSeq(0xfffffff0u), TcpSeq(10)));
  EXPECT_TRUE(between(TcpSeq(0xfffffff0u), TcpSeq(0xfffffff0u), TcpSeq(10)));
  EXPECT_TRUE(between(TcpSeq(10), TcpSeq(0xfffffff0u), TcpSeq(10)));
  EXPECT_FALSE(between(TcpSeq(11), TcpSeq(0xfffffff0u), TcpSeq(10)));
  EXPECT_FALSE(between(TcpSeq(0xffffffefu), TcpSeq(0xfffffff0u), TcpSeq(10)));
}

}  // namespace
}  // namespace l45
