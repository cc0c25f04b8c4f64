// TcpConnection: every state path by hand-built segment tables, then real captures against
// Zeek's conn.log history and conn_state and Suricata's evasion case.
#include "l45/flow/tcp_state.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "l45/io/pcap_file.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

namespace fs = std::filesystem;
using namespace tcp_flag;
using ES = TcpEndpointState;

constexpr FlowDir F = FlowDir::Forward;
constexpr FlowDir R = FlowDir::Reverse;
constexpr uint8_t kSA = kSyn | kAck;
constexpr uint8_t kFA = kFin | kAck;
constexpr uint8_t kPA = kPsh | kAck;
constexpr uint8_t kRA = kRst | kAck;

// One segment of a table. Client ISN 1000, server ISN 5000 in the tables below.
struct Seg {
  FlowDir dir;
  uint8_t flags;
  uint32_t seq;
  uint32_t ack = 0;
  uint32_t len = 0;
  uint16_t win = 8192;
  std::optional<uint8_t> wscale = std::nullopt;
  std::optional<TcpTimestamps> ts = std::nullopt;
  // A SYN's options in Linux's layout (MSS, SACK permitted, timestamps, NOP, window scale):
  // needs wscale and ts.
  bool linux_syn = false;
};

Packet build(const Seg& s) {
  auto a = *IpAddr::parse("10.0.0.1");
  auto b = *IpAddr::parse("10.0.0.2");
  PacketBuilder pb;
  if (s.dir == F)
    pb.ipv4(a, b).tcp(40000, 80);
  else
    pb.ipv4(b, a).tcp(80, 40000);
  pb.seq(TcpSeq(s.seq)).ack(TcpSeq(s.ack)).flags(s.flags).window(s.win);
  if (s.linux_syn) {
    pb.mss(1460).sack_permitted().timestamps(s.ts->value, s.ts->echo).nop().wscale(*s.wscale);
  } else {
    if (s.wscale) pb.wscale(*s.wscale);
    if (s.ts) pb.nop().nop().timestamps(s.ts->value, s.ts->echo);
  }
  if (s.len) pb.payload(std::string(s.len, 'x'));
  return pb.build();
}

TcpResult feed(TcpConnection& c, const Seg& s) {
  Packet p = build(s);
  auto v = PacketView::decode(p);
  auto t = v.tcp();
  EXPECT_TRUE(t.has_value());
  return c.on_segment(s.dir, *t, v.payload_len(), Timestamp{});
}

void feed_all(TcpConnection& c, const std::vector<Seg>& segs) {
  for (const auto& s : segs) {
    auto r = feed(c, s);
    EXPECT_EQ(r.outcome, TcpOutcome::Ok) << "segment seq " << s.seq;
  }
}

ES client(const TcpConnection& c) {
  return c.endpoint(Side::Client).state;
}
ES server(const TcpConnection& c) {
  return c.endpoint(Side::Server).state;
}

const std::vector<Seg> kHandshake = {
    {F, kSyn, 1000},
    {R, kSA, 5000, 1001},
    {F, kAck, 1001, 5001},
};

std::vector<Seg> with(std::vector<Seg> a, const std::vector<Seg>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(TcpState, SynMakesClientSynSentAndServerListen) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}});
  EXPECT_EQ(client(c), ES::SynSent);
  EXPECT_EQ(server(c), ES::Listen);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "S0");
  EXPECT_EQ(c.history(), "S");
}

TEST(TcpState, SynAckMakesServerSynRcvdAndFinalAckEstablishesBoth) {
  TcpConnection c;
  feed_all(c, {kHandshake[0], kHandshake[1]});
  EXPECT_EQ(client(c), ES::SynSent);
  EXPECT_EQ(server(c), ES::SynRcvd);
  feed_all(c, {kHandshake[2]});
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "S1");
  EXPECT_FALSE(c.partial());
  EXPECT_FALSE(c.flipped());
}

TEST(TcpState, ClientActiveCloseWalksFinWaitToTimeWaitAndServerToClosed) {
  TcpConnection c;
  feed_all(c, with(kHandshake, {{F, kPA, 1001, 5001, 10}, {R, kAck, 5001, 1011}}));
  feed_all(c, {{F, kFA, 1011, 5001}});
  EXPECT_EQ(client(c), ES::FinWait1);
  EXPECT_EQ(server(c), ES::CloseWait);
  feed_all(c, {{R, kAck, 5001, 1012}});
  EXPECT_EQ(client(c), ES::FinWait2);
  feed_all(c, {{R, kFA, 5001, 1012}});
  EXPECT_EQ(server(c), ES::LastAck);
  EXPECT_EQ(client(c), ES::TimeWait);
  feed_all(c, {{F, kAck, 1012, 5002}});
  EXPECT_EQ(server(c), ES::Closed);
  EXPECT_EQ(c.history(), "ShADaFf");
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "SF");
}

TEST(TcpState, ServerActiveCloseLeavesServerInTimeWait) {
  TcpConnection c;
  feed_all(c,
           with(kHandshake, {{R, kFA, 5001, 1001}, {F, kFA, 1001, 5002}, {R, kAck, 5002, 1002}}));
  EXPECT_EQ(server(c), ES::TimeWait);
  EXPECT_EQ(client(c), ES::Closed);
}

