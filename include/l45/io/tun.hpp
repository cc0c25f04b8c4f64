// TUN and TAP devices: a virtual interface whose "wire" is this process. What the kernel
// routes into the device is read here (Source); what is written here the kernel receives as
// if it arrived on the device (Sink).
//
// Schemes `tun` (link type Raw: each packet starts with its IPv4/IPv6 header) and `tap`
// (Ethernet frames), as a source and as a sink:
//   tun:NAME[,persist=0|1][,up=1][,mtu=N][,timeout_ms=N]
//     NAME        the device; created if it does not exist (needs CAP_NET_ADMIN), else
//                 attached to (a persistent device left by `ip tuntap add` or persist=1).
//                 A name with %d ("l45t%d") lets the kernel pick the number: see ifname().
//     persist=1   the device outlives this process; persist=0 clears it (so the device goes
//                 away on close); absent: left as it is
//     up=1        bring the link up (as `ip link set NAME up`)
//     mtu=N       set the MTU
//     timeout_ms  poll interval (default 100): read() returns 0 after this long idle
// Packets are read and written whole, without the 4-byte packet-information header
// (IFF_NO_PI). Metadata of packets read: ts = time of the read, ingress = the device's index,
// direction = Outbound (the host sent them into the device), link = link_type().
// A packet the kernel refuses on write (not IPv4/IPv6 on a TUN, empty, longer than the
// device accepts) is counted in write_stats().rejected, not an error: a wire would drop it.
//
// One open device has one queue: to read from and write to the same device, open it once
// (TunDevice::open) and use that object as both Source and Sink. A second open of a device
// that is in use fails with "in use by another process".
//
//   L45_TRY(auto tun, TunDevice::open({.name = "l45t0", .up = true}));
//   // ip addr add 192.0.2.1/24 dev l45t0; ping 192.0.2.2 -> the echo request is read here
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/io/registry.hpp"
#include "l45/io/source.hpp"

namespace l45 {

struct TunOptions {
  std::string name;  // may hold one %d
  bool tap = false;
  std::optional<bool> persist;  // nullopt: leave as it is
  bool up = false;
  uint32_t mtu = 0;  // 0: leave as it is
  int timeout_ms = 100;

  // From "tun:NAME,..." or "tap:NAME,...": unknown keys and bad values are errors.
  static Result<TunOptions> from_spec(const SourceSpec& spec);
};

struct TunWriteStats {
  uint64_t packets = 0;   // accepted by the kernel
  uint64_t bytes = 0;     // their bytes
  uint64_t rejected = 0;  // refused by the kernel (malformed for the device, or empty)
};

class TunDevice final : public Source, public Sink {
 public:
  static Result<std::unique_ptr<TunDevice>> open(const TunOptions& opts);
  ~TunDevice() override;
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  // Source
  bool at_end() const override { return false; }
  LinkType link_type() const override { return tap_ ? LinkType::Ethernet : LinkType::Raw; }
  // "tun:l45t0" / "tap:l45t0" (also the Sink's name)
  std::string name() const override { return (tap_ ? "tap:" : "tun:") + ifname_; }

  // Sink: each packet is one write(2) of its bytes.
  Result<void> write(const PacketBatch& batch) override;
  Result<void> write(const Packet& p) override;

  // The device's name as the kernel gave it (the %d filled in).
  const std::string& ifname() const { return ifname_; }
  uint32_t ifindex() const { return ifindex_; }
  // Non-blocking; readable when a packet is waiting.
  int fd() const { return fd_; }
  const TunWriteStats& write_stats() const { return wstats_; }

 protected:
  Result<size_t> read_some(PacketBatch& batch) override;

 private:
  TunDevice(int fd, std::string ifname, uint32_t ifindex, bool tap, int timeout_ms);
  Result<size_t> drain(PacketBatch& batch);

  int fd_;
  std::string ifname_;
  uint32_t ifindex_;
  bool tap_;
  int timeout_ms_;
  uint64_t frames_ = 0;
  std::vector<std::byte> buf_;  // one read; sized for the largest packet a device can carry
  TunWriteStats wstats_;
};

}  // namespace l45
