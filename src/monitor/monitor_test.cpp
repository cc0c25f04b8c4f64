// MonitorContext on the bundled capture (data/sample.pcap: nginx and curl, keep-alive requests,
// IPv6, retransmissions after drops): events against the engine's own counts, filters, per-flow
// subscriptions changed in handlers, UDEs, user data, stop, raw sockets.
#include "l45/monitor/monitor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"
#include "tcp_talk.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

const std::vector<Packet>& sample() {
  static const std::vector<Packet> pkts = [] {
    auto r = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
    EXPECT_TRUE(r.ok());
    return r.ok() ? std::move(r).value() : std::vector<Packet>{};
  }();
  return pkts;
}

void run(MonitorContext& ctx) {
  for (const Packet& p : sample())
    ctx.process(p);
  ctx.finish();
}

// Counts events per (event name, hook) and per flow.
struct Counter {
  std::map<std::string, uint64_t> n;
  std::set<uint64_t> flows;
  HandlerId id = 0;
  Counter(MonitorContext& ctx, const std::string& name) {
    id = ctx.handler(name,
                     [this, &ctx](MonitorContext& c, FlowHandle f, Side, EventId e) {
                       EXPECT_EQ(&c, &ctx);
                       ++n[ctx.events().list()[e].name];
                       if (f) flows.insert(uint64_t{f.index} << 32 | f.generation);
                     })
             .value();
  }
};

TEST(Monitor, StreamSocketEventsAgreeWithTheEngine) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  Counter c(ctx, "count");
  for (BuiltinEvent e : {BuiltinEvent::ConnStart, BuiltinEvent::HandshakeDone, BuiltinEvent::Data,
                         BuiltinEvent::Retransmission, BuiltinEvent::ConnEnd, BuiltinEvent::Packet,
                         BuiltinEvent::TcpState})
    ASSERT_TRUE(ctx.on(s, e, Hook::Sender, c.id).ok());
  run(ctx);
  const EngineStats& st = ctx.engine().stats();
  EXPECT_EQ(c.n["conn_start"], 5u);  // l45 conn: five TCP connections (and two ICMP flows)
  EXPECT_EQ(c.n["conn_start"], c.n["conn_end"]);
  EXPECT_EQ(c.n["handshake_done"], c.n["conn_start"]);  // every connection was seen from its SYN
  EXPECT_EQ(c.n["packet"], st.tcp_packets);
  EXPECT_GT(c.n["retransmission"], 0u);  // the capture's dropped and resent segments
  EXPECT_GT(c.n["data"], 0u);
  // Four changes per side at least: LISTEN > SYN_* > ESTABLISHED > FIN... > ...
  EXPECT_GE(c.n["tcp_state"], 4 * c.n["conn_start"]);
}

// process(span) goes through the engine's batch path: every event, in the same order, with the
// same last_packet(), detail and timers as packet by packet, on every packet of the capture,
// for a stream socket, a raw socket and timers set from handlers.
TEST(Monitor, BatchesGiveTheEventsOfPacketByPacket) {
  auto trace = [](size_t batch) {
    MonitorContext ctx;
    SocketId s = ctx.socket(SocketKind::Stream).value();
    SocketId raw = ctx.socket(SocketKind::Raw, "udp or icmp or icmp6").value();
    std::vector<std::string> log;
    HandlerId h =
        ctx.handler("log",
                    [&](MonitorContext& c, FlowHandle f, Side side, EventId e) {
                      const Packet* p = c.last_packet();
                      log.push_back(std::to_string(e) + " " + std::to_string(f.index) + "/" +
                                    std::to_string(f.generation) + " " + std::to_string(int(side)) +
                                    " " + (p ? std::to_string(p->meta().frame) : "-") + " " +
                                    std::to_string(c.detail().offset) + "+" +
                                    std::to_string(c.detail().length) + " t" +
                                    std::to_string(c.detail().timer));
                      if (e == EventId(BuiltinEvent::ConnStart)) {
                        EXPECT_TRUE(c.timer(f, Duration::millis(3)).ok());
                      }
                    })
            .value();
    for (size_t e = 0; e < kBuiltinEvents; ++e) {
      EXPECT_TRUE(ctx.on(s, EventId(e), Hook::Receiver, h).ok());
      EXPECT_TRUE(ctx.on(raw, EventId(e), Hook::Sender, h).ok());
    }
    std::span<const Packet> all = sample();
    if (batch == 0) {
      for (const Packet& p : all)
        ctx.process(p);
    } else {
      for (size_t i = 0; i < all.size(); i += batch)
        ctx.process(all.subspan(i, std::min(batch, all.size() - i)));
    }
    ctx.finish();
    return log;
  };
  const std::vector<std::string> one = trace(0);
  ASSERT_GT(one.size(), sample().size());
  EXPECT_TRUE(std::any_of(one.begin(), one.end(), [](const std::string& l) {
    return l.rfind(std::to_string(EventId(BuiltinEvent::Timeout)) + " ", 0) == 0;
  }));
  for (size_t b : {1u, 7u, 64u})
    EXPECT_EQ(trace(b), one) << "batches of " << b;
}

