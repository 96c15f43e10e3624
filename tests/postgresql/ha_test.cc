// High availability as users deploy it: two `ordo serve` replicas (the real `ordo` binary) on
// one multi-host URL over a primary and a synchronous standby, clients spreading strict fenced
// read-modify-write of one counter across both replicas, a holder that pauses past its lease,
// a replica paused (SIGSTOP, longer than a lease) and later killed (SIGKILL), a primary crash
// (pg_ctl stop -m immediate) and a promotion.
//
// It runs twice: the replicas on libpq's multi-host URL (libpq finds the new primary), and the
// replicas through one PgBouncer in session pooling (PgBouncer does not follow a failover: the
// test re-points it at the promoted standby and RELOADs, as an operator's failover tooling
// does). Both also check the sessions a failover cuts: a for-update holder's Renew gets
// kLeaseLost, never a lease it no longer has, and a waiter whose listener connection died is
// still woken by a release on the new primary.
//
// The checker: every acknowledged write wrote a distinct value (two writes of the same value
// are two read-modify-writes of one read: a lost update), values grow with tokens, and no
// answer was wrong. The control run drops fencing (reads carry no token, writes carry token 1,
// the lease-only anti-pattern) with the same pausing holder, and must find lost updates: so
// the checker can see the bug it rules out.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
using SteadyClock = std::chrono::steady_clock;

constexpr char kLock[] = "ha-counter";
constexpr char kKey[] = "ha-counter-value";
constexpr auto kTtl = 1000ms;

// One `ordo serve` process on a free loopback port.
struct Replica {
  int port = 0;
  std::unique_ptr<Child> process;
};

Replica StartReplica(const std::string& backend) {
  Replica r;
  r.port = FreeLoopbackPort();
  r.process = std::make_unique<Child>(
      std::vector<std::string>{ORDO_BINARY, "serve", "--backend", backend, "--listen",
                               "127.0.0.1:" + std::to_string(r.port)},
      /*kill_with_parent=*/true);
  return r;
}

std::unique_ptr<Locker> OpenReplica(int port) {
  // A bounded poll until the replica answers (it migrates and binds first).
  for (auto until = SteadyClock::now() + 30s; SteadyClock::now() < until;) {
    auto opened = Open("http://127.0.0.1:" + std::to_string(port));
    if (opened.ok()) return std::move(*opened);
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << "replica on port " << port << " never answered";
  return nullptr;
}

struct Ack {
  std::uint64_t token;
  long value;
};

struct Outcome {
  std::vector<Ack> acks;
  std::map<StatusCode, int> codes;
  int lost_updates = 0;
  int token_order_violations = 0;
  // The clients' error window around the primary crash: the first kUnavailable after the
  // crash to the first success of an acquire begun after that error (zero: none).
  SteadyClock::time_point crash{};
  SteadyClock::time_point first_error{};
  SteadyClock::time_point recovered{};
};

// The clients: each alternates between the replicas call by call. Client 0 pauses past its
// lease between its read and its write every few rounds (a GC pause, SIGSTOP). `faults` runs
// on the calling thread meanwhile and calls its argument at the moment of the primary crash.
Outcome RunClients(const std::vector<Locker*>& lockers, bool strict,
                   std::chrono::milliseconds duration,
                   const std::function<void(const std::function<void()>&)>& faults) {
  std::mutex mu;
  Outcome out;
  std::atomic<bool> stop{false};
  // `begun`: when the call started, for acquires (the first that begins after the first error
  // and succeeds ends the error window; one in flight at the crash does not).
  const auto note = [&](StatusCode code, SteadyClock::time_point begun = {}) {
    const auto now = SteadyClock::now();
    std::lock_guard<std::mutex> lock(mu);
    ++out.codes[code];
    if (out.crash == SteadyClock::time_point{} || now < out.crash) return;
    if (code == StatusCode::kUnavailable && out.first_error == SteadyClock::time_point{}) {
      out.first_error = now;
    }
    if (begun != SteadyClock::time_point{} && code == StatusCode::kOk &&
        out.first_error != SteadyClock::time_point{} && begun > out.first_error &&
        out.recovered == SteadyClock::time_point{}) {
      out.recovered = now;
    }
  };
  const auto crashed = [&] {
    std::lock_guard<std::mutex> lock(mu);
    out.crash = SteadyClock::now();
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int round = 0; !stop; ++round) {
        Locker& locker = *lockers[(round + c) % lockers.size()];
        const auto begun = SteadyClock::now();
        auto lease = locker.Acquire(
            {.name = kLock, .mode = LockMode::kExclusive, .ttl = kTtl, .wait = 2000ms});
        note(lease.status().code(), begun);
        if (!lease.ok()) {
          std::this_thread::sleep_for(10ms);
          continue;
        }
        auto read = strict ? locker.fenced().Read(kKey, lease->token, kLock)
                           : locker.fenced().Read(kKey, 0, "");
        note(read.status().code());
        if (!read.ok() && read.status().code() != StatusCode::kNotFound) continue;
        const long value = read.ok() ? std::stol(read->data) : 0;
        if (c == 0 && round % 3 == 1) std::this_thread::sleep_for(kTtl + 700ms);
        auto written = strict ? locker.fenced().Write(kKey, std::to_string(value + 1),
                                                      lease->token, kLock)
                              : locker.fenced().Write(kKey, std::to_string(value + 1), 1, "");
        note(written.status().code());
        if (written.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          out.acks.push_back({lease->token, value + 1});
        }
        locker.Release(*lease).IgnoreError();  // a lost lease just expired
      }
    });
  }
  const auto start = SteadyClock::now();
  faults(crashed);
  std::this_thread::sleep_until(start + duration);
  stop = true;
  for (auto& t : clients) t.join();

  std::map<long, int> seen;
  for (const Ack& a : out.acks) {
    if (++seen[a.value] == 2) ++out.lost_updates;
  }
  std::vector<Ack> by_value = out.acks;
  std::sort(by_value.begin(), by_value.end(),
            [](const Ack& a, const Ack& b) { return a.value < b.value; });
  for (std::size_t i = 1; i < by_value.size(); ++i) {
    if (by_value[i].token <= by_value[i - 1].token && by_value[i].value != by_value[i - 1].value) {
      ++out.token_order_violations;
    }
  }
  return out;
}

