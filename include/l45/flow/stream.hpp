// TcpStream: one side's TCP byte stream (the reassembly buffer the flow engine owns two of per
// connection). It maps sequence numbers to 64-bit stream offsets, delivers in-order bytes at
// once (no copy: the sink sees the caller's payload), buffers out-of-order segments under a
// per-stream cap and a shared budget, applies an overlap policy, compares retransmissions with
// what was delivered, and turns holes the caller gives up on into explicit gap records. It does
// not track TCP state, windows or acks: the engine built on top decides when to skip_to().
//
// Sequence space (RFC 793 3.3, RFC 9293 3.4): a SYN and a FIN each take one sequence number.
// Stream offset 0 is ISN+1 (init) or the first sequence seen (init_midstream). Offsets are
// 64-bit, so streams past 4 GiB work; seq -> offset goes through the signed 32-bit distance to
// the next expected byte, which is what makes wraparound at 2^32 invisible.
//
// Config (StreamConfig, shared: a stream keeps a pointer to it, so it must outlive the stream;
// one config usually serves every stream of an engine): overlap policy (First: bytes already held
// win, the BSD/Windows-like default; Last: new bytes replace buffered bytes not yet delivered --
// old Linux/Solaris-like as in Suricata's os-policy; bytes already delivered are never replaced, so
// an overlap of in-order data is a mismatch under either policy), max_buffered and max_chunks
// (out-of-order bytes and chunks per stream; chunk headers are bounded by max_chunks, not by the
// byte accounting), history (recently delivered bytes kept to compare retransmissions; a
// retransmission of older bytes, of bytes once declared a gap, or of bytes the budget gave no
// room to keep, is counted as unverifiable, not compared), depth (stop delivering after this
// many bytes, then ignore the stream; 0 = no limit), budget (shared accounting hook for
// out-of-order and history bytes, may be null), totals (shared statistics, may be null), blocks
// (spare history blocks reused across streams, may be null: StreamBlocks).
// Per-OS policies beyond these two (Suricata's linux, vista, hpux...) are not implemented.
//
// Anomalies: add() returns stream_rexmit_mismatch if the segment raised one, otherwise the first
// DropReason it met (None when the segment was taken whole): stream_ooo_limit, stream_budget,
// stream_rexmit_mismatch, stream_rexmit_unverifiable, stream_depth, stream_out_of_window. Every one
// is also counted in the shared totals (StreamConfig::totals). Keep-alive probes (RFC 9293 3.8.4:
// seq = next - 1, at most one byte) are counted and ignored, not compared. Each stream keeps only
// StreamCounters (delivered and gap bytes, gaps, mismatches) for itself.
//
// Memory: sizeof(TcpStream) is 72 bytes on x86-64 (config pointer, offsets, two owning pointers,
// StreamCounters), checked in stream_test (<= 72); the engine holds two per TCP flow. No heap when
// data comes in order and history is 0. With history on, the ring is allocated at the first
// delivery with 256 bytes and doubles (one reallocation each time, never per segment) while the
// bytes delivered since the last hole outgrow it, up to `history`: a flow that sent 200 bytes
// holds 256. The out-of-order store (a map) is allocated with the first out-of-order segment and
// freed when it empties, plus one heap block per buffered chunk. History and out-of-order bytes
// are reserved from `budget`; a refused history reservation keeps the ring as it is (or none),
// the bytes it could not keep are unverifiable. release_buffers() frees both (the engine calls
// it when a connection is closed); disable() and the destructor do too.
//
//   struct Out : StreamSink {
//     void on_data(uint64_t off, Bytes b) override { app.append(b); }
//     void on_gap(uint64_t off, uint64_t len) override { app.lost(len); }
//     void on_mismatch(const StreamMismatch& m) override { weird("rexmit_inconsistency"); }
//   } out;
//   TcpStream s;                       // the default StreamConfig; or TcpStream s(engine_cfg)
//   s.add(tcp.seq(), tcp.flags(), view.payload(), out);  // first segment: SYN -> init()
//   ...
//   s.skip_to(ack, out);               // the peer acked past a hole: deliver it as a gap
//   s.flush(out);                      // connection end: buffered data with gaps between
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "l45/core/drop_reason.hpp"
#include "l45/packet/bytes.hpp"
#include "l45/packet/packet.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {

