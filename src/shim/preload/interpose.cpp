// libl45shim.so: the LD_PRELOAD loader. It taps the socket calls of an unmodified program,
// builds each socket's context, matches it against the manifests of the customization directory
// and runs the matching modules' chain on the socket's data.
//
// Fast path: every interposed data call starts with one lookup in a table indexed by fd; a
// descriptor the shim does not hold (not an IPv4/IPv6 TCP/UDP socket, or one whose context
// matched no manifest, or any descriptor of a program no manifest names) goes straight to the
// real function with its arguments untouched, so bytes, errno, partial writes and non-blocking
// behaviour are the kernel's. Nothing here may end the program: errors are reported once on
// stderr ("l45 shim: ...") and the shim steps aside.
//
// Environment (ignored in set-uid and other privileged programs, which only trust root-owned
// files in the default directories): L45_SHIM_MODULES (the customization directory, default
// /etc/l45/modules.d), L45_SHIM_RUNDIR (stats files, default /run/l45/shim), L45_SHIM_DEBUG=1
// (one line per chain built, on stderr).
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "l45/shim/manifest.hpp"
#include "l45/shim/stats.hpp"
#include "l45/shim/stats_format.h"
#include "l45/shim_module.h"
#include "modules/builtin.hpp"

#define L45_EXPORT extern "C" __attribute__((visibility("default")))

namespace l45::shim {
namespace {

// ---- the real functions -----------------------------------------------------------------------

template <typename F>
F resolve(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_relaxed);
  if (!p) {
    p = dlsym(RTLD_NEXT, name);
    slot.store(p, std::memory_order_relaxed);
  }
  return reinterpret_cast<F>(p);
}
#define REAL_T(name, type)                        \
  ([]() {                                         \
    static std::atomic<void*> real_slot{nullptr}; \
    return resolve<type>(real_slot, #name);       \
  }())
#define REAL(name) REAL_T(name, decltype(&::name))

// ---- process-wide state ----------------------------------------------------------------------

struct Instance {
  const Manifest* manifest;
  const l45_shim_module* mod;
  void* state;
};

struct Global {
  bool active = false;
  bool debug = false;
  std::string program, program_path;
  uint32_t uid = 0;
  std::vector<Manifest> manifests;
  std::vector<Instance> instances;  // parallel to manifests
};
Global* g = nullptr;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

void say(const std::string& msg) {
  std::string line = "l45 shim: " + msg + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t r = REAL(write)(2, p, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    p += r;
    left -= static_cast<size_t>(r);
  }
}

const l45_shim_module* load_external(const std::string& path, std::string* why) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    *why = e ? e : "dlopen failed";
    return nullptr;
  }
  auto entry = reinterpret_cast<l45_shim_module_entry_fn>(dlsym(h, L45_SHIM_MODULE_ENTRY));
  if (!entry) {
    *why = "no " L45_SHIM_MODULE_ENTRY " symbol";
    return nullptr;
  }
  const l45_shim_module* m = entry();
  if (!m || m->abi_version != L45_SHIM_ABI_VERSION) {
    *why = "module ABI version " + std::to_string(m ? m->abi_version : 0) +
           ", this shim speaks version " + std::to_string(L45_SHIM_ABI_VERSION);
    return nullptr;
  }
  return m;
}

void init_once() {
  int saved = errno;
  auto* st = new Global;
  const char* dbg = std::getenv("L45_SHIM_DEBUG");
  st->debug = dbg && *dbg && std::strcmp(dbg, "0") != 0;
  char exe[PATH_MAX] = {};
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    st->program_path = exe;
    const char* slash = std::strrchr(exe, '/');
    st->program = slash ? slash + 1 : exe;
  }
  st->uid = getuid();
  // A set-uid or otherwise privileged program (reachable through /etc/ld.so.preload) takes
  // nothing from its caller: the default directories only, and only root's files.
  bool secure = getauxval(AT_SECURE) != 0;
  uint32_t trusted_uid = secure ? 0 : st->uid;
  StatsPublisher::set_rundir(secure ? std::string("/run/l45/shim")
                                    : stats_rundir());  // now: nginx clears its environment
  const char* env = secure ? nullptr : std::getenv("L45_SHIM_MODULES");
  std::string dir = env && *env ? env : "/etc/l45/modules.d";
  try {
    DirLoad d = load_directory(dir, trusted_uid);
    if (d.refusal) {
      say("not loading any module: " + *d.refusal +
          " (the directory and its files must be owned by root or uid " +
          std::to_string(trusted_uid) + " and writable only by their owner)");
    } else {
      for (const auto& p : d.skipped)
        say("skipping " + p.to_string());
      std::vector<std::pair<const l45_shim_module*, void*>> made;
      for (auto& m : d.manifests) {
        if (m.program && *m.program != st->program) continue;  // never for this program
        std::string why;
        const l45_shim_module* mod = m.module.find('/') != std::string::npos
                                         ? load_external(m.module, &why)
                                         : find_builtin(m.module);
        if (!mod) {
          say("skipping " + m.file + ": module " + m.module + ": " +
              (why.empty() ? "no such built-in module" : why));
          continue;
        }
        std::vector<l45_shim_param> params;
        for (const auto& [k, v] : m.params)
          params.push_back({k.c_str(), v.c_str()});
        void* state = nullptr;
        if (mod->init) {
          int ok = 1;
          char err[256] = {};
          state = mod->init(params.data(), params.size(), &ok, err, sizeof err);
          if (!ok) {
            say("skipping " + m.file + ": " + err);
            continue;
          }
        }
        made.emplace_back(mod, state);
        st->manifests.push_back(std::move(m));
      }
      // Instances point into the manifests: built once the vector is final.
      for (size_t i = 0; i < st->manifests.size(); ++i)
        st->instances.push_back({&st->manifests[i], made[i].first, made[i].second});
      st->active = !st->instances.empty();
    }
  } catch (const std::exception& e) {  // e.g. bad_alloc: the shim steps aside
    say(std::string("not loading any module: ") + e.what());
    st->manifests.clear();
    st->instances.clear();
    st->active = false;
  }
  g = st;
  errno = saved;
}

bool active() {
  pthread_once(&g_once, init_once);
  return g && g->active;
}

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- sockets ---------------------------------------------------------------------------------

struct Stage {
  const Instance* inst;
  void* state;
};

struct Dgram {
  std::string data;
  sockaddr_storage from{};
  socklen_t fromlen = 0;
};

struct Sock {
  std::atomic<int> refs{1};
  int family = 0;
  int type = 0;      // SOCK_STREAM or SOCK_DGRAM
  std::mutex mu;     // context, chain, module state
  std::mutex rx_mu;  // one receiver at a time on the buffered data
  std::mutex tx_mu;  // one sender at a time through the chain
  sockaddr_storage remote{};
  bool bound = false;
  bool listening = false;
  Side side = Side::Unknown;
  std::atomic<bool> decided{false};
  std::atomic<bool> bypass{false};
  std::vector<Stage> chain;
  bool transforming = false;
  bool observing = false;
  l45_shim_stats_slot* slot = nullptr;
  uint32_t calls = 0;
  // Ingress data the chain produced and the program has not read yet.
  std::string rx;
  size_t rx_off = 0;
  std::deque<Dgram> rxq;
  bool eof = false;
  // Counted in g_buffered. Written under rx_mu, read without it: a poll in one thread must not
  // wait for a recv blocked in another.
  std::atomic<bool> buffered{false};
  // Where the last datagram went (unconnected UDP): what modules emit at close goes there.
  sockaddr_storage last_dest{};
  socklen_t last_destlen = 0;
  // Where the last datagram came from: what a module releases at a deadline came from there.
  sockaddr_storage last_from{};
  socklen_t last_fromlen = 0;
  // The earliest time a module wants its ingress_tick (0: none); counted in g_deadlines.
  std::atomic<uint64_t> deadline{0};
};

constexpr int kMaxFd = 1 << 16;
std::atomic<Sock*> g_fds[kMaxFd];
std::atomic<int> g_buffered{0};   // sockets holding ingress data: poll/select/epoll look then
std::atomic<int> g_deadlines{0};  // sockets whose modules wait for a time (fec reordering)

inline Sock* lookup(int fd) {
  if (static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFd)) return nullptr;
  return g_fds[fd].load(std::memory_order_acquire);
}

