// The one table of reasons why l45 refused, dropped or could not fully parse something that
// came from outside (packets, files, peers, config). Each reason has a stable number (never
// reused or renumbered: scripts and logs depend on it), a name and a one-line description.
// Every occurrence is counted (DropCounters) so the user can see it.
//
// Add a reason: append one X(...) line with a number from your layer's block: 1-59 packet,
// io and core; 60-69 IP defragmentation; 70-79 TCP streams; 80-89 flow table; 90-99 TCP
// connection state; 100 on: the next unit's block.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

// One reason per line, aligned: the table people read.
// clang-format off
#define L45_DROP_REASONS(X)                                                                  \
  X(None, 0, "none", "no error")                                                            \
  X(Truncated, 1, "truncated", "packet shorter than the header it claims")                 \
  X(SnapCut, 2, "snap_cut", "capture cut the packet before the end of its headers")        \
  X(EthTruncated, 3, "eth_truncated", "Ethernet header truncated")                         \
  X(VlanTruncated, 4, "vlan_truncated", "802.1Q/802.1ad tag truncated")                    \
  X(VlanTooDeep, 5, "vlan_too_deep", "more VLAN tags than l45 walks")                      \
  X(MplsTruncated, 6, "mpls_truncated", "MPLS label stack truncated")                      \
  X(MplsTooDeep, 7, "mpls_too_deep", "MPLS label stack deeper than l45 walks")             \
  X(PppoeTruncated, 8, "pppoe_truncated", "PPPoE session header truncated")                \
  X(PppoeBadLength, 9, "pppoe_bad_length", "PPPoE length beyond the frame")                \
  X(SllTruncated, 10, "sll_truncated", "Linux cooked header truncated")                    \
  X(ArpTruncated, 11, "arp_truncated", "ARP packet truncated")                             \
  X(Ipv4Truncated, 12, "ipv4_truncated", "IPv4 header truncated")                          \
  X(Ipv4BadVersion, 13, "ipv4_bad_version", "IP version field is not 4")                   \
  X(Ipv4BadIhl, 14, "ipv4_bad_ihl", "IPv4 IHL below 5 or past the packet")                 \
  X(Ipv4BadTotalLength, 15, "ipv4_bad_total_length", "IPv4 total length below the header")  \
  X(Ipv4BadOptions, 16, "ipv4_bad_options", "malformed IPv4 option")                       \
  X(Ipv6Truncated, 17, "ipv6_truncated", "IPv6 header truncated")                          \
  X(Ipv6BadVersion, 18, "ipv6_bad_version", "IP version field is not 6")                   \
  X(Ipv6ExtTruncated, 19, "ipv6_ext_truncated", "IPv6 extension header truncated")         \
  X(Ipv6ExtTooMany, 20, "ipv6_ext_too_many", "IPv6 extension-header chain too long")       \
  X(Ipv6BadPayloadLength, 21, "ipv6_bad_payload_length", "IPv6 payload length past the packet") \
  X(TcpTruncated, 22, "tcp_truncated", "TCP header truncated")                             \
  X(TcpBadDataOffset, 23, "tcp_bad_data_offset", "TCP data offset below 5 or past the segment") \
  X(TcpBadOption, 24, "tcp_bad_option", "malformed TCP option")                            \
  X(UdpTruncated, 25, "udp_truncated", "UDP header truncated")                             \
  X(UdpBadLength, 26, "udp_bad_length", "UDP length below 8 or past the datagram")         \
  X(IcmpTruncated, 27, "icmp_truncated", "ICMP header truncated")                          \
  X(Icmpv6Truncated, 28, "icmpv6_truncated", "ICMPv6 header truncated")                    \
  X(GreTruncated, 29, "gre_truncated", "GRE header truncated")                             \
  X(GreUnsupported, 30, "gre_unsupported", "GRE version or flags not supported")           \
  X(VxlanTruncated, 31, "vxlan_truncated", "VXLAN header truncated")                       \
  X(TunnelTooDeep, 32, "tunnel_too_deep", "more nested tunnels than l45 walks")            \
  X(UnknownLinkType, 33, "unknown_link_type", "link type l45 does not decode")             \
  X(UnknownEtherType, 34, "unknown_ethertype", "EtherType l45 does not decode")            \
  X(BadChecksum, 35, "bad_checksum", "checksum verification failed")                       \
  X(Fragment, 36, "fragment", "non-first IP fragment: no transport header")                \
  X(PcapCorrupt, 37, "pcap_corrupt", "capture file record is corrupt")                     \
  X(PcapTruncated, 38, "pcap_truncated", "capture file ends inside a record")              \
  X(FilterRejected, 39, "filter_rejected", "packet did not match the filter")              \
  X(QueueFull, 40, "queue_full", "a queue or buffer was full")                             \
  X(HeadersTooMany, 41, "headers_too_many", "more headers than one decode records (or past 64K)") \
  X(FragOverlapMismatch, 60, "frag_overlap_mismatch", "overlapping IP fragment with different bytes") \
  X(FragOverlapV6, 61, "frag_overlap_v6", "overlapping IPv6 fragment: datagram dropped (RFC 5722)") \
  X(FragTooMany, 62, "frag_too_many", "more fragments in one datagram than the limit")   \
  X(FragTableFull, 63, "frag_table_full", "too many datagrams in reassembly")            \
  X(FragMemoryLimit, 64, "frag_memory_limit", "fragment bytes held reached the limit")   \
  X(FragTimeout, 65, "frag_timeout", "datagram not complete within its time to live")   \
  X(FragBadLength, 66, "frag_bad_length", "fragment empty, or not a multiple of 8 with MF") \
  X(FragTooLong, 67, "frag_too_long", "fragment ends past the 65535-byte datagram limit") \
  X(FragLengthConflict, 68, "frag_length_conflict", "fragments disagree on the datagram end") \
  X(FragDfSet, 69, "frag_df_set", "IPv4 fragment with Don't Fragment set") \
  X(StreamOooLimit, 70, "stream_ooo_limit", "out-of-order TCP data refused: stream buffer full") \
  X(StreamBudget, 71, "stream_budget", "out-of-order TCP data refused: shared budget spent")   \
  X(StreamRexmitMismatch, 72, "stream_rexmit_mismatch", "TCP bytes resent with other content") \
  X(StreamRexmitUnverifiable, 73, "stream_rexmit_unverifiable",                              \
    "TCP retransmission older than the kept history")                                       \
  X(StreamDepth, 74, "stream_depth", "TCP data past the stream's depth limit")              \
  X(StreamOutOfWindow, 75, "stream_out_of_window", "TCP segment implausibly far from the stream") \
  X(StreamAfterReset, 76, "stream_after_reset", "TCP data after an accepted RST (delivered unless deliver_after_reset is off)") \
  X(FlowTableFull, 80, "flow_table_full", "new flow refused: flow table at max_flows")      \
  X(FlowEvicted, 81, "flow_evicted", "flow closed early to make room for a new one")        \
  X(FlowIdleTimeout, 82, "flow_idle_timeout", "flow closed after its idle timeout")         \
  X(FlowNoKey, 83, "flow_no_key", "packet with no flow key: no IP header, or a non-first fragment") \
  X(TcpRstOutOfWindow, 90, "tcp_rst_out_of_window", "TCP RST outside the receiver's window: ignored (RFC 5961 3.2)") \
  X(TcpFinOutOfWindow, 91, "tcp_fin_out_of_window", "TCP FIN outside the receiver's window: ignored") \
  X(TcpPawsReject, 92, "tcp_paws_reject", "TCP RST/FIN with a stale timestamp (RFC 7323 5): ignored") \
  X(TcpWscaleRange, 93, "tcp_wscale_range", "TCP window scale shift above 14, clamped (RFC 7323 2.3)") \
  X(TcpBadFlags, 94, "tcp_bad_flags", "TCP SYN with FIN or RST: not acted on") \
  X(IcmpErrorNoFlow, 100, "icmp_error_no_flow", "ICMP error quoting a flow that is not tracked")
