#include "sqlite_locker.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ordo/engine.h"
#include "ordo/names.h"
#include "sqlite_stores.h"
#include "statements.h"

namespace ordo::sqlite {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A version-strategy call that keeps losing its write-back gives up with kUnavailable. Every
// conflict means another call changed the lock meanwhile, so this takes heavy contention.
constexpr int kMaxConflicts = 100;

// ---------------------------------------------------------------------------------------------

struct HolderRow {
  std::string owner;
  std::uint64_t token = 0;
  LockMode mode = LockMode::kExclusive;
  std::int64_t expires_at = 0;  // ms since the epoch, SQLite's clock
  std::uint32_t slot = 0;
  std::uint32_t limit = 1;
};

// The lowest slot not in `used` (sorted).
std::uint32_t LowestFreeSlot(const std::vector<std::uint32_t>& used) {
  std::uint32_t slot = 0;
  for (std::uint32_t u : used) {
    if (u == slot) ++slot;
    if (u > slot) break;
  }
  return slot;
}

LockMode ModeFromText(std::string_view text) {
  return text == "shared" ? LockMode::kShared : LockMode::kExclusive;
}

bool Conflicts(LockMode requested, LockMode held) {
  return requested == LockMode::kExclusive || held == LockMode::kExclusive;
}

// A refused try: who holds the lock and when the first conflicting holder's lease runs out
// (so a waiter need not sleep past it), by SQLite's clock.
Attempt Held(const std::vector<HolderRow>& conflicting, std::int64_t now) {
  Attempt out;
  std::int64_t first_expiry = std::numeric_limits<std::int64_t>::max();
  for (const auto& h : conflicting) {
    out.holders.push_back({h.owner, h.token, h.mode, FromEpochMs(h.expires_at), h.slot});
    first_expiry = std::min(first_expiry, h.expires_at);
  }
  if (!conflicting.empty()) out.expiry = milliseconds(std::max<std::int64_t>(0, first_expiry - now));
  return out;
}

Attempt Granted(Lease lease) {
  Attempt out;
  out.lease = std::move(lease);
  return out;
}

Lease MakeLease(std::string_view name, std::string owner, std::uint64_t token, LockMode mode,
                std::int64_t expires_at, milliseconds ttl, std::uint32_t slot = 0) {
  return Lease{std::string(name), std::move(owner), token, mode, FromEpochMs(expires_at), ttl,
               slot};
}

Status LeaseLost(const Lease& lease) { return LostError(lease); }

// The internal signal of a lost write-back in the version strategy; never returned to users.
Status Conflict() { return Status(StatusCode::kVersionMismatch, "version conflict"); }
bool IsConflict(const Status& s) { return s.code() == StatusCode::kVersionMismatch; }

Status TooManyConflicts(std::string_view name) {
  return UnavailableError("lock '" + std::string(name) + "': gave up after " +
                          std::to_string(kMaxConflicts) +
                          " version conflicts in a row (too much contention)");
}

// Prepares `sql`, lets `bind` bind its parameters, and runs it to the end.
template <typename Bind>
Status RunStatement(Connection& conn, const char* sql, Bind&& bind) {
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  bind(*stmt);
  return stmt->Run();
}

// Inserts the holder row of a new acquisition with `token`; returns the lease.
Result<Lease> InsertHolder(Connection& conn, const LockRequest& request, const std::string& owner,
                           std::uint64_t token, std::uint32_t slot) {
  auto insert = conn.Prepare(statements::kInsertHolder);
  if (!insert.ok()) return insert.status();
  insert->BindText(1, request.name)
      .Bind(2, static_cast<std::int64_t>(token))
      .BindText(3, owner)
      .BindText(4, LockModeName(request.mode))
      .Bind(5, request.ttl.count())
      .Bind(6, static_cast<std::int64_t>(slot))
      .Bind(7, static_cast<std::int64_t>(request.limit));
  auto row = insert->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return InternalError("inserting the holder of '" + request.name + "' returned nothing");
  }
  const std::int64_t expires_at = insert->Int(0);
  ORDO_RETURN_IF_ERROR(insert->Run());
  return MakeLease(request.name, owner, token, request.mode, expires_at, request.ttl, slot);
}

// ---------------------------------------------------------------------------------------------

