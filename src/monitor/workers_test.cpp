// FlowDispatcher: both directions of a flow, the ICMP errors quoting it and the fragments of
// its datagrams reach one worker; per-worker engines, merged, give what one engine gives on
// the bundled capture and on every shared one.
#include "l45/monitor/workers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/monitor/monitor.hpp"
#include "l45/packet/builder.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

const IpAddr kC4 = *IpAddr::parse("192.0.2.1"), kS4 = *IpAddr::parse("198.51.100.9");
const IpAddr kC6 = *IpAddr::parse("2001:db8::1"), kS6 = *IpAddr::parse("2001:db8::9");

Packet tcp(IpAddr src, IpAddr dst, uint16_t sp, uint16_t dp) {
  PacketBuilder b;
  if (src.is_v4())
    b.ipv4(src, dst);
  else
    b.ipv6(src, dst);
  return b.tcp(sp, dp).flags(tcp_flag::kAck).build();
}

Packet udp(IpAddr src, IpAddr dst, uint16_t sp, uint16_t dp, std::string_view data = "x") {
  return PacketBuilder().ipv4(src, dst).udp(sp, dp).payload(data).build();
}

// Every worker a dispatcher emits `pkts` to, in order.
std::vector<unsigned> route(FlowDispatcher& d, const std::vector<Packet>& pkts) {
  std::vector<unsigned> out;
  auto emit = [&](unsigned w, const Packet&, Timestamp) { out.push_back(w); };
  for (const Packet& p : pkts)
    d.push(p, emit);
  d.flush(emit);
  return out;
}

TEST(Workers, BothDirectionsOfEveryFlowMeetOnOneWorkerAndFlowsSpread) {
  for (unsigned n : {2u, 3u, 4u, 8u}) {
    FlowDispatcher d({.workers = n});
    std::set<unsigned> used;
    for (uint16_t port = 1024; port < 1024 + 256; ++port) {
      for (auto [c, s] : {std::pair{kC4, kS4}, std::pair{kC6, kS6}}) {
        const unsigned w = d.worker_of(PacketView::decode(tcp(c, s, port, 443)));
        EXPECT_EQ(w, d.worker_of(PacketView::decode(tcp(s, c, 443, port)))) << port;
        EXPECT_LT(w, n);
        used.insert(w);
      }
      if (kC4.is_v4()) {
        const unsigned w = d.worker_of(PacketView::decode(udp(kC4, kS4, port, 53)));
        EXPECT_EQ(w, d.worker_of(PacketView::decode(udp(kS4, kC4, 53, port))));
      }
    }
    // One address pair, 256 ports: a 2-tuple rule would use one worker; this one uses all.
    EXPECT_EQ(used.size(), n);
  }
}

TEST(Workers, AnIcmpErrorGoesToTheWorkerOfTheFlowItQuotes) {
  FlowDispatcher d({.workers = 4});
  const IpAddr router = *IpAddr::parse("203.0.113.254");
  for (uint16_t port = 2000; port < 2064; ++port) {
    const Packet out = udp(kC4, kS4, port, 33434, "probe");
    Bytes ip = out.data();  // the builder without ethernet() starts at the IP header
    const Packet err = PacketBuilder()
                           .ipv4(router, kC4)
                           .icmp_error(icmp_type::kTimeExceeded, 0, ip.first(28))
                           .build();
    EXPECT_EQ(d.worker_of(PacketView::decode(err)), d.worker_of(PacketView::decode(out))) << port;
  }
}

// A UDP datagram of `len` bytes cut into 8-aligned IPv4 fragments of `step` bytes.
std::vector<Packet> fragments(IpAddr src, IpAddr dst, uint16_t sp, uint16_t dp, uint16_t id,
                              size_t len, size_t step) {
  const Packet whole = udp(src, dst, sp, dp, std::string(len, 'f'));
  const Bytes l4 = whole.data().subspan(20);
  std::vector<Packet> out;
  for (size_t off = 0; off < l4.size(); off += step) {
    const size_t n = std::min(step, l4.size() - off);
    out.push_back(PacketBuilder()
                      .ipv4(src, dst)
                      .ip_id(id)
                      .more_fragments(off + n < l4.size())
                      .fragment_offset(uint16_t(off / 8))
                      .ip_protocol(ip_proto::kUdp)
                      .payload(l4.subspan(off, n))
                      .build());
  }
  return out;
}

