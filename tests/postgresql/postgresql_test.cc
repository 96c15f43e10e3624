// What the conformance suite cannot say about the PostgreSQL backend: crashes of holders, a
// database crash and restart, NOTIFY wake-ups, migrations, URL and connection errors, timeouts.
// Real server (tools/harness/pg_cluster.h), real processes (ordo-test-worker).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <algorithm>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "ordo/ordo.h"
#include "pg_cluster.h"
#include "pg_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using SteadyClock = std::chrono::steady_clock;

std::string WorkerPath() { return ORDO_TEST_WORKER; }

std::unique_ptr<Locker> MustOpen(const std::string& url) {
  auto opened = Open(url);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(*opened) : nullptr;
}

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms,
                      std::chrono::milliseconds ttl = 30s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}

std::uint64_t ParseToken(const std::string& line) {
  EXPECT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
  return line.rfind("token ", 0) == 0 ? std::stoull(line.substr(6)) : 0;
}

std::chrono::milliseconds Since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t);
}

// ---------------------------------------------------------------------------------------------
// Holder crashes.

TEST(PostgresqlTest, KilledForUpdateHolderFreesTheLockAtOnce) {
  const std::string url = SharedPgCluster().Url("for-update");
  const std::string name = UniqueName("fu-kill");
  // A 60 s ttl: if the lock came free within seconds, it was not by expiry.
  Child holder({WorkerPath(), "hold", url, name, "exclusive", "60000"});
  const std::uint64_t child_token = ParseToken(holder.ReadLine());
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  EXPECT_EQ(locker->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld);
  holder.Kill(SIGKILL);
  holder.Wait();
  const auto start = SteadyClock::now();
  auto lease = locker->Acquire(Exclusive(name, 20s));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_LT(Since(start), 5s) << "the dead holder's connection must free the row lock at once";
  EXPECT_GT(lease->token, child_token);
  // The crashed holder's row is still in the table, but it is not live: strict mode refuses it.
  const std::string key = UniqueName("fu-kill-key");
  auto late = locker->fenced().Write(key, "late", child_token, name);
  EXPECT_EQ(late.status().code(), StatusCode::kStaleToken) << late.status().ToString();
  ASSERT_TRUE(locker->fenced().Write(key, "mine", lease->token, name).ok());
  auto state = locker->Describe(name);
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, lease->token);
  ASSERT_TRUE(locker->Release(*lease).ok());
}

// A for-update permit is a row lock held by its holder's connection: a killed holder's slot is
// free for the next try-lock as soon as the server has seen the connection close (a bounded
// poll of the server's state, not a wait for any TTL: the holder asked for 60 s).
TEST(PostgresqlTest, KilledForUpdatePermitHolderFreesItsSlotAtOnce) {
  const std::string url = SharedPgCluster().Url("for-update");
  const std::string name = UniqueName("fu-permit-kill");
  Child first({WorkerPath(), "hold", url, name, "permit/2", "60000"});
  const std::string line_first = first.ReadLine();
  ASSERT_EQ(line_first, "token " + std::to_string(ParseToken(line_first)) + " slot 0");
  Child second({WorkerPath(), "hold", url, name, "permit/2", "60000"});
  const std::string line_second = second.ReadLine();
  const std::uint64_t second_token = ParseToken(line_second);
  EXPECT_NE(line_second.find(" slot 1"), std::string::npos) << line_second;
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  LockRequest permit = Exclusive(name);
  permit.limit = 2;
  EXPECT_EQ(locker->Acquire(permit).status().code(), StatusCode::kLockHeld);
  first.Kill(SIGKILL);
  first.Wait();
  const auto start = SteadyClock::now();
  Result<Lease> lease = LeaseLostError("not tried");
  while (Since(start) < 5s) {
    lease = locker->Acquire(permit);  // wait 0: a try-lock, never a wait for the TTL
    if (lease.ok() || lease.status().code() != StatusCode::kLockHeld) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->slot, 0u) << "the killed holder's slot, the lowest free one";
  EXPECT_GT(lease->token, second_token);
  auto state = locker->Describe(name);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->limit, 2u);
  ASSERT_EQ(state->holders.size(), 2u) << "the dead holder's row is not live";
  // Strict fencing on a permit: the live permit's token is admitted, the dead one's is not.
  const std::string key = UniqueName("fu-permit-key");
  EXPECT_TRUE(locker->fenced().Write(key + ".slot-0", "x", lease->token, name).ok());
  EXPECT_EQ(locker->fenced()
                .Write(key + ".slot-1", "x", ParseToken(line_first), name)
                .status()
                .code(),
            StatusCode::kStaleToken);
  second.WriteLine("release");
  EXPECT_EQ(second.ReadLine(), "released");
  ASSERT_TRUE(locker->Release(*lease).ok());
}