TEST(TcpState, SimultaneousOpenEstablishesBothThroughSynRcvd) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {R, kSyn, 5000}});
  EXPECT_EQ(client(c), ES::SynSent);
  EXPECT_EQ(server(c), ES::SynSent);
  EXPECT_TRUE(c.simultaneous_open());
  feed_all(c, {{F, kSA, 1000, 5001}});
  EXPECT_EQ(client(c), ES::SynRcvd);
  feed_all(c, {{R, kSA, 5000, 1001}});
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
}

TEST(TcpState, SimultaneousCloseGoesThroughClosingToTimeWaitOnBothSides) {
  TcpConnection c;
  feed_all(c, with(kHandshake, {{F, kFA, 1001, 5001}, {R, kFA, 5001, 1001}}));
  EXPECT_EQ(client(c), ES::Closing);
  EXPECT_EQ(server(c), ES::Closing);
  feed_all(c, {{F, kAck, 1002, 5002}, {R, kAck, 5002, 1002}});
  EXPECT_EQ(client(c), ES::TimeWait);
  EXPECT_EQ(server(c), ES::TimeWait);
}

// Prefixes reaching each state pair, with each side's next sequence number for its RST.
struct Prefix {
  const char* name;
  std::vector<Seg> segs;
  uint32_t client_nxt, server_nxt;
};

std::vector<Prefix> prefixes() {
  return {
      {"syn-ack", {kHandshake[0], kHandshake[1]}, 1001, 5001},
      {"established", kHandshake, 1001, 5001},
      {"fin-wait-1/close-wait", with(kHandshake, {{F, kFA, 1001, 5001}}), 1002, 5001},
      {"fin-wait-2/close-wait", with(kHandshake, {{F, kFA, 1001, 5001}, {R, kAck, 5001, 1002}}),
       1002, 5001},
      {"time-wait/last-ack",
       with(kHandshake, {{F, kFA, 1001, 5001}, {R, kAck, 5001, 1002}, {R, kFA, 5001, 1002}}), 1002,
       5002},
      {"closing/closing", with(kHandshake, {{F, kFA, 1001, 5001}, {R, kFA, 5001, 1001}}), 1002,
       5002},
  };
}

TEST(TcpState, InWindowRstFromEitherSideInEveryStateResetsBoth) {
  for (const auto& p : prefixes()) {
    for (FlowDir d : {F, R}) {
      SCOPED_TRACE(std::string(p.name) + (d == F ? " client RST" : " server RST"));
      TcpConnection c;
      feed_all(c, p.segs);
      auto r = feed(c, {d, kRst, d == F ? p.client_nxt : p.server_nxt});
      EXPECT_EQ(r.outcome, TcpOutcome::Ok);
      EXPECT_EQ(client(c), ES::Reset);
      EXPECT_EQ(server(c), ES::Reset);
    }
  }
}

TEST(TcpState, ClientRstAfterUnansweredSynResetsClientOnlyAndIsRstos0) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {F, kRst, 1001}});
  EXPECT_EQ(client(c), ES::Reset);
  EXPECT_EQ(server(c), ES::Listen);  // RFC 9293 3.10.7.2: LISTEN ignores RST
  EXPECT_EQ(c.history(), "SR");
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "RSTOS0");
}

TEST(TcpState, ServerRstAckingTheSynRejectsTheConnection) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {R, kRA, 0, 1001}});
  EXPECT_EQ(client(c), ES::Reset);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "REJ");
}

TEST(TcpState, ServerRstNotAckingTheSynIsIgnored) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}});
  auto r = feed(c, {R, kRA, 0, 777});
  EXPECT_EQ(r.outcome, TcpOutcome::Ignored);
  EXPECT_EQ(r.anomaly, DropReason::TcpRstOutOfWindow);
  EXPECT_EQ(client(c), ES::SynSent);
}

TEST(TcpState, RstOutOfWindowIsCountedAndChangesNothing) {
  TcpConnection c;
  feed_all(c, kHandshake);
  auto r = feed(c, {R, kRst, 5001 + 100000});
  EXPECT_EQ(r.outcome, TcpOutcome::Ignored);
  EXPECT_EQ(r.anomaly, DropReason::TcpRstOutOfWindow);
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "S1");
  // Lenient: anywhere in the receiver's advertised window is accepted.
  EXPECT_EQ(feed(c, {R, kRst, 5001 + 4000}).outcome, TcpOutcome::Ok);
  EXPECT_EQ(client(c), ES::Reset);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "RSTR");
}

TEST(TcpState, FinOutOfWindowIsCountedAndChangesNothing) {
  TcpConnection c;
  feed_all(c, kHandshake);
  auto r = feed(c, {F, kFA, 1001 + 0x40000000u, 5001});
  EXPECT_EQ(r.outcome, TcpOutcome::Ignored);
  EXPECT_EQ(r.anomaly, DropReason::TcpFinOutOfWindow);
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
}

TEST(TcpState, SynAckFirstFlipsRolesAndMarksHistory) {
  TcpConnection c;
  feed_all(c, {{F, kSA, 5000, 1001}});
  EXPECT_TRUE(c.flipped());
  EXPECT_EQ(c.side_of(F), Side::Server);
  EXPECT_EQ(c.side_of(R), Side::Client);
  EXPECT_EQ(server(c), ES::SynRcvd);
  EXPECT_EQ(client(c), ES::SynSent);  // inferred: its SYN was missed
  feed_all(c, {{R, kAck, 1001, 5001}});
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(c.history(), "^hA");
}

