// libFuzzer target for inline mode (MonitorContext::process_inline): a sequence of packets, and
// for each a handler script of payload and header edits, drops, sends and resets, run on every
// data event and every packet. Invariants: nothing crashes or leaks; a changed packet and every
// packet sent decode as IP, with valid checksums when the packet that came had them; a changed TCP
// packet is never longer than the one that came (edits that grow a segment cut it in pieces); sent
// pieces follow it in sequence.
//   records: link (1 byte: kLinks[b % 4]), script (1 byte), arg (1 byte), length (2 bytes BE),
//            that many bytes (fewer if the input ends)
//   script bits: 0 insert, 1 remove, 2 overwrite payload, 3 overwrite IP header, 4 drop,
//                5 send to the other side, 6 reset, 7 edit on packet events too
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "l45/monitor/monitor.hpp"
#include "l45/packet/decode.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

constexpr l45::LinkType kLinks[] = {l45::LinkType::Raw, l45::LinkType::Ethernet,
                                    l45::LinkType::Ipv4, l45::LinkType::Ipv6};

// `valid_in`: the packet it came from had valid checksums (a remapped number is an incremental
// update, so a packet that came corrupt stays corrupt, as it should: its receiver drops it).
void check_ip(const l45::Packet& p, bool valid_in) {
  const l45::PacketView v = l45::PacketView::decode(p, {.verify_checksums = true});
  if (!v.ok() || v.ip_version() == 0 ||
      (valid_in && !v.fragment().is_fragment && v.checksum_status() == l45::ChecksumStatus::Bad)) {
    std::fprintf(stderr, "bad output packet: %s, checksum %d, %zu bytes\n",
                 std::string(l45::drop_reason_name(v.error())).c_str(), int(v.checksum_status()),
                 p.size());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  using namespace l45;
  EngineConfig cfg;
  cfg.max_flows = 64;
  MonitorContext ctx(cfg);
  uint8_t script = 0, arg = 0;
  const std::string bytes = "l45-inline-fuzz-bytes";
  auto act = [&](MonitorContext& c, FlowHandle f, Side side) {
    const Bytes b = std::as_bytes(std::span(bytes.data(), size_t(arg % bytes.size())));
    const size_t off = arg % 7;
    if (script & 1) (void)c.insert(off, b);
    if (script & 2) (void)c.remove(off + 1, arg % 5 + 1);
    if (script & 4)
      (void)c.overwrite(Region::Payload, off + 8, b.first(std::min<size_t>(3, b.size())));
    if (script & 8) (void)c.overwrite(Region::Ip, 8, b.first(std::min<size_t>(1, b.size())));
    if (script & 16) (void)c.drop();
    if (script & 32) (void)c.send(f, other(side), 0x18, b);
    if (script & 64) (void)c.reset(f);
  };
  const SocketId s = ctx.socket(SocketKind::Stream).value();
  const HandlerId data = ctx.handler("data", [&](MonitorContext& c, FlowHandle f, Side side,
                                                 EventId) { act(c, f, side); })
                             .value();
  const HandlerId pkt = ctx.handler("packet",
                                    [&](MonitorContext& c, FlowHandle f, Side side, EventId) {
                                      if (script & 128) act(c, f, side);
                                    })
                            .value();
  require(ctx.on(s, BuiltinEvent::Data, Hook::Receiver, data).ok());
  require(ctx.on(s, BuiltinEvent::Packet, Hook::Sender, pkt).ok());

  size_t i = 0;
  int64_t t = 1700000000LL * 1000000000;
  while (i + 5 <= n) {
    const LinkType link = kLinks[d[i] % 4];
    script = d[i + 1];
    arg = d[i + 2];
    const size_t len = std::min<size_t>(size_t(d[i + 3]) << 8 | d[i + 4], n - i - 5);
    i += 5;
    PacketMeta m;
    m.link = link;
    m.ts = Timestamp{t += 1000000};
    Packet p = Packet::copy_of({reinterpret_cast<const std::byte*>(d + i), len}, m);
    i += len;
    const bool valid_in =
        PacketView::decode(p, {.verify_checksums = true}).checksum_status() != ChecksumStatus::Bad;
    const InlineOutcome o = ctx.process_inline(p);
    if (o.packet) {
      check_ip(*o.packet, valid_in);
      require(o.packet->size() <= p.size());
    }
    for (const Packet& x : ctx.take_sent())
      check_ip(x, valid_in);
  }
  ctx.finish();
  return 0;
}