void unref(Sock* s);

void install(int fd, Sock* s) {
  if (static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFd)) {
    unref(s);
    return;
  }
  Sock* old = g_fds[fd].exchange(s, std::memory_order_acq_rel);
  if (old) unref(old);
}

void track_new(int fd, int family, int type) {
  auto* s = new Sock;
  s->family = family;
  s->type = type;
  install(fd, s);
}

void update_buffered(Sock* s) {
  bool has = s->rx.size() > s->rx_off || !s->rxq.empty();
  if (has != s->buffered.load(std::memory_order_relaxed)) {
    s->buffered.store(has, std::memory_order_release);
    g_buffered.fetch_add(has ? 1 : -1, std::memory_order_relaxed);
  }
}

std::string chain_names(const Sock* s) {
  std::string out;
  for (const auto& st : s->chain) {
    if (!out.empty()) out += ",";
    out += st.inst->manifest->name;
  }
  return out;
}

void publish_counters(Sock* s) {
  if (!s->slot) return;
  size_t used = 0;
  for (const auto& st : s->chain) {
    if (!st.inst->mod->counters) continue;
    l45_shim_counter c[L45_SHIM_STATS_EXTRA];
    size_t n = st.inst->mod->counters(st.state, c, L45_SHIM_STATS_EXTRA - used);
    for (size_t i = 0; i < n && used < L45_SHIM_STATS_EXTRA; ++i, ++used) {
      std::memcpy(s->slot->extra[used].name, c[i].name, sizeof c[i].name);
      s->slot->extra[used].name[sizeof c[i].name - 1] = 0;
      __atomic_store_n(&s->slot->extra[used].value, c[i].value, __ATOMIC_RELAXED);
    }
  }
}

void copy_str(char* dst, size_t cap, const std::string& s) {
  size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = 0;
}

// Builds the socket's context and its chain, once. `fd` is the descriptor it is called for.
void decide(Sock* s, int fd) {
  if (s->decided.load(std::memory_order_acquire)) return;
  struct KeepErrno {
    int saved = errno;
    ~KeepErrno() { errno = saved; }
  } keep_errno;
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->decided.load(std::memory_order_relaxed)) return;
  Context c;
  c.program = g->program;
  c.program_path = g->program_path;
  c.uid = g->uid;
  c.protocol = s->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
  c.family = s->family;
  c.side = s->side;
  socklen_t len = sizeof c.local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&c.local), &len) != 0) c.local = {};
  c.remote = s->remote;
  auto selected = select_chain(g->manifests, c);
  for (const Manifest* m : selected) {
    const Instance* inst = &g->instances[static_cast<size_t>(m - g->manifests.data())];
    s->chain.push_back({inst, nullptr});
  }
  if (!s->chain.empty()) {
    std::string err;
    s->slot = StatsPublisher::claim(&err);
    bool counts = g->debug;
    for (const auto& st : s->chain)
      counts = counts || st.inst->mod->observe;
    static std::atomic<bool> said{false};
    if (!err.empty() && counts && !said.exchange(true)) say(err);
    if (s->slot) {
      s->slot->fd = fd;
      s->slot->protocol = static_cast<uint8_t>(c.protocol);
      s->slot->family = static_cast<uint8_t>(c.family);
      s->slot->side = static_cast<uint8_t>(c.side == Side::Client   ? L45_SHIM_SIDE_CLIENT
                                           : c.side == Side::Server ? L45_SHIM_SIDE_SERVER
                                                                    : L45_SHIM_SIDE_UNKNOWN);
      copy_str(s->slot->local, sizeof s->slot->local, format_endpoint(c.local));
      copy_str(s->slot->remote, sizeof s->slot->remote, format_endpoint(c.remote));
      copy_str(s->slot->chain, sizeof s->slot->chain, chain_names(s));
    }
    l45_shim_sock_ctx ctx{};
    ctx.size = sizeof ctx;
    ctx.program = g->program.c_str();
    ctx.program_path = g->program_path.c_str();
    ctx.uid = g->uid;
    ctx.fd = fd;
    ctx.protocol = c.protocol;
    ctx.family = c.family;
    ctx.side = c.side == Side::Client   ? L45_SHIM_SIDE_CLIENT
               : c.side == Side::Server ? L45_SHIM_SIDE_SERVER
                                        : L45_SHIM_SIDE_UNKNOWN;
    ctx.local = c.local;
    ctx.remote = c.remote;
    ctx.stats = s->slot;
    for (auto& st : s->chain) {
      if (st.inst->mod->sock_create) st.state = st.inst->mod->sock_create(st.inst->state, &ctx);
      if (st.inst->mod->egress || st.inst->mod->ingress) s->transforming = true;
      if (st.inst->mod->observe) s->observing = true;
    }
    publish_counters(s);
  }
  if (g->debug)
    say("fd " + std::to_string(fd) + " " + (c.protocol == IPPROTO_TCP ? "tcp" : "udp") + " " +
        (c.side == Side::Client   ? "client"
         : c.side == Side::Server ? "server"
                                  : "unknown") +
        " " + format_endpoint(c.local) + " -> " + format_endpoint(c.remote) + ": chain [" +
        chain_names(s) + "]");
  s->bypass.store(s->chain.empty(), std::memory_order_release);
  s->decided.store(true, std::memory_order_release);
}

// Runs on the last close of a socket: lets modules flush (what a module emits at close goes
// through the rest of the egress chain and out, best effort and without blocking), publishes,
// frees.
void finish(Sock* s, int fd) {
  if (!s->chain.empty()) {
    std::lock_guard<std::mutex> lock(s->mu);
    for (size_t i = 0; i < s->chain.size(); ++i) {
      auto& st = s->chain[i];
      if (!st.inst->mod->sock_close) continue;
      std::vector<std::string> cur;
      st.inst->mod->sock_close(
          st.state,
          [](void* ctx, const void* d, size_t n) {
            static_cast<std::vector<std::string>*>(ctx)->emplace_back(static_cast<const char*>(d),
                                                                      n);
          },
          &cur);
      for (size_t j = i + 1; j < s->chain.size() && !cur.empty(); ++j) {
        auto hook = s->chain[j].inst->mod->egress;
        if (!hook) continue;
        std::vector<std::string> next;
        for (const auto& m : cur)
          hook(
              s->chain[j].state, m.data(), m.size(),
              [](void* ctx, const void* d, size_t n) {
                static_cast<std::vector<std::string>*>(ctx)->emplace_back(
                    static_cast<const char*>(d), n);
              },
              &next);
        cur.swap(next);
      }
      if (fd < 0) continue;
      for (const auto& o : cur) {
        if (s->type == SOCK_STREAM)
          REAL(send)(fd, o.data(), o.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        else
          REAL(sendto)
        (fd, o.data(), o.size(), MSG_DONTWAIT,
         s->last_destlen ? reinterpret_cast<const sockaddr*>(&s->last_dest) : nullptr,
         s->last_destlen);
      }
    }
    publish_counters(s);
    for (auto& st : s->chain)
      if (st.inst->mod->sock_destroy) st.inst->mod->sock_destroy(st.state);
    StatsPublisher::release(s->slot);
  }
  if (s->buffered) g_buffered.fetch_sub(1, std::memory_order_relaxed);
  if (s->deadline.load()) g_deadlines.fetch_sub(1, std::memory_order_relaxed);
  delete s;
}

void unref(Sock* s) {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) finish(s, -1);
}

// Removes fd from the table; runs the modules' close when it was the socket's last descriptor.
void untrack(int fd) {
  if (static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFd)) return;
  Sock* s = g_fds[fd].exchange(nullptr, std::memory_order_acq_rel);
  if (!s) return;
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) finish(s, fd);
}

void share(int oldfd, int newfd) {
  Sock* s = lookup(oldfd);
  if (!s || oldfd == newfd) return;
  s->refs.fetch_add(1, std::memory_order_relaxed);
  install(newfd, s);
}

// A socket whose chain is empty leaves the table: from then on one lookup that finds nothing.
void drop_if_bypass(Sock* s, int fd) {
  if (!s->bypass.load(std::memory_order_acquire) || s->listening) return;
  if (s->refs.load(std::memory_order_acquire) != 1) return;
  Sock* expect = s;
  if (g_fds[fd].compare_exchange_strong(expect, nullptr, std::memory_order_acq_rel)) unref(s);
}

