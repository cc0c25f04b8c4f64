// Engine: the flow engine a stateful middlebox runs every packet through (mOS's stack, one
// worker). It glues the flow units together in a fixed order per packet:
//
//   decode (tunnels followed) -> IP defragmentation -> key (innermost 5-tuple, VLAN optional)
//   -> expire idle flows -> find or create the flow -> per-side counters -> TCP: both
//   endpoints' state (TcpConnection), then the sender's reassembly (TcpStream), then gaps the
//   receiver's ACK proves -> observer callbacks.
//
// Flows: TCP, UDP, ICMP (echo keyed on its id) and other IP protocols (addresses only). An ICMP
// error is attributed to the flow it quotes (FlowObserver::on_icmp_error, Flow::icmp_errors); it
// never creates a flow. A TCP SYN that reuses the 4-tuple of a connection that is closed, reset
// or in TIME_WAIT (TcpOutcome::NewConnection) closes the old flow (FlowEnd::Reused) and starts
// a new one. The outer path of a tunnelled flow (VLAN ids, MPLS labels, outer IP pairs and the
// tunnel kinds, as "vlan:10 gre:192.0.2.1>192.0.2.2") is interned once and kept as flow
// metadata (Flow::tunnel, Engine::tunnel_path()).
//
// Gaps: bytes the receiver acknowledged but the capture never showed become a gap record once
// they stayed missing for gap_delay of packet time (or the connection ended); a retransmission
// filling the hole before that is delivered in order.
//
// Time: the engine's clock is packet time (max of the timestamps seen: a replay is exact);
// advance(now) moves it for a live source with no traffic. Idle timeouts depend on the state
// (EngineTimeouts): a TCP flow is "opening" until both sides are established, "established",
// then "closing" after the first FIN and "closed" once both sides are closed or reset, kept that
// long (Zeek's tcp_close_delay) so late retransmissions still find it.
//
// Caps (EngineConfig): max_flows with when_full (EvictOldestIdle | RefuseNew), and one byte
// budget for buffered stream data (out-of-order chunks and retransmission history) over every
// flow; a segment the budget refuses is not buffered (DropReason stream_budget, counted) and its
// bytes become a gap once the peer's ACK passes them. Every refusal, eviction and expiry is
// counted in stats().
//
// Per flow control: stop_tracking() (the flow keeps its slot so its packets are recognised, but
// nothing more is computed or delivered), disable_side() (one side's reassembly off),
// set_overlap_policy() (first or last copy wins, per side), and StreamConfig::depth for a byte
// limit per side. All counted.
//
// Drop reasons and anomalies: decode errors (packet layer), defragmentation (60-69), stream
// (70-79), flow table (80-89), TCP state (90-99), and the engine's own (100-109):
// IcmpErrorNoFlow (an ICMP error quoting no tracked flow). All are in stats().drops.
//
//   struct Log : FlowObserver {
//     void on_close(const Flow& f, FlowEnd why) override { print(f); }
//   } log;
//   Engine engine({}, &log);
//   for (const Packet& pkt : packets) engine.process(pkt);
//   engine.finish();  // closes (and logs) what is still open
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/drop_reason.hpp"
#include "l45/core/huge_alloc.hpp"
#include "l45/core/time.hpp"
#include "l45/flow/direction.hpp"
#include "l45/flow/flow_table.hpp"
#include "l45/flow/ip_defrag.hpp"
#include "l45/flow/stream.hpp"
#include "l45/flow/tcp_state.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

// Why a flow ended.
enum class FlowEnd : uint8_t {
  Closed,       // TCP: both sides closed (FIN) or reset, and the close delay passed
  IdleTimeout,  // no packet for its state's timeout
  Evicted,      // the table was full and this was the oldest idle flow
  Reused,       // a new connection took its 4-tuple
  EndOfInput,   // finish(): the capture ended with the flow open
};
std::string_view flow_end_name(FlowEnd e);  // "closed", "idle_timeout", ...
// The uid of the flow with this serial (Flow::uid()): for ids of flows numbered elsewhere, such
// as one engine's numbering rebuilt over several workers.
std::string flow_uid(uint64_t serial);

