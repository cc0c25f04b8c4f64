// Shared-nothing workers: which worker (one flow engine, one MonitorContext, one core) each
// packet goes to, so that every packet of a flow meets the same engine (mOS's per-core model,
// as a NIC's receive-side scaling spreads packets over queues).
//
// The rule. A packet goes to worker hash(key) * N >> 64, where key is the flow key the engine
// itself keys the packet on (key_of(): innermost IP pair, protocol and ports in canonical
// order, so both directions give one key; an ICMP error gives the key of the flow it quotes),
// hashed with flow_key_hash() under the dispatcher's seed. Packets with no such key go by their
// innermost IP pair and protocol (canonical too); packets without IP go to worker 0.
//
// IP fragments. A non-first fragment carries no ports and a tunnelled datagram's first fragment
// does not show its inner flow, so no rule on one fragment alone can send every fragment where
// the flow's whole packets go. The dispatcher runs the engine's own defragmenter (same limits)
// on the side: a fragment is held until its datagram is whole, then the datagram's key picks
// the worker and every fragment of it goes there, in arrival order, right after one another
// (the worker's engine reassembles the same datagram again: its fragment counters match a
// single engine's). Fragments arriving after their datagram completed follow it there. A
// datagram that never completes is released, by its IP pair, when it times out (the
// defragmenter's timeout, in packet time) or at flush(). Addresses alone for every packet
// would need none of this but spreads a trace with few hosts over few workers (a NIC's
// 2-tuple mode); the hash of the 4-tuple keeps any trace's flows spread.
//
// Time. The dispatcher tells each emitted packet the clock of the whole input before it (the
// largest timestamp pushed before the packet that caused the emission). A worker that calls
// MonitorContext::advance(clock) before process() expires idle flows and fragments at the same
// packet times as one engine over the whole input would: per-worker results, merged, equal the
// single engine's (workers_test checks it on the bundled and the shared captures).
//
// Flow ids: each engine numbers its own flows (Flow::serial, Flow::uid), so merge by content or
// by PacketMeta::frame of the packet that opened the flow, not by uid.
//
// The dispatcher is single-threaded (the reader's thread); workers share nothing with it but
// the packets it hands out (shares of the reader's buffers: Packet::share()).
//
//   FlowDispatcher d({.workers = 2});
//   std::vector<std::vector<std::pair<Packet, Timestamp>>> share(2);
//   auto emit = [&](unsigned w, const Packet& p, Timestamp clock) {
//     share[w].emplace_back(p.share(), clock);
//   };
//   for (const Packet& p : pkts) d.push(p, emit);
//   d.flush(emit);
//   // worker w: for (auto& [p, clock] : share[w]) { ctx.advance(clock); ctx.process(p); }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l45/core/result.hpp"

#include "l45/core/time.hpp"
#include "l45/flow/ip_defrag.hpp"
#include "l45/monitor/monitor.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

struct DispatchConfig {
  unsigned workers = 1;
  // The same as the engines' (EngineConfig::hash_seed): fixed, so a file splits the same way
  // every run; draw a random one live, so traffic cannot be aimed at one worker.
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  bool defragment = true;  // as EngineConfig::defragment: false sends fragments by IP pair
  DefragLimits defrag;     // as EngineConfig::defrag
};

struct DispatchStats {
  uint64_t packets = 0;
  uint64_t fragments_held = 0;      // fragments that waited for their datagram
  uint64_t fragments_released = 0;  // of those, sent by IP pair (datagram never completed)
};

class FlowDispatcher {
 public:
  // (worker, packet, clock): `p` is valid during the call only (share() it to keep it).
  using Emit = std::function<void(unsigned worker, const Packet& p, Timestamp clock)>;

  explicit FlowDispatcher(const DispatchConfig& cfg = {});
  ~FlowDispatcher();
  FlowDispatcher(const FlowDispatcher&) = delete;
  FlowDispatcher& operator=(const FlowDispatcher&) = delete;

  // Emits `p` now, or (an IP fragment) once its datagram is whole or given up. `p` itself is
  // emitted at most once and last (emit may move from it); held fragments are the
  // dispatcher's own shares.
  void push(const Packet& p, const Emit& emit);
  // End of input: fragments still held go out, by their IP pair.
  void flush(const Emit& emit);

