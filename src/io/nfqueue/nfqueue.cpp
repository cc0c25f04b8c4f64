#include "l45/io/nfqueue.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// After libmnl: the library's header uses its types. It brings its own copy of the kernel's
// nfnetlink_queue definitions, so <linux/netfilter/nfnetlink_queue.h> must not be included.
#include <libnetfilter_queue/libnetfilter_queue.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

#include "l45/core/time.hpp"
#include "spec_options.hpp"

namespace l45 {

namespace {

// A netlink attribute's length is 16 bits, header included.
constexpr size_t kMaxVerdictPayload = 65535 - MNL_ATTR_HDRLEN;
// Verdict messages are sent in chunks of at most this much (well below the socket's send
// buffer, which bounds one sendmsg on netlink).
constexpr size_t kSendChunk = 32 * 1024;
// One received message: the largest copy (65535) plus the attributes around it.
constexpr size_t kRecvBuffer = 65536 + 8192;

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int nf_verdict(Verdict v) {
  return v == Verdict::Drop ? NF_DROP : NF_ACCEPT;
}

// Wrap-aware "a comes after b" for packet ids, as the kernel's nfq_id_after().
bool id_after(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) > 0;
}

}  // namespace

Result<NfqueueOptions> NfqueueOptions::from_spec(const SourceSpec& spec) {
  L45_TRY_VOID(io_detail::check_known_options(
      spec, {"fail_open", "copy", "max_len", "batch", "gso", "buffer_mb", "timeout_ms"}));
  NfqueueOptions o;
  SourceSpec q = spec;
  q.options = {{"queue", spec.arg}};
  L45_TRY(auto queue, io_detail::uint_option(q, "queue", 0, 0, 65535));
  o.queue = static_cast<uint16_t>(queue);
  L45_TRY(o.fail_open, io_detail::bool_option(spec, "fail_open", o.fail_open));
  L45_TRY(auto copy, io_detail::uint_option(spec, "copy", o.copy, 1, 65535));
  L45_TRY(auto max_len, io_detail::uint_option(spec, "max_len", o.max_len, 0, 1u << 24));
  L45_TRY(o.batch, io_detail::bool_option(spec, "batch", o.batch));
  L45_TRY(o.gso, io_detail::bool_option(spec, "gso", o.gso));
  L45_TRY(auto buffer_mb, io_detail::uint_option(spec, "buffer_mb", o.buffer_mb, 0, 2048));
  L45_TRY(auto timeout_ms, io_detail::uint_option(spec, "timeout_ms", o.timeout_ms, 1, 10000));
  o.copy = static_cast<uint32_t>(copy);
  o.max_len = static_cast<uint32_t>(max_len);
  o.buffer_mb = static_cast<uint32_t>(buffer_mb);
  o.timeout_ms = static_cast<int>(timeout_ms);
  return o;
}

Result<std::unique_ptr<NfqueueSource>> NfqueueSource::open(const NfqueueOptions& opts) {
  std::string name = "nfqueue:" + std::to_string(opts.queue);
  mnl_socket* nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (!nl) {
    if (errno == EPROTONOSUPPORT)
      return Error(errno,
                   fmt::format("{}: the kernel has no nfnetlink (CONFIG_NETFILTER_NETLINK)", name));
    return Error::from_errno(fmt::format("{}: netlink socket", name));
  }
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    Error e = Error::from_errno(fmt::format("{}: netlink bind", name));
    mnl_socket_close(nl);
    return e;
  }
  std::unique_ptr<NfqueueSource> s(new NfqueueSource(nl, opts));
  L45_TRY_VOID(s->configure());
  return s;
}

NfqueueSource::NfqueueSource(mnl_socket* nl, NfqueueOptions opts)
    : nl_(nl), opts_(opts), rbuf_(kRecvBuffer) {
  portid_ = mnl_socket_get_portid(nl_);
  seq_ = static_cast<uint32_t>(time(nullptr));
  // Opened now, from the thread (and so the network namespace) that owns the queue; read
  // later from any thread, it still describes this namespace.
  proc_fd_ = ::open("/proc/thread-self/net/netfilter/nfnetlink_queue", O_RDONLY | O_CLOEXEC);
}

NfqueueSource::~NfqueueSource() {
  // Closing the socket makes the kernel drop every packet still waiting. Fail-open means
  // l45 going away must not cut traffic: accept them first.
  if (opts_.fail_open && seen_any_) {
    out_.clear();
    if (add_verdict(NFQNL_MSG_VERDICT_BATCH, last_id_, NF_ACCEPT, std::nullopt).ok())
      (void)send_pending();
  }
  if (proc_fd_ >= 0) ::close(proc_fd_);
  mnl_socket_close(nl_);
}

int NfqueueSource::fd() const {
  return mnl_socket_get_fd(nl_);
}

