#include "ordo/scoped_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

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

// A Locker whose renewals fail as if the backend were unreachable; everything else is the real
// inproc backend.
class UnreachableRenewals final : public Locker {
 public:
  explicit UnreachableRenewals(Locker& real) : real_(real) {}
  Result<Lease> Acquire(const LockRequest& r) override { return real_.Acquire(r); }
  Result<Lease> Renew(const Lease&, std::chrono::milliseconds) override {
    renewals.fetch_add(1);
    return UnavailableError("backend unreachable");
  }
  Status Release(const Lease& l) override { return real_.Release(l); }
  Result<LockState> Describe(std::string_view n) override { return real_.Describe(n); }
  Result<std::vector<LockState>> List(std::string_view p, std::size_t l) override {
    return real_.List(p, l);
  }
  Status Ping() override { return UnavailableError("down"); }
  LockerTraits traits() const override { return real_.traits(); }
  FencedStore& fenced() override { return real_.fenced(); }
  VersionedStore& objects() override { return real_.objects(); }
  std::atomic<int> renewals{0};

 private:
  Locker& real_;
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

}  // namespace
}  // namespace ordo
