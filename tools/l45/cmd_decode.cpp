// l45 decode: one readable line (or one JSON object) per packet of a capture or interface.
#include <fmt/format.h>

#include <cstdio>

#include "command.hpp"
#include "input.hpp"
#include "l45/packet/decode.hpp"
#include "text.hpp"

namespace l45::cli {
namespace {

struct DecodeArgs {
  InputArgs in;
  bool json = false;
  uint64_t count = 0;
  bool stats = false;
};

// TCP flags as letters, SYN first then FIN, RST, PSH, ACK, URG, ECE, CWR: the order people
// write them in ("SA", "FA", "PA"), and the one `tcp.flags` uses in --json.
std::string tcp_flags_string(uint8_t flags) {
  static constexpr std::pair<uint8_t, char> kOrder[] = {
      {tcp_flag::kSyn, 'S'}, {tcp_flag::kFin, 'F'}, {tcp_flag::kRst, 'R'}, {tcp_flag::kPsh, 'P'},
      {tcp_flag::kAck, 'A'}, {tcp_flag::kUrg, 'U'}, {tcp_flag::kEce, 'E'}, {tcp_flag::kCwr, 'C'}};
  std::string s;
  for (auto [bit, letter] : kOrder)
    if (flags & bit) s += letter;
  return s;
}

void append_ts(fmt::memory_buffer& out, Timestamp ts) {
  // Microsecond captures print 6 decimals, nanosecond ones 9: never invent precision.
  int64_t ns = ts.nsec_part();
  if (ns % 1000 == 0)
    fmt::format_to(std::back_inserter(out), "{}.{:06}", ts.sec(), ns / 1000);
  else
    fmt::format_to(std::back_inserter(out), "{}.{:09}", ts.sec(), ns);
}

void json_line(fmt::memory_buffer& o, const Packet& p, const PacketView& v) {
  auto out = std::back_inserter(o);
  fmt::format_to(out, "{{\"frame\":{},\"ts\":", p.meta().frame);
  append_ts(o, p.meta().ts);
  fmt::format_to(out, ",\"len\":{},\"caplen\":{}", p.meta().wire_len, p.size());
  if (!v.vlan_ids().empty()) fmt::format_to(out, ",\"vlan\":[{}]", fmt::join(v.vlan_ids(), ","));
  auto ips = v.ip_layers();
  if (ips.size() > 1) {
    fmt::format_to(out, ",\"tunnel\":[");
    for (size_t i = 0; i + 1 < ips.size(); ++i)
      fmt::format_to(out, "{}{{\"version\":{},\"src\":\"{}\",\"dst\":\"{}\",\"proto\":{}}}",
                     i ? "," : "", ips[i].version, ips[i].src().to_string(),
                     ips[i].dst().to_string(), ips[i].proto);
    fmt::format_to(out, "]");
  }
  if (v.ip_version()) {
    auto fr = v.fragment();
    fmt::format_to(out,
                   ",\"ip\":{{\"version\":{},\"src\":\"{}\",\"dst\":\"{}\",\"proto\":{},"
                   "\"ttl\":{},\"len\":{}",
                   v.ip_version(), v.src_addr().to_string(), v.dst_addr().to_string(), v.l4_proto(),
                   v.ttl(), v.ip_total_len());
    if (v.ip_version() == 4 || fr.is_fragment) fmt::format_to(out, ",\"id\":{}", v.ip_id());
    fmt::format_to(out, ",\"frag_offset\":{},\"mf\":{}}}", fr.offset_bytes,
                   fr.more_fragments ? "true" : "false");
  }
  if (auto t = v.tcp()) {
    const TcpOptions opt = t->options();
    fmt::format_to(out,
                   ",\"tcp\":{{\"sport\":{},\"dport\":{},\"seq\":{},\"ack\":{},\"flags\":\"{}\","
                   "\"win\":{}",
                   t->src_port(), t->dst_port(), t->seq().value(), t->ack().value(),
                   tcp_flags_string(t->flags()), t->window());
    if (opt.mss) fmt::format_to(out, ",\"mss\":{}", *opt.mss);
    if (opt.window_scale) fmt::format_to(out, ",\"wscale\":{}", *opt.window_scale);
    if (opt.sack_permitted) fmt::format_to(out, ",\"sack_perm\":true");
    if (opt.timestamps)
      fmt::format_to(out, ",\"ts_val\":{},\"ts_ecr\":{}", opt.timestamps->value,
                     opt.timestamps->echo);
    fmt::format_to(out, "}}");
  } else if (auto u = v.udp()) {
    fmt::format_to(out, ",\"udp\":{{\"sport\":{},\"dport\":{},\"len\":{}}}", u->src_port(),
                   u->dst_port(), u->length());
  } else if (auto ic = v.icmp()) {
    fmt::format_to(out, ",\"icmp\":{{\"type\":{},\"code\":{}}}", ic->type(), ic->code());
  } else if (auto ic6 = v.icmpv6()) {
    fmt::format_to(out, ",\"icmpv6\":{{\"type\":{},\"code\":{}}}", ic6->type(), ic6->code());
  } else if (auto a = v.arp()) {
    fmt::format_to(out, ",\"arp\":{{\"op\":{},\"sender_ip\":\"{}\",\"target_ip\":\"{}\"}}", a->op(),
                   a->sender_ip().to_string(), a->target_ip().to_string());
  }
  if (v.ip_version()) fmt::format_to(out, ",\"payload_len\":{}", v.payload_len());
  fmt::format_to(out, ",\"csum\":\"{}\"", checksum_status_name(v.checksum_status()));
  if (v.error() != DropReason::None)
    fmt::format_to(out, ",\"error\":\"{}\"", drop_reason_name(v.error()));
  fmt::format_to(out, "}}\n");
}

void text_line(fmt::memory_buffer& o, const Packet& p, const PacketView& v) {
  auto out = std::back_inserter(o);
  fmt::format_to(out, "{:>6} ", p.meta().frame);
  append_ts(o, p.meta().ts);
  if (!v.vlan_ids().empty()) fmt::format_to(out, " vlan {}", fmt::join(v.vlan_ids(), ","));
  auto ips = v.ip_layers();
  for (size_t i = 0; i + 1 < ips.size(); ++i)
    fmt::format_to(out, " tunnel {} > {} |", ips[i].src().to_string(), ips[i].dst().to_string());
  if (auto t = v.tcp()) {
    const TcpOptions opt = t->options();
    fmt::format_to(out, " {} > {} TCP {} seq {}", format_endpoint(v.src_addr(), t->src_port()),
                   format_endpoint(v.dst_addr(), t->dst_port()), tcp_flags_string(t->flags()),
                   t->seq().value());
    if (t->has_ack()) fmt::format_to(out, " ack {}", t->ack().value());
    fmt::format_to(out, " win {}", t->window());
    std::string o2;
    if (opt.mss) o2 += fmt::format(" mss {}", *opt.mss);
    if (opt.window_scale) o2 += fmt::format(" wscale {}", *opt.window_scale);
    if (opt.sack_permitted) o2 += " sackOK";
    if (opt.sack_count) o2 += fmt::format(" sack {}", opt.sack_count);
    if (opt.timestamps) o2 += fmt::format(" TS {}/{}", opt.timestamps->value, opt.timestamps->echo);
    if (!o2.empty()) fmt::format_to(out, " <{}>", o2.substr(1));
    fmt::format_to(out, " len {}", v.payload_len());
  } else if (auto u = v.udp()) {
    fmt::format_to(out, " {} > {} UDP len {}", format_endpoint(v.src_addr(), u->src_port()),
                   format_endpoint(v.dst_addr(), u->dst_port()), v.payload_len());
  } else if (v.ip_version()) {
    fmt::format_to(out, " {} > {}", v.src_addr().to_string(), v.dst_addr().to_string());
    if (auto ic = v.icmp())
      fmt::format_to(out, " ICMP type {} code {}", ic->type(), ic->code());
    else if (auto ic6 = v.icmpv6())
      fmt::format_to(out, " ICMPv6 type {} code {}", ic6->type(), ic6->code());
    else
      fmt::format_to(out, " proto {}", v.l4_proto());
    fmt::format_to(out, " len {}", v.payload_len());
  } else if (auto a = v.arp()) {
    if (a->op() == 1)
      fmt::format_to(out, " ARP who-has {} tell {}", a->target_ip().to_string(),
                     a->sender_ip().to_string());
    else
      fmt::format_to(out, " ARP {} is-at {}", a->sender_ip().to_string(),
                     a->sender_mac().to_string());
  } else {
    fmt::format_to(out, " {} len {}", link_type_name(v.link()), p.meta().wire_len);
  }
  auto fr = v.fragment();
  if (fr.is_fragment)
    fmt::format_to(out, " [frag id {} off {}{}]", fr.id, fr.offset_bytes,
                   fr.more_fragments ? " MF" : "");
  if (v.checksum_status() == ChecksumStatus::Bad) fmt::format_to(out, " [bad checksum]");
  if (v.error() != DropReason::None) fmt::format_to(out, " [{}]", drop_reason_name(v.error()));
  fmt::format_to(out, "\n");
}

void run_decode(const DecodeArgs& a) {
  auto src = open_input(a.in);
  DropCounters decode_errors;
  uint64_t shown = 0, bad_csum = 0;
  fmt::memory_buffer buf;
  DecodeOptions opt;
  opt.verify_checksums = true;
  auto r = for_each_packet(*src, a.count, [&](const Packet& p) {
    PacketView v = PacketView::decode(p.meta().link, p.data(), p.meta().wire_len, opt);
    if (v.error() != DropReason::None) decode_errors.add(v.error());
    if (v.checksum_status() == ChecksumStatus::Bad) ++bad_csum;
    if (a.json)
      json_line(buf, p, v);
    else
      text_line(buf, p, v);
    ++shown;
    if (buf.size() > 1 << 16) {
      std::fwrite(buf.data(), 1, buf.size(), stdout);
      buf.clear();
    }
  });
  std::fwrite(buf.data(), 1, buf.size(), stdout);
  std::fflush(stdout);
  if (a.stats) {
    print_source_stats(*src);
    std::fprintf(stderr,
                 "l45: decoded %llu packets, %llu with a bad checksum, %llu not fully parsed\n",
                 static_cast<unsigned long long>(shown), static_cast<unsigned long long>(bad_csum),
                 static_cast<unsigned long long>(decode_errors.total()));
    print_drops(decode_errors);
  }
  if (!r.ok()) fail(r.error());
}

void setup(CLI::App& app) {
  auto a = std::make_shared<DecodeArgs>();
  add_input_options(app, a->in);
  app.add_flag("--json", a->json, "one JSON object per packet (fields: see 'Examples')");
  app.add_option("-c,--count", a->count, "stop after COUNT packets (after the filter)");
  app.add_flag("--stats", a->stats, "print totals and every parse error by name on stderr");
  app.footer(R"(Examples:
  l45 decode -r trace.pcap                      one line per packet
  l45 decode -r trace.pcap -f 'tcp port 80' -c 20
  l45 decode -i eth0 --json | jq .tcp.flags     live, as JSON lines (needs root)
  tcpdump -w - -i eth0 | l45 decode -r -        a capture on standard input

JSON fields: frame (1-based), ts, len, caplen, vlan [ids, outermost first], tunnel [outer IP
headers], ip {version, src, dst, proto, ttl, len, id, frag_offset, mf}, tcp {sport, dport,
seq, ack, flags ("SA"...), win, mss, wscale, sack_perm, ts_val, ts_ecr}, udp {sport, dport,
len}, icmp/icmpv6 {type, code}, arp, payload_len, csum (ok|bad|unverified), error (the
drop-reason name when a header could not be parsed). 'ip' is the innermost IP header.

Exit status: 0 done, 2 bad arguments, unreadable or corrupt input (after printing every
packet before the fault), missing privilege.)");
  app.callback([a] { run_decode(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("decode", "print every packet of a capture or an interface", setup, 10);

}  // namespace l45::cli
