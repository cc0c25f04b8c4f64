// A tcpdump-syntax (pcap-filter(7)) filter compiled with libpcap for a given link type and
// run in-process with pcap_offline_filter(). An empty filter matches everything.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "l45/core/result.hpp"
#include "l45/packet/link_type.hpp"
#include "l45/packet/packet.hpp"

namespace l45 {

class BpfFilter {
 public:
  BpfFilter() = default;
  // Errors (EINVAL) carry libpcap's message: "bad filter 'tcp prot 80': syntax error".
  static Result<BpfFilter> compile(std::string_view expr, LinkType link, uint32_t snaplen = 262144);

  bool empty() const { return !prog_ && !never_; }
  const std::string& expression() const { return expr_; }
  LinkType link() const { return link_; }
  // A filter that matches nothing: what an expression becomes on a link type it cannot be
  // compiled for ("ether host ..." on raw IP), so such packets are filtered out, not passed.
  static BpfFilter never(std::string_view expr, LinkType link);
  bool is_never() const { return never_; }
  bool matches(const Packet& p) const;
  bool matches(Bytes data, uint32_t wire_len) const;
  // The compiled program (a struct bpf_program*), for backends that attach it to a socket.
  const void* program() const { return prog_.get(); }

 private:
  std::string expr_;
  LinkType link_ = LinkType::Ethernet;
  bool never_ = false;
  std::shared_ptr<void> prog_;  // struct bpf_program, freed with pcap_freecode
};

}  // namespace l45
