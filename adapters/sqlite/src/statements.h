// Every SQL statement the SQLite backend runs, in one place, each with the invariant it keeps.
// The adapter (sqlite_locker.cc, sqlite_stores.cc) and ordo-bench's raw-sqlite3 baseline
// (bench/rows_sqlite.cc) both use these, so the baseline runs exactly the adapter's SQL.
// Parameters are positional (?1, ?2, …) and bound by the caller; "now" is SQLite's clock
// (ORDO_SQLITE_NOW), never the client's.
#ifndef ORDO_ADAPTERS_SQLITE_STATEMENTS_H_
#define ORDO_ADAPTERS_SQLITE_STATEMENTS_H_

namespace ordo::sqlite::statements {

// SQLite's clock, in integer milliseconds since the Unix epoch. julianday('now') is kept by
// SQLite as integer milliseconds and is the same for every use within one sqlite3_step(), so
// one statement sees one instant; ROUND undoes the floating-point error of the conversion.
// Every expiry decision compares against this expression, never against the client's clock.
#define ORDO_SQLITE_NOW "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

// ---------------------------------------------------------------------------------------------
// SQL of the cas strategy: each call is one BEGIN IMMEDIATE transaction (Database::Write), and
// the decision is the conditional UPDATE kClaim, evaluated by SQLite under its write lock.

// The lock's row is created by its first acquisition and never deleted, so last_token survives
// every release, expiry and crash: tokens only grow.
inline constexpr char kEnsureLock[] =
    "INSERT INTO locks (name, last_token) VALUES (?1, 0) ON CONFLICT (name) DO NOTHING";
// A holder whose lease ended by SQLite's clock holds nothing; forgetting it keeps the table
// small. (kClaim ignores expired rows anyway.)
inline constexpr char kPurgeExpired[] =
    "DELETE FROM holders WHERE name = ?1 AND expires_at <= " ORDO_SQLITE_NOW;
// The decision, ShedLock-style: issue the next token only if no live holder conflicts with
// the requested mode ?2 (exclusive conflicts with every holder, shared with exclusive ones).
// One row returned = acquired; none = held. Mutual exclusion holds because the check and the
// bump are one statement under SQLite's write lock.
inline constexpr char kClaim[] =
    "UPDATE locks SET last_token = last_token + 1 "
    " WHERE name = ?1 "
    "   AND NOT EXISTS (SELECT 1 FROM holders "
    "                    WHERE name = ?1 AND expires_at > " ORDO_SQLITE_NOW
    "                      AND (?2 = 'exclusive' OR mode = 'exclusive')) "
    "RETURNING last_token";
// The holder row carries the token just issued; it commits with the bump or not at all, so a
// token is never issued without its holder nor reissued after a crash.
inline constexpr char kInsertHolder[] =
    "INSERT INTO holders (name, token, owner, mode, expires_at, slot, lim) "
    "VALUES (?1, ?2, ?3, ?4, " ORDO_SQLITE_NOW " + ?5, ?6, ?7) RETURNING expires_at";
// The limit in force: that of any live holder (they all share it); no row when free.
inline constexpr char kLimitInForce[] =
    "SELECT lim FROM holders WHERE name = ?1 AND expires_at > " ORDO_SQLITE_NOW " LIMIT 1";
// A permit of a semaphore with limit ?2: issue the next token only while fewer than ?2 holders
// remain. Rows are counted whether or not they expired since kPurgeExpired a moment ago in the
// same transaction (conservative: never more than ?2 rows, so a free slot always exists).
inline constexpr char kClaimPermit[] =
    "UPDATE locks SET last_token = last_token + 1 "
    " WHERE name = ?1 AND (SELECT count(*) FROM holders WHERE name = ?1) < ?2 "
    "RETURNING last_token";
// The slots in use, for the lowest free one.
inline constexpr char kUsedSlots[] = "SELECT slot FROM holders WHERE name = ?1 ORDER BY slot";
// Renew and release act only on a live holder (by SQLite's clock): an expired, released or
// taken-over lease changes no row, which is kLeaseLost.
inline constexpr char kCasRenew[] =
    "UPDATE holders SET expires_at = " ORDO_SQLITE_NOW " + ?3 "
    " WHERE name = ?1 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW " "
    "RETURNING owner, mode, expires_at, slot";
inline constexpr char kCasRelease[] =
    "DELETE FROM holders WHERE name = ?1 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW;
// Who holds the lock, for the kLockHeld message and the waiter's next wake-up.
inline constexpr char kLiveHolders[] =
    "SELECT owner, token, mode, expires_at, " ORDO_SQLITE_NOW ", slot FROM holders "
    " WHERE name = ?1 AND expires_at > " ORDO_SQLITE_NOW " ORDER BY token";

// ---------------------------------------------------------------------------------------------
// SQL of the version strategy: read in a read transaction, decide in the client, write back in
// BEGIN IMMEDIATE only where what was read is unchanged. last_token is the lock's version
// (every acquisition bumps it); a holder's expires_at is the holder's version (every renewal
// changes it).

// One instant of SQLite's clock and the lock's version (NULL: the lock was never acquired).
inline constexpr char kSnapshotLock[] =
    "SELECT " ORDO_SQLITE_NOW ", (SELECT last_token FROM locks WHERE name = ?1)";
inline constexpr char kAllHolders[] =
    "SELECT owner, token, mode, expires_at, slot, lim FROM holders WHERE name = ?1 ORDER BY token";
// Write-back of an acquisition: the version must be the one read (no acquisition in between)…
inline constexpr char kCreateLock[] =
    "INSERT INTO locks (name, last_token) VALUES (?1, 1) ON CONFLICT (name) DO NOTHING";
inline constexpr char kBumpIfVersion[] =
    "UPDATE locks SET last_token = ?2 + 1 WHERE name = ?1 AND last_token = ?2";
// …and each holder the client judged expired must still be exactly as read (a renewal in
// between changes expires_at and turns this into a conflict).
inline constexpr char kDeleteIfUnchanged[] =
    "DELETE FROM holders WHERE name = ?1 AND token = ?2 AND expires_at = ?3";
inline constexpr char kSnapshotHolder[] =
    "SELECT " ORDO_SQLITE_NOW ", owner, mode, expires_at, slot FROM holders "
    " WHERE name = ?1 AND token = ?2";
// Renew/release write back only where the holder is as read (expires_at = ?3) and, since the
// client's decision is already a few microseconds old, still live by SQLite's clock.
inline constexpr char kRenewIfUnchanged[] =
    "UPDATE holders SET expires_at = " ORDO_SQLITE_NOW " + ?4 "
    " WHERE name = ?1 AND token = ?2 AND expires_at = ?3 AND expires_at > " ORDO_SQLITE_NOW " "
    "RETURNING expires_at";
inline constexpr char kReleaseIfUnchanged[] =
    "DELETE FROM holders "
    " WHERE name = ?1 AND token = ?2 AND expires_at = ?3 AND expires_at > " ORDO_SQLITE_NOW;

// ---------------------------------------------------------------------------------------------
// Reads shared by both strategies.

inline constexpr char kDescribe[] =
    "SELECT l.last_token, h.owner, h.token, h.mode, h.expires_at, h.slot, h.lim "
    "  FROM locks AS l LEFT JOIN holders AS h "
    "    ON h.name = l.name AND h.expires_at > " ORDO_SQLITE_NOW
    " WHERE l.name = ?1 ORDER BY h.token";
// Names are ASCII below 0x7f, so [prefix, prefix || char(127)) is exactly the names starting
// with the prefix, and the primary-key index serves the range and the order.
inline constexpr char kList[] =
    "SELECT l.name, l.last_token, h.owner, h.token, h.mode, h.expires_at, h.slot, h.lim "
    "  FROM (SELECT name, last_token FROM locks "
    "         WHERE name >= ?1 AND name < (?1 || char(127)) ORDER BY name LIMIT ?2) AS l "
    "  LEFT JOIN holders AS h ON h.name = l.name AND h.expires_at > " ORDO_SQLITE_NOW
    " ORDER BY l.name, h.token";
inline constexpr char kPing[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

// ---------------------------------------------------------------------------------------------
// SQL of the stores (sqlite_stores.cc).

// A fenced write, in ONE statement. The fence only rises: the row is written only when the
// token is at least the key's fence (fenced.fence <= excluded.fence; an equal token is the same
// holder writing again). In strict mode (?4 is the lock name; NULL otherwise) the SELECT yields
// no row unless the token is a live holder of that lock by SQLite's clock, so the check and the
// write are one atomic step. No row returned = refused, nothing written.
inline constexpr char kFencedWrite[] =
    "INSERT INTO fenced (key, fence, value, has_value, version) "
    "SELECT ?1, ?2, ?3, 1, 1 "
    " WHERE ?4 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?4 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW ") "
    "ON CONFLICT (key) DO UPDATE "
    "   SET fence = excluded.fence, value = excluded.value, has_value = 1, "
    "       version = fenced.version + 1 "
    " WHERE fenced.fence <= excluded.fence "
    "RETURNING fence, version";

// A fenced read registers its token exactly like a write, value untouched. For a missing key it
// creates a value-less row (has_value = 0) so the raised fence is kept.
inline constexpr char kFencedRegister[] =
    "INSERT INTO fenced (key, fence, value, has_value, version) "
    "SELECT ?1, ?2, X'', 0, 0 "
    " WHERE ?3 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?3 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW ") "
    "ON CONFLICT (key) DO UPDATE SET fence = excluded.fence "
    " WHERE fenced.fence <= excluded.fence "
    "RETURNING fence, value, has_value, version";

