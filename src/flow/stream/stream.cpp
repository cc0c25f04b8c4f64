#include "l45/flow/stream.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "l45/packet/tcp.hpp"

namespace l45 {
namespace {

// A segment starting more than 2^30 ahead of the next expected byte cannot be in any window
// (RFC 7323 2.3 caps the scaled window at 2^30), so it is refused instead of being buffered
// as a hole of up to a gigabyte that a later flush would report.
constexpr int32_t kMaxAhead = int32_t{1} << 30;

// The first history ring: room for a short request or reply. It doubles up to cfg.history.
constexpr uint32_t kFirstHistory = 256;

constexpr StreamConfig kDefaultConfig{};

void bump(uint32_t& n) {
  if (n != UINT32_MAX) ++n;
}

// The reason worth reporting first: a mismatch beats everything (it is what a middlebox acts
// on); otherwise the first one met.
void note(DropReason& why, DropReason r) {
  if (why == DropReason::None || r == DropReason::StreamRexmitMismatch) why = r;
}

}  // namespace

// Out-of-order chunks: disjoint, all above next_, never empty (freed with the last chunk).
struct TcpStream::OutOfOrder {
  using Chunks = std::map<uint64_t, std::vector<std::byte>>;
  Chunks chunks;
  uint64_t bytes = 0;  // their sizes summed, all reserved from cfg.budget
};

// The history by reference: the last delivered segments, oldest first, each held in the packet
// it came in (or, for bytes that came from the out-of-order store, in a copy of its own).
// Together they cover at least the cfg.history bytes right below next_ (hist_fill_ of them),
// up to kMaxHeld segments.
struct TcpStream::Held {
  struct Segment {
    uint64_t off;
    const std::byte* data;
    uint32_t len;
    uint32_t copied;  // bytes of a copy reserved from the budget (0: held in its packet)
    Packet::Hold hold;
  };
  static constexpr uint32_t kFirst = 2;
  static constexpr uint32_t kMaxHeld = 64;
  uint32_t cap;  // a power of two of slots, right after this header in the same allocation
  uint32_t head = 0;
  uint32_t n = 0;
  uint64_t copied = 0;  // the copies' bytes, reserved from the budget

