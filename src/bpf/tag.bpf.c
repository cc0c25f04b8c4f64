/* The tag pillar's eBPF programs, loaded and attached to a cgroup (v2) by `l45 tagd`.
 *
 *  - cgroup/setsockopt  l45_setsockopt: SOL_L45 options (the paper's SO_USERTAG): validates,
 *                       stores the tags in socket-local storage, consumes the option. Bad size
 *                       or contents: EINVAL, nothing stored.
 *  - cgroup/getsockopt  l45_getsockopt: L45_SO_TAG_LIST reads them back.
 *  - cgroup/sock_create l45_sock_create: sockets of a cgroup made by `l45 tag exec` get that
 *                       cgroup's tags when they are created.
 *  - cgroup/connect4/6  l45_connect4/6: a `mark N` rule matching a tagged socket sets SO_MARK
 *                       before the route lookup, so policy routing sees the SYN already.
 *  - cgroup_skb/egress, cgroup_skb/ingress  l45_egress/l45_ingress: every packet of a socket
 *                       goes through the active rule set (log, mark, count, drop, throttle,
 *                       priority); counters per rule and per (app, tag). They read the
 *                       socket's tags in place (Linux 6.17+), and first this CPU's copy of
 *                       the socket's plan (l45_recent); l45_egress_old/l45_ingress_old look
 *                       the tags up, for older kernels.
 *  - sockops            l45_sockops: a socket an `export` rule matches writes its tag into every
 *                       TCP segment (an RFC 6994 experimental option).
 *  - tc                 l45_forward: on a forwarding host's interface (ingress), reads that
 *                       option and runs the `forward` rules.
 *
 * Rules live in two sets (map `rules`, index set * L45_RULES_MAX + i); the daemon writes the
 * staged set and flips `config.active`, so a packet sees either the old or the new set whole.
 */
// linux/bpf.h first: bpf_helpers.h uses its types.
#include <linux/bpf.h>
#include <linux/in.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "l45/tag/bpf_abi.h"

#define EINVAL 22
#define ENOENT 2
#define ENOSPC 28
#define ERANGE 34
#define EPERM 1
#define SOL_SOCKET 1
#define SO_MARK 36
#define AF_INET 2
#define AF_INET6 10
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct l45_sk_cache) == 48, "a plan's first part is one cache line's worth");
_Static_assert(__builtin_offsetof(struct l45_sk_tags, version) == 0 &&
                   __builtin_offsetof(struct l45_sk_tags, count) == 4,
               "handle_skb() reads the version and the count in one 8-byte load");
_Static_assert(__builtin_offsetof(struct l45_sk_cache_more, slots) % 4 == 0 && L45_TAG_MAX == 8,
               "cache_get() reads the other tags' slots in 4-byte loads");
_Static_assert(__builtin_offsetof(struct l45_sk_tags, in) == 8 &&
                   __builtin_offsetof(struct l45_sk_tags, out) == 56,
               "the kernel's storage data start 8 bytes into a cache line");

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
  __type(key, int);
  __type(value, struct l45_sk_tags);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_tags SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct l45_config);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * L45_RULES_MAX);
  __type(key, __u32);
  __type(value, struct l45_rule);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_rules SEC(".maps");

/* Index: the rule set. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct l45_rule_counters);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_rule_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, L45_TAG_SLOTS);
  __type(key, struct l45_tag_key);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_tag_slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, L45_TAG_SLOTS);
  __type(key, __u32);
  __type(value, struct l45_tag_counts);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_tag_counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_tag_next SEC(".maps");

/* uid -> 1: tags set by these users are trusted (the daemon puts root in). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_trusted_uids SEC(".maps");

/* cgroup id -> the tags its sockets get at creation (`l45 tag exec`). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, struct l45_sk_tags);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_exec_tags SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_log SEC(".maps");

/* The rules generation: the daemon adds one after every rules load (after the flip, in a write
 * of its own), so a cached match made under a generation saw that load's set whole. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_generation SEC(".maps");

/* The tags epoch: a socket's tags change (tags_changed()) adds one when a plan of that socket
 * may be among the CPUs' recent plans (l45_recent), which are then stale, all of them. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_tags_epoch SEC(".maps");

/* The tags epoch's word (null only if the map cannot be read). */
static __always_inline __u64* tags_epoch(void) {
  __u32 key = 0;
  return bpf_map_lookup_elem(&l45_tags_epoch, &key);
}

/* A CPU's recent plans (perf): copies of sockets' plans, by socket cookie, so a packet of a
 * socket this CPU handled lately reads neither the socket's storage nor the struct sock line
 * that points to it (bench/tag_overhead.sh: those were the cold lines of an ACK). Index:
 * focus * L45_RECENT + the cookie's low bits. `seq` is odd while a program writes the entry: a
 * program on the same CPU that interrupts it neither writes it nor takes it. */
#define L45_RECENT 16
struct recent {
  __u32 seq;
  __u32 pad;
  __u64 epoch;  /* l45_tags_epoch when copied */
  __u64 cookie; /* the socket's cookie; 0: empty */
  struct l45_sk_cache c;
  struct l45_sk_cache_more m; /* addrs6 and slots only */
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2 * L45_RECENT);
  __type(key, __u32);
  __type(value, struct recent);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_recent SEC(".maps");

/* The tag read from a forwarded packet's option (per CPU scratch, too big for the stack). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct l45_sk_tags);
} l45_scratch SEC(".maps");

/* A plan (struct l45_sk_cache) as the programs use it. */
struct plan {
  __u32 matched, logs, mark, prio;
  __u8 flags, set, top, nslots;
  __u16 slots[L45_TAG_MAX];
};

/* What match_step finds. In a map value, not on the stack: the verifier does not follow what a
 * map value holds, while each combination of stack fields a callback may or may not have
 * written is a state of its own (on the stack, l45_egress took 494k instructions to verify;
 * so, 177k). */
struct match_out {
  struct plan plan; /* the slots aside */
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct match_out);
} l45_match_scratch SEC(".maps");

/* Per rule: log rate window and throttle token bucket. */
struct l45_rule_state {
  struct bpf_spin_lock lock;
  __u32 log_count;
  __u64 log_window_ns;
  __u64 tokens;
  __u64 last_ns; /* token bucket: when credit was last added */
};
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * L45_RULES_MAX);
  __type(key, __u32);
  __type(value, struct l45_rule_state);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} l45_rule_state SEC(".maps");

/* ---- tags -------------------------------------------------------------------------------- */

static __always_inline int tag_valid(const struct l45_tag* t) {
  if (t->app == 0 || t->flags != 0) return 0;
  if (t->kind == L45_TAG_NUM) {
    if (t->len != 8) return 0;
    for (int i = 8; i < L45_TAG_STR_MAX; i++)
      if (t->value[i]) return 0;
    return 1;
  }
  if (t->kind != L45_TAG_STR || t->len == 0 || t->len > L45_TAG_STR_MAX) return 0;
  for (int i = 0; i < L45_TAG_STR_MAX; i++) {
    __u8 c = t->value[i];
    if (i < t->len) {
      if (c < 0x21 || c > 0x7e) return 0;
    } else if (c) {
      return 0;
    }
  }
  return 1;
}

static __always_inline int tag_equal(const struct l45_tag* a, const struct l45_tag* b) {
  const __u64* av = (const __u64*)a->value;
  const __u64* bv = (const __u64*)b->value;
  return a->app == b->app && a->kind == b->kind && a->len == b->len && av[0] == bv[0] &&
         av[1] == bv[1];
}

static __always_inline __u16 owner_flags(__u32 uid) {
  __u32* ok = bpf_map_lookup_elem(&l45_trusted_uids, &uid);
  return ok ? L45_TAG_F_TRUSTED : 0;
}

/* No instruction of the program may be moved across it by the compiler. The sequence lock and
 * the tags version rely on it and on x86's store and load order (TSO); an architecture with a
 * weaker order would need fences that eBPF does not have. */
#define barrier() asm volatile("" ::: "memory")

