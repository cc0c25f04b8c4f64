// The shim's per-process stats files: claim/release of slots in a shared mapping (writer) and
// a validating reader for `l45 shim stats`.
#include "l45/shim/stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace l45::shim {

std::string stats_rundir() {
  const char* e = std::getenv("L45_SHIM_RUNDIR");
  return e && *e ? e : "/run/l45/shim";
}

unsigned latency_bucket(uint64_t ns) {
  uint64_t us = ns / 1000;
  unsigned b = 0;
  while (us > 0 && b + 1 < L45_SHIM_STATS_BUCKETS) {
    us >>= 1;
    ++b;
  }
  return b;
}

namespace {

constexpr size_t kFileSize =
    sizeof(l45_shim_stats_header) + L45_SHIM_STATS_SLOTS * sizeof(l45_shim_stats_slot);

struct Mapping {
  std::mutex mu;
  pid_t pid = 0;  // whose file `base` is
  void* base = nullptr;
  bool failed = false;
  std::string rundir;  // empty: stats_rundir() at the first claim
  // The open slots as they were just before a fork (the rest marked free); allocated when the
  // fork handlers are installed.
  l45_shim_stats_slot* snapshot = nullptr;
  bool snapshot_open = false;  // the snapshot holds at least one open slot
};
Mapping& mapping() {
  static Mapping* m = new Mapping;  // never destroyed: sockets may close during exit
  return *m;
}

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool mkdirs(const std::string& dir) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

l45_shim_stats_slot* slots_of(void* base) {
  return reinterpret_cast<l45_shim_stats_slot*>(static_cast<char*>(base) +
                                                sizeof(l45_shim_stats_header));
}

// A forked child's open slots are the sockets it inherited: they keep their place, chain and
// endpoints, and count from zero (what the parent moved stays in the parent's file). `parent`
// is the snapshot taken before the fork (after it, the parent may already have closed them);
// its closed slots are the parent's history and are left out.
void inherit_open_slots(void* base, const l45_shim_stats_slot* parent) {
  l45_shim_stats_slot* to = slots_of(base);
  uint64_t now = realtime_ns();
  for (unsigned i = 0; i < L45_SHIM_STATS_SLOTS; ++i) {
    if (parent[i].state != L45_SLOT_OPEN) continue;
    l45_shim_stats_slot s = parent[i];
    for (uint64_t* v : {&s.bytes_out, &s.bytes_in, &s.msgs_out, &s.msgs_in, &s.calls_out,
                        &s.calls_in, &s.errors_out, &s.errors_in})
      *v = 0;
    std::memset(s.lat_out, 0, sizeof s.lat_out);
    std::memset(s.lat_in, 0, sizeof s.lat_in);
    s.opened_ns = now;
    s.closed_ns = 0;
    std::memcpy(&to[i], &s, sizeof s);
  }
}

// Creates this process's file, mapped shared. `inherit` (a forked child's view of its parent's
// slots) is copied in before the file appears under its name.
void* create_file(const std::string& dir, std::string* error,
                  const l45_shim_stats_slot* inherit = nullptr) {
  if (!mkdirs(dir)) {
    if (error) *error = "stats off: cannot create " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  std::string path = dir + "/" + std::to_string(getpid()) + ".stats";
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    if (error) *error = "stats off: " + tmp + ": " + std::strerror(errno);
    return nullptr;
  }
  if (::ftruncate(fd, static_cast<off_t>(kFileSize)) != 0) {
    if (error) *error = "stats off: " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return nullptr;
  }
  void* base = ::mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    if (error) *error = "stats off: mmap " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return nullptr;
  }
  auto* h = static_cast<l45_shim_stats_header*>(base);
  std::memcpy(h->magic, L45_SHIM_STATS_MAGIC, 8);
  h->version = L45_SHIM_STATS_VERSION;
  h->header_size = sizeof(l45_shim_stats_header);
  h->slot_size = sizeof(l45_shim_stats_slot);
  h->nslots = L45_SHIM_STATS_SLOTS;
  h->pid = getpid();
  h->uid = getuid();
  h->start_ns = realtime_ns();
  char exe[PATH_MAX] = {};
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    std::snprintf(h->path, sizeof h->path, "%s", exe);
    const char* slash = std::strrchr(exe, '/');
    std::snprintf(h->program, sizeof h->program, "%s", slash ? slash + 1 : exe);
  }
  if (inherit) inherit_open_slots(base, inherit);
  // Readers only ever see a complete header: the file appears under its name once written.
  ::rename(tmp.c_str(), path.c_str());
  return base;
}

