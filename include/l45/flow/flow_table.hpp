// FlowTable<T>: the table a stateful middlebox keys every packet into. It owns the flows; code
// outside keeps a FlowHandle (slot index + generation), never a pointer across callbacks: a
// handle to a flow that was closed reads as null even after its slot holds a new flow.
//
// Key (FlowKey, key_of()): IP version, protocol, both addresses and both ports in canonical
// order (the lower (address, port) endpoint first), so both directions of a connection give the
// same key; key_of() also says which endpoint sent the packet (KeyDir: Forward = the key's
// first endpoint). ICMP/ICMPv6 echo (and timestamp) messages key on their identifier in place
// of both ports; other informational ICMP on port 0. An ICMP error keys to the flow it QUOTES
// (RFC 792, RFC 4443 2.4: the invoking packet's IP header and at least 8 bytes of transport),
// travelling against the quoted packet's direction, with KeyedPacket::icmp_error set; a quote
// too short for the ports gives no key. With
// `key_vlan` the innermost VLAN id is part of the key. A non-first fragment has no ports:
// key_of() returns nullopt for it (defragment first: ip_defrag.hpp), as for packets with no IP.
// Keys are compared whole; the hash only picks where to look.
//
// Hash: the 40-byte key as five 64-bit words, each XORed with a secret drawn from a
// per-table seed, multiplied in pairs into 128-bit products folded to 64 bits (wyhash's step),
// the three results mixed by one more such product. The seed (FlowTableConfig::hash_seed) keeps
// an attacker who does not know it from aiming colliding flows at one probe chain: the default
// seed is fixed (runs replay identically), a live engine should draw a random one. Written here in
// 20 lines: no library needed.
//
// Config (FlowTableConfig): max_flows, when_full (EvictOldestIdle | RefuseNew), timeouts[]
// (per class), hash_seed.
//
// Layout and why the payload is a template: FlowTable<T> keeps one fixed core record per slot
// (key, last-seen time, LRU links, generation, timeout class: 64 bytes) and one user T per slot
// in a parallel array, both sized for max_flows at construction (slab: no allocation per packet
// or per flow). The core is not a template (flow_table.cpp) so every user of the table (TCP
// tracker, reassembly, engine, services) shares one tested implementation, and T holds what
// they need without a void* or a virtual call. The index is open addressing with linear probing
// and backward-shift deletion (no tombstones) over 2 * max_flows buckets of 4 bytes: the slot in
// the low bits, as many high bits of the hash as are left above it (a tag, compared before the
// key: 11 bits at 1,000,000 flows). insert, find, erase, touch are O(1) expected; erase hashes
// the keys it shifts again, as the bucket has no room for their home.
// Bytes per flow at full load: 64 + 8 (index, rounded up to a power of two) + sizeof(T): 80.4
// for an 8-byte T at 1,000,000 flows (memory_bytes(), flow_table_test prints it).
//
// Timeouts: each flow is in one of up to kMaxTimeoutClasses idle-timeout classes (the caller
// picks one per TCP state, e.g. SYN_SENT 30 s, ESTABLISHED 2 h, CLOSED 10 s), each class one
// intrusive doubly-linked list ordered by last-seen time. touch() moves a flow to its list's
// tail in O(1); expire(now) closes, oldest last-seen first, every flow idle longer than its
// class's timeout, looking only at the heads of the lists (O(classes) per flow closed), with
// an optional budget per call. A class per state (not a free Duration per flow) is what keeps
// each list sorted by deadline and the order exact. Time is the caller's (packet time for
// files); a touch older than the newest in its list is taken as that newest time (lists stay
// sorted when the capture is reordered). set_timeout_class() puts the flow at its new list's
// tail, as a touch does: call it on the packet that changed the state.
//
// Caps: at max_flows a new key is either refused (RefuseNew: DropReason FlowTableFull) or the
// flow idle longest over all classes is closed to make room (EvictOldestIdle: FlowEvicted,
// the callback gets CloseReason::Evicted). Every refusal, eviction and expiry is counted.
//
// Drop reasons: FlowTableFull (80), FlowEvicted (81), FlowIdleTimeout (82), counted in
// stats().drops; FlowNoKey (83) is for the caller to count when key_of() returns nullopt.
// Events raised: none (the engine raises flow events from the callbacks).
//
//   FlowTable<Conn> table({.max_flows = 1 << 20, .timeouts = {Duration::seconds(30), ...}});
//   auto kp = key_of(view, {});
//   if (!kp) { drops.add(DropReason::FlowNoKey); return; }
//   auto r = table.find_or_insert(kp->key, kp->dir, now, on_close);
//   if (!r.handle) { /* refused: counted in table.stats().drops */ }
//   Side s = table.side_of(r.handle, kp->dir);
//   table.touch(r.handle, now);
//   table.expire(now, [](FlowHandle h, CloseReason why, Conn& c) { log(c, why); });
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "l45/core/assert.hpp"
#include "l45/core/drop_reason.hpp"
#include "l45/core/huge_alloc.hpp"
#include "l45/core/time.hpp"
#include "l45/flow/direction.hpp"
#include "l45/packet/decode.hpp"
#include "l45/packet/ip_addr.hpp"

