// Every SQL statement the PostgreSQL backend runs, in one place, each with the invariant it
// keeps. ordo-bench and the README print them from here (kAllStatements).
//
// Conventions:
//   - Every value is a bound parameter ($1, $2, …), cast at each use so that PostgreSQL never
//     has to guess a type.
//   - "Now" is the database's clock: clock_timestamp(), read once per statement through the
//     `clock` CTE. No client clock decides expiry (invariant 5).
//   - Times come back as milliseconds since the Unix epoch (bigint).
//   - Tables live in the schema `ordo` (sql/postgresql/0001_initial.sql).
//
// The lock-table rule that makes one statement per call safe (invariant 1). A statement that
// *decides* (is the lock free?) reads ordo.holders through its snapshot, taken when the
// statement starts. Under READ COMMITTED a row lock waited for later does not refresh that
// snapshot, so a holder committed meanwhile would be missed. Therefore:
//   every statement that adds, renews or removes a holder of a name also bumps
//   ordo.locks.version of that name, and a statement that decided on its snapshot applies the
//   decision only if ordo.locks.version is still the one the snapshot saw
//   (ON CONFLICT … DO UPDATE … WHERE l.version = EXCLUDED.version - 1, or WHERE version = $v).
// The WHERE of ON CONFLICT DO UPDATE and of UPDATE is evaluated on the latest committed row
// version, after the row lock is taken, so a decision made on an outdated snapshot changes
// nothing and the caller retries. Row locks are always taken in the same order — the
// ordo.locks row first, then ordo.holders rows — so these statements do not deadlock.
#ifndef ORDO_ADAPTERS_POSTGRESQL_STATEMENTS_H_
#define ORDO_ADAPTERS_POSTGRESQL_STATEMENTS_H_

#include <cstdint>
#include <string_view>

