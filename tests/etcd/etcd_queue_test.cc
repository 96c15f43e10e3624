// The etcd:// waiting queue under changes a waiter does not watch. A waiter watches only its
// predecessor's key; a change to that key is a reason to read the queue again, never a grant
// by itself:
//   - the predecessor may be a waiter that gave up while an older key still holds the lock;
//   - the waiter's own key may be gone (its lease ended: revoked, or expired while a member was
//     paused), so that a later acquirer already holds the lock.
// Both tests fail when WaitTurn acts on the predecessor's deletion without that read.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "etcd_cluster.h"
#include "ordo/ordo.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// The IDs of the leases that carry a key (one queue entry each), as etcd reports them.
std::set<std::string> LeasesWithKeys(const EtcdCluster& cluster) {
  std::set<std::string> out;
  const json list = json::parse(cluster.Call(0, "/v3/lease/leases", "{}"), nullptr, false);
  if (!list.is_object() || !list.contains("leases")) return out;
  for (const auto& lease : list["leases"]) {
    if (!lease.contains("ID")) continue;
    const std::string id = lease["ID"].is_string() ? lease["ID"].get<std::string>()
                                                   : std::to_string(lease["ID"].get<long long>());
    const json ttl = json::parse(
        cluster.Call(0, "/v3/lease/timetolive", json{{"ID", id}, {"keys", true}}.dump()),
        nullptr, false);
    if (ttl.is_object() && ttl.contains("keys") && !ttl["keys"].empty()) out.insert(id);
  }
  return out;
}

// Waits (bounded) until a lease with a key appears that is not in `known`: a waiter joined the
// queue. "" if none did within 10 s.
std::string NewQueueEntry(const EtcdCluster& cluster, const std::set<std::string>& known) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const std::string& id : LeasesWithKeys(cluster)) {
      if (known.count(id) == 0) return id;
    }
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

TEST(EtcdQueueTest, WaiterWhoseOwnKeyVanishedIsNotGrantedWhenThePredecessorGoes) {
  EtcdCluster cluster(1);
  auto a = Open(cluster.Url());
  auto w = Open(cluster.Url());
  auto x = Open(cluster.Url());
  ASSERT_TRUE(a.ok() && w.ok() && x.ok());
  const std::string lock = UniqueName("vanish");
  auto held = (*a)->Acquire({.name = lock, .ttl = 30s});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  const std::set<std::string> before = LeasesWithKeys(cluster);
  Result<Lease> waited = InternalError("not run");
  std::thread waiter([&] { waited = (*w)->Acquire({.name = lock, .ttl = 30s, .wait = 20s}); });
  // The waiter's lease ends behind its back (as when it expired during a member's pause); the
  // waiter watches only the holder's key, which goes right after.
  const std::string id = NewQueueEntry(cluster, before);
  if (!id.empty()) cluster.Call(0, "/v3/lease/revoke", json{{"ID", id}}.dump());
  const Status released = (*a)->Release(*held);
  waiter.join();
  ASSERT_FALSE(id.empty()) << "the waiter never joined the queue";
  ASSERT_TRUE(released.ok()) << released.ToString();
  // The lock is free: a newcomer takes it at once. Had the waiter been granted on the holder's
  // deletion, both would now hold it.
  auto next = (*x)->Acquire({.name = lock, .ttl = 30s});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_FALSE(waited.ok()) << "granted token " << waited->token << " with no key in etcd, while "
                            << "token " << next->token << " holds the lock too";
  EXPECT_EQ(waited.status().code(), StatusCode::kUnavailable) << waited.status().ToString();
  EXPECT_TRUE((*x)->Release(*next).ok());
}

TEST(EtcdQueueTest, WaiterBehindAWaiterThatGivesUpKeepsWaitingForTheHolder) {
  EtcdCluster cluster(1);
  auto a = Open(cluster.Url());
  auto b = Open(cluster.Url());
  auto c = Open(cluster.Url());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const std::string lock = UniqueName("leaver");
  auto held = (*a)->Acquire({.name = lock, .ttl = 30s});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  std::set<std::string> known = LeasesWithKeys(cluster);
  // B queues behind A and gives up after 1.5 s; C queues behind B (it watches B's key).
  Result<Lease> gave_up = InternalError("not run");
  std::thread leaver(
      [&] { gave_up = (*b)->Acquire({.name = lock, .ttl = 30s, .wait = 1500ms}); });
  const std::string b_id = NewQueueEntry(cluster, known);
  known.insert(b_id);
  std::mutex mu;
  std::condition_variable cv;
  bool c_done = false;  // guarded by mu
  Result<Lease> granted = InternalError("not run");
  std::thread follower([&] {
    Result<Lease> r = (*c)->Acquire({.name = lock, .ttl = 30s, .wait = 20s});
    std::lock_guard<std::mutex> guard(mu);
    granted = std::move(r);
    c_done = true;
    cv.notify_all();
  });
  const std::string c_id = NewQueueEntry(cluster, known);
  leaver.join();  // B left the queue: its key, C's predecessor, is deleted
  bool early = false;
  {
    std::unique_lock<std::mutex> guard(mu);
    // C must go on waiting while A holds; a grant on B's deletion would come at once.
    early = cv.wait_for(guard, 1500ms, [&] { return c_done; });
  }
  const Status released = (*a)->Release(*held);
  {
    std::unique_lock<std::mutex> guard(mu);
    cv.wait_for(guard, 20s, [&] { return c_done; });
  }
  follower.join();
  ASSERT_FALSE(b_id.empty() || c_id.empty()) << "the waiters never joined the queue";
  EXPECT_EQ(gave_up.status().code(), StatusCode::kLockHeld) << gave_up.status().ToString();
  EXPECT_FALSE(early) << "granted while token " << held->token << " still held the lock";
  ASSERT_TRUE(released.ok()) << released.ToString();
  ASSERT_TRUE(granted.ok()) << granted.status().ToString();
  EXPECT_GT(granted->token, held->token);
  EXPECT_TRUE((*c)->Release(*granted).ok());
}

}  // namespace
}  // namespace ordo::testing