// fork(): the child must not count into its parent's file. The sockets it inherited hold
// pointers to their slots (the shim's socket table, the monitor module's state), so the child
// gets a file of its own mapped at the very address of the parent's: every pointer stays valid
// and now counts in the child's file. A child that inherited no open slot gets private memory
// there instead; its first claim makes its file. pthread_atfork holds the mapping's lock across the
// fork so the child never sees it half-changed.
void atfork_prepare() {
  Mapping& m = mapping();
  m.mu.lock();
  m.snapshot_open = false;
  if (!m.base || !m.snapshot || m.pid != getpid()) return;
  const l45_shim_stats_slot* slots = slots_of(m.base);
  for (unsigned i = 0; i < L45_SHIM_STATS_SLOTS; ++i) {
    if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) == L45_SLOT_OPEN) {
      std::memcpy(&m.snapshot[i], &slots[i], sizeof slots[i]);
      m.snapshot[i].state = L45_SLOT_OPEN;
      m.snapshot_open = true;
    } else {
      m.snapshot[i].state = L45_SLOT_FREE;
    }
  }
}
void atfork_parent() {
  mapping().mu.unlock();
}
void atfork_child() {
  Mapping& m = mapping();
  if (m.base && m.pid != getpid()) {
    void* own = m.snapshot_open ? create_file(m.rundir, nullptr, m.snapshot) : nullptr;
    if (own &&
        ::mremap(own, kFileSize, kFileSize, MREMAP_MAYMOVE | MREMAP_FIXED, m.base) != MAP_FAILED) {
      m.pid = getpid();
    } else {
      // No open slot to carry, or no file of its own: the parent's file is replaced by private
      // memory (any pointer into it stays valid and never counts in the parent's file). With
      // nothing inherited the first claim makes the child's file; otherwise new sockets go
      // unpublished.
      if (own) ::munmap(own, kFileSize);
      ::mmap(m.base, kFileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0);
      if (m.snapshot_open) {
        m.pid = getpid();
        m.failed = true;
      } else {
        m.base = nullptr;
        m.pid = 0;
      }
    }
  }
  m.mu.unlock();
}

}  // namespace

