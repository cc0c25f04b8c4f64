#include "http_request.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace l45::examples {

namespace {

uint64_t key(FlowHandle f) {
  return uint64_t{f.index} << 32 | f.generation;
}

bool is_upper_token(std::string_view s) {
  return !s.empty() && s.size() <= 24 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Where a request line starts after a gap: the first line beginning "METHOD ", or npos.
size_t request_line_start(std::string_view s) {
  static constexpr std::string_view kMethods[] = {
      "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "};
  for (size_t at = 0; at < s.size();) {
    for (std::string_view m : kMethods)
      if (s.substr(at, m.size()) == m) return at;
    const size_t nl = s.find('\n', at);
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  return std::string_view::npos;
}

}  // namespace

HttpRequests::HttpRequests(MonitorContext& ctx, std::function<void(const HttpRequest&)> out)
    : out_(std::move(out)), status_(Result<void>{}) {
  // Every flow: a filter such as "tcp" would miss VLAN-tagged frames (BPF reads the outer
  // EtherType); flows other than TCP get no state and never pass the filter.
  auto sock = ctx.socket(SocketKind::Stream);
  auto ude =
      ctx.define("http_request", BuiltinEvent::Data,
                 [this](MonitorContext& c, FlowHandle f, Side s) { return filter(c, f, s); });
  auto start =
      ctx.handler("http.conn_start", [this](MonitorContext& c, FlowHandle f, Side, EventId) {
        if (c.flow(f) && c.flow(f)->is_tcp()) c.set_user(f, &flows_[key(f)]);
      });
  auto end = ctx.handler("http.conn_end", [this](MonitorContext&, FlowHandle f, Side, EventId) {
    flows_.erase(key(f));
  });
  auto gap = ctx.handler(
      "http.gap", [this](MonitorContext& c, FlowHandle f, Side s, EventId) { on_gap(c, f, s); });
  auto req = ctx.handler("http.request", [this](MonitorContext& c, FlowHandle f, Side, EventId) {
    auto* st = static_cast<FlowState*>(c.user(f));
    for (const HttpRequest& r : st->done)
      out_(r);
    st->done.clear();
  });
  if (!sock.ok()) {
    status_ = sock.error();
    return;
  }
  if (!ude.ok()) {
    status_ = ude.error();
    return;
  }
  for (const Result<HandlerId>* h : {&start, &end, &gap, &req})
    if (!h->ok()) {
      status_ = h->error();
      return;
    }
  ude_ = ude.value();
  handler_ = req.value();
  for (auto [e, h] :
       {std::pair{EventId(BuiltinEvent::ConnStart), start.value()},
        std::pair{EventId(BuiltinEvent::ConnEnd), end.value()},
        std::pair{EventId(BuiltinEvent::Gap), gap.value()}, std::pair{ude_, handler_}})
    if (auto r = ctx.on(sock.value(), e, Hook::Receiver, h); !r.ok()) {
      status_ = r.error();
      return;
    }
}

// The UDE's filter: on the requester's new bytes, true when they complete a request header.
bool HttpRequests::filter(MonitorContext& c, FlowHandle f, Side side) {
  auto* st = static_cast<FlowState*>(c.user(f));
  const EventDetail& d = c.detail();
  if (!st) return false;
  if (st->requester < 0) {
    // The first bytes of the flow: a response means the requests come from the other side.
    const bool response = d.data.size() >= 5 && std::memcmp(d.data.data(), "HTTP/", 5) == 0;
    st->requester = int(side) ^ int(response);
  }
  if (int(side) != st->requester || d.offset + d.length <= st->fed) return false;
  Bytes b = d.data.subspan(size_t(st->fed > d.offset ? st->fed - d.offset : 0));
  st->fed = d.offset + d.length;
  // Body bytes are skipped, the rest joins the header being received.
  const size_t skip = size_t(std::min<uint64_t>(st->body_left, b.size()));
  st->body_left -= skip;
  st->head.append(reinterpret_cast<const char*>(b.data()) + skip, b.size() - skip);
  if (!parse(c, f, *st)) leave(c, f);  // requests parsed before the fault still count
  return !st->done.empty();
}

bool HttpRequests::parse(MonitorContext& c, FlowHandle f, FlowState& st) {
  for (;;) {
    if (st.resync) {
      const size_t at = request_line_start(st.head);
      if (at == std::string::npos) {
        st.head.clear();
        return true;
      }
      st.head.erase(0, at);
      st.resync = false;
    }
    // Not a request line from its first byte: not HTTP.
    if (!st.head.empty() && !(st.head[0] >= 'A' && st.head[0] <= 'Z')) return false;
    const size_t end = st.head.find("\r\n\r\n");
    if (end == std::string::npos) return st.head.size() <= kMaxHeader;
    const std::string_view head = std::string_view(st.head).substr(0, end + 2);
    // Request line: method SP request-target SP HTTP-version (RFC 9112 3).
    const size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    // Exactly two spaces: the request-target has none (RFC 9112 3.2).
    const size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
        line.find(' ', sp2 + 1) != std::string_view::npos || !is_upper_token(line.substr(0, sp1)) ||
        line.substr(sp2 + 1, 5) != "HTTP/")
      return false;
    HttpRequest r;
    r.method = line.substr(0, sp1);
    r.uri = line.substr(sp1 + 1, sp2 - sp1 - 1);
    uint64_t body = 0;
    for (size_t at = eol + 2; at < head.size();) {
      const size_t next = head.find("\r\n", at);
      const std::string_view field = head.substr(at, next - at);
      at = next + 2;
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
      if (iequals(name, "host")) {
        r.host = value;
      } else if (iequals(name, "content-length")) {
        std::from_chars(value.data(), value.data() + value.size(), body);
      } else if (iequals(name, "transfer-encoding")) {
        return false;  // a chunked request body: rare, and not followed here
      }
    }
    if (const Flow* fl = c.flow(f)) {
      r.uid = fl->uid();
      const Side client = Side(st.requester), server = Side(st.requester ^ 1);
      r.client = fl->addr(client);
      r.server = fl->addr(server);
      r.client_port = fl->port(client);
      r.server_port = fl->port(server);
    }
    r.ts = c.last_packet() ? c.last_packet()->meta().ts : c.engine().now();
    st.done.push_back(std::move(r));
    // The body follows the header: what of it is already here goes, the rest is skipped.
    st.head.erase(0, end + 4);
    const size_t here = size_t(std::min<uint64_t>(body, st.head.size()));
    st.head.erase(0, here);
    st.body_left = body - here;
  }
}

void HttpRequests::on_gap(MonitorContext& c, FlowHandle f, Side side) {
  auto* st = static_cast<FlowState*>(c.user(f));
  if (!st || int(side) != st->requester) return;
  const EventDetail& d = c.detail();
  st->fed = std::max(st->fed, d.offset + d.length);
  if (st->head.empty() && st->body_left >= d.length) {
    st->body_left -= d.length;  // inside a body: it is only shorter
    return;
  }
  st->head.clear();  // the request it hit is lost
  st->body_left = 0;
  st->resync = true;
}

void HttpRequests::leave(MonitorContext& c, FlowHandle f) {
  (void)c.unsubscribe(f, ude_, Hook::Receiver, handler_);
  if (auto* st = static_cast<FlowState*>(c.user(f))) {
    st->head.clear();
    st->head.shrink_to_fit();
  }
}

}  // namespace l45::examples
