// Input handling shared by every command that reads packets: -r FILE | -i IFACE, -f FILTER,
// a bounded loop that stops cleanly on Ctrl-C, and the source's counters for --stats.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "l45/io/source.hpp"

namespace l45::cli {

struct InputArgs {
  std::string file;    // -r: capture file, or "-" for standard input
  std::string iface;   // -i: live interface
  std::string filter;  // -f: tcpdump-syntax filter
};

void add_input_options(CLI::App& app, InputArgs& in);
// Opens the source and sets the filter; ends the command (exit 2, one line) on failure.
std::unique_ptr<Source> open_input(const InputArgs& in);
// Calls f for every packet until the source ends, `limit` packets were seen (0 = no limit),
// or the user pressed Ctrl-C. An error from the source (e.g. a corrupt record) comes back
// after every packet before it was handed to f.
// `after_read`, when given, runs after every read from the source, packets or not (a live
// source returns within its poll interval): the place for timers.
Result<void> for_each_packet(Source& src, uint64_t limit,
                             const std::function<void(const Packet&)>& f,
                             const std::function<void()>& after_read = {});
// The same loop a batch at a time (as the source read it, up to 64 packets, never empty): for
// the flow engine's batch path (Engine::process(span): decode, key and prefetch a batch before
// its packets are worked on). No limit.
Result<void> for_each_batch(Source& src, const std::function<void(std::span<const Packet>)>& f,
                            const std::function<void()>& after_read = {});
void print_source_stats(const Source& src);
// Ctrl-C and SIGTERM end a command's loop cleanly: catch them (clears an earlier request), then
// poll stop_requested().
void catch_stop_signals();
bool stop_requested();
// One line per non-zero reason on stderr: "l45:   <name> <count>  (<description>)".
void print_drops(const DropCounters& drops);

}  // namespace l45::cli
