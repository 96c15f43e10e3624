// What the command line asks for, one struct per subcommand. command_line.cc fills them; the
// *_command.cc files act on them. Nothing here parses or does anything.
#ifndef ORDO_CLI_OPTIONS_H_
#define ORDO_CLI_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ordo/lock.h"
#include "ordo_http/server.h"

namespace ordo::cli {

// Exit codes shared by every subcommand (the README's table).
inline constexpr int kExitOk = 0;
inline constexpr int kExitLockHeld = 1;       // default of -E/--conflict-exit-code
inline constexpr int kExitLeaseLost = 75;     // default of --lost-exit-code (EX_TEMPFAIL)
inline constexpr int kExitOrdoError = 125;    // bad flags, backend unreachable, ordo's own faults
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

struct RunOptions {
  std::string backend;  // empty: the per-user flock directory
  std::string lock;     // empty: derived from the command (DefaultLockName)
  std::chrono::milliseconds ttl = kDefaultTtl;
  std::chrono::milliseconds wait{0};
  LockMode mode = LockMode::kExclusive;
  int conflict_exit_code = kExitLockHeld;
  int lost_exit_code = kExitLeaseLost;
  std::chrono::milliseconds kill_grace{10'000};
  std::chrono::milliseconds hold_at_least{0};
  std::string owner;
  std::uint32_t limit = 1;  // > 1: one of at most `limit` concurrent holders (a semaphore)
  bool verbose = false;
  std::vector<std::string> command;
  // `ordo elect`: the lock is the election, the owner the candidate; COMMAND also sees
  // ORDO_LEADER_TERM, and the campaign waits with no end.
  bool election = false;
};

struct LeaderOptions {
  std::string backend;  // empty: as for run
  std::string name;
  bool watch = false;   // one line per change of term, until killed
};

enum class LockAction { kAcquire, kRenew, kRelease, kStatus, kList };

struct LockOptions {
  LockAction action = LockAction::kStatus;
  std::string backend;  // empty: as for run
  std::string name;
  std::chrono::milliseconds ttl = kDefaultTtl;
  std::chrono::milliseconds wait{0};
  LockMode mode = LockMode::kExclusive;
  std::string owner;
  std::uint32_t limit = 1;  // acquire: semaphore limit
  std::uint64_t token = 0;  // renew, release
  int conflict_exit_code = kExitLockHeld;
  std::string prefix;  // list: names starting with this
  bool watch = false;  // list: print again every second until interrupted
  bool json = false;   // list: one JSON object per listing instead of a table
};

struct MigrateOptions {
  std::string backend;  // empty: the serve default
};

enum class FenceAction { kInstall, kSql };

struct FenceOptions {
  FenceAction action = FenceAction::kSql;
  std::string database;  // postgresql://… or sqlite:///path.db (required)
  std::string table;     // per-row fence: table and column; both empty: resource fence
  std::string column;
  std::string schema;    // PostgreSQL: where ordo's fence objects go (default public)
};

struct ServeFlags {
  std::string backend;  // empty: the serve default (SQLite)
  http::ServeOptions serve;
};

}  // namespace ordo::cli

#endif  // ORDO_CLI_OPTIONS_H_
