// etcd://-specific tests on real etcd members (tools/harness/etcd_cluster.h):
//   - a 3-member cluster whose leader is killed with SIGKILL, and later paused with SIGSTOP,
//     while worker processes increment a counter under the lock: mutual exclusion holds,
//     tokens grow, no increment is lost;
//   - a holder whose lease expired (judged by etcd) gets kLeaseLost and its token is refused
//     by a strict fenced write, across a leader change;
//   - endpoint fail-over and outages (kUnavailable, never a crash);
//   - URL errors.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "etcd_cluster.h"
#include "ordo/ordo.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

struct WorkerReport {
  long acquired = 0, violations = 0, unavailable = 0, lost = 0, overran = 0;
};

WorkerReport ParseDone(const std::string& line) {
  WorkerReport r;
  if (std::sscanf(line.c_str(),
                  "done acquired=%ld violations=%ld unavailable=%ld lost=%ld overran=%ld",
                  &r.acquired, &r.violations, &r.unavailable, &r.lost, &r.overran) != 5) {
    ADD_FAILURE() << "worker said '" << line << "'";
    r.violations = 1;
  }
  return r;
}

TEST(EtcdFaultTest, LeaderKillAndPauseKeepMutualExclusionAndTokenOrder) {
  EtcdCluster cluster(3);
  TempDir dir;
  const std::string lock = UniqueName("fault");
  constexpr int kWorkers = 3;
  constexpr int kSeconds = 14;
  std::vector<std::unique_ptr<Child>> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(std::make_unique<Child>(std::vector<std::string>{
        ORDO_ETCD_FAULT_WORKER, cluster.Url(), lock, dir.path(), std::to_string(kSeconds),
        "3000"}, /*kill_with_parent=*/true));
  }
  for (auto& w : workers) ASSERT_EQ(w->ReadLine(), "ready");
  for (auto& w : workers) w->WriteLine("go");
  // The nemesis: the faults last for seconds each, while the workers run throughout.
  int kills = 0;
  int pauses = 0;
  std::this_thread::sleep_for(2s);
  const int killed = cluster.Leader();
  cluster.Kill(killed, SIGKILL);
  ++kills;
  std::this_thread::sleep_for(3s);
  cluster.Start(killed);
  cluster.WaitHealthy();
  const int paused = cluster.Leader();
  cluster.Pause(paused);
  ++pauses;
  std::this_thread::sleep_for(3s);
  cluster.Resume(paused);
  cluster.WaitHealthy();
  WorkerReport total;
  for (auto& w : workers) {
    const WorkerReport r = ParseDone(w->ReadLine(std::chrono::seconds(60)));
    const int status = w->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
    total.acquired += r.acquired;
    total.violations += r.violations;
    total.unavailable += r.unavailable;
    total.lost += r.lost;
    total.overran += r.overran;
  }
  std::ifstream in(dir.path() + "/counter");
  long counter = 0;
  in >> counter;
  std::printf("etcd fault test: %d workers, holders (acquisitions) %ld, leader kills %d, leader "
              "pauses %d, violations %ld, kUnavailable retries %ld, releases lost %ld, "
              "holders stalled past their expiry %ld, counter %ld\n",
              kWorkers, total.acquired, kills, pauses, total.violations, total.unavailable,
              total.lost, total.overran, counter);
  EXPECT_EQ(total.violations, 0);
  // A holder stalled past its expiry may lose the next holder's increment (allowed: DESIGN.md);
  // every other increment must be there. The control run below shows that the expiry
  // the overruns are judged by is not so early that it would excuse a real overlap.
  EXPECT_LE(total.acquired - counter, total.overran) << "an increment under the lock was lost";
  EXPECT_GE(total.acquired, counter);
  EXPECT_GT(total.acquired, 20) << "the workers made no progress around the faults";
}

// The control run: the same workers, each on a lock of its own (so nothing excludes them),
// must see violations, or the test above is blind.
TEST(EtcdFaultTest, ControlRunWithoutACommonLockSeesViolations) {
  EtcdCluster cluster(1);
  TempDir dir;
  const std::string lock = UniqueName("control");
  long violations = 0;
  for (int round = 0; round < 5 && violations == 0; ++round) {
    std::vector<std::unique_ptr<Child>> workers;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(std::make_unique<Child>(std::vector<std::string>{
          ORDO_ETCD_FAULT_WORKER, cluster.Url(), lock + "-" + std::to_string(i), dir.path(), "2",
          "3000"}, /*kill_with_parent=*/true));
    }
    for (auto& w : workers) ASSERT_EQ(w->ReadLine(), "ready");
    for (auto& w : workers) w->WriteLine("go");
    for (auto& w : workers) {
      violations += ParseDone(w->ReadLine(std::chrono::seconds(60))).violations;
      w->Wait();
    }
  }
  std::printf("etcd control run: violations %ld\n", violations);
  EXPECT_GT(violations, 0) << "separate locks overlapped nowhere: the fault test is blind";
}