struct EngineTimeouts {
  Duration tcp_opening = Duration::seconds(30);  // until both sides are established
  Duration tcp_established = Duration::seconds(3600);
  Duration tcp_closing = Duration::seconds(240);  // a FIN seen, not both sides closed
  Duration tcp_closed = Duration::seconds(5);     // both closed or reset (Zeek tcp_close_delay)
  Duration udp = Duration::seconds(60);
  Duration icmp = Duration::seconds(30);
  Duration other = Duration::seconds(60);
};

struct EngineConfig {
  uint32_t max_flows = 65536;  // preallocated: about 512 bytes each
  FullPolicy when_full = FullPolicy::EvictOldestIdle;
  uint64_t max_buffered_bytes = 64ull << 20;  // all streams' buffers together
  EngineTimeouts timeouts;
  StreamConfig stream;  // per side; its budget is set by the engine
  bool reassemble = true;
  // Data sent after an accepted RST (in flight when it crossed, or sent anyway) is on the wire
  // but the receiving stack discards it (RFC 9293 3.10.7). true: deliver it (what the wire
  // carried: tshark's and Zeek's view); false: drop it (what the receiver accepted: libnids'
  // and libtins' view). Counted as stream_after_reset either way.
  bool deliver_after_reset = true;
  // When the receiver acknowledges bytes the capture has not shown, they are declared a gap
  // (on_gap) after this much packet time unless they arrive meanwhile (a capture may show data
  // behind its ACK), and at once when the connection ends. Zero: at the ACK (as Zeek).
  Duration gap_delay = Duration::seconds(1);
  bool key_vlan = false;          // innermost VLAN id is part of the flow key
  bool verify_checksums = false;  // bad TCP/UDP/IP checksums: history 'c', segment ignored
  bool defragment = true;
  DefragLimits defrag;
  uint64_t hash_seed = 0x9e3779b97f4a7c15ull;  // fixed: runs replay identically
};

// Per side of a flow (indexed by Side: the client sent the first packet, or the SYN).
struct FlowSideCounters {
  uint64_t packets = 0;
  uint64_t ip_bytes = 0;       // IP total length, as Zeek's *_ip_bytes
  uint64_t payload_bytes = 0;  // UDP/ICMP payload bytes (TCP: see Flow::payload_size)
};

// One flow as observers and the engine's users see it. Read-only outside the engine.
class Flow {
 public:
  FlowHandle handle() const { return handle_; }
  uint8_t proto() const { return key_->proto; }  // IP protocol
  // Addresses and ports by role (ICMP: type and code / echo id as ports; see conn docs).
  IpAddr addr(Side s) const { return is_a(s) ? key_->a() : key_->b(); }
  uint16_t port(Side s) const { return is_a(s) ? key_->port_a : key_->port_b; }
  const FlowKey& key() const { return *key_; }
  uint16_t vlan() const { return vlan_; }
  Timestamp first_seen() const { return first_; }
  Timestamp last_seen() const { return last_; }
  uint64_t serial() const { return serial_; }  // 1, 2, ... in creation order
  // Zeek-style connection id ("C" + 17 base62 characters), a function of the serial only, so
  // a replay gives the same ids: flow_uid(serial()).
  std::string uid() const;
  const FlowSideCounters& counters(Side s) const { return side_[size_t(s)]; }
  uint32_t icmp_errors() const { return icmp_errors_; }
  uint32_t tunnel() const { return tunnel_; }  // 0: none; else Engine::tunnel_path(id)
  uint8_t icmp_type() const { return icmp_type_; }
  uint8_t icmp_code() const { return icmp_code_; }