  static constexpr size_t bytes_for(uint32_t cap) { return sizeof(Held) + cap * sizeof(Segment); }
  // perf: the header and its slots in one allocation (one malloc per stream, not two).
  // `mem`: bytes_for(cap) bytes (TcpStream::make_held() takes a spare one when it can).
  static void init(std::byte* mem, uint32_t cap) {
    static_assert(sizeof(Held) % alignof(Segment) == 0);
    static_assert(alignof(Held) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    Held* h = new (mem) Held(cap);
    for (uint32_t i = 0; i < cap; ++i)
      new (h->slots() + i) Segment{};
  }
  explicit Held(uint32_t c) : cap(c) {}
  ~Held() {
    for (uint32_t i = 0; i < cap; ++i)
      slots()[i].~Segment();
  }
  Segment* slots() { return reinterpret_cast<Segment*>(this + 1); }
  Segment& at(uint32_t i) { return slots()[(head + i) & (cap - 1)]; }
  // Lets the oldest go (its copy, if any, back to the budget); returns its length. Its hold
  // goes to `freed` (whatever that held before is let go).
  uint32_t pop(StreamMemory* budget, Packet::Hold& freed) {
    Segment& g = slots()[head];
    const uint32_t len = g.len;
    if (g.copied) {
      if (budget) budget->release(g.copied);
      copied -= g.copied;
      g.copied = 0;
    }
    freed = std::move(g.hold);
    head = (head + 1) & (cap - 1);
    --n;
    return len;
  }
};

StreamBlocks::~StreamBlocks() {
  while (head_) {
    std::byte* b = head_;
    std::memcpy(&head_, b, sizeof head_);
    delete[] b;
  }
}

std::unique_ptr<std::byte[]> TcpStream::make_held(uint32_t cap) const {
  static_assert(Held::bytes_for(Held::kFirst) == 88,
                "prefetch_history() (stream.hpp) fetches the lines of an 88-byte first block");
  StreamBlocks* spare = cap == Held::kFirst ? cfg_->blocks : nullptr;
  if (spare && spare->head_) {
    std::unique_ptr<std::byte[]> mem(spare->head_);
    std::memcpy(&spare->head_, mem.get(), sizeof spare->head_);
    --spare->n_;
    // perf: free_held() left every slot empty, so only the header is made again.
    new (mem.get()) Held(cap);
    return mem;
  }
  auto mem = std::make_unique_for_overwrite<std::byte[]>(Held::bytes_for(cap));
  Held::init(mem.get(), cap);
  return mem;
}

// perf: inline in free_history() and hold_rest(), as free_history() is in release_rest(): a
// connection's close let go of each stream through four calls (l45 bench many-flows,
// callgrind: ~130 instructions a stream).
[[gnu::always_inline]] inline void TcpStream::free_held(std::unique_ptr<std::byte[]> mem) const {
  Held* h = reinterpret_cast<Held*>(mem.get());
  StreamBlocks* spare = h->cap == Held::kFirst ? cfg_->blocks : nullptr;
  if (!spare || spare->n_ == StreamBlocks::kMax) {
    h->~Held();
    return;  // freed here
  }
  // The slots outside [head, head + n) are empty already (pop() and the moves in hold() leave
  // them so). The ones inside still hold this stream's segments, or are what a bigger block
  // moved them out of and keep their count of a copy: both go before another stream takes it.
  for (uint32_t i = 0; i < h->n; ++i) {
    Held::Segment& g = h->at(i);
    g.hold = Packet::Hold();
    g.copied = 0;
  }
  std::memcpy(mem.get(), &spare->head_, sizeof spare->head_);
  spare->head_ = mem.release();
  ++spare->n_;
}

TcpStream::TcpStream() : TcpStream(kDefaultConfig) {}

TcpStream::TcpStream(const StreamConfig& cfg) : cfg_(&cfg), policy_(cfg.policy) {}

TcpStream::~TcpStream() {
  release_buffers();
}

TcpStream::TcpStream(TcpStream&& o) noexcept
    : cfg_(o.cfg_),
      next_(o.next_),
      fin_off_(o.fin_off_),
      gap_bytes_(o.gap_bytes_),
      history_(std::move(o.history_)),
      ooo_(std::move(o.ooo_)),
      base_(o.base_),
      hist_cap_(std::exchange(o.hist_cap_, 0)),
      hist_fill_(std::exchange(o.hist_fill_, 0)),
      gaps_(o.gaps_),
      mismatches_(o.mismatches_),
      initialized_(o.initialized_),
      disabled_(o.disabled_),
      hist_held_(std::exchange(o.hist_held_, false)),
      policy_(o.policy_) {}

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this == &o) return *this;
  release_buffers();
  cfg_ = o.cfg_;
  next_ = o.next_;
  fin_off_ = o.fin_off_;
  gap_bytes_ = o.gap_bytes_;
  history_ = std::move(o.history_);
  ooo_ = std::move(o.ooo_);
  base_ = o.base_;
  hist_cap_ = std::exchange(o.hist_cap_, 0);
  hist_fill_ = std::exchange(o.hist_fill_, 0);
  gaps_ = o.gaps_;
  mismatches_ = o.mismatches_;
  initialized_ = o.initialized_;
  disabled_ = o.disabled_;
  hist_held_ = std::exchange(o.hist_held_, false);
  policy_ = o.policy_;
  return *this;
}

uint64_t TcpStream::buffered_bytes() const {
  return ooo_ ? ooo_->bytes : 0;
}

size_t TcpStream::buffered_chunks() const {
  return ooo_ ? ooo_->chunks.size() : 0;
}

