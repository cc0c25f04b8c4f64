// TcpConnection: one TCP connection's state as a middlebox infers it, for both endpoints
// separately (mOS's dual stack). It is fed one segment at a time with the direction it travelled
// (relative to the connection's first packet); it owns no flow table and no reassembly.
//
// Endpoint states (TcpEndpointState) follow RFC 9293 3.3.2, inferred the mOS way: a segment
// first updates its sender (what it sent reveals its state), then the receiver (what it must
// have done on receiving it). Client SYN: client SynSent, server Listen; SYN-ACK: server
// SynRcvd; the ACK of the SYN-ACK: both Established. Closing runs FinWait1/2, CloseWait,
// LastAck, Closing, TimeWait; simultaneous open and close are recognised. An accepted RST puts
// both sides in Reset (a receiver in Listen ignores it, RFC 9293 3.10.7.2).
//
// Roles: the client is the SYN sender. A SYN-ACK seen before any SYN flips the roles (its sender
// is the server, history gets '^'). A first packet that is neither SYN nor SYN-ACK marks the
// connection partial() and both sides are assumed Established (the first sender is the client).
// One-sided captures work: nothing needs the other direction to have been seen.
//
// Acceptance rules (untrusted input: never an exception, a named anomaly instead):
//  * RST (RFC 5961 3.2 in spirit, lenient like Linux conntrack's tcp_in_window): accepted when
//    its sequence number lies within the receiver's largest advertised window (scaled) around
//    the highest sequence the sender was seen to reach: snd_nxt - wnd <= seq <= snd_nxt + wnd.
//    Exact RCV.NXT matching is impossible for a middlebox (it cannot know what the receiver
//    got), hence the window on both sides. A receiver in SynSent accepts a RST only when it
//    acknowledges its SYN (RFC 9293 3.10.7.3). Nothing known about either side: accepted.
//    Else: tcp_rst_out_of_window, no state change.
//  * FIN: the same window rule on seq + payload length; a FIN sent to a side still in SynSent by
//    a side that never sent its SYN is dropped by that receiver (RFC 9293 3.10.7.3 "fifth"):
//    tcp_fin_out_of_window, no state change.
//  * PAWS (RFC 7323 5.3): a RST or FIN whose TSval is older than the last TSval the sender used,
//    or, when the receiver is in SynSent and put a timestamp on its SYN, whose TSecr does not
//    echo one of the receiver's TSvals (Linux's PAWS-active check in tcp_rcv_synsent_state_
//    process), is tcp_paws_reject, no state change. RFC 7323 5.3 R1 exempts RSTs in
//    synchronized states; l45 does not: keeping a connection past a stale-timestamp RST costs a
//    monitor little, while honouring it opens the Suricata bug 3286 evasion. TS.Recent moves
//    only on segments inside the window (RFC 7323 4.3).
//  * A RST from a SynSent side whose sequence number is the ACK of a segment just refused from
//    the peer is its reply to an unacceptable ACK (RFC 9293 3.10.7.3): no state change, no
//    anomaly.
//  * SYN with FIN or RST: tcp_bad_flags, history only.
//  * Window scale (RFC 7323 2.2/2.3): used once both SYNs carried the option; a shift above 14 is
//    clamped to 14 and reported as tcp_wscale_range (Zeek's TCP_scale_range weird).
//
// Reuse: a SYN (no ACK) with a new ISN when either side is in TimeWait, Closed or Reset returns
// TcpOutcome::NewConnection; nothing is changed and the caller starts a new TcpConnection.
//
// Zeek's conn.log view: history() and conn_state() follow Zeek's conn.log (base/protocols/conn)
// letters and states. History records every segment given (as Zeek does), letters s h a d f r
// c g t w i q and '^'; S/H/F/R repeat when the sequence number differs (Zeek's rule); the
// power-of-ten repeats of t, w, g are not produced. conn_state() is computed from a Zeek-style
// endpoint model (Inactive, SynSent, SynAckSent, Partial, Established, Closed, Reset) that only
// segments accepted above update, so a refused evasion RST does not make it RSTO/RSTR (Zeek,
// which has no window check, would). Two deliberate differences from Zeek: the originator of a
// flow picked up mid-stream is its first sender (Zeek guesses by "likely server ports"), and
// 'g' means "the peer acknowledged bytes that were never seen or not captured" rather than
// coming from a reassembler as Zeek's does (they agree on every oracle trace).
//
// Memory: sizeof(TcpConnection) is 160 bytes on x86-64 (checked in the test; the engine holds
// one per TCP flow next to two TcpStreams): flags and the Zeek states are bits, optional
// sequence numbers are a TcpSeq plus a presence bit, per-side packet counts saturate at 32 bits
// (the engine keeps exact per-side counters of its own). The history (TcpHistory, 16 bytes)
// allocates only past 15 letters, nothing else is on the heap. Anomalies are not counted here:
// each is the TcpResult of its segment, which the caller counts (the engine in stats().drops).
//
// Drop reasons (anomalies; TcpResult::anomaly): tcp_rst_out_of_window, tcp_fin_out_of_window,
// tcp_paws_reject, tcp_wscale_range, tcp_bad_flags, and bad_checksum when the caller reports one
// (SegmentMeta).
//
//   TcpConnection c;
//   auto r = c.on_segment(FlowDir::Forward, *view.tcp(), view.payload_len(), ts,
//                         {.captured_len = uint32_t(view.payload().size())});
//   if (r.outcome == TcpOutcome::NewConnection) { /* table: replace c, feed the SYN again */ }
//   if (c.endpoint(Side::Server).state == TcpEndpointState::Established) ...;
//   log(c.history(), zeek_conn_state_name(c.conn_state()));
#pragma once

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "l45/core/drop_reason.hpp"
#include "l45/core/time.hpp"
#include "l45/flow/direction.hpp"
#include "l45/packet/tcp.hpp"
#include "l45/packet/tcp_seq.hpp"