TEST(TcpState, MidStreamPickupIsPartialWithBothEstablished) {
  TcpConnection c;
  feed_all(c, {{F, kPA, 777, 999, 100}, {R, kAck, 999, 877}});
  EXPECT_TRUE(c.partial());
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(c.history(), "Da");
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "OTH");
}

TEST(TcpState, OneSidedClientCaptureStillOpensAndCloses) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {F, kAck, 1001, 5001}, {F, kPA, 1001, 5001, 20}});
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
  feed_all(c, {{F, kFA, 1021, 5001}});
  EXPECT_EQ(client(c), ES::FinWait1);
  EXPECT_EQ(server(c), ES::CloseWait);
}

TEST(TcpState, OneSidedServerCaptureEstablishesOnServerData) {
  TcpConnection c;
  feed_all(c, {{F, kSA, 5000, 1001}, {F, kPA, 5001, 1001, 30}});
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(client(c), ES::Established);
}

TEST(TcpState, SynWithNewIsnAfterTimeWaitIsANewConnection) {
  TcpConnection c;
  feed_all(c,
           with(kHandshake, {{F, kFA, 1001, 5001}, {R, kFA, 5001, 1002}, {F, kAck, 1002, 5002}}));
  ASSERT_EQ(client(c), ES::TimeWait);
  const std::string before = c.history();
  EXPECT_EQ(feed(c, {F, kSyn, 1000}).outcome, TcpOutcome::Ok);  // old SYN again: not new
  auto r = feed(c, {F, kSyn, 900000});
  EXPECT_EQ(r.outcome, TcpOutcome::NewConnection);
  EXPECT_EQ(c.history(), before);
  EXPECT_EQ(client(c), ES::TimeWait);
}

TEST(TcpState, SynAfterResetIsANewConnection) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {F, kRst, 1001}});
  EXPECT_EQ(feed(c, {F, kSyn, 7000}).outcome, TcpOutcome::NewConnection);
}

// A connect() refused by RST and tried again from the same port with the same ISN (zeek-pop3
// has three such attempts per tuple, each its own REJ connection in Zeek's log).
TEST(TcpState, SameIsnSynAfterRejectionIsANewConnection) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}, {R, kRst | kAck, 0, 1001}});
  EXPECT_EQ(c.conn_state(), ZeekConnState::REJ);
  EXPECT_EQ(feed(c, {F, kSyn, 1000}).outcome, TcpOutcome::NewConnection);
}

// After a normal close the same ISN is an old SYN resent, not a new connection.
TEST(TcpState, SameIsnSynAfterCloseIsNotANewConnection) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000},
               {R, kSyn | kAck, 5000, 1001},
               {F, kAck, 1001, 5001},
               {F, kFin | kAck, 1001, 5001},
               {R, kFin | kAck, 5001, 1002},
               {F, kAck, 1002, 5002}});
  EXPECT_NE(feed(c, {F, kSyn, 1000}).outcome, TcpOutcome::NewConnection);
}

TEST(TcpState, WindowScaleAbove14IsClampedAndReported) {
  TcpConnection c;
  auto r = feed(c, {F, kSyn, 1000, 0, 0, 8192, 255});
  EXPECT_EQ(r.outcome, TcpOutcome::Ok);
  EXPECT_EQ(r.anomaly, DropReason::TcpWscaleRange);
  // Reported once, on the SYN that offered it.
  EXPECT_EQ(feed(c, {R, kSA, 5000, 1001, 0, 8192, 7}).anomaly, DropReason::None);
  EXPECT_EQ(feed(c, {F, kAck, 1001, 5001, 0, 2}).anomaly, DropReason::None);
  EXPECT_EQ(c.endpoint(Side::Client).wscale, 14);
  EXPECT_EQ(c.endpoint(Side::Server).wscale, 7);
  // The SYN's 8192 is never scaled (RFC 7323 2.2); the ACK's 2 is, to 2 << 14.
  EXPECT_EQ(c.endpoint(Side::Client).max_window, 2u << 14);
  feed_all(c, {{F, kAck, 1001, 5001, 0, 3}});
  EXPECT_EQ(c.endpoint(Side::Client).max_window, 3u << 14);
}

TEST(TcpState, WindowScaleIsNotUsedUnlessBothSynsCarryIt) {
  TcpConnection c;
  feed_all(c,
           {{F, kSyn, 1000, 0, 0, 8192, 7}, {R, kSA, 5000, 1001}, {F, kAck, 1001, 5001, 0, 9000}});
  EXPECT_EQ(c.endpoint(Side::Client).wscale, 0);
  EXPECT_EQ(c.endpoint(Side::Client).max_window, 9000u);
}

TEST(TcpState, RstWithStaleTimestampFailsPawsAndIsIgnored) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000, 0, 0, 8192, std::nullopt, TcpTimestamps{100, 0}},
               {R, kSA, 5000, 1001, 0, 8192, std::nullopt, TcpTimestamps{500, 100}},
               {F, kAck, 1001, 5001, 0, 8192, std::nullopt, TcpTimestamps{101, 500}},
               {R, kPA, 5001, 1001, 10, 8192, std::nullopt, TcpTimestamps{600, 101}}});
  auto r = feed(c, {R, kRst, 5011, 0, 0, 0, std::nullopt, TcpTimestamps{400, 101}});
  EXPECT_EQ(r.outcome, TcpOutcome::Ignored);
  EXPECT_EQ(r.anomaly, DropReason::TcpPawsReject);
  EXPECT_EQ(server(c), ES::Established);
  EXPECT_EQ(client(c), ES::Established);
  r = feed(c, {R, kRst, 5011, 0, 0, 0, std::nullopt, TcpTimestamps{601, 101}});
  EXPECT_EQ(r.outcome, TcpOutcome::Ok);
  EXPECT_EQ(client(c), ES::Reset);
}

