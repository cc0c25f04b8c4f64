// Out-of-line parts of the header views: option walks and checksums.
#include "l45/packet/checksum.hpp"
#include "l45/packet/ipv4.hpp"
#include "l45/packet/tcp.hpp"

namespace l45 {

bool Ipv4View::options_valid() const {
  OptionCursor c = option_cursor();
  for (HeaderOption o; c.next(o);) {
  }
  return !c.malformed();
}

bool Ipv4View::header_checksum_ok() const {
  return checksum_finish(checksum_add(header())) == 0;
}

namespace {

// RFC 9293 3.2, RFC 7323 2.2/3.2, RFC 2018 2/3: the length each known kind must have.
// 0 = any length is the option's own business (unknown kinds); SACK is checked separately.
constexpr uint8_t known_length(uint8_t kind) {
  switch (kind) {
    case tcp_option::kMss:
      return 4;
    case tcp_option::kWindowScale:
      return 3;
    case tcp_option::kSackPermitted:
      return 2;
    case tcp_option::kTimestamps:
      return 10;
    default:
      return 0;
  }
}

bool sack_length_ok(uint8_t len) {
  return len >= 10 && (len - 2) % 8 == 0;
}

}  // namespace

bool TcpView::options_valid_slow() const {
  // perf: a direct walk without the TcpOptions copy; the decoder runs this on every segment
  // that carries options.
  const std::byte* p = b_.data() + kMinHeaderLen;
  size_t n = header_len() - kMinHeaderLen;
  size_t i = 0;
  while (i < n) {
    uint8_t kind = load_u8(p + i);
    if (kind == tcp_option::kEol) return true;
    if (kind == tcp_option::kNop) {
      ++i;
      continue;
    }
    if (i + 2 > n) return false;
    uint8_t len = load_u8(p + i + 1);
    if (len < 2 || i + len > n) return false;
    if (uint8_t want = known_length(kind); want && len != want) return false;
    if (kind == tcp_option::kSack && !sack_length_ok(len)) return false;
    i += len;
  }
  return true;
}

TcpOptions TcpView::options() const {
  TcpOptions o;
  OptionCursor c(option_bytes(), kMinHeaderLen);
  for (HeaderOption h; c.next(h);) {
    if (h.kind <= tcp_option::kNop) continue;
    if (uint8_t want = known_length(h.kind); want && h.length != want) {
      o.malformed = true;
      return o;
    }
    const std::byte* v = h.value.data();
    switch (h.kind) {
      case tcp_option::kMss:
        o.mss = load_be16(v);
        break;
      case tcp_option::kWindowScale:
        o.window_scale = load_u8(v);
        break;
      case tcp_option::kSackPermitted:
        o.sack_permitted = true;
        break;
      case tcp_option::kTimestamps:
        o.timestamps = TcpTimestamps{load_be32(v), load_be32(v + 4)};
        break;
      case tcp_option::kSack: {
        if (!sack_length_ok(h.length)) {
          o.malformed = true;
          return o;
        }
        // (40 - 2) / 8 = 4 blocks at most fit in the option space.
        o.sack_count = uint8_t((h.length - 2) / 8);
        for (size_t i = 0; i < o.sack_count; ++i)
          o.sack[i] = {TcpSeq(load_be32(v + 8 * i)), TcpSeq(load_be32(v + 8 * i + 4))};
        break;
      }
      default:
        if (o.other_count < TcpOptions::kMaxOther)
          o.other[o.other_count++] = {h.kind, h.offset, h.length};
        break;
    }
  }
  o.malformed = c.malformed();
  return o;
}

}  // namespace l45