bool nonblocking(int fd, int flags) {
  if (flags & MSG_DONTWAIT) return true;
  int fl = REAL(fcntl)(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

// ---- the chain -------------------------------------------------------------------------------

using Msgs = std::vector<std::string>;

void emit_into(void* ctx, const void* d, size_t n) {
  static_cast<Msgs*>(ctx)->emplace_back(static_cast<const char*>(d), n);
}

// Runs the chain over one message: egress in order, ingress reversed. False when a module failed.
bool run_chain(Sock* s, l45_shim_dir dir, const char* data, size_t len, Msgs* out) {
  std::lock_guard<std::mutex> lock(s->mu);
  Msgs cur;
  cur.emplace_back(data, len);
  size_t n = s->chain.size();
  for (size_t i = 0; i < n; ++i) {
    Stage& st = s->chain[dir == L45_SHIM_EGRESS ? i : n - 1 - i];
    auto hook = dir == L45_SHIM_EGRESS ? st.inst->mod->egress : st.inst->mod->ingress;
    if (!hook) continue;
    Msgs next;
    for (const auto& m : cur)
      if (hook(st.state, m.data(), m.size(), emit_into, &next) != L45_SHIM_OK) return false;
    cur.swap(next);
  }
  *out = std::move(cur);
  publish_counters(s);
  return true;
}

// The earliest deadline of the chain's modules, kept in s->deadline. Caller holds rx_mu.
void refresh_deadline(Sock* s) {
  uint64_t d = 0;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    for (auto& st : s->chain)
      if (st.inst->mod->ingress_deadline) {
        uint64_t x = st.inst->mod->ingress_deadline(st.state);
        if (x && (!d || x < d)) d = x;
      }
  }
  uint64_t old = s->deadline.exchange(d, std::memory_order_acq_rel);
  if (!old && d) g_deadlines.fetch_add(1, std::memory_order_relaxed);
  if (old && !d) g_deadlines.fetch_sub(1, std::memory_order_relaxed);
}

// Runs the modules' ingress_tick; what they release continues up the ingress chain into the
// socket's buffer. Caller holds rx_mu. True when the program has something new to read.
bool run_ticks(Sock* s, uint64_t now) {
  Msgs out;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    size_t n = s->chain.size();
    for (size_t i = n; i-- > 0;) {
      auto tick = s->chain[i].inst->mod->ingress_tick;
      if (!tick) continue;
      Msgs cur;
      tick(s->chain[i].state, now, emit_into, &cur);
      for (size_t j = i; j-- > 0 && !cur.empty();) {
        auto hook = s->chain[j].inst->mod->ingress;
        if (!hook) continue;
        Msgs next;
        for (const auto& m : cur)
          hook(s->chain[j].state, m.data(), m.size(), emit_into, &next);
        cur.swap(next);
      }
      for (auto& m : cur)
        out.push_back(std::move(m));
    }
    publish_counters(s);
  }
  for (auto& m : out) {
    if (s->type == SOCK_STREAM) {
      s->rx += m;
    } else {
      Dgram q;
      q.data = std::move(m);
      q.from = s->last_from;
      q.fromlen = s->last_fromlen;
      s->rxq.push_back(std::move(q));
    }
  }
  update_buffered(s);
  refresh_deadline(s);
  return !out.empty();
}

// Runs the ticks that are due on these descriptors (skipping a socket another thread is
// receiving on: that receive runs them) and returns the earliest deadline still ahead, 0 if none.
uint64_t tick_due(const std::vector<int>& fds) {
  if (g_deadlines.load(std::memory_order_relaxed) == 0) return 0;
  uint64_t now = mono_ns();
  uint64_t next = 0;
  for (int fd : fds) {
    Sock* s = lookup(fd);
    if (!s) continue;
    uint64_t d = s->deadline.load(std::memory_order_acquire);
    if (d && d <= now && s->rx_mu.try_lock()) {
      run_ticks(s, now);
      s->rx_mu.unlock();
      d = s->deadline.load(std::memory_order_acquire);
    }
    if (d && d > now && (!next || d < next)) next = d;
  }
  return next;
}

void observe(Sock* s, l45_shim_dir dir, int64_t result, int err, uint32_t msgs, uint64_t ns,
             uint32_t ev_flags = 0) {
  if (!s->observing && !s->slot) return;
  std::lock_guard<std::mutex> lock(s->mu);
  l45_shim_event ev{dir, result, err, msgs, ns, ev_flags};
  for (auto& st : s->chain)
    if (st.inst->mod->observe) st.inst->mod->observe(st.state, &ev);
  if ((++s->calls & 63) == 0) publish_counters(s);
}

// Times one real sendmmsg/recvmmsg and reports it to the chain's passive modules: the bytes of
// every message moved, as many messages as the call returns.
template <typename F>
int timed_mmsg(Sock* s, l45_shim_dir dir, const mmsghdr* vec, F&& call) {
  uint64_t t0 = mono_ns();
  int r = call();
  int e = errno;
  int64_t bytes = 0;
  for (int i = 0; i < r; ++i)
    bytes += vec[i].msg_len;
  observe(s, dir, r < 0 ? -1 : bytes, r < 0 ? e : 0, r > 0 ? static_cast<uint32_t>(r) : 1,
          mono_ns() - t0);
  errno = e;
  return r;
}

// Times one real call and reports it to the chain's passive modules.
template <typename F>
ssize_t timed(Sock* s, l45_shim_dir dir, uint32_t msgs, F&& call, int call_flags = 0) {
  uint64_t t0 = mono_ns();
  ssize_t r = call();
  int e = errno;
  uint64_t t1 = mono_ns();
  observe(s, dir, r, r < 0 ? e : 0, msgs, t1 - t0, (call_flags & MSG_PEEK) ? L45_SHIM_EV_PEEK : 0);
  errno = e;
  return r;
}

thread_local std::vector<char> t_buf;
char* scratch() {
  if (t_buf.size() < 65536 + 1024) t_buf.resize(65536 + 1024);
  return t_buf.data();
}

// Sends all of `data` on a stream socket, waiting for room even when it is non-blocking (the
// program was told its bytes were taken). Returns false with errno on failure.
bool send_all(int fd, const char* data, size_t len, int flags) {
  flags &= ~MSG_DONTWAIT;
  uint64_t last_progress = mono_ns();
  while (len > 0) {
    ssize_t r = REAL(send)(fd, data, len, flags);
    if (r > 0) {
      data += r;
      len -= static_cast<size_t>(r);
      last_progress = mono_ns();
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (mono_ns() - last_progress > 30ull * 1000000000ull) {
        errno = ETIMEDOUT;
        return false;
      }
      pollfd p{fd, POLLOUT, 0};
      REAL(poll)(&p, 1, 1000);
      continue;
    }
    return false;
  }
  return true;
}

// Egress of a transforming chain on a stream: all or nothing for the program.
ssize_t tx_stream(Sock* s, int fd, const char* buf, size_t len, int flags) {
  if (len == 0) return REAL(send)(fd, buf, len, flags);
  std::lock_guard<std::mutex> lock(s->tx_mu);
  if (nonblocking(fd, flags)) {
    // Take nothing when the kernel has no room, as the real call would.
    pollfd p{fd, POLLOUT, 0};
    int pr = REAL(poll)(&p, 1, 0);
    if (pr == 0) {
      errno = EAGAIN;
      return -1;
    }
  }
  Msgs out;
  if (!run_chain(s, L45_SHIM_EGRESS, buf, len, &out)) {
    errno = EIO;
    return -1;
  }
  uint64_t t0 = mono_ns();
  for (const auto& m : out)
    if (!send_all(fd, m.data(), m.size(), flags)) {
      int e = errno;
      observe(s, L45_SHIM_EGRESS, -1, e, 1, mono_ns() - t0);
      errno = e;
      return -1;
    }
  observe(s, L45_SHIM_EGRESS, static_cast<int64_t>(len), 0, 1, mono_ns() - t0);
  return static_cast<ssize_t>(len);
}