/* After the tags changed: cached matches made before are stale. */
static __always_inline void tags_changed(struct l45_sk_tags* st) {
  __sync_fetch_and_add(&st->version, 1);
  /* Only a socket that has a plan can have a copy in l45_recent: one tagged before its first
   * packet (the usual order) leaves the other sockets' copies alone. A plan being made now
   * was made under the old version, so it is never copied. */
  if (st->in.gen | st->out.gen) {
    __u64* e = tags_epoch();
    if (e) __sync_fetch_and_add(e, 1);
  }
}

static __always_inline int set_error(int err) {
  bpf_set_retval(-err);
  return 0;
}

SEC("cgroup/setsockopt")
int l45_setsockopt(struct bpf_sockopt* ctx) {
  if (ctx->level != SOL_L45) return 1;
  if (!ctx->sk) return set_error(EINVAL);

  void* optval = (void*)(long)ctx->optval;
  void* end = (void*)(long)ctx->optval_end;
  int optlen = ctx->optlen;
  int name = ctx->optname;
  __u32 uid = (__u32)bpf_get_current_uid_gid();
  __u16 flags = owner_flags(uid);

  if (name == L45_SO_TAG_CLEAR) {
    struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, ctx->sk, 0, 0);
    if (st) {
      st->count = 0;
      st->uid = uid;
      tags_changed(st);
    }
    ctx->optlen = -1; /* consumed: the kernel does not see it */
    return 1;
  }

  if (name == L45_SO_TAG_SET) {
    if (optlen < 0 || optlen % sizeof(struct l45_tag) ||
        optlen > L45_TAG_MAX * (int)sizeof(struct l45_tag))
      return set_error(EINVAL);
    int n = optlen / sizeof(struct l45_tag);
    struct l45_tag* in = optval;
    for (int i = 0; i < L45_TAG_MAX; i++) {
      if (i >= n) break;
      if ((void*)(in + i + 1) > end) return set_error(EINVAL);
      if (!tag_valid(in + i)) return set_error(EINVAL);
    }
    struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!st) return set_error(ENOSPC);
    __u32 kept = 0;
    for (int i = 0; i < L45_TAG_MAX; i++) {
      if (i >= n) break;
      if ((void*)(in + i + 1) > end) break;
      int dup = 0;
      for (int j = 0; j < L45_TAG_MAX; j++)
        if (j < i && tag_equal(in + j, in + i)) dup = 1;
      if (dup || kept >= L45_TAG_MAX) continue;
      __builtin_memcpy(&st->tags[kept & (L45_TAG_MAX - 1)], in + i, sizeof(struct l45_tag));
      st->tags[kept & (L45_TAG_MAX - 1)].flags = flags;
      kept++;
    }
    st->count = kept;
    st->uid = uid;
    tags_changed(st);
    ctx->optlen = -1;
    return 1;
  }

  if (name == L45_SO_TAG_ADD || name == L45_SO_TAG_DEL) {
    struct l45_tag* in = optval;
    if (optlen != sizeof(struct l45_tag) || (void*)(in + 1) > end || !tag_valid(in))
      return set_error(EINVAL);
    struct l45_sk_tags* st = bpf_sk_storage_get(
        &l45_tags, ctx->sk, 0, name == L45_SO_TAG_ADD ? BPF_SK_STORAGE_GET_F_CREATE : 0);
    if (!st) return set_error(name == L45_SO_TAG_ADD ? ENOSPC : ENOENT);
    __u32 count = st->count;
    int at = -1;
    for (int i = 0; i < L45_TAG_MAX; i++)
      if (i < count && at < 0 && tag_equal(&st->tags[i], in)) at = i;
    if (name == L45_SO_TAG_ADD) {
      if (at < 0) {
        if (count >= L45_TAG_MAX) return set_error(ENOSPC);
        __builtin_memcpy(&st->tags[count & (L45_TAG_MAX - 1)], in, sizeof(struct l45_tag));
        st->tags[count & (L45_TAG_MAX - 1)].flags = flags;
        st->count = count + 1;
      } else {
        st->tags[at & (L45_TAG_MAX - 1)].flags = flags;
      }
    } else {
      if (at < 0) return set_error(ENOENT);
      /* keep the order: shift the rest down */
      for (int i = 0; i < L45_TAG_MAX - 1; i++)
        if (i >= at && i + 1 < count) st->tags[i] = st->tags[i + 1];
      st->count = count - 1;
    }
    st->uid = uid;
    tags_changed(st);
    ctx->optlen = -1;
    return 1;
  }
  if (name == L45_SO_TAG_SIGNED) {
    struct l45_tag* in = optval;
    if (uid != 0) return set_error(EPERM);
    if (optlen != sizeof(struct l45_tag) || (void*)(in + 1) > end || !tag_valid(in))
      return set_error(EINVAL);
    struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, ctx->sk, 0, 0);
    if (!st) return set_error(ENOENT);
    __u32 count = st->count;
    int at = -1;
    for (int i = 0; i < L45_TAG_MAX; i++)
      if (i < count && at < 0 && tag_equal(&st->tags[i], in)) at = i;
    if (at < 0) return set_error(ENOENT);
    st->tags[at & (L45_TAG_MAX - 1)].flags |= L45_TAG_F_SIGNED;
    tags_changed(st);
    ctx->optlen = -1;
    return 1;
  }
  return set_error(EINVAL);
}

SEC("cgroup/getsockopt")
int l45_getsockopt(struct bpf_sockopt* ctx) {
  if (ctx->level != SOL_L45) return 1;
  if (ctx->optname != L45_SO_TAG_LIST || !ctx->sk) {
    ctx->retval = -EINVAL;
    return 1;
  }
  struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, ctx->sk, 0, 0);
  __u32 n = st ? st->count : 0;
  if (n > L45_TAG_MAX) n = L45_TAG_MAX;
  if (ctx->optlen < (int)(n * sizeof(struct l45_tag))) {
    ctx->retval = -ERANGE;
    return 1;
  }
  struct l45_tag* out = (void*)(long)ctx->optval;
  void* end = (void*)(long)ctx->optval_end;
  for (int i = 0; i < L45_TAG_MAX; i++) {
    if (i >= n || !st) break;
    if ((void*)(out + i + 1) > end) {
      ctx->retval = -ERANGE;
      return 1;
    }
    __builtin_memcpy(out + i, &st->tags[i], sizeof(struct l45_tag));
  }
  ctx->optlen = n * sizeof(struct l45_tag);
  ctx->retval = 0;
  return 1;
}

SEC("cgroup/sock_create")
int l45_sock_create(struct bpf_sock* sk) {
  __u64 cg = bpf_get_current_cgroup_id();
  struct l45_sk_tags* tmpl = bpf_map_lookup_elem(&l45_exec_tags, &cg);
  if (!tmpl) return 1;
  struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!st) return 1;
  __builtin_memcpy(st, tmpl, sizeof(*st));
  return 1;
}

/* ---- rules ------------------------------------------------------------------------------- */

struct pkt {
  __u8 src[16], dst[16];
  __u16 sport, dport; /* host order */
  __u8 family, proto, focus;
  __u32 len;
};

static __always_inline int prefix_match(const struct l45_prefix* p, const __u8* a, __u8 family) {
  if (p->family != family) return 0;
  const __u64* pa = (const __u64*)p->addr;
  const __u64* pm = (const __u64*)p->mask;
  const __u64* aa = (const __u64*)a;
  return (aa[0] & pm[0]) == pa[0] && (aa[1] & pm[1]) == pa[1];
}

static __always_inline int tag_match(const struct l45_rule* r, const struct l45_tag* t) {
  if ((r->cond & L45_C_APP) && t->app != r->app) return 0;
  if (r->cond & L45_C_TAG) {
    const __u64* v = (const __u64*)t->value;
    const __u64* rv = (const __u64*)r->tag_value;
    const __u64* rm = (const __u64*)r->tag_mask;
    if (t->kind != r->tag_kind) return 0;
    if (!(r->cond & L45_C_TAG_PREFIX) && t->len != r->tag_len) return 0;
    if ((v[0] & rm[0]) != rv[0] || (v[1] & rm[1]) != rv[1]) return 0;
  }
  if ((r->cond & L45_C_TRUSTED) && !(t->flags & L45_TAG_F_TRUSTED)) return 0;
  if ((r->cond & L45_C_UNTRUSTED) && (t->flags & L45_TAG_F_TRUSTED)) return 0;
  if ((r->cond & L45_C_SIGNED) && !(t->flags & L45_TAG_F_SIGNED)) return 0;
  return 1;
}

