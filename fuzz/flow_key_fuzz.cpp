// libFuzzer target for key_of() (including the ICMP quote it decodes) and the FlowTable index.
//
// Input: packet_decode_fuzz's format (one selector byte, then the packet): bits 0-2 pick the
// link type, bit 3 makes the wire length longer than the capture, bit 5 keys on the VLAN id.
// The target checks key_of()'s promises and traps when one breaks: a key is canonical (its first
// endpoint is the lower), the reverse direction gives the same key, and the key goes into a
// small table (evicting when full, expiring now and then) where find() returns its handle.
//
// Seeds: fuzz/corpus/flow_key (copies of fuzz/corpus/packet_decode: same input format).
// Run:  ./build-fuzz/fuzz/flow_key_fuzz -max_total_time=60 fuzz/corpus/flow_key
#include <cstddef>
#include <cstdint>

#include "l45/flow/flow_table.hpp"
#include "l45/packet/decode.hpp"

namespace {

using namespace l45;

constexpr LinkType kLinks[8] = {LinkType::Ethernet,  LinkType::Raw,  LinkType::LinuxSll,
                                LinkType::LinuxSll2, LinkType::Null, LinkType::Loop,
                                LinkType::Ipv4,      LinkType::Ipv6};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FlowTable<uint32_t> table({.max_flows = 16});
  static int64_t clock = 0;
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  Bytes pkt(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  uint32_t wire = uint32_t(pkt.size()) + ((sel & 8) ? 100 : 0);
  PacketView v = PacketView::decode(kLinks[sel & 7], pkt, wire);
  auto k = key_of(v, {.key_vlan = (sel & 32) != 0});
  if (!k) return 0;
  const FlowKey& key = k->key;
  check(key.family == 4 || key.family == 6);
  IpAddr a = key.a(), b = key.b();
  check(a < b || (a == b && key.port_a <= key.port_b));
  KeyedPacket back = make_flow_key(key.proto, b, key.port_b, a, key.port_a, key.vlan);
  check(back.key == key);
  // Sent by the second endpoint: Reverse, unless both endpoints are the same one.
  check(back.dir == KeyDir::Reverse || (a == b && key.port_a == key.port_b));

  Timestamp now{++clock * 1000000000};
  auto r = table.find_or_insert(key, k->dir, now);
  check(bool(r.handle));
  check(table.find(key) == r.handle);
  table.touch(r.handle, now);
  if (uint32_t* val = table.get(r.handle)) ++*val;
  if (clock % 8 == 0) table.expire(now, [](FlowHandle, CloseReason, uint32_t&) {});
  check(table.size() <= 16);
  return 0;
}
