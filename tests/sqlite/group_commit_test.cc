// Group commit of the sqlite:// writers of one process (GroupCommit in sqlite_db.h): concurrent
// write calls share one transaction and one fsync, each keeps its own result and error, a failed
// BEGIN or COMMIT is every member's error, and tokens are durable before a lease is returned.
//
// To make a group form for certain, a second process holds SQLite's write lock (the helper's
// pause-in-transaction) while this process's threads queue up behind the first one's BEGIN
// IMMEDIATE; killing the helper lets that BEGIN through, and the whole queue commits at once.
// Write failures are real ones: RLIMIT_FSIZE makes the kernel refuse (EFBIG) the WAL writes of a
// COMMIT, or of a call whose pages overflow the page cache, which rolls back the whole
// transaction (the group runs again without that call).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ordo/ordo.h"
#include "sqlite_db.h"  // white-box: GroupCommit's counters, Database::Write
#include "status_matchers.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kHelper = ORDO_SQLITE_HELPER;

LockRequest Exclusive(const std::string& name) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = 60s};
}

// The first column of the first row of `sql`, read by a plain connection outside ordo.
std::int64_t RawInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::int64_t out = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) out = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  return out;
}

// Makes every write of this process to a regular file past `limit` bytes fail with EFBIG (a real
// "file too large" from the kernel, as a full disk would fail a write), until destroyed.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t limit) {
    old_handler_ = signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of being killed
    EXPECT_EQ(getrlimit(RLIMIT_FSIZE, &old_), 0);
    rlimit lowered = old_;
    lowered.rlim_cur = limit;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &lowered), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto locker = Open("sqlite://" + path_);
    ASSERT_OK(locker);
    locker_ = std::move(*locker);
    // Shares the locker's GroupCommit: one per file and process.
    auto db = sqlite::Database::Open(path_, nullptr);
    ASSERT_OK(db);
    db_ = std::move(*db);
  }

  // Another process takes SQLite's write lock and keeps it until killed.
  std::unique_ptr<Child> HoldWriteLock() {
    auto holder =
        std::make_unique<Child>(std::vector<std::string>{kHelper, "pause-in-transaction", path_});
    EXPECT_EQ(holder->ReadLine(), "paused");
    return holder;
  }

  // Bounded poll of this process's queue: `n` calls are waiting (the first in BEGIN).
  void AwaitQueued(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 4s;
    while (db_->group_stats().queued < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(db_->group_stats().queued, n) << "the calls did not queue up";
  }

  // Runs body(i, conn) as n concurrent Database::Write calls queued behind another process's
  // write lock, so that they commit as one group once it is gone; with `limit`, under a
  // FileSizeLimit. Returns each call's status.
  template <typename Body>
  std::vector<Status> WriteAsOneGroup(int n, Body body, rlim_t limit = RLIM_INFINITY) {
    auto holder = HoldWriteLock();
    std::vector<Status> status(n, Status(StatusCode::kInternal, "not run"));
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        status[i] =
            db_->Write([&, i](sqlite::Connection& conn) -> Status { return body(i, conn); });
      });
    }
    AwaitQueued(n);
    std::optional<FileSizeLimit> lowered;
    if (limit != RLIM_INFINITY) lowered.emplace(limit);
    holder->Kill(SIGKILL);
    holder->Wait();
    for (auto& t : threads) t.join();
    return status;
  }

  void CreateTable(const std::string& sql) {
    ASSERT_OK(db_->Write([&](sqlite::Connection& conn) { return conn.Exec(sql, "create"); }));
  }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/ordo.db";
  std::unique_ptr<Locker> locker_;
  std::shared_ptr<sqlite::Database> db_;
};

