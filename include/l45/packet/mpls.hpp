// One MPLS label stack entry (RFC 3032 2.1): label 20 bits, traffic class 3, bottom of stack 1,
// TTL 8. RFC 3032 gives no payload type: after the bottom entry the decoder guesses IPv4 or
// IPv6 from the first nibble, as tcpdump and Wireshark do.
//
//   for (Bytes b = rest; auto e = MplsView::parse(b); b = e->payload())
//     if (e->bottom_of_stack()) break;
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class MplsView {
 public:
  static constexpr size_t kHeaderLen = 4;

  static std::optional<MplsView> parse(Bytes b) {
    if (b.size() < kHeaderLen) return std::nullopt;
    return MplsView(b);
  }
  uint32_t entry() const { return load_be32(b_.data()); }
  uint32_t label() const { return entry() >> 12; }
  uint8_t traffic_class() const { return uint8_t((entry() >> 9) & 7); }
  bool bottom_of_stack() const { return (entry() >> 8) & 1; }
  uint8_t ttl() const { return uint8_t(entry()); }
  size_t header_len() const { return kHeaderLen; }
  Bytes payload() const { return b_.subspan(kHeaderLen); }

 private:
  explicit MplsView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