Result<void> NfqueueSource::configure() {
  // Bind, copy mode, length and flags in one message: a packet queued between a bind and a
  // later copy-mode message would arrive without its bytes.
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_CONFIG, opts_.queue);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  // The protocol family of a bind is ignored since Linux 3.8; AF_INET as libnetfilter_queue's
  // own example.
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, static_cast<int>(opts_.copy));
  if (opts_.max_len) nfq_nlmsg_cfg_put_qmaxlen(nlh, opts_.max_len);
  uint32_t flags = (opts_.fail_open ? NFQA_CFG_F_FAIL_OPEN : 0) | (opts_.gso ? NFQA_CFG_F_GSO : 0);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));

  if (opts_.buffer_mb) {
    int bytes = static_cast<int>(opts_.buffer_mb) << 20;
    // FORCE goes past net.core.rmem_max; binding needs CAP_NET_ADMIN anyway.
    if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
      setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0)
    return Error::from_errno(fmt::format("{}: send config", name()));
  uint32_t want = nlh->nlmsg_seq;
  int ack = -1;
  auto deadline = monotonic_ns() + 2'000'000'000;
  while (ack < 0) {
    L45_TRY(auto got, receive_once(nullptr, want, &ack));
    if (ack >= 0) break;
    if (!got) {
      int left_ms = static_cast<int>((deadline - monotonic_ns()) / 1000000);
      if (left_ms <= 0) return Error(ETIMEDOUT, fmt::format("{}: no answer to bind", name()));
      pollfd pfd{fd(), POLLIN, 0};
      ::poll(&pfd, 1, left_ms);
    }
  }
  switch (ack) {
    case 0:
      return {};
    case EPERM:
    case EACCES:
      // The kernel also says EPERM when another socket owns the queue: its table tells.
      if (queue_owner() != 0)
        return Error(EBUSY, fmt::format("{}: queue is already bound by another process", name()));
      return Error(ack, fmt::format("{}: binding a queue needs root or CAP_NET_ADMIN", name()));
    case EBUSY:
      return Error(ack, fmt::format("{}: queue is already bound by another process", name()));
    case EOPNOTSUPP:
      return Error(ack, fmt::format("{}: the kernel does not support the queue flags "
                                    "(fail_open, gso)",
                                    name()));
    default:
      return Error(ack, fmt::format("{}: cannot bind the queue", name()));
  }
}

Result<std::optional<size_t>> NfqueueSource::receive_once(PacketBatch* out, uint32_t ack_seq,
                                                          int* ack_err) {
  for (;;) {
    ssize_t n = ::recv(fd(), rbuf_.data(), rbuf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return std::optional<size_t>();
      if (errno == ENOBUFS) {
        // The socket overflowed: the kernel dropped (or, fail-open, accepted) packets we
        // will never see. Counted, not fatal.
        ++enobufs_;
        refresh_drops();
        continue;
      }
      return Error::from_errno(fmt::format("{}: recv", name()));
    }
    if (static_cast<size_t>(n) > rbuf_.size()) {
      // Cannot happen with copy <= 65535; if it does, the packet's id is lost with it.
      stats_.drops.add(DropReason::Truncated);
      continue;
    }
    size_t got = 0;
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rbuf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) continue;
        auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (ack_err && nlh->nlmsg_seq == ack_seq)
          *ack_err = -e->error;
        else if (e->error != 0)
          ++verdict_errors_;
        continue;
      }
      if ((nlh->nlmsg_type >> 8) == NFNL_SUBSYS_QUEUE &&
          (nlh->nlmsg_type & 0xff) == NFQNL_MSG_PACKET) {
        handle_packet(nlh, out);
        ++got;
      }
    }
    return std::optional<size_t>(got);
  }
}

