// l45 bench: the flow engine over a trace held in memory, timed the way ../shared/bench-peers
// times libnids and libtins, with its RESULT line, so `run_peers.sh -p "... l45"` sets it beside
// them in one run. Also a synthetic run of N handshakes for the memory per flow.
//
// Phases, as bench-peers/common.h defines them: load (read(2) of the whole file into one buffer,
// then the record index: load_sec; VmRSS after it: rss_load_kb), then processing only (sec),
// then engine.finish() outside the timer (libnids' nids_exit() and PcapPlusPlus'
// closeAllConnections() are outside theirs too); c2s/s2c include what finish() flushes
// (bytes_at_exit says how much), as libnids' do.
#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "command.hpp"
#include "flow_common.hpp"
#include "l45/monitor/monitor.hpp"
#include "l45/monitor/workers.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/ip_proto.hpp"

namespace l45::cli {
namespace {

struct BenchArgs {
  std::string file;
  unsigned workers = 1;
  unsigned repeat = 1;
  uint64_t limit = 0;
  bool no_reassembly = false;
  bool drop_after_reset = false;
  bool events = false;
  bool pin = true;
  uint32_t synthetic = 0;
  // Slots are preallocated (and counted in hwm_kb): 262144 holds many-flows' ~130k flows open
  // at once, counting those kept for the 5 s close delay, without the 180 MB more of 1 << 20.
  uint32_t max_flows = 1u << 18;
};

double now_sec() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the calling thread: on a shared machine it leaves out the time the thread
// waited for a core (sec, the wall time, is what the peers report).
double thread_cpu_sec() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

long status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  const size_t kl = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (!std::strncmp(line, key, kl)) {
      v = std::strtol(line + kl, nullptr, 10);
      break;
    }
  std::fclose(f);
  return v;
}

// The whole capture in one buffer, every record borrowed from it (bench-peers' pcap_mem_load
// plus one Packet per record, made while loading so the timed loop only shares them).
struct Trace {
  std::shared_ptr<std::byte[]> buf;
  std::vector<Packet> pkts;
  uint64_t wire_bytes = 0;
  double load_sec = 0;
};

uint32_t rd32(const std::byte* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

Trace load_trace(const std::string& path, uint64_t limit) {
  Trace t;
  const double t0 = now_sec();
  const int fd = ::open(path.c_str(), O_RDONLY);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) < 0) fail(fmt::format("{}: {}", path, std::strerror(errno)));
  const size_t size = size_t(st.st_size);
  t.buf.reset(new std::byte[size ? size : 1]);
  for (size_t off = 0; off < size;) {
    const ssize_t r = ::read(fd, t.buf.get() + off, size - off);
    if (r <= 0) fail(fmt::format("{}: read failed: {}", path, std::strerror(errno)));
    off += size_t(r);
  }
  ::close(fd);
  const std::byte* b = t.buf.get();
  if (size < 24) fail(path + ": not a pcap file");
  uint32_t magic;
  std::memcpy(&magic, b, 4);
  bool swap = false, nsec = false;
  if (magic == 0xa1b2c3d4) {
  } else if (magic == 0xd4c3b2a1) {
    swap = true;
  } else if (magic == 0xa1b23c4d) {
    nsec = true;
  } else if (magic == 0x4d3cb2a1) {
    swap = nsec = true;
  } else {
    fail(path + ": not a classic pcap file (bench reads pcap only; convert pcapng with editcap)");
  }
  uint32_t lt = rd32(b + 20, swap) & 0x0fffffff;
  if (lt == 12) lt = uint32_t(LinkType::Raw);  // DLT_RAW as some systems number it
  const LinkType link = LinkType(lt);
  if (link_type_name(link) == "UNKNOWN")
    fail(fmt::format("{}: link type {} is not supported", path, lt));
  size_t n = 0;
  for (size_t off = 24; off + 16 <= size; ++n) {
    const uint32_t cl = rd32(b + off + 8, swap);
    if (off + 16 + cl > size) break;
    off += 16 + cl;
  }
  if (limit && n > limit) n = limit;
  t.pkts.reserve(n);
  // Each record a slice of one packet over the whole file, as PcapFileSource hands them out.
  const Packet whole = size <= UINT32_MAX ? Packet::borrow(Bytes(b, size), t.buf) : Packet();
  size_t off = 24;
  for (size_t i = 0; i < n; ++i) {
    PacketMeta m;
    const uint32_t sec = rd32(b + off, swap), frac = rd32(b + off + 4, swap);
    m.ts = nsec ? Timestamp::from_sec_nsec(sec, frac) : Timestamp::from_sec_usec(sec, frac);
    const uint32_t cl = rd32(b + off + 8, swap);
    m.wire_len = rd32(b + off + 12, swap);
    m.link = link;
    m.frame = i + 1;
    t.wire_bytes += m.wire_len;
    if (!whole.empty())
      t.pkts.push_back(Packet::slice(whole, off + 16, cl, m));
    else
      t.pkts.push_back(Packet::borrow(Bytes(b + off + 16, cl), t.buf, m));
    off += 16 + cl;
  }
  t.load_sec = now_sec() - t0;
  return t;
}

