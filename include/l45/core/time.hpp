// Timestamps and clocks. Time in l45 is nanoseconds since the Unix epoch. Everything that
// needs "now" asks an injected Clock: a PacketClock follows the timestamps of the packets
// being processed (so a recorded trace replays identically), a SystemClock reads the host.
#pragma once

#include <cstdint>

namespace l45 {

struct Timestamp {
  int64_t ns = 0;  // since the Unix epoch

  static constexpr Timestamp from_sec_usec(int64_t s, int64_t us) {
    return {s * 1000000000 + us * 1000};
  }
  static constexpr Timestamp from_sec_nsec(int64_t s, int64_t n) { return {s * 1000000000 + n}; }
  constexpr int64_t sec() const {
    return ns >= 0 ? ns / 1000000000 : -((-ns + 999999999) / 1000000000);
  }
  constexpr int64_t nsec_part() const { return ns - sec() * 1000000000; }
  constexpr double seconds() const { return static_cast<double>(ns) / 1e9; }
  friend constexpr auto operator<=>(Timestamp, Timestamp) = default;
};

struct Duration {
  int64_t ns = 0;
  static constexpr Duration seconds(int64_t s) { return {s * 1000000000}; }
  static constexpr Duration millis(int64_t ms) { return {ms * 1000000}; }
  friend constexpr auto operator<=>(Duration, Duration) = default;
};

constexpr Timestamp operator+(Timestamp t, Duration d) {
  return {t.ns + d.ns};
}
constexpr Duration operator-(Timestamp a, Timestamp b) {
  return {a.ns - b.ns};
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

// Follows packet time: advance() is called with each packet's timestamp. Time never goes
// backwards: an older timestamp (reordered capture) leaves the clock where it is.
class PacketClock final : public Clock {
 public:
  Timestamp now() const override { return now_; }
  void advance(Timestamp t) {
    if (t > now_) now_ = t;
  }

 private:
  Timestamp now_{};
};

class SystemClock final : public Clock {
 public:
  Timestamp now() const override;  // CLOCK_REALTIME
};

}  // namespace l45
