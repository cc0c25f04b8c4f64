// Inline mode: the fate of each packet, payload edits with sequence remapping, sent packets.
#include <algorithm>
#include <cstring>

#include "inline_state.hpp"
#include "l45/packet/builder.hpp"
#include "l45/packet/bytes.hpp"

namespace l45 {

namespace {

constexpr size_t kMaxEditsPerSide = 4096;  // edits not yet acknowledged: a bound per side

// Where the TCP options of the packet's innermost TCP header are, with each SACK block edge
// (RFC 2018 3) handed to `f(std::byte* edge)`.
template <typename F>
void for_each_sack_edge(std::byte* tcp, size_t header_len, F&& f) {
  size_t i = TcpView::kMinHeaderLen;
  while (i < header_len) {
    const uint8_t kind = load_u8(tcp + i);
    if (kind == 0) break;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= header_len) break;
    const uint8_t len = load_u8(tcp + i + 1);
    if (len < 2 || i + len > header_len) break;
    if (kind == 5 && len >= 10 && (len - 2) % 8 == 0)
      for (size_t e = i + 2; e < i + len; e += 4)
        f(tcp + e);
    i += len;
  }
}

Bytes as_bytes(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

}  // namespace

std::string endpoint_pair_key(IpAddr a, uint16_t pa, IpAddr b, uint16_t pb) {
  if (std::tie(b, pb) < std::tie(a, pa)) {
    std::swap(a, b);
    std::swap(pa, pb);
  }
  std::string k;
  k.reserve(38);
  for (auto [addr, port] : {std::pair{a, pa}, std::pair{b, pb}}) {
    const auto bytes = addr.bytes();
    k.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    k.push_back(char(port >> 8));
    k.push_back(char(port));
  }
  return k;
}

std::string endpoint_pair_key(const Flow& f) {
  return endpoint_pair_key(f.addr(Side::Client), f.port(Side::Client), f.addr(Side::Server),
                           f.port(Side::Server));
}

Side sender_side(const PacketView& v, const IpAddr& client, uint16_t client_port) {
  return v.src_addr() == client && v.src_port() == client_port ? Side::Client : Side::Server;
}

MonitorContext::Remap* MonitorContext::remap_for(const Flow& f, bool create) {
  const std::string key = endpoint_pair_key(f);
  if (auto it = remaps_.find(key); it != remaps_.end()) return it->second.get();
  if (!create) return nullptr;
  auto r = std::make_unique<Remap>();
  r->client_addr = f.addr(Side::Client);
  r->client_port = f.port(Side::Client);
  ++inline_stats_.remapped_flows;
  return remaps_.emplace(key, std::move(r)).first->second.get();
}

void MonitorContext::forget_remap(const Flow& f) {
  if (remaps_.empty() || f.proto() != 6) return;
  remaps_.erase(endpoint_pair_key(f));
}

InlineOutcome MonitorContext::process_inline(const Packet& p) {
  // The remap of a TCP packet's connection, if it has one, and the side that sent the packet.
  auto remap_of = [this](const PacketView& v, Side* from) -> Remap* {
    if (remaps_.empty()) return nullptr;
    auto it =
        remaps_.find(endpoint_pair_key(v.src_addr(), v.src_port(), v.dst_addr(), v.dst_port()));
    if (it == remaps_.end()) return nullptr;
    *from = sender_side(v, it->second->client_addr, it->second->client_port);
    return it->second.get();
  };
  Current cur;
  cur.in = cur.orig = &p;
  cur.view = PacketView::decode(p);
  std::optional<TcpView> tcp = cur.view.ok() ? cur.view.tcp() : std::nullopt;
  Remap* remap = nullptr;
  Side from = Side::Client;
  if (tcp && !cur.view.fragment().is_fragment) {
    cur.tcp = true;
    cur.seq = tcp->seq();
    cur.payload_off = uint32_t(cur.view.payload().data() - p.data().data());
    cur.payload_len = uint32_t(cur.view.payload().size());
    cur.l4_header_len = uint32_t(tcp->header_len());
    remap = remap_of(cur.view, &from);
  }
  // The other side's numbers in this packet's ACK and SACK blocks are in what was delivered
  // to this side: back to what that side sent, before the engine sees them.
  if (remap) {
    SeqMap& peer = remap->side[size_t(other(from))];
    if (!peer.empty() && tcp->has_ack()) {
      Packet w = Packet::copy_of(p.data(), p.meta());
      const size_t tcp_off = size_t(tcp->header().data() - p.data().data());
      std::byte* th = w.mutable_data().data() + tcp_off;
      const TcpSeq ack = peer.unmap(tcp->ack());
      store_be32(th + 8, ack.value());
      for_each_sack_edge(th, tcp->header_len(), [&](std::byte* edge) {
        store_be32(edge, peer.unmap(TcpSeq(load_be32(edge))).value());
      });
      fix_checksums(w);
      peer.fold(ack);
      cur.work = std::move(w);
      cur.in = &*cur.work;
      cur.view = PacketView::decode(*cur.in);
    }
  }

  cur_ = std::make_unique<Current>(std::move(cur));
  // The view stays valid: `work` moved with its buffer.
  if (cur_->work) cur_->in = &*cur_->work;
  process(*cur_->in);
  std::unique_ptr<Current> c = std::move(cur_);

  InlineOutcome out;
  if (c->drop) {
    ++inline_stats_.dropped;
    out.verdict = Verdict::Drop;
    return out;
  }
  // Again: handlers may have made the flow's first edit, or the flow may have ended in the
  // engine (its remap went with it).
  remap = c->tcp ? remap_of(c->view, &from) : nullptr;

  bool changed = c->work.has_value() || !c->writes.empty();
  std::optional<std::vector<std::byte>> payload;
  TcpSeq seq = c->seq;
  if (remap && !remap->side[size_t(from)].empty()) {
    const SeqMap& m = remap->side[size_t(from)];
    seq = m.map(c->seq);
    const Bytes orig = c->in->data().subspan(c->payload_off, c->payload_len);
    const TcpSeq end = c->seq + c->payload_len;
    std::vector<std::byte> edited;
    TcpSeq at = c->seq;
    bool any = false;
    // A segment that cuts an edit (a retransmission cut otherwise) goes with its bytes as
    // they are: half an edit would give the receiver neither version.
    const bool cut = std::any_of(m.edits.begin(), m.edits.end(), [&](const SeqMap::Edit& e) {
      return !e.sent && !SeqMap::before(e, c->seq) && e.pos < end &&
             (e.pos < c->seq || e.end() > end);
    });
    if (cut) ++inline_stats_.partial;
    for (const SeqMap::Edit& e : m.edits) {
      if (cut) break;
      if (SeqMap::before(e, c->seq) || e.sent) continue;
      if (e.end() > end) break;
      if (e.removed == 0 && e.pos == end && (e.at_start || c->payload_len == 0)) break;
      const size_t from_off = size_t(at - c->seq), to_off = size_t(e.pos - c->seq);
      edited.insert(edited.end(), orig.begin() + ptrdiff_t(from_off),
                    orig.begin() + ptrdiff_t(to_off));
      edited.insert(edited.end(), e.inserted.begin(), e.inserted.end());
      at = e.end();
      any = true;
    }
    if (any) {
      edited.insert(edited.end(), orig.begin() + ptrdiff_t(at - c->seq), orig.end());
      if (!c->edited_now) ++inline_stats_.reedited;
      payload = std::move(edited);
    }
    changed = changed || any || seq != c->seq;
  }
  if (!changed) return out;

  // A segment an edit made longer is cut into pieces no longer than it was, so none exceeds
  // the path's MTU (a full-sized segment with DF set would be dropped on the way); the pieces
  // after the first are sent (take_sent()), in order, FIN and PSH on the last one only.
  // A retransmission is cut the same way.
  const Bytes whole = payload ? as_bytes(*payload) : Bytes{};
  const size_t piece = payload && payload->size() > c->payload_len && c->payload_len > 0
                           ? c->payload_len
                           : whole.size();
  const uint8_t flags = c->view.tcp() ? c->view.tcp()->flags() : 0;
  auto build = [&](size_t off, bool last) -> std::optional<Packet> {
    std::optional<Packet> pkt;
    if (payload)
      pkt = with_payload(*c->in, whole.subspan(off, std::min(piece, whole.size() - off)));
    else
      pkt = Packet::copy_of(c->in->data(), c->in->meta());
    if (!pkt) return std::nullopt;  // cannot happen for a decoded TCP packet
    if (seq + uint32_t(off) != c->seq) set_tcp_seq(*pkt, seq + uint32_t(off));
    if (!last) set_tcp_flags(*pkt, uint8_t(flags & ~(tcp_flag::kFin | tcp_flag::kPsh)));
    if (!c->writes.empty()) {
      const PacketView v = PacketView::decode(*pkt);
      std::byte* base = pkt->mutable_data().data();
      for (const Current::HeaderWrite& w : c->writes) {
        size_t start = 0;
        if (w.region == Region::Ip && !v.ip_layers().empty())
          start = size_t(v.ip_layers().back().header - v.data().data());
        else if (w.region == Region::Transport && v.l4_proto() != 0)
          start = size_t(v.payload().data() - v.data().data()) - c->l4_header_len;
        else if (w.region == Region::Payload)
          start = size_t(v.payload().data() - v.data().data());
        if (start + w.offset + w.data.size() <= pkt->size())
          std::memcpy(base + start + w.offset, w.data.data(), w.data.size());
      }
      fix_checksums(*pkt);
    }
    return pkt;
  };
  std::optional<Packet> first = build(0, piece >= whole.size());
  if (!first) return out;
  for (size_t off = piece; off < whole.size(); off += piece) {
    std::optional<Packet> next = build(off, off + piece >= whole.size());
    if (!next) break;
    sent_.push_back(std::move(*next));
    ++inline_stats_.sent;
    ++inline_stats_.split;
  }
  ++inline_stats_.modified;
  out.packet = std::move(first);
  return out;
}

Result<void> MonitorContext::drop() {
  if (!cur_) return Error::invalid("drop(): only in a handler of process_inline()");
  cur_->drop = true;
  return {};
}

Result<void> MonitorContext::overwrite(Region r, size_t offset, Bytes data) {
  if (!cur_) return Error::invalid("overwrite(): only in a handler of process_inline()");
  if (data.empty()) return {};
  if (r == Region::Payload) {
    return edit(offset, data.size(), data, /*check_length=*/true);
  }
  const PacketView& v = cur_->view;
  if (!v.ok() || v.ip_layers().empty()) return Error::invalid("overwrite(): no IP header");
  size_t len = 0;
  if (r == Region::Ip) {
    len = v.ip_layers().back().header_len;
  } else {
    if (!cur_->tcp && !v.udp()) return Error::invalid("overwrite(): no TCP or UDP header");
    len = cur_->tcp ? v.tcp()->header_len() : 8;
    cur_->l4_header_len = uint32_t(len);  // UDP: only set here
  }
  if (offset > len || data.size() > len - offset)
    return Error::invalid("overwrite(): " + std::to_string(data.size()) + " bytes at offset " +
                          std::to_string(offset) + " run past the " + std::to_string(len) +
                          "-byte header");
  cur_->writes.push_back({r, offset, std::vector<std::byte>(data.begin(), data.end())});
  return {};
}

Result<void> MonitorContext::insert(size_t offset, Bytes data) {
  if (!cur_) return Error::invalid("insert(): only in a handler of process_inline()");
  if (data.empty()) return {};
  return edit(offset, 0, data, false);
}

Result<void> MonitorContext::remove(size_t offset, size_t length) {
  if (!cur_) return Error::invalid("remove(): only in a handler of process_inline()");
  if (length == 0) return {};
  return edit(offset, length, {}, false);
}

// A payload edit of the current packet, recorded at its stream position for this packet and
// its retransmissions.
Result<void> MonitorContext::edit(size_t offset, size_t removed, Bytes data, bool same_length) {
  Current& c = *cur_;
  if (!c.tcp) return Error::invalid("payload edits need a TCP segment");
  if (c.payload_len == 0) return Error::invalid("the segment has no payload (use send())");
  if (offset > c.payload_len || removed > c.payload_len - offset)
    return Error::invalid("edit at " + std::to_string(offset) + "+" + std::to_string(removed) +
                          " runs past the " + std::to_string(c.payload_len) + "-byte payload");
  if (same_length && removed != data.size()) return Error::invalid("overwrite changes a length");
  const Flow* f = engine_->flow(c.flow);
  if (!f || !f->is_tcp()) return Error::invalid("the packet's flow is not tracked");
  Remap* r = remap_for(*f, true);
  SeqMap& m = r->side[size_t(c.from)];
  SeqMap::Edit e;
  e.pos = c.seq + uint32_t(offset);
  e.removed = uint32_t(removed);
  e.inserted.assign(data.begin(), data.end());
  e.at_start = offset == 0 && removed == 0;
  if (!m.edits.empty() && e.pos < m.edits.back().end())
    return Error::invalid(
        "payload edits go forward: this one starts before the end of the "
        "side's last one");
  if (m.edits.size() >= kMaxEditsPerSide)
    return Error::invalid("too many edits not yet acknowledged on this side");
  m.edits.push_back(std::move(e));
  c.edited_now = true;
  return {};
}

Result<void> MonitorContext::send(Packet p) {
  const PacketView v = PacketView::decode(p);
  if (!v.ok() || v.ip_layers().empty()) return Error::invalid("send(): not an IP packet");
  sent_.push_back(std::move(p));
  ++inline_stats_.sent;
  return {};
}

// The segment `from`'s endpoint would send next, as `to` expects it.
Result<void> MonitorContext::send(FlowHandle h, Side to, uint8_t flags, Bytes payload) {
  const Flow* f = engine_->flow(h);
  if (!f) return Error::invalid("send(): no such flow (it ended)");
  if (!f->is_tcp()) return Error::invalid("send(): the flow is not TCP");
  const Side from = other(to);
  const TcpEndpoint& src = f->tcp()->endpoint(from);
  const TcpEndpoint& dst = f->tcp()->endpoint(to);
  Remap* r = remap_for(*f, !payload.empty());
  TcpSeq seq = src.seen ? src.snd_nxt : TcpSeq(0);
  if (r) seq = r->side[size_t(from)].map(seq);
  const TcpSeq ack = dst.seen ? dst.snd_nxt : TcpSeq(0);
  if (!dst.seen) flags &= uint8_t(~tcp_flag::kAck);
  PacketBuilder b;
  if (f->addr(from).is_v4())
    b.ipv4(f->addr(from), f->addr(to)).dont_fragment();
  else
    b.ipv6(f->addr(from), f->addr(to));
  const uint32_t win = std::min<uint32_t>(65535, src.max_window >> src.wscale);
  b.ttl(64).tcp(f->port(from), f->port(to)).seq(seq).ack(ack).flags(flags);
  b.window((flags & tcp_flag::kRst) ? 0 : uint16_t(win));
  if (!payload.empty()) b.payload(payload);
  PacketMeta meta;
  meta.link = LinkType::Raw;
  Packet p = b.build(meta);
  if (p.empty()) return Error::invalid("send(): the segment could not be built");
  if (!payload.empty() && src.seen) {
    SeqMap& m = r->side[size_t(from)];
    if (m.edits.size() >= kMaxEditsPerSide)
      return Error::invalid("send(): too many edits not yet acknowledged on this side");
    SeqMap::Edit e;
    e.pos = src.snd_nxt;
    e.inserted.assign(payload.begin(), payload.end());
    e.sent = true;
    if (!m.edits.empty() && e.pos < m.edits.back().end())
      return Error::invalid("send(): the sender's next byte is inside an edit");
    m.edits.push_back(std::move(e));
  }
  sent_.push_back(std::move(p));
  ++inline_stats_.sent;
  return {};
}

Result<void> MonitorContext::reset(FlowHandle h) {
  const Flow* f = engine_->flow(h);
  if (!f) return Error::invalid("reset(): no such flow (it ended)");
  if (!f->is_tcp()) return Error::invalid("reset(): the flow is not TCP");
  // The sender of the packet at hand gets the RST that answers it (RFC 9293 3.10.7.1: seq =
  // its ACK, or 0; ack = what it sent): that works before the engine has its state (in
  // conn_start) and in its own numbers (the original packet, not the one remapped for the
  // engine). A side known only from the engine's state gets a RST from its peer's endpoint.
  const bool current = cur_ && cur_->flow == h;
  for (Side to : {Side::Client, Side::Server}) {
    if (current && to == cur_->from) {
      auto rst = make_reply(*cur_->orig, uint8_t(tcp_flag::kRst | tcp_flag::kAck));
      if (!rst) return Error::invalid("reset(): cannot answer the packet");
      L45_TRY_VOID(send(std::move(*rst)));
    } else if (f->tcp()->endpoint(to).seen) {
      L45_TRY_VOID(send(h, to, uint8_t(tcp_flag::kRst | tcp_flag::kAck)));
    }
  }
  if (current) cur_->drop = true;
  return stop(h);
}

std::vector<Packet> MonitorContext::take_sent() {
  std::vector<Packet> out;
  out.swap(sent_);
  return out;
}

}  // namespace l45
