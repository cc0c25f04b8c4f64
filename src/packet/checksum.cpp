#include "l45/packet/checksum.hpp"

namespace l45 {

uint32_t checksum_add(Bytes data, uint32_t sum) {
  // perf: sum 32-bit big-endian words into 64 bits, fold once (bench/decode_bench).
  uint64_t acc = sum;
  const std::byte* p = data.data();
  size_t n = data.size();
  while (n >= 4) {
    acc += load_be32(p);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    acc += load_be16(p);
    p += 2;
    n -= 2;
  }
  if (n) acc += uint32_t(load_u8(p)) << 8;
  while (acc >> 32)
    acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t checksum_finish(uint32_t sum) {
  uint64_t s = sum;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffff);
}

uint32_t pseudo_header_sum_v4(const std::byte* src, const std::byte* dst, uint8_t proto,
                              uint32_t l4_len) {
  uint32_t s = checksum_add({src, 4});
  s = checksum_add({dst, 4}, s);
  uint64_t acc = uint64_t(s) + proto + (l4_len & 0xffff) + (l4_len >> 16);
  while (acc >> 32)
    acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint32_t pseudo_header_sum_v6(const std::byte* src, const std::byte* dst, uint8_t next_header,
                              uint32_t l4_len) {
  uint32_t s = checksum_add({src, 16});
  s = checksum_add({dst, 16}, s);
  uint64_t acc = uint64_t(s) + next_header + (l4_len & 0xffff) + (l4_len >> 16);
  while (acc >> 32)
    acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t checksum_update16(uint16_t old_csum, uint16_t old_val, uint16_t new_val) {
  uint32_t s = uint32_t(uint16_t(~old_csum)) + uint16_t(~old_val) + new_val;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffff);
}

uint16_t checksum_update32(uint16_t old_csum, uint32_t old_val, uint32_t new_val) {
  uint16_t c = checksum_update16(old_csum, uint16_t(old_val >> 16), uint16_t(new_val >> 16));
  return checksum_update16(c, uint16_t(old_val & 0xffff), uint16_t(new_val & 0xffff));
}

}  // namespace l45
