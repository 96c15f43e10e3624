// `ordo fence`: the SQL that makes the user's own PostgreSQL or SQLite tables refuse stale
// fencing tokens (sql/fence/*.sql), rendered for one database and, for `install`, applied.
//
// Two kinds of fence:
//   * resource fences (PostgreSQL): the table ordo_fences and the function ordo_fence(resource,
//     token), which the user's transactions call first;
//   * per-row fences (PostgreSQL and SQLite): a trigger on the user's table T that refuses a
//     write lowering, or leaving NULL, the integer column C that holds the writer's token.
//
// Install runs in one transaction after checking its input (the table exists, the column exists
// and is of an integer type): it either applies everything or changes nothing. Installing twice
// is a no-op. Messages name the database by its URL with the password masked.
// Thread-compatible: free functions without shared state.
#ifndef ORDO_CLI_FENCE_INSTALL_H_
#define ORDO_CLI_FENCE_INSTALL_H_

#include <string>

#include "ordo/status.h"

namespace ordo::cli {

struct FenceTarget {
  std::string database;  // postgresql://… or sqlite:///path.db
  std::string table;     // per-row fence: the table ("name" or "schema.name"); empty: resource
  std::string column;    // per-row fence: the integer column holding the token
  std::string schema;    // PostgreSQL: where ordo's objects go; empty: public
};

// The SQL `install` would run, as one script wrapped in BEGIN … COMMIT, for the user's own
// migrations. Needs no connection. kInvalidArgument for a bad URL or bad names.
Result<std::string> RenderFenceSql(const FenceTarget& target);

// Checks the target against the database and applies the SQL in one transaction. Returns a
// one-line report ("installed …" or "already installed …"). Errors: kInvalidArgument (bad URL,
// missing database file, table or column, a column that is not an integer, refused by the
// server), kUnavailable (unreachable), kLockHeld (the table stayed locked by others), kInternal.
Result<std::string> InstallFence(const FenceTarget& target);

}  // namespace ordo::cli

#endif  // ORDO_CLI_FENCE_INSTALL_H_
