#include "l45/io/live.hpp"

#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pcap/dlt.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>

#include "io_test_packets.hpp"
#include "l45/core/time.hpp"
#include "l45/io/registry.hpp"
#include "netns.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

using namespace l45::testing;
using namespace l45::iotest;
using SteadyClock = std::chrono::steady_clock;

// Reads from `src` until `done()` or `ms` have passed; every packet goes to `out`.
template <typename Done>
void read_until(Source& src, std::vector<Packet>& out, int ms, Done done) {
  PacketBatch batch(64);
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
  while (SteadyClock::now() < deadline && !done()) {
    auto r = src.read(batch);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (Packet& p : batch)
      out.push_back(std::move(p));
  }
}

// A body longer than one segment, with content that shows misordered or lost bytes.
std::string make_body(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; ++i)
    s += "line " + std::to_string(i) + " of the l45 body\n";
  s.resize(n);
  return s;
}

Mac mac_of(const char* ifname) {
  Mac m{};
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
  close(fd);
  return m;
}

TEST(LinkTypeFromDlt, MapsTheLinkTypesL45DecodesAndRefusesTheRest) {
  EXPECT_EQ(link_type_from_dlt(DLT_EN10MB), LinkType::Ethernet);
  EXPECT_EQ(link_type_from_dlt(DLT_RAW), LinkType::Raw);
  EXPECT_EQ(link_type_from_dlt(12), LinkType::Raw);   // DLT_RAW on Linux and most systems
  EXPECT_EQ(link_type_from_dlt(14), LinkType::Raw);   // DLT_RAW on BSD/OS
  EXPECT_EQ(link_type_from_dlt(101), LinkType::Raw);  // LINKTYPE_RAW
  EXPECT_EQ(link_type_from_dlt(DLT_NULL), LinkType::Null);
  EXPECT_EQ(link_type_from_dlt(DLT_LOOP), LinkType::Loop);
  EXPECT_EQ(link_type_from_dlt(DLT_LINUX_SLL), LinkType::LinuxSll);
  EXPECT_EQ(link_type_from_dlt(DLT_LINUX_SLL2), LinkType::LinuxSll2);
  EXPECT_EQ(link_type_from_dlt(DLT_IPV4), LinkType::Ipv4);
  EXPECT_EQ(link_type_from_dlt(DLT_IPV6), LinkType::Ipv6);
  EXPECT_EQ(link_type_from_dlt(DLT_IEEE802_11), std::nullopt);
  EXPECT_EQ(link_type_from_dlt(DLT_CAN_SOCKETCAN), std::nullopt);
  EXPECT_EQ(link_type_from_dlt(-1), std::nullopt);
}

TEST(LiveOptions, SpecOptionsAreParsedAndTyposRefused) {
  auto spec = parse_source_spec("iface:eth0,snaplen=1500,promisc=0,buffer_mb=8,direction=in");
  ASSERT_TRUE(spec.ok());
  auto o = LiveOptions::from_spec(*spec);
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->iface, "eth0");
  EXPECT_EQ(o->snaplen, 1500u);
  EXPECT_FALSE(o->promisc);
  EXPECT_EQ(o->buffer_mb, 8u);
  EXPECT_EQ(o->direction, Direction::Inbound);

  auto typo = LiveOptions::from_spec(*parse_source_spec("iface:eth0,promsic=0"));
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message().find("unknown option 'promsic'"), std::string::npos)
      << typo.error().message();
  auto bad = LiveOptions::from_spec(*parse_source_spec("iface:eth0,snaplen=lots"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("snaplen=lots"), std::string::npos);
}

TEST(LiveSource, NonexistentInterfaceSaysNoSuchInterface) {
  L45_REQUIRE_NETNS();
  auto r = open_source("iface:l45nosuch0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ENODEV);
  EXPECT_EQ(r.error().message(), "iface:l45nosuch0: no such interface: No such device");
  auto w = open_sink("iface:l45nosuch0");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().message(), "iface:l45nosuch0: no such interface: No such device");
}