namespace l45 {

// Forward: sent by the key's first (lower) endpoint; Reverse: by the second. (Not FlowDir, which
// is relative to the flow's first packet: flow_dir() converts.)
enum class KeyDir : uint8_t { Forward, Reverse };
constexpr KeyDir reverse(KeyDir d) {
  return d == KeyDir::Forward ? KeyDir::Reverse : KeyDir::Forward;
}

// 40 bytes, no padding: compared and hashed as five 64-bit words.
struct FlowKey {
  std::array<uint8_t, 16> addr_a{};  // the lower (address, port) endpoint; IPv4 in the first 4
  std::array<uint8_t, 16> addr_b{};
  uint16_t port_a = 0;  // TCP/UDP port, ICMP echo id, else 0
  uint16_t port_b = 0;
  uint16_t vlan = 0;   // innermost VLAN id with FlowKeyOptions::key_vlan, else 0
  uint8_t proto = 0;   // IP protocol (of the quoted packet for an ICMP error)
  uint8_t family = 0;  // 4 or 6

  IpAddr a() const;
  IpAddr b() const;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};
static_assert(sizeof(FlowKey) == 40);

// A key's five 64-bit words (its bytes in memory order), as separate values: what the fast
// path of key_into() builds in registers and the hash reads there. perf: a key read back
// right after it was written a field at a time (or through an array on the stack) waits for
// the stores, the loads being wider than them (l45 bench many-flows: 13% of the time, perf).
struct FlowKeyWords {
  uint64_t w0, w1, w2, w3, w4;
  static FlowKeyWords of(const FlowKey& k) {
    FlowKeyWords r;
    const auto* p = reinterpret_cast<const std::byte*>(&k);
    std::memcpy(&r.w0, p, 8);
    std::memcpy(&r.w1, p + 8, 8);
    std::memcpy(&r.w2, p + 16, 8);
    std::memcpy(&r.w3, p + 24, 8);
    std::memcpy(&r.w4, p + 32, 8);
    return r;
  }
  void store(FlowKey& k) const {
    auto* p = reinterpret_cast<std::byte*>(&k);
    std::memcpy(p, &w0, 8);
    std::memcpy(p + 8, &w1, 8);
    std::memcpy(p + 16, &w2, 8);
    std::memcpy(p + 24, &w3, 8);
    std::memcpy(p + 32, &w4, 8);
  }
};

// The key of endpoints (src, sport) -> (dst, dport): canonical order, and which side sent it.
struct KeyedPacket {
  FlowKey key;
  KeyDir dir = KeyDir::Forward;
  bool icmp_error = false;  // an ICMP/ICMPv6 error keyed to the flow it quotes
};
KeyedPacket make_flow_key(uint8_t proto, IpAddr src, uint16_t sport, IpAddr dst, uint16_t dport,
                          uint16_t vlan = 0);

struct FlowKeyOptions {
  bool key_vlan = false;  // innermost VLAN id is part of the key
};
std::optional<KeyedPacket> key_of(const PacketView& v, const FlowKeyOptions& opt = {});
// The same written into `out` (unspecified when it returns false: no key). perf: no copy of
// the result, and the common packet (one IPv4 header, TCP or UDP, not a fragment) is keyed
// inline, without the general walk (l45 bench many-flows: the call was ~25 instructions a
// packet); key_into_general() is the rest.
inline bool key_into(const PacketView& v, const FlowKeyOptions& opt, KeyedPacket& out);
// The same, and the key's five words in `w`, for hashing them where they are (hash(k, w)).
inline bool key_into(const PacketView& v, const FlowKeyOptions& opt, KeyedPacket& out,
                     FlowKeyWords& w);
bool key_into_general(const PacketView& v, const FlowKeyOptions& opt, KeyedPacket& out);

// The key's hash under `seed`. FlowKeyHasher derives its secrets from the seed once.
uint64_t flow_key_hash(const FlowKey& k, uint64_t seed);
// 64x64 -> 128-bit product folded to 64 bits (the "mum" step of wyhash and of Go's runtime
// hash): every input bit reaches the middle of the result in one multiply.
namespace detail {
inline uint64_t fold_mul(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
}  // namespace detail
class FlowKeyHasher {
 public:
  explicit FlowKeyHasher(uint64_t seed);
  // perf: inline, as every packet hashes its key (l45 bench many-flows).
  uint64_t operator()(const FlowKey& k) const { return words(FlowKeyWords::of(k)); }
  uint64_t words(const FlowKeyWords& k) const {
    const uint64_t w[5] = {k.w0, k.w1, k.w2, k.w3, k.w4};
    // perf: three multiplies for 40 bytes, then one to mix them (l45 bench many-flows: the
    // xxHash64 rounds this replaces were 97 instructions of a 1,700-instruction packet).
    using detail::fold_mul;
    const uint64_t a = fold_mul(w[0] ^ secret_[0], w[1] ^ secret_[1]);
    const uint64_t b = fold_mul(w[2] ^ secret_[2], w[3] ^ secret_[3]);
    const uint64_t c = fold_mul(w[4] ^ secret_[4], secret_[5]);
    return fold_mul(a ^ secret_[6], b ^ c ^ secret_[7]);
  }

