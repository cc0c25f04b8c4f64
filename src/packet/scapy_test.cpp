// Cross-check with an independent dissector: tests/scapy/craft.py crafts packets with scapy
// and writes, next to each packet's bytes, the fields scapy reads back from them (and scapy's
// verdict on each checksum). PacketView must agree field by field.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "l45/packet/decode.hpp"
#include "testing.hpp"

namespace l45 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPython = "/usr/bin/python3";

std::vector<std::byte> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i)
    out[i] = std::byte(raw[i]);
  return out;
}

std::string hex(Bytes b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += kHex[uint8_t(x) >> 4];
    s += kHex[uint8_t(x) & 15];
  }
  return s;
}

std::vector<std::string> layer_names(const PacketView& v) {
  std::vector<std::string> out;
  for (const Layer& l : v.layers())
    out.emplace_back(layer_kind_name(l.kind));
  return out;
}

void compare_tcp(const TcpView& t, const json& j) {
  EXPECT_EQ(t.src_port(), j["sport"]);
  EXPECT_EQ(t.dst_port(), j["dport"]);
  EXPECT_EQ(t.seq().value(), j["seq"]);
  EXPECT_EQ(t.ack().value(), j["ack"]);
  EXPECT_EQ(t.flags(), j["flags"]);
  EXPECT_EQ(t.window(), j["window"]);
  EXPECT_EQ(t.data_offset(), j["doff"]);
  TcpOptions o = t.options();
  EXPECT_FALSE(o.malformed);
  if (j.contains("mss")) {
    EXPECT_EQ(o.mss, j["mss"].get<uint16_t>());
  } else {
    EXPECT_FALSE(o.mss);
  }
  if (j.contains("wscale")) {
    EXPECT_EQ(o.window_scale, j["wscale"].get<uint8_t>());
  } else {
    EXPECT_FALSE(o.window_scale);
  }
  EXPECT_EQ(o.sack_permitted, j.value("sack_perm", false));
  if (j.contains("ts")) {
    ASSERT_TRUE(o.timestamps);
    EXPECT_EQ(o.timestamps->value, j["ts"][0]);
    EXPECT_EQ(o.timestamps->echo, j["ts"][1]);
  } else {
    EXPECT_FALSE(o.timestamps);
  }
  ASSERT_EQ(o.sack_blocks().size(), j["sack"].size());
  for (size_t i = 0; i < o.sack_blocks().size(); ++i) {
    EXPECT_EQ(o.sack_blocks()[i].left.value(), j["sack"][i][0]);
    EXPECT_EQ(o.sack_blocks()[i].right.value(), j["sack"][i][1]);
  }
  ASSERT_EQ(o.others().size(), j["other"].size());
  for (size_t i = 0; i < o.others().size(); ++i) {
    EXPECT_EQ(o.others()[i].kind, j["other"][i][0]);
    if (!j["other"][i][1].is_null()) {
      EXPECT_EQ(o.others()[i].length, j["other"][i][1]);
    }
  }
}

