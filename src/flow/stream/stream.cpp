#include "l45/flow/stream.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "l45/packet/tcp.hpp"

namespace l45 {
namespace {

// A segment starting more than 2^30 ahead of the next expected byte cannot be in any window
// (RFC 7323 2.3 caps the scaled window at 2^30), so it is refused instead of being buffered
// as a hole of up to a gigabyte that a later flush would report.
constexpr int32_t kMaxAhead = int32_t{1} << 30;

// The reason worth reporting first: a mismatch beats everything (it is what a middlebox acts
// on); otherwise the first one met.
void note(DropReason& why, DropReason r) {
  if (why == DropReason::None || r == DropReason::StreamRexmitMismatch) why = r;
}

}  // namespace

TcpStream::TcpStream(const StreamConfig& cfg) : cfg_(cfg) {}

TcpStream::~TcpStream() {
  free_buffer();
}

TcpStream::TcpStream(TcpStream&& o) noexcept
    : cfg_(o.cfg_),
      base_(o.base_),
      initialized_(o.initialized_),
      disabled_(o.disabled_),
      next_(o.next_),
      fin_off_(o.fin_off_),
      hist_start_(o.hist_start_),
      buffered_(std::exchange(o.buffered_, 0)),
      history_(std::move(o.history_)),
      chunks_(std::move(o.chunks_)),
      stats_(o.stats_) {
  o.chunks_.clear();
}

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this == &o) return *this;
  free_buffer();
  cfg_ = o.cfg_;
  base_ = o.base_;
  initialized_ = o.initialized_;
  disabled_ = o.disabled_;
  next_ = o.next_;
  fin_off_ = o.fin_off_;
  hist_start_ = o.hist_start_;
  buffered_ = std::exchange(o.buffered_, 0);
  history_ = std::move(o.history_);
  chunks_ = std::move(o.chunks_);
  o.chunks_.clear();
  stats_ = o.stats_;
  return *this;
}

void TcpStream::init(TcpSeq isn) {
  init_midstream(isn + 1);
}

void TcpStream::init_midstream(TcpSeq first_seq) {
  free_buffer();
  base_ = first_seq;
  initialized_ = true;
  next_ = 0;
  hist_start_ = 0;
  fin_off_ = kNoFin;
}

void TcpStream::disable() {
  free_buffer();
  disabled_ = true;
}

void TcpStream::free_buffer() {
  if (cfg_.budget && buffered_) cfg_.budget->release(buffered_);
  buffered_ = 0;
  chunks_.clear();
}

DropReason TcpStream::add(TcpSeq seq, uint8_t flags, Bytes payload, StreamSink& sink) {
  if (disabled_) return DropReason::None;
  ++stats_.segments;
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
    ++stats_.refused_segments;
    stats_.refused_bytes += len;
    return DropReason::StreamOutOfWindow;
  }
  // RFC 9293 3.8.4 keep-alive: seq = SND.NXT - 1 with zero or one garbage byte. Comparing that
  // byte with history would raise a false mismatch.
  if (d == -1 && len <= 1 && !syn && !fin) {
    ++stats_.keepalives;
    return DropReason::None;
  }
  int64_t off = static_cast<int64_t>(next_) + d;
  if (fin && fin_off_ == kNoFin && off + static_cast<int64_t>(len) >= 0)
    fin_off_ = static_cast<uint64_t>(off) + len;
  if (len == 0) return DropReason::None;
  if (cfg_.depth && next_ >= cfg_.depth) {
    stats_.depth_bytes += len;
    return DropReason::StreamDepth;
  }

  DropReason why = DropReason::None;
  if (off < 0) {
    // Bytes before offset 0: resent data from before a midstream pickup (or before the ISN).
    const uint64_t before = std::min<uint64_t>(len, static_cast<uint64_t>(-off));
    ++stats_.rexmit_segments;
    stats_.rexmit_bytes += before;
    stats_.unverifiable_bytes += before;
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
  if (cfg_.depth && uoff + payload.size() > cfg_.depth) {
    const uint64_t keep = cfg_.depth > uoff ? cfg_.depth - uoff : 0;
    stats_.depth_bytes += payload.size() - keep;
    note(why, DropReason::StreamDepth);
    payload = payload.first(keep);
    if (payload.empty()) return why;
  }
  if (uoff == next_) {
    // In order: straight to the sink from the caller's buffer, up to the first buffered chunk.
    const uint64_t room = chunks_.empty() ? payload.size() : chunks_.begin()->first - next_;
    const uint64_t n = std::min<uint64_t>(payload.size(), room);
    deliver(payload.first(n), sink);
    payload = payload.subspan(n);
    uoff = next_;
  }
  if (!payload.empty()) {
    if (ahead) ++stats_.ooo_segments;
    note(why, buffer(uoff, payload, sink));
  }
  drain(sink);
  return why;
}

