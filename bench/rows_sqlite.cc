// sqlite:// (each strategy) against the same SQL run through the raw sqlite3 API: the adapter's
// statements, its transactions (BEGIN IMMEDIATE … COMMIT) and its connection settings (WAL,
// synchronous=FULL, busy_timeout), on the same database file, with one connection per client.
#include <sqlite3.h>

#include <algorithm>
#include <functional>
#include <map>
#include <variant>

#include "adapters/sqlite/src/statements.h"
#include "backends.h"
#include "ordo/ordo.h"
#include "temp_dir.h"

namespace ordo::bench {
namespace {

// --- a tiny "pgbench for SQLite": transactions of statements with named variables ------------

using Value = std::variant<std::int64_t, std::string>;
using Vars = std::map<std::string, Value>;

struct Stmt {
  std::string sql;
  std::vector<std::string> params;  // variable names bound to ?1, ?2, …
  std::string store;                // variable that receives `column` of the first row, or ""
  int column = 0;
  // Runs after the statement with sqlite3_changes(): what the adapter decides in C++.
  std::function<void(Vars&, int changes)> after;
  // Runs on every row: what the adapter decides in C++ from what it read.
  std::function<void(Vars&, sqlite3_stmt*)> row;
};

struct Txn {
  bool write = true;  // BEGIN IMMEDIATE (write) or BEGIN (read)
  std::vector<Stmt> stmts;
  std::string skip_if;  // a variable that, when set, skips the transaction (a decision not to write)
};

std::string ScriptText(const std::vector<Txn>& txns) {
  std::string out;
  for (const auto& t : txns) {
    out += t.write ? "BEGIN IMMEDIATE;\n" : "BEGIN;\n";
    for (const auto& s : t.stmts) {
      out += "  " + s.sql + ";  -- ?N = ";
      for (std::size_t i = 0; i < s.params.size(); ++i) out += (i ? ", " : "") + s.params[i];
      if (!s.store.empty()) out += " → " + s.store;
      out += "\n";
    }
    out += "COMMIT;\n";
  }
  return out;
}

// One raw connection, set up as the adapter sets up its own.
class RawSqlite {
 public:
  explicit RawSqlite(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      error_ = db_ != nullptr ? sqlite3_errmsg(db_) : "sqlite3_open_v2 failed";
      return;
    }
    sqlite3_busy_timeout(db_, 5000);
    Exec("PRAGMA journal_mode = WAL");
    Exec("PRAGMA synchronous = FULL");
    Exec("PRAGMA foreign_keys = ON");
  }
  ~RawSqlite() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  RawSqlite(const RawSqlite&) = delete;
  RawSqlite& operator=(const RawSqlite&) = delete;
  const std::string& error() const { return error_; }

  bool Exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      error_ = msg != nullptr ? msg : "sqlite3_exec failed";
      sqlite3_free(msg);
      return false;
    }
    return true;
  }

  // Runs one transaction; false with *error on any failure (then rolls back).
  bool Run(const Txn& txn, Vars& vars, std::string* error) {
    if (!txn.skip_if.empty() && vars.count(txn.skip_if) != 0) return true;
    if (!Exec(txn.write ? "BEGIN IMMEDIATE" : "BEGIN")) {
      *error = error_;
      return false;
    }
    for (const auto& s : txn.stmts) {
      // A statement that needs the token runs only when one was granted (the adapter stops
      // there too).
      if (std::find(s.params.begin(), s.params.end(), "token") != s.params.end() &&
          vars.count("token") == 0) {
        continue;
      }
      if (!Step(s, vars, error)) {
        Exec("ROLLBACK");
        return false;
      }
    }
    if (!Exec("COMMIT")) {
      *error = error_;
      Exec("ROLLBACK");
      return false;
    }
    return true;
  }

 private:
  bool Step(const Stmt& s, Vars& vars, std::string* error) {
    sqlite3_stmt*& stmt = cache_[s.sql];
    if (stmt == nullptr &&
        sqlite3_prepare_v3(db_, s.sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
            SQLITE_OK) {
      *error = sqlite3_errmsg(db_);
      return false;
    }
    for (std::size_t i = 0; i < s.params.size(); ++i) {
      const int at = static_cast<int>(i) + 1;
      auto v = vars.find(s.params[i]);
      if (v == vars.end()) {
        sqlite3_bind_null(stmt, at);
      } else if (const auto* n = std::get_if<std::int64_t>(&v->second)) {
        sqlite3_bind_int64(stmt, at, *n);
      } else {
        // Values are BLOB columns (STRICT tables refuse TEXT there); the rest is text.
        const auto& str = std::get<std::string>(v->second);
        if (s.params[i] == "value") {
          sqlite3_bind_blob(stmt, at, str.data(), static_cast<int>(str.size()), SQLITE_STATIC);
        } else {
          sqlite3_bind_text(stmt, at, str.data(), static_cast<int>(str.size()), SQLITE_STATIC);
        }
      }
    }
    if (!s.store.empty()) vars.erase(s.store);
    int rc;
    bool first = true;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (first && !s.store.empty()) {
        const int col = s.column;
        if (sqlite3_column_type(stmt, col) == SQLITE_INTEGER) {
          vars[s.store] = static_cast<std::int64_t>(sqlite3_column_int64(stmt, col));
        } else if (sqlite3_column_type(stmt, col) != SQLITE_NULL) {
          vars[s.store] = std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, col)));
        }
      }
      first = false;
      if (s.row) s.row(vars, stmt);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE) {
      *error = sqlite3_errmsg(db_);
      return false;
    }
    if (s.after) s.after(vars, sqlite3_changes(db_));
    return true;
  }

  sqlite3* db_ = nullptr;
  std::string error_;
  std::map<std::string, sqlite3_stmt*> cache_;
};

