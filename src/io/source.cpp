#include "l45/io/source.hpp"

#include <pcap/pcap.h>

#include <fmt/format.h>

#include "l45/io/filter.hpp"
#include "l45/io/registry.hpp"

namespace l45 {

Result<size_t> Source::read(PacketBatch& batch) {
  batch.clear();
  for (;;) {
    auto r = read_some(batch);
    if (!r.ok()) return r.error();
    if (filter_.empty()) break;
    // Compact in place: keep matching packets, count the rest.
    auto& v = batch.packets();
    size_t keep = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      if (filter_for(v[i].meta().link).matches(v[i])) {
        if (keep != i) v[keep] = std::move(v[i]);
        ++keep;
      } else {
        ++stats_.filtered;
      }
    }
    v.resize(keep);
    // A batch that was all filtered out is not "nothing arrived": read again, unless the
    // source is done or has nothing more right now.
    if (keep > 0 || *r == 0 || at_end()) break;
  }
  stats_.packets += batch.size();
  for (const Packet& p : batch)
    stats_.bytes += p.size();
  return batch.size();
}

Result<void> Source::set_filter(std::string_view expr) {
  other_links_.clear();
  if (expr.empty()) {
    filter_ = BpfFilter();
    return {};
  }
  L45_TRY(auto f, BpfFilter::compile(expr, link_type()));
  filter_ = std::move(f);
  return {};
}

const BpfFilter& Source::filter_for(LinkType link) {
  if (link == filter_.link()) return filter_;
  for (const auto& f : other_links_)
    if (f.link() == link) return f;
  auto f = BpfFilter::compile(filter_.expression(), link);
  other_links_.push_back(f.ok() ? std::move(f).value()
                                : BpfFilter::never(filter_.expression(), link));
  return other_links_.back();
}

BpfFilter BpfFilter::never(std::string_view expr, LinkType link) {
  BpfFilter f;
  f.expr_ = std::string(expr);
  f.link_ = link;
  f.never_ = true;
  return f;
}

Result<BpfFilter> BpfFilter::compile(std::string_view expr, LinkType link, uint32_t snaplen) {
  BpfFilter f;
  f.expr_ = std::string(expr);
  f.link_ = link;
  if (expr.empty()) return f;
  // pcap_open_dead() takes a DLT_* value. LINKTYPE_* values equal them except LINKTYPE_RAW
  // (101), which is DLT_RAW (12 on Linux): libpcap refuses 101 as "unknown data link type".
  int dlt = link == LinkType::Raw ? DLT_RAW : static_cast<int>(link);
  pcap_t* dead = pcap_open_dead(dlt, static_cast<int>(snaplen));
  if (!dead) return Error(ENOMEM, "pcap_open_dead");
  auto* prog = new bpf_program{};
  if (pcap_compile(dead, prog, f.expr_.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string msg = pcap_geterr(dead);
    delete prog;
    pcap_close(dead);
    return Error::invalid(fmt::format("bad filter '{}': {}", expr, msg));
  }
  pcap_close(dead);
  f.prog_ = std::shared_ptr<void>(prog, [](void* p) {
    auto* bp = static_cast<bpf_program*>(p);
    pcap_freecode(bp);
    delete bp;
  });
  return f;
}

bool BpfFilter::matches(Bytes data, uint32_t wire_len) const {
  if (never_) return false;
  if (!prog_) return true;
  pcap_pkthdr h{};
  h.caplen = static_cast<bpf_u_int32>(data.size());
  h.len = wire_len < data.size() ? h.caplen : wire_len;
  return pcap_offline_filter(static_cast<const bpf_program*>(prog_.get()), &h,
                             reinterpret_cast<const u_char*>(data.data())) != 0;
}

bool BpfFilter::matches(const Packet& p) const {
  return matches(p.data(), p.meta().wire_len);
}

// ---- registry ---------------------------------------------------------------------------

std::string SourceSpec::option(std::string_view key, std::string_view def) const {
  for (const auto& [k, v] : options)
    if (k == key) return v;
  return std::string(def);
}

bool SourceSpec::has(std::string_view key) const {
  for (const auto& kv : options)
    if (kv.first == key) return true;
  return false;
}

Result<SourceSpec> parse_source_spec(std::string_view spec) {
  SourceSpec s;
  auto colon = spec.find(':');
  // "scheme:" is lower-case letters only; anything else (a path like ./a:b.pcap) is a file.
  bool has_scheme = colon != std::string_view::npos && colon > 0;
  for (size_t i = 0; has_scheme && i < colon; ++i)
    if (spec[i] < 'a' || spec[i] > 'z') has_scheme = false;
  std::string_view rest = spec;
  if (has_scheme) {
    s.scheme = std::string(spec.substr(0, colon));
    rest = spec.substr(colon + 1);
  } else {
    s.scheme = "file";
    s.arg = std::string(spec);
    return s;
  }
  auto comma = rest.find(',');
  s.arg = std::string(rest.substr(0, comma));
  while (comma != std::string_view::npos) {
    rest = rest.substr(comma + 1);
    comma = rest.find(',');
    auto item = rest.substr(0, comma);
    auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Error::invalid(fmt::format("bad option '{}' in '{}': expected key=value", item, spec));
    s.options.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  if (s.arg.empty())
    return Error::invalid(fmt::format("'{}': nothing after '{}:'", spec, s.scheme));
  return s;
}

IoRegistry& IoRegistry::instance() {
  static IoRegistry r;
  return r;
}

bool IoRegistry::add_source(std::string scheme, std::string help, SourceFactory f) {
  sources_.push_back({std::move(scheme), std::move(help), std::move(f), {}});
  return true;
}

bool IoRegistry::add_sink(std::string scheme, std::string help, SinkFactory f) {
  sinks_.push_back({std::move(scheme), std::move(help), {}, std::move(f)});
  return true;
}

namespace {
template <typename E>
std::string known(const std::vector<E>& v) {
  std::string s;
  for (const auto& e : v)
    s += (s.empty() ? "" : ", ") + e.scheme;
  return s;
}
}  // namespace

Result<std::unique_ptr<Source>> IoRegistry::open_source(const SourceSpec& spec) const {
  for (const auto& e : sources_)
    if (e.scheme == spec.scheme) return e.source(spec);
  return Error::invalid(
      fmt::format("unknown source '{}:' (known: {})", spec.scheme, known(sources_)));
}

Result<std::unique_ptr<Sink>> IoRegistry::open_sink(const SourceSpec& spec) const {
  for (const auto& e : sinks_)
    if (e.scheme == spec.scheme) return e.sink(spec);
  return Error::invalid(fmt::format("unknown sink '{}:' (known: {})", spec.scheme, known(sinks_)));
}

Result<std::unique_ptr<Source>> open_source(std::string_view spec) {
  L45_TRY(auto s, parse_source_spec(spec));
  return IoRegistry::instance().open_source(s);
}

Result<std::unique_ptr<Sink>> open_sink(std::string_view spec) {
  L45_TRY(auto s, parse_source_spec(spec));
  return IoRegistry::instance().open_sink(s);
}

}  // namespace l45
