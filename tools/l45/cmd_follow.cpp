// l45 follow: every TCP connection's reassembled bytes, one file per side, with its gaps and
// retransmission mismatches in a JSON file next to them.
#include <fmt/format.h>

#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>
#include <vector>

#include "command.hpp"
#include "flow_common.hpp"

namespace l45::cli {
namespace {

namespace fs = std::filesystem;

struct FollowArgs {
  InputArgs in;
  EngineArgs engine;
  std::string dir;
  bool json = false;
};

constexpr size_t kFlushAt = 1 << 20;  // bytes buffered per side before they go to the file
constexpr size_t kHexMax = 4096;      // bytes of each mismatch version written as hex

std::string hex(Bytes b) {
  std::string s;
  s.reserve(std::min(b.size(), kHexMax) * 2);
  for (size_t i = 0; i < b.size() && i < kHexMax; ++i)
    fmt::format_to(std::back_inserter(s), "{:02x}", static_cast<unsigned>(b[i]));
  return s;
}

class Follower final : public FlowObserver {
 public:
  Follower(fs::path dir, bool json) : dir_(std::move(dir)), json_(json) {}
  uint32_t callbacks() const override { return 0; }  // neither on_packet nor on_tcp_state

  void on_open(const Flow& f) override {
    if (!f.is_tcp()) return;
    Conn& c = conns_[f.serial()];
    c.uid = f.uid();
    for (int s = 0; s < 2; ++s)
      c.path[s] = dir_ / (c.uid + (s == 0 ? ".orig" : ".resp"));
  }
  void on_data(const Flow& f, Side from, uint64_t, Bytes data) override {
    Conn* c = find(f);
    if (!c) return;
    auto& buf = c->buf[size_t(from)];
    buf.insert(buf.end(), data.begin(), data.end());
    c->bytes[size_t(from)] += data.size();
    if (buf.size() >= kFlushAt) write(*c, size_t(from));
  }
  void on_gap(const Flow& f, Side from, uint64_t off, uint64_t len) override {
    Conn* c = find(f);
    if (!c) return;
    auto& g = c->gaps[size_t(from)];
    if (!g.empty() && g.back().first + g.back().second == off)
      g.back().second += len;  // one hole reported in parts (the ACKs moved past it in steps)
    else
      g.emplace_back(off, len);
  }
  void on_mismatch(const Flow& f, Side from, const StreamMismatch& m) override {
    Conn* c = find(f);
    if (!c) return;
    ++c->mismatches[size_t(from)];
    fmt::format_to(std::back_inserter(c->mism[size_t(from)]),
                   "{}{{\"offset\":{},\"length\":{},\"original\":\"{}\",\"replacement\":\"{}\"{}}}",
                   c->mism[size_t(from)].empty() ? "" : ",", m.offset, m.length, hex(m.original),
                   hex(m.replacement), m.length > kHexMax ? ",\"truncated\":true" : "");
  }
  void on_close(const Flow& f, FlowEnd why) override {
    Conn* c = find(f);
    if (!c) return;
    for (size_t s = 0; s < 2; ++s)
      write(*c, s);
    std::string obj = fmt::format(
        "{{\"uid\":\"{}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"{}\","
        "\"id.resp_p\":{},\"proto\":\"tcp\",\"conn_state\":\"{}\",\"history\":\"{}\"",
        c->uid, f.addr(Side::Client).to_string(), f.port(Side::Client),
        f.addr(Side::Server).to_string(), f.port(Side::Server), zeek_conn_state(f),
        json_escape(zeek_history(f)));
    for (size_t s = 0; s < 2; ++s) {
      std::string gaps;
      for (auto [off, len] : c->gaps[s])
        fmt::format_to(std::back_inserter(gaps), "{}{{\"offset\":{},\"length\":{}}}",
                       gaps.empty() ? "" : ",", off, len);
      obj += fmt::format(",\"{}\":{{\"bytes\":{},\"gaps\":[{}],\"mismatches\":[{}]}}",
                         s == 0 ? "orig" : "resp", c->bytes[s], gaps, c->mism[s]);
    }
    obj += fmt::format(",\"l45_end\":\"{}\"}}\n", flow_end_name(why));
    write_file(dir_ / (c->uid + ".json"), obj.data(), obj.size(), false);
    if (failed()) {  // nothing is reported as written that was not
      conns_.erase(f.serial());
      return;
    }
    if (json_) {
      std::fwrite(obj.data(), 1, obj.size(), stdout);
    } else {
      fmt::print("{} {} > {}  orig {} B  resp {} B  gaps {}  mismatches {}  {} {}\n", c->uid,
                 format_endpoint(f.addr(Side::Client), f.port(Side::Client)),
                 format_endpoint(f.addr(Side::Server), f.port(Side::Server)), c->bytes[0],
                 c->bytes[1], c->gaps[0].size() + c->gaps[1].size(),
                 c->mismatches[0] + c->mismatches[1], zeek_conn_state(f), flow_end_name(why));
    }
    conns_.erase(f.serial());
  }

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  struct Conn {
    std::string uid;
    fs::path path[2];
    std::vector<std::byte> buf[2];
    bool opened[2] = {false, false};
    uint64_t bytes[2] = {0, 0};
    uint64_t mismatches[2] = {0, 0};
    std::vector<std::pair<uint64_t, uint64_t>> gaps[2];  // (offset, length), adjacent merged
    std::string mism[2];
  };
  Conn* find(const Flow& f) {
    auto it = conns_.find(f.serial());
    return it == conns_.end() ? nullptr : &it->second;
  }
  void write(Conn& c, size_t s) {
    write_file(c.path[s], c.buf[s].data(), c.buf[s].size(), c.opened[s]);
    c.opened[s] = true;
    c.buf[s].clear();
    c.buf[s].shrink_to_fit();
  }
  void write_file(const fs::path& p, const void* data, size_t n, bool append) {
    if (failed()) return;
    FILE* f = std::fopen(p.c_str(), append ? "ab" : "wb");
    if (!f || (n && std::fwrite(data, 1, n, f) != n))
      error_ = fmt::format("{}: {}", p.string(), std::strerror(errno));
    if (f && std::fclose(f) != 0 && error_.empty())
      error_ = fmt::format("{}: {}", p.string(), std::strerror(errno));
  }

