// Sources and sinks move batches of packets in and out of l45.
//
// A Source yields packets from a capture file, a live interface, a TUN/TAP device or an
// NFQUEUE. Callers use read(), which applies the source's tcpdump-syntax filter in-process
// when the backend could not push it into the kernel, and counts what it filtered.
// Backends implement read_some().
//
//   L45_TRY(auto src, open_source("file:trace.pcap"));
//   L45_TRY_VOID(src->set_filter("tcp port 80"));
//   PacketBatch batch(64);
//   for (;;) {
//     L45_TRY(size_t n, src->read(batch));
//     if (n == 0 && src->at_end()) break;
//     for (Packet& p : batch) use(p);
//   }
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/drop_reason.hpp"
#include "l45/core/result.hpp"
#include "l45/io/filter.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

struct SourceStats {
  uint64_t packets = 0;         // handed to the caller
  uint64_t bytes = 0;           // captured bytes handed to the caller
  uint64_t filtered = 0;        // removed by the in-process filter
  uint64_t kernel_dropped = 0;  // reported lost by the kernel (live sources)
  DropCounters drops;           // malformed input the source itself skipped or cut
};

class Source {
 public:
  virtual ~Source() = default;

  // Clears `batch` and fills it with up to batch.capacity() packets. Returns how many.
  // 0 with at_end() == true: the source is finished. 0 otherwise: nothing arrived within the
  // source's poll interval (live sources), call again.
  Result<size_t> read(PacketBatch& batch);
  virtual bool at_end() const = 0;
  virtual LinkType link_type() const = 0;
  // A short description for messages: "file:trace.pcap", "iface:eth0".
  virtual std::string name() const = 0;

  // Sets a tcpdump-syntax filter. The default compiles it with libpcap for link_type() and
  // applies it in-process; backends that can filter in the kernel override this.
  virtual Result<void> set_filter(std::string_view expr);

  const SourceStats& stats() const { return stats_; }

 protected:
  // Appends up to batch.capacity() - batch.size() packets; same return rules as read().
  virtual Result<size_t> read_some(PacketBatch& batch) = 0;
  SourceStats stats_;
  BpfFilter filter_;  // for link_type(); empty: match all

 private:
  // A pcapng file may mix link types: the filter is compiled again for each other one seen.
  const BpfFilter& filter_for(LinkType link);
  std::vector<BpfFilter> other_links_;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Writes or sends every packet of the batch, in order. Packets are only read.
  virtual Result<void> write(const PacketBatch& batch) = 0;
  virtual Result<void> write(const Packet& p) = 0;
  virtual Result<void> flush() { return {}; }
  virtual std::string name() const = 0;
};

}  // namespace l45