namespace l45 {

enum class TcpEndpointState : uint8_t {
  Listen,  // also "Closed, nothing sent yet": the server before its SYN-ACK
  SynSent,
  SynRcvd,
  Established,
  FinWait1,
  FinWait2,
  Closing,
  TimeWait,
  CloseWait,
  LastAck,
  Closed,
  Reset,
};
std::string_view tcp_endpoint_state_name(TcpEndpointState s);  // "SYN_SENT", ...

// Zeek's conn_state values (conn.log).
enum class ZeekConnState : uint8_t {
  S0,
  S1,
  SF,
  REJ,
  S2,
  S3,
  RSTO,
  RSTR,
  RSTOS0,
  RSTRH,
  SH,
  SHR,
  OTH
};
std::string_view zeek_conn_state_name(ZeekConnState s);  // "S0", ...

enum class TcpOutcome : uint8_t {
  Ok,             // segment applied (anomaly may still say something, e.g. tcp_wscale_range)
  Ignored,        // refused: anomaly says why; no state changed (history still records it)
  NewConnection,  // a SYN reusing this connection's tuple: start a new TcpConnection
};

// perf: four bytes without padding, so the out-of-line tracker returns it in one register
// (with a hole g++ built it on the stack and read it back wider than its stores: l45 bench
// many-flows, a stall on every segment header prediction did not take, perf).
struct TcpResult {
  TcpOutcome outcome = TcpOutcome::Ok;
  // Header prediction took it: an ACK or data segment between established endpoints, so
  // neither endpoint's state changed.
  bool predicted = false;
  DropReason anomaly = DropReason::None;
};
static_assert(sizeof(TcpResult) == 4);

// Zeek's history letters of one connection: 15 inline, more on the heap (only a connection that
// repeats S, H, F or R with new sequence numbers gets that far). Reads as a std::string_view.
// perf: 16 bytes where a std::string is 32 (per-flow memory, see the header).
class TcpHistory {
 public:
  TcpHistory() = default;
  TcpHistory(const TcpHistory& o) { append(o.view()); }
  TcpHistory(TcpHistory&& o) noexcept { swap(o); }
  TcpHistory& operator=(TcpHistory o) noexcept {
    swap(o);
    return *this;
  }
  ~TcpHistory();