void NfqueueSource::handle_packet(const nlmsghdr* nlh, PacketBatch* out) {
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR] ||
      mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(nfqnl_msg_packet_hdr)) {
    stats_.drops.add(DropReason::Truncated);
    return;
  }
  auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  uint32_t id = ntohl(ph->packet_id);
  last_id_ = id;
  seen_any_ = true;
  if (!attr[NFQA_PAYLOAD] || mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) == 0) {
    // Nothing to look at, but it must not stay queued.
    stats_.drops.add(DropReason::Truncated);
    (void)add_verdict(NFQNL_MSG_VERDICT, id, NF_ACCEPT, std::nullopt);
    return;
  }
  Bytes data = as_bytes(mnl_attr_get_payload(attr[NFQA_PAYLOAD]),
                        mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]));
  PacketMeta m;
  m.link = LinkType::Raw;
  m.queue_id = opts_.queue;
  m.queue_packet_id = id;
  m.frame = ++frames_;
  m.wire_len = attr[NFQA_CAP_LEN] ? ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]))
                                  : static_cast<uint32_t>(data.size());
  if (attr[NFQA_MARK]) m.mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
  bool in = attr[NFQA_IFINDEX_INDEV] != nullptr, out_dev = attr[NFQA_IFINDEX_OUTDEV] != nullptr;
  if (in) m.ingress = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV]));
  m.direction = in && !out_dev   ? Direction::Inbound
                : out_dev && !in ? Direction::Outbound
                                 : Direction::Unknown;
  if (attr[NFQA_TIMESTAMP] &&
      mnl_attr_get_payload_len(attr[NFQA_TIMESTAMP]) >= sizeof(nfqnl_msg_packet_timestamp)) {
    // Two big-endian 64-bit fields at a 4-aligned address: read them byte-wise.
    auto* t = static_cast<const std::byte*>(mnl_attr_get_payload(attr[NFQA_TIMESTAMP]));
    m.ts = Timestamp::from_sec_usec(static_cast<int64_t>(load_be64(t)),
                                    static_cast<int64_t>(load_be64(t + 8)));
  } else {
    m.ts = SystemClock().now();
  }
  Packet p = Packet::copy_of(data, m);
  if (!accept_filter_.empty() && !accept_filter_.matches(p)) {
    ++stats_.filtered;
    (void)add_verdict(NFQNL_MSG_VERDICT, id, NF_ACCEPT, std::nullopt);
    return;
  }
  if (out && !out->full())
    out->push(std::move(p));
  else
    early_.push_back(std::move(p));
}

Result<size_t> NfqueueSource::read_some(PacketBatch& batch) {
  size_t before = batch.size();
  size_t take = 0;
  while (take < early_.size() && !batch.full())
    batch.push(std::move(early_[take++]));
  early_.erase(early_.begin(), early_.begin() + static_cast<ptrdiff_t>(take));

  bool waited = false;
  while (!batch.full()) {
    L45_TRY(auto got, receive_once(&batch, 0, nullptr));
    if (got) continue;
    // Nothing waiting. Wait once, and only when this call has nothing to return yet.
    if (batch.size() > before || waited) break;
    waited = true;
    pollfd pfd{fd(), POLLIN, 0};
    int pr = ::poll(&pfd, 1, opts_.timeout_ms);
    if (pr < 0 && errno != EINTR) return Error::from_errno(fmt::format("{}: poll", name()));
    if (pr <= 0) break;
  }
  // Accepts for packets the filter rejected (or that came without bytes).
  L45_TRY_VOID(send_pending());
  int64_t now = monotonic_ns();
  if (batch.size() == before && now - drops_at_ns_ >= 1000000000) {
    drops_at_ns_ = now;
    refresh_drops();
  }
  return batch.size() - before;
}

std::optional<NfqueueSource::QueueRow> NfqueueSource::read_queue_row() const {
  // /proc/net/netfilter/nfnetlink_queue, one line per queue: number, owner's portid, queued,
  // copy mode, copy range, queue_dropped, queue_user_dropped, id sequence, 1.
  if (proc_fd_ < 0) return std::nullopt;
  char buf[8192];
  ssize_t n = ::pread(proc_fd_, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  for (char* line = buf; line && *line;) {
    unsigned q = 0, portid = 0, total = 0, mode = 0, range = 0, dropped = 0, user_dropped = 0;
    if (std::sscanf(line, "%u %u %u %u %u %u %u", &q, &portid, &total, &mode, &range, &dropped,
                    &user_dropped) == 7 &&
        q == opts_.queue)
      return QueueRow{portid, dropped, user_dropped};
    line = std::strchr(line, '\n');
    if (line) ++line;
  }
  return std::nullopt;
}

uint32_t NfqueueSource::queue_owner() const {
  auto row = read_queue_row();
  return row && row->portid != portid_ ? row->portid : 0;
}

void NfqueueSource::refresh_drops() {
  // Exact counts when the kernel's table is readable: packets dropped because the queue was
  // full plus those dropped because the socket was. Else at least one per ENOBUFS.
  auto row = read_queue_row();
  if (row && row->portid == portid_)
    stats_.kernel_dropped = uint64_t(row->dropped) + row->user_dropped;
  else
    stats_.kernel_dropped = enobufs_;
}

Result<void> NfqueueSource::set_filter(std::string_view expr) {
  L45_TRY(auto f, BpfFilter::compile(expr, LinkType::Raw));
  accept_filter_ = std::move(f);
  return {};
}

Result<void> NfqueueSource::add_verdict(int type, uint32_t id, int nf_verdict_value,
                                        std::optional<uint32_t> mark, Bytes payload) {
  if (payload.size() > kMaxVerdictPayload)
    return Error::invalid(
        fmt::format("{}: a modified packet of {} bytes is longer than a verdict can carry ({})",
                    name(), payload.size(), kMaxVerdictPayload));
  // Header, nfgenmsg, verdict header, mark and payload attributes, with alignment slack.
  size_t need = 128 + MNL_ALIGN(payload.size());
  if (!out_.empty() && out_.size() + need > kSendChunk) L45_TRY_VOID(send_pending());
  size_t off = out_.size();
  out_.resize(off + need);
  nlmsghdr* nlh = nfq_nlmsg_put(out_.data() + off, type, opts_.queue);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), nf_verdict_value);
  if (mark) nfq_nlmsg_verdict_put_mark(nlh, *mark);
  if (!payload.empty())
    nfq_nlmsg_verdict_put_pkt(nlh, payload.data(), static_cast<uint32_t>(payload.size()));
  out_.resize(off + MNL_ALIGN(nlh->nlmsg_len));
  return {};
}

