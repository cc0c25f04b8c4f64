// libFuzzer target for TcpStream: the input is one stream's segments in arrival order.
//   byte 0      config: bit 0 policy Last, bits 1-2 history (0, 8, 64, 4096), bit 3 depth 300,
//               bit 4 segments come in borrowed packets (the history holds them, no copy),
//               each in a buffer of its own and then all as slices of one buffer (a mapped
//               capture: TcpStream's inline path passes one hold along); both runs must agree
//               on every byte, gap and mismatch
//   bytes 1-4   ISN (big-endian), so wraparound at 2^32 is reached with small offsets
//   then records: seq offset from the ISN (2 bytes BE, as int16 so some land before it),
//                 op (bit 0 SYN, bit 1 FIN, bit 2 skip_to instead of a segment, bit 3 flush),
//                 length (1 byte), then that many payload bytes (fewer if the input ends)
// Invariants: delivery is contiguous; delivered + gap bytes == next_offset(); the per-stream byte
// and chunk caps and the shared budget are never exceeded and match what the stream holds
// (out-of-order bytes plus the history); release_buffers() gives everything back. With held
// segments (and a budget that never binds) the delivered bytes and gaps are those of the same
// input with a copying history.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "l45/flow/stream.hpp"
#include "l45/packet/packet.hpp"
#include "l45/packet/tcp.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

struct Sink : l45::StreamSink {
  uint64_t seen = 0, data = 0, gaps = 0, mismatches = 0;
  std::vector<std::byte> bytes;                         // delivered, gaps as nothing
  std::vector<std::pair<uint64_t, uint64_t>> gap_list;  // (offset, length)
  void on_data(uint64_t off, l45::Bytes b) override {
    require(off == seen && !b.empty());
    seen += b.size();
    data += b.size();
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  void on_gap(uint64_t off, uint64_t len) override {
    require(off == seen && len > 0);
    seen += len;
    gaps += len;
    gap_list.emplace_back(off, len);
  }
  void on_mismatch(const l45::StreamMismatch& m) override {
    require(m.length > 0 && m.original.size() == m.length && m.replacement.size() == m.length);
    ++mismatches;
  }
};

// How the segments come: copied into the history, held in borrowed packets of their own, or
// held as slices of one borrowed packet.
enum class Own { Copy, Apart, Shared };

// One run over the input.
Sink run(const uint8_t* d, size_t n, Own own, uint64_t budget_limit) {
  const bool held = own != Own::Copy;
  // The input outlives the run: no keep-alive needed.
  const l45::Packet whole =
      l45::Packet::borrow(l45::Bytes(reinterpret_cast<const std::byte*>(d), n), nullptr);
  static constexpr uint32_t kHistory[] = {0, 8, 64, 4096};
  l45::StreamBudget budget(budget_limit);
  l45::StreamStats totals;
  l45::StreamConfig cfg;
  cfg.totals = &totals;
  cfg.policy = d[0] & 1 ? l45::OverlapPolicy::Last : l45::OverlapPolicy::First;
  cfg.history = kHistory[(d[0] >> 1) & 3];
  cfg.depth = d[0] & 8 ? 300 : 0;
  cfg.max_buffered = 512;
  cfg.max_chunks = 16;
  cfg.budget = &budget;
  const l45::TcpSeq isn((uint32_t(d[1]) << 24) | (uint32_t(d[2]) << 16) | (d[3] << 8) | d[4]);
  Sink sink;
  {
    l45::TcpStream s(cfg);
    size_t i = 5;
    while (i + 4 <= n) {
      const int16_t rel = static_cast<int16_t>((d[i] << 8) | d[i + 1]);
      const uint8_t op = d[i + 2];
      size_t len = d[i + 3];
      i += 4;
      if (len > n - i) len = n - i;
      const l45::TcpSeq seq = isn + static_cast<uint32_t>(int32_t{rel});
      if (op & 4) {
        s.skip_to(seq, sink);
      } else {
        uint8_t flags = 0;
        if (op & 1) flags |= l45::tcp_flag::kSyn;
        if (op & 2) flags |= l45::tcp_flag::kFin;
        const l45::Bytes payload{reinterpret_cast<const std::byte*>(d + i), len};
        if (own == Own::Apart) {
          const l45::Packet p = l45::Packet::borrow(payload, nullptr);
          s.add(seq, flags, p.data(), sink, &p);
        } else if (own == Own::Shared) {
          const l45::Packet p = l45::Packet::slice(whole, i, len, {});
          s.add(seq, flags, p.data(), sink, &p);
        } else {
          s.add(seq, flags, payload, sink);
        }
        i += len;
      }
      if (op & 8) s.flush(sink);
      require(s.buffered_bytes() <= cfg.max_buffered);
      require(s.buffered_chunks() <= 2 * cfg.max_chunks + 2);
      require(budget.used() == s.buffered_bytes() + s.history_bytes());
      require(budget.used() <= budget.limit());
      if (!held) require(s.history_bytes() <= cfg.history);
      require(sink.data + sink.gaps == s.next_offset());
      require(s.counters().bytes_delivered == sink.data && s.counters().gap_bytes == sink.gaps);
      require(totals.bytes_delivered == sink.data && totals.gap_bytes == sink.gaps);
      if (cfg.depth) require(sink.data <= cfg.depth);
    }
    s.flush(sink);
    require(s.buffered_bytes() == 0 && budget.used() == s.history_bytes());
    s.release_buffers();
    require(s.history_bytes() == 0 && budget.used() == 0);
    require(sink.data + sink.gaps == s.next_offset());
  }
  require(budget.used() == 0);
  return sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  if (n < 5) return 0;
  if (!(d[0] & 16)) {
    run(d, n, Own::Copy, 700);  // a tight budget: refusals and their accounting
    return 0;
  }
  // A budget that never binds, so the two histories' different costs cannot change delivery.
  const Sink copied = run(d, n, Own::Copy, 1 << 20);
  const Sink held = run(d, n, Own::Apart, 1 << 20);
  require(held.bytes == copied.bytes && held.gap_list == copied.gap_list);
  const Sink shared = run(d, n, Own::Shared, 1 << 20);
  require(shared.bytes == held.bytes && shared.gap_list == held.gap_list &&
          shared.mismatches == held.mismatches);
  return 0;
}
