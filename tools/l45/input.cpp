#include "input.hpp"

#include <csignal>
#include <cstdio>

#include "command.hpp"
#include "l45/io/pcap_file.hpp"
#include "l45/io/registry.hpp"

namespace l45::cli {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}
}  // namespace

void add_input_options(CLI::App& app, InputArgs& in) {
  auto* r =
      app.add_option("-r,--read", in.file, "read packets from a pcap or pcapng file ('-' = stdin)");
  auto* i = app.add_option("-i,--interface", in.iface, "capture live on an interface (needs root)");
  r->excludes(i);
  i->excludes(r);
  app.add_option("-f,--filter", in.filter, "tcpdump-syntax filter, e.g. 'tcp port 80'");
}

std::unique_ptr<Source> open_input(const InputArgs& in) {
  if (in.file.empty() && in.iface.empty())
    fail("give a capture with -r FILE or an interface with -i IFACE");
  // -r takes a path literally (it may contain ',' or '='), so it does not go through the
  // "scheme:arg,key=value" spec parser.
  std::unique_ptr<Source> src;
  if (!in.file.empty())
    src = must(PcapFileSource::open(in.file));
  else
    src = must(open_source("iface:" + in.iface));
  if (!in.filter.empty()) must(src->set_filter(in.filter));
  return src;
}

void catch_stop_signals() {
  g_stop = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() {
  return g_stop != 0;
}

Result<void> for_each_packet(Source& src, uint64_t limit,
                             const std::function<void(const Packet&)>& f,
                             const std::function<void()>& after_read) {
  catch_stop_signals();
  PacketBatch batch(64);
  uint64_t seen = 0;
  while (!g_stop) {
    auto n = src.read(batch);
    for (const Packet& p : batch) {
      if (limit && seen >= limit) return {};
      f(p);
      ++seen;
    }
    if (!n.ok()) return n.error();
    if (after_read) after_read();
    if (limit && seen >= limit) return {};
    if (*n == 0 && src.at_end()) break;
  }
  return {};
}

Result<void> for_each_batch(Source& src, const std::function<void(std::span<const Packet>)>& f,
                            const std::function<void()>& after_read) {
  catch_stop_signals();
  PacketBatch batch(64);
  while (!g_stop) {
    auto n = src.read(batch);
    if (!batch.empty()) f(std::span<const Packet>(batch.packets()));
    if (!n.ok()) return n.error();
    if (after_read) after_read();
    if (*n == 0 && src.at_end()) break;
  }
  return {};
}

void print_source_stats(const Source& src) {
  const auto& s = src.stats();
  std::fprintf(stderr, "l45: %s: %llu packets, %llu bytes read", src.name().c_str(),
               static_cast<unsigned long long>(s.packets),
               static_cast<unsigned long long>(s.bytes));
  if (s.filtered)
    std::fprintf(stderr, ", %llu filtered out", static_cast<unsigned long long>(s.filtered));
  if (s.kernel_dropped)
    std::fprintf(stderr, ", %llu dropped by the kernel",
                 static_cast<unsigned long long>(s.kernel_dropped));
  std::fputc('\n', stderr);
  print_drops(s.drops);
}

void print_drops(const DropCounters& drops) {
  drops.for_each_nonzero([](DropReason d, uint64_t n) {
    std::fprintf(stderr, "l45:   %-26s %llu  (%s)\n", std::string(drop_reason_name(d)).c_str(),
                 static_cast<unsigned long long>(n),
                 std::string(drop_reason_description(d)).c_str());
  });
}

}  // namespace l45::cli
