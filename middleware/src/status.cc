#include "ordo/status.h"

#include <cstdio>
#include <cstdlib>

namespace ordo {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kLockHeld: return "lock_held";
    case StatusCode::kLeaseLost: return "lease_lost";
    case StatusCode::kStaleToken: return "stale_token";
    case StatusCode::kVersionMismatch: return "version_mismatch";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kInternal: return "internal";
  }
  return "internal";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status LockHeldError(std::string message) { return {StatusCode::kLockHeld, std::move(message)}; }
Status LeaseLostError(std::string message) {
  return {StatusCode::kLeaseLost, std::move(message)};
}
Status StaleTokenError(std::string message, std::uint64_t current_token) {
  return Status(StatusCode::kStaleToken, std::move(message)).set_current(current_token);
}
Status VersionMismatchError(std::string message, std::uint64_t current_version) {
  return Status(StatusCode::kVersionMismatch, std::move(message)).set_current(current_version);
}
Status InvalidArgumentError(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}
Status UnavailableError(std::string message) {
  return {StatusCode::kUnavailable, std::move(message)};
}
Status NotFoundError(std::string message) { return {StatusCode::kNotFound, std::move(message)}; }
Status InternalError(std::string message) { return {StatusCode::kInternal, std::move(message)}; }

namespace internal {
void DieOnBadResultAccess(const Status& status) {
  std::fprintf(stderr, "ordo: value() called on a Result holding an error: %s\n",
               status.ToString().c_str());
  std::abort();
}
void DieOnOkStatusInResult() {
  std::fprintf(stderr, "ordo: a Result<T> was constructed from an OK Status\n");
  std::abort();
}
}  // namespace internal

}  // namespace ordo