 private:
  std::array<uint64_t, 8> secret_{};
};

struct FlowHandle {
  uint32_t index = 0;
  uint32_t generation = 0;  // 0 never names a live flow: a default handle is null
  explicit operator bool() const { return generation != 0; }
  friend bool operator==(FlowHandle, FlowHandle) = default;
};

enum class CloseReason : uint8_t { IdleTimeout, Evicted, Erased, Cleared };
const char* close_reason_name(CloseReason r);  // "idle_timeout", "evicted", ...

enum class FullPolicy : uint8_t { EvictOldestIdle, RefuseNew };

inline constexpr size_t kMaxTimeoutClasses = 8;

struct FlowTableConfig {
  uint32_t max_flows = 65536;
  FullPolicy when_full = FullPolicy::EvictOldestIdle;
  // Idle timeout of each class; new flows start in class 0. A zero or negative Duration means
  // the class never expires by idleness.
  std::array<Duration, kMaxTimeoutClasses> timeouts{Duration::seconds(60)};
  uint64_t hash_seed = 0x9e3779b97f4a7c15ull;
  // Tests only: replaces flow_key_hash (e.g. a constant, to force every key into one chain).
  uint64_t (*hash_for_test)(const FlowKey&, uint64_t) = nullptr;
};

struct FlowTableStats {
  uint64_t created = 0;
  uint64_t active = 0;
  uint64_t peak = 0;
  uint64_t evicted = 0;
  uint64_t refused = 0;
  uint64_t expired = 0;
  uint64_t erased = 0;
  uint64_t lookups = 0;
  uint64_t hits = 0;
  DropCounters drops;  // FlowTableFull, FlowEvicted, FlowIdleTimeout
};

namespace detail {

// The non-template part of FlowTable: index, core records, lists, counters.
class FlowTableCore {
 public:
  static constexpr uint32_t kNil = UINT32_MAX;

  explicit FlowTableCore(const FlowTableConfig& cfg);

  const FlowTableConfig& config() const { return cfg_; }
  const FlowTableStats& stats() const { return stats_; }
  uint32_t size() const { return uint32_t(stats_.active); }

