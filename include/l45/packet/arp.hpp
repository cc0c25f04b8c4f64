// ARP (RFC 826). The view accepts any hardware/protocol address sizes; the MAC/IPv4 accessors
// apply to the Ethernet/IPv4 form (is_ether_ipv4()) and return empty values otherwise.
//
//   if (auto a = ArpView::parse(b); a && a->is_ether_ipv4() && a->op() == ArpView::kRequest)
//     who_has(a->target_ip());
#pragma once

#include <optional>

#include "l45/packet/bytes.hpp"
#include "l45/packet/ip_addr.hpp"
#include "l45/packet/mac_addr.hpp"

namespace l45 {

class ArpView {
 public:
  static constexpr size_t kFixedLen = 8;
  static constexpr uint16_t kRequest = 1;
  static constexpr uint16_t kReply = 2;

  // Needs the fixed part and all four addresses.
  static std::optional<ArpView> parse(Bytes b) {
    if (b.size() < kFixedLen) return std::nullopt;
    size_t len = kFixedLen + 2 * (size_t(load_u8(b.data() + 4)) + load_u8(b.data() + 5));
    if (b.size() < len) return std::nullopt;
    return ArpView(b);
  }
  uint16_t hw_type() const { return load_be16(b_.data()); }
  uint16_t proto_type() const { return load_be16(b_.data() + 2); }
  uint8_t hw_len() const { return load_u8(b_.data() + 4); }
  uint8_t proto_len() const { return load_u8(b_.data() + 5); }
  uint16_t op() const { return load_be16(b_.data() + 6); }
  bool is_ether_ipv4() const {
    return hw_type() == 1 && proto_type() == 0x0800 && hw_len() == 6 && proto_len() == 4;
  }
  Bytes sender_hw() const { return b_.subspan(kFixedLen, hw_len()); }
  Bytes sender_proto() const { return b_.subspan(kFixedLen + hw_len(), proto_len()); }
  Bytes target_hw() const { return b_.subspan(kFixedLen + hw_len() + proto_len(), hw_len()); }
  Bytes target_proto() const {
    return b_.subspan(kFixedLen + 2 * hw_len() + proto_len(), proto_len());
  }
  MacAddr sender_mac() const { return is_ether_ipv4() ? MacAddr::from(b_.data() + 8) : MacAddr{}; }
  IpAddr sender_ip() const { return is_ether_ipv4() ? IpAddr::v4(b_.data() + 14) : IpAddr{}; }
  MacAddr target_mac() const { return is_ether_ipv4() ? MacAddr::from(b_.data() + 18) : MacAddr{}; }
  IpAddr target_ip() const { return is_ether_ipv4() ? IpAddr::v4(b_.data() + 24) : IpAddr{}; }
  size_t header_len() const { return kFixedLen + 2 * (size_t(hw_len()) + proto_len()); }
  Bytes payload() const { return b_.subspan(header_len()); }

 private:
  explicit ArpView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