// --- the adapter's statements (adapters/sqlite/src/statements.h), with the variables bound ---

namespace sql = ordo::sqlite::statements;

const Stmt kEnsureLock{sql::kEnsureLock, {"name"}, ""};
const Stmt kPurgeExpired{sql::kPurgeExpired, {"name"}, ""};
const Stmt kClaim{sql::kClaim, {"name", "mode"}, "token"};
const Stmt kInsertHolder{sql::kInsertHolder, {"name", "token", "owner", "mode", "ttl", "slot", "lim"},
                         "expires_at"};
const Stmt kCasRelease{sql::kCasRelease, {"name", "token"}, ""};
// The version strategy's read; the adapter then refuses in C++ when a live holder conflicts.
const Stmt kSnapshotLock{sql::kSnapshotLock, {"name"}, "version", 1, nullptr,
                         [](Vars& v, sqlite3_stmt* s) {
                           v["now"] = static_cast<std::int64_t>(sqlite3_column_int64(s, 0));
                           v.erase("held");
                           v.erase("token");
                         }};
const Stmt kAllHolders{sql::kAllHolders, {"name"}, "", 0, nullptr, [](Vars& v, sqlite3_stmt* s) {
                         // Exclusive requests conflict with every live holder.
                         if (sqlite3_column_int64(s, 3) > std::get<std::int64_t>(v["now"])) {
                           v["held"] = std::int64_t{1};
                         }
                       }};
// The adapter checks changes() == 1 and issues version + 1 as the token.
const Stmt kBumpIfVersion{sql::kBumpIfVersion, {"name", "version"}, "", 0,
                          [](Vars& v, int changes) {
                            if (changes == 1) v["token"] = std::get<std::int64_t>(v["version"]) + 1;
                            else v.erase("token");
                          }};
const Stmt kSnapshotHolder{sql::kSnapshotHolder, {"name", "token"}, "held_expires_at", 3};
const Stmt kReleaseIfUnchanged{sql::kReleaseIfUnchanged, {"name", "token", "held_expires_at"}, ""};
const Stmt kFencedWrite{sql::kFencedWrite, {"key", "fence_token", "value", "strict_lock"}, "fence"};
const Stmt kObjectCreate{sql::kObjectCreate, {"key", "value"}, "version"};
const Stmt kObjectSwap{sql::kObjectSwap, {"key", "value", "version"}, "version"};

struct Scripts {
  std::vector<Txn> acquire;  // sets "token" when granted
  std::vector<Txn> release;
};

Scripts LockScripts(const std::string& strategy) {
  if (strategy == "version") {
    return {{{false, {kSnapshotLock, kAllHolders}}, {true, {kBumpIfVersion, kInsertHolder}, "held"}},
            {{false, {kSnapshotHolder}}, {true, {kReleaseIfUnchanged}}}};
  }
  return {{{true, {kEnsureLock, kPurgeExpired, kClaim, kInsertHolder}}}, {{true, {kCasRelease}}}};
}

class SqliteBench final : public BackendBench {
 public:
  explicit SqliteBench(std::string strategy) : strategy_(std::move(strategy)) {}
  std::string label() const override { return "sqlite:// " + strategy_; }
  std::string scheme() const override { return "sqlite"; }
  std::string url() const override { return "sqlite://" + path() + "?strategy=" + strategy_; }
  std::string path() const { return dir_.path() + "/bench.db"; }

  std::string Setup(const Config&) override {
    // Opening through ordo creates the file and its schema; the baseline then shares both.
    auto locker = Open(url());
    return locker.ok() ? "" : "Open: " + locker.status().message();
  }

