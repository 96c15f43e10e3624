// `ordo run` and `ordo lock` on lease backends: keep-alive, loss, self-fencing, hold-at-least,
// the JSON of `ordo lock`. SQLite tests need the sqlite:// backend; the HTTP one needs the
// http:// client backend and the real `ordo serve`. Each skips while its backend is missing.
#include <signal.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "ordo_process.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

// A job that ignores SIGTERM (its sleeps too: SIG_IGN is inherited), prints its pid and runs
// until killed.
const std::vector<std::string> kStubbornJob = {
    "sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.05; done"};

class SqliteLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasBackend("sqlite")) GTEST_SKIP() << "the sqlite:// backend is not in this build yet";
    setenv("XDG_RUNTIME_DIR", dir_.path().c_str(), 1);
    unsetenv("ORDO_BACKEND");
    path_ = dir_.path() + "/locks.db";
    url_ = "sqlite://" + path_;
  }

  TempDir dir_;
  std::string path_;
  std::string url_;
};

TEST_F(SqliteLeaseTest, LockJsonRoundTrip) {
  auto acquired = RunOrdo({"lock", "acquire", "deploy", "--backend", url_, "--ttl", "5s",
                           "--owner", "me"});
  ASSERT_EQ(acquired.code, 0);
  const auto lease = nlohmann::json::parse(acquired.out);
  EXPECT_EQ(lease["name"], "deploy");
  EXPECT_EQ(lease["owner"], "me");
  EXPECT_EQ(lease["mode"], "exclusive");
  EXPECT_EQ(lease["ttl_ms"], 5000);
  const std::uint64_t token = lease["token"];
  EXPECT_GT(token, 0u);
  const std::string expires = lease["expires_at"];
  EXPECT_TRUE(std::regex_match(
      expires, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << expires;

  auto held = RunOrdo({"lock", "acquire", "deploy", "--backend", url_});
  EXPECT_EQ(held.code, 1);
  EXPECT_EQ(nlohmann::json::parse(held.out)["error"], "lock_held");
  EXPECT_EQ(RunOrdo({"lock", "acquire", "deploy", "--backend", url_, "-E", "3"}).code, 3);
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "deploy", "--", "true"}).code, 1)
      << "ordo run sees locks taken by ordo lock";

  auto renewed = RunOrdo({"lock", "renew", "deploy", "--backend", url_, "--token",
                          std::to_string(token), "--ttl", "10s"});
  ASSERT_EQ(renewed.code, 0);
  const auto again = nlohmann::json::parse(renewed.out);
  EXPECT_EQ(again["token"], token);
  EXPECT_EQ(again["ttl_ms"], 10000);
  EXPECT_GT(std::string(again["expires_at"]), expires);

  auto status = RunOrdo({"lock", "status", "deploy", "--backend", url_});
  ASSERT_EQ(status.code, 0);
  const auto state = nlohmann::json::parse(status.out);
  ASSERT_EQ(state["holders"].size(), 1u);
  EXPECT_EQ(state["holders"][0]["token"], token);
  EXPECT_EQ(state["holders"][0]["owner"], "me");

  auto released = RunOrdo({"lock", "release", "deploy", "--backend", url_, "-t",
                           std::to_string(token)});
  ASSERT_EQ(released.code, 0);
  EXPECT_EQ(nlohmann::json::parse(released.out)["released"], true);
  auto twice = RunOrdo({"lock", "release", "deploy", "--backend", url_, "--token",
                        std::to_string(token)});
  EXPECT_EQ(twice.code, 75);
  EXPECT_EQ(nlohmann::json::parse(twice.out)["error"], "lease_lost");
  EXPECT_EQ(RunOrdo({"lock", "renew", "deploy", "--backend", url_, "--token",
                     std::to_string(token)})
                .code,
            75);
  const auto after = nlohmann::json::parse(RunOrdo({"lock", "status", "deploy", "--backend", url_}).out);
  EXPECT_TRUE(after["holders"].empty());
  EXPECT_EQ(after["last_token"], token);

  // Shared leases from the command line, each with its own token.
  auto s1 = RunOrdo({"lock", "acquire", "readers", "--backend", url_, "--shared"});
  auto s2 = RunOrdo({"lock", "acquire", "readers", "--backend", url_, "-s"});
  ASSERT_EQ(s1.code, 0);
  ASSERT_EQ(s2.code, 0);
  EXPECT_GT(nlohmann::json::parse(s2.out)["token"], nlohmann::json::parse(s1.out)["token"]);
  EXPECT_EQ(nlohmann::json::parse(s1.out)["mode"], "shared");
}