TEST(Monitor, BothHooksRunForEveryEvent) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream).value();
  std::vector<Hook> seen;
  HandlerId snd = ctx.handler("snd", [&](MonitorContext&, FlowHandle, Side,
                                         EventId) { seen.push_back(Hook::Sender); })
                      .value();
  HandlerId rcv = ctx.handler("rcv", [&](MonitorContext&, FlowHandle, Side,
                                         EventId) { seen.push_back(Hook::Receiver); })
                      .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Receiver, rcv).ok());
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, snd).ok());
  ctx.process(sample().at(0));
  ctx.process(sample().at(2));  // the first SYN (0 and 1 are ARP)
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[0], Hook::Sender);
  EXPECT_EQ(seen[1], Hook::Receiver);
}

TEST(Monitor, TheFilterPicksTheFlowsASocketTakes) {
  MonitorContext ctx;
  SocketId v6 = ctx.socket(SocketKind::Stream, "ip6 and tcp").value();
  SocketId none = ctx.socket(SocketKind::Stream, "udp port 9").value();
  Counter a(ctx, "v6"), b(ctx, "none");
  ASSERT_TRUE(ctx.on(v6, BuiltinEvent::ConnStart, Hook::Sender, a.id).ok());
  ASSERT_TRUE(ctx.on(none, BuiltinEvent::ConnStart, Hook::Sender, b.id).ok());
  run(ctx);
  EXPECT_EQ(a.n["conn_start"], 1u);  // the one IPv6 transfer
  EXPECT_EQ(b.n["conn_start"], 0u);
  EXPECT_FALSE(ctx.socket(SocketKind::Stream, "tcp prot 80").ok());  // a typo is an error
}

TEST(Monitor, AFlowChangesItsOwnSubscriptionsFromAHandler) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  std::map<uint32_t, int> data_events;  // by flow slot
  HandlerId on_data = 0;
  on_data = ctx.handler("first_data",
                        [&](MonitorContext& c, FlowHandle f, Side, EventId e) {
                          ++data_events[f.index];
                          // Only the first data of each flow: off again at once.
                          ASSERT_TRUE(c.unsubscribe(f, e, Hook::Receiver, on_data).ok());
                        })
                .value();
  HandlerId on_start =
      ctx.handler(
             "start",
             [&](MonitorContext& c, FlowHandle f, Side, EventId) {
               auto server = c.peer(f, Side::Server);
               ASSERT_TRUE(server);
               if (server->port == 80) {
                 ASSERT_TRUE(
                     c.subscribe(f, EventId(BuiltinEvent::Data), Hook::Receiver, on_data).ok());
               }
             })
          .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, on_start).ok());
  run(ctx);
  ASSERT_FALSE(data_events.empty());
  for (auto [slot, n] : data_events)
    EXPECT_EQ(n, 1) << "slot " << slot;
  // Flows that changed nothing share their socket's node; the rest went back to it.
  EXPECT_LE(ctx.events().nodes(), 3u);
}

TEST(Monitor, AUserDefinedEventFiltersOnTheLastPacket) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  // "http_get": data whose packet's payload starts with "GET ".
  EventId get =
      ctx.events()
          .define("http_get", BuiltinEvent::Data,
                  [](const EventArgs& a) {
                    auto* c = static_cast<MonitorContext*>(a.user);
                    const Packet* p = c->last_packet();
                    if (!p) return false;
                    PacketView v = PacketView::decode(*p);
                    std::string_view pay(reinterpret_cast<const char*>(v.payload().data()),
                                         v.payload().size());
                    return pay.rfind("GET ", 0) == 0;
                  })
          .value();
  Counter c(ctx, "gets");
  ASSERT_TRUE(ctx.on(s, get, Hook::Sender, c.id).ok());
  run(ctx);
  // curl's requests in the capture: a page, two on one keep-alive connection, a 404, and two
  // 256 KiB downloads.
  EXPECT_GE(c.n["http_get"], 5u);
  EXPECT_LE(c.n["http_get"], 8u);
}