std::string Summary(const Outcome& o) {
  std::string s = std::to_string(o.acks.size()) + " acknowledged writes, " +
                  std::to_string(o.lost_updates) + " lost updates, " +
                  std::to_string(o.token_order_violations) + " token-order violations;";
  for (const auto& [code, n] : o.codes) {
    s += " " + std::string(StatusCodeName(code)) + "=" + std::to_string(n);
  }
  if (o.recovered != SteadyClock::time_point{}) {
    const auto ms = [](SteadyClock::duration d) {
      return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    s += "; client error window " + ms(o.recovered - o.first_error) + " ms, crash to first " +
         "acquire " + ms(o.recovered - o.crash) + " ms";
  }
  return s;
}

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait,
                      std::chrono::milliseconds ttl = 60s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}

// Sessions a failover cuts, on in-process lockers that go the same way as the replicas (the
// multi-host URL or PgBouncer): a for-update holder, and a waiter's listener. Before() runs on
// the healthy primary, After() once the new primary serves.
class SessionChecks {
 public:
  explicit SessionChecks(const std::string& url) {
    auto holder = Open(url + "&strategy=for-update&pool_size=1");
    auto a = Open(url + "&strategy=cas&pool_size=1");
    auto b = Open(url + "&strategy=cas&pool_size=1");
    EXPECT_TRUE(holder.ok() && a.ok() && b.ok()) << url;
    if (holder.ok()) holder_ = std::move(*holder);
    if (a.ok()) a_ = std::move(*a);
    if (b.ok()) b_ = std::move(*b);
  }

  void Before() {
    if (holder_ == nullptr || a_ == nullptr || b_ == nullptr) return;
    auto held = holder_->Acquire(Exclusive("ha-for-update", 0ms));
    ASSERT_TRUE(held.ok()) << held.status().ToString();
    held_ = *held;
    // b waits once, so that its listener connection is up (and LISTENing) before the crash.
    auto blocker = a_->Acquire(Exclusive("ha-wake-warm", 0ms));
    ASSERT_TRUE(blocker.ok()) << blocker.status().ToString();
    EXPECT_EQ(b_->Acquire(Exclusive("ha-wake-warm", 200ms)).status().code(),
              StatusCode::kLockHeld);
    EXPECT_TRUE(a_->Release(*blocker).ok());
  }