/* The index of the socket's first tag the rule matches, L45_TAG_MAX when the rule has no tag
 * condition (it matches tagged and untagged sockets alike), -1 when it does not match. */
static __always_inline int rule_match(const struct l45_rule* r, const struct pkt* p,
                                      const struct l45_sk_tags* st, __u32 owner) {
  if (r->focus != p->focus) return -1;
  __u32 c = r->cond;
  if ((c & L45_C_PROTO) && r->proto != p->proto) return -1;
  if ((c & L45_C_SPORT) && (p->sport < r->sport_lo || p->sport > r->sport_hi)) return -1;
  if ((c & L45_C_DPORT) && (p->dport < r->dport_lo || p->dport > r->dport_hi)) return -1;
  if ((c & L45_C_SRC) && !prefix_match(&r->src, p->src, p->family)) return -1;
  if ((c & L45_C_DST) && !prefix_match(&r->dst, p->dst, p->family)) return -1;
  if ((c & L45_C_UID) && (!st || owner != r->uid)) return -1;
  if (!(c & L45_C_TAG_CONDS)) return L45_TAG_MAX;
  if (!st) return -1;
  __u32 n = st->count;
  for (int i = 0; i < L45_TAG_MAX; i++) {
    if (i >= n) break;
    if (tag_match(r, &st->tags[i])) return i;
  }
  return -1;
}

static __always_inline void emit_log(__u32 set, __u32 idx, const struct pkt* p,
                                     const struct l45_sk_tags* st, int ti, __u64 cookie,
                                     __u64* dropped, __u32 per_sec) {
  struct l45_rule_state* rs = bpf_map_lookup_elem(&l45_rule_state, &idx);
  if (!rs) return;
  __u64 now = bpf_ktime_get_ns();
  int over = 0;
  bpf_spin_lock(&rs->lock);
  if (now - rs->log_window_ns >= 1000000000ULL) {
    rs->log_window_ns = now;
    rs->log_count = 0;
  }
  if (per_sec && rs->log_count >= per_sec)
    over = 1;
  else
    rs->log_count++;
  bpf_spin_unlock(&rs->lock);
  if (over) {
    if (dropped) (*dropped)++;
    return;
  }
  struct l45_log_event* e = bpf_ringbuf_reserve(&l45_log, sizeof(*e), 0);
  if (!e) {
    if (dropped) (*dropped)++;
    return;
  }
  e->rule = idx % L45_RULES_MAX;
  e->set = set;
  e->len = p->len;
  e->focus = p->focus;
  e->proto = p->proto;
  e->family = p->family;
  e->pad = 0;
  __builtin_memcpy(e->src, p->src, 16);
  __builtin_memcpy(e->dst, p->dst, 16);
  e->sport = p->sport;
  e->dport = p->dport;
  e->pad2 = 0;
  e->cookie = cookie;
  if (st && ti >= 0 && ti < L45_TAG_MAX) {
    e->tag = st->tags[ti];
  } else {
    __builtin_memset(&e->tag, 0, sizeof(e->tag));
  }
  bpf_ringbuf_submit(e, 0);
}

/* A token bucket per rule whose credit may go negative (the idea of the kernel's HBM sample,
 * samples/bpf/hbm): 0 within the rate; 1 over it by less than the backlog allowance (egress:
 * the packet goes out with a congestion notification, NET_XMIT_CN, and TCP lowers its window
 * without a loss); 2 beyond (dropped). Credits accrue at `rate` bytes/s, up to 20 ms of burst
 * but at least 64 KiB: TCP hands the hook GSO packets of up to 64 KiB whatever the device. */
static __always_inline int throttle(__u32 idx, __u64 rate, __u32 len) {
  struct l45_rule_state* rs = bpf_map_lookup_elem(&l45_rule_state, &idx);
  if (!rs || rate == 0) return 0;
  __s64 burst = rate / 50;
  if (burst < 65536) burst = 65536;
  __s64 backlog = burst * 4;
  __u64 now = bpf_ktime_get_ns();
  int verdict;
  bpf_spin_lock(&rs->lock);
  __u64 elapsed = now - rs->last_ns;
  if (elapsed > 1000000000ULL) elapsed = 1000000000ULL;
  rs->last_ns = now;
  __s64 credit = (__s64)rs->tokens + (__s64)(elapsed * rate / 1000000000ULL);
  if (credit > burst) credit = burst;
  credit -= len;
  if (credit >= 0) {
    verdict = 0;
  } else if (credit > -backlog) {
    verdict = 1;
  } else {
    credit += len; /* not sent */
    verdict = 2;
  }
  rs->tokens = (__u64)credit;
  bpf_spin_unlock(&rs->lock);
  return verdict;
}

/* Addresses, ports and payload length from the packet's own headers (the hook sees it from its
 * IP header on): an unconnected UDP socket's fields say nothing of where a datagram goes. The
 * IP version comes from the header, not the socket: an AF_INET6 socket carries IPv4 packets
 * for v4-mapped peers. perf: the headers are read in place when they are in the linear part of
 * the skb (what a socket sends always is; bench/tag_overhead.sh), else copied. */
static __always_inline int parse_headers(struct __sk_buff* skb, struct pkt* p, __u32* payload) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  __u8 copy[40];
  const __u8* h = data;
  __u32 l4;
  *payload = 0;
  if (data + 1 > end) {
    if (bpf_skb_load_bytes(skb, 0, copy, 1)) return -1;
    h = copy;
  }
  __u8 version = h[0] >> 4;
  if (version == 4) {
    if (data + 20 > end) {
      if (bpf_skb_load_bytes(skb, 0, copy, 20)) return -1;
      h = copy;
    }
    p->family = 4;
    p->proto = h[9];
    __builtin_memcpy(p->src, h + 12, 4);
    __builtin_memcpy(p->dst, h + 16, 4);
    l4 = (h[0] & 0xf) * 4;
  } else if (version == 6) {
    if (data + 40 > end) {
      if (bpf_skb_load_bytes(skb, 0, copy, 40)) return -1;
      h = copy;
    }
    p->family = 6;
    p->proto = h[6];
    __builtin_memcpy(p->src, h + 8, 16);
    __builtin_memcpy(p->dst, h + 24, 16);
    l4 = 40;
  } else {
    return -1;
  }
  if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP) return 0;
  const __u8* t = data + l4;
  if ((void*)(t + 13) > end) {
    __u32 n = p->proto == IPPROTO_TCP ? 13 : 4;
    if (bpf_skb_load_bytes(skb, l4, copy, n)) return 0;
    t = copy;
  }
  p->sport = (__u16)t[0] << 8 | t[1];
  p->dport = (__u16)t[2] << 8 | t[3];
  __u32 hlen = p->proto == IPPROTO_TCP ? (t[12] >> 4) * 4 : 8;
  *payload = skb->len > l4 + hlen ? skb->len - l4 - hlen : 0;
  return 0;
}

/* The slot of a socket's tag i in l45_tag_counts, a new one for a tag never seen; L45_TAG_SLOTS
 * when all are taken (the tag is not counted, as a full hash map did not count it before). */
static __always_inline __u32 tag_slot(const struct l45_sk_tags* st, int i) {
  struct l45_tag_key k;
  __builtin_memcpy(&k.tag, &st->tags[i & (L45_TAG_MAX - 1)], sizeof(k.tag));
  k.tag.flags = 0;
  __u32* slot = bpf_map_lookup_elem(&l45_tag_slots, &k);
  if (slot) return *slot;
  __u32 key = 0;
  __u32* next = bpf_map_lookup_elem(&l45_tag_next, &key);
  if (!next) return L45_TAG_SLOTS;
  __u32 s = __sync_fetch_and_add(next, 1);
  if (s >= L45_TAG_SLOTS) return L45_TAG_SLOTS;
  /* another CPU may have given the tag a slot meanwhile: its wins, ours stays unused */
  bpf_map_update_elem(&l45_tag_slots, &k, &s, BPF_NOEXIST);
  slot = bpf_map_lookup_elem(&l45_tag_slots, &k);
  return slot ? *slot : L45_TAG_SLOTS;
}

