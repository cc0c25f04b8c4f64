// Engine: the whole per-packet path (decode, defragmentation, keying, TCP state of both
// endpoints, per-side reassembly, gaps, timeouts, caps) driven by PacketBuilder packets in packet
// time, observed through a recording FlowObserver. The hostile cases (overlaps, resets out of
// window, reused tuples, floods) are here; each unit's own corner cases are in its own test.
#include "l45/flow/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

using namespace tcp_flag;
using ES = TcpEndpointState;

constexpr uint8_t kSA = kSyn | kAck;
constexpr uint8_t kPA = kPsh | kAck;
constexpr uint8_t kFA = kFin | kAck;
constexpr uint8_t kRA = kRst | kAck;

IpAddr ip(const char* s) {
  return *IpAddr::parse(s);
}
constexpr Timestamp ms(int64_t m) {
  return {m * 1000000};
}
constexpr Timestamp plus_ns(Timestamp t, int64_t ns) {
  return {t.ns + ns};
}
std::string str(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

const MacAddr kMacA{{0x02, 0, 0, 0, 0, 1}};
const MacAddr kMacB{{0x02, 0, 0, 0, 0, 2}};

struct Gap {
  uint64_t offset, length;
  friend bool operator==(const Gap&, const Gap&) = default;
};
struct Mismatch {
  uint64_t offset, length;
  std::string original, replacement;
};

// Everything the engine said about one flow. A gap shows in `data` as '#' bytes.
struct FlowLog {
  std::string uid;
  FlowHandle handle;
  int opens = 0, closes = 0;
  FlowEnd end = FlowEnd::EndOfInput;
  Timestamp closed_at;
  std::string data[2];
  uint64_t next[2] = {0, 0};
  std::vector<Gap> gaps[2];
  std::vector<Mismatch> mismatches[2];
  std::vector<DropReason> anomalies;
  uint64_t packets[2] = {0, 0};
  uint64_t icmp_errors[2] = {0, 0};
  // At close.
  IpAddr client;
  uint16_t client_port = 0;
  ES states[2] = {ES::Listen, ES::Listen};
  uint64_t missed = 0;
};

struct Recorder : FlowObserver {
  const Engine* engine = nullptr;
  std::map<uint64_t, FlowLog> flows;  // by serial
  std::vector<uint64_t> opened, closed;
  uint64_t callbacks = 0;

  FlowLog& at(const Flow& f) { return flows[f.serial()]; }
  FlowLog& nth(size_t i) { return flows.at(opened.at(i)); }

  void on_open(const Flow& f) override {
    ++callbacks;
    FlowLog& l = at(f);
    ++l.opens;
    l.uid = f.uid();
    l.handle = f.handle();
    opened.push_back(f.serial());
  }
  void on_packet(const Flow& f, Side from, const PacketView&) override {
    ++callbacks;
    ++at(f).packets[size_t(from)];
  }
  void on_data(const Flow& f, Side from, uint64_t off, Bytes b) override {
    ++callbacks;
    FlowLog& l = at(f);
    EXPECT_EQ(off, l.next[size_t(from)]) << "delivery must be contiguous";
    EXPECT_FALSE(b.empty());
    l.next[size_t(from)] = off + b.size();
    l.data[size_t(from)] += str(b);
  }
  void on_gap(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    ++callbacks;
    FlowLog& l = at(f);
    EXPECT_EQ(off, l.next[size_t(from)]);
    l.next[size_t(from)] = off + len;
    l.gaps[size_t(from)].push_back({off, len});
    l.data[size_t(from)].append(len, '#');
  }
  void on_mismatch(const Flow& f, Side from, const StreamMismatch& m) override {
    ++callbacks;
    at(f).mismatches[size_t(from)].push_back(
        {m.offset, m.length, str(m.original), str(m.replacement)});
  }
  void on_anomaly(const Flow& f, Side, DropReason why) override {
    ++callbacks;
    at(f).anomalies.push_back(why);
  }
  void on_icmp_error(const Flow& f, Side from, const PacketView&) override {
    ++callbacks;
    ++at(f).icmp_errors[size_t(from)];
  }
  void on_close(const Flow& f, FlowEnd why) override {
    ++callbacks;
    FlowLog& l = at(f);
    ++l.closes;
    l.end = why;
    l.closed_at = engine->now();
    l.client = f.addr(Side::Client);
    l.client_port = f.port(Side::Client);
    l.missed = f.missed_bytes();
    if (f.tcp()) {
      l.states[0] = f.tcp()->endpoint(Side::Client).state;
      l.states[1] = f.tcp()->endpoint(Side::Server).state;
    }
    closed.push_back(f.serial());
  }
};

// An engine with a recorder, fed in packet time.
struct Rig {
  Recorder rec;
  Engine engine;
  explicit Rig(const EngineConfig& cfg = {}) : engine(cfg, &rec) { rec.engine = &engine; }
  void send(Packet p, Timestamp t) {
    ASSERT_GT(p.size(), 0u) << "builder failed";
    p.meta().ts = t;
    engine.process(std::move(p));
  }
  const Flow* flow(size_t i = 0) { return engine.flow(rec.nth(i).handle); }
  uint64_t drops(DropReason r) const { return engine.stats().drops.get(r); }
};

// One TCP conversation between a client and a server, over IPv4 (or IPv6), raw IP link.
struct Conv {
  IpAddr c = ip("10.0.0.1"), s = ip("10.0.0.2");
  uint16_t cp = 40000, sp = 80;
  uint16_t win = 65535;
  std::optional<uint16_t> vlan;

  PacketBuilder start(bool from_client) const {
    PacketBuilder pb;
    if (vlan) pb.ethernet(kMacA, kMacB).vlan(*vlan);
    const IpAddr& src = from_client ? c : s;
    const IpAddr& dst = from_client ? s : c;
    if (c.is_v4())
      pb.ipv4(src, dst);
    else
      pb.ipv6(src, dst);
    return pb;
  }
  Packet seg(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
             std::string_view data = {}) const {
    PacketBuilder pb = start(from_client);
    pb.tcp(from_client ? cp : sp, from_client ? sp : cp)
        .seq(TcpSeq(seq))
        .ack(TcpSeq(ack))
        .flags(flags)
        .window(win);
    if (!data.empty()) pb.payload(data);
    return pb.build();
  }
  Packet cli(uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data = {}) const {
    return seg(true, flags, seq, ack, data);
  }
  Packet srv(uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data = {}) const {
    return seg(false, flags, seq, ack, data);
  }
};

// Client ISN 1000, server ISN 5000: the three-way handshake at t, t+1, t+2 ms.
void handshake(Rig& r, const Conv& cv, int64_t t = 0, uint32_t cisn = 1000, uint32_t sisn = 5000) {
  r.send(cv.cli(kSyn, cisn, 0), ms(t));
  r.send(cv.srv(kSA, sisn, cisn + 1), ms(t + 1));
  r.send(cv.cli(kAck, cisn + 1, sisn + 1), ms(t + 2));
}

Packet udp(IpAddr src, uint16_t sp, IpAddr dst, uint16_t dp, std::string_view data) {
  PacketBuilder pb;
  if (src.is_v4())
    pb.ipv4(src, dst);
  else
    pb.ipv6(src, dst);
  return pb.udp(sp, dp).payload(data).build();
}

// ---------------------------------------------------------------------------------------------
// A whole connection

TEST(Engine, HandshakeDataAndFinCloseDeliverBothStreamsAndCloseOnceAfterTheCloseDelay) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  ASSERT_EQ(r.rec.opened.size(), 1u);
  {
    const Flow* f = r.flow();
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Established);
    EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Established);
    EXPECT_EQ(f->addr(Side::Client), cv.c);
    EXPECT_EQ(f->port(Side::Server), 80);
  }
  r.send(cv.cli(kPA, 1001, 5001, "GET /x"), ms(10));
  r.send(cv.srv(kPA, 5001, 1007, "HTTP/1.0 200 OK"), ms(20));
  r.send(cv.srv(kPA, 5016, 1007, "body"), ms(21));
  r.send(cv.cli(kAck, 1007, 5020), ms(22));
  r.send(cv.srv(kFA, 5020, 1007), ms(30));  // the server closes first
  r.send(cv.cli(kFA, 1007, 5021), ms(31));
  r.send(cv.srv(kAck, 5021, 1008), ms(32));

  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "GET /x");
  EXPECT_EQ(l.data[1], "HTTP/1.0 200 OKbody");
  const Flow* f = r.flow();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::TimeWait);
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Closed);
  EXPECT_EQ(f->payload_size(Side::Client), 6u);
  EXPECT_EQ(f->payload_size(Side::Server), 19u);
  EXPECT_EQ(f->counters(Side::Client).packets, 5u);
  EXPECT_EQ(f->counters(Side::Server).packets, 5u);
  EXPECT_EQ(l.closes, 0);

  // tcp_closed is 5 s of packet time after the last packet: a packet of another flow exactly
  // then does not close it, one a millisecond later does.
  r.send(udp(ip("10.9.9.9"), 1, ip("10.9.9.8"), 2, "x"), ms(32 + 5000));
  EXPECT_EQ(l.closes, 0);
  r.send(udp(ip("10.9.9.9"), 1, ip("10.9.9.8"), 2, "x"), ms(33 + 5000));
  EXPECT_EQ(l.closes, 1);
  EXPECT_EQ(l.end, FlowEnd::Closed);
  EXPECT_EQ(l.closed_at, ms(33 + 5000));
  EXPECT_EQ(r.engine.flow(l.handle), nullptr);
  EXPECT_EQ(r.engine.active_flows(), 1u);  // the UDP one

  r.engine.finish();
  EXPECT_EQ(l.closes, 1) << "closed once";
  EXPECT_EQ(r.rec.nth(1).end, FlowEnd::EndOfInput);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Closed)], 1u);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::EndOfInput)], 1u);
  EXPECT_EQ(r.engine.stats().stream_bytes, 25u);
}

