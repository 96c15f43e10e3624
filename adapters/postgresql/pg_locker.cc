// postgresql://user:password@host:port/database[?strategy=for-update|cas|version&…]
// (scheme alias postgres://) — locks, fenced writes and versioned objects in PostgreSQL.
//
// Three strategies share one schema (sql/postgresql/) and one lock table, so Describe, List and
// the stores work the same for all of them; the SQL and the invariant behind each statement are
// in statements.h.
//   cas         one conditional statement per call (acquire, renew, release): a lease row taken
//               by INSERT … ON CONFLICT … DO UPDATE … WHERE free, judged by the database clock.
//   version     read the lock row and holders, decide in the client, write back
//               WHERE version = $v, retry when someone else changed it first.
//   for-update  a transaction on a dedicated connection holds the lock row FOR UPDATE (FOR SHARE
//               for shared holders) until release or until the connection dies: no TTL. A
//               permit holds the lowest free one of the lock's slot rows instead (SKIP LOCKED).
// Waiting acquisitions of cas/version sleep until a NOTIFY from a release (one LISTEN connection
// per Locker) or until the first holder's lease runs out; plain for-update waits in the
// database's own lock queue, bounded by lock_timeout; for-update permits sleep on NOTIFY.
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ordo/engine.h"
#include "ordo/lock.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "pg_connection.h"
#include "pg_listener.h"
#include "pg_migrate.h"
#include "pg_stores.h"
#include "statements.h"

namespace ordo::pg {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a waiter re-checks on its own while the listener connection is down.
constexpr milliseconds kDegradedRecheck{250};
// Conflicts a version-strategy call tolerates before giving up (each one means another caller
// made progress, so this only bounds pathological contention).
constexpr int kMaxVersionConflicts = 10'000;
// A waiting for-update permit is woken by a release's NOTIFY; a holder whose connection died
// sends none. It re-checks when the first holder's reported expiry (moved by each Renew, so by
// ScopedLease) passes, and every kOverdueRecheck while a holder is past it (such a holder has
// died or does not renew): bounded, never a spin.
constexpr milliseconds kOverdueRecheck{250};

std::chrono::system_clock::time_point FromEpochMs(std::int64_t ms) {
  return std::chrono::system_clock::time_point(milliseconds(ms));
}

std::string ModeText(LockMode mode) { return std::string(LockModeName(mode)); }

LockMode ParseMode(std::string_view text) {
  return text == "shared" ? LockMode::kShared : LockMode::kExclusive;
}

Status Lost(const Lease& lease, std::string_view why = kLostWhy) { return LostError(lease, why); }

// A waiting cas/version acquisition sleeps on the listener's board. Releases NOTIFY only names
// some listener registered (statements.h, ORDO_PG_NOTIFY_IF_WAITED), so the first Wait
// registers this waiter and returns at once: the engine's next try then runs after the
// registration, and a release it does not see will notify. While the registration is not held
// (listener disconnected, registration pending) notifications may be lost, so it re-checks
// every kDegradedRecheck.
class ListenerWakeups final : public Wakeups {
 public:
  ListenerWakeups(Listener& listener, std::string_view name, std::unique_ptr<Wakeups> board)
      : listener_(listener), name_(name), board_(std::move(board)) {}
  ~ListenerWakeups() override {
    if (registered_) listener_.Unregister(name_);
  }
  std::uint64_t Take() override {
    held_at_take_ = registered_ && listener_.Holds(name_);
    return board_->Take();
  }
  void Wait(std::uint64_t ticket, SteadyClock::time_point until) override {
    if (!registered_) {
      listener_.Register(name_, /*wait=*/true);
      registered_ = true;
      return;  // try again, now registered
    }
    if (!held_at_take_) {
      if (listener_.Holds(name_)) return;  // the try ran before the registration: try again
      until = std::min(until, SteadyClock::now() + kDegradedRecheck);
    }
    board_->Wait(ticket, until);
  }

 private:
  Listener& listener_;
  const std::string name_;
  const std::unique_ptr<Wakeups> board_;
  bool registered_ = false;
  bool held_at_take_ = false;  // the registration was held when the last try began
};

// A Watch callback's subscription, registered with the listener for as long as it lives.
class ListenerSubscription final : public Subscription {
 public:
  ListenerSubscription(Listener& listener, std::string_view name,
                       std::unique_ptr<Subscription> board)
      : listener_(listener), name_(name), board_(std::move(board)) {
    listener_.Register(name_, /*wait=*/false);
  }
  ~ListenerSubscription() override {
    board_.reset();
    listener_.Unregister(name_);
  }

