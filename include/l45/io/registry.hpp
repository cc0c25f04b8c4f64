// Opening sources and sinks by name. Each backend registers itself with one line at the end
// of its .cpp, so adding a backend never edits a switch here:
//
//   L45_REGISTER_SOURCE("file", "pcap or pcapng file", open_pcap_file_source);
//
// A spec is "SCHEME:ARG[,key=value...]":  file:trace.pcap  iface:eth0  tun:l45t0
//   tap:l45t0  nfqueue:3,fail_open=1
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"
#include "l45/io/source.hpp"

namespace l45 {

struct SourceSpec {
  std::string scheme;
  std::string arg;
  std::vector<std::pair<std::string, std::string>> options;
  // The value of option `key`, or `def`.
  std::string option(std::string_view key, std::string_view def = {}) const;
  bool has(std::string_view key) const;
};

// Parses "scheme:arg,k=v,k2=v2"; a spec without "scheme:" is taken as a file path.
Result<SourceSpec> parse_source_spec(std::string_view spec);

using SourceFactory = std::function<Result<std::unique_ptr<Source>>(const SourceSpec&)>;
using SinkFactory = std::function<Result<std::unique_ptr<Sink>>(const SourceSpec&)>;

class IoRegistry {
 public:
  static IoRegistry& instance();
  bool add_source(std::string scheme, std::string help, SourceFactory f);
  bool add_sink(std::string scheme, std::string help, SinkFactory f);
  Result<std::unique_ptr<Source>> open_source(const SourceSpec& spec) const;
  Result<std::unique_ptr<Sink>> open_sink(const SourceSpec& spec) const;

 private:
  struct Entry {
    std::string scheme, help;
    SourceFactory source;
    SinkFactory sink;
  };
  std::vector<Entry> sources_, sinks_;
};

Result<std::unique_ptr<Source>> open_source(std::string_view spec);
Result<std::unique_ptr<Sink>> open_sink(std::string_view spec);

}  // namespace l45

#define L45_REGISTER_SOURCE(scheme, help, factory)                           \
  [[maybe_unused]] static const bool L45_CONCAT(l45_source_reg_, __LINE__) = \
      ::l45::IoRegistry::instance().add_source(scheme, help, factory)
#define L45_REGISTER_SINK(scheme, help, factory)                           \
  [[maybe_unused]] static const bool L45_CONCAT(l45_sink_reg_, __LINE__) = \
      ::l45::IoRegistry::instance().add_sink(scheme, help, factory)
