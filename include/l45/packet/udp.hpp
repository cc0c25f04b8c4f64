// UDP header view (RFC 768). parse() needs the 8-byte header and a length of at least 8; a
// length past the bytes given only clips payload() (a cut capture, or a first fragment).
#pragma once

#include <algorithm>
#include <optional>

#include "l45/packet/bytes.hpp"

namespace l45 {

class UdpView {
 public:
  static constexpr size_t kHeaderLen = 8;

  static std::optional<UdpView> parse(Bytes b) {
    if (b.size() < kHeaderLen || load_be16(b.data() + 4) < kHeaderLen) return std::nullopt;
    return UdpView(b);
  }
  uint16_t src_port() const { return load_be16(b_.data()); }
  uint16_t dst_port() const { return load_be16(b_.data() + 2); }
  uint16_t length() const { return load_be16(b_.data() + 4); }
  uint16_t checksum() const { return load_be16(b_.data() + 6); }  // 0: not computed (IPv4)
  size_t header_len() const { return kHeaderLen; }
  Bytes header() const { return b_.first(kHeaderLen); }
  Bytes payload() const {
    return b_.subspan(kHeaderLen, std::min<size_t>(length(), b_.size()) - kHeaderLen);
  }

 private:
  explicit UdpView(Bytes b) : b_(b) {}
  Bytes b_;
};

}  // namespace l45