/* Where the socket's tags are counted (on a cache miss; the cache keeps it). */
static __always_inline __u32 tag_slots(const struct l45_sk_tags* st, __u16* slots) {
  __u32 n = st->count;
  if (n > L45_TAG_MAX) n = L45_TAG_MAX;
  for (int i = 0; i < L45_TAG_MAX; i++) {
    if (i >= n) break;
    slots[i] = tag_slot(st, i);
  }
  return n;
}

static __always_inline void count_tags(const __u16* slots, __u32 n, __u8 focus, __u32 len,
                                       __u32 payload) {
  for (int i = 0; i < L45_TAG_MAX; i++) {
    if (i >= n) break;
    __u32 slot = slots[i];
    struct l45_tag_counts* c = bpf_map_lookup_elem(&l45_tag_counts, &slot);
    if (!c) continue;
    struct l45_count* d = &c->dir[focus & 1];
    d->packets++;
    d->bytes += len;
    d->payload += payload;
  }
}

/* A packet against the active rule set in two passes, each through bpf_loop so the verifier
 * checks its body once: which rules match (match_step; what the socket's cache keeps), then
 * their actions in rule order (apply_step; per packet: counters, log rate, token buckets). */
struct walk {
  struct pkt p;
  struct l45_sk_tags* st;
  __u64 cookie;
  __u32 set, nrules, owner, log_per_sec;
  __u32 matched, logs, top; /* as in struct plan */
  struct plan plan;         /* match's */
  struct match_out* out;    /* match_step's */
  int verdict;              /* 1 pass, 0 drop, 2 drop + congestion notification */
  int mark_set, prio_set;
  __u32 mark, prio;
  __u32 payload;
};

static long match_step(__u32 i, void* data) {
  struct walk* w = data;
  struct match_out* o = w->out;
  if (!o || i >= w->nrules || i >= L45_RULES_MAX) return 1;
  __u32 idx = w->set * L45_RULES_MAX + i;
  struct l45_rule* r = bpf_map_lookup_elem(&l45_rules, &idx);
  if (!r) return 1;
  if (rule_match(r, &w->p, w->st, w->owner) < 0) return 0;
  struct plan* pl = &o->plan;
  pl->matched |= 1U << i;
  pl->top = i + 1;
  switch (r->action) {
    case L45_ACT_LOG:
      pl->logs |= 1U << i;
      pl->flags |= L45_PLAN_SLOW;
      break;
    case L45_ACT_THROTTLE:
      pl->flags |= L45_PLAN_SLOW;
      break;
    case L45_ACT_MARK: /* a later one overrides, as apply_step does */
      pl->mark = (__u32)r->arg;
      pl->flags |= L45_PLAN_MARK;
      break;
    case L45_ACT_PRIORITY:
      pl->prio = (__u32)r->arg;
      pl->flags |= L45_PLAN_PRIO;
      break;
    case L45_ACT_DROP:
      pl->flags |= L45_PLAN_DROP;
      return 1; /* the rules after it never see the packet */
  }
  return 0;
}

static __always_inline void match(struct walk* w) {
  __u32 key = 0;
  struct match_out* o = bpf_map_lookup_elem(&l45_match_scratch, &key);
  if (!o) return; /* matches nothing */
  __builtin_memset(o, 0, sizeof(*o));
  w->out = o;
  bpf_loop(L45_RULES_MAX, match_step, w, 0);
  w->out = 0;
  w->matched = o->plan.matched;
  w->logs = o->plan.logs;
  w->top = o->plan.top;
  w->plan = o->plan;
  w->plan.set = w->set;
}

static long apply_step(__u32 i, void* data) {
  struct walk* w = data;
  if (i >= w->top || i >= L45_RULES_MAX) return 1;
  if (!(w->matched & (1U << i))) return 0;
  __u32 idx = w->set * L45_RULES_MAX + i;
  struct l45_rule* r = bpf_map_lookup_elem(&l45_rules, &idx);
  if (!r) return 1;
  /* perf (verifier): looked up here, not kept in struct walk: a nullable pointer on the stack
   * doubles the states of every callback that reads it (l45_egress: 278k instructions, so 155k) */
  struct l45_rule_counters* rcs = bpf_map_lookup_elem(&l45_rule_stats, &w->set);
  struct l45_count* cnt = rcs ? &rcs->rule[i & (L45_RULES_MAX - 1)] : 0;
  __u64* dropped = rcs ? &rcs->more[i & (L45_RULES_MAX - 1)].log_dropped : 0;
  switch (r->action) {
    case L45_ACT_LOG:
      /* which tag matched, for the event: the match again (rare: logs are rate limited) */
      emit_log(w->set, idx, &w->p, w->st, rule_match(r, &w->p, w->st, w->owner), w->cookie, dropped,
               w->log_per_sec);
      break;
    case L45_ACT_MARK:
      w->mark = (__u32)r->arg;
      w->mark_set = 1;
      break;
    case L45_ACT_PRIORITY:
      w->prio = (__u32)r->arg;
      w->prio_set = 1;
      break;
    case L45_ACT_DROP:
      w->verdict = 0;
      break;
    case L45_ACT_THROTTLE:
      switch (throttle(idx, r->arg, w->p.len)) {
        case 1: /* over the rate: tell TCP (it lowers its window), no loss yet */
          if (w->p.focus == L45_FOCUS_OUT) w->verdict = 3;
          break;
        case 2: /* far over: drop (egress: and tell TCP) */
          if (rcs) rcs->more[i & (L45_RULES_MAX - 1)].throttled++;
          w->verdict = w->p.focus == L45_FOCUS_OUT ? 2 : 0;
          break;
      }
      break;
    default:
      break;
  }
  if (cnt) {
    cnt->packets++;
    cnt->bytes += w->p.len;
    cnt->payload += w->payload;
  }
  return w->verdict == 0 || w->verdict == 2;
}

/* The packet's protocol, addresses and ports against the plan's key, read in place from the
 * headers (the hook sees the packet from its IP header on); and its payload length. 0: another
 * key, or headers not in the skb's linear part (the slow path copies them). */
static __always_inline int key_match(const struct l45_sk_cache* c,
                                     const struct l45_sk_cache_more* m, struct __sk_buff* skb,
                                     __u32* payload) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  const __u8* h = data;
  __u8 proto = c->proto;
  __u32 l4;
  if (c->family == 4) {
    if ((void*)(h + 20) > end) return 0;
    if (h[0] >> 4 != 4 || h[9] != proto) return 0;
    if (*(const __u64*)(h + 12) != *(const __u64*)c->addrs) return 0;
    l4 = (h[0] & 0xf) * 4;
  } else {
    if ((void*)(h + 40) > end) return 0;
    const __u64* a = (const __u64*)(h + 8);
    const __u64* k = (const __u64*)m->addrs6;
    if (h[0] >> 4 != 6 || h[6] != proto) return 0;
    if (a[0] != *(const __u64*)c->addrs || a[1] != k[0] || a[2] != k[1] || a[3] != k[2]) return 0;
    l4 = 40;
  }
  __u32 hlen;
  const __u8* t = data + l4;
  if (proto == IPPROTO_TCP) {
    if ((void*)(t + 13) > end) return 0;
    hlen = (t[12] >> 4) * 4;
  } else if (proto == IPPROTO_UDP) {
    if ((void*)(t + 8) > end) return 0;
    hlen = 8;
  } else {
    *payload = 0;
    return c->ports == 0;
  }
  if (*(const __u32*)t != c->ports) return 0;
  __u32 len = skb->len;
  *payload = len > l4 + hlen ? len - l4 - hlen : 0;
  return 1;
}

/* The rules generation (0: none loaded yet, or the map unreadable). */
static __always_inline __u64 rules_gen(void) {
  __u32 key = 0;
  __u64* genp = bpf_map_lookup_elem(&l45_generation, &key);
  return genp ? *(volatile const __u64*)genp : 0;
}

/* A plan's scalar fields and its first tag's slot, from a copy of it. */
static __always_inline void plan_from(const struct l45_sk_cache* c, struct plan* pl) {
  pl->matched = c->matched;
  pl->mark = c->mark;
  pl->prio = c->prio;
  pl->flags = c->flags;
  pl->set = c->set;
  pl->top = c->top;
  pl->nslots = c->nslots;
  pl->slots[0] = c->slot;
}