void TcpStream::retransmission(uint64_t off, Bytes data, StreamSink& sink, DropReason& why) {
  ++stats_.rexmit_segments;
  stats_.rexmit_bytes += data.size();
  const uint64_t h = cfg_.history;
  uint64_t lo = std::max<uint64_t>(hist_start_, next_ > h ? next_ - h : 0);
  if (history_.empty()) lo = next_;  // nothing kept (history 0, or nothing delivered yet)
  const uint64_t end = off + data.size();
  if (off < lo) {
    const uint64_t n = std::min(end, lo) - off;
    stats_.unverifiable_bytes += n;
    note(why, DropReason::StreamRexmitUnverifiable);
    if (n == data.size()) return;
    data = data.subspan(n);
    off += n;
  }
  // The kept bytes are at most two runs of the ring; compare in place, copy only to report.
  const uint64_t pos = off % h;
  const uint64_t k = std::min<uint64_t>(data.size(), h - pos);
  const std::byte* ring = history_.data();
  if (std::memcmp(ring + pos, data.data(), k) == 0 &&
      std::memcmp(ring, data.data() + k, data.size() - k) == 0)
    return;
  std::vector<std::byte> orig(ring + pos, ring + pos + k);
  orig.insert(orig.end(), ring, ring + (data.size() - k));
  ++stats_.mismatches;
  note(why, DropReason::StreamRexmitMismatch);
  sink.on_mismatch({off, data.size(), Bytes(orig), data});
}

DropReason TcpStream::buffer(uint64_t off, Bytes data, StreamSink& sink) {
  const uint64_t end = off + data.size();
  auto first = chunks_.upper_bound(off);
  if (first != chunks_.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.size() > off) first = prev;
  }
  // Pass 1: compare every overlap (RFC 9293 3.10.7.4 lets either copy win; a difference is the
  // evasion Ptacek & Newsham describe, so it is reported whichever policy applies) and count
  // the bytes that would be new.
  uint64_t overlap = 0;
  DropReason why = DropReason::None;
  for (auto it = first; it != chunks_.end() && it->first < end; ++it) {
    const uint64_t lo = std::max(off, it->first);
    const uint64_t hi = std::min(end, it->first + it->second.size());
    if (hi <= lo) continue;
    overlap += hi - lo;
    Bytes held = Bytes(it->second).subspan(lo - it->first, hi - lo);
    Bytes fresh = data.subspan(lo - off, hi - lo);
    if (!std::equal(held.begin(), held.end(), fresh.begin())) {
      ++stats_.mismatches;
      why = DropReason::StreamRexmitMismatch;
      sink.on_mismatch({lo, hi - lo, held, fresh});
    }
  }
  const uint64_t added = data.size() - overlap;
  if (added == 0 && cfg_.policy == OverlapPolicy::First) return why;
  DropReason refused = DropReason::None;
  // Checked before the segment lands: Last adds at most two chunks (itself and a split tail),
  // First one per hole it fills (at most held + 1), so the count stays under 2 * max_chunks + 2.
  if (buffered_ + added > cfg_.max_buffered || chunks_.size() >= cfg_.max_chunks)
    refused = DropReason::StreamOooLimit;
  else if (added && cfg_.budget && !cfg_.budget->reserve(added))
    refused = DropReason::StreamBudget;
  if (refused != DropReason::None) {
    ++stats_.refused_segments;
    stats_.refused_bytes += added;
    return why != DropReason::None ? why : refused;
  }
  buffered_ += added;

  if (cfg_.policy == OverlapPolicy::First) {
    // Fill only the holes between chunks already held.
    uint64_t pos = off;
    auto it = first;
    while (pos < end) {
      uint64_t hole_end = end;
      if (it != chunks_.end() && it->first < end) hole_end = std::max(pos, it->first);
      if (hole_end > pos) {
        Bytes piece = data.subspan(pos - off, hole_end - pos);
        chunks_.emplace_hint(it, pos, std::vector<std::byte>(piece.begin(), piece.end()));
      }
      if (it == chunks_.end() || it->first >= end) break;
      pos = std::max(pos, it->first + it->second.size());
      ++it;
    }
    return why;
  }

  // Last: cut the overlapped parts out of held chunks, then store the new segment whole.
  auto it = first;
  while (it != chunks_.end() && it->first < end) {
    const uint64_t c_off = it->first;
    const uint64_t c_end = c_off + it->second.size();
    if (c_end <= off) {
      ++it;
      continue;
    }
    if (c_end > end) {
      std::vector<std::byte> tail(it->second.begin() + (end - c_off), it->second.end());
      chunks_.emplace(end, std::move(tail));
    }
    if (c_off < off) {
      it->second.resize(off - c_off);
      ++it;
    } else {
      it = chunks_.erase(it);
    }
  }
  chunks_.emplace(off, std::vector<std::byte>(data.begin(), data.end()));
  return why;
}

