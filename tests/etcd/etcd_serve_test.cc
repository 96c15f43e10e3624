// `ordo serve --backend etcd://…`: two server replicas in front of one etcd, reached through
// the http:// backend. Each replica keeps no state of its own, so a lock taken through one is
// held, released and waited for through the other.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <string>
#include <thread>

#include "etcd_cluster.h"
#include "ordo/ordo.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// A running `ordo serve` on a free loopback port, stopped (SIGTERM) by the destructor.
class Replica {
 public:
  explicit Replica(const std::string& backend)
      : port_(FreeLoopbackPort()),
        child_(std::vector<std::string>{ORDO_BINARY, "serve", "--backend", backend, "--listen",
                                        "127.0.0.1:" + std::to_string(port_)},
               /*kill_with_parent=*/true) {}
  ~Replica() {
    child_.Kill(SIGTERM);
    child_.Wait();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Opens the http:// backend once the server answers (bounded poll of its readiness).
  std::unique_ptr<Locker> Connect() {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto locker = Open(url());
      if (locker.ok() && (*locker)->Ping().ok()) return std::move(*locker);
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "ordo serve on " << url() << " never became ready";
    return nullptr;
  }

 private:
  int port_;
  Child child_;
};

TEST(EtcdServeTest, TwoReplicasOverOneEtcdShareLocksStoresAndWakeUps) {
  EtcdCluster etcd(1);
  Replica one(etcd.Url());
  Replica two(etcd.Url());
  auto a = one.Connect();
  auto b = two.Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::string lock = UniqueName("serve");
  auto held = a->Acquire({.name = lock, .ttl = 30s, .owner = "replica-one-client"});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(b->Acquire({.name = lock}).status().code(), StatusCode::kLockHeld);
  auto state = b->Describe(lock);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].owner, "replica-one-client");
  EXPECT_EQ(state->holders[0].token, held->token);
  // A strict fenced write through the other replica sees the same holder.
  ASSERT_TRUE(b->fenced().Write("serve-key", "v1", held->token, lock).ok());
  // A waiter on replica two is woken by a release on replica one.
  Result<Lease> waited = InternalError("not run");
  std::thread waiter([&] { waited = b->Acquire({.name = lock, .ttl = 30s, .wait = 20s}); });
  std::this_thread::sleep_for(200ms);  // let the waiter queue up; it must be granted either way
  ASSERT_TRUE(a->Release(*held).ok());
  waiter.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_GT(waited->token, held->token);
  auto late = a->fenced().Write("serve-key", "late", held->token, lock);
  EXPECT_EQ(late.status().code(), StatusCode::kStaleToken) << late.status().ToString();
  EXPECT_TRUE(a->Release(*waited).ok()) << "a release by token works through any replica";
  auto v1 = a->objects().CompareAndSwap("serve-obj", 0, R"({"n":1})");
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(b->objects().CompareAndSwap("serve-obj", 0, "{}").status().code(),
            StatusCode::kVersionMismatch);
}

}  // namespace
}  // namespace ordo::testing

namespace ordo::testing {
namespace {

// Locker::Watch on etcd is an etcd watch of the lock's keys: every acquisition and release is
// reported, and destroying the subscription stops the callbacks.
TEST(EtcdWatchTest, WatchReportsAcquireAndReleaseAndStopsOnDestruction) {
  EtcdCluster etcd(1);
  auto opened = Open(etcd.Url());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Locker& locker = **opened;
  const std::string lock = UniqueName("watch");
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  auto subscription = locker.Watch(lock, [&] {
    std::lock_guard<std::mutex> guard(mu);
    ++calls;
    cv.notify_all();
  });
  ASSERT_NE(subscription, nullptr);
  auto wait_for_calls = [&](int n) {
    std::unique_lock<std::mutex> guard(mu);
    return cv.wait_for(guard, 10s, [&] { return calls >= n; });
  };
  auto lease = locker.Acquire({.name = lock});
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_TRUE(wait_for_calls(1)) << "the acquisition was not reported";
  int before_release;
  {
    std::lock_guard<std::mutex> guard(mu);
    before_release = calls;
  }
  ASSERT_TRUE(locker.Release(*lease).ok());
  EXPECT_TRUE(wait_for_calls(before_release + 1)) << "the release was not reported";
  subscription.reset();
  int after_reset;
  {
    std::lock_guard<std::mutex> guard(mu);
    after_reset = calls;
  }
  auto again = locker.Acquire({.name = lock});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(locker.Release(*again).ok());
  std::lock_guard<std::mutex> guard(mu);
  EXPECT_EQ(calls, after_reset) << "a callback ran after the subscription was destroyed";
}

}  // namespace
}  // namespace ordo::testing
