// `ordo fence` and what it installs, on a real PostgreSQL (tools/harness/pg_cluster.h) and real
// SQLite files: the real ordo binary installs, then the tests play the user's own transactions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "ordo/pg_fence.h"
#include "pg_cluster.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a shell command line to completion; stdout and stderr apart.
Ran Shell(const std::string& command_line) {
  static TempDir dir;
  const std::string err_file = dir.path() + "/" + UniqueName("stderr");
  const std::string command =
      command_line + " 2>" + ShellQuote(err_file) + " </dev/null";
  Ran ran;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return ran;
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) ran.out.append(buf, n);
  const int status = pclose(pipe);
  ran.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  ran.err = ReadFile(err_file);
  return ran;
}

// Runs the real `ordo args…` to completion.
Ran Ordo(const std::vector<std::string>& args) {
  std::string command = ShellQuote(ORDO_BINARY);
  for (const auto& a : args) command += " " + ShellQuote(a);
  return Shell(command);
}

// A fresh database of the shared cluster, standing for the user's own.
struct UserDb {
  UserDb() : name(UniqueName("fence")) { SharedPgCluster().CreateDatabase(name); }
  std::string Url() const { return SharedPgCluster().UrlFor(name, "connect_timeout=30"); }
  std::string ConnInfo() const { return SharedPgCluster().ConnInfo(name); }
  std::string Psql(const std::string& sql) const { return SharedPgCluster().Psql(sql, name); }
  // Everything a fence install could touch: relations, functions (with their row versions, so
  // that even an identical CREATE OR REPLACE shows), triggers, schemas.
  std::string Catalog() const {
    return Psql(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || "
        "   c.xmin::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        " UNION ALL SELECT 'proc ' || n.nspname || '.' || p.proname || ' ' || p.xmin::text"
        "   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        "   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " UNION ALL SELECT 'trig ' || t.tgrelid::regclass::text || '.' || t.tgname || ' ' || "
        "   t.xmin::text FROM pg_trigger t WHERE NOT t.tgisinternal"
        " UNION ALL SELECT 'nsp ' || nspname FROM pg_namespace) s(x)");
  }
  std::string name;
};

std::string SqlState(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const pqxx::sql_error& s) {
    return s.sqlstate();
  } catch (...) {
    return "?";
  }
}

// Waits (bounded) until backend `pid` waits for a lock: the only way to know that a session is
// blocked rather than slow.
bool WaitsForLock(pqxx::connection& observer, int pid) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    pqxx::nontransaction tx(observer);
    pqxx::result r = tx.exec_params(
        "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", pid);
    if (!r.empty()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: the resource fence.

class PgFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Ran ran = Ordo({"fence", "install", "--database", db_.Url()});
    ASSERT_EQ(ran.code, 0) << ran.err;
    ASSERT_THAT(ran.out, HasSubstr("installed resource fence public.ordo_fence"));
    db_.Psql("CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);"
             "INSERT INTO counter VALUES (1, 0)");
  }
  UserDb db_;
};

TEST_F(PgFenceTest, InstallIsIdempotent) {
  const std::string before = db_.Catalog();
  EXPECT_THAT(before, HasSubstr("public.ordo_fences"));
  EXPECT_THAT(before, HasSubstr("proc public.ordo_fence "));
  Ran again = Ordo({"fence", "install", "--database", db_.Url()});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already installed"));
  EXPECT_EQ(db_.Catalog(), before);
}