  fs::path dir_;
  bool json_;
  std::unordered_map<uint64_t, Conn> conns_;
  std::string error_;
};

void run_follow(const FollowArgs& a) {
  std::error_code ec;
  fs::create_directories(a.dir, ec);
  if (ec || !fs::is_directory(a.dir))
    fail(fmt::format("{}: cannot create the output directory ({})", a.dir,
                     ec ? ec.message() : "not a directory"));
  if (::access(a.dir.c_str(), W_OK | X_OK) != 0)
    fail(fmt::format("{}: cannot write in the output directory ({})", a.dir, std::strerror(errno)));
  auto src = open_input(a.in);
  Follower out(a.dir, a.json);
  Engine engine(engine_config(a.engine, a.in), &out);
  auto r = run_engine(*src, engine);
  std::fflush(stdout);
  if (a.engine.stats) print_engine_stats(*src, engine);
  if (out.failed()) fail(out.error());
  must(std::move(r));
}

void setup(CLI::App& app) {
  auto a = std::make_shared<FollowArgs>();
  app.add_option("-r,--read", a->in.file, "read packets from a pcap or pcapng file ('-' = stdin)")
      ->required();
  app.add_option("-f,--filter", a->in.filter, "tcpdump-syntax filter, e.g. 'tcp port 80'");
  app.add_option("-o,--output", a->dir, "directory for the stream files (created if missing)")
      ->required();
  app.add_flag("--json", a->json, "one JSON object per connection on stdout (as in <uid>.json)");
  add_engine_options(app, a->engine, true);
  app.footer(R"(Examples:
  l45 follow -r trace.pcap -o streams/            first data wins on overlaps (BSD, Windows)
  l45 follow -r trace.pcap -o streams/ --overlap last
  l45 follow -r trace.pcap -o s/ -f 'port 80' --json | jq 'select(.orig.gaps != [])'

For every TCP connection, when it ends: DIR/<uid>.orig (bytes the originator sent, in order),
DIR/<uid>.resp (the responder's), DIR/<uid>.json ({uid, id.*, conn_state, history, orig and
resp: {bytes, gaps [{offset, length}], mismatches [{offset, length, original, replacement}]},
l45_end}), and one line on stdout. A gap is data the capture never had (declared once the
peer acknowledged past it, or at the end); a mismatch is a retransmission whose bytes differ
from the first copy (both in hex, at most 4096 bytes each). uids are those of 'l45 conn' on the
same file.)");
  app.callback([a] { run_follow(*a); });
}

}  // namespace

L45_REGISTER_COMMAND("follow", "write each TCP connection's reassembled bytes per side", setup, 30);

}  // namespace l45::cli
