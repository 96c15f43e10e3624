// The user-table modes: the counter is a row of a separate PostgreSQL database that stands for
// the user's own, and each worker's read-modify-write is one transaction there. In user-table
// mode the transaction starts with ordo_fence(key, token) (sql/fence/postgresql_resource.sql),
// so a holder whose lease expired while it was paused cannot commit over a newer holder; the
// control mode runs the same transaction without it and must lose updates.
#include <memory>
#include <pqxx/pqxx>
#include <random>

#include "history.h"
#include "ordo/ordo.h"
#include "ordo_sql/fence.h"
#include "pg_cluster.h"
#include "torture.h"

namespace ordo::torture {
namespace {

// How a failed call into the user's database enters the history: a stale token is a refusal;
// a lost connection may have committed (unknown); any other error rolled the transaction back.
Phase PhaseOfException() {
  try {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    return Phase::kInfo;
  } catch (const pqxx::broken_connection&) {
    return Phase::kInfo;
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "OR409") return Phase::kRefused;
    if (e.sqlstate().rfind("08", 0) == 0 || e.sqlstate().rfind("57P", 0) == 0) {
      return Phase::kInfo;
    }
    return Phase::kFail;
  } catch (...) {
    return Phase::kInfo;
  }
}

class UserTableWorker {
 public:
  explicit UserTableWorker(const WorkerOptions& o)
      : o_(o), history_(o.history, o.name), rng_(o.seed) {}

  int Run() {
    while (!StopRequested()) {
      if (!Connect()) {
        SleepFor(std::chrono::milliseconds(100));  // a database restart: try again shortly
        continue;
      }
      Cycle();
    }
    return 0;
  }

 private:
  bool Connect() {
    if (!locker_) {
      auto opened = Open(o_.backend);
      if (!opened.ok()) return false;
      locker_ = std::move(*opened);
    }
    if (!db_ || !db_->is_open()) {
      try {
        db_ = std::make_unique<pqxx::connection>(o_.user_db);
      } catch (...) {
        db_.reset();
        return false;
      }
    }
    return true;
  }

  void Cycle() {
    std::uint64_t op = history_.Invoke(Fn::kAcquire, 0, 0, -1, o_.lock);
    auto lease = locker_->Acquire({.name = o_.lock, .mode = LockMode::kExclusive,
                                   .ttl = o_.ttl, .wait = o_.wait});
    if (!lease.ok()) {
      const bool held = lease.status().code() == StatusCode::kLockHeld;
      history_.Complete(op, Fn::kAcquire, held ? Phase::kFail : Phase::kInfo, 0, 0, -1,
                        std::string(StatusCodeName(lease.status().code())));
      if (!held) SleepFor(std::chrono::milliseconds(50));
      return;
    }
    const std::uint64_t token = lease->token;
    history_.Complete(op, Fn::kAcquire, Phase::kOk, token, 0, -1, "");
    Transaction(token);
    op = history_.Invoke(Fn::kRelease, token, 0, -1, o_.lock);
    const Status released = locker_->Release(*lease);
    history_.Complete(op, Fn::kRelease, released.ok() ? Phase::kOk : Phase::kFail, token, 0, -1,
                      released.ok() ? "" : std::string(StatusCodeName(released.code())));
  }

  // BEGIN; [ordo_fence(key, token);] SELECT n; (sleep); UPDATE n+1; COMMIT. The read is the
  // fence plus the SELECT; the write completes with the COMMIT.
  void Transaction(std::uint64_t token) {
    const bool fenced = o_.mode == Mode::kUserTable;
    const std::uint64_t read_token = fenced ? token : 0;
    std::unique_ptr<pqxx::work> tx;
    std::int64_t value = 0;
    std::uint64_t op = history_.Invoke(Fn::kRead, token, read_token, -1, o_.key);
    try {
      tx = std::make_unique<pqxx::work>(*db_);
      if (fenced) {
        tx->exec_params("SELECT ordo_fence($1, $2)", o_.key, static_cast<std::int64_t>(token));
      }
      value = tx->exec("SELECT n FROM counter WHERE id = 1")[0][0].as<std::int64_t>();
      history_.Complete(op, Fn::kRead, Phase::kOk, token, read_token, value, "");
    } catch (...) {
      const Phase phase = PhaseOfException();
      history_.Complete(op, Fn::kRead, phase == Phase::kInfo ? Phase::kFail : phase, token,
                        read_token, -1, phase == Phase::kRefused ? "stale_token" : "error");
      tx.reset();
      if (phase == Phase::kInfo) db_.reset();
      return;
    }
    // The window in which the lease may expire and the nemesis may pause or kill us.
    std::uniform_int_distribution<long> sleep_ms(0, o_.max_sleep.count());
    SleepFor(std::chrono::milliseconds(sleep_ms(rng_)));

    op = history_.Invoke(Fn::kWrite, token, token, value + 1, o_.key);
    try {
      tx->exec_params("UPDATE counter SET n = $1 WHERE id = 1", value + 1);
      tx->commit();
      history_.Complete(op, Fn::kWrite, Phase::kOk, token, token, value + 1, "");
    } catch (...) {
      const Phase phase = PhaseOfException();
      history_.Complete(op, Fn::kWrite, phase, token, token, value + 1,
                        phase == Phase::kRefused ? "stale_token" : "error");
      tx.reset();
      if (phase == Phase::kInfo) db_.reset();
    }
  }

  const WorkerOptions& o_;
  HistoryWriter history_;
  std::mt19937_64 rng_;
  std::unique_ptr<Locker> locker_;
  std::unique_ptr<pqxx::connection> db_;
};

}  // namespace

int RunUserTableWorker(const WorkerOptions& options) {
  UserTableWorker worker(options);
  return worker.Run();
}

std::string PrepareUserTable(ordo::testing::PgCluster& cluster, int run) {
  const std::string db = "torture_user_" + std::to_string(run);
  cluster.CreateDatabase(db);
  std::string fence(sql::FenceSql("postgresql_resource"));
  for (auto at = fence.find("{{schema}}"); at != std::string::npos; at = fence.find("{{schema}}")) {
    fence.replace(at, 10, "public");
  }
  pqxx::connection conn(cluster.ConnInfo(db));
  pqxx::work tx(conn);
  tx.exec(fence);
  tx.exec("CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);"
          "INSERT INTO counter VALUES (1, 0)");
  tx.commit();
  return cluster.ConnInfo(db);
}

std::optional<std::int64_t> ReadUserCounter(const std::string& conninfo, std::string* error) {
  try {
    pqxx::connection conn(conninfo);
    pqxx::nontransaction tx(conn);
    return tx.exec("SELECT n FROM counter WHERE id = 1")[0][0].as<std::int64_t>();
  } catch (const std::exception& e) {
    *error = e.what();
    return std::nullopt;
  }
}

}  // namespace ordo::torture