class LeaseStrategy {
 public:
  explicit LeaseStrategy(std::shared_ptr<Database> db) : db_(std::move(db)) {}
  virtual ~LeaseStrategy() = default;
  // One try; never waits for the lock (SQLite's busy_timeout aside).
  virtual Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner) = 0;
  virtual Result<Lease> Renew(const Lease& lease, milliseconds ttl) = 0;
  virtual Status Release(const Lease& lease) = 0;

 protected:
  const std::shared_ptr<Database> db_;
};

// kInvalidArgument when the live holders' limit is not the request's. REQUIRES: inside the
// acquisition's write transaction (so the answer holds until it commits).
Status CheckLimit(Connection& conn, const LockRequest& request) {
  auto in_force = conn.Prepare(statements::kLimitInForce);
  if (!in_force.ok()) return in_force.status();
  in_force->BindText(1, request.name);
  auto row = in_force->Step();
  if (!row.ok()) return row.status();
  if (!*row) return OkStatus();
  const auto limit = static_cast<std::uint32_t>(in_force->Int(0));
  ORDO_RETURN_IF_ERROR(in_force->Run());
  if (limit == request.limit) return OkStatus();
  return LimitMismatchError(request.name, request.limit, limit);
}

Result<std::vector<std::uint32_t>> UsedSlots(Connection& conn, const std::string& name) {
  auto used = conn.Prepare(statements::kUsedSlots);
  if (!used.ok()) return used.status();
  used->BindText(1, name);
  std::vector<std::uint32_t> out;
  while (true) {
    auto row = used->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(static_cast<std::uint32_t>(used->Int(0)));
  }
  return out;
}

class CasStrategy final : public LeaseStrategy {
 public:
  using LeaseStrategy::LeaseStrategy;

  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner) override {
    return db_->Write([&](Connection& conn) -> Result<Attempt> {
      const auto bind_name = [&](Statement& s) { s.BindText(1, request.name); };
      ORDO_RETURN_IF_ERROR(RunStatement(conn, statements::kEnsureLock, bind_name));
      ORDO_RETURN_IF_ERROR(RunStatement(conn, statements::kPurgeExpired, bind_name));
      // A refusal returns an error, which rolls the transaction back: nothing changed.
      ORDO_RETURN_IF_ERROR(CheckLimit(conn, request));
      const bool permit = request.limit > 1;
      auto claim = conn.Prepare(permit ? statements::kClaimPermit : statements::kClaim);
      if (!claim.ok()) return claim.status();
      claim->BindText(1, request.name);
      if (permit) {
        claim->Bind(2, static_cast<std::int64_t>(request.limit));
      } else {
        claim->BindText(2, LockModeName(request.mode));
      }
      auto claimed = claim->Step();
      if (!claimed.ok()) return claimed.status();
      if (*claimed) {
        const auto token = static_cast<std::uint64_t>(claim->Int(0));
        ORDO_RETURN_IF_ERROR(claim->Run());
        std::uint32_t slot = 0;
        if (permit) {
          auto used = UsedSlots(conn, request.name);
          if (!used.ok()) return used.status();
          slot = LowestFreeSlot(*used);
        }
        auto lease = InsertHolder(conn, request, owner, token, slot);
        if (!lease.ok()) return lease.status();
        return Granted(std::move(*lease));
      }
      return HeldBy(conn, request);
    });
  }

  Result<Lease> Renew(const Lease& lease, milliseconds ttl) override {
    return db_->Write([&](Connection& conn) -> Result<Lease> {
      auto renew = conn.Prepare(statements::kCasRenew);
      if (!renew.ok()) return renew.status();
      renew->BindText(1, lease.name)
          .Bind(2, static_cast<std::int64_t>(lease.token))
          .Bind(3, ttl.count());
      auto row = renew->Step();
      if (!row.ok()) return row.status();
      if (!*row) return LeaseLost(lease);
      Lease out = MakeLease(lease.name, renew->Bytes(0), lease.token,
                            ModeFromText(renew->Bytes(1)), renew->Int(2), ttl,
                            static_cast<std::uint32_t>(renew->Int(3)));
      ORDO_RETURN_IF_ERROR(renew->Run());
      return out;
    });
  }

  Status Release(const Lease& lease) override {
    return db_->Write([&](Connection& conn) -> Status {
      ORDO_RETURN_IF_ERROR(RunStatement(conn, statements::kCasRelease, [&](Statement& s) {
        s.BindText(1, lease.name).Bind(2, static_cast<std::int64_t>(lease.token));
      }));
      return conn.changes() == 1 ? OkStatus() : LeaseLost(lease);
    });
  }

 private:
  static Result<Attempt> HeldBy(Connection& conn, const LockRequest& request) {
    auto live = conn.Prepare(statements::kLiveHolders);
    if (!live.ok()) return live.status();
    live->BindText(1, request.name);
    std::vector<HolderRow> conflicting;
    std::int64_t now = 0;
    while (true) {
      auto row = live->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      HolderRow h{live->Bytes(0), static_cast<std::uint64_t>(live->Int(1)),
                  ModeFromText(live->Bytes(2)), live->Int(3),
                  static_cast<std::uint32_t>(live->Int(5))};
      now = live->Int(4);
      // Every permit holder stands between a permit request and the next free slot.
      if (request.limit > 1 || Conflicts(request.mode, h.mode)) conflicting.push_back(std::move(h));
    }
    return Held(conflicting, now);
  }
};

