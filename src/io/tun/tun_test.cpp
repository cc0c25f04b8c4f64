#include "l45/io/tun.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "io_test_packets.hpp"
#include "l45/io/registry.hpp"
#include "netns.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

using namespace l45::testing;
using namespace l45::iotest;
using SteadyClock = std::chrono::steady_clock;

// Reads from `src` until a packet satisfies `want` (returned) or `ms` pass (nullopt).
std::optional<Packet> read_first(Source& src, int ms, const std::function<bool(Bytes)>& want) {
  PacketBatch batch(16);
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
  while (SteadyClock::now() < deadline) {
    auto r = src.read(batch);
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message();
      return std::nullopt;
    }
    for (Packet& p : batch)
      if (want(p.data())) return std::move(p);
  }
  return std::nullopt;
}

std::unique_ptr<TunDevice> open_in(const Netns& ns, const TunOptions& o) {
  NetnsScope in(ns);
  EXPECT_TRUE(in.ok()) << in.error();
  auto r = TunDevice::open(o);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? std::move(*r) : nullptr;
}

bool is_icmp4(Bytes b, const Ip4& ip, uint8_t type) {
  return ip.proto == 1 && ip.total >= ip.ihl + 8 && load_u8(&b[ip.l4()]) == type;
}

// Turns an ICMP echo request (IPv4 header at `ip.off`) into the matching reply in place.
void make_echo_reply(MutBytes b, const Ip4& ip) {
  store_be32(&b[ip.off + 12], ip.dst);
  store_be32(&b[ip.off + 16], ip.src);
  store_u8(&b[ip.l4()], 0);
  fix_ip4_checksum(b, ip);
  fix_icmp4_checksum(b, ip);
}

// Both directions through the device: the kernel routes ping's echo request into the TUN,
// where it is read; the reply written back is delivered to ping, which then succeeds.
TEST(TunDevice, RoutedPingIsReadAndCraftedReplyWrittenBackAnswersIt) {
  L45_REQUIRE_NETNS();
  Netns ns("tu");
  ASSERT_TRUE(ns.ok()) << ns.error();
  auto tun = open_in(ns, {.name = "l45tun0", .up = true});
  ASSERT_TRUE(tun);
  EXPECT_EQ(tun->ifname(), "l45tun0");
  EXPECT_EQ(tun->link_type(), LinkType::Raw);
  EXPECT_EQ(tun->name(), "tun:l45tun0");
  ASSERT_EQ(ns.exec("ip addr add 192.0.2.1/24 dev l45tun0"), 0);

  pid_t ping = ns.spawn({"ping", "-c", "1", "-W", "3", "192.0.2.2"});
  ASSERT_GT(ping, 0);
  auto req = read_first(*tun, 3000, [](Bytes b) {
    auto ip = parse_ip4(b);
    return ip && ip->dst == ip4("192.0.2.2") && is_icmp4(b, *ip, 8);
  });
  ASSERT_TRUE(req) << "no echo request came out of the TUN";
  EXPECT_EQ(req->meta().link, LinkType::Raw);
  EXPECT_EQ(req->meta().ingress, tun->ifindex());
  EXPECT_EQ(req->meta().direction, Direction::Outbound);
  EXPECT_EQ(req->meta().wire_len, req->size());
  auto ip = *parse_ip4(req->data());
  EXPECT_EQ(ip.src, ip4("192.0.2.1"));

  make_echo_reply(req->mutable_data(), ip);
  auto w = tun->write(*req);
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ(tun->write_stats().packets, 1u);
  EXPECT_EQ(ns.wait(ping, 4000), 0) << "ping did not get the reply written into the TUN";
}

