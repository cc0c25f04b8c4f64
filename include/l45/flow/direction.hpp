// Directions of a flow, shared by every flow unit.
//   FlowDir: relative to the packet that started the flow (Forward = sent by the endpoint that
//            sent the first packet seen). What the TCP tracker and the reassembly take.
//   Side:    the role an endpoint plays, once known (Client = sent the SYN; a SYN-ACK seen
//            first makes its sender the Server). Trackers map FlowDir to Side.
// (The flow table's key order is a third, internal reference: KeyDir in flow_table.hpp.)
#pragma once

#include <cstdint>

namespace l45 {

enum class FlowDir : uint8_t { Forward = 0, Reverse = 1 };
enum class Side : uint8_t { Client = 0, Server = 1 };

constexpr FlowDir reverse(FlowDir d) {
  return d == FlowDir::Forward ? FlowDir::Reverse : FlowDir::Forward;
}
constexpr Side other(Side s) {
  return s == Side::Client ? Side::Server : Side::Client;
}

}  // namespace l45
