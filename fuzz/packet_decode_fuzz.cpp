// libFuzzer target for PacketView::decode and every header view.
//
// Input: one selector byte, then the packet. Selector bits 0-2 pick the link type (the order
// of kLinks, which tests/scapy/craft.py --corpus follows), bit 3 makes the wire length longer
// than the capture (snaplen-cut paths), bit 4 turns tunnel following off. Checksums are always
// verified. Besides touching every accessor, the target checks the decoder's own promises
// (layers inside the capture and in order, payload inside the capture, the inline fast path
// agreeing with the general walk) and traps when one breaks, so a wrong length is found even
// when it stays in bounds.
//
// Seeds: fuzz/corpus/packet_decode, written by
//   /usr/bin/python3 tests/scapy/craft.py --corpus fuzz/corpus/packet_decode
// Run:  ./build-fuzz/fuzz/packet_decode_fuzz -max_total_time=60 fuzz/corpus/packet_decode
#include <cstddef>
#include <cstdint>

#include "l45/packet/checksum.hpp"
#include "l45/packet/decode.hpp"

namespace {

using namespace l45;

constexpr LinkType kLinks[8] = {LinkType::Ethernet,  LinkType::Raw,  LinkType::LinuxSll,
                                LinkType::LinuxSll2, LinkType::Null, LinkType::Loop,
                                LinkType::Ipv4,      LinkType::Ipv6};

volatile uint64_t g_sink;

void eat(uint64_t v) {
  g_sink = g_sink + v;
}
void eat(Bytes b) {
  // Reads every byte: ASan reports any span that reaches past its buffer.
  eat(checksum_add(b));
}
void eat(const IpAddr& a) {
  char buf[IpAddr::kMaxStringLen];
  eat(a.to_chars(buf));
  eat(a.hash());
}

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void touch_tcp(const TcpView& t) {
  eat(t.src_port() + t.dst_port() + t.seq().value() + t.ack().value() + t.flags() + t.window() +
      t.checksum() + t.urgent_pointer() + t.ns());
  eat(t.header());
  eat(t.payload());
  TcpOptions o = t.options();
  require(o.malformed == !t.options_valid());
  eat(o.mss.value_or(0) + o.window_scale.value_or(0) + o.sack_permitted);
  if (o.timestamps) eat(o.timestamps->value + o.timestamps->echo);
  for (const TcpSackBlock& s : o.sack_blocks())
    eat(s.left.value() ^ s.right.value());
  for (const TcpOtherOption& x : o.others()) {
    require(size_t(x.offset) + x.length <= t.header_len());
    eat(t.header().subspan(x.offset, x.length));
  }
}

void touch_ipv4(const Ipv4View& ip) {
  eat(ip.tos() + ip.total_length() + ip.id() + ip.fragment_offset_bytes() + ip.ttl() +
      ip.protocol() + ip.checksum() + ip.more_fragments() + ip.dont_fragment());
  eat(ip.src());
  eat(ip.dst());
  eat(ip.header_checksum_ok());
  auto c = ip.option_cursor();
  for (HeaderOption o; c.next(o);)
    eat(o.value);
  eat(ip.options_valid());
  eat(ip.payload());
}

void touch_ipv6(const Ipv6View& ip) {
  eat(ip.traffic_class() + ip.flow_label() + ip.payload_length() + ip.next_header() +
      ip.hop_limit());
  eat(ip.src());
  eat(ip.dst());
  eat(ip.payload());
  uint8_t nh = ip.next_header();
  Bytes b = ip.payload();
  for (int i = 0; i < 16 && Ipv6ExtView::is_extension(nh); ++i) {
    auto e = Ipv6ExtView::parse(nh, b);
    if (!e) break;
    eat(e->header());
    eat(e->fragment_offset_bytes() + e->more_fragments() + e->fragment_id() + e->routing_type() +
        e->segments_left() + (e->header_len() >= 12 ? e->spi() + e->sequence() : 0));
    nh = e->next_header();
    b = e->payload();
  }
}

// Every view's parse() on the raw input, decoder or not: a view must be safe on any bytes.
void touch_views(Bytes b) {
  if (auto v = EthernetView::parse(b)) eat(v->ether_type() + v->is_length() + v->payload().size());
  if (auto v = VlanView::parse(b)) eat(v->vid() + v->pcp() + v->dei() + v->ether_type());
  if (auto v = MplsView::parse(b)) eat(v->label() + v->bottom_of_stack() + v->ttl());
  if (auto v = PppoeView::parse(b)) {
    eat(v->ppp_protocol() + v->session_id() + v->code());
    eat(v->payload());
  }
  if (auto v = PppView::parse(b)) eat(v->protocol() + v->payload().size());
  if (auto v = SllView::parse(b)) eat(v->addr());
  if (auto v = Sll2View::parse(b)) eat(v->addr());
  if (auto v = NullView::parse(b)) eat(v->family() + v->ip_version());
  if (auto v = ArpView::parse(b)) {
    eat(v->sender_hw());
    eat(v->sender_proto());
    eat(v->target_hw());
    eat(v->target_proto());
    eat(v->sender_ip());
    eat(v->target_ip());
  }
  if (auto v = Ipv4View::parse(b)) touch_ipv4(*v);
  if (auto v = Ipv6View::parse(b)) touch_ipv6(*v);
  if (auto v = TcpView::parse(b)) touch_tcp(*v);
  if (auto v = UdpView::parse(b)) eat(v->payload());
  if (auto v = IcmpView::parse(b)) {
    eat(v->quoted());
    eat(v->echo_id() + v->echo_seq() + v->is_error() + v->is_echo());
  }
  if (auto v = Icmpv6View::parse(b)) eat(v->quoted());
  if (auto v = GreView::parse(b)) {
    eat(v->checksum().value_or(0) + v->key().value_or(0) + v->sequence().value_or(0) +
        v->ack().value_or(0) + v->pptp_call_id());
    eat(v->payload());
  }
  if (auto v = VxlanView::parse(b)) eat(v->vni());
}

void touch(const PacketView& v) {
  const Bytes data = v.data();
  eat(uint64_t(v.error()) + uint64_t(v.link()) + v.wire_len() + v.tunnel_depth());
  size_t prev_end = 0;
  for (const Layer& l : v.layers()) {
    require(size_t(l.offset) + l.length <= data.size());
    require(l.offset >= prev_end);  // headers follow one another
    prev_end = size_t(l.offset) + l.length;
    eat(v.layer_bytes(l));
    eat(layer_kind_name(l.kind).size());
    require(v.find(l.kind) != nullptr);
  }
  for (uint16_t id : v.vlan_ids())
    require(id < 4096);
  for (uint32_t label : v.mpls_labels())
    require(label < (1u << 20));
  for (const IpLayer& ip : v.ip_layers()) {
    require(size_t(ip.offset) + ip.header_len <= data.size());
    eat(ip.src());
    eat(ip.dst());
    eat(ip.version + ip.proto + ip.total_len);
  }
  eat(v.ip_version() + v.ttl() + v.ip_total_len() + v.ip_id() + v.l4_proto());
  eat(v.src_addr());
  eat(v.dst_addr());
  FragmentInfo f = v.fragment();
  eat(f.is_fragment + f.more_fragments + f.offset_bytes + f.id);
  if (auto ip = v.ipv4()) touch_ipv4(*ip);
  if (auto ip = v.ipv6()) touch_ipv6(*ip);
  if (auto t = v.tcp()) touch_tcp(*t);
  if (auto u = v.udp()) {
    eat(u->src_port() + u->dst_port() + u->length() + u->checksum());
    eat(u->payload());
  }
  if (auto i = v.icmp()) {
    eat(i->type() + i->code() + i->echo_id() + i->echo_seq() + i->next_hop_mtu());
    eat(i->quoted());
  }
  if (auto i = v.icmpv6()) {
    eat(i->type() + i->code() + i->mtu() + i->echo_seq());
    eat(i->quoted());
  }
  eat(v.src_port() + v.dst_port());
  if (auto e = v.ethernet()) eat(e->src().b[0] + e->dst().b[5] + e->ether_type());
  if (auto a = v.arp()) {
    eat(a->sender_mac().b[0] + a->op());
    eat(a->sender_ip());
    eat(a->target_proto());
  }
  if (auto g = v.gre()) {
    eat(g->protocol() + g->key().value_or(0) + g->sequence().value_or(0) + g->ack().value_or(0));
    eat(g->payload());
  }
  if (auto x = v.vxlan()) eat(x->vni() + x->vni_valid());
  Bytes p = v.payload();
  require(p.empty() ||
          (p.data() >= data.data() && p.data() + p.size() <= data.data() + data.size()));
  require(p.size() <= v.payload_len());
  eat(p);
  eat(uint64_t(v.checksum_status()) + uint64_t(v.ip_checksum_status()) +
      uint64_t(v.l4_checksum_status()));
  eat(checksum_status_name(v.checksum_status()).size());
  eat(drop_reason_name(v.error()).size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  const Bytes b(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const uint32_t wire = uint32_t(b.size()) + ((sel & 0x08) ? 1500u : 0u);
  const DecodeOptions opt{.verify_checksums = true, .follow_tunnels = !(sel & 0x10)};
  PacketView v = PacketView::decode(kLinks[sel & 7], b, wire, opt);
  touch(v);
  PacketView copy = v;  // trivially copyable: the copy reads the same bytes
  require(detail::same_decode(copy, v));
  // The inline fast path for common packets must agree with the general walk.
  require(detail::same_decode(v, detail::decode_general(kLinks[sel & 7], b, wire, opt)));
  DecodeOptions plain = opt;
  plain.verify_checksums = false;  // the fast path only runs without verification
  require(detail::same_decode(PacketView::decode(kLinks[sel & 7], b, wire, plain),
                              detail::decode_general(kLinks[sel & 7], b, wire, plain)));
  // The flow engine's TcpFrame, where it takes the frame, reads what the decoder reads.
  if (TcpFrame fr; kLinks[sel & 7] == LinkType::Ethernet && fr.parse(b, wire)) {
    const PacketView g = detail::decode_general(LinkType::Ethernet, b, wire, plain);
    require(detail::same_decode(PacketView(fr), g));
    require(g.ok() && g.tcp() && !g.fragment().is_fragment);
    require(fr.payload().data() == g.payload().data() && fr.payload().size() == g.payload().size());
    require(fr.payload_len == g.payload_len() && fr.ip_total_len == g.ip_total_len());
    require(fr.ip_header() == g.ip_layers().back().header);
    require(fr.tcp().header_len() == g.tcp()->header_len());
  }
  touch_views(b);
  return 0;
}