// Counts what the peers count. c2s/s2c: reassembled bytes sent by the client / the server.
// flows: TCP connections whose handshake was seen and that got established (libnids'
// NIDS_JUST_EST; here Zeek's established conn_states S1 SF S2 S3 RSTO RSTR, not picked up
// mid-stream), counted when they end.
class Counter final : public FlowObserver {
 public:
  uint32_t callbacks() const override { return 0; }  // neither on_packet nor on_tcp_state
  void on_data(const Flow&, Side from, uint64_t, Bytes d) override {
    (from == Side::Client ? c2s : s2c) += d.size();
  }
  void on_gap(const Flow&, Side, uint64_t, uint64_t len) override {
    ++gaps;
    gap_bytes += len;
  }
  void on_mismatch(const Flow&, Side, const StreamMismatch&) override { ++mismatches; }
  void on_close(const Flow& f, FlowEnd) override {
    const TcpConnection* t = f.tcp();
    if (!t || t->partial()) return;
    switch (t->conn_state()) {
      case ZeekConnState::S1:
      case ZeekConnState::SF:
      case ZeekConnState::S2:
      case ZeekConnState::S3:
      case ZeekConnState::RSTO:
      case ZeekConnState::RSTR:
        ++flows;
        break;
      default:
        break;
    }
  }

  uint64_t c2s = 0, s2c = 0, flows = 0, gaps = 0, gap_bytes = 0, mismatches = 0;
};

// -c N: the trace split by FlowDispatcher before any clock starts, as a NIC's RSS spreads
// packets over queues before the cores see them: worker w gets shares[w], every packet of a
// flow (both directions, ICMP errors, fragments) in one share. Each share's frames are copied
// into one buffer of their own, in order, as a NIC writes each queue's frames into that queue's
// ring: a worker reads its packets one after another, not every Nth frame of the file.
struct Share {
  std::shared_ptr<std::byte[]> buf;
  std::vector<Packet> pkts;
};

std::vector<Share> split_trace(const std::vector<Packet>& pkts, unsigned workers, double* sec) {
  const double t0 = now_sec();
  std::vector<std::vector<const Packet*>> picked(workers);
  FlowDispatcher d({.workers = workers});
  std::deque<Packet> held;  // fragments emitted after being held (a deque: they stay put)
  auto emit = [&](unsigned w, const Packet& p, Timestamp) {
    if (&p >= pkts.data() && &p < pkts.data() + pkts.size()) {
      picked[w].push_back(&p);
    } else {
      held.push_back(p.share());
      picked[w].push_back(&held.back());
    }
  };
  for (const Packet& p : pkts)
    d.push(p, emit);
  d.flush(emit);
  std::vector<Share> shares(workers);
  for (unsigned w = 0; w < workers; ++w) {
    size_t bytes = 0;
    for (const Packet* p : picked[w])
      bytes += p->size();
    Share& s = shares[w];
    s.buf.reset(new std::byte[bytes ? bytes : 1]);
    s.pkts.reserve(picked[w].size());
    size_t off = 0;
    for (const Packet* p : picked[w]) {
      std::memcpy(s.buf.get() + off, p->data().data(), p->size());
      s.pkts.push_back(Packet::borrow(Bytes(s.buf.get() + off, p->size()), s.buf, p->meta()));
      off += p->size();
    }
  }
  *sec = now_sec() - t0;
  return shares;
}