  // perf: the inline letters' case here, the rest out of line (l45 bench many-flows: the call
  // was ~20 instructions a letter, ten letters a short connection).
  void push_back(char c) {
    const uint8_t n = uint8_t(b_[kTag]);  // kHeap (0xff) is above kTag
    if (n < kTag) {
      b_[n] = c;
      b_[kTag] = char(n + 1);
      return;
    }
    push_back_slow(c);
  }
  std::string_view view() const {
    return on_heap() ? std::string_view(heap_data(), heap_size())
                     : std::string_view(b_, uint8_t(b_[kTag]));
  }
  size_t size() const { return view().size(); }
  bool empty() const { return size() == 0; }
  char operator[](size_t i) const { return view()[i]; }
  operator std::string_view() const { return view(); }
  operator std::string() const { return std::string(view()); }
  friend bool operator==(const TcpHistory& a, const TcpHistory& b) { return a.view() == b.view(); }
  friend bool operator==(const TcpHistory& a, std::string_view b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const TcpHistory& h);

 private:
  // Inline: letters in b_[0..14], their count in b_[15]. Heap: the pointer in b_[0..7], the
  // count in b_[8..11], kHeap in b_[15]; capacity is the count rounded up to a power of two
  // (at least kFirstHeap), so it need not be stored.
  static constexpr size_t kTag = 15;
  static constexpr char kHeap = char(0xff);
  static constexpr uint32_t kFirstHeap = 32;
  bool on_heap() const { return b_[kTag] == kHeap; }
  char* heap_data() const;
  uint32_t heap_size() const;
  void push_back_slow(char c);  // full inline (moves to the heap) or on the heap
  void append(std::string_view s);
  void swap(TcpHistory& o) noexcept;

  alignas(8) char b_[16] = {};
};

// One endpoint as the middlebox sees it.
// perf: the flags are one-bit fields so that an endpoint is 36 bytes (per-flow memory, see the
// header).
struct TcpEndpoint {
  TcpEndpointState state = TcpEndpointState::Listen;
  uint8_t wscale = 0;           // shift applied to its windows (0 until both SYNs had the option)
  bool seen : 1 = false;        // has sent at least one segment
  bool isn_known : 1 = false;   // its SYN was seen
  bool peer_acked : 1 = false;  // snd_una valid
  bool fin_sent : 1 = false;
  bool ts_seen : 1 = false;  // it sent a timestamp option
  bool syn_ts : 1 = false;   // its SYN carried a timestamp
  TcpSeq isn;                // initial sequence number (valid when isn_known)
  TcpSeq snd_una;            // highest ACK the peer sent for it (valid when peer acked)
  TcpSeq snd_nxt;            // one past the highest sequence it was seen to send (SYN/FIN count)
  TcpSeq fin_seq;            // sequence number of its FIN
  uint32_t max_window = 0;   // largest window it advertised, scaled (RFC 7323 2.2)
  uint32_t ts_recent = 0;    // its latest TSval (RFC 7323 4.3 TS.Recent as its peer keeps it)
  uint32_t syn_tsval = 0;
  uint32_t packets = 0;  // segments it sent, saturating at 2^32 - 1
  friend bool operator==(const TcpEndpoint&, const TcpEndpoint&) = default;
};

class TcpConnection {
 public:
  // What the caller knows beyond the header. `captured_len`: payload bytes actually captured
  // (a snap length can cut them); bytes not captured are a content gap ('g') once the peer
  // acknowledges them, as Zeek reports them. `bad_checksum`: the caller verified the checksum
  // and it failed; recorded (history 'c') and the segment is otherwise ignored, as Zeek does.
  struct SegmentMeta {
    uint32_t captured_len = UINT32_MAX;  // default: all of payload_len
    bool bad_checksum = false;
  };
  // perf: inline, so that a segment header prediction takes (predicted()) costs no call and no
  // frame of the general path's size (l45 bench many-flows: ~35 instructions on each of them).
  [[gnu::always_inline]] TcpResult on_segment(FlowDir dir, const TcpView& tcp, uint32_t payload_len,
                                              Timestamp ts, SegmentMeta meta) {
    if (predict(dir, tcp, payload_len, meta)) return {.outcome = TcpOutcome::Ok, .predicted = true};
    return on_unpredicted(dir, tcp, payload_len, ts, meta);
  }
  // on_segment() in two steps, for a caller that looks at the endpoints before a segment only
  // when it may change their state: predict() is header prediction (true: it took the segment,
  // which changed neither endpoint's state, and on_segment() would have returned {Ok,
  // predicted}; false: it changed nothing), on_unpredicted() is the rest of on_segment().
  [[gnu::always_inline]] bool predict(FlowDir dir, const TcpView& tcp, uint32_t payload_len,
                                      SegmentMeta meta) {
    if (!started_) return false;
    const size_t s = index(side_of(dir));
    return predicted(s, 1 - s, tcp, payload_len, meta);
  }
  // Every segment header prediction did not take (and a connection's first): control() when
  // it takes the segment, else full_path().
  TcpResult on_unpredicted(FlowDir dir, const TcpView& tcp, uint32_t payload_len, Timestamp ts,
                           const SegmentMeta& meta);
  TcpResult on_segment(FlowDir dir, const TcpView& tcp, uint32_t payload_len, Timestamp ts) {
    return on_segment(dir, tcp, payload_len, ts, SegmentMeta{});
  }