// The other way round, with no outside process: an echo request written into the TUN is
// answered by the kernel, and the answer is read back; a non-IP packet is refused and counted.
TEST(TunDevice, KernelAnswersEchoRequestWrittenIntoTunAndRefusesNonIp) {
  L45_REQUIRE_NETNS();
  Netns ns("tk");
  ASSERT_TRUE(ns.ok()) << ns.error();
  std::unique_ptr<Sink> sink;
  {
    NetnsScope in(ns);
    ASSERT_TRUE(in.ok());
    auto r = open_sink("tun:l45tun1,up=1,mtu=1400");
    ASSERT_TRUE(r.ok()) << r.error().message();
    sink = std::move(*r);
  }
  auto* tun = dynamic_cast<TunDevice*>(sink.get());
  ASSERT_NE(tun, nullptr);
  ASSERT_EQ(ns.exec("ip addr add 192.0.2.1/24 dev l45tun1"), 0);
  std::string out;
  ns.exec("ip link show l45tun1", &out);
  EXPECT_NE(out.find("mtu 1400"), std::string::npos) << out;

  // A Raw link type compiles (LINKTYPE_RAW 101 is DLT_RAW 12 to libpcap).
  ASSERT_TRUE(tun->set_filter("icmp[icmptype] == icmp-echoreply").ok());

  Buf echo(8 + 16);
  store_u8(&echo[0], 8);
  store_be16(&echo[4], 0x4c45);  // identifier
  store_be16(&echo[6], 1);       // sequence
  for (size_t i = 8; i < echo.size(); ++i)
    echo[i] = std::byte(i);
  Buf pkt = ip4_packet(ip4("192.0.2.2"), ip4("192.0.2.1"), 1, echo);
  fix_icmp4_checksum(pkt, *parse_ip4(pkt));
  ASSERT_TRUE(sink->write(Packet::copy_of(pkt)).ok());

  auto reply = read_first(*tun, 2000, [](Bytes b) {
    auto ip = parse_ip4(b);
    return ip && ip->dst == ip4("192.0.2.2") && is_icmp4(b, *ip, 0);
  });
  ASSERT_TRUE(reply) << "the kernel's echo reply did not come out of the TUN";
  auto rip = *parse_ip4(reply->data());
  EXPECT_EQ(rip.src, ip4("192.0.2.1"));
  EXPECT_EQ(load_be16(&reply->data()[rip.l4() + 4]), 0x4c45);
  EXPECT_EQ(reply->size(), pkt.size());

  Buf junk(40, std::byte{0});  // version nibble 0: neither IPv4 nor IPv6
  ASSERT_TRUE(sink->write(Packet::copy_of(junk)).ok());
  EXPECT_EQ(tun->write_stats().packets, 1u);
  EXPECT_EQ(tun->write_stats().rejected, 1u);
}

// TAP carries Ethernet: the kernel first asks for the peer's MAC (ARP), then sends the echo
// request to it. Answering both by hand makes ping succeed.
TEST(TunDevice, TapAnswersArpAndPingWithCraftedFrames) {
  L45_REQUIRE_NETNS();
  Netns ns("ta");
  ASSERT_TRUE(ns.ok()) << ns.error();
  std::unique_ptr<Source> src;
  {
    NetnsScope in(ns);
    ASSERT_TRUE(in.ok());
    auto r = open_source("tap:l45tap0,up=1");
    ASSERT_TRUE(r.ok()) << r.error().message();
    src = std::move(*r);
  }
  auto* tap = dynamic_cast<TunDevice*>(src.get());
  ASSERT_NE(tap, nullptr);
  EXPECT_EQ(tap->link_type(), LinkType::Ethernet);
  ASSERT_EQ(ns.exec("ip addr add 192.0.2.17/28 dev l45tap0"), 0);
  const Mac peer_mac = {std::byte{0x02}, std::byte{0}, std::byte{0},
                        std::byte{0},    std::byte{0}, std::byte{0x12}};

  pid_t ping = ns.spawn({"ping", "-c", "1", "-W", "3", "192.0.2.18"});
  ASSERT_GT(ping, 0);
  auto arp = read_first(*src, 3000, [](Bytes f) {
    return f.size() >= 42 && load_be16(&f[12]) == 0x0806 && load_be16(&f[20]) == 1 &&
           load_be32(&f[38]) == ip4("192.0.2.18");
  });
  ASSERT_TRUE(arp) << "no ARP request for the peer came out of the TAP";
  EXPECT_EQ(arp->meta().link, LinkType::Ethernet);
  Mac host_mac;
  for (size_t i = 0; i < 6; ++i)
    host_mac[i] = arp->data()[6 + i];

  // RFC 826 reply: the peer's MAC for 192.0.2.18, addressed to the asker.
  Buf a(28);
  store_be16(&a[0], 1);
  store_be16(&a[2], 0x0800);
  store_u8(&a[4], 6);
  store_u8(&a[5], 4);
  store_be16(&a[6], 2);
  for (size_t i = 0; i < 6; ++i) {
    a[8 + i] = peer_mac[i];
    a[18 + i] = host_mac[i];
  }
  store_be32(&a[14], ip4("192.0.2.18"));
  store_be32(&a[24], ip4("192.0.2.17"));
  ASSERT_TRUE(tap->write(Packet::copy_of(ethernet(host_mac, peer_mac, 0x0806, a))).ok());

  auto req = read_first(*src, 3000, [&](Bytes f) {
    auto ip = parse_eth_ip4(f);
    return ip && ip->dst == ip4("192.0.2.18") && is_icmp4(f, *ip, 8);
  });
  ASSERT_TRUE(req) << "no echo request after the ARP reply";
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(req->data()[i], peer_mac[i]) << "dst MAC byte " << i;
  auto ip = *parse_eth_ip4(req->data());
  Buf reply(req->data().begin(), req->data().end());
  for (size_t i = 0; i < 6; ++i) {
    reply[i] = host_mac[i];
    reply[6 + i] = peer_mac[i];
  }
  make_echo_reply(reply, ip);
  ASSERT_TRUE(tap->write(Packet::copy_of(reply)).ok());
  EXPECT_EQ(tap->write_stats().packets, 2u);
  EXPECT_EQ(ns.wait(ping, 4000), 0) << "ping did not get the reply written into the TAP";
}

