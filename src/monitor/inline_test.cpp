// Inline mode: the sequence map's arithmetic, payload edits and their remapping on a crafted
// connection (the receiver's view rebuilt from what is forwarded), retransmissions edited
// again, acknowledgements and SACK blocks mapped back, drop, send and reset.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "inline_state.hpp"
#include "l45/monitor/monitor.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/decode.hpp"

namespace l45 {
namespace {

SeqMap::Edit edit(uint32_t pos, uint32_t removed, std::string ins, bool at_start = false) {
  SeqMap::Edit e;
  e.pos = TcpSeq(pos);
  e.removed = removed;
  for (char c : ins)
    e.inserted.push_back(std::byte(c));
  e.at_start = at_start;
  return e;
}

TEST(SeqMap, MapsAroundInsertionsAndRemovals) {
  SeqMap m;
  m.edits.push_back(edit(100, 0, "abcde"));  // +5 from 100
  m.edits.push_back(edit(200, 10, "xy"));    // -8 from 210
  EXPECT_EQ(m.map(TcpSeq(50)), TcpSeq(50));
  EXPECT_EQ(m.map(TcpSeq(100)), TcpSeq(105));  // the insertion ends the segment before
  EXPECT_EQ(m.map(TcpSeq(150)), TcpSeq(155));
  EXPECT_EQ(m.map(TcpSeq(200)), TcpSeq(205));
  EXPECT_EQ(m.map(TcpSeq(205)), TcpSeq(207));  // inside the removed range: after "xy"
  EXPECT_EQ(m.map(TcpSeq(210)), TcpSeq(207));
  EXPECT_EQ(m.map(TcpSeq(300)), TcpSeq(297));
  // Acknowledgements back.
  EXPECT_EQ(m.unmap(TcpSeq(100)), TcpSeq(100));
  EXPECT_EQ(m.unmap(TcpSeq(103)), TcpSeq(100));  // part of the inserted bytes
  EXPECT_EQ(m.unmap(TcpSeq(105)), TcpSeq(100));
  EXPECT_EQ(m.unmap(TcpSeq(155)), TcpSeq(150));
  EXPECT_EQ(m.unmap(TcpSeq(206)), TcpSeq(200));
  EXPECT_EQ(m.unmap(TcpSeq(207)), TcpSeq(210));
  EXPECT_EQ(m.unmap(TcpSeq(297)), TcpSeq(300));
  for (uint32_t s : {0u, 99u, 150u, 199u, 210u, 250u, 4000u})
    EXPECT_EQ(m.unmap(m.map(TcpSeq(s))), TcpSeq(s)) << s;
  // Folding keeps the numbers after the folded edits.
  m.fold(TcpSeq(100));  // nothing past the insertion acknowledged yet
  EXPECT_EQ(m.edits.size(), 2u);
  m.fold(TcpSeq(150));
  EXPECT_EQ(m.edits.size(), 1u);
  EXPECT_EQ(m.map(TcpSeq(300)), TcpSeq(297));
  EXPECT_EQ(m.unmap(TcpSeq(297)), TcpSeq(300));
  m.fold(TcpSeq(211));
  EXPECT_TRUE(m.edits.empty());
  EXPECT_EQ(m.map(TcpSeq(300)), TcpSeq(297));
}

TEST(SeqMap, WrapsAroundTheSequenceSpace) {
  SeqMap m;
  m.edits.push_back(edit(0xfffffff0u, 0, "0123456789"));
  EXPECT_EQ(m.map(TcpSeq(0xfffffff8u)), TcpSeq(0x2u));
  EXPECT_EQ(m.map(TcpSeq(0x10u)), TcpSeq(0x1au));
  EXPECT_EQ(m.unmap(TcpSeq(0x1au)), TcpSeq(0x10u));
}

const IpAddr kClient = *IpAddr::parse("198.51.100.2");
const IpAddr kServer = *IpAddr::parse("203.0.113.80");
constexpr uint16_t kCport = 40000, kSport = 80;
constexpr uint32_t kCisn = 1000, kSisn = 0xfffff000;  // the server's numbers wrap

Packet seg(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, std::string_view data,
           int64_t t_ms, std::initializer_list<TcpSackBlock> sack = {}) {
  PacketBuilder b;
  b.ipv4(from_client ? kClient : kServer, from_client ? kServer : kClient)
      .tcp(from_client ? kCport : kSport, from_client ? kSport : kCport)
      .seq(TcpSeq(seq))
      .ack(TcpSeq(ack))
      .flags(flags)
      .window(65535);
  if (sack.size()) b.nop().nop().sack(sack);
  if (!data.empty()) b.payload(data);
  PacketMeta m;
  m.ts = Timestamp{t_ms * 1000000};
  return b.build(m);
}

struct Fwd {
  TcpSeq seq, ack;
  std::string data;
  std::vector<TcpSackBlock> sack;
};

Fwd forwarded(const Packet& in, const InlineOutcome& o) {
  const Packet& p = o.packet ? *o.packet : in;
  const PacketView v = PacketView::decode(p, {.verify_checksums = true});
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  Fwd f{v.tcp()->seq(),
        v.tcp()->ack(),
        std::string(reinterpret_cast<const char*>(v.payload().data()), v.payload().size()),
        {}};
  const TcpOptions opts = v.tcp()->options();  // sack_blocks() points into it
  for (const TcpSackBlock& b : opts.sack_blocks())
    f.sack.push_back(b);
  return f;
}

// A client and a server with a rewriter of the server's "Server: nginx" in between.
struct Rig {
  MonitorContext ctx;
  int64_t t = 0;
  std::map<uint32_t, std::string> client_got;  // what reaches the client, by seq
  Rig() {
    SocketId s = ctx.socket(SocketKind::Stream, "tcp").value();
    HandlerId h =
        ctx.handler(
               "rw",
               [](MonitorContext& c, FlowHandle, Side side, EventId) {
                 if (side != Side::Server) return;
                 const PacketView v = PacketView::decode(*c.last_packet());
                 const std::string_view text(reinterpret_cast<const char*>(v.payload().data()),
                                             v.payload().size());
                 const size_t at = text.find("nginx");
                 if (at == std::string_view::npos) return;
                 const std::string to = "l45-rewritten";
                 EXPECT_TRUE(c.remove(at, 5).ok());
                 EXPECT_TRUE(c.insert(at + 5, std::as_bytes(std::span(to.data(), to.size()))).ok());
               })
            .value();
    EXPECT_TRUE(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, h).ok());
  }
  Fwd go(const Packet& p, Verdict expect = Verdict::Accept) {
    InlineOutcome o = ctx.process_inline(p);
    EXPECT_EQ(o.verdict, expect);
    if (o.verdict == Verdict::Drop) return {};
    Fwd f = forwarded(p, o);
    const PacketView v = PacketView::decode(p);
    if (v.src_port() == kSport && !f.data.empty()) client_got[f.seq.value()] = f.data;
    // A segment an edit made longer comes in pieces no longer than it: the rest is sent.
    for (const Packet& extra : ctx.take_sent()) {
      EXPECT_LE(extra.size(), p.size());
      const Fwd x = forwarded(extra, {});
      EXPECT_EQ(x.seq, f.seq + uint32_t(f.data.size()));
      if (v.src_port() == kSport) client_got[x.seq.value()] = x.data;
      f.data += x.data;
    }
    if (o.packet) {
      EXPECT_LE(o.packet->size(), p.size());
    }
    return f;
  }
  void handshake() {
    go(seg(true, kCisn, 0, tcp_flag::kSyn, "", ++t));
    go(seg(false, kSisn, kCisn + 1, tcp_flag::kSyn | tcp_flag::kAck, "", ++t));
    go(seg(true, kCisn + 1, kSisn + 1, tcp_flag::kAck, "", ++t));
  }
};

TEST(Inline, LengthChangeIsRemappedForTheRestOfTheConnection) {
  Rig r;
  r.handshake();
  const uint32_t c1 = kCisn + 1, s1 = kSisn + 1;
  const std::string req = "GET / HTTP/1.1\r\n\r\n";
  r.go(seg(true, c1, s1, tcp_flag::kAck | tcp_flag::kPsh, req, ++r.t));
  const std::string h1 = "HTTP/1.1 200 OK\r\nServer: nginx\r\n";
  const std::string h2 = "Content-Length: 5\r\n\r\nhello";
  const uint32_t c2 = c1 + uint32_t(req.size());
  Fwd a = r.go(seg(false, s1, c2, tcp_flag::kAck, h1, ++r.t));
  EXPECT_EQ(a.seq, TcpSeq(s1));
  EXPECT_EQ(a.data, "HTTP/1.1 200 OK\r\nServer: l45-rewritten\r\n");
  const uint32_t grow = 8;  // "l45-rewritten" - "nginx"
  // The next segment moves by the growth; the client's ACKs come back by it.
  Fwd b = r.go(seg(false, s1 + uint32_t(h1.size()), c2, tcp_flag::kAck, h2, ++r.t));
  EXPECT_EQ(b.seq, TcpSeq(s1 + uint32_t(h1.size()) + grow));
  EXPECT_EQ(b.data, h2);
  // An ACK in the middle of the inserted bytes acknowledges nothing past the edit: the bytes
  // the server sent up to the end of the removed "nginx".
  const uint32_t edit_at = s1 + uint32_t(h1.find("nginx"));
  EXPECT_EQ(r.go(seg(true, c2, edit_at + 3, tcp_flag::kAck, "", ++r.t)).ack, TcpSeq(edit_at + 5));
  // A retransmission of the edited segment gets the same bytes at the same place.
  Fwd again = r.go(seg(false, s1, c2, tcp_flag::kAck, h1, ++r.t));
  EXPECT_EQ(again.seq, a.seq);
  EXPECT_EQ(again.data, a.data);
  // A retransmission that cuts the edited range keeps its bytes, at a remapped number.
  const size_t in_nginx = h1.find("nginx") + 2;
  Fwd cut =
      r.go(seg(false, s1 + uint32_t(in_nginx), c2, tcp_flag::kAck, h1.substr(in_nginx), ++r.t));
  EXPECT_EQ(cut.data, h1.substr(in_nginx));
  EXPECT_EQ(cut.seq, TcpSeq(edit_at));  // where the removed bytes were
  EXPECT_EQ(r.ctx.inline_stats().partial, 1u);
  EXPECT_EQ(r.ctx.inline_stats().reedited, 1u);
  // The client acknowledges everything, with a SACK block past the edit (a stale one).
  const uint32_t s_end = s1 + uint32_t(h1.size() + h2.size());
  Fwd ack = r.go(seg(true, c2, s_end + grow, tcp_flag::kAck, "", ++r.t,
                     {{TcpSeq(edit_at + 13 + 2), TcpSeq(s_end + grow)}}));
  EXPECT_EQ(ack.ack, TcpSeq(s_end));
  ASSERT_EQ(ack.sack.size(), 1u);
  EXPECT_EQ(ack.sack[0].left, TcpSeq(edit_at + 13 + 2 - grow));
  EXPECT_EQ(ack.sack[0].right, TcpSeq(s_end));
  // The client's stream is the edited one, contiguous.
  std::string stream;
  TcpSeq next(s1);
  for (auto it = r.client_got.find(next.value()); it != r.client_got.end();
       it = r.client_got.find(next.value())) {
    stream += it->second;
    next += uint32_t(it->second.size());
  }
  EXPECT_EQ(stream, "HTTP/1.1 200 OK\r\nServer: l45-rewritten\r\n" + h2);
  // FIN from the server: its number moves too; the client's ACK of it comes back.
  Fwd fin = r.go(seg(false, s_end, c2, tcp_flag::kAck | tcp_flag::kFin, "", ++r.t));
  EXPECT_EQ(fin.seq, TcpSeq(s_end + grow));
  EXPECT_EQ(r.go(seg(true, c2, s_end + grow + 1, tcp_flag::kAck, "", ++r.t)).ack,
            TcpSeq(s_end + 1));
  EXPECT_EQ(r.ctx.inline_stats().remapped_flows, 1u);
  EXPECT_EQ(r.ctx.inline_stats().split, 2u);  // the edited segment, and its retransmission
}

TEST(Inline, EditsOutsideAHandlerOrBackwardsAreRefused) {
  MonitorContext ctx;
  EXPECT_FALSE(ctx.drop().ok());
  EXPECT_FALSE(ctx.insert(0, {}).ok());
  EXPECT_FALSE(ctx.remove(0, 1).ok());
  SocketId s = ctx.socket(SocketKind::Stream).value();
  std::vector<bool> results;
  HandlerId h =
      ctx.handler("edits",
                  [&](MonitorContext& c, FlowHandle, Side, EventId) {
                    const std::string x = "xx";
                    const Bytes b = std::as_bytes(std::span(x.data(), x.size()));
                    results.push_back(c.insert(4, b).ok());
                    results.push_back(c.insert(2, b).ok());    // backwards
                    results.push_back(c.remove(3, 100).ok());  // past the payload
                    results.push_back(c.overwrite(Region::Payload, 5, b).ok());
                    results.push_back(c.overwrite(Region::Ip, 19, b).ok());  // past the header
                    results.push_back(c.overwrite(Region::Ip, 8, b.first(1)).ok());  // TTL
                  })
          .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, h).ok());
  ctx.process_inline(seg(true, kCisn, 0, tcp_flag::kSyn, "", 1));
  ctx.process_inline(seg(false, kSisn, kCisn + 1, tcp_flag::kSyn | tcp_flag::kAck, "", 2));
  InlineOutcome o =
      ctx.process_inline(seg(true, kCisn + 1, kSisn + 1, tcp_flag::kAck, "abcdefgh", 3));
  EXPECT_EQ(results, (std::vector<bool>{true, false, false, true, false, true}));
  ASSERT_TRUE(o.packet);
  const PacketView v = PacketView::decode(*o.packet, {.verify_checksums = true});
  EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(v.ttl(), uint8_t('x'));
  // xx in at 4, then fg overwritten: 10 bytes where 8 came, so cut in two.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload().data()), v.payload().size()),
            "abcdxxex");
  const std::vector<Packet> rest = ctx.take_sent();
  ASSERT_EQ(rest.size(), 1u);
  const PacketView w = PacketView::decode(rest[0], {.verify_checksums = true});
  EXPECT_EQ(w.checksum_status(), ChecksumStatus::Ok);
  EXPECT_EQ(w.ttl(), uint8_t('x'));
  EXPECT_EQ(w.tcp()->seq(), TcpSeq(kCisn + 1 + 8));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(w.payload().data()), w.payload().size()),
            "xh");
}