void TcpStream::init(TcpSeq isn) {
  init_midstream(isn + 1);
}

void TcpStream::init_midstream(TcpSeq first_seq) {
  // perf: a new stream holds nothing, so the calls that let go come only when there is
  // something to let go (l45 bench many-flows: once a stream).
  if (ooo_) free_buffer();
  base_ = first_seq;
  initialized_ = true;
  next_ = 0;
  hist_fill_ = 0;
  if (hist_held_) forget_history();
  fin_off_ = kNoFin;
  gap_bytes_ = 0;
  gaps_ = 0;
  mismatches_ = 0;
}

void TcpStream::disable() {
  release_buffers();
  disabled_ = true;
}

void TcpStream::free_buffer() {
  if (!ooo_) return;
  if (cfg_->budget && ooo_->bytes) cfg_->budget->release(ooo_->bytes);
  ooo_.reset();
}

[[gnu::always_inline]] inline void TcpStream::free_history() {
  if (!history_) return;
  uint64_t bytes = hist_cap_;
  if (hist_held_) {
    bytes += held().copied;
    free_held(std::move(history_));
    hist_held_ = false;
  }
  if (cfg_->budget) cfg_->budget->release(bytes);
  history_.reset();
  hist_cap_ = 0;
  hist_fill_ = 0;
}

void TcpStream::release_rest() {
  if (ooo_) free_buffer();
  free_history();
}

DropReason TcpStream::add(TcpSeq seq, uint8_t flags, Bytes payload, StreamSink& sink,
                          const Packet* owner) {
  if (disabled_) return DropReason::None;
  count(&StreamStats::segments);
  // perf: the next bytes in order with nothing buffered and no depth limit (or an empty
  // segment at the next byte, a pure ACK) take no detour through the general path
  // (l45 bench bench-small, callgrind: ~2/3 of TCP segments are in-order data). Both ways on
  // are tail calls, so add() saves no registers and a pure ACK costs a dozen instructions
  // (l45 bench many-flows, callgrind).
  if (initialized_ && !(flags & (tcp_flag::kSyn | tcp_flag::kFin)) && seq == next_seq()) {
    if (payload.empty()) return DropReason::None;
    if (!ooo_ && !cfg_->depth) return add_in_order(payload, sink, owner);
  }
  return add_rest(seq, flags, payload, sink, owner);
}

// add()'s shortcut: payload starts at next_, nothing is buffered, no depth limit.
[[gnu::noinline]] DropReason TcpStream::add_in_order(Bytes payload, StreamSink& sink,
                                                     const Packet* owner) {
  deliver(payload, sink, owner);
  if (ooo_) drain(sink);  // only if on_data buffered something
  return DropReason::None;
}