  bool is_tcp() const { return tcp_ != nullptr; }
  const TcpConnection* tcp() const { return tcp_; }
  const TcpStream* stream(Side s) const { return tcp_ ? &tcp_->streams[size_t(s)] : nullptr; }
  // TCP: sequence-space payload bytes (Zeek's orig_bytes/resp_bytes); else payload_bytes.
  uint64_t payload_size(Side s) const;
  // Bytes declared missing by reassembly, both sides (Zeek's missed_bytes).
  uint64_t missed_bytes() const;
  bool tracking_stopped() const { return stopped_; }
  bool side_disabled(Side s) const { return disabled_[size_t(s)]; }

 private:
  friend class Engine;
  struct Tcp : TcpConnection {
    // perf: both streams built in place with their config (not built default and then
    // move-assigned); TcpConnection() value-initializes as make_unique<Tcp>() did.
    explicit Tcp(const StreamConfig& c) : TcpConnection(), streams{TcpStream(c), TcpStream(c)} {}
    TcpStream streams[2];
    // The peer acknowledged past missing bytes of streams[i] up to hole_ack[i], first seen
    // hole_ms[i] - 1 milliseconds after the flow began (0: no hole pending).
    TcpSeq hole_ack[2];
    uint32_t hole_ms[2] = {0, 0};
  };
  bool is_a(Side s) const { return (s == Side::Client) == client_is_a_; }

  // Addresses, ports and protocol are the table's key (memory: not repeated per flow); the
  // key lives in the table's preallocated records, as long as the flow.
  const FlowKey* key_ = nullptr;
  FlowHandle handle_;
  uint16_t vlan_ = 0;
  bool client_is_a_ = true;  // the client is the key's first endpoint
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  // memory: one byte for both flags, so a Flow stays 112 bytes (l45 bench --synthetic-flows).
  bool stopped_ : 1 = false;
  // The streams were flushed and released when both sides closed, and no segment since left
  // anything to flush (data, SYN, FIN, RST or a new hole; the close's last ACK leaves none):
  // closing the flow has nothing to flush (perf: l45 bench many-flows, ~150 instructions and
  // a cache miss on the TCP state a connection).
  bool flushed_ : 1 = false;
  bool disabled_[2] = {false, false};
  uint32_t tunnel_ = 0;
  uint32_t icmp_errors_ = 0;
  uint64_t serial_ = 0;
  Timestamp first_, last_;
  FlowSideCounters side_[2];
  Tcp* tcp_ = nullptr;  // TCP only: from the engine's slab, given back when the flow closes
};
static_assert(sizeof(void*) != 8 || sizeof(Flow) == 112,
              "a flow's bytes count towards the 512 a flow (issue 3)");

