#include "l45/io/live.hpp"

// <net/if.h> first: the linux/ headers then skip their own copy of struct ifreq.
#include <net/if.h>

#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>

#include "l45/core/log.hpp"
#include "spec_options.hpp"

namespace l45 {

std::optional<LinkType> link_type_from_dlt(int dlt) {
  // An if-chain, not a switch: DLT_RAW and DLT_LOOP share the value 12 on OpenBSD.
  if (dlt == DLT_EN10MB) return LinkType::Ethernet;
  if (dlt == DLT_RAW || dlt == 12 || dlt == 14 || dlt == 101) return LinkType::Raw;
  if (dlt == DLT_NULL) return LinkType::Null;
  if (dlt == DLT_LOOP) return LinkType::Loop;
  if (dlt == DLT_LINUX_SLL) return LinkType::LinuxSll;
  if (dlt == DLT_LINUX_SLL2) return LinkType::LinuxSll2;
  if (dlt == DLT_IPV4) return LinkType::Ipv4;
  if (dlt == DLT_IPV6) return LinkType::Ipv6;
  return std::nullopt;
}

Result<LiveOptions> LiveOptions::from_spec(const SourceSpec& spec) {
  L45_TRY_VOID(io_detail::check_known_options(
      spec, {"snaplen", "promisc", "buffer_mb", "timeout_ms", "direction"}));
  LiveOptions o;
  o.iface = spec.arg;
  L45_TRY(auto snaplen, io_detail::uint_option(spec, "snaplen", o.snaplen, 64, 262144));
  L45_TRY(o.promisc, io_detail::bool_option(spec, "promisc", o.promisc));
  L45_TRY(auto buffer_mb, io_detail::uint_option(spec, "buffer_mb", o.buffer_mb, 1, 2048));
  L45_TRY(auto timeout_ms, io_detail::uint_option(spec, "timeout_ms", o.timeout_ms, 1, 10000));
  o.snaplen = static_cast<uint32_t>(snaplen);
  o.buffer_mb = static_cast<uint32_t>(buffer_mb);
  o.timeout_ms = static_cast<int>(timeout_ms);
  if (spec.has("direction")) {
    std::string d = spec.option("direction");
    if (d == "in") {
      o.direction = Direction::Inbound;
    } else if (d == "out") {
      o.direction = Direction::Outbound;
    } else if (d != "inout" && d != "both") {
      return Error::invalid(
          fmt::format("iface:{}: option direction={}: expected in, out or both", spec.arg, d));
    }
  }
  return o;
}

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// One line per failure of pcap_activate; `rc` is its return value.
Error activate_error(pcap_t* p, const std::string& name, int rc) {
  std::string detail = pcap_geterr(p);
  switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return Error(ENODEV, fmt::format("{}: no such interface", name));
    case PCAP_ERROR_PERM_DENIED:
      return Error(EPERM, fmt::format("{}: capture needs root or CAP_NET_RAW", name));
    case PCAP_ERROR_PROMISC_PERM_DENIED:
      return Error(EPERM, fmt::format("{}: promiscuous mode not permitted (try promisc=0)", name));
    case PCAP_ERROR_IFACE_NOT_UP:
      return Error(ENETDOWN, fmt::format("{}: interface is down", name));
    default:
      return Error(0, fmt::format("{}: cannot capture: {}{}{}", name, pcap_statustostr(rc),
                                  detail.empty() ? "" : ": ", detail));
  }
}

}  // namespace

struct LiveSource::DispatchCtx {
  LiveSource* self;
  PacketBatch* batch;

  static void on_frame(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    auto* ctx = reinterpret_cast<DispatchCtx*>(user);
    LiveSource& s = *ctx->self;
    PacketMeta m;
    m.ts = s.nano_ ? Timestamp::from_sec_nsec(h->ts.tv_sec, h->ts.tv_usec)
                   : Timestamp::from_sec_usec(h->ts.tv_sec, h->ts.tv_usec);
    m.wire_len = h->len;
    m.ingress = s.ifindex_;
    m.frame = ++s.frames_;
    m.link = s.link_;
    m.direction = s.opts_.direction;
    auto data = as_bytes(bytes, h->caplen);
    // Cooked captures (`any`) say which way each frame went: sll_pkttype, PACKET_OUTGOING
    // for frames this host sent. SLL2 also names the frame's own interface.
    if (m.direction == Direction::Unknown) {
      if (s.link_ == LinkType::LinuxSll && h->caplen >= 16) {
        m.direction =
            load_be16(data.data()) == PACKET_OUTGOING ? Direction::Outbound : Direction::Inbound;
      } else if (s.link_ == LinkType::LinuxSll2 && h->caplen >= 20) {
        m.ingress = load_be32(data.data() + 4);
        m.direction =
            load_u8(data.data() + 10) == PACKET_OUTGOING ? Direction::Outbound : Direction::Inbound;
      }
    }
    ctx->batch->push(Packet::copy_of(data, m));
  }
};

