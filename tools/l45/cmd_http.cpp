// l45 http: every HTTP request a client sends (examples/http_request: mOS's user-defined event
// on new data), with its method, Host and request-target.
#include <fmt/format.h>

#include <cstdio>

#include "command.hpp"
#include "flow_common.hpp"
#include "http_request/http_request.hpp"

namespace l45::cli {
namespace {

struct HttpArgs {
  InputArgs in;
  EngineArgs engine;
  bool json = false;
};

void print(const examples::HttpRequest& r, bool json) {
  const std::string client = format_endpoint(r.client, r.client_port);
  const std::string server = format_endpoint(r.server, r.server_port);
  if (json)
    fmt::print(
        "{{\"ts\":{},\"uid\":\"{}\",\"client\":\"{}\",\"server\":\"{}\",\"method\":\"{}\","
        "\"host\":\"{}\",\"uri\":\"{}\"}}\n",
        format_ts(r.ts), r.uid, client, server, json_escape(r.method), json_escape(r.host),
        json_escape(r.uri));
  else
    fmt::print("{} {} {} -> {} {} {} {}\n", format_ts(r.ts), r.uid, client, server, r.method,
               r.host.empty() ? "-" : r.host, r.uri);
}

void run_http(const HttpArgs& a) {
  auto src = open_input(a.in);
  MonitorContext ctx(engine_config(a.engine, a.in));
  const bool live = !a.in.iface.empty();
  examples::HttpRequests http(ctx, [&](const examples::HttpRequest& r) {
    print(r, a.json);
    if (live) std::fflush(stdout);
  });
  must(http.status());
  SystemClock wall;
  auto r = for_each_packet(
      *src, 0, [&](const Packet& p) { ctx.process(p); },
      [&] {
        if (live) ctx.advance(wall.now());
      });
  ctx.finish();
  std::fflush(stdout);
  if (a.engine.stats) print_engine_stats(*src, ctx.engine());
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<HttpArgs>();
  add_input_options(app, a->in);
  app.add_flag("--json", a->json, "one JSON object per request");
  add_engine_options(app, a->engine, true);
  app.footer(R"(Examples:
  l45 http -r trace.pcap                     every request: method, Host, request-target
  l45 http -i eth0 -f 'tcp port 80' --json   live (needs root), as JSON lines

One line per request, when its header is complete (the empty line after the header fields):
  TS UID CLIENT -> SERVER METHOD HOST URI
UID is the connection's, as in l45 conn; HOST is the Host field ('-' when absent). Every
request of a keep-alive connection is printed, pipelined ones too; bodies (Content-Length) are
skipped; a header that never completes is not printed. After a gap in the client's bytes the
request it hit is lost and the next line that starts with a method is the next request. A
connection whose client does not start with a request line (TLS, ...) is left.
JSON fields: ts, uid, client, server, method, host, uri.

This is mOS's user-defined event example: the event "http_request" is the data event with a
filter that is true when the client's new bytes complete a header (examples/http_request).

Exit status: 0 done, 2 bad arguments, unreadable or corrupt input (after the requests of
every packet before the fault).)");
  app.callback([a] { run_http(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("http", "print every HTTP request: method, Host and path (a mOS UDE)", setup,
                     47);

}  // namespace l45::cli
