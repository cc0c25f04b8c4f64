// l45 conn: a Zeek conn.log of a capture or an interface, one record per connection when it
// ends (TSV with Zeek's header lines, or JSON lines).
#include <fmt/format.h>

#include <cstdio>
#include <ctime>

#include "command.hpp"
#include "flow_common.hpp"

namespace l45::cli {
namespace {

struct ConnArgs {
  InputArgs in;
  EngineArgs engine;
  bool json = false;
};

constexpr const char* kFields[] = {
    "ts",         "uid",           "id.orig_h", "id.orig_p",  "id.resp_h",
    "id.resp_p",  "proto",         "duration",  "orig_bytes", "resp_bytes",
    "conn_state", "missed_bytes",  "history",   "orig_pkts",  "orig_ip_bytes",
    "resp_pkts",  "resp_ip_bytes", "tunnel",    "l45_end"};
constexpr const char* kTypes[] = {
    "time",   "string", "addr",   "port",  "addr",  "port",  "enum",  "interval", "count", "count",
    "string", "count",  "string", "count", "count", "count", "count", "string",   "string"};

std::string zeek_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d-%H-%M-%S", &tm);
  return b;
}

class ConnLog final : public FlowObserver {
 public:
  explicit ConnLog(bool json) : json_(json) {}
  uint32_t callbacks() const override { return 0; }  // neither on_packet nor on_tcp_state
  void set_engine(const Engine* e) { e_ = e; }

  void header() {
    if (json_) return;
    fmt::print(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        "#path\tconn\n#open\t{}\n#fields\t{}\n#types\t{}\n",
        zeek_now(), fmt::join(kFields, "\t"), fmt::join(kTypes, "\t"));
  }
  void footer() {
    flush();
    if (!json_) fmt::print("#close\t{}\n", zeek_now());
    std::fflush(stdout);
  }

  void on_close(const Flow& f, FlowEnd why) override {
    const Duration d = f.last_seen() - f.first_seen();
    // Zeek sets duration and the byte counts only when the connection lasted (duration > 0).
    const bool lasted = d.ns > 0;
    const FlowSideCounters& o = f.counters(Side::Client);
    const FlowSideCounters& r = f.counters(Side::Server);
    const std::string hist = zeek_history(f);
    const std::string tunnel = f.tunnel() ? e_->tunnel_path(f.tunnel()) : "";
    auto out = std::back_inserter(buf_);
    if (json_) {
      fmt::format_to(out,
                     "{{\"ts\":{},\"uid\":\"{}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},"
                     "\"id.resp_h\":\"{}\",\"id.resp_p\":{},\"proto\":\"{}\"",
                     format_ts(f.first_seen()), f.uid(), f.addr(Side::Client).to_string(),
                     zeek_orig_port(f), f.addr(Side::Server).to_string(), zeek_resp_port(f),
                     proto_name(f.proto()));
      if (lasted)
        fmt::format_to(out, ",\"duration\":{:.6f},\"orig_bytes\":{},\"resp_bytes\":{}", d.ns / 1e9,
                       f.payload_size(Side::Client), f.payload_size(Side::Server));
      fmt::format_to(out, ",\"conn_state\":\"{}\",\"missed_bytes\":{}", zeek_conn_state(f),
                     f.missed_bytes());
      if (!hist.empty()) fmt::format_to(out, ",\"history\":\"{}\"", json_escape(hist));
      fmt::format_to(out,
                     ",\"orig_pkts\":{},\"orig_ip_bytes\":{},\"resp_pkts\":{},"
                     "\"resp_ip_bytes\":{}",
                     o.packets, o.ip_bytes, r.packets, r.ip_bytes);
      if (!tunnel.empty()) fmt::format_to(out, ",\"tunnel\":\"{}\"", json_escape(tunnel));
      fmt::format_to(out, ",\"l45_end\":\"{}\"}}\n", flow_end_name(why));
    } else {
      fmt::format_to(out, "{}\t{}\t{}\t{}\t{}\t{}\t{}\t", format_ts(f.first_seen()), f.uid(),
                     f.addr(Side::Client).to_string(), zeek_orig_port(f),
                     f.addr(Side::Server).to_string(), zeek_resp_port(f), proto_name(f.proto()));
      if (lasted)
        fmt::format_to(out, "{:.6f}\t{}\t{}\t", d.ns / 1e9, f.payload_size(Side::Client),
                       f.payload_size(Side::Server));
      else
        fmt::format_to(out, "-\t-\t-\t");
      fmt::format_to(out, "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", zeek_conn_state(f),
                     f.missed_bytes(), hist.empty() ? "-" : hist, o.packets, o.ip_bytes, r.packets,
                     r.ip_bytes, tunnel.empty() ? "-" : tunnel, flow_end_name(why));
    }
    if (buf_.size() > (1 << 16) || live_) flush();
  }

  void set_live(bool live) { live_ = live; }
  void flush() {
    std::fwrite(buf_.data(), 1, buf_.size(), stdout);
    buf_.clear();
    if (live_) std::fflush(stdout);
  }

 private:
  const Engine* e_ = nullptr;
  bool json_;
  bool live_ = false;
  fmt::memory_buffer buf_;
};

void run_conn(const ConnArgs& a) {
  auto src = open_input(a.in);
  ConnLog log(a.json);
  Engine engine(engine_config(a.engine, a.in), &log);
  log.set_engine(&engine);
  log.set_live(!a.in.iface.empty());
  log.header();
  auto r = run_engine(*src, engine, {}, true, !a.in.iface.empty());
  log.footer();
  if (a.engine.stats) print_engine_stats(*src, engine);
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<ConnArgs>();
  add_input_options(app, a->in);
  app.add_flag("--json", a->json, "one JSON object per connection (Zeek's JSON log fields)");
  add_engine_options(app, a->engine, false);
  app.footer(R"(Examples:
  l45 conn -r trace.pcap                          Zeek conn.log (TSV with #fields)
  l45 conn -r trace.pcap | zeek-cut id.orig_h conn_state history
  l45 conn -r trace.pcap --json | jq 'select(.conn_state == "REJ")'
  l45 conn -i eth0 -f 'tcp port 443' --json       live: a record when each connection ends

A record is written when its connection ends: both sides closed or reset (after a 5 s close
delay, like Zeek), idle past its state's timeout, evicted, its 4-tuple reused by a new
connection, or the input ended (l45_end says which). Fields mean what they mean in Zeek:
orig = the SYN sender (first sender when the handshake was not seen); orig_bytes/resp_bytes
are sequence-space payload bytes, missed_bytes what reassembly never saw; history letters:
S h A D F R (orig) s h a d f r (resp), T/t retransmission, G/g content gap, W/w zero window,
C/c bad checksum, I/i inconsistent flags, Q/q multi-flag, ^ roles flipped (SYN-ACK seen first).
Differences from Zeek: an ICMP error counts for the flow it quotes (no record of its own); the
originator of a mid-stream or UDP flow is its first sender (no port heuristic); ICMP echo is
keyed by its identifier; extra fields 'tunnel' (outer path) and 'l45_end'.

Exit status: 0 done, 2 bad arguments, unreadable or corrupt input (after logging every
connection seen before the fault), missing privilege.)");
  app.callback([a] { run_conn(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("conn", "log every connection like Zeek's conn.log (TSV or JSON)", setup, 20);

}  // namespace l45::cli
