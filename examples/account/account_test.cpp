// account: the subscribers file, billing against the engine's own per-side counts, plain
// retransmissions billed once and not flagged, a retransmission with other bytes flagged.
#include "account.hpp"

#include <gtest/gtest.h>

#include "l45/io/pcap_file.hpp"
#include "tcp_talk.hpp"
#include "testing.hpp"

namespace l45::examples {
namespace {

void run(MonitorContext& ctx, const std::vector<Packet>& pkts) {
  for (const Packet& p : pkts)
    ctx.process(p);
  ctx.finish();
}

TEST(Account, SubscribersFileErrorsNameTheLine) {
  auto ok = parse_subscribers("# ue prefixes\n198.51.100.0/24 alice\n\nfd00:45::/64 bob  # v6\n",
                              "subs.txt");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  ASSERT_EQ(ok.value().size(), 2u);
  EXPECT_EQ(ok.value()[1].id, "bob");
  EXPECT_EQ(ok.value()[1].len, 64);
  for (auto [text, want] : {std::pair{"10.0.0.0/33 x\n", "subs.txt:1: bad prefix length"},
                            std::pair{"\n10.0.0.300 x\n", "subs.txt:2: bad address"},
                            std::pair{"10.0.0.0/8\n", "subs.txt:1: expected 'PREFIX ID'"},
                            std::pair{"10.0.0.0/8 a b\n", "subs.txt:1: expected 'PREFIX ID'"}}) {
    auto r = parse_subscribers(text, "subs.txt");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().message().rfind(want, 0), 0u) << r.error().message();
  }
  auto p = parse_subscribers("198.51.100.0/25 a\n", "s").value()[0];
  EXPECT_TRUE(p.contains(*IpAddr::parse("198.51.100.127")));
  EXPECT_FALSE(p.contains(*IpAddr::parse("198.51.100.128")));
  EXPECT_FALSE(p.contains(*IpAddr::parse("fd00::1")));
}

// The bundled capture: the client 198.51.100.2 fetches a page, two requests on one keep-alive
// connection, a 404 and 256 KiB with every 25th server segment dropped (and resent by the real
// TCP stack); fd00:45::2 fetches 256 KiB over IPv6.
TEST(Account, PlainRetransmissionsAreBilledOnceAndNotFlagged) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  MonitorContext ctx;
  auto subs = parse_subscribers("198.51.100.2/32 ue-v4\nfd00:45::2/128 ue-v6\n", "s").value();
  Accountant acct(ctx, subs);
  ASSERT_TRUE(acct.status().ok());
  run(ctx, pkts.value());
  EXPECT_TRUE(acct.abuse().empty());
  ASSERT_EQ(acct.usage().size(), 2u);
  const Usage& v4 = acct.usage()[0];
  const Usage& v6 = acct.usage()[1];
  EXPECT_EQ(v4.flows, 4u);
  EXPECT_EQ(v6.flows, 1u);
  // Billed down: each byte the server sent, once (a 256 KiB body plus pages and headers),
  // whatever was resent; the resent bytes are counted apart.
  EXPECT_GT(v4.bytes_down, 262144u);
  EXPECT_LT(v4.bytes_down, 262144u + 8192);
  EXPECT_GT(v4.retransmitted_bytes, 0u);
  EXPECT_GT(v6.bytes_down, 262144u);
  EXPECT_LT(v6.bytes_down, 262144u + 4096);
  EXPECT_GT(v4.bytes_up, 0u);
  EXPECT_GT(v4.packets_down, v4.packets_up / 2);
}

// A connection whose client resends its request with other bytes: the second copy is what a
// tunnel would hide in a "retransmission".
TEST(Account, ARetransmissionWithOtherBytesIsFlaggedWithFlowSideAndOffsets) {
  testing::TcpTalk talk{*IpAddr::parse("198.51.100.7"), *IpAddr::parse("203.0.113.9"), 40000, 443};
  auto seg = [&](bool up, uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data) {
    return talk.add(up, flags, seq, ack, data).share();
  };
  using namespace tcp_flag;
  std::vector<Packet> pkts;
  pkts.push_back(seg(true, kSyn, 1000, 0, {}));
  pkts.push_back(seg(false, kSyn | kAck, 5000, 1001, {}));
  pkts.push_back(seg(true, kAck, 1001, 5001, {}));
  pkts.push_back(seg(true, kPsh | kAck, 1001, 5001, "GET /index.html HTTP/1.1\r\n"));
  pkts.push_back(seg(true, kPsh | kAck, 1001, 5001, "GET /index.html HTTP/1.1\r\n"));  // plain
  pkts.push_back(seg(true, kPsh | kAck, 1005, 5001, "/TUNNELED-DATA!"));  // other bytes
  pkts.push_back(seg(false, kAck, 5001, 1027, {}));
  for (size_t i = 0; i < pkts.size(); ++i)
    pkts[i].meta().ts = Timestamp::from_sec_usec(1700000000, uint32_t(i * 1000));
  MonitorContext ctx;
  Accountant acct(ctx, parse_subscribers("198.51.100.0/24 ue\n", "s").value());
  run(ctx, pkts);
  ASSERT_EQ(acct.abuse().size(), 1u);
  const AbuseReport& a = acct.abuse()[0];
  EXPECT_EQ(a.subscriber, "ue");
  EXPECT_EQ(a.side, Side::Client);
  EXPECT_EQ(a.offset, 4u);
  EXPECT_EQ(a.length, 15u);
  EXPECT_FALSE(a.uid.empty());
  const Usage& u = acct.usage()[0];
  EXPECT_EQ(u.bytes_up, 26u);  // the request, once
  EXPECT_EQ(u.retransmitted_bytes, 26u + 15u);
}

TEST(Account, TheQuantumInsertCaptureIsFlagged) {
  auto root = testing::shared_pcaps_dir();
  if (!root) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS to point at it)";
  auto pkts = read_capture(
      (*root / "zeek-quantum-insert" / "qi_internet_SYNACK_curl_jsonip.pcap").string());
  ASSERT_TRUE(pkts.ok());
  MonitorContext ctx;
  Accountant acct(ctx, parse_subscribers("0.0.0.0/0 everyone\n::/0 everyone\n", "s").value());
  run(ctx, pkts.value());
  ASSERT_GE(acct.abuse().size(), 1u);  // the injected response and the real one differ
  EXPECT_EQ(acct.abuse()[0].side, Side::Server);
}

}  // namespace
}  // namespace l45::examples
