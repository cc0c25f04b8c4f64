#include "l45/tag/sign.hpp"

#include <cstring>

namespace l45::tag {

namespace {
void put_le(std::vector<uint8_t>& m, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    m.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
}  // namespace

std::vector<uint8_t> sign_message(uint32_t app, uint64_t cookie, uint64_t time, const l45_tag* tags,
                                  size_t n) {
  static constexpr char kDomain[] = "l45-tag-sign-v1";  // with its NUL
  std::vector<uint8_t> m(kDomain, kDomain + sizeof kDomain);
  put_le(m, app, 4);
  put_le(m, cookie, 8);
  put_le(m, time, 8);
  for (size_t i = 0; i < n; ++i) {
    l45_tag t = tags[i];
    t.flags = 0;
    const auto* p = reinterpret_cast<const uint8_t*>(&t);
    m.insert(m.end(), p, p + sizeof t);
  }
  return m;
}

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view s, size_t n) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
    s.remove_suffix(1);
  if (s.size() != 2 * n) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string public_key_path(const std::string& trust_store, uint32_t app) {
  return trust_store + "/app-" + std::to_string(app) + ".pub";
}

}  // namespace l45::tag