TEST(Engine, AdvanceClosesAClosedConnectionAtTheCloseDelayAndNotBefore) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kFA, 1001, 5001), ms(10));
  r.send(cv.srv(kFA, 5001, 1002), ms(11));
  r.send(cv.cli(kAck, 1002, 5002), ms(12));
  r.engine.advance(ms(5012));
  EXPECT_EQ(r.rec.nth(0).closes, 0);
  r.engine.advance(plus_ns(ms(5012), 1));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
  EXPECT_EQ(r.rec.nth(0).end, FlowEnd::Closed);
  EXPECT_EQ(r.rec.nth(0).states[0], ES::TimeWait);
  EXPECT_EQ(r.rec.nth(0).states[1], ES::Closed);
}

TEST(Engine, FinishClosesOpenFlowsWithEndOfInputAndFlushesWhatIsBuffered) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "ab"), ms(10));
  r.send(cv.cli(kPA, 1005, 5001, "ef"), ms(11));  // "cd" never seen
  EXPECT_EQ(r.rec.nth(0).data[0], "ab");
  r.engine.finish();
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.closes, 1);
  EXPECT_EQ(l.end, FlowEnd::EndOfInput);
  EXPECT_EQ(l.data[0], "ab##ef");
  EXPECT_EQ(l.gaps[0], (std::vector<Gap>{{2, 2}}));
  EXPECT_EQ(r.engine.active_flows(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Reassembly through the engine

TEST(Engine, OutOfOrderSegmentsAreDeliveredInSequenceOrder) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1011, 5001, "klmno"), ms(10));
  r.send(cv.cli(kPA, 1006, 5001, "fghij"), ms(11));
  EXPECT_EQ(r.rec.nth(0).data[0], "");
  r.send(cv.cli(kPA, 1001, 5001, "abcde"), ms(12));
  EXPECT_EQ(r.rec.nth(0).data[0], "abcdefghijklmno");
  EXPECT_TRUE(r.rec.nth(0).gaps[0].empty());
  // Nothing out of order is held any more: what is left is the retransmission history.
  EXPECT_EQ(r.engine.stats().buffered_bytes, r.flow()->stream(Side::Client)->history_bytes());
  EXPECT_GE(r.engine.stats().buffered_peak, 10u);
}

std::string overlap_delivery(OverlapPolicy p) {
  EngineConfig cfg;
  cfg.stream.policy = p;
  Rig r(cfg);
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1005, 5001, "GOOD"), ms(10));  // ahead of a hole at offsets 0-3
  r.send(cv.cli(kPA, 1005, 5001, "EVIL"), ms(11));  // same bytes, other content
  r.send(cv.cli(kPA, 1001, 5001, "abcd"), ms(12));
  return r.rec.nth(0).data[0];
}

TEST(Engine, OverlapPolicyFirstDeliversTheBytesBufferedFirst) {
  EXPECT_EQ(overlap_delivery(OverlapPolicy::First), "abcdGOOD");
}

TEST(Engine, OverlapPolicyLastDeliversTheBytesBufferedLast) {
  EXPECT_EQ(overlap_delivery(OverlapPolicy::Last), "abcdEVIL");
}

TEST(Engine, RetransmissionOfDeliveredBytesWithOtherContentRaisesMismatchUnderEitherPolicy) {
  for (OverlapPolicy p : {OverlapPolicy::First, OverlapPolicy::Last}) {
    SCOPED_TRACE(int(p));
    EngineConfig cfg;
    cfg.stream.policy = p;
    Rig r(cfg);
    Conv cv;
    handshake(r, cv);
    r.send(cv.cli(kPA, 1001, 5001, "hello world"), ms(10));
    r.send(cv.cli(kPA, 1007, 5001, "WORLD!"), ms(11));  // 5 bytes resent differently, 1 new
    FlowLog& l = r.rec.nth(0);
    EXPECT_EQ(l.data[0], "hello world!") << "delivered bytes are never replaced or repeated";
    ASSERT_EQ(l.mismatches[0].size(), 1u);
    EXPECT_EQ(l.mismatches[0][0].offset, 6u);
    EXPECT_EQ(l.mismatches[0][0].length, 5u);
    EXPECT_EQ(l.mismatches[0][0].original, "world");
    EXPECT_EQ(l.mismatches[0][0].replacement, "WORLD");
    EXPECT_EQ(r.engine.stats().stream_mismatches, 1u);
    EXPECT_EQ(r.drops(DropReason::StreamRexmitMismatch), 1u);
    // The same bytes again are a plain retransmission.
    r.send(cv.cli(kPA, 1001, 5001, "hello"), ms(12));
    EXPECT_EQ(l.mismatches[0].size(), 1u);
    EXPECT_EQ(l.data[0], "hello world!");
  }
}

// ---------------------------------------------------------------------------------------------
// TCP state through the engine

TEST(Engine, SynRetransmittedWithAnotherIsnRestartsTheClientStreamAtTheNewIsn) {
  Rig r;
  Conv cv;
  r.send(cv.cli(kSyn, 1000, 0), ms(0));
  r.send(cv.cli(kSyn, 70000, 0), ms(1000));  // the stack gave up on 1000 and drew a new ISN
  r.send(cv.srv(kSA, 5000, 70001), ms(1001));
  r.send(cv.cli(kAck, 70001, 5001), ms(1002));
  r.send(cv.cli(kPA, 70001, 5001, "hello"), ms(1003));
  r.send(cv.srv(kPA, 5001, 70006, "hi"), ms(1004));
  ASSERT_EQ(r.rec.opened.size(), 1u);
  const Flow* f = r.flow();
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Established);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Established);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "hello");
  EXPECT_EQ(l.data[1], "hi");
  EXPECT_TRUE(l.gaps[0].empty());
  EXPECT_EQ(f->missed_bytes(), 0u);
}

// The server keeps sending after the client's RST (its data was in flight): on the wire, so
// delivered by default (tshark shows it); the client's stack discarded it, so with
// deliver_after_reset off it is not (libnids' view). Counted either way.
TEST(Engine, DataAfterAnAcceptedRstIsCountedAndDeliveredOnlyForTheWireView) {
  for (bool deliver : {true, false}) {
    SCOPED_TRACE(deliver ? "deliver" : "drop");
    EngineConfig cfg;
    cfg.deliver_after_reset = deliver;
    Rig r(cfg);
    Conv cv;
    handshake(r, cv);
    r.send(cv.srv(kPA, 5001, 1001, "head"), ms(10));
    r.send(cv.cli(kRA, 1001, 5005), ms(11));
    r.send(cv.srv(kPA, 5005, 1001, "tail"), ms(12));
    EXPECT_EQ(r.flow()->tcp()->endpoint(Side::Client).state, ES::Reset);
    EXPECT_EQ(r.rec.nth(0).data[1], deliver ? "headtail" : "head");
    EXPECT_EQ(r.drops(DropReason::StreamAfterReset), 1u);
  }
}

// The RST closes both sides, so the streams are flushed and released there; data the server
// still sends arrives out of order after that, and the flow's expiry must flush it again (a
// flow whose streams were flushed skips the expiry's flush only while nothing came since).
TEST(Engine, DataBufferedAfterTheStreamsWereFlushedAtTheCloseIsFlushedAtTheExpiry) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.srv(kPA, 5001, 1001, "head"), ms(10));
  r.send(cv.cli(kRA, 1001, 5005), ms(11));
  r.send(cv.cli(kAck, 1001, 5005), ms(12));         // a pure ACK leaves nothing to flush
  r.send(cv.srv(kPA, 5009, 1001, "late"), ms(13));  // "tail" (5005..5008) never seen
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[1], "head");
  r.engine.advance(ms(5014));
  EXPECT_EQ(l.closes, 1);
  EXPECT_EQ(l.data[1], "head####late");
  EXPECT_EQ(l.gaps[1], (std::vector<Gap>{{4, 4}}));
}

TEST(Engine, RstInWindowResetsBothSidesAndClosesAfterTheCloseDelay) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "abc"), ms(10));
  r.send(cv.srv(kRA, 5001, 1004), ms(11));
  const Flow* f = r.flow();
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Reset);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Reset);
  r.engine.advance(ms(5011));
  EXPECT_EQ(r.rec.nth(0).closes, 0);
  r.engine.advance(ms(5012));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
  EXPECT_EQ(r.rec.nth(0).end, FlowEnd::Closed);
  EXPECT_EQ(r.rec.nth(0).data[0], "abc");
}

TEST(Engine, RstOutOfWindowIsCountedChangesNoStateAndDataIsStillReassembledAfterIt) {
  Rig r;
  Conv cv;
  cv.win = 1000;  // small windows: a RST 100000 bytes away cannot be in them
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "abc"), ms(10));
  r.send(cv.srv(kRst, 5001 + 100000, 0), ms(11));  // blind injection
  r.send(cv.cli(kRst, 1004 + 100000, 0), ms(12));
  EXPECT_EQ(r.drops(DropReason::TcpRstOutOfWindow), 2u);
  const Flow* f = r.flow();
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Established);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Established);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.anomalies, (std::vector<DropReason>{DropReason::TcpRstOutOfWindow,
                                                  DropReason::TcpRstOutOfWindow}));
  r.send(cv.cli(kPA, 1004, 5001, "def"), ms(13));
  r.send(cv.srv(kPA, 5001, 1007, "xyz"), ms(14));
  EXPECT_EQ(l.data[0], "abcdef");
  EXPECT_EQ(l.data[1], "xyz");
  EXPECT_EQ(l.closes, 0);
  r.engine.advance(ms(60000));  // established: 3600 s
  EXPECT_EQ(l.closes, 0);
}

