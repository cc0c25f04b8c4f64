// l45 midstat: mOS's midstat (examples/midstat), a table of the flows being tracked with both
// endpoints' TCP state; refreshed every second live, printed at the end (or every --every
// seconds of packet time) for a file.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "command.hpp"
#include "flow_common.hpp"
#include "l45/packet/ip_proto.hpp"
#include "midstat/midstat.hpp"

namespace l45::cli {
namespace {

struct MidstatArgs {
  InputArgs in;
  EngineArgs engine;
  double every = 0;
  size_t max_rows = 0;
  bool json = false;
};

// TCP and UDP endpoints with their port; others (ICMP) by address alone.
std::string endpoint(const examples::MidstatRow& r, const IpAddr& a, uint16_t port) {
  if (r.proto == ip_proto::kTcp || r.proto == ip_proto::kUdp) return format_endpoint(a, port);
  return a.to_string();
}

void print_table(const std::vector<examples::MidstatRow>& flows, const MidstatArgs& a,
                 Timestamp now) {
  const size_t shown = a.max_rows ? std::min(a.max_rows, flows.size()) : flows.size();
  fmt::memory_buffer o;
  auto out = std::back_inserter(o);
  if (a.json) {
    fmt::format_to(out, "{{\"ts\":{},\"flows\":{},\"table\":[", format_ts(now), flows.size());
    for (size_t i = 0; i < shown; ++i) {
      const examples::MidstatRow& f = flows[i];
      fmt::format_to(out,
                     "{}{{\"uid\":\"{}\",\"proto\":\"{}\",\"worker\":{},\"client\":\"{}\","
                     "\"client_state\":\"{}\",\"server\":\"{}\",\"server_state\":\"{}\"}}",
                     i ? "," : "", f.uid, proto_name(f.proto), f.worker,
                     endpoint(f, f.client, f.client_port), f.client_state,
                     endpoint(f, f.server, f.server_port), f.server_state);
    }
    fmt::format_to(out, "]}}\n");
  } else {
    fmt::format_to(out, "# {}  {} flows", format_ts(now), flows.size());
    if (shown < flows.size()) fmt::format_to(out, " ({} shown)", shown);
    fmt::format_to(out, "\n{:<6}{:>7}  {:<46}{:<13}{:<46}{:<13}\n", "PROTO", "WORKER", "CLIENT",
                   "STATE", "SERVER", "STATE");
    for (size_t i = 0; i < shown; ++i) {
      const examples::MidstatRow& f = flows[i];
      fmt::format_to(out, "{:<6}{:>7}  {:<46}{:<13}{:<46}{:<13}\n", proto_name(f.proto), f.worker,
                     endpoint(f, f.client, f.client_port), f.client_state,
                     endpoint(f, f.server, f.server_port), f.server_state);
    }
    fmt::format_to(out, "\n");
  }
  std::fwrite(o.data(), 1, o.size(), stdout);
  std::fflush(stdout);
}

void run_midstat(const MidstatArgs& a) {
  if (a.every < 0) fail("--every takes a positive number of seconds");
  const bool live = !a.in.iface.empty();
  auto src = open_input(a.in);
  EngineConfig cfg = engine_config(a.engine, a.in);
  cfg.reassemble = false;  // states only
  MonitorContext ctx(cfg);
  examples::Midstat mid(ctx);
  must(mid.status());
  const Duration period = Duration{int64_t((a.every > 0 ? a.every : 1.0) * 1e9)};
  SystemClock wall;
  Timestamp next{};
  auto tick = [&](Timestamp pkt_now) {
    if (!live && a.every <= 0) return;
    const Timestamp now = live ? wall.now() : pkt_now;
    if (now.ns == 0) return;
    if (next.ns == 0) next = now + period;
    if (live) {
      if (now < next) return;
      print_table(mid.table(), a, now);
      while (!(now < next))
        next = next + period;
      return;
    }
    // A file: one table per period boundary the capture's clock passes, each showing the flows
    // as they were at that moment (the packet at `now` is not processed yet).
    for (; !(now < next); next = next + period)
      print_table(mid.table(), a, next);
  };
  auto r = for_each_packet(
      *src, 0,
      [&](const Packet& p) {
        if (!live && ctx.engine().now() < p.meta().ts) tick(p.meta().ts);
        ctx.process(p);
      },
      [&] {
        if (!live) return;
        ctx.advance(wall.now());
        tick(wall.now());
      });
  print_table(mid.table(), a, live ? wall.now() : ctx.engine().now());
  ctx.finish();
  if (a.engine.stats) print_engine_stats(*src, ctx.engine());
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<MidstatArgs>();
  add_input_options(app, a->in);
  app.add_option("--every", a->every,
                 "print the table every SECONDS (of packet time for a file; live: default 1)");
  app.add_option("-n,--max-rows", a->max_rows, "show at most N flows per table (0 = all)");
  app.add_flag("--json", a->json, "one JSON object per table");
  add_engine_options(app, a->engine, false);
  app.footer(R"(Examples:
  l45 midstat -r trace.pcap                 the flows still open at the end of the capture
  l45 midstat -r trace.pcap --every 10      and every 10 s of capture time
  l45 midstat -i eth0 -n 40                 live, refreshed every second (needs root)

Columns: PROTO, WORKER (the engine thread: 0), CLIENT (the SYN sender, or first sender),
its TCP state as the middlebox infers it (SYN_SENT, ESTABLISHED, FIN_WAIT_1, TIME_WAIT,
...), SERVER and its state. UDP and ICMP sides show ACTIVE once they sent a packet. Flows are
listed oldest first; closed ones stay 5 s (like a kernel's TIME_WAIT) before they leave.)");
  app.callback([a] { run_midstat(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("midstat", "show the flows being tracked and both endpoints' TCP state", setup,
                     40);

}  // namespace l45::cli