// Worker w on its own CPU: the w-th of those this process may run on (none when there are
// fewer). Returns whether it was pinned.
bool pin_to_cpu(unsigned w) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
  unsigned seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ != w) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  return false;
}

// One per worker, each on cache lines of its own: the counters are written per event.
struct alignas(64) WorkerResult {
  Counter count;
  uint64_t c2s_run = 0, s2c_run = 0;
  uint64_t peak_flows = 0, flows_created = 0, partial = 0, evicted = 0, refused = 0;
  uint64_t engine_mem_peak = 0, buffered_peak = 0, anomalies = 0;
  double cpu_sec = 0;
  double t0 = 0, t1 = 0;  // the worker's timed loop (steady clock)
};

EngineConfig bench_config(const BenchArgs& a, uint32_t max_flows) {
  EngineArgs ea;
  ea.max_flows = max_flows;
  EngineConfig c = engine_config(ea);
  c.reassemble = !a.no_reassembly;
  c.deliver_after_reset = !a.drop_after_reset;
  return c;
}

// Packets go to the engine in batches of this many, as a Source reads them (PacketBatch's
// default capacity).
constexpr size_t kBatch = 64;

// The clock runs only around the packet loop; `process` feeds `engine` a batch (directly, or
// through a monitoring context), `finish` ends it after the clock stopped.
template <typename Process, typename Finish>
double timed_loop(const std::vector<Packet>& pkts, WorkerResult& r, std::barrier<>* start,
                  const Engine& engine, Process&& process, Finish&& finish) {
  if (start) start->arrive_and_wait();  // every engine built before any clock starts
  const double c0 = thread_cpu_sec();
  const double t0 = now_sec();
  r.t0 = t0;
  for (size_t i = 0; i < pkts.size(); i += kBatch) {
    process(std::span<const Packet>(pkts).subspan(i, std::min(kBatch, pkts.size() - i)));
    // The engine's bytes move only with flows and buffers: a sample every 4096 packets.
    if (((i + kBatch) & 4095) == 0)
      r.engine_mem_peak = std::max<uint64_t>(r.engine_mem_peak, engine.memory_bytes());
  }
  r.t1 = now_sec();
  const double sec = r.t1 - t0;
  r.cpu_sec = thread_cpu_sec() - c0;
  r.engine_mem_peak = std::max<uint64_t>(r.engine_mem_peak, engine.memory_bytes());
  r.c2s_run = r.count.c2s;
  r.s2c_run = r.count.s2c;
  r.peak_flows = engine.table_stats().peak;
  finish();
  const EngineStats& s = engine.stats();
  r.flows_created = s.flows_created;
  r.partial = s.tcp_partial;
  r.evicted = s.flows_closed[size_t(FlowEnd::Evicted)];
  r.refused = s.flows_refused;
  r.buffered_peak = s.buffered_peak;
  r.anomalies = s.drops.total();
  return sec;
}