Result<void> NfqueueSource::send_pending() {
  if (out_.empty()) return {};
  // Many verdicts in one sendmsg: nfnetlink walks every message of the buffer.
  ssize_t n = mnl_socket_sendto(nl_, out_.data(), out_.size());
  out_.clear();
  if (n < 0) return Error::from_errno(fmt::format("{}: send verdict", name()));
  return {};
}

Result<void> NfqueueSource::check_packet(const Packet& p) const {
  if (p.meta().queue_packet_id == 0 || p.meta().queue_id != opts_.queue)
    return Error::invalid(
        fmt::format("{}: verdict for a packet that was not read from it "
                    "(queue {}, id {})",
                    name(), p.meta().queue_id, p.meta().queue_packet_id));
  return {};
}

Result<void> NfqueueSource::verdict(const Packet& p, Verdict v, std::optional<uint32_t> mark) {
  if (v == Verdict::Pending) return Error::invalid(name() + ": verdict Pending is not a verdict");
  L45_TRY_VOID(check_packet(p));
  L45_TRY_VOID(add_verdict(NFQNL_MSG_VERDICT, p.meta().queue_packet_id, nf_verdict(v), mark));
  return send_pending();
}

Result<void> NfqueueSource::verdict_modified(const Packet& p, Bytes new_payload,
                                             std::optional<uint32_t> mark) {
  L45_TRY_VOID(check_packet(p));
  if (new_payload.empty())
    return Error::invalid(name() + ": a modified packet cannot be empty (drop it instead)");
  L45_TRY_VOID(
      add_verdict(NFQNL_MSG_VERDICT, p.meta().queue_packet_id, NF_ACCEPT, mark, new_payload));
  return send_pending();
}

Result<void> NfqueueSource::verdict_batch(uint32_t up_to_packet_id, Verdict v,
                                          std::optional<uint32_t> mark) {
  if (v == Verdict::Pending) return Error::invalid(name() + ": verdict Pending is not a verdict");
  L45_TRY_VOID(add_verdict(NFQNL_MSG_VERDICT_BATCH, up_to_packet_id, nf_verdict(v), mark));
  return send_pending();
}

Result<void> NfqueueSource::write(const Packet& p) {
  L45_TRY_VOID(check_packet(p));
  L45_TRY_VOID(add_verdict(NFQNL_MSG_VERDICT, p.meta().queue_packet_id,
                           nf_verdict(p.meta().verdict), p.meta().mark));
  return send_pending();
}

Result<void> NfqueueSource::write(const PacketBatch& batch) {
  for (const Packet& p : batch)
    L45_TRY_VOID(check_packet(p));
  size_t i = 0;
  while (i < batch.size()) {
    const PacketMeta& m = batch[i].meta();
    size_t j = i;
    // A run: same verdict and mark, ids rising in the order read.
    while (opts_.batch && j + 1 < batch.size() && batch[j + 1].meta().verdict == m.verdict &&
           batch[j + 1].meta().mark == m.mark &&
           id_after(batch[j + 1].meta().queue_packet_id, batch[j].meta().queue_packet_id))
      ++j;
    int type = j > i ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT;
    L45_TRY_VOID(add_verdict(type, batch[j].meta().queue_packet_id, nf_verdict(m.verdict), m.mark));
    i = j + 1;
  }
  return send_pending();
}

namespace {

Result<std::unique_ptr<Source>> open_nfqueue_source(const SourceSpec& spec) {
  L45_TRY(auto opts, NfqueueOptions::from_spec(spec));
  L45_TRY(auto q, NfqueueSource::open(opts));
  return std::unique_ptr<Source>(std::move(q));
}

}  // namespace

}  // namespace l45

L45_REGISTER_SOURCE("nfqueue", "packets queued by a netfilter rule (NFQUEUE); also takes verdicts",
                    l45::open_nfqueue_source);
