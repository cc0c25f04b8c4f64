// firewall: rule parsing with file:line errors, and the rules applied inline to the bundled
// capture (data/sample.pcap: curl and nginx over IPv4 and IPv6).
#include "firewall/firewall.hpp"

#include <gtest/gtest.h>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/decode.hpp"
#include "testing.hpp"

namespace l45::examples {
namespace {

TEST(Firewall, ParsesRulesAndNamesTheBadLine) {
  auto r = parse_firewall_rules(
      "# comment\n\nDROP any 203.0.113.0/24 dport 23\nREJECT 198.51.100.7 any sport 1 # x\n"
      "ACCEPT fd00::/8 any\n",
      "fw.rules");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].line, 3u);
  EXPECT_EQ((*r)[0].action, FirewallAction::Drop);
  EXPECT_FALSE((*r)[0].src);
  EXPECT_EQ((*r)[0].dport, 23);
  EXPECT_EQ((*r)[1].text, "REJECT 198.51.100.7 any sport 1");
  const IpAddr a = *IpAddr::parse("203.0.113.9"), b = *IpAddr::parse("192.0.2.1");
  EXPECT_TRUE((*r)[0].matches(b, 5000, a, 23));
  EXPECT_FALSE((*r)[0].matches(b, 5000, a, 24));
  EXPECT_FALSE((*r)[0].matches(a, 5000, b, 23));
  for (auto [text, why] : std::initializer_list<std::pair<const char*, const char*>>{
           {"ALLOW any any\n", "fw.rules:1: unknown action 'ALLOW'"},
           {"\nDROP any\n", "fw.rules:2: expected"},
           {"DROP 10.0.0.0/33 any\n", "fw.rules:1: bad address or prefix '10.0.0.0/33'"},
           {"DROP any any dport http\n", "fw.rules:1: bad port 'http' after dport"},
           {"DROP any any dport 70000\n", "fw.rules:1: bad port '70000'"},
           {"DROP any any dport\n", "fw.rules:1: dport needs a port number"},
           {"DROP any any dport 1 dport 2\n", "fw.rules:1: dport given twice"},
           {"DROP any any proto tcp\n", "fw.rules:1: unexpected 'proto'"}}) {
    auto bad = parse_firewall_rules(text, "fw.rules");
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.error().message().rfind(why, 0), 0u) << bad.error().message();
  }
}

// Every packet of the sample through the firewall inline: the denied flows lose every packet,
// the others none, and each flow is judged once.
TEST(Firewall, JudgesEachFlowOnceInline) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  auto rules = parse_firewall_rules("DROP any any dport 8080\nREJECT any ::/0\n", "r");
  ASSERT_TRUE(rules.ok());
  MonitorContext ctx;
  Firewall fw(ctx, *rules);
  ASSERT_TRUE(fw.status().ok());
  uint64_t v6_tcp = 0, v6_dropped = 0, v4_dropped = 0, v4_tcp = 0, flows_v6 = 0;
  for (const Packet& p : *pkts) {
    const PacketView v = PacketView::decode(p);
    const InlineOutcome o = ctx.process_inline(p);
    if (!v.tcp()) continue;
    const bool drop = o.verdict == Verdict::Drop;
    if (v.ip_version() == 6) {
      ++v6_tcp;
      v6_dropped += drop;
      if (v.tcp()->syn() && !v.tcp()->has_ack()) ++flows_v6;
    } else {
      ++v4_tcp;
      v4_dropped += drop;
    }
    EXPECT_FALSE(o.packet) << "the firewall never changes a packet";
  }
  ctx.finish();
  ASSERT_GT(v6_tcp, 0u);
  ASSERT_GT(v4_tcp, 0u);
  EXPECT_EQ(v4_dropped, 0u);  // no rule matched: accepted
  // A REJECTed flow's first packet is dropped and the flow is no longer monitored; the capture
  // goes on (nobody obeyed the RST), so only the SYNs are dropped.
  EXPECT_EQ(v6_dropped, flows_v6);
  EXPECT_EQ(fw.rules()[1].hits, flows_v6);
  EXPECT_EQ(fw.rules()[0].hits, 0u);
  EXPECT_GT(fw.unmatched(), 0u);
  const std::vector<Packet> rst = ctx.take_sent();
  EXPECT_EQ(rst.size(), flows_v6);
  for (const Packet& p : rst) {
    const PacketView v = PacketView::decode(p, {.verify_checksums = true});
    ASSERT_TRUE(v.tcp());
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
    EXPECT_TRUE(v.tcp()->rst());
  }
}

}  // namespace
}  // namespace l45::examples
