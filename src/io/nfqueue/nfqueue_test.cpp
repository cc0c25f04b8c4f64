#include "l45/io/nfqueue.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>

#include "io_test_packets.hpp"
#include "l45/io/live.hpp"
#include "l45/io/registry.hpp"
#include "netns.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

using namespace l45::testing;
using namespace l45::iotest;
using SteadyClock = std::chrono::steady_clock;

// Queues the packets of `ns` that pass `hook` (output or input) and match to queue `q`: with
// nftables' `queue` when the kernel has it, else iptables' NFQUEUE target (which some kernels
// without CONFIG_NFT_QUEUE still run through nft_compat). Returns "" or why neither works.
std::string add_queue_rule(const Netns& ns, const std::string& hook, const std::string& nft_match,
                           const std::string& ipt_match, int q) {
  std::string out;
  std::string nft = "nft add table inet l45t && nft add chain inet l45t " + hook +
                    " '{ type filter hook " + hook + " priority 0; }' && nft add rule inet l45t " +
                    hook + " " + nft_match + " queue num " + std::to_string(q);
  if (ns.exec(nft, &out) == 0) return "";
  std::string why = "nft: " + out;
  ns.exec("nft delete chain inet l45t " + hook);
  out.clear();
  std::string chain = hook == "output" ? "OUTPUT" : "INPUT";
  std::string ipt =
      "iptables -A " + chain + " " + ipt_match + " -j NFQUEUE --queue-num " + std::to_string(q);
  if (ns.exec(ipt, &out) == 0) return "";
  return why + "; iptables: " + out;
}

#define L45_QUEUE_RULE_OR_SKIP(...)                                                        \
  do {                                                                                     \
    std::string l45_why = add_queue_rule(__VA_ARGS__);                                     \
    if (!l45_why.empty()) GTEST_SKIP() << "needs an NFQUEUE rule in a netns: " << l45_why; \
  } while (0)

// Two namespaces on a veth pair: c 198.51.100.1 (vc), s 198.51.100.2 (vs).
struct Pair {
  Netns c{"qc"}, s{"qs"};
  std::string setup(bool offloads_off = true) {
    if (!c.ok()) return c.error();
    if (!s.ok()) return s.error();
    return add_veth(c, {"vc", "198.51.100.1/24"}, s, {"vs", "198.51.100.2/24"}, offloads_off);
  }
};

const char* const kEchoToServer = "icmp type echo-request ip daddr 198.51.100.2";
const char* const kIptEchoToServer = "-p icmp --icmp-type echo-request -d 198.51.100.2";

std::unique_ptr<NfqueueSource> open_queue(const Netns& ns, const std::string& spec) {
  NetnsScope in(ns);
  EXPECT_TRUE(in.ok()) << in.error();
  auto r = open_source(spec);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  if (!r.ok()) return nullptr;
  return std::unique_ptr<NfqueueSource>(dynamic_cast<NfqueueSource*>(r->release()));
}

// Reads until `n` packets arrived or `ms` passed.
std::vector<Packet> read_n(Source& src, size_t n, int ms) {
  std::vector<Packet> got;
  PacketBatch batch(16);
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
  while (got.size() < n && SteadyClock::now() < deadline) {
    auto r = src.read(batch);
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message();
      break;
    }
    for (Packet& p : batch)
      got.push_back(std::move(p));
  }
  return got;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool is_echo_request_to_server(const Packet& p) {
  auto ip = parse_ip4(p.data());
  return ip && ip->proto == 1 && ip->dst == ip4("198.51.100.2") &&
         load_u8(&p.data()[ip->l4()]) == 8;
}