/* The plan of this packet's socket and direction, when it was made for the same rules
 * generation, tags version, protocol, addresses and ports.
 * perf: the plan is copied whole (six 8-byte loads) and read from the copy. Read in place
 * (tags_in_place()), every load from the socket's storage is one the JIT checks (about seven
 * instructions each): read field by field, an IPv4 packet of a socket with one tag made 21
 * checked loads in all, now 11 (counted in the JIT's code). */
union cache_words {
  struct l45_sk_cache c;
  __u64 w[sizeof(struct l45_sk_cache) / 8];
};
static __always_inline int cache_get(const struct l45_sk_cache* c,
                                     const struct l45_sk_cache_more* m, struct __sk_buff* skb,
                                     __u64 gen, __u32 version, struct plan* pl, __u32* payload,
                                     union cache_words* u) {
  __u32 seq = *(volatile const __u32*)&c->seq;
  if (seq & 1) return 0; /* being written */
  barrier();
  /* volatile: else the compiler reads the copy's fields one by one from *c again */
  for (int i = 0; i < sizeof(u->w) / sizeof(u->w[0]); i++)
    u->w[i] = ((volatile const __u64*)c)[i];
  const struct l45_sk_cache* cc = &u->c;
  if (cc->gen != gen || cc->version != version || !key_match(cc, m, skb, payload)) return 0;
  plan_from(cc, pl);
  if (pl->nslots > 1) {
    /* the other tags' slots in three 4-byte loads and one 2-byte, not seven (as above) */
    union {
      __u16 s[L45_TAG_MAX];
      __u32 w[L45_TAG_MAX / 2];
    } v;
    const volatile __u32* w = (const volatile __u32*)m->slots;
    for (int i = 0; i < L45_TAG_MAX / 2 - 1; i++)
      v.w[i] = w[i];
    v.s[L45_TAG_MAX - 2] = *(volatile const __u16*)&m->slots[L45_TAG_MAX - 2];
    __builtin_memcpy(&pl->slots[1], v.s, sizeof(m->slots));
  }
  pl->logs = pl->flags & L45_PLAN_SLOW ? m->logs : 0;
  barrier();
  return *(volatile const __u32*)&c->seq == seq;
}

/* cache_get() on the socket's plan for `focus`, under the current rules generation. */
static __always_inline int socket_plan(struct __sk_buff* skb, const struct l45_sk_tags* st,
                                       __u8 focus, __u32 version, struct plan* pl, __u32* payload,
                                       union cache_words* u) {
  __u64 gen = rules_gen();
  barrier();
  if (!gen) return 0;
  const struct l45_sk_cache* c = focus == L45_FOCUS_IN ? &st->in : &st->out;
  const struct l45_sk_cache_more* m = focus == L45_FOCUS_IN ? &st->in_more : &st->out_more;
  return cache_get(c, m, skb, gen, version, pl, payload, u);
}

/* Keeps the plan just made, unless the generation or the active set changed meanwhile (the
 * config value may have been read half written) or another packet is writing the entry. */
static __always_inline void cache_put(struct l45_sk_cache* c, struct l45_sk_cache_more* m,
                                      const struct walk* w, __u64 gen, __u32 version,
                                      const __u64* genp, const struct l45_config* cfg) {
  barrier();
  if (*(volatile const __u64*)genp != gen || (*(volatile const __u32*)&cfg->active & 1) != w->set)
    return;
  __u32 seq = *(volatile const __u32*)&c->seq;
  if (seq & 1) return;
  if (__sync_val_compare_and_swap(&c->seq, seq, seq + 1) != seq) return;
  barrier();
  const struct pkt* p = &w->p;
  const struct plan* pl = &w->plan;
  __u8 ports[4] = {p->sport >> 8, p->sport & 0xff, p->dport >> 8, p->dport & 0xff};
  c->gen = gen;
  c->version = version;
  c->family = p->family;
  c->proto = p->proto;
  __builtin_memcpy(&c->ports, ports, 4);
  if (p->family == 4) {
    __builtin_memcpy(c->addrs, p->src, 4);
    __builtin_memcpy(c->addrs + 4, p->dst, 4);
  } else {
    __builtin_memcpy(c->addrs, p->src, 8);
    __builtin_memcpy(m->addrs6, p->src + 8, 8);
    __builtin_memcpy(m->addrs6 + 8, p->dst, 16);
  }
  c->matched = pl->matched;
  c->mark = pl->mark;
  c->prio = pl->prio;
  c->flags = pl->flags;
  c->set = pl->set;
  c->top = pl->top;
  c->nslots = pl->nslots;
  c->slot = pl->slots[0];
  __builtin_memcpy(m->slots, &pl->slots[1], sizeof(m->slots));
  m->logs = pl->logs;
  barrier();
  *(volatile __u32*)&c->seq = seq + 2;
}

/* The actions a plan without log or throttle rules stands for: each matched rule's counters,
 * the mark, the priority, drop. */
static __always_inline int apply_plan(struct __sk_buff* skb, const struct plan* pl, __u32 payload) {
  __u32 m = pl->matched;
  if (!m) return 1;
  __u32 set = pl->set & 1;
  struct l45_rule_counters* rc = bpf_map_lookup_elem(&l45_rule_stats, &set);
  if (rc) {
    __u32 len = skb->len;
    for (int i = 0; i < L45_RULES_MAX; i++) {
      if (!m) break;
      if (m & 1) {
        struct l45_count* cnt = &rc->rule[i];
        cnt->packets++;
        cnt->bytes += len;
        cnt->payload += payload;
      }
      m >>= 1;
    }
  }
  if (pl->flags & L45_PLAN_MARK) skb->mark = pl->mark;
  if (pl->flags & L45_PLAN_PRIO) skb->priority = pl->prio;
  return pl->flags & L45_PLAN_DROP ? 0 : 1;
}

/* A packet the socket's plan does not cover (a miss: the rules walked, the plan kept; an
 * untagged socket under rules that match untagged sockets), or one whose plan has rules that
 * act per packet (`hit`: log, throttle). */
static __noinline int walk_skb(struct __sk_buff* skb, __u32 focus, struct l45_sk_tags* st,
                               const struct plan* hit) {
  __u32 key = 0;
  struct l45_config* cfg = bpf_map_lookup_elem(&l45_config, &key);
  if (!cfg) return 1;
  /* the version before the tags: a match made from tags changed meanwhile is kept under the
   * old version, so it is never used (setsockopt bumps the version after the change) */
  __u32 version = st ? *(volatile const __u32*)&st->version : 0;
  barrier();
  struct walk w = {};
  if (parse_headers(skb, &w.p, &w.payload) < 0) return 1;
  __u64* genp = bpf_map_lookup_elem(&l45_generation, &key);
  if (!genp) return 1;
  __u64 gen = *(volatile const __u64*)genp;
  barrier();
  w.set = cfg->active & 1;
  w.nrules = cfg->count[w.set];
  w.log_per_sec = cfg->log_per_sec;
  w.st = st;
  w.owner = st ? st->uid : 0;
  w.verdict = 1;
  w.p.focus = focus;
  w.p.len = skb->len;
  if (hit) {
    __builtin_memcpy(&w.plan, hit, sizeof(w.plan));
    w.set = hit->set & 1;
    w.matched = hit->matched;
    w.logs = hit->logs;
    w.top = hit->top;
  } else {
    match(&w);
    if (st) {
      w.plan.nslots = tag_slots(st, w.plan.slots);
      if (gen) {
        if (focus == L45_FOCUS_IN)
          cache_put(&st->in, &st->in_more, &w, gen, version, genp, cfg);
        else
          cache_put(&st->out, &st->out_more, &w, gen, version, genp, cfg);
      }
      count_tags(w.plan.slots, w.plan.nslots, focus, skb->len, w.payload);
    }
  }
  if (!w.matched) return 1;
  if (!(w.plan.flags & L45_PLAN_SLOW)) return apply_plan(skb, &w.plan, w.payload);
  if (w.logs) w.cookie = bpf_get_socket_cookie(skb);
  bpf_loop(w.top, apply_step, &w, 0);
  if (w.mark_set) skb->mark = w.mark;
  if (w.prio_set) skb->priority = w.prio;
  return w.verdict;
}

