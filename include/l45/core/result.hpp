// Result<T> and Error: how l45 reports failures of the environment (syscalls, files, missing
// privileges). Untrusted input is never an Error: it gets a DropReason (drop_reason.hpp).
//
//   Result<int> open_it(const char* p) {
//     int fd = ::open(p, O_RDONLY);
//     if (fd < 0) return Error::from_errno(fmt::format("open {}", p));
//     return fd;
//   }
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include "l45/core/assert.hpp"

namespace l45 {

class Error {
 public:
  Error() = default;
  // `code` is an errno value (0 when none applies); `context` says what was being done.
  Error(int code, std::string context) : code_(code), context_(std::move(context)) {}
  static Error from_errno(std::string context) { return Error(errno, std::move(context)); }
  // Bad input from the user or a file: code EINVAL, and the context says everything, so
  // message() adds no "Invalid argument".
  static Error invalid(std::string context) {
    Error e(EINVAL, std::move(context));
    e.self_explained_ = true;
    return e;
  }

  int code() const { return code_; }
  const std::string& context() const { return context_; }
  // "context: strerror(code)", or just the context when code is 0 or the error came from
  // invalid().
  std::string message() const;

 private:
  int code_ = 0;
  std::string context_;
  bool self_explained_ = false;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    L45_CHECK(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    L45_CHECK(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    L45_CHECK(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    L45_CHECK(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    L45_CHECK(!ok_);
    return err_;
  }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace l45

// Propagates an error: `L45_TRY(auto fd, open_it(p));` or `L45_TRY_VOID(do_it());`.
#define L45_CONCAT_INNER(a, b) a##b
#define L45_CONCAT(a, b) L45_CONCAT_INNER(a, b)
#define L45_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                  \
  if (!tmp.ok()) return tmp.error();  \
  decl = std::move(tmp).value()
#define L45_TRY(decl, expr) L45_TRY_IMPL(L45_CONCAT(l45_try_, __LINE__), decl, expr)
#define L45_TRY_VOID(expr)                         \
  do {                                             \
    auto l45_try_v = (expr);                       \
    if (!l45_try_v.ok()) return l45_try_v.error(); \
  } while (0)