TEST(NfqueueSource, DropVerdictFailsPingAndAcceptVerdictPassesIt) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 7);
  auto q = open_queue(n.c, "nfqueue:7");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->name(), "nfqueue:7");
  EXPECT_EQ(q->link_type(), LinkType::Raw);

  pid_t ping = n.c.spawn({"ping", "-c", "1", "-W", "1", "198.51.100.2"});
  auto first = read_n(*q, 1, 2000);
  ASSERT_EQ(first.size(), 1u) << "ping's echo request was not queued";
  const PacketMeta& m = first[0].meta();
  EXPECT_TRUE(is_echo_request_to_server(first[0]));
  EXPECT_EQ(m.link, LinkType::Raw);
  EXPECT_EQ(m.queue_id, 7u);
  EXPECT_NE(m.queue_packet_id, 0u);
  EXPECT_EQ(m.direction, Direction::Outbound) << "queued on output: only an output device";
  EXPECT_EQ(m.ingress, 0u);
  EXPECT_EQ(m.wire_len, first[0].size());
  ASSERT_TRUE(q->verdict(first[0], Verdict::Drop).ok());
  EXPECT_NE(n.c.wait(ping, 3000), 0) << "ping passed although its request was dropped";

  ping = n.c.spawn({"ping", "-c", "1", "-W", "2", "198.51.100.2"});
  auto second = read_n(*q, 1, 2000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].meta().queue_packet_id, m.queue_packet_id);
  ASSERT_TRUE(q->verdict(second[0], Verdict::Accept).ok());
  EXPECT_EQ(n.c.wait(ping, 3000), 0) << "ping failed although its request was accepted";
  EXPECT_EQ(q->verdict_errors(), 0u);

  EXPECT_FALSE(q->verdict(second[0], Verdict::Pending).ok());
  Packet stranger = Packet::copy_of(second[0].data());
  auto bad = q->verdict(stranger, Verdict::Accept);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not read from it"), std::string::npos);
}

// The echo request is rewritten in the queue (new payload bytes, ICMP checksum fixed); a
// capture on the receiver's side sees the new bytes, and the mark set with the verdict is
// seen by a later netfilter rule.
TEST(NfqueueSource, ModifiedVerdictIsWhatTheReceiverGetsAndMarkIsSet) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 8);
  ASSERT_EQ(n.c.exec("nft add table inet l45m && nft add chain inet l45m post "
                     "'{ type filter hook postrouting priority 0; }' && "
                     "nft add rule inet l45m post meta mark 0x45 counter"),
            0);
  auto q = open_queue(n.c, "nfqueue:8");
  ASSERT_TRUE(q);
  std::unique_ptr<Source> cap;
  {
    NetnsScope in(n.s);
    auto r = open_source("iface:vs,promisc=0");
    ASSERT_TRUE(r.ok()) << r.error().message();
    cap = std::move(*r);
  }
  ASSERT_TRUE(cap->set_filter("icmp[icmptype] == icmp-echo").ok());

  // -p: the pattern ping puts after its timestamp.
  pid_t ping = n.c.spawn({"ping", "-c", "1", "-W", "2", "-s", "40", "-p", "61", "198.51.100.2"});
  auto got = read_n(*q, 1, 2000);
  ASSERT_EQ(got.size(), 1u);
  Packet& req = got[0];
  ASSERT_EQ(req.size(), 20u + 8 + 40);
  EXPECT_EQ(load_u8(&req.data()[req.size() - 1]), 0x61);
  const std::string_view mark_text = "rewritten by l45";
  Buf changed(req.data().begin(), req.data().end());
  for (size_t i = 0; i < mark_text.size(); ++i)
    changed[changed.size() - mark_text.size() + i] = std::byte(mark_text[i]);
  fix_icmp4_checksum(changed, *parse_ip4(changed));
  ASSERT_TRUE(q->verdict_modified(req, changed, 0x45).ok());
  n.c.wait(ping, 3000);  // ping complains about the changed bytes; the capture is the oracle

  auto seen = read_n(*cap, 1, 2000);
  ASSERT_EQ(seen.size(), 1u) << "the modified request did not reach the receiver";
  auto ip = parse_eth_ip4(seen[0].data());
  ASSERT_TRUE(ip);
  Bytes icmp = seen[0].data().subspan(ip->l4(), ip->total - ip->ihl);
  EXPECT_EQ(as_text(icmp.last(mark_text.size())), mark_text);
  EXPECT_EQ(checksum_finish(checksum_add(icmp)), 0) << "the receiver got a valid checksum";
  EXPECT_EQ(icmp.size(), changed.size() - 20);

  std::string rules;
  n.c.exec("nft list chain inet l45m post", &rules);
  EXPECT_NE(rules.find("counter packets 1 "), std::string::npos) << rules;
  EXPECT_EQ(q->verdict_errors(), 0u);
}

