// FEC encode and decode rates (MB/s of application datagrams, one core): groups of k=10
// datagrams of 1200 bytes plus m=3 parity; decode with 3 of each group's 13 datagrams lost (the
// worst case the code still repairs) and with none lost (the pass-through cost).
//   ./build/src/shim/fec_bench
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "l45/shim/fec.hpp"

namespace {

using namespace l45::shim;

std::vector<std::string> datagrams(int n, size_t size) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.emplace_back(size, static_cast<char>('a' + i % 26));
  return out;
}

void BM_FecEncode(benchmark::State& state) {
  auto in = datagrams(1000, 1200);
  FecEncoder enc({10, 3, 1'000'000'000});
  size_t bytes = 0;
  for (auto _ : state) {
    for (const auto& d : in)
      enc.send(d, 0, [&](std::string_view w) { benchmark::DoNotOptimize(w.data()); });
    bytes += in.size() * 1200;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_FecEncode);

void decode(benchmark::State& state, int lost_per_group) {
  auto in = datagrams(1000, 1200);
  std::vector<std::string> wire;
  FecEncoder enc({10, 3, 1'000'000'000});
  for (const auto& d : in)
    enc.send(d, 0, [&](std::string_view w) { wire.emplace_back(w); });
  std::vector<std::string> kept;
  for (size_t i = 0; i < wire.size(); ++i)
    if (static_cast<int>(i % 13) >= lost_per_group) kept.push_back(wire[i]);
  size_t bytes = 0;
  for (auto _ : state) {
    FecDecoder dec;
    for (const auto& w : kept)
      dec.receive(w, 0, [&](std::string_view d) { benchmark::DoNotOptimize(d.data()); });
    bytes += in.size() * 1200;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
void BM_FecDecodeNoLoss(benchmark::State& state) {
  decode(state, 0);
}
void BM_FecDecodeThreeLostPerGroup(benchmark::State& state) {
  decode(state, 3);
}
BENCHMARK(BM_FecDecodeNoLoss);
BENCHMARK(BM_FecDecodeThreeLostPerGroup);

}  // namespace

BENCHMARK_MAIN();