TEST(EtcdFaultTest, ExpiredHolderGetsLeaseLostAcrossLeaderChange) {
  EtcdCluster cluster(3);
  auto a = Open(cluster.Url());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = Open(cluster.Url());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const std::string lock = UniqueName("expire");
  auto old = (*a)->Acquire({.name = lock, .ttl = 2s});
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  ASSERT_TRUE((*a)->fenced().Write("fault-key", "by old", old->token, lock).ok());
  // The old holder stops renewing (as if paused); the leader dies meanwhile. etcd's new leader
  // judges the expiry, and the lock goes to the next holder with a larger token.
  cluster.Kill(cluster.Leader(), SIGKILL);
  Result<Lease> next = InternalError("not run");
  for (int attempt = 0; attempt < 100; ++attempt) {
    next = (*b)->Acquire({.name = lock, .ttl = 10s, .wait = 20s});
    if (next.ok() || next.status().code() != StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_GT(next->token, old->token);
  Result<Lease> renewed = InternalError("not run");
  Status released;
  for (int attempt = 0; attempt < 100; ++attempt) {
    renewed = (*a)->Renew(*old, 2s);
    if (renewed.status().code() != StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(renewed.status().code(), StatusCode::kLeaseLost) << renewed.status().ToString();
  EXPECT_EQ((*a)->Release(*old).code(), StatusCode::kLeaseLost);
  auto late = (*a)->fenced().Write("fault-key", "late", old->token, lock);
  EXPECT_EQ(late.status().code(), StatusCode::kStaleToken) << late.status().ToString();
  ASSERT_TRUE((*b)->fenced().Write("fault-key", "by next", next->token, lock).ok());
  ASSERT_TRUE((*b)->Release(*next).ok());
}

TEST(EtcdFaultTest, OutageIsUnavailableAndStateSurvives) {
  EtcdCluster cluster(1);
  auto locker = Open(cluster.Url());
  ASSERT_TRUE(locker.ok()) << locker.status().ToString();
  const std::string lock = UniqueName("outage");
  auto lease = (*locker)->Acquire({.name = lock, .ttl = 30s});
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE((*locker)->objects().CompareAndSwap("outage-obj", 0, "1").ok());
  cluster.Kill(0, SIGKILL);
  EXPECT_EQ((*locker)->Ping().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*locker)->Acquire({.name = UniqueName("x")}).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ((*locker)->Describe(lock).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Open(cluster.Url()).status().code(), StatusCode::kUnavailable);
  cluster.Start(0);
  cluster.WaitHealthy();
  // The lock table is intact: the holder still holds (etcd restores leases on restart).
  EXPECT_EQ((*locker)->Acquire({.name = lock}).status().code(), StatusCode::kLockHeld);
  auto state = (*locker)->Describe(lock);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].token, lease->token);
  auto obj = (*locker)->objects().Get("outage-obj");
  ASSERT_TRUE(obj.ok());
  EXPECT_EQ(obj->version, 1u);
  EXPECT_TRUE((*locker)->Release(*lease).ok());
}

TEST(EtcdFaultTest, FailsOverToTheNextEndpoint) {
  EtcdCluster cluster(3);
  // The first endpoint listed is dead from the start: calls move on to the live ones.
  cluster.Kill(0, SIGKILL);
  cluster.WaitHealthy();
  auto locker = Open(cluster.Url());
  ASSERT_TRUE(locker.ok()) << locker.status().ToString();
  auto lease = (*locker)->Acquire({.name = UniqueName("failover"), .ttl = 5s});
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_TRUE((*locker)->Release(*lease).ok());
}

TEST(EtcdUrlTest, BadUrlsNameTheProblem) {
  for (const char* url : {"etcd://", "etcd://127.0.0.1:2379/path", "etcd://127.0.0.1:2379?x=1",
                          "etcd://127.0.0.1:2379?prefix=noslash", "etcd://a:1,:2",
                          "etcd://a:1,b:99999"}) {
    auto opened = Open(url);
    ASSERT_FALSE(opened.ok()) << url;
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument)
        << url << ": " << opened.status().ToString();
    EXPECT_FALSE(opened.status().message().empty());
  }
  // Nothing listens on port 1: kUnavailable, not a crash.
  EXPECT_EQ(Open("etcd://127.0.0.1:1").status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ordo::testing