// add() after its shortcut, from the segment count on.
DropReason TcpStream::add_rest(TcpSeq seq, uint8_t flags, Bytes payload, StreamSink& sink,
                               const Packet* owner) {
  const bool syn = flags & tcp_flag::kSyn;
  const bool fin = flags & tcp_flag::kFin;
  if (!initialized_) {
    if (syn)
      init(seq);
    else
      init_midstream(seq);
  }
  // RFC 9293 3.4: the SYN occupies the first sequence number; its data (if any) follows.
  const TcpSeq data_seq = syn ? seq + 1 : seq;
  const int32_t d = data_seq - next_seq();
  const uint64_t len = payload.size();
  if (d > kMaxAhead) {
    count(&StreamStats::refused_segments);
    count(&StreamStats::refused_bytes, len);
    return DropReason::StreamOutOfWindow;
  }
  // RFC 9293 3.8.4 keep-alive: seq = SND.NXT - 1 with zero or one garbage byte. Comparing that
  // byte with history would raise a false mismatch.
  if (d == -1 && len <= 1 && !syn && !fin) {
    count(&StreamStats::keepalives);
    return DropReason::None;
  }
  int64_t off = static_cast<int64_t>(next_) + d;
  if (fin && fin_off_ == kNoFin && off + static_cast<int64_t>(len) >= 0)
    fin_off_ = static_cast<uint64_t>(off) + len;
  if (len == 0) return DropReason::None;
  if (cfg_->depth && next_ >= cfg_->depth) {
    count(&StreamStats::depth_bytes, len);
    return DropReason::StreamDepth;
  }

  DropReason why = DropReason::None;
  if (off < 0) {
    // Bytes before offset 0: resent data from before a midstream pickup (or before the ISN).
    const uint64_t before = std::min<uint64_t>(len, static_cast<uint64_t>(-off));
    count(&StreamStats::rexmit_segments);
    count(&StreamStats::rexmit_bytes, before);
    count(&StreamStats::unverifiable_bytes, before);
    note(why, DropReason::StreamRexmitUnverifiable);
    payload = payload.subspan(before);
    off = 0;
    if (payload.empty()) return why;
  }
  uint64_t uoff = static_cast<uint64_t>(off);
  const bool ahead = uoff > next_;
  if (uoff < next_) {
    const uint64_t n = std::min<uint64_t>(payload.size(), next_ - uoff);
    retransmission(uoff, payload.first(n), sink, why);
    payload = payload.subspan(n);
    uoff = next_;
    if (payload.empty()) return why;
  }
  if (cfg_->depth && uoff + payload.size() > cfg_->depth) {
    const uint64_t keep = cfg_->depth > uoff ? cfg_->depth - uoff : 0;
    count(&StreamStats::depth_bytes, payload.size() - keep);
    note(why, DropReason::StreamDepth);
    payload = payload.first(keep);
    if (payload.empty()) return why;
  }
  if (uoff == next_) {
    // In order: straight to the sink from the caller's buffer, up to the first buffered chunk.
    const uint64_t room = ooo_ ? ooo_->chunks.begin()->first - next_ : payload.size();
    const uint64_t n = std::min<uint64_t>(payload.size(), room);
    deliver(payload.first(n), sink, owner);
    payload = payload.subspan(n);
    uoff = next_;
  }
  if (!payload.empty()) {
    if (ahead) count(&StreamStats::ooo_segments);
    note(why, buffer(uoff, payload, sink));
  }
  drain(sink);
  return why;
}

void TcpStream::retransmission(uint64_t off, Bytes data, StreamSink& sink, DropReason& why) {
  count(&StreamStats::rexmit_segments);
  count(&StreamStats::rexmit_bytes, data.size());
  sink.on_retransmission(off, data.size());
  // Kept: the hist_fill_ bytes right below next_ (none without a ring, or after a hole).
  const uint64_t lo = next_ - hist_fill_;
  const uint64_t end = off + data.size();
  if (off < lo) {
    const uint64_t n = std::min(end, lo) - off;
    count(&StreamStats::unverifiable_bytes, n);
    note(why, DropReason::StreamRexmitUnverifiable);
    if (n == data.size()) return;
    data = data.subspan(n);
    off += n;
  }
  if (hist_held_) {
    // The held segments cover [lo, next_) end to end: compare each overlap in place.
    Held& hd = held();
    bool same = true;
    for (uint32_t i = 0; i < hd.n && same; ++i) {
      const Held::Segment& g = hd.at(i);
      const uint64_t a = std::max(off, g.off), b = std::min(end, g.off + g.len);
      if (a < b) same = std::memcmp(g.data + (a - g.off), data.data() + (a - off), b - a) == 0;
    }
    if (same) return;
    std::vector<std::byte> orig;
    orig.reserve(data.size());
    for (uint32_t i = 0; i < hd.n; ++i) {
      const Held::Segment& g = hd.at(i);
      const uint64_t a = std::max(off, g.off), b = std::min(end, g.off + g.len);
      if (a < b) orig.insert(orig.end(), g.data + (a - g.off), g.data + (b - g.off));
    }
    bump(mismatches_);
    count(&StreamStats::mismatches);
    note(why, DropReason::StreamRexmitMismatch);
    sink.on_mismatch({off, data.size(), Bytes(orig), data});
    return;
  }
  // The kept bytes are at most two runs of the ring; compare in place, copy only to report.
  const uint64_t h = hist_cap_;
  const uint64_t pos = off % h;
  const uint64_t k = std::min<uint64_t>(data.size(), h - pos);
  const std::byte* ring = history_.get();
  if (std::memcmp(ring + pos, data.data(), k) == 0 &&
      std::memcmp(ring, data.data() + k, data.size() - k) == 0)
    return;
  std::vector<std::byte> orig(ring + pos, ring + pos + k);
  orig.insert(orig.end(), ring, ring + (data.size() - k));
  bump(mismatches_);
  count(&StreamStats::mismatches);
  note(why, DropReason::StreamRexmitMismatch);
  sink.on_mismatch({off, data.size(), Bytes(orig), data});
}

