// Reading the "key=value" options of a SourceSpec with one clear message per mistake, shared
// by the io backends. A typo in an option must not be silently ignored: a capture that runs
// with `promsic=0` ignored is worse than one that refuses to start.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "l45/core/result.hpp"
#include "l45/io/registry.hpp"

namespace l45::io_detail {

// Fails on the first option not in `known`.
inline Result<void> check_known_options(const SourceSpec& spec,
                                        std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : spec.options) {
    bool found = false;
    for (auto k : known)
      found = found || k == key;
    if (found) continue;
    if (known.size() == 0)
      return Error::invalid(
          fmt::format("{}:{}: unknown option '{}' (takes none)", spec.scheme, spec.arg, key));
    std::string list;
    for (auto k : known)
      list += fmt::format("{}{}", list.empty() ? "" : ", ", k);
    return Error::invalid(
        fmt::format("{}:{}: unknown option '{}' (known: {})", spec.scheme, spec.arg, key, list));
  }
  return {};
}

// A decimal number in [lo, hi]; `def` when the option is absent.
inline Result<uint64_t> uint_option(const SourceSpec& spec, std::string_view key, uint64_t def,
                                    uint64_t lo, uint64_t hi) {
  if (!spec.has(key)) return def;
  std::string v = spec.option(key);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi)
    return Error::invalid(fmt::format("{}:{}: option {}={}: expected a number from {} to {}",
                                      spec.scheme, spec.arg, key, v, lo, hi));
  return n;
}

// "1"/"0" (also "yes"/"no", "true"/"false", "on"/"off"); `def` when absent.
inline Result<bool> bool_option(const SourceSpec& spec, std::string_view key, bool def) {
  if (!spec.has(key)) return def;
  std::string v = spec.option(key);
  if (v == "1" || v == "yes" || v == "true" || v == "on") return true;
  if (v == "0" || v == "no" || v == "false" || v == "off") return false;
  return Error::invalid(
      fmt::format("{}:{}: option {}={}: expected 1 or 0", spec.scheme, spec.arg, key, v));
}

}  // namespace l45::io_detail