TEST(Engine, FinThenRstRaceDeliversTheDataOnceAndClosesOnce) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kFA | kPsh, 1001, 5001, "bye"), ms(10));
  r.send(cv.srv(kRA, 5001, 1001), ms(11));                // sent before the server saw the FIN
  r.send(cv.cli(kFA | kPsh, 1001, 5001, "bye"), ms(12));  // late retransmission of the FIN
  r.send(cv.srv(kRst, 5001, 0), ms(13));
  ASSERT_EQ(r.rec.opened.size(), 1u) << "late segments of a reset flow create nothing";
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "bye");
  EXPECT_TRUE(l.mismatches[0].empty());
  r.engine.advance(ms(5014));
  EXPECT_EQ(l.closes, 1);
  EXPECT_EQ(l.end, FlowEnd::Closed);
  r.engine.finish();
  EXPECT_EQ(l.closes, 1);
}

TEST(Engine, RstThenFinRaceKeepsTheResetAndCreatesNoSecondFlow) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.srv(kRA, 5001, 1001), ms(10));
  r.send(cv.cli(kFA, 1001, 5001), ms(11));  // crossed the RST on the wire
  r.send(cv.srv(kFA, 5001, 1002), ms(12));
  EXPECT_EQ(r.rec.opened.size(), 1u);
  const Flow* f = r.flow();
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Reset);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Reset);
  r.engine.advance(ms(5013));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
  EXPECT_EQ(r.rec.nth(0).end, FlowEnd::Closed);
}

TEST(Engine, ZeroWindowProbesAndKeepAlivesRaiseNoMismatchAndDeliverNothingTwice) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "abcdef"), ms(10));
  Conv zero = cv;
  zero.win = 0;
  r.send(zero.srv(kAck, 5001, 1007), ms(11));  // receiver full
  for (int i = 0; i < 3; ++i) {
    r.send(cv.cli(kAck, 1007, 5001, "g"), ms(100 + 100 * i));  // zero-window probe
    r.send(zero.srv(kAck, 5001, 1007), ms(101 + 100 * i));     // still closed: not acked
  }
  r.send(cv.srv(kAck, 5001, 1008), ms(500));  // window opens, the probe byte taken
  r.send(cv.cli(kPA, 1008, 5001, "hij"), ms(501));
  r.send(cv.srv(kAck, 5001, 1011), ms(502));
  // Keep-alives (RFC 9293 3.8.4): SND.NXT - 1 with no byte or one garbage byte, both sides.
  r.send(cv.cli(kAck, 1010, 5001), ms(70000));
  r.send(cv.cli(kAck, 1010, 5001, std::string_view("\0", 1)), ms(140000));
  r.send(cv.srv(kAck, 5000, 1011, "Z"), ms(140001));
  r.send(cv.srv(kAck, 5000, 1011), ms(140002));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "abcdefghij");
  EXPECT_EQ(l.data[1], "");
  EXPECT_TRUE(l.mismatches[0].empty());
  EXPECT_TRUE(l.mismatches[1].empty());
  EXPECT_TRUE(l.gaps[0].empty());
  EXPECT_EQ(r.engine.stats().stream_mismatches, 0u);
  EXPECT_EQ(r.engine.stats().stream_bytes, 10u);
  // The two resent probes (seq = SND.NXT - 1, one byte, after the first was taken) look
  // exactly like keep-alives and are treated as such: not compared, not delivered again.
  EXPECT_EQ(r.engine.stream_stats().keepalives, 6u);  // 4 from the client, 2 from the server
}

TEST(Engine, SequenceWraparoundNearTwoToThe32DeliversDataAcrossIt) {
  Rig r;
  Conv cv;
  const uint32_t cisn = 0xFFFFFFF0u, sisn = 0xFFFFFFFFu;
  handshake(r, cv, 0, cisn, sisn);
  // Client bytes 0xFFFFFFF1 .. 0x00000009: the bytes after 2^32 come before the segment that
  // crosses it.
  r.send(cv.cli(kPA, 0xFFFFFFF1u, 0, "ABCDEFGHIJ"), ms(10));
  r.send(cv.cli(kPA, 5, 0, "UVWXY"), ms(11));
  r.send(cv.cli(kPA, 0xFFFFFFFBu, 0, "KLMNOPQRST"), ms(12));
  r.send(cv.srv(kPA, 0, 10, "server"), ms(13));  // server data starts exactly at 0
  r.send(cv.cli(kFA, 10, 6), ms(14));
  r.send(cv.srv(kFA, 6, 11), ms(15));
  r.send(cv.cli(kAck, 11, 7), ms(16));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "ABCDEFGHIJKLMNOPQRSTUVWXY");
  EXPECT_EQ(l.data[1], "server");
  const Flow* f = r.flow();
  EXPECT_EQ(f->payload_size(Side::Client), 25u);
  EXPECT_EQ(f->payload_size(Side::Server), 6u);
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::TimeWait);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Closed);
  EXPECT_EQ(f->missed_bytes(), 0u);
}

TEST(Engine, PayloadSizeCountsFromTheIsnWhenTheFirstDataSegmentArrivesOutOfOrder) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1011, 5001, "klmnopqrst"), ms(10));  // second segment first
  r.send(cv.cli(kPA, 1001, 5001, "abcdefghij"), ms(11));
  EXPECT_EQ(r.rec.nth(0).data[0], "abcdefghijklmnopqrst");
  // Zeek's orig_bytes: the SYN fixes where the stream starts, whatever order data comes in.
  EXPECT_EQ(r.flow()->payload_size(Side::Client), 20u);
}

TEST(Engine, TupleReusedAfterTimeWaitClosesTheOldFlowAsReusedAndStartsANewOne) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "first"), ms(10));
  r.send(cv.cli(kFA, 1006, 5001), ms(11));
  r.send(cv.srv(kFA, 5001, 1007), ms(12));
  r.send(cv.cli(kAck, 1007, 5002), ms(13));  // client in TIME_WAIT
  handshake(r, cv, 1000, 90000, 123456);     // within the close delay: same table entry
  r.send(cv.cli(kPA, 90001, 123457, "second"), ms(1010));

  ASSERT_EQ(r.rec.opened.size(), 2u);
  FlowLog& a = r.rec.nth(0);
  FlowLog& b = r.rec.nth(1);
  EXPECT_EQ(a.closes, 1);
  EXPECT_EQ(a.end, FlowEnd::Reused);
  EXPECT_EQ(a.closed_at, ms(1000));
  EXPECT_EQ(a.data[0], "first");
  EXPECT_EQ(b.closes, 0);
  EXPECT_EQ(b.data[0], "second");
  EXPECT_NE(a.uid, b.uid);
  EXPECT_EQ(r.engine.flow(a.handle), nullptr);
  const Flow* f = r.engine.flow(b.handle);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Established);
  EXPECT_EQ(f->counters(Side::Client).packets, 3u) << "the new flow starts at its SYN";
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Reused)], 1u);
  EXPECT_EQ(r.engine.stats().tcp_packets, 11u) << "the reusing SYN counts once";
  EXPECT_EQ(r.engine.stats().flow_packets, 11u);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Reused)], 1u);
  EXPECT_EQ(r.engine.active_flows(), 1u);
}

TEST(Engine, DataOnTheSynIsTheFirstBytesOfTheClientStream) {
  Rig r;
  Conv cv;
  r.send(cv.cli(kSyn, 1000, 0, "tfo-data"), ms(0));  // TCP Fast Open (RFC 7413)
  r.send(cv.srv(kSA, 5000, 1009), ms(1));
  r.send(cv.cli(kPA, 1009, 5001, "+rest"), ms(2));
  EXPECT_EQ(r.rec.nth(0).data[0], "tfo-data+rest");
}

// A segment whose bytes were changed on the way (an evasion: the receiver drops it, a monitor
// that does not check would take its bytes).
Packet corrupt(Packet p) {
  auto b = p.mutable_data();
  b[b.size() - 1] ^= std::byte{0x20};
  return p;
}

