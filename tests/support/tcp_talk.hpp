// A crafted TCP connection over IPv4 for tests: segments between a client and a server, kept in
// order, each 1 ms after the one before (from 1700000000 s) and numbered as frames 1, 2, ...
//
//   TcpTalk t{*IpAddr::parse("198.51.100.1"), *IpAddr::parse("203.0.113.1")};
//   t.add(true, tcp_flag::kSyn, 1000, 0);
//   t.add(false, tcp_flag::kSyn | tcp_flag::kAck, 5000, 1001);
//   for (const Packet& p : t.pkts) engine.process(p);
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "l45/packet/builder.hpp"

namespace l45::testing {

struct TcpTalk {
  IpAddr client, server;
  uint16_t client_port = 40000, server_port = 80;
  std::vector<Packet> pkts;

  // The segment the client (`up`) or the server sends, appended.
  Packet& add(bool up, uint8_t flags, uint32_t seq, uint32_t ack, std::string_view data = {}) {
    PacketBuilder pb;
    if (up)
      pb.ipv4(client, server).tcp(client_port, server_port);
    else
      pb.ipv4(server, client).tcp(server_port, client_port);
    pb.seq(TcpSeq(seq)).ack(TcpSeq(ack)).flags(flags).window(65535);
    if (!data.empty()) pb.payload(data);
    PacketMeta m;
    m.frame = pkts.size() + 1;
    m.ts = Timestamp::from_sec_usec(1700000000, int64_t(m.frame) * 1000);
    pkts.push_back(pb.build(m));
    return pkts.back();
  }
};

}  // namespace l45::testing