// What the engine tells its user. Every callback runs inside process()/advance()/finish(); the
// Flow reference and the byte spans are valid only during the call. Default: nothing.
class FlowObserver {
 public:
  virtual ~FlowObserver() = default;
  virtual void on_open(const Flow& f) { (void)f; }
  // Every packet of the flow, after its state was updated. `from`: the sender's role.
  virtual void on_packet(const Flow& f, Side from, const PacketView& v) {
    (void)f, (void)from, (void)v;
  }
  // Reassembled bytes of one side, in order; `offset` counts from the side's first byte.
  virtual void on_data(const Flow& f, Side from, uint64_t offset, Bytes data) {
    (void)f, (void)from, (void)offset, (void)data;
  }
  virtual void on_gap(const Flow& f, Side from, uint64_t offset, uint64_t length) {
    (void)f, (void)from, (void)offset, (void)length;
  }
  virtual void on_mismatch(const Flow& f, Side from, const StreamMismatch& m) {
    (void)f, (void)from, (void)m;
  }
  // A named anomaly of this flow's packet (TCP state refusals, stream anomalies).
  virtual void on_anomaly(const Flow& f, Side from, DropReason why) {
    (void)f, (void)from, (void)why;
  }
  virtual void on_icmp_error(const Flow& f, Side from, const PacketView& v) {
    (void)f, (void)from, (void)v;
  }
  // An endpoint's TCP state changed with this packet (called once per side that changed,
  // client first, before on_packet).
  virtual void on_tcp_state(const Flow& f, Side side, TcpEndpointState before,
                            TcpEndpointState after) {
    (void)f, (void)side, (void)before, (void)after;
  }
  // Both endpoints reached ESTABLISHED through a seen handshake (not for flows picked up
  // mid-stream), before on_packet.
  virtual void on_handshake(const Flow& f) { (void)f; }
  // A segment resent `length` bytes at `offset` that were already delivered (before the
  // comparison's on_mismatch, if any). Overlaps among bytes still out of order are compared
  // (on_mismatch) but not reported here.
  virtual void on_retransmission(const Flow& f, Side from, uint64_t offset, uint64_t length) {
    (void)f, (void)from, (void)offset, (void)length;
  }
  // A packet that belongs to no flow: no IP, no key (a non-first fragment not reassembled, an
  // ICMP error quoting no known flow), or a new flow the full table refused. `why` says which.
  virtual void on_orphan(const PacketView& v, DropReason why) { (void)v, (void)why; }
  // A packet the decoder refused, with its reason.
  virtual void on_malformed(const Packet& p, DropReason why) { (void)p, (void)why; }
  // The flow ends: streams were flushed (remaining buffered data and gaps delivered) first.
  virtual void on_close(const Flow& f, FlowEnd why) { (void)f, (void)why; }
  // Around each packet process() takes (alone or in a batch), for an observer whose
  // packet_bounds() is true when the engine is built: before the packet's first callback and
  // after its last. A layer above keeps its per-packet context there (the monitor: the last
  // packet, raw sockets, timers on packet time), so it can take batches too.
  virtual bool packet_bounds() const { return false; }
  virtual void on_packet_begin(const Packet& p) { (void)p; }
  virtual void on_packet_end(const Packet& p) { (void)p; }
  // The per-packet callbacks this observer uses, as kOn* bits, asked once when the engine is
  // built: a callback left out is never called. Default: all, so an observer that does not
  // say gets every call. The callbacks without a bit are always called.
  // perf: an observer that ignores on_packet and on_tcp_state spares the engine a virtual call
  // on every packet and every state change (l45 bench many-flows: ~10 instructions a packet).
  static constexpr uint32_t kOnPacket = 1u << 0;
  static constexpr uint32_t kOnTcpState = 1u << 1;
  static constexpr uint32_t kAllCallbacks = ~uint32_t{0};
  virtual uint32_t callbacks() const { return kAllCallbacks; }
};

struct EngineStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;               // wire lengths
  uint64_t non_ip = 0;              // decoded fine, no IP (ARP, LLDP, ...): not flows
  uint64_t undecodable = 0;         // the decoder stopped on an error (its reason is in drops)
  uint64_t fragments_absorbed = 0;  // IP fragments kept for their datagram, or dropped
  uint64_t no_key = 0;              // IP but no flow key (flow_no_key, icmp_error_no_flow)
  uint64_t flow_packets = 0;        // packets that reached a flow
  uint64_t tcp_packets = 0, udp_packets = 0, icmp_packets = 0, other_packets = 0;
  uint64_t flows_created = 0;
  uint64_t flows_closed[5] = {};  // by FlowEnd
  uint64_t flows_refused = 0;
  uint64_t flows_stopped = 0;
  uint64_t sides_disabled = 0;
  uint64_t icmp_errors = 0;   // attributed to a flow
  uint64_t tcp_partial = 0;   // picked up without a handshake
  uint64_t stream_bytes = 0;  // reassembled bytes delivered, both sides
  uint64_t stream_gaps = 0, stream_gap_bytes = 0;
  uint64_t stream_mismatches = 0;
  uint64_t buffered_bytes = 0, buffered_peak = 0;  // stream buffers (budget) now and at most
  DropCounters drops;                              // every drop, refusal and anomaly, by reason
};