TEST(Inline, DropSendAndReset) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream).value();
  int data = 0;
  HandlerId h = ctx.handler("x",
                            [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                              if (++data == 1) {
                                EXPECT_TRUE(c.drop().ok());
                              } else if (data == 2) {
                                EXPECT_TRUE(c.reset(f).ok());
                              }
                            })
                    .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, h).ok());
  ctx.process_inline(seg(true, kCisn, 0, tcp_flag::kSyn, "", 1));
  ctx.process_inline(seg(false, kSisn, kCisn + 1, tcp_flag::kSyn | tcp_flag::kAck, "", 2));
  EXPECT_EQ(ctx.process_inline(seg(true, kCisn + 1, kSisn + 1, tcp_flag::kAck, "one", 3)).verdict,
            Verdict::Drop);
  EXPECT_TRUE(ctx.take_sent().empty());
  EXPECT_EQ(ctx.process_inline(seg(true, kCisn + 4, kSisn + 1, tcp_flag::kAck, "two", 4)).verdict,
            Verdict::Drop);
  std::vector<Packet> rst = ctx.take_sent();
  ASSERT_EQ(rst.size(), 2u);
  for (const Packet& p : rst) {
    const PacketView v = PacketView::decode(p, {.verify_checksums = true});
    ASSERT_TRUE(v.tcp());
    EXPECT_EQ(v.checksum_status(), ChecksumStatus::Ok);
    EXPECT_EQ(v.tcp()->flags(), tcp_flag::kRst | tcp_flag::kAck);
    if (v.dst_addr() == kClient) {  // from the server's endpoint, at its next number
      EXPECT_EQ(v.tcp()->seq(), TcpSeq(kSisn + 1));
      EXPECT_EQ(v.tcp()->ack(), TcpSeq(kCisn + 7));
    } else {
      EXPECT_EQ(v.tcp()->seq(), TcpSeq(kCisn + 7));
      EXPECT_EQ(v.tcp()->ack(), TcpSeq(kSisn + 1));
    }
  }
  // The flow is no longer monitored: later packets pass untouched, no handler runs.
  EXPECT_EQ(ctx.process_inline(seg(true, kCisn + 7, kSisn + 1, tcp_flag::kAck, "3", 5)).verdict,
            Verdict::Accept);
  EXPECT_EQ(data, 2);
  EXPECT_EQ(ctx.inline_stats().sent, 2u);
  EXPECT_EQ(ctx.inline_stats().dropped, 2u);
}