DropReason TcpStream::buffer(uint64_t off, Bytes data, StreamSink& sink) {
  const uint64_t end = off + data.size();
  // Pass 1: compare every overlap (RFC 9293 3.10.7.4 lets either copy win; a difference is the
  // evasion Ptacek & Newsham describe, so it is reported whichever policy applies) and count
  // the bytes that would be new.
  uint64_t overlap = 0;
  DropReason why = DropReason::None;
  OutOfOrder::Chunks::iterator first;
  if (ooo_) {
    OutOfOrder::Chunks& chunks = ooo_->chunks;
    first = chunks.upper_bound(off);
    if (first != chunks.begin()) {
      auto prev = std::prev(first);
      if (prev->first + prev->second.size() > off) first = prev;
    }
    for (auto it = first; it != chunks.end() && it->first < end; ++it) {
      const uint64_t lo = std::max(off, it->first);
      const uint64_t hi = std::min(end, it->first + it->second.size());
      if (hi <= lo) continue;
      overlap += hi - lo;
      Bytes held = Bytes(it->second).subspan(lo - it->first, hi - lo);
      Bytes fresh = data.subspan(lo - off, hi - lo);
      if (!std::equal(held.begin(), held.end(), fresh.begin())) {
        bump(mismatches_);
        count(&StreamStats::mismatches);
        why = DropReason::StreamRexmitMismatch;
        sink.on_mismatch({lo, hi - lo, held, fresh});
      }
    }
  }
  const uint64_t added = data.size() - overlap;
  if (added == 0 && policy_ == OverlapPolicy::First) return why;
  DropReason refused = DropReason::None;
  // Checked before the segment lands: Last adds at most two chunks (itself and a split tail),
  // First one per hole it fills (at most held + 1), so the count stays under 2 * max_chunks + 2.
  if (buffered_bytes() + added > cfg_->max_buffered || buffered_chunks() >= cfg_->max_chunks)
    refused = DropReason::StreamOooLimit;
  else if (added && cfg_->budget && !cfg_->budget->reserve(added))
    refused = DropReason::StreamBudget;
  if (refused != DropReason::None) {
    count(&StreamStats::refused_segments);
    count(&StreamStats::refused_bytes, added);
    return why != DropReason::None ? why : refused;
  }
  if (!ooo_) {
    ooo_ = std::make_unique<OutOfOrder>();
    first = ooo_->chunks.end();
  }
  ooo_->bytes += added;
  OutOfOrder::Chunks& chunks = ooo_->chunks;

  if (policy_ == OverlapPolicy::First) {
    // Fill only the holes between chunks already held.
    uint64_t pos = off;
    auto it = first;
    while (pos < end) {
      uint64_t hole_end = end;
      if (it != chunks.end() && it->first < end) hole_end = std::max(pos, it->first);
      if (hole_end > pos) {
        Bytes piece = data.subspan(pos - off, hole_end - pos);
        chunks.emplace_hint(it, pos, std::vector<std::byte>(piece.begin(), piece.end()));
      }
      if (it == chunks.end() || it->first >= end) break;
      pos = std::max(pos, it->first + it->second.size());
      ++it;
    }
    return why;
  }

  // Last: cut the overlapped parts out of held chunks, then store the new segment whole.
  auto it = first;
  while (it != chunks.end() && it->first < end) {
    const uint64_t c_off = it->first;
    const uint64_t c_end = c_off + it->second.size();
    if (c_end <= off) {
      ++it;
      continue;
    }
    if (c_end > end) {
      std::vector<std::byte> tail(it->second.begin() + (end - c_off), it->second.end());
      chunks.emplace(end, std::move(tail));
    }
    if (c_off < off) {
      it->second.resize(off - c_off);
      ++it;
    } else {
      it = chunks.erase(it);
    }
  }
  chunks.emplace(off, std::vector<std::byte>(data.begin(), data.end()));
  return why;
}