enum class OverlapPolicy : uint8_t {
  First,  // keep bytes already received (BSD, Windows; Suricata "bsd"/"windows"; default)
  Last,   // new bytes replace buffered, undelivered ones (Suricata "linux-old"/"solaris")
};

// A shared accounting hook so the engine can cap buffered out-of-order data and retransmission
// history over all streams.
// reserve() returns false to refuse; every successful reserve is matched by one release().
class StreamMemory {
 public:
  virtual ~StreamMemory() = default;
  virtual bool reserve(uint64_t bytes) = 0;
  virtual void release(uint64_t bytes) = 0;
};

// The simple hook: one byte limit for everything that shares it.
class StreamBudget final : public StreamMemory {
 public:
  explicit StreamBudget(uint64_t limit) : limit_(limit) {}
  bool reserve(uint64_t bytes) override {
    if (bytes > limit_ - used_) return false;
    used_ += bytes;
    return true;
  }
  void release(uint64_t bytes) override { used_ -= bytes <= used_ ? bytes : used_; }
  uint64_t used() const { return used_; }
  uint64_t limit() const { return limit_; }

 private:
  uint64_t limit_;
  uint64_t used_ = 0;
};

// Statistics of every stream that shares a config (StreamConfig::totals).
struct StreamStats {
  uint64_t segments = 0;            // add() calls on an enabled stream
  uint64_t bytes_delivered = 0;     // handed to on_data
  uint64_t ooo_segments = 0;        // segments that had to be buffered (some bytes ahead)
  uint64_t rexmit_segments = 0;     // segments with bytes at offsets already delivered
  uint64_t rexmit_bytes = 0;        // those bytes, each counted once per segment
  uint64_t mismatches = 0;          // on_mismatch calls
  uint64_t unverifiable_bytes = 0;  // retransmitted bytes not kept in history to compare
  uint64_t gaps = 0;                // on_gap calls
  uint64_t gap_bytes = 0;           // bytes declared missing
  uint64_t refused_segments = 0;    // out-of-order data refused (cap, budget, window)
  uint64_t refused_bytes = 0;
  uint64_t depth_bytes = 0;  // bytes not delivered because of the depth limit
  uint64_t keepalives = 0;   // RFC 9293 3.8.4 probes: seq = next - 1, <= 1 byte
};

// What each stream counts for itself (counters()), since its last init().
struct StreamCounters {
  uint64_t bytes_delivered = 0;  // handed to on_data
  uint64_t gap_bytes = 0;        // bytes declared missing
  uint32_t gaps = 0;             // on_gap calls, saturating at 2^32 - 1
  uint32_t mismatches = 0;       // on_mismatch calls, saturating at 2^32 - 1
};

// Spare history blocks for the streams that share it (StreamConfig::blocks). perf: every
// stream that delivers data takes a small history block and most never grow it, so a stream
// gives its block back here when it lets it go and the next stream takes it, instead of a
// malloc and a free per connection (l45 bench many-flows: ~25 instructions a packet). At most
// 1024 blocks (~90 KiB) are kept; they are freed with this. Not thread-safe: one per engine.
class StreamBlocks {
 public:
  StreamBlocks() = default;
  ~StreamBlocks();
  StreamBlocks(const StreamBlocks&) = delete;
  StreamBlocks& operator=(const StreamBlocks&) = delete;

 private:
  friend class TcpStream;
  static constexpr uint32_t kMax = 1024;
  std::byte* head_ = nullptr;  // each spare block holds the next one's address
  uint32_t n_ = 0;
};