namespace ordo::pg::sql {

// A holder row `h` is live at time `now` (a SQL expression): a lease (cas/version strategies)
// until its expires_at; a for-update holder while the transaction that holds its row lock is
// still open. txid_status() is the database's own record of that transaction: 'in progress'
// until it commits, aborts, or its connection dies (a server crash turns it into 'aborted').
// Transaction ids are 64-bit with epoch and never reused, unlike backend pids.
#define ORDO_PG_LIVE(h, now)                                                   \
  "(CASE WHEN " h ".holder_xact IS NULL THEN " h ".expires_at > " now         \
  " ELSE txid_status(" h ".holder_xact) = 'in progress' END)"

#define ORDO_PG_EPOCH_MS(t) "(extract(epoch FROM " t ") * 1000)::bigint"

// CTE `bumped`: bumps the version of lock $1 (the rule above) if token $2 is a live lease of it
// at c.now. Renew and release start with it, so they lock the ordo.locks row before touching
// ordo.holders, in the same order as acquire.
#define ORDO_PG_BUMP_IF_LIVE_LEASE                                                      \
  " bumped AS ("                                                                       \
  "  UPDATE ordo.locks l SET version = l.version + 1 FROM clock c"                     \
  "  WHERE l.name = $1::text AND EXISTS (SELECT 1 FROM ordo.holders h"                 \
  "    WHERE h.name = $1::text AND h.token = $2::bigint AND h.holder_xact IS NULL"     \
  "    AND h.expires_at > c.now)"                                                      \
  "  RETURNING l.name),"

// CTE `admitted`: strict mode. ok unless a lock name (`lock`, '' = not strict) is given and the
// token (`token`) is not one of its live holders — checked in the same statement as the write.
#define ORDO_PG_ADMITTED(lock, token)                                                   \
  "WITH admitted AS ("                                                                 \
  "  SELECT " lock "::text = '' OR EXISTS (SELECT 1 FROM ordo.holders h"               \
  "    WHERE h.name = " lock "::text AND h.token = " token "::bigint"                  \
  "    AND " ORDO_PG_LIVE("h", "clock_timestamp()") ") AS ok),"

// The channel release and expiry notifications go to; the payload is the lock name.
inline constexpr std::string_view kChannel = "ordo_lock";

// NOTIFY only when someone waits (issue 15: notifying commits serialise on a global lock).
// A Locker's listener connection holds a *shared* session advisory lock on the key
// (kWaitersClass, hashtext(name)) for every name this Locker has a waiter or watcher on, taken
// before the waiter's next try. A release tries the key *exclusively* for its own transaction:
// it NOTIFYs only if that fails, i.e. if some session registered interest. Why no wake-up is
// lost: if the release's try wins, it holds the key until its commit, so a waiter registering
// at that moment blocks until the release is committed, and its next try sees the release; if
// the waiter's shared lock came first, the release's try fails and it NOTIFYs. A listener
// connection that dies takes its registrations with it (nothing leaks, even after kill -9);
// its waiters re-check on their own until it is back and has registered again. Names that
// share a hash only cost extra notifications. The two-key form keeps these keys apart from
// single-key advisory locks (kMigrationLock) and from most applications' own.
inline constexpr std::int32_t kWaitersClass = 0x6f72646f;  // "ordo"
#define ORDO_PG_NOTIFY_IF_WAITED(name)                                                     \
  "SELECT pg_notify('ordo_lock', " name ")"                                               \
  " WHERE NOT pg_try_advisory_xact_lock(1869767791, hashtext(" name "))"
static_assert(kWaitersClass == 1869767791);
inline constexpr std::string_view kRegisterWaiter =
    "SELECT pg_advisory_lock_shared($1::integer, hashtext($2::text))";
inline constexpr std::string_view kUnregisterWaiter =
    "SELECT pg_advisory_unlock_shared($1::integer, hashtext($2::text))";

// --- session ---------------------------------------------------------------------------------

// Run once per new connection. $1 statement_timeout in ms. idle_in_transaction_session_timeout
// is turned off because a for-update holder's transaction is idle by design for as long as it
// holds the lock; client_min_messages keeps "already exists, skipping" notices off stderr.
inline constexpr std::string_view kSessionSettings =
    "SELECT set_config('statement_timeout', $1::text, false),"
    " set_config('idle_in_transaction_session_timeout', '0', false),"
    " set_config('client_min_messages', 'warning', false)";

// Readiness: true on a standby, which answers reads but refuses every write ordo makes, so a
// Locker connected only to standbys is not ready (/readyz 503).
inline constexpr std::string_view kPing = "SELECT pg_is_in_recovery()";

// --- migrations ------------------------------------------------------------------------------

// Serialises migrations among every process that opens the database at once. Transaction
// scoped: released by COMMIT/ROLLBACK, or by the connection's death. $1 is a constant key.
inline constexpr std::string_view kMigrationLock = "SELECT pg_advisory_xact_lock($1::bigint)";
inline constexpr std::string_view kSchemaExists =
    "SELECT to_regclass('ordo.schema_migrations') IS NOT NULL";
inline constexpr std::string_view kCreateSchema = "CREATE SCHEMA IF NOT EXISTS ordo";
inline constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS ordo.schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())";
inline constexpr std::string_view kSchemaVersion =
    "SELECT coalesce(max(version), 0) FROM ordo.schema_migrations";
inline constexpr std::string_view kRecordMigration =
    "INSERT INTO ordo.schema_migrations (version, name) VALUES ($1::integer, $2::text)";

// --- strategy=cas: one statement per call ----------------------------------------------------