/* ---- the socket's tags, read in place --------------------------------------------------- */

/* perf: bpf_sk_storage_get() costs a packet about 35 ns on the test machine, most of it the
 * helper's calls and returns (bench/tag_overhead.sh's l45sto_* probes). The first thing that
 * helper does is read one slot of the socket's storage cache (the map's cache_idx) and check
 * the slot holds this map's data; the packet programs read that slot themselves, read only
 * (bpf_rdonly_cast() to plain memory: Linux 6.17 or newer; the kernel's field offsets come
 * from its BTF). What they read: the socket's plan, when it holds. Anything else (no plan, one
 * with per-packet rules, the slot holding another map's data) goes to the helper, as before.
 * l45_egress_old and l45_ingress_old, which never read in place, are loaded instead where the
 * kernel refuses these (src/tag/programs.cpp). */
struct bpf_local_storage_map___l45 {
  __u16 cache_idx;
} __attribute__((preserve_access_index));
struct bpf_local_storage_data___l45 {
  void* smap;
  __u8 data[0];
} __attribute__((preserve_access_index));
struct bpf_local_storage___l45 {
  void* cache[16]; /* BPF_LOCAL_STORAGE_CACHE_SIZE */
} __attribute__((preserve_access_index));
struct atomic64___l45 {
  __s64 counter;
} __attribute__((preserve_access_index));
struct sock_common___l45 {
  struct atomic64___l45 skc_cookie;
} __attribute__((preserve_access_index));
struct sock___l45 {
  struct sock_common___l45 __sk_common;
  struct bpf_local_storage___l45* sk_bpf_storage;
} __attribute__((preserve_access_index));
struct sk_buff___l45 {
  struct sock___l45* sk;
} __attribute__((preserve_access_index));

extern void* bpf_cast_to_kern_ctx(void* obj) __ksym __weak;
extern void* bpf_rdonly_cast(const void* obj, __u32 btf_id) __ksym __weak;

enum { TAGS_NONE, TAGS_HERE, TAGS_ASK };

/* TAGS_NONE: the socket has no local storage at all (so no tags); TAGS_HERE: *st is its tags,
 * read only; TAGS_ASK: the cache slot holds something else, bpf_sk_storage_get() must look. */
static __always_inline int tags_in_place(struct __sk_buff* skb, const struct l45_sk_tags** st) {
  struct sk_buff___l45* k = bpf_cast_to_kern_ctx(skb);
  struct sock___l45* sk = k->sk;
  if (!sk) return TAGS_ASK; /* skb->sk was checked; the verifier asks again */
  struct bpf_local_storage___l45* ls = sk->sk_bpf_storage;
  if (!ls) return TAGS_NONE;
  __u32 idx = ((struct bpf_local_storage_map___l45*)&l45_tags)->cache_idx;
  void* const* cache = bpf_rdonly_cast(ls, 0);
  const struct bpf_local_storage_data___l45* sd = bpf_rdonly_cast(cache[idx & 15], 0);
  if (!sd || sd->smap != (void*)&l45_tags) return TAGS_ASK;
  *st = (const struct l45_sk_tags*)sd->data;
  return TAGS_HERE;
}

/* The socket's cookie as the kernel keeps it: 0 until someone asks for it
 * (bpf_get_socket_cookie(), SO_COOKIE, sock_diag). */
static __always_inline __u64 cookie_in_place(struct __sk_buff* skb) {
  struct sk_buff___l45* k = bpf_cast_to_kern_ctx(skb);
  struct sock___l45* sk = k->sk;
  if (!sk) return 0;
  return sk->__sk_common.skc_cookie.counter;
}

/* ---- a CPU's recent plans (l45_recent) ------------------------------------------------------ */

static __always_inline __u32 recent_index(__u8 focus, __u64 cookie) {
  return (focus & 1) * L45_RECENT + (__u32)(cookie & (L45_RECENT - 1));
}

/* The verdict for a packet of the socket with this cookie when this CPU has a copy of its plan
 * for `focus`, made under this tags epoch and the current rules generation, and the packet has
 * the plan's key; else -1. Reads no socket memory. */
static __always_inline int recent_get(struct __sk_buff* skb, __u8 focus, __u64 cookie, __u64 epoch,
                                      struct plan* pl) {
  __u32 idx = recent_index(focus, cookie);
  const struct recent* e = bpf_map_lookup_elem(&l45_recent, &idx);
  if (!e) return -1;
  __u32 seq = *(volatile const __u32*)&e->seq;
  if (seq & 1) return -1;
  barrier();
  if (e->cookie != cookie || e->epoch != epoch || e->c.gen != rules_gen()) return -1;
  __u32 payload = 0;
  if (!key_match(&e->c, &e->m, skb, &payload)) return -1;
  plan_from(&e->c, pl);
  __builtin_memcpy(&pl->slots[1], e->m.slots, sizeof(e->m.slots));
  pl->logs = 0;
  barrier();
  if (*(volatile const __u32*)&e->seq != seq) return -1;
  count_tags(pl->slots, pl->nslots, focus, skb->len, payload);
  return apply_plan(skb, pl, payload);
}

/* The plan of this socket and direction, as cache_get() takes it, copied on the way to this
 * CPU's recent plans (perf: the copy goes straight there, not through the stack, which is near
 * the verifier's limit). Not a plan with per-packet rules: those need the tags. 0: no plan
 * holds, or another program on this CPU is writing that entry (this one interrupted it).
 * The epoch is read before the tags version is read again: a copy of a plan made for tags
 * that changed has either another version (no copy) or an epoch the change moved past (a copy
 * never taken). */
static __noinline int cache_get_recent(struct __sk_buff* skb, const struct l45_sk_tags* st,
                                       __u8 focus, __u32 version, struct plan* pl) {
  /* the helper only for a socket without a cookie yet (it gives it one): a socket whose plan
   * has per-packet rules comes here on each packet, twice (tags read in place, then looked up) */
  __u64 cookie = cookie_in_place(skb);
  if (!cookie) cookie = bpf_get_socket_cookie(skb);
  __u32 idx = recent_index(focus, cookie);
  struct recent* e = bpf_map_lookup_elem(&l45_recent, &idx);
  if (!e) return 0;
  __u32 seq = e->seq;
  if (seq & 1) return 0;
  e->seq = seq + 1;
  barrier();
  __u32 payload = 0;
  int ok = socket_plan(skb, st, focus, version, pl, &payload, (union cache_words*)&e->c);
  e->cookie = 0;
  const __u64* ep = tags_epoch();
  if (ep) e->epoch = *(volatile const __u64*)ep;
  barrier();
  if (ok && ep && *(volatile const __u32*)&st->version == version && !(pl->flags & L45_PLAN_SLOW)) {
    e->cookie = cookie;
    __builtin_memcpy(e->m.slots, &pl->slots[1], sizeof(e->m.slots));
    if (e->c.family == 6) {
      /* the rest of the key as the packet has it: it matched */
      const __u8* h = (void*)(long)skb->data;
      if ((void*)(h + 40) <= (void*)(long)skb->data_end)
        __builtin_memcpy(e->m.addrs6, h + 16, sizeof(e->m.addrs6));
      else
        e->cookie = 0;
    }
  }
  barrier();
  e->seq = seq + 2;
  return ok ? payload + 1 : 0;
}

/* A packet of a tagged socket whose plan holds: its verdict. -1: no plan holds, or (with no
 * writable `rw`, the tags read in place) the plan has rules that act per packet: the caller
 * looks the tags up and comes again. (Looking them up here instead puts walk_skb() under the
 * in-place path too: the verifier then refuses l45_egress, 528 bytes of stack, 907k
 * instructions.) */