TEST(LiveSource, WithoutPrivilegeSaysNeedsRootOrCapNetRaw) {
  L45_REQUIRE_NETNS();
  std::string msg = run_as_nobody([] {
    auto r = open_source("iface:lo");
    return r.ok() ? std::string("opened") : r.error().message();
  });
  EXPECT_EQ(msg, "iface:lo: capture needs root or CAP_NET_RAW: Operation not permitted");
  msg = run_as_nobody([] {
    auto r = open_sink("iface:lo");
    return r.ok() ? std::string("opened") : r.error().message();
  });
  EXPECT_EQ(msg, "iface:lo: injection needs root or CAP_NET_RAW: Operation not permitted");
}

// Real nginx in one namespace, real curl in the other: the capture on the client's veth holds
// the whole connection and nothing but it, because the kernel filter keeps the pings out.
TEST(LiveSource, CapturesRealHttpConnectionAndKernelFilterExcludesPing) {
  L45_REQUIRE_NETNS();
  Netns c("lc"), s("ls");
  ASSERT_TRUE(c.ok() && s.ok()) << c.error() << s.error();
  ASSERT_EQ(add_veth(c, {"vc", "198.51.100.1/24"}, s, {"vs", "198.51.100.2/24"}), "");
  TempDir dir;
  const std::string body = make_body(5000);
  dir.write("www/index.html", body);
  std::string err;
  ASSERT_GT(start_nginx(s, dir, "198.51.100.2:80", &err), 0) << err;

  std::unique_ptr<Source> src;
  uint32_t vc_index = 0;
  {
    NetnsScope in(c);
    ASSERT_TRUE(in.ok()) << in.error();
    auto r = open_source("iface:vc,promisc=0");
    ASSERT_TRUE(r.ok()) << r.error().message();
    src = std::move(*r);
    vc_index = if_nametoindex("vc");
  }
  ASSERT_NE(vc_index, 0u);
  EXPECT_EQ(src->link_type(), LinkType::Ethernet);
  EXPECT_EQ(src->name(), "iface:vc");
  ASSERT_TRUE(src->set_filter("tcp port 80").ok());

  Timestamp t0 = SystemClock().now();
  ASSERT_EQ(c.exec("ping -c 2 -i 0.2 -W 2 198.51.100.2"), 0) << "ping between the namespaces";
  std::string got;
  ASSERT_EQ(c.exec("curl -sS --max-time 5 http://198.51.100.2/index.html", &got), 0) << got;
  EXPECT_EQ(got, body);

  std::vector<Packet> frames;
  int fins = 0;
  read_until(*src, frames, 3000, [&] {
    fins = 0;
    for (const Packet& p : frames) {
      auto ip = parse_eth_ip4(p.data());
      auto t = ip ? parse_tcp(p.data(), *ip) : std::nullopt;
      if (t && t->fin()) ++fins;
    }
    return fins >= 2;
  });
  Timestamp t1 = SystemClock().now();
  ASSERT_FALSE(frames.empty());

  const uint32_t cli = ip4("198.51.100.1"), srv = ip4("198.51.100.2");
  std::optional<uint32_t> isn_client, isn_server;
  std::vector<std::pair<uint32_t, std::string>> client_data, server_data;
  for (size_t i = 0; i < frames.size(); ++i) {
    const Packet& p = frames[i];
    const PacketMeta& m = p.meta();
    EXPECT_EQ(m.link, LinkType::Ethernet);
    EXPECT_EQ(m.ingress, vc_index);
    EXPECT_EQ(m.wire_len, p.size());
    EXPECT_LE(p.size(), 1514u) << "offloads are off: frames are wire-sized";
    EXPECT_EQ(m.frame, i + 1);
    EXPECT_GE(m.ts.ns, t0.ns - 1000000000);
    EXPECT_LE(m.ts.ns, t1.ns);
    auto ip = parse_eth_ip4(p.data());
    ASSERT_TRUE(ip) << "frame " << i << " is not IPv4: the filter let it through";
    auto t = parse_tcp(p.data(), *ip);
    ASSERT_TRUE(t) << "frame " << i << " is not TCP: the filter let it through";
    bool c2s = ip->src == cli && ip->dst == srv && t->dport == 80;
    bool s2c = ip->src == srv && ip->dst == cli && t->sport == 80;
    ASSERT_TRUE(c2s || s2c);
    if (c2s && t->syn() && !t->ackf()) isn_client = t->seq;
    if (s2c && t->syn() && t->ackf()) isn_server = t->seq;
    if (!t->payload.empty())
      (c2s ? client_data : server_data).emplace_back(t->seq, as_text(t->payload));
  }
  ASSERT_TRUE(isn_client) << "no SYN";
  ASSERT_TRUE(isn_server) << "no SYN-ACK";
  EXPECT_EQ(fins, 2);
  // Ordered by offset from the initial sequence number, so a wrap of the 32-bit space does
  // not reorder; a map drops retransmitted copies.
  auto stream = [](const auto& segs, uint32_t isn) {
    std::map<uint32_t, std::string> by_offset;
    for (const auto& [seq, d] : segs)
      by_offset[seq - isn] = d;
    std::string all;
    for (const auto& [off, d] : by_offset)
      all += d;
    return all;
  };
  std::string request = stream(client_data, *isn_client);
  std::string response = stream(server_data, *isn_server);
  EXPECT_EQ(request.rfind("GET /index.html HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response.substr(0, 200);
  ASSERT_GE(response.size(), body.size());
  EXPECT_EQ(response.substr(response.size() - body.size()), body);
  EXPECT_EQ(src->stats().filtered, 0u) << "filtering happened in the kernel, not in l45";
  EXPECT_EQ(src->stats().kernel_dropped, 0u);
  EXPECT_EQ(src->stats().packets, frames.size());
}

TEST(LiveSource, IdleReadReturnsZeroWithinThePollInterval) {
  L45_REQUIRE_NETNS();
  Netns n("li");
  ASSERT_TRUE(n.ok()) << n.error();
  std::unique_ptr<Source> src;
  {
    NetnsScope in(n);
    ASSERT_TRUE(in.ok()) << in.error();
    auto r = open_source("iface:lo,timeout_ms=100");
    ASSERT_TRUE(r.ok()) << r.error().message();
    src = std::move(*r);
  }
  PacketBatch batch(8);
  for (int i = 0; i < 3; ++i) {
    auto start = SteadyClock::now();
    auto r = src->read(batch);
    auto took = SteadyClock::now() - start;
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(*r, 0u);
    EXPECT_FALSE(src->at_end());
    EXPECT_LT(took, std::chrono::milliseconds(1000)) << "a live read must not block";
  }
}

TEST(LiveSource, DirectionOptionSplitsSentFromReceived) {
  L45_REQUIRE_NETNS();
  Netns c("dc"), s("ds");
  ASSERT_TRUE(c.ok() && s.ok()) << c.error() << s.error();
  ASSERT_EQ(add_veth(c, {"vc", "198.51.100.1/24"}, s, {"vs", "198.51.100.2/24"}), "");
  std::unique_ptr<Source> in_src, out_src;
  {
    NetnsScope in(c);
    ASSERT_TRUE(in.ok()) << in.error();
    auto a = open_source("iface:vc,direction=in");
    auto b = open_source("iface:vc,direction=out");
    ASSERT_TRUE(a.ok() && b.ok());
    in_src = std::move(*a);
    out_src = std::move(*b);
  }
  ASSERT_TRUE(in_src->set_filter("icmp").ok());
  ASSERT_TRUE(out_src->set_filter("icmp").ok());
  ASSERT_EQ(c.exec("ping -c 2 -i 0.2 -W 2 198.51.100.2"), 0);
  std::vector<Packet> got_in, got_out;
  read_until(*in_src, got_in, 2000, [&] { return got_in.size() >= 2; });
  read_until(*out_src, got_out, 2000, [&] { return got_out.size() >= 2; });
  ASSERT_EQ(got_in.size(), 2u);
  ASSERT_EQ(got_out.size(), 2u);
  for (const Packet& p : got_in) {
    auto ip = parse_eth_ip4(p.data());
    ASSERT_TRUE(ip);
    EXPECT_EQ(load_u8(&p.data()[ip->l4()]), 0) << "echo reply";
    EXPECT_EQ(p.meta().direction, Direction::Inbound);
  }
  for (const Packet& p : got_out) {
    auto ip = parse_eth_ip4(p.data());
    ASSERT_TRUE(ip);
    EXPECT_EQ(load_u8(&p.data()[ip->l4()]), 8) << "echo request";
    EXPECT_EQ(p.meta().direction, Direction::Outbound);
  }
}

// `any` delivers cooked (LINUX_SLL) frames, whose packet type says which way each went.
TEST(LiveSource, AnyInterfaceGivesCookedFramesWithTheirDirection) {
  L45_REQUIRE_NETNS();
  Netns c("ac"), s("as");
  ASSERT_TRUE(c.ok() && s.ok()) << c.error() << s.error();
  ASSERT_EQ(add_veth(c, {"vc", "198.51.100.1/24"}, s, {"vs", "198.51.100.2/24"}), "");
  std::unique_ptr<Source> src;
  {
    NetnsScope in(c);
    ASSERT_TRUE(in.ok()) << in.error();
    auto r = open_source("iface:any");
    ASSERT_TRUE(r.ok()) << r.error().message();
    src = std::move(*r);
  }
  EXPECT_EQ(src->link_type(), LinkType::LinuxSll);
  ASSERT_TRUE(src->set_filter("icmp and host 198.51.100.2").ok());
  ASSERT_EQ(c.exec("ping -c 1 -W 2 198.51.100.2"), 0);
  std::vector<Packet> got;
  read_until(*src, got, 2000, [&] { return got.size() >= 2; });
  ASSERT_EQ(got.size(), 2u);
  // SLL: packet type (2), ARPHRD (2), address length (2), address (8), protocol (2).
  for (const Packet& p : got) {
    EXPECT_EQ(p.meta().link, LinkType::LinuxSll);
    ASSERT_TRUE(parse_ip4(p.data(), 16));
    uint8_t icmp_type = load_u8(&p.data()[16 + parse_ip4(p.data(), 16)->ihl]);
    EXPECT_EQ(p.meta().direction, icmp_type == 8 ? Direction::Outbound : Direction::Inbound)
        << "ICMP type " << int(icmp_type);
  }
}

// A UDP datagram built by hand, injected on one end of a veth pair, is delivered to a socket
// in the other namespace and captured there byte for byte.
TEST(LiveInjector, InjectedUdpFrameReachesSocketInPeerNamespace) {
  L45_REQUIRE_NETNS();
  Netns a("ia"), b("ib");
  ASSERT_TRUE(a.ok() && b.ok()) << a.error() << b.error();
  ASSERT_EQ(add_veth(a, {"va", "203.0.113.1/24"}, b, {"vb", "203.0.113.2/24"}), "");

  int sock = -1;
  Mac mac_a{}, mac_b{};
  std::unique_ptr<Source> cap;
  std::unique_ptr<Sink> out;
  {
    NetnsScope in(b);
    ASSERT_TRUE(in.ok()) << in.error();
    mac_b = mac_of("vb");
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(sock, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(5555);
    sa.sin_addr.s_addr = htonl(ip4("203.0.113.2"));
    ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{2, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto r = open_source("iface:vb,promisc=0");
    ASSERT_TRUE(r.ok()) << r.error().message();
    cap = std::move(*r);
  }
  ASSERT_TRUE(cap->set_filter("udp port 5555").ok());
  {
    NetnsScope in(a);
    ASSERT_TRUE(in.ok()) << in.error();
    mac_a = mac_of("va");
    auto r = open_sink("iface:va");
    ASSERT_TRUE(r.ok()) << r.error().message();
    out = std::move(*r);
  }
  auto* inj = dynamic_cast<LiveInjector*>(out.get());
  ASSERT_NE(inj, nullptr);
  EXPECT_EQ(inj->link_type(), LinkType::Ethernet);

  const std::string payload = "injected by l45";
  Buf udp = udp4_packet(ip4("203.0.113.1"), ip4("203.0.113.2"), 4444, 5555, payload);
  Buf frame = ethernet(mac_b, mac_a, 0x0800, udp);
  PacketBatch batch(2);
  batch.push(Packet::copy_of(frame));
  auto w = out->write(batch);
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ(inj->stats().packets, 1u);
  EXPECT_EQ(inj->stats().bytes, frame.size());

  char buf[256];
  sockaddr_in from{};
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(sock, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
  close(sock);
  ASSERT_EQ(n, static_cast<ssize_t>(payload.size())) << "the peer's socket got nothing";
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), payload);
  EXPECT_EQ(ntohl(from.sin_addr.s_addr), ip4("203.0.113.1"));
  EXPECT_EQ(ntohs(from.sin_port), 4444);

  std::vector<Packet> seen;
  read_until(*cap, seen, 2000, [&] { return !seen.empty(); });
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen[0].size(), frame.size());
  EXPECT_EQ(std::memcmp(seen[0].data().data(), frame.data(), frame.size()), 0);
}

}  // namespace
}  // namespace l45
