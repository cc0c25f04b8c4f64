#include "l45/flow/tcp_state.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <ostream>

namespace l45 {
namespace {

using TS = TcpEndpointState;

// RFC 7323 2.3: a shift above 14 would let the window exceed 2^30, more than the sequence
// space can disambiguate.
constexpr uint8_t kMaxWindowShift = 14;

bool over(TS s) {
  return s == TS::TimeWait || s == TS::Closed || s == TS::Reset;
}

// Zeek's history letters, in the bit order used for "seen once" (one bit per side and letter).
constexpr std::string_view kLetters = "shadfrcgtwiq";
// perf: a letter's bit position by table; kLetters.find() was a memchr call per letter, several
// per segment (l45 bench many-flows).
constexpr std::array<uint8_t, 26> kLetterPos = [] {
  std::array<uint8_t, 26> t{};
  for (size_t i = 0; i < kLetters.size(); ++i)
    t[size_t(kLetters[i] - 'a')] = uint8_t(i);
  return t;
}();

static_assert(kLetters.find('a') == 2 && kLetters.find('d') == 3, "TcpConnection::kSeenA, kSeenD");

// The window test of in_window() on sender S and receiver R.
// perf: inline in the general path (up to three tests a segment; l45 bench many-flows: the
// calls were ~10 instructions each); in_window() is predicted()'s out-of-line copy.
[[gnu::always_inline]] inline bool window_holds(const TcpEndpoint& S, const TcpEndpoint& R,
                                                TcpSeq seq) {
  if (!R.seen) return true;  // nothing known of the receiver's window
  TcpSeq ref;
  if (S.seen) {
    ref = S.snd_nxt;
  } else if (S.peer_acked) {
    ref = S.snd_una;
  } else {
    return true;
  }
  const uint32_t wnd = R.max_window;
  TcpSeq lo = ref - wnd;
  if (S.peer_acked && S.snd_una < ref && S.snd_una - lo < 0) lo = S.snd_una;
  return between(seq, lo, ref + wnd);
}

// What sender S's ACK of `ack` tells of both endpoints' states: on_ack() after its gap letters,
// and the control segments' fast path (control()), which excluded those letters first.
[[gnu::always_inline]] inline void ack_states(TcpEndpoint& S, TcpEndpoint& R, TcpSeq ack,
                                              bool syn) {
  if (!R.peer_acked || ack > R.snd_una) R.snd_una = ack;
  R.peer_acked = true;
  if (!R.isn_known && (R.state == TS::Listen || R.state == TS::SynSent) && !R.seen) {
    // One-sided capture: the peer's SYN(-ACK) went another way; its ISN is what is acked.
    R.isn = ack - 1;
    R.isn_known = true;
  }
  const bool acks_syn = R.isn_known && ack >= R.isn + 1;
  if (!syn && S.state == TS::SynSent && acks_syn) {
    // The final ACK of the three-way handshake (RFC 9293 3.5 figure 6).
    S.state = TS::Established;
    if (R.state == TS::Listen) R.state = TS::Established;  // its SYN-ACK was not seen
  }
  if (R.state == TS::SynRcvd && acks_syn) R.state = TS::Established;
  if (R.fin_sent && ack >= R.fin_seq + 1) {
    // RFC 9293 3.10.7.4: the ACK of our FIN moves FIN-WAIT-1, CLOSING and LAST-ACK on.
    if (R.state == TS::FinWait1)
      R.state = TS::FinWait2;
    else if (R.state == TS::Closing)
      R.state = TS::TimeWait;
    else if (R.state == TS::LastAck)
      R.state = TS::Closed;
  }
}

// What sender S's FIN at `fin` does to both endpoints' states (on_fin() and control()); `ack`
// is read only when `has_ack`.
[[gnu::always_inline]] inline void fin_states(TcpEndpoint& S, TcpEndpoint& R, TcpSeq fin,
                                              bool has_ack, TcpSeq ack) {
  if (S.fin_sent && fin == S.fin_seq) return;  // retransmitted FIN
  S.fin_sent = true;
  S.fin_seq = fin;
  const bool acks_peer_fin = R.fin_sent && has_ack && ack >= R.fin_seq + 1;
  switch (S.state) {
    case TS::CloseWait:
      // Its FIN crossed the peer's (the ACK does not cover it): simultaneous close, RFC 9293
      // 3.6 figure 13, both go through CLOSING.
      S.state = (R.fin_sent && !acks_peer_fin) ? TS::Closing : TS::LastAck;
      break;
    case TS::SynSent:
    case TS::SynRcvd:
    case TS::Established:
    case TS::Listen:
      S.state = TS::FinWait1;
      break;
    default:
      break;
  }
  switch (R.state) {
    case TS::SynRcvd:
    case TS::Established:
      R.state = TS::CloseWait;
      break;
    case TS::FinWait1:
      R.state = TS::Closing;
      break;
    case TS::FinWait2:
      R.state = TS::TimeWait;
      break;
    default:
      break;
  }
}

}  // namespace

std::string_view tcp_endpoint_state_name(TcpEndpointState s) {
  switch (s) {
    case TS::Listen:
      return "LISTEN";
    case TS::SynSent:
      return "SYN_SENT";
    case TS::SynRcvd:
      return "SYN_RCVD";
    case TS::Established:
      return "ESTABLISHED";
    case TS::FinWait1:
      return "FIN_WAIT_1";
    case TS::FinWait2:
      return "FIN_WAIT_2";
    case TS::Closing:
      return "CLOSING";
    case TS::TimeWait:
      return "TIME_WAIT";
    case TS::CloseWait:
      return "CLOSE_WAIT";
    case TS::LastAck:
      return "LAST_ACK";
    case TS::Closed:
      return "CLOSED";
    case TS::Reset:
      return "RESET";
  }
  return "?";
}

std::string_view zeek_conn_state_name(ZeekConnState s) {
  constexpr std::string_view kNames[] = {"S0",   "S1",     "SF",    "REJ", "S2",  "S3", "RSTO",
                                         "RSTR", "RSTOS0", "RSTRH", "SH",  "SHR", "OTH"};
  return kNames[static_cast<size_t>(s)];
}

TcpHistory::~TcpHistory() {
  if (on_heap()) delete[] heap_data();
}

char* TcpHistory::heap_data() const {
  char* p;
  std::memcpy(&p, b_, sizeof p);
  return p;
}

uint32_t TcpHistory::heap_size() const {
  uint32_t n;
  std::memcpy(&n, b_ + 8, sizeof n);
  return n;
}

void TcpHistory::push_back_slow(char c) {
  if (!on_heap()) {
    const size_t n = uint8_t(b_[kTag]);
    char* p = new char[kFirstHeap];
    std::memcpy(p, b_, n);
    const uint32_t size = uint32_t(n);
    std::memcpy(b_, &p, sizeof p);
    std::memcpy(b_ + 8, &size, sizeof size);
    b_[kTag] = kHeap;
  }
  char* p = heap_data();
  uint32_t n = heap_size();
  // Full when the count is a power of two at or past the first heap capacity.
  if (n >= kFirstHeap && (n & (n - 1)) == 0) {
    char* q = new char[size_t(n) * 2];
    std::memcpy(q, p, n);
    delete[] p;
    p = q;
    std::memcpy(b_, &p, sizeof p);
  }
  p[n++] = c;
  std::memcpy(b_ + 8, &n, sizeof n);
}

void TcpHistory::append(std::string_view s) {
  for (char c : s)
    push_back(c);
}

void TcpHistory::swap(TcpHistory& o) noexcept {
  char t[sizeof b_];
  std::memcpy(t, b_, sizeof b_);
  std::memcpy(b_, o.b_, sizeof b_);
  std::memcpy(o.b_, t, sizeof b_);
}

std::ostream& operator<<(std::ostream& os, const TcpHistory& h) {
  return os << h.view();
}

uint32_t TcpConnection::letter_bit(size_t i, char c) {
  return 1u << (kLetterPos[size_t(c - 'a')] + (i ? 16 : 0));
}

// perf: inline (as repeatable(), on_ack(), on_fin() and update_zeek() below: one or two callers
// each, all in this file): their call frames were ~60 instructions on each segment the general
// path takes (l45 bench many-flows: ~half the segments of its short connections).
[[gnu::always_inline]] inline void TcpConnection::letter(size_t i, char c) {
  const uint32_t bit = letter_bit(i, c);
  if (hist_seen_ & bit) return;
  hist_seen_ |= bit;
  history_.push_back(i == 0 ? char(c - 'a' + 'A') : c);
}

// Zeek adds S, H, F and R again when the sequence number differs from the last one of that
// kind (a new SYN, a FIN at another place): a sign of reuse or of an odd stack. These letters
// are recorded only here, so once one is in history `last` holds a sequence number.
[[gnu::always_inline]] inline void TcpConnection::repeatable(size_t i, char c, TcpSeq& last,
                                                             TcpSeq seq) {
  if (!(hist_seen_ & letter_bit(i, c))) {
    letter(i, c);
  } else if (last != seq) {
    history_.push_back(i == 0 ? char(c - 'a' + 'A') : c);
  }
  last = seq;
}

// The payload's part of the history: 't' and the side's size.
[[gnu::always_inline]] inline void TcpConnection::record_data(size_t i, TcpSeq seq, uint32_t len) {
  HistoryState& h = hs_[i];
  SideBits& b = bits_[i];
  const TcpSeq end = seq + len;
  if (!b.base_set) {
    // From ISN + 1 when the SYN was seen (a first data segment out of order must not hide
    // the bytes before it), else from the first data seen (Zeek's start_seq).
    h.data_base = ep_[i].isn_known ? ep_[i].isn + 1 : seq;
    b.base_set = true;
  }
  if (b.data_seen && seq < h.max_data_end) letter(i, 't');
  if (!b.data_seen || end > h.max_data_end) h.max_data_end = end;
  b.data_seen = true;
  const int32_t sz = end - h.data_base;
  if (sz > 0) h.size = std::max(h.size, uint32_t(sz));
}

// perf: inline in the general path (its every segment records history; l45 bench many-flows:
// the call was ~20 instructions on half its segments); predicted() calls the copy below. The
// header's fields are read once into locals: each letter is a char store, which may alias the
// packet's bytes, so the compiler would read them again after every letter.
[[gnu::always_inline]] inline void TcpConnection::record_history_inline(size_t i,
                                                                        const TcpView& tcp,
                                                                        uint32_t len) {
  HistoryState& h = hs_[i];
  const uint8_t fl = tcp.flags();
  const bool syn = fl & tcp_flag::kSyn, fin = fl & tcp_flag::kFin, rst = fl & tcp_flag::kRst;
  const bool ack = fl & tcp_flag::kAck;
  const TcpSeq seq = tcp.seq();
  const bool zero_window = tcp.window() == 0;
  const int bits = int(syn) + int(fin) + int(rst);
  if (bits > 1) {
    letter(i, fin && rst ? 'i' : 'q');
  } else if (bits == 1) {
    if (syn) repeatable(i, ack ? 'h' : 's', h.last_syn, seq);
    // The FIN's own sequence number is after the data it carries.
    if (fin) repeatable(i, 'f', h.last_fin, seq + len);
    if (rst) repeatable(i, 'r', h.last_rst, seq);
  } else if (len) {
    letter(i, 'd');
  } else if (ack) {
    letter(i, 'a');
  }
  if (zero_window && !rst && !syn) letter(i, 'w');
  if (len && !syn && !rst) record_data(i, seq, len);
}

// record_history_inline() for a segment predicted() takes (an ACK with a window, no SYN, FIN or
// RST): 'a', or 'd' and its payload's part. perf: ~70 instructions where the general record
// was ~97 (l45 bench many-flows, callgrind: each side's first ACK and first data).
void TcpConnection::record_predicted(size_t i, TcpSeq seq, uint32_t len) {
  if (!len) return letter(i, 'a');
  letter(i, 'd');
  record_data(i, seq, len);
}

TcpResult TcpConnection::refuse(DropReason r, const TcpView& tcp, size_t sender) {
  if (tcp.has_ack()) {
    refused_ack_[sender] = tcp.ack();
    bits_[sender].has_refused_ack = true;
  }
  return {.outcome = TcpOutcome::Ignored, .anomaly = r};
}

// Lenient window test (see the header): within the receiver's largest advertised window either
// side of the highest sequence number the sender reached, or of what the receiver acked of it.
bool TcpConnection::in_window(size_t s, size_t r, TcpSeq seq) const {
  return window_holds(ep_[s], ep_[r], seq);
}

bool TcpConnection::rst_in_window(size_t s, size_t r, const TcpView& tcp) const {
  const TcpEndpoint& R = ep_[r];
  // RFC 9293 3.10.7.3: in SYN-SENT a RST is acceptable only if it acknowledges the SYN.
  if (R.state == TS::SynSent && !ep_[s].isn_known && R.isn_known)
    return tcp.has_ack() && tcp.ack() == R.isn + 1;
  return window_holds(ep_[s], R, tcp.seq());
}

[[gnu::always_inline]] inline void TcpConnection::on_ack(size_t s, size_t r, const TcpView& tcp) {
  TcpEndpoint& R = ep_[r];
  const TcpSeq ack = tcp.ack();
  // Content gap: the receiver acknowledges bytes of the other side that were never seen.
  if (R.seen && ack > R.snd_nxt) letter(r, 'g');
  // Bytes that went by without being captured (snap length): Zeek's reassembler reports the
  // gap when they are acknowledged.
  if (bits_[r].has_uncaptured && ack > hs_[r].uncaptured) {
    letter(r, 'g');
    bits_[r].has_uncaptured = false;
  }
  ack_states(ep_[s], R, ack, tcp.syn());
}

[[gnu::always_inline]] inline void TcpConnection::on_fin(size_t s, size_t r, const TcpView& tcp,
                                                         uint32_t len) {
  const bool has_ack = tcp.has_ack();
  fin_states(ep_[s], ep_[r], tcp.seq() + len, has_ack, has_ack ? tcp.ack() : TcpSeq());
}

// Zeek's TCP endpoint model (analyzer/protocol/tcp/TCP.cc, UpdateStateMachine), kept only to
// compute conn_state exactly as Zeek does.
[[gnu::always_inline]] inline void TcpConnection::update_zeek(size_t s, size_t r,
                                                              const TcpView& tcp) {
  ZeekState e = bits_[s].zeek;
  ZeekState p = bits_[r].zeek;
  if (tcp.rst()) {
    bits_[s].zeek = ZeekState::Reset;
    return;
  }
  if (e == ZeekState::Inactive) {
    if (tcp.syn()) {
      if (s == 0) {
        e = tcp.has_ack() ? ZeekState::SynAckSent : ZeekState::SynSent;
      } else {
        if (p == ZeekState::SynSent) p = ZeekState::Established;
        e = ZeekState::Established;
      }
    } else {
      e = ZeekState::Partial;
    }
  }
  if (tcp.fin() && e != ZeekState::Reset) e = ZeekState::Closed;
  bits_[s].zeek = e;
  bits_[r].zeek = p;
}

// perf: the segments without payload that open and close a connection (SYN and SYN-ACK with
// Linux's SYN options, the handshake's ACK, FIN-ACK and the last ACK with NOP, NOP, timestamps)
// take full_path()'s steps for what they can change, one function per kind of segment (its
// flags known when it is compiled): the header's fields read once, no option walk, no data or
// RST steps, one window test for the FIN's and the timestamp's, the history letter last (a char
// store, after which the compiler reloads what it read). Anything that would refuse the
// segment, start a new connection, raise an anomaly or add a letter other than the segment's
// own (g, w, '^') goes to full_path() before any field is changed. tcp_state_fuzz and the
// capture tests compare this with full_path() (no_prediction_ turns both fast paths off).
// l45 bench many-flows, callgrind: half the segments, ~370 instructions each in full_path(),
// ~200 here; 1,295 -> 1,209 a packet in Engine::process.
template <size_t s, uint8_t kFlags>
[[gnu::always_inline]] inline bool TcpConnection::control(const TcpView& tcp) {
  constexpr size_t r = 1 - s;
  constexpr bool syn = kFlags & tcp_flag::kSyn, ack = kFlags & tcp_flag::kAck;
  constexpr bool fin = kFlags & tcp_flag::kFin;
  // A connection's first segment here is a SYN (no roles to flip, not picked up mid-stream).
  if ((!syn || ack) && !started_) return false;
  const Bytes ob = tcp.option_bytes();
  uint32_t tsval;
  uint8_t shift = kNoWscale;
  if constexpr (syn) {
    if (!tcp.linux_syn_options()) return false;
    tsval = load_be32(ob.data() + 8);
    shift = load_u8(ob.data() + 19);
    if (shift > kMaxWindowShift) return false;  // tcp_wscale_range
  } else {
    if (ob.size() != 12 || load_be32(ob.data()) != 0x0101080a) return false;
    tsval = load_be32(ob.data() + 4);
  }
  const TcpSeq seq = tcp.seq();
  const TcpSeq ackn = ack ? tcp.ack() : TcpSeq();
  const uint16_t window = tcp.window();
  TcpEndpoint& S = ep_[s];
  TcpEndpoint& R = ep_[r];
  // Possibly a new connection.
  if (syn && !ack && (over(S.state) || over(R.state))) return false;
  // 'w' (zero window), 'g' (the peer's bytes acked beyond what was seen, or not captured).
  if (!syn && window == 0) return false;
  if (ack && ((R.seen && ackn > R.snd_nxt) || bits_[r].has_uncaptured)) return false;
  // The FIN's window test and the timestamp's are the same (no payload), on fields nothing
  // below changes before full_path() makes the second.
  const bool in_window = window_holds(S, R, seq);
  if constexpr (fin) {
    // PAWS (tcp_paws_reject) and the FIN's acceptance (tcp_fin_out_of_window) as full_path().
    if (S.ts_seen && int32_t(tsval - S.ts_recent) < 0) return false;
    const uint32_t tsecr = load_be32(ob.data() + 8);
    if (R.state == TS::SynSent && R.syn_ts && ack && tsecr != 0 &&
        uint32_t(tsecr - R.syn_tsval) > uint32_t(R.ts_recent - R.syn_tsval))
      return false;
    if ((R.state == TS::SynSent && !S.isn_known && R.isn_known) || !in_window) return false;
  }

  started_ = true;
  if (S.packets != UINT32_MAX) ++S.packets;
  if constexpr (syn) {
    if (!bits_[s].syn_seen) {
      bits_[s].syn_seen = true;
      syn_wscale_ = uint8_t((syn_wscale_ & ~(0xf << (4 * s))) | shift << (4 * s));
      if (bits_[r].syn_seen && syn_wscale(0) != kNoWscale && syn_wscale(1) != kNoWscale) {
        ep_[0].wscale = syn_wscale(0);
        ep_[1].wscale = syn_wscale(1);
      }
      S.syn_ts = true;
      S.syn_tsval = tsval;
    }
    S.isn = seq;
    S.isn_known = true;
    if constexpr (!ack) {
      if (S.state == TS::Listen) S.state = TS::SynSent;
      if (R.state == TS::SynSent && s != 0) sim_open_ = true;
    } else {
      const bool peer_acked_syn = S.peer_acked && S.snd_una >= seq + 1;
      if (S.state == TS::Listen || S.state == TS::SynSent)
        S.state = (sim_open_ && peer_acked_syn) ? TS::Established : TS::SynRcvd;
    }
  }
  if constexpr (ack) {
    ack_states(S, R, ackn, syn);  // on_ack() without its 'g' cases (excluded above)
  }
  if constexpr (fin) {
    if (S.state == TS::SynRcvd) {
      S.state = TS::Established;
      if (R.state == TS::SynSent) R.state = TS::Established;
    }
    fin_states(S, R, seq, ack, ackn);  // on_fin() on the header's fields read above
  }
  const TcpSeq end = seq + (syn ? 1 : 0) + (fin ? 1 : 0);
  const bool take_ts = (!S.ts_seen || int32_t(tsval - S.ts_recent) > 0) && in_window;
  if (!S.seen || end > S.snd_nxt) S.snd_nxt = end;
  S.seen = true;
  S.max_window = std::max(S.max_window, syn ? uint32_t(window) : uint32_t(window) << S.wscale);
  if (take_ts) {
    S.ts_recent = tsval;
    S.ts_seen = true;
  }
  // update_zeek() without its RST case.
  ZeekState e = bits_[s].zeek;
  if (e == ZeekState::Inactive) {
    if (!syn) {
      e = ZeekState::Partial;
    } else if (s == 0) {
      e = ack ? ZeekState::SynAckSent : ZeekState::SynSent;
    } else {
      if (bits_[r].zeek == ZeekState::SynSent) bits_[r].zeek = ZeekState::Established;
      e = ZeekState::Established;
    }
  }
  if (fin && e != ZeekState::Reset) e = ZeekState::Closed;
  bits_[s].zeek = e;
  // record_history_inline() for a segment without payload, RST or zero window.
  if constexpr (syn)
    repeatable(s, ack ? 'h' : 's', hs_[s].last_syn, seq);
  else if constexpr (fin)
    repeatable(s, 'f', hs_[s].last_fin, seq);
  else
    letter(s, 'a');
  return true;
}

// The sender's index known when compiled too: its endpoint's fields at fixed places.
template <size_t s>
[[gnu::always_inline]] inline bool TcpConnection::control_by_flags(const TcpView& tcp) {
  using namespace tcp_flag;
  switch (tcp.flags() & (kSyn | kAck | kFin | kRst)) {
    case kSyn:
      return control<s, kSyn>(tcp);
    case kSyn | kAck:
      return control<s, kSyn | kAck>(tcp);
    case kAck:
      return control<s, kAck>(tcp);
    case kFin | kAck:
      return control<s, kFin | kAck>(tcp);
    default:
      return false;
  }
}

TcpResult TcpConnection::on_unpredicted(FlowDir dir, const TcpView& tcp, uint32_t len,
                                        Timestamp /*ts*/, const SegmentMeta& meta) {
  if (!no_prediction_ && len == 0 && !meta.bad_checksum) {
    const bool done =
        index(side_of(dir)) == 0 ? control_by_flags<0>(tcp) : control_by_flags<1>(tcp);
    if (done) return {};
  }
  return full_path(dir, tcp, len, meta);
}

// The time is not kept: the engine keeps per-side times (and exact counters) of its own.
[[gnu::noinline]] TcpResult TcpConnection::full_path(FlowDir dir, const TcpView& tcp, uint32_t len,
                                                     const SegmentMeta& meta) {
  const bool syn = tcp.syn(), ack = tcp.has_ack(), fin = tcp.fin(), rst = tcp.rst();
  const bool first = !started_;
  if (first) {
    started_ = true;
    if (syn && ack && !rst && !fin) {
      flipped_ = true;  // the SYN-ACK's sender is the server
      history_.push_back('^');
    } else if (!syn) {
      partial_ = true;
      ep_[0].state = ep_[1].state = TS::Established;
    }
  }
  const size_t s = index(side_of(dir));
  const size_t r = 1 - s;
  TcpEndpoint& S = ep_[s];
  TcpEndpoint& R = ep_[r];

  // Reuse (RFC 9293 3.6.1, TIME-WAIT assassination aside): a fresh SYN after the end. After a
  // reset even the same ISN starts a new attempt (the application connected again, as Zeek
  // reads it: one REJ per attempt); after a normal close the same ISN is a stale retransmission.
  const bool reset = S.state == TS::Reset || R.state == TS::Reset;
  if (syn && !ack && !rst && !fin && (over(S.state) || over(R.state)) &&
      (reset || !(S.isn_known && tcp.seq() == S.isn)))
    return {.outcome = TcpOutcome::NewConnection};

  if (S.packets != UINT32_MAX) ++S.packets;
  if (meta.bad_checksum) {
    letter(s, 'c');
    return {.outcome = TcpOutcome::Ignored, .anomaly = DropReason::BadChecksum};
  }
  record_history_inline(s, tcp, len);
  if (meta.captured_len < len && !rst && !bits_[s].has_uncaptured) {
    hs_[s].uncaptured = tcp.seq() + (syn ? 1 : 0) + meta.captured_len;
    bits_[s].has_uncaptured = true;
  }
  if (syn && (fin || rst)) return refuse(DropReason::TcpBadFlags, tcp, s);

  // Only the timestamps (and on a SYN the window scale) matter here.
  // perf: most segments carry exactly NOP, NOP, timestamps (RFC 7323 appendix A), read without
  // the option walk and the TcpOptions it fills (l45 bench many-flows: options() was 160
  // instructions of a 2,200-instruction packet).
  struct {
    std::optional<TcpTimestamps> timestamps;
    std::optional<uint8_t> window_scale;
  } opt;
  if (const Bytes ob = tcp.option_bytes(); ob.size() == 12 && load_be32(ob.data()) == 0x0101080a) {
    opt.timestamps = TcpTimestamps{load_be32(ob.data() + 4), load_be32(ob.data() + 8)};
  } else if (tcp.linux_syn_options()) {
    opt.timestamps = TcpTimestamps{load_be32(ob.data() + 8), load_be32(ob.data() + 12)};
    opt.window_scale = load_u8(ob.data() + 19);
  } else if (!ob.empty()) {
    const TcpOptions o = tcp.options();
    opt.timestamps = o.timestamps;
    opt.window_scale = o.window_scale;
  }

  if ((rst || fin) && opt.timestamps) {
    const TcpTimestamps t = *opt.timestamps;
    // RFC 7323 5.3 R1: older than the sender's last TSval.
    bool stale = S.ts_seen && int32_t(t.value - S.ts_recent) < 0;
    // Receiver in SYN-SENT: the echo must be one of its own TSvals (0 means "no echo").
    if (R.state == TS::SynSent && R.syn_ts && ack && t.echo != 0 &&
        uint32_t(t.echo - R.syn_tsval) > uint32_t(R.ts_recent - R.syn_tsval))
      stale = true;
    if (stale) return refuse(DropReason::TcpPawsReject, tcp, s);
  }

  // perf: the result's fields as values, made into a TcpResult at the return: one built in
  // place on the stack was reloaded wider than its stores (l45 bench many-flows, perf).
  DropReason anomaly = DropReason::None;
  if (rst) {
    // A SYN-SENT endpoint answering an unacceptable ACK with <SEQ=SEG.ACK><CTL=RST> (RFC 9293
    // 3.10.7.3) stays in SYN-SENT. Only there: elsewhere it would let a forged segment hide a
    // genuine RST.
    if (S.state == TS::SynSent && bits_[r].has_refused_ack && tcp.seq() == refused_ack_[r]) {
      bits_[r].has_refused_ack = false;
      return {.outcome = TcpOutcome::Ok, .anomaly = anomaly};
    }
    if (!rst_in_window(s, r, tcp)) return refuse(DropReason::TcpRstOutOfWindow, tcp, s);
    S.state = TS::Reset;
    if (R.state != TS::Listen) R.state = TS::Reset;  // RFC 9293 3.10.7.2: LISTEN ignores RST
    update_zeek(s, r, tcp);
    return {.outcome = TcpOutcome::Ok, .anomaly = anomaly};
  }
  if (fin) {
    const bool peer_syn_sent = R.state == TS::SynSent && !S.isn_known && R.isn_known;
    if (peer_syn_sent || !window_holds(S, R, tcp.seq() + len))
      return refuse(DropReason::TcpFinOutOfWindow, tcp, s);
  }

  if (syn) {
    if (!bits_[s].syn_seen) {
      bits_[s].syn_seen = true;
      if (opt.window_scale) {
        uint8_t shift = *opt.window_scale;
        if (shift > kMaxWindowShift) {
          shift = kMaxWindowShift;
          anomaly = DropReason::TcpWscaleRange;
        }
        syn_wscale_ = uint8_t((syn_wscale_ & ~(0xf << (4 * s))) | shift << (4 * s));
      }
      // RFC 7323 2.2: scaling is in force only when both SYNs carried the option.
      if (bits_[r].syn_seen && syn_wscale(0) != kNoWscale && syn_wscale(1) != kNoWscale) {
        ep_[0].wscale = syn_wscale(0);
        ep_[1].wscale = syn_wscale(1);
      }
      if (opt.timestamps) {
        S.syn_ts = true;
        S.syn_tsval = opt.timestamps->value;
      }
    }
    S.isn = tcp.seq();
    S.isn_known = true;
    if (!ack) {
      if (S.state == TS::Listen) S.state = TS::SynSent;
      if (R.state == TS::SynSent && s != 0) sim_open_ = true;  // RFC 9293 3.5 figure 7
    } else {
      if (first) {
        // Flipped start: the client's SYN was missed; it is what the SYN-ACK acknowledges.
        R.state = TS::SynSent;
        R.isn = tcp.ack() - 1;
        R.isn_known = true;
      }
      const bool peer_acked_syn = S.peer_acked && S.snd_una >= S.isn + 1;
      if (S.state == TS::Listen || S.state == TS::SynSent)
        S.state = (sim_open_ && peer_acked_syn) ? TS::Established : TS::SynRcvd;
    }
  }
  if (ack) on_ack(s, r, tcp);
  // A SYN-RCVD endpoint sends data or FIN only once ESTABLISHED (RFC 9293 3.10.7.4): the ACK
  // that got it there was not seen.
  if (!syn && S.state == TS::SynRcvd && (len || fin)) {
    S.state = TS::Established;
    if (R.state == TS::SynSent) R.state = TS::Established;
  }
  if (fin) on_fin(s, r, tcp, len);

  const TcpSeq end = tcp.seq() + len + (syn ? 1 : 0) + (fin ? 1 : 0);
  // TS.Recent moves only on segments in the window (RFC 7323 4.3), so a forged far-away
  // segment cannot make later genuine ones look stale. The window is the sender's before this
  // segment, so it is tested first; perf: only for a newer TSval, the costly test last (l45
  // bench: most segments repeat the last TSval).
  const bool take_ts = opt.timestamps &&
                       (!S.ts_seen || int32_t(opt.timestamps->value - S.ts_recent) > 0) &&
                       window_holds(S, R, tcp.seq());
  if (!S.seen || end > S.snd_nxt) S.snd_nxt = end;
  S.seen = true;
  const uint32_t wnd = syn ? tcp.window() : uint32_t(tcp.window()) << S.wscale;
  S.max_window = std::max(S.max_window, wnd);
  if (take_ts) {
    S.ts_recent = opt.timestamps->value;
    S.ts_seen = true;
  }
  update_zeek(s, r, tcp);
  return {.outcome = TcpOutcome::Ok, .anomaly = anomaly};
}

ZeekConnState TcpConnection::conn_state() const {
  using Z = ZeekState;
  const Z os = bits_[0].zeek, rs = bits_[1].zeek;
  const bool o_inactive = os == Z::Inactive || os == Z::Partial;
  const bool r_inactive = rs == Z::Inactive || rs == Z::Partial;
  if (rs == Z::Reset) {
    if (os == Z::SynSent || os == Z::SynAckSent ||
        (os == Z::Reset && hs_[0].size == 0 && hs_[1].size == 0))
      return ZeekConnState::REJ;
    return o_inactive ? ZeekConnState::RSTRH : ZeekConnState::RSTR;
  }
  if (os == Z::Reset) {
    if (!r_inactive) return ZeekConnState::RSTO;
    // Zeek: history matches /^\^?S[^HAFGIQ]*R.*/ (a SYN, then a RST before any answer).
    size_t i = !history_.empty() && history_[0] == '^' ? 1 : 0;
    if (i < history_.size() && history_[i] == 'S') {
      for (++i; i < history_.size(); ++i) {
        const char c = history_[i];
        if (c == 'R') return ZeekConnState::RSTOS0;
        if (std::string_view("HAFGIQ").find(c) != std::string_view::npos) break;
      }
    }
    return ZeekConnState::OTH;
  }
  if (rs == Z::Closed && os == Z::Closed) return ZeekConnState::SF;
  if (os == Z::Closed) return r_inactive ? ZeekConnState::SH : ZeekConnState::S2;
  if (rs == Z::Closed) return o_inactive ? ZeekConnState::SHR : ZeekConnState::S3;
  if (os == Z::SynSent && rs == Z::Inactive) return ZeekConnState::S0;
  if (os == Z::Established && rs == Z::Established) return ZeekConnState::S1;
  return ZeekConnState::OTH;
}

}  // namespace l45
