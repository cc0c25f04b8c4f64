#include "account.hpp"

#include <charconv>

#include "l45/core/config_lines.hpp"

namespace l45::examples {

bool SubscriberPrefix::contains(const IpAddr& a) const {
  return IpPrefix{addr, len}.contains(a);
}

Result<std::vector<SubscriberPrefix>> parse_subscribers(std::string_view text,
                                                        std::string_view name) {
  std::vector<SubscriberPrefix> out;
  for (const ConfigLine& l : config_lines(text)) {
    auto fail = [&](const std::string& why) { return config_error(name, l.number, why); };
    const std::vector<std::string_view>& f = l.fields;
    if (f.size() != 2)
      return fail("expected 'PREFIX ID', got " + std::to_string(f.size()) + " fields");
    SubscriberPrefix p;
    std::string_view a = f[0];
    const size_t slash = a.find('/');
    auto ip = IpAddr::parse(a.substr(0, slash));
    if (!ip) return fail("bad address '" + std::string(a.substr(0, slash)) + "'");
    p.addr = *ip;
    const unsigned max = ip->is_v4() ? 32 : 128;
    unsigned len = max;
    if (slash != std::string_view::npos) {
      std::string_view digits = a.substr(slash + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
      if (ec != std::errc() || end != digits.data() + digits.size() || len > max)
        return fail("bad prefix length in '" + std::string(a) + "'");
    }
    p.len = uint8_t(len);
    p.id = std::string(f[1]);
    out.push_back(std::move(p));
  }
  return out;
}

Accountant::Accountant(MonitorContext& ctx, std::vector<SubscriberPrefix> subs)
    : subs_(std::move(subs)), status_(Result<void>{}) {
  for (const SubscriberPrefix& p : subs_) {
    bool seen = false;
    for (const Usage& u : usage_)
      seen = seen || u.id == p.id;
    if (!seen) usage_.push_back({p.id});
  }
  auto fail = [&](const Error& e) { status_ = e; };
  auto sock = ctx.socket(SocketKind::Stream, "tcp or udp");
  if (!sock.ok()) {
    fail(sock.error());
    return;
  }
  auto rexmit =
      ctx.handler("account.retransmission",
                  [this](MonitorContext& c, FlowHandle f, Side s, EventId) { on_rexmit(c, f, s); });
  auto mismatch = ctx.handler("account.mismatch", [this](MonitorContext& c, FlowHandle f, Side s,
                                                         EventId) { on_mismatch(c, f, s); });
  auto end = ctx.handler("account.conn_end",
                         [this](MonitorContext& c, FlowHandle f, Side, EventId) { on_end(c, f); });
  if (!rexmit.ok()) {
    fail(rexmit.error());
    return;
  }
  if (!mismatch.ok()) {
    fail(mismatch.error());
    return;
  }
  if (!end.ok()) {
    fail(end.error());
    return;
  }
  for (auto [e, h] : {std::pair{BuiltinEvent::Retransmission, rexmit.value()},
                      std::pair{BuiltinEvent::Mismatch, mismatch.value()},
                      std::pair{BuiltinEvent::ConnEnd, end.value()}}) {
    auto r = ctx.on(sock.value(), e, Hook::Receiver, h);
    if (!r.ok()) {
      fail(r.error());
      return;
    }
  }
}

int Accountant::subscriber_of(const Flow& f, Side* side) const {
  int best = -1;
  for (Side s : {Side::Client, Side::Server}) {
    const IpAddr a = f.addr(s);
    for (size_t i = 0; i < subs_.size(); ++i)
      if (subs_[i].contains(a) && (best < 0 || subs_[i].len > subs_[size_t(best)].len)) {
        best = int(i);
        *side = s;
      }
    if (best >= 0) break;  // the client's prefix first: it is the one who connects out
  }
  return best;
}

namespace {
Usage& usage_of(std::vector<Usage>& usage, const std::string& id) {
  for (Usage& u : usage)
    if (u.id == id) return u;
  return usage.front();  // unreachable: every subscriber has its row
}
}  // namespace

void Accountant::on_rexmit(MonitorContext& c, FlowHandle h, Side) {
  const Flow* f = c.flow(h);
  Side sub_side;
  const int i = f ? subscriber_of(*f, &sub_side) : -1;
  if (i < 0) return;
  usage_of(usage_, subs_[size_t(i)].id).retransmitted_bytes += c.detail().length;
}

void Accountant::on_mismatch(MonitorContext& c, FlowHandle h, Side s) {
  const Flow* f = c.flow(h);
  Side sub_side;
  const int i = f ? subscriber_of(*f, &sub_side) : -1;
  abuse_.push_back({i < 0 ? std::string() : subs_[size_t(i)].id, f ? f->uid() : std::string(),
                    f ? f->serial() : 0, c.last_packet() ? c.last_packet()->meta().frame : 0, s,
                    c.detail().offset, c.detail().length});
}

void Accountant::on_end(MonitorContext& c, FlowHandle h) {
  const Flow* f = c.flow(h);
  if (!f) return;
  Side sub;
  const int i = subscriber_of(*f, &sub);
  if (i < 0) return;
  Usage& u = usage_of(usage_, subs_[size_t(i)].id);
  ++u.flows;
  auto billed = [&](Side s) -> uint64_t {
    // TCP: each reassembled byte once; UDP: datagram payloads.
    if (const TcpStream* st = f->stream(s)) return st->counters().bytes_delivered;
    return f->counters(s).payload_bytes;
  };
  const Side other = sub == Side::Client ? Side::Server : Side::Client;
  u.bytes_up += billed(sub);
  u.bytes_down += billed(other);
  u.packets_up += f->counters(sub).packets;
  u.packets_down += f->counters(other).packets;
}

}  // namespace l45::examples
