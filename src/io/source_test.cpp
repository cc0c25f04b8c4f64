#include <gtest/gtest.h>

#include "io_test_packets.hpp"
#include "l45/io/pcap_file.hpp"
#include "l45/io/registry.hpp"

namespace l45 {
namespace {

using namespace iotest;

// A pcapng file whose interfaces have different link types (Ethernet and raw IP): the
// filter must be compiled for each link type, not only for the first interface's.
TEST(Source, FilterAppliesToEveryLinkTypeOfAMixedPcapng) {
  auto udp_to = [](uint16_t port) {
    return udp4_packet(ip4("192.0.2.1"), ip4("192.0.2.2"), 5000, port, "x");
  };
  const Mac a{std::byte{2}, {}, {}, {}, {}, std::byte{1}},
      b{std::byte{2}, {}, {}, {}, {}, std::byte{2}};
  std::vector<std::pair<LinkType, Buf>> frames = {
      {LinkType::Ethernet, ethernet(a, b, 0x0800, udp_to(53))},
      {LinkType::Raw, udp_to(53)},
      {LinkType::Ethernet, ethernet(a, b, 0x0800, udp_to(80))},
      {LinkType::Raw, udp_to(80)},
  };
  char path[] = "/tmp/l45-mixed-XXXXXX.pcapng";
  int fd = mkstemps(path, 7);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    auto sink = PcapFileSink::open(path, {.format = CaptureFormat::Pcapng});
    ASSERT_TRUE(sink.ok()) << sink.error().message();
    for (auto& [link, bytes] : frames) {
      PacketMeta m;
      m.link = link;
      ASSERT_TRUE((*sink)->write(Packet::copy_of(bytes, m)).ok());
    }
    ASSERT_TRUE((*sink)->close().ok());
  }
  auto src = open_source(std::string("file:") + path);
  ASSERT_TRUE(src.ok()) << src.error().message();
  ASSERT_TRUE((*src)->set_filter("udp port 53").ok());
  PacketBatch batch(16);
  std::vector<LinkType> kept;
  for (int i = 0; i < 10; ++i) {
    auto n = (*src)->read(batch);
    ASSERT_TRUE(n.ok());
    for (const Packet& p : batch)
      kept.push_back(p.meta().link);
    if (*n == 0 && (*src)->at_end()) break;
  }
  EXPECT_EQ(kept, (std::vector<LinkType>{LinkType::Ethernet, LinkType::Raw}));
  EXPECT_EQ((*src)->stats().filtered, 2u);

  // An expression that cannot apply to raw IP filters those packets out instead of passing them.
  auto src2 = open_source(std::string("file:") + path);
  ASSERT_TRUE((*src2)->set_filter("ether src 02:00:00:00:00:02").ok());
  size_t n_kept = 0;
  for (int i = 0; i < 10; ++i) {
    auto n = (*src2)->read(batch);
    ASSERT_TRUE(n.ok());
    n_kept += batch.size();
    for (const Packet& p : batch)
      EXPECT_EQ(p.meta().link, LinkType::Ethernet);
    if (*n == 0 && (*src2)->at_end()) break;
  }
  EXPECT_EQ(n_kept, 2u);
  unlink(path);
}

TEST(SourceSpec, SchemeArgAndOptionsParseAndBadOptionsAreNamed) {
  auto s = parse_source_spec("nfqueue:3,fail_open=1,copy=128");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheme, "nfqueue");
  EXPECT_EQ(s->arg, "3");
  EXPECT_EQ(s->option("copy"), "128");
  EXPECT_TRUE(s->has("fail_open"));
  auto f = parse_source_spec("./dir:with/colon.pcap");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->scheme, "file");
  EXPECT_EQ(f->arg, "./dir:with/colon.pcap");
  auto bad = parse_source_spec("iface:eth0,promisc");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("'promisc'"), std::string::npos);
  auto unknown = open_source("bogus:x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("known:"), std::string::npos);
}

}  // namespace
}  // namespace l45
