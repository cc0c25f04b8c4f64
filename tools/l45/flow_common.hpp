// What every command built on the flow engine shares: its options (--max-flows, --overlap,
// ...), the loop that feeds it from a source with a timer for live captures, --stats, and the
// Zeek-style names of a flow's fields.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "input.hpp"
#include "l45/flow/engine.hpp"
#include "l45/monitor/nfqueue_inline.hpp"
#include "text.hpp"

namespace l45::cli {

struct EngineArgs {
  uint32_t max_flows = 65536;
  std::string when_full = "evict";
  uint64_t max_buffer_mb = 64;
  std::string overlap = "first";
  uint64_t depth = 0;
  std::string after_reset = "deliver";
  bool vlan = false;
  bool checksums = false;
  bool stats = false;
};

// Inline commands on an NFQUEUE: --queue N, --fail-open.
struct QueueArgs {
  int queue = -1;  // -1: not given (run_inline() ends the command)
  bool fail_open = false;
};
void add_queue_options(CLI::App& app, QueueArgs& q);
// Runs `ctx` inline on the queue until Ctrl-C or SIGTERM; `each_second` runs about once a
// second with the counters so far, and once more at the end.
Result<NfqueueInlineCounters> run_inline(
    MonitorContext& ctx, const QueueArgs& q,
    const std::function<void(const NfqueueInlineCounters&)>& each_second);

// `with_stream`: the command reassembles (adds --overlap and --depth).
void add_engine_options(CLI::App& app, EngineArgs& a, bool with_stream);
EngineConfig engine_config(const EngineArgs& a);
// The same for the input `in`: from an interface the flow table's hash seed is drawn at random,
// so traffic cannot be aimed at one probe chain (a file keeps the fixed seed: replays stay
// identical).
EngineConfig engine_config(const EngineArgs& a, const InputArgs& in);
EngineConfig live_engine_config(const EngineArgs& a);  // a random seed

// Feeds every packet of `src` to `engine` and calls engine.finish() at the end (unless
// `finish` is false). `tick(now)` is the place for periodic output: for a file it runs BEFORE
// each packet with that packet's time (so a table at a period boundary shows the flows as they
// were then); live (`live_clock`) it runs after each read with the wall clock (live sources
// read at least once a second). A source error comes back after every packet
// before it was processed: the caller prints what it has, then must()s the result.
Result<void> run_engine(Source& src, Engine& engine,
                        const std::function<void(Timestamp)>& tick = {}, bool finish = true,
                        bool live_clock = false);

// --stats: the source's and the engine's counters, every drop and anomaly by name (stderr).
void print_engine_stats(const Source& src, const Engine& engine);

// Zeek conn.log vocabulary.
std::string_view proto_name(uint8_t proto);  // "tcp", "udp", "icmp", else the number
// Zeek's id.orig_p / id.resp_p: ports, or for ICMP the type and the code (the reply type for
// request/reply pairs).
uint16_t zeek_orig_port(const Flow& f);
uint16_t zeek_resp_port(const Flow& f);
std::string zeek_conn_state(const Flow& f);
std::string zeek_history(const Flow& f);
std::string format_ts(Timestamp t);  // seconds with 6 decimals

}  // namespace l45::cli
