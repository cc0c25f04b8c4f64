// NFQUEUE: packets that a netfilter rule queues to user space (nftables `queue num N`,
// iptables `-j NFQUEUE --queue-num N`) are read here, and each stays in the kernel until
// this process gives it a verdict: accept (optionally with new bytes or a new mark) or drop.
// Uses libnetfilter_queue's libmnl API.
//
// Source scheme `nfqueue` (the source is also the Sink that takes the verdicts: a verdict
// must come from the socket that read the packet, so there is no separate sink scheme):
//   nfqueue:N[,fail_open=1][,copy=N][,max_len=N][,batch=1][,gso=0][,buffer_mb=N][,timeout_ms=N]
//     N           queue number, 0-65535
//     fail_open   when the queue or the socket is full, the kernel accepts packets instead of
//                 dropping them (NFQA_CFG_F_FAIL_OPEN); also accepts, on close, the packets
//                 still waiting for a verdict (without it the kernel drops them)
//     copy        bytes copied of each packet (default 65535); wire_len keeps the full length
//     max_len     queue length in the kernel (default: the kernel's, 1024)
//     batch       write() sends one NFQNL_MSG_VERDICT_BATCH per run of packets with the same
//                 verdict and mark, instead of one verdict each. Only for callers that give
//                 every packet its verdict through write(), in the order read: a batch verdict
//                 also covers older packets still waiting.
//     gso         1 (default): GSO packets arrive whole, up to 64 KiB (NFQA_CFG_F_GSO), and
//                 locally sent TCP/UDP may carry a partial checksum (the device would finish
//                 it). 0: the kernel segments them and finishes checksums first (slower).
//     buffer_mb   socket receive buffer (default 8); overruns show in kernel_dropped
//     timeout_ms  poll interval (default 100): read() returns 0 after this long idle
// Metadata: link = Raw (the IP header first), queue_id, queue_packet_id, mark, ingress = the
//   input interface (0 for locally sent packets), direction = Inbound (input device only),
//   Outbound (output device only) or Unknown (forwarded), ts = the kernel's receive time
//   when it has one, else the time of the read, wire_len = the packet's full length.
// Filter: set_filter() runs in-process; packets it rejects are accepted at once (they are not
//   this program's business) and counted in stats().filtered.
// stats().kernel_dropped: packets the kernel dropped for this queue (queue full, socket
//   full), from /proc/net/netfilter/nfnetlink_queue; never an error. A packet that arrives
//   without its bytes is accepted at once and counted as drops (Truncated).
// Verdicts are sent without waiting for an acknowledgement; one the kernel refuses (an id no
//   longer queued) is counted in verdict_errors().
//
// Modifying: verdict_modified() replaces the whole packet with `new_payload` (any length);
// the kernel then trusts its checksums as they are, so fix them (checksum.hpp).
//
//   L45_TRY(auto q, NfqueueSource::open({.queue = 3, .fail_open = true}));
//   L45_TRY(size_t n, q->read(batch));
//   for (Packet& p : batch) L45_TRY_VOID(q->verdict(p, allowed(p) ? Verdict::Accept
//                                                                  : Verdict::Drop));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/io/filter.hpp"
#include "l45/io/registry.hpp"
#include "l45/io/source.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace l45 {

struct NfqueueOptions {
  uint16_t queue = 0;
  bool fail_open = false;
  uint32_t copy = 65535;
  uint32_t max_len = 0;  // 0: the kernel's default
  bool batch = false;
  bool gso = true;
  uint32_t buffer_mb = 8;
  int timeout_ms = 100;

  // From "nfqueue:N,key=value,...": unknown keys and bad values are errors.
  static Result<NfqueueOptions> from_spec(const SourceSpec& spec);
};

class NfqueueSource final : public Source, public Sink {
 public:
  // Binds the queue (needs CAP_NET_ADMIN) in the calling thread's network namespace.
  static Result<std::unique_ptr<NfqueueSource>> open(const NfqueueOptions& opts);
  ~NfqueueSource() override;
  NfqueueSource(const NfqueueSource&) = delete;
  NfqueueSource& operator=(const NfqueueSource&) = delete;

  // Source
  bool at_end() const override { return false; }
  LinkType link_type() const override { return LinkType::Raw; }
  std::string name() const override { return "nfqueue:" + std::to_string(opts_.queue); }
  Result<void> set_filter(std::string_view expr) override;

  // Verdicts. `p` must have been read from this queue. Verdict::Pending is refused.
  Result<void> verdict(const Packet& p, Verdict v, std::optional<uint32_t> mark = {});
  // Accepts `p` with its bytes replaced by `new_payload` (an IP packet, any length).
  Result<void> verdict_modified(const Packet& p, Bytes new_payload,
                                std::optional<uint32_t> mark = {});
  // One verdict for every packet of this queue with an id up to `up_to_packet_id` (in the
  // queue's wrapping order) that is still waiting.
  Result<void> verdict_batch(uint32_t up_to_packet_id, Verdict v,
                             std::optional<uint32_t> mark = {});

  // Sink: each packet gets its meta.verdict (Pending counts as Accept) and meta.mark, all in
  // one send; with batch=1 runs are coalesced (see above). The bytes are not sent back: use
  // verdict_modified() for a changed packet.
  Result<void> write(const PacketBatch& batch) override;
  Result<void> write(const Packet& p) override;

  uint16_t queue() const { return opts_.queue; }
  // Readable when packets are waiting.
  int fd() const;
  uint64_t verdict_errors() const { return verdict_errors_; }

 protected:
  Result<size_t> read_some(PacketBatch& batch) override;

 private:
  NfqueueSource(mnl_socket* nl, NfqueueOptions opts);
  Result<void> configure();
  // Takes one message off the socket without waiting: packets go to `out` (early_ when null
  // or full), the errno of the ack numbered `ack_seq` to `ack_err`. nullopt: none waiting.
  Result<std::optional<size_t>> receive_once(PacketBatch* out, uint32_t ack_seq, int* ack_err);
  void handle_packet(const nlmsghdr* nlh, PacketBatch* out);
  // Appends one verdict message to out_; sends when out_ is full.
  Result<void> add_verdict(int type, uint32_t id, int nf_verdict, std::optional<uint32_t> mark,
                           Bytes payload = {});
  Result<void> send_pending();
  Result<void> check_packet(const Packet& p) const;
  struct QueueRow {
    uint32_t portid, dropped, user_dropped;
  };
  std::optional<QueueRow> read_queue_row() const;
  uint32_t queue_owner() const;  // portid of another socket bound to the queue, or 0
  void refresh_drops();

  mnl_socket* nl_;
  NfqueueOptions opts_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
  int proc_fd_ = -1;  // nfnlink_queue stats of the queue's namespace, opened with the socket
  uint64_t enobufs_ = 0;
  uint64_t verdict_errors_ = 0;
  uint64_t frames_ = 0;
  uint32_t last_id_ = 0;  // newest packet id read, for the fail-open accept on close
  bool seen_any_ = false;
  int64_t drops_at_ns_ = 0;
  BpfFilter accept_filter_;    // packets it rejects are accepted at once
  std::vector<Packet> early_;  // read while configuring, or past a full batch
  std::vector<char> rbuf_;     // one netlink message
  std::vector<char> out_;      // verdict messages waiting for one send
};

}  // namespace l45
