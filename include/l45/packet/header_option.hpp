// OptionCursor walks the kind/length option lists that IPv4 (RFC 791 3.1) and TCP (RFC 9293
// 3.1) share: kind 0 ends the list, kind 1 is a 1-byte no-op, any other kind is followed by a
// length octet that counts the kind and length octets too, so it must be at least 2 and must
// not run past the header.
//
//   OptionCursor c(ip.options(), 20);
//   for (HeaderOption o; c.next(o);) if (o.kind == 7) ...record route...
//   if (c.malformed()) ...Ipv4BadOptions...
#pragma once

#include <cstdint>

#include "l45/packet/bytes.hpp"

namespace l45 {

struct HeaderOption {
  uint8_t kind = 0;
  uint8_t offset = 0;  // from the start of the enclosing header
  uint8_t length = 0;  // whole option: 1 for EOL/NOP, else the length octet
  Bytes value;         // the bytes after kind and length
};

class OptionCursor {
 public:
  // `area` is the option space; `base` is its offset in the enclosing header (20 for IPv4 and
  // TCP), so HeaderOption::offset is header-relative.
  OptionCursor(Bytes area, uint8_t base) : a_(area), base_(base) {}

  // The next option, EOL included (and then nothing more). False at the end of the list or at
  // a malformed option, after which malformed() is true and nothing more is returned.
  bool next(HeaderOption& o) {
    if (pos_ >= a_.size() || done_) return false;
    uint8_t kind = load_u8(a_.data() + pos_);
    o.kind = kind;
    o.offset = uint8_t(base_ + pos_);
    if (kind <= 1) {
      o.length = 1;
      o.value = {};
      ++pos_;
      done_ = kind == 0;
      return true;
    }
    if (pos_ + 2 > a_.size()) return fail();
    uint8_t len = load_u8(a_.data() + pos_ + 1);
    if (len < 2 || pos_ + len > a_.size()) return fail();
    o.length = len;
    o.value = a_.subspan(pos_ + 2, len - 2u);
    pos_ += len;
    return true;
  }
  bool malformed() const { return bad_; }

 private:
  bool fail() {
    bad_ = done_ = true;
    return false;
  }
  Bytes a_;
  size_t pos_ = 0;
  uint8_t base_;
  bool done_ = false;
  bool bad_ = false;
};

}  // namespace l45