TEST(Monitor, UserDataLivesWithTheFlowAndEndedFlowsRefuseRequests) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  std::vector<FlowHandle> ended;
  int tags[64] = {};
  int opened = 0, checked = 0;
  HandlerId start = ctx.handler("start", [&](MonitorContext& c, FlowHandle f, Side,
                                             EventId) { c.set_user(f, &tags[opened++ % 64]); })
                        .value();
  HandlerId end = ctx.handler("end",
                              [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                                EXPECT_NE(c.user(f), nullptr);  // still there during conn_end
                                ++checked;
                                ended.push_back(f);
                              })
                      .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, start).ok());
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnEnd, Hook::Sender, end).ok());
  run(ctx);
  EXPECT_EQ(checked, opened);
  ASSERT_FALSE(ended.empty());
  for (FlowHandle f : ended) {
    EXPECT_EQ(ctx.user(f), nullptr);
    EXPECT_FALSE(ctx.subscribe(f, EventId(BuiltinEvent::Data), Hook::Sender, start).ok());
    EXPECT_FALSE(ctx.stop(f).ok());
    EXPECT_FALSE(ctx.peer(f, Side::Client));
  }
}

TEST(Monitor, AStoppedFlowRaisesNothingMore) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  std::map<uint32_t, int> packets;
  HandlerId h = ctx.handler("stop_after_3",
                            [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                              if (++packets[f.index] == 3) {
                                ASSERT_TRUE(c.stop(f).ok());
                              }
                            })
                    .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::Packet, Hook::Sender, h).ok());
  run(ctx);
  ASSERT_FALSE(packets.empty());
  for (auto [slot, n] : packets)
    EXPECT_EQ(n, 3) << "slot " << slot;
}

TEST(Monitor, TimersFireOnPacketTimeOnceAndNotForEndedFlows) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  std::map<uint32_t, int> fired;
  std::map<uint32_t, Timestamp> armed;
  uint64_t cancelled_id = 0;
  int started = 0;
  HandlerId on_timeout = ctx.handler("timeout",
                                     [&](MonitorContext& c, FlowHandle f, Side, EventId e) {
                                       EXPECT_EQ(e, EventId(BuiltinEvent::Timeout));
                                       EXPECT_NE(c.detail().timer, cancelled_id);
                                       // Packet time: never before it was due.
                                       EXPECT_GE(c.engine().now().ns, armed[f.index].ns + 1000000);
                                       ++fired[f.index];
                                     })
                             .value();
  HandlerId on_start =
      ctx.handler(
             "start",
             [&](MonitorContext& c, FlowHandle f, Side, EventId) {
               ASSERT_TRUE(
                   c.subscribe(f, EventId(BuiltinEvent::Timeout), Hook::Sender, on_timeout).ok());
               armed[f.index] = c.engine().now();
               ASSERT_TRUE(c.timer(f, Duration::millis(1)).ok());
               // A second one, cancelled at once; a third far beyond the capture's end.
               cancelled_id = c.timer(f, Duration::millis(1)).value();
               c.cancel_timer(cancelled_id);
               ASSERT_TRUE(c.timer(f, Duration::seconds(3600)).ok());
               ++started;
             })
          .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, on_start).ok());
  run(ctx);
  ASSERT_EQ(started, 5);
  int total = 0;
  for (auto [slot, n] : fired) {
    EXPECT_EQ(n, 1) << "slot " << slot;
    total += n;
  }
  EXPECT_GE(total, 3);  // flows that lasted past a millisecond of packet time
  EXPECT_FALSE(ctx.timer(FlowHandle{}, Duration::millis(1)).ok());
}

