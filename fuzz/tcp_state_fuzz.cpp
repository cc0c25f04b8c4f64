// libFuzzer target for TcpConnection: the input is one connection's segments in arrival order.
//   records: byte 0  bit 0 direction (Reverse), bit 1 bad checksum, bit 2 payload not captured
//            byte 1  TCP header length L (taken mod 41, plus 20: 20..60 bytes)
//            2 bytes payload length (big-endian)
//            then L bytes of raw TCP header (fewer ends the input); TcpView::parse decides
// Invariants: the Linux SYN option layout read in place agrees with the option walk; a refused
// segment always names its anomaly; NewConnection changes nothing; every state and conn_state
// has a name; the history only ever grows; header prediction changes nothing: a second
// connection fed the same segments with prediction off ends every segment in the same state.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "l45/flow/tcp_state.hpp"
#include "l45/packet/tcp.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool same(const l45::TcpConnection& a, const l45::TcpConnection& b) {
  using l45::Side;
  for (Side s : {Side::Client, Side::Server})
    if (a.endpoint(s) != b.endpoint(s) || a.payload_size(s) != b.payload_size(s)) return false;
  return a.history() == b.history() && a.conn_state() == b.conn_state() &&
         a.flipped() == b.flipped() && a.partial() == b.partial();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  l45::TcpConnection c;
  l45::TcpConnection general;  // the same segments, header prediction off
  general.disable_prediction_for_test();
  size_t i = 0;
  while (i + 4 <= n) {
    const uint8_t meta = d[i];
    const size_t hl = 20 + d[i + 1] % 41;
    const uint32_t len = (uint32_t(d[i + 2]) << 8) | d[i + 3];
    i += 4;
    if (i + hl > n) break;
    auto bytes = std::as_bytes(std::span(d + i, hl));
    i += hl;
    auto t = l45::TcpView::parse(bytes);
    if (!t) continue;
    if (t->linux_syn_options()) {
      // The tracker reads this layout in place: what the option walk finds must agree.
      const l45::TcpOptions o = t->options();
      const l45::Bytes ob = t->option_bytes();
      require(!o.malformed && o.timestamps && o.window_scale);
      require(o.timestamps->value == l45::load_be32(ob.data() + 8) &&
              o.timestamps->echo == l45::load_be32(ob.data() + 12) &&
              *o.window_scale == l45::load_u8(ob.data() + 19));
    }
    const std::string before = c.history();
    const auto client_before = c.endpoint(l45::Side::Client).state;
    l45::TcpConnection::SegmentMeta m;
    m.bad_checksum = meta & 2;
    if (meta & 4) m.captured_len = 0;
    const auto dir = meta & 1 ? l45::FlowDir::Reverse : l45::FlowDir::Forward;
    auto r = c.on_segment(dir, *t, len, l45::Timestamp{}, m);
    auto rg = general.on_segment(dir, *t, len, l45::Timestamp{}, m);
    require(r.outcome == rg.outcome && r.anomaly == rg.anomaly);
    require(same(c, general));
    if (r.outcome == l45::TcpOutcome::Ignored) require(r.anomaly != l45::DropReason::None);
    if (r.outcome == l45::TcpOutcome::NewConnection) {
      require(c.history() == before);
      require(c.endpoint(l45::Side::Client).state == client_before);
    }
    require(c.history().view().starts_with(before));
    require(l45::tcp_endpoint_state_name(c.endpoint(l45::Side::Client).state) != "?");
    require(l45::tcp_endpoint_state_name(c.endpoint(l45::Side::Server).state) != "?");
    require(!l45::zeek_conn_state_name(c.conn_state()).empty());
  }
  return 0;
}