TEST(Workers, EveryFragmentGoesWhereItsFlowGoesWhateverTheOrder) {
  const unsigned n = 4;
  FlowDispatcher d({.workers = n});
  size_t pair_differs = 0;
  for (uint16_t port = 3000; port < 3064; ++port) {
    // The flow's whole packets, then a datagram in three fragments arriving last first (the
    // first fragment, with the ports, comes last), then a reply.
    std::vector<Packet> pkts;
    pkts.push_back(udp(kC4, kS4, port, 4789 + 1));
    auto frags = fragments(kC4, kS4, port, 4789 + 1, port, 2000, 800);
    ASSERT_EQ(frags.size(), 3u);
    std::reverse(frags.begin(), frags.end());
    for (Packet& f : frags)
      pkts.push_back(std::move(f));
    pkts.push_back(udp(kS4, kC4, 4789 + 1, port));
    const std::vector<unsigned> ws = route(d, pkts);
    ASSERT_EQ(ws.size(), pkts.size());
    EXPECT_TRUE(std::all_of(ws.begin(), ws.end(), [&](unsigned w) { return w == ws[0]; }))
        << "port " << port;
    // Addresses alone would have sent the fragments elsewhere for some of the flows.
    const KeyedPacket pair = make_flow_key(ip_proto::kUdp, kC4, 0, kS4, 0);
    pair_differs +=
        unsigned((unsigned __int128)flow_key_hash(pair.key, DispatchConfig{}.seed) * n >> 64) !=
        ws[0];
  }
  EXPECT_GT(pair_differs, 0u);
  EXPECT_EQ(d.stats().fragments_held, 64u * 2);
  EXPECT_EQ(d.stats().fragments_released, 0u);
}

TEST(Workers, AnIncompleteDatagramIsReleasedByItsAddressesAtFlush) {
  FlowDispatcher d({.workers = 4});
  auto frags = fragments(kC4, kS4, 5000, 53, 77, 2000, 800);
  frags.pop_back();  // the last fragment never comes
  const std::vector<unsigned> ws = route(d, frags);
  ASSERT_EQ(ws.size(), 2u);
  EXPECT_EQ(ws[0], ws[1]);
  EXPECT_EQ(d.stats().fragments_released, 2u);
}

// What one flow looked like when it ended: independent of which engine numbered it.
struct Conns {
  std::vector<std::string> rows;
  EngineStats stats{};
};

void record(MonitorContext& ctx, Conns& out) {
  SocketId s = ctx.socket(SocketKind::Stream).value();
  HandlerId h = ctx.handler("record",
                            [&out](MonitorContext& c, FlowHandle fh, Side, EventId) {
                              const Flow& f = *c.flow(fh);
                              std::string r = std::to_string(f.proto()) + " " +
                                              f.addr(Side::Client).to_string() + ":" +
                                              std::to_string(f.port(Side::Client)) + " " +
                                              f.addr(Side::Server).to_string() + ":" +
                                              std::to_string(f.port(Side::Server)) + " " +
                                              std::to_string(f.first_seen().ns) + "-" +
                                              std::to_string(f.last_seen().ns) + " " +
                                              std::string(flow_end_name(c.detail().end));
                              for (Side sd : {Side::Client, Side::Server})
                                r += " " + std::to_string(f.counters(sd).packets) + "/" +
                                     std::to_string(f.counters(sd).ip_bytes) + "/" +
                                     std::to_string(f.payload_size(sd));
                              r += " missed=" + std::to_string(f.missed_bytes()) +
                                   " icmp=" + std::to_string(f.icmp_errors()) +
                                   " tunnel=" + c.engine().tunnel_path(f.tunnel());
                              if (f.tcp()) r += " " + std::string(f.tcp()->history());
                              out.rows.push_back(std::move(r));
                            })
                    .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnEnd, Hook::Receiver, h).ok());
}

void add(EngineStats& a, const EngineStats& b) {
  a.packets += b.packets;
  a.non_ip += b.non_ip;
  a.undecodable += b.undecodable;
  a.fragments_absorbed += b.fragments_absorbed;
  a.no_key += b.no_key;
  a.flow_packets += b.flow_packets;
  a.flows_created += b.flows_created;
  a.icmp_errors += b.icmp_errors;
  a.tcp_partial += b.tcp_partial;
  a.stream_bytes += b.stream_bytes;
  a.stream_gaps += b.stream_gaps;
  a.stream_mismatches += b.stream_mismatches;
}

Conns one_engine(const std::vector<Packet>& pkts) {
  Conns c;
  MonitorContext ctx;
  record(ctx, c);
  for (const Packet& p : pkts)
    ctx.process(p);
  ctx.finish();
  add(c.stats, ctx.engine().stats());
  std::sort(c.rows.begin(), c.rows.end());
  return c;
}

// N workers on threads (WorkerPool), each recording into its own Conns, merged after.
Conns workers(const std::vector<Packet>& pkts, unsigned n) {
  std::vector<Conns> per(n);
  WorkerPool pool({.workers = n}, [&](unsigned w, MonitorContext& ctx) -> Result<void> {
    record(ctx, per[w]);
    return {};
  });
  for (const Packet& p : pkts)
    pool.push(p.share());
  EXPECT_TRUE(pool.finish().ok());
  Conns c;
  for (unsigned w = 0; w < n; ++w) {
    c.rows.insert(c.rows.end(), per[w].rows.begin(), per[w].rows.end());
    add(c.stats, pool.context(w).engine().stats());
  }
  std::sort(c.rows.begin(), c.rows.end());
  return c;
}