// A full for-update semaphore never queues in the database (SKIP LOCKED): the waiting permit
// sleeps on NOTIFY, and a release by another Locker wakes it long before the holders' reported
// expiry (60 s), its only other wake-up.
TEST(PostgresqlTest, WaitingForUpdatePermitIsWokenByARelease) {
  const std::string url = SharedPgCluster().Url("for-update");
  auto holders = MustOpen(url);
  auto waiter = MustOpen(url);
  ASSERT_NE(holders, nullptr);
  ASSERT_NE(waiter, nullptr);
  LockRequest permit = Exclusive(UniqueName("fu-permit-wake"), 0ms, 60s);
  permit.limit = 2;
  auto a = holders->Acquire(permit);
  auto b = holders->Acquire(permit);
  ASSERT_TRUE(a.ok() && b.ok());
  LockRequest waiting = permit;
  waiting.wait = 30s;
  std::promise<Result<Lease>> got;
  auto future = got.get_future();
  std::thread t([&] { got.set_value(waiter->Acquire(waiting)); });
  // Not granted while both permits are held.
  EXPECT_EQ(future.wait_for(500ms), std::future_status::timeout);
  const auto start = SteadyClock::now();
  ASSERT_TRUE(holders->Release(*b).ok());
  const bool woken = future.wait_for(5s) == std::future_status::ready;
  const auto after = Since(start);
  t.join();
  EXPECT_TRUE(woken);
  EXPECT_LT(after, 5s);
  Result<Lease> granted = future.get();
  ASSERT_TRUE(granted.ok()) << granted.status().ToString();
  EXPECT_EQ(granted->slot, b->slot) << "the released slot";
  EXPECT_GT(granted->token, b->token);
  ASSERT_TRUE(waiter->Release(*granted).ok());
  ASSERT_TRUE(holders->Release(*a).ok());
}

TEST(PostgresqlTest, ForUpdateHolderInAnotherProcessIsLiveForStrictMode) {
  const std::string url = SharedPgCluster().Url("for-update");
  const std::string name = UniqueName("fu-strict");
  Child holder({WorkerPath(), "hold", url, name, "exclusive", "60000"});
  const std::uint64_t token = ParseToken(holder.ReadLine());
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  auto w = locker->fenced().Write(UniqueName("fu-strict-key"), "x", token, name);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  holder.WriteLine("release");
  EXPECT_EQ(holder.ReadLine(), "released");
  EXPECT_EQ(locker->fenced().Write(UniqueName("fu-strict-key"), "x", token, name).status().code(),
            StatusCode::kStaleToken);
}

TEST(PostgresqlTest, KilledCasHolderIsFreedOnlyWhenItsTtlRunsOut) {
  const std::string url = SharedPgCluster().Url("cas");
  const std::string name = UniqueName("cas-kill");
  constexpr auto kTtl = 2000ms;
  Child holder({WorkerPath(), "hold", url, name, "exclusive", std::to_string(kTtl.count())});
  const std::uint64_t child_token = ParseToken(holder.ReadLine());
  const auto acquired = SteadyClock::now();
  holder.Kill(SIGKILL);
  holder.Wait();
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  EXPECT_EQ(locker->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld)
      << "a lease outlives its holder's process until the TTL";
  auto lease = locker->Acquire(Exclusive(name, 20s));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const auto took = Since(acquired);
  EXPECT_GE(took, kTtl - 500ms);
  // The waiter sleeps until the lease's expiry (database clock), not in coarse polling steps.
  EXPECT_LT(took, kTtl + 2s);
  EXPECT_GT(lease->token, child_token);
  ASSERT_TRUE(locker->Release(*lease).ok());
}

// ---------------------------------------------------------------------------------------------
// Database crash and restart (a private cluster: the others keep running undisturbed).

