#include "midstat.hpp"

#include "l45/packet/ip_proto.hpp"

namespace l45::examples {

Midstat::Midstat(MonitorContext& ctx, unsigned worker)
    : ctx_(ctx), worker_(worker), status_(Result<void>{}) {
  auto sock = ctx.socket(SocketKind::Stream);
  // A new flow: its row, with the TCP states the engine gave its endpoints.
  auto start =
      ctx.handler("midstat.conn_start", [this](MonitorContext& c, FlowHandle f, Side, EventId) {
        const Flow* fl = c.flow(f);
        if (!fl) return;
        Entry& e = flows_[fl->serial()];
        e.flow = f;
        for (Side s : {Side::Client, Side::Server})
          e.state[size_t(s)] = fl->tcp() ? fl->tcp()->endpoint(s).state : TcpEndpointState{};
        c.set_user(f, &e);  // std::map: the entry stays where it is until erased
      });
  auto state =
      ctx.handler("midstat.tcp_state", [](MonitorContext& c, FlowHandle f, Side s, EventId) {
        if (auto* e = static_cast<Entry*>(c.user(f))) e->state[size_t(s)] = c.detail().after;
      });
  auto end =
      ctx.handler("midstat.conn_end", [this](MonitorContext& c, FlowHandle f, Side, EventId) {
        if (const Flow* fl = c.flow(f)) flows_.erase(fl->serial());
      });
  if (!sock.ok()) {
    status_ = sock.error();
    return;
  }
  for (const Result<HandlerId>* h : {&start, &state, &end})
    if (!h->ok()) {
      status_ = h->error();
      return;
    }
  for (auto [e, h] : {std::pair{BuiltinEvent::ConnStart, start.value()},
                      std::pair{BuiltinEvent::TcpState, state.value()},
                      std::pair{BuiltinEvent::ConnEnd, end.value()}})
    if (auto r = ctx.on(sock.value(), e, Hook::Receiver, h); !r.ok()) {
      status_ = r.error();
      return;
    }
}

std::vector<MidstatRow> Midstat::table() const {
  std::vector<MidstatRow> rows;
  rows.reserve(flows_.size());
  for (const auto& entry : flows_) {
    // Not a structured binding: clang before 16 cannot capture one in the lambda below.
    const uint64_t serial = entry.first;
    const auto& e = entry.second;
    const Flow* f = ctx_.flow(e.flow);
    if (!f) continue;
    MidstatRow r;
    r.uid = f->uid();
    r.serial = serial;
    r.proto = f->proto();
    r.worker = worker_;
    r.client = f->addr(Side::Client);
    r.server = f->addr(Side::Server);
    // Ports for TCP and UDP; ICMP's "ports" (type, echo id) are not endpoints.
    if (f->proto() == ip_proto::kTcp || f->proto() == ip_proto::kUdp) {
      r.client_port = f->port(Side::Client);
      r.server_port = f->port(Side::Server);
    }
    auto state = [&](Side s) {
      if (f->is_tcp()) return std::string(tcp_endpoint_state_name(e.state[size_t(s)]));
      return std::string(f->counters(s).packets ? "ACTIVE" : "-");
    };
    r.client_state = state(Side::Client);
    r.server_state = state(Side::Server);
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace l45::examples