void expect_same(const std::vector<Packet>& pkts, const std::string& name) {
  const Conns one = one_engine(pkts);
  for (unsigned n : {2u, 3u}) {
    const Conns many = workers(pkts, n);
    EXPECT_EQ(many.rows, one.rows) << name << " with " << n << " workers";
    const EngineStats &a = one.stats, &b = many.stats;
    EXPECT_EQ(b.packets, a.packets) << name;
    EXPECT_EQ(b.non_ip, a.non_ip) << name;
    EXPECT_EQ(b.undecodable, a.undecodable) << name;
    EXPECT_EQ(b.fragments_absorbed, a.fragments_absorbed) << name;
    EXPECT_EQ(b.no_key, a.no_key) << name;
    EXPECT_EQ(b.flow_packets, a.flow_packets) << name;
    EXPECT_EQ(b.flows_created, a.flows_created) << name;
    EXPECT_EQ(b.icmp_errors, a.icmp_errors) << name;
    EXPECT_EQ(b.tcp_partial, a.tcp_partial) << name;
    EXPECT_EQ(b.stream_bytes, a.stream_bytes) << name;
    EXPECT_EQ(b.stream_gaps, a.stream_gaps) << name;
    EXPECT_EQ(b.stream_mismatches, a.stream_mismatches) << name;
  }
}

TEST(Workers, MergedWorkersEqualOneEngineOnTheBundledCapture) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  expect_same(pkts.value(), "sample.pcap");
}

TEST(Workers, MergedWorkersEqualOneEngineOnEverySharedCapture) {
  auto root = testing::shared_pcaps_dir();
  if (!root) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS to point at it)";
  size_t files = 0, fragmented = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(*root)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".pcap" && ext != ".pcapng" && ext != ".cap") continue;
    auto pkts = read_capture(e.path().string());
    if (!pkts.ok()) continue;  // captures the reader refuses are the reader's tests' business
    ++files;
    FlowDispatcher d({.workers = 2});
    for (const Packet& p : pkts.value())
      d.push(p, [](unsigned, const Packet&, Timestamp) {});
    fragmented += d.stats().fragments_held > 0;
    expect_same(pkts.value(), e.path().filename().string());
  }
  EXPECT_GT(files, 20u);
  EXPECT_GT(fragmented, 0u);  // ppp-ipdefrag, ppp-frag-http-req
}

// Marks: at each, the workers together hold the flows one engine holds at that point.
TEST(Workers, AtEveryMarkTheWorkersTogetherHoldWhatOneEngineHolds) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  std::vector<size_t> one;
  {
    MonitorContext ctx;
    for (size_t i = 0; i < pkts.value().size(); ++i) {
      if (i % 25 == 0) one.push_back(ctx.engine().active_flows());
      ctx.process(pkts.value()[i]);
    }
  }
  const unsigned n = 3;
  std::vector<std::vector<size_t>> at(n);  // per worker, per mark
  WorkerPool pool(
      {.workers = n}, [](unsigned, MonitorContext&) -> Result<void> { return {}; },
      [&](unsigned w, MonitorContext& ctx, uint64_t mark) {
        EXPECT_EQ(mark, at[w].size());
        at[w].push_back(ctx.engine().active_flows());
      });
  for (size_t i = 0; i < pkts.value().size(); ++i) {
    if (i % 25 == 0) pool.mark(i / 25);
    pool.push(pkts.value()[i].share());
  }
  ASSERT_TRUE(pool.finish().ok());
  for (size_t m = 0; m < one.size(); ++m) {
    size_t sum = 0;
    for (unsigned w = 0; w < n; ++w)
      sum += at[w].at(m);
    EXPECT_EQ(sum, one[m]) << "mark " << m;
  }
}

TEST(Workers, ASetupErrorIsWhatFinishReturns) {
  WorkerPool pool({.workers = 2}, [](unsigned w, MonitorContext& ctx) -> Result<void> {
    if (w == 1) return ctx.socket(SocketKind::Stream, "tcp prot 80").error();
    return {};
  });
  pool.push(PacketBuilder().ipv4(kC4, kS4).udp(1, 2).build());
  auto r = pool.finish();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("prot"), std::string::npos) << r.error().message();
}

TEST(Workers, MergedUidsAreOneEnginesUids) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  MonitorContext ctx;
  size_t n = 0;
  HandlerId h = ctx.handler("uid",
                            [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                              EXPECT_EQ(flow_uid(c.flow(f)->serial()), c.flow(f)->uid());
                              ++n;
                            })
                    .value();
  ASSERT_TRUE(
      ctx.on(ctx.socket(SocketKind::Stream).value(), BuiltinEvent::ConnEnd, Hook::Receiver, h)
          .ok());
  for (const Packet& p : pkts.value())
    ctx.process(p);
  ctx.finish();
  EXPECT_GT(n, 4u);
}

}  // namespace
}  // namespace l45
