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
#include <future>
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

// Permits are released in any order: a waiter must be let in by whichever holder goes first, at
// once (the waiter's key is kept alive every 10 s here, so a missed wake-up shows as a wait of
// 10 s), and the waiter behind it must follow when the next holder goes.
TEST(EtcdQueueTest, PermitWaitersAreLetInByWhicheverHolderReleases) {
  EtcdCluster cluster(1);
  auto a = Open(cluster.Url());
  auto b = Open(cluster.Url());
  auto w1 = Open(cluster.Url());
  auto w2 = Open(cluster.Url());
  ASSERT_TRUE(a.ok() && b.ok() && w1.ok() && w2.ok());
  const std::string lock = UniqueName("permits");
  const LockRequest permit{.name = lock, .ttl = 30s, .limit = 2};
  auto first = (*a)->Acquire(permit);
  auto second = (*b)->Acquire(permit);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->slot, 0u);
  EXPECT_EQ(second->slot, 1u);
  std::set<std::string> known = LeasesWithKeys(cluster);
  LockRequest waiting = permit;
  waiting.wait = 20s;
  std::promise<Result<Lease>> p1;
  std::promise<Result<Lease>> p2;
  auto f1 = p1.get_future();
  auto f2 = p2.get_future();
  std::thread t1([&] { p1.set_value((*w1)->Acquire(waiting)); });
  const std::string w1_id = NewQueueEntry(cluster, known);
  known.insert(w1_id);
  std::thread t2([&] { p2.set_value((*w2)->Acquire(waiting)); });
  const std::string w2_id = NewQueueEntry(cluster, known);
  // The younger holder goes first: the first waiter takes its slot.
  const auto start = std::chrono::steady_clock::now();
  const Status released_second = (*b)->Release(*second);
  const bool w1_in = f1.wait_for(3s) == std::future_status::ready;
  const auto w1_after = std::chrono::steady_clock::now() - start;
  const bool w2_early = f2.wait_for(300ms) == std::future_status::ready;
  const Status released_first = (*a)->Release(*first);
  const bool w2_in = f2.wait_for(3s) == std::future_status::ready;
  t1.join();
  t2.join();
  ASSERT_FALSE(w1_id.empty() || w2_id.empty()) << "the waiters never joined the queue";
  ASSERT_TRUE(released_second.ok() && released_first.ok());
  EXPECT_TRUE(w1_in) << "the first waiter slept through a release";
  EXPECT_LT(w1_after, 3s);
  EXPECT_FALSE(w2_early) << "three permits of limit 2 were held at once";
  EXPECT_TRUE(w2_in) << "the second waiter slept through a release";
  Result<Lease> g1 = f1.get();
  Result<Lease> g2 = f2.get();
  ASSERT_TRUE(g1.ok()) << g1.status().ToString();
  ASSERT_TRUE(g2.ok()) << g2.status().ToString();
  EXPECT_EQ(g1->slot, 1u) << "the released slot";
  EXPECT_EQ(g2->slot, 0u);
  EXPECT_GT(g1->token, second->token);
  EXPECT_GT(g2->token, g1->token);
  EXPECT_TRUE((*w1)->Release(*g1).ok());
  EXPECT_TRUE((*w2)->Release(*g2).ok());
}

// A permit's slot key lives on its holder's lease: a Renew with another ttl moves both to a new
// lease (else the old lease's revocation would free a slot still held), and a release by token
// from another Locker deletes both (else the slot would stay taken until the lease ran out).
TEST(EtcdQueueTest, PermitSlotFollowsItsHolderAcrossRenewAndForeignRelease) {
  EtcdCluster cluster(1);
  auto a = Open(cluster.Url());
  auto b = Open(cluster.Url());
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string lock = UniqueName("slots");
  const LockRequest permit{.name = lock, .ttl = 30s, .limit = 3};
  auto first = (*a)->Acquire(permit);
  auto second = (*a)->Acquire(permit);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(first->slot, 0u);
  auto renewed = (*a)->Renew(*first, 60s);  // another whole number of seconds: a new lease
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->slot, 0u);
  auto third = (*b)->Acquire(permit);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->slot, 2u) << "slot 0 is still held by the renewed permit";
  // b releases a's second permit by its token (b never held it): its slot comes free at once.
  ASSERT_TRUE((*b)->Release(*second).ok());
  auto fourth = (*b)->Acquire(permit);
  ASSERT_TRUE(fourth.ok()) << fourth.status().ToString();
  EXPECT_EQ(fourth->slot, 1u);
  auto state = (*a)->Describe(lock);
  ASSERT_TRUE(state.ok());
  std::set<std::uint32_t> slots;
  for (const Holder& h : state->holders) slots.insert(h.slot);
  EXPECT_EQ(slots, (std::set<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(state->limit, 3u);
  EXPECT_TRUE((*a)->Release(*renewed).ok());
  EXPECT_TRUE((*b)->Release(*third).ok());
  EXPECT_TRUE((*b)->Release(*fourth).ok());
}

}  // namespace
}  // namespace ordo::testing