// Acquire. $1 name, $2 owner, $3 mode ('exclusive'|'shared'), $4 ttl ms, $5 limit.
// Invariant 1: granted only if the snapshot shows no conflicting live holder AND the lock row's
// version is still the snapshot's (else nothing changes and `free` with a NULL token tells the
// caller to retry at once). Invariant 2: the token is last_token + 1, computed under the lock
// row's row lock and committed with the holder row — one counter per name, never a sequence.
// Expired (or dead for-update) holder rows of the name are purged by the winner before its
// insert (which reads `purged`, so the unique slot index never meets a dead permit). When
// refused, held_by names the holders and retry_in_ms says when the first lease among them
// expires. Semaphores: with limit $5 > 1 the name is free while fewer than $5 permits are live,
// and the permit takes the lowest slot no live one has; a live holder with another limit makes
// `mismatch` true (and in_force its limit), and nothing changes.
inline constexpr std::string_view kCasAcquire =
    "WITH clock AS (SELECT clock_timestamp() AS now),"
    " live AS ("
    "  SELECT h.* FROM ordo.holders h, clock c"
    "  WHERE h.name = $1::text AND " ORDO_PG_LIVE("h", "c.now") "),"
    " seen AS ("
    "  SELECT coalesce(bool_or(h.lim <> $5::integer), false) AS mismatch,"
    "         max(h.lim) AS in_force,"
    "         CASE WHEN $5::integer > 1"
    "              THEN count(*) < $5::integer AND coalesce(bool_and(h.lim = $5::integer), true)"
    "              ELSE coalesce(bool_and(h.lim = 1 AND $3::text = 'shared' AND h.mode = 'shared'),"
    "                            true) END AS free,"
    "         min(h.expires_at) FILTER (WHERE h.holder_xact IS NULL) AS first_expiry,"
    "         string_agg(format('''%s'' (token %s, %s)', h.owner, h.token, h.mode), ', '"
    "                    ORDER BY h.token) AS held_by"
    "  FROM live h),"
    " free_slot AS ("
    "  SELECT coalesce(min(s), 0) AS slot FROM generate_series(0, $5::integer - 1) s"
    "  WHERE $5::integer > 1 AND NOT EXISTS (SELECT 1 FROM live WHERE live.slot = s)),"
    " granted AS ("
    "  INSERT INTO ordo.locks AS l (name, last_token, version)"
    "  SELECT $1::text, 1,"
    "         coalesce((SELECT version FROM ordo.locks WHERE name = $1::text), 0) + 1"
    "  FROM seen WHERE seen.free"
    "  ON CONFLICT (name) DO UPDATE SET last_token = l.last_token + 1, version = l.version + 1"
    "  WHERE l.version = EXCLUDED.version - 1"
    "  RETURNING l.last_token AS token),"
    " purged AS ("
    "  DELETE FROM ordo.holders h USING clock c"
    "  WHERE h.name = $1::text AND NOT " ORDO_PG_LIVE("h", "c.now")
    "  AND EXISTS (SELECT 1 FROM granted) RETURNING h.token),"
    " inserted AS ("
    "  INSERT INTO ordo.holders (name, token, owner, mode, expires_at, slot, lim)"
    "  SELECT $1::text, g.token, $2::text, $3::text, c.now + $4::bigint * interval '1 millisecond',"
    "         f.slot, $5::integer"
    "  FROM granted g, clock c, free_slot f WHERE (SELECT count(*) FROM purged) >= 0"
    "  RETURNING token, expires_at, slot)"
    " SELECT i.token, " ORDO_PG_EPOCH_MS("i.expires_at") ", s.free,"
    "        ceil(extract(epoch FROM s.first_expiry - c.now) * 1000)::bigint, s.held_by,"
    "        s.mismatch, s.in_force, i.slot"
    " FROM seen s CROSS JOIN clock c LEFT JOIN inserted i ON true";

// Renew. $1 name, $2 token, $3 ttl ms. Only a live lease is extended (a lapsed one may already
// belong to someone else: kLeaseLost). The version bump comes first, so a concurrent acquire
// that judged this lease expired on an older snapshot cannot also win; if such an acquire won
// first, it deleted the holder row and `renewed` finds nothing.
inline constexpr std::string_view kCasRenew =
    "WITH clock AS (SELECT clock_timestamp() AS now),"
    ORDO_PG_BUMP_IF_LIVE_LEASE
    " renewed AS ("
    "  UPDATE ordo.holders h SET expires_at = c.now + $3::bigint * interval '1 millisecond'"
    "  FROM clock c"
    "  WHERE h.name = $1::text AND h.token = $2::bigint AND h.holder_xact IS NULL"
    "  AND h.expires_at > c.now AND EXISTS (SELECT 1 FROM bumped)"
    "  RETURNING h.owner, h.mode, h.expires_at)"
    " SELECT owner, mode, " ORDO_PG_EPOCH_MS("expires_at") " FROM renewed";

// Release. $1 name, $2 token. Deletes a live lease (an expired one is kLeaseLost: the lock was
// not the caller's any more) and, if anyone waits (ORDO_PG_NOTIFY_IF_WAITED), wakes waiters
// with NOTIFY, delivered at commit — in the same transaction, so a waiter never sees the
// notification before the row is gone. One row per released holder.
inline constexpr std::string_view kCasRelease =
    "WITH clock AS (SELECT clock_timestamp() AS now),"
    ORDO_PG_BUMP_IF_LIVE_LEASE
    " released AS ("
    "  DELETE FROM ordo.holders h USING clock c"
    "  WHERE h.name = $1::text AND h.token = $2::bigint AND h.holder_xact IS NULL"
    "  AND h.expires_at > c.now AND EXISTS (SELECT 1 FROM bumped)"
    "  RETURNING h.token),"
    " notified AS (" ORDO_PG_NOTIFY_IF_WAITED("$1::text") " AND EXISTS (SELECT 1 FROM released))"
    " SELECT token FROM released WHERE (SELECT count(*) FROM notified) >= 0";