TEST(TcpState, RstToSynSentWhoseEchoIsNotTheSynTimestampFailsPaws) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000, 0, 0, 8192, std::nullopt, TcpTimestamps{100000, 0}}});
  auto r = feed(c, {R, kRA, 0, 1001, 0, 8192, std::nullopt, TcpTimestamps{100, 100}});
  EXPECT_EQ(r.anomaly, DropReason::TcpPawsReject);
  EXPECT_EQ(client(c), ES::SynSent);
}

TEST(TcpState, SynWithRstIsABadFlagCombinationWithQHistory) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000}});
  auto r = feed(c, {F, kSyn | kRst, 1000});
  EXPECT_EQ(r.anomaly, DropReason::TcpBadFlags);
  EXPECT_EQ(client(c), ES::SynSent);
  EXPECT_EQ(c.history(), "SQ");
}

TEST(TcpState, RetransmittedDataAndZeroWindowAndGapAreHistoryLetters) {
  TcpConnection c;
  feed_all(c, with(kHandshake, {{F, kPA, 1001, 5001, 10},
                                {F, kPA, 1001, 5001, 10},
                                {R, kAck, 5001, 1011, 0, 0},
                                {F, kAck, 1011, 5101}}));
  EXPECT_EQ(c.history(), "ShADTawg");
}

TEST(TcpState, ConnectionStateFitsInAFewHundredBytes) {
  // One per TCP flow beside two TcpStreams: at most 512 bytes per idle flow in all (see the
  // header).
  EXPECT_LE(sizeof(TcpConnection), 160u) << "per-flow memory: see the header";
  std::cout << "sizeof(TcpConnection) = " << sizeof(TcpConnection) << "\n";
}

TEST(TcpState, BadChecksumIsHistoryCAndChangesNothing) {
  TcpConnection c;
  Packet p = build({F, kSyn, 1000});
  auto v = PacketView::decode(p);
  auto r = c.on_segment(F, *v.tcp(), 0, Timestamp{}, {.bad_checksum = true});
  EXPECT_EQ(r.outcome, TcpOutcome::Ignored);
  EXPECT_EQ(r.anomaly, DropReason::BadChecksum);
  EXPECT_EQ(client(c), ES::Listen);
  EXPECT_EQ(c.history(), "C");
}

TEST(TcpState, UncapturedPayloadBecomesAGapWhenAcked) {
  TcpConnection c;
  feed_all(c, kHandshake);
  Packet p = build({F, kPA, 1001, 5001, 100});
  auto v = PacketView::decode(p);
  EXPECT_EQ(c.on_segment(F, *v.tcp(), 100, Timestamp{}, {.captured_len = 0}).outcome,
            TcpOutcome::Ok);
  EXPECT_EQ(c.history(), "ShAD");
  feed_all(c, {{R, kAck, 5001, 1101}});
  EXPECT_EQ(c.history(), "ShADaG");
}

TEST(TcpState, SynSentReplyRstToARefusedSegmentKeepsTheAttemptAlive) {
  TcpConnection c;
  feed_all(c, {{F, kSyn, 1000, 0, 0, 8192, std::nullopt, TcpTimestamps{100000, 0}}});
  EXPECT_EQ(feed(c, {R, kFA, 0, 1001, 0, 8192, std::nullopt, TcpTimestamps{100, 100}}).outcome,
            TcpOutcome::Ignored);
  EXPECT_EQ(feed(c, {F, kRst, 1001}).outcome, TcpOutcome::Ok);
  EXPECT_EQ(client(c), ES::SynSent);
  feed_all(c, {{R, kSA, 5000, 1001}, {F, kAck, 1001, 5001}});
  EXPECT_EQ(client(c), ES::Established);
  EXPECT_EQ(server(c), ES::Established);
}

// Untrusted input: any sequence of segments is taken without a crash (run under ASan too), and
// refused ones leave a named anomaly.
TEST(TcpState, RandomSegmentsNeverCrashAndRefusalsAreNamed) {
  std::mt19937 gen(45);
  // The engine's result_type is wider than 32 bits on LP64: draw uint32_t so brace-init is exact.
  auto rng = [&gen] { return static_cast<uint32_t>(gen()); };
  const uint8_t flag_set[] = {kSyn, kSA, kAck, kPA, kFA, kRst, kRA, kSyn | kFin, kFin | kRst, 0};
  for (int conn = 0; conn < 200; ++conn) {
    TcpConnection c;
    for (int i = 0; i < 30; ++i) {
      Seg s{rng() % 2 ? F : R,
            flag_set[rng() % std::size(flag_set)],
            rng() % 4 ? 1000 + rng() % 3000 : rng(),
            1000 + rng() % 6000,
            uint32_t(rng() % 3 ? 0 : rng() % 50),
            uint16_t(rng() % 3 ? 8192 : rng()),
            rng() % 5 ? std::nullopt : std::optional<uint8_t>(rng() % 20),
            rng() % 3 ? std::nullopt : std::optional<TcpTimestamps>({rng(), rng()})};
      auto r = feed(c, s);
      if (r.outcome == TcpOutcome::Ignored) {
        EXPECT_NE(r.anomaly, DropReason::None);
      }
    }
    (void)c.conn_state();
  }
}

