// Minimal leveled logging to stderr: "l45: warning: text". The level is process-wide and set
// once by the CLI (-v / -q). Hot paths do not log: they count (DropCounters, counters.hpp).
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace l45::log {

enum class Level { Error = 0, Warning = 1, Info = 2, Debug = 3 };

void set_level(Level l);
Level level();
void write(Level l, std::string_view msg);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  write(Level::Error, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= Level::Warning) write(Level::Warning, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= Level::Info) write(Level::Info, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= Level::Debug) write(Level::Debug, fmt::format(f, std::forward<Args>(a)...));
}

}  // namespace l45::log
