// MacAddr: a 48-bit IEEE 802 address by value, printed as tshark does ("00:1b:21:3c:9d:f8").
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace l45 {

struct MacAddr {
  std::array<uint8_t, 6> b{};

  static MacAddr from(const std::byte* p) {
    MacAddr m;
    std::memcpy(m.b.data(), p, 6);
    return m;
  }
  bool is_broadcast() const {
    return b == std::array<uint8_t, 6>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  }
  // I/G bit (IEEE 802-2014 8.2): the first transmitted bit, the low bit of the first octet.
  bool is_multicast() const { return b[0] & 1; }
  std::string to_string() const;
  friend bool operator==(const MacAddr&, const MacAddr&) = default;
  friend auto operator<=>(const MacAddr&, const MacAddr&) = default;
};

}  // namespace l45