// perf: inlined into add()'s shortcut and drain() (l45 bench bench-small, callgrind).
[[gnu::always_inline]] inline void TcpStream::deliver(Bytes data, StreamSink& sink,
                                                      const Packet* owner) {
  if (data.empty()) return;
  remember(data, owner);
  const uint64_t at = next_;
  next_ += data.size();
  count(&StreamStats::bytes_delivered, data.size());
  sink.on_data(at, data);
}

// Called before next_ moves: data starts at offset next_. perf: inlined into deliver(), its
// one caller (l45 bench many-flows).
[[gnu::always_inline]] inline void TcpStream::remember(Bytes data, const Packet* owner) {
  const uint64_t limit = cfg_->history;
  if (limit == 0) return;
  // perf: segments of a mapped capture are held, not copied (l45 bench bench-small: the copy
  // was a quarter of the time).
  if (hist_held_ || (!history_ && owner && owner->is_borrowed())) return hold(data, owner);
  // The ring grows while the bytes delivered since the last hole outgrow it.
  const uint64_t want = std::min<uint64_t>(limit, uint64_t{hist_fill_} + data.size());
  if (!history_ || want > hist_cap_) grow_history(want);
  if (!history_) return;  // the budget refused: these bytes stay unverifiable
  const uint64_t h = hist_cap_;
  hist_fill_ = static_cast<uint32_t>(std::min<uint64_t>(h, hist_fill_ + data.size()));
  // Only the last h bytes of a delivery can still be in the window; they start at this offset.
  const uint64_t n = std::min<uint64_t>(data.size(), h);
  const uint64_t first_off = next_ + data.size() - n;
  data = data.last(n);
  const uint64_t pos = first_off % h;
  const uint64_t k = std::min<uint64_t>(n, h - pos);
  std::memcpy(history_.get() + pos, data.data(), k);
  if (n > k) std::memcpy(history_.get(), data.data() + k, n - k);
}

// Doubling from kFirstHistory: a short flow holds a small ring, a long one reaches cfg.history
// in a few reallocations. The bytes held keep their place (offset o at o % capacity). When the
// budget refuses, the ring stays as it was (or there is none).
void TcpStream::grow_history(uint64_t want) {
  const uint64_t limit = cfg_->history;
  const uint64_t old = history_ ? hist_cap_ : 0;
  uint64_t cap = old ? old : std::min<uint64_t>(kFirstHistory, limit);
  while (cap < want)
    cap *= 2;
  cap = std::min(cap, limit);
  if (cap <= old) return;
  if (cfg_->budget && !cfg_->budget->reserve(cap - old)) return;
  auto ring = std::make_unique_for_overwrite<std::byte[]>(cap);
  for (uint64_t o = next_ - hist_fill_; o < next_;) {
    const uint64_t from = o % old, to = o % cap;
    const uint64_t n = std::min({next_ - o, old - from, cap - to});
    std::memcpy(ring.get() + to, history_.get() + from, n);
    o += n;
  }
  history_ = std::move(ring);
  hist_cap_ = static_cast<uint32_t>(cap);
}

