/* The layout shared by the tag pillar's eBPF programs (src/bpf/tag.bpf.c) and the daemon that
 * loads them (src/tag/): map values, compiled rules, log events. Plain C, no padding holes the
 * compiler could fill differently on the two sides (every struct is a multiple of 8 bytes with
 * explicit padding).
 */
#ifndef L45_TAG_BPF_ABI_H
#define L45_TAG_BPF_ABI_H

#include "l45/tag.h"

#define L45_RULES_MAX 32 /* per rule set; two sets (active, staged) make a reload atomic */

/* setsockopt(fd, SOL_L45, L45_SO_TAG_SIGNED, &tag, sizeof tag), for the daemon only: marks the
 * socket's tag equal to this one (flags zero) L45_TAG_F_SIGNED once the daemon has verified its
 * signature; one tag a call. In the kernel, under the socket's lock like every other change of
 * the tags, so a tag the application changes meanwhile is never lost (a read-modify-write of the
 * storage map from user space would lose it). EPERM for any caller but root (who can write the
 * storage map anyway); ENOENT when the tag is not on the socket. Beside the public options 1 to
 * 4 of l45/tag.h. */
#define L45_SO_TAG_SIGNED 16

/* What a socket's packets of one direction do under the active rules, worked out from the first
 * of them and kept so the next ones skip the rule walk, the rule map and the tags' hash lookups
 * (a plan): which rules matched, where the tags are counted, and the result of the actions that
 * do not depend on the packet. It holds for packets with the protocol, addresses and ports it
 * was made for (a connected socket's packets all have them; an unconnected UDP socket's
 * datagrams to another peer miss) while the rules generation (map l45_generation, bumped by
 * every rules load) and the socket's tags version are the ones it was made for. The key is kept
 * as the headers carry it, so a packet is compared in place. `seq` is a sequence lock (odd:
 * being written), so a reader never takes one writer's key with another's plan.
 *
 * 48 bytes: what an IPv4 packet of a socket with one tag reads of it; the rest is in
 * l45_sk_cache_more. The kernel keeps a storage value 8 bytes into a cache line, so the ingress
 * plan shares that line with the version and count (and with the kernel's own pointer that
 * bpf_sk_storage_get() reads), the egress one has the next. */
struct l45_sk_cache {
  l45_u32 seq;
  l45_u32 version; /* l45_sk_tags.version */
  l45_u64 gen;     /* rules generation; 0: empty */
  l45_u8 family;   /* 4 or 6: the IP header's version */
  l45_u8 proto;
  l45_u8 flags;    /* L45_PLAN_* */
  l45_u8 nslots;   /* how many tags are counted: `slot`, then l45_sk_cache_more.slots */
  l45_u32 ports;   /* source and destination port as in the header (0 unless TCP or UDP) */
  l45_u8 addrs[8]; /* IPv4: source and destination address as in the header; IPv6: the first
                      8 bytes of the source */
  l45_u32 matched; /* bit i: rule i of the set matched */
  l45_u32 mark;    /* the last matched `mark` rule's value (L45_PLAN_MARK) */
  l45_u32 prio;    /* the last matched `priority` rule's value (L45_PLAN_PRIO) */
  l45_u8 set;      /* the rule set the bits index */
  l45_u8 top;      /* 1 + the highest matched rule */
  l45_u16 slot;    /* the first tag's counters: index in map l45_tag_counts */
};
struct l45_sk_cache_more {
  l45_u8 addrs6[24];              /* IPv6: the rest of the source, the destination */
  l45_u32 logs;                   /* the matched rules that log */
  l45_u16 slots[L45_TAG_MAX - 1]; /* the other tags' counters */
  l45_u8 pad[6];
};
#define L45_PLAN_MARK 0x1
#define L45_PLAN_PRIO 0x2
#define L45_PLAN_DROP 0x4
#define L45_PLAN_SLOW 0x8 /* a matched rule logs or throttles: the actions run rule by rule */

/* The socket-local storage value; what a packet reads first comes first (see l45_sk_cache). */
struct l45_sk_tags {
  l45_u32 version; /* bumped after every change of the tags, their flags or uid */
  l45_u32 count;
  struct l45_sk_cache in, out; /* the plans of L45_FOCUS_IN and L45_FOCUS_OUT */
  struct l45_sk_cache_more in_more, out_more;
  l45_u32 uid;        /* the user that last set the tags */
  l45_u32 export_tag; /* 1 + index of the tag an `export` rule puts on the wire; 0: none */
  struct l45_tag tags[L45_TAG_MAX];
};

/* `export`: the tag on the wire, in every TCP segment, as an experimental option with an
 * experiment id (RFC 6994): kind 253, length, ExID 0x4c45 ("LE"), application id (big endian),
 * value kind (1 number, 2 string), then the value: a number as 8 bytes little endian, a string
 * as its 1 to 16 bytes. A number takes 17 bytes, so it fits in a SYN beside MSS, SACK, window
 * scale and timestamps; a string of up to 11 bytes does too. */