// Ingress of a transforming chain on a stream.
ssize_t rx_stream(Sock* s, int fd, char* buf, size_t len, int flags) {
  if (len == 0) return REAL(recv)(fd, buf, len, flags);
  std::lock_guard<std::mutex> lock(s->rx_mu);
  bool nb = nonblocking(fd, flags);
  size_t copied = 0;
  for (int round = 0;; ++round) {
    size_t avail = s->rx.size() - s->rx_off;
    if (avail > 0) {
      size_t n = std::min(len - copied, avail);
      std::memcpy(buf + copied, s->rx.data() + s->rx_off, n);
      copied += n;
      if (!(flags & MSG_PEEK)) {
        s->rx_off += n;
        if (s->rx_off == s->rx.size()) {
          s->rx.clear();
          s->rx_off = 0;
        }
        update_buffered(s);
      }
      if (copied == len || !(flags & MSG_WAITALL) || (flags & MSG_PEEK))
        return static_cast<ssize_t>(copied);
    }
    if (s->eof) return static_cast<ssize_t>(copied);
    if (copied > 0 && !(flags & MSG_WAITALL)) return static_cast<ssize_t>(copied);
    char* tmp = scratch();
    ssize_t r = REAL(recv)(fd, tmp, 65536, flags & ~(MSG_PEEK | MSG_WAITALL | MSG_TRUNC));
    int e = errno;
    if (r < 0) {
      if (copied > 0) return static_cast<ssize_t>(copied);
      errno = e;
      return -1;
    }
    if (r == 0) {
      s->eof = true;
      continue;
    }
    Msgs out;
    if (!run_chain(s, L45_SHIM_INGRESS, tmp, static_cast<size_t>(r), &out)) {
      errno = EIO;
      return -1;
    }
    if (s->rx_off > 0) {
      s->rx.erase(0, s->rx_off);
      s->rx_off = 0;
    }
    for (const auto& m : out)
      s->rx += m;
    update_buffered(s);
    if (s->rx.empty() && nb) {
      errno = EAGAIN;
      return -1;
    }
  }
}

// Egress of a transforming chain on a datagram socket: each message the chain emits is one
// datagram to the same destination, with the program's ancillary data.
ssize_t tx_dgram(Sock* s, int fd, const msghdr* tmpl, const char* buf, size_t len, int flags) {
  std::lock_guard<std::mutex> lock(s->tx_mu);
  if (tmpl->msg_name && tmpl->msg_namelen <= sizeof s->last_dest) {
    std::memcpy(&s->last_dest, tmpl->msg_name, tmpl->msg_namelen);
    s->last_destlen = tmpl->msg_namelen;
  }
  Msgs out;
  if (!run_chain(s, L45_SHIM_EGRESS, buf, len, &out)) {
    errno = EIO;
    return -1;
  }
  uint64_t t0 = mono_ns();
  for (auto& m : out) {
    msghdr mh = *tmpl;
    iovec iov{m.data(), m.size()};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t r;
    do {
      r = REAL(sendmsg)(fd, &mh, flags);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      int e = errno;
      observe(s, L45_SHIM_EGRESS, -1, e, 1, mono_ns() - t0);
      errno = e;
      return -1;
    }
  }
  observe(s, L45_SHIM_EGRESS, static_cast<int64_t>(len), 0, 1, mono_ns() - t0);
  return static_cast<ssize_t>(len);
}

size_t scatter(const iovec* iov, size_t iovlen, const char* data, size_t len) {
  size_t done = 0;
  for (size_t i = 0; i < iovlen && done < len; ++i) {
    size_t n = std::min(iov[i].iov_len, len - done);
    std::memcpy(iov[i].iov_base, data + done, n);
    done += n;
  }
  return done;
}

std::string gather(const iovec* iov, size_t iovlen) {
  std::string out;
  for (size_t i = 0; i < iovlen; ++i)
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

size_t iov_total(const iovec* iov, size_t iovlen) {
  size_t n = 0;
  for (size_t i = 0; i < iovlen; ++i)
    n += iov[i].iov_len;
  return n;
}

// Ingress of a transforming chain on a datagram socket, into the program's msghdr.
ssize_t rx_dgram(Sock* s, int fd, msghdr* msg, int flags) {
  std::lock_guard<std::mutex> lock(s->rx_mu);
  bool nb = nonblocking(fd, flags);
  for (;;) {
    if (!s->rxq.empty()) {
      Dgram& d = s->rxq.front();
      size_t room = iov_total(msg->msg_iov, msg->msg_iovlen);
      size_t n = scatter(msg->msg_iov, msg->msg_iovlen, d.data.data(), d.data.size());
      if (msg->msg_name) {
        std::memcpy(msg->msg_name, &d.from, std::min<socklen_t>(msg->msg_namelen, d.fromlen));
        msg->msg_namelen = d.fromlen;
      }
      msg->msg_controllen = 0;
      msg->msg_flags = d.data.size() > room ? MSG_TRUNC : 0;
      size_t full = d.data.size();
      if (!(flags & MSG_PEEK)) {
        s->rxq.pop_front();
        update_buffered(s);
      }
      return static_cast<ssize_t>((flags & MSG_TRUNC) ? full : n);
    }
    if (uint64_t dl = s->deadline.load(std::memory_order_acquire)) {
      uint64_t now = mono_ns();
      if (now >= dl) {
        if (run_ticks(s, now)) continue;  // something released: deliver it
      } else if (!nb) {
        // Blocking: wait for a datagram, but no longer than the module's deadline.
        pollfd p{fd, POLLIN, 0};
        int ms = static_cast<int>(std::min<uint64_t>((dl - now + 999999) / 1000000, 60000));
        if (REAL(poll)(&p, 1, ms) == 0) continue;
      }
    }
    char* tmp = scratch();
    iovec iov{tmp, 65536};
    Dgram d;
    msghdr mh{};
    mh.msg_name = &d.from;
    mh.msg_namelen = sizeof d.from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = msg->msg_control;
    mh.msg_controllen = msg->msg_controllen;
    ssize_t r = REAL(recvmsg)(fd, &mh, flags & ~(MSG_PEEK | MSG_TRUNC | MSG_WAITALL));
    int e = errno;
    if (r < 0) {
      errno = e;
      return -1;
    }
    d.fromlen = mh.msg_namelen;
    s->last_from = d.from;
    s->last_fromlen = d.fromlen;
    Msgs out;
    if (!run_chain(s, L45_SHIM_INGRESS, tmp, static_cast<size_t>(r), &out)) {
      errno = EIO;
      return -1;
    }
    refresh_deadline(s);
    size_t controllen = mh.msg_controllen;
    for (auto& m : out) {
      Dgram q;
      q.data = std::move(m);
      q.from = d.from;
      q.fromlen = d.fromlen;
      s->rxq.push_back(std::move(q));
    }
    update_buffered(s);
    if (!s->rxq.empty()) {
      // The first datagram the chain gives keeps the kernel's ancillary data.
      Dgram& f = s->rxq.front();
      size_t room = iov_total(msg->msg_iov, msg->msg_iovlen);
      size_t n = scatter(msg->msg_iov, msg->msg_iovlen, f.data.data(), f.data.size());
      if (msg->msg_name) {
        std::memcpy(msg->msg_name, &f.from, std::min<socklen_t>(msg->msg_namelen, f.fromlen));
        msg->msg_namelen = f.fromlen;
      }
      msg->msg_controllen = controllen;
      msg->msg_flags = (mh.msg_flags & MSG_CTRUNC) | (f.data.size() > room ? MSG_TRUNC : 0);
      size_t full = f.data.size();
      if (!(flags & MSG_PEEK)) {
        s->rxq.pop_front();
        update_buffered(s);
      }
      return static_cast<ssize_t>((flags & MSG_TRUNC) ? full : n);
    }
    if (nb) {
      errno = EAGAIN;
      return -1;
    }
  }
}

// ---- the generic send/recv paths every interposer funnels into -----------------------------

// Decides a socket's chain at its first data call when connect/accept did not.
void decide_on_data(Sock* s, int fd, const sockaddr* dest, socklen_t destlen) {
  if (s->decided.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->side == Side::Unknown) s->side = s->bound ? Side::Server : Side::Client;
    if (dest && s->remote.ss_family == AF_UNSPEC && destlen <= sizeof s->remote)
      std::memcpy(&s->remote, dest, destlen);
  }
  decide(s, fd);
}

