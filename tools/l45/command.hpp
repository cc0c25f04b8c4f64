// Subcommands of the `l45` tool. Each lives in its own file and registers with one line:
//
//   static void setup_decode(CLI::App& app) { ... app.callback(...) ... }
//   L45_REGISTER_COMMAND("decode", "print every packet of a capture or an interface", setup_decode,
//   10);
//
// Exit codes: 0 success, 1 the job ran but found a problem (e.g. a test failed), 2 usage or
// environment error (unknown file, bad filter, missing privilege): always with one clear line.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "l45/core/result.hpp"

namespace l45::cli {

constexpr int kExitOk = 0;
constexpr int kExitProblem = 1;
constexpr int kExitUsage = 2;

struct Command {
  std::string name;
  std::string help;
  std::function<void(CLI::App&)> setup;
  int order;  // position in `l45 help`
};

bool register_command(Command c);
const std::vector<Command>& commands();

// Thrown from a subcommand callback to end with one clear line and an exit code. This is
// the CLI boundary: the only place where l45 code throws.
struct Exit {
  int code;
  std::string message;  // printed as "l45: error: <message>" when not empty
};
[[noreturn]] inline void fail(const Error& e, int code = kExitUsage) {
  throw Exit{code, e.message()};
}
[[noreturn]] inline void fail(std::string msg, int code = kExitUsage) {
  throw Exit{code, std::move(msg)};
}

// Unwraps a Result or ends the command with its error.
template <typename T>
T must(Result<T> r, int code = kExitUsage) {
  if (!r.ok()) fail(r.error(), code);
  return std::move(r).value();
}
inline void must(Result<void> r, int code = kExitUsage) {
  if (!r.ok()) fail(r.error(), code);
}

}  // namespace l45::cli

#define L45_REGISTER_COMMAND(name, help, setup, order)                    \
  [[maybe_unused]] static const bool L45_CONCAT(l45_cmd_reg_, __LINE__) = \
      ::l45::cli::register_command({name, help, setup, order})