// --- strategy=version: read, decide in the client, write back WHERE version = $v -------------

// The lock's version (NULL: never acquired) and every holder row with what decides liveness:
// the database's now, each lease's expiry, and whether each for-update holder's transaction is
// open. The client applies ORDO_PG_LIVE itself, on these database-clock values.
inline constexpr std::string_view kVersionRead =
    "SELECT l.version, h.token, h.owner, h.mode, " ORDO_PG_EPOCH_MS("h.expires_at") ","
    "       h.holder_xact IS NULL AS is_lease,"
    "       h.holder_xact IS NOT NULL AND txid_status(h.holder_xact) = 'in progress' AS xact_open,"
    "       " ORDO_PG_EPOCH_MS("c.now") ", h.slot, h.lim"
    " FROM (SELECT clock_timestamp() AS now) c"
    " LEFT JOIN ordo.locks l ON l.name = $1::text"
    " LEFT JOIN ordo.holders h ON h.name = $1::text"
    " ORDER BY h.token";

// Acquire write-back. $1 name, $2 owner, $3 mode, $4 ttl ms, $5 the version read (0: no row),
// $6 the tokens the client found expired ('{…}'), $7 slot, $8 limit (the client chose the
// lowest slot free at the read). Applies only if nothing changed since the read (invariant 1),
// so no live permit took the slot meanwhile; the token is last_token + 1 under the row lock
// (invariant 2). The insert waits for the purge (it reads `purged`), so the unique slot index
// never meets the expired permit it replaces.
inline constexpr std::string_view kVersionAcquire =
    "WITH granted AS ("
    "  INSERT INTO ordo.locks AS l (name, last_token, version)"
    "  VALUES ($1::text, 1, $5::bigint + 1)"
    "  ON CONFLICT (name) DO UPDATE SET last_token = l.last_token + 1, version = l.version + 1"
    "  WHERE l.version = $5::bigint"
    "  RETURNING l.last_token AS token),"
    " purged AS ("
    "  DELETE FROM ordo.holders WHERE name = $1::text AND token = ANY ($6::bigint[])"
    "  AND EXISTS (SELECT 1 FROM granted) RETURNING token),"
    " inserted AS ("
    "  INSERT INTO ordo.holders (name, token, owner, mode, expires_at, slot, lim)"
    "  SELECT $1::text, g.token, $2::text, $3::text,"
    "         clock_timestamp() + $4::bigint * interval '1 millisecond', $7::integer, $8::integer"
    "  FROM granted g WHERE (SELECT count(*) FROM purged) >= 0 RETURNING token, expires_at)"
    " SELECT token, " ORDO_PG_EPOCH_MS("expires_at") " FROM inserted";

// Renew write-back. $1 name, $2 token, $3 ttl ms, $4 the version read. The client found the
// lease live at that version; an unchanged version means nobody acquired since.
inline constexpr std::string_view kVersionRenew =
    "WITH bumped AS ("
    "  UPDATE ordo.locks SET version = version + 1"
    "  WHERE name = $1::text AND version = $4::bigint RETURNING name),"
    " renewed AS ("
    "  UPDATE ordo.holders SET expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'"
    "  WHERE name = $1::text AND token = $2::bigint AND EXISTS (SELECT 1 FROM bumped)"
    "  RETURNING owner, mode, expires_at)"
    " SELECT owner, mode, " ORDO_PG_EPOCH_MS("expires_at") " FROM renewed";

// Release write-back. $1 name, $2 token, $3 the version read. NOTIFY in the same transaction,
// if anyone waits. One row per released holder.
inline constexpr std::string_view kVersionRelease =
    "WITH bumped AS ("
    "  UPDATE ordo.locks SET version = version + 1"
    "  WHERE name = $1::text AND version = $3::bigint RETURNING name),"
    " released AS ("
    "  DELETE FROM ordo.holders WHERE name = $1::text AND token = $2::bigint"
    "  AND EXISTS (SELECT 1 FROM bumped) RETURNING token),"
    " notified AS (" ORDO_PG_NOTIFY_IF_WAITED("$1::text") " AND EXISTS (SELECT 1 FROM released))"
    " SELECT token FROM released WHERE (SELECT count(*) FROM notified) >= 0";

// --- strategy=for-update: a row lock held by an open transaction -----------------------------

