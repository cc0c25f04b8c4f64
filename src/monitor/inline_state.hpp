// Inline mode's state, shared by monitor.cpp (the engine's callbacks) and inline.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "l45/monitor/monitor.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {

// One side's payload edits, in its own sequence numbers ("sent"), and how they move the
// numbers the other side sees ("delivered").
struct SeqMap {
  struct Edit {
    TcpSeq pos;  // first byte removed, or where the bytes go in
    uint32_t removed = 0;
    std::vector<std::byte> inserted;
    bool at_start = false;  // an insertion at the start of its segment: goes with the segment
                            // that starts at pos, not with the one that ends there
    bool sent = false;      // bytes send() sent on their own: they only move numbers
    TcpSeq end() const { return pos + removed; }
  };
  uint32_t base = 0;        // what the edits folded away add (mod 2^32)
  std::vector<Edit> edits;  // in stream order, none overlapping

  // The edit lies wholly before a segment starting at `s` (its bytes are not in it).
  static bool before(const Edit& e, TcpSeq s) {
    if (e.end() < s) return true;
    return e.end() == s && !(e.removed == 0 && e.at_start && !e.sent);
  }
  bool empty() const { return base == 0 && edits.empty(); }
  // Sent -> delivered. A number inside a removed range goes to where the range was.
  TcpSeq map(TcpSeq s) const {
    uint32_t d = base;
    for (const Edit& e : edits) {
      if (before(e, s)) {
        d += uint32_t(e.inserted.size()) - e.removed;
        continue;
      }
      if (e.pos < s) return e.pos + d + uint32_t(e.inserted.size());
      break;
    }
    return s + d;
  }
  // Delivered -> sent, for acknowledgements: acking part of inserted bytes acks nothing past
  // where they went in.
  TcpSeq unmap(TcpSeq a) const {
    uint32_t d = base;
    for (const Edit& e : edits) {
      const TcpSeq dpos = e.pos + d;
      if (a <= dpos) break;
      if (a < dpos + uint32_t(e.inserted.size())) return e.pos;
      d += uint32_t(e.inserted.size()) - e.removed;
    }
    return a - d;
  }
  // Edits the peer has acknowledged whole, and a byte past them (an ACK inside bytes
  // inserted right after a removal maps to the removal's end), can no longer be retransmitted
  // into the stream it reads: they become part of `base`.
  void fold(TcpSeq acked) {
    size_t n = 0;
    for (const Edit& e : edits) {
      if (!(e.end() < acked)) break;
      base += uint32_t(e.inserted.size()) - e.removed;
      ++n;
    }
    edits.erase(edits.begin(), edits.begin() + ptrdiff_t(n));
  }
};

struct MonitorContext::Remap {
  IpAddr client_addr;
  uint16_t client_port = 0;
  SeqMap side[2];  // by Side
};

// The packet process_inline() is on.
struct MonitorContext::Current {
  const Packet* orig = nullptr;  // as it came
  const Packet* in = nullptr;    // what the engine sees (orig, or `work`)
  std::optional<Packet> work;    // a copy with the other side's numbers unmapped
  PacketView view;               // of *in
  bool tcp = false;
  TcpSeq seq;
  uint32_t payload_off = 0;  // in the packet's bytes
  uint32_t payload_len = 0;  // captured
  uint32_t l4_header_len = 0;
  bool edited_now = false;  // a handler edited this packet's payload
  FlowHandle flow;          // set by the engine's callbacks
  Side from = Side::Client;
  bool drop = false;
  struct HeaderWrite {
    Region region;
    size_t offset;
    std::vector<std::byte> data;
  };
  std::vector<HeaderWrite> writes;
};

// The canonical key of a TCP endpoint pair (either direction gives the same), and a flow's.
std::string endpoint_pair_key(IpAddr a, uint16_t pa, IpAddr b, uint16_t pb);
std::string endpoint_pair_key(const Flow& f);
// Which side sent `v`, given the connection's client.
Side sender_side(const PacketView& v, const IpAddr& client, uint16_t client_port);

}  // namespace l45
