// Packet: one owned frame plus its metadata. Move-only; ownership shows in signatures
// (by value = takes it, Packet& = borrows it, const PacketView& = only reads it).
//
// The bytes live in a reference-counted buffer with headroom, so a packet can be shared
// cheaply (share()) and can grow at the front (push_front(), for encapsulation) without a
// copy. A packet may also borrow bytes that live elsewhere (a memory-mapped capture file)
// while a keep-alive handle holds that memory. Every mutation goes through mutable_data()
// (or the other mutating calls), which first copies the bytes when they are shared or
// borrowed: Click's uniqueify.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "l45/core/time.hpp"
#include "l45/packet/bytes.hpp"
#include "l45/packet/link_type.hpp"

namespace l45 {

enum class Direction : uint8_t { Unknown = 0, Inbound, Outbound };
// What should happen to a packet that passes through an inline element (NFQUEUE, a bridge).
enum class Verdict : uint8_t { Pending = 0, Accept, Drop };

struct PacketMeta {
  Timestamp ts;                  // capture time
  uint32_t wire_len = 0;         // length on the wire (>= captured length)
  uint32_t ingress = 0;          // interface index or source id; 0 = unknown
  uint32_t queue_id = 0;         // NFQUEUE queue number, when from NFQUEUE
  uint32_t queue_packet_id = 0;  // NFQUEUE packet id, for the verdict
  uint32_t mark = 0;             // netfilter mark (read from and written to NFQUEUE)
  uint64_t frame = 0;            // 1-based ordinal in its source
  LinkType link = LinkType::Ethernet;
  Direction direction = Direction::Unknown;
  Verdict verdict = Verdict::Pending;
};

class Packet {
  // One allocation: this header followed by `capacity` bytes, or (borrowed) a pointer to
  // external bytes plus the handle that keeps them alive. perf: defined here so that the
  // reference counting of hold() and of Hold's destructor and moves is inline (l45 bench
  // bench-small and many-flows, callgrind); allocating and freeing stay in packet.cpp.
  struct Buffer {
    std::atomic<uint32_t> refs{1};
    uint32_t capacity = 0;
    const std::byte* external = nullptr;
    std::shared_ptr<const void> keepalive;

    std::byte* storage() { return reinterpret_cast<std::byte*>(this + 1); }
    static Buffer* allocate(size_t capacity);
    static Buffer* wrap(Bytes data, std::shared_ptr<const void> keepalive);
    // Frees a buffer whose last reference went.
    static void destroy(Buffer* b);
    void retain() { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() {
      if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
    }
  };

 public:
  static constexpr size_t kDefaultHeadroom = 64;

  Packet() = default;
  ~Packet();
  Packet(Packet&& o) noexcept;
  Packet& operator=(Packet&& o) noexcept;
  Packet(const Packet&) = delete;
  Packet& operator=(const Packet&) = delete;

  // A new packet holding a copy of `data`, with `headroom` free bytes in front.
  static Packet copy_of(Bytes data, PacketMeta meta = {}, size_t headroom = kDefaultHeadroom);
  // A packet of `len` zero bytes.
  static Packet zeroed(size_t len, PacketMeta meta = {}, size_t headroom = kDefaultHeadroom);
  // A packet that reads `data` in place; `keepalive` keeps that memory alive for as long as
  // any packet refers to it. The first mutation copies.
  static Packet borrow(Bytes data, std::shared_ptr<const void> keepalive, PacketMeta meta = {});

  // Another handle on the same bytes (no copy); both see the bytes read-only until one of
  // them mutates, which copies.
  Packet share() const;
  // A packet of the `len` bytes at `offset` inside `whole`'s bytes, sharing them like share()
  // (no copy, no allocation): how a reader hands out the records of one mapped file.
  // Requires offset + len <= whole.size() and whole's offset + `offset` < 2^32.
  static Packet slice(const Packet& whole, size_t offset, size_t len, PacketMeta meta = {});

