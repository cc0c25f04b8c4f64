#include "flow_order.hpp"

#include <algorithm>

#include "l45/monitor/workers.hpp"

namespace l45::cli {

Result<void> FlowOrder::watch(unsigned w, MonitorContext& ctx) {
  auto sock = ctx.socket(SocketKind::Stream);
  if (!sock.ok()) return sock.error();
  auto h = ctx.handler("flow_order", [this, w](MonitorContext& c, FlowHandle, Side, EventId) {
    // conn_start runs once per flow the engine opens, in its serial order.
    const uint64_t frame = c.last_packet() ? c.last_packet()->meta().frame : 0;
    mine_[w].push_back(frame);
    fresh_[w].push_back(frame);
  });
  if (!h.ok()) return h.error();
  return ctx.on(sock.value(), BuiltinEvent::ConnStart, Hook::Receiver, h.value());
}

uint64_t FlowOrder::frame(unsigned w, uint64_t serial) const {
  return serial >= 1 && serial <= mine_[w].size() ? mine_[w][serial - 1] : 0;
}

std::vector<uint64_t> FlowOrder::take(unsigned w) {
  std::vector<uint64_t> out;
  out.swap(fresh_[w]);
  return out;
}

void FlowOrder::add(const std::vector<std::vector<uint64_t>>& frames) {
  // Flows opened after the last add() opened at later frames than any before.
  const size_t old = all_.size();
  for (const auto& f : frames)
    all_.insert(all_.end(), f.begin(), f.end());
  std::sort(all_.begin() + ptrdiff_t(old), all_.end());
}

uint64_t FlowOrder::serial(uint64_t frame) const {
  return uint64_t(std::lower_bound(all_.begin(), all_.end(), frame) - all_.begin()) + 1;
}

std::string FlowOrder::uid(uint64_t frame) const {
  return flow_uid(serial(frame));
}

}  // namespace l45::cli
