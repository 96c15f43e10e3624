// Failover of the PostgreSQL backend: a primary with a synchronous streaming standby
// (throwaway clusters on loopback, tools/harness/pg_cluster.h), a multi-host URL with
// target_session_attrs=read-write, a primary crash (pg_ctl stop -m immediate) and promotion of
// the standby. ordo must reconnect by itself, answer kUnavailable while no primary is
// reachable (never a wrong answer), tell a for-update holder its lease is lost, and keep tokens
// growing across the failover.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
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
using SteadyClock = std::chrono::steady_clock;

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms,
                      std::chrono::milliseconds ttl = 30s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}

std::unique_ptr<Locker> MustOpen(const std::string& url) {
  auto opened = Open(url);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(*opened) : nullptr;
}

double Ms(SteadyClock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Call {
  SteadyClock::time_point at;  // when the acquire returned
  StatusCode code;
  std::uint64_t token = 0;
};

TEST(PostgresqlFailoverTest, PromotedSynchronousStandbyTakesOverAndTokensKeepGrowing) {
  PgCluster primary;
  auto standby = PgCluster::StandbyOf(primary, "ordo_standby");
  primary.MakeSynchronous("ordo_standby");
  const std::string hosts = "127.0.0.1:" + std::to_string(primary.port()) + ",127.0.0.1:" +
                            std::to_string(standby->port());
  const auto url = [&](std::string_view strategy) {
    return "postgresql://ordo:" + primary.password() + "@" + hosts + "/ordo_test?strategy=" +
           std::string(strategy) +
           "&target_session_attrs=read-write&connect_timeout=5&statement_timeout=5s";
  };
  {
    // The standby alone (no target_session_attrs): not ready, and a write is kUnavailable,
    // never an internal error.
    auto on_standby = Open("postgresql://ordo:" + primary.password() + "@127.0.0.1:" +
                           std::to_string(standby->port()) + "/ordo_test?strategy=cas");
    if (on_standby.ok()) {
      const Status ping = (*on_standby)->Ping();
      EXPECT_EQ(ping.code(), StatusCode::kUnavailable) << ping.ToString();
      EXPECT_THAT(ping.message(), ::testing::HasSubstr("standby"));
      const auto write = (*on_standby)->Acquire(Exclusive("on-standby"));
      EXPECT_EQ(write.status().code(), StatusCode::kUnavailable) << write.status().ToString();
    } else {
      EXPECT_EQ(on_standby.status().code(), StatusCode::kUnavailable)
          << on_standby.status().ToString();
    }
  }
  auto cas = MustOpen(url("cas"));
  auto waiter = MustOpen(url("cas"));
  auto fu = MustOpen(url("for-update"));
  ASSERT_NE(cas, nullptr);
  ASSERT_NE(waiter, nullptr);
  ASSERT_NE(fu, nullptr);

  // A lease committed before the crash must survive it (the standby has every acknowledged
  // commit), and a for-update holder's transaction must not.
  auto held = cas->Acquire(Exclusive("held-across", 0ms, 120s));
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  auto fu_held = fu->Acquire(Exclusive("fu-across"));
  ASSERT_TRUE(fu_held.ok()) << fu_held.status().ToString();

  std::mutex mu;
  std::vector<Call> calls;  // guarded by mu
  std::atomic<bool> stop{false};
  std::thread hammer([&] {
    while (!stop) {
      // A short ttl: a lease whose release was in flight at the crash holds the name only
      // briefly (kLockHeld meanwhile).
      auto lease = cas->Acquire(Exclusive("failover", 0ms, 1s));
      Call call{SteadyClock::now(), lease.status().code(), lease.ok() ? lease->token : 0};
      {
        std::lock_guard<std::mutex> lock(mu);
        calls.push_back(call);
      }
      if (lease.ok()) {
        cas->Release(*lease).IgnoreError();  // a release lost in the crash just expires
      } else {
        std::this_thread::sleep_for(5ms);  // the database is down: do not spin
      }
    }
  });
  const auto ok_since = [&](SteadyClock::time_point t) {
    std::lock_guard<std::mutex> lock(mu);
    return std::count_if(calls.begin(), calls.end(), [&](const Call& c) {
      return c.at >= t && c.code == StatusCode::kOk;
    });
  };
  for (auto until = SteadyClock::now() + 30s; ok_since({}) < 20 && SteadyClock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(ok_since({}), 20) << "the hammer never got going";

  const auto crash = SteadyClock::now();
  primary.StopImmediate();
  // No primary: the standby is reachable but read-only, which read-write refuses.
  const Status down = cas->Ping();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_THAT(down.message(), ::testing::Not(::testing::HasSubstr(primary.password())));
  standby->Promote();
  const auto promoted = SteadyClock::now();

  for (auto until = SteadyClock::now() + 30s;
       ok_since(promoted) < 20 && SteadyClock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  hammer.join();

  // Reconnected by itself, to the new primary.
  ASSERT_TRUE(cas->Ping().ok()) << cas->Ping().ToString();
  EXPECT_EQ(standby->Psql("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(cas->Acquire(Exclusive("held-across")).status().code(), StatusCode::kLockHeld)
      << "a lease acknowledged before the crash is on the synchronous standby";
  ASSERT_TRUE(cas->Release(*held).ok());
  ExpectForUpdateHolderLost(*fu, *fu_held);

  // A waiter on the new primary is woken by a release (its listener reconnected too).
  auto blocker = cas->Acquire(Exclusive("after", 0ms, 60s));
  ASSERT_TRUE(blocker.ok()) << blocker.status().ToString();
  std::optional<Result<Lease>> woken;
  SteadyClock::time_point released_at;
  std::thread wait_thread([&] { woken.emplace(waiter->Acquire(Exclusive("after", 20s))); });
  std::this_thread::sleep_for(300ms);  // let the waiter reach its wait; correctness does not
                                       // depend on it, only the latency measured below
  released_at = SteadyClock::now();
  ASSERT_TRUE(cas->Release(*blocker).ok());
  wait_thread.join();
  ASSERT_TRUE(woken->ok()) << woken->status().ToString();
  // The wake-up came from LISTEN/NOTIFY on the new primary, not only from the re-check a
  // waiter makes while its listener is down: the listeners have subscribed there (a listener's
  // last statement is its LISTEN or a waiter registration, sql::kRegisterWaiter).
  const std::string listeners = standby->Psql(
      "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%ordo_lock%'"
      " OR query ILIKE '%pg_advisory_lock_shared%'");
  EXPECT_GE(std::stoi(listeners), 1) << "no listener re-subscribed on the new primary";
  EXPECT_LT(SteadyClock::now() - released_at, 5s);
  ASSERT_TRUE(waiter->Release(**woken).ok());

  // Every answer was a token or kUnavailable (or, after the crash, kLockHeld while a lease whose
  // release was lost runs out); tokens only grew, across the failover too.
  std::uint64_t prev = 0;
  std::uint64_t last_before = 0;  // the last token before the first error after the crash
  std::uint64_t first_after = 0;  // the first token after it
  std::optional<SteadyClock::time_point> first_error;
  std::optional<SteadyClock::time_point> recovered;
  std::map<StatusCode, int> codes;
  for (const Call& c : calls) {
    ++codes[c.code];
    EXPECT_TRUE(c.code == StatusCode::kOk || c.code == StatusCode::kUnavailable ||
                (c.code == StatusCode::kLockHeld && c.at >= crash))
        << StatusCodeName(c.code);
    if (c.code != StatusCode::kOk) {
      if (!first_error && c.at >= crash) first_error = c.at;
      continue;
    }
    EXPECT_GT(c.token, prev) << "tokens of one lock only grow";
    prev = c.token;
    if (!first_error) {
      last_before = c.token;
    } else if (first_after == 0) {
      first_after = c.token;
      recovered = c.at;
    }
  }
  ASSERT_TRUE(first_error.has_value()) << "the crash cost no call at all: was it a crash?";
  ASSERT_NE(first_after, 0u);
  EXPECT_GT(first_after, last_before);
  const double window = Ms(*recovered - *first_error);
  std::printf(
      "failover: %d ok, %d unavailable, %d held; crash→promoted %.0f ms, client error window %.0f ms, "
      "crash→first acquire %.0f ms; last token before %llu, first after %llu\n",
      codes[StatusCode::kOk], codes[StatusCode::kUnavailable], codes[StatusCode::kLockHeld], Ms(promoted - crash), window,
      Ms(*recovered - crash), static_cast<unsigned long long>(last_before),
      static_cast<unsigned long long>(first_after));
}

}  // namespace
}  // namespace ordo::testing