  // The hash find() and insert_new() look `k` up by (hash_for_test when set).
  uint64_t hash(const FlowKey& k) const {
    return cfg_.hash_for_test ? cfg_.hash_for_test(k, cfg_.hash_seed) : hasher_(k);
  }
  // The same, `w` being k's words (key_into() gives them).
  uint64_t hash(const FlowKey& k, const FlowKeyWords& w) const {
    return cfg_.hash_for_test ? cfg_.hash_for_test(k, cfg_.hash_seed) : hasher_.words(w);
  }
  // Slot of a live flow with this key, or kNil. Counts a lookup (and a hit). `h` is hash(k).
  // perf: inline, one per packet (l45 bench many-flows).
  uint32_t find(const FlowKey& k, uint64_t h) {
    ++stats_.lookups;
    const uint32_t tag = tag_of(h);
    for (uint32_t pos = uint32_t(h) & mask_;; pos = (pos + 1) & mask_) {
      const Bucket b = buckets_[pos];
      if (b == 0) return kNil;
      if ((b >> slot_bits_) == tag && same_key(recs_[(b & slot_mask_) - 1].key, k)) {
        ++stats_.hits;
        return (b & slot_mask_) - 1;
      }
    }
  }
  uint32_t find(const FlowKey& k) { return find(k, hash(k)); }
  // A free slot for `k` (not present: the caller checked), linked at the tail of class 0, or
  // kNil when the table is full (the caller evicts or refuses). `h` is hash(k).
  uint32_t insert_new(const FlowKey& k, uint64_t h, KeyDir initiator, Timestamp now);
  uint32_t insert_new(const FlowKey& k, KeyDir initiator, Timestamp now) {
    return insert_new(k, hash(k), initiator, now);
  }
  // perf: prefetch hints for a batch (l45 bench many-flows: the index, the record and the
  // value of a flow are three cache misses when the flows outgrow the cache). They read only
  // what the index holds now and never fault; a wrong guess costs a wasted prefetch.
  void prefetch_bucket(uint64_t h) const { __builtin_prefetch(&buckets_[uint32_t(h) & mask_]); }
  // The slot of the first bucket on h's probe run whose tag is h's (the key is not compared),
  // or kNil; its record is prefetched.
  uint32_t guess_slot(uint64_t h) const {
    const uint32_t tag = tag_of(h);
    for (uint32_t pos = uint32_t(h) & mask_, n = 0; n < 4; pos = (pos + 1) & mask_, ++n) {
      const Bucket b = buckets_[pos];
      if (b == 0) return kNil;
      if ((b >> slot_bits_) == tag) {
        __builtin_prefetch(&recs_[(b & slot_mask_) - 1]);
        return (b & slot_mask_) - 1;
      }
    }
    return kNil;
  }
  // perf: hints for closing slot i soon (expiry): its index bucket, and the record after it
  // in its list, the next to expire there. Returns that slot, or kNil.
  uint32_t prefetch_release(uint32_t i) const {
    const Record& r = recs_[i];
    __builtin_prefetch(&buckets_[uint32_t(hash(r.key)) & mask_]);
    if (r.next != kNil) __builtin_prefetch(&recs_[r.next]);
    return r.next;
  }
  // Unlinks and frees slot i; its generation moves on, so handles to it go stale.
  void release(uint32_t i);
  // Oldest last-seen flow over all classes (kNil when empty).
  uint32_t oldest() const;
  // Oldest flow idle longer than its class's timeout at `now`, or kNil.
  // perf: inline, so that "nothing is due", the answer on almost every packet, is one compare
  // at the caller (l45 bench many-flows: the call was ~20 instructions a packet).
  uint32_t oldest_expired(Timestamp now) const {
    return now.ns <= min_deadline_ns_ ? kNil : scan_expired(now);
  }
  // perf: inline with unlink() and link_tail(), one touch per packet (l45 bench many-flows:
  // the call was ~10 of its ~28 instructions); set_class() inline while the class stays.
  [[gnu::always_inline]] void touch(uint32_t i, Timestamp now) {
    Record& r = recs_[i];
    if (now > r.last_seen) r.last_seen = now;
    if (lists_[r.cls].tail == i) return;
    unlink(i);
    link_tail(i);
  }
  void set_class(uint32_t i, uint8_t cls) {
    if (recs_[i].cls != cls) change_class(i, cls);
  }

