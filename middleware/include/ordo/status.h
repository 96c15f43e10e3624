// ordo/status.h — Status and Result<T>: how every ordo call reports success or failure.
//
// No exception crosses ordo's public API. Every fallible call returns a Status or a Result<T>,
// both [[nodiscard]]. Each code says what the caller should do next:
//
//   code               meaning                                    what to do next
//   kOk                success                                    —
//   kLockHeld          someone else holds the lock (try-lock, or  retry later or give up; this is an
//                      the wait elapsed)                          ordinary outcome, not a fault
//   kLeaseLost         renew/release of a lease that expired or   stop writing: redo the whole critical
//                      was taken over                             section under a new lease
//   kStaleToken        a fenced write or read was refused: a      stop writing: a newer holder exists;
//                      newer token was seen (or, in strict mode,  redo the critical section
//                      the token is not the live holder)
//   kVersionMismatch   a compare-and-swap lost                    re-read, recompute, retry the CAS
//   kInvalidArgument   bad input; nothing was changed             fix the input; do not retry as is
//   kUnavailable       backend down or unreachable                retry the same call with backoff;
//                                                                 a held lease may be lost meanwhile
//   kNotFound          no such lock, key or object                do not retry as is
//   kInternal          a bug or an unexpected backend answer      report it
//
// Thread safety: Status and Result are values; distinct objects may be used from distinct
// threads freely, one object is as thread-safe as the T it holds.
#ifndef ORDO_STATUS_H_
#define ORDO_STATUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace ordo {

enum class StatusCode {
  kOk = 0,
  kLockHeld,
  kLeaseLost,
  kStaleToken,
  kVersionMismatch,
  kInvalidArgument,
  kUnavailable,
  kNotFound,
  kInternal,
};

// The wire name of a code ("lock_held", "stale_token", …), as used in HTTP error bodies.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // kOk
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // For kStaleToken: the highest token the store has accepted for the key. For
  // kVersionMismatch: the object's current version (0 when it does not exist). Empty otherwise.
  std::optional<std::uint64_t> current() const { return current_; }
  Status& set_current(std::uint64_t value) & {
    current_ = value;
    return *this;
  }
  Status&& set_current(std::uint64_t value) && {
    current_ = value;
    return std::move(*this);
  }

  // "lock_held: lock 'x' is held by …"; "ok" for success.
  std::string ToString() const;

  // Marks a Status as deliberately ignored.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::optional<std::uint64_t> current_;
};

inline Status OkStatus() { return Status(); }
Status LockHeldError(std::string message);
Status LeaseLostError(std::string message);
Status StaleTokenError(std::string message, std::uint64_t current_token);
Status VersionMismatchError(std::string message, std::uint64_t current_version);
Status InvalidArgumentError(std::string message);
Status UnavailableError(std::string message);
Status NotFoundError(std::string message);
Status InternalError(std::string message);

namespace internal {
// Called when value() is used on an error Result: a programming error. Prints and aborts.
[[noreturn]] void DieOnBadResultAccess(const Status& status);
[[noreturn]] void DieOnOkStatusInResult();
}  // namespace internal

// Result<T> holds either a T or a non-OK Status, like absl::StatusOr<T>.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "Result<Status> is not allowed");

 public:
  // An OK Status is not a value: constructing a Result from one aborts.
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) internal::DieOnOkStatusInResult();
  }
  Result(const T& value) : value_(value) {}        // NOLINT(google-explicit-constructor)
  Result(T&& value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, Result<T>>)
  Result(U&& value) : value_(std::forward<U>(value)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.has_value(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  // REQUIRES: ok(). Aborts with the status otherwise.
  const T& value() const& {
    Check();
    return *value_;
  }
  T& value() & {
    Check();
    return *value_;
  }
  T&& value() && {
    Check();
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void Check() const {
    if (!value_.has_value()) internal::DieOnBadResultAccess(status_);
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace ordo

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define ORDO_RETURN_IF_ERROR(expr)                \
  do {                                            \
    ::ordo::Status ordo_status_tmp_ = (expr);     \
    if (!ordo_status_tmp_.ok()) return ordo_status_tmp_; \
  } while (false)

#endif  // ORDO_STATUS_H_