TEST(Engine, BadChecksumSegmentIsIgnoredWhenVerifyingSoTheGoodCopyIsDelivered) {
  for (bool verify : {true, false}) {
    SCOPED_TRACE(verify);
    EngineConfig cfg;
    cfg.verify_checksums = verify;
    Rig r(cfg);
    Conv cv;
    handshake(r, cv);
    r.send(corrupt(cv.cli(kPA, 1001, 5001, "GOOD")), ms(10));
    r.send(cv.cli(kPA, 1001, 5001, "GOOD"), ms(11));
    FlowLog& l = r.rec.nth(0);
    if (verify) {
      EXPECT_EQ(l.data[0], "GOOD");
      EXPECT_TRUE(l.mismatches[0].empty());
      EXPECT_EQ(r.drops(DropReason::BadChecksum), 1u);
    } else {
      EXPECT_EQ(l.data[0], "GOOd");  // taken as it came
      EXPECT_EQ(l.mismatches[0].size(), 1u);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Layers below the flow: VLAN, IPv6, fragments, tunnels

// The TCP header and payload of `seg` (a raw IP packet without options or extension headers).
std::vector<std::byte> transport_bytes(const Packet& seg) {
  const size_t ip_len = (std::to_integer<uint8_t>(seg.data()[0]) >> 4) == 6 ? 40 : 20;
  auto b = seg.data().subspan(ip_len);
  return {b.begin(), b.end()};
}

TEST(Engine, TcpSegmentInIpv6FragmentsInsideAVlanTagIsReassembledAndDelivered) {
  Rig r;
  Conv cv;
  cv.c = ip("2001:db8::1");
  cv.s = ip("2001:db8::2");
  cv.vlan = 10;
  handshake(r, cv);
  Conv raw = cv;
  raw.vlan.reset();
  std::string body(150, 'q');
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = char('a' + i % 26);
  const auto l4 = transport_bytes(raw.cli(kPA, 1001, 5001, body));
  ASSERT_EQ(l4.size(), 170u);
  auto frag = [&](uint32_t off, uint32_t len, bool more) {
    return PacketBuilder()
        .ethernet(kMacA, kMacB)
        .vlan(10)
        .ipv6(cv.c, cv.s)
        .ipv6_fragment(off, more, 0xabcd)
        .ip_protocol(6)
        .payload(Bytes(l4).subspan(off, len))
        .build();
  };
  r.send(frag(128, 42, false), ms(10));  // last fragment first
  r.send(frag(0, 64, true), ms(11));
  EXPECT_EQ(r.rec.nth(0).data[0], "");
  r.send(frag(64, 64, true), ms(12));
  EXPECT_EQ(r.engine.defrag_stats().reassembled, 1u);
  EXPECT_EQ(r.rec.nth(0).data[0], body);
  ASSERT_EQ(r.rec.opened.size(), 1u);
  const Flow* f = r.flow();
  EXPECT_EQ(f->vlan(), 10);
  EXPECT_EQ(r.engine.tunnel_path(f->tunnel()), "vlan:10");
  EXPECT_EQ(f->addr(Side::Client), cv.c);
}

TEST(Engine, TcpSegmentInOutOfOrderIpv4FragmentsIsReassembledAndDelivered) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  const std::string body = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";  // 50 bytes
  const auto l4 = transport_bytes(cv.cli(kPA, 1001, 5001, body));
  ASSERT_EQ(l4.size(), 70u);
  auto frag = [&](uint32_t off, uint32_t len, bool more) {
    return PacketBuilder()
        .ipv4(cv.c, cv.s)
        .ip_id(4242)
        .more_fragments(more)
        .fragment_offset(uint16_t(off / 8))
        .ip_protocol(6)
        .payload(Bytes(l4).subspan(off, len))
        .build();
  };
  r.send(frag(48, 22, false), ms(10));
  r.send(frag(24, 24, true), ms(11));
  r.send(frag(0, 24, true), ms(12));
  EXPECT_EQ(r.engine.defrag_stats().reassembled, 1u);
  EXPECT_EQ(r.rec.nth(0).data[0], body);
  EXPECT_EQ(r.rec.opened.size(), 1u);
  EXPECT_EQ(r.engine.stats().drops.get(DropReason::FlowNoKey), 0u);
}

TEST(Engine, OverlappingIpv4FragmentsKeepTheFirstBytesAndAreCounted) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  const auto good = transport_bytes(cv.cli(kPA, 1001, 5001, "0123GOODGOODGOODGOODGOOD"));
  const auto evil = transport_bytes(cv.cli(kPA, 1001, 5001, "0123EVILEVILEVILEVILEVIL"));
  auto frag = [&](const std::vector<std::byte>& l4, uint32_t off, uint32_t len, bool more) {
    return PacketBuilder()
        .ipv4(cv.c, cv.s)
        .ip_id(7)
        .more_fragments(more)
        .fragment_offset(uint16_t(off / 8))
        .ip_protocol(6)
        .payload(Bytes(l4).subspan(off, len))
        .build();
  };
  r.send(frag(good, 0, 32, true), ms(10));
  r.send(frag(evil, 24, 20, false), ms(11));  // bytes 24-31 overlap with other content
  EXPECT_EQ(r.drops(DropReason::FragOverlapMismatch), 1u);
  EXPECT_EQ(r.rec.nth(0).data[0], "0123GOODGOODEVILEVILEVIL");
}

TEST(Engine, OverlappingIpv6FragmentsDropTheDatagram) {
  Rig r;
  Conv cv;
  cv.c = ip("2001:db8::1");
  cv.s = ip("2001:db8::2");
  handshake(r, cv);
  const auto l4 = transport_bytes(cv.cli(kPA, 1001, 5001, std::string(60, 'z')));
  auto frag = [&](uint32_t off, uint32_t len, bool more) {
    return PacketBuilder()
        .ipv6(cv.c, cv.s)
        .ipv6_fragment(off, more, 99)
        .ip_protocol(6)
        .payload(Bytes(l4).subspan(off, len))
        .build();
  };
  r.send(frag(0, 48, true), ms(10));
  r.send(frag(40, 40, false), ms(11));  // overlaps 40-47 (RFC 5722: drop it all)
  EXPECT_EQ(r.drops(DropReason::FragOverlapV6), 1u);
  EXPECT_EQ(r.rec.nth(0).data[0], "");
  EXPECT_EQ(r.engine.defrag_stats().reassembled, 0u);
}

// `inner` (a raw IP packet) in GRE (RFC 2784, no options) over IPv4 from `a` to `b`.
Packet in_gre(const Packet& inner, IpAddr a, IpAddr b) {
  std::vector<std::byte> gre = {std::byte{0}, std::byte{0}, std::byte{0x08}, std::byte{0}};
  gre.insert(gre.end(), inner.data().begin(), inner.data().end());
  return PacketBuilder().ethernet(kMacA, kMacB).ipv4(a, b).ip_protocol(47).payload(gre).build();
}

// `inner` (a raw IP packet) in an Ethernet frame in VXLAN (RFC 7348) VNI 42 over IPv4 a -> b.
Packet in_vxlan(const Packet& inner, IpAddr a, IpAddr b) {
  Packet eth = Packet::copy_of(inner.data(), inner.meta());
  eth.meta().link = LinkType::Raw;
  EXPECT_TRUE(push_ethernet(eth, kMacA, kMacB));
  std::vector<std::byte> vx = {std::byte{0x08}, std::byte{0}, std::byte{0},  std::byte{0},
                               std::byte{0},    std::byte{0}, std::byte{42}, std::byte{0}};
  vx.insert(vx.end(), eth.data().begin(), eth.data().end());
  return PacketBuilder().ethernet(kMacA, kMacB).ipv4(a, b).udp(50000, 4789).payload(vx).build();
}

TEST(Engine, GreTunnelledFlowKeysOnTheInnerTupleAndKeepsTheOuterPath) {
  Rig r;
  Conv cv;
  const IpAddr o1 = ip("192.0.2.1"), o2 = ip("192.0.2.2");
  r.send(in_gre(cv.cli(kSyn, 1000, 0), o1, o2), ms(0));
  r.send(in_gre(cv.srv(kSA, 5000, 1001), o2, o1), ms(1));
  r.send(in_gre(cv.cli(kAck, 1001, 5001), o1, o2), ms(2));
  r.send(in_gre(cv.cli(kPA, 1001, 5001, "inner"), o1, o2), ms(3));
  ASSERT_EQ(r.rec.opened.size(), 1u);
  const Flow* f = r.flow();
  EXPECT_EQ(f->addr(Side::Client), cv.c);
  EXPECT_EQ(f->addr(Side::Server), cv.s);
  EXPECT_EQ(f->port(Side::Server), 80);
  EXPECT_EQ(f->tcp()->endpoint(Side::Server).state, ES::Established);
  ASSERT_NE(f->tunnel(), 0u);
  EXPECT_EQ(r.engine.tunnel_path(f->tunnel()), "gre:192.0.2.1>192.0.2.2");
  EXPECT_EQ(r.rec.nth(0).data[0], "inner");
}

TEST(Engine, VxlanTunnelledFlowKeysOnTheInnerTupleAndKeepsTheOuterPath) {
  Rig r;
  Conv cv;
  const IpAddr o1 = ip("198.51.100.1"), o2 = ip("198.51.100.2");
  r.send(in_vxlan(cv.cli(kSyn, 1000, 0), o1, o2), ms(0));
  r.send(in_vxlan(cv.srv(kSA, 5000, 1001), o2, o1), ms(1));
  r.send(in_vxlan(cv.cli(kAck, 1001, 5001), o1, o2), ms(2));
  r.send(in_vxlan(cv.srv(kPA, 5001, 1001, "over vxlan"), o2, o1), ms(3));
  ASSERT_EQ(r.rec.opened.size(), 1u) << "one inner flow, not the outer UDP one";
  const Flow* f = r.flow();
  EXPECT_EQ(f->proto(), 6);
  EXPECT_EQ(f->addr(Side::Client), cv.c);
  EXPECT_EQ(f->port(Side::Client), 40000);
  EXPECT_EQ(r.engine.tunnel_path(f->tunnel()), "vxlan:198.51.100.1>198.51.100.2");
  EXPECT_EQ(r.rec.nth(0).data[1], "over vxlan");
  EXPECT_EQ(r.engine.stats().udp_packets, 0u);
}

// ---------------------------------------------------------------------------------------------
// Partial views of a connection

TEST(Engine, OnlyClientToServerPacketsStillReassembleTheClientStream) {
  Rig r;
  Conv cv;
  r.send(cv.cli(kSyn, 1000, 0), ms(0));
  r.send(cv.cli(kAck, 1001, 5001), ms(2));
  r.send(cv.cli(kPA, 1001, 5001, "one "), ms(3));
  r.send(cv.cli(kPA, 1005, 5001, "two"), ms(4));
  r.send(cv.cli(kFA, 1008, 5001), ms(5));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "one two");
  EXPECT_TRUE(l.gaps[0].empty());
  const Flow* f = r.flow();
  EXPECT_EQ(f->addr(Side::Client), cv.c);
  EXPECT_EQ(f->counters(Side::Client).packets, 5u);
  EXPECT_EQ(f->counters(Side::Server).packets, 0u);
  r.engine.finish();
  EXPECT_EQ(l.end, FlowEnd::EndOfInput);
}

TEST(Engine, OnlyServerToClientPacketsStillReassembleTheServerStream) {
  Rig r;
  Conv cv;
  r.send(cv.srv(kSA, 5000, 1001), ms(1));
  r.send(cv.srv(kPA, 5001, 1001, "banner\r\n"), ms(2));
  r.send(cv.srv(kPA, 5009, 1001, "more"), ms(3));
  r.send(cv.srv(kFA, 5013, 1001), ms(4));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[1], "banner\r\nmore");
  EXPECT_EQ(l.data[0], "");
  const Flow* f = r.flow();
  EXPECT_EQ(f->addr(Side::Server), cv.s);
  EXPECT_EQ(f->addr(Side::Client), cv.c);
  EXPECT_EQ(f->counters(Side::Server).packets, 4u);
  EXPECT_EQ(f->counters(Side::Client).packets, 0u);
}

