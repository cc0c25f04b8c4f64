// -c N: one numbering of flows across workers. Each worker's engine numbers its own flows
// (Flow::serial, Flow::uid); one engine over the whole input numbers them in the order they
// opened. FlowOrder records, per worker, the frame (PacketMeta::frame) each flow opened at and
// gives back one engine's serial and uid, so merged output is what -c 1 prints.
//
//   FlowOrder order(n);
//   setup on worker w:   order.watch(w, ctx)
//   on worker w's thread: frames = order.take(w); frame = order.frame(w, f->serial())
//   then, with every worker at the same point of the input (a mark, or joined):
//                        order.add(frames of every worker); order.uid(frame)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/monitor/monitor.hpp"

namespace l45::cli {

class FlowOrder {
 public:
  explicit FlowOrder(unsigned workers) : mine_(workers), fresh_(workers) {}

  // Worker w's thread: a socket taking every flow records where each one opened.
  Result<void> watch(unsigned w, MonitorContext& ctx);
  // Worker w's thread: the frame its flow `serial` opened at; the frames recorded since the
  // last take().
  uint64_t frame(unsigned w, uint64_t serial) const;
  std::vector<uint64_t> take(unsigned w);

  // Every worker's take()s up to one point of the input: the flows they opened (after all
  // those added before).
  void add(const std::vector<std::vector<uint64_t>>& frames);
  // One engine's serial and uid of the flow that opened at `frame` (added).
  uint64_t serial(uint64_t frame) const;
  std::string uid(uint64_t frame) const;

 private:
  std::vector<std::vector<uint64_t>> mine_;   // worker's own: by its serial - 1
  std::vector<std::vector<uint64_t>> fresh_;  // worker's own: not taken yet
  std::vector<uint64_t> all_;                 // every flow's, sorted
};

}  // namespace l45::cli
