// l45 midstat: mOS's midstat (examples/midstat), a table of the flows being tracked with both
// endpoints' TCP state; refreshed every second live, printed at the end (or every --every
// seconds of packet time) for a file.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "command.hpp"
#include "flow_common.hpp"
#include "flow_order.hpp"
#include "l45/monitor/workers.hpp"
#include "l45/packet/ip_proto.hpp"
#include "midstat/midstat.hpp"

namespace l45::cli {
namespace {

struct MidstatArgs {
  InputArgs in;
  EngineArgs engine;
  double every = 0;
  unsigned workers = 1;
  size_t max_rows = 0;
  bool json = false;
};

// For a file: the period boundaries the capture's clock passed, up to `now`, each given to
// `table` (the flows as they were then: the packet at `now` is not processed yet). Nothing
// changes between packets, so a stretch without packets longer than kQuietTables periods (a
// capture whose clock jumps years) prints its first kQuietTables tables and skips the rest,
// which would be the same, saying so on stderr.
constexpr int64_t kQuietTables = 100;
template <typename Table>
void tables_crossed(Timestamp now, Timestamp& next, Duration period, Table&& table) {
  int64_t n = 0;
  for (; !(now < next) && n < kQuietTables; next = next + period, ++n)
    table(next);
  if (now < next) return;
  const int64_t skipped = (now.ns - next.ns) / period.ns + 1;
  next.ns += skipped * period.ns;
  fmt::print(stderr, "l45: midstat: no packets for {} periods: {} identical tables skipped\n",
             n + skipped, skipped);
}

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

void run_midstat_workers(const MidstatArgs& a);

void run_midstat(const MidstatArgs& a) {
  if (a.every < 0) fail("--every takes a positive number of seconds");
  if (a.workers > 1) return run_midstat_workers(a);
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
    tables_crossed(now, next, period, [&](Timestamp at) { print_table(mid.table(), a, at); });
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

// -c N: N workers (WorkerPool), each with its own Midstat. A table is a mark: every worker
// takes its rows at the same point of the input, the last one to arrive merges them in the
// order one engine would list them (where each flow opened) with one engine's uids, and prints.
void run_midstat_workers(const MidstatArgs& a) {
  const bool live = !a.in.iface.empty();
  auto src = open_input(a.in);
  EngineConfig cfg = engine_config(a.engine, a.in);
  cfg.reassemble = false;
  const unsigned n = a.workers;
  std::vector<std::unique_ptr<examples::Midstat>> mids(n);
  FlowOrder order(n);
  struct Table {
    Timestamp ts;
    unsigned arrived = 0;
    std::vector<std::vector<uint64_t>> opened;
    std::vector<std::pair<uint64_t, examples::MidstatRow>> rows;  // by the frame it opened at
  };
  std::mutex m;  // guards tables and order's merged list; the printing happens under it
  std::map<uint64_t, Table> tables;
  auto on_mark = [&](unsigned w, MonitorContext&, uint64_t id) {
    std::vector<std::pair<uint64_t, examples::MidstatRow>> mine;
    for (examples::MidstatRow& r : mids[w]->table())
      mine.emplace_back(order.frame(w, r.serial), std::move(r));
    std::vector<uint64_t> opened = order.take(w);
    std::lock_guard lock(m);
    Table& t = tables[id];
    t.opened.push_back(std::move(opened));
    for (auto& x : mine)
      t.rows.push_back(std::move(x));
    if (++t.arrived < n) return;
    order.add(t.opened);
    std::sort(t.rows.begin(), t.rows.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<examples::MidstatRow> rows;
    for (auto& [frame, r] : t.rows) {
      r.uid = order.uid(frame);
      rows.push_back(std::move(r));
    }
    print_table(rows, a, t.ts);
    tables.erase(id);
  };
  WorkerPool pool(
      {.workers = n, .engine = cfg},
      [&](unsigned w, MonitorContext& ctx) -> Result<void> {
        if (auto r = order.watch(w, ctx); !r.ok()) return r;
        mids[w] = std::make_unique<examples::Midstat>(ctx, w);
        return mids[w]->status();
      },
      on_mark);
  uint64_t marks = 0;
  auto table_at = [&](Timestamp ts) {
    {
      std::lock_guard lock(m);
      tables[marks].ts = ts;
    }
    pool.mark(marks++);
  };
  const Duration period = Duration{int64_t((a.every > 0 ? a.every : 1.0) * 1e9)};
  SystemClock wall;
  Timestamp next{}, clock{};
  auto tick = [&](Timestamp now) {
    if ((!live && a.every <= 0) || now.ns == 0) return;
    if (next.ns == 0) next = now + period;
    if (live) {
      if (now < next) return;
      table_at(now);
      while (!(now < next))
        next = next + period;
      return;
    }
    tables_crossed(now, next, period, table_at);
  };
  auto r = for_each_packet(
      *src, 0,
      [&](const Packet& p) {
        if (!live && clock < p.meta().ts) {
          tick(p.meta().ts);
          clock = p.meta().ts;
        }
        // A file's packets stay valid (slices of the loaded file); a live source reuses its
        // buffers.
        pool.push(live ? Packet::copy_of(p.data(), p.meta()) : p.share());
      },
      [&] {
        if (!live) return;
        pool.advance(wall.now());
        tick(wall.now());
      });
  table_at(live ? wall.now() : clock);
  const Result<void> done = pool.finish();
  must(done);
  if (a.engine.stats)
    for (unsigned w = 0; w < n; ++w) {
      std::fprintf(stderr, "l45: worker %u:\n", w);
      print_engine_stats(*src, pool.context(w).engine());
    }
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<MidstatArgs>();
  add_input_options(app, a->in);
  app.add_option("--every", a->every,
                 "print the table every SECONDS (of packet time for a file; live: default 1)");
  app.add_option("-n,--max-rows", a->max_rows, "show at most N flows per table (0 = all)");
  app.add_flag("--json", a->json, "one JSON object per table");
  app.add_option("-c,--workers", a->workers,
                 "N shared-nothing workers (threads, one flow table each); flows spread by hash")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  add_engine_options(app, a->engine, false);
  app.footer(R"(Examples:
  l45 midstat -r trace.pcap                 the flows still open at the end of the capture
  l45 midstat -r trace.pcap --every 10      and every 10 s of capture time
  l45 midstat -i eth0 -n 40                 live, refreshed every second (needs root)
  l45 midstat -r trace.pcap -c 2            two workers, each with its own flow table

Columns: PROTO, WORKER (the worker whose flow table holds the flow: 0..N-1 with -c N), CLIENT (the SYN sender, or first sender),
its TCP state as the middlebox infers it (SYN_SENT, ESTABLISHED, FIN_WAIT_1, TIME_WAIT,
...), SERVER and its state. UDP and ICMP sides show ACTIVE once they sent a packet. Flows are
listed oldest first; closed ones stay 5 s (like a kernel's TIME_WAIT) before they leave.
-c N: packets are spread over N workers by a symmetric hash of the flow (both directions, the
ICMP errors quoting it and its IP fragments reach one worker); each table is taken by every
worker at the same point of the input and merged, so for a file the output is that of -c 1
but for the WORKER column. --stats prints each worker's counters.
--every on a file: a table at each period boundary of packet time; a stretch without packets
longer than 100 periods (a capture whose clock jumps) prints 100 tables and skips the rest,
which are the same, with a line on stderr.)");
  app.callback([a] { run_midstat(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("midstat", "show the flows being tracked and both endpoints' TCP state", setup,
                     40);

}  // namespace l45::cli
