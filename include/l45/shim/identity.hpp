// identity: the shim module that tells the network who is talking.
//
// It inserts an identity header at the start of every UDP datagram and at the start of each TCP
// connection's byte stream (once per direction), and strips it from what the peer's shim
// receives, so both programs see their original bytes. A middlebox reads it with
// parse_identity_header() or by the layout below. Both ends must run the module; a receiver
// whose data does not start with a valid header passes it through unchanged (counted as
// no_header).
//
// Wire format (all integers big-endian):
//
//   offset  size  field
//   0       4     magic "L45I" (0x4c 0x34 0x35 0x49)
//   4       1     version, 1
//   5       1     flags, 0 (reserved)
//   6       2     header length H in bytes, this fixed part included (8 <= H <= 1024)
//   8       H-8   fields, each: type (1 byte), length L (1 byte), L bytes of UTF-8 text
//                   1 application  the program name, or params.app
//                   2 host         the host name, or params.host
//                   3 uid          the program's uid, in decimal
//                   4 user         params.user (absent when not given)
//                 unknown types are skipped by readers
//   H       ...   the application's bytes
//
// Parameters (all optional): app, host, user (each at most 255 bytes).
// Counters: inserted, stripped, no_header.
//
//   name = "who-talks"
//   module = "identity"
//   [match]
//   ports = [5201]
//   [params]
//   user = "ticket-4711"
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace l45::shim {

constexpr uint8_t kIdentityMagic[4] = {'L', '4', '5', 'I'};
constexpr uint8_t kIdentityVersion = 1;
constexpr size_t kIdentityFixed = 8;
constexpr size_t kIdentityMax = 1024;

enum class IdentityField : uint8_t { Application = 1, Host = 2, Uid = 3, User = 4 };

struct IdentityHeader {
  std::string application;
  std::string host;
  std::string uid;
  std::string user;
  size_t length = 0;  // H, the header's size on the wire
};

// The header's bytes for these fields (each cut to 255 bytes).
std::vector<uint8_t> build_identity_header(const IdentityHeader& h);

enum class IdentityParse { Ok, NeedMore, NotIdentity };
// Reads a header at the start of `data`. NeedMore: `data` is a strict prefix of what could be
// a header (a stream receiver waits for more); NotIdentity: it is not one.
IdentityParse parse_identity_header(const uint8_t* data, size_t len, IdentityHeader* out);

}  // namespace l45::shim
