// TcpSeq: a TCP sequence number (RFC 793 3.3: arithmetic modulo 2^32). Comparison is
// wrap-aware, like the kernel's before()/after(): a is before b when the signed 32-bit distance
// from b to a is negative, so 0xfffffff0 < 0x10. That order is only meaningful between numbers
// less than 2^31 apart, which is what TCP's window rules guarantee.
//
//   TcpSeq isn = tcp.seq();
//   TcpSeq end = isn + payload_len;              // wraps
//   if (ack > end) ...                           // wrap-aware
//   int32_t d = ack - isn;                       // signed distance
#pragma once

#include <cstdint>

namespace l45 {

class TcpSeq {
 public:
  constexpr TcpSeq() = default;
  constexpr explicit TcpSeq(uint32_t v) : v_(v) {}
  constexpr uint32_t value() const { return v_; }

  constexpr TcpSeq operator+(uint32_t n) const { return TcpSeq(v_ + n); }
  constexpr TcpSeq operator-(uint32_t n) const { return TcpSeq(v_ - n); }
  constexpr TcpSeq& operator+=(uint32_t n) {
    v_ += n;
    return *this;
  }
  constexpr TcpSeq& operator-=(uint32_t n) {
    v_ -= n;
    return *this;
  }
  // Signed distance a - b (positive when a is after b).
  friend constexpr int32_t operator-(TcpSeq a, TcpSeq b) { return int32_t(a.v_ - b.v_); }

  friend constexpr bool operator==(TcpSeq a, TcpSeq b) { return a.v_ == b.v_; }
  friend constexpr bool operator<(TcpSeq a, TcpSeq b) { return int32_t(a.v_ - b.v_) < 0; }
  friend constexpr bool operator>(TcpSeq a, TcpSeq b) { return b < a; }
  friend constexpr bool operator<=(TcpSeq a, TcpSeq b) { return !(b < a); }
  friend constexpr bool operator>=(TcpSeq a, TcpSeq b) { return !(a < b); }

 private:
  uint32_t v_ = 0;
};

// The kernel's names, for code ported from it.
constexpr bool before(TcpSeq a, TcpSeq b) {
  return a < b;
}
constexpr bool after(TcpSeq a, TcpSeq b) {
  return b < a;
}
// low <= s <= high, wrap-aware (kernel between(): high - low >= s - low).
constexpr bool between(TcpSeq s, TcpSeq low, TcpSeq high) {
  return high.value() - low.value() >= s.value() - low.value();
}

}  // namespace l45