#define L45_TCPOPT_KIND 253
#define L45_TCPOPT_EXID 0x4c45
#define L45_TCPOPT_HDR 9 /* kind, length, ExID, app, value kind */

/* focus */
#define L45_FOCUS_OUT 0
#define L45_FOCUS_IN 1
#define L45_FOCUS_FORWARD 2

/* action */
#define L45_ACT_LOG 1
#define L45_ACT_MARK 2
#define L45_ACT_COUNT 3
#define L45_ACT_DROP 4
#define L45_ACT_THROTTLE 5
#define L45_ACT_PRIORITY 6
#define L45_ACT_EXPORT 7

/* condition bits (struct l45_rule.cond) */
#define L45_C_APP 0x1
#define L45_C_TAG 0x2
#define L45_C_TAG_PREFIX 0x4 /* with L45_C_TAG: value is a prefix of mask_len bytes */
#define L45_C_SRC 0x8
#define L45_C_DST 0x10
#define L45_C_SPORT 0x20
#define L45_C_DPORT 0x40
#define L45_C_PROTO 0x80
#define L45_C_UID 0x100
#define L45_C_TRUSTED 0x200
#define L45_C_UNTRUSTED 0x400
#define L45_C_SIGNED 0x800
/* A rule with none of these matches untagged sockets too. */
#define L45_C_TAG_CONDS (L45_C_APP | L45_C_TAG | L45_C_TRUSTED | L45_C_UNTRUSTED | L45_C_SIGNED)

struct l45_prefix {
  l45_u8 addr[16]; /* IPv4 in the first 4 bytes */
  l45_u8 mask[16]; /* 0xff bits for the prefix; IPv4: only the first 4 bytes */
  l45_u8 family;   /* 4 or 6 */
  l45_u8 pad[7];
};

struct l45_rule {
  l45_u32 cond;
  l45_u8 focus;
  l45_u8 action;
  l45_u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
  l45_u8 tag_kind;
  l45_u32 app;
  l45_u32 uid;
  l45_u8 tag_value[L45_TAG_STR_MAX]; /* already masked */
  l45_u8 tag_mask[L45_TAG_STR_MAX];
  l45_u8 tag_len; /* compared unless L45_C_TAG_PREFIX */
  l45_u8 pad[3];
  l45_u16 sport_lo, sport_hi, dport_lo, dport_hi;
  l45_u32 pad2;
  l45_u64 arg; /* mark, priority, throttle bytes per second */
  struct l45_prefix src, dst;
};

/* config map, one entry */
struct l45_config {
  l45_u32 active;      /* which rule set is live: 0 or 1 */
  l45_u32 count[2];    /* rules in each set */
  l45_u32 log_per_sec; /* log events per rule per second before they are dropped (counted) */
  l45_u32 untagged[2]; /* the set has rules that match untagged sockets */
  l45_u32 pad;
};

/* Counters per rule and per (app, tag), as the daemon reports them (the sums over the CPUs). */
struct l45_counter {
  l45_u64 packets;
  l45_u64 bytes;       /* IP packets as the cgroup hook sees them (headers included) */
  l45_u64 payload;     /* TCP/UDP payload bytes */
  l45_u64 log_dropped; /* log events not sent: rate limit or full ring */
  l45_u64 throttled;   /* packets throttle delayed (out, EDT) or dropped */
};
/* The per-CPU map values. What every packet adds to is apart from the rest and 24 bytes a rule
 * or tag and direction, so a packet that matches a few rules touches one or two cache lines of
 * them: a rule set's counters are one value (map l45_rule_stats, index: the set), a tag's are
 * per direction. */
struct l45_count {
  l45_u64 packets, bytes, payload;
};
struct l45_rule_counters {
  struct l45_count rule[L45_RULES_MAX];
  struct {
    l45_u64 log_dropped, throttled;
  } more[L45_RULES_MAX];
};

/* Per (app, tag) counters: map l45_tag_slots gives the tag's index (slot) in the per-CPU array
 * l45_tag_counts; the programs give each new tag the next slot (l45_tag_next), for good. */
#define L45_TAG_SLOTS 4096
struct l45_tag_key {
  struct l45_tag tag; /* flags zero */
};
struct l45_tag_counter {
  l45_u64 packets[2]; /* [L45_FOCUS_OUT], [L45_FOCUS_IN] */
  l45_u64 bytes[2];
  l45_u64 payload[2];
};
struct l45_tag_counts {
  struct l45_count dir[2]; /* [L45_FOCUS_OUT], [L45_FOCUS_IN] */
};

/* A log event through the ring buffer. */
struct l45_log_event {
  l45_u32 rule; /* index in the set */
  l45_u32 set;
  l45_u32 len;
  l45_u8 focus;
  l45_u8 proto;
  l45_u8 family;
  l45_u8 pad;
  l45_u8 src[16], dst[16];
  l45_u16 sport, dport;
  l45_u32 pad2;
  l45_u64 cookie;     /* the socket's cookie */
  struct l45_tag tag; /* the tag that matched (app zero when the rule had no tag condition) */
};

#endif /* L45_TAG_BPF_ABI_H */