 private:
  Listener& listener_;
  const std::string name_;
  std::unique_ptr<Subscription> board_;
};

// A for-update acquisition's wake-ups. A plain for-update try waits in the row-lock queue until
// the deadline itself, so it never sleeps here; only a permit's try (SKIP LOCKED, which never
// queues) does. The listener therefore starts at the first Wait, not before: a Locker that only
// takes plain locks keeps no LISTEN connection, and releases that NOTIFY cost it nothing. That
// first Wait returns at once (spurious returns are allowed), so the try after it runs with the
// listener up and misses no release made before LISTEN took effect.
class LazyListenerWakeups final : public Wakeups {
 public:
  LazyListenerWakeups(Listener& listener, std::string name)
      : listener_(listener), name_(std::move(name)) {}
  std::uint64_t Take() override { return started_ ? started_->Take() : 0; }
  void Wait(std::uint64_t ticket, SteadyClock::time_point until) override {
    if (started_) {
      started_->Wait(ticket, until);
      return;
    }
    listener_.Start();
    started_ =
        std::make_unique<ListenerWakeups>(listener_, name_, listener_.board().WaitFor(name_));
  }

 private:
  Listener& listener_;
  const std::string name_;
  std::unique_ptr<ListenerWakeups> started_;
};

// The version strategy's read: the lock's version and its holder rows, with liveness already
// decided from database-clock values.
// Adds a live holder row to `state`; the first one sets the limit in force. A plain holder
// (limit 1) reports slot 0.
void AddHolder(LockState& state, std::string owner, std::uint64_t token, LockMode mode,
               std::chrono::system_clock::time_point expires_at, std::uint32_t slot,
               std::uint32_t limit) {
  if (state.holders.empty()) state.limit = limit;
  state.holders.push_back({std::move(owner), token, mode, expires_at, limit > 1 ? slot : 0});
}

struct VersionView {
  std::int64_t version = 0;  // 0: no lock row yet
  struct Row {
    Holder holder;
    bool live = false;
    std::int64_t expires_ms = 0;
    bool is_lease = true;
    std::uint32_t limit = 1;
  };
  std::vector<Row> rows;
  std::int64_t now_ms = 0;
};

class PgLocker final : public EngineLocker {
 public:
  explicit PgLocker(Config config)
      : strategy_(config.strategy),
        pool_(std::move(config)),
        listener_(pool_),
        fenced_(pool_),
        objects_(pool_) {}

  ~PgLocker() override {
    // Rolling back and closing the holders' connections frees their row locks.
    held_.Drain([](const std::string&, std::uint64_t, HeldRow&) {});
  }

