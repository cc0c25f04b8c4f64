// ICMP (RFC 792) and ICMPv6 (RFC 4443) views. Both cover the 8-byte header (type, code,
// checksum, 4 type-specific bytes); echo_id()/echo_seq() read those 4 bytes for echo messages,
// and for error messages quoted() is the invoking packet as much as the error carries
// (RFC 792: IP header + 8 bytes; RFC 4443 2.4(c): as much as fits in the minimum MTU).
// payload() is everything after the 8 bytes.
//
//   if (auto ic = IcmpView::parse(b); ic && ic->is_error())
//     auto inner = PacketView::decode(LinkType::Ipv4, ic->quoted(), ic->quoted().size());
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

namespace icmp_type {
inline constexpr uint8_t kEchoReply = 0;
inline constexpr uint8_t kDestUnreachable = 3;
inline constexpr uint8_t kSourceQuench = 4;
inline constexpr uint8_t kRedirect = 5;
inline constexpr uint8_t kEchoRequest = 8;
inline constexpr uint8_t kTimeExceeded = 11;
inline constexpr uint8_t kParameterProblem = 12;
inline constexpr uint8_t kTimestamp = 13;
inline constexpr uint8_t kTimestampReply = 14;
}  // namespace icmp_type

namespace icmpv6_type {
inline constexpr uint8_t kDestUnreachable = 1;
inline constexpr uint8_t kPacketTooBig = 2;
inline constexpr uint8_t kTimeExceeded = 3;
inline constexpr uint8_t kParameterProblem = 4;
inline constexpr uint8_t kEchoRequest = 128;
inline constexpr uint8_t kEchoReply = 129;
inline constexpr uint8_t kNeighborSolicitation = 135;
inline constexpr uint8_t kNeighborAdvertisement = 136;
}  // namespace icmpv6_type

class IcmpView {
 public:
  static constexpr size_t kHeaderLen = 8;

  static std::optional<IcmpView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return IcmpView(b);
  }
  uint8_t type() const { return load_u8(b_.data()); }
  uint8_t code() const { return load_u8(b_.data() + 1); }
  uint16_t checksum() const { return load_be16(b_.data() + 2); }
  uint32_t rest_of_header() const { return load_be32(b_.data() + 4); }
  bool is_echo() const {
    return type() == icmp_type::kEchoRequest || type() == icmp_type::kEchoReply ||
           type() == icmp_type::kTimestamp || type() == icmp_type::kTimestampReply;
  }
  bool is_error() const {
    switch (type()) {
      case icmp_type::kDestUnreachable:
      case icmp_type::kSourceQuench:
      case icmp_type::kRedirect:
      case icmp_type::kTimeExceeded:
      case icmp_type::kParameterProblem:
        return true;
      default:
        return false;
    }
  }
  uint16_t echo_id() const { return load_be16(b_.data() + 4); }
  uint16_t echo_seq() const { return load_be16(b_.data() + 6); }
  // RFC 1191 4: next-hop MTU of a "fragmentation needed" (type 3 code 4).
  uint16_t next_hop_mtu() const { return load_be16(b_.data() + 6); }
  const std::byte* gateway_bytes() const { return b_.data() + 4; }  // redirect
  Bytes quoted() const { return is_error() ? payload() : Bytes{}; }
  size_t header_len() const { return kHeaderLen; }
  Bytes header() const { return b_.first(kHeaderLen); }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit IcmpView(Bytes b) : b_(b) {}
  Bytes b_;
};

class Icmpv6View {
 public:
  static constexpr size_t kHeaderLen = 8;

  static std::optional<Icmpv6View> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return Icmpv6View(b);
  }
  uint8_t type() const { return load_u8(b_.data()); }
  uint8_t code() const { return load_u8(b_.data() + 1); }
  uint16_t checksum() const { return load_be16(b_.data() + 2); }
  // RFC 4443 2.1: types 0-127 are errors.
  bool is_error() const { return type() < 128; }
  bool is_echo() const {
    return type() == icmpv6_type::kEchoRequest || type() == icmpv6_type::kEchoReply;
  }
  uint16_t echo_id() const { return load_be16(b_.data() + 4); }
  uint16_t echo_seq() const { return load_be16(b_.data() + 6); }
  uint32_t mtu() const { return load_be32(b_.data() + 4); }      // packet too big
  uint32_t pointer() const { return load_be32(b_.data() + 4); }  // parameter problem
  Bytes quoted() const { return is_error() ? payload() : Bytes{}; }
  size_t header_len() const { return kHeaderLen; }
  Bytes header() const { return b_.first(kHeaderLen); }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit Icmpv6View(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
