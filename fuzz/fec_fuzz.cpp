// libFuzzer target for the shim's fec module: the receiver's side reads datagrams a peer sent,
// so its header, its groups and the Reed-Solomon rebuild take whatever the wire brings.
//   byte 0 bit 0 = 0: hostile. The rest is datagrams: length (1 byte), a time step in ms (1
//                  byte; 255: a tick() instead of a datagram), then that many bytes. A datagram
//                  whose first byte is 'L' gets the fec magic and version written over its
//                  first three bytes, so the fuzzer reaches the groups without guessing them.
//   byte 0 bit 0 = 1: round trip. byte 1 gives k (1-16) and m (1-4); then datagrams of
//                  length (1 byte) and bytes, at most 600. FecEncoder sends them, all at one
//                  time, and flushes; each datagram on the wire is dropped when the next input
//                  bit says so and its group has lost fewer than m; the rest reach a FecDecoder
//                  at that same time.
// Invariants: hostile: no emitted datagram is longer than the longest received (a rebuilt one
// is shorter than its parity), no more are emitted than came in plus those rebuilt, and after
// a tick() at the deadline the next deadline is none or later. Round trip: the application
// gets every datagram, in order, once, and nothing is left held (at most m lost a group and no
// time passing: nothing is given up).
//
// Seeds: fuzz/corpus/fec (make_fec_seeds.py).
// Run:  ./build-fuzz/fuzz/fec_fuzz -max_total_time=60 fuzz/corpus/fec
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "l45/shim/fec.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void hostile(const uint8_t* data, size_t size) {
  using namespace l45::shim;
  FecDecoder dec(20'000'000);
  size_t longest = 0, received = 0, emitted = 0;
  auto emit = [&](std::string_view d) {
    require(d.size() <= longest);
    ++emitted;
  };
  uint64_t now = 1'000'000'000;
  size_t pos = 0;
  while (pos + 2 <= size) {
    const size_t len = data[pos];
    const uint8_t step = data[pos + 1];
    pos += 2;
    if (step == 255) {
      now += 25'000'000;
      const uint64_t due = dec.deadline();
      if (due && due <= now) {
        dec.tick(now, emit);
        require(dec.deadline() == 0 || dec.deadline() > now);
        require(emitted <= received + dec.recovered);
      }
      continue;
    }
    now += uint64_t(step) * 1'000'000;
    std::string d(reinterpret_cast<const char*>(data + pos), std::min(len, size - pos));
    pos += d.size();
    if (d.size() >= 3 && d[0] == 'L') d[1] = 'F', d[2] = 1;
    longest = std::max(longest, d.size());
    ++received;
    dec.receive(d, now, emit);
    require(emitted <= received + dec.recovered);
  }
}

void round_trip(const uint8_t* data, size_t size) {
  using namespace l45::shim;
  if (size < 2) return;
  FecParams p;
  p.k = 1 + data[1] % 16;
  p.m = 1 + (data[1] >> 4) % 4;
  std::vector<std::string> sent;
  size_t pos = 2;
  while (pos < size && sent.size() < 600) {
    const size_t len = data[pos++];
    sent.emplace_back(reinterpret_cast<const char*>(data + pos), std::min(len, size - pos));
    pos += sent.back().size();
  }
  std::vector<std::string> wire;
  FecEncoder enc(p);
  auto to_wire = [&](std::string_view d) { wire.emplace_back(d); };
  for (const std::string& d : sent)
    enc.send(d, 0, to_wire);
  enc.flush(to_wire);
  // Losses from the input's bytes again, a bit a datagram, at most m in a group.
  FecDecoder dec(20'000'000);
  std::vector<std::string> got;
  auto deliver = [&](std::string_view d) { got.emplace_back(d); };
  uint32_t group = UINT32_MAX;
  int lost = 0;
  for (size_t i = 0; i < wire.size(); ++i) {
    const std::string& w = wire[i];
    require(w.size() >= kFecHeader);
    const uint32_t g = (uint32_t(uint8_t(w[8])) << 24) | (uint32_t(uint8_t(w[9])) << 16) |
                       (uint32_t(uint8_t(w[10])) << 8) | uint8_t(w[11]);
    if (g != group) group = g, lost = 0;
    // (wire is not empty, so neither is sent: size > 2)
    const bool drop = (data[2 + (i / 8) % (size - 2)] >> (i % 8)) & 1;
    if (drop && lost < p.m) {
      ++lost;
      continue;
    }
    dec.receive(w, 0, deliver);
  }
  require(got == sent);
  require(dec.deadline() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1)
    round_trip(data, size);
  else
    hostile(data + 1, size - 1);
  return 0;
}