// ---- Oracles from ../shared/pcaps ----

// A test-only demultiplexer: one TcpConnection per 4-tuple, in file order; a NewConnection
// outcome starts the next connection of the same tuple.
struct Conn {
  IpAddr first_src, first_dst;
  uint16_t first_sport = 0, first_dport = 0;
  TcpConnection tcp;
  std::vector<DropReason> anomalies;  // TcpResult::anomaly of each segment that had one
  size_t count(DropReason r) const {
    return size_t(std::count(anomalies.begin(), anomalies.end(), r));
  }
  std::string orig() const {
    return tcp.flipped() ? key(first_dst, first_dport, first_src, first_sport)
                         : key(first_src, first_sport, first_dst, first_dport);
  }
  static std::string key(IpAddr a, uint16_t ap, IpAddr b, uint16_t bp) {
    return a.to_string() + " " + std::to_string(ap) + " " + b.to_string() + " " +
           std::to_string(bp);
  }
};

std::vector<Conn> replay(const fs::path& pcap) {
  std::vector<Conn> conns;
  std::map<std::string, size_t> by_tuple;
  auto pkts = read_capture(pcap.string());
  if (!pkts.ok()) {
    ADD_FAILURE() << pkts.error().message();
    return conns;
  }
  for (const auto& p : *pkts) {
    auto v = PacketView::decode(p);
    auto t = v.tcp();
    if (!t) continue;
    IpAddr s = v.src_addr(), d = v.dst_addr();
    std::string fwd = Conn::key(s, t->src_port(), d, t->dst_port());
    std::string rev = Conn::key(d, t->dst_port(), s, t->src_port());
    std::string k = std::min(fwd, rev);
    auto it = by_tuple.find(k);
    auto start = [&] {
      conns.push_back(Conn{s, d, t->src_port(), t->dst_port(), {}});
      by_tuple[k] = conns.size() - 1;
    };
    if (it == by_tuple.end()) start();
    for (int tries = 0; tries < 2; ++tries) {
      Conn& c = conns[by_tuple[k]];
      FlowDir dir = (c.first_src == s && c.first_sport == t->src_port()) ? F : R;
      auto r = c.tcp.on_segment(dir, *t, v.payload_len(), p.meta().ts,
                                {.captured_len = uint32_t(v.payload().size())});
      if (r.outcome != TcpOutcome::NewConnection) {
        if (r.anomaly != DropReason::None) c.anomalies.push_back(r.anomaly);
        break;
      }
      start();
    }
  }
  return conns;
}

std::vector<std::string> lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);)
    out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string f; std::getline(ss, f, sep);)
    out.push_back(f);
  return out;
}

// Zeek conn.log TCP rows: "orig_h orig_p resp_h resp_p" -> "history conn_state".
std::map<std::string, std::string> zeek_tcp(const fs::path& log, size_t* rows = nullptr) {
  std::map<std::string, std::string> out;
  if (rows) *rows = 0;
  std::vector<std::string> fields;
  for (const auto& l : lines(log)) {
    if (l.rfind("#fields", 0) == 0) fields = split(l, '\t');
    if (l.empty() || l[0] == '#') continue;
    auto v = split(l, '\t');
    std::map<std::string, std::string> row;
    for (size_t i = 1; i < fields.size() && i - 1 < v.size(); ++i)
      row[fields[i]] = v[i - 1];
    if (row["proto"] != "tcp") continue;
    if (rows) ++*rows;
    out[row["id.orig_h"] + " " + row["id.orig_p"] + " " + row["id.resp_h"] + " " +
        row["id.resp_p"]] = row["history"] + " " + row["conn_state"];
  }
  return out;
}

std::string ours(const Conn& c) {
  return std::string(c.tcp.history()) + " " + std::string(zeek_conn_state_name(c.tcp.conn_state()));
}

