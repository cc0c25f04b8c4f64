// Byte spans and big-endian field access. Packet fields are always read through these
// helpers, never by casting a pointer to a struct (alignment and aliasing are not ours to
// assume on captured data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace l45 {

using Bytes = std::span<const std::byte>;
using MutBytes = std::span<std::byte>;

inline Bytes as_bytes(const void* p, size_t n) {
  return {static_cast<const std::byte*>(p), n};
}

inline uint8_t load_u8(const std::byte* p) {
  return static_cast<uint8_t>(*p);
}
inline uint16_t load_be16(const std::byte* p) {
  return static_cast<uint16_t>((uint16_t(p[0]) << 8) | uint16_t(p[1]));
}
inline uint32_t load_be24(const std::byte* p) {
  return (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | uint32_t(p[2]);
}
inline uint32_t load_be32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint64_t load_be64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}
inline uint16_t load_le16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_le32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void store_u8(std::byte* p, uint8_t v) {
  *p = std::byte{v};
}
inline void store_be16(std::byte* p, uint16_t v) {
  p[0] = std::byte(v >> 8);
  p[1] = std::byte(v & 0xff);
}
inline void store_be32(std::byte* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}
inline void store_le16(std::byte* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
inline void store_le32(std::byte* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}

}  // namespace l45