// Called before next_ moves: data starts at offset next_. Drops the oldest segments the newest
// ones make unnecessary (the rest still cover cfg.history), then holds this one.
// perf: the usual segment of a mapped capture is handled inline here: exactly one segment
// (the oldest, held in the same buffer and not a copy) is let go and its hold stands for the
// new segment's, with nothing to release and no call. Everything else goes to hold_rest(),
// the general case (l45 bench bench-small, callgrind: hold() was 188 instructions a data
// segment; its calls and rare paths kept the loop's values on the stack).
[[gnu::always_inline]] inline void TcpStream::hold(Bytes data, const Packet* owner) {
  if (history_ && owner) {
    Held& hd = held();
    const uint32_t n = hd.n;
    if (n != 0) {
      const uint64_t len = data.size();
      const uint64_t limit = cfg_->history;
      const uint32_t fill = hist_fill_;
      const uint32_t mask = hd.cap - 1;
      const uint32_t head = hd.head;
      Held::Segment& old = hd.slots()[head];
      // The loop in hold_rest() pops `old` and stops before the next one; with a ring that was
      // full, the new segment takes old's slot (then the move below leaves the hold in place).
      if (uint64_t{fill} - old.len + len >= limit && old.copied == 0 && old.hold.holds(*owner) &&
          (n == 1 || uint64_t{fill - old.len} - hd.slots()[(head + 1) & mask].len + len < limit)) {
        const uint32_t rest = fill - old.len;
        Held::Segment& g = hd.slots()[(head + n) & mask];
        g.hold.swap(old.hold);  // g is empty, or is old
        g.off = next_;
        g.data = data.data();
        g.len = static_cast<uint32_t>(len);
        hd.head = (head + 1) & mask;
        hist_fill_ = static_cast<uint32_t>(std::min<uint64_t>(UINT32_MAX, uint64_t{rest} + len));
        return;
      }
    }
  }
  hold_rest(data, owner);
}

// hold() in general: makes the first Held, drops the oldest segments, grows the ring, takes a
// hold or a copy. Works on locals and writes the members back once: the segment's fields are
// stored through a pointer the compiler cannot tell from this stream's members.
void TcpStream::hold_rest(Bytes data, const Packet* owner) {
  const uint64_t limit = cfg_->history;
  StreamMemory* const budget = cfg_->budget;
  if (!history_) {
    const uint64_t cost = Held::bytes_for(Held::kFirst);
    if (budget && !budget->reserve(cost)) return;
    history_ = make_held(Held::kFirst);
    hist_held_ = true;
    hist_cap_ = static_cast<uint32_t>(cost);
  }
  Held* hd = &held();
  const uint64_t at = next_;
  const uint64_t len = data.size();
  uint32_t fill = hist_fill_;
  // perf: the hold of a segment let go here stands for the new segment's when both lie in one
  // buffer (every packet of a mapped capture does): no reference count down and up again per
  // segment (l45 bench bench-small).
  Packet::Hold freed;
  while (hd->n && uint64_t{fill} - hd->slots()[hd->head].len + len >= limit)
    fill -= hd->pop(budget, freed);
  if (hd->n == hd->cap) {
    const uint32_t cap = hd->cap * 2;
    const uint64_t more = Held::bytes_for(cap) - Held::bytes_for(hd->cap);
    if (cap <= Held::kMaxHeld && (!budget || budget->reserve(more))) {
      auto bigger = make_held(cap);
      Held& nh = *reinterpret_cast<Held*>(bigger.get());
      Held& old = *hd;
      for (uint32_t i = 0; i < old.n; ++i)
        nh.slots()[i] = std::move(old.at(i));
      nh.n = old.n;
      nh.copied = old.copied;
      free_held(std::move(history_));
      history_ = std::move(bigger);
      hist_cap_ += static_cast<uint32_t>(more);
      hd = &nh;
    } else {
      fill -= hd->pop(budget, freed);  // at most kMaxHeld: fewer stay verifiable
    }
  }
  Held::Segment& g = hd->at(hd->n);
  g.off = at;
  g.data = data.data();
  g.len = static_cast<uint32_t>(len);
  // g is a free slot: its hold is empty.
  if (owner && freed.holds(*owner)) {
    g.hold.swap(freed);
  } else if (owner && owner->is_borrowed()) {
    Packet::Hold h = owner->hold();
    g.hold.swap(h);
  } else {
    // Bytes from the out-of-order store or a packet of its own: a copy, counted.
    if (budget && !budget->reserve(len)) {
      hist_fill_ = fill;
      forget_history();  // unverifiable from here on, as with a ring the budget refused
      return;
    }
    Packet copy = Packet::copy_of(data, {}, 0);
    g.data = copy.data().data();
    g.copied = static_cast<uint32_t>(len);
    g.hold = copy.hold();
    hd->copied += g.copied;
  }
  ++hd->n;
  hist_fill_ = static_cast<uint32_t>(std::min<uint64_t>(UINT32_MAX, uint64_t{fill} + len));
}

