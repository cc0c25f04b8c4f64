// rewrite: replaces byte strings in TCP payloads inline, where the replacement may be longer or
// shorter (mOS's setlastpkt with a length change), written only against the public API.
//
// On every new data of a side, each occurrence of FROM inside the packet that carried it is
// replaced by TO: remove() then insert(). The monitor remaps the sequence and acknowledgement
// numbers of the rest of the connection, so both endpoints stay in sync; a retransmission gets
// the same edit again. A FROM cut by a segment boundary is not seen (edits act on one packet).
//
// Events used: data (receiver hook) on one stream socket.
//
//   Rewriter rw(ctx, {{"Server: nginx", "Server: l45", std::nullopt}}, "tcp port 80");
//   ... ctx.process_inline(p) ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::examples {

struct Replacement {
  std::string from, to;
  std::optional<Side> side;  // only what that side sends; nullopt: both
};

class Rewriter {
 public:
  Rewriter(MonitorContext& ctx, std::vector<Replacement> rules, std::string filter = "tcp");
  Result<void> status() const { return status_; }
  uint64_t replaced() const { return replaced_; }  // occurrences replaced
  uint64_t refused() const { return refused_; }    // edits the monitor refused

 private:
  Result<void> setup(MonitorContext& ctx, std::string filter);
  void on_data(MonitorContext& c, Side side);

  std::vector<Replacement> rules_;
  uint64_t replaced_ = 0, refused_ = 0;
  Result<void> status_;
};

}  // namespace l45::examples
