// BSD loopback headers: a 4-byte address family (LINKTYPE_NULL in the capturing host's byte
// order, LINKTYPE_LOOP in network order; https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html).
// A NULL capture's byte order is unknown to the reader, so family() accepts both, as libpcap
// does: a value with upper 16 bits set is taken as byte-swapped. AF_INET is 2 everywhere;
// AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD) or 30 (macOS).
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class NullView {
 public:
  static constexpr size_t kHeaderLen = 4;

  // `network_order`: true for LINKTYPE_LOOP.
  static std::optional<NullView> parse(Bytes b, bool network_order = false) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return NullView(b, network_order);
  }
  uint32_t family() const {
    if (network_order_) return load_be32(b_.data());
    uint32_t f = load_le32(b_.data());
    return (f & 0xffff0000u) ? __builtin_bswap32(f) : f;
  }
  // 4, 6, or 0 for a family that is not IP.
  uint8_t ip_version() const {
    switch (family()) {
      case 2:
        return 4;
      case 10:
      case 24:
      case 28:
      case 30:
        return 6;
      default:
        return 0;
    }
  }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  NullView(Bytes b, bool network_order) : b_(b), network_order_(network_order) {}
  Bytes b_;
  bool network_order_;
};

}  // namespace l45
