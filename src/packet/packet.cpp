#include "l45/packet/packet.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "l45/core/assert.hpp"

namespace l45 {

Packet::Buffer* Packet::Buffer::allocate(size_t capacity) {
  L45_CHECK(capacity <= UINT32_MAX);
  void* mem = std::malloc(sizeof(Buffer) + capacity);
  if (!mem) throw std::bad_alloc();
  auto* b = new (mem) Buffer();
  b->capacity = static_cast<uint32_t>(capacity);
  return b;
}

Packet::Buffer* Packet::Buffer::wrap(Bytes data, std::shared_ptr<const void> keepalive) {
  auto* b = allocate(0);
  b->external = data.data();
  b->capacity = static_cast<uint32_t>(data.size());
  b->keepalive = std::move(keepalive);
  return b;
}

void Packet::Buffer::destroy(Buffer* b) {
  b->~Buffer();
  std::free(b);
}

Packet::~Packet() {
  if (buf_) buf_->release();
}

Packet::Packet(Packet&& o) noexcept : buf_(o.buf_), off_(o.off_), len_(o.len_), meta_(o.meta_) {
  o.buf_ = nullptr;
  o.off_ = o.len_ = 0;
}

Packet& Packet::operator=(Packet&& o) noexcept {
  if (this != &o) {
    if (buf_) buf_->release();
    buf_ = o.buf_;
    off_ = o.off_;
    len_ = o.len_;
    meta_ = o.meta_;
    o.buf_ = nullptr;
    o.off_ = o.len_ = 0;
  }
  return *this;
}

Packet Packet::copy_of(Bytes data, PacketMeta meta, size_t headroom) {
  Packet p;
  p.buf_ = Buffer::allocate(headroom + data.size());
  if (!data.empty()) std::memcpy(p.buf_->storage() + headroom, data.data(), data.size());
  p.off_ = static_cast<uint32_t>(headroom);
  p.len_ = static_cast<uint32_t>(data.size());
  p.meta_ = meta;
  if (p.meta_.wire_len < p.len_) p.meta_.wire_len = p.len_;
  return p;
}

Packet Packet::zeroed(size_t len, PacketMeta meta, size_t headroom) {
  Packet p;
  p.buf_ = Buffer::allocate(headroom + len);
  std::memset(p.buf_->storage(), 0, headroom + len);
  p.off_ = static_cast<uint32_t>(headroom);
  p.len_ = static_cast<uint32_t>(len);
  p.meta_ = meta;
  if (p.meta_.wire_len < p.len_) p.meta_.wire_len = p.len_;
  return p;
}

Packet Packet::borrow(Bytes data, std::shared_ptr<const void> keepalive, PacketMeta meta) {
  Packet p;
  p.buf_ = Buffer::wrap(data, std::move(keepalive));
  p.off_ = 0;
  p.len_ = static_cast<uint32_t>(data.size());
  p.meta_ = meta;
  if (p.meta_.wire_len < p.len_) p.meta_.wire_len = p.len_;
  return p;
}

Packet Packet::share() const {
  Packet p;
  if (buf_) buf_->retain();
  p.buf_ = buf_;
  p.off_ = off_;
  p.len_ = len_;
  p.meta_ = meta_;
  return p;
}

Packet Packet::slice(const Packet& whole, size_t offset, size_t len, PacketMeta meta) {
  L45_CHECK(offset + len <= whole.len_ && whole.off_ + offset <= UINT32_MAX);
  Packet p = whole.share();
  p.off_ = static_cast<uint32_t>(whole.off_ + offset);
  p.len_ = static_cast<uint32_t>(len);
  p.meta_ = meta;
  if (p.meta_.wire_len < p.len_) p.meta_.wire_len = p.len_;
  return p;
}

bool Packet::is_unique() const {
  return buf_ && !buf_->external && buf_->refs.load(std::memory_order_acquire) == 1;
}

void Packet::make_unique(size_t headroom, size_t tailroom) {
  Buffer* nb = Buffer::allocate(headroom + len_ + tailroom);
  std::memset(nb->storage(), 0, headroom);
  if (len_) std::memcpy(nb->storage() + headroom, base() + off_, len_);
  std::memset(nb->storage() + headroom + len_, 0, tailroom);
  if (buf_) buf_->release();
  buf_ = nb;
  off_ = static_cast<uint32_t>(headroom);
}

MutBytes Packet::mutable_data() {
  if (!is_unique()) make_unique(kDefaultHeadroom, 0);
  return {base() + off_, len_};
}

void Packet::resize(size_t len) {
  // The bytes the capture cut (wire_len - size) stay cut: the wire length moves with the data.
  const uint32_t cut = meta_.wire_len > len_ ? meta_.wire_len - len_ : 0;
  if (len <= len_) {
    if (!is_unique()) make_unique(kDefaultHeadroom, 0);
  } else {
    size_t room = buf_ && !buf_->external ? buf_->capacity - off_ : 0;
    if (!is_unique() || room < len) make_unique(off_ ? off_ : kDefaultHeadroom, len - len_ + 64);
    std::memset(base() + off_ + len_, 0, len - len_);
  }
  len_ = static_cast<uint32_t>(len);
  meta_.wire_len = len_ + cut;
}

MutBytes Packet::push_front(size_t n) {
  if (!is_unique() || off_ < n) make_unique(n + kDefaultHeadroom, 0);
  off_ -= static_cast<uint32_t>(n);
  len_ += static_cast<uint32_t>(n);
  meta_.wire_len += static_cast<uint32_t>(n);
  std::memset(base() + off_, 0, n);
  return {base() + off_, len_};
}

void Packet::pull_front(size_t n) {
  L45_CHECK(n <= len_);
  off_ += static_cast<uint32_t>(n);
  len_ -= static_cast<uint32_t>(n);
  meta_.wire_len = meta_.wire_len >= n ? meta_.wire_len - static_cast<uint32_t>(n) : 0;
}

}  // namespace l45