  // `serving`: the cluster that is the primary now.
  void After(PgCluster& serving) {
    if (!held_) return;
    // The holder's transaction died with the old primary: once the new primary answers, its
    // Renew says the lease is lost; kUnavailable until then, never kOk.
    StatusCode renewed = StatusCode::kUnavailable;
    for (auto until = SteadyClock::now() + 20s;
         renewed == StatusCode::kUnavailable && SteadyClock::now() < until;) {
      renewed = holder_->Renew(*held_, 60s).status().code();
      if (renewed == StatusCode::kUnavailable) std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(renewed, StatusCode::kLeaseLost) << StatusCodeName(renewed);
    // A release on the new primary wakes b well before the holder's 60 s lease would expire,
    // whatever happened to b's listener connection.
    Result<Lease> blocker = UnavailableError("not tried");
    for (auto until = SteadyClock::now() + 20s;
         !blocker.ok() && SteadyClock::now() < until;) {
      blocker = a_->Acquire(Exclusive("ha-wake", 0ms));
      if (!blocker.ok()) std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(blocker.ok()) << blocker.status().ToString();
    Result<Lease> woken = UnavailableError("not tried");
    SteadyClock::duration waited{};
    std::thread waiter([&] {
      const auto start = SteadyClock::now();
      woken = b_->Acquire(Exclusive("ha-wake", 20s));
      // One retry: b's pool connection may have been cut too, which costs its first call.
      if (woken.status().code() == StatusCode::kUnavailable) {
        woken = b_->Acquire(Exclusive("ha-wake", 20s));
      }
      waited = SteadyClock::now() - start;
    });
    // Release only once b waits: its listener holds the name's waiter key (statements.h:
    // kWaitersClass, hashtext(name)) on the new primary. Bounded poll.
    const std::string registered =
        "SELECT count(*) FROM pg_locks l WHERE l.granted AND l.locktype = 'advisory'"
        " AND l.classid::bigint = 1869767791 AND l.objsubid = 2"
        " AND l.objid::bigint = (hashtext('ha-wake')::bigint & 4294967295)";
    bool parked = false;
    for (auto until = SteadyClock::now() + 10s; !parked && SteadyClock::now() < until;) {
      parked = serving.Psql(registered) != "0";
    }
    a_->Release(*blocker).IgnoreError();
    waiter.join();
    EXPECT_TRUE(parked) << "the waiter never registered on the new primary";
    EXPECT_TRUE(woken.ok()) << woken.status().ToString();
    EXPECT_LT(waited, 10s) << "the waiter slept through a release after the failover";
    if (woken.ok()) b_->Release(*woken).IgnoreError();
  }

 private:
  std::unique_ptr<Locker> holder_, a_, b_;
  std::optional<Lease> held_;
};

// PgBouncer or not: how the replicas reach the database.
enum class Path { kMultiHostUrl, kPgBouncerSession };

void RunHa(Path path) {
  const bool bounced = path == Path::kPgBouncerSession;
  const char* tag = bounced ? "ha (pgbouncer session)" : "ha";
  PgCluster primary;
  auto standby = PgCluster::StandbyOf(primary, "ordo_ha_standby");
  primary.MakeSynchronous("ordo_ha_standby");
  // connect_timeout bounds a dead host's connect, statement_timeout a call stuck on a primary
  // that went away.
  std::unique_ptr<PgBouncer> bouncer;
  std::string url;  // without ordo's strategy
  if (bounced) {
    bouncer = std::make_unique<PgBouncer>(primary, "session");
    url = bouncer->Url(primary, "connect_timeout=2&statement_timeout=5s");
  } else {
    url = "postgresql://ordo:" + primary.password() + "@127.0.0.1:" +
          std::to_string(primary.port()) + ",127.0.0.1:" + std::to_string(standby->port()) +
          "/ordo_test?target_session_attrs=read-write&connect_timeout=2&statement_timeout=5s";
  }
  const std::string backend = url + "&strategy=cas";
  Replica r1 = StartReplica(backend);
  Replica r2 = StartReplica(backend);
  auto l1 = OpenReplica(r1.port);
  auto l2 = OpenReplica(r2.port);
  ASSERT_NE(l1, nullptr);
  ASSERT_NE(l2, nullptr);
  SessionChecks sessions(url);

  // Control first, on the healthy pair: without fencing the pausing holder's late write lands.
  Outcome control = RunClients({l1.get(), l2.get()}, /*strict=*/false, 5s,
                               [](const std::function<void()>&) {});
  std::printf("%s control (no fencing): %s\n", tag, Summary(control).c_str());
  EXPECT_GT(control.lost_updates, 0) << "the checker must see lost updates without fencing";

  // The real run: strict fencing, a replica killed, the primary crashed, the standby promoted
  // (and, through PgBouncer, PgBouncer re-pointed at it).
  bool readyz_503 = false;
  SteadyClock::time_point strict_crash;
  SteadyClock::duration promoted{}, repointed{};
  Outcome strict = RunClients({l1.get(), l2.get()}, /*strict=*/true, 14s,
                              [&](const std::function<void()>& crashed) {
    sessions.Before();
    std::this_thread::sleep_for(1s);
    r2.process->Kill(SIGSTOP);  // replica 2 hangs longer than a lease: its calls stall
    std::this_thread::sleep_for(1500ms);
    r2.process->Kill(SIGCONT);  // ... and then complete, late
    std::this_thread::sleep_for(1s);
    r2.process->Kill(SIGKILL);  // replica 2 dies; its clients' calls fail and move on
    r2.process->Wait();
    std::this_thread::sleep_for(2s);
    crashed();
    strict_crash = SteadyClock::now();
    primary.StopImmediate();
    readyz_503 = !l1->Ping().ok();  // no primary reachable: /readyz must say so
    std::this_thread::sleep_for(500ms);
    standby->Promote();
    promoted = SteadyClock::now() - strict_crash;
    if (bouncer != nullptr) bouncer->Retarget(*standby);
    repointed = SteadyClock::now() - strict_crash;
    sessions.After(*standby);
  });
  std::printf("%s strict: %s\n", tag, Summary(strict).c_str());
  const auto ms = [](SteadyClock::duration d) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  std::printf("%s failover: crash to promoted %ld ms%s\n", tag, ms(promoted),
              bouncer == nullptr
                  ? ""
                  : (", to PgBouncer re-pointed " + std::to_string(ms(repointed)) + " ms").c_str());
  EXPECT_TRUE(readyz_503) << "/readyz answered ready while no primary was reachable";
  EXPECT_EQ(strict.lost_updates, 0);
  EXPECT_EQ(strict.token_order_violations, 0);
  EXPECT_GT(strict.codes[StatusCode::kStaleToken], 0) << "the pausing holder was never refused";
  EXPECT_NE(strict.recovered, SteadyClock::time_point{}) << "no acquire succeeded after the crash";
  for (const auto& [code, n] : strict.codes) {
    EXPECT_TRUE(code == StatusCode::kOk || code == StatusCode::kNotFound ||
                code == StatusCode::kStaleToken || code == StatusCode::kLockHeld ||
                code == StatusCode::kUnavailable)
        << n << " x " << StatusCodeName(code);
  }
  // After the failover, writes went on through the surviving replica.
  ASSERT_TRUE(l1->Ping().ok()) << l1->Ping().ToString();
  auto final_value = l1->fenced().Read(kKey, 0, "");
  ASSERT_TRUE(final_value.ok()) << final_value.status().ToString();
  long max_acked = 0;
  for (const Ack& a : strict.acks) max_acked = std::max(max_acked, a.value);
  EXPECT_GE(std::stol(final_value->data), max_acked) << "an acknowledged write went missing";
  EXPECT_EQ(standby->Psql("SELECT pg_is_in_recovery()"), "f");
}

TEST(HaTest, TwoReplicasOverAFailoverLoseNoUpdateAndTheControlRunDoes) {
  RunHa(Path::kMultiHostUrl);
}

// The same through PgBouncer in session pooling (LISTEN and for-update need a session).
TEST(HaTest, ThroughPgBouncerInSessionPooling) { RunHa(Path::kPgBouncerSession); }

}  // namespace
}  // namespace ordo::testing