  bool live(FlowHandle h) const {
    return h.index < recs_.size() && recs_[h.index].generation == h.generation &&
           recs_[h.index].live;
  }
  FlowHandle handle(uint32_t i) const { return {i, recs_[i].generation}; }
  const FlowKey& key(uint32_t i) const { return recs_[i].key; }
  Timestamp last_seen(uint32_t i) const { return recs_[i].last_seen; }
  uint8_t timeout_class(uint32_t i) const { return recs_[i].cls; }
  KeyDir initiator(uint32_t i) const { return KeyDir(recs_[i].initiator); }
  size_t memory_bytes() const;
  uint32_t capacity() const { return uint32_t(recs_.size()); }

  void count_close(CloseReason r);
  void count_refused();

  struct Record {
    FlowKey key;           // 40
    Timestamp last_seen;   // 8
    uint32_t prev = kNil;  // class list (or free list: next only)
    uint32_t next = kNil;
    uint32_t generation = 1;  // moves on at each release; never 0
    uint8_t cls = 0;
    uint8_t initiator = 0;
    bool live = false;
  };
  // One cache line: the bucket's hash is not kept here (erase hashes the key again).

 private:
  // perf: five 64-bit compares inline; the defaulted operator== calls memcmp per array member
  // (l45 bench many-flows: memcmp was 4.7% of the time).
  static bool same_key(const FlowKey& a, const FlowKey& b) {
    uint64_t x[5], y[5];
    std::memcpy(x, &a, sizeof x);
    std::memcpy(y, &b, sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
  }
  // perf: a bucket is 4 bytes, (tag << slot_bits_) | (slot + 1), 0 when empty: 8 bytes a flow
  // less than slot and hash side by side (l45 bench --synthetic-flows).
  using Bucket = uint32_t;
  uint32_t tag_of(uint64_t h) const { return uint32_t(h >> 32) >> slot_bits_; }
  struct List {
    uint32_t head = kNil;
    uint32_t tail = kNil;
  };
  uint32_t scan_expired(Timestamp now) const;
  void change_class(uint32_t i, uint8_t cls);
  void link_tail(uint32_t i) {
    Record& r = recs_[i];
    List& l = lists_[r.cls];
    // Keep the list sorted by last-seen time even when the caller's time steps back.
    if (l.tail != kNil && recs_[l.tail].last_seen > r.last_seen)
      r.last_seen = recs_[l.tail].last_seen;
    if (const Duration t = cfg_.timeouts[r.cls]; t.ns > 0)
      min_deadline_ns_ = std::min(min_deadline_ns_, r.last_seen.ns + t.ns);
    r.prev = l.tail;
    r.next = kNil;
    if (l.tail != kNil)
      recs_[l.tail].next = i;
    else
      l.head = i;
    l.tail = i;
  }
  void unlink(uint32_t i) {
    Record& r = recs_[i];
    List& l = lists_[r.cls];
    if (r.prev != kNil)
      recs_[r.prev].next = r.next;
    else
      l.head = r.next;
    if (r.next != kNil)
      recs_[r.next].prev = r.prev;
    else
      l.tail = r.prev;
    r.prev = r.next = kNil;
  }
  void index_erase(uint32_t i);

  FlowTableConfig cfg_;
  FlowKeyHasher hasher_;
  // perf: huge pages (l45 bench many-flows: records, index and values are read at random).
  std::vector<Record, HugeAlloc<Record>> recs_;
  std::vector<Bucket, HugeAlloc<Bucket>> buckets_;
  uint32_t mask_ = 0;
  uint32_t slot_bits_ = 0;  // bits of slot + 1; the tag has the 32 - slot_bits_ above them
  uint32_t slot_mask_ = 0;
  uint32_t free_head_ = kNil;
  std::array<List, kMaxTimeoutClasses> lists_{};
  // perf: no list head can expire before this (ns): a lower bound kept by link_tail() and made
  // exact by each scan, so oldest_expired() on every packet is one compare, not a walk over
  // the classes (l45 bench many-flows: the walk was 4% of the instructions).
  mutable int64_t min_deadline_ns_ = INT64_MIN;
  FlowTableStats stats_;
};

}  // namespace detail

template <typename T>
class FlowTable {
 public:
  struct InsertResult {
    FlowHandle handle;     // null when refused
    bool created = false;  // false: the key was already present
  };

  explicit FlowTable(const FlowTableConfig& cfg = {}) : core_(cfg), values_(core_.capacity()) {}