TEST_F(PgFenceTest, HigherTokenWaitsForTheLowerOnesTransactionThenWins) {
  pqxx::connection a(db_.ConnInfo()), b(db_.ConnInfo()), observer(db_.ConnInfo());
  pqxx::work ta(a);
  EXPECT_EQ(ta.exec_params("SELECT ordo_fence($1, $2)", "counter:1", 5)[0][0].as<long>(), 5);
  const long seen_a = ta.exec("SELECT n FROM counter WHERE id = 1")[0][0].as<long>();
  ta.exec_params("UPDATE counter SET n = $1 WHERE id = 1", seen_a + 1);

  std::atomic<bool> b_passed{false};
  std::exception_ptr b_error;
  std::thread tb([&] {
    try {
      pqxx::work tx(b);
      tx.exec_params("SELECT ordo_fence($1, $2)", "counter:1", 6);
      b_passed = true;
      // Read after the fence: the read sees the lower token's committed write.
      const long seen = tx.exec("SELECT n FROM counter WHERE id = 1")[0][0].as<long>();
      tx.exec_params("UPDATE counter SET n = $1 WHERE id = 1", seen + 1);
      tx.commit();
    } catch (...) {
      b_error = std::current_exception();
    }
  });
  const bool blocked = WaitsForLock(observer, b.backendpid());
  EXPECT_TRUE(blocked) << "token 6 must wait for token 5's open transaction";
  EXPECT_FALSE(b_passed.load());
  ta.commit();
  tb.join();
  EXPECT_EQ(b_error, nullptr) << SqlState(b_error);
  EXPECT_TRUE(b_passed.load());
  EXPECT_EQ(db_.Psql("SELECT n FROM counter WHERE id = 1"), "2") << "no update may be lost";
  EXPECT_EQ(db_.Psql("SELECT token FROM ordo_fences WHERE resource = 'counter:1'"), "6");
}

TEST_F(PgFenceTest, LowerTokenArrivingWhileHigherHoldsIsRefusedOnceItCommits) {
  pqxx::connection a(db_.ConnInfo()), b(db_.ConnInfo()), observer(db_.ConnInfo());
  pqxx::work ta(a);
  ta.exec_params("SELECT ordo_fence($1, $2)", "counter:1", 7);
  ta.exec("UPDATE counter SET n = 70 WHERE id = 1");
  std::string b_state, b_message;
  std::thread tb([&] {
    try {
      pqxx::work tx(b);
      tx.exec_params("SELECT ordo_fence($1, $2)", "counter:1", 6);
      tx.exec("UPDATE counter SET n = 60 WHERE id = 1");
      tx.commit();
    } catch (const pqxx::sql_error& e) {
      b_state = e.sqlstate();
      b_message = e.what();
    }
  });
  EXPECT_TRUE(WaitsForLock(observer, b.backendpid()));
  ta.commit();
  tb.join();
  EXPECT_EQ(b_state, "OR409");
  EXPECT_THAT(b_message, HasSubstr("stale fencing token 6"));
  EXPECT_THAT(b_message, HasSubstr("the fence is at 7"));
  EXPECT_EQ(db_.Psql("SELECT n FROM counter WHERE id = 1"), "70");
}

TEST_F(PgFenceTest, StaleTokenAbortsTheTransactionAndRollsBackEveryWrite) {
  db_.Psql("SELECT ordo_fence('counter:1', 10)");
  pqxx::connection c(db_.ConnInfo());
  {
    pqxx::work tx(c);
    // A write before the fence call, the worst order: it must not survive either.
    tx.exec("UPDATE counter SET n = 99 WHERE id = 1");
    tx.exec("CREATE TABLE side_effect (x int)");
    try {
      tx.exec_params("SELECT ordo_fence($1, $2)", "counter:1", 9);
      ADD_FAILURE() << "token 9 passed a fence at 10";
    } catch (const pqxx::sql_error& e) {
      EXPECT_EQ(e.sqlstate(), "OR409");
      EXPECT_THAT(std::string(e.what()), HasSubstr("stale fencing token 9 for resource "
                                                   "'counter:1': the fence is at 10"));
    }
    // The transaction is aborted: nothing more runs, and commit cannot make it durable.
    EXPECT_THROW(tx.exec("UPDATE counter SET n = 98 WHERE id = 1"), pqxx::sql_error);
  }
  EXPECT_EQ(db_.Psql("SELECT n FROM counter WHERE id = 1"), "0");
  EXPECT_EQ(db_.Psql("SELECT to_regclass('side_effect') IS NULL"), "t");
  EXPECT_EQ(db_.Psql("SELECT token FROM ordo_fences WHERE resource = 'counter:1'"), "10");
}