TEST(Engine, MidStreamPickupIsPartialAndItsFirstSenderIsTheClient) {
  Rig r;
  Conv cv;
  r.send(cv.srv(kPA, 777777, 1234, "first seen"), ms(0));  // the real server talks first
  r.send(cv.cli(kPA, 1234, 777787, "reply"), ms(1));
  r.send(cv.srv(kPA, 777787, 1239, " then more"), ms(2));
  const Flow* f = r.flow();
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->tcp()->partial());
  EXPECT_EQ(r.engine.stats().tcp_partial, 1u);
  EXPECT_EQ(f->addr(Side::Client), cv.s);
  EXPECT_EQ(f->port(Side::Client), 80);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "first seen then more");
  EXPECT_EQ(l.data[1], "reply");
}

TEST(Engine, SynAckSeenFirstFlipsRolesAndItsDestinationIsTheClient) {
  Rig r;
  Conv cv;
  r.send(cv.srv(kSA, 5000, 1001), ms(0));
  r.send(cv.cli(kAck, 1001, 5001), ms(1));
  r.send(cv.cli(kPA, 1001, 5001, "request"), ms(2));
  r.send(cv.srv(kPA, 5001, 1008, "response"), ms(3));
  const Flow* f = r.flow();
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->tcp()->flipped());
  EXPECT_EQ(f->addr(Side::Client), cv.c);
  EXPECT_EQ(f->port(Side::Client), 40000);
  EXPECT_EQ(f->addr(Side::Server), cv.s);
  EXPECT_EQ(f->counters(Side::Client).packets, 2u);
  EXPECT_EQ(f->counters(Side::Server).packets, 2u);
  EXPECT_EQ(f->tcp()->endpoint(Side::Client).state, ES::Established);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "request");
  EXPECT_EQ(l.data[1], "response");
  r.engine.finish();
  EXPECT_EQ(l.client, cv.c);
}

// ---------------------------------------------------------------------------------------------
// Gaps

// The default gap_delay: a capture may show data after the ACK that covers it (the capture
// point sits before the sender, or packets were reordered). The hole waits 1 s of packet time.
TEST(Engine, DataShownAfterItsAckWithinTheGapDelayIsDeliveredNotAGap) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "aaaa"), ms(10));
  r.send(cv.cli(kPA, 1009, 5001, "cccc"), ms(11));
  r.send(cv.srv(kAck, 5001, 1013), ms(12));          // acks "bbbb" before the capture shows it
  r.send(cv.cli(kPA, 1005, 5001, "bbbb"), ms(500));  // within the delay
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "aaaabbbbcccc");
  EXPECT_TRUE(l.gaps[0].empty());
  EXPECT_EQ(r.flow()->missed_bytes(), 0u);
}

TEST(Engine, AnAckedHoleBecomesAGapOnceTheGapDelayHasPassed) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "aaaa"), ms(10));
  r.send(cv.cli(kPA, 1009, 5001, "cccc"), ms(11));
  r.send(cv.srv(kAck, 5001, 1013), ms(12));
  FlowLog& l = r.rec.nth(0);
  r.send(cv.srv(kAck, 5001, 1013), ms(900));  // still within the delay
  EXPECT_TRUE(l.gaps[0].empty());
  r.send(cv.srv(kAck, 5001, 1013), ms(1013));  // 1001 ms after the first ACK past the hole
  EXPECT_EQ(l.gaps[0], (std::vector<Gap>{{4, 4}}));
  EXPECT_EQ(l.data[0], "aaaa####cccc");
  r.send(cv.cli(kPA, 1005, 5001, "bbbb"), ms(1014));  // too late: not delivered again
  EXPECT_EQ(l.data[0], "aaaa####cccc");
  EXPECT_EQ(r.flow()->missed_bytes(), 4u);
}

TEST(Engine, SegmentMissingAndAckedPastIsAGapThenDeliveryContinues) {
  EngineConfig cfg;
  cfg.gap_delay = Duration{0};  // a hole is a gap as soon as it is acked (Zeek)
  Rig r(cfg);
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "aaaa"), ms(10));
  // "bbbb" at 1005 was lost by the capture, not by the network: the server acks it.
  r.send(cv.cli(kPA, 1009, 5001, "cccc"), ms(12));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "aaaa");
  r.send(cv.srv(kAck, 5001, 1013), ms(13));
  EXPECT_EQ(l.gaps[0], (std::vector<Gap>{{4, 4}}));
  EXPECT_EQ(l.data[0], "aaaa####cccc");
  r.send(cv.cli(kPA, 1013, 5001, "dddd"), ms(14));
  EXPECT_EQ(l.data[0], "aaaa####ccccdddd");
  EXPECT_EQ(r.flow()->missed_bytes(), 4u);
  EXPECT_EQ(r.engine.stats().stream_gaps, 1u);
  EXPECT_EQ(r.engine.stats().stream_gap_bytes, 4u);
}

TEST(Engine, AckBeyondWhatTheSenderWasSeenToSendMakesNoGap) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "aaaa"), ms(10));
  r.send(cv.srv(kAck, 5001, 901001), ms(11));  // bogus ACK far ahead
  r.send(cv.cli(kPA, 1005, 5001, "bbbb"), ms(12));
  EXPECT_EQ(r.rec.nth(0).data[0], "aaaabbbb");
  EXPECT_EQ(r.flow()->missed_bytes(), 0u);
}

TEST(Engine, HoleBeforeAnAckedFinIsAGapAndTheDataAfterItIsDelivered) {
  EngineConfig cfg;
  cfg.gap_delay = Duration{0};  // a hole is a gap as soon as it is acked (Zeek)
  Rig r(cfg);
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "aaaa"), ms(10));
  r.send(cv.cli(kFA | kPsh, 1009, 5001, "cccc"), ms(11));  // "bbbb" not captured
  r.send(cv.srv(kAck, 5001, 1014), ms(12));                // acks the FIN
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "aaaa####cccc");
  EXPECT_EQ(l.gaps[0], (std::vector<Gap>{{4, 4}}));
  EXPECT_TRUE(r.flow()->stream(Side::Client)->finished());
}

TEST(Engine, SynAckResentWithAnotherIsnRestartsTheServerStream) {
  Rig r;
  Conv cv;
  r.send(cv.cli(kSyn, 1000, 0), ms(0));
  r.send(cv.srv(kSA, 5000, 1001), ms(1));
  r.send(cv.srv(kSA, 88000, 1001), ms(1001));  // the server restarted its half-open attempt
  r.send(cv.cli(kAck, 1001, 88001), ms(1002));
  r.send(cv.srv(kPA, 88001, 1001, "welcome"), ms(1003));
  r.send(cv.cli(kAck, 1001, 88008), ms(1004));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[1], "welcome");
  EXPECT_TRUE(l.gaps[1].empty());
}

TEST(Engine, EvictedFlowIsFlushedAndClosedBeforeItsSlotIsReused) {
  EngineConfig cfg;
  cfg.max_flows = 2;
  Rig r(cfg);
  Conv a, b, c;
  b.cp = 40001;
  c.cp = 40002;
  handshake(r, a, 0);
  r.send(a.cli(kPA, 1001, 5001, "ab"), ms(3));
  r.send(a.cli(kPA, 1005, 5001, "ef"), ms(4));  // held behind a hole
  EXPECT_EQ(r.engine.stats().buffered_bytes,
            2u + r.flow()->stream(Side::Client)->history_bytes());  // "ef" + history of "ab"
  handshake(r, b, 10);
  handshake(r, c, 20);  // table full: a is idle longest
  FlowLog& la = r.rec.nth(0);
  EXPECT_EQ(la.closes, 1);
  EXPECT_EQ(la.end, FlowEnd::Evicted);
  EXPECT_EQ(la.data[0], "ab##ef");
  EXPECT_EQ(la.closed_at, ms(20));
  EXPECT_EQ(r.engine.stats().buffered_bytes, 0u);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Evicted)], 1u);
  EXPECT_EQ(r.engine.active_flows(), 2u);
  EXPECT_EQ(r.rec.nth(2).closes, 0);
}

TEST(Engine, OlderTimestampsDoNotMoveTheClockBackOrExpireEarly) {
  Rig r;
  const IpAddr c = ip("10.0.0.1"), s = ip("10.0.0.2");
  r.send(udp(c, 1, s, 2, "a"), ms(10000));
  r.send(udp(c, 1, s, 2, "b"), ms(5000));  // reordered capture
  EXPECT_EQ(r.engine.now(), ms(10000));
  EXPECT_EQ(r.flow()->last_seen(), ms(10000));
  EXPECT_EQ(r.flow()->first_seen(), ms(10000));
  r.engine.advance(ms(70000));
  EXPECT_EQ(r.rec.nth(0).closes, 0) << "60 s after the newest packet, not the older one";
  r.engine.advance(ms(70001));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
}

TEST(Engine, KeyVlanSeparatesTheSameTupleOnTwoVlans) {
  for (bool key_vlan : {false, true}) {
    SCOPED_TRACE(key_vlan);
    EngineConfig cfg;
    cfg.key_vlan = key_vlan;
    Rig r(cfg);
    Conv v1, v2;
    v1.vlan = 100;
    v2.vlan = 200;
    r.send(v1.cli(kSyn, 1000, 0), ms(0));
    r.send(v2.cli(kSyn, 1000, 0), ms(1));
    EXPECT_EQ(r.engine.active_flows(), key_vlan ? 2u : 1u);
  }
}

// ---------------------------------------------------------------------------------------------
// The callbacks the monitor layer's built-in events come from