// --events: the same counts from one handler subscribed to every built-in event (receiver
// hook) on a monitoring socket that takes every flow: what the event layer costs.
void count_events(MonitorContext& ctx, Counter& count) {
  auto h = ctx.handler("bench", [&count](MonitorContext& c, FlowHandle f, Side side, EventId e) {
    switch (BuiltinEvent(e)) {
      case BuiltinEvent::Data:
        (side == Side::Client ? count.c2s : count.s2c) += c.detail().length;
        break;
      case BuiltinEvent::Gap:
        ++count.gaps;
        count.gap_bytes += c.detail().length;
        break;
      case BuiltinEvent::Mismatch:
        ++count.mismatches;
        break;
      case BuiltinEvent::ConnEnd:
        if (const Flow* fl = c.flow(f)) count.on_close(*fl, c.detail().end);
        break;
      default:
        break;
    }
  });
  auto s = ctx.socket(SocketKind::Stream);
  if (!h.ok() || !s.ok()) fail("bench: cannot set up the monitoring socket");
  for (size_t e = 0; e < kBuiltinEvents; ++e)
    if (!ctx.on(s.value(), EventId(e), Hook::Receiver, h.value()).ok())
      fail("bench: cannot subscribe to every event");
}

// One engine over `pkts` (the whole trace, or one worker's share).
double run_worker(const BenchArgs& a, const std::vector<Packet>& pkts, WorkerResult& r,
                  std::barrier<>* start = nullptr) {
  if (a.events) {
    MonitorContext ctx(bench_config(a, a.max_flows));
    count_events(ctx, r.count);
    return timed_loop(
        pkts, r, start, ctx.engine(), [&](std::span<const Packet> b) { ctx.process(b); },
        [&] { ctx.finish(); });
  }
  Engine engine(bench_config(a, a.max_flows), &r.count);
  return timed_loop(
      pkts, r, start, engine, [&](std::span<const Packet> b) { engine.process(b); },
      [&] { engine.finish(); });
}

// "412000/398000": packets per worker ("-" for one worker).
std::string share_sizes(const std::vector<Share>& shares) {
  std::string s;
  for (const Share& x : shares)
    s += (s.empty() ? "" : "/") + std::to_string(x.pkts.size());
  return s.empty() ? "-" : s;
}