class VersionStrategy final : public LeaseStrategy {
 public:
  using LeaseStrategy::LeaseStrategy;

  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner) override {
    for (int i = 0; i < kMaxConflicts; ++i) {
      auto snapshot = db_->Read([&](Connection& conn) { return ReadLock(conn, request.name); });
      if (!snapshot.ok()) return snapshot.status();
      // The decision, in the client, on what was read.
      std::vector<HolderRow> live;
      std::vector<HolderRow> expired;
      for (auto& h : snapshot->holders) {
        (h.expires_at <= snapshot->now ? expired : live).push_back(std::move(h));
      }
      if (!live.empty() && live.front().limit != request.limit) {
        return LimitMismatchError(request.name, request.limit, live.front().limit);
      }
      std::vector<HolderRow> conflicting;
      std::vector<std::uint32_t> used;
      for (auto& h : live) {
        used.push_back(h.slot);
        if (request.limit > 1 || Conflicts(request.mode, h.mode)) conflicting.push_back(h);
      }
      if (request.limit > 1 ? live.size() >= request.limit : !conflicting.empty()) {
        return Held(conflicting, snapshot->now);
      }
      std::sort(used.begin(), used.end());
      const std::uint32_t slot = request.limit > 1 ? LowestFreeSlot(used) : 0;
      auto granted = db_->Write([&](Connection& conn) -> Result<Lease> {
        const std::optional<std::int64_t>& version = snapshot->version;
        ORDO_RETURN_IF_ERROR(
            RunStatement(conn, version ? statements::kBumpIfVersion : statements::kCreateLock,
                         [&](Statement& s) {
                           s.BindText(1, request.name);
                           if (version) s.Bind(2, *version);
                         }));
        if (conn.changes() != 1) return Conflict();
        for (const auto& h : expired) {
          ORDO_RETURN_IF_ERROR(
              RunStatement(conn, statements::kDeleteIfUnchanged, [&](Statement& s) {
                s.BindText(1, request.name)
                    .Bind(2, static_cast<std::int64_t>(h.token))
                    .Bind(3, h.expires_at);
              }));
          if (conn.changes() != 1) return Conflict();
        }
        return InsertHolder(conn, request, owner,
                            static_cast<std::uint64_t>(version.value_or(0)) + 1, slot);
      });
      if (granted.ok()) return Granted(std::move(*granted));
      if (!IsConflict(granted.status())) return granted.status();
    }
    return TooManyConflicts(request.name);
  }

  Result<Lease> Renew(const Lease& lease, milliseconds ttl) override {
    for (int i = 0; i < kMaxConflicts; ++i) {
      auto holder = ReadLiveHolder(lease);
      if (!holder.ok()) return holder.status();
      auto renewed = db_->Write([&](Connection& conn) -> Result<Lease> {
        auto renew = conn.Prepare(statements::kRenewIfUnchanged);
        if (!renew.ok()) return renew.status();
        renew->BindText(1, lease.name)
            .Bind(2, static_cast<std::int64_t>(lease.token))
            .Bind(3, holder->expires_at)
            .Bind(4, ttl.count());
        auto row = renew->Step();
        if (!row.ok()) return row.status();
        if (!*row) return Conflict();
        Lease out = MakeLease(lease.name, holder->owner, lease.token, holder->mode,
                              renew->Int(0), ttl, holder->slot);
        ORDO_RETURN_IF_ERROR(renew->Run());
        return out;
      });
      if (renewed.ok() || !IsConflict(renewed.status())) return renewed;
    }
    return TooManyConflicts(lease.name);
  }

  Status Release(const Lease& lease) override {
    for (int i = 0; i < kMaxConflicts; ++i) {
      auto holder = ReadLiveHolder(lease);
      if (!holder.ok()) return holder.status();
      Status released = db_->Write([&](Connection& conn) -> Status {
        ORDO_RETURN_IF_ERROR(RunStatement(conn, statements::kReleaseIfUnchanged, [&](Statement& s) {
          s.BindText(1, lease.name)
              .Bind(2, static_cast<std::int64_t>(lease.token))
              .Bind(3, holder->expires_at);
        }));
        return conn.changes() == 1 ? OkStatus() : Conflict();
      });
      if (!IsConflict(released)) return released;
    }
    return TooManyConflicts(lease.name);
  }

 private:
  struct LockSnapshot {
    std::int64_t now = 0;
    std::optional<std::int64_t> version;  // last_token; empty when the lock was never acquired
    std::vector<HolderRow> holders;       // live and expired
  };

  static Result<LockSnapshot> ReadLock(Connection& conn, const std::string& name) {
    LockSnapshot out;
    auto lock = conn.Prepare(statements::kSnapshotLock);
    if (!lock.ok()) return lock.status();
    lock->BindText(1, name);
    auto row = lock->Step();
    if (!row.ok()) return row.status();
    out.now = lock->Int(0);
    if (!lock->IsNull(1)) out.version = lock->Int(1);
    auto holders = conn.Prepare(statements::kAllHolders);
    if (!holders.ok()) return holders.status();
    holders->BindText(1, name);
    while (true) {
      auto hrow = holders->Step();
      if (!hrow.ok()) return hrow.status();
      if (!*hrow) break;
      out.holders.push_back({holders->Bytes(0), static_cast<std::uint64_t>(holders->Int(1)),
                             ModeFromText(holders->Bytes(2)), holders->Int(3),
                             static_cast<std::uint32_t>(holders->Int(4)),
                             static_cast<std::uint32_t>(holders->Int(5))});
    }
    return out;
  }

  // The lease's holder row if it is live by SQLite's clock; kLeaseLost otherwise.
  Result<HolderRow> ReadLiveHolder(const Lease& lease) {
    return db_->Read([&](Connection& conn) -> Result<HolderRow> {
      auto read = conn.Prepare(statements::kSnapshotHolder);
      if (!read.ok()) return read.status();
      read->BindText(1, lease.name).Bind(2, static_cast<std::int64_t>(lease.token));
      auto row = read->Step();
      if (!row.ok()) return row.status();
      if (!*row || read->Int(3) <= read->Int(0)) return LeaseLost(lease);
      return HolderRow{read->Bytes(1), lease.token, ModeFromText(read->Bytes(2)), read->Int(3),
                       static_cast<std::uint32_t>(read->Int(4))};
    });
  }
};