// The receiving side of an undecided socket. A datagram socket that was bound and not connected
// (a UDP server) learns its remote from the first datagram's sender, read with MSG_PEEK, so
// `remote` and `ports` match servers too. False (errno set) when that peek fails: the
// program's own call would have failed the same way.
bool decide_on_recv(Sock* s, int fd, int flags) {
  if (s->decided.load(std::memory_order_acquire)) return true;
  if (s->type == SOCK_DGRAM && s->remote.ss_family == AF_UNSPEC) {
    char b;
    sockaddr_storage from{};
    socklen_t fl = sizeof from;
    ssize_t r = REAL(recvfrom)(fd, &b, 1, (flags & MSG_DONTWAIT) | MSG_PEEK,
                               reinterpret_cast<sockaddr*>(&from), &fl);
    if (r < 0) return false;
    std::lock_guard<std::mutex> lock(s->mu);
    if (from.ss_family == AF_INET || from.ss_family == AF_INET6) s->remote = from;
  }
  decide_on_data(s, fd, nullptr, 0);
  return true;
}

ssize_t do_sendmsg(Sock* s, int fd, const msghdr* msg, int flags) {
  decide_on_data(s, fd, static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(sendmsg)(fd, msg, flags);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_EGRESS, 1, [&] { return REAL(sendmsg)(fd, msg, flags); });
  std::string data = gather(msg->msg_iov, msg->msg_iovlen);
  if (s->type == SOCK_STREAM) return tx_stream(s, fd, data.data(), data.size(), flags);
  return tx_dgram(s, fd, msg, data.data(), data.size(), flags);
}

ssize_t do_send(Sock* s, int fd, const void* buf, size_t len, int flags, const sockaddr* dest,
                socklen_t destlen) {
  decide_on_data(s, fd, dest, destlen);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(sendto)(fd, buf, len, flags, dest, destlen);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_EGRESS, 1,
                 [&] { return REAL(sendto)(fd, buf, len, flags, dest, destlen); });
  if (s->type == SOCK_STREAM) return tx_stream(s, fd, static_cast<const char*>(buf), len, flags);
  msghdr mh{};
  mh.msg_name = const_cast<sockaddr*>(dest);
  mh.msg_namelen = dest ? destlen : 0;
  return tx_dgram(s, fd, &mh, static_cast<const char*>(buf), len, flags);
}

ssize_t do_recvmsg(Sock* s, int fd, msghdr* msg, int flags) {
  if (!decide_on_recv(s, fd, flags)) return -1;
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(recvmsg)(fd, msg, flags);
  }
  if (!s->transforming)
    return timed(
        s, L45_SHIM_INGRESS, 1, [&] { return REAL(recvmsg)(fd, msg, flags); }, flags);
  if (s->type == SOCK_DGRAM)
    return timed(
        s, L45_SHIM_INGRESS, 1, [&] { return rx_dgram(s, fd, msg, flags); }, flags);
  size_t want = iov_total(msg->msg_iov, msg->msg_iovlen);
  std::string tmp(want, '\0');
  ssize_t r = timed(
      s, L45_SHIM_INGRESS, 1, [&] { return rx_stream(s, fd, tmp.data(), want, flags); }, flags);
  if (r > 0) scatter(msg->msg_iov, msg->msg_iovlen, tmp.data(), static_cast<size_t>(r));
  if (r >= 0) {
    msg->msg_controllen = 0;
    msg->msg_flags = 0;
  }
  return r;
}

ssize_t do_recv(Sock* s, int fd, void* buf, size_t len, int flags, sockaddr* from,
                socklen_t* fromlen) {
  if (!decide_on_recv(s, fd, flags)) return -1;
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
  }
  if (!s->transforming)
    return timed(
        s, L45_SHIM_INGRESS, 1, [&] { return REAL(recvfrom)(fd, buf, len, flags, from, fromlen); },
        flags);
  if (s->type == SOCK_STREAM) {
    ssize_t r = timed(
        s, L45_SHIM_INGRESS, 1,
        [&] { return rx_stream(s, fd, static_cast<char*>(buf), len, flags); }, flags);
    if (r >= 0 && from && fromlen) {
      // recvfrom on a connected stream reports the peer as the kernel would.
      getpeername(fd, from, fromlen);
    }
    return r;
  }
  iovec iov{buf, len};
  msghdr mh{};
  mh.msg_name = from;
  mh.msg_namelen = from && fromlen ? *fromlen : 0;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t r = timed(
      s, L45_SHIM_INGRESS, 1, [&] { return rx_dgram(s, fd, &mh, flags); }, flags);
  if (r >= 0 && from && fromlen) *fromlen = mh.msg_namelen;
  return r;
}

// Whether a tracked socket holds ingress data the kernel does not know about.
bool has_buffered(int fd) {
  Sock* s = lookup(fd);
  return s && s->buffered.load(std::memory_order_acquire);
}

// At exit the sockets still open are published as closed, with their modules' last counters.
__attribute__((destructor)) void at_exit() {
  for (int fd = 0; fd < kMaxFd; ++fd) {
    Sock* s = g_fds[fd].load(std::memory_order_acquire);
    if (!s || !s->slot) continue;
    if (s->mu.try_lock()) {
      publish_counters(s);
      s->mu.unlock();
    }
    StatsPublisher::release(s->slot);
  }
}

// ---- epoll: which tracked sockets an epoll instance watches, for buffered readiness --------
struct EpollReg {
  int epfd;
  int fd;
  uint32_t events;
  epoll_data_t data;
};
std::mutex g_ep_mu;
std::vector<EpollReg>* g_ep = nullptr;

void forget_epoll(int fd) {
  std::lock_guard<std::mutex> lock(g_ep_mu);
  if (!g_ep) return;
  g_ep->erase(std::remove_if(g_ep->begin(), g_ep->end(),
                             [&](const EpollReg& e) { return e.fd == fd || e.epfd == fd; }),
              g_ep->end());
}

}  // namespace
}  // namespace l45::shim

using namespace l45::shim;

// ---- interposed functions ---------------------------------------------------------------------

L45_EXPORT int socket(int domain, int type, int protocol) {
  int fd = REAL(socket)(domain, type, protocol);
  if (fd < 0) return fd;
  int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if ((domain == AF_INET || domain == AF_INET6) && (base == SOCK_STREAM || base == SOCK_DGRAM) &&
      (protocol == 0 || protocol == IPPROTO_TCP || protocol == IPPROTO_UDP)) {
    int saved = errno;
    if (active()) track_new(fd, domain, base);
    errno = saved;
  }
  return fd;
}

L45_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  int r = REAL(connect)(fd, addr, len);
  Sock* s = lookup(fd);
  if (!s || !addr || addr->sa_family == AF_UNSPEC) return r;
  if (r == 0 || errno == EINPROGRESS) {
    int saved = errno;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (len <= sizeof s->remote) std::memcpy(&s->remote, addr, len);
      if (s->side == Side::Unknown) s->side = Side::Client;
    }
    decide(s, fd);
    drop_if_bypass(s, fd);
    errno = saved;
  }
  return r;
}

L45_EXPORT int bind(int fd, const sockaddr* addr, socklen_t len) {
  int r = REAL(bind)(fd, addr, len);
  if (r == 0) {
    if (Sock* s = lookup(fd)) {
      std::lock_guard<std::mutex> lock(s->mu);
      // A port of its own makes a datagram socket a server (it receives first).
      s->bound = port_of(*reinterpret_cast<const sockaddr_storage*>(addr)) != 0 ||
                 len < sizeof(sockaddr_in);
    }
  }
  return r;
}

L45_EXPORT int listen(int fd, int backlog) {
  int r = REAL(listen)(fd, backlog);
  if (r == 0) {
    if (Sock* s = lookup(fd)) {
      std::lock_guard<std::mutex> lock(s->mu);
      s->listening = true;
      s->side = Side::Server;
    }
  }
  return r;
}

namespace {
void after_accept(int lfd, int fd) {
  if (fd < 0) return;
  int saved = errno;
  if (!active()) {
    errno = saved;
    return;
  }
  Sock* ls = lookup(lfd);
  int family = 0, type = 0;
  if (ls) {
    family = ls->family;
    type = ls->type;
  } else {
    // A listener the shim did not see created (inherited): ask the kernel.
    sockaddr_storage a{};
    socklen_t al = sizeof a;
    socklen_t tl = sizeof type;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &al) == 0) family = a.ss_family;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) type = 0;
  }
  if ((family == AF_INET || family == AF_INET6) && type == SOCK_STREAM) {
    auto* s = new Sock;
    s->family = family;
    s->type = type;
    s->side = Side::Server;
    socklen_t rl = sizeof s->remote;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&s->remote), &rl) != 0) s->remote = {};
    install(fd, s);
    decide(s, fd);
    drop_if_bypass(s, fd);
  }
  errno = saved;
}
}  // namespace