TEST_F(GroupCommitTest, ConcurrentAcquiresOnDistinctNamesShareCommits) {
  constexpr int kThreads = 16;
  constexpr int kRounds = 20;
  const auto before = db_->group_stats();
  auto holder = HoldWriteLock();
  std::vector<std::vector<Result<Lease>>> got(kThreads);
  std::vector<std::thread> threads;
  // First one acquisition each, all queued behind the held write lock: one group of 16.
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { got[i].push_back(locker_->Acquire(Exclusive("gc-" + std::to_string(i)))); });
  }
  AwaitQueued(kThreads);
  holder->Kill(SIGKILL);
  holder->Wait();
  for (auto& t : threads) t.join();
  const auto grouped = db_->group_stats();
  EXPECT_EQ(grouped.commits, before.commits + 1);
  EXPECT_EQ(grouped.largest, static_cast<std::size_t>(kThreads));
  threads.clear();
  // Then release and acquire again freely: groups form by themselves under load.
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string name = "gc-" + std::to_string(i);
      for (int r = 0; r < kRounds; ++r) {
        if (!got[i].back().ok()) return;
        EXPECT_OK(locker_->Release(*got[i].back()));
        got[i].push_back(locker_->Acquire(Exclusive(name)));
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto after = db_->group_stats();
  for (int i = 0; i < kThreads; ++i) {
    std::uint64_t previous = 0;
    for (const auto& lease : got[i]) {
      ASSERT_OK(lease);
      EXPECT_GT(lease->token, previous) << lease->name;
      previous = lease->token;
    }
    ASSERT_EQ(got[i].size(), kRounds + 1u);
    // Durable as returned: the file says what the last lease said.
    EXPECT_EQ(
        RawInt(path_, "SELECT last_token FROM locks WHERE name = 'gc-" + std::to_string(i) + "'"),
        static_cast<std::int64_t>(previous));
  }
  const std::uint64_t calls = after.calls - before.calls;
  EXPECT_EQ(calls, kThreads * (2u * kRounds + 1u)) << "every acquire and release is one call";
  EXPECT_LT(after.commits - before.commits, calls) << "no two calls ever shared a commit";
}

TEST_F(GroupCommitTest, AFailingCallInAGroupRollsBackOnlyItsOwnChanges) {
  CreateTable("CREATE TABLE t (k INTEGER PRIMARY KEY)");
  constexpr int kThreads = 8;
  constexpr int kRefused = 3;   // inserts its row, then refuses: an error of ordo's own
  constexpr int kConflict = 5;  // inserts its row, then a duplicate key: an error of SQLite's
  const auto before = db_->group_stats();
  const auto status = WriteAsOneGroup(kThreads, [](int i, sqlite::Connection& conn) -> Status {
    const std::string insert = "INSERT INTO t (k) VALUES (" + std::to_string(i) + ")";
    ORDO_RETURN_IF_ERROR(conn.Exec(insert, "insert"));
    if (i == kRefused) return InvalidArgumentError("refused on purpose");
    if (i == kConflict) return conn.Exec(insert, "insert again");
    return OkStatus();
  });
  for (int i = 0; i < kThreads; ++i) {
    if (i == kRefused) {
      EXPECT_EQ(status[i].code(), StatusCode::kInvalidArgument) << status[i].ToString();
      EXPECT_THAT(status[i].message(), HasSubstr("refused on purpose"));
    } else if (i == kConflict) {
      EXPECT_EQ(status[i].code(), StatusCode::kInternal) << status[i].ToString();
      EXPECT_THAT(status[i].message(), HasSubstr("UNIQUE"));
    } else {
      EXPECT_OK(status[i]) << i;
    }
  }
  const auto after = db_->group_stats();
  EXPECT_EQ(after.commits, before.commits + 1) << "the eight calls should have been one group";
  EXPECT_EQ(after.largest, static_cast<std::size_t>(kThreads));
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM t"), kThreads - 2);
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM t WHERE k IN (3, 5)"), 0)
      << "a failed call's own insert must have been rolled back";
}

TEST_F(GroupCommitTest, ACommitThatCannotWriteIsEveryMembersErrorAndNothingIsKept) {
  CreateTable("CREATE TABLE blobs (k INTEGER PRIMARY KEY, v BLOB)");
  constexpr int kThreads = 8;
  const auto before = db_->group_stats();
  // 8 × 32 KB: the group's pages stay in the page cache until COMMIT writes them to the WAL,
  // which cannot grow to take them.
  const auto status = WriteAsOneGroup(
      kThreads,
      [](int i, sqlite::Connection& conn) {
        return conn.Exec("INSERT INTO blobs VALUES (" + std::to_string(i) + ", randomblob(32768))",
                         "insert a blob");
      },
      64 * 1024);
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(status[i].code(), StatusCode::kUnavailable) << i << ": " << status[i].ToString();
    EXPECT_THAT(status[i].message(), HasSubstr("commit")) << i;
  }
  EXPECT_EQ(db_->group_stats().commits, before.commits);
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM blobs"), 0)
      << "a member of a failed commit was kept";
  // The file is intact and takes writes again once they fit.
  ASSERT_OK(db_->Write([](sqlite::Connection& conn) {
    return conn.Exec("INSERT INTO blobs VALUES (100, x'00')", "insert after");
  }));
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM blobs"), 1);
  auto lease = locker_->Acquire(Exclusive("after-commit-failure"));
  EXPECT_OK(lease);
}

