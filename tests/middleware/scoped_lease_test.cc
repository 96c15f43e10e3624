#include "ordo/scoped_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "ordo/ordo.h"

namespace ordo {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Locker> Inproc() { return std::move(*Open("inproc:")); }

TEST(ScopedLeaseTest, ReleasesOnDestruction) {
  auto locker = Inproc();
  {
    auto scoped = ScopedLease::Acquire(*locker, {.name = "job"});
    ASSERT_TRUE(scoped.ok());
    EXPECT_EQ(locker->Acquire({.name = "job"}).status().code(), StatusCode::kLockHeld);
  }
  auto again = locker->Acquire({.name = "job"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE(locker->Release(*again).ok());
}

TEST(ScopedLeaseTest, MoveTransfersOwnership) {
  auto locker = Inproc();
  auto scoped = ScopedLease::Acquire(*locker, {.name = "moved"});
  ASSERT_TRUE(scoped.ok());
  ScopedLease moved = std::move(*scoped);
  EXPECT_GT(moved.token(), 0u);
  EXPECT_EQ(locker->Acquire({.name = "moved"}).status().code(), StatusCode::kLockHeld);
  ASSERT_TRUE(moved.Release().ok());
  EXPECT_TRUE(moved.Release().ok()) << "Release is idempotent";
  auto again = locker->Acquire({.name = "moved"});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(locker->Release(*again).ok());
}

TEST(ScopedLeaseTest, KeepAliveHoldsPastTheTtl) {
  auto locker = Inproc();
  ScopedLease::Options options;
  options.keep_alive = true;
  auto scoped = ScopedLease::Acquire(*locker, {.name = "long", .ttl = 150ms}, options);
  ASSERT_TRUE(scoped.ok());
  // A waiter that would get the lock the moment the lease expired must time out: the
  // keep-alive renews every 50 ms for the whole 600 ms wait.
  auto other = locker->Acquire({.name = "long", .ttl = 1s, .wait = 600ms});
  EXPECT_EQ(other.status().code(), StatusCode::kLockHeld);
  EXPECT_FALSE(scoped->lost());
  ASSERT_TRUE(scoped->Release().ok());
}

// A lease granted after a wait longer than its TTL is not lost at once: its expiry is bounded
// from when it was granted (confirmed by a renewal), not from when the wait began.
TEST(ScopedLeaseTest, KeepAliveAfterAWaitLongerThanTheTtl) {
  auto locker = Inproc();
  auto holder = locker->Acquire({.name = "waited", .ttl = 10s});
  ASSERT_TRUE(holder.ok());
  ScopedLease::Options options;
  options.keep_alive = true;
  auto waiter = std::async(std::launch::async, [&] {
    return ScopedLease::Acquire(*locker, {.name = "waited", .ttl = 200ms, .wait = 10s}, options);
  });
  std::this_thread::sleep_for(500ms);  // the wait outlasts the waiter's TTL
  ASSERT_TRUE(locker->Release(*holder).ok());
  auto scoped = waiter.get();
  ASSERT_TRUE(scoped.ok()) << scoped.status().ToString();
  // Kept alive past a TTL and a half: a loss at once would show here.
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(scoped->lost());
  EXPECT_EQ(locker->Acquire({.name = "waited"}).status().code(), StatusCode::kLockHeld);
  ASSERT_TRUE(scoped->Release().ok());
}

// The real inproc backend, with Renew left to the subclass (an unreachable or hung backend).
class ForwardingLocker : public Locker {
 public:
  explicit ForwardingLocker(Locker& real) : real_(real) {}
  Result<Lease> Acquire(const LockRequest& r) override { return real_.Acquire(r); }
  Status Release(const Lease& l) override { return real_.Release(l); }
  Result<LockState> Describe(std::string_view n) override { return real_.Describe(n); }
  Result<std::vector<LockState>> List(std::string_view p, std::size_t l) override {
    return real_.List(p, l);
  }
  Status Ping() override { return real_.Ping(); }
  LockerTraits traits() const override { return real_.traits(); }
  FencedStore& fenced() override { return real_.fenced(); }
  VersionedStore& objects() override { return real_.objects(); }

 private:
  Locker& real_;
};

// Renewals fail as if the backend were unreachable.
class UnreachableRenewals final : public ForwardingLocker {
 public:
  using ForwardingLocker::ForwardingLocker;
  Result<Lease> Renew(const Lease&, std::chrono::milliseconds) override {
    renewals.fetch_add(1);
    return UnavailableError("backend unreachable");
  }
  std::atomic<int> renewals{0};
};

TEST(ScopedLeaseTest, SelfFencesBeforeTheLeaseExpires) {
  auto real = Inproc();
  UnreachableRenewals flaky(*real);
  std::promise<std::chrono::steady_clock::time_point> lost_at;
  ScopedLease::Options options;
  options.keep_alive = true;
  options.on_lost = [&](const Status& why) {
    EXPECT_EQ(why.code(), StatusCode::kLeaseLost);
    lost_at.set_value(std::chrono::steady_clock::now());
  };
  const auto start = std::chrono::steady_clock::now();
  auto scoped = ScopedLease::Acquire(flaky, {.name = "fence", .ttl = 300ms}, options);
  ASSERT_TRUE(scoped.ok());
  const auto when = lost_at.get_future().get();
  EXPECT_TRUE(scoped->lost());
  EXPECT_LT(when - start, 300ms) << "loss must be declared before the server-side expiry";
  EXPECT_GE(flaky.renewals.load(), 2) << "passing failures are retried";
  EXPECT_EQ(scoped->Release().code(), StatusCode::kLeaseLost);
}

TEST(ScopedLeaseTest, ReportsLossWhenTheBackendSaysSo) {
  auto locker = Inproc();
  std::mutex mu;
  std::condition_variable cv;
  bool lost = false;
  ScopedLease::Options options;
  options.keep_alive = true;
  options.renew_every = 20ms;
  options.on_lost = [&](const Status& why) {
    EXPECT_EQ(why.code(), StatusCode::kLeaseLost);
    std::lock_guard<std::mutex> lock(mu);
    lost = true;
    cv.notify_all();
  };
  auto scoped = ScopedLease::Acquire(*locker, {.name = "taken", .ttl = 10s}, options);
  ASSERT_TRUE(scoped.ok());
  // Someone releases the lease behind the holder's back (as an operator's force-release would).
  ASSERT_TRUE(locker->Release(scoped->lease()).ok());
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return lost; }));
  EXPECT_TRUE(scoped->lost());
}