L45_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
  int r = REAL(accept)(fd, addr, len);
  after_accept(fd, r);
  return r;
}

L45_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  int r = REAL(accept4)(fd, addr, len, flags);
  after_accept(fd, r);
  return r;
}

L45_EXPORT ssize_t send(int fd, const void* buf, size_t len, int flags) {
  Sock* s = lookup(fd);
  if (!s) return REAL(send)(fd, buf, len, flags);
  return do_send(s, fd, buf, len, flags, nullptr, 0);
}

L45_EXPORT ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* dest,
                          socklen_t destlen) {
  Sock* s = lookup(fd);
  if (!s) return REAL(sendto)(fd, buf, len, flags, dest, destlen);
  return do_send(s, fd, buf, len, flags, dest, destlen);
}

L45_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  Sock* s = lookup(fd);
  if (!s) return REAL(sendmsg)(fd, msg, flags);
  return do_sendmsg(s, fd, msg, flags);
}

L45_EXPORT int sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
  Sock* s = lookup(fd);
  if (!s) return REAL(sendmmsg)(fd, vec, vlen, flags);
  decide_on_data(s, fd, vlen ? static_cast<const sockaddr*>(vec[0].msg_hdr.msg_name) : nullptr,
                 vlen ? vec[0].msg_hdr.msg_namelen : 0);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(sendmmsg)(fd, vec, vlen, flags);
  }
  if (!s->transforming)
    return timed_mmsg(s, L45_SHIM_EGRESS, vec,
                      [&] { return REAL(sendmmsg)(fd, vec, vlen, flags); });
  unsigned i = 0;
  for (; i < vlen; ++i) {
    ssize_t r = do_sendmsg(s, fd, &vec[i].msg_hdr, flags);
    if (r < 0) {
      if (i > 0) break;
      return -1;
    }
    vec[i].msg_len = static_cast<unsigned>(r);
  }
  return static_cast<int>(i);
}

L45_EXPORT ssize_t recv(int fd, void* buf, size_t len, int flags) {
  Sock* s = lookup(fd);
  if (!s) return REAL(recv)(fd, buf, len, flags);
  return do_recv(s, fd, buf, len, flags, nullptr, nullptr);
}

L45_EXPORT ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                            socklen_t* fromlen) {
  Sock* s = lookup(fd);
  if (!s) return REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
  return do_recv(s, fd, buf, len, flags, from, fromlen);
}

L45_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  Sock* s = lookup(fd);
  if (!s) return REAL(recvmsg)(fd, msg, flags);
  return do_recvmsg(s, fd, msg, flags);
}

L45_EXPORT int recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout) {
  Sock* s = lookup(fd);
  if (!s) return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
  if (!decide_on_recv(s, fd, flags)) return -1;
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
  }
  if (!s->transforming)
    return timed_mmsg(s, L45_SHIM_INGRESS, vec,
                      [&] { return REAL(recvmmsg)(fd, vec, vlen, flags, timeout); });
  // Through the chain one message at a time; after the first, never wait (MSG_WAITFORONE).
  unsigned i = 0;
  for (; i < vlen; ++i) {
    int f = flags & ~MSG_WAITFORONE;
    if (i > 0 && ((flags & MSG_WAITFORONE) || !has_buffered(fd))) f |= MSG_DONTWAIT;
    ssize_t r = do_recvmsg(s, fd, &vec[i].msg_hdr, f);
    if (r < 0) {
      if (i > 0) break;
      return -1;
    }
    vec[i].msg_len = static_cast<unsigned>(r);
  }
  return static_cast<int>(i);
}

L45_EXPORT ssize_t read(int fd, void* buf, size_t len) {
  Sock* s = lookup(fd);
  if (!s) return REAL(read)(fd, buf, len);
  if (!decide_on_recv(s, fd, 0)) return -1;
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(read)(fd, buf, len);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_INGRESS, 1, [&] { return REAL(read)(fd, buf, len); });
  return do_recv(s, fd, buf, len, 0, nullptr, nullptr);
}

L45_EXPORT ssize_t __read_chk(int fd, void* buf, size_t len, size_t buflen) {
  if (len > buflen) {  // what glibc's own check does, without ending the program here
    auto chk = REAL_T(__read_chk, ssize_t(*)(int, void*, size_t, size_t));
    return chk(fd, buf, len, buflen);
  }
  return read(fd, buf, len);
}

L45_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
  if (len > buflen) {
    auto chk = REAL_T(__recv_chk, ssize_t(*)(int, void*, size_t, size_t, int));
    return chk(fd, buf, len, buflen, flags);
  }
  return recv(fd, buf, len, flags);
}

L45_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                                  sockaddr* from, socklen_t* fromlen) {
  if (len > buflen) {
    auto chk =
        REAL_T(__recvfrom_chk, ssize_t(*)(int, void*, size_t, size_t, int, sockaddr*, socklen_t*));
    return chk(fd, buf, len, buflen, flags, from, fromlen);
  }
  return recvfrom(fd, buf, len, flags, from, fromlen);
}

L45_EXPORT ssize_t write(int fd, const void* buf, size_t len) {
  Sock* s = lookup(fd);
  if (!s) return REAL(write)(fd, buf, len);
  decide_on_data(s, fd, nullptr, 0);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(write)(fd, buf, len);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_EGRESS, 1, [&] { return REAL(write)(fd, buf, len); });
  return do_send(s, fd, buf, len, 0, nullptr, 0);
}

L45_EXPORT ssize_t readv(int fd, const iovec* iov, int iovcnt) {
  Sock* s = lookup(fd);
  if (!s) return REAL(readv)(fd, iov, iovcnt);
  if (!decide_on_recv(s, fd, 0)) return -1;
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(readv)(fd, iov, iovcnt);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_INGRESS, 1, [&] { return REAL(readv)(fd, iov, iovcnt); });
  msghdr mh{};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = iovcnt > 0 ? static_cast<size_t>(iovcnt) : 0;
  return do_recvmsg(s, fd, &mh, 0);
}

L45_EXPORT ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  Sock* s = lookup(fd);
  if (!s) return REAL(writev)(fd, iov, iovcnt);
  decide_on_data(s, fd, nullptr, 0);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, fd);
    return REAL(writev)(fd, iov, iovcnt);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_EGRESS, 1, [&] { return REAL(writev)(fd, iov, iovcnt); });
  msghdr mh{};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = iovcnt > 0 ? static_cast<size_t>(iovcnt) : 0;
  return do_sendmsg(s, fd, &mh, 0);
}

namespace {
// sendfile to a transforming socket: the file's bytes go through the chain.
ssize_t sendfile_through(Sock* s, int out_fd, int in_fd, off_t* offset, size_t count) {
  size_t n = std::min<size_t>(count, 65536);
  std::string buf(n, '\0');
  ssize_t got = offset ? pread(in_fd, buf.data(), n, *offset) : REAL(read)(in_fd, buf.data(), n);
  if (got <= 0) return got;
  ssize_t r = do_send(s, out_fd, buf.data(), static_cast<size_t>(got), 0, nullptr, 0);
  if (r > 0 && offset) *offset += r;
  return r;
}

// sendfile and sendfile64 differ only in the offset's type and the call they pass through to.
template <typename Off, typename Real>
ssize_t sendfile_any(int out_fd, int in_fd, Off* offset, size_t count, Real real) {
  Sock* s = lookup(out_fd);
  if (!s) return real(out_fd, in_fd, offset, count);
  decide_on_data(s, out_fd, nullptr, 0);
  if (s->bypass.load(std::memory_order_acquire)) {
    drop_if_bypass(s, out_fd);
    return real(out_fd, in_fd, offset, count);
  }
  if (!s->transforming)
    return timed(s, L45_SHIM_EGRESS, 1, [&] { return real(out_fd, in_fd, offset, count); });
  off_t off = offset ? static_cast<off_t>(*offset) : 0;
  ssize_t r = sendfile_through(s, out_fd, in_fd, offset ? &off : nullptr, count);
  if (offset) *offset = static_cast<Off>(off);
  return r;
}
}  // namespace