// Bytes below a hole or a new start are no longer next to next_: nothing held is of use.
void TcpStream::forget_history() {
  hist_fill_ = 0;
  if (!hist_held_) return;
  Held& hd = held();
  Packet::Hold freed;
  while (hd.n)
    hd.pop(cfg_->budget, freed);
}

uint64_t TcpStream::history_bytes() const {
  if (!history_) return 0;
  return hist_cap_ + (hist_held_ ? held().copied : 0);
}

void TcpStream::gap_to(uint64_t off, StreamSink& sink) {
  if (cfg_->depth) off = std::min(off, std::max(cfg_->depth, next_));
  if (off <= next_) return;
  const uint64_t len = off - next_;
  bump(gaps_);
  gap_bytes_ += len;
  count(&StreamStats::gaps);
  count(&StreamStats::gap_bytes, len);
  sink.on_gap(next_, len);
  next_ = off;
  forget_history();  // the history holds bytes of older offsets, not of the gap
}

void TcpStream::drain(StreamSink& sink) {
  while (ooo_ && ooo_->chunks.begin()->first <= next_) {
    auto node = ooo_->chunks.extract(ooo_->chunks.begin());
    std::vector<std::byte>& bytes = node.mapped();
    ooo_->bytes -= bytes.size();
    if (cfg_->budget) cfg_->budget->release(bytes.size());
    if (ooo_->chunks.empty()) ooo_.reset();
    // Chunks never start below next_ (skip_to stops at a chunk start), so no trim is needed.
    deliver(bytes, sink);
  }
}

void TcpStream::release_next_chunk(StreamSink& sink) {
  const uint64_t start = ooo_->chunks.begin()->first;
  gap_to(start, sink);
  // Chunks never lie past the depth limit, so the gap always reaches the chunk; should that
  // ever fail, dropping the buffer beats looping forever.
  if (next_ < start) return free_buffer();
  drain(sink);
}

void TcpStream::skip_to(TcpSeq seq, StreamSink& sink) {
  if (!initialized_ || disabled_) return;
  const int32_t d = seq - next_seq();
  if (d <= 0 || d > kMaxAhead) return;
  const uint64_t target = next_ + static_cast<uint64_t>(d);
  while (ooo_ && ooo_->chunks.begin()->first < target)
    release_next_chunk(sink);
  gap_to(target, sink);
  drain(sink);
}

void TcpStream::flush_rest(StreamSink& sink) {
  if (!initialized_ || disabled_) return;
  while (ooo_)
    release_next_chunk(sink);
  if (fin_seen()) gap_to(fin_off_, sink);
}

}  // namespace l45