// Creates the row to lock, committed on its own so that every acquirer finds it (a row that
// does not exist cannot be locked, and an uncommitted one is invisible to the others).
inline constexpr std::string_view kForUpdateEnsureRow =
    "INSERT INTO ordo.lock_rows (name) VALUES ($1::text) ON CONFLICT (name) DO NOTHING";

// SET LOCAL with bound values: how long to queue for the row lock, and a statement timeout that
// lets the queueing statement run that long. $1 lock_timeout ms, $2 statement_timeout ms.
inline constexpr std::string_view kForUpdateTimeouts =
    "SELECT set_config('lock_timeout', $1::text, true),"
    " set_config('statement_timeout', $2::text, true)";

// Takes the lock. The row lock lives until this transaction ends: release (COMMIT) or the death
// of the connection. txid_current() identifies the transaction for ORDO_PG_LIVE. Exclusive
// holders take FOR UPDATE, shared ones FOR SHARE (compatible with each other only). NOWAIT
// answers 55P03 at once (try-lock); otherwise lock_timeout bounds the wait with the same code.
// The database queues waiters itself and grants the row the moment it is freed: no polling.
inline constexpr std::string_view kForUpdateLockExclusive =
    "SELECT txid_current() FROM ordo.lock_rows WHERE name = $1::text FOR UPDATE";
inline constexpr std::string_view kForUpdateLockExclusiveNowait =
    "SELECT txid_current() FROM ordo.lock_rows WHERE name = $1::text FOR UPDATE NOWAIT";
inline constexpr std::string_view kForUpdateLockShared =
    "SELECT txid_current() FROM ordo.lock_rows WHERE name = $1::text FOR SHARE";
inline constexpr std::string_view kForUpdateLockSharedNowait =
    "SELECT txid_current() FROM ordo.lock_rows WHERE name = $1::text FOR SHARE NOWAIT";

// Permits (limit $2 > 1). Creates the slot rows 0 … $2-1 of lock $1 that do not exist yet,
// committed on their own like kForUpdateEnsureRow; returns one row per slot it created. A slot
// row locked by a holder counts as existing (ON CONFLICT DO NOTHING does not wait for a row
// lock, only for an uncommitted insert of the same key).
inline constexpr std::string_view kForUpdateEnsurePermitRows =
    "INSERT INTO ordo.permit_rows (name, slot)"
    " SELECT $1::text, s FROM generate_series(0, $2::integer - 1) s"
    " ON CONFLICT (name, slot) DO NOTHING RETURNING slot";

// Takes a permit: the lowest slot row of lock $1 below the limit $2 that no open transaction
// has locked, FOR UPDATE until this transaction ends (release or the connection's death), as
// kForUpdateLockExclusive does for a plain lock. SKIP LOCKED never waits, so two acquirers
// never get one slot and never queue behind each other; a NULL slot: every slot row is held. A
// waiting acquisition sleeps on NOTIFY between tries (pg_locker.cc), since one statement
// cannot queue for "any one of N rows", so a refused try says all it needs in this one round
// trip: how many slot rows exist (fewer than $2: create them, kForUpdateEnsurePermitRows), and
// of the live holders the limit in force if it is not $2 (`other`: refused as a mismatch), the
// milliseconds until the first reported expiry still ahead and whether one has passed (when to
// re-check: a dead holder sends no NOTIFY), and their text for the kLockHeld message. The
// transaction id is taken only with a slot.
inline constexpr std::string_view kForUpdateLockPermit =
    "SELECT p.slot, CASE WHEN p.slot IS NOT NULL THEN txid_current() END,"
    "       (SELECT count(*) FROM ordo.permit_rows r"
    "        WHERE r.name = $1::text AND r.slot < $2::integer),"
    "       h.other, h.next_ms, h.overdue, h.held_by"
    " FROM (SELECT clock_timestamp() AS now) c"
    " LEFT JOIN LATERAL (SELECT slot FROM ordo.permit_rows"
    "   WHERE name = $1::text AND slot < $2::integer"
    "   ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) p ON true"
    " CROSS JOIN LATERAL (SELECT max(x.lim) FILTER (WHERE x.lim <> $2::integer) AS other,"
    "   ceil(extract(epoch FROM min(x.expires_at) FILTER (WHERE x.expires_at > c.now) - c.now)"
    "        * 1000)::bigint AS next_ms,"
    "   coalesce(bool_or(x.expires_at <= c.now), false) AS overdue,"
    "   string_agg(format('''%s'' (token %s, %s, slot %s)', x.owner, x.token, x.mode, x.slot),"
    "              ', ' ORDER BY x.token) AS held_by"
    "   FROM ordo.holders x WHERE x.name = $1::text AND " ORDO_PG_LIVE("x", "c.now") ") h";