  const TcpEndpoint& endpoint(Side s) const { return ep_[index(s)]; }
  Side side_of(FlowDir d) const {
    return (d == FlowDir::Forward) != flipped_ ? Side::Client : Side::Server;
  }
  bool flipped() const { return flipped_; }  // the client sent the second direction
  bool partial() const { return partial_; }  // picked up mid-stream
  bool simultaneous_open() const { return sim_open_; }
  // Payload bytes in sequence space (highest data sequence minus the first), gaps included:
  // Zeek's endpoint size, conn.log's orig_bytes / resp_bytes.
  uint64_t payload_size(Side s) const { return hs_[index(s)].size; }
  const TcpHistory& history() const { return history_; }
  ZeekConnState conn_state() const;
  // Tests and fuzzing: every segment takes the general path (header prediction and the
  // control segments' fast path off), so the paths can be compared.
  void disable_prediction_for_test() { no_prediction_ = true; }

 private:
  enum class ZeekState : uint8_t {
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset
  };
  struct HistoryState {
    // The last S/H, F and R sequence numbers; each is valid once its letter is in history.
    TcpSeq last_syn, last_fin, last_rst;
    TcpSeq uncaptured;    // first payload byte not captured, not yet acked (has_uncaptured)
    TcpSeq max_data_end;  // one past the highest payload byte seen ('t'; data_seen)
    TcpSeq data_base;     // base_set
    uint32_t size = 0;    // sequence-space payload bytes (Zeek's endpoint size; below 2^31)
  };
  // perf: one side's flags and Zeek state in one byte; kept out of HistoryState, whose padding
  // would cost 8 bytes per connection.
  struct SideBits {
    bool has_uncaptured : 1 = false;
    bool data_seen : 1 = false;
    bool base_set : 1 = false;
    bool has_refused_ack : 1 = false;
    bool syn_seen : 1 = false;
    ZeekState zeek : 3 = ZeekState::Inactive;
  };

  size_t index(Side s) const { return s == Side::Client ? 0 : 1; }
  static uint32_t letter_bit(size_t i, char c);  // in hist_seen_
  void letter(size_t i, char c);                 // once per connection and side
  void repeatable(size_t i, char c, TcpSeq& last, TcpSeq seq);
  void record_history_inline(size_t i, const TcpView& tcp, uint32_t len);
  void record_data(size_t i, TcpSeq seq, uint32_t len);
  void record_predicted(size_t i, TcpSeq seq, uint32_t len);
  TcpResult refuse(DropReason r, const TcpView& tcp, size_t peer);
  bool rst_in_window(size_t s, size_t r, const TcpView& tcp) const;
  bool in_window(size_t s, size_t r, TcpSeq seq) const;
  void update_zeek(size_t s, size_t r, const TcpView& tcp);
  void on_ack(size_t s, size_t r, const TcpView& tcp);
  void on_fin(size_t s, size_t r, const TcpView& tcp, uint32_t len);
  bool predicted(size_t s, size_t r, const TcpView& tcp, uint32_t len, const SegmentMeta& meta);
  template <size_t s, uint8_t kFlags>
  bool control(const TcpView& tcp);
  template <size_t s>
  bool control_by_flags(const TcpView& tcp);
  TcpResult full_path(FlowDir dir, const TcpView& tcp, uint32_t len, const SegmentMeta& meta);
  // letter_bit(0, 'a') and letter_bit(0, 'd') (checked in tcp_state.cpp), for predicted().
  static constexpr uint32_t kSeenA = 1u << 2, kSeenD = 1u << 3;

  static constexpr uint8_t kNoWscale = 0xf;  // no window scale option on that SYN
  uint8_t syn_wscale(size_t i) const { return (syn_wscale_ >> (4 * i)) & 0xf; }

