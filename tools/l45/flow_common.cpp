#include "flow_common.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <random>
#include <span>

#include "command.hpp"
#include "l45/packet/ip_proto.hpp"

namespace l45::cli {

void add_engine_options(CLI::App& app, EngineArgs& a, bool with_stream) {
  app.add_option("--max-flows", a.max_flows, "flows tracked at once (memory is preallocated)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 26));
  app.add_option("--when-full", a.when_full,
                 "at --max-flows: evict (the oldest idle flow) or refuse (new flows)")
      ->capture_default_str()
      ->check(CLI::IsMember({"evict", "refuse"}));
  app.add_flag("--vlan", a.vlan, "the innermost VLAN id is part of the flow key");
  app.add_flag("--verify-checksums", a.checksums,
               "ignore segments with a bad checksum (off: captures with offload have many)");
  if (with_stream) {
    app.add_option("--overlap", a.overlap,
                   "overlapping TCP data: first (bytes seen first win) or last")
        ->capture_default_str()
        ->check(CLI::IsMember({"first", "last"}));
    app.add_option("--depth", a.depth, "reassemble at most BYTES per side (0 = all)");
    app.add_option("--after-reset", a.after_reset,
                   "data sent after an accepted RST: deliver (what the wire carried) or drop "
                   "(what the receiver accepted)")
        ->capture_default_str()
        ->check(CLI::IsMember({"deliver", "drop"}));
    app.add_option("--max-buffer", a.max_buffer_mb, "MiB of out-of-order data held in all")
        ->capture_default_str();
  }
  app.add_flag("--stats", a.stats, "print counters, drops and anomalies by name on stderr");
}

EngineConfig engine_config(const EngineArgs& a) {
  EngineConfig c;
  c.max_flows = a.max_flows;
  c.when_full = a.when_full == "refuse" ? FullPolicy::RefuseNew : FullPolicy::EvictOldestIdle;
  c.max_buffered_bytes = a.max_buffer_mb << 20;
  c.stream.policy = a.overlap == "last" ? OverlapPolicy::Last : OverlapPolicy::First;
  c.stream.depth = a.depth;
  c.deliver_after_reset = a.after_reset != "drop";
  c.key_vlan = a.vlan;
  c.verify_checksums = a.checksums;
  return c;
}

void add_queue_options(CLI::App& app, QueueArgs& q) {
  app.add_option("--queue", q.queue, "NFQUEUE number that a netfilter rule queues to")
      ->check(CLI::Range(0, 65535));
  app.add_flag("--fail-open", q.fail_open,
               "when l45 falls behind (queue full) or exits, the kernel accepts the waiting "
               "packets instead of dropping them");
}

Result<NfqueueInlineCounters> run_inline(
    MonitorContext& ctx, const QueueArgs& q,
    const std::function<void(const NfqueueInlineCounters&)>& each_second) {
  if (q.queue < 0) fail("--queue is required (the NFQUEUE number a netfilter rule queues to)");
  NfqueueOptions o;
  o.queue = uint16_t(q.queue);
  o.fail_open = q.fail_open;
  L45_TRY(auto in, NfqueueInline::open(ctx, o));
  catch_stop_signals();
  SystemClock wall;
  Timestamp next = wall.now() + Duration::seconds(1);
  Result<void> r;
  while (!stop_requested()) {
    if (auto n = in->run_once(); !n.ok()) {
      r = n.error();
      break;
    }
    if (const Timestamp now = wall.now(); now >= next) {
      each_second(in->counters());
      next = now + Duration::seconds(1);
    }
  }
  each_second(in->counters());
  if (!r.ok()) return r.error();
  return in->counters();
}

EngineConfig engine_config(const EngineArgs& a, const InputArgs& in) {
  return in.iface.empty() ? engine_config(a) : live_engine_config(a);
}

EngineConfig live_engine_config(const EngineArgs& a) {
  EngineConfig c = engine_config(a);
  std::random_device rd;
  c.hash_seed = uint64_t{rd()} << 32 | rd();
  return c;
}

Result<void> run_engine(Source& src, Engine& engine, const std::function<void(Timestamp)>& tick,
                        bool finish, bool live_clock) {
  SystemClock wall;
  auto after_read = [&] {
    if (!live_clock) return;
    engine.advance(wall.now());
    if (tick) tick(wall.now());
  };
  // perf: without a tick between packets, whole batches (l45 conn -r, l45 follow).
  if (!tick) {
    auto r = for_each_batch(
        src, [&](std::span<const Packet> b) { engine.process(b); }, after_read);
    if (finish) engine.finish();
    return r;
  }
  auto r = for_each_packet(
      src, 0,
      [&](const Packet& p) {
        if (tick && !live_clock && engine.now() < p.meta().ts) tick(p.meta().ts);
        engine.process(p);
      },
      after_read);
  if (finish) engine.finish();
  return r;
}

void print_engine_stats(const Source& src, const Engine& e) {
  print_source_stats(src);
  const EngineStats& s = e.stats();
  const FlowTableStats& t = e.table_stats();
  const DefragStats& d = e.defrag_stats();
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::fprintf(stderr,
               "l45: engine: %llu packets: %llu tcp, %llu udp, %llu icmp, %llu other, %llu not "
               "IP, %llu not decoded, %llu fragments held or dropped, %llu without a flow key\n",
               u(s.packets), u(s.tcp_packets), u(s.udp_packets), u(s.icmp_packets),
               u(s.other_packets), u(s.non_ip), u(s.undecodable), u(s.fragments_absorbed),
               u(s.no_key));
  std::fprintf(stderr,
               "l45: flows: %llu created (%llu tcp picked up mid-stream), %llu open, peak %llu "
               "of %u; refused %llu, stopped %llu, ICMP errors attributed %llu\n",
               u(s.flows_created), u(s.tcp_partial), u(e.active_flows()), u(t.peak),
               e.config().max_flows, u(s.flows_refused), u(s.flows_stopped), u(s.icmp_errors));
  std::fprintf(stderr, "l45: flows ended:");
  for (size_t i = 0; i < std::size(s.flows_closed); ++i)
    std::fprintf(stderr, " %s %llu", std::string(flow_end_name(FlowEnd(i))).c_str(),
                 u(s.flows_closed[i]));
  std::fputc('\n', stderr);
  std::fprintf(stderr,
               "l45: streams: %llu bytes reassembled, %llu gaps (%llu bytes), %llu mismatches, "
               "buffered peak %llu bytes\n",
               u(s.stream_bytes), u(s.stream_gaps), u(s.stream_gap_bytes), u(s.stream_mismatches),
               u(s.buffered_peak));
  const StreamStats& ss = e.stream_stats();
  std::fprintf(stderr,
               "l45: segments: %llu seen, %llu out of order, %llu retransmitted (%llu bytes, "
               "%llu unverifiable), %llu keep-alives, %llu refused (%llu bytes), %llu bytes past "
               "the depth\n",
               u(ss.segments), u(ss.ooo_segments), u(ss.rexmit_segments), u(ss.rexmit_bytes),
               u(ss.unverifiable_bytes), u(ss.keepalives), u(ss.refused_segments),
               u(ss.refused_bytes), u(ss.depth_bytes));
  if (d.fragments)
    std::fprintf(stderr,
                 "l45: fragments: %llu, %llu datagrams reassembled, %llu duplicates, %llu atomic\n",
                 u(d.fragments), u(d.reassembled), u(d.duplicates), u(d.atomic));
  std::fprintf(stderr, "l45: memory: %.1f MiB held by the engine\n", e.memory_bytes() / 1048576.0);
  DropCounters all = s.drops;
  all.merge(t.drops);
  all.merge(d.drops);
  print_drops(all);
}

std::string_view proto_name(uint8_t proto) {
  switch (proto) {
    case ip_proto::kTcp:
      return "tcp";
    case ip_proto::kUdp:
      return "udp";
    case ip_proto::kIcmp:
    case ip_proto::kIcmpv6:
      return "icmp";
    case ip_proto::kGre:
      return "gre";
    case ip_proto::kEsp:
      return "esp";
    default:
      return "unknown_transport";
  }
}

namespace {
// ICMP request types and their replies (Zeek's counterpart types).
int icmp_counterpart(uint8_t proto, uint8_t type) {
  static constexpr std::pair<int, int> kV4[] = {{8, 0}, {13, 14}, {15, 16}, {17, 18}, {10, 9}};
  static constexpr std::pair<int, int> kV6[] = {{128, 129}, {133, 134}, {135, 136}, {130, 131}};
  using Pairs = std::span<const std::pair<int, int>>;
  for (auto [a, b] : proto == ip_proto::kIcmp ? Pairs(kV4) : Pairs(kV6)) {
    if (type == a) return b;
    if (type == b) return a;
  }
  return -1;
}
bool is_icmp(const Flow& f) {
  return f.proto() == ip_proto::kIcmp || f.proto() == ip_proto::kIcmpv6;
}
}  // namespace

uint16_t zeek_orig_port(const Flow& f) {
  return is_icmp(f) ? f.icmp_type() : f.port(Side::Client);
}

uint16_t zeek_resp_port(const Flow& f) {
  if (!is_icmp(f)) return f.port(Side::Server);
  int c = icmp_counterpart(f.proto(), f.icmp_type());
  return c >= 0 ? uint16_t(c) : f.icmp_code();
}

std::string zeek_conn_state(const Flow& f) {
  if (auto t = f.tcp()) return std::string(zeek_conn_state_name(t->conn_state()));
  if (f.proto() != ip_proto::kUdp) return "OTH";
  const bool o = f.counters(Side::Client).packets, r = f.counters(Side::Server).packets;
  return o ? (r ? "SF" : "S0") : (r ? "SHR" : "OTH");
}

std::string zeek_history(const Flow& f) {
  if (auto t = f.tcp()) return t->history();
  if (f.proto() != ip_proto::kUdp) return "";
  // Zeek's UDP history: 'D' when the originator sent data, 'd' for the responder.
  std::string h;
  if (f.counters(Side::Client).payload_bytes) h += 'D';
  if (f.counters(Side::Server).payload_bytes) h += 'd';
  return h;
}

std::string format_ts(Timestamp t) {
  int64_t us = (t.nsec_part() + 500) / 1000;
  int64_t s = t.sec();
  if (us == 1000000) ++s, us = 0;
  return fmt::format("{}.{:06}", s, us);
}

}  // namespace l45::cli
