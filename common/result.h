// Errors inside C++ are values: Result<T> holds either a T or an Error carrying one
// code from the single status table below. Conversion to errno happens only in
// to_errno(), at the C edge.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace dc {

enum class Errc : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kIo = 3,
  kNoSpace = 4,
  kPermission = 5,
  kStale = 6,
  kBusy = 7,
  kProtocol = 8,
  kUnsupported = 9,
};

const char* errc_name(Errc c);
int to_errno(Errc c);

struct Error {
  Errc code = Errc::kIo;
  std::string message;
};

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(std::move(e)) {}      // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

}  // namespace dc