TEST(PostgresqlTest, DatabaseCrashGivesUnavailableThenTokensKeepGrowing) {
  PgCluster pg;
  auto cas = MustOpen(pg.Url("cas"));
  auto fu = MustOpen(pg.Url("for-update"));
  ASSERT_NE(cas, nullptr);
  ASSERT_NE(fu, nullptr);

  // A writer hammers one lock through the crash; it must only ever see success or
  // kUnavailable-like outcomes, and tokens that grow.
  std::atomic<bool> stop{false};
  std::atomic<int> phase{0};  // 0 before the crash, 1 down, 2 restarted
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, int>> issued;  // token, phase its acquire started in
  std::map<StatusCode, int> codes;
  auto issued_count = [&](int in_phase) {
    std::lock_guard<std::mutex> lock(mu);
    return std::count_if(issued.begin(), issued.end(),
                         [&](const auto& p) { return p.second == in_phase; });
  };
  std::thread hammer([&] {
    while (!stop) {
      const int started = phase.load();
      auto lease = cas->Acquire(Exclusive("hammer", 0ms, 300ms));
      std::lock_guard<std::mutex> lock(mu);
      ++codes[lease.status().code()];
      if (!lease.ok()) continue;
      issued.emplace_back(lease->token, started);
      ++codes[cas->Release(*lease).code()];
    }
  });

  auto held = cas->Acquire(Exclusive("held-across", 0ms, 60s));
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  auto fu_held = fu->Acquire(Exclusive("fu-across"));
  ASSERT_TRUE(fu_held.ok()) << fu_held.status().ToString();
  for (auto until = SteadyClock::now() + 20s; issued_count(0) < 5 && SteadyClock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }

  phase = 1;
  pg.StopImmediate();
  EXPECT_EQ(cas->Ping().code(), StatusCode::kUnavailable);
  auto refused = cas->Acquire(Exclusive(UniqueName("while-down")));
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), AllOf(HasSubstr("****"), Not(HasSubstr(pg.password()))));
  EXPECT_EQ(cas->Describe("held-across").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cas->fenced().Write("k", "v", 1).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fu->Acquire(Exclusive("fu-other")).status().code(), StatusCode::kUnavailable);

  pg.Start();
  phase = 2;
  // Connections the crash killed are replaced transparently: the first call after the restart
  // already succeeds.
  ASSERT_TRUE(cas->Ping().ok()) << cas->Ping().ToString();
  // The lease committed before the crash is still there (durable), and still excludes.
  EXPECT_EQ(cas->Acquire(Exclusive("held-across")).status().code(), StatusCode::kLockHeld);
  ASSERT_TRUE(cas->Release(*held).ok());
  // The for-update holder's transaction died with the server: its lock is gone.
  ExpectForUpdateHolderLost(*fu, *fu_held);

  for (auto until = SteadyClock::now() + 20s; issued_count(2) < 5 && SteadyClock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  hammer.join();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(std::count_if(issued.begin(), issued.end(), [](const auto& p) { return p.second == 2; }),
            5)
      << "the hammer never recovered after the restart";
  std::uint64_t before_max = std::max(held->token, fu_held->token);
  for (const auto& [token, started] : issued) {
    if (started != 2) before_max = std::max(before_max, token);
  }
  std::uint64_t prev = 0;
  for (const auto& [token, started] : issued) {
    EXPECT_GT(token, prev) << "tokens of one lock only grow";
    prev = token;
    if (started == 2) {
      EXPECT_GT(token, before_max) << "a token issued after the restart must be larger";
    }
  }
  for (const auto& [code, n] : codes) {
    EXPECT_TRUE(code == StatusCode::kOk || code == StatusCode::kUnavailable ||
                code == StatusCode::kLockHeld || code == StatusCode::kLeaseLost)
        << StatusCodeName(code) << " x" << n;
  }
  EXPECT_GT(codes[StatusCode::kUnavailable], 0) << "the hammer never saw the outage";
}

// ---------------------------------------------------------------------------------------------
// Waiters are woken by NOTIFY.