struct StreamConfig {
  OverlapPolicy policy = OverlapPolicy::First;
  uint32_t max_buffered = 1u << 20;  // out-of-order bytes held by this stream
  // Out-of-order chunks held: bounds the per-chunk heap overhead (~80 B each) that byte
  // accounting does not see, against a peer sending one-byte segments with holes between.
  uint32_t max_chunks = 4096;
  uint32_t history = 4096;         // delivered bytes kept to verify retransmissions (at most)
  uint64_t depth = 0;              // deliver at most this many bytes; 0 = no limit
  StreamMemory* budget = nullptr;  // shared cap; not owned; must outlive the stream
  StreamStats* totals = nullptr;   // shared statistics; not owned; must outlive the stream
  StreamBlocks* blocks = nullptr;  // spare history blocks; may be null; not owned; must outlive
                                   // the stream
};

// Bytes at [offset, offset + length) arrived again with other content. `original` is what was
// delivered or buffered first, `replacement` the new copy. Both spans live only during the call.
struct StreamMismatch {
  uint64_t offset = 0;
  uint64_t length = 0;
  Bytes original;
  Bytes replacement;
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Contiguous bytes at `offset` (always the next undelivered offset). The span is valid only
  // during the call.
  virtual void on_data(uint64_t offset, Bytes data) = 0;
  // [offset, offset + length) will never be delivered; delivery continues after it.
  virtual void on_gap(uint64_t offset, uint64_t length) { (void)offset, (void)length; }
  // Bytes at [offset, offset + length), already delivered, came again (before any on_mismatch
  // for them).
  virtual void on_retransmission(uint64_t offset, uint64_t length) { (void)offset, (void)length; }
  virtual void on_mismatch(const StreamMismatch& m) { (void)m; }
};

class TcpStream {
 public:
  TcpStream();  // a shared default StreamConfig
  // Keeps &cfg: cfg must outlive the stream (and whatever stream it is moved into).
  explicit TcpStream(const StreamConfig& cfg);
  TcpStream(const StreamConfig&&) = delete;  // a temporary config would dangle
  ~TcpStream();
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  TcpStream(TcpStream&& o) noexcept;
  TcpStream& operator=(TcpStream&& o) noexcept;

  // From the SYN: offset 0 is isn + 1.
  void init(TcpSeq isn);
  // Picked up without the SYN: offset 0 is first_seq.
  void init_midstream(TcpSeq first_seq);
  bool initialized() const { return initialized_; }

  // One segment: its sequence number, TCP flags (tcp_flag::kSyn / kFin matter) and payload.
  // On a stream not yet initialized, a SYN calls init() and anything else init_midstream().
  //
  // `owner`, when given, is the packet `payload` lies in. When its bytes are borrowed from
  // memory that lives anyway (a mapped capture file: Packet::is_borrowed()), the history that
  // verifies retransmissions holds them (Packet::Hold) instead of copying them.
  DropReason add(TcpSeq seq, uint8_t flags, Bytes payload, StreamSink& sink,
                 const Packet* owner = nullptr);

  // The caller knows nothing below `seq` will come (an ack past a hole, a FIN beyond it):
  // buffered data below it is delivered with gap records for the holes, then delivery goes on.
  void skip_to(TcpSeq seq, StreamSink& sink);
  // Connection end: everything buffered is delivered, holes as gaps.
  // perf: most streams have nothing buffered and no hole before their FIN, so the check is
  // inline and the work out of line (l45 bench many-flows, callgrind).
  void flush(StreamSink& sink) {
    if (ooo_ || (fin_off_ != kNoFin && next_ < fin_off_)) flush_rest(sink);
  }

  // Frees the history ring and the out-of-order store and gives their bytes back to the budget,
  // delivering nothing (call flush() first to deliver what is buffered). The stream stays usable:
  // retransmissions of what was delivered are unverifiable from then on.
  // perf: inline check, as flush(); the engine releases each stream at least twice (when both
  // sides closed and when the flow goes).
  void release_buffers() {
    if (ooo_ || history_) release_rest();
  }
  // A disabled stream drops what it holds and ignores further segments.
  void disable();
  bool disabled() const { return disabled_; }
  // This stream's overlap policy (the config's until changed); it applies to the segments
  // that come after the change.
  void set_policy(OverlapPolicy p) { policy_ = p; }
  OverlapPolicy policy() const { return policy_; }