  // Null when no live flow has this key.
  FlowHandle find(const FlowKey& k) { return find(k, hash(k)); }
  // The same with the key's hash(k) computed ahead.
  FlowHandle find(const FlowKey& k, uint64_t h) {
    uint32_t i = core_.find(k, h);
    return i == detail::FlowTableCore::kNil ? FlowHandle{} : core_.handle(i);
  }

  // What find() and find_or_insert() look a key up by: a batch computes it once, ahead, and
  // prefetches with it.
  uint64_t hash(const FlowKey& k) const { return core_.hash(k); }
  uint64_t hash(const FlowKey& k, const FlowKeyWords& w) const { return core_.hash(k, w); }
  // perf: a batch's prefetches, in two steps a few packets apart: the index bucket of `h`,
  // then (once it has arrived) the record and value of the flow it most likely names.
  void prefetch_index(uint64_t h) const { core_.prefetch_bucket(h); }
  // Returns the value prefetched (for a third step into what it points to), or nullptr. It may
  // be another flow's, or a free slot's: read it only as a hint.
  const T* prefetch_flow(uint64_t h) const {
    const uint32_t i = core_.guess_slot(h);
    if (i == detail::FlowTableCore::kNil) return nullptr;
    const T* v = &values_[i];
    prefetch_value(*v);
    return v;
  }

  // The flow of `k`, created (T{} value, class 0, last seen `now`, `initiator` = the client)
  // when absent. When the table is full: EvictOldestIdle closes the flow idle longest first
  // (on_close(handle, CloseReason::Evicted, value) before its slot is reused); RefuseNew
  // returns a null handle. Does not touch an existing flow.
  template <typename OnClose>
  InsertResult find_or_insert(const FlowKey& k, KeyDir initiator, Timestamp now,
                              OnClose&& on_close) {
    return find_or_insert(k, hash(k), initiator, now, on_close);
  }
  // The same with the key's hash(k) computed ahead.
  template <typename OnClose>
  InsertResult find_or_insert(const FlowKey& k, uint64_t h, KeyDir initiator, Timestamp now,
                              OnClose&& on_close) {
    if (uint32_t i = core_.find(k, h); i != detail::FlowTableCore::kNil)
      return {core_.handle(i), false};
    return insert_absent(k, h, initiator, now, on_close);
  }
  InsertResult find_or_insert(const FlowKey& k, KeyDir initiator, Timestamp now) {
    return find_or_insert(k, initiator, now, [](FlowHandle, CloseReason, T&) {});
  }

  // perf: the value, direction, touch and timeout class of a handle known to be live (the one
  // find_or_insert() just returned, before anything closed it), without the check each of the
  // accessors below makes (l45 bench many-flows: ~25 instructions a packet). Asserted in debug
  // builds.
  T& live(FlowHandle h) {
    L45_ASSERT(core_.live(h));
    return values_[h.index];
  }
  FlowDir live_flow_dir(FlowHandle h, KeyDir dir) const {
    L45_ASSERT(core_.live(h));
    return core_.initiator(h.index) == dir ? FlowDir::Forward : FlowDir::Reverse;
  }
  void live_touch(FlowHandle h, Timestamp now) {
    L45_ASSERT(core_.live(h));
    core_.touch(h.index, now);
  }
  uint8_t live_timeout_class(FlowHandle h) const {
    L45_ASSERT(core_.live(h));
    return core_.timeout_class(h.index);
  }
  void live_set_timeout_class(FlowHandle h, uint8_t cls) {
    L45_ASSERT(core_.live(h) && cls < kMaxTimeoutClasses);
    core_.set_class(h.index, cls);
  }

  // The flow's value, or nullptr when the handle is stale or null.
  T* get(FlowHandle h) { return core_.live(h) ? &values_[h.index] : nullptr; }
  const T* get(FlowHandle h) const { return core_.live(h) ? &values_[h.index] : nullptr; }
  bool contains(FlowHandle h) const { return core_.live(h); }
  const FlowKey* key(FlowHandle h) const { return core_.live(h) ? &core_.key(h.index) : nullptr; }