struct EventLog : FlowObserver {
  std::vector<std::string> log;
  void on_tcp_state(const Flow&, Side side, ES before, ES after) override {
    log.push_back(std::string(side == Side::Client ? "c:" : "s:") +
                  std::string(tcp_endpoint_state_name(before)) + ">" +
                  std::string(tcp_endpoint_state_name(after)));
  }
  void on_handshake(const Flow&) override { log.push_back("handshake"); }
  void on_retransmission(const Flow&, Side from, uint64_t off, uint64_t len) override {
    log.push_back(fmt_rexmit(from, off, len));
  }
  void on_orphan(const PacketView&, DropReason why) override {
    log.push_back("orphan:" + std::string(drop_reason_name(why)));
  }
  void on_malformed(const Packet&, DropReason why) override {
    log.push_back("malformed:" + std::string(drop_reason_name(why)));
  }
  static std::string fmt_rexmit(Side from, uint64_t off, uint64_t len) {
    return std::string(from == Side::Client ? "rexmit c " : "rexmit s ") + std::to_string(off) +
           "+" + std::to_string(len);
  }
};

TEST(Engine, StateChangesAndTheHandshakeAreReportedInOrder) {
  EventLog ev;
  Engine e({}, &ev);
  Conv cv;
  auto send = [&](Packet p, int64_t t) {
    p.meta().ts = ms(t);
    e.process(p);
  };
  send(cv.cli(kSyn, 1000, 0), 0);
  send(cv.srv(kSA, 5000, 1001), 1);
  send(cv.cli(kAck, 1001, 5001), 2);
  send(cv.cli(kPA, 1001, 5001, "hello"), 3);
  send(cv.cli(kPA, 1001, 5001, "hello"), 4);  // resent
  send(cv.cli(kFA, 1006, 5001), 5);
  EXPECT_EQ(ev.log, (std::vector<std::string>{
                        "c:LISTEN>SYN_SENT", "s:LISTEN>SYN_RCVD", "c:SYN_SENT>ESTABLISHED",
                        "s:SYN_RCVD>ESTABLISHED", "handshake", "rexmit c 0+5",
                        "c:ESTABLISHED>FIN_WAIT_1", "s:ESTABLISHED>CLOSE_WAIT"}));
}

TEST(Engine, AFlowPickedUpMidstreamHasNoHandshake) {
  EventLog ev;
  Engine e({}, &ev);
  Conv cv;
  Packet p = cv.cli(kPA, 1001, 5001, "data");
  e.process(p);
  Packet q = cv.srv(kAck, 5001, 1005);
  e.process(q);
  for (const std::string& l : ev.log)
    EXPECT_NE(l, "handshake");
}

// Counts on_packet and on_tcp_state, and declares only the callbacks it is given.
struct Declared : FlowObserver {
  explicit Declared(uint32_t cb) : cb_(cb) {}
  uint32_t callbacks() const override { return cb_; }
  void on_packet(const Flow&, Side, const PacketView&) override { ++packets; }
  void on_tcp_state(const Flow&, Side, ES, ES) override { ++states; }
  void on_handshake(const Flow&) override { ++handshakes; }
  uint32_t cb_;
  int packets = 0, states = 0, handshakes = 0;
};

TEST(Engine, DeclaredCallbacksAreCalledAndUndeclaredOnesAreSkipped) {
  auto run = [](Declared& d) {
    Engine e({}, &d);
    Conv cv;
    Packet p[] = {cv.cli(kSyn, 1000, 0), cv.srv(kSA, 5000, 1001), cv.cli(kAck, 1001, 5001),
                  cv.cli(kPA, 1001, 5001, "hello")};
    for (Packet& q : p)
      e.process(q);
    Packet u = udp(ip("10.0.0.1"), 53, ip("10.0.0.2"), 53, "q");  // a non-TCP flow too
    e.process(u);
  };
  Declared all(FlowObserver::kAllCallbacks), packet(FlowObserver::kOnPacket),
      state(FlowObserver::kOnTcpState), none(0);
  for (Declared* d : {&all, &packet, &state, &none})
    run(*d);
  EXPECT_EQ(all.packets, 5);
  EXPECT_EQ(all.states, 4);
  EXPECT_EQ(packet.packets, 5);
  EXPECT_EQ(packet.states, 0);
  EXPECT_EQ(state.packets, 0);
  EXPECT_EQ(state.states, 4);
  EXPECT_EQ(none.packets, 0);
  EXPECT_EQ(none.states, 0);
  // A callback without a bit is called whatever the observer declares.
  for (Declared* d : {&all, &packet, &state, &none})
    EXPECT_EQ(d->handshakes, 1);
}

TEST(Engine, OrphanAndMalformedPacketsAreReportedWithTheirReason) {
  EventLog ev;
  EngineConfig cfg;
  cfg.max_flows = 1;
  cfg.when_full = FullPolicy::RefuseNew;
  Engine e(cfg, &ev);
  Conv cv;
  Packet syn = cv.cli(kSyn, 1000, 0);
  e.process(syn);
  Conv other;
  other.cp = 40001;
  Packet refused = other.cli(kSyn, 7, 0);  // the table holds one flow
  e.process(refused);
  Packet arp = PacketBuilder()
                   .ethernet(kMacA, MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
                   .arp_request(kMacA, ip("10.0.0.1"), ip("10.0.0.2"))
                   .build();
  e.process(arp);
  Packet q = udp(ip("10.0.0.1"), 5353, ip("10.0.0.53"), 53, "query");
  auto err = make_icmp_error(q, 3, 3);  // quotes a flow the engine never saw
  ASSERT_TRUE(err);
  e.process(*err);
  Packet cut = Packet::copy_of(syn.data().first(24), {.link = LinkType::Raw});
  e.process(cut);
  ASSERT_EQ(ev.log.size(), 5u);  // the first SYN's state change, then the four above
  EXPECT_EQ(ev.log[1], "orphan:flow_table_full");
  EXPECT_EQ(ev.log[2], "orphan:none");  // no IP
  EXPECT_EQ(ev.log[3], "orphan:icmp_error_no_flow");
  EXPECT_EQ(ev.log[4].rfind("malformed:", 0), 0u) << ev.log[4];
  EXPECT_EQ(e.stats().undecodable, 1u);
}

// ---------------------------------------------------------------------------------------------
// ICMP errors

TEST(Engine, IcmpPortUnreachableIsAttributedToTheUdpFlowItQuotesAndCreatesNoFlow) {
  Rig r;
  const IpAddr c = ip("10.0.0.1"), s = ip("10.0.0.53");
  Packet q = udp(c, 5353, s, 53, "query");
  auto err = make_icmp_error(q, 3, 3);  // port unreachable, from s to c
  ASSERT_TRUE(err);
  r.send(std::move(q), ms(0));
  r.send(std::move(*err), ms(1));
  ASSERT_EQ(r.rec.opened.size(), 1u);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.icmp_errors[size_t(Side::Server)], 1u);
  EXPECT_EQ(r.flow()->icmp_errors(), 1u);
  EXPECT_EQ(r.engine.stats().icmp_errors, 1u);
  EXPECT_EQ(r.engine.stats().flows_created, 1u);
  EXPECT_EQ(r.flow()->counters(Side::Client).packets, 1u);
}

TEST(Engine, Icmpv6ErrorIsAttributedToTheFlowItQuotes) {
  Rig r;
  const IpAddr c = ip("2001:db8::1"), s = ip("2001:db8::53");
  Packet q = udp(c, 5353, s, 53, "query6");
  auto err = make_icmp_error(q, 1, 4);  // destination unreachable, port unreachable
  ASSERT_TRUE(err);
  r.send(std::move(q), ms(0));
  r.send(std::move(*err), ms(1));
  ASSERT_EQ(r.rec.opened.size(), 1u);
  EXPECT_EQ(r.rec.nth(0).icmp_errors[size_t(Side::Server)], 1u);
  EXPECT_EQ(r.flow()->icmp_errors(), 1u);
  EXPECT_EQ(r.engine.stats().flows_created, 1u);
}

TEST(Engine, IcmpErrorQuotingATcpSegmentIsAttributedToTheOtherSide) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  Packet data = cv.cli(kPA, 1001, 5001, "too big");
  auto err = make_icmp_error(data, 3, 4, 576);  // fragmentation needed, from the server address
  ASSERT_TRUE(err);
  r.send(std::move(data), ms(3));
  r.send(std::move(*err), ms(4));
  EXPECT_EQ(r.rec.nth(0).icmp_errors[size_t(Side::Server)], 1u);
  EXPECT_EQ(r.flow()->icmp_errors(), 1u);
  EXPECT_EQ(r.engine.stats().flows_created, 1u);
  EXPECT_EQ(r.rec.nth(0).data[0], "too big");
}

TEST(Engine, IcmpErrorQuotingNoTrackedFlowIsCountedAndCreatesNone) {
  Rig r;
  Packet q = udp(ip("10.0.0.1"), 5353, ip("10.0.0.53"), 53, "never seen");
  auto err = make_icmp_error(q, 3, 3);
  ASSERT_TRUE(err);
  r.send(std::move(*err), ms(0));
  EXPECT_EQ(r.drops(DropReason::IcmpErrorNoFlow), 1u);
  EXPECT_EQ(r.engine.active_flows(), 0u);
  EXPECT_EQ(r.engine.stats().flows_created, 0u);
  EXPECT_EQ(r.rec.callbacks, 0u);
}

// ---------------------------------------------------------------------------------------------
// UDP and ICMP flows, idle timeouts per class

TEST(Engine, UdpFlowCountsPerSideAndIdlesOutAfterSixtySecondsNotBefore) {
  Rig r;
  const IpAddr c = ip("10.0.0.1"), s = ip("10.0.0.2");
  for (int i = 0; i < 3; ++i)
    r.send(udp(c, 1000, s, 2000, "0123456789"), ms(100 * i));
  r.send(udp(s, 2000, c, 1000, "01234567890123456789"), ms(300));
  r.send(udp(s, 2000, c, 1000, "01234567890123456789"), ms(1000));
  const Flow* f = r.flow();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->addr(Side::Client), c);
  EXPECT_EQ(f->counters(Side::Client).packets, 3u);
  EXPECT_EQ(f->counters(Side::Client).payload_bytes, 30u);
  EXPECT_EQ(f->counters(Side::Client).ip_bytes, 3u * (20 + 8 + 10));
  EXPECT_EQ(f->counters(Side::Server).packets, 2u);
  EXPECT_EQ(f->counters(Side::Server).payload_bytes, 40u);
  EXPECT_EQ(f->payload_size(Side::Server), 40u);
  EXPECT_EQ(r.engine.stats().udp_packets, 5u);
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.packets[0], 3u);
  EXPECT_EQ(l.packets[1], 2u);
  r.engine.advance(ms(61000));
  EXPECT_EQ(l.closes, 0);
  r.engine.advance(plus_ns(ms(61000), 1));
  EXPECT_EQ(l.closes, 1);
  EXPECT_EQ(l.end, FlowEnd::IdleTimeout);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::IdleTimeout)], 1u);
}

