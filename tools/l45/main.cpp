// The `l45` command: a thin front over the library. Subcommands register themselves (see
// command.hpp); this file only builds the top-level app and maps failures to exit codes.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "command.hpp"
#include "l45/core/log.hpp"

#ifndef L45_VERSION
#define L45_VERSION "0.0.0"
#endif

namespace l45::cli {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace

bool register_command(Command c) {
  registry().push_back(std::move(c));
  return true;
}

const std::vector<Command>& commands() {
  auto& r = registry();
  std::stable_sort(r.begin(), r.end(),
                   [](const Command& a, const Command& b) { return a.order < b.order; });
  return r;
}

}  // namespace l45::cli

int main(int argc, char** argv) {
  using namespace l45::cli;
  CLI::App app{
      "l45: transparent network services: watch, steer and transform the connections of\n"
      "applications that were never changed for them.\n\n"
      "Run 'l45 help' for the commands, 'l45 COMMAND --help' for one of them.",
      "l45"};
  app.set_version_flag("-V,--version", "l45 " L45_VERSION);
  app.require_subcommand(0, 1);
  int verbosity = 0;
  app.add_flag("-v,--verbose", verbosity, "more messages on stderr (repeat for debug)");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "only errors on stderr");
  app.parse_complete_callback([&] {
    using l45::log::Level;
    l45::log::set_level(quiet            ? Level::Error
                        : verbosity >= 2 ? Level::Debug
                        : verbosity == 1 ? Level::Info
                                         : Level::Warning);
  });

  auto* help = app.add_subcommand("help", "list the commands, or show one command's help");
  std::string help_topic;
  help->add_option("command", help_topic, "the command to explain");
  for (const auto& c : commands())
    c.setup(*app.add_subcommand(c.name, c.help));

  help->callback([&] {
    if (!help_topic.empty()) {
      CLI::App* sub = nullptr;
      for (auto* c : app.get_subcommands({}))
        if (c->get_name() == help_topic) sub = c;
      if (!sub || sub == help)
        throw Exit{kExitUsage, fmt::format("no command '{}' (see 'l45 help')", help_topic)};
      std::fputs(sub->help().c_str(), stdout);
      return;
    }
    std::fputs(
        "l45: transparent network services, in one toolkit.\n\nusage: l45 COMMAND "
        "[OPTIONS]\n\ncommands:\n",
        stdout);
    for (const auto& c : commands())
      std::printf("  %-10s %s\n", c.name.c_str(), c.help.c_str());
    std::fputs(
        "  help       this list; 'l45 help COMMAND' for one command\n\n"
        "Inputs are files ('-r trace.pcap') or interfaces ('-i eth0'); most commands\n"
        "take a tcpdump-syntax filter ('-f \"tcp port 80\"') and print JSON with --json.\n",
        stdout);
  });

  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::fputs(app.help().c_str(), stdout);
      return kExitUsage;
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "l45: error: %s\n(see 'l45 help' or 'l45 COMMAND --help')\n", e.what());
    return kExitUsage;
  } catch (const Exit& e) {
    if (!e.message.empty()) std::fprintf(stderr, "l45: error: %s\n", e.message.c_str());
    return e.code;
  }
  return kExitOk;
}