inline constexpr char kFencedGet[] =
    "SELECT fence, value, has_value, version FROM fenced WHERE key = ?1";
inline constexpr char kFenceOf[] = "SELECT fence FROM fenced WHERE key = ?1";

// Creation: inserts only if absent (expected version 0).
inline constexpr char kObjectCreate[] =
    "INSERT INTO objects (key, value, version) VALUES (?1, ?2, 1) "
    "ON CONFLICT (key) DO NOTHING RETURNING version";
// CAS: writes only if the version is still the one the caller read; of N concurrent callers
// from one version, the first to get SQLite's write lock changes the row and every later one
// finds the version moved (exactly one winner).
inline constexpr char kObjectSwap[] =
    "UPDATE objects SET value = ?2, version = version + 1 WHERE key = ?1 AND version = ?3 "
    "RETURNING version";
// Fenced CAS, in ONE statement each: ?1 key, ?2 value, ?3 expected version, ?4 token, ?5 lock
// name (NULL = not strict). The row changes only if the token is not below the object's fence
// (which rises to it), the token is a live holder in strict mode, and the version matches; a
// create (expected version 0) inserts only if absent. No row returned = refused, nothing
// written; FencedCasRefusal then says why, token first.
inline constexpr char kObjectFencedCreate[] =
    "INSERT INTO objects (key, value, version, fence) "
    "SELECT ?1, ?2, 1, ?4 "
    " WHERE ?3 = 0 AND (?5 IS NULL "
    "    OR EXISTS (SELECT 1 FROM holders "
    "                WHERE name = ?5 AND token = ?4 AND expires_at > " ORDO_SQLITE_NOW ")) "
    "ON CONFLICT (key) DO NOTHING RETURNING version";
inline constexpr char kObjectFencedSwap[] =
    "UPDATE objects SET value = ?2, version = version + 1, fence = MAX(fence, ?4) "
    " WHERE key = ?1 AND version = ?3 AND fence <= ?4 "
    "   AND (?5 IS NULL "
    "        OR EXISTS (SELECT 1 FROM holders "
    "                    WHERE name = ?5 AND token = ?4 AND expires_at > " ORDO_SQLITE_NOW ")) "
    "RETURNING version";
inline constexpr char kObjectFenceAndVersion[] =
    "SELECT fence, version FROM objects WHERE key = ?1";
inline constexpr char kLiveHolder[] =
    "SELECT 1 FROM holders WHERE name = ?1 AND token = ?2 AND expires_at > " ORDO_SQLITE_NOW;

inline constexpr char kObjectGet[] = "SELECT value, version FROM objects WHERE key = ?1";
inline constexpr char kObjectVersion[] = "SELECT version FROM objects WHERE key = ?1";

}  // namespace ordo::sqlite::statements

#endif  // ORDO_ADAPTERS_SQLITE_STATEMENTS_H_