TEST_F(GroupCommitTest, AMemberWhoseWriteFailsMidTransactionDoesNotTakeTheOthersWithIt) {
  CreateTable("CREATE TABLE blobs (k INTEGER PRIMARY KEY, v BLOB)");
  constexpr int kThreads = 8;
  constexpr int kHuge = 3;  // 8 MB: more than the page cache, so SQLite writes it out mid-call
  const auto before = db_->group_stats();
  const auto status = WriteAsOneGroup(
      kThreads,
      [](int i, sqlite::Connection& conn) {
        const int bytes = i == kHuge ? 8 << 20 : 100;
        return conn.Exec("INSERT INTO blobs VALUES (" + std::to_string(i) + ", randomblob(" +
                             std::to_string(bytes) + "))",
                         "insert a blob");
      },
      4 << 20);  // room for the small rows, not for the huge one
  for (int i = 0; i < kThreads; ++i) {
    if (i == kHuge) {
      EXPECT_EQ(status[i].code(), StatusCode::kUnavailable) << status[i].ToString();
    } else {
      EXPECT_OK(status[i]) << i;
    }
  }
  EXPECT_EQ(db_->group_stats().commits, before.commits + 1);
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM blobs"), kThreads - 1);
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM blobs WHERE k = 3"), 0);
}

TEST_F(GroupCommitTest, ABeginThatTimesOutIsEveryQueuedCallsErrorAndNoLeaseIsReturned) {
  constexpr int kThreads = 8;
  auto first = locker_->Acquire(Exclusive("gf-0"));
  ASSERT_OK(first);
  ASSERT_OK(locker_->Release(*first));
  const auto before = db_->group_stats();
  // Held past the busy timeout: the committer's BEGIN IMMEDIATE gives up, and the calls queued
  // behind it share its error instead of each waiting out a timeout of its own.
  auto holder = HoldWriteLock();
  std::vector<Result<Lease>> got(kThreads, Status(StatusCode::kInternal, "not run"));
  std::vector<std::thread> threads;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { got[i] = locker_->Acquire(Exclusive("gf-" + std::to_string(i))); });
  }
  AwaitQueued(kThreads);
  for (auto& t : threads) t.join();
  const auto took = std::chrono::steady_clock::now() - started;
  for (const auto& lease : got) {
    EXPECT_EQ(lease.status().code(), StatusCode::kUnavailable) << lease.status().ToString();
    EXPECT_THAT(lease.status().message(), HasSubstr("locked"));
  }
  EXPECT_LT(took, sqlite::kBusyTimeout * 2) << "queued calls waited out timeouts one by one";
  EXPECT_EQ(db_->group_stats().commits, before.commits);
  holder->Kill(SIGKILL);
  holder->Wait();
  // Nothing of the failed group is in the file; the next lease takes the next token.
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM holders"), 0);
  EXPECT_EQ(RawInt(path_, "SELECT count(*) FROM locks"), 1);
  auto next = locker_->Acquire(Exclusive("gf-0"));
  ASSERT_OK(next);
  EXPECT_EQ(next->token, first->token + 1);
}

TEST_F(GroupCommitTest, TokensReportedByAKilledProcessAreDurable) {
  constexpr int kThreads = 8;
  Child child({kHelper, "group", "sqlite://" + path_, std::to_string(kThreads)});
  std::map<std::string, std::uint64_t> reported;
  for (int i = 0; i < 200; ++i) {
    const std::string line = child.ReadLine(10s);
    ASSERT_EQ(line.rfind("token ", 0), 0u) << "helper said '" << line << "'";
    const auto space = line.rfind(' ');
    const std::string name = line.substr(6, space - 6);
    const std::uint64_t token = std::stoull(line.substr(space + 1));
    EXPECT_GT(token, reported[name]) << name;
    reported[name] = token;
  }
  child.Kill(SIGKILL);
  child.Wait();
  ASSERT_EQ(reported.size(), static_cast<std::size_t>(kThreads));
  auto reopened = Open("sqlite://" + path_);
  ASSERT_OK(reopened);
  for (const auto& [name, token] : reported) {
    auto state = (*reopened)->Describe(name);
    ASSERT_OK(state);
    EXPECT_GE(state->last_token, token) << name << ": a reported token was lost in the crash";
  }
}

}  // namespace
}  // namespace ordo::testing