TEST(Engine, IcmpEchoIsOneFlowPerIdAndIdlesOutAfterThirtySeconds) {
  Rig r;
  const IpAddr c = ip("10.0.0.1"), s = ip("10.0.0.2");
  r.send(PacketBuilder().ipv4(c, s).icmp_echo_request(7, 1).payload("ping").build(), ms(0));
  r.send(PacketBuilder().ipv4(s, c).icmp_echo_reply(7, 1).payload("ping").build(), ms(1));
  r.send(PacketBuilder().ipv4(c, s).icmp_echo_request(7, 2).payload("ping").build(), ms(1000));
  r.send(PacketBuilder().ipv4(c, s).icmp_echo_request(8, 1).payload("ping").build(), ms(1000));
  ASSERT_EQ(r.rec.opened.size(), 2u) << "id 7 and id 8";
  const Flow* f = r.flow(0);
  EXPECT_EQ(f->proto(), 1);
  EXPECT_EQ(f->counters(Side::Client).packets, 2u);
  EXPECT_EQ(f->counters(Side::Server).packets, 1u);
  EXPECT_EQ(r.engine.stats().icmp_packets, 4u);
  r.engine.advance(ms(31000));
  EXPECT_EQ(r.rec.nth(0).closes, 0);
  r.engine.advance(ms(31001));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
  EXPECT_EQ(r.rec.nth(0).end, FlowEnd::IdleTimeout);
  EXPECT_EQ(r.rec.nth(1).closes, 1);
}

TEST(Engine, TimeoutsFollowTheTcpStateClass) {
  EngineConfig cfg;
  cfg.timeouts.tcp_opening = Duration::seconds(10);
  cfg.timeouts.tcp_established = Duration::seconds(100);
  Rig r(cfg);
  Conv opening, established;
  established.cp = 40001;
  opening.cp = 40002;
  handshake(r, established);
  r.send(opening.cli(kSyn, 1, 0), ms(0));
  r.engine.advance(ms(10003));
  EXPECT_EQ(r.rec.nth(1).closes, 1) << "the unanswered SYN";
  EXPECT_EQ(r.rec.nth(1).end, FlowEnd::IdleTimeout);
  EXPECT_EQ(r.rec.nth(0).closes, 0);
  r.engine.advance(ms(100002));
  EXPECT_EQ(r.rec.nth(0).closes, 0);
  r.engine.advance(ms(100003));
  EXPECT_EQ(r.rec.nth(0).closes, 1);
  EXPECT_EQ(r.rec.nth(0).end, FlowEnd::IdleTimeout);
}

// ---------------------------------------------------------------------------------------------
// Caps

// Counts what a flood makes the engine say, without keeping per-flow state.
struct Counter : FlowObserver {
  uint64_t opens = 0, closes = 0, data = 0;
  uint64_t ends[5] = {};
  void on_open(const Flow&) override { ++opens; }
  void on_data(const Flow&, Side, uint64_t, Bytes b) override { data += b.size(); }
  void on_close(const Flow&, FlowEnd why) override {
    ++closes;
    ++ends[size_t(why)];
  }
};

// SYN number i of a flood: distinct (source address, port) per i, one server.
Packet flood_syn(uint32_t i) {
  const IpAddr src = IpAddr::from_host_v4(0x0b000000u + (i >> 4));
  return PacketBuilder()
      .ipv4(src, ip("10.0.0.2"))
      .tcp(uint16_t(1024 + (i & 15)), 80)
      .seq(TcpSeq(i * 7919u))
      .flags(kSyn)
      .build();
}

TEST(Engine, SynFloodUnderEvictOldestIdleEvictsKeepsTheCapAndMemoryFlat) {
  EngineConfig cfg;
  cfg.max_flows = 1000;
  cfg.when_full = FullPolicy::EvictOldestIdle;
  Counter obs;
  Engine e(cfg, &obs);
  size_t mem_full = 0, mem_max = 0;
  for (uint32_t i = 0; i < 100000; ++i) {
    Packet p = flood_syn(i);
    p.meta().ts = Timestamp{int64_t(i) * 1000};  // 1 us apart: nothing times out
    e.process(std::move(p));
    ASSERT_LE(e.active_flows(), 1000u);
    if (i == 999) mem_full = e.memory_bytes();
    if (i >= 999) mem_max = std::max(mem_max, e.memory_bytes());
  }
  EXPECT_EQ(e.active_flows(), 1000u);
  EXPECT_EQ(mem_max, mem_full) << "memory is flat once the table is full";
  EXPECT_EQ(e.stats().flows_created, 100000u);
  EXPECT_EQ(e.stats().flows_closed[size_t(FlowEnd::Evicted)], 99000u);
  EXPECT_EQ(e.table_stats().evicted, 99000u);
  EXPECT_EQ(obs.ends[size_t(FlowEnd::Evicted)], 99000u);
  EXPECT_EQ(e.stats().flows_refused, 0u);
}

TEST(Engine, SynFloodUnderRefuseNewIsRefusedAndEstablishedFlowsAreUnaffected) {
  EngineConfig cfg;
  cfg.max_flows = 1000;
  cfg.when_full = FullPolicy::RefuseNew;
  Rig r(cfg);
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "before"), ms(3));
  for (uint32_t i = 0; i < 100000; ++i)
    r.send(flood_syn(i), Timestamp{ms(10).ns + int64_t(i) * 1000});
  EXPECT_EQ(r.engine.active_flows(), 1000u);
  EXPECT_EQ(r.engine.stats().flows_refused, 100000u - 999u);
  EXPECT_EQ(r.engine.table_stats().refused, 100000u - 999u);
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Evicted)], 0u);
  r.send(cv.cli(kPA, 1007, 5001, " after"), ms(500));
  r.send(cv.srv(kPA, 5001, 1013, "ok"), ms(501));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "before after");
  EXPECT_EQ(l.data[1], "ok");
  EXPECT_EQ(l.closes, 0);
}

TEST(Engine, BufferBudgetRefusesOutOfOrderDataAndTheRefusedBytesBecomeGapsOnceAcked) {
  EngineConfig cfg;
  cfg.max_buffered_bytes = 1000;
  cfg.gap_delay = Duration{0};  // a hole is a gap as soon as it is acked (Zeek)
  Rig r(cfg);
  Conv a, b;
  b.cp = 40001;
  handshake(r, a);
  handshake(r, b);
  // Both connections lose their first 100 bytes and then send 20 x 100 bytes out of order.
  const std::string hundred(100, 'x');
  for (uint32_t k = 0; k < 20; ++k) {
    r.send(a.cli(kPA, 1101 + 100 * k, 5001, hundred), ms(10 + k));
    r.send(b.cli(kPA, 1101 + 100 * k, 5001, hundred), ms(10 + k));
    ASSERT_LE(r.engine.stats().buffered_bytes, 1000u);
  }
  EXPECT_EQ(r.engine.stats().buffered_bytes, 1000u);
  EXPECT_EQ(r.engine.stats().buffered_peak, 1000u);
  EXPECT_EQ(r.drops(DropReason::StreamBudget), 30u);  // 40 segments, 10 fit
  // The server acks everything of connection a: held bytes are delivered, the missing and the
  // refused ones are gaps.
  r.send(a.srv(kAck, 5001, 3101), ms(100));
  const Flow* fa = r.flow(0);
  FlowLog& la = r.rec.nth(0);
  EXPECT_EQ(la.next[0], 2100u);
  const uint64_t held_a = std::count(la.data[0].begin(), la.data[0].end(), 'x');
  EXPECT_EQ(fa->missed_bytes(), 2100u - held_a);
  EXPECT_EQ(held_a + r.flow(1)->stream(Side::Client)->buffered_bytes(), 1000u);
  // What stays charged: b's held bytes and the history a keeps of what it delivered.
  EXPECT_EQ(r.engine.stats().buffered_bytes, r.flow(1)->stream(Side::Client)->buffered_bytes() +
                                                 fa->stream(Side::Client)->history_bytes());
  r.engine.finish();
  EXPECT_EQ(r.engine.stats().buffered_bytes, 0u);
  EXPECT_EQ(r.engine.memory_bytes(), Engine(cfg).memory_bytes()) << "everything given back";
}

TEST(Engine, StopTrackingEndsCallbacksButKeepsRecognisingTheFlow) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "seen"), ms(3));
  const FlowHandle h = r.rec.nth(0).handle;
  r.engine.stop_tracking(h);
  r.engine.stop_tracking(h);  // once
  const uint64_t calls = r.rec.callbacks;
  r.send(cv.cli(kPA, 1005, 5001, "unseen"), ms(4));
  r.send(cv.srv(kPA, 5001, 1011, "unseen"), ms(5));
  r.send(cv.srv(kRA, 5006, 1011), ms(6));
  EXPECT_EQ(r.rec.callbacks, calls);
  EXPECT_EQ(r.engine.stats().flows_stopped, 1u);
  EXPECT_EQ(r.engine.stats().flows_created, 1u) << "its packets still find it";
  EXPECT_TRUE(r.engine.flow(h)->tracking_stopped());
  EXPECT_EQ(r.engine.flow(h)->counters(Side::Client).packets, 4u);
  EXPECT_EQ(r.engine.flow(h)->counters(Side::Server).packets, 3u);
  r.engine.finish();
  EXPECT_EQ(r.rec.callbacks, calls) << "no on_close either";
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::EndOfInput)], 1u);
}