Result<std::unique_ptr<LiveSource>> LiveSource::open(const LiveOptions& opts) {
  std::string name = "iface:" + opts.iface;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_create(opts.iface.c_str(), errbuf);
  if (!p) return Error(0, fmt::format("{}: {}", name, errbuf));
  // Closes `p` on every early return below.
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> guard(p, pcap_close);

  pcap_set_snaplen(p, static_cast<int>(opts.snaplen));
  pcap_set_promisc(p, opts.promisc ? 1 : 0);
  // Immediate mode: each frame is readable as soon as it arrives, not when a ring block
  // fills or times out (TPACKET_V3 would add up to a block timeout of latency).
  pcap_set_immediate_mode(p, 1);
  pcap_set_timeout(p, opts.timeout_ms);
  pcap_set_buffer_size(p, static_cast<int>(opts.buffer_mb) << 20);
  bool nano = pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) == 0;

  int rc = pcap_activate(p);
  if (rc < 0) return activate_error(p, name, rc);
  if (rc > 0) log::warn("{}: {}: {}", name, pcap_statustostr(rc), pcap_geterr(p));

  int dlt = pcap_datalink(p);
  auto link = link_type_from_dlt(dlt);
  if (!link) {
    const char* dn = pcap_datalink_val_to_name(dlt);
    return Error(EPROTONOSUPPORT, fmt::format("{}: unsupported link type DLT {} ({})", name, dlt,
                                              dn ? dn : "unknown"));
  }
  if (opts.direction != Direction::Unknown &&
      pcap_setdirection(p, opts.direction == Direction::Inbound ? PCAP_D_IN : PCAP_D_OUT) != 0)
    return Error(0, fmt::format("{}: cannot select a direction: {}", name, pcap_geterr(p)));
  // Non-blocking: read_some() waits in its own poll() so it can never block past the timeout.
  if (pcap_setnonblock(p, 1, errbuf) != 0)
    return Error(0, fmt::format("{}: cannot make the capture non-blocking: {}", name, errbuf));
  if (nano) nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;

  uint32_t ifindex = if_nametoindex(opts.iface.c_str());  // 0 for `any`
  std::unique_ptr<LiveSource> s(new LiveSource(guard.release(), opts, *link, ifindex));
  s->nano_ = nano;
  return s;
}

LiveSource::LiveSource(::pcap* p, LiveOptions opts, LinkType link, uint32_t ifindex)
    : pcap_(p), opts_(std::move(opts)), link_(link), ifindex_(ifindex) {}

LiveSource::~LiveSource() {
  pcap_close(pcap_);
}

int LiveSource::selectable_fd() const {
  return pcap_get_selectable_fd(pcap_);
}

