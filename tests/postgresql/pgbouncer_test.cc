// The PostgreSQL backend through PgBouncer (Debian's pgbouncer; 1.18 in Debian 12), in session
// and in transaction pooling, in front of the throwaway test cluster. What works in each mode,
// and what does not, is what the README's "Through PgBouncer" says:
//   - session pooling: everything (each client connection keeps its server connection);
//   - transaction pooling: cas and version calls, fenced and versioned stores. PgBouncer before
//     1.21 loses protocol-level prepared statements there; ordo notices (SQLSTATE 26000/42P05)
//     and runs unprepared from then on, or ?prepare=off says so up front. LISTEN/NOTIFY and
//     strategy=for-update need a session of their own and so need session pooling.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ordo/ordo.h"
#include "pg_cluster.h"
#include "pgbouncer.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms,
                      std::chrono::milliseconds ttl = 30s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}

// Concurrent cas calls, fenced writes and versioned CAS: every answer is a real one (a token,
// kLockHeld, kStaleToken, kVersionMismatch), never an error; tokens of one name only grow.
void Hammer(Locker& locker, const std::string& tag) {
  const std::string name = UniqueName("bouncer");
  std::mutex mu;
  std::vector<std::uint64_t> tokens;
  std::map<StatusCode, int> codes;
  std::optional<std::string> first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t version = 0;
      for (int i = 0; i < 15; ++i) {
        auto v = locker.objects().CompareAndSwap(name + "-obj-" + std::to_string(t), version, "x");
        auto lease = locker.Acquire(Exclusive(name));
        std::lock_guard<std::mutex> lock(mu);
        ++codes[v.status().code()];
        if (v.ok()) version = *v;
        if (!lease.ok() && !first_error) first_error = lease.status().ToString();
        ++codes[lease.status().code()];
        if (!lease.ok()) continue;
        tokens.push_back(lease->token);
        auto w = locker.fenced().Write(name + "-key", "v", lease->token, name);
        ++codes[w.status().code()];
        ++codes[locker.Release(*lease).code()];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& [code, n] : codes) {
    EXPECT_TRUE(code == StatusCode::kOk || code == StatusCode::kLockHeld ||
                code == StatusCode::kStaleToken)
        << tag << ": " << n << " x " << StatusCodeName(code) << "; first error "
        << first_error.value_or("none");
  }
  EXPECT_GT(codes[StatusCode::kOk], 30) << tag;
  // Tokens were issued in the database, one counter per name: all distinct.
  std::sort(tokens.begin(), tokens.end());
  EXPECT_EQ(std::adjacent_find(tokens.begin(), tokens.end()), tokens.end()) << tag;
}

TEST(PgBouncerTest, SessionPoolingRunsEveryStrategyAndWakesWaiters) {
  PgCluster& pg = SharedPgCluster();
  PgBouncer bouncer(pg, "session");
  for (const char* strategy : {"cas", "version", "for-update"}) {
    auto opened = Open(bouncer.Url(pg, std::string("strategy=") + strategy + "&pool_size=2"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Hammer(**opened, strategy);
  }
  // LISTEN/NOTIFY: a waiter is woken by the release, long before the holder's lease expires.
  auto a = Open(bouncer.Url(pg, "strategy=cas"));
  auto b = Open(bouncer.Url(pg, "strategy=cas"));
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string name = UniqueName("bouncer-wake");
  auto held = (*a)->Acquire(Exclusive(name, 0ms, 60s));
  ASSERT_TRUE(held.ok());
  std::thread releaser([&] {
    std::this_thread::sleep_for(300ms);
    (*a)->Release(*held).IgnoreError();
  });
  const auto start = std::chrono::steady_clock::now();
  auto got = (*b)->Acquire(Exclusive(name, 20s));
  releaser.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(PgBouncerTest, TransactionPoolingRunsCasAndVersionWithOrWithoutPrepare) {
  PgCluster& pg = SharedPgCluster();
  PgBouncer bouncer(pg, "transaction");
  for (const char* query : {"strategy=cas&pool_size=6", "strategy=version&pool_size=6",
                            "strategy=cas&pool_size=6&prepare=off"}) {
    auto opened = Open(bouncer.Url(pg, query));
    ASSERT_TRUE(opened.ok()) << query << ": " << opened.status().ToString();
    Hammer(**opened, query);
  }
}

}  // namespace
}  // namespace ordo::testing