class Engine {
 public:
  explicit Engine(const EngineConfig& cfg = {}, FlowObserver* observer = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One captured packet (link type and timestamp in its meta), read in place. The engine keeps
  // a share() of it only when it must (IP fragments wait for their datagram); a borrowed
  // packet's bytes must outlive the engine then.
  // perf: by reference, so most packets cost no reference count (l45 bench).
  void process(const Packet& pkt);
  void process(Packet&& pkt) { process(static_cast<const Packet&>(pkt)); }
  // A batch, as a source yields it: the same as process() on each packet in order (every
  // callback and counter alike), cheaper per packet. perf: the batch is decoded and keyed
  // first and the flows it needs are prefetched before any state work, so the cache misses of
  // many flows overlap instead of stalling one packet after another (l45 bench many-flows).
  void process(std::span<const Packet> pkts);
  // A live source with no traffic: move the clock and expire idle flows.
  void advance(Timestamp now);
  // End of input: every open flow is flushed and closed (FlowEnd::EndOfInput), oldest first,
  // and the memory TCP state took is freed.
  void finish();

  // Per flow control (no-ops on a stale handle).
  void stop_tracking(FlowHandle h);
  void disable_side(FlowHandle h, Side s);
  // One side's overlap policy (StreamConfig::policy for the rest), for its next segments.
  void set_overlap_policy(FlowHandle h, Side s, OverlapPolicy p);

  const Flow* flow(FlowHandle h) const { return table_.get(h); }
  template <typename F>
  void for_each_flow(F&& f) const {
    table_.for_each([&](FlowHandle, const Flow& fl) { f(fl); });
  }
  size_t active_flows() const { return table_.size(); }
  Timestamp now() const { return now_; }

  const std::string& tunnel_path(uint32_t id) const { return tunnels_.at(id); }
  const EngineStats& stats() const;
  const EngineConfig& config() const { return cfg_; }
  const FlowTableStats& table_stats() const { return table_.stats(); }
  const DefragStats& defrag_stats() const { return defrag_.stats(); }
  const StreamStats& stream_stats() const { return stream_totals_; }  // all streams together
  // Bytes the engine holds: the flow table (preallocated), TCP state, stream buffers.
  size_t memory_bytes() const;
  // Bytes of one TCP flow's state block (both endpoints and both streams, without buffered
  // data): what a TCP flow adds to its Flow.
  static size_t tcp_state_bytes();

 private:
  class Sink;
  // What the batch driver knows ahead about one packet: its flow key (none: no key) and the
  // key's table hash.
  struct Ahead {
    bool done;   // keyed (and kp and hash when keyed) are set
    bool keyed;  // the packet has a flow key
    KeyedPacket kp;
    uint64_t hash;
  };
  static constexpr size_t kBatch = 16;
  static constexpr size_t kHistoryAhead = 4;  // packets: see process(span)
  // The batch driver's work space (perf: allocated once, not built on each call).
  struct Batch {
    alignas(PacketView) std::byte views[kBatch][sizeof(PacketView)];
    Ahead ahead[kBatch];
    const Flow* guess[kBatch];
    TcpFrame frame[kBatch];
    bool framed[kBatch];  // frame[i] holds packet i, views[i] is built only if needed
  };
  void begin(const Packet& pkt);
  void step(const Packet& pkt, const PacketView& v, const Ahead* ahead);
  bool key_ahead(const PacketView& v, Ahead& a) const;
  void handle(const PacketView& v, const Ahead* ahead);
  void track(const PacketView& v, const KeyedPacket& kp, uint64_t hash);
  void track_found(const PacketView& v, const KeyedPacket& kp, uint64_t hash,
                   const FlowTable<Flow>::InsertResult& r, bool unpredicted = false);
  // `view`: room for a PacketView (built there when the segment needs track()'s general path).
  void step_framed(const Packet& pkt, const TcpFrame& fr, const Ahead& a, std::byte* view);
  void start_flow(FlowHandle h, Flow& f, const PacketView& v, const KeyedPacket& kp);
  // perf: `from`, the sender, as track() worked it out, not side_of() again (l45 bench
  // many-flows: ~8 instructions a packet).
  void tcp_segment(Flow& f, Side from, const TcpView& t, Bytes payload);
  void close_flow(Flow& f, FlowEnd why);
  void restart(FlowHandle h, Flow& f, const PacketView& v, const KeyedPacket& kp, uint64_t hash);
  void report_tcp_states(const Flow& f, const TcpEndpointState before[2]);
  void settle_holes(Flow& f, bool all);
  void flush_streams(Flow& f, bool release);
  void expire();
  uint8_t timeout_class(const Flow& f) const;
  uint32_t intern_tunnel(const PacketView& v);
  void free_tcp(Flow& f);
  // A hint: every line of f's TCP state (none without one) is wanted soon.
  static void prefetch_tcp(const Flow& f) {
    if (!f.tcp_) return;
    const char* t = reinterpret_cast<const char*>(f.tcp_);
    for (size_t b = 0; b < sizeof(Flow::Tcp); b += 64)
      __builtin_prefetch(t + b);
  }

  // perf: Flow::Tcp blocks are carved from chunks the engine keeps until it is destroyed, and
  // a closed flow's block goes on a free list threaded through the unused blocks: no malloc
  // header (16 bytes a TCP flow) and no malloc/free per connection (l45 bench many-flows:
  // malloc and free of Flow::Tcp were ~50 instructions a packet). The chunks hold the peak of
  // concurrent TCP flows (at most max_flows) until finish(). perf: a chunk is one huge page
  // (HugeAlloc; l45 bench many-flows: the blocks are read at random).
  class TcpSlab {
   public:
    // perf: the free list's pop inline (l45 bench many-flows: the call was ~25 instructions a
    // TCP flow).
    void* take() {
      if (!free_) return take_fresh();
      void* b = free_;
      std::memcpy(&free_, b, sizeof free_);
      return b;
    }
    void give(void* block);
    size_t bytes() const;

   private:
    void* take_fresh();  // a block never used yet (a new chunk when the last one is used up)
    static constexpr size_t kChunkBytes = detail::kHugePage;
    static constexpr size_t kBlocksPerChunk = kChunkBytes / sizeof(Flow::Tcp);
    struct Free {
      void operator()(std::byte* p) const { HugeAlloc<std::byte>().deallocate(p, kChunkBytes); }
    };
    std::vector<std::unique_ptr<std::byte, Free>> chunks_;
    void* free_ = nullptr;            // the first free block; each free block holds the next
    size_t fresh_ = kBlocksPerChunk;  // blocks of the last chunk handed out at least once
  };

  EngineConfig cfg_;
  FlowObserver* obs_;
  FlowObserver none_;
  bool bounds_ = false;  // obs_->packet_bounds()
  // obs_->callbacks() has kOnPacket, kOnTcpState (no observer: neither)
  bool want_packet_ = true, want_tcp_state_ = true;
  // The streams in table_ charge budget_, count into stream_totals_ and give their history
  // blocks to stream_blocks_ until they are destroyed: these are declared first so they are
  // destroyed last.
  StreamBudget budget_;
  StreamStats stream_totals_;
  StreamBlocks stream_blocks_;
  TcpSlab tcp_slab_;  // before table_: the flows' TCP state is destroyed first (~Engine)
  FlowTable<Flow> table_;
  IpDefragmenter defrag_;
  std::vector<std::string> tunnels_{""};
  Timestamp now_{};
  Timestamp pkt_ts_{};
  const Packet* cur_pkt_ = nullptr;  // the packet being handled: its payload may be held
  uint64_t serial_ = 0;
  mutable EngineStats stats_;
  std::unique_ptr<Batch> batch_;  // made by the first process(span)
};

}  // namespace l45