// The request line is rewritten in the queue: nginx serves the other file. TCP checksums of
// locally sent segments are partial at the output hook (the device would finish them; the
// queue has gso on), and a modified packet is sent as given: so the checksum is computed
// whole, not patched with checksum_update16.
TEST(NfqueueSource, RewrittenHttpRequestMakesNginxServeAnotherFile) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", "tcp dport 80", "-p tcp --dport 80", 13);
  TempDir dir;
  dir.write("www/a.txt", "alpha\n");
  dir.write("www/b.txt", "bravo\n");
  std::string err;
  ASSERT_GT(start_nginx(n.s, dir, "198.51.100.2:80", &err), 0) << err;
  auto q = open_queue(n.c, "nfqueue:13");
  ASSERT_TRUE(q);

  auto out = dir.path() / "curl.out";
  pid_t curl = n.c.spawn(
      {"curl", "-sS", "--max-time", "5", "-o", out.string(), "http://198.51.100.2/a.txt"});
  int rewritten = 0;
  PacketBatch batch(16);
  auto deadline = SteadyClock::now() + std::chrono::seconds(6);
  int status = -2;
  while (SteadyClock::now() < deadline) {
    if (n.c.exited(curl, &status)) break;
    auto r = q->read(batch);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (Packet& p : batch) {
      auto ip = parse_ip4(p.data());
      auto t = ip ? parse_tcp(p.data(), *ip) : std::nullopt;
      if (t && as_text(t->payload).starts_with("GET /a.txt ")) {
        Buf b(p.data().begin(), p.data().end());
        b[static_cast<size_t>(t->payload.data() - p.data().data()) + 5] = std::byte('b');
        fix_l4_checksum(b, *ip);
        ASSERT_TRUE(q->verdict_modified(p, b).ok());
        ++rewritten;
      } else {
        ASSERT_TRUE(q->write(p).ok());  // meta.verdict Pending: accept as is
      }
    }
  }
  EXPECT_EQ(status, 0) << "curl did not finish";
  EXPECT_EQ(rewritten, 1);
  EXPECT_EQ(slurp(out), "bravo\n");
  EXPECT_EQ(q->verdict_errors(), 0u);
}

// Real curl against real nginx with every segment of both directions through the queue,
// accepted by write() with batch=1 (NFQNL_MSG_VERDICT_BATCH): the body arrives intact.
// Offloads stay on, so GSO packets larger than the MTU come through the queue whole.
TEST(NfqueueSource, CurlThroughQueueWithBatchedAcceptsIsByteIdentical) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(/*offloads_off=*/false), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", "tcp dport 80", "-p tcp --dport 80", 9);
  L45_QUEUE_RULE_OR_SKIP(n.c, "input", "tcp sport 80", "-p tcp --sport 80", 9);
  TempDir dir;
  std::string body;
  uint32_t x = 0x1234567;
  for (size_t i = 0; i < 400 * 1024; ++i) {
    x = x * 1103515245 + 12345;  // no pattern a lost or doubled segment could hide in
    body += static_cast<char>(x >> 23);
  }
  dir.write("www/big.bin", body);
  std::string err;
  ASSERT_GT(start_nginx(n.s, dir, "198.51.100.2:80", &err), 0) << err;
  auto q = open_queue(n.c, "nfqueue:9,batch=1");
  ASSERT_TRUE(q);

  auto out = dir.path() / "curl.out";
  pid_t curl = n.c.spawn(
      {"curl", "-sS", "--max-time", "8", "-o", out.string(), "http://198.51.100.2/big.bin"});
  size_t packets = 0, inbound = 0, largest = 0;
  PacketBatch batch(64);
  auto deadline = SteadyClock::now() + std::chrono::seconds(9);
  int status = -2;
  while (SteadyClock::now() < deadline) {
    if (n.c.exited(curl, &status)) break;
    auto r = q->read(batch);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (const Packet& p : batch) {
      inbound += p.meta().direction == Direction::Inbound;
      largest = std::max(largest, p.size());
    }
    packets += batch.size();
    ASSERT_TRUE(q->write(batch).ok());
  }
  EXPECT_EQ(status, 0) << "curl did not finish";
  EXPECT_EQ(slurp(out) == body, true) << "body differs";
  EXPECT_GT(packets, 10u);
  EXPECT_GT(inbound, 0u) << "server-to-client segments were queued on input";
  EXPECT_EQ(q->verdict_errors(), 0u);
  EXPECT_EQ(q->stats().kernel_dropped, 0u);
  RecordProperty("largest_packet", std::to_string(largest));
}

TEST(NfqueueSource, BatchVerdictAcceptsEveryWaitingPacketUpToTheId) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 10);
  auto q = open_queue(n.c, "nfqueue:10");
  ASSERT_TRUE(q);
  TempDir dir;
  auto log = (dir.path() / "ping.log").string();
  pid_t ping = n.c.spawn({"ping", "-c", "3", "-i", "0.2", "-W", "3", "198.51.100.2"}, log);
  auto held = read_n(*q, 3, 3000);
  ASSERT_EQ(held.size(), 3u);
  ASSERT_TRUE(q->verdict_batch(held[2].meta().queue_packet_id, Verdict::Accept).ok());
  EXPECT_EQ(n.c.wait(ping, 4000), 0);
  EXPECT_NE(slurp(log).find("3 received"), std::string::npos) << slurp(log);
  EXPECT_EQ(q->verdict_errors(), 0u);
}

