// Live capture and injection on a network interface, with libpcap (capture) and an AF_PACKET
// socket (injection).
//
// LiveSource, scheme `iface`: captures every frame the interface sends or receives.
//   iface:NAME[,snaplen=N][,promisc=0|1][,buffer_mb=N][,timeout_ms=N][,direction=in|out]
//     snaplen     bytes kept of each frame (default 262144)
//     promisc     promiscuous mode (default 1, as tcpdump)
//     buffer_mb   kernel ring size in MiB (default 4); too small shows as kernel_dropped
//     timeout_ms  poll interval (default 100): read() returns 0 after this long idle, so a
//                 caller's loop can check for shutdown; it never blocks for longer
//     direction   capture only frames received (in) or sent (out) by this host
//   NAME `any` captures on all interfaces (link type LINUX_SLL).
//   set_filter() compiles the filter with libpcap and runs it in the kernel, so frames it
//   rejects are never copied to user space (stats().filtered stays 0 for them).
//   Metadata: ts (ns), wire_len, link (from pcap_datalink), ingress = the interface's index
//   (for `any`: 0, or the frame's own interface with LINUX_SLL2),
//   direction = Inbound/Outbound when `direction=` is set or the link type carries it
//   (LINUX_SLL, LINUX_SLL2), else Unknown. stats().kernel_dropped = pcap_stats ps_drop (frames
//   the ring had no room for), refreshed when idle and at least once a second.
//
// LiveInjector, sink scheme `iface`: sends each packet unchanged as one frame on the
//   interface. Frames must start with the device's link header (Ethernet on Ethernet-like
//   devices, the IP header on TUN/IP tunnels: see link_type()). A full transmit queue
//   (ENOBUFS) and frames longer than the MTU are counted in stats(), not errors: the wire
//   would have dropped them too.
//
// Errors, one line each: no such interface; capture/injection needs root or CAP_NET_RAW;
// interface is down; unsupported link type.
//
//   L45_TRY(auto src, LiveSource::open({.iface = "eth0", .promisc = false}));
//   L45_TRY_VOID(src->set_filter("tcp port 80"));
//   L45_TRY(auto out, open_sink("iface:veth1"));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "l45/core/result.hpp"
#include "l45/io/registry.hpp"
#include "l45/io/source.hpp"
#include "l45/packet/link_type.hpp"
#include "l45/packet/packet.hpp"

struct pcap;  // libpcap's pcap_t, kept out of this header

namespace l45 {

// Maps a libpcap DLT_* value to the LINKTYPE_* l45 decodes; nullopt for the others.
// DLT_RAW (12 on most systems, 14 on some BSDs) and LINKTYPE_RAW (101) are all Raw.
std::optional<LinkType> link_type_from_dlt(int dlt);

struct LiveOptions {
  std::string iface;
  uint32_t snaplen = 262144;
  bool promisc = true;
  uint32_t buffer_mb = 4;
  int timeout_ms = 100;
  Direction direction = Direction::Unknown;  // Unknown: both directions

  // From "iface:NAME,key=value,...": unknown keys and bad values are errors.
  static Result<LiveOptions> from_spec(const SourceSpec& spec);
};

class LiveSource final : public Source {
 public:
  static Result<std::unique_ptr<LiveSource>> open(const LiveOptions& opts);
  ~LiveSource() override;
  LiveSource(const LiveSource&) = delete;
  LiveSource& operator=(const LiveSource&) = delete;

  bool at_end() const override { return false; }
  LinkType link_type() const override { return link_; }
  std::string name() const override { return "iface:" + opts_.iface; }
  // Compiles `expr` for this interface and installs it in the kernel; "" removes it.
  Result<void> set_filter(std::string_view expr) override;

  uint32_t ifindex() const { return ifindex_; }
  // Readable when frames are waiting; for callers that poll several sources themselves.
  int selectable_fd() const;

 protected:
  Result<size_t> read_some(PacketBatch& batch) override;

 private:
  struct DispatchCtx;  // the pcap_dispatch callback; nested for access to the members
  LiveSource(::pcap* p, LiveOptions opts, LinkType link, uint32_t ifindex);
  Result<int> dispatch(PacketBatch& batch);
  void refresh_stats();

  ::pcap* pcap_;
  LiveOptions opts_;
  LinkType link_;
  uint32_t ifindex_;
  bool nano_ = false;        // timestamps in ns (else us)
  uint64_t frames_ = 0;      // ordinal for meta.frame
  int64_t stats_at_ns_ = 0;  // CLOCK_MONOTONIC of the last pcap_stats
};

struct InjectStats {
  uint64_t packets = 0;   // frames handed to the interface
  uint64_t bytes = 0;     // their bytes
  uint64_t dropped = 0;   // refused because the transmit queue was full (ENOBUFS)
  uint64_t oversize = 0;  // refused because longer than the MTU (EMSGSIZE)
  uint64_t empty = 0;     // zero-length packets, not sent
};

class LiveInjector final : public Sink {
 public:
  static Result<std::unique_ptr<LiveInjector>> open(std::string_view iface);
  ~LiveInjector() override;
  LiveInjector(const LiveInjector&) = delete;
  LiveInjector& operator=(const LiveInjector&) = delete;

  Result<void> write(const PacketBatch& batch) override;
  Result<void> write(const Packet& p) override;
  std::string name() const override { return "iface:" + iface_; }

  // What frames on this interface start with: Ethernet, or Raw (an IP header).
  LinkType link_type() const { return link_; }
  uint32_t ifindex() const { return ifindex_; }
  const InjectStats& stats() const { return stats_; }

 private:
  LiveInjector(int fd, std::string iface, uint32_t ifindex, LinkType link)
      : fd_(fd), iface_(std::move(iface)), ifindex_(ifindex), link_(link) {}

  int fd_;
  std::string iface_;
  uint32_t ifindex_;
  LinkType link_;
  InjectStats stats_;
};

}  // namespace l45