TEST(TunDevice, PersistKeepsDeviceAfterCloseAndReopenAttachesToIt) {
  L45_REQUIRE_NETNS();
  Netns ns("tp");
  ASSERT_TRUE(ns.ok()) << ns.error();
  auto first = open_in(ns, {.name = "l45p%d", .persist = true});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->ifname(), "l45p0") << "the kernel fills in %d";
  uint32_t index = first->ifindex();
  first.reset();
  EXPECT_EQ(ns.exec("ip link show l45p0"), 0) << "persist=1: the device outlives its fd";

  auto again = open_in(ns, {.name = "l45p0", .persist = false});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ifindex(), index) << "attached to the same device, not a new one";
  {
    NetnsScope in(ns);
    auto busy = TunDevice::open({.name = "l45p0"});
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.error().message(),
              "tun:l45p0: device is in use by another process: Device or resource busy");
  }
  again.reset();
  EXPECT_NE(ns.exec("ip link show l45p0 2>/dev/null"), 0) << "persist=0: gone on close";
}

TEST(TunDevice, InterfaceOfAnotherKindIsRefusedWithOneLine) {
  L45_REQUIRE_NETNS();
  Netns ns("tw");
  ASSERT_TRUE(ns.ok()) << ns.error();
  ASSERT_EQ(ns.exec("ip link add name l45d0 type veth peer name l45d1"), 0);
  NetnsScope in(ns);
  auto r = open_source("tun:l45d0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "tun:l45d0: an interface with this name exists and is not a TUN device: Invalid "
            "argument");
  auto typo = open_source("tun:l45d1,persistent=1");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message().find("unknown option 'persistent'"), std::string::npos);
}

TEST(TunDevice, WithoutPrivilegeSaysNeedsRootOrCapNetAdmin) {
  L45_REQUIRE_NETNS();
  std::string msg = run_as_nobody([] {
    auto r = open_source("tun:l45np0");
    return r.ok() ? std::string("opened") : r.error().message();
  });
  // The errno part depends on whether /dev/net/tun itself is open to all (EPERM from
  // TUNSETIFF) or root-only (EACCES from open).
  EXPECT_EQ(
      msg.rfind("tun:l45np0: creating or attaching a TUN device needs root or CAP_NET_ADMIN: ", 0),
      0u)
      << msg;
}

}  // namespace
}  // namespace l45