L45_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  return sendfile_any(out_fd, in_fd, offset, count, [](int o, int i, off_t* off, size_t n) {
    return REAL(sendfile)(o, i, off, n);
  });
}

L45_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
  return sendfile_any(out_fd, in_fd, offset, count, [](int o, int i, off64_t* off, size_t n) {
    return REAL(sendfile64)(o, i, off, n);
  });
}

L45_EXPORT int close(int fd) {
  if (lookup(fd)) {
    int saved = errno;
    untrack(fd);
    forget_epoll(fd);
    errno = saved;
  }
  return REAL(close)(fd);
}

// Descriptors closed without close(): fclose (glibc closes inside, not through close),
// close_range and closefrom. The shim forgets them first, so a later file that reuses the
// number is never taken for the old socket.
L45_EXPORT int fclose(FILE* f) {
  int fd = f ? fileno(f) : -1;
  if (fd >= 0 && lookup(fd)) {
    int saved = errno;
    untrack(fd);
    forget_epoll(fd);
    errno = saved;
  }
  return REAL(fclose)(f);
}

namespace {
void forget_range(unsigned first, unsigned last) {
  int saved = errno;
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kMaxFd); ++fd)
    if (lookup(static_cast<int>(fd))) {
      untrack(static_cast<int>(fd));
      forget_epoll(static_cast<int>(fd));
    }
  errno = saved;
}
}  // namespace

L45_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  if (!(flags & CLOSE_RANGE_CLOEXEC)) forget_range(first, last);
  return REAL_T(close_range, int (*)(unsigned, unsigned, int))(first, last, flags);
}

L45_EXPORT void closefrom(int lowfd) {
  if (lowfd >= 0) forget_range(static_cast<unsigned>(lowfd), ~0u);
  REAL_T(closefrom, void (*)(int))(lowfd);
}

L45_EXPORT int dup(int fd) {
  int r = REAL(dup)(fd);
  if (r >= 0 && lookup(fd)) share(fd, r);
  return r;
}

namespace {
// dup2/dup3 onto a tracked descriptor: it now names another file, so its socket is released
// without sending anything on it.
void release_replaced(int fd2) {
  if (static_cast<unsigned>(fd2) >= static_cast<unsigned>(kMaxFd)) return;
  if (Sock* s = g_fds[fd2].exchange(nullptr, std::memory_order_acq_rel)) unref(s);
}
}  // namespace

L45_EXPORT int dup2(int fd, int fd2) {
  int r = REAL(dup2)(fd, fd2);
  if (r >= 0 && fd != fd2) {
    int saved = errno;
    release_replaced(fd2);
    if (lookup(fd)) share(fd, r);
    errno = saved;
  }
  return r;
}

L45_EXPORT int dup3(int fd, int fd2, int flags) {
  int r = REAL(dup3)(fd, fd2, flags);
  if (r >= 0) {
    int saved = errno;
    release_replaced(fd2);
    if (lookup(fd)) share(fd, r);
    errno = saved;
  }
  return r;
}

namespace {
int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap) {
  // Every fcntl argument is an int, a long or a pointer: passed on as the widest of them.
  void* arg = va_arg(ap, void*);
  int r = real(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && lookup(fd)) share(fd, r);
  return r;
}
}  // namespace

L45_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_common(REAL(fcntl), fd, cmd, ap);
  va_end(ap);
  return r;
}

L45_EXPORT int fcntl64(int fd, int cmd, ...) {
  static std::atomic<void*> slot{nullptr};
  auto real = resolve<int (*)(int, int, ...)>(slot, "fcntl64");
  if (!real) real = REAL(fcntl);
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_common(real, fd, cmd, ap);
  va_end(ap);
  return r;
}

L45_EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  int r = REAL(ioctl)(fd, req, arg);
  // FIONREAD on a socket holding chain output: what the program can read now is that.
  if (r == 0 && req == FIONREAD && arg) {
    Sock* s = lookup(fd);
    if (s && s->buffered.load(std::memory_order_acquire) && s->rx_mu.try_lock()) {
      std::lock_guard<std::mutex> lock(s->rx_mu, std::adopt_lock);
      if (s->rx.size() > s->rx_off)
        *static_cast<int*>(arg) = static_cast<int>(s->rx.size() - s->rx_off);
      else if (!s->rxq.empty())
        *static_cast<int*>(arg) = static_cast<int>(s->rxq.front().data.size());
    }
  }
  return r;
}

// Some libraries call the socket system calls through syscall() (libuv: sendmmsg, recvmmsg):
// those on a shimmed socket are routed to the functions above. Like glibc's syscall(), this
// reads six arguments whatever the call takes.
L45_EXPORT long syscall(long n, ...) {
  va_list ap;
  va_start(ap, n);
  long a[6];
  for (long& x : a)
    x = va_arg(ap, long);
  va_end(ap);
  auto real = REAL_T(syscall, long (*)(long, ...));
  int fd = static_cast<int>(a[0]);
  if ((n == SYS_sendmmsg || n == SYS_recvmmsg || n == SYS_sendmsg || n == SYS_recvmsg ||
       n == SYS_sendto || n == SYS_recvfrom) &&
      lookup(fd)) {
    switch (n) {
      case SYS_sendmmsg:
        return sendmmsg(fd, reinterpret_cast<mmsghdr*>(a[1]), static_cast<unsigned>(a[2]),
                        static_cast<int>(a[3]));
      case SYS_recvmmsg:
        return recvmmsg(fd, reinterpret_cast<mmsghdr*>(a[1]), static_cast<unsigned>(a[2]),
                        static_cast<int>(a[3]), reinterpret_cast<timespec*>(a[4]));
      case SYS_sendmsg:
        return sendmsg(fd, reinterpret_cast<const msghdr*>(a[1]), static_cast<int>(a[2]));
      case SYS_recvmsg:
        return recvmsg(fd, reinterpret_cast<msghdr*>(a[1]), static_cast<int>(a[2]));
      case SYS_sendto:
        return sendto(fd, reinterpret_cast<const void*>(a[1]), static_cast<size_t>(a[2]),
                      static_cast<int>(a[3]), reinterpret_cast<const sockaddr*>(a[4]),
                      static_cast<socklen_t>(a[5]));
      default:
        return recvfrom(fd, reinterpret_cast<void*>(a[1]), static_cast<size_t>(a[2]),
                        static_cast<int>(a[3]), reinterpret_cast<sockaddr*>(a[4]),
                        reinterpret_cast<socklen_t*>(a[5]));
    }
  }
  return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

// ---- readiness: a socket holding chain output is readable even when the kernel is empty ----

namespace {
int64_t elapsed_ms(uint64_t start) {
  return static_cast<int64_t>((mono_ns() - start) / 1000000);
}

// How long the next real wait may last: the program's timeout (negative: none) less what has
// passed, and no later than a module's deadline.
int wait_ms(int timeout, uint64_t start, uint64_t deadline) {
  int64_t w = timeout < 0 ? -1 : std::max<int64_t>(0, timeout - elapsed_ms(start));
  if (deadline) {
    uint64_t now = mono_ns();
    int64_t until = deadline > now ? static_cast<int64_t>((deadline - now + 999999) / 1000000) : 0;
    w = w < 0 ? until : std::min(w, until);
  }
  return static_cast<int>(std::min<int64_t>(w, INT32_MAX));
}
}  // namespace

L45_EXPORT int poll(pollfd* fds, nfds_t n, int timeout) {
  if (g_buffered.load(std::memory_order_relaxed) == 0 &&
      g_deadlines.load(std::memory_order_relaxed) == 0)
    return REAL(poll)(fds, n, timeout);
  uint64_t start = mono_ns();
  std::vector<int> wanted;
  for (nfds_t i = 0; i < n; ++i)
    if (fds[i].events & (POLLIN | POLLRDNORM)) wanted.push_back(fds[i].fd);
  for (;;) {
    uint64_t next = tick_due(wanted);
    int ready = 0;
    std::vector<bool> mine(n, false);
    for (nfds_t i = 0; i < n; ++i)
      if ((fds[i].events & (POLLIN | POLLRDNORM)) && has_buffered(fds[i].fd)) {
        mine[i] = true;
        ++ready;
      }
    if (ready > 0) {
      int r = REAL(poll)(fds, n, 0);
      if (r < 0) return r;
      int total = 0;
      for (nfds_t i = 0; i < n; ++i) {
        if (mine[i]) fds[i].revents |= static_cast<short>(fds[i].events & (POLLIN | POLLRDNORM));
        if (fds[i].revents) ++total;
      }
      return total;
    }
    int r = REAL(poll)(fds, n, wait_ms(timeout, start, next));
    if (r != 0 || !next) return r;
    if (timeout >= 0 && elapsed_ms(start) >= timeout) return 0;
  }
}

L45_EXPORT int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) {
    auto chk = REAL_T(__poll_chk, int (*)(pollfd*, nfds_t, int, size_t));
    return chk(fds, n, timeout, fdslen);
  }
  return poll(fds, n, timeout);
}

