// http_request: a header split over segments is one request, pipelined and keep-alive requests
// are each one, a body is skipped, a header never completed raises nothing, a gap loses only
// the request it hits, a client that does not speak HTTP is left.
#include "http_request.hpp"

#include <gtest/gtest.h>

#include "l45/io/pcap_file.hpp"
#include "tcp_talk.hpp"
#include "testing.hpp"

namespace l45::examples {
namespace {

// One TCP connection, client 192.0.2.7:40000 to 198.51.100.80:80, built segment by segment.
struct Conn {
  uint32_t cseq = 1001, sseq = 5001;

  Conn() {
    add(true, tcp_flag::kSyn, 1000, 0, {});
    add(false, tcp_flag::kSyn | tcp_flag::kAck, 5000, 1001, {});
    add(true, tcp_flag::kAck, 1001, 5001, {});
  }
  testing::TcpTalk talk{*IpAddr::parse("192.0.2.7"), *IpAddr::parse("198.51.100.80")};
  std::vector<Packet>& pkts = talk.pkts;
  void add(bool up, uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data) {
    talk.add(up, flags, seq, ack, data);
  }
  // The client sends `data` (the server acknowledges it); lost: the capture misses it.
  void client(std::string_view data, bool lost = false) {
    if (!lost) add(true, tcp_flag::kPsh | tcp_flag::kAck, cseq, sseq, data);
    cseq += uint32_t(data.size());
    add(false, tcp_flag::kAck, sseq, cseq, {});
  }
  void close() {
    add(true, tcp_flag::kFin | tcp_flag::kAck, cseq, sseq, {});
    add(false, tcp_flag::kFin | tcp_flag::kAck, sseq, cseq + 1, {});
    add(true, tcp_flag::kAck, cseq + 1, sseq + 1, {});
  }
};

std::vector<HttpRequest> run(const std::vector<Packet>& pkts) {
  MonitorContext ctx;
  std::vector<HttpRequest> out;
  HttpRequests http(ctx, [&](const HttpRequest& r) { out.push_back(r); });
  EXPECT_TRUE(http.status().ok());
  for (const Packet& p : pkts)
    ctx.process(p);
  ctx.finish();
  return out;
}

std::vector<std::string> lines(const std::vector<HttpRequest>& rs) {
  std::vector<std::string> v;
  for (const HttpRequest& r : rs)
    v.push_back(r.method + " " + r.host + " " + r.uri);
  return v;
}

using Lines = std::vector<std::string>;

TEST(HttpRequest, AHeaderSplitOverSegmentsIsOneRequestWhenItsEmptyLineArrives) {
  Conn c;
  c.client("GET /a?b=c HTTP/1.1\r\nHo");
  c.client("st:  example.com \r\nAccept: */*\r\n\r");
  c.client("\n");
  c.close();
  const auto rs = run(c.pkts);
  EXPECT_EQ(lines(rs), Lines{"GET example.com /a?b=c"});
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].ts, c.pkts[7].meta().ts);  // the segment with the last "\n"
  EXPECT_EQ(rs[0].client_port, 40000);
  EXPECT_EQ(rs[0].server.to_string(), "198.51.100.80");
  EXPECT_EQ(rs[0].uid.size(), 18u);
}

TEST(HttpRequest, KeepAliveAndPipelinedRequestsAreEachOneAndBodiesAreSkipped) {
  Conn c;
  c.client("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  // A body that looks like a request is not one.
  c.client("POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 29\r\n\r\nGET /no HTTP/1.1\r\n");
  c.client("Host: x\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n");
  c.client("GET /3 HTTP/1.0\r\nhost: other:8080\r\n\r\n");
  c.close();
  EXPECT_EQ(lines(run(c.pkts)),
            (Lines{"GET h /1", "HEAD h /2", "POST h /form", "OPTIONS  *", "GET other:8080 /3"}));
}

TEST(HttpRequest, AHeaderNeverCompletedRaisesNothing) {
  Conn c;
  c.client("GET /done HTTP/1.1\r\nHost: h\r\n\r\n");
  c.client("GET /never HTTP/1.1\r\nHost: h\r\n");
  c.close();
  EXPECT_EQ(lines(run(c.pkts)), Lines{"GET h /done"});
}

TEST(HttpRequest, AGapLosesOnlyTheRequestItHits) {
  Conn c;
  c.client("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  c.client("GET /2 HTTP/1.1\r\nHo", /*lost=*/true);
  c.client("st: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  c.close();
  EXPECT_EQ(lines(run(c.pkts)), (Lines{"GET h /1", "GET h /3"}));
}

TEST(HttpRequest, AGapInsideABodyOnlyShortensIt) {
  Conn c;
  c.client("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n0123456789");
  c.client("GET /x HTTP/1.1\r\n\r\n", /*lost=*/true);  // 19 body bytes the capture missed
  c.client("aGET /4 HTTP/1.1\r\nHost: h\r\n\r\n");     // the body's last byte, then a request
  c.close();
  EXPECT_EQ(lines(run(c.pkts)), (Lines{"POST h /up", "GET h /4"}));
}

TEST(HttpRequest, AClientThatDoesNotSpeakHttpIsLeft) {
  Conn bad;  // a request-target with a space: not a request line (RFC 9112 3.2)
  bad.client("GET /a b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
  bad.close();
  EXPECT_TRUE(run(bad.pkts).empty());
  Conn c;
  c.client("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
  c.client("GET /late HTTP/1.1\r\nHost: h\r\n\r\n");  // not looked at any more
  c.close();
  EXPECT_TRUE(run(c.pkts).empty());
}

// The bundled capture: curl fetching from nginx over IPv4 (two requests on one keep-alive
// connection, a 404, a 256 KiB file) and IPv6.
TEST(HttpRequest, TheBundledCaptureGivesEveryRequestWithItsHost) {
  auto pkts = read_capture((testing::source_dir() / "data" / "sample.pcap").string());
  ASSERT_TRUE(pkts.ok());
  const auto rs = run(pkts.value());
  ASSERT_GE(rs.size(), 4u);
  for (const HttpRequest& r : rs) {
    EXPECT_EQ(r.method, "GET");
    EXPECT_FALSE(r.host.empty());
    EXPECT_EQ(r.uri[0], '/');
  }
}

// Picked up mid-stream with the server's response first: the engine takes the server for the
// client (the first sender), but the requests are still the ones the real client sends, and
// they name it as the client.
TEST(HttpRequest, AConnectionPickedUpOnAResponseStillFindsTheRequester) {
  testing::TcpTalk t{*IpAddr::parse("192.0.2.7"), *IpAddr::parse("198.51.100.80")};
  t.add(false, tcp_flag::kPsh | tcp_flag::kAck, 5001, 1001,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  t.add(true, tcp_flag::kAck, 1001, 5041);
  t.add(true, tcp_flag::kPsh | tcp_flag::kAck, 1001, 5041,
        "GET /next HTTP/1.1\r\nHost: example.org\r\n\r\n");
  t.add(false, tcp_flag::kAck, 5041, 1044);
  const auto rs = run(t.pkts);
  EXPECT_EQ(lines(rs), Lines{"GET example.org /next"});
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].client.to_string(), "192.0.2.7");
  EXPECT_EQ(rs[0].client_port, 40000);
  EXPECT_EQ(rs[0].server.to_string(), "198.51.100.80");
  EXPECT_EQ(rs[0].server_port, 80);
}

}  // namespace
}  // namespace l45::examples