  uint64_t next_offset() const { return next_; }  // bytes delivered + gap bytes
  TcpSeq next_seq() const { return base_ + static_cast<uint32_t>(next_); }
  uint64_t buffered_bytes() const;
  size_t buffered_chunks() const;
  // Memory the history holds: the ring's bytes, or the held segments' records (and copies).
  uint64_t history_bytes() const;
  bool fin_seen() const { return fin_off_ != kNoFin; }
  // True once every byte before the FIN has been delivered or skipped.
  bool finished() const { return fin_seen() && next_ >= fin_off_; }
  StreamCounters counters() const { return {next_ - gap_bytes_, gap_bytes_, gaps_, mismatches_}; }
  const StreamConfig& config() const { return *cfg_; }
  // A hint: the history is wanted soon (a batch driver a few packets ahead). The lines of a
  // first-size block of held segments (88 bytes, 16-byte aligned: up to three lines); the
  // start of a larger one.
  void prefetch_history() const {
    if (!history_) return;
    const std::byte* p = history_.get();
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 87);
  }

 private:
  static constexpr uint64_t kNoFin = ~uint64_t{0};
  struct OutOfOrder;
  struct Held;

  DropReason add_in_order(Bytes payload, StreamSink& sink, const Packet* owner);
  DropReason add_rest(TcpSeq seq, uint8_t flags, Bytes payload, StreamSink& sink,
                      const Packet* owner);
  void flush_rest(StreamSink& sink);
  void release_rest();
  void retransmission(uint64_t off, Bytes data, StreamSink& sink, DropReason& why);
  DropReason buffer(uint64_t off, Bytes data, StreamSink& sink);
  void deliver(Bytes data, StreamSink& sink, const Packet* owner = nullptr);
  void gap_to(uint64_t off, StreamSink& sink);
  void drain(StreamSink& sink);
  void release_next_chunk(StreamSink& sink);
  void remember(Bytes data, const Packet* owner);
  void grow_history(uint64_t want);
  void hold(Bytes data, const Packet* owner);
  void hold_rest(Bytes data, const Packet* owner);
  void forget_history();
  Held& held() const { return *reinterpret_cast<Held*>(history_.get()); }
  std::unique_ptr<std::byte[]> make_held(uint32_t cap) const;
  void free_held(std::unique_ptr<std::byte[]> mem) const;
  void free_buffer();
  void free_history();
  void count(uint64_t StreamStats::*field, uint64_t n = 1) const {
    if (cfg_->totals) cfg_->totals->*field += n;
  }

  // perf: 72 bytes; the engine holds two per TCP flow (one million flows in 1 GiB).
  const StreamConfig* cfg_;
  uint64_t next_ = 0;  // next offset to deliver; delivered bytes are next_ - gap_bytes_
  uint64_t fin_off_ = kNoFin;
  uint64_t gap_bytes_ = 0;
  // The history: a ring of hist_cap_ bytes (offset o at o % hist_cap_), or with hist_held_ a
  // Held placed in these bytes (hist_cap_: what the budget gave for it).
  std::unique_ptr<std::byte[]> history_;
  std::unique_ptr<OutOfOrder> ooo_;  // null when nothing is buffered
  TcpSeq base_;                      // sequence number of offset 0
  uint32_t hist_cap_ = 0;            // valid while history_ is set
  uint32_t hist_fill_ = 0;  // delivered bytes right below next_ held in history_ (at least)
  uint32_t gaps_ = 0;
  uint32_t mismatches_ = 0;
  bool initialized_ = false;
  bool disabled_ = false;
  bool hist_held_ = false;  // history_ holds a Held
  OverlapPolicy policy_;    // cfg_->policy unless set_policy() changed it
};

}  // namespace l45
