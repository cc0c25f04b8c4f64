#include "l45/packet/ip_addr.hpp"

#include <arpa/inet.h>

#include <charconv>

#include "l45/packet/mac_addr.hpp"

namespace l45 {

namespace {

char* put_dec8(char* p, uint8_t v) {
  if (v >= 100) *p++ = char('0' + v / 100);
  if (v >= 10) *p++ = char('0' + v / 10 % 10);
  *p++ = char('0' + v % 10);
  return p;
}

char* put_quad(char* p, const uint8_t* b) {
  for (int i = 0; i < 4; ++i) {
    if (i) *p++ = '.';
    p = put_dec8(p, b[i]);
  }
  return p;
}

char* put_hex16(char* p, uint16_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    unsigned d = (v >> shift) & 0xf;
    if (d || started || shift == 0) {
      *p++ = kHex[d];
      started = true;
    }
  }
  return p;
}

}  // namespace

size_t IpAddr::to_chars(char* out) const {
  char* p = out;
  if (family_ == IpFamily::V4) {
    p = put_quad(p, b_.data());
  } else if (family_ == IpFamily::V6) {
    // glibc inet_ntop6: compress the first longest run of two or more zero groups (RFC 5952
    // 4.2.2 forbids compressing a single one), and print the last 32 bits as a dotted quad
    // for IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) addresses.
    uint16_t w[8];
    for (int i = 0; i < 8; ++i)
      w[i] = uint16_t((b_[2 * i] << 8) | b_[2 * i + 1]);
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
      if (w[i] != 0) {
        ++i;
        continue;
      }
      int j = i;
      while (j < 8 && w[j] == 0)
        ++j;
      if (j - i > best_len) {
        best = i;
        best_len = j - i;
      }
      i = j;
    }
    if (best_len < 2) best = -1;
    for (int i = 0; i < 8; ++i) {
      if (best >= 0 && i >= best && i < best + best_len) {
        if (i == best) *p++ = ':';
        continue;
      }
      if (i) *p++ = ':';
      if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
        p = put_quad(p, b_.data() + 12);
        break;
      }
      p = put_hex16(p, w[i]);
    }
    if (best >= 0 && best + best_len == 8) *p++ = ':';
  }
  *p = '\0';
  return size_t(p - out);
}

std::string IpAddr::to_string() const {
  char buf[kMaxStringLen];
  size_t n = to_chars(buf);
  return std::string(buf, n);
}

size_t IpAddr::hash() const {
  uint64_t a, b;
  std::memcpy(&a, b_.data(), 8);
  std::memcpy(&b, b_.data() + 8, 8);
  // Two multiply-xorshift rounds (splitmix64 finaliser): every input bit reaches every
  // output bit, so hash tables keyed on addresses that differ only in the last octet spread.
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + uint64_t(family_)) * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return size_t(h);
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  const size_t slash = text.find('/');
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const unsigned max = ip->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    const std::string_view l = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), len);
    if (l.empty() || ec != std::errc() || end != l.data() + l.size() || len > max)
      return std::nullopt;
  }
  return IpPrefix{*ip, uint8_t(len)};
}

bool IpPrefix::contains(const IpAddr& a) const {
  if (a.family() != addr.family()) return false;
  auto x = a.bytes(), y = addr.bytes();
  const size_t full = len / 8, rest = len % 8;
  for (size_t i = 0; i < full; ++i)
    if (x[i] != y[i]) return false;
  if (rest == 0) return true;
  const uint8_t mask = uint8_t(0xff << (8 - rest));
  return (x[full] & mask) == (y[full] & mask);
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  std::byte raw[16];
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, raw) != 1) return std::nullopt;
    return IpAddr::v4(raw);
  }
  if (inet_pton(AF_INET6, buf, raw) != 1) return std::nullopt;
  return IpAddr::v6(raw);
}

std::string MacAddr::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(17, ':');
  for (size_t i = 0; i < 6; ++i) {
    s[3 * i] = kHex[b[i] >> 4];
    s[3 * i + 1] = kHex[b[i] & 0xf];
  }
  return s;
}

}  // namespace l45
