#include "builtin.hpp"

#include <cstdio>
#include <cstring>

namespace l45::shim {
namespace {
std::vector<const l45_shim_module*>& registry() {
  static auto* r = new std::vector<const l45_shim_module*>;  // never destroyed
  return *r;
}
}  // namespace

bool register_builtin(const l45_shim_module* m) {
  registry().push_back(m);
  return true;
}

const l45_shim_module* find_builtin(std::string_view name) {
  for (const auto* m : registry())
    if (name == m->name) return m;
  return nullptr;
}

std::vector<const l45_shim_module*> builtins() {
  return registry();
}

size_t fill_counters(std::span<const NamedCounter> counters, l45_shim_counter* out, size_t max) {
  size_t n = 0;
  for (const NamedCounter& c : counters) {
    if (n == max) break;
    std::snprintf(out[n].name, sizeof out[n].name, "%s", c.name);
    out[n].value = c.value;
    ++n;
  }
  return n;
}

}  // namespace l45::shim