// Issues the token, on ANOTHER connection, in its own short transaction, only after the row
// lock above is held, and is committed (durably) before the token is handed out. $1 name,
// $2 owner, $3 mode, $4 ttl ms, $5 the holder's transaction id, $6 slot (0 for a plain lock),
// $7 limit.
// Why not in the holder's own transaction: that transaction stays open; if the holder crashed
// it would roll back and the next holder would get the same number again. Why not nextval():
// a sequence hands out numbers outside any transaction and WAL-logs them lazily (in batches,
// flushed only with some later commit), so after a database crash it can restart below a
// number that was already handed out; and it would not be per name. Here the counter row is
// updated under its row lock, so holders racing for tokens (shared holders, permits) are
// serialised and each gets last_token + 1 of the latest committed value. Also records the
// holder row (committed, so other connections see it: strict mode) and purges dead holder rows
// of the name (the insert reads `purged`, so the unique slot index never meets a dead permit).
// Plain holders and permit holders lock different rows, so the limit is checked here: a live
// holder with another limit makes `other` its limit and nothing changes. That check is a
// decision on the statement's snapshot, so it is applied only if the lock row's version is
// still the snapshot's (the lock-table rule above); a NULL token and a NULL `other` mean the
// version moved: issue again.
inline constexpr std::string_view kForUpdateIssueToken =
    "WITH clock AS (SELECT clock_timestamp() AS now),"
    " seen AS ("
    "  SELECT coalesce((SELECT version FROM ordo.locks WHERE name = $1::text), 0) AS version,"
    "         (SELECT max(h.lim) FROM ordo.holders h, clock c WHERE h.name = $1::text"
    "          AND h.lim <> $7::integer AND " ORDO_PG_LIVE("h", "c.now") ") AS other),"
    " issued AS ("
    "  INSERT INTO ordo.locks AS l (name, last_token, version)"
    "  SELECT $1::text, 1, s.version + 1 FROM seen s WHERE s.other IS NULL"
    "  ON CONFLICT (name) DO UPDATE SET last_token = l.last_token + 1, version = l.version + 1"
    "  WHERE l.version = EXCLUDED.version - 1"
    "  RETURNING l.last_token AS token),"
    " purged AS ("
    "  DELETE FROM ordo.holders h USING clock c"
    "  WHERE h.name = $1::text AND NOT " ORDO_PG_LIVE("h", "c.now")
    "  AND EXISTS (SELECT 1 FROM issued) RETURNING h.token),"
    " inserted AS ("
    "  INSERT INTO ordo.holders (name, token, owner, mode, expires_at, holder_xact, slot, lim)"
    "  SELECT $1::text, i.token, $2::text, $3::text,"
    "         c.now + $4::bigint * interval '1 millisecond', $5::bigint, $6::integer, $7::integer"
    "  FROM issued i, clock c WHERE (SELECT count(*) FROM purged) >= 0"
    "  RETURNING token, expires_at)"
    " SELECT i.token, " ORDO_PG_EPOCH_MS("i.expires_at") ", s.other"
    " FROM seen s LEFT JOIN inserted i ON true";

// Renew: the lock cannot expire; this moves the reported expiry and proves the holder's
// transaction is still open (a dropped connection or a database restart ends it: kLeaseLost).
inline constexpr std::string_view kForUpdateRenew =
    "UPDATE ordo.holders SET expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'"
    " WHERE name = $1::text AND token = $2::bigint AND holder_xact IS NOT NULL"
    " AND txid_status(holder_xact) = 'in progress'"
    " RETURNING owner, mode, " ORDO_PG_EPOCH_MS("expires_at");

// Release, inside the holder's transaction, followed by COMMIT: the holder row disappears, the
// row lock is freed and watchers, if any, are notified at the same instant.
inline constexpr std::string_view kForUpdateRelease =
    "WITH released AS ("
    "  DELETE FROM ordo.holders WHERE name = $1::text AND token = $2::bigint RETURNING token),"
    " notified AS (" ORDO_PG_NOTIFY_IF_WAITED("$1::text") ")"
    " SELECT count(*) FROM notified";

