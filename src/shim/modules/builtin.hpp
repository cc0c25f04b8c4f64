// Built-in shim modules: each registers its descriptor with one line at the end of its .cpp,
//   L45_SHIM_BUILTIN(kMonitorModule);
// and the loader finds it by the name a manifest gives in `module = "..."`.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "l45/shim_module.h"

namespace l45::shim {

bool register_builtin(const l45_shim_module* m);

// A module's `counters` hook: copies (name, value) pairs into `out`, at most `max` of them, and
// returns how many.
struct NamedCounter {
  const char* name;
  uint64_t value;
};
size_t fill_counters(std::span<const NamedCounter> counters, l45_shim_counter* out, size_t max);
const l45_shim_module* find_builtin(std::string_view name);
std::vector<const l45_shim_module*> builtins();

}  // namespace l45::shim

#define L45_SHIM_BUILTIN_CAT2(a, b) a##b
#define L45_SHIM_BUILTIN_CAT(a, b) L45_SHIM_BUILTIN_CAT2(a, b)
#define L45_SHIM_BUILTIN(desc)                                                       \
  [[maybe_unused]] static const bool L45_SHIM_BUILTIN_CAT(l45_shim_reg_, __LINE__) = \
      ::l45::shim::register_builtin(&(desc))
