// Internet checksums (RFC 1071) and their incremental update (RFC 1624).
//
//   uint32_t s = pseudo_header_sum_v4(src, dst, 6, tcp_len);
//   uint16_t c = checksum_finish(checksum_add(tcp_bytes, s));   // value to store
//   bool ok = checksum_finish(checksum_add(tcp_bytes_with_csum, s)) == 0;
//
// Partial sums may be chained: every chunk but the last must have an even length.
#pragma once

#include <cstdint>

#include "l45/packet/bytes.hpp"

namespace l45 {

// Adds `data` to a running one's-complement sum (kept unfolded in 32 bits+carry).
uint32_t checksum_add(Bytes data, uint32_t sum = 0);
// Folds the sum and complements it: the value that goes in a checksum field, or 0 when
// verifying bytes that already hold a correct checksum.
uint16_t checksum_finish(uint32_t sum);

// Pseudo-header sums for TCP/UDP/ICMPv6 (RFC 793 3.1, RFC 768, RFC 8200 8.1).
// `src`/`dst` point at 4 (v4) or 16 (v6) address bytes in network order.
uint32_t pseudo_header_sum_v4(const std::byte* src, const std::byte* dst, uint8_t proto,
                              uint32_t l4_len);
uint32_t pseudo_header_sum_v6(const std::byte* src, const std::byte* dst, uint8_t next_header,
                              uint32_t l4_len);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Values in host order.
uint16_t checksum_update16(uint16_t old_csum, uint16_t old_val, uint16_t new_val);
uint16_t checksum_update32(uint16_t old_csum, uint32_t old_val, uint32_t new_val);

}  // namespace l45
