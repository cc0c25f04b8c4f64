// IpAddr: an IPv4 or IPv6 address held by value (16 bytes + family), cheap to copy, compare and
// hash, so flows can key on it. Text form is exactly what inet_ntop(3) prints (RFC 5952 zero
// compression, as glibc does it), which is also what tshark prints for ordinary addresses.
//
//   IpAddr a = IpAddr::v4(ip_header + 12);       // 4 network-order bytes
//   std::string s = a.to_string();                // "192.0.2.1"
//   auto b = IpAddr::parse("2001:db8::1");        // std::optional<IpAddr>
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace l45 {

enum class IpFamily : uint8_t { None = 0, V4 = 4, V6 = 6 };

class IpAddr {
 public:
  // Longest text form, with the terminating NUL (INET6_ADDRSTRLEN).
  static constexpr size_t kMaxStringLen = 46;

  constexpr IpAddr() = default;
  static IpAddr v4(const std::byte* p) {
    IpAddr a;
    std::memcpy(a.b_.data(), p, 4);
    a.family_ = IpFamily::V4;
    return a;
  }
  static IpAddr v6(const std::byte* p) {
    IpAddr a;
    std::memcpy(a.b_.data(), p, 16);
    a.family_ = IpFamily::V6;
    return a;
  }
  // From a host-order value: from_host_v4(0xc0000201) is 192.0.2.1.
  static constexpr IpAddr from_host_v4(uint32_t host_order) {
    IpAddr a;
    a.b_[0] = uint8_t(host_order >> 24);
    a.b_[1] = uint8_t(host_order >> 16);
    a.b_[2] = uint8_t(host_order >> 8);
    a.b_[3] = uint8_t(host_order);
    a.family_ = IpFamily::V4;
    return a;
  }
  static constexpr IpAddr v6(const std::array<uint8_t, 16>& b) {
    IpAddr a;
    a.b_ = b;
    a.family_ = IpFamily::V6;
    return a;
  }
  // Dotted quad or any IPv6 text form inet_pton(3) accepts; nullopt otherwise.
  static std::optional<IpAddr> parse(std::string_view text);

  constexpr IpFamily family() const { return family_; }
  constexpr bool is_v4() const { return family_ == IpFamily::V4; }
  constexpr bool is_v6() const { return family_ == IpFamily::V6; }
  constexpr bool empty() const { return family_ == IpFamily::None; }
  // The 4 or 16 network-order bytes (none for an empty address).
  std::span<const uint8_t> bytes() const {
    return {b_.data(), family_ == IpFamily::V4 ? 4u : family_ == IpFamily::V6 ? 16u : 0u};
  }
  // Host-order value of an IPv4 address (0 otherwise).
  constexpr uint32_t v4_value() const {
    return is_v4() ? (uint32_t(b_[0]) << 24) | (uint32_t(b_[1]) << 16) | (uint32_t(b_[2]) << 8) |
                         uint32_t(b_[3])
                   : 0;
  }

  // Writes the text form and a NUL into `out` (kMaxStringLen bytes); returns the length.
  // No allocation, for hot paths that print.
  size_t to_chars(char* out) const;
  std::string to_string() const;
  size_t hash() const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  // IPv4 sorts before IPv6; within a family, numeric order.
  friend std::strong_ordering operator<=>(const IpAddr& a, const IpAddr& b) {
    if (auto c = a.family_ <=> b.family_; c != 0) return c;
    return std::memcmp(a.b_.data(), b.b_.data(), 16) <=> 0;
  }

 private:
  std::array<uint8_t, 16> b_{};  // IPv4 uses the first 4; the rest stay zero
  IpFamily family_ = IpFamily::None;
};

// An address prefix: "198.51.100.0/24", "fd00::/8", or an address alone (all of its bits).
struct IpPrefix {
  IpAddr addr;
  uint8_t len = 0;
  // nullopt for a bad address or a length past the family's bits.
  static std::optional<IpPrefix> parse(std::string_view text);
  // Same family and the first `len` bits equal.
  bool contains(const IpAddr& a) const;
};

}  // namespace l45

template <>
struct std::hash<l45::IpAddr> {
  size_t operator()(const l45::IpAddr& a) const noexcept { return a.hash(); }
};
