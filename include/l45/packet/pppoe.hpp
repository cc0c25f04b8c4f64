// PPPoE session stage (RFC 2516 6) and the PPP protocol field (RFC 1661 2).
//
// PppoeView covers the 6-byte PPPoE header plus the PPP protocol that starts every
// session-stage payload: 0x0021 IPv4, 0x0057 IPv6 (RFC 5072). The protocol is 2 bytes, or 1
// when the peers negotiated protocol-field compression (RFC 1661 6.5: an odd first octet);
// RFC 2516 discourages it but peers and scapy send it. length() counts the PPP protocol field
// and the PPP payload; payload() is clipped to it, so Ethernet padding is not in it.
//
// PppView is a bare PPP frame as enhanced GRE carries it (PPTP, RFC 2637 4.1): optional
// address/control bytes 0xff 0x03, then a 1-byte (RFC 1661 6.5 field compression, odd value)
// or 2-byte protocol.
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

namespace ppp_proto {
inline constexpr uint16_t kIpv4 = 0x0021;
inline constexpr uint16_t kIpv6 = 0x0057;
}  // namespace ppp_proto

class PppoeView {
 public:
  static constexpr size_t kMinHeaderLen = 7;  // PPPoE header + compressed PPP protocol

  // Needs the whole header and a length that covers at least the PPP protocol field. A length
  // past the bytes given only clips payload() (the capture may have been cut).
  static std::optional<PppoeView> parse(Bytes b) {
    if (b.size() < kMinHeaderLen) return std::nullopt;
    size_t plen = protocol_len(load_u8(b.data() + 6));
    if (b.size() < 6 + plen || load_be16(b.data() + 4) < plen) return std::nullopt;
    return PppoeView(b);
  }
  // 1 when the first protocol octet is odd (compressed), else 2.
  static constexpr size_t protocol_len(uint8_t first) { return (first & 1) ? 1 : 2; }
  uint8_t version() const { return load_u8(b_.data()) >> 4; }
  uint8_t type() const { return load_u8(b_.data()) & 0x0f; }
  uint8_t code() const { return load_u8(b_.data() + 1); }
  uint16_t session_id() const { return load_be16(b_.data() + 2); }
  uint16_t length() const { return load_be16(b_.data() + 4); }
  uint16_t ppp_protocol() const {
    return protocol_len(load_u8(b_.data() + 6)) == 1 ? load_u8(b_.data() + 6)
                                                     : load_be16(b_.data() + 6);
  }
  size_t header_len() const { return 6 + protocol_len(load_u8(b_.data() + 6)); }
  Bytes payload() const {
    size_t hl = header_len();
    return b_.subspan(hl, std::min<size_t>(length() - (hl - 6), b_.size() - hl));
  }

 private:
  explicit PppoeView(Bytes b) : b_(b) {}
  Bytes b_;
};

class PppView {
 public:
  static std::optional<PppView> parse(Bytes b) {
    size_t off = 0;
    if (b.size() >= 2 && load_u8(b.data()) == 0xff && load_u8(b.data() + 1) == 0x03) off = 2;
    if (b.size() < off + 1) return std::nullopt;
    // RFC 1661 2: protocol values are odd in the low octet and even in the high one, so an odd
    // first octet is a compressed 1-byte protocol.
    size_t plen = (load_u8(b.data() + off) & 1) ? 1 : 2;
    if (b.size() < off + plen) return std::nullopt;
    return PppView(b, uint8_t(off + plen), plen == 1);
  }
  uint16_t protocol() const {
    return compressed_ ? load_u8(b_.data() + hl_ - 1) : load_be16(b_.data() + hl_ - 2);
  }
  bool has_address_control() const { return hl_ - (compressed_ ? 1 : 2) == 2; }
  size_t header_len() const { return hl_; }
  Bytes payload() const { return b_.subspan(hl_); }

 private:
  PppView(Bytes b, uint8_t hl, bool compressed) : b_(b), hl_(hl), compressed_(compressed) {}
  Bytes b_;
  uint8_t hl_;
  bool compressed_;
};

}  // namespace l45