// --- every strategy --------------------------------------------------------------------------

// One lock's last token and live holders (with slot and limit); no row: never acquired
// (kNotFound).
inline constexpr std::string_view kDescribe =
    "SELECT l.last_token, h.owner, h.token, h.mode, " ORDO_PG_EPOCH_MS("h.expires_at") ","
    "       h.slot, h.lim"
    " FROM ordo.locks l LEFT JOIN ordo.holders h"
    "  ON h.name = l.name AND " ORDO_PG_LIVE("h", "clock_timestamp()")
    " WHERE l.name = $1::text ORDER BY h.token";

// Locks whose names start with $1, at most $2 of them, in byte order. Names are made of
// [A-Za-z0-9._:-], all below '~' in the "C" collation, so [$1, $1 || '~') is exactly the
// prefix's range and an index range scan.
inline constexpr std::string_view kList =
    "SELECT l.name, l.last_token, h.owner, h.token, h.mode, " ORDO_PG_EPOCH_MS("h.expires_at") ","
    "       h.slot, h.lim"
    " FROM (SELECT name, last_token FROM ordo.locks"
    "       WHERE name >= $1::text AND name < $1::text || '~' ORDER BY name LIMIT $2::bigint) l"
    " LEFT JOIN ordo.holders h ON h.name = l.name AND " ORDO_PG_LIVE("h", "clock_timestamp()")
    " ORDER BY l.name, h.token";

// --- FencedStore -----------------------------------------------------------------------------

// Write. $1 key, $2 value, $3 token, $4 lock name ('' = not strict).
// Invariant 3: the row is written only if its fence <= the token (the WHERE of ON CONFLICT DO
// UPDATE sees the latest committed row, after its row lock), and the fence becomes the token.
// Strict mode: the token must also be a live holder of the lock, checked in the same statement.
// seen_fence (from the snapshot) lets a refusal report the fence.
inline constexpr std::string_view kFencedWrite =
    ORDO_PG_ADMITTED("$4", "$3")
    " written AS ("
    "  INSERT INTO ordo.fenced AS f (key, fence, value, has_value, version)"
    "  SELECT $1::text, $3::bigint, $2::bytea, true, 1 FROM admitted WHERE admitted.ok"
    "  ON CONFLICT (key) DO UPDATE SET fence = EXCLUDED.fence, value = EXCLUDED.value,"
    "    has_value = true, version = f.version + 1"
    "  WHERE f.fence <= EXCLUDED.fence"
    "  RETURNING f.fence, f.version)"
    " SELECT a.ok, w.fence, w.version, (SELECT fence FROM ordo.fenced WHERE key = $1::text)"
    " FROM admitted a LEFT JOIN written w ON true";

// Fenced read. $1 key, $2 token, $3 lock name ('' = not strict). Registers the token as a
// write does (raising the fence, creating a value-less row for a missing key), so an older
// holder is shut out before the new one writes; returns the row as it is after that.
inline constexpr std::string_view kFencedRegister =
    ORDO_PG_ADMITTED("$3", "$2")
    " registered AS ("
    "  INSERT INTO ordo.fenced AS f (key, fence, value, has_value, version)"
    "  SELECT $1::text, $2::bigint, ''::bytea, false, 0 FROM admitted WHERE admitted.ok"
    "  ON CONFLICT (key) DO UPDATE SET fence = EXCLUDED.fence"
    "  WHERE f.fence <= EXCLUDED.fence"
    "  RETURNING f.fence, f.value, f.has_value, f.version)"
    " SELECT a.ok, r.fence, r.value, r.has_value, r.version,"
    "        (SELECT fence FROM ordo.fenced WHERE key = $1::text)"
    " FROM admitted a LEFT JOIN registered r ON true";

// Plain read (no token): changes nothing.
inline constexpr std::string_view kFencedRead =
    "SELECT fence, value, has_value, version FROM ordo.fenced WHERE key = $1::text";

// The fence now (to report a refusal exactly when the snapshot's was older than the refusal).
inline constexpr std::string_view kFencedFence =
    "SELECT fence FROM ordo.fenced WHERE key = $1::text";

// --- VersionedStore --------------------------------------------------------------------------

inline constexpr std::string_view kObjectGet =
    "SELECT value, version FROM ordo.objects WHERE key = $1::text";