L45_EXPORT int ppoll(pollfd* fds, nfds_t n, const timespec* tmo, const sigset_t* mask) {
  if (g_buffered.load(std::memory_order_relaxed) == 0 &&
      g_deadlines.load(std::memory_order_relaxed) == 0)
    return REAL(ppoll)(fds, n, tmo, mask);
  bool mine = false;
  for (nfds_t i = 0; i < n && !mine; ++i) {
    Sock* s = lookup(fds[i].fd);
    mine = s && (s->buffered.load() || s->deadline.load());
  }
  if (!mine) return REAL(ppoll)(fds, n, tmo, mask);
  // Through poll(), which knows about the shim's data (the signal mask is not applied then).
  int ms = tmo ? static_cast<int>(
                     std::min<int64_t>(tmo->tv_sec * 1000 + tmo->tv_nsec / 1000000, INT32_MAX))
               : -1;
  return poll(fds, n, ms);
}

L45_EXPORT int select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, timeval* tmo) {
  if ((g_buffered.load(std::memory_order_relaxed) == 0 &&
       g_deadlines.load(std::memory_order_relaxed) == 0) ||
      !rd)
    return REAL(select)(nfds, rd, wr, ex, tmo);
  std::vector<int> wanted;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd)
    if (FD_ISSET(fd, rd) && lookup(fd)) wanted.push_back(fd);
  if (wanted.empty()) return REAL(select)(nfds, rd, wr, ex, tmo);
  int timeout = tmo ? static_cast<int>(std::min<int64_t>(
                          tmo->tv_sec * 1000 + (tmo->tv_usec + 999) / 1000, INT32_MAX))
                    : -1;
  uint64_t start = mono_ns();
  fd_set rd0 = *rd, wr0, ex0;
  if (wr) wr0 = *wr;
  if (ex) ex0 = *ex;
  for (;;) {
    *rd = rd0;
    if (wr) *wr = wr0;
    if (ex) *ex = ex0;
    uint64_t next = tick_due(wanted);
    std::vector<int> mine;
    for (int fd : wanted)
      if (has_buffered(fd)) mine.push_back(fd);
    if (!mine.empty()) {
      timeval zero{0, 0};
      int r = REAL(select)(nfds, rd, wr, ex, &zero);
      if (r < 0) return r;
      for (int fd : mine)
        if (!FD_ISSET(fd, rd)) {
          FD_SET(fd, rd);
          ++r;
        }
      return r;
    }
    int w = wait_ms(timeout, start, next);
    timeval tv{w / 1000, (w % 1000) * 1000};
    int r = REAL(select)(nfds, rd, wr, ex, w < 0 ? nullptr : &tv);
    if (r != 0 || !next) return r;
    if (timeout >= 0 && elapsed_ms(start) >= timeout) return 0;
  }
}

L45_EXPORT int pselect(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, const timespec* tmo,
                       const sigset_t* mask) {
  if ((g_buffered.load(std::memory_order_relaxed) == 0 &&
       g_deadlines.load(std::memory_order_relaxed) == 0) ||
      !rd)
    return REAL(pselect)(nfds, rd, wr, ex, tmo, mask);
  bool mine = false;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE && !mine; ++fd)
    mine = FD_ISSET(fd, rd) && lookup(fd);
  if (!mine) return REAL(pselect)(nfds, rd, wr, ex, tmo, mask);
  timeval tv{};
  if (tmo) {
    tv.tv_sec = tmo->tv_sec;
    tv.tv_usec = tmo->tv_nsec / 1000;
  }
  return select(nfds, rd, wr, ex, tmo ? &tv : nullptr);
}

L45_EXPORT int epoll_ctl(int epfd, int op, int fd, epoll_event* ev) {
  int r = REAL(epoll_ctl)(epfd, op, fd, ev);
  if (r != 0 || !lookup(fd)) return r;
  std::lock_guard<std::mutex> lock(g_ep_mu);
  if (!g_ep) g_ep = new std::vector<EpollReg>;
  auto it = std::find_if(g_ep->begin(), g_ep->end(),
                         [&](const EpollReg& e) { return e.epfd == epfd && e.fd == fd; });
  if (op == EPOLL_CTL_DEL) {
    if (it != g_ep->end()) g_ep->erase(it);
  } else if (ev) {
    if (it == g_ep->end())
      g_ep->push_back({epfd, fd, ev->events, ev->data});
    else
      *it = {epfd, fd, ev->events, ev->data};
  }
  return r;
}

namespace {
int epoll_merge(int epfd, epoll_event* events, int maxevents, int r) {
  if (r < 0) return r;
  std::lock_guard<std::mutex> lock(g_ep_mu);
  if (!g_ep) return r;
  for (const auto& e : *g_ep) {
    if (e.epfd != epfd || !(e.events & EPOLLIN) || !has_buffered(e.fd)) continue;
    bool merged = false;
    for (int i = 0; i < r && !merged; ++i)
      if (events[i].data.u64 == e.data.u64) {
        events[i].events |= EPOLLIN;
        merged = true;
      }
    if (!merged && r < maxevents) events[r++] = {EPOLLIN, e.data};
  }
  return r;
}

bool epoll_has_buffered(int epfd) {
  std::lock_guard<std::mutex> lock(g_ep_mu);
  if (!g_ep) return false;
  for (const auto& e : *g_ep)
    if (e.epfd == epfd && (e.events & EPOLLIN) && has_buffered(e.fd)) return true;
  return false;
}

std::vector<int> epoll_fds(int epfd) {
  std::vector<int> out;
  std::lock_guard<std::mutex> lock(g_ep_mu);
  if (g_ep)
    for (const auto& e : *g_ep)
      if (e.epfd == epfd && (e.events & EPOLLIN)) out.push_back(e.fd);
  return out;
}

template <typename Wait>
int epoll_with_shim(int epfd, epoll_event* events, int maxevents, int timeout, Wait wait) {
  uint64_t start = mono_ns();
  std::vector<int> wanted = epoll_fds(epfd);
  for (;;) {
    uint64_t next = tick_due(wanted);
    if (epoll_has_buffered(epfd)) return epoll_merge(epfd, events, maxevents, wait(0));
    int r = wait(wait_ms(timeout, start, next));
    if (r != 0 || !next) return r;
    if (timeout >= 0 && elapsed_ms(start) >= timeout) return 0;
  }
}
}  // namespace

L45_EXPORT int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
  if (g_buffered.load(std::memory_order_relaxed) == 0 &&
      g_deadlines.load(std::memory_order_relaxed) == 0)
    return REAL(epoll_wait)(epfd, events, maxevents, timeout);
  return epoll_with_shim(epfd, events, maxevents, timeout,
                         [&](int ms) { return REAL(epoll_wait)(epfd, events, maxevents, ms); });
}

L45_EXPORT int epoll_pwait(int epfd, epoll_event* events, int maxevents, int timeout,
                           const sigset_t* mask) {
  if (g_buffered.load(std::memory_order_relaxed) == 0 &&
      g_deadlines.load(std::memory_order_relaxed) == 0)
    return REAL(epoll_pwait)(epfd, events, maxevents, timeout, mask);
  return epoll_with_shim(epfd, events, maxevents, timeout, [&](int ms) {
    return REAL(epoll_pwait)(epfd, events, maxevents, ms, mask);
  });
}
