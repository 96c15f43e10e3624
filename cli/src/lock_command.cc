// `ordo lock acquire|renew|release|status`: one call each, JSON on stdout for scripts.
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "backend_loader.h"
#include "commands.h"
#include "defaults.h"
#include "json_output.h"
#include "ordo/names.h"
#include "ordo/registry.h"

namespace ordo::cli {
namespace {

void PrintLine(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
}

// The error as JSON on stdout (for the script) and as text on stderr (for the person reading
// cron mail); the exit code follows ordo run's.
int Fail(const Status& s, int conflict_exit_code) {
  PrintLine(ErrorJson(s));
  spdlog::error("ordo lock: {}", s.ToString());
  switch (s.code()) {
    case StatusCode::kLockHeld:
      return conflict_exit_code;
    case StatusCode::kLeaseLost:
      return kExitLeaseLost;
    default:
      return kExitOrdoError;
  }
}

}  // namespace

int LockCommand(const LockOptions& o) {
  if (Status valid = ValidateName(o.name); !valid.ok()) return Fail(valid, o.conflict_exit_code);
  std::string url = o.backend;
  if (url.empty()) {
    auto fallback = DefaultRunBackend();
    if (!fallback.ok()) return Fail(fallback.status(), o.conflict_exit_code);
    url = *fallback;
  }
  auto opened = OpenBackend(url);
  if (!opened.ok()) return Fail(opened.status(), o.conflict_exit_code);
  Locker& locker = **opened;
  const bool holds_beyond_exit = locker.traits().expires_by_ttl;
  if (!holds_beyond_exit &&
      (o.action == LockAction::kAcquire || o.action == LockAction::kRenew)) {
    return Fail(InvalidArgumentError(
                    "the locks of '" + url +
                    "' end when the process holding them exits, so this command would drop "
                    "the lock at once: use 'ordo run', or a lease backend (sqlite://, "
                    "postgresql:// cas or version, http://)"),
                o.conflict_exit_code);
  }
  Lease lease;
  lease.name = o.name;
  lease.token = o.token;
  lease.owner = o.owner;
  lease.mode = o.mode;
  lease.ttl = o.ttl;
  switch (o.action) {
    case LockAction::kAcquire: {
      auto acquired = locker.Acquire({o.name, o.mode, o.ttl, o.wait, o.owner});
      if (!acquired.ok()) return Fail(acquired.status(), o.conflict_exit_code);
      PrintLine(LeaseJson(*acquired));
      return kExitOk;
    }
    case LockAction::kRenew: {
      auto renewed = locker.Renew(lease, o.ttl);
      if (!renewed.ok()) return Fail(renewed.status(), o.conflict_exit_code);
      PrintLine(LeaseJson(*renewed));
      return kExitOk;
    }
    case LockAction::kRelease: {
      Status released = locker.Release(lease);
      if (!released.ok()) return Fail(released, o.conflict_exit_code);
      PrintLine(ReleasedJson(lease));
      return kExitOk;
    }
    case LockAction::kStatus: {
      auto state = locker.Describe(o.name);
      if (!state.ok() && state.status().code() == StatusCode::kNotFound) {
        // Never acquired: free, and no token issued yet.
        PrintLine(StateJson(LockState{o.name, {}, 0}));
        return kExitOk;
      }
      if (!state.ok()) return Fail(state.status(), o.conflict_exit_code);
      PrintLine(StateJson(*state));
      return kExitOk;
    }
  }
  return kExitOrdoError;
}

}  // namespace ordo::cli