  TcpEndpoint ep_[2];  // [client, server]
  HistoryState hs_[2];
  TcpHistory history_;
  TcpSeq refused_ack_[2];   // ACK of the last refused segment sent by side i (has_refused_ack_)
  uint32_t hist_seen_ = 0;  // letters recorded, bit per (side, letter)
  SideBits bits_[2];
  // The clamped shift offered on each side's SYN (at most 14), side i in bits 4i..4i+3.
  uint8_t syn_wscale_ = kNoWscale << 4 | kNoWscale;
  bool started_ : 1 = false;
  bool flipped_ : 1 = false;
  bool partial_ : 1 = false;
  bool sim_open_ : 1 = false;
  bool no_prediction_ : 1 = false;
};

// perf: header prediction (Van Jacobson's, as TCP stacks do it): an ACK or data segment
// between two established endpoints, with no option but timestamps, changes only the fields
// updated here (and the history: the general record's steps for such a segment unless its
// letter is already there). Every test below is one the general path makes; when one fails, the
// general path runs. tcp_state_fuzz runs both paths on the same segments and compares them (l45
// bench: on_segment went from 470 to ~150 instructions a packet; taking each side's first data and
// first ACK here too doubled the segments predicted on many-flows' short connections). Inlined
// into on_segment(), its one caller, itself inline in the caller's loop.
[[gnu::always_inline]] inline bool TcpConnection::predicted(size_t s, size_t r, const TcpView& tcp,
                                                            uint32_t len, const SegmentMeta& meta) {
  using TS = TcpEndpointState;
  TcpEndpoint& S = ep_[s];
  TcpEndpoint& R = ep_[r];
  constexpr uint8_t kCtl = tcp_flag::kSyn | tcp_flag::kFin | tcp_flag::kRst | tcp_flag::kAck;
  if (no_prediction_ || (tcp.flags() & kCtl) != tcp_flag::kAck || meta.bad_checksum ||
      meta.captured_len < len || S.state != TS::Established || R.state != TS::Established ||
      S.fin_sent || R.fin_sent || bits_[s].zeek == ZeekState::Inactive || tcp.window() == 0 ||
      bits_[r].has_uncaptured || !S.seen || !R.peer_acked)
    return false;
  // Content gap ('g'): acknowledging more than the peer was seen to send.
  const TcpSeq ack = tcp.ack();
  if (R.seen && ack > R.snd_nxt) return false;
  std::optional<uint32_t> tsval;
  if (const Bytes ob = tcp.option_bytes(); ob.size() == 12 && load_be32(ob.data()) == 0x0101080a)
    tsval = load_be32(ob.data() + 4);
  else if (!ob.empty())
    return false;

  if (S.packets != UINT32_MAX) ++S.packets;
  // History: inline when this kind of segment's letter is there and data goes beyond what the
  // side sent before; otherwise (its first data or ACK, a retransmission) the general record's
  // steps for an ACK with a window and no SYN, FIN or RST.
  const TcpSeq seq = tcp.seq();
  HistoryState& h = hs_[s];
  const int side_shift = s ? 16 : 0;
  if (!len) {
    if (!(hist_seen_ & (kSeenA << side_shift))) record_predicted(s, seq, len);
  } else if ((hist_seen_ & (kSeenD << side_shift)) && bits_[s].base_set && bits_[s].data_seen &&
             seq >= h.max_data_end) {
    const TcpSeq end = seq + len;
    // Not implied by seq >= max_data_end: near 2^31 beyond it, end wraps to behind it.
    if (end > h.max_data_end) h.max_data_end = end;
    const int32_t sz = end - h.data_base;
    if (sz > 0) h.size = std::max(h.size, uint32_t(sz));
  } else {
    record_predicted(s, seq, len);
  }
  if (ack > R.snd_una) R.snd_una = ack;
  const TcpSeq end = seq + len;
  // Before snd_nxt moves; the window test only for a newer TSval (as below).
  const bool take_ts =
      tsval && (!S.ts_seen || int32_t(*tsval - S.ts_recent) > 0) && in_window(s, r, seq);
  if (end > S.snd_nxt) S.snd_nxt = end;
  S.max_window = std::max(S.max_window, uint32_t(tcp.window()) << S.wscale);
  if (take_ts) {
    S.ts_recent = *tsval;
    S.ts_seen = true;
  }
  return true;
}

}  // namespace l45