// CAS. $1 key, $2 value, $3 expected version (0 = create only if absent).
// Invariant 4: the UPDATE's WHERE version = $3 is re-checked on the latest row version after
// its row lock, so of N concurrent callers from one version exactly one matches; creation
// relies on the primary key (ON CONFLICT DO NOTHING: exactly one insert wins).
inline constexpr std::string_view kObjectCas =
    "WITH updated AS ("
    "  UPDATE ordo.objects SET value = $2::bytea, version = version + 1"
    "  WHERE key = $1::text AND version = $3::bigint AND $3::bigint > 0 RETURNING version),"
    " created AS ("
    "  INSERT INTO ordo.objects (key, value, version) SELECT $1::text, $2::bytea, 1"
    "  WHERE $3::bigint = 0 ON CONFLICT (key) DO NOTHING RETURNING version)"
    " SELECT (SELECT version FROM updated UNION ALL SELECT version FROM created),"
    "        (SELECT version FROM ordo.objects WHERE key = $1::text)";

// Fenced CAS. $1 key, $2 value, $3 expected version (0 = create only if absent), $4 token,
// $5 lock name ('' = not strict). Writes only if the token is not below the object's fence
// (raised to it) and, in strict mode, is a live holder — both checked in this statement, and
// the UPDATE's WHERE re-checked on the latest row after its row lock, like the plain CAS.
// seen_fence and seen_version (from the snapshot) explain a refusal, token first.
inline constexpr std::string_view kObjectFencedCas =
    ORDO_PG_ADMITTED("$5", "$4")
    " updated AS ("
    "  UPDATE ordo.objects o SET value = $2::bytea, version = o.version + 1,"
    "    fence = GREATEST(o.fence, $4::bigint)"
    "  FROM admitted a"
    "  WHERE a.ok AND o.key = $1::text AND o.version = $3::bigint AND $3::bigint > 0"
    "    AND o.fence <= $4::bigint RETURNING o.version),"
    " created AS ("
    "  INSERT INTO ordo.objects (key, value, version, fence)"
    "  SELECT $1::text, $2::bytea, 1, $4::bigint FROM admitted a WHERE a.ok AND $3::bigint = 0"
    "  ON CONFLICT (key) DO NOTHING RETURNING version)"
    " SELECT a.ok, (SELECT version FROM updated UNION ALL SELECT version FROM created),"
    "        (SELECT fence FROM ordo.objects WHERE key = $1::text),"
    "        (SELECT version FROM ordo.objects WHERE key = $1::text)"
    " FROM admitted a";

// The fence and version now (to explain a refusal whose snapshot predates the winner).
inline constexpr std::string_view kObjectFenceAndVersion =
    "SELECT fence, version FROM ordo.objects WHERE key = $1::text";

inline constexpr std::string_view kObjectVersion =
    "SELECT version FROM ordo.objects WHERE key = $1::text";

struct NamedStatement {
  std::string_view name;
  std::string_view sql;
};

// For printing (ordo-bench, docs).
inline constexpr NamedStatement kAllStatements[] = {
    {"cas.acquire", kCasAcquire},
    {"cas.renew", kCasRenew},
    {"cas.release", kCasRelease},
    {"version.read", kVersionRead},
    {"version.acquire", kVersionAcquire},
    {"version.renew", kVersionRenew},
    {"version.release", kVersionRelease},
    {"for-update.ensure-row", kForUpdateEnsureRow},
    {"for-update.timeouts", kForUpdateTimeouts},
    {"for-update.lock-exclusive", kForUpdateLockExclusive},
    {"for-update.lock-exclusive-nowait", kForUpdateLockExclusiveNowait},
    {"for-update.lock-shared", kForUpdateLockShared},
    {"for-update.lock-shared-nowait", kForUpdateLockSharedNowait},
    {"for-update.ensure-permit-rows", kForUpdateEnsurePermitRows},
    {"for-update.lock-permit", kForUpdateLockPermit},
    {"for-update.issue-token", kForUpdateIssueToken},
    {"for-update.renew", kForUpdateRenew},
    {"for-update.release", kForUpdateRelease},
    {"describe", kDescribe},
    {"list", kList},
    {"fenced.write", kFencedWrite},
    {"fenced.register", kFencedRegister},
    {"fenced.read", kFencedRead},
    {"objects.get", kObjectGet},
    {"objects.cas", kObjectCas},
    {"objects.fenced-cas", kObjectFencedCas},
};

}  // namespace ordo::pg::sql

#endif  // ORDO_ADAPTERS_POSTGRESQL_STATEMENTS_H_
