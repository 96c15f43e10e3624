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

// The lock directory of `ordo run` and `ordo lock` when no --backend is given, without
// touching the disk: /var/lib/ordo/locks for root, else `home`/.local/state/ordo/locks. It
// depends on the user alone, never on the session (see README, "ordo run"): cron, a login
// shell, `sudo -u`, `su -l` and systemd units of one user all get the same directory, and it
// survives logout and reboot, so its token counters keep growing.
std::string DefaultLockDir(uid_t uid, std::string_view home);

// The home directory of `uid` from the user database (getpwuid_r): cron, `su -l` and systemd's
// User= take it from there too, while $HOME is whatever the caller's environment says (`sudo
// -u` can keep the invoking user's, `env -i` and system units have none). $HOME is used only
// when the database has no entry for the uid (a container's arbitrary uid); kInvalidArgument
// when neither gives an absolute path.
Result<std::string> HomeOf(uid_t uid, const char* home_env);

// The lock directories of ordo 0.1, in the order they are locked: $XDG_RUNTIME_DIR/ordo (when
// set), /run/user/<uid>/ordo (a login session's, seen from cron too), then /tmp/ordo-<uid>, or
// /run/lock/ordo for root. Duplicates removed.
std::vector<std::string> LegacyLockDirs(const char* xdg_runtime_dir, uid_t uid);

// The legacy directories (see above) that hold a lock file for `name` and are private to this
// user (as ordo 0.1 required): while one exists, `ordo run` with the default backend takes its
// lock too, so that an old and a new ordo never run one job at once during an upgrade.
std::vector<std::string> LegacyLocksOf(const std::string& name);

// The SQLite file of `ordo serve` and `ordo migrate`: /var/lib/ordo/ordo.db for root, else
// $XDG_STATE_HOME/ordo/ordo.db, else $HOME/.local/state/ordo/ordo.db.
std::string DefaultStatePath(const char* xdg_state_home, const char* home, uid_t uid);

// Creates `dir` (one level) with mode 0700 if missing. An existing one must be a real directory
// (not a symlink) owned by this user and not writable by others: /tmp/ordo-<uid> could have
// been planted by someone else. kInvalidArgument says what is wrong.
Status EnsurePrivateDir(const std::string& dir);

// Creates `dir` and its parents (mode 0700 for those it creates).
Status EnsureDirs(const std::string& dir);

// The default lock directory of this user (see DefaultLockDir), created with its parents.
Result<std::string> DefaultRunDir();
// "flock://" + the percent-encoded directory; creates it.
Result<std::string> DefaultRunBackend();
// "sqlite://" + the percent-encoded path; creates its directory.
Result<std::string> DefaultServeBackend();

// Percent-encodes a filesystem path for a URL (keeps '/' and unreserved characters).
std::string UrlPath(std::string_view path);

}  // namespace ordo::cli

#endif  // ORDO_CLI_DEFAULTS_H_
