// The sqlite:// Locker: lease rows in the tables `locks` and `holders` of one database file.
//
// Two strategies decide an acquisition (the URL's ?strategy=):
//   cas      (default) each call is one short BEGIN IMMEDIATE transaction (or one savepoint of
//            a transaction shared with this process's concurrent writers: GroupCommit in
//            sqlite_db.h) whose decision is one conditional UPDATE evaluated by SQLite
//            (ShedLock-style: "bump the token where no live holder conflicts"; one changed
//            row = acquired);
//   version  optimistic: read the lock's row and holders in a read transaction, decide in the
//            client, then write back in BEGIN IMMEDIATE only `WHERE last_token = <read>` (and
//            each expired holder it replaces only `WHERE expires_at = <read>`); a conflict means
//            someone else changed the lock in between, and the call starts over.
// Either way expiry is judged by SQLite's clock (ORDO_SQLITE_NOW), and the token is
// `last_token + 1`, written in the same transaction as the holder row, so it is durable and
// never reissued.
//
// Waiting (wait > 0). SQLite cannot notify other processes, so a waiter
//   - sleeps on a condition variable that every release in this process signals (any Locker on
//     the same file), so a release by a thread of this process hands the lock over at once;
//   - and wakes on its own after a bounded backoff (1 ms doubling to kMaxBackoff), or when the
//     first conflicting holder's lease runs out if that is sooner, to see releases by other
//     processes and expired leases. A waiter in another process thus learns of a release
//     within kMaxBackoff.
//
// Thread safety: safe for concurrent use from many threads (a pool of connections, one per
// call in flight) and many processes. Do not fork while another thread is inside a call, and
// do not use a Locker inherited across fork in the child (open a new one).
#ifndef ORDO_ADAPTERS_SQLITE_SQLITE_LOCKER_H_
#define ORDO_ADAPTERS_SQLITE_SQLITE_LOCKER_H_

#include <chrono>
#include <memory>

#include "ordo/lock.h"
#include "sqlite_db.h"

namespace ordo::sqlite {

enum class Strategy { kCas, kVersion };

inline constexpr std::chrono::milliseconds kMinBackoff{1};
inline constexpr std::chrono::milliseconds kMaxBackoff{25};

std::unique_ptr<Locker> NewSqliteLocker(std::shared_ptr<Database> db, Strategy strategy);

}  // namespace ordo::sqlite

#endif  // ORDO_ADAPTERS_SQLITE_SQLITE_LOCKER_H_