// clang-format on

namespace l45 {

enum class DropReason : uint16_t {
#define L45_DR_ENUM(id, num, name, desc) id = num,
  L45_DROP_REASONS(L45_DR_ENUM)
#undef L45_DR_ENUM
};

inline constexpr size_t kDropReasonCount = [] {
  size_t n = 0;
#define L45_DR_COUNT(id, num, name, desc) n = (num) + 1 > n ? (num) + 1 : n;
  L45_DROP_REASONS(L45_DR_COUNT)
#undef L45_DR_COUNT
  return n;
}();

std::string_view drop_reason_name(DropReason r);
std::string_view drop_reason_description(DropReason r);
std::optional<DropReason> drop_reason_from_name(std::string_view name);

// One counter per reason; cheap to embed in a source, an engine or a worker.
class DropCounters {
 public:
  void add(DropReason r, uint64_t n = 1) { counts_[static_cast<size_t>(r)] += n; }
  uint64_t get(DropReason r) const { return counts_[static_cast<size_t>(r)]; }
  uint64_t total() const;  // all but None
  void merge(const DropCounters& o);
  // Calls f(reason, count) for each non-zero reason except None.
  template <typename F>
  void for_each_nonzero(F&& f) const {
    for (size_t i = 1; i < counts_.size(); ++i)
      if (counts_[i]) f(static_cast<DropReason>(i), counts_[i]);
  }

 private:
  std::array<uint64_t, kDropReasonCount> counts_{};
};

}  // namespace l45