void run_trace(const BenchArgs& a) {
  Trace t = load_trace(a.file, a.limit);
  double split_sec = 0;
  std::vector<Share> shares;
  if (a.workers > 1) shares = split_trace(t.pkts, a.workers, &split_sec);
  const long rss_load = status_kb("VmRSS:");
  unsigned pinned = 0;
  std::vector<double> secs, cpus, cpu_maxes;
  std::vector<WorkerResult> res;
  for (unsigned rep = 0; rep < a.repeat; ++rep) {
    res.assign(a.workers, WorkerResult{});
    double sec = 0;
    if (a.workers == 1) {
      sec = run_worker(a, t.pkts, res[0]);
    } else {
      // From the first worker's start to the last one's end; engines are built (tables
      // preallocated) before the start barrier and finish() runs after each clock stops.
      std::barrier<> start(a.workers);
      std::vector<std::thread> th;
      std::atomic<unsigned> pins{0};
      for (unsigned w = 0; w < a.workers; ++w)
        th.emplace_back([&, w] {
          if (a.pin && pin_to_cpu(w)) ++pins;
          run_worker(a, shares[w].pkts, res[w], &start);
        });
      for (auto& x : th)
        x.join();
      pinned = pins;
      double first = res[0].t0, last = res[0].t1;
      for (const WorkerResult& r : res)
        first = std::min(first, r.t0), last = std::max(last, r.t1);
      sec = last - first;
    }
    secs.push_back(sec);
    double cpu = 0;
    for (const WorkerResult& r : res)
      cpu += r.cpu_sec;
    cpus.push_back(cpu);
    double cpu_max = 0;
    for (const WorkerResult& r : res)
      cpu_max = std::max(cpu_max, r.cpu_sec);
    cpu_maxes.push_back(cpu_max);
  }
  std::sort(cpus.begin(), cpus.end());
  std::sort(cpu_maxes.begin(), cpu_maxes.end());
  std::vector<double> sorted = secs;
  std::sort(sorted.begin(), sorted.end());
  const double sec = sorted[sorted.size() / 2];
  WorkerResult sum;
  for (const WorkerResult& r : res) {
    sum.count.c2s += r.count.c2s, sum.count.s2c += r.count.s2c, sum.count.flows += r.count.flows;
    sum.count.gaps += r.count.gaps, sum.count.gap_bytes += r.count.gap_bytes;
    sum.count.mismatches += r.count.mismatches;
    sum.c2s_run += r.c2s_run, sum.s2c_run += r.s2c_run, sum.peak_flows += r.peak_flows;
    sum.flows_created += r.flows_created, sum.partial += r.partial, sum.evicted += r.evicted;
    sum.refused += r.refused, sum.engine_mem_peak += r.engine_mem_peak;
    sum.buffered_peak += r.buffered_peak, sum.anomalies += r.anomalies;
  }
  const double n = double(t.pkts.size());
  const char* peer = a.workers == 1 ? "l45" : "l45-2w";
  std::string peer_name = a.workers <= 2 ? peer : fmt::format("l45-{}w", a.workers);
  if (a.no_reassembly) peer_name += "-noreasm";
  if (a.events) peer_name += "-events";
  fmt::print(
      "RESULT peer={} packets={} bytes={} flows={} c2s={} s2c={} sec={:.6f} mpps={:.4f} "
      "gbps={:.4f} load_sec={:.4f} rss_load_kb={} hwm_kb={} workers={} repeats={} "
      "ns_per_pkt={:.1f} peak_flows={} engine_bytes_per_flow={} flows_all={} partial={} "
      "evicted={} refused={} gaps={} gap_bytes={} mismatches={} anomalies={} "
      "bytes_at_exit={} buffered_peak={} max_flows={} cpu_sec={:.6f} cpu_max_sec={:.6f} "
      "split_sec={:.4f} "
      "pinned={} shares={}\n",
      peer_name, t.pkts.size(), t.wire_bytes, sum.count.flows, sum.count.c2s, sum.count.s2c, sec,
      sec > 0 ? n / sec / 1e6 : 0, sec > 0 ? double(t.wire_bytes) * 8 / sec / 1e9 : 0, t.load_sec,
      rss_load, status_kb("VmHWM:"), a.workers, a.repeat, sec > 0 ? sec * 1e9 / n : 0,
      sum.peak_flows, sum.peak_flows ? sum.engine_mem_peak / sum.peak_flows : 0, sum.flows_created,
      sum.partial, sum.evicted, sum.refused, sum.count.gaps, sum.count.gap_bytes,
      sum.count.mismatches, sum.anomalies,
      (sum.count.c2s + sum.count.s2c) - (sum.c2s_run + sum.s2c_run), sum.buffered_peak, a.max_flows,
      cpus[cpus.size() / 2], cpu_maxes[cpu_maxes.size() / 2], split_sec, pinned,
      share_sizes(shares));
  std::fflush(stdout);
}

