// IPv6 header (RFC 8200 3) and extension-header views (RFC 8200 4, RFC 4302 2 for AH).
//
// Ipv6View::parse() checks version 6 and the 40-byte header; a payload length past the bytes
// given only clips payload(). A payload length of 0 (RFC 2675 jumbogram, or TSO) reads to the
// end of the bytes.
//
// Ipv6ExtView is one extension header, parsed with the Next Header value that announced it:
// Hop-by-Hop (0), Routing (43), Fragment (44), Destination Options (60) are (len + 1) * 8
// bytes (Fragment is always 8), AH (51) is (len + 2) * 4 bytes. The decoder walks a bounded
// chain of them and stops at ESP (50), No Next Header (59) or an upper layer.
//
//   uint8_t nh = ip6->next_header();
//   for (Bytes b = ip6->payload(); Ipv6ExtView::is_extension(nh);) {
//     auto e = Ipv6ExtView::parse(nh, b); if (!e) break;
//     nh = e->next_header(); b = e->payload();
//   }
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"
#include "l45/packet/ip_addr.hpp"
#include "l45/packet/ip_proto.hpp"

namespace l45 {

class Ipv6View {
 public:
  static constexpr size_t kHeaderLen = 40;

  static std::optional<Ipv6View> parse(Bytes b) {
    if (b.size() < kHeaderLen || (load_u8(b.data()) >> 4) != 6) return std::nullopt;
    return Ipv6View(b);
  }
  uint8_t version() const { return load_u8(b_.data()) >> 4; }
  uint8_t traffic_class() const { return uint8_t(load_be16(b_.data()) >> 4); }
  uint32_t flow_label() const { return load_be32(b_.data()) & 0xfffff; }
  uint16_t payload_length() const { return load_be16(b_.data() + 4); }
  uint8_t next_header() const { return load_u8(b_.data() + 6); }
  uint8_t hop_limit() const { return load_u8(b_.data() + 7); }
  IpAddr src() const { return IpAddr::v6(b_.data() + 8); }
  IpAddr dst() const { return IpAddr::v6(b_.data() + 24); }
  const std::byte* src_bytes() const { return b_.data() + 8; }
  const std::byte* dst_bytes() const { return b_.data() + 24; }
  size_t header_len() const { return kHeaderLen; }
  Bytes header() const { return b_.first(kHeaderLen); }
  Bytes datagram() const {
    size_t tl = payload_length() ? kHeaderLen + payload_length() : b_.size();
    return b_.first(std::min(tl, b_.size()));
  }
  // Everything after the fixed header: extension headers, then the upper layer.
  Bytes payload() const { return datagram().subspan(kHeaderLen); }

 private:
  explicit Ipv6View(Bytes b) : b_(b) {}
  Bytes b_;
};

class Ipv6ExtView {
 public:
  static constexpr bool is_extension(uint8_t nh) {
    return nh == ip_proto::kHopByHop || nh == ip_proto::kRouting || nh == ip_proto::kFragment ||
           nh == ip_proto::kDestOpts || nh == ip_proto::kAh;
  }
  // Length of the extension header of `type` whose first two bytes are at `p`.
  static constexpr size_t length_of(uint8_t type, uint8_t len_field) {
    if (type == ip_proto::kFragment) return 8;
    if (type == ip_proto::kAh) return (size_t(len_field) + 2) * 4;
    return (size_t(len_field) + 1) * 8;
  }

  static std::optional<Ipv6ExtView> parse(uint8_t type, Bytes b) {
    if (!is_extension(type) || b.size() < 2) return std::nullopt;
    size_t len = length_of(type, load_u8(b.data() + 1));
    // RFC 4302 2.2: AH is at least 12 bytes (next header, length, reserved, SPI, sequence).
    if (b.size() < len || len < 8 || (type == ip_proto::kAh && len < 12)) return std::nullopt;
    return Ipv6ExtView(type, b);
  }
  uint8_t type() const { return type_; }
  uint8_t next_header() const { return load_u8(b_.data()); }
  size_t header_len() const { return length_of(type_, load_u8(b_.data() + 1)); }
  Bytes header() const { return b_.first(header_len()); }
  Bytes payload() const { return b_.subspan(header_len()); }

  // Fragment header (RFC 8200 4.5).
  uint32_t fragment_offset_bytes() const { return uint32_t(load_be16(b_.data() + 2) & 0xfff8); }
  bool more_fragments() const { return load_u8(b_.data() + 3) & 1; }
  uint32_t fragment_id() const { return load_be32(b_.data() + 4); }
  // Routing header (RFC 8200 4.4).
  uint8_t routing_type() const { return load_u8(b_.data() + 2); }
  uint8_t segments_left() const { return load_u8(b_.data() + 3); }
  // Authentication header (RFC 4302 2).
  uint32_t spi() const { return load_be32(b_.data() + 4); }
  uint32_t sequence() const { return load_be32(b_.data() + 8); }

 private:
  Ipv6ExtView(uint8_t type, Bytes b) : b_(b), type_(type) {}
  Bytes b_;
  uint8_t type_;
};

}  // namespace l45