TEST(Monitor, PeekReadsBackEveryDeliveredByteInOrder) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
  ASSERT_TRUE(ctx.set_buffer(s, 1 << 20).ok());
  std::map<std::pair<uint32_t, int>, std::string> delivered, peeked;
  HandlerId on_data = ctx.handler("data",
                                  [&](MonitorContext& c, FlowHandle f, Side side, EventId) {
                                    const Bytes d = c.detail().data;
                                    delivered[{f.index, int(side)}].append(
                                        reinterpret_cast<const char*>(d.data()), d.size());
                                    // ppeek at the offset of these bytes: the same bytes, not
                                    // consumed.
                                    std::vector<std::byte> tmp(d.size());
                                    auto n = c.ppeek(f, side, c.detail().offset, tmp);
                                    ASSERT_TRUE(n.ok()) << n.error().message();
                                    EXPECT_EQ(n.value(), d.size());
                                    EXPECT_TRUE(std::equal(tmp.begin(), tmp.end(), d.begin()));
                                    // Read half of what is there now; the rest waits for the next
                                    // event.
                                    std::vector<std::byte> out(d.size() / 2 + 1);
                                    auto k = c.peek(f, side, out);
                                    ASSERT_TRUE(k.ok());
                                    peeked[{f.index, int(side)}].append(
                                        reinterpret_cast<const char*>(out.data()), k.value());
                                  })
                          .value();
  HandlerId on_end =
      ctx.handler("end",
                  [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                    for (Side side : {Side::Client, Side::Server}) {
                      std::vector<std::byte> out(1 << 20);
                      for (int i = 0; i < 64; ++i) {  // gaps split the rest into runs
                        auto k = c.peek(f, side, out);
                        ASSERT_TRUE(k.ok());
                        if (k.value() == 0) break;
                        peeked[{f.index, int(side)}].append(
                            reinterpret_cast<const char*>(out.data()), k.value());
                      }
                      EXPECT_EQ(c.buffer_dropped(f, side), 0u);
                    }
                  })
          .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, on_data).ok());
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnEnd, Hook::Receiver, on_end).ok());
  run(ctx);
  ASSERT_EQ(delivered.size(), 10u);  // five connections, both sides sent bytes
  for (const auto& [k, bytes] : delivered)
    EXPECT_EQ(peeked[k], bytes) << "flow slot " << k.first << " side " << k.second;
}

// A crafted connection: the client sends "hello", then bytes 8..11 after a 3-byte hole the
// server acknowledges (a gap), into a 10-byte buffer nobody reads until the end.
struct Crafted : testing::TcpTalk {
  Crafted() : TcpTalk{*IpAddr::parse("198.51.100.1"), *IpAddr::parse("203.0.113.1")} {}
};

TEST(Monitor, PeekStopsAtAGapAndPpeekRefusesWhatIsNotHeld) {
  using namespace tcp_flag;
  Crafted cr;
  cr.add(true, kSyn, 1000, 0);
  cr.add(false, kSyn | kAck, 5000, 1001);
  cr.add(true, kAck, 1001, 5001);
  cr.add(true, kPsh | kAck, 1001, 5001, "hello");
  cr.add(true, kPsh | kAck, 1009, 5001, "WXYZ");  // bytes 8..11; 5..7 never seen
  cr.add(false, kAck, 5001, 1013);                // acknowledged: a gap
  EngineConfig cfg;
  cfg.gap_delay = Duration{0};
  MonitorContext ctx(cfg);
  SocketId s = ctx.socket(SocketKind::Stream).value();
  ASSERT_TRUE(ctx.set_buffer(s, 64).ok());
  FlowHandle flow;
  HandlerId h =
      ctx.handler("h", [&](MonitorContext&, FlowHandle f, Side, EventId) { flow = f; }).value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, h).ok());
  for (const Packet& p : cr.pkts)
    ctx.process(p);
  ASSERT_TRUE(flow);
  std::vector<std::byte> out(32);
  auto str = [&](size_t n) { return std::string(reinterpret_cast<const char*>(out.data()), n); };
  auto n = ctx.ppeek(flow, Side::Client, 2, out);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(str(n.value()), "llo");                           // stops at the gap
  EXPECT_FALSE(ctx.ppeek(flow, Side::Client, 6, out).ok());   // in the gap
  EXPECT_FALSE(ctx.ppeek(flow, Side::Client, 12, out).ok());  // not seen yet
  n = ctx.peek(flow, Side::Client, out);
  EXPECT_EQ(str(n.value()), "hello");
  EXPECT_EQ(ctx.read_offset(flow, Side::Client), 5u);
  n = ctx.peek(flow, Side::Client, out);
  EXPECT_EQ(str(n.value()), "WXYZ");  // after the gap: read_offset jumped
  EXPECT_EQ(ctx.read_offset(flow, Side::Client), 12u);
  EXPECT_EQ(ctx.peek(flow, Side::Client, out).value(), 0u);
  EXPECT_FALSE(ctx.ppeek(flow, Side::Client, 0, out).ok());  // consumed
  EXPECT_EQ(ctx.peek(flow, Side::Server, out).value(), 0u);  // buffered, but it sent nothing
  ASSERT_TRUE(ctx.set_buffer(flow, Side::Server, 0).ok());   // off
  EXPECT_FALSE(ctx.peek(flow, Side::Server, out).ok());
}

