// account: mOS's cellular data accounting, written only against l45's public monitoring API.
//
// A subscriber is an address prefix with an id (the subscribers file: one `PREFIX ID` per
// line, `#` comments; the longest prefix wins). Every flow one of whose endpoints is a
// subscriber is billed to it: up is what the subscriber sent, down what it received. Billed
// bytes are reassembled payload bytes, so a retransmission is billed once; retransmitted bytes
// are counted apart. A retransmission whose bytes differ from the first copy (the trick of
// tunneling data through "retransmissions" that a byte-counting middlebox bills once or not at
// all) is reported as possible abuse: the flow's uid, the side, the stream offset and length.
//
// Events used: retransmission, mismatch and conn_end (receiver hook), on one stream socket.
//
//   MonitorContext ctx;
//   auto subs = parse_subscribers(text, "subs.txt");
//   Accountant acct(ctx, *subs);
//   ... ctx.process(p) ...; ctx.finish();
//   for (const Usage& u : acct.usage()) ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::examples {

struct SubscriberPrefix {
  IpAddr addr;
  uint8_t len = 0;
  std::string id;
  bool contains(const IpAddr& a) const;
};

// Errors name the file and line: "subs.txt:3: bad prefix '10.0.0.0/33'".
Result<std::vector<SubscriberPrefix>> parse_subscribers(std::string_view text,
                                                        std::string_view name);

struct Usage {
  std::string id;
  uint64_t bytes_up = 0, bytes_down = 0;
  uint64_t packets_up = 0, packets_down = 0;
  uint64_t retransmitted_bytes = 0;
  uint64_t flows = 0;
};

struct AbuseReport {
  std::string subscriber;
  std::string uid;
  uint64_t serial = 0;  // Flow::serial of the flow
  uint64_t frame = 0;   // PacketMeta::frame of the packet that showed it (0: at the flow's end)
  Side side = Side::Client;
  uint64_t offset = 0, length = 0;
};

class Accountant {
 public:
  // Opens its stream socket on `ctx` (filter: tcp or udp) and subscribes its handlers.
  Accountant(MonitorContext& ctx, std::vector<SubscriberPrefix> subs);
  Result<void> status() const { return status_; }  // an error if the socket could not be made

  const std::vector<Usage>& usage() const { return usage_; }  // in subscribers-file order
  const std::vector<AbuseReport>& abuse() const { return abuse_; }

 private:
  // The subscriber billed for a flow and which side it is, or -1.
  int subscriber_of(const Flow& f, Side* side) const;
  void on_rexmit(MonitorContext& c, FlowHandle f, Side s);
  void on_mismatch(MonitorContext& c, FlowHandle f, Side s);
  void on_end(MonitorContext& c, FlowHandle f);

  std::vector<SubscriberPrefix> subs_;
  std::vector<Usage> usage_;
  std::vector<AbuseReport> abuse_;
  Result<void> status_;
};

}  // namespace l45::examples
