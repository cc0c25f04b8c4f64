// http_request: mOS's user-defined event example, written only against l45's public API.
//
// The UDE "http_request" is based on the built-in data event (new in-order bytes of one side)
// with a filter that is true when the requester's new bytes complete at least one HTTP request
// header (the request line and header fields, up to the empty line: CRLF CRLF, RFC 9112 2.1).
// Its handler prints each request: method, Host and request-target. Every request of a
// keep-alive connection is one, pipelined ones too; a header split over any number of segments
// is one; a body announced by Content-Length is skipped (Transfer-Encoding on a request is rare:
// the flow is left). A header that never completes raises nothing. The requester is the flow's
// client, or, in a connection picked up mid-stream whose first bytes are a response, the other
// side.
//
// Gaps (bytes the capture never showed): one inside a body shortens it; one anywhere else loses
// the request it hit, and the parser resynchronises at the next line that starts with a method
// (GET, POST, ...). A client whose first bytes are not a request line (TLS, SSH, ...), or whose
// header passes 16 KiB without its end, is left: its subscription is removed, so its data no
// longer runs the filter.
//
// Events used: conn_start and conn_end (per-flow state, set_user), gap, and the UDE on data,
// all at the receiver hook of one stream socket that takes every flow (state for TCP ones). Per
// flow: the bytes of the header being received, the body bytes still to skip.
//
//   MonitorContext ctx;
//   HttpRequests http(ctx, [](const HttpRequest& r) { print(r.method, r.host, r.uri); });
//   ... ctx.process(p) ...; ctx.finish();
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::examples {

struct HttpRequest {
  std::string uid;  // the flow's, as in l45 conn
  IpAddr client, server;
  uint16_t client_port = 0, server_port = 0;
  Timestamp ts;  // when its header was complete (the packet that completed it)
  std::string method, host, uri;
};

class HttpRequests {
 public:
  static constexpr size_t kMaxHeader = 16 * 1024;

  HttpRequests(MonitorContext& ctx, std::function<void(const HttpRequest&)> out);
  Result<void> status() const { return status_; }

 private:
  struct FlowState {
    // The side that sends the requests: the engine's client, unless the capture picked the
    // connection up mid-stream and the first bytes seen were a response ("HTTP/..."): then the
    // other side. -1 until the first data.
    int requester = -1;
    uint64_t fed = 0;        // requester's stream offset up to which bytes were read
    std::string head;        // the header being received
    uint64_t body_left = 0;  // body bytes of the last request still to come
    bool resync = false;     // after a gap: skip to a line that starts a request
    std::vector<HttpRequest> done;
  };
  bool filter(MonitorContext& c, FlowHandle f, Side side);
  void on_gap(MonitorContext& c, FlowHandle f, Side side);
  // Parses the complete headers in st.head; false when the client is not speaking HTTP.
  bool parse(MonitorContext& c, FlowHandle f, FlowState& st);
  void leave(MonitorContext& c, FlowHandle f);

  std::function<void(const HttpRequest&)> out_;
  std::unordered_map<uint64_t, FlowState> flows_;  // by handle: nodes stay where they are
  EventId ude_ = 0;
  HandlerId handler_ = 0;
  Result<void> status_;
};

}  // namespace l45::examples