// Queue length 1, nobody reading: with fail_open the kernel accepts what does not fit, so
// two of three pings are answered while the first waits; copy=64 cuts what is read.
TEST(NfqueueSource, FailOpenAcceptsWhatDoesNotFitAndCopyCutsPackets) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 11);
  auto q = open_queue(n.c, "nfqueue:11,fail_open=1,max_len=1,copy=64");
  ASSERT_TRUE(q);
  TempDir dir;
  auto log = (dir.path() / "ping.log").string();
  pid_t ping = n.c.spawn({"ping", "-c", "3", "-i", "0.2", "-W", "1", "198.51.100.2"}, log);
  n.c.wait(ping, 4000);
  EXPECT_NE(slurp(log).find("3 packets transmitted, 2 received"), std::string::npos) << slurp(log);

  auto held = read_n(*q, 1, 1000);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].size(), 64u);
  EXPECT_EQ(held[0].meta().wire_len, 84u) << "20 IP + 8 ICMP + 56 data";
  ASSERT_TRUE(q->verdict(held[0], Verdict::Accept).ok());
  EXPECT_EQ(q->stats().kernel_dropped, 0u) << "fail-open accepted, nothing was lost";
}

TEST(NfqueueSource, FullQueueWithoutFailOpenCountsKernelDrops) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 12);
  auto q = open_queue(n.c, "nfqueue:12,max_len=1");
  ASSERT_TRUE(q);
  TempDir dir;
  auto log = (dir.path() / "ping.log").string();
  pid_t ping = n.c.spawn({"ping", "-c", "3", "-i", "0.2", "-W", "1", "198.51.100.2"}, log);
  auto held = read_n(*q, 1, 2000);
  ASSERT_EQ(held.size(), 1u);
  n.c.wait(ping, 4000);  // the other two are dropped by the kernel: the queue is full
  ASSERT_TRUE(q->verdict(held[0], Verdict::Accept).ok());
  PacketBatch batch(4);
  ASSERT_TRUE(q->read(batch).ok());  // idle: refreshes the kernel's counts
  EXPECT_EQ(batch.size(), 0u);
  EXPECT_EQ(q->stats().kernel_dropped, 2u);
}

TEST(NfqueueSource, PacketsTheFilterRejectsAreAcceptedAtOnce) {
  L45_REQUIRE_NETNS();
  Pair n;
  ASSERT_EQ(n.setup(), "");
  L45_QUEUE_RULE_OR_SKIP(n.c, "output", kEchoToServer, kIptEchoToServer, 14);
  auto q = open_queue(n.c, "nfqueue:14");
  ASSERT_TRUE(q);
  ASSERT_TRUE(q->set_filter("dst host 192.0.2.99").ok());
  pid_t ping = n.c.spawn({"ping", "-c", "2", "-i", "0.2", "-W", "2", "198.51.100.2"});
  auto got = read_n(*q, 1, 1500);  // keeps reading: rejected packets are accepted meanwhile
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(n.c.wait(ping, 3000), 0);
  EXPECT_EQ(q->stats().filtered, 2u);
}

TEST(NfqueueSource, SecondBindOfAQueueSaysItIsInUse) {
  L45_REQUIRE_NETNS();
  Netns ns("qb");
  ASSERT_TRUE(ns.ok()) << ns.error();
  NetnsScope in(ns);
  auto a = open_source("nfqueue:5,fail_open=1");
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto b = open_source("nfqueue:5");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message(),
            "nfqueue:5: queue is already bound by another process: Device or resource busy");
  auto typo = open_source("nfqueue:5,failopen=1");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message().find("unknown option 'failopen'"), std::string::npos);
  auto bad = open_source("nfqueue:70000");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("expected a number from 0 to 65535"), std::string::npos)
      << bad.error().message();
}

TEST(NfqueueSource, WithoutPrivilegeSaysNeedsRootOrCapNetAdmin) {
  L45_REQUIRE_NETNS();
  std::string msg = run_as_nobody([] {
    auto r = open_source("nfqueue:5");
    return r.ok() ? std::string("opened") : r.error().message();
  });
  EXPECT_EQ(msg, "nfqueue:5: binding a queue needs root or CAP_NET_ADMIN: Operation not permitted");
}

}  // namespace
}  // namespace l45