static __always_inline int planned(struct __sk_buff* skb, __u8 focus, const struct l45_sk_tags* st,
                                   struct l45_sk_tags* rw, __u32 version, const int recent,
                                   struct plan* plp) {
  /* perf: a packet whose socket's plan holds reads its headers in place, the plan and the
   * counters, and nothing else: for IPv4 and one tag, one cache line of the storage value
   * (bench/tag_overhead.sh) */
  __u32 payload = 0;
  if (recent) {
    /* payload + 1, or 0 */
    payload = cache_get_recent(skb, st, focus, version, plp);
    if (!payload--) return -1;
  } else {
    union cache_words u;
    if (!socket_plan(skb, st, focus, version, plp, &payload, &u)) return -1;
  }
  if ((plp->flags & L45_PLAN_SLOW) && !rw) return -1;
  count_tags(plp->slots, plp->nslots, focus, skb->len, payload);
  if (plp->flags & L45_PLAN_SLOW) return walk_skb(skb, focus, rw, plp);
  return apply_plan(skb, plp, payload);
}

/* A packet of a socket without tags: only rules that match untagged sockets see it. */
static __always_inline int untagged(struct __sk_buff* skb, __u8 focus) {
  __u32 key = 0;
  struct l45_config* cfg = bpf_map_lookup_elem(&l45_config, &key);
  /* perf: an untagged socket skips the rules unless one of them matches untagged sockets */
  if (!cfg || !cfg->untagged[cfg->active & 1]) return 1;
  return walk_skb(skb, focus, 0, 0);
}

static __always_inline int handle_skb(struct __sk_buff* skb, __u8 focus, const int in_place) {
  struct bpf_sock* sk = skb->sk;
  if (!sk) return 1;
  struct plan pl; /* one for both ways to a plan (perf: the stack is near the verifier's limit) */
  if (in_place) {
    /* perf: first this CPU's copy of the socket's plan (recent_get()) */
    const __u64* e = tags_epoch();
    /* a socket whose cookie nobody asked for (0) has no copy: most untagged ones */
    __u64 cookie = cookie_in_place(skb);
    if (e && cookie) {
      __u64 epoch = *(volatile const __u64*)e;
      int v = recent_get(skb, focus, cookie, epoch, &pl);
      if (v >= 0) return v;
    }
    const struct l45_sk_tags* ro = 0;
    int where = tags_in_place(skb, &ro);
    if (where == TAGS_NONE) return untagged(skb, focus);
    if (where == TAGS_HERE) {
      /* the version and the count in one load (each load in place is checked) */
      __u64 head = *(volatile const __u64*)ro;
      if (head >> 32 == 0) return untagged(skb, focus);
      int v = planned(skb, focus, ro, 0, (__u32)head, in_place, &pl);
      if (v >= 0) return v;
    }
  }
  /* perf: no bpf_sk_fullsock(): these hooks run with a full socket in skb->sk (the kernel's
   * BPF_CGROUP_RUN_PROG_INET_EGRESS/INGRESS), and bpf_sk_storage_get() checks it again */
  struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, sk, 0, 0);
  if (!st || st->count == 0) return untagged(skb, focus);
  int v = planned(skb, focus, st, st, *(volatile const __u32*)&st->version, in_place, &pl);
  return v >= 0 ? v : walk_skb(skb, focus, st, 0);
}

static __always_inline int egress_verdict(int v) {
  if (v == 0) return 0;
  if (v == 2) return 2;
  return v == 3 ? 3 : 1;
}

SEC("cgroup_skb/egress")
int l45_egress(struct __sk_buff* skb) {
  return egress_verdict(handle_skb(skb, L45_FOCUS_OUT, 1));
}

SEC("cgroup_skb/ingress")
int l45_ingress(struct __sk_buff* skb) {
  return handle_skb(skb, L45_FOCUS_IN, 1) ? 1 : 0;
}

/* The same without reading the tags in place, for kernels before 6.17. */
SEC("cgroup_skb/egress")
int l45_egress_old(struct __sk_buff* skb) {
  return egress_verdict(handle_skb(skb, L45_FOCUS_OUT, 0));
}

SEC("cgroup_skb/ingress")
int l45_ingress_old(struct __sk_buff* skb) {
  return handle_skb(skb, L45_FOCUS_IN, 0) ? 1 : 0;
}

/* Policy routing: the first `out ... mark N` rule a tagged socket matches sets SO_MARK before
 * the kernel looks up the route for connect(), so the SYN already takes the marked path. */
static long mark_step(__u32 i, void* data) {
  struct walk* w = data;
  if (i >= w->nrules || i >= L45_RULES_MAX) return 1;
  __u32 idx = w->set * L45_RULES_MAX + i;
  struct l45_rule* r = bpf_map_lookup_elem(&l45_rules, &idx);
  if (!r) return 1;
  if (r->action != L45_ACT_MARK) return 0;
  /* the source address and port are not chosen yet: such rules mark per packet only */
  if (r->cond & (L45_C_SRC | L45_C_SPORT)) return 0;
  if (rule_match(r, &w->p, w->st, w->owner) < 0) return 0;
  w->mark = (__u32)r->arg;
  w->mark_set = 1;
  return 1;
}

static __always_inline int connect_mark(struct bpf_sock_addr* ctx, __u8 family) {
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return 1;
  struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, sk, 0, 0);
  if (!st || st->count == 0) return 1;
  __u32 key = 0;
  struct l45_config* cfg = bpf_map_lookup_elem(&l45_config, &key);
  if (!cfg) return 1;
  __u32 set = cfg->active & 1;
  __u32 nrules = cfg->count[set];
  struct pkt p = {};
  p.focus = L45_FOCUS_OUT;
  p.proto = ctx->protocol;
  p.family = family;
  p.dport = bpf_ntohs((__u16)ctx->user_port);
  p.sport = 0;
  if (family == 4) {
    __u32 d = ctx->user_ip4;
    __builtin_memcpy(p.dst, &d, 4);
  } else {
    __u32 d[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
    __builtin_memcpy(p.dst, d, 16);
  }
  struct walk w = {};
  w.p = p;
  w.st = st;
  w.owner = st->uid;
  w.set = set;
  w.nrules = nrules;
  bpf_loop(L45_RULES_MAX, mark_step, &w, 0);
  if (w.mark_set) {
    int mark = (int)w.mark;
    bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  }
  return 1;
}

SEC("cgroup/connect4")
int l45_connect4(struct bpf_sock_addr* ctx) {
  return connect_mark(ctx, 4);
}

SEC("cgroup/connect6")
int l45_connect6(struct bpf_sock_addr* ctx) {
  return connect_mark(ctx, 6);
}

/* ---- export: the tag on the wire ---------------------------------------------------------- */

static long export_step(__u32 i, void* data) {
  struct walk* w = data;
  if (i >= w->nrules || i >= L45_RULES_MAX) return 1;
  __u32 idx = w->set * L45_RULES_MAX + i;
  struct l45_rule* r = bpf_map_lookup_elem(&l45_rules, &idx);
  if (!r) return 1;
  if (r->action != L45_ACT_EXPORT) return 0;
  int ti = rule_match(r, &w->p, w->st, w->owner);
  if (ti < 0 || ti >= L45_TAG_MAX) return 0;
  w->mark = ti + 1; /* the tag to export */
  w->mark_set = 1;
  __u32 set = w->set;
  struct l45_rule_counters* rc = bpf_map_lookup_elem(&l45_rule_stats, &set);
  if (rc) rc->rule[i & (L45_RULES_MAX - 1)].packets++; /* connections that export */
  return 1;
}

