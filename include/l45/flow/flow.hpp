// The flow layer (DESIGN.md: flow/): what a stateful middlebox knows of a connection. It sits
// on packet/ and knows nothing of where packets came from (io/). The engine and its units:
//   engine.hpp      the per-packet pipeline over all of them: flows, observers, caps, stats
//   ip_defrag.hpp   IPv4/IPv6 fragment reassembly with limits and overlap anomalies
//   flow_table.hpp  flows by canonical 5-tuple key: handles, LRU caps, idle timeouts
//   stream.hpp      one side's TCP byte stream: ordering, overlaps, gaps, retransmissions
//   tcp_state.hpp   both endpoints' TCP state, window/PAWS checks, Zeek history and conn_state
#pragma once

#include "l45/flow/engine.hpp"