TEST_F(PgFenceTest, EqualTokenPassesAndFencesAreIndependentPerResource) {
  EXPECT_EQ(db_.Psql("SELECT ordo_fence('a', 4)"), "4");
  EXPECT_EQ(db_.Psql("SELECT ordo_fence('a', 4)"), "4");
  EXPECT_EQ(db_.Psql("SELECT ordo_fence('b', 1)"), "1");
  EXPECT_EQ(db_.Psql("SELECT ordo_fence(resource => 'a', token => 5)"), "5");
  EXPECT_EQ(db_.Psql("SELECT string_agg(resource || '=' || token, ',' ORDER BY resource) "
                     "FROM ordo_fences"),
            "a=5,b=1");
}

TEST_F(PgFenceTest, RefusesTokensOrdoNeverIssues) {
  pqxx::connection c(db_.ConnInfo());
  for (const char* sql : {"SELECT ordo_fence('a', 0)", "SELECT ordo_fence('a', -3)",
                          "SELECT ordo_fence('a', NULL)", "SELECT ordo_fence(NULL, 3)"}) {
    pqxx::work tx(c);
    try {
      tx.exec(sql);
      ADD_FAILURE() << sql << " passed";
    } catch (const pqxx::sql_error& e) {
      EXPECT_EQ(e.sqlstate(), "22023") << sql;
    }
  }
  EXPECT_EQ(db_.Psql("SELECT count(*) FROM ordo_fences"), "0");
}

TEST_F(PgFenceTest, LibpqxxHelperMapsTheFenceToStatus) {
  pqxx::connection c(db_.ConnInfo());
  {
    pqxx::work tx(c);
    EXPECT_TRUE(pg::Fence(tx, "orders:42", 8).ok());
    tx.commit();
  }
  {
    pqxx::work tx(c);
    Status stale = pg::Fence(tx, "orders:42", 7);
    EXPECT_EQ(stale.code(), StatusCode::kStaleToken) << stale.ToString();
    EXPECT_EQ(stale.current(), 8u);
    EXPECT_THAT(stale.message(), HasSubstr("stale fencing token 7"));
  }
  {
    pqxx::work tx(c);
    EXPECT_EQ(pg::Fence(tx, "orders:42", 0).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pg::Fence(tx, "orders:42", 1ull << 63).code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(pg::Fence(tx, "orders:42", 9, "public").ok());
  }
  UserDb bare;  // no fence installed
  pqxx::connection other(bare.ConnInfo());
  pqxx::work tx(other);
  Status missing = pg::Fence(tx, "orders:42", 3);
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument) << missing.ToString();
  EXPECT_THAT(missing.message(), HasSubstr("ordo fence install"));
}