// N distinct TCP handshakes (SYN, SYN-ACK, ACK; no data), built into one buffer before the
// engine starts, then fed with max_flows = N: every flow is open at the end, with empty buffers.
void run_synthetic(const BenchArgs& a) {
  const uint32_t n = a.synthetic;
  const double t0 = now_sec();
  const MacAddr cm{{0x02, 0, 0, 0, 0, 1}}, sm{{0x02, 0, 0, 0, 0, 2}};
  // Frame 0 of each kind tells the (fixed) length: Ethernet + IPv4 + TCP, no options.
  constexpr size_t kFrame = 14 + 20 + 20;
  std::shared_ptr<std::byte[]> buf(new std::byte[size_t(n) * 3 * kFrame]);
  for (uint32_t i = 0; i < n; ++i) {
    // Documentation prefixes (RFC 5737); (client address, client port) is unique per i for
    // i < 254 * 64000, the server side varies too so the index spreads.
    const IpAddr c = IpAddr::from_host_v4(0xc6336400u | (i % 254 + 1));        // 198.51.100.x
    const IpAddr s = IpAddr::from_host_v4(0xcb007100u | ((i / 7) % 254 + 1));  // 203.0.113.y
    const uint16_t cp = uint16_t(1024 + (i / 254) % 64000);
    static constexpr uint16_t kPorts[] = {80, 443, 8080, 25, 22, 993};
    const uint16_t sp = kPorts[i % std::size(kPorts)];
    const TcpSeq ci(i * 2654435761u), si(~i * 40503u);
    Packet f[3] = {PacketBuilder()
                       .ethernet(cm, sm)
                       .ipv4(c, s)
                       .tcp(cp, sp)
                       .seq(ci)
                       .flags(tcp_flag::kSyn)
                       .window(64240)
                       .build(),
                   PacketBuilder()
                       .ethernet(sm, cm)
                       .ipv4(s, c)
                       .tcp(sp, cp)
                       .seq(si)
                       .ack(ci + 1)
                       .flags(tcp_flag::kSyn | tcp_flag::kAck)
                       .window(65160)
                       .build(),
                   PacketBuilder()
                       .ethernet(cm, sm)
                       .ipv4(c, s)
                       .tcp(cp, sp)
                       .seq(ci + 1)
                       .ack(si + 1)
                       .flags(tcp_flag::kAck)
                       .window(502)
                       .build()};
    for (int k = 0; k < 3; ++k) {
      if (f[k].size() != kFrame) fail("synthetic: unexpected frame size");
      std::memcpy(buf.get() + (size_t(i) * 3 + k) * kFrame, f[k].data().data(), kFrame);
    }
  }
  const double load_sec = now_sec() - t0;
  const long rss_load = status_kb("VmRSS:");
  Counter count;
  Engine engine(bench_config(a, std::max(n, 1u)), &count);
  const double t1 = now_sec();
  for (uint64_t j = 0; j < uint64_t(n) * 3; ++j) {
    PacketMeta m;
    m.ts = Timestamp::from_sec_usec(1700000000 + int64_t(j / 1000000), int64_t(j % 1000000));
    m.wire_len = kFrame;
    engine.process(Packet::borrow(Bytes(buf.get() + j * kFrame, kFrame), buf, m));
  }
  const double sec = now_sec() - t1;
  const long hwm = status_kb("VmHWM:");
  const size_t mem = engine.memory_bytes();
  const size_t open = engine.active_flows();
  fmt::print(
      "RESULT peer=l45-synthetic packets={} bytes={} flows={} c2s=0 s2c=0 sec={:.6f} "
      "mpps={:.4f} gbps=0 load_sec={:.4f} rss_load_kb={} hwm_kb={} open_flows={} "
      "state_bytes_per_flow={:.0f} engine_bytes_per_flow={:.0f} engine_mib={:.1f} "
      "state_mib={:.1f} sizeof_flow={} sizeof_tcp_state={}\n",
      uint64_t(n) * 3, uint64_t(n) * 3 * kFrame, open, sec, sec > 0 ? n * 3.0 / sec / 1e6 : 0,
      load_sec, rss_load, hwm, open, n ? (hwm - rss_load) * 1024.0 / n : 0, n ? double(mem) / n : 0,
      mem / 1048576.0, (hwm - rss_load) / 1024.0, sizeof(Flow), Engine::tcp_state_bytes());
  std::fflush(stdout);
}

void setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("-r,--read", a->file, "pcap file, read whole into memory before timing");
  app.add_option("-c,--workers", a->workers,
                 "engines on threads, one per CPU (pinned), each over its share of the trace")
      ->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  app.add_flag("!--no-pin", a->pin,
               "-c N: let the scheduler place the workers (on a machine shared with other jobs, "
               "a worker pinned beside one gets half its core)");
  app.add_option("--repeat", a->repeat, "runs over the loaded trace; sec is their median")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--limit", a->limit, "only the first N packets (a prefix for profiling)")
      ->check(CLI::Range(uint64_t{1}, UINT64_MAX));
  app.add_flag("--drop-after-reset", a->drop_after_reset,
               "do not deliver data sent after an accepted RST (the receiver's view, as libnids)");
  app.add_flag("--events", a->events,
               "through a monitoring socket: one handler subscribed to every built-in event");
  app.add_flag("--no-reassembly", a->no_reassembly,
               "TCP state only, no stream reassembly (c2s/s2c = 0)");
  CLI::Option* synthetic =
      app.add_option("--synthetic-flows", a->synthetic,
                     "no trace: N TCP handshakes built in memory, for the memory per flow")
          ->check(CLI::Range(1u, 16000000u));
  app.add_option("--max-flows", a->max_flows, "flow table slots per engine (preallocated)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 26));
  app.footer(R"(Examples:
  l45 bench -r /tmp/l45-traces/bench-small.pcap        one RESULT line (bench-peers format)
  l45 bench -r trace.pcap --repeat 5                   median of 5 runs over one load
  l45 bench -r trace.pcap -c 2                         two engines on two threads (pinned)
  l45 bench -r trace.pcap --limit 20000                a prefix, e.g. under valgrind
  l45 bench -r trace.pcap --events                     the same through the event layer
  l45 bench --synthetic-flows 1000000                  memory of 1M open flows, empty buffers
  L45=build/tools/l45/l45 ../shared/bench-peers/run_peers.sh -p "floor-flow libnids l45" T.pcap

What is timed: only engine.process() over packets already in memory (load_sec and
rss_load_kb cover reading the file, as bench-peers/common.h does); engine.finish() runs after
the clock stops, as libnids' nids_exit() does, and c2s/s2c include what it flushes
(bytes_at_exit). c2s/s2c are reassembled bytes sent by the client / the server; flows are TCP
connections seen from their handshake to established (libnids' count). hwm_kb - rss_load_kb is
the engine's state; engine_bytes_per_flow is Engine::memory_bytes() at its peak (sampled)
divided by the peak of concurrent flows, which includes flows kept after their close for the
close delay (5 s) and the table slots preallocated for --max-flows.
-c N: before any clock starts, the trace is split into N shares by FlowDispatcher (both
directions of a flow, the ICMP errors quoting it and its IP fragments in one share), as a NIC
spreads packets over its receive queues (RSS) before the cores see them; the split is not timed
(split_sec, shares = packets per worker); each share's frames are copied into a buffer of
their own, as a NIC fills one ring per queue (rss_load_kb is taken after the split). Each worker is a thread pinned to its own CPU when
there are enough (pinned = how many were), with its own engine; sec runs from the first
worker's start to the last one's end, cpu_sec adds the workers' CPU times and cpu_max_sec is
the busiest worker's (what sec would be with every worker alone on its core: on a shared
machine, compare it with -c 1's cpu_sec too).
--synthetic-flows N: N handshakes (198.51.100.0/24 to 203.0.113.0/24) with max_flows = N,
all open at the end, on one engine (no other option applies); state_bytes_per_flow = (hwm -
rss after building the frames) / N; sizeof_tcp_state is Engine::tcp_state_bytes().

Exit status: 0 done, 2 bad arguments or unreadable trace.)");
  app.callback([a, &app, synthetic] {
    if (a->synthetic) {
      // Its frames are built here for one engine: every other option is a trace run's and
      // would be ignored.
      for (const CLI::Option* o : app.get_options())
        if (o != synthetic && o->count())
          fail(
              fmt::format("bench: --synthetic-flows builds its own N handshakes for one engine "
                          "(max_flows = N); {} is for a trace run",
                          o->get_name()));
      return run_synthetic(*a);
    }
    if (a->file.empty()) fail("bench: -r TRACE or --synthetic-flows N is required");
    run_trace(*a);
  });
}

}  // namespace

L45_REGISTER_COMMAND("bench", "time the flow engine over a trace in memory (bench-peers RESULT)",
                     setup, 90);

}  // namespace l45::cli