TEST(Inline, DataSentByTheMiddleboxMovesTheSendersNumbers) {
  MonitorContext ctx;
  SocketId s = ctx.socket(SocketKind::Stream).value();
  HandlerId h = ctx.handler("banner",
                            [&](MonitorContext& c, FlowHandle f, Side, EventId) {
                              const std::string hi = "hi\r\n";
                              EXPECT_TRUE(c.send(f, Side::Client, tcp_flag::kAck | tcp_flag::kPsh,
                                                 std::as_bytes(std::span(hi.data(), hi.size())))
                                              .ok());
                            })
                    .value();
  ASSERT_TRUE(ctx.on(s, BuiltinEvent::HandshakeDone, Hook::Receiver, h).ok());
  ctx.process_inline(seg(true, kCisn, 0, tcp_flag::kSyn, "", 1));
  ctx.process_inline(seg(false, kSisn, kCisn + 1, tcp_flag::kSyn | tcp_flag::kAck, "", 2));
  ctx.process_inline(seg(true, kCisn + 1, kSisn + 1, tcp_flag::kAck, "", 3));
  std::vector<Packet> sent = ctx.take_sent();
  ASSERT_EQ(sent.size(), 1u);
  const PacketView v = PacketView::decode(sent[0]);
  EXPECT_EQ(v.tcp()->seq(), TcpSeq(kSisn + 1));
  EXPECT_EQ(v.tcp()->ack(), TcpSeq(kCisn + 1));
  // The server's first byte now comes after the 4 the client got from the middlebox.
  InlineOutcome o = ctx.process_inline(seg(false, kSisn + 1, kCisn + 1, tcp_flag::kAck, "S", 4));
  ASSERT_TRUE(o.packet);
  EXPECT_EQ(PacketView::decode(*o.packet).tcp()->seq(), TcpSeq(kSisn + 5));
  // The client's ACK of all five comes back as an ACK of the server's one byte.
  o = ctx.process_inline(seg(true, kCisn + 1, kSisn + 6, tcp_flag::kAck, "", 5));
  ASSERT_TRUE(o.packet);
  EXPECT_EQ(PacketView::decode(*o.packet).tcp()->ack(), TcpSeq(kSisn + 2));
}

}  // namespace
}  // namespace l45