TEST(Monitor, AReaderThatFallsBehindLosesTheOldestBytesCounted) {
  using namespace tcp_flag;
  Crafted cr;
  cr.add(true, kSyn, 1000, 0);
  cr.add(false, kSyn | kAck, 5000, 1001);
  cr.add(true, kAck, 1001, 5001);
  cr.add(true, kPsh | kAck, 1001, 5001, "0123456789");
  cr.add(true, kPsh | kAck, 1011, 5001, "abcdefghij");
  cr.add(true, kPsh | kAck, 1021, 5001, "KLMNO");
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream).value();
  FlowHandle flow;
  HandlerId h = ctx.handler("h",
                            [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                              flow = f;
                              ASSERT_TRUE(c.set_buffer(f, Side::Client, 10).ok());
                            })
                    .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, h).ok());
  for (const Packet& p : cr.pkts)
    ctx.process(p);
  std::vector<std::byte> out(32);
  auto n = ctx.peek(flow, Side::Client, out);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), n.value()), "fghijKLMNO");
  EXPECT_EQ(ctx.buffer_dropped(flow, Side::Client), 15u);
  EXPECT_EQ(ctx.read_offset(flow, Side::Client), 25u);
}

// Bytes 3..5 arrive twice, out of order, with different contents: the client's side delivers
// the first copy by default, the second once the flow's policy for that side is Last.
TEST(Monitor, OverlapPolicyIsChosenPerFlowAndSide) {
  using namespace tcp_flag;
  auto delivered = [](std::optional<OverlapPolicy> policy) {
    Crafted cr;
    cr.add(true, kSyn, 1000, 0);
    cr.add(false, kSyn | kAck, 5000, 1001);
    cr.add(true, kAck, 1001, 5001);
    cr.add(true, kPsh | kAck, 1004, 5001, "abc");  // bytes 3..5, ahead of 0..2
    cr.add(true, kPsh | kAck, 1004, 5001, "XYZ");  // the same bytes again, other contents
    cr.add(true, kPsh | kAck, 1001, 5001, "012");  // the hole: 0..5 go out
    MonitorContext ctx;
    SocketId s = ctx.socket(SocketKind::Stream).value();
    std::string got;
    HandlerId start =
        ctx.handler("start",
                    [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                      if (policy) {
                        ASSERT_TRUE(c.set_overlap_policy(f, Side::Client, *policy).ok());
                      }
                    })
            .value();
    HandlerId data =
        ctx.handler("data",
                    [&](MonitorContext& c, FlowHandle, Side side, EventId) {
                      if (side == Side::Client)
                        got.append(reinterpret_cast<const char*>(c.detail().data.data()),
                                   c.detail().data.size());
                    })
            .value();
    EXPECT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, start).ok());
    EXPECT_TRUE(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, data).ok());
    for (const Packet& p : cr.pkts)
      ctx.process(p);
    EXPECT_FALSE(ctx.set_overlap_policy(FlowHandle{}, Side::Client, OverlapPolicy::Last).ok());
    return got;
  };
  EXPECT_EQ(delivered(std::nullopt), "012abc");
  EXPECT_EQ(delivered(OverlapPolicy::First), "012abc");
  EXPECT_EQ(delivered(OverlapPolicy::Last), "012XYZ");
}