  // The worker of a packet that is not a fragment (or of a reassembled datagram): a pure
  // function of its decode and the seed.
  unsigned worker_of(const PacketView& v) const;
  unsigned workers() const { return cfg_.workers; }
  Timestamp clock() const { return clock_; }  // the largest timestamp pushed
  const DispatchStats& stats() const { return stats_; }

 private:
  struct Frags;
  unsigned by_ip_pair(const PacketView& v) const;
  unsigned pick(uint64_t hash) const;
  void push_fragment(const Packet& p, const PacketView& v, Timestamp before, const Emit& emit);

  DispatchConfig cfg_;
  DispatchStats stats_;
  Timestamp clock_{};
  std::unique_ptr<Frags> frags_;
};

// WorkerPool: N workers on threads, each with its own MonitorContext, fed by a FlowDispatcher
// from the caller's (reader's) thread through one bounded queue per worker. Shared nothing but
// the queues: a worker's context, sockets and handlers are built on its own thread (setup) and
// only that thread touches them until finish() returns.
//
// Marks: mark(id) reaches every worker after all the packets pushed before it; the worker
// advances its clock to the input's (FlowDispatcher::clock()) and runs on_mark(w, ctx, id) there.
// What one engine would show at that point of the input, the N workers show together: the place
// to take tables (midstat) and to merge them. A mark is seen by all workers in the same order.
//
// Threads are pinned to distinct CPUs (the w-th this process may use) when there are as many.
// The reader blocks when a worker is `queue` packets behind: nothing is dropped for a file; live,
// the source's own buffer absorbs the wait (its kernel drops are counted there).
//
//   WorkerPool pool({.workers = 2, .engine = cfg},
//                   [&](unsigned w, MonitorContext& ctx) { return setup_sockets(w, ctx); });
//   for (const Packet& p : pkts) pool.push(p.share());
//   Result<void> r = pool.finish();  // joins; results per worker can be read now
class WorkerPool {
 public:
  struct Config {
    unsigned workers = 1;
    EngineConfig engine;  // every worker's (its hash seed is the dispatcher's too)
    bool pin = true;
    size_t queue = 4096;  // packets per worker queue
  };
  using Setup = std::function<Result<void>(unsigned worker, MonitorContext& ctx)>;
  using OnMark = std::function<void(unsigned worker, MonitorContext& ctx, uint64_t mark)>;

  // Starts the threads; a setup that fails makes finish() return its error.
  WorkerPool(const Config& cfg, Setup setup, OnMark on_mark = {});
  ~WorkerPool();  // finish() if it was not called
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Takes `p` (a file's packets: share() them; a live source's buffers are reused: copy).
  void push(Packet p);
  void mark(uint64_t id);
  void advance(Timestamp now);  // live: every worker's clock moves (idle flows expire)
  // End of input: held fragments go out, every worker advances to the input's clock and runs
  // MonitorContext::finish(), threads are joined. The first setup error, if any.
  Result<void> finish();

  unsigned workers() const { return unsigned(queues_.size()); }
  unsigned pinned() const;  // how many threads got a CPU of their own
  // After finish(): worker w's context (its engine's stats, flows closed).
  const MonitorContext& context(unsigned w) const { return *contexts_[w]; }

 private:
  struct Item;
  struct Queue;
  void send(unsigned w, Item&& it);
  void flush(unsigned w);
  void broadcast(const Item& it);
  void run(unsigned w);

  Config cfg_;
  Setup setup_;
  OnMark on_mark_;
  FlowDispatcher dispatch_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::unique_ptr<MonitorContext>> contexts_;
  std::vector<Result<void>> setup_result_;
  std::vector<uint8_t> pinned_;
  std::vector<std::thread> threads_;
  bool finished_ = false;
};

// Merged workers print a flow's uid as one engine over the whole input would: flow_uid() (in
// the flow layer) of the serial numbered by where the flow opened in the input (each worker's
// engine numbers only its own).

}  // namespace l45