/* Which tag (if any) an `export` rule puts on this connection's segments. */
static __always_inline void choose_export(struct bpf_sock_ops* skops, struct l45_sk_tags* st) {
  __u32 key = 0;
  struct l45_config* cfg = bpf_map_lookup_elem(&l45_config, &key);
  if (!cfg) return;
  struct walk w = {};
  w.set = cfg->active & 1;
  w.nrules = cfg->count[w.set];
  w.st = st;
  w.owner = st->uid;
  w.p.focus = L45_FOCUS_OUT;
  w.p.proto = IPPROTO_TCP;
  w.p.sport = skops->local_port;
  w.p.dport = bpf_ntohl(skops->remote_port) & 0xffff;
  if (skops->family == AF_INET) {
    w.p.family = 4;
    __u32 l = skops->local_ip4, r = skops->remote_ip4;
    __builtin_memcpy(w.p.src, &l, 4);
    __builtin_memcpy(w.p.dst, &r, 4);
  } else {
    w.p.family = 6;
    /* one 4-byte context load each: the verifier refuses the 8-byte loads clang would merge */
    __u32 l[4], r[4];
    l[0] = *(volatile __u32*)&skops->local_ip6[0];
    l[1] = *(volatile __u32*)&skops->local_ip6[1];
    l[2] = *(volatile __u32*)&skops->local_ip6[2];
    l[3] = *(volatile __u32*)&skops->local_ip6[3];
    r[0] = *(volatile __u32*)&skops->remote_ip6[0];
    r[1] = *(volatile __u32*)&skops->remote_ip6[1];
    r[2] = *(volatile __u32*)&skops->remote_ip6[2];
    r[3] = *(volatile __u32*)&skops->remote_ip6[3];
    __builtin_memcpy(w.p.src, l, 16);
    __builtin_memcpy(w.p.dst, r, 16);
  }
  bpf_loop(L45_RULES_MAX, export_step, &w, 0);
  st->export_tag = w.mark_set ? w.mark : 0;
  if (w.mark_set)
    bpf_sock_ops_cb_flags_set(skops,
                              skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

struct l45_tcpopt {
  __u8 kind, len;
  __u8 exid[2];
  __u8 app[4];
  __u8 vkind;
  __u8 value[L45_TAG_STR_MAX];
};

static __always_inline __u32 opt_len(const struct l45_tag* t) {
  if (t->kind == L45_TAG_NUM) return L45_TCPOPT_HDR + 8;
  __u32 n = t->len;
  if (n > L45_TAG_STR_MAX) n = L45_TAG_STR_MAX;
  return L45_TCPOPT_HDR + n;
}

SEC("sockops")
int l45_sockops(struct bpf_sock_ops* skops) {
  struct bpf_sock* sk = skops->sk;
  if (!sk) return 1;
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
      struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, sk, 0, 0);
      if (st && st->count) choose_export(skops, st);
      return 1;
    }
    case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
    case BPF_SOCK_OPS_WRITE_HDR_OPT_CB: {
      struct l45_sk_tags* st = bpf_sk_storage_get(&l45_tags, sk, 0, 0);
      if (!st || st->export_tag == 0 || st->export_tag > st->count) return 1;
      __u32 i = (st->export_tag - 1) & (L45_TAG_MAX - 1);
      struct l45_tag* t = &st->tags[i];
      __u32 len = opt_len(t);
      if (skops->op == BPF_SOCK_OPS_HDR_OPT_LEN_CB) {
        bpf_reserve_hdr_opt(skops, len, 0); /* no room (a full SYN): this segment goes without */
        return 1;
      }
      struct l45_tcpopt o = {};
      o.kind = L45_TCPOPT_KIND;
      o.len = len;
      o.exid[0] = L45_TCPOPT_EXID >> 8;
      o.exid[1] = L45_TCPOPT_EXID & 0xff;
      __u32 app = bpf_htonl(t->app);
      __builtin_memcpy(o.app, &app, 4);
      o.vkind = t->kind;
      __builtin_memcpy(o.value, t->value, L45_TAG_STR_MAX);
      if (len > sizeof(o)) return 1;
      bpf_store_hdr_opt(skops, &o, len, 0);
      return 1;
    }
  }
  return 1;
}

/* ---- forward: tags read from the wire on a forwarding host ------------------------------- */

/* Reads the l45 option from a TCP header at `off` with `hlen` bytes of it; fills `t`. */
static __always_inline int read_tag_option(struct __sk_buff* skb, __u32 off, __u32 hlen,
                                           struct l45_tag* t) {
  __u32 pos = off + 20, end = off + hlen;
  for (int i = 0; i < 20; i++) { /* at most 40 option bytes: 20 two-byte options */
    if (pos >= end) return 0;
    __u8 kl[2];
    if (bpf_skb_load_bytes(skb, pos, kl, 1)) return 0;
    if (kl[0] == 0) return 0; /* end of options */
    if (kl[0] == 1) {         /* no-op */
      pos++;
      continue;
    }
    if (bpf_skb_load_bytes(skb, pos, kl, 2)) return 0;
    if (kl[1] < 2) return 0;
    if (kl[0] == L45_TCPOPT_KIND && kl[1] >= L45_TCPOPT_HDR + 1 &&
        kl[1] <= L45_TCPOPT_HDR + L45_TAG_STR_MAX) {
      struct l45_tcpopt o = {};
      if (bpf_skb_load_bytes(skb, pos, &o, L45_TCPOPT_HDR)) return 0;
      if (o.exid[0] == (L45_TCPOPT_EXID >> 8) && o.exid[1] == (L45_TCPOPT_EXID & 0xff)) {
        __u32 vlen = kl[1] - L45_TCPOPT_HDR;
        if (vlen == 0 || vlen > L45_TAG_STR_MAX) return 0;
        if (bpf_skb_load_bytes(skb, pos + L45_TCPOPT_HDR, t->value, vlen)) return 0;
        __u32 app;
        __builtin_memcpy(&app, o.app, 4);
        t->app = bpf_ntohl(app);
        t->kind = o.vkind;
        t->len = o.vkind == L45_TAG_NUM ? 8 : vlen;
        t->flags = 0;
        if (o.vkind == L45_TAG_NUM && vlen != 8) return 0;
        if (o.vkind != L45_TAG_NUM && o.vkind != L45_TAG_STR) return 0;
        return t->app != 0;
      }
    }
    pos += kl[1];
  }
  return 0;
}

SEC("tc")
int l45_forward(struct __sk_buff* skb) {
  __u32 key = 0;
  struct l45_config* cfg = bpf_map_lookup_elem(&l45_config, &key);
  if (!cfg) return TC_ACT_OK;
  struct walk w = {};
  w.set = cfg->active & 1;
  w.nrules = cfg->count[w.set];
  w.log_per_sec = cfg->log_per_sec;
  if (w.nrules == 0) return TC_ACT_OK;
  struct pkt* p = &w.p;
  p->focus = L45_FOCUS_FORWARD;
  p->len = skb->len;
  __u32 l3 = 14, l4, ip_total;
  if (skb->protocol == bpf_htons(ETH_P_IP)) {
    __u8 h[20];
    if (bpf_skb_load_bytes(skb, l3, h, 20)) return TC_ACT_OK;
    p->family = 4;
    p->proto = h[9];
    __builtin_memcpy(p->src, h + 12, 4);
    __builtin_memcpy(p->dst, h + 16, 4);
    l4 = l3 + (h[0] & 0xf) * 4;
    ip_total = (__u32)h[2] << 8 | h[3];
    ip_total += l3;
  } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
    __u8 h[40];
    if (bpf_skb_load_bytes(skb, l3, h, 40)) return TC_ACT_OK;
    p->family = 6;
    p->proto = h[6];
    __builtin_memcpy(p->src, h + 8, 16);
    __builtin_memcpy(p->dst, h + 24, 16);
    l4 = l3 + 40;
    ip_total = ((__u32)h[4] << 8 | h[5]) + 40 + l3;
  } else {
    return TC_ACT_OK;
  }
  __u32 hlen = 0;
  if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
    __u8 ports[4];
    if (bpf_skb_load_bytes(skb, l4, ports, 4)) return TC_ACT_OK;
    p->sport = (__u16)ports[0] << 8 | ports[1];
    p->dport = (__u16)ports[2] << 8 | ports[3];
    if (p->proto == IPPROTO_TCP) {
      __u8 doff;
      if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1)) return TC_ACT_OK;
      hlen = (doff >> 4) * 4;
    } else {
      hlen = 8;
    }
  }
  w.payload = ip_total > l4 + hlen ? ip_total - l4 - hlen : 0;
  struct l45_sk_tags* st = bpf_map_lookup_elem(&l45_scratch, &key);
  if (!st) return TC_ACT_OK;
  st->count = 0;
  st->uid = 0;
  if (p->proto == IPPROTO_TCP && hlen > 20 && read_tag_option(skb, l4, hlen, &st->tags[0]))
    st->count = 1;
  w.st = st->count ? st : 0;
  w.verdict = 1;
  match(&w);
  bpf_loop(w.top, apply_step, &w, 0);
  if (w.mark_set) skb->mark = w.mark;
  if (w.prio_set) skb->priority = w.prio;
  return w.verdict == 0 || w.verdict == 2 ? TC_ACT_SHOT : TC_ACT_OK;
}