TEST(Engine, StopTrackedConnectionStillEndsSoItsTupleCanCarryANewConnection) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  r.engine.stop_tracking(r.rec.nth(0).handle);
  r.send(cv.cli(kFA, 1001, 5001), ms(10));
  r.send(cv.srv(kFA, 5001, 1002), ms(11));
  r.send(cv.cli(kAck, 1002, 5002), ms(12));
  // A new connection on the same tuple a minute later must be seen, not swallowed by the old
  // flow for the rest of its established timeout (an hour).
  handshake(r, cv, 60000, 90000, 123456);
  r.send(cv.cli(kPA, 90001, 123457, "new"), ms(60003));
  ASSERT_EQ(r.rec.opened.size(), 2u);
  EXPECT_EQ(r.rec.nth(1).data[0], "new");
  EXPECT_EQ(r.rec.nth(0).closes, 0) << "a stopped flow raises nothing, its end included";
  EXPECT_EQ(r.engine.stats().flows_closed[size_t(FlowEnd::Reused)], 1u);
  EXPECT_EQ(r.engine.stats().tcp_packets, 10u);
  // Its own SYN sent again (same ISN) is not a new connection.
  r.engine.stop_tracking(r.rec.nth(1).handle);
  r.send(cv.cli(kSyn, 90000, 0), ms(60004));
  EXPECT_EQ(r.rec.opened.size(), 2u);
}

TEST(Engine, DisableSideStopsOnlyThatSidesDelivery) {
  Rig r;
  Conv cv;
  handshake(r, cv);
  const FlowHandle h = r.rec.nth(0).handle;
  r.engine.disable_side(h, Side::Server);
  r.engine.disable_side(h, Side::Server);
  r.send(cv.cli(kPA, 1001, 5001, "request"), ms(3));
  r.send(cv.srv(kPA, 5001, 1008, "big response"), ms(4));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "request");
  EXPECT_EQ(l.data[1], "");
  EXPECT_EQ(l.packets[1], 2u) << "packets are still reported";
  EXPECT_TRUE(r.engine.flow(h)->side_disabled(Side::Server));
  EXPECT_EQ(r.engine.stats().sides_disabled, 1u);
}

TEST(Engine, StreamDepthLimitsEachSidesDeliveryAndCountsTheRest) {
  EngineConfig cfg;
  cfg.stream.depth = 10;
  Rig r(cfg);
  Conv cv;
  handshake(r, cv);
  r.send(cv.cli(kPA, 1001, 5001, "01234567"), ms(3));
  r.send(cv.cli(kPA, 1009, 5001, "89abcdef"), ms(4));
  r.send(cv.cli(kPA, 1017, 5001, "ghij"), ms(5));
  r.send(cv.srv(kPA, 5001, 1021, "server-side"), ms(6));
  FlowLog& l = r.rec.nth(0);
  EXPECT_EQ(l.data[0], "0123456789");
  EXPECT_EQ(l.data[1], "server-sid");
  EXPECT_EQ(r.drops(DropReason::StreamDepth), 3u);
  EXPECT_EQ(r.engine.stream_stats().depth_bytes, 11u);  // client 10, server 1
}

TEST(Engine, AMillionConcurrentFlowsFitUnderOneGibibyte) {
  EngineConfig cfg;
  cfg.max_flows = 1u << 20;
  Engine e(cfg);
  constexpr uint32_t kFlows = 1000000;
  for (uint32_t i = 0; i < kFlows; ++i) {
    Packet p = flood_syn(i);
    p.meta().ts = Timestamp{int64_t(i) * 1000};
    e.process(std::move(p));
  }
  EXPECT_EQ(e.active_flows(), kFlows);
  EXPECT_EQ(e.stats().flows_closed[size_t(FlowEnd::Evicted)], 0u);
  const size_t bytes = e.memory_bytes();
  EXPECT_LT(bytes, size_t{1} << 30);
  const double per_flow = double(bytes) / kFlows;
  const size_t table = Engine(cfg).memory_bytes();  // preallocated for max_flows, no flow yet
  std::printf(
      "engine: %u TCP flows (SYN only), memory_bytes %zu, %.1f bytes/flow (table %zu = %.1f "
      "per slot of %u; TCP state and streams %.1f per flow)\n",
      kFlows, bytes, per_flow, table, double(table) / cfg.max_flows, cfg.max_flows,
      double(bytes - table) / kFlows);
  ::testing::Test::RecordProperty("bytes_per_flow", std::to_string(per_flow));
  ::testing::Test::RecordProperty("memory_bytes", std::to_string(bytes));
}

// ---------------------------------------------------------------------------------------------
// Batches: process(span) is process() on each packet, callback for callback

// Every callback with what it says, one line each (data as its length and a checksum).
struct Transcript : FlowObserver {
  std::vector<std::string> log;
  static std::string side(Side s) { return s == Side::Client ? " c" : " s"; }
  void add(const Flow& f, std::string what) {
    log.push_back(std::to_string(f.serial()) + " " + what);
  }
  void on_open(const Flow& f) override { add(f, "open " + f.uid()); }
  void on_packet(const Flow& f, Side from, const PacketView& v) override {
    add(f, "pkt" + side(from) + " " + std::to_string(v.wire_len()));
  }
  void on_data(const Flow& f, Side from, uint64_t off, Bytes d) override {
    uint64_t sum = 0;
    for (std::byte b : d)
      sum = sum * 131 + uint8_t(b);
    add(f, "data" + side(from) + " " + std::to_string(off) + "+" + std::to_string(d.size()) + " " +
               std::to_string(sum));
  }
  void on_gap(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    add(f, "gap" + side(from) + " " + std::to_string(off) + "+" + std::to_string(len));
  }
  void on_mismatch(const Flow& f, Side from, const StreamMismatch& m) override {
    add(f,
        "mismatch" + side(from) + " " + std::to_string(m.offset) + "+" + std::to_string(m.length));
  }
  void on_anomaly(const Flow& f, Side from, DropReason why) override {
    add(f, "anomaly" + side(from) + " " + std::string(drop_reason_name(why)));
  }
  void on_icmp_error(const Flow& f, Side from, const PacketView&) override {
    add(f, "icmp_error" + side(from));
  }
  void on_tcp_state(const Flow& f, Side s, ES before, ES after) override {
    add(f, "state" + side(s) + " " + std::string(tcp_endpoint_state_name(before)) + ">" +
               std::string(tcp_endpoint_state_name(after)));
  }
  void on_handshake(const Flow& f) override { add(f, "handshake"); }
  void on_retransmission(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    add(f, "rexmit" + side(from) + " " + std::to_string(off) + "+" + std::to_string(len));
  }
  void on_orphan(const PacketView& v, DropReason why) override {
    log.push_back("orphan " + std::string(drop_reason_name(why)) + " " +
                  std::to_string(v.wire_len()));
  }
  void on_malformed(const Packet& p, DropReason why) override {
    log.push_back("malformed " + std::string(drop_reason_name(why)) + " " +
                  std::to_string(p.meta().frame));
  }
  void on_close(const Flow& f, FlowEnd why) override {
    std::string c;
    for (Side s : {Side::Client, Side::Server})
      c += " " + std::to_string(f.counters(s).packets) + "/" +
           std::to_string(f.counters(s).ip_bytes) + "/" + std::to_string(f.payload_size(s));
    add(f, "close " + std::string(flow_end_name(why)) + " " + std::to_string(f.missed_bytes()) +
               (f.tcp() ? " " + std::string(f.tcp()->history()) : std::string()) + c + " " +
               std::to_string((f.last_seen() - f.first_seen()).ns));
  }
};

// The same without on_packet: the batch driver then reads the commonest frames without a
// PacketView (Engine::step_framed()).
struct TranscriptNoPackets : Transcript {
  uint32_t callbacks() const override { return kOnTcpState; }
};

std::vector<std::string> transcript(const std::vector<Packet>& pkts, size_t batch,
                                    const EngineConfig& cfg, bool packets = true) {
  Transcript all;
  TranscriptNoPackets some;
  Transcript& t = packets ? all : some;
  Engine e(cfg, &t);
  if (batch == 0) {
    for (const Packet& p : pkts)
      e.process(p);
  } else {
    for (size_t i = 0; i < pkts.size(); i += batch)
      e.process(std::span<const Packet>(pkts).subspan(i, std::min(batch, pkts.size() - i)));
  }
  e.finish();
  t.log.push_back("stats " + std::to_string(e.stats().flows_created) + " " +
                  std::to_string(e.stats().stream_bytes) + " " +
                  std::to_string(e.stats().drops.total()));
  return t.log;
}

TEST(Engine, ABatchGivesTheSameCallbacksAsItsPacketsOneByOneOnEverySharedCapture) {
  auto dir = testing::shared_pcaps_dir();
  if (!dir) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS)";
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(*dir)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || (ext != ".pcap" && ext != ".pcapng" && ext != ".cap")) continue;
    auto pkts = read_capture(entry.path().string());
    if (!pkts.ok()) continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    // Small tables and a small budget, so batches also meet evictions and refusals.
    for (uint32_t max_flows : {65536u, 8u}) {
      EngineConfig cfg;
      cfg.max_flows = max_flows;
      if (max_flows == 8) cfg.max_buffered_bytes = 4096;
      for (bool packets : {true, false}) {
        const auto one_by_one = transcript(pkts.value(), 0, cfg, packets);
        for (size_t batch : {1, 3, 16, 64})
          EXPECT_EQ(transcript(pkts.value(), batch, cfg, packets), one_by_one)
              << "batch " << batch << (packets ? "" : ", no on_packet");
      }
    }
  }
  EXPECT_GT(files, 10u);
}

}  // namespace
}  // namespace l45
