// `ordo lock acquire|renew|release|status`: one call each, JSON on stdout for scripts.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

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

constexpr std::size_t kListLimit = 1000;

std::string Pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// A terminal table: one row per holder (a free lock has one row without a holder).
std::string Table(const std::vector<LockState>& locks) {
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "OWNER", "TOKEN", "SLOT", "EXPIRES IN", "LAST TOKEN", "LIMIT"}};
  const auto now = std::chrono::system_clock::now();
  for (const LockState& l : locks) {
    const std::string last = std::to_string(l.last_token);
    const std::string limit = std::to_string(l.limit);
    if (l.holders.empty()) rows.push_back({l.name, "-", "-", "-", "free", last, limit});
    for (const Holder& h : l.holders) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(h.expires_at - now);
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(left.count()) / 1000.0);
      rows.push_back({l.name, h.owner.empty() ? "-" : h.owner, std::to_string(h.token),
                      std::to_string(h.slot), left.count() <= 0 ? "expired" : buf, last, limit});
    }
  }
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += i + 1 < r.size() ? Pad(r[i], width[i] + 2) : r[i];
    }
    out += line + "\n";
  }
  return out;
}

int ListCommand(Locker& locker, const LockOptions& o) {
  if (!o.prefix.empty()) {
    if (Status valid = ValidateName(o.prefix, "prefix"); !valid.ok()) {
      return Fail(valid, o.conflict_exit_code);
    }
  }
  const bool terminal = isatty(STDOUT_FILENO) == 1;
  while (true) {
    auto locks = locker.List(o.prefix, kListLimit);
    if (!locks.ok()) return Fail(locks.status(), o.conflict_exit_code);
    if (o.json) {
      std::string items;
      for (const LockState& l : *locks) items += (items.empty() ? "" : ",") + StateJson(l);
      PrintLine("{\"locks\":[" + items + "]}");
    } else {
      // --watch on a terminal redraws in place; into a pipe each listing follows the last.
      if (o.watch && terminal) std::fputs("\x1b[H\x1b[2J", stdout);
      std::fputs(Table(*locks).c_str(), stdout);
      if (o.watch && !terminal) std::fputc('\n', stdout);
    }
    std::fflush(stdout);
    if (!o.watch) return kExitOk;
    // Ended by SIGINT/SIGTERM (the default action): nothing is held, nothing to clean up.
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int LockCommand(const LockOptions& o) {
  if (o.action != LockAction::kList) {
    if (Status valid = ValidateName(o.name); !valid.ok()) return Fail(valid, o.conflict_exit_code);
  }
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
  if (o.action == LockAction::kList) return ListCommand(locker, o);
  Lease lease;
  lease.name = o.name;
  lease.token = o.token;
  lease.owner = o.owner;
  lease.mode = o.mode;
  lease.ttl = o.ttl;
  switch (o.action) {
    case LockAction::kAcquire: {
      auto acquired = locker.Acquire({o.name, o.mode, o.ttl, o.wait, o.owner, o.limit});
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
    case LockAction::kList:
      break;  // handled above
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