void TcpStream::deliver(Bytes data, StreamSink& sink) {
  if (data.empty()) return;
  remember(data);
  const uint64_t at = next_;
  next_ += data.size();
  stats_.bytes_delivered += data.size();
  sink.on_data(at, data);
}

void TcpStream::remember(Bytes data) {
  const uint64_t h = cfg_.history;
  if (h == 0) return;
  // perf: the ring grows with the stream up to h (l45 bench many-flows: 500-byte streams held
  // 4 KiB each, and page faults on that memory were a sixth of the time). While every kept
  // offset is below h, offset o is at index o whatever the size, so growing keeps the layout;
  // resize() keeps the bytes already there.
  const uint64_t end = next_ + data.size();
  if (history_.size() < h && history_.size() < end)
    history_.resize(end >= h ? h
                             : std::min<uint64_t>(h, std::max<uint64_t>(256, std::bit_ceil(end))));
  // Only the last h bytes of a delivery can still be in the window; they start at this offset.
  const uint64_t n = std::min<uint64_t>(data.size(), h);
  const uint64_t first_off = next_ + data.size() - n;
  data = data.last(n);
  const uint64_t pos = first_off % h;
  const uint64_t k = std::min<uint64_t>(n, h - pos);
  std::memcpy(history_.data() + pos, data.data(), k);
  if (n > k) std::memcpy(history_.data(), data.data() + k, n - k);
}

void TcpStream::gap_to(uint64_t off, StreamSink& sink) {
  if (cfg_.depth) off = std::min(off, std::max(cfg_.depth, next_));
  if (off <= next_) return;
  const uint64_t len = off - next_;
  ++stats_.gaps;
  stats_.gap_bytes += len;
  sink.on_gap(next_, len);
  next_ = off;
  hist_start_ = off;  // history below holds bytes of older offsets, not of the gap
}

void TcpStream::drain(StreamSink& sink) {
  while (!chunks_.empty() && chunks_.begin()->first <= next_) {
    auto node = chunks_.extract(chunks_.begin());
    std::vector<std::byte>& bytes = node.mapped();
    buffered_ -= bytes.size();
    if (cfg_.budget) cfg_.budget->release(bytes.size());
    // Chunks never start below next_ (skip_to stops at a chunk start), so no trim is needed.
    deliver(bytes, sink);
  }
}

void TcpStream::release_next_chunk(StreamSink& sink) {
  const uint64_t start = chunks_.begin()->first;
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
  while (!chunks_.empty() && chunks_.begin()->first < target)
    release_next_chunk(sink);
  gap_to(target, sink);
  drain(sink);
}

void TcpStream::flush(StreamSink& sink) {
  if (!initialized_ || disabled_) return;
  while (!chunks_.empty())
    release_next_chunk(sink);
  if (fin_seen()) gap_to(fin_off_, sink);
}

}  // namespace l45