TEST_F(SqliteLeaseTest, KeepAliveHoldsTheLockPastItsTtl) {
  auto holder = StartOrdo({"run", "--backend", url_, "--ttl", "1s", "--lock", "long", "--", "sh", "-c",
               "echo ready; read x"});
  ASSERT_EQ(holder->ReadLine(), "ready");
  // The waiter would get the lock the moment the lease expired: renewals keep it alive.
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "-w", "3", "--lock", "long", "--", "true"}).code,
            1);
  holder->WriteLine("x");
  EXPECT_EQ(ExitCode(holder->Wait()), 0);
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "long", "--", "true"}).code, 0);
}

// The wrapper is frozen past its TTL; someone else takes the lock; the wrapper wakes up, learns
// that its lease is gone, and stops its job: SIGTERM, which the job ignores, then SIGKILL after
// the grace period, and exit 75.
TEST_F(SqliteLeaseTest, LostLeaseKillsTheJobAfterTheGracePeriod) {
  auto frozen = StartOrdo({"run", "--backend", url_, "--lock", "paused", "--ttl", "500ms", "--kill-grace",
               "400ms", "--", "sh", "-c",
               "trap 'echo got-term' TERM; echo $$; while :; do sleep 0.05; done"});
  const pid_t job = std::stoi(frozen->ReadLine());
  frozen->Kill(SIGSTOP);
  // Blocks until the frozen lease has expired (backend clock) and this run got the lock.
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "paused", "-w", "10", "--", "true"}).code,
            0);
  frozen->Kill(SIGCONT);
  EXPECT_EQ(frozen->ReadLine(), "got-term");
  const auto term_at = Clock::now();
  EXPECT_EQ(ExitCode(frozen->Wait()), 75);
  EXPECT_GE(Clock::now() - term_at, 300ms) << "SIGKILL only after the grace period";
  EXPECT_TRUE(GoneWithin(job, 1s));
}

// Renewals cannot get through (the database is locked by someone else): the job must be dead
// before the lease can expire on the backend, although it ignores SIGTERM and the default
// grace period (10 s) is longer than the TTL.
TEST_F(SqliteLeaseTest, SelfFencesBeforeTheLeaseExpiresWhenTheDatabaseIsLocked) {
  auto wrapper = StartOrdo(Cat({"run", "--backend", url_, "--lock", "fenced", "--ttl", "3s",
                    "--lost-exit-code", "76", "--"},
                   kStubbornJob));
  const pid_t job = std::stoi(wrapper->ReadLine());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  // Every renewal that succeeded committed before this instant, so the lease expires (backend
  // clock) no later than locked_at + ttl.
  const auto locked_at = Clock::now();
  ASSERT_TRUE(GoneWithin(job, 5s));
  EXPECT_LT(Clock::now() - locked_at, 3s) << "the job outlived its lease";
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(ExitCode(wrapper->Wait()), 76);
}

TEST_F(SqliteLeaseTest, HoldAtLeastKeepsTheLockAfterTheJob) {
  const auto start = Clock::now();
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "min", "--hold-at-least", "3s", "--",
                     "true"})
                .code,
            0);
  EXPECT_LT(Clock::now() - start, 2500ms) << "ordo does not stay to hold it";
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "min", "--", "true"}).code, 1);
  EXPECT_EQ(RunOrdo({"run", "--backend", url_, "--lock", "min", "-w", "10", "--", "true"}).code,
            0);
  EXPECT_GE(Clock::now() - start, 3s);
}

// The same self-fencing over HTTP: the server is frozen, so renewals hang instead of failing.
TEST(HttpLeaseTest, SelfFencesWhenTheServerStopsAnswering) {
  if (!HasBackend("http") || !HasBackend("sqlite")) {
    GTEST_SKIP() << "needs the http:// client backend, ordo serve and sqlite://";
  }
  TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  auto server = StartOrdo({"serve", "--backend", "sqlite://" + dir.path() + "/serve.db", "--listen",
               url.substr(7)});
  const auto up_by = Clock::now() + 10s;
  while (RunOrdo({"lock", "status", "probe", "--backend", url}).code != 0) {
    ASSERT_LT(Clock::now(), up_by) << "ordo serve did not come up";
    std::this_thread::sleep_for(50ms);
  }
  auto wrapper = StartOrdo(Cat({"run", "--backend", url, "--lock", "remote", "--ttl", "3s", "--"},
                   kStubbornJob));
  const pid_t job = std::stoi(wrapper->ReadLine());
  server->Kill(SIGSTOP);
  const auto stopped_at = Clock::now();
  ASSERT_TRUE(GoneWithin(job, 5s));
  EXPECT_LT(Clock::now() - stopped_at, 3s) << "the job outlived its lease";
  server->Kill(SIGCONT);
  EXPECT_EQ(ExitCode(wrapper->Wait()), 75);
  server->Kill(SIGTERM);
  EXPECT_EQ(ExitCode(server->Wait()), 0);
}

}  // namespace
}  // namespace ordo::testing