  Status Open() { return Migrate(pool_); }

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    std::vector<LockState> out;
    const auto capped = static_cast<std::int64_t>(
        std::min<std::size_t>(limit, static_cast<std::size_t>(kMaxToken)));
    ORDO_RETURN_IF_ERROR(pool_.Run("list", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, sql::kList, std::string(prefix), capped);
      out.clear();
      for (const auto& row : r) {
        const std::string name = row[0].as<std::string>();
        if (out.empty() || out.back().name != name) {
          out.push_back(LockState{name, {}, row[1].as<std::uint64_t>()});
        }
        if (row[3].is_null()) continue;
        AddHolder(out.back(), row[2].as<std::string>(), row[3].as<std::uint64_t>(),
                  ParseMode(row[4].c_str()), FromEpochMs(row[5].as<std::int64_t>()),
                  row[6].as<std::uint32_t>(), row[7].as<std::uint32_t>());
      }
      return OkStatus();
    }));
    return out;
  }

  Status Ping() override {
    return pool_.Run("ping", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      if (tx.exec(std::string(sql::kPing))[0][0].as<bool>()) {
        return UnavailableError("PostgreSQL at " + pool_.config().masked +
                                " is a standby (read-only); no primary reached");
      }
      return OkStatus();
    });
  }

  LockerTraits traits() const override {
    return {.expires_by_ttl = strategy_ != Strategy::kForUpdate,
            .shared_across_processes = true};
  }
  FencedStore& fenced() override { return fenced_; }
  VersionedStore& objects() override { return objects_; }

 protected:
  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                             SteadyClock::time_point deadline) override {
    switch (strategy_) {
      case Strategy::kCas:
        return TryCas(request, owner);
      case Strategy::kVersion:
        return TryVersion(request, owner);
      case Strategy::kForUpdate:
        return TryForUpdate(request, owner, deadline);
    }
    return InternalError("unknown strategy");
  }

  // Every strategy sleeps on NOTIFY between tries. A plain for-update try waits in the
  // database's own row-lock queue, bounded by lock_timeout, until the deadline itself, so it
  // comes back only when the wait is over; a for-update permit's try never waits (SKIP LOCKED).
  std::unique_ptr<Wakeups> WaitFor(std::string_view name) override {
    if (strategy_ == Strategy::kForUpdate) {
      return std::make_unique<LazyListenerWakeups>(listener_, std::string(name));
    }
    listener_.Start();
    return std::make_unique<ListenerWakeups>(listener_, name, listener_.board().WaitFor(name));
  }

  // Every strategy's release NOTIFYs when a waiter or watcher is registered (a for-update
  // holder's dropped connection does not: the caller's bounded wait for expires_at covers that
  // as for any TTL expiry).
  std::unique_ptr<Subscription> Subscribe(std::string_view name,
                                          std::function<void()> changed) override {
    listener_.Start(/*wait=*/false);
    return std::make_unique<ListenerSubscription>(listener_, name,
                                                  listener_.board().Watch(name, std::move(changed)));
  }

  Result<Lease> DoRenew(const Lease& lease, milliseconds ttl) override {
    switch (strategy_) {
      case Strategy::kCas:
        return RenewOneStatement(lease, ttl, sql::kCasRenew);
      case Strategy::kForUpdate:
        return RenewOneStatement(lease, ttl, sql::kForUpdateRenew);
      case Strategy::kVersion:
        return RenewVersion(lease, ttl);
    }
    return InternalError("unknown strategy");
  }

  Status DoRelease(const Lease& lease) override {
    switch (strategy_) {
      case Strategy::kCas:
        return ReleaseCas(lease);
      case Strategy::kForUpdate:
        return ReleaseForUpdate(lease);
      case Strategy::kVersion:
        return ReleaseVersion(lease);
    }
    return InternalError("unknown strategy");
  }

  Result<LockState> DoDescribe(std::string_view name) override {
    std::optional<LockState> state;
    ORDO_RETURN_IF_ERROR(pool_.Run("describe", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, sql::kDescribe, std::string(name));
      state.reset();
      if (r.empty()) return OkStatus();
      state = LockState{std::string(name), {}, r[0][0].as<std::uint64_t>()};
      for (const auto& row : r) {
        if (row[2].is_null()) continue;
        AddHolder(*state, row[1].as<std::string>(), row[2].as<std::uint64_t>(),
                  ParseMode(row[3].c_str()), FromEpochMs(row[4].as<std::int64_t>()),
                  row[5].as<std::uint32_t>(), row[6].as<std::uint32_t>());
      }
      return OkStatus();
    }));
    if (!state) return NotFoundError("lock '" + std::string(name) + "' was never acquired");
    return std::move(*state);
  }

 private:
  // --- cas and version: leases, woken by NOTIFY ----------------------------------------------

  Result<Attempt> TryCas(const LockRequest& request, const std::string& owner) {
    Attempt a;
    ORDO_RETURN_IF_ERROR(pool_.Run("acquire", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto row = pool_.Exec1(tx, sql::kCasAcquire, request.name, owner,
                                 ModeText(request.mode),
                                 static_cast<std::int64_t>(request.ttl.count()),
                                 static_cast<std::int32_t>(request.limit));
      a = Attempt{};
      if (!row[0].is_null()) {
        a.lease = Lease{request.name,   owner, row[0].as<std::uint64_t>(),
                        request.mode,   FromEpochMs(row[1].as<std::int64_t>()),
                        request.ttl};
        a.lease->slot = row[7].as<std::uint32_t>();
      } else if (row[5].as<bool>()) {
        return LimitMismatchError(request.name, request.limit, row[6].as<std::uint32_t>());
      } else if (row[2].as<bool>()) {
        a.retry_now = true;
      } else {
        if (!row[3].is_null()) a.expiry = milliseconds(std::max<std::int64_t>(0, row[3].as<std::int64_t>()));
        if (!row[4].is_null()) a.held_by = row[4].as<std::string>();
      }
      return OkStatus();
    }));
    return a;
  }

  Result<VersionView> ReadVersion(const std::string& name) {
    VersionView view;
    ORDO_RETURN_IF_ERROR(pool_.Run("read lock", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, sql::kVersionRead, name);
      view = VersionView{};
      for (const auto& row : r) {
        view.version = row[0].is_null() ? 0 : row[0].as<std::int64_t>();
        view.now_ms = row[7].as<std::int64_t>();
        if (row[1].is_null()) continue;
        VersionView::Row h;
        h.holder = {row[2].as<std::string>(), row[1].as<std::uint64_t>(),
                    ParseMode(row[3].c_str()), FromEpochMs(row[4].as<std::int64_t>())};
        h.expires_ms = row[4].as<std::int64_t>();
        h.is_lease = row[5].as<bool>();
        h.limit = row[9].as<std::uint32_t>();
        if (h.limit > 1) h.holder.slot = row[8].as<std::uint32_t>();
        h.live = h.is_lease ? h.expires_ms > view.now_ms : row[6].as<bool>();
        view.rows.push_back(std::move(h));
      }
      return OkStatus();
    }));
    return view;
  }

  // The decision is the client's here, on the values the database returned (its clock).
  Result<Attempt> TryVersion(const LockRequest& request, const std::string& owner) {
    auto view = ReadVersion(request.name);
    if (!view.ok()) return view.status();
    Attempt a;
    std::vector<Holder> live;
    std::string expired = "{";
    std::uint32_t in_force = 0;  // the live holders' limit (0: none live)
    for (const auto& row : view->rows) {
      if (!row.live) {
        expired += (expired.size() > 1 ? "," : "") + std::to_string(row.holder.token);
        continue;
      }
      live.push_back(row.holder);
      in_force = row.limit;
      if (row.is_lease) {
        const milliseconds left(row.expires_ms - view->now_ms);
        if (!a.expiry || left < *a.expiry) a.expiry = left;
      }
    }
    expired += "}";
    if (in_force != 0 && in_force != request.limit) {
      return LimitMismatchError(request.name, request.limit, in_force);
    }
    bool free = true;
    std::uint32_t slot = 0;
    if (request.limit > 1) {
      // The lowest slot no live permit has; fewer than `limit` live ones leave one below it.
      free = live.size() < request.limit;
      std::vector<bool> taken(request.limit, false);
      for (const auto& h : live) {
        if (h.slot < request.limit) taken[h.slot] = true;
      }
      while (slot < request.limit && taken[slot]) ++slot;
    } else {
      for (const auto& h : live) {
        if (request.mode == LockMode::kExclusive || h.mode == LockMode::kExclusive) free = false;
      }
    }
    if (!free) {
      a.holders = std::move(live);
      return a;
    }
    a.expiry.reset();
    ORDO_RETURN_IF_ERROR(pool_.Run("acquire", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, sql::kVersionAcquire, request.name, owner,
                              ModeText(request.mode),
                              static_cast<std::int64_t>(request.ttl.count()), view->version,
                              expired, static_cast<std::int32_t>(slot),
                              static_cast<std::int32_t>(request.limit));
      a.lease.reset();
      if (!r.empty()) {
        a.lease = Lease{request.name, owner, r[0][0].as<std::uint64_t>(), request.mode,
                        FromEpochMs(r[0][1].as<std::int64_t>()), request.ttl};
        a.lease->slot = slot;
      }
      return OkStatus();
    }));
    a.retry_now = !a.lease.has_value();  // the version moved since the read
    return a;
  }

  Result<Lease> RenewOneStatement(const Lease& lease, milliseconds ttl, std::string_view stmt) {
    std::optional<Lease> out;
    ORDO_RETURN_IF_ERROR(pool_.Run("renew", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, stmt, lease.name,
                              static_cast<std::int64_t>(lease.token),
                              static_cast<std::int64_t>(ttl.count()));
      out.reset();
      if (!r.empty()) {
        out = Lease{lease.name, r[0][0].as<std::string>(), lease.token,
                    ParseMode(r[0][1].c_str()), FromEpochMs(r[0][2].as<std::int64_t>()), ttl};
        out->slot = lease.slot;  // a holder row's slot never changes
      }
      return OkStatus();
    }));
    if (!out) return Lost(lease);
    return std::move(*out);
  }

  Status ReleaseCas(const Lease& lease) {
    bool released = false;
    ORDO_RETURN_IF_ERROR(pool_.Run("release", [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      auto r = pool_.Exec(tx, sql::kCasRelease, lease.name,
                              static_cast<std::int64_t>(lease.token));
      released = !r.empty();
      return OkStatus();
    }));
    return released ? OkStatus() : Lost(lease);
  }

  // Finds the lease's live row at the version read; nullptr when it is not live.
  static const VersionView::Row* LiveRow(const VersionView& view, std::uint64_t token) {
    for (const auto& row : view.rows) {
      if (row.holder.token == token && row.live && row.is_lease) return &row;
    }
    return nullptr;
  }

  Result<Lease> RenewVersion(const Lease& lease, milliseconds ttl) {
    for (int conflicts = 0; conflicts < kMaxVersionConflicts; ++conflicts) {
      auto view = ReadVersion(lease.name);
      if (!view.ok()) return view.status();
      if (LiveRow(*view, lease.token) == nullptr) return Lost(lease);
      std::optional<Lease> out;
      ORDO_RETURN_IF_ERROR(pool_.Run("renew", [&](pqxx::connection& c) {
        pqxx::nontransaction tx(c);
        auto r = pool_.Exec(tx, sql::kVersionRenew, lease.name,
                                static_cast<std::int64_t>(lease.token),
                                static_cast<std::int64_t>(ttl.count()), view->version);
        out.reset();
        if (!r.empty()) {
          out = Lease{lease.name, r[0][0].as<std::string>(), lease.token,
                      ParseMode(r[0][1].c_str()), FromEpochMs(r[0][2].as<std::int64_t>()), ttl};
          out->slot = lease.slot;  // a holder row's slot never changes
        }
        return OkStatus();
      }));
      if (out) return std::move(*out);
    }
    return UnavailableError("renew of '" + lease.name + "' kept conflicting; try again");
  }

  Status ReleaseVersion(const Lease& lease) {
    for (int conflicts = 0; conflicts < kMaxVersionConflicts; ++conflicts) {
      auto view = ReadVersion(lease.name);
      if (!view.ok()) return view.status();
      if (LiveRow(*view, lease.token) == nullptr) return Lost(lease);
      bool released = false;
      ORDO_RETURN_IF_ERROR(pool_.Run("release", [&](pqxx::connection& c) {
        pqxx::nontransaction tx(c);
        auto r = pool_.Exec(tx, sql::kVersionRelease, lease.name,
                                static_cast<std::int64_t>(lease.token), view->version);
        released = !r.empty();
        return OkStatus();
      }));
      if (released) return OkStatus();
    }
    return UnavailableError("release of '" + lease.name + "' kept conflicting; try again");
  }

  // --- for-update: a row lock in an open transaction -----------------------------------------

  // A holder's connection and the open transaction that holds its row lock. Declaration order
  // matters: the transaction must end (roll back) before its connection closes.
  struct HeldRow {
    std::unique_ptr<pqxx::connection> conn;
    std::unique_ptr<pqxx::work> txn;
  };

  Result<Attempt> TryForUpdate(const LockRequest& request, const std::string& owner,
                               SteadyClock::time_point deadline) {
    auto conn = pool_.TakeDedicated();
    if (!conn.ok()) return conn.status();
    HeldRow held{std::move(*conn), nullptr};
    const bool permit = request.limit > 1;
    std::int64_t xact = 0;
    std::optional<std::uint32_t> slot;  // empty: a permit found every slot held
    PermitRefusal refusal;
    Outcome locked = Guard("acquire (for-update)", pool_.config(), [&] {
      if (permit) return LockPermitRow(held, request, &xact, &slot, &refusal);
      slot = 0;
      return LockPlainRow(held, request, deadline, &xact);
    });
    if (!locked.status.ok() || !slot) {
      AbortHeld(held, locked.broken);
      if (!locked.status.ok() && locked.status.code() != StatusCode::kLockHeld) {
        return locked.status;
      }
      return permit && locked.status.ok() ? RefusedPermit(request, refusal) : Refused(request);
    }
    // The row lock is ours. Only now is the token issued — on another connection, committed
    // before it is handed out (statements.h, kForUpdateIssueToken, says why).
    std::optional<Lease> lease;
    std::uint32_t in_force = 0;  // a live holder's other limit: refused
    Status issued = OkStatus();
    for (int conflicts = 0; !lease && in_force == 0; ++conflicts) {
      if (conflicts == kMaxVersionConflicts) {
        issued = UnavailableError("acquire of '" + request.name + "' kept conflicting; try again");
        break;
      }
      issued = pool_.Run("issue token (for-update)", [&](pqxx::connection& c) {
        pqxx::nontransaction tx(c);
        auto row = pool_.Exec1(tx, sql::kForUpdateIssueToken, request.name, owner,
                               ModeText(request.mode),
                               static_cast<std::int64_t>(request.ttl.count()), xact,
                               static_cast<std::int32_t>(*slot),
                               static_cast<std::int32_t>(request.limit));
        if (!row[0].is_null()) {
          lease = Lease{request.name, owner, row[0].as<std::uint64_t>(), request.mode,
                        FromEpochMs(row[1].as<std::int64_t>()), request.ttl};
          lease->slot = *slot;
        } else if (!row[2].is_null()) {
          in_force = row[2].as<std::uint32_t>();
        }
        return OkStatus();
      });
      if (!issued.ok()) break;
    }
    if (!issued.ok() || !lease) {
      AbortHeld(held, false);
      if (!issued.ok()) return issued;
      return LimitMismatchError(request.name, request.limit, in_force);
    }
    held_.Insert(request.name, lease->token, std::move(held));
    Attempt granted;
    granted.lease = std::move(*lease);
    return granted;
  }

  // A plain for-update lock: the name's row in ordo.lock_rows, waited for in the database's
  // row-lock queue until `deadline` (NOWAIT when no time is left).
  Status LockPlainRow(HeldRow& held, const LockRequest& request, SteadyClock::time_point deadline,
                      std::int64_t* xact) {
    const bool exclusive = request.mode == LockMode::kExclusive;
    const auto left = std::chrono::ceil<milliseconds>(deadline - SteadyClock::now());
    const bool nowait = request.wait.count() == 0 || left.count() <= 0;
    const std::string_view lock_sql =
        exclusive ? (nowait ? sql::kForUpdateLockExclusiveNowait : sql::kForUpdateLockExclusive)
                  : (nowait ? sql::kForUpdateLockSharedNowait : sql::kForUpdateLockShared);
    for (int round = 0; round < 2; ++round) {
      held.txn = std::make_unique<pqxx::work>(*held.conn);
      if (!nowait) {
        const auto stmt_ms = left + pool_.config().statement_timeout;
        held.txn->exec_params(std::string(sql::kForUpdateTimeouts), std::to_string(left.count()),
                              std::to_string(stmt_ms.count()));
      }
      auto r = held.txn->exec_params(std::string(lock_sql), request.name);
      if (!r.empty()) {
        *xact = r[0][0].as<std::int64_t>();
        return OkStatus();
      }
      // First acquisition of the name: create its row (committed, so that concurrent
      // acquirers all find it) and lock it in a fresh transaction.
      held.txn.reset();
      pqxx::nontransaction tx(*held.conn);
      pool_.Exec(tx, sql::kForUpdateEnsureRow, request.name);
    }
    return InternalError("the lock row of '" + request.name + "' vanished while locking it");
  }

  // What a permit's refused try learnt in its one statement (kForUpdateLockPermit).
  struct PermitRefusal {
    std::uint32_t other_limit = 0;  // a live holder's limit when not the request's
    std::optional<milliseconds> next_expiry;
    bool overdue = false;  // a live holder is past its reported expiry
    std::string held_by;
  };

  // A permit: the lowest free slot row, never waited for. `slot` stays empty when every slot
  // below the limit is held; `refusal` then says why and when to look again.
  Status LockPermitRow(HeldRow& held, const LockRequest& request, std::int64_t* xact,
                       std::optional<std::uint32_t>* slot, PermitRefusal* refusal) {
    const auto limit = static_cast<std::int32_t>(request.limit);
    for (int round = 0; round < 2; ++round) {
      held.txn = std::make_unique<pqxx::work>(*held.conn);
      auto r = held.txn->exec_params(std::string(sql::kForUpdateLockPermit), request.name, limit);
      const auto row = r[0];
      if (!row[0].is_null()) {
        *slot = row[0].as<std::uint32_t>();
        *xact = row[1].as<std::int64_t>();
        return OkStatus();
      }
      *refusal = PermitRefusal{};
      if (!row[3].is_null()) refusal->other_limit = row[3].as<std::uint32_t>();
      if (!row[4].is_null()) refusal->next_expiry = milliseconds(row[4].as<std::int64_t>());
      refusal->overdue = row[5].as<bool>();
      if (!row[6].is_null()) refusal->held_by = row[6].as<std::string>();
      const bool all_rows = row[2].as<std::int64_t>() >= limit;
      held.txn->abort();
      held.txn.reset();
      if (all_rows) break;
      // Slots never used before have no row yet: create them (committed, so that every
      // acquirer finds them) and look again.
      pqxx::nontransaction tx(*held.conn);
      pool_.Exec(tx, sql::kForUpdateEnsurePermitRows, request.name, limit);
    }
    return OkStatus();
  }

  // A permit whose try found every slot held: a mismatched limit (whose holders may fill every
  // slot below this request's limit) is refused; else the engine waits for a NOTIFY, or until
  // the first holder's reported expiry (a re-check hint: liveness is the holder's open
  // transaction), or kOverdueRecheck while a holder is past it or none is recorded yet.
  static Result<Attempt> RefusedPermit(const LockRequest& request, const PermitRefusal& refusal) {
    if (refusal.other_limit != 0) {
      return LimitMismatchError(request.name, request.limit, refusal.other_limit);
    }
    Attempt refused;
    refused.held_by = refusal.held_by;
    refused.expiry = refusal.next_expiry;
    if (refusal.overdue || !refused.expiry) {
      refused.expiry = std::min(refused.expiry.value_or(kOverdueRecheck), kOverdueRecheck);
    }
    return refused;
  }

  // A refused plain for-update acquisition: who holds the name, or a mismatched limit.
  Result<Attempt> Refused(const LockRequest& request) {
    Attempt refused;
    auto state = DoDescribe(request.name);
    if (!state.ok()) return refused;  // the holders stay unknown; the try is refused anyway
    if (!state->holders.empty() && state->limit != request.limit) {
      return LimitMismatchError(request.name, request.limit, state->limit);
    }
    refused.holders = std::move(state->holders);
    return refused;
  }

  // Ends a holder's transaction (freeing its row lock) and recycles the connection if sound.
  void AbortHeld(HeldRow& held, bool broken) {
    Outcome aborted = Guard("roll back", pool_.config(), [&] {
      if (held.txn) held.txn->abort();
      return OkStatus();
    });
    held.txn.reset();
    if (!broken && !aborted.broken && aborted.status.ok()) {
      pool_.ReturnDedicated(std::move(held.conn));
    }
    held.conn.reset();
  }

  Status ReleaseForUpdate(const Lease& lease) {
    std::optional<HeldRow> taken = held_.Take(lease.name, lease.token);
    if (!taken) {
      return Lost(lease, "it was released, or is not held through this Locker (a for-update "
                         "lock is held by its Locker's connection)");
    }
    HeldRow held = std::move(*taken);
    Outcome released = Guard("release (for-update)", pool_.config(), [&] {
      held.txn->exec_params(std::string(sql::kForUpdateRelease), lease.name,
                            static_cast<std::int64_t>(lease.token));
      held.txn->commit();
      return OkStatus();
    });
    if (released.status.ok()) {
      held.txn.reset();
      pool_.ReturnDedicated(std::move(held.conn));
      return OkStatus();
    }
    if (released.broken) {
      held.txn.reset();
      held.conn.reset();
      // The server ends the transaction of a dropped connection, which frees the row lock; if
      // the connection dropped before this call, the lock was already gone.
      return Lost(lease, "the connection holding it was lost (" + released.status.message() + ")");
    }
    AbortHeld(held, false);  // rolling back frees the row lock all the same
    return released.status;
  }

  const Strategy strategy_;
  Pool pool_;
  Listener listener_;
  PgFencedStore fenced_;
  PgVersionedStore objects_;
  HeldTable<HeldRow> held_;
};

Result<std::unique_ptr<Locker>> OpenPostgresql(const BackendUrl& url) {
  auto config = ParseConfig(url);
  if (!config.ok()) return config.status();
  auto locker = std::make_unique<PgLocker>(std::move(*config));
  ORDO_RETURN_IF_ERROR(locker->Open());
  return std::unique_ptr<Locker>(std::move(locker));
}

const bool kRegistered =
    RegisterBackend("postgresql", &OpenPostgresql) && RegisterBackend("postgres", &OpenPostgresql);

}  // namespace
}  // namespace ordo::pg
