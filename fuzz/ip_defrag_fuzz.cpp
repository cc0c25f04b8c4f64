// libFuzzer target for IpDefragmenter (include/l45/flow/ip_defrag.hpp).
//
// Input: a sequence of records. Each record starts with a control byte:
//   0xff: a raw Ethernet frame follows: 2-byte big-endian length, then that many bytes (cut at
//         the end of the input), pushed as it is (whatever the decoder makes of it);
//   else: a fragment built with PacketBuilder: bit 0 IPv6, bit 1 MF, bit 2 DF (IPv4) or a
//         Hop-by-Hop header before the Fragment header (IPv6), bit 3 an 802.1Q tag, bits 4-5
//         pick one of four ids, bit 6 advances time by 2 s (past the 1 s timeout), bit 7 gives
//         IPv6 a Destination Options header; then 2 bytes offset (8-byte units, 13 bits), 2 bytes
//         length (11 bits), then the data, taken from the input (zeros past its end).
// Small limits (8 fragments, 4 datagrams, 16 KiB, 1 s) so every limit is reached. After each
// push the target checks what the defragmenter promises and traps when one breaks: memory held
// within the limit, datagrams within the limit, a produced packet still decodes as IP, nothing left
// after expiry.
//
// Seeds: fuzz/corpus/ip_defrag, written by  python3 fuzz/corpus/make_ip_defrag_seeds.py
// Run:   ./build-fuzz/fuzz/ip_defrag_fuzz -max_total_time=60 fuzz/corpus/ip_defrag
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "l45/flow/ip_defrag.hpp"
#include "l45/packet/builder.hpp"

namespace {

using namespace l45;

const IpAddr kSrc4 = IpAddr::from_host_v4(0xc0000201);
const IpAddr kDst4 = IpAddr::from_host_v4(0xc0000202);
const IpAddr kSrc6 = *IpAddr::parse("2001:db8::1");
const IpAddr kDst6 = *IpAddr::parse("2001:db8::2");

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const DefragLimits limits{.max_fragments = 8,
                            .max_datagrams = 4,
                            .max_bytes = 16 * 1024,
                            .timeout = Duration::seconds(1)};
  IpDefragmenter d(limits);
  Timestamp now{1'000'000'000};
  size_t i = 0;
  std::vector<std::byte> buf;
  while (i < size) {
    const uint8_t c = data[i++];
    Packet pkt;
    if (c == 0xff) {
      if (size - i < 2) break;
      size_t n = (size_t(data[i]) << 8) | data[i + 1];
      i += 2;
      n = std::min(n, size - i);
      pkt = Packet::copy_of(as_bytes(data + i, n));
      i += n;
    } else {
      if (size - i < 4) break;
      const uint32_t off = ((uint32_t(data[i]) << 8 | data[i + 1]) & 0x1fff) * 8;
      const size_t len = (size_t(data[i + 2]) << 8 | data[i + 3]) & 0x7ff;
      i += 4;
      buf.assign(len, std::byte{0});
      const size_t have = std::min(len, size - i);
      if (have) std::memcpy(buf.data(), data + i, have);
      i += have;
      const bool v6 = c & 1, mf = c & 2, opt = c & 4;
      const uint32_t id = 0x100 + ((c >> 4) & 3);
      PacketBuilder b(64 + len);
      b.ethernet(MacAddr{{2, 0, 0, 0, 0, 1}}, MacAddr{{2, 0, 0, 0, 0, 2}});
      if (c & 8) b.vlan(5);
      if (!v6) {
        b.ipv4(kSrc4, kDst4).ip_id(uint16_t(id)).more_fragments(mf).dont_fragment(opt);
        b.fragment_offset(uint16_t(off / 8));
      } else {
        b.ipv6(kSrc6, kDst6);
        if (opt) b.ipv6_hop_by_hop();
        if (c & 0x80) b.ipv6_dest_opts();
        b.ipv6_fragment(off, mf, id);
      }
      b.ip_protocol(17).payload(Bytes(buf.data(), buf.size()));
      pkt = b.build();
      if (pkt.empty()) continue;  // e.g. past 65535: the builder refuses it
    }
    if (c & 0x40 && c != 0xff) now = now + Duration::seconds(2);
    pkt.meta().ts = now;
    PacketView v = PacketView::decode(pkt);
    std::optional<Packet> out;
    const PushResult r = d.push(std::move(pkt), v, now, &out);
    const DefragStats& st = d.stats();
    check(st.bytes_held <= limits.max_bytes);
    check(st.datagrams <= limits.max_datagrams);
    check(out.has_value() ==
          (r.outcome == DefragOutcome::Passed || r.outcome == DefragOutcome::Reassembled));
    check(r.outcome != DefragOutcome::Dropped || r.reason != DropReason::None);
    if (r.outcome == DefragOutcome::Reassembled) {
      PacketView w = PacketView::decode(*out);
      // Not "no fragment": the reassembled payload may itself hold a fragment (IP-in-IP, or a
      // second IPv6 Fragment header), which is the next reassembly's business.
      check(!w.ip_layers().empty());
      check(out->size() <= 65535 + 64);
    }
  }
  d.expire(now + Duration::seconds(10));
  check(d.stats().datagrams == 0 && d.stats().bytes_held == 0);
  return 0;
}