Result<void> LiveSource::set_filter(std::string_view expr) {
  std::string e(expr);
  bpf_program prog{};
  if (pcap_compile(pcap_, &prog, e.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    return Error::invalid(fmt::format("bad filter '{}': {}", expr, pcap_geterr(pcap_)));
  // libpcap attaches the program to the socket (SO_ATTACH_FILTER) and discards frames
  // already in the ring that it would have rejected, so none slip through the change.
  int rc = pcap_setfilter(pcap_, &prog);
  pcap_freecode(&prog);
  if (rc != 0)
    return Error(0,
                 fmt::format("{}: cannot set filter '{}': {}", name(), expr, pcap_geterr(pcap_)));
  filter_ = BpfFilter();  // the kernel filters; Source::read() must not filter again
  return {};
}

Result<int> LiveSource::dispatch(PacketBatch& batch) {
  DispatchCtx ctx{this, &batch};
  int room = static_cast<int>(batch.capacity() - batch.size());
  int n = pcap_dispatch(pcap_, room, &DispatchCtx::on_frame, reinterpret_cast<u_char*>(&ctx));
  if (n == PCAP_ERROR_BREAK) return 0;
  if (n < 0) return Error(0, fmt::format("{}: capture failed: {}", name(), pcap_geterr(pcap_)));
  return n;
}

Result<size_t> LiveSource::read_some(PacketBatch& batch) {
  size_t before = batch.size();
  if (batch.size() >= batch.capacity()) return 0;
  // Take what the ring already holds; wait only when it is empty.
  L45_TRY(int n, dispatch(batch));
  if (n == 0) {
    pollfd pfd{pcap_get_selectable_fd(pcap_), POLLIN, 0};
    int pr = ::poll(&pfd, 1, opts_.timeout_ms);
    if (pr < 0 && errno != EINTR) return Error::from_errno(fmt::format("{}: poll", name()));
    if (pr > 0) {
      L45_TRY(int m, dispatch(batch));
      n = m;
    }
  }
  int64_t now = monotonic_ns();
  if (n == 0 || now - stats_at_ns_ >= 1000000000) {
    stats_at_ns_ = now;
    refresh_stats();
  }
  return batch.size() - before;
}

void LiveSource::refresh_stats() {
  pcap_stat ps{};
  // ps_drop: frames the kernel ring had no room for. ps_ifdrop (the NIC's own drops) is not
  // ours to report as capture loss.
  if (pcap_stats(pcap_, &ps) == 0) stats_.kernel_dropped = ps.ps_drop;
}

// ---- injection ----------------------------------------------------------------------------

Result<std::unique_ptr<LiveInjector>> LiveInjector::open(std::string_view iface_sv) {
  std::string iface(iface_sv);
  std::string name = "iface:" + iface;
  if (iface.empty() || iface.size() >= IFNAMSIZ)
    return Error(ENODEV, fmt::format("{}: no such interface", name));
  // Protocol 0: this socket only sends; it never gets a copy of the interface's traffic.
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EPERM || errno == EACCES)
      return Error(errno, fmt::format("{}: injection needs root or CAP_NET_RAW", name));
    return Error::from_errno(fmt::format("{}: socket(AF_PACKET)", name));
  }
  auto fail = [&](Error e) {
    ::close(fd);
    return e;
  };
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, iface.data(), iface.size());
  if (::ioctl(fd, SIOCGIFINDEX, &ifr) != 0) {
    if (errno == ENODEV) return fail(Error(ENODEV, fmt::format("{}: no such interface", name)));
    return fail(Error::from_errno(fmt::format("{}: SIOCGIFINDEX", name)));
  }
  uint32_t ifindex = static_cast<uint32_t>(ifr.ifr_ifindex);
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
    return fail(Error::from_errno(fmt::format("{}: SIOCGIFHWADDR", name)));
  LinkType link;
  switch (ifr.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:  // lo carries Ethernet headers
      link = LinkType::Ethernet;
      break;
    case ARPHRD_NONE:  // TUN
    case ARPHRD_RAWIP:
    case ARPHRD_TUNNEL:
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:
    case ARPHRD_PPP:
      link = LinkType::Raw;
      break;
    default:
      return fail(
          Error(EPROTONOSUPPORT, fmt::format("{}: unsupported link type (ARPHRD {}) for injection",
                                             name, ifr.ifr_hwaddr.sa_family)));
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(ifindex);
  sll.sll_protocol = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
    return fail(Error::from_errno(fmt::format("{}: bind(AF_PACKET)", name)));
  return std::unique_ptr<LiveInjector>(new LiveInjector(fd, iface, ifindex, link));
}

LiveInjector::~LiveInjector() {
  ::close(fd_);
}

Result<void> LiveInjector::write(const Packet& p) {
  Bytes d = p.data();
  if (d.empty()) {
    ++stats_.empty;
    return {};
  }
  // The kernel hands the frame to the stack's taps and the device by skb->protocol, which
  // comes from sll_protocol: the EtherType, or the IP version for raw-IP devices.
  uint16_t proto = 0;
  if (link_ == LinkType::Ethernet) {
    if (d.size() >= 14) proto = load_be16(d.data() + 12);
  } else {
    proto = (load_u8(d.data()) >> 4) == 6 ? ETH_P_IPV6 : ETH_P_IP;
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(ifindex_);
  sll.sll_protocol = htons(proto);
  for (;;) {
    ssize_t n = ::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == ENOBUFS || errno == EAGAIN) {
      ++stats_.dropped;
      return {};
    }
    if (errno == EMSGSIZE) {
      ++stats_.oversize;
      return {};
    }
    if (errno == ENETDOWN || errno == ENXIO)
      return Error(errno, fmt::format("{}: interface is down", name()));
    return Error::from_errno(fmt::format("{}: send", name()));
  }
  ++stats_.packets;
  stats_.bytes += d.size();
  return {};
}

Result<void> LiveInjector::write(const PacketBatch& batch) {
  for (const Packet& p : batch)
    L45_TRY_VOID(write(p));
  return {};
}

namespace {

Result<std::unique_ptr<Source>> open_live_source(const SourceSpec& spec) {
  L45_TRY(auto opts, LiveOptions::from_spec(spec));
  L45_TRY(auto s, LiveSource::open(opts));
  return std::unique_ptr<Source>(std::move(s));
}

Result<std::unique_ptr<Sink>> open_live_sink(const SourceSpec& spec) {
  L45_TRY_VOID(io_detail::check_known_options(spec, {}));
  L45_TRY(auto s, LiveInjector::open(spec.arg));
  return std::unique_ptr<Sink>(std::move(s));
}

}  // namespace

}  // namespace l45

L45_REGISTER_SOURCE("iface", "live capture on a network interface (libpcap)",
                    l45::open_live_source);
L45_REGISTER_SINK("iface", "send frames on a network interface (AF_PACKET)", l45::open_live_sink);