// Timers that will never fire go from the heap in batches: a thousand flows that each set an
// hour-long timer and end leave (almost) nothing held, and cancelling most of one flow's
// timers shrinks the heap while the others still fire, once each.
TEST(Monitor, TimersOfEndedFlowsAndCancelledOnesDoNotPileUp) {
  using namespace tcp_flag;
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream).value();
  HandlerId start =
      ctx.handler("start", [](MonitorContext& c, FlowHandle f, Side,
                              EventId) { ASSERT_TRUE(c.timer(f, Duration::seconds(3600)).ok()); })
          .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Sender, start).ok());
  Crafted cr;
  for (uint16_t i = 0; i < 1000; ++i) {  // SYN, RST: each flow ends
    cr.client_port = uint16_t(20000 + i);
    cr.add(true, kSyn, 1000, 0);
    cr.add(true, kRst, 1001, 0);
  }
  for (const Packet& p : cr.pkts)
    ctx.process(p);
  ctx.finish();
  EXPECT_LE(ctx.timers_held(), 64u) << "timers of ended flows pile up";

  MonitorContext one;
  SocketId s1 = one.socket(SocketKind::Stream).value();
  std::vector<uint64_t> ids;
  std::map<uint64_t, int> fired;
  HandlerId tick = one.handler("tick", [&](MonitorContext& c, FlowHandle, Side,
                                           EventId) { ++fired[c.detail().timer]; })
                       .value();
  HandlerId arm =
      one.handler(
             "arm",
             [&](MonitorContext& c, FlowHandle f, Side, EventId) {
               ASSERT_TRUE(c.subscribe(f, EventId(BuiltinEvent::Timeout), Hook::Sender, tick).ok());
               for (int i = 0; i < 200; ++i)
                 ids.push_back(c.timer(f, Duration::millis(1)).value());
               for (int i = 0; i < 150; ++i)
                 c.cancel_timer(ids[size_t(i)]);
             })
          .value();
  ASSERT_TRUE(one.on(s1, BuiltinEvent::ConnStart, Hook::Sender, arm).ok());
  Crafted c2;
  c2.add(true, kSyn, 1000, 0);
  one.process(c2.pkts[0]);
  EXPECT_LT(one.timers_held(), 200u);      // the cancelled ones went in a batch
  c2.add(false, kSyn | kAck, 5000, 1001);  // 1 ms later: the rest are due
  c2.add(true, kAck, 1001, 5001);
  for (size_t i = 1; i < c2.pkts.size(); ++i)
    one.process(c2.pkts[i]);
  EXPECT_EQ(fired.size(), 50u);
  for (size_t i = 150; i < 200; ++i)
    EXPECT_EQ(fired[ids[i]], 1) << "timer " << ids[i];
  EXPECT_EQ(one.timers_held(), 0u);
}

TEST(Monitor, ARawSocketSeesEveryPacketItsFilterMatches) {
  MonitorContext ctx;
  SocketId all = ctx.socket(SocketKind::Raw).value();
  SocketId arp = ctx.socket(SocketKind::Raw, "arp").value();
  Counter a(ctx, "all"), b(ctx, "arp");
  ASSERT_TRUE(ctx.on(all, BuiltinEvent::Packet, Hook::Sender, a.id).ok());
  ASSERT_TRUE(ctx.on(arp, BuiltinEvent::Packet, Hook::Sender, b.id).ok());
  ASSERT_TRUE(ctx.on(arp, BuiltinEvent::Orphan, Hook::Sender, b.id).ok());
  run(ctx);
  EXPECT_EQ(a.n["packet"], sample().size());
  EXPECT_GT(b.n["packet"], 0u);
  EXPECT_EQ(b.n["orphan"], b.n["packet"]);  // ARP has no flow
  EXPECT_TRUE(b.flows.empty());
}

}  // namespace
}  // namespace l45

namespace l45 {
namespace {

// A flow on a VLAN trunk is taken by "tcp port 80" (matched on the IP datagram the flow is keyed
// on), and a filter about the link ("vlan 10") is still matched on the frame.
TEST(Monitor, FiltersSeeTheDatagramInsideVlanTags) {
  const MacAddr a{{2, 0, 0, 0, 0, 1}}, b{{2, 0, 0, 0, 0, 2}};
  auto syn = [&](uint16_t vid, uint16_t dport) {
    return PacketBuilder()
        .ethernet(a, b)
        .vlan(vid)
        .ipv4(*IpAddr::parse("198.51.100.2"), *IpAddr::parse("203.0.113.80"))
        .tcp(40000, dport)
        .seq(TcpSeq(1))
        .flags(tcp_flag::kSyn)
        .build();
  };
  for (auto [filter, want] :
       std::initializer_list<std::pair<const char*, int>>{{"tcp port 80", 1},
                                                          {"vlan 10", 2},
                                                          {"vlan 10 and tcp port 80", 1},
                                                          {"vlan 20", 0},
                                                          {"udp", 0},
                                                          {"", 2}}) {
    MonitorContext ctx;
    SocketId s = ctx.socket(SocketKind::Stream, filter).value();
    int opened = 0;
    HandlerId h =
        ctx.handler("n", [&](MonitorContext&, FlowHandle, Side, EventId) { ++opened; }).value();
    ASSERT_TRUE(ctx.on(s, BuiltinEvent::ConnStart, Hook::Receiver, h).ok());
    ctx.process(syn(10, 80));
    ctx.process(syn(10, 443));
    EXPECT_EQ(opened, want) << filter;
  }
}

}  // namespace
}  // namespace l45