  // Client when `dir` is the direction of the packet that created the flow.
  // The packet's direction relative to the flow's first packet (what TcpConnection takes).
  FlowDir flow_dir(FlowHandle h, KeyDir dir) const {
    return core_.live(h) && core_.initiator(h.index) == dir ? FlowDir::Forward : FlowDir::Reverse;
  }
  // The first sender as Client: right for UDP and ICMP; TCP roles (a SYN-ACK seen before its
  // SYN) come from TcpConnection::side_of().
  Side side_of(FlowHandle h, KeyDir dir) const {
    return core_.live(h) && core_.initiator(h.index) == dir ? Side::Client : Side::Server;
  }

  // A packet of the flow was seen at `now`. No-op on a stale handle.
  void touch(FlowHandle h, Timestamp now) {
    if (core_.live(h)) core_.touch(h.index, now);
  }
  // Moves the flow to timeout class `cls` (< kMaxTimeoutClasses), e.g. on a TCP state change.
  void set_timeout_class(FlowHandle h, uint8_t cls) {
    if (core_.live(h) && cls < kMaxTimeoutClasses) core_.set_class(h.index, cls);
  }
  // The flow's timeout class (0 for a stale handle).
  uint8_t timeout_class(FlowHandle h) const {
    return core_.live(h) ? core_.timeout_class(h.index) : 0;
  }
  std::optional<Timestamp> last_seen(FlowHandle h) const {
    if (!core_.live(h)) return std::nullopt;
    return core_.last_seen(h.index);
  }

  // Closes the flow (no callback: the caller knows). False on a stale handle. The key may be
  // inserted again at once: that is a new flow with a new generation.
  bool erase(FlowHandle h) {
    if (!core_.live(h)) return false;
    close(h.index, CloseReason::Erased);
    return true;
  }

  // Some flow is idle longer than its class's timeout at `now` (what expire() would close).
  bool expiry_due(Timestamp now) const {
    return core_.oldest_expired(now) != detail::FlowTableCore::kNil;
  }

  // Closes flows idle longer than their class's timeout at `now`, oldest last-seen first,
  // calling on_close(handle, CloseReason::IdleTimeout, value) for each before freeing it; at
  // most `budget` of them. Returns how many were closed.
  template <typename OnClose>
  size_t expire(Timestamp now, OnClose&& on_close, size_t budget = SIZE_MAX) {
    size_t n = 0;
    while (n < budget) {
      uint32_t i = core_.oldest_expired(now);
      if (i == detail::FlowTableCore::kNil) break;
      // perf: what closing i and the flow after it will read, while on_close works (l45 bench
      // many-flows: flows expire 5 s after their close, long out of the cache).
      if (const uint32_t next = core_.prefetch_release(i); next != detail::FlowTableCore::kNil)
        prefetch_value(values_[next]);
      on_close(core_.handle(i), CloseReason::IdleTimeout, values_[i]);
      close(i, CloseReason::IdleTimeout);
      ++n;
    }
    return n;
  }

  // Closes every flow, oldest first, with CloseReason::Cleared.
  template <typename OnClose>
  void clear(OnClose&& on_close) {
    for (uint32_t i; (i = core_.oldest()) != detail::FlowTableCore::kNil;) {
      on_close(core_.handle(i), CloseReason::Cleared, values_[i]);
      close(i, CloseReason::Cleared);
    }
  }

  // Calls f(handle, value) for every live flow, in slot order (O(max_flows): for reports, not
  // per packet).
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t i = 0; i < core_.capacity(); ++i)
      if (core_.live(core_.handle(i))) f(core_.handle(i), values_[i]);
  }

  const FlowTableStats& stats() const { return core_.stats(); }
  uint32_t size() const { return core_.size(); }
  uint32_t max_flows() const { return core_.capacity(); }
  // Bytes the table holds (records, values, index), all allocated at construction. A T that
  // owns heap memory accounts for it itself.
  size_t memory_bytes() const {
    return core_.memory_bytes() + values_.capacity() * sizeof(T) + sizeof(*this) - sizeof(core_);
  }