void compare(const std::string& name, Bytes bytes, const json& j) {
  SCOPED_TRACE(name);
  uint32_t wire = j.value("wire_len", uint32_t(bytes.size()));
  PacketView v = PacketView::decode(LinkType(j["link"].get<uint32_t>()), bytes, wire,
                                    {.verify_checksums = true});
  EXPECT_EQ(drop_reason_name(v.error()), j.value("error", "none"));
  if (j.contains("layers")) {
    EXPECT_EQ(layer_names(v), j["layers"].get<std::vector<std::string>>());
  }
  if (j.contains("eth")) {
    auto e = v.ethernet();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->src().to_string(), j["eth"]["src"]);
    EXPECT_EQ(e->dst().to_string(), j["eth"]["dst"]);
    EXPECT_EQ(e->ether_type(), j["eth"]["type"]);
  }
  if (j.contains("vlan_ids")) {
    EXPECT_EQ(std::vector<uint16_t>(v.vlan_ids().begin(), v.vlan_ids().end()),
              j["vlan_ids"].get<std::vector<uint16_t>>());
  }
  if (j.contains("mpls_labels")) {
    EXPECT_EQ(std::vector<uint32_t>(v.mpls_labels().begin(), v.mpls_labels().end()),
              j["mpls_labels"].get<std::vector<uint32_t>>());
  }
  if (j.contains("ip_layers")) {
    const json& ls = j["ip_layers"];
    ASSERT_EQ(v.ip_layers().size(), ls.size());
    for (size_t i = 0; i < ls.size(); ++i) {
      EXPECT_EQ(v.ip_layers()[i].version, ls[i]["version"]);
      EXPECT_EQ(v.ip_layers()[i].src.to_string(), ls[i]["src"]);
      EXPECT_EQ(v.ip_layers()[i].dst.to_string(), ls[i]["dst"]);
    }
  }
  if (j.contains("ip")) {
    const json& ip = j["ip"];
    EXPECT_EQ(v.ip_version(), ip["version"]);
    if (ip.contains("src")) {
      EXPECT_EQ(v.src_addr().to_string(), ip["src"]);
      EXPECT_EQ(v.dst_addr().to_string(), ip["dst"]);
      EXPECT_EQ(v.ttl(), ip["ttl"]);
      EXPECT_EQ(v.ip_total_len(), ip["total_len"]);
      EXPECT_EQ(v.ip_id(), ip["id"]);
      EXPECT_EQ(v.l4_proto(), ip["proto"]);
      EXPECT_EQ(v.ip_layers().back().header_len, ip["header_len"]);
      EXPECT_EQ(v.ip_version() == 4, v.ipv4().has_value());
      EXPECT_EQ(v.ip_version() == 6, v.ipv6().has_value());
    }
  }
  // Malformed cases list only the error and the layers; the rest describe every header.
  const bool full = j.contains("ip_layers");
  if (j.contains("frag")) {
    FragmentInfo f = v.fragment();
    EXPECT_EQ(f.is_fragment, j["frag"]["is_fragment"]);
    EXPECT_EQ(f.more_fragments, j["frag"]["mf"]);
    EXPECT_EQ(f.offset_bytes, j["frag"]["offset"]);
    EXPECT_EQ(f.id, j["frag"]["id"]);
  }
  if (full) {
    EXPECT_EQ(v.tcp().has_value(), j.contains("tcp"));
  }
  if (j.contains("tcp") && v.tcp()) compare_tcp(*v.tcp(), j["tcp"]);
  if (full) {
    EXPECT_EQ(v.udp().has_value(), j.contains("udp"));
  }
  if (j.contains("udp") && v.udp()) {
    EXPECT_EQ(v.udp()->src_port(), j["udp"]["sport"]);
    EXPECT_EQ(v.udp()->dst_port(), j["udp"]["dport"]);
    EXPECT_EQ(v.udp()->length(), j["udp"]["len"]);
    EXPECT_EQ(v.src_port(), j["udp"]["sport"]);
  }
  if (full) {
    EXPECT_EQ(v.icmp().has_value(), j.contains("icmp"));
  }
  if (j.contains("icmp") && v.icmp()) {
    EXPECT_EQ(v.icmp()->type(), j["icmp"]["type"]);
    EXPECT_EQ(v.icmp()->code(), j["icmp"]["code"]);
    EXPECT_EQ(v.icmp()->echo_id(), j["icmp"]["id"]);
    EXPECT_EQ(v.icmp()->echo_seq(), j["icmp"]["seq"]);
  }
  if (full) {
    EXPECT_EQ(v.icmpv6().has_value(), j.contains("icmpv6"));
  }
  if (j.contains("icmpv6") && v.icmpv6()) {
    EXPECT_EQ(v.icmpv6()->type(), j["icmpv6"]["type"]);
    EXPECT_EQ(v.icmpv6()->code(), j["icmpv6"]["code"]);
    EXPECT_EQ(v.icmpv6()->echo_id(), j["icmpv6"]["id"]);
    EXPECT_EQ(v.icmpv6()->echo_seq(), j["icmpv6"]["seq"]);
  }
  if (full) {
    EXPECT_EQ(v.arp().has_value(), j.contains("arp"));
  }
  if (j.contains("arp") && v.arp()) {
    ArpView a = *v.arp();
    EXPECT_EQ(a.op(), j["arp"]["op"]);
    EXPECT_EQ(a.sender_mac().to_string(), j["arp"]["hwsrc"]);
    EXPECT_EQ(a.sender_ip().to_string(), j["arp"]["psrc"]);
    EXPECT_EQ(a.target_mac().to_string(), j["arp"]["hwdst"]);
    EXPECT_EQ(a.target_ip().to_string(), j["arp"]["pdst"]);
  }
  if (j.contains("gre")) {
    auto g = v.gre();
    ASSERT_TRUE(g);
    EXPECT_EQ(g->protocol(), j["gre"]["proto"]);
    EXPECT_EQ(g->version(), j["gre"]["version"]);
    if (j["gre"].contains("key")) {
      EXPECT_EQ(g->key(), j["gre"]["key"].get<uint32_t>());
    }
    if (j["gre"].contains("seq")) {
      EXPECT_EQ(g->sequence(), j["gre"]["seq"].get<uint32_t>());
    }
  }
  if (j.contains("vxlan")) {
    auto x = v.vxlan();
    ASSERT_TRUE(x);
    EXPECT_EQ(x->vni(), j["vxlan"]["vni"]);
  }
  if (j.contains("payload_len")) {
    EXPECT_EQ(v.payload_len(), j["payload_len"]);
  }
  if (j.contains("payload_hex")) {
    EXPECT_EQ(hex(v.payload()), j["payload_hex"]);
  }
  if (j.contains("checksum")) {
    EXPECT_EQ(checksum_status_name(v.checksum_status()), j["checksum"]["all"]);
    EXPECT_EQ(checksum_status_name(v.ip_checksum_status()), j["checksum"]["ip"]);
    EXPECT_EQ(checksum_status_name(v.l4_checksum_status()), j["checksum"]["l4"]);
  }
}

TEST(ScapyCrossCheck, DecoderAgreesWithScapyOnEveryCraftedPacket) {
  if (testing::run(std::string(kPython) + " -c 'import scapy.all'") != 0)
    GTEST_SKIP() << kPython << " cannot import scapy (apt install python3-scapy)";
  fs::path script = testing::source_dir() / "tests" / "scapy" / "craft.py";
  ASSERT_TRUE(fs::exists(script)) << script << " (set L45_SOURCE_DIR)";
  fs::path out = fs::temp_directory_path() / ("l45-scapy-" + std::to_string(getpid()));
  fs::remove_all(out);
  std::string log;
  ASSERT_EQ(testing::run(std::string(kPython) + " " + script.string() + " " + out.string(), &log),
            0)
      << log;

  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream jf(entry.path());
    json j = json::parse(jf);
    fs::path bin = entry.path();
    bin.replace_extension(".bin");
    std::vector<std::byte> bytes = read_file(bin);
    compare(entry.path().stem().string(), Bytes(bytes.data(), bytes.size()), j);
    ++n;
  }
  fs::remove_all(out);
  EXPECT_GE(n, 60u) << "craft.py wrote fewer cases than expected";
}

}  // namespace
}  // namespace l45
