// monitor: passive per-socket counters, published for `l45 shim stats`.
//
// Counts, per socket and direction, the bytes and messages the program moved (what the real
// calls returned: partial writes count what was written), the calls, the failed calls (EAGAIN
// included), and a latency histogram of the real send/recv calls (16 log2 buckets from < 1 us to
// >= 16.4 ms). It never touches the data: a chain of monitor alone is passive, so the program's
// calls reach the kernel exactly as made. No parameters.
//
//   name = "watch-nginx"
//   module = "monitor"
//   [match]
//   program = "nginx"
#include <cstdio>
#include <cstring>

#include "builtin.hpp"
#include "l45/shim/stats.hpp"
#include "l45/shim/stats_format.h"

namespace l45::shim {
namespace {

void* monitor_init(const l45_shim_param*, size_t nparams, int* ok, char* err, size_t errlen) {
  if (nparams != 0) {
    *ok = 0;
    std::snprintf(err, errlen, "monitor takes no parameters");
    return nullptr;
  }
  *ok = 1;
  return nullptr;
}

void* monitor_sock_create(void*, const l45_shim_sock_ctx* ctx) {
  // The per-socket state is the published slot itself (nullptr when publishing is off). Only
  // the first monitor of a chain counts: two would count every byte twice in the one slot.
  l45_shim_stats_slot* s = ctx->stats;
  if (!s || __atomic_exchange_n(&s->pad[0], 1, __ATOMIC_RELAXED) != 0) return nullptr;
  return s;
}

void add(uint64_t* p, uint64_t v) {
  __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

void monitor_observe(void* sock, const l45_shim_event* ev) {
  auto* s = static_cast<l45_shim_stats_slot*>(sock);
  if (!s) return;
  bool out = ev->dir == L45_SHIM_EGRESS;
  add(out ? &s->calls_out : &s->calls_in, 1);
  add(out ? &s->lat_out[latency_bucket(ev->latency_ns)]
          : &s->lat_in[latency_bucket(ev->latency_ns)],
      1);
  if (ev->result < 0) {
    add(out ? &s->errors_out : &s->errors_in, 1);
    return;
  }
  if (ev->flags & L45_SHIM_EV_PEEK) return;  // nothing moved yet: the next read counts it
  add(out ? &s->bytes_out : &s->bytes_in, static_cast<uint64_t>(ev->result));
  if (ev->result > 0 || ev->messages > 1) add(out ? &s->msgs_out : &s->msgs_in, ev->messages);
}

const l45_shim_module kMonitorModule = {
    L45_SHIM_ABI_VERSION, "monitor", monitor_init, nullptr, monitor_sock_create, nullptr, nullptr,
    monitor_observe,      nullptr,   nullptr,      nullptr,
};

}  // namespace
}  // namespace l45::shim

L45_SHIM_BUILTIN(l45::shim::kMonitorModule);
