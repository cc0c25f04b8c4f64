// libFuzzer target for the http_request middlebox (examples/http_request): any client byte
// stream, cut into segments and with segments the capture missed, gives requests whose method
// is a token of capitals and whose request-target has no space, never more requests than the
// stream has header ends, and no crash.
//
// Input: records of [length byte][flags byte][length bytes of payload]; flag bit 0: the capture
// missed this segment (the server still acknowledges it, so it becomes a gap).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http_request/http_request.hpp"
#include "l45/packet/builder.hpp"

namespace {

l45::Packet segment(bool up, uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data,
                    int64_t i) {
  const l45::IpAddr c = *l45::IpAddr::parse("192.0.2.7"), s = *l45::IpAddr::parse("198.51.100.80");
  l45::PacketBuilder pb;
  if (up)
    pb.ipv4(c, s).tcp(40000, 80);
  else
    pb.ipv4(s, c).tcp(80, 40000);
  pb.seq(l45::TcpSeq(seq)).ack(l45::TcpSeq(ack)).flags(flags).window(65535);
  if (!data.empty()) pb.payload(data);
  l45::PacketMeta m;
  m.ts = l45::Timestamp::from_sec_usec(1700000000, i * 1000);
  return pb.build(m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  using namespace l45;
  std::vector<Packet> pkts;
  uint32_t cseq = 1001;
  const uint32_t sseq = 5001;
  int64_t i = 0;
  pkts.push_back(segment(true, tcp_flag::kSyn, 1000, 0, {}, i++));
  pkts.push_back(segment(false, tcp_flag::kSyn | tcp_flag::kAck, 5000, 1001, {}, i++));
  pkts.push_back(segment(true, tcp_flag::kAck, 1001, 5001, {}, i++));
  std::string seen;  // every client byte, lost or not
  for (size_t at = 0; at + 2 <= n;) {
    const size_t len = std::min<size_t>(d[at], n - at - 2);
    const bool lost = d[at + 1] & 1;
    const std::string_view data(reinterpret_cast<const char*>(d + at + 2), len);
    at += 2 + len;
    if (len == 0) continue;
    if (!lost)
      pkts.push_back(segment(true, tcp_flag::kPsh | tcp_flag::kAck, cseq, sseq, data, i++));
    seen.append(data);
    cseq += uint32_t(len);
    pkts.push_back(segment(false, tcp_flag::kAck, sseq, cseq, {}, i++));
  }
  pkts.push_back(segment(true, tcp_flag::kFin | tcp_flag::kAck, cseq, sseq, {}, i++));

  EngineConfig cfg;
  cfg.max_flows = 4;  // one connection: a small table keeps each run fast
  MonitorContext ctx(cfg);
  size_t requests = 0;
  examples::HttpRequests http(ctx, [&](const examples::HttpRequest& r) {
    ++requests;
    if (r.method.empty()) std::abort();
    for (char c : r.method)
      if (c < 'A' || c > 'Z') std::abort();
    if (r.uri.empty() || r.uri.find(' ') != std::string::npos) std::abort();
  });
  if (!http.status().ok()) std::abort();
  for (const Packet& p : pkts)
    ctx.process(p);
  ctx.finish();
  size_t ends = 0;
  for (size_t at = seen.find("\r\n\r\n"); at != std::string::npos;
       at = seen.find("\r\n\r\n", at + 1))
    ++ends;
  if (requests > ends) std::abort();
  return 0;
}