#define L45_NEED_PCAPS(dir, sub)                                                       \
  auto dir##_root = testing::shared_pcaps_dir();                                       \
  if (!dir##_root || !fs::exists(*dir##_root / sub))                                   \
    GTEST_SKIP() << "no ../shared/pcaps/" << sub << " (set L45_PCAPS to point at it)"; \
  const fs::path dir = *dir##_root / sub

// Every TCP connection in the capture has Zeek's history and conn_state. No exceptions are
// needed for wikipedia and http-get; the differences l45 makes on purpose (mid-stream roles by
// first sender instead of Zeek's port heuristic; refused RST/FIN do not move conn_state) do not
// arise in them.
void expect_conn_log_agrees(const fs::path& pcap, const fs::path& log, size_t want_count) {
  size_t rows = 0;
  auto want = zeek_tcp(log, &rows);  // distinct tuples; a tuple reused has several rows
  auto conns = replay(pcap);
  EXPECT_EQ(want.size(), want_count);
  size_t agree = 0;
  for (const auto& c : conns) {
    auto it = want.find(c.orig());
    if (it == want.end()) {
      ADD_FAILURE() << "connection not in Zeek's log: " << c.orig();
      continue;
    }
    EXPECT_EQ(ours(c), it->second) << c.orig();
    agree += ours(c) == it->second;
  }
  EXPECT_EQ(conns.size(), rows);
  EXPECT_EQ(agree, rows);
}

TEST(TcpStateOracle, ZeekConnStateRstCasesMatchHistoryAndConnState) {
  L45_NEED_PCAPS(d, "zeek-conn-state-rst");
  const std::pair<const char*, const char*> cases[] = {
      {"single-rst.pcap", "R OTH"},
      {"syn-then-rst.pcap", "SR RSTOS0"},
      {"syn-then-ack-then-rst.pcap", "SaR RSTOS0"},
      {"syn-then-stuff-then-rst.pcap", "SaFR OTH"},
  };
  for (const auto& [file, want] : cases) {
    auto conns = replay(d / file);
    ASSERT_EQ(conns.size(), 1u) << file;
    EXPECT_EQ(ours(conns[0]), want) << file;
  }
}

TEST(TcpStateOracle, ZeekMissingSynIsFlippedAndClosesSF) {
  L45_NEED_PCAPS(d, "zeek-missing-syn");
  expect_conn_log_agrees(d / "missing-syn.pcap", d / "expected/conn.log", 1);
  auto conns = replay(d / "missing-syn.pcap");
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(ours(conns[0]), "^hADdFaf SF");
}

TEST(TcpStateOracle, ZeekFinRetransmitEndsOrigClosedRespReset) {
  L45_NEED_PCAPS(d, "zeek-fin-retransmit");
  auto conns = replay(d / "fin_retransmission.pcap");
  ASSERT_EQ(conns.size(), 1u);
  const auto& c = conns[0].tcp;
  // Zeek: orig state 5 (TCP_CLOSED) with 3 packets, resp state 6 (TCP_RESET) with 2. Our
  // endpoint model: the server's in-window RST resets both ends.
  EXPECT_EQ(c.endpoint(Side::Client).packets, 3u);
  EXPECT_EQ(c.endpoint(Side::Server).packets, 2u);
  EXPECT_EQ(c.endpoint(Side::Server).state, ES::Reset);
  EXPECT_EQ(c.endpoint(Side::Client).state, ES::Reset);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "RSTR");
  EXPECT_TRUE(conns[0].anomalies.empty());
}

TEST(TcpStateOracle, ZeekWindowScaleRangeFiresTheClampAnomaly) {
  L45_NEED_PCAPS(d, "zeek-window-scale-range");
  auto conns = replay(d / "window-scale-range.pcap");
  ASSERT_EQ(conns.size(), 1u);
  const auto& c = conns[0].tcp;
  EXPECT_EQ(conns[0].count(DropReason::TcpWscaleRange), 1u);
  EXPECT_EQ(c.endpoint(Side::Client).wscale, 14);
  EXPECT_EQ(c.endpoint(Side::Server).wscale, 7);
  EXPECT_EQ(c.endpoint(Side::Client).state, ES::Established);
}

TEST(TcpStateOracle, SuricataBug3286EvasionRstAndFinDoNotTearDownTheHandshake) {
  L45_NEED_PCAPS(d, "sv-bug3286-evasion");
  auto conns = replay(d / "with_evasion_linux.pcap");
  ASSERT_EQ(conns.size(), 1u);
  const auto& c = conns[0].tcp;
  // Suricata's 7858-stream-events expects pkt_invalid_timestamp == 2: the RST and the FIN.
  EXPECT_EQ(conns[0].count(DropReason::TcpPawsReject), 2u);
  EXPECT_EQ(c.endpoint(Side::Client).state, ES::Established);
  EXPECT_EQ(c.endpoint(Side::Server).state, ES::Established);
  EXPECT_EQ(zeek_conn_state_name(c.conn_state()), "S1");
}

TEST(TcpStateOracle, SuricataBug3286WithoutEvasionEstablishes) {
  L45_NEED_PCAPS(d, "sv-bug3286-evasion");
  auto conns = replay(d / "without_evasion.pcap");
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_TRUE(conns[0].anomalies.empty());
  EXPECT_EQ(conns[0].tcp.endpoint(Side::Server).state, ES::Established);
}

TEST(TcpStateOracle, ZeekWikipediaEveryTcpConnectionAgrees) {
  L45_NEED_PCAPS(d, "zeek-wikipedia");
  fs::path pcap;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().extension() == ".trace" || e.path().extension() == ".pcap") pcap = e.path();
  ASSERT_FALSE(pcap.empty());
  expect_conn_log_agrees(pcap, d / "expected/conn.log", 10);
}

// Zeek's own regression traces with conn.log baselines: all TCP connections agree.
TEST(TcpStateOracle, ZeekFtpPop3GreIrcConnLogsAgree) {
  const std::tuple<const char*, const char*, size_t> cases[] = {
      {"zeek-ftp-ipv4", "ftp-ipv4.pcap", 5},
      {"zeek-ftp-ipv6", "ftp-ipv6.pcap", 6},
      {"zeek-pop3", "pop3.pcap", 7},
      {"zeek-gre-sample", "gre-sample.pcap", 1},
      {"zeek-irc-dcc", "irc-dcc-send.pcapng", 3},
  };
  for (const auto& [sub, file, n] : cases) {
    L45_NEED_PCAPS(d, sub);
    SCOPED_TRACE(sub);
    expect_conn_log_agrees(d / file, d / "expected/conn.log", n);
  }
}

