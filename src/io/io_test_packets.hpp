// Just enough IPv4/TCP/UDP/ICMP reading and writing for the io backends' tests, done by hand
// with load_be16/store_be16 and checksum.hpp: io/ tests must not depend on the packet
// decoder they feed.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "l45/packet/bytes.hpp"
#include "l45/packet/checksum.hpp"

namespace l45::iotest {

using Buf = std::vector<std::byte>;
using Mac = std::array<std::byte, 6>;

inline uint32_t ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return ntohl(a.s_addr);
}

inline std::string_view as_text(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

struct Ip4 {
  size_t off = 0;  // of the IPv4 header in the bytes parsed
  size_t ihl = 0;  // header length in bytes
  size_t total = 0;
  uint8_t proto = 0;
  uint32_t src = 0, dst = 0;
  size_t l4() const { return off + ihl; }
};

// The IPv4 header at `off`, when it is one and fits.
inline std::optional<Ip4> parse_ip4(Bytes b, size_t off = 0) {
  if (b.size() < off + 20 || (load_u8(&b[off]) >> 4) != 4) return std::nullopt;
  Ip4 h;
  h.off = off;
  h.ihl = size_t(load_u8(&b[off]) & 0x0f) * 4;
  h.total = load_be16(&b[off + 2]);
  h.proto = load_u8(&b[off + 9]);
  h.src = load_be32(&b[off + 12]);
  h.dst = load_be32(&b[off + 16]);
  if (h.ihl < 20 || h.total < h.ihl || off + h.total > b.size()) return std::nullopt;
  return h;
}

// IPv4 in an Ethernet II frame.
inline std::optional<Ip4> parse_eth_ip4(Bytes f) {
  if (f.size() < 14 || load_be16(&f[12]) != 0x0800) return std::nullopt;
  return parse_ip4(f, 14);
}

struct Tcp {
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  size_t off = 0;  // of the TCP header in the bytes parsed
  Bytes payload;
  bool syn() const { return flags & 0x02; }
  bool fin() const { return flags & 0x01; }
  bool ackf() const { return flags & 0x10; }
};

inline std::optional<Tcp> parse_tcp(Bytes b, const Ip4& ip) {
  if (ip.proto != 6 || ip.total < ip.ihl + 20) return std::nullopt;
  size_t o = ip.l4();
  Tcp t;
  t.off = o;
  t.sport = load_be16(&b[o]);
  t.dport = load_be16(&b[o + 2]);
  t.seq = load_be32(&b[o + 4]);
  t.ack = load_be32(&b[o + 8]);
  size_t doff = size_t(load_u8(&b[o + 12]) >> 4) * 4;
  t.flags = load_u8(&b[o + 13]);
  if (doff < 20 || ip.ihl + doff > ip.total) return std::nullopt;
  t.payload = b.subspan(o + doff, ip.total - ip.ihl - doff);
  return t;
}

// Recomputes the IPv4 header checksum (RFC 791 3.1) of the header at `ip.off`.
inline void fix_ip4_checksum(MutBytes b, const Ip4& ip) {
  store_be16(&b[ip.off + 10], 0);
  store_be16(&b[ip.off + 10], checksum_finish(checksum_add(Bytes(b.subspan(ip.off, ip.ihl)))));
}

// Recomputes the ICMP checksum (RFC 792: over the whole ICMP message, no pseudo-header).
inline void fix_icmp4_checksum(MutBytes b, const Ip4& ip) {
  size_t o = ip.l4();
  store_be16(&b[o + 2], 0);
  store_be16(&b[o + 2], checksum_finish(checksum_add(Bytes(b.subspan(o, ip.total - ip.ihl)))));
}

// Recomputes a TCP (proto 6, checksum at +16) or UDP (17, at +6) checksum from scratch,
// pseudo-header included (RFC 793 3.1, RFC 768).
inline void fix_l4_checksum(MutBytes b, const Ip4& ip) {
  size_t o = ip.l4();
  size_t at = o + (ip.proto == 6 ? 16 : 6);
  uint32_t len = static_cast<uint32_t>(ip.total - ip.ihl);
  store_be16(&b[at], 0);
  uint32_t s = pseudo_header_sum_v4(&b[ip.off + 12], &b[ip.off + 16], ip.proto, len);
  uint16_t c = checksum_finish(checksum_add(Bytes(b.subspan(o, len)), s));
  if (ip.proto == 17 && c == 0) c = 0xffff;  // RFC 768: 0 means "no checksum"
  store_be16(&b[at], c);
}

// An IPv4 header (no options, DF, TTL 64) followed by `l4` bytes of protocol `proto`.
inline Buf ip4_packet(uint32_t src, uint32_t dst, uint8_t proto, Bytes l4, uint16_t id = 1) {
  Buf b(20 + l4.size());
  store_u8(&b[0], 0x45);
  store_be16(&b[2], static_cast<uint16_t>(b.size()));
  store_be16(&b[4], id);
  store_be16(&b[6], 0x4000);
  store_u8(&b[8], 64);
  store_u8(&b[9], proto);
  store_be32(&b[12], src);
  store_be32(&b[16], dst);
  for (size_t i = 0; i < l4.size(); ++i)
    b[20 + i] = l4[i];
  Ip4 ip{0, 20, b.size(), proto, src, dst};
  fix_ip4_checksum(b, ip);
  return b;
}

inline Buf udp4_packet(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                       std::string_view payload) {
  Buf u(8 + payload.size());
  store_be16(&u[0], sport);
  store_be16(&u[2], dport);
  store_be16(&u[4], static_cast<uint16_t>(u.size()));
  for (size_t i = 0; i < payload.size(); ++i)
    u[8 + i] = std::byte(payload[i]);
  Buf b = ip4_packet(src, dst, 17, u);
  fix_l4_checksum(b, *parse_ip4(b));
  return b;
}

inline Buf ethernet(const Mac& dst, const Mac& src, uint16_t type, Bytes payload) {
  Buf f(14 + payload.size());
  for (size_t i = 0; i < 6; ++i) {
    f[i] = dst[i];
    f[6 + i] = src[i];
  }
  store_be16(&f[12], type);
  for (size_t i = 0; i < payload.size(); ++i)
    f[14 + i] = payload[i];
  return f;
}

}  // namespace l45::iotest