 private:
  template <typename OnClose>
  InsertResult insert_absent(const FlowKey& k, uint64_t h, KeyDir initiator, Timestamp now,
                             OnClose& on_close) {
    uint32_t i = core_.insert_new(k, h, initiator, now);
    if (i == detail::FlowTableCore::kNil) {
      uint32_t victim = core_.oldest();
      if (core_.config().when_full == FullPolicy::RefuseNew ||
          victim == detail::FlowTableCore::kNil) {
        core_.count_refused();
        return {};
      }
      on_close(core_.handle(victim), CloseReason::Evicted, values_[victim]);
      close(victim, CloseReason::Evicted);
      i = core_.insert_new(k, h, initiator, now);
    }
    return {core_.handle(i), true};
  }
  void close(uint32_t i, CloseReason r) {
    values_[i] = T{};  // drops what the value owned before the slot is reused
    core_.count_close(r);
    core_.release(i);
  }

  // Every line of a value, from its start. perf: written out where it is used; g++ 12 deleted
  // a loop of prefetches whose byte count was a function argument tested against 0, even
  // inlined with a constant (l45 bench many-flows 1.16x the time), so check the generated code
  // (objdump -d: prefetcht0 in Engine::process) after changing these.
  static void prefetch_value(const T& v) {
    const char* p = reinterpret_cast<const char*>(&v);
    for (size_t b = 0; b < sizeof(T); b += 64)
      __builtin_prefetch(p + b);
  }

  detail::FlowTableCore core_;
  std::vector<T, HugeAlloc<T>> values_;
};

// The key of one IPv4 packet from its header's address words and its ports (key_into()'s fast
// path, and the engine's for a TcpFrame).
// perf: the key straight from the header's address words, as make_flow_key() builds it for
// two IPv4 endpoints (no IpAddr in between; l45 bench many-flows). Its five words are built in
// registers and stored whole: a hash that read back a key written a field at a time waited for
// the stores, the loads being wider than them (l45 bench many-flows: 13% of the time on that
// load, perf).
[[gnu::always_inline]] inline void key_ipv4(const std::byte* ip, uint16_t sp, uint16_t dp,
                                            uint16_t vlan, uint8_t proto, KeyedPacket& out,
                                            FlowKeyWords& w) {
  const uint32_t s = load_be32(ip + 12), d = load_be32(ip + 16);
  const bool src_first = s < d || (s == d && sp <= dp);
  uint32_t a, b;  // the addresses' bytes in memory order
  std::memcpy(&a, ip + (src_first ? 12 : 16), 4);
  std::memcpy(&b, ip + (src_first ? 16 : 12), 4);
  const uint64_t port_a = src_first ? sp : dp, port_b = src_first ? dp : sp;
  w.w0 = a;
  w.w1 = 0;
  w.w2 = b;
  w.w3 = 0;
  w.w4 = port_a | port_b << 16 | uint64_t(vlan) << 32 | uint64_t(proto) << 48 |
         uint64_t(IpFamily::V4) << 56;
  static_assert(offsetof(FlowKey, addr_b) == 16 && offsetof(FlowKey, port_a) == 32 &&
                offsetof(FlowKey, port_b) == 34 && offsetof(FlowKey, vlan) == 36 &&
                offsetof(FlowKey, proto) == 38 && offsetof(FlowKey, family) == 39);
  w.store(out.key);
  out.dir = src_first ? KeyDir::Forward : KeyDir::Reverse;
  out.icmp_error = false;
}

[[gnu::always_inline]] inline bool key_into(const PacketView& v, const FlowKeyOptions& opt,
                                            KeyedPacket& out, FlowKeyWords& w) {
  auto ips = v.ip_layers();
  if (ips.empty()) return false;
  const IpLayer& ip = ips.back();
  const FragmentInfo f = v.fragment();
  if (std::endian::native != std::endian::little || ip.version != 4 || !v.has_ports() ||
      (f.is_fragment && f.offset_bytes != 0)) {
    if (!key_into_general(v, opt, out)) return false;
    w = FlowKeyWords::of(out.key);
    return true;
  }
  const uint16_t vlan = opt.key_vlan && !v.vlan_ids().empty() ? v.vlan_ids().back() : 0;
  key_ipv4(ip.header, v.src_port(), v.dst_port(), vlan, ip.proto, out, w);
  return true;
}

[[gnu::always_inline]] inline bool key_into(const PacketView& v, const FlowKeyOptions& opt,
                                            KeyedPacket& out) {
  FlowKeyWords w;
  return key_into(v, opt, out, w);
}

}  // namespace l45