l45_shim_stats_slot* StatsPublisher::claim(std::string* error) {
  Mapping& m = mapping();
  void* base;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.pid != getpid()) {  // first claim, or first in a forked child: its own file
      m.pid = getpid();
      m.failed = false;
      if (m.rundir.empty()) m.rundir = stats_rundir();
      m.base = create_file(m.rundir, error);
      if (!m.base) m.failed = true;
      if (m.base && !m.snapshot) {
        m.snapshot = new l45_shim_stats_slot[L45_SHIM_STATS_SLOTS]();
        if (::pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
          delete[] m.snapshot;
          m.snapshot = nullptr;
        }
      }
    }
    if (m.failed) return nullptr;
    base = m.base;
  }
  l45_shim_stats_slot* slots = slots_of(base);
  auto take = [&](uint32_t from) -> l45_shim_stats_slot* {
    for (unsigned i = 0; i < L45_SHIM_STATS_SLOTS; ++i) {
      uint32_t expect = from;
      if (__atomic_compare_exchange_n(&slots[i].state, &expect, 0xffffffffu, false,
                                      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return &slots[i];
    }
    return nullptr;
  };
  l45_shim_stats_slot* s = take(L45_SLOT_FREE);
  if (!s) {
    // Reuse the oldest closed slot.
    l45_shim_stats_slot* oldest = nullptr;
    for (unsigned i = 0; i < L45_SHIM_STATS_SLOTS; ++i)
      if (__atomic_load_n(&slots[i].state, __ATOMIC_RELAXED) == L45_SLOT_CLOSED &&
          (!oldest || slots[i].closed_ns < oldest->closed_ns))
        oldest = &slots[i];
    uint32_t expect = L45_SLOT_CLOSED;
    if (oldest && __atomic_compare_exchange_n(&oldest->state, &expect, 0xffffffffu, false,
                                              __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      s = oldest;
    else
      s = take(L45_SLOT_CLOSED);
  }
  if (!s) {
    __atomic_fetch_add(&static_cast<l45_shim_stats_header*>(base)->unpublished, 1,
                       __ATOMIC_RELAXED);
    return nullptr;
  }
  std::memset(reinterpret_cast<char*>(s) + sizeof(s->state), 0, sizeof(*s) - sizeof(s->state));
  s->opened_ns = realtime_ns();
  __atomic_store_n(&s->state, static_cast<uint32_t>(L45_SLOT_OPEN), __ATOMIC_RELEASE);
  return s;
}

void StatsPublisher::set_rundir(const std::string& dir) {
  Mapping& m = mapping();
  std::lock_guard<std::mutex> lock(m.mu);
  m.rundir = dir;
}

void StatsPublisher::release(l45_shim_stats_slot* slot) {
  if (!slot) return;
  slot->closed_ns = realtime_ns();
  __atomic_store_n(&slot->state, static_cast<uint32_t>(L45_SLOT_CLOSED), __ATOMIC_RELEASE);
}

std::optional<ProcessStats> read_stats_file(const std::string& path, std::string* why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *why = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string buf(kFileSize, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  ProcessStats ps;
  ps.file = path;
  if (got < sizeof(l45_shim_stats_header)) {
    *why = path + ": truncated (" + std::to_string(got) + " bytes)";
    return std::nullopt;
  }
  std::memcpy(&ps.header, buf.data(), sizeof ps.header);
  const auto& h = ps.header;
  if (std::memcmp(h.magic, L45_SHIM_STATS_MAGIC, 8) != 0) {
    *why = path + ": not an l45 shim stats file (bad magic)";
    return std::nullopt;
  }
  if (h.version != L45_SHIM_STATS_VERSION || h.header_size != sizeof(l45_shim_stats_header) ||
      h.slot_size != sizeof(l45_shim_stats_slot) || h.nslots != L45_SHIM_STATS_SLOTS) {
    *why = path + ": stats file version " + std::to_string(h.version) +
           " or layout not the one this l45 reads (version " +
           std::to_string(L45_SHIM_STATS_VERSION) + ")";
    return std::nullopt;
  }
  if (got < kFileSize) {
    *why = path + ": truncated (" + std::to_string(got) + " bytes)";
    return std::nullopt;
  }
  ps.header.program[sizeof h.program - 1] = 0;
  ps.header.path[sizeof h.path - 1] = 0;
  for (unsigned i = 0; i < h.nslots; ++i) {
    l45_shim_stats_slot s;
    std::memcpy(&s, buf.data() + sizeof(l45_shim_stats_header) + i * sizeof s, sizeof s);
    if (s.state != L45_SLOT_OPEN && s.state != L45_SLOT_CLOSED) continue;
    s.local[sizeof s.local - 1] = 0;
    s.remote[sizeof s.remote - 1] = 0;
    s.chain[sizeof s.chain - 1] = 0;
    for (auto& e : s.extra)
      e.name[sizeof e.name - 1] = 0;
    ps.slots.push_back(s);
  }
  ps.alive = h.pid > 0 && (::kill(h.pid, 0) == 0 || errno == EPERM);
  return ps;
}

StatsScan read_stats_dir(const std::string& dir) {
  StatsScan scan;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT) scan.problems.push_back(dir + ": " + std::strerror(errno));
    return scan;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 6 && n.compare(n.size() - 6, 6, ".stats") == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string why;
    if (auto ps = read_stats_file(dir + "/" + n, &why))
      scan.processes.push_back(std::move(*ps));
    else
      scan.problems.push_back(why);
  }
  return scan;
}

}  // namespace l45::shim
