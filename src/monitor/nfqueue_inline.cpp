#include "l45/monitor/nfqueue_inline.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "l45/packet/decode.hpp"

namespace l45 {

NfqueueInline::NfqueueInline(MonitorContext& ctx, std::unique_ptr<NfqueueSource> q)
    : ctx_(ctx), queue_(std::move(q)) {}

NfqueueInline::~NfqueueInline() {
  if (raw4_ >= 0) ::close(raw4_);
  if (raw6_ >= 0) ::close(raw6_);
}

Result<std::unique_ptr<NfqueueInline>> NfqueueInline::open(MonitorContext& ctx,
                                                           const NfqueueOptions& queue) {
  L45_TRY(auto q, NfqueueSource::open(queue));
  return std::unique_ptr<NfqueueInline>(new NfqueueInline(ctx, std::move(q)));
}

Result<size_t> NfqueueInline::run_once() {
  L45_TRY(size_t n, queue_->read(batch_));
  for (Packet& p : batch_) {
    InlineOutcome o = ctx_.process_inline(p);
    ++counters_.packets;
    if (o.verdict == Verdict::Drop) {
      ++counters_.dropped;
      L45_TRY_VOID(queue_->verdict(p, Verdict::Drop));
    } else if (o.packet) {
      ++counters_.modified;
      L45_TRY_VOID(queue_->verdict_modified(p, o.packet->data()));
    } else {
      ++counters_.accepted;
      L45_TRY_VOID(queue_->verdict(p, Verdict::Accept));
    }
  }
  send_all();
  ctx_.advance(SystemClock().now());
  send_all();  // timer handlers may send too
  return n;
}

// IP_HDRINCL sockets (implied by IPPROTO_RAW): the packets go out as they are, routed by the
// destination address.
void NfqueueInline::send_all() {
  for (const Packet& p : ctx_.take_sent()) {
    const PacketView v = PacketView::decode(p);
    const bool v6 = v.ip_version() == 6;
    int& fd = v6 ? raw6_ : raw4_;
    if (fd < 0) fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    sockaddr_storage ss{};
    socklen_t len = 0;
    const IpAddr dst_addr = v.dst_addr();  // bytes() points into it
    const auto dst = dst_addr.bytes();
    if (v6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      std::memcpy(&s6->sin6_addr, dst.data(), 16);
      len = sizeof *s6;
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      std::memcpy(&s4->sin_addr, dst.data(), 4);
      len = sizeof *s4;
    }
    // The IP header first: the packet is link Raw (send() checked it is IP).
    const Bytes b = p.data().subspan(size_t(v.ip_layers().front().header - v.data().data()));
    if (fd >= 0 && ::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
                       ssize_t(b.size()))
      ++counters_.sent;
    else
      ++counters_.send_errors;
  }
}

}  // namespace l45
