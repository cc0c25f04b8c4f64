#include "rewrite/rewrite.hpp"

#include <algorithm>
#include <span>
#include <string_view>

#include "l45/packet/decode.hpp"

namespace l45::examples {

Rewriter::Rewriter(MonitorContext& ctx, std::vector<Replacement> rules, std::string filter)
    : rules_(std::move(rules)) {
  status_ = setup(ctx, std::move(filter));
}

Result<void> Rewriter::setup(MonitorContext& ctx, std::string filter) {
  for (const Replacement& r : rules_)
    if (r.from.empty()) return Error::invalid("a replacement needs a non-empty FROM");
  L45_TRY(SocketId sock, ctx.socket(SocketKind::Stream, std::move(filter)));
  L45_TRY(HandlerId h, ctx.handler("rewrite.data", [this](MonitorContext& c, FlowHandle, Side side,
                                                          EventId) { on_data(c, side); }));
  return ctx.on(sock, BuiltinEvent::Data, Hook::Receiver, h);
}

void Rewriter::on_data(MonitorContext& c, Side side) {
  const Packet* p = c.last_packet();
  if (!p) return;
  const PacketView v = PacketView::decode(*p);
  const Bytes payload = v.payload();
  const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  // Every match in payload order: edits go forward.
  struct Match {
    size_t at;
    const Replacement* r;
  };
  std::vector<Match> found;
  for (const Replacement& r : rules_) {
    if (r.side && *r.side != side) continue;
    for (size_t at = text.find(r.from); at != std::string_view::npos;
         at = text.find(r.from, at + r.from.size()))
      found.push_back({at, &r});
  }
  std::sort(found.begin(), found.end(), [](const Match& a, const Match& b) { return a.at < b.at; });
  size_t end = 0;
  for (const Match& m : found) {
    if (m.at < end) continue;  // overlaps the previous match
    const auto to = std::as_bytes(std::span(m.r->to.data(), m.r->to.size()));
    auto ok = c.remove(m.at, m.r->from.size());
    if (ok.ok() && !to.empty()) ok = c.insert(m.at + m.r->from.size(), to);
    if (!ok.ok()) {
      ++refused_;
      continue;
    }
    ++replaced_;
    end = m.at + m.r->from.size();
  }
}

}  // namespace l45::examples