  Baseline Measure(const Config& cfg, Scenario scenario, int clients) override {
    const int conns = scenario == Scenario::kWake ? 2 : clients;
    std::vector<std::unique_ptr<RawSqlite>> db;
    std::vector<Vars> vars(static_cast<std::size_t>(conns));
    for (int c = 0; c < conns; ++c) {
      db.push_back(std::make_unique<RawSqlite>(path()));
      if (!db.back()->error().empty()) return {"raw sqlite3", Sample::Error(db.back()->error()), ""};
      Vars& v = vars[static_cast<std::size_t>(c)];
      // A fresh key per call: each round of a full run starts from version 0.
      static int call = 0;
      const std::string tag = std::to_string(static_cast<int>(scenario)) + "-" +
                              std::to_string(c == 0 ? ++call : call) + "-" + std::to_string(c);
      v["name"] = scenario == Scenario::kContended ? BenchName("raw-contended")
                  : scenario == Scenario::kWake    ? BenchName("raw-wake")
                                                   : BenchName("raw-" + tag);
      v["key"] = BenchName("raw-key-" + tag);
      v["owner"] = std::string("raw-owner");
      v["mode"] = std::string("exclusive");
      v["ttl"] = std::int64_t{30000};
      v["slot"] = std::int64_t{0};  // a plain lock
      v["lim"] = std::int64_t{1};
      v["value"] = std::string(64, 'x');
      v["fence_token"] = std::int64_t{7};
      v["version"] = std::int64_t{0};
    }
    const Scripts lock = LockScripts(strategy_);
    auto run = [&](int c, const std::vector<Txn>& txns, std::string* error) {
      for (const auto& t : txns) {
        if (!db[static_cast<std::size_t>(c)]->Run(t, vars[static_cast<std::size_t>(c)], error)) return false;
      }
      return true;
    };
    // Acquire; `spin` retries at once while the lock is held (the raw best case of waiting).
    auto acquire = [&](int c, bool spin, std::string* error) {
      Vars& v = vars[static_cast<std::size_t>(c)];
      // The version strategy creates the lock row on first use.
      if (v.find("created") == v.end()) {
        if (!run(c, {{true, {kEnsureLock}}}, error)) return false;
        v["created"] = std::int64_t{1};
      }
      while (true) {
        if (!run(c, lock.acquire, error)) return false;
        if (v.count("token") != 0) return true;
        if (!spin) {
          *error = "lock held";
          return false;
        }
      }
    };
    const std::string script = "acquire:\n" + ScriptText(lock.acquire) + "release:\n" + ScriptText(lock.release);
    switch (scenario) {
      case Scenario::kPair:
      case Scenario::kContended: {
        const bool one = scenario == Scenario::kContended;
        auto s = RunClosedLoop(
            cfg, clients,
            [&](int c, std::string* error) {
              return acquire(c, one, error) && run(c, lock.release, error);
            },
            false);
        return {one ? "raw sqlite3, same SQL, retried at once" : "raw sqlite3, same SQL", s, script};
      }
      case Scenario::kWake: {
        WakeOps ops{[&](std::string* e) { return acquire(0, false, e); },
                    [&](std::string* e) { return acquire(1, true, e); },
                    [&](std::string* e) { return run(1, lock.release, e); },
                    [&](std::string* e) { return run(0, lock.release, e); }};
        return {"raw sqlite3: waiter re-runs the acquire SQL in a loop",
                MeasureWake(cfg, ops, block_delay()), script};
      }
      case Scenario::kFenced: {
        const std::vector<Txn> write = {{true, {kFencedWrite}}};
        auto s = RunClosedLoop(cfg, clients, [&](int c, std::string* e) { return run(c, write, e); }, false);
        return {"raw sqlite3, same SQL", s, ScriptText(write)};
      }
      case Scenario::kCas: {
        const std::vector<Txn> create = {{true, {kObjectCreate}}};
        const std::vector<Txn> swap = {{true, {kObjectSwap}}};
        auto s = RunClosedLoop(
            cfg, clients,
            [&](int c, std::string* e) {
              Vars& v = vars[static_cast<std::size_t>(c)];
              const bool first = std::get<std::int64_t>(v["version"]) == 0;
              if (!run(c, first ? create : swap, e)) return false;
              if (v.count("version") == 0) {
                *e = "version moved";
                return false;
              }
              return true;
            },
            false);
        return {"raw sqlite3, same SQL", s, ScriptText(swap)};
      }
    }
    return {};
  }

 private:
  std::string strategy_;
  testing::TempDir dir_;
};

}  // namespace

std::vector<std::unique_ptr<BackendBench>> SqliteBackends() {
  std::vector<std::unique_ptr<BackendBench>> out;
  out.push_back(std::make_unique<SqliteBench>("cas"));
  out.push_back(std::make_unique<SqliteBench>("version"));
  return out;
}

}  // namespace ordo::bench
