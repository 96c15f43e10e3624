// What is particular to the sqlite:// backend (the shared behaviour is in tests/conformance):
// crash safety of the file, migrations, pragmas, URLs and error messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ordo/ordo.h"
#include "ordo_sqlite/sqlite.h"
#include "sqlite_db.h"  // white-box: the pragmas of a pooled connection
#include "status_matchers.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kHelper = ORDO_SQLITE_HELPER;
const std::string kWorker = ORDO_TEST_WORKER;

// A plain SQLite connection, to look at the file from outside ordo.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  // The first column of the first row as text ("" when there is none).
  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    } else {
      EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteTest : public ::testing::Test {
 protected:
  std::string Url(const std::string& strategy = "cas") const {
    return "sqlite://" + path_ + "?strategy=" + strategy;
  }
  std::unique_ptr<Locker> OpenOrDie(const std::string& url) {
    auto opened = Open(url);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/ordo.db";
};

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms,
                      std::chrono::milliseconds ttl = 30s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}

// ---------------------------------------------------------------------------------------------
// Durability settings.

TEST_F(SqliteTest, WalFullSynchronousAndForeignKeysAreInEffect) {
  auto locker = OpenOrDie(Url());
  ASSERT_NE(locker, nullptr);
  ASSERT_OK(locker->Acquire(Exclusive("pragmas")));
  // journal_mode is a property of the file; the WAL file exists while connections are open.
  EXPECT_EQ(RawDb(path_).Query("PRAGMA journal_mode"), "wal");
  EXPECT_TRUE(fs::exists(path_ + "-wal"));
  // synchronous and foreign_keys are per connection: look at one configured as the pool's are.
  auto conn = sqlite::Connection::Open(path_);
  ASSERT_OK(conn);
  for (const auto& [pragma, want] : std::vector<std::pair<const char*, std::int64_t>>{
           {"PRAGMA synchronous", 2 /* FULL */}, {"PRAGMA foreign_keys", 1}}) {
    auto stmt = (*conn)->Prepare(pragma);
    ASSERT_OK(stmt);
    auto row = stmt->Step();
    ASSERT_OK(row);
    ASSERT_TRUE(*row);
    EXPECT_EQ(stmt->Int(0), want) << pragma;
  }
  // The foreign key is enforced: no holder without its lock row.
  Status orphan = (*conn)->Exec(
      "INSERT INTO holders (name, token, owner, mode, expires_at) "
      "VALUES ('no-such-lock', 1, 'o', 'exclusive', 0)",
      "insert an orphan holder");
  EXPECT_EQ(orphan.code(), StatusCode::kInternal) << orphan.ToString();
  EXPECT_THAT(orphan.message(), HasSubstr("FOREIGN KEY"));
}

// ---------------------------------------------------------------------------------------------
// Migrations.

TEST_F(SqliteTest, ConcurrentFirstOpenOfANewDatabaseMigratesOnce) {
  constexpr int kProcesses = 6;
  std::vector<std::unique_ptr<Child>> children;
  for (int i = 0; i < kProcesses; ++i) {
    children.push_back(
        std::make_unique<Child>(std::vector<std::string>{kHelper, "migrate", Url()}));
  }
  for (auto& c : children) c->WriteLine("go");  // all start on a file that does not exist yet
  int applied_once = 0;
  int found_current = 0;
  for (auto& c : children) {
    const std::string line = c->ReadLine();
    applied_once += line == "applied 3 version 3";  // 0001 … 0003
    found_current += line == "applied 0 version 3";
    EXPECT_TRUE(line.rfind("applied", 0) == 0) << line;
    const int status = c->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(applied_once, 1);
  EXPECT_EQ(found_current, kProcesses - 1);
  RawDb raw(path_);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM schema_migrations"), "3");
  EXPECT_EQ(raw.Query("PRAGMA integrity_check"), "ok");
  // Idempotent afterwards.
  auto again = sqlite::Migrate(Url());
  ASSERT_OK(again);
  EXPECT_TRUE(again->applied.empty());
  EXPECT_EQ(again->from_version, 3);
  EXPECT_EQ(again->to_version, 3);
}

TEST_F(SqliteTest, NewerSchemaIsRefusedAndNeverDowngraded) {
  ASSERT_OK(sqlite::Migrate(Url()));
  RawDb(path_).Query(
      "INSERT INTO schema_migrations (version, name, applied_at) "
      "VALUES (99, '0099_future.sql', 0)");
  for (const std::string strategy : {"cas", "version"}) {
    auto opened = Open(Url(strategy));
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(opened.status().message(), HasSubstr("schema version 99"));
    EXPECT_THAT(opened.status().message(), HasSubstr("newer"));
    EXPECT_THAT(opened.status().message(), HasSubstr(path_));
  }
  EXPECT_EQ(sqlite::Migrate(Url()).status().code(), StatusCode::kInvalidArgument);
  RawDb raw(path_);
  EXPECT_EQ(raw.Query("SELECT group_concat(version) FROM schema_migrations"), "1,2,3,99");
}

// ---------------------------------------------------------------------------------------------
// Crashes.

TEST_F(SqliteTest, WriterKilledMidTransactionLeavesAnIntactFileAndGrowingTokens) {
  auto locker = OpenOrDie(Url());
  ASSERT_NE(locker, nullptr);
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto lease = locker->Acquire(Exclusive("crash"));
    ASSERT_OK(lease);
    last = lease->token;
    ASSERT_OK(locker->Release(*lease));
  }
  const auto wal_before = fs::file_size(path_ + "-wal");
  Child writer({kHelper, "pause-in-transaction", path_});
  ASSERT_EQ(writer.ReadLine(), "paused");
  EXPECT_GT(fs::file_size(path_ + "-wal"), wal_before + 1'000'000)
      << "the uncommitted transaction should have spilled frames into the WAL";

  // While it holds SQLite's write lock: writes wait busy_timeout and report kUnavailable;
  // reads go on (WAL) and do not see the uncommitted bump.
  auto blocked = locker->Acquire(Exclusive("crash"));
  EXPECT_EQ(blocked.status().code(), StatusCode::kUnavailable) << blocked.status().ToString();
  EXPECT_THAT(blocked.status().message(), HasSubstr("locked"));
  ASSERT_OK(locker->Ping());
  auto during = locker->Describe("crash");
  ASSERT_OK(during);
  EXPECT_EQ(during->last_token, last);

  writer.Kill(SIGKILL);
  writer.Wait();

  auto lease = locker->Acquire(Exclusive("crash"));
  ASSERT_OK(lease);
  EXPECT_EQ(lease->token, last + 1) << "the killed transaction must have been rolled back";
  ASSERT_OK(locker->Release(*lease));
  EXPECT_EQ(locker->fenced().Read("uncommitted-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(RawDb(path_).Query("PRAGMA integrity_check"), "ok");
}

TEST_F(SqliteTest, ProcessesKilledInTheMiddleOfAcquiringKeepTokensUniqueAndGrowing) {
  const std::string name = "hammered";
  std::vector<std::uint64_t> seen;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<Child>> children;
    for (const std::string strategy : {"cas", "version"}) {
      children.push_back(std::make_unique<Child>(
          std::vector<std::string>{kHelper, "hammer", Url(strategy), name}));
    }
    // Let one of them (alternately) take a few leases, then kill both wherever they are:
    // inside a transaction, holding the lease, or waiting.
    std::vector<std::vector<std::string>> lines(children.size());
    for (int i = 0; i < 5; ++i) lines[round % 2].push_back(children[round % 2]->ReadLine());
    for (auto& c : children) c->Kill(SIGKILL);
    for (auto& c : children) c->Wait();
    // Then everything each printed (the pipes are at EOF now that they are dead).
    for (std::size_t c = 0; c < children.size(); ++c) {
      for (std::string line = children[c]->ReadLine(1s); !line.empty();
           line = children[c]->ReadLine(1s)) {
        lines[c].push_back(line);
      }
    }
    for (const auto& printed : lines) {
      std::uint64_t previous = 0;
      for (const std::string& line : printed) {
        ASSERT_EQ(line.rfind("token ", 0), 0u) << "helper said '" << line << "'";
        const std::uint64_t token = std::stoull(line.substr(6));
        EXPECT_GT(token, previous);
        previous = token;
        seen.push_back(token);
      }
    }
  }
  ASSERT_GE(seen.size(), 15u);
  EXPECT_EQ(std::set<std::uint64_t>(seen.begin(), seen.end()).size(), seen.size())
      << "a token was issued twice";
  EXPECT_EQ(RawDb(path_).Query("PRAGMA integrity_check"), "ok");
  auto locker = OpenOrDie(Url());
  ASSERT_NE(locker, nullptr);
  auto lease = locker->Acquire(Exclusive(name, 5s));  // a killed holder's 300 ms lease runs out
  ASSERT_OK(lease);
  EXPECT_GT(lease->token, *std::max_element(seen.begin(), seen.end()));
  auto state = locker->Describe(name);
  ASSERT_OK(state);
  EXPECT_EQ(state->last_token, lease->token);
  ASSERT_OK(locker->fenced().Write(name + ".data", "after", lease->token, name));
}

// ---------------------------------------------------------------------------------------------
// Strategies and waiting.

TEST_F(SqliteTest, CasAndVersionStrategiesShareOneLockTable) {
  auto cas = OpenOrDie(Url("cas"));
  auto version = OpenOrDie(Url("version"));
  ASSERT_NE(cas, nullptr);
  ASSERT_NE(version, nullptr);
  auto a = cas->Acquire(Exclusive("both"));
  ASSERT_OK(a);
  EXPECT_EQ(version->Acquire(Exclusive("both")).status().code(), StatusCode::kLockHeld);
  ASSERT_OK(version->Renew(*a, 10s));
  ASSERT_OK(version->Release(*a));
  auto b = version->Acquire(Exclusive("both"));
  ASSERT_OK(b);
  EXPECT_GT(b->token, a->token);
  EXPECT_EQ(cas->Acquire(Exclusive("both")).status().code(), StatusCode::kLockHeld);
  ASSERT_OK(cas->Release(*b));
}

TEST_F(SqliteTest, WaiterInAnotherProcessIsGrantedSoonAfterRelease) {
  auto locker = OpenOrDie(Url());
  ASSERT_NE(locker, nullptr);
  auto held = locker->Acquire(Exclusive("handover"));
  ASSERT_OK(held);
  Child waiter({kWorker, "hold", Url(), "handover", "exclusive", "30000"});
  // Bounded wait on the pipe: the waiter must not get the lock while we hold it.
  EXPECT_EQ(waiter.ReadLine(300ms), "");
  const auto released_at = std::chrono::steady_clock::now();
  ASSERT_OK(locker->Release(*held));
  const std::string line = waiter.ReadLine(10s);
  const auto took = std::chrono::steady_clock::now() - released_at;
  ASSERT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
  EXPECT_GT(std::stoull(line.substr(6)), held->token);
  // Polling with a backoff capped at 25 ms: well under a second even on a busy machine.
  EXPECT_LT(took, 1s);
  waiter.WriteLine("release");
  EXPECT_EQ(waiter.ReadLine(), "released");
}

// ---------------------------------------------------------------------------------------------
// URLs and locations.

TEST_F(SqliteTest, BadUrlsAreInvalidArgumentsNamingTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sqlite://", "no database path"},
      {"sqlite:", "no database path"},
      {"sqlite:///", "no database path"},
      {"sqlite://relative.db", "names a host ('relative.db')"},
      {"sqlite://localhost" + path_, "names a host ('localhost')"},
      {Url("nope"), "unknown sqlite strategy 'nope'"},
      {Url(""), "unknown sqlite strategy ''"},
      {"sqlite://" + path_ + "?timeout=5", "unknown query parameter 'timeout'"},
      {"sqlite::memory:", "in-memory"},
      {"sqlite://" + dir_.path() + "/", "does not name a database file"},
  };
  for (const auto& [url, why] : cases) {
    auto opened = Open(url);
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(opened.status().message(), HasSubstr(why)) << url;
    EXPECT_EQ(sqlite::Migrate(url).status().code(), StatusCode::kInvalidArgument) << url;
  }
  EXPECT_TRUE(fs::is_empty(dir_.path())) << "a refused URL created a file";
  EXPECT_THAT(sqlite::Migrate("inproc:").status().message(), HasSubstr("not a sqlite:// URL"));
}

TEST_F(SqliteTest, OpaqueFormIsRelativeToTheWorkingDirectory) {
  const fs::path relative = fs::relative(fs::path(dir_.path()) / "relative.db");
  ASSERT_FALSE(relative.is_absolute());
  auto locker = OpenOrDie("sqlite:" + relative.string());
  ASSERT_NE(locker, nullptr);
  ASSERT_OK(locker->Acquire(Exclusive("rel")));
  EXPECT_TRUE(fs::exists(fs::path(dir_.path()) / "relative.db"));
}

TEST_F(SqliteTest, UnusableLocationsAreClearErrorsWithThePath) {
  const std::string missing = dir_.path() + "/missing/ordo.db";
  auto a = Open("sqlite://" + missing);
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr(dir_.path() + "/missing"));
  EXPECT_THAT(a.status().message(), HasSubstr("No such file or directory"));

  std::ofstream(dir_.path() + "/plain") << "x";
  auto b = Open("sqlite://" + dir_.path() + "/plain/ordo.db");
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(b.status().message(), HasSubstr("is not a directory"));

  auto c = Open("sqlite://" + dir_.path());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("is a directory"));

  const std::string junk = dir_.path() + "/junk.db";
  const std::string text(4096, 'j');
  std::ofstream(junk) << text;
  auto d = Open("sqlite://" + junk);
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr(junk));
  EXPECT_THAT(d.status().message(), HasSubstr("not a database"));
  std::string after;
  std::getline(std::ifstream(junk), after);
  EXPECT_EQ(after, text) << "a file that is not a database must be left alone";

  // A directory we may not write in. Root ignores permission bits, but not /proc.
  std::string unwritable = "/proc/ordo-test.db";
  if (geteuid() != 0) {
    const std::string locked_dir = dir_.path() + "/readonly";
    fs::create_directory(locked_dir);
    fs::permissions(locked_dir, fs::perms::owner_read | fs::perms::owner_exec);
    unwritable = locked_dir + "/ordo.db";
  }
  auto e = Open("sqlite://" + unwritable);
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << e.status().ToString();
  EXPECT_THAT(e.status().message(), HasSubstr(unwritable));
}

}  // namespace
}  // namespace ordo::testing
