// midstat: mOS's midstat, written only against l45's public monitoring API: the flows a
// middlebox is tracking, each with both endpoints' TCP state as the middlebox infers it.
//
// A row is added when its flow starts (conn_start) and removed when it ends (conn_end); each
// TCP state change of either endpoint (tcp_state: the changing side, with the state before and
// after) updates the row, so a table costs nothing per packet beyond those events. Rows are in
// flow creation order. A UDP or ICMP side shows ACTIVE once it sent a packet (read from the
// flow when the table is taken), "-" before. A closed TCP flow stays in the table for the close
// delay (EngineTimeouts::tcp_closed, 5 s) as the engine keeps it, like a kernel's TIME_WAIT.
//
// Events used: conn_start, tcp_state, conn_end (receiver hook) on one stream socket that takes
// every flow. Nothing is reassembled for it: run the context with EngineConfig::reassemble off.
//
//   MonitorContext ctx(cfg);
//   Midstat mid(ctx);
//   ... ctx.process(p) ...
//   for (const MidstatRow& r : mid.table()) print(r.client, r.client_state, ...);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::examples {

struct MidstatRow {
  std::string uid;
  uint64_t serial = 0;  // Flow::serial: the order the worker's engine opened it in
  uint8_t proto = 0;
  unsigned worker = 0;  // the worker (its MonitorContext) that tracks the flow
  IpAddr client, server;
  uint16_t client_port = 0, server_port = 0;
  std::string client_state, server_state;  // "ESTABLISHED", ..., "ACTIVE", "-"
};

class Midstat {
 public:
  explicit Midstat(MonitorContext& ctx, unsigned worker = 0);
  Result<void> status() const { return status_; }
  // The flows tracked now, oldest first.
  std::vector<MidstatRow> table() const;
  size_t size() const { return flows_.size(); }

 private:
  struct Entry {
    FlowHandle flow;
    TcpEndpointState state[2];  // TCP only: kept by the tcp_state events
  };
  MonitorContext& ctx_;
  unsigned worker_;
  std::map<uint64_t, Entry> flows_;  // by Flow::serial: creation order
  Result<void> status_;
};

}  // namespace l45::examples