// Bounded poll (15 s) of what the database shows through `admin` until `done(tx)` is true.
template <typename Fn>
bool PollDb(pqxx::connection& admin, Fn&& done) {
  for (auto until = SteadyClock::now() + 15s; SteadyClock::now() < until;) {
    pqxx::nontransaction tx(admin);
    if (done(tx)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// The waiter key of `name` (statements.h: kWaitersClass, hashtext(name)) as pg_locks shows it.
constexpr const char* kWaiterKey =
    "l.locktype = 'advisory' AND l.classid::bigint = 1869767791"
    " AND l.objid::bigint = (hashtext($2::text)::bigint & 4294967295) AND l.objsubid = 2";

// Bounded wait until a session of application `app` holds the waiter key of `name` and, after
// that, a session of the app ran a statement on ordo.holders and went idle (the try that
// precedes the Wait).
bool WaitUntilRegistered(pqxx::connection& admin, const std::string& app, const std::string& name) {
  return PollDb(admin, [&](pqxx::nontransaction& tx) {
    auto r = tx.exec_params(
        std::string("SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    "        WHERE a.application_name = $1 AND l.granted AND ") +
            kWaiterKey + "),"
            " (SELECT count(*) FROM pg_stat_activity a WHERE a.application_name = $1"
            "   AND a.state = 'idle' AND a.query LIKE '%ordo.holders%'"
            "   AND a.state_change > (SELECT max(s.state_change) FROM pg_stat_activity s"
            "     WHERE s.application_name = $1 AND s.query LIKE '%advisory_lock_shared%'))",
        app, name);
    return r[0][0].as<int>() > 0 && r[0][1].as<int>() > 0;
  });
}


class NotifyTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A holder Locker with a 60 s lease on a fresh name, and a waiter Locker whose connections
  // carry application_name app_. With that ttl and a 30 s wait no expiry is involved: a waiter
  // that only re-checked on a timer would wait until the ttl.
  void Hold(const std::string& tag) {
    app_ = UniqueName("ordo-" + tag);
    holder_ = MustOpen(pg_.Url(GetParam()));
    waiter_ = MustOpen(pg_.UrlFor("ordo_test", "strategy=" + GetParam() +
                                                   "&application_name=" + app_));
    ASSERT_NE(holder_, nullptr);
    ASSERT_NE(waiter_, nullptr);
    name_ = UniqueName(tag);
    auto held = holder_->Acquire(Exclusive(name_, 0ms, 60s));
    ASSERT_TRUE(held.ok()) << held.status().ToString();
    held_ = *held;
  }

  void StartWaiter() {
    thread_ = std::thread([&] {
      granted_ = waiter_->Acquire(Exclusive(name_, 30s));
      granted_at_ = SteadyClock::now();
    });
  }

  // Joins the waiter, which must have been granted within `bound` of `released_at`.
  void ExpectWokenWithin(SteadyClock::time_point released_at, std::chrono::milliseconds bound,
                         const std::string& why) {
    thread_.join();
    ASSERT_TRUE(granted_.ok()) << granted_.status().ToString();
    EXPECT_LT(granted_at_ - released_at, bound) << why;
    EXPECT_GT(granted_->token, held_.token);
    ASSERT_TRUE(waiter_->Release(*granted_).ok());
  }

  void TearDown() override {
    if (thread_.joinable()) thread_.join();
  }

  PgCluster& pg_ = SharedPgCluster();
  std::string app_;
  std::string name_;
  std::unique_ptr<Locker> holder_;
  std::unique_ptr<Locker> waiter_;
  Lease held_;
  std::thread thread_;
  Result<Lease> granted_ = InternalError("not run");
  SteadyClock::time_point granted_at_;
};

TEST_P(NotifyTest, WaiterIsGrantedPromptlyAfterReleaseFromAnotherLocker) {
  Hold("notify");
  StartWaiter();
  // Wait (bounded) until the waiter is registered (listening, with its waiter key held) and
  // has been refused after that: then it is asleep. From here on only a notification (or its
  // 30 s deadline) can wake it; a notification that beats it to sleep is not lost (Listener's
  // ticket protocol).
  pqxx::connection admin(pg_.ConnInfo());
  EXPECT_TRUE(WaitUntilRegistered(admin, app_, name_)) << "the waiter never started waiting";
  const auto released_at = SteadyClock::now();
  ASSERT_TRUE(holder_->Release(held_).ok());
  ExpectWokenWithin(released_at, 1s, "the release's NOTIFY must wake the waiter");
}

// A release NOTIFYs only when a waiter or watcher is registered for the name.
TEST_P(NotifyTest, ReleaseNotifiesOnlyWhenSomeoneWaitsOrWatches) {
  PgCluster& pg = SharedPgCluster();
  auto locker = MustOpen(pg.Url(GetParam()));
  ASSERT_NE(locker, nullptr);
  const std::string name = UniqueName("quiet");
  pqxx::connection listening(pg.ConnInfo());
  pqxx::connection other(pg.ConnInfo());
  std::vector<std::string> got;
  struct Receiver final : pqxx::notification_receiver {
    Receiver(pqxx::connection& c, std::vector<std::string>& sink)
        : pqxx::notification_receiver(c, "ordo_lock"), out(sink) {}
    void operator()(const std::string& payload, int) override { out.push_back(payload); }
    std::vector<std::string>& out;
  } receiver(listening, got);
  // Everything sent before `marker` has arrived once the marker has: notifications are
  // delivered in commit order.
  auto until_marker = [&](const std::string& marker) {
    {
      pqxx::nontransaction tx(other);
      tx.exec_params("SELECT pg_notify('ordo_lock', $1::text)", marker);
    }
    const auto deadline = SteadyClock::now() + 10s;
    while (std::find(got.begin(), got.end(), marker) == got.end() &&
           SteadyClock::now() < deadline) {
      listening.await_notification(1, 0);
    }
    std::vector<std::string> before(got.begin(), std::find(got.begin(), got.end(), marker));
    got.clear();
    return before;
  };
  auto lease = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(locker->Release(*lease).ok());
  EXPECT_TRUE(until_marker(name + "-marker-1").empty()) << "nobody waits: no NOTIFY";

  // A watcher registers interest (asynchronously: wait until its key is held).
  std::atomic<int> changes{0};
  auto watch = locker->Watch(name, [&] { ++changes; });
  ASSERT_NE(watch, nullptr);
  pqxx::connection admin(pg.ConnInfo());
  auto key_sessions = [&](pqxx::nontransaction& tx) {
    return tx.exec_params(std::string("SELECT count(*) FROM pg_locks l WHERE l.granted AND "
                                      "'' = $1::text AND ") + kWaiterKey,
                          "", name)[0][0].as<int>();
  };
  const bool registered =
      PollDb(admin, [&](pqxx::nontransaction& tx) { return key_sessions(tx) > 0; });
  ASSERT_TRUE(registered) << "the watcher's registration never appeared";
  lease = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(locker->Release(*lease).ok());
  EXPECT_EQ(until_marker(name + "-marker-2"), std::vector<std::string>{name});
  for (auto until = SteadyClock::now() + 10s; changes.load() == 0 && SteadyClock::now() < until;) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GT(changes.load(), 0) << "the watcher was not called";

  // Once the watcher is gone, its registration is dropped and releases are quiet again.
  watch.reset();
  const bool dropped =
      PollDb(admin, [&](pqxx::nontransaction& tx) { return key_sessions(tx) == 0; });
  ASSERT_TRUE(dropped);
  lease = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(locker->Release(*lease).ok());
  EXPECT_TRUE(until_marker(name + "-marker-3").empty());
}

// The race the registration protocol closes: a release whose "anyone waiting?" check ran before
// a waiter registered must not leave that waiter asleep. Here the release is held open in the
// middle (its waiter-key check done, nobody registered, not committed yet) while a waiter
// arrives: its registration blocks until the release commits, and its next try, after the
// registration, finds the lock free — well before its ttl or its deadline.
TEST_P(NotifyTest, WaiterRegisteringDuringAQuietReleaseIsNotMissed) {
  Hold("race");
  // The release, by hand, in an open transaction: the waiter-key check first, as the release
  // statements do (nobody waits yet: it wins, so this release would not NOTIFY).
  pqxx::connection releasing(pg_.ConnInfo());
  pqxx::work release(releasing);
  ASSERT_TRUE(release.exec_params("SELECT pg_try_advisory_xact_lock(1869767791, hashtext($1))",
                                  name_)[0][0].as<bool>());
  StartWaiter();
  // The waiter was refused and its registration now queues behind the open release.
  pqxx::connection admin(pg_.ConnInfo());
  EXPECT_TRUE(PollDb(admin, [&](pqxx::nontransaction& tx) {
    return tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
                          " AND wait_event_type = 'Lock' AND query LIKE '%advisory_lock_shared%'",
                          app_)[0][0].as<int>() > 0;
  })) << "the waiter's registration did not wait for the open release";
  release.exec_params("DELETE FROM ordo.holders WHERE name = $1 AND token = $2", name_,
                      static_cast<std::int64_t>(held_.token));
  release.exec_params("UPDATE ordo.locks SET version = version + 1 WHERE name = $1", name_);
  const auto released_at = SteadyClock::now();
  release.commit();
  ExpectWokenWithin(released_at, 2s, "the waiter slept through the release");
}

// Many waiters arriving at random moments around releases (no coordination at all): each one
// is granted long before the 60 s ttl of the lease it waited for.
TEST_P(NotifyTest, WaitersArrivingAroundReleasesAreAllWoken) {
  PgCluster& pg = SharedPgCluster();
  auto holder = MustOpen(pg.Url(GetParam()));
  auto waiter = MustOpen(pg.Url(GetParam()));
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(waiter, nullptr);
  const std::string name = UniqueName("arrivals");
  for (int i = 0; i < 20; ++i) {
    auto held = holder->Acquire(Exclusive(name, 0ms, 60s));
    ASSERT_TRUE(held.ok()) << held.status().ToString();
    Result<Lease> granted = InternalError("not run");
    std::thread t([&] { granted = waiter->Acquire(Exclusive(name, 20s, 60s)); });
    // 0 to ~20 ms: the release lands before, during or after the waiter's registration.
    std::this_thread::sleep_for(std::chrono::microseconds(1000 * (i % 7) * (i % 3)));
    const auto released_at = SteadyClock::now();
    ASSERT_TRUE(holder->Release(*held).ok());
    t.join();
    ASSERT_TRUE(granted.ok()) << "round " << i << ": " << granted.status().ToString();
    EXPECT_LT(Since(released_at), 5s) << "round " << i << ": the waiter slept through it";
    ASSERT_TRUE(waiter->Release(*granted).ok());
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, NotifyTest, ::testing::Values("cas", "version"),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

// ---------------------------------------------------------------------------------------------
// Migrations.

TEST(PostgresqlTest, ConcurrentMigrationsFromSeveralProcesses) {
  PgCluster& pg = SharedPgCluster();
  const std::string db = "migr_" + std::to_string(getpid()) + "_" +
                         std::to_string(FreeLoopbackPort());
  pg.CreateDatabase(db);
  const std::string url = pg.UrlFor(db, "strategy=cas");
  // Every worker opens the brand-new database at once (each Open migrates), then races one CAS.
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < 6; ++i) {
    workers.push_back(std::make_unique<Child>(std::vector<std::string>{
        WorkerPath(), "cas", url, "first", "0", "\"w" + std::to_string(i) + "\""}));
  }
  int won = 0;
  int lost = 0;
  for (auto& w : workers) {
    const std::string line = w->ReadLine();
    won += line.rfind("won", 0) == 0;
    lost += line == "lost version_mismatch";
    const int status = w->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(lost, 5);
  EXPECT_EQ(pg.Psql("SELECT count(*) = max(version) FROM ordo.schema_migrations", db), "t");
}

// A database at schema version 3 (before the for-update permit rows) is migrated by the next
// Open, and opening a migrated database again changes nothing.
TEST(PostgresqlTest, OlderSchemaIsMigratedAndMigratingTwiceIsANoOp) {
  PgCluster& pg = SharedPgCluster();
  const std::string db = "older_" + std::to_string(getpid());
  pg.CreateDatabase(db);
  const std::string url = pg.UrlFor(db, "strategy=for-update");
  ASSERT_NE(MustOpen(url), nullptr);
  const std::string latest = pg.Psql("SELECT max(version) FROM ordo.schema_migrations", db);
  // Back to version 3: what an ordo of that version left behind.
  pg.Psql("DROP TABLE ordo.permit_rows; DELETE FROM ordo.schema_migrations WHERE version >= 4",
          db);
  EXPECT_EQ(pg.Psql("SELECT to_regclass('ordo.permit_rows') IS NULL", db), "t");
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  EXPECT_EQ(pg.Psql("SELECT max(version) FROM ordo.schema_migrations", db), latest);
  EXPECT_EQ(pg.Psql("SELECT to_regclass('ordo.permit_rows') IS NOT NULL", db), "t");
  LockRequest permit = Exclusive("migrated");
  permit.limit = 3;
  auto lease = locker->Acquire(permit);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->slot, 0u);
  ASSERT_TRUE(locker->Release(*lease).ok());
  const std::string rows = pg.Psql("SELECT count(*) FROM ordo.schema_migrations", db);
  ASSERT_NE(MustOpen(url), nullptr);
  EXPECT_EQ(pg.Psql("SELECT count(*) FROM ordo.schema_migrations", db), rows);
  EXPECT_EQ(pg.Psql("SELECT count(*) = max(version) FROM ordo.schema_migrations", db), "t");
}

TEST(PostgresqlTest, NewerSchemaIsRefusedNeverDowngraded) {
  PgCluster& pg = SharedPgCluster();
  const std::string db = "newer_" + std::to_string(getpid());
  pg.CreateDatabase(db);
  const std::string url = pg.UrlFor(db, "");
  ASSERT_NE(MustOpen(url), nullptr);
  pg.Psql("INSERT INTO ordo.schema_migrations (version, name) VALUES (999, '0999_future.sql')",
          db);
  auto opened = Open(url);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(opened.status().message(), AllOf(HasSubstr("999"), HasSubstr("newer"),
                                               HasSubstr("****"), Not(HasSubstr(pg.password()))));
  EXPECT_EQ(pg.Psql("SELECT max(version) FROM ordo.schema_migrations", db), "999");
  EXPECT_EQ(pg.Psql("SELECT count(*) FROM ordo.locks", db), "0") << "the tables are intact";
}

// ---------------------------------------------------------------------------------------------
// URLs and connection errors.

TEST(PostgresqlTest, WrongPasswordIsAClearMaskedError) {
  PgCluster& pg = SharedPgCluster();
  const std::string url = "postgresql://ordo:wrong-secret-pw@127.0.0.1:" +
                          std::to_string(pg.port()) + "/ordo_test";
  auto opened = Open(url);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << opened.status().ToString();
  EXPECT_THAT(opened.status().message(),
              AllOf(HasSubstr("password authentication failed"), HasSubstr("ordo:****@"),
                    Not(HasSubstr("wrong-secret-pw"))));
}

TEST(PostgresqlTest, UnreachablePortIsUnavailableAndMasked) {
  const int port = FreeLoopbackPort();  // nothing listens there
  const auto start = SteadyClock::now();
  auto opened = Open("postgresql://ordo:hush-hush-pw@127.0.0.1:" + std::to_string(port) + "/db");
  ASSERT_FALSE(opened.ok());
  EXPECT_LT(Since(start), 5s);
  EXPECT_EQ(opened.status().code(), StatusCode::kUnavailable) << opened.status().ToString();
  EXPECT_THAT(opened.status().message(),
              AllOf(HasSubstr(std::to_string(port)), HasSubstr("****"),
                    Not(HasSubstr("hush-hush-pw"))));
}

TEST(PostgresqlTest, BadUrlsAreInvalidArgumentWithMaskedMessages) {
  const std::string base = "postgresql://u:sekrit-pw@127.0.0.1:5432";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"postgresql:ordo", "//"},
      {base, "no database"},
      {base + "/", "no database"},
      {base + "/a/b", "contains '/'"},
      {base + "/db?strategy=optimistic", "unknown strategy 'optimistic'"},
      {base + "/db?bogus=1", "unknown query parameter 'bogus'"},
      {base + "/db?pool_size=0", "pool_size"},
      {base + "/db?pool_size=lots", "pool_size"},
      {base + "/db?statement_timeout=soon", "statement_timeout"},
      {base + "/db?sslmode=sometimes", "sslmode"},
      {base + "/db?connect_timeout=5s", "connect_timeout"},
      {base + "/db?target_session_attrs=writable", "target_session_attrs 'writable'"},
      {base + "/db?gssencmode=maybe", "gssencmode"},
      {base + "/db?prepare=maybe", "prepare 'maybe'"},
      {base + "/db?replication=1", "unknown query parameter 'replication'"},
      {base + "/db?bogus=1&also=2", "unknown query parameters 'also', 'bogus'"},
      {base + "/db?host=h2", "both in the authority"},
      {"postgresql://u:sekrit-pw@h1:5432,h2:x/db", "bad port 'x'"},
      {"postgresql://u:sekrit-pw@h1:5432,,h2/db", "empty entry"},
      {"postgresql://u:sekrit-pw@::1:5432/db", "IPv6 address in brackets"},
      {"postgresql://u@h/db?password=sekrit-pw&pool_size=0", "pool_size"},
  };
  for (const auto& [url, says] : cases) {
    auto opened = Open(url);
    ASSERT_FALSE(opened.ok()) << url;
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(opened.status().message(), AllOf(HasSubstr(says), Not(HasSubstr("sekrit-pw"))))
        << url;
  }
}

TEST(PostgresqlTest, PostgresSchemeAliasAndLibpqParametersWork) {
  PgCluster& pg = SharedPgCluster();
  std::string url = pg.UrlFor("ordo_test",
                              "strategy=version&sslmode=disable&connect_timeout=3&"
                              "application_name=ordo-alias&pool_size=2&statement_timeout=5s");
  url.replace(0, std::string("postgresql").size(), "postgres");
  auto locker = MustOpen(url);
  ASSERT_NE(locker, nullptr);
  auto lease = locker->Acquire(Exclusive(UniqueName("alias")));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(locker->Release(*lease).ok());
  EXPECT_TRUE(locker->traits().expires_by_ttl);
}

// libpq's multi-host form: the first host has nothing listening, so libpq moves on to the second;
// target_session_attrs=read-write makes it pick a primary.
TEST(PostgresqlTest, MultiHostUrlWithAPortPerHostConnects) {
  PgCluster& pg = SharedPgCluster();
  const int dead = FreeLoopbackPort();
  for (const std::string& hosts :
       {"127.0.0.1:" + std::to_string(dead) + ",127.0.0.1:" + std::to_string(pg.port()),
        "[::1]:" + std::to_string(dead) + ",127.0.0.1:" + std::to_string(pg.port())}) {
    const std::string url = "postgresql://ordo:" + pg.password() + "@" + hosts +
                            "/ordo_test?strategy=cas&target_session_attrs=read-write&"
                            "connect_timeout=10&application_name=ordo-multihost";
    auto locker = MustOpen(url);
    ASSERT_NE(locker, nullptr) << hosts;
    auto lease = locker->Acquire(Exclusive(UniqueName("multihost")));
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    ASSERT_TRUE(locker->Release(*lease).ok());
    EXPECT_EQ(pg.Psql("SELECT count(*) > 0 FROM pg_stat_activity "
                      "WHERE application_name = 'ordo-multihost'"),
              "t")
        << "libpq parameters pass through";
  }
}

// Values only libpq itself knows to be wrong (host and port lists that do not match) are
// still a bad URL, not an unreachable database.
TEST(PostgresqlTest, LibpqRefusalsOfTheUrlAreInvalidArgument) {
  auto opened = Open("postgresql://u:sekrit-pw@127.0.0.1:1/db?"
                     "ssl_min_protocol_version=TLSv9");
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << opened.status().ToString();
  EXPECT_THAT(opened.status().message(), Not(HasSubstr("sekrit-pw")));
}

// The README's remedy after promoting an asynchronous standby: move every token counter past
// what the lost commits could have issued. Tokens issued afterwards are above the step, and a
// write carrying a token from before is refused once a newer one wrote.
TEST(PostgresqlTest, TokenEpochBumpAfterAnAsynchronousPromotion) {
  PgCluster& pg = SharedPgCluster();
  auto locker = MustOpen(pg.Url("cas"));
  ASSERT_NE(locker, nullptr);
  const std::string name = UniqueName("epoch");
  auto before = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_TRUE(locker->Release(*before).ok());
  pg.Psql("UPDATE ordo.locks SET last_token = last_token + 1000000, version = version + 1");
  auto after = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GT(after->token, before->token + 1000000);
  const std::string key = UniqueName("epoch-key");
  ASSERT_TRUE(locker->fenced().Write(key, "new", after->token, name).ok());
  EXPECT_EQ(locker->fenced().Write(key, "old", before->token).status().code(),
            StatusCode::kStaleToken);
  ASSERT_TRUE(locker->Release(*after).ok());
}

// ---------------------------------------------------------------------------------------------
// Prepared statements.

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The server logs every statement of this database: a named "execute ordo_…" is a prepared
// statement, "execute <unnamed>" an unprepared one.
TEST(PostgresqlTest, StatementsArePreparedOncePerConnectionUnlessPrepareIsOff) {
  PgCluster& pg = SharedPgCluster();
  const std::string db = "prepared_" + std::to_string(getpid());
  pg.CreateDatabase(db);
  pg.Psql("ALTER DATABASE " + db + " SET log_statement = 'all'");
  const auto count = [&](std::string_view needle) {
    const std::string log = ReadFileOrEmpty(pg.dir() + "/server.log");
    std::size_t n = 0;
    for (auto pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
      ++n;
    }
    return n;
  };
  const auto pairs = [&](const std::string& query) {
    auto locker = MustOpen(pg.UrlFor(db, query));
    ASSERT_NE(locker, nullptr);
    const std::string name = UniqueName("prepared");
    for (int i = 0; i < 5; ++i) {
      auto lease = locker->Acquire(Exclusive(name));
      ASSERT_TRUE(lease.ok()) << lease.status().ToString();
      ASSERT_TRUE(locker->Release(*lease).ok());
    }
  };
  const std::size_t named_before = count("execute ordo_");
  pairs("strategy=cas&pool_size=1");
  const std::size_t named = count("execute ordo_") - named_before;
  EXPECT_GE(named, 10u) << "5 acquires and 5 releases, each a prepared statement";

  const std::size_t unnamed_before = count("execute <unnamed>");
  const std::size_t named_before_off = count("execute ordo_");
  pairs("strategy=cas&pool_size=1&prepare=off");
  EXPECT_EQ(count("execute ordo_"), named_before_off) << "prepare=off prepares nothing";
  EXPECT_GE(count("execute <unnamed>") - unnamed_before, 10u);
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

TEST(PostgresqlTest, StatementTimeoutIsInEffect) {
  PgCluster& pg = SharedPgCluster();
  auto locker = MustOpen(pg.UrlFor("ordo_test", "strategy=cas&statement_timeout=300ms"));
  ASSERT_NE(locker, nullptr);
  const std::string name = UniqueName("stmt-timeout");
  auto first = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(locker->Release(*first).ok());
  // Another session sits on the lock row: the acquire's statement queues behind its row lock
  // until statement_timeout cancels it.
  pqxx::connection admin(pg.ConnInfo());
  pqxx::work blocker(admin);
  blocker.exec_params("SELECT 1 FROM ordo.locks WHERE name = $1 FOR UPDATE", name);
  const auto start = SteadyClock::now();
  auto blocked = locker->Acquire(Exclusive(name));
  const auto took = Since(start);
  EXPECT_EQ(blocked.status().code(), StatusCode::kUnavailable) << blocked.status().ToString();
  EXPECT_THAT(blocked.status().message(), HasSubstr("statement timeout"));
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
  blocker.abort();
  auto after = locker->Acquire(Exclusive(name));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_TRUE(locker->Release(*after).ok());
}

TEST(PostgresqlTest, ForUpdateWaitIsBoundedByLockTimeout) {
  const std::string url = SharedPgCluster().Url("for-update");
  auto a = MustOpen(url);
  auto b = MustOpen(url);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::string name = UniqueName("fu-wait");
  auto held = a->Acquire(Exclusive(name));
  ASSERT_TRUE(held.ok());
  const auto start = SteadyClock::now();
  auto waited = b->Acquire(Exclusive(name, 500ms));
  EXPECT_EQ(waited.status().code(), StatusCode::kLockHeld) << waited.status().ToString();
  EXPECT_THAT(waited.status().message(), HasSubstr(held->owner));
  EXPECT_GE(Since(start), 450ms);
  EXPECT_LT(Since(start), 5s);
  ASSERT_TRUE(a->Release(*held).ok());
}

}  // namespace
}  // namespace ordo::testing
