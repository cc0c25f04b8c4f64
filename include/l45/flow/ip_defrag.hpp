// IpDefragmenter: IPv4 (RFC 791 3.2) and IPv6 (RFC 8200 4.5) fragment reassembly, as a middlebox
// needs it before keying flows. A packet that is not a fragment passes straight through (one
// branch on PacketView::fragment().is_fragment); a fragment is held until its datagram is whole,
// then one packet comes out:
//   - the first fragment's (offset 0) link layer and IP header, then the reassembled payload;
//   - IPv4: MF and the fragment offset cleared (DF and the reserved bit kept), total length and
//     header checksum recomputed;
//   - IPv6: the Fragment header removed from the chain (the previous header's Next Header takes
//     the Fragment header's), payload length recomputed; extension headers before the Fragment
//     header (the unfragmentable part) are those of the first fragment;
//   - outer tunnel IP headers (the fragment is inner) get their lengths and IPv4 checksums fixed;
//     outer UDP/GRE lengths are not (a tunnel is rarely the place where fragments are reassembled);
//   - PacketMeta: that of the fragment that completed the datagram (the last to arrive: its
//     timestamp is when the datagram exists), wire_len = the new size.
//
// Key: IP version, source, destination, identification, and for IPv4 the protocol (RFC 791 3.2;
// RFC 8200 4.5 keys IPv6 on addresses and id only), plus the link context: ingress, VLAN ids,
// MPLS labels and the addresses of every outer (tunnel) IP header, so identical ids on different
// links never mix.
//
// Overlaps: the first data wins (the bytes already held are kept, as Linux before 4.19 and BSD
// do for IPv4). An overlap whose bytes differ is FragOverlapMismatch (counted, reported in
// PushResult::anomaly); a fragment wholly inside held data with the same bytes is a duplicate
// (DefragStats::duplicates) and is discarded. IPv6: RFC 5722 says a datagram with overlapping
// fragments is dropped whole; with DefragLimits::ipv6_drop_overlaps (the default, as Linux) any
// overlap other than an exact duplicate drops it with FragOverlapV6.
//
// Atomic fragments (IPv6 Fragment header, offset 0, M = 0; RFC 6946 4) never meet other
// fragments: they pass through untouched, Fragment header kept (the decoder already reads them
// as whole packets), and are counted in DefragStats::atomic.
//
// Drop reasons (DropCounters in stats()): FragBadLength (empty, or MF with a length not a
// multiple of 8), FragTooLong (past 65535), FragLengthConflict (a "last" fragment that disagrees
// with the end already known, or data past it), FragTooMany, FragTableFull, FragMemoryLimit,
// FragTimeout, FragOverlapMismatch, FragOverlapV6, FragDfSet (IPv4 fragment with DF: counted,
// reassembled anyway), and the decoder's reason for a fragment it could not read whole.
//
// Limits: a datagram that passes fragments-per-datagram or would pass the bytes-held limit is
// dropped; a new datagram beyond datagrams-in-flight is refused (after expiring old ones).
// Time is the caller's (packet time for files): a datagram lives `timeout` from its first
// fragment (Linux ipfrag_time, 30 s); expire() drops older ones, push() also drops an expired
// datagram before adding to it.
//
//   IpDefragmenter defrag(DefragLimits{});
//   std::optional<Packet> whole;
//   auto r = defrag.push(std::move(pkt), view, pkt_ts, &whole);
//   if (r.outcome == DefragOutcome::Passed || r.outcome == DefragOutcome::Reassembled)
//     engine.process(std::move(*whole));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "l45/core/drop_reason.hpp"
#include "l45/core/time.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

struct DefragLimits {
  uint32_t max_fragments = 64;         // per datagram (FreeBSD maxfragsperpacket is 16)
  uint32_t max_datagrams = 1024;       // in flight
  size_t max_bytes = 4 * 1024 * 1024;  // captured bytes held (Linux ipfrag_high_thresh)
  Duration timeout = Duration::seconds(30);
  bool ipv6_drop_overlaps = true;  // RFC 5722
};

enum class DefragOutcome : uint8_t {
  Passed,       // not a fragment (or an atomic one): *out is the packet, untouched
  Held,         // fragment kept, datagram not complete
  Reassembled,  // *out is the whole datagram
  Duplicate,    // fragment adds nothing new: discarded
  Dropped,      // fragment refused, or its datagram discarded: see PushResult::reason
};

struct PushResult {
  DefragOutcome outcome = DefragOutcome::Passed;
  DropReason reason = DropReason::None;   // why Dropped
  DropReason anomaly = DropReason::None;  // FragOverlapMismatch or FragDfSet, kept going
};

struct DefragStats {
  uint64_t fragments = 0;    // fragments pushed (atomic ones included)
  uint64_t reassembled = 0;  // datagrams produced
  uint64_t duplicates = 0;
  uint64_t atomic = 0;
  uint64_t expired = 0;  // datagrams dropped by time (also in drops as FragTimeout)
  size_t datagrams = 0;  // in flight now
  size_t bytes_held = 0;
  DropCounters drops;  // one count per fragment refused or datagram dropped, by reason
};

class IpDefragmenter {
 public:
  explicit IpDefragmenter(const DefragLimits& limits = {});
  ~IpDefragmenter();
  IpDefragmenter(IpDefragmenter&&) noexcept;
  IpDefragmenter& operator=(IpDefragmenter&&) noexcept;

  // `v` is the decode of `pkt` (it may point into pkt's bytes: they stay valid while held).
  // *out is set for Passed and Reassembled, reset otherwise.
  PushResult push(Packet pkt, const PacketView& v, Timestamp now, std::optional<Packet>* out);
  // Drops every datagram older than the timeout at `now`.
  void expire(Timestamp now);
  const DefragStats& stats() const { return stats_; }
  const DefragLimits& limits() const { return limits_; }

 private:
  struct Impl;
  PushResult push_fragment(Packet pkt, const PacketView& v, Timestamp now,
                           std::optional<Packet>* out);

  DefragLimits limits_;
  DefragStats stats_;
  std::unique_ptr<Impl> impl_;
};

// The common case inline: a non-fragment costs one branch and a move.
inline PushResult IpDefragmenter::push(Packet pkt, const PacketView& v, Timestamp now,
                                       std::optional<Packet>* out) {
  if (!v.fragment().is_fragment) [[likely]] {
    out->emplace(std::move(pkt));
    return {};
  }
  return push_fragment(std::move(pkt), v, now, out);
}

}  // namespace l45
