// Where ordo keeps things when no --backend is given, and the default lock name of `ordo run`.
#ifndef ORDO_CLI_DEFAULTS_H_
#define ORDO_CLI_DEFAULTS_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "ordo/status.h"

namespace ordo::cli {

// "run-" and 16 hex digits: a 64-bit FNV-1a hash of the argv, each argument prefixed with its
// length (8 bytes, little-endian) so that {"a b"} and {"a", "b"} differ. Stable across
// versions and machines: two identical cron lines get the same name, different ones do not.
// ordo's own options and the working directory do not enter it.
std::string DefaultLockName(const std::vector<std::string>& argv);

// The per-user lock directory of `ordo run` and `ordo lock`, without touching the disk:
// $XDG_RUNTIME_DIR/ordo when set, else /run/lock/ordo for root, else /tmp/ordo-<uid>.
std::string DefaultLockDir(const char* xdg_runtime_dir, uid_t uid);

// The SQLite file of `ordo serve` and `ordo migrate`: /var/lib/ordo/ordo.db for root, else
// $XDG_STATE_HOME/ordo/ordo.db, else $HOME/.local/state/ordo/ordo.db.
std::string DefaultStatePath(const char* xdg_state_home, const char* home, uid_t uid);

// Creates `dir` (one level) with mode 0700 if missing. An existing one must be a real directory
// (not a symlink) owned by this user and not writable by others: /tmp/ordo-<uid> could have
// been planted by someone else. kInvalidArgument says what is wrong.
Status EnsurePrivateDir(const std::string& dir);

// Creates `dir` and its parents (mode 0700 for those it creates).
Status EnsureDirs(const std::string& dir);

// "flock://" + the percent-encoded directory; creates it.
Result<std::string> DefaultRunBackend();
// "sqlite://" + the percent-encoded path; creates its directory.
Result<std::string> DefaultServeBackend();

// Percent-encodes a filesystem path for a URL (keeps '/' and unreserved characters).
std::string UrlPath(std::string_view path);

}  // namespace ordo::cli

#endif  // ORDO_CLI_DEFAULTS_H_
