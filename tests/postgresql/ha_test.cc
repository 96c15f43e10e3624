// High availability as users deploy it: two `ordo serve` replicas (the real `ordo` binary) on
// one multi-host URL over a primary and a synchronous standby, clients spreading strict fenced
// read-modify-write of one counter across both replicas, a holder that pauses past its lease,
// a replica paused (SIGSTOP, longer than a lease) and later killed (SIGKILL), a primary crash (pg_ctl stop -m immediate) and a promotion.
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
#include <string>
#include <thread>
#include <vector>

#include "ordo/ordo.h"
#include "pg_cluster.h"
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
  r.process = std::make_unique<Child>(std::vector<std::string>{
      ORDO_BINARY, "serve", "--backend", backend, "--listen",
      "127.0.0.1:" + std::to_string(r.port)});
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
};

// The clients: each alternates between the replicas call by call. Client 0 pauses past its
// lease between its read and its write every few rounds (a GC pause, SIGSTOP).
Outcome RunClients(const std::vector<Locker*>& lockers, bool strict,
                   std::chrono::milliseconds duration, const std::function<void()>& faults) {
  std::mutex mu;
  Outcome out;
  std::atomic<bool> stop{false};
  const auto note = [&](StatusCode code) {
    std::lock_guard<std::mutex> lock(mu);
    ++out.codes[code];
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int round = 0; !stop; ++round) {
        Locker& locker = *lockers[(round + c) % lockers.size()];
        auto lease = locker.Acquire(
            {.name = kLock, .mode = LockMode::kExclusive, .ttl = kTtl, .wait = 2000ms});
        note(lease.status().code());
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
  faults();
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
  return s;
}

TEST(HaTest, TwoReplicasOverAFailoverLoseNoUpdateAndTheControlRunDoes) {
  PgCluster primary;
  auto standby = PgCluster::StandbyOf(primary, "ordo_ha_standby");
  primary.MakeSynchronous("ordo_ha_standby");
  const std::string backend =
      "postgresql://ordo:" + primary.password() + "@127.0.0.1:" +
      std::to_string(primary.port()) + ",127.0.0.1:" + std::to_string(standby->port()) +
      "/ordo_test?strategy=cas&target_session_attrs=read-write&connect_timeout=2"
      "&statement_timeout=5s";
  Replica r1 = StartReplica(backend);
  Replica r2 = StartReplica(backend);
  auto l1 = OpenReplica(r1.port);
  auto l2 = OpenReplica(r2.port);
  ASSERT_NE(l1, nullptr);
  ASSERT_NE(l2, nullptr);

  // Control first, on the healthy pair: without fencing the pausing holder's late write lands.
  Outcome control = RunClients({l1.get(), l2.get()}, /*strict=*/false, 5s, [] {});
  std::printf("ha control (no fencing): %s\n", Summary(control).c_str());
  EXPECT_GT(control.lost_updates, 0) << "the checker must see lost updates without fencing";

  // The real run: strict fencing, a replica killed, the primary crashed, the standby promoted.
  bool readyz_503 = false;
  Outcome strict = RunClients({l1.get(), l2.get()}, /*strict=*/true, 14s, [&] {
    std::this_thread::sleep_for(1s);
    r2.process->Kill(SIGSTOP);  // replica 2 hangs longer than a lease: its calls stall
    std::this_thread::sleep_for(1500ms);
    r2.process->Kill(SIGCONT);  // ... and then complete, late
    std::this_thread::sleep_for(1s);
    r2.process->Kill(SIGKILL);  // replica 2 dies; its clients' calls fail and move on
    r2.process->Wait();
    std::this_thread::sleep_for(2s);
    primary.StopImmediate();
    readyz_503 = !l1->Ping().ok();  // no primary reachable: /readyz must say so
    std::this_thread::sleep_for(500ms);
    standby->Promote();
  });
  std::printf("ha strict: %s\n", Summary(strict).c_str());
  EXPECT_TRUE(readyz_503) << "/readyz answered ready while no primary was reachable";
  EXPECT_EQ(strict.lost_updates, 0);
  EXPECT_EQ(strict.token_order_violations, 0);
  EXPECT_GT(strict.codes[StatusCode::kStaleToken], 0) << "the pausing holder was never refused";
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

}  // namespace
}  // namespace ordo::testing
