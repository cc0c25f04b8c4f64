// A MonitorContext inline on an NFQUEUE: every packet the queue hands over goes through
// process_inline() and gets its verdict in the order it was read (so each flow's packets keep
// their order): accept, drop, or accept with the changed bytes. The packets handlers send
// (send(), reset()) leave through raw IP sockets after the verdicts of their batch, routed by
// the host like its own packets; they pass the output hook, not the forward hook, so a
// middlebox that queues in its forward chain does not see them again.
//
//   nft add rule inet mb fq meta l4proto tcp queue num 3
//   MonitorContext ctx;  ... sockets and handlers ...
//   L45_TRY(auto in, NfqueueInline::open(ctx, {.queue = 3}));
//   while (!stop) L45_TRY_VOID(in->run_once());
#pragma once

#include <cstdint>
#include <memory>

#include "l45/core/result.hpp"
#include "l45/io/nfqueue.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45 {

struct NfqueueInlineCounters {
  uint64_t packets = 0;
  uint64_t accepted = 0;  // unchanged
  uint64_t modified = 0;  // accepted with new bytes
  uint64_t dropped = 0;
  uint64_t sent = 0;         // packets of the handlers' own, sent
  uint64_t send_errors = 0;  // ... that the kernel refused (no route, no raw socket)
};

class NfqueueInline {
 public:
  // Binds the queue (CAP_NET_ADMIN); the raw sockets are opened at the first send.
  static Result<std::unique_ptr<NfqueueInline>> open(MonitorContext& ctx,
                                                     const NfqueueOptions& queue);
  ~NfqueueInline();
  NfqueueInline(const NfqueueInline&) = delete;
  NfqueueInline& operator=(const NfqueueInline&) = delete;

  // Handles what arrives within the queue's poll interval; then moves the context's clock to
  // the wall clock, so timers and idle timeouts run while the queue is quiet. Returns the
  // number of packets handled (0: nothing arrived). A verdict the kernel refused is an error.
  Result<size_t> run_once();

  const NfqueueInlineCounters& counters() const { return counters_; }
  NfqueueSource& queue() { return *queue_; }

 private:
  NfqueueInline(MonitorContext& ctx, std::unique_ptr<NfqueueSource> q);
  void send_all();

  MonitorContext& ctx_;
  std::unique_ptr<NfqueueSource> queue_;
  PacketBatch batch_;
  NfqueueInlineCounters counters_;
  int raw4_ = -1, raw6_ = -1;
};

}  // namespace l45