// Headers-only capture (snap length 54): the uncaptured payload is Zeek's content gap (G, g),
// and the responder's resent data is 't'.
TEST(TcpStateOracle, ZeekRetransmitFast009HasGapsAndRetransmissionLikeZeek) {
  L45_NEED_PCAPS(d, "zeek-retransmit-fast009");
  expect_conn_log_agrees(d / "retransmit-fast009.pcap", d / "expected/conn.log", 1);
}

TEST(TcpStateOracle, ZeekHttpGetAgrees) {
  L45_NEED_PCAPS(d, "zeek-http-get");
  expect_conn_log_agrees(d / "get.pcap", d / "expected/conn.log", 1);
}

// ---- Header prediction ----

// Every TCP segment of a capture into two connections per 4-tuple, one with header prediction
// off: after each segment both must be in the same state. Returns the segments compared;
// `predicted` counts those the prediction took.
size_t compare_prediction(const fs::path& pcap, size_t* predicted = nullptr) {
  struct Pair {
    IpAddr src;
    uint16_t sport = 0;
    TcpConnection fast, general;
  };
  std::map<std::string, std::unique_ptr<Pair>> conns;
  auto pkts = read_capture(pcap.string());
  if (!pkts.ok()) return 0;  // a capture the reader refuses (some are broken on purpose)
  size_t n = 0;
  for (const auto& p : *pkts) {
    auto v = PacketView::decode(p);
    auto t = v.tcp();
    if (!t) continue;
    IpAddr s = v.src_addr(), d = v.dst_addr();
    std::string k = std::min(Conn::key(s, t->src_port(), d, t->dst_port()),
                             Conn::key(d, t->dst_port(), s, t->src_port()));
    auto& c = conns[k];
    for (int tries = 0; tries < 2; ++tries) {
      if (!c) {
        c = std::make_unique<Pair>();
        c->src = s;
        c->sport = t->src_port();
        c->general.disable_prediction_for_test();
      }
      const FlowDir dir = (c->src == s && c->sport == t->src_port()) ? F : R;
      const TcpConnection::SegmentMeta m{.captured_len = uint32_t(v.payload().size())};
      auto a = c->fast.on_segment(dir, *t, v.payload_len(), p.meta().ts, m);
      auto b = c->general.on_segment(dir, *t, v.payload_len(), p.meta().ts, m);
      EXPECT_EQ(a.outcome, b.outcome) << pcap << " frame " << p.meta().frame;
      EXPECT_EQ(a.anomaly, b.anomaly) << pcap << " frame " << p.meta().frame;
      EXPECT_FALSE(b.predicted);
      if (predicted && a.predicted) ++*predicted;
      for (Side sd : {Side::Client, Side::Server}) {
        EXPECT_TRUE(c->fast.endpoint(sd) == c->general.endpoint(sd))
            << pcap << " frame " << p.meta().frame;
        EXPECT_EQ(c->fast.payload_size(sd), c->general.payload_size(sd));
      }
      EXPECT_EQ(c->fast.history(), c->general.history()) << pcap << " frame " << p.meta().frame;
      EXPECT_EQ(c->fast.conn_state(), c->general.conn_state());
      ++n;
      if (a.outcome != TcpOutcome::NewConnection) break;
      c.reset();
    }
  }
  return n;
}

TEST(TcpState, HeaderPredictionChangesNothingOnTheBundledCapture) {
  // data/sample.pcap: keep-alive requests, IPv6, and real retransmissions after drops.
  size_t predicted = 0;
  EXPECT_GT(compare_prediction(testing::source_dir() / "data" / "sample.pcap", &predicted), 700u);
  EXPECT_GT(predicted, 300u);  // most segments of the bulk transfers
}

TEST(TcpState, HeaderPredictionAgreesWhenASegmentEndWrapsBehindTheHighestByte) {
  // Found by tcp_state_fuzz: the third segment starts just under 2^31 past the highest byte, so
  // its end wraps behind it and the highest byte must stay; the fourth would then look like a
  // retransmission ('T') to one path only.
  const uint32_t far = 1100 + (1u << 31) - 50;
  const std::vector<Seg> segs = {{F, kPA, 1000, 5000, 100},
                                 {R, kAck, 5000, 1100},
                                 {F, kPA, far, 5000, 100},
                                 {F, kPA, 1200, 5000, 100}};
  TcpConnection fast, general;
  general.disable_prediction_for_test();
  for (const Seg& sg : segs) {
    feed(fast, sg);
    feed(general, sg);
    for (Side sd : {Side::Client, Side::Server})
      EXPECT_TRUE(fast.endpoint(sd) == general.endpoint(sd)) << "seq " << sg.seq;
    EXPECT_EQ(fast.history(), general.history()) << "seq " << sg.seq;
  }
  EXPECT_EQ(general.history(), "Da");
}