// Renew hangs (a dead server that never answers) until the test lets it go.
class HangingRenewals final : public ForwardingLocker {
 public:
  using ForwardingLocker::ForwardingLocker;
  ~HangingRenewals() override { Unblock(); }
  Result<Lease> Renew(const Lease&, std::chrono::milliseconds) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return unblocked_; });
    return UnavailableError("timed out");
  }
  void Unblock() {
    std::lock_guard<std::mutex> lock(mu_);
    unblocked_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool unblocked_ = false;  // guarded by mu_
};

TEST(ScopedLeaseTest, SelfFencesWhileARenewalHangs) {
  auto real = Inproc();
  HangingRenewals hanging(*real);
  std::promise<std::chrono::steady_clock::time_point> lost_at;
  ScopedLease::Options options;
  options.keep_alive = true;
  options.fence_early = 100ms;
  options.on_lost = [&](const Status&) { lost_at.set_value(std::chrono::steady_clock::now()); };
  const auto start = std::chrono::steady_clock::now();
  auto scoped = ScopedLease::Acquire(hanging, {.name = "hang", .ttl = 600ms}, options);
  ASSERT_TRUE(scoped.ok());
  EXPECT_LE(scoped->fence_deadline(), start + 600ms);
  const auto when = lost_at.get_future().get();
  // The deadline is 540 ms after the acquisition; fence_early moves the report 100 ms earlier,
  // although the renewal sent at 200 ms never came back.
  EXPECT_LT(when - start, 540ms);
  EXPECT_GE(when - start, 300ms);
  EXPECT_TRUE(scoped->lost());
  hanging.Unblock();
  EXPECT_EQ(scoped->Release().code(), StatusCode::kLeaseLost);
}

TEST(ScopedLeaseTest, DetachKeepsTheLeaseHeld) {
  auto locker = Inproc();
  ScopedLease::Options options;
  options.keep_alive = true;
  auto scoped = ScopedLease::Acquire(*locker, {.name = "detached", .ttl = 200ms}, options);
  ASSERT_TRUE(scoped.ok());
  auto lease = scoped->Detach();
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->token, scoped->token());
  EXPECT_TRUE(scoped->Release().ok()) << "Release after Detach does nothing";
  EXPECT_EQ(locker->Acquire({.name = "detached"}).status().code(), StatusCode::kLockHeld);
  // Nobody renews it any more: it expires by its TTL.
  auto later = locker->Acquire({.name = "detached", .wait = 2s});
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_GT(later->token, lease->token);
  ASSERT_TRUE(locker->Release(*later).ok());
}

}  // namespace
}  // namespace ordo