  bool empty() const { return len_ == 0; }
  size_t size() const { return len_; }
  Bytes data() const { return {base() + off_, len_}; }
  PacketMeta& meta() { return meta_; }
  const PacketMeta& meta() const { return meta_; }

  // Writable bytes: copies first when the buffer is shared or borrowed.
  MutBytes mutable_data();
  // Grows or shrinks the end (new bytes are zero).
  void resize(size_t len);
  // Adds `n` zero bytes at the front, using headroom when there is some.
  MutBytes push_front(size_t n);
  // Removes `n` bytes from the front (n <= size()).
  void pull_front(size_t n);
  // True when no other Packet shares the bytes and they are not borrowed.
  bool is_unique() const;
  // True when the bytes are borrowed (Packet::borrow): they live in memory that lives anyway,
  // such as a mapped capture file, so holding them costs neither a copy nor memory.
  bool is_borrowed() const { return buf_ && buf_->external; }

  // Keeps the packet's bytes alive and unchanged without the packet or its metadata (a
  // mutation of any packet sharing them copies first). What a reassembler keeps to compare a
  // retransmission with the bytes it delivered, instead of a copy of them. Move-only.
  class Hold {
   public:
    // perf: inline, reference count included: a reassembler moves and drops mostly empty
    // holds once a segment, and the out-of-line move and destructor were ~40 instructions a
    // data segment (l45 bench bench-small, callgrind).
    Hold() = default;
    ~Hold() {
      if (buf_) buf_->release();
    }
    Hold(Hold&& o) noexcept : buf_(o.buf_) { o.buf_ = nullptr; }
    Hold& operator=(Hold&& o) noexcept {
      if (this != &o) {
        if (buf_) buf_->release();
        buf_ = o.buf_;
        o.buf_ = nullptr;
      }
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    // Trades the two holds' buffers; no reference count changes. perf: what a reassembler
    // uses to move a hold into a slot it knows is empty, where a move assignment would test
    // for and release what the slot held (l45 bench bench-small, callgrind).
    void swap(Hold& o) noexcept { std::swap(buf_, o.buf_); }
    explicit operator bool() const { return buf_ != nullptr; }
    // It keeps p's bytes alive (holds the buffer p reads): it can stand for p.hold().
    bool holds(const Packet& p) const { return buf_ != nullptr && buf_ == p.buf_; }

   private:
    friend class Packet;
    Buffer* buf_ = nullptr;
  };
  Hold hold() const {
    Hold h;
    if (buf_) buf_->retain();
    h.buf_ = buf_;
    return h;
  }

 private:
  // perf: inline, as data() is, once a packet and more (l45 bench many-flows: the call was
  // ~3% of the samples, perf).
  std::byte* base() const {
    if (!buf_) return nullptr;
    return buf_->external ? const_cast<std::byte*>(buf_->external) : buf_->storage();
  }
  void make_unique(size_t headroom, size_t tailroom);

  Buffer* buf_ = nullptr;
  uint32_t off_ = 0;
  uint32_t len_ = 0;
  PacketMeta meta_{};
};

// A batch of packets moved through io Sources and Sinks. Reuses its storage across reads.
class PacketBatch {
 public:
  explicit PacketBatch(size_t capacity = 64) : capacity_(capacity) { pkts_.reserve(capacity); }
  size_t capacity() const { return capacity_; }
  size_t size() const { return pkts_.size(); }
  bool empty() const { return pkts_.empty(); }
  bool full() const { return pkts_.size() >= capacity_; }
  void push(Packet p) { pkts_.push_back(std::move(p)); }
  void clear() { pkts_.clear(); }
  Packet& operator[](size_t i) { return pkts_[i]; }
  const Packet& operator[](size_t i) const { return pkts_[i]; }
  auto begin() { return pkts_.begin(); }
  auto end() { return pkts_.end(); }
  auto begin() const { return pkts_.begin(); }
  auto end() const { return pkts_.end(); }
  std::vector<Packet>& packets() { return pkts_; }

 private:
  size_t capacity_;
  std::vector<Packet> pkts_;
};

}  // namespace l45
