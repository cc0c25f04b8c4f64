#include "l45/io/tun.hpp"

// <net/if.h> first: <linux/if_tun.h> then skips its own copy of struct ifreq.
#include <net/if.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>

#include "l45/core/time.hpp"
#include "spec_options.hpp"

namespace l45 {

namespace {

// The largest packet a TUN/TAP device can hand us: an MTU of 65535 plus an Ethernet header
// with two VLAN tags. A read with a smaller buffer would cut the packet silently.
constexpr size_t kMaxFrame = 65535 + 14 + 8;

// Closes the descriptors on every early return of open().
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

Error tunsetiff_error(int err, const std::string& name, bool tap) {
  const char* kind = tap ? "TAP" : "TUN";
  switch (err) {
    case EPERM:
    case EACCES:
      return Error(err, fmt::format("{}: creating or attaching a {} device needs root or "
                                    "CAP_NET_ADMIN",
                                    name, kind));
    case EBUSY:
      return Error(err, fmt::format("{}: device is in use by another process", name));
    case EINVAL:
      return Error(err, fmt::format("{}: an interface with this name exists and is not a {} "
                                    "device",
                                    name, kind));
    default:
      return Error(err, fmt::format("{}: cannot create or attach the {} device", name, kind));
  }
}

}  // namespace

Result<TunOptions> TunOptions::from_spec(const SourceSpec& spec) {
  L45_TRY_VOID(io_detail::check_known_options(spec, {"persist", "up", "mtu", "timeout_ms"}));
  TunOptions o;
  o.name = spec.arg;
  o.tap = spec.scheme == "tap";
  if (spec.has("persist")) {
    L45_TRY(bool p, io_detail::bool_option(spec, "persist", false));
    o.persist = p;
  }
  L45_TRY(o.up, io_detail::bool_option(spec, "up", false));
  L45_TRY(auto mtu, io_detail::uint_option(spec, "mtu", 0, 68, 65535));
  L45_TRY(auto timeout_ms, io_detail::uint_option(spec, "timeout_ms", o.timeout_ms, 1, 10000));
  o.mtu = static_cast<uint32_t>(mtu);
  o.timeout_ms = static_cast<int>(timeout_ms);
  return o;
}

Result<std::unique_ptr<TunDevice>> TunDevice::open(const TunOptions& opts) {
  std::string name = (opts.tap ? "tap:" : "tun:") + opts.name;
  if (opts.name.size() >= IFNAMSIZ)
    return Error::invalid(
        fmt::format("{}: interface names are at most {} characters", name, IFNAMSIZ - 1));
  FdGuard fd{::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)};
  if (fd.fd < 0) {
    if (errno == ENOENT || errno == ENODEV)
      return Error(errno,
                   fmt::format("{}: /dev/net/tun is missing (is the tun module loaded?)", name));
    if (errno == EACCES || errno == EPERM) return tunsetiff_error(errno, name, opts.tap);
    return Error::from_errno(fmt::format("{}: open /dev/net/tun", name));
  }

  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>((opts.tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI);
  std::memcpy(ifr.ifr_name, opts.name.data(), opts.name.size());
  if (::ioctl(fd.fd, TUNSETIFF, &ifr) != 0) return tunsetiff_error(errno, name, opts.tap);
  std::string ifname(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  name = (opts.tap ? "tap:" : "tun:") + ifname;

  // Link settings go through a socket of the same network namespace as the device: both were
  // opened by this thread.
  FdGuard sock{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return Error::from_errno(fmt::format("{}: socket", name));
  ifreq q{};
  std::memcpy(q.ifr_name, ifname.data(), ifname.size());
  if (::ioctl(sock.fd, SIOCGIFINDEX, &q) != 0)
    return Error::from_errno(fmt::format("{}: SIOCGIFINDEX", name));
  auto ifindex = static_cast<uint32_t>(q.ifr_ifindex);
  if (opts.mtu != 0) {
    q.ifr_mtu = static_cast<int>(opts.mtu);
    if (::ioctl(sock.fd, SIOCSIFMTU, &q) != 0)
      return Error::from_errno(fmt::format("{}: cannot set mtu {}", name, opts.mtu));
  }
  if (opts.up) {
    if (::ioctl(sock.fd, SIOCGIFFLAGS, &q) != 0)
      return Error::from_errno(fmt::format("{}: SIOCGIFFLAGS", name));
    q.ifr_flags = static_cast<short>(q.ifr_flags | IFF_UP);
    if (::ioctl(sock.fd, SIOCSIFFLAGS, &q) != 0)
      return Error::from_errno(fmt::format("{}: cannot bring the link up", name));
  }
  // Last, so a device created by a call that failed above does not stay behind.
  if (opts.persist && ::ioctl(fd.fd, TUNSETPERSIST, *opts.persist ? 1 : 0) != 0)
    return Error::from_errno(fmt::format("{}: TUNSETPERSIST", name));
  return std::unique_ptr<TunDevice>(
      new TunDevice(fd.release(), ifname, ifindex, opts.tap, opts.timeout_ms));
}

TunDevice::TunDevice(int fd, std::string ifname, uint32_t ifindex, bool tap, int timeout_ms)
    : fd_(fd),
      ifname_(std::move(ifname)),
      ifindex_(ifindex),
      tap_(tap),
      timeout_ms_(timeout_ms),
      buf_(kMaxFrame) {}

TunDevice::~TunDevice() {
  ::close(fd_);
}

Result<size_t> TunDevice::drain(PacketBatch& batch) {
  size_t got = 0;
  while (batch.size() < batch.capacity()) {
    ssize_t n = ::read(fd_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (errno == EBADFD) return Error(errno, fmt::format("{}: the device was deleted", name()));
      return Error::from_errno(fmt::format("{}: read", name()));
    }
    PacketMeta m;
    m.ts = SystemClock().now();
    m.wire_len = static_cast<uint32_t>(n);
    m.ingress = ifindex_;
    m.frame = ++frames_;
    m.link = link_type();
    m.direction = Direction::Outbound;
    batch.push(Packet::copy_of(Bytes(buf_.data(), static_cast<size_t>(n)), m));
    ++got;
  }
  return got;
}

Result<size_t> TunDevice::read_some(PacketBatch& batch) {
  L45_TRY(size_t n, drain(batch));
  if (n > 0) return n;
  pollfd pfd{fd_, POLLIN, 0};
  int pr = ::poll(&pfd, 1, timeout_ms_);
  if (pr < 0 && errno != EINTR) return Error::from_errno(fmt::format("{}: poll", name()));
  if (pr <= 0) return 0;
  return drain(batch);
}

Result<void> TunDevice::write(const Packet& p) {
  Bytes d = p.data();
  if (d.empty()) {
    ++wstats_.rejected;
    return {};
  }
  for (;;) {
    ssize_t n = ::write(fd_, d.data(), d.size());
    if (n >= 0) break;
    if (errno == EINTR) continue;
    // EINVAL: not an IP packet on a TUN, or too short/long for the device: the packet's
    // fault, not the environment's.
    if (errno == EINVAL || errno == EMSGSIZE || errno == EFAULT) {
      ++wstats_.rejected;
      return {};
    }
    if (errno == EBADFD) return Error(errno, fmt::format("{}: the device was deleted", name()));
    return Error::from_errno(fmt::format("{}: write", name()));
  }
  ++wstats_.packets;
  wstats_.bytes += d.size();
  return {};
}

Result<void> TunDevice::write(const PacketBatch& batch) {
  for (const Packet& p : batch)
    L45_TRY_VOID(write(p));
  return {};
}

namespace {

Result<std::unique_ptr<TunDevice>> open_tun(const SourceSpec& spec) {
  L45_TRY(auto opts, TunOptions::from_spec(spec));
  return TunDevice::open(opts);
}

Result<std::unique_ptr<Source>> open_tun_source(const SourceSpec& spec) {
  L45_TRY(auto d, open_tun(spec));
  return std::unique_ptr<Source>(std::move(d));
}

Result<std::unique_ptr<Sink>> open_tun_sink(const SourceSpec& spec) {
  L45_TRY(auto d, open_tun(spec));
  return std::unique_ptr<Sink>(std::move(d));
}

}  // namespace

}  // namespace l45

L45_REGISTER_SOURCE("tun", "packets routed into a TUN device (raw IP)", l45::open_tun_source);
L45_REGISTER_SOURCE("tap", "frames sent into a TAP device (Ethernet)", l45::open_tun_source);
L45_REGISTER_SINK("tun", "write packets into the kernel through a TUN device", l45::open_tun_sink);
L45_REGISTER_SINK("tap", "write frames into the kernel through a TAP device", l45::open_tun_sink);