TEST(PgFenceInstallTest, SchemaOptionPutsTheFenceIntoThatSchema) {
  UserDb db;
  Ran ran = Ordo({"fence", "install", "--database", db.Url(), "--schema", "Ordo Fences"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(db.Psql("SELECT \"Ordo Fences\".ordo_fence('x', 3)"), "3");
  EXPECT_EQ(db.Psql("SELECT to_regclass('public.ordo_fences') IS NULL"), "t");
  const std::string before = db.Catalog();
  EXPECT_EQ(Ordo({"fence", "install", "--database", db.Url(), "--schema", "Ordo Fences"}).code,
            0);
  EXPECT_EQ(db.Catalog(), before);
}

TEST(PgFenceInstallTest, FenceSqlChangesNothingAndItsOutputInstallsTheFence) {
  UserDb db;
  db.Psql("CREATE TABLE orders (id int PRIMARY KEY, token bigint)");
  const std::string before = db.Catalog();
  Ran resource = Ordo({"fence", "sql", "--database", db.Url()});
  Ran row = Ordo({"fence", "sql", "--database", db.Url(), "--table", "orders", "--column",
                  "token"});
  ASSERT_EQ(resource.code, 0) << resource.err;
  ASSERT_EQ(row.code, 0) << row.err;
  EXPECT_EQ(db.Catalog(), before);
  EXPECT_THAT(resource.out, HasSubstr("CREATE OR REPLACE FUNCTION \"public\".ordo_fence"));
  EXPECT_THAT(resource.out, HasSubstr("COMMIT;"));
  EXPECT_THAT(resource.out, Not(HasSubstr(SharedPgCluster().password())));
  EXPECT_THAT(row.out, HasSubstr("CREATE TRIGGER \"ordo_fence_token\""));
  // What it prints is what users run in their own migrations: it must work as printed.
  db.Psql(resource.out);
  db.Psql(row.out);
  EXPECT_EQ(db.Psql("SELECT ordo_fence('x', 2)"), "2");
  EXPECT_THAT(Ordo({"fence", "install", "--database", db.Url()}).out,
              HasSubstr("already installed"));
  EXPECT_THAT(Ordo({"fence", "install", "--database", db.Url(), "--table", "orders",
                    "--column", "token"}).out,
              HasSubstr("already installed"));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: the per-row trigger.

TEST(PgRowFenceTest, TriggerRefusesLoweringAndNull) {
  UserDb db;
  db.Psql("CREATE TABLE orders (id int PRIMARY KEY, qty int, token bigint)");
  Ran ran = Ordo({"fence", "install", "--database", db.Url(), "--table", "orders", "--column",
                  "token"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_THAT(ran.out, HasSubstr("installed per-row fence on orders.token"));
  const std::string before = db.Catalog();
  EXPECT_THAT(Ordo({"fence", "install", "--database", db.Url(), "--table", "orders",
                    "--column", "token"}).out,
              HasSubstr("already installed"));
  EXPECT_EQ(db.Catalog(), before);

  pqxx::connection c(db.ConnInfo());
  auto refused = [&](const std::string& sql) -> std::string {
    pqxx::work tx(c);
    try {
      tx.exec(sql);
      tx.commit();
      return "passed";
    } catch (const pqxx::sql_error& e) {
      return e.sqlstate() + " " + e.what();
    }
  };
  EXPECT_THAT(refused("INSERT INTO orders VALUES (1, 1, NULL)"),
              HasSubstr("OR409 ERROR:  ordo: stale fencing token NULL"));
  EXPECT_EQ(refused("INSERT INTO orders VALUES (1, 1, 5)"), "passed");
  EXPECT_THAT(refused("UPDATE orders SET qty = 2, token = 4 WHERE id = 1"),
              HasSubstr("stale fencing token 4 for public.orders.token: the row is at 5"));
  EXPECT_THAT(refused("UPDATE orders SET qty = 3, token = NULL WHERE id = 1"),
              HasSubstr("OR409"));
  EXPECT_EQ(refused("UPDATE orders SET qty = 4, token = 5 WHERE id = 1"), "passed");
  EXPECT_EQ(refused("UPDATE orders SET qty = 5, token = 6 WHERE id = 1"), "passed");
  EXPECT_EQ(refused("UPDATE orders SET qty = 6 WHERE id = 1"), "passed");  // token stays 6
  EXPECT_EQ(db.Psql("SELECT qty || ',' || token FROM orders"), "6,6");
}

TEST(PgRowFenceTest, QuotedAndSchemaQualifiedNames) {
  UserDb db;
  db.Psql("CREATE SCHEMA \"Shop\"; CREATE TABLE \"Shop\".\"Orders\" (id int PRIMARY KEY, "
          "\"Fence Token\" integer)");
  Ran ran = Ordo({"fence", "install", "--database", db.Url(), "--table", "Shop.Orders",
                  "--column", "Fence Token"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  db.Psql("INSERT INTO \"Shop\".\"Orders\" VALUES (1, 3)");
  pqxx::connection c(db.ConnInfo());
  pqxx::work tx(c);
  try {
    tx.exec("UPDATE \"Shop\".\"Orders\" SET \"Fence Token\" = 2");
    ADD_FAILURE() << "lowering passed";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(e.sqlstate(), "OR409");
    EXPECT_THAT(std::string(e.what()),
                HasSubstr("stale fencing token 2 for \"Shop\".\"Orders\".\"Fence Token\": "
                          "the row is at 3"));
  }
}

TEST(PgFenceInstallTest, ConcurrentInstallsAllSucceedAndInstallOnce) {
  UserDb db;
  db.Psql("CREATE TABLE orders (id int PRIMARY KEY, token bigint)");
  std::vector<std::thread> threads;
  std::vector<Ran> results(4);
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      std::vector<std::string> args = {"fence", "install", "--database", db.Url()};
      if (i % 2 == 1) args.insert(args.end(), {"--table", "orders", "--column", "token"});
      results[i] = Ordo(args);
    });
  }
  for (auto& t : threads) t.join();
  for (const Ran& r : results) EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(db.Psql("SELECT count(*) FROM pg_proc WHERE proname IN ('ordo_fence', "
                    "'ordo_fence_row')"),
            "2");
  EXPECT_EQ(db.Psql("SELECT count(*) FROM pg_trigger WHERE tgname = 'ordo_fence_token'"), "1");
  EXPECT_EQ(db.Psql("SELECT ordo_fence('x', 1)"), "1");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: bad input is a clear error, exit 125, and nothing changes.

TEST(PgFenceInstallTest, BadInputIsAClearErrorAndChangesNothing) {
  UserDb db;
  db.Psql("CREATE TABLE orders (id int PRIMARY KEY, token bigint, note text, price numeric);"
          "CREATE VIEW orders_view AS SELECT * FROM orders");
  const std::string before = db.Catalog();
  const std::string url = db.Url();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--table", "nope", "--column", "token"}, "table 'nope' does not exist"},
      {{"--table", "orders", "--column", "nope"}, "table 'orders' has no column 'nope'"},
      {{"--table", "orders", "--column", "note"}, "is text, not an integer type"},
      {{"--table", "orders", "--column", "price"}, "is numeric, not an integer type"},
      {{"--table", "orders_view", "--column", "token"}, "is not a table"},
      {{"--table", "orders"}, "--column"},
      {{"--column", "token"}, "--table"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"fence", "install", "--database", url};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Ran ran = Ordo(args);
    EXPECT_EQ(ran.code, 125) << c.message;
    EXPECT_THAT(ran.err, HasSubstr(c.message));
    EXPECT_THAT(ran.err, Not(HasSubstr(SharedPgCluster().password())));
  }
  EXPECT_EQ(db.Catalog(), before);

  const std::string pw = SharedPgCluster().password();
  const std::string port = std::to_string(SharedPgCluster().port());
  struct UrlCase {
    std::string url;
    std::string message;
  } urls[] = {
      {"postgresql://ordo:" + pw + "@127.0.0.1:" + port, "names no database"},
      {"postgresql://ordo:" + pw + "@127.0.0.1:" + port + "/" + db.name + "?bogus=1",
       "unknown query parameter 'bogus'"},
      {"postgresql://ordo:" + pw + "@127.0.0.1:" + port + "/no_such_db", "no_such_db"},
      {"postgresql://ordo:" + pw + "@127.0.0.1:" + std::to_string(FreeLoopbackPort()) + "/x",
       "unreachable"},
      {"mysql://ordo@localhost/x", "postgresql:// and sqlite:///"},
      {"not a url", ""},
  };
  for (const UrlCase& c : urls) {
    Ran ran = Ordo({"fence", "install", "--database", c.url});
    EXPECT_EQ(ran.code, 125) << c.url;
    EXPECT_THAT(ran.err, HasSubstr(c.message)) << c.url;
    if (pw.size() >= 3) {
      EXPECT_THAT(ran.err, Not(HasSubstr(pw))) << "password shown";
    }
  }
  EXPECT_EQ(db.Catalog(), before);
}

// ---------------------------------------------------------------------------------------------
// The worked examples of examples/fence/, run as a user would: `ordo` and psql on PATH.

TEST(FenceExamplesTest, ShellPythonAndCppExamplesFenceTheirTransactions) {
  UserDb db;
  TempDir dir;
  ASSERT_EQ(Ordo({"fence", "install", "--database", db.Url()}).code, 0);
  db.Psql("CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL);"
          "INSERT INTO orders VALUES (42, 0)");
  const std::string bin = ORDO_BINARY;
  const std::string env = "PATH=" + ShellQuote(bin.substr(0, bin.rfind('/'))) +
                          ":/usr/bin:/bin DATABASE_URL=" +
                          ShellQuote(SharedPgCluster().UrlFor(db.name, "")) +
                          " ORDO_BACKEND=" + ShellQuote("sqlite://" + dir.path() + "/locks.db");
  const std::string examples = std::string(ORDO_SOURCE_DIR) + "/examples/fence/";
  const std::string shell = env + " sh " + ShellQuote(examples + "add_to_order.sh") + " 42 3";
  const std::string python =
      env + " /usr/bin/python3 " + ShellQuote(examples + "add_to_order.py") + " 42 2";

  Ran sh = Shell(shell);
  EXPECT_EQ(sh.code, 0) << sh.err;
  EXPECT_THAT(sh.out, HasSubstr("order 42 updated under token 1"));
  Ran py = Shell(python);
  EXPECT_EQ(py.code, 0) << py.err;
  EXPECT_THAT(py.out, HasSubstr("qty 3 -> 5 under token 2"));
  const std::string cpp = std::string(ORDO_PG_FENCE_EXAMPLE) + " " +
                          ShellQuote("sqlite://" + dir.path() + "/locks.db") + " " +
                          ShellQuote(db.ConnInfo()) + " 42 4";
  Ran cc = Shell(cpp);
  EXPECT_EQ(cc.code, 0) << cc.err;
  EXPECT_THAT(cc.out, HasSubstr("qty 5 -> 9 under token 3"));
  EXPECT_EQ(db.Psql("SELECT qty FROM orders"), "9");

  // A newer holder (another lock service, or a lock store that was reset) has fenced at 1000:
  // both examples are refused and change nothing.
  db.Psql("SELECT ordo_fence('orders:42', 1000)");
  Ran late_sh = Shell(shell);
  EXPECT_NE(late_sh.code, 0);
  EXPECT_THAT(late_sh.err, HasSubstr("stale fencing token 4 for resource 'orders:42'"));
  Ran late_py = Shell(python);
  EXPECT_EQ(late_py.code, 2) << late_py.err;
  EXPECT_THAT(late_py.err, HasSubstr("stale fencing token 5"));
  Ran late_cc = Shell(cpp);
  EXPECT_EQ(late_cc.code, 2) << late_cc.err;
  EXPECT_THAT(late_cc.err, HasSubstr("stale_token: ordo: stale fencing token 6"));
  EXPECT_EQ(db.Psql("SELECT qty FROM orders"), "9");
}

// ---------------------------------------------------------------------------------------------
// SQLite: the per-row trigger on a real file.

class SqliteFile {
 public:
  explicit SqliteFile(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
  }
  ~SqliteFile() { sqlite3_close(db_); }
  // "ok", or the error message.
  std::string Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) == SQLITE_OK) return "ok";
    std::string message = error != nullptr ? error : "?";
    sqlite3_free(error);
    return message;
  }
  std::string One(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  std::string Schema() {
    return One("SELECT group_concat(type || ' ' || name || ': ' || sql, char(10)) FROM "
               "(SELECT * FROM sqlite_master ORDER BY name)");
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteFenceTest, TriggerRefusesLoweringNullAndNonIntegers) {
  TempDir dir;
  const std::string path = dir.path() + "/app.db";
  SqliteFile db(path);
  ASSERT_EQ(db.Exec("CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT, fence INTEGER)"),
            "ok");
  const std::string url = "sqlite://" + path;
  Ran ran = Ordo({"fence", "install", "--database", url, "--table", "jobs", "--column", "fence"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_THAT(ran.out, HasSubstr("installed per-row fence on jobs.fence"));
  const std::string schema = db.Schema();
  Ran again = Ordo({"fence", "install", "--database", url, "--table", "jobs", "--column", "fence"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already installed"));
  EXPECT_EQ(db.Schema(), schema);

  EXPECT_THAT(db.Exec("INSERT INTO jobs VALUES (1, 'new', NULL)"),
              HasSubstr("ordo: stale fencing token: jobs.fence must be set"));
  EXPECT_THAT(db.Exec("INSERT INTO jobs VALUES (1, 'new', 'abc')"),
              HasSubstr("ordo: stale fencing token"));
  EXPECT_EQ(db.Exec("INSERT INTO jobs VALUES (1, 'new', 5)"), "ok");
  EXPECT_THAT(db.Exec("UPDATE jobs SET state = 'old', fence = 4 WHERE id = 1"),
              HasSubstr("ordo: stale fencing token: jobs.fence may not be lowered"));
  EXPECT_THAT(db.Exec("UPDATE jobs SET state = 'old', fence = NULL WHERE id = 1"),
              HasSubstr("ordo: stale fencing token"));
  EXPECT_EQ(db.Exec("UPDATE jobs SET state = 'same', fence = 5 WHERE id = 1"), "ok");
  EXPECT_EQ(db.Exec("UPDATE jobs SET state = 'newer', fence = 6 WHERE id = 1"), "ok");
  // A refused statement inside a transaction leaves the transaction open: the caller rolls back.
  EXPECT_EQ(db.Exec("BEGIN"), "ok");
  EXPECT_EQ(db.Exec("INSERT INTO jobs VALUES (2, 'side', 9)"), "ok");
  EXPECT_THAT(db.Exec("UPDATE jobs SET state = 'late', fence = 5 WHERE id = 1"),
              HasSubstr("stale fencing token"));
  EXPECT_EQ(db.Exec("ROLLBACK"), "ok");
  EXPECT_EQ(db.One("SELECT group_concat(id || ':' || state || ':' || fence) FROM jobs"),
            "1:newer:6");
}

TEST(SqliteFenceTest, FenceSqlChangesNothingAndBadInputChangesNothing) {
  TempDir dir;
  const std::string path = dir.path() + "/app.db";
  SqliteFile db(path);
  ASSERT_EQ(db.Exec("CREATE TABLE jobs (id INTEGER PRIMARY KEY, label TEXT, fence BIGINT)"),
            "ok");
  const std::string url = "sqlite://" + path;
  const std::string schema = db.Schema();
  const std::string bytes = ReadFile(path);

  Ran sql = Ordo({"fence", "sql", "--database", url, "--table", "jobs", "--column", "fence"});
  EXPECT_EQ(sql.code, 0) << sql.err;
  EXPECT_THAT(sql.out, HasSubstr("CREATE TRIGGER IF NOT EXISTS \"ordo_fence_jobs_fence_insert\""));
  EXPECT_THAT(sql.out, HasSubstr("RAISE(ABORT, 'ordo: stale fencing token"));
  EXPECT_EQ(ReadFile(path), bytes);

  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--database", url, "--table", "nope", "--column", "fence"}, "table 'nope' does not exist"},
      {{"--database", url, "--table", "jobs", "--column", "nope"}, "has no column 'nope'"},
      {{"--database", url, "--table", "jobs", "--column", "label"}, "not an integer type"},
      {{"--database", url}, "SQLite has no resource fence"},
      {{"--database", url, "--table", "jobs", "--column", "fence", "--schema", "s"},
       "PostgreSQL only"},
      {{"--database", "sqlite://" + dir.path() + "/missing.db", "--table", "jobs", "--column",
        "fence"},
       "does not create databases"},
      {{"--database", "sqlite://host/x.db", "--table", "jobs", "--column", "fence"}, "host"},
      {{"--database", url + "?strategy=cas", "--table", "jobs", "--column", "fence"},
       "unknown query parameter"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"fence", "install"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Ran ran = Ordo(args);
    EXPECT_EQ(ran.code, 125) << c.message;
    EXPECT_THAT(ran.err, HasSubstr(c.message));
  }
  EXPECT_EQ(db.Schema(), schema);
  EXPECT_EQ(ReadFile(path), bytes);
  EXPECT_FALSE(std::ifstream(dir.path() + "/missing.db").good()) << "a database was created";

  // What `fence sql` printed is what users run in their own migrations: it must work as printed.
  ASSERT_EQ(db.Exec(sql.out), "ok");
  EXPECT_EQ(db.Exec("INSERT INTO jobs VALUES (1, 'a', 5)"), "ok");
  EXPECT_THAT(db.Exec("UPDATE jobs SET fence = 4"), HasSubstr("may not be lowered"));
  EXPECT_THAT(Ordo({"fence", "install", "--database", url, "--table", "jobs", "--column",
                    "fence"}).out,
              HasSubstr("already installed"));
}

}  // namespace
}  // namespace ordo::testing