// ---------------------------------------------------------------------------------------------

// A waiter sleeps on the file's in-process release signal, and for releases by other processes,
// which SQLite cannot announce, wakes on its own after a backoff of 1 ms doubling to
// kMaxBackoff: the one bounded poll in ordo (LockerTraits::recheck says so).
class BackoffWakeups final : public Wakeups {
 public:
  explicit BackoffWakeups(std::unique_ptr<Wakeups> board) : board_(std::move(board)) {}
  std::uint64_t Take() override { return board_->Take(); }
  void Wait(std::uint64_t ticket, SteadyClock::time_point until) override {
    board_->Wait(ticket, std::min(until, SteadyClock::now() + backoff_));
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  }

 private:
  const std::unique_ptr<Wakeups> board_;
  milliseconds backoff_ = kMinBackoff;
};

class SqliteLocker final : public EngineLocker {
 public:
  SqliteLocker(std::shared_ptr<Database> db, std::unique_ptr<LeaseStrategy> strategy)
      : db_(std::move(db)), strategy_(std::move(strategy)), fenced_(db_), objects_(db_) {}

  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    return db_->Read([&](Connection& conn) -> Result<std::vector<LockState>> {
      auto list = conn.Prepare(statements::kList);
      if (!list.ok()) return list.status();
      list->BindText(1, prefix).Bind(
          2, static_cast<std::int64_t>(std::min<std::size_t>(limit, kMaxToken)));
      std::vector<LockState> out;
      while (true) {
        auto row = list->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        std::string name = list->Bytes(0);
        if (out.empty() || out.back().name != name) {
          out.push_back({std::move(name), {}, static_cast<std::uint64_t>(list->Int(1))});
        }
        if (!list->IsNull(3)) {
          out.back().holders.push_back(HolderAt(*list, 2));
          out.back().limit = static_cast<std::uint32_t>(list->Int(7));
        }
      }
      return out;
    });
  }

  Status Ping() override {
    return db_->Read(
        [&](Connection& conn) -> Status { return conn.QueryInt(statements::kPing).status(); });
  }

  LockerTraits traits() const override {
    return {.expires_by_ttl = true, .shared_across_processes = true, .recheck = kMaxBackoff};
  }
  FencedStore& fenced() override { return fenced_; }
  VersionedStore& objects() override { return objects_; }

 protected:
  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                             SteadyClock::time_point /*deadline*/) override {
    auto attempt = strategy_->TryAcquire(request, owner);
    if (attempt.ok() && attempt->lease) db_->board().NotifyWatchers(request.name);
    return attempt;
  }
  Result<Lease> DoRenew(const Lease& lease, milliseconds ttl) override {
    return strategy_->Renew(lease, ttl);
  }
  Status DoRelease(const Lease& lease) override { return strategy_->Release(lease); }
  void Released(std::string_view name) override { db_->board().Notify(name); }
  std::unique_ptr<Wakeups> WaitFor(std::string_view name) override {
    return std::make_unique<BackoffWakeups>(db_->board().WaitFor(name));
  }
  std::unique_ptr<Subscription> Subscribe(std::string_view name,
                                          std::function<void()> changed) override {
    return db_->board().Watch(name, std::move(changed));
  }

  Result<LockState> DoDescribe(std::string_view name) override {
    return db_->Read([&](Connection& conn) -> Result<LockState> {
      auto describe = conn.Prepare(statements::kDescribe);
      if (!describe.ok()) return describe.status();
      describe->BindText(1, name);
      LockState state{std::string(name), {}, 0};
      bool found = false;
      while (true) {
        auto row = describe->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        found = true;
        state.last_token = static_cast<std::uint64_t>(describe->Int(0));
        if (!describe->IsNull(2)) {
          state.holders.push_back(HolderAt(*describe, 1));
          state.limit = static_cast<std::uint32_t>(describe->Int(6));
        }
      }
      if (!found) return NotFoundError("lock '" + std::string(name) + "' was never acquired");
      return state;
    });
  }

 private:
  // Reads (owner, token, mode, expires_at) starting at `column`.
  // Reads (owner, token, mode, expires_at, slot) starting at `column`.
  static Holder HolderAt(const Statement& s, int column) {
    return Holder{s.Bytes(column), static_cast<std::uint64_t>(s.Int(column + 1)),
                  ModeFromText(s.Bytes(column + 2)), FromEpochMs(s.Int(column + 3)),
                  static_cast<std::uint32_t>(s.Int(column + 4))};
  }

  const std::shared_ptr<Database> db_;
  const std::unique_ptr<LeaseStrategy> strategy_;
  SqliteFencedStore fenced_;
  SqliteVersionedStore objects_;
};

}  // namespace

std::unique_ptr<Locker> NewSqliteLocker(std::shared_ptr<Database> db, Strategy strategy) {
  std::unique_ptr<LeaseStrategy> s;
  if (strategy == Strategy::kVersion) {
    s = std::make_unique<VersionStrategy>(db);
  } else {
    s = std::make_unique<CasStrategy>(db);
  }
  return std::make_unique<SqliteLocker>(std::move(db), std::move(s));
}

}  // namespace ordo::sqlite
