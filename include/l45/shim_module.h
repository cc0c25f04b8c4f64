/* l45 shim modules: the plain-C ABI between libl45shim.so (the loader preloaded into unmodified
 * programs by `l45 run` or /etc/ld.so.preload) and the modules it chains on a socket.
 *
 * A module is a `struct l45_shim_module` descriptor. Built-in modules (monitor, identity, fec, tag)
 * are compiled into the shim; an external one is a shared object named by `module = "/path/x.so"`
 * in a manifest, exporting
 *
 *     const struct l45_shim_module* l45_shim_module_v1(void);
 *
 * The shim refuses a descriptor whose abi_version differs from L45_SHIM_ABI_VERSION, and a .so
 * that is not owned by root (or the invoking uid) or is group/world-writable.
 *
 * Lifetime, for one manifest instance (one `[params]` table):
 *   init(params)            once, when the manifest is loaded; returns the instance state
 *   sock_create(inst, ctx)  when a socket's context first matches the manifest
 *   egress / ingress        on the socket's data, see below
 *   observe                 after every send/recv call on the socket (passive modules)
 *   ingress_tick            when the time ingress_deadline gave has come (a module holding data)
 *   counters                when the shim publishes the socket's counters (l45 shim stats)
 *   sock_close(sock)        when the last descriptor of the socket is closed; may emit final data
 *   sock_destroy(sock)      right after; free the state
 * Every callback may be NULL. Callbacks run on the application's thread that made the call,
 * with the socket's lock held: a module needs no locking of its own per-socket state.
 *
 * Data: egress runs the chain in manifest order (lower `order` first), ingress in reverse. A
 * transforming hook receives one message and emits zero or more messages by calling
 * `emit(emit_ctx, data, len)` (the bytes are copied); what it emits is the next module's
 * input. For UDP a message is one datagram; for TCP it is a piece of the byte stream (a module
 * may frame the stream: message boundaries are not preserved). A hook returns
 * L45_SHIM_OK, or L45_SHIM_ERROR to fail the application's call with EIO (never used for
 * untrusted input: a module that receives bytes it cannot read passes or drops them and counts
 * it).
 *
 * A chain made only of modules without egress/ingress (e.g. monitor) is passive: the shim calls
 * the real socket functions exactly as the program made them (same partial writes, same errno)
 * and reports each call to `observe`.
 */
#ifndef L45_SHIM_MODULE_H
#define L45_SHIM_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

struct l45_shim_stats_slot;

#define L45_SHIM_ABI_VERSION 1u

enum { L45_SHIM_OK = 0, L45_SHIM_ERROR = -1 };

enum l45_shim_side {
  L45_SHIM_SIDE_UNKNOWN = 0,
  L45_SHIM_SIDE_CLIENT = 1,
  L45_SHIM_SIDE_SERVER = 2
};

/* What the shim knows about a socket when its chain is built. Addresses are sockaddr_in or
 * sockaddr_in6 (family AF_UNSPEC when unknown); ports are in host order. */
struct l45_shim_sock_ctx {
  uint32_t size;            /* sizeof(struct l45_shim_sock_ctx): fields are only ever appended */
  const char* program;      /* executable name, e.g. "socat" */
  const char* program_path; /* e.g. "/usr/bin/socat" */
  uint32_t uid;
  int fd;       /* the descriptor the socket had when its chain was built */
  int protocol; /* IPPROTO_TCP or IPPROTO_UDP */
  int family;   /* AF_INET or AF_INET6 */
  enum l45_shim_side side;
  struct sockaddr_storage local;
  struct sockaddr_storage remote;
  /* Where this socket's counters are published for `l45 shim stats` (layout in
   * l45/shim/stats_format.h; update with relaxed atomic adds), NULL when publishing is off. */
  struct l45_shim_stats_slot* stats;
};

/* One `[params]` entry of the manifest, as text ("10", "true", "video"): arrays and tables are
 * not passed. */
struct l45_shim_param {
  const char* key;
  const char* value;
};

enum l45_shim_dir { L45_SHIM_EGRESS = 0, L45_SHIM_INGRESS = 1 };

/* One completed send or receive call, for passive modules. */
struct l45_shim_event {
  enum l45_shim_dir dir;
  int64_t result;      /* what the call returned: bytes, 0 (end of stream) or -1 */
  int err;             /* errno when result < 0 */
  uint32_t messages;   /* datagrams or stream pieces moved (sendmmsg/recvmmsg: several) */
  uint64_t latency_ns; /* time spent in the real call */
  uint32_t flags;      /* L45_SHIM_EV_* */
};
/* The call only looked (MSG_PEEK): the bytes are still there for the next read. */
#define L45_SHIM_EV_PEEK 1u

struct l45_shim_counter {
  char name[24];
  uint64_t value;
};

typedef void (*l45_shim_emit_fn)(void* emit_ctx, const void* data, size_t len);

struct l45_shim_module {
  uint32_t abi_version; /* L45_SHIM_ABI_VERSION */
  const char* name;
  /* Returns the instance state (may be NULL when it needs none); on a bad parameter writes a
   * reason into err (NUL-terminated, at most errlen bytes) and returns NULL with *ok = 0. */
  void* (*init)(const struct l45_shim_param* params, size_t nparams, int* ok, char* err,
                size_t errlen);
  void (*fini)(void* instance);
  void* (*sock_create)(void* instance, const struct l45_shim_sock_ctx* ctx);
  int (*egress)(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* emit_ctx);
  int (*ingress)(void* sock, const void* data, size_t len, l45_shim_emit_fn emit, void* emit_ctx);
  void (*observe)(void* sock, const struct l45_shim_event* ev);
  /* Fills at most max counters, returns how many. */
  size_t (*counters)(void* sock, struct l45_shim_counter* out, size_t max);
  /* Egress-side flush at close (TCP: data still to send). */
  void (*sock_close)(void* sock, l45_shim_emit_fn emit, void* emit_ctx);
  void (*sock_destroy)(void* sock);
  /* For a module that holds ingress data until a time (fec waits up to max_delay_ms for a gap):
   * the CLOCK_MONOTONIC time in ns at which ingress_tick must run, 0 when it holds nothing. The
   * shim runs ingress_tick from recv and from poll/select/epoll_wait, so a program waiting on
   * the socket gets what the module releases then. What it emits continues up the ingress
   * chain. */
  uint64_t (*ingress_deadline)(void* sock);
  void (*ingress_tick)(void* sock, uint64_t now_ns, l45_shim_emit_fn emit, void* emit_ctx);
};

typedef const struct l45_shim_module* (*l45_shim_module_entry_fn)(void);
#define L45_SHIM_MODULE_ENTRY "l45_shim_module_v1"

#ifdef __cplusplus
}
#endif

#endif /* L45_SHIM_MODULE_H */