// The control segments' fast path (TcpConnection::control()) takes segments without payload
// with Linux's SYN options or NOP, NOP, timestamps; it must leave what the general path leaves,
// and hand over whatever it does not take (refusals, reuse, PAWS, gaps, zero windows).
TEST(TcpState, ControlSegmentsFastPathAgreesWithTheGeneralPath) {
  struct Ctl {
    FlowDir dir;
    uint8_t flags;
    uint32_t seq, ack, tsval, tsecr;
    uint16_t win = 500;
    uint8_t wscale = 7;
  };
  // A SYN with Linux's options, anything else with NOP, NOP, timestamps.
  auto build_ctl = [](const Ctl& c) {
    const bool syn = c.flags & kSyn;
    return build(Seg{.dir = c.dir,
                     .flags = c.flags,
                     .seq = c.seq,
                     .ack = c.ack,
                     .win = c.win,
                     .wscale = syn ? std::optional<uint8_t>(c.wscale) : std::nullopt,
                     .ts = TcpTimestamps{c.tsval, c.tsecr},
                     .linux_syn = syn});
  };
  // The three-way handshake, then `rest`.
  auto after_handshake = [](std::vector<Ctl> rest) {
    std::vector<Ctl> c = {
        {F, kSyn, 1000, 0, 10, 0}, {R, kSA, 5000, 1001, 90, 10}, {F, kAck, 1001, 5001, 11, 90}};
    c.insert(c.end(), rest.begin(), rest.end());
    return c;
  };
  const std::vector<std::vector<Ctl>> conns = {
      // The client closes first, the last ACK.
      after_handshake({{F, kFA, 1001, 5001, 12, 90},
                       {R, kFA, 5001, 1002, 91, 12},
                       {F, kAck, 1002, 5002, 13, 91}}),
      // The server closes first, a retransmitted FIN, a FIN-ACK crossing it, a duplicate ACK.
      after_handshake({{R, kFA, 5001, 1001, 91, 11},
                       {R, kFA, 5001, 1001, 92, 11},
                       {F, kFA, 1001, 5001, 12, 91},
                       {R, kAck, 5002, 1002, 93, 12},
                       {R, kAck, 5002, 1002, 93, 12}}),
      // Simultaneous close; a stale FIN (PAWS) and one out of the window are the general path's.
      after_handshake({{F, kFA, 900000, 5001, 12, 90},
                       {F, kFA, 1001, 5001, 5, 90},
                       {F, kFA, 1001, 5001, 12, 90},
                       {R, kFA, 5001, 1001, 91, 11},
                       {F, kAck, 1002, 5002, 13, 91},
                       {R, kAck, 5002, 1002, 92, 13}}),
      // Simultaneous open, a retransmitted SYN, a window scale above 14, a zero window, an ACK
      // of bytes never seen ('g').
      {{F, kSyn, 1000, 0, 10, 0},
       {R, kSyn, 5000, 0, 90, 0, 500, 15},
       {F, kSA, 1000, 5001, 11, 90},
       {F, kSA, 1000, 5001, 11, 90},
       {R, kSA, 5000, 1001, 91, 11},
       {F, kAck, 1001, 5001, 12, 91, 0},
       {R, kAck, 5001, 1500, 92, 12}},
      // A SYN-ACK first (roles flipped), then a reuse of the tuple after the close.
      {{R, kSA, 5000, 1001, 90, 10},
       {F, kAck, 1001, 5001, 11, 90},
       {F, kFA, 1001, 5001, 12, 90},
       {R, kFA, 5001, 1002, 91, 12},
       {F, kAck, 1002, 5002, 13, 91},
       {F, kSyn, 7000, 0, 20, 0}},
      // An ACK first (picked up mid-stream), a FIN towards a side still in SYN-SENT.
      {{F, kAck, 1001, 5001, 11, 90}, {F, kFA, 1001, 5001, 12, 90}},
      {{F, kSyn, 1000, 0, 10, 0}, {R, kFA, 5000, 1001, 90, 10}, {R, kSA, 5000, 1001, 91, 10}},
  };
  for (size_t i = 0; i < conns.size(); ++i) {
    TcpConnection fast, general;
    general.disable_prediction_for_test();
    for (const Ctl& sg : conns[i]) {
      Packet p = build_ctl(sg);
      auto v = PacketView::decode(p);
      auto t = v.tcp();
      ASSERT_TRUE(t.has_value());
      auto a = fast.on_segment(sg.dir, *t, v.payload_len(), Timestamp{});
      auto b = general.on_segment(sg.dir, *t, v.payload_len(), Timestamp{});
      EXPECT_EQ(a.outcome, b.outcome) << "connection " << i << " seq " << sg.seq;
      EXPECT_EQ(a.anomaly, b.anomaly) << "connection " << i << " seq " << sg.seq;
      for (Side sd : {Side::Client, Side::Server})
        EXPECT_TRUE(fast.endpoint(sd) == general.endpoint(sd))
            << "connection " << i << " seq " << sg.seq;
      EXPECT_EQ(fast.history(), general.history()) << "connection " << i << " seq " << sg.seq;
      EXPECT_EQ(fast.conn_state(), general.conn_state()) << "connection " << i;
      EXPECT_EQ(fast.simultaneous_open(), general.simultaneous_open()) << "connection " << i;
      if (a.outcome == TcpOutcome::NewConnection) break;
    }
  }
}

TEST(TcpStateOracle, HeaderPredictionChangesNothingOnEveryCapture) {
  auto root = testing::shared_pcaps_dir();
  if (!root) GTEST_SKIP() << "no ../shared/pcaps (set L45_PCAPS to point at it)";
  size_t files = 0, segs = 0;
  for (const auto& e : fs::recursive_directory_iterator(*root)) {
    const auto ext = e.path().extension();
    if (!e.is_regular_file() || (ext != ".pcap" && ext != ".pcapng" && ext != ".trace")) continue;
    ++files;
    segs += compare_prediction(e.path());
  }
  EXPECT_GT(files, 10u);
  EXPECT_GT(segs, 5000u);
}

}  // namespace
}  // namespace l45
