// Checks of l45's own invariants. Never use these on anything the network, a file or a peer
// controls: untrusted input gets a DropReason instead (see drop_reason.hpp).
//   L45_CHECK(cond)  always on; prints file:line and aborts.
//   L45_ASSERT(cond) debug builds only.
#pragma once

namespace l45::detail {
[[noreturn]] void check_failed(const char* expr, const char* file, int line);
}

#define L45_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::l45::detail::check_failed(#cond, __FILE__, __LINE__))
#ifdef NDEBUG
#define L45_ASSERT(cond) static_cast<void>(0)
#else
#define L45_ASSERT(cond) L45_CHECK(cond)
#endif
