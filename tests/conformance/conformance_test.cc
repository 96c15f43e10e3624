// The conformance suite: DESIGN.md's invariants, asserted the same way for every backend.
#include "conformance.h"

#include <gmock/gmock.h>

#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "test_support.h"

namespace ordo::testing {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

void ConformanceTest::SetUp() {
  url_ = GetParam().url();
  auto opened = Open(url_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  locker_ = std::move(*opened);
}

std::string ConformanceTest::Name(const std::string& base) { return UniqueName(base); }

std::unique_ptr<Locker> ConformanceTest::OpenAnother() {
  auto opened = Open(url_);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(*opened) : nullptr;
}

namespace {

LockRequest Exclusive(const std::string& name, std::chrono::milliseconds wait = 0ms,
                      std::chrono::milliseconds ttl = 30s) {
  return {.name = name, .mode = LockMode::kExclusive, .ttl = ttl, .wait = wait};
}
LockRequest Shared(const std::string& name, std::chrono::milliseconds wait = 0ms) {
  return {.name = name, .mode = LockMode::kShared, .ttl = 30s, .wait = wait};
}

#define ASSERT_OK(expr)                                         \
  do {                                                          \
    const auto& ordo_r_ = (expr);                               \
    ASSERT_TRUE(ordo_r_.ok()) << ResultStatus(ordo_r_).ToString(); \
  } while (false)

inline const Status& ResultStatus(const Status& s) { return s; }
template <typename T>
const Status& ResultStatus(const Result<T>& r) {
  return r.status();
}

std::string WorkerPath() { return ORDO_TEST_WORKER; }

// ---------------------------------------------------------------------------------------------
// Invariant 1: mutual exclusion, and the basic lifecycle.

TEST_P(ConformanceTest, SecondExclusiveAcquireIsLockHeldEvenForSameOwner) {
  const std::string name = Name("excl");
  auto first = locker_->Acquire({.name = name, .owner = "me"});
  ASSERT_OK(first);
  auto second = locker_->Acquire({.name = name, .owner = "me"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kLockHeld) << second.status().ToString();
  auto other = OpenAnother();
  auto third = other->Acquire(Exclusive(name));
  EXPECT_EQ(third.status().code(), StatusCode::kLockHeld);
  ASSERT_OK(locker_->Release(*first));
  auto again = other->Acquire(Exclusive(name));
  ASSERT_OK(again);
  ASSERT_OK(other->Release(*again));
}

TEST_P(ConformanceTest, LeaseReportsRequestAndDefaults) {
  const std::string name = Name("fields");
  auto lease = locker_->Acquire({.name = name, .mode = LockMode::kExclusive, .ttl = 5s});
  ASSERT_OK(lease);
  EXPECT_EQ(lease->name, name);
  EXPECT_GT(lease->token, 0u);
  EXPECT_EQ(lease->mode, LockMode::kExclusive);
  EXPECT_EQ(lease->ttl, 5s);
  EXPECT_FALSE(lease->owner.empty()) << "a default owner must be assigned";
  EXPECT_GT(lease->expires_at, std::chrono::system_clock::now() - 1min);
  auto named = locker_->Acquire({.name = Name("fields2"), .owner = "job-7"});
  ASSERT_OK(named);
  EXPECT_EQ(named->owner, "job-7");
  ASSERT_OK(locker_->Release(*lease));
  ASSERT_OK(locker_->Release(*named));
}

TEST_P(ConformanceTest, SharedHoldersCoexistAndExcludeExclusive) {
  const std::string name = Name("shared");
  auto other = OpenAnother();
  auto a = locker_->Acquire(Shared(name));
  ASSERT_OK(a);
  auto b = other->Acquire(Shared(name));
  ASSERT_OK(b);
  EXPECT_NE(a->token, b->token);
  EXPECT_EQ(other->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld);
  ASSERT_OK(locker_->Release(*a));
  EXPECT_EQ(locker_->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld);
  ASSERT_OK(other->Release(*b));
  auto x = locker_->Acquire(Exclusive(name));
  ASSERT_OK(x);
  EXPECT_EQ(other->Acquire(Shared(name)).status().code(), StatusCode::kLockHeld);
  ASSERT_OK(locker_->Release(*x));
}

TEST_P(ConformanceTest, ReleaseTwiceIsLeaseLost) {
  const std::string name = Name("rel");
  auto lease = locker_->Acquire(Exclusive(name));
  ASSERT_OK(lease);
  ASSERT_OK(locker_->Release(*lease));
  Status again = locker_->Release(*lease);
  EXPECT_EQ(again.code(), StatusCode::kLeaseLost) << again.ToString();
}

TEST_P(ConformanceTest, RenewKeepsTokenAndFailsAfterRelease) {
  const std::string name = Name("renew");
  auto lease = locker_->Acquire(Exclusive(name, 0ms, 1s));
  ASSERT_OK(lease);
  auto renewed = locker_->Renew(*lease, 20s);
  ASSERT_OK(renewed);
  EXPECT_EQ(renewed->token, lease->token);
  EXPECT_EQ(renewed->ttl, 20s);
  EXPECT_GT(renewed->expires_at, lease->expires_at);
  EXPECT_EQ(locker_->Renew(*lease, 5ms).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK(locker_->Release(*renewed));
  EXPECT_EQ(locker_->Renew(*lease, 20s).status().code(), StatusCode::kLeaseLost);
}

TEST_P(ConformanceTest, ReleaseOfAnotherHoldersTokenIsLeaseLost) {
  const std::string name = Name("foreign");
  auto lease = locker_->Acquire(Exclusive(name));
  ASSERT_OK(lease);
  Lease forged = *lease;
  forged.token += 1000;
  EXPECT_EQ(locker_->Release(forged).code(), StatusCode::kLeaseLost);
  EXPECT_EQ(locker_->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld)
      << "a forged release must not free the lock";
  ASSERT_OK(locker_->Release(*lease));
}

TEST_P(ConformanceTest, DescribeShowsHoldersAndLastToken) {
  const std::string name = Name("desc");
  EXPECT_EQ(locker_->Describe(name).status().code(), StatusCode::kNotFound);
  auto a = locker_->Acquire({.name = name, .mode = LockMode::kShared, .owner = "alpha"});
  ASSERT_OK(a);
  auto b = locker_->Acquire({.name = name, .mode = LockMode::kShared, .owner = "beta"});
  ASSERT_OK(b);
  auto state = locker_->Describe(name);
  ASSERT_OK(state);
  EXPECT_EQ(state->name, name);
  EXPECT_EQ(state->last_token, b->token);
  std::set<std::string> owners;
  for (const auto& h : state->holders) {
    owners.insert(h.owner);
    EXPECT_EQ(h.mode, LockMode::kShared);
  }
  EXPECT_EQ(owners, (std::set<std::string>{"alpha", "beta"}));
  ASSERT_OK(locker_->Release(*a));
  ASSERT_OK(locker_->Release(*b));
  state = locker_->Describe(name);
  ASSERT_OK(state);
  EXPECT_TRUE(state->holders.empty());
  EXPECT_EQ(state->last_token, b->token) << "the last token survives release";
}

TEST_P(ConformanceTest, ListFiltersByPrefixAndCaps) {
  const std::string prefix = Name("list");
  std::vector<Lease> leases;
  for (int i = 0; i < 3; ++i) {
    auto l = locker_->Acquire(Exclusive(prefix + ".item" + std::to_string(i)));
    ASSERT_OK(l);
    leases.push_back(*l);
  }
  auto other = locker_->Acquire(Exclusive(Name("unrelated")));
  ASSERT_OK(other);
  auto all = locker_->List(prefix, 100);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, prefix + ".item0");
  EXPECT_EQ((*all)[2].name, prefix + ".item2");
  auto capped = locker_->List(prefix, 2);
  ASSERT_OK(capped);
  EXPECT_EQ(capped->size(), 2u);
  for (auto& l : leases) ASSERT_OK(locker_->Release(l));
  ASSERT_OK(locker_->Release(*other));
}

TEST_P(ConformanceTest, WaitingAcquireIsGrantedOnRelease) {
  const std::string name = Name("wait");
  auto held = locker_->Acquire(Exclusive(name));
  ASSERT_OK(held);
  auto other = OpenAnother();
  std::atomic<bool> granted{false};
  Result<Lease> waited = InternalError("not run");
  std::thread waiter([&] {
    waited = other->Acquire(Exclusive(name, 30s));
    granted = waited.ok();
  });
  // Whether the waiter is already blocked or not yet started, it must end up holding the lock
  // after this release, well within its wait.
  ASSERT_OK(locker_->Release(*held));
  waiter.join();
  ASSERT_TRUE(granted.load()) << waited.status().ToString();
  EXPECT_GT(waited->token, held->token);
  ASSERT_OK(other->Release(*waited));
}

TEST_P(ConformanceTest, WaitElapsesWhileHeld) {
  const std::string name = Name("elapse");
  auto held = locker_->Acquire(Exclusive(name));
  ASSERT_OK(held);
  const auto start = std::chrono::steady_clock::now();
  auto waited = locker_->Acquire(Exclusive(name, 300ms));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(waited.status().code(), StatusCode::kLockHeld);
  EXPECT_GE(took, 250ms) << "the acquire must wait for its whole wait";
  ASSERT_OK(locker_->Release(*held));
}

// ---------------------------------------------------------------------------------------------
// Waiting: woken by the backend's wake-up source, never by spinning. The one allowed poll
// (traits().recheck: SQLite across processes) is bounded by its period.

std::chrono::nanoseconds ThreadCpuTime() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// True once thread `tid` of this process sleeps in the kernel (state S), polled with a
// deadline: that is where a waiter must be between its tries.
bool ThreadSleepsWithin(pid_t tid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat(path);
    std::string text;
    std::getline(stat, text);
    const auto paren = text.rfind(')');
    if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'S') {
      return true;
    }
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST_P(ConformanceTest, WaitingBlocksWithoutSpinning) {
  const std::string name = Name("spin");
  auto held = locker_->Acquire(Exclusive(name));
  ASSERT_OK(held);
  auto other = OpenAnother();
  std::chrono::nanoseconds cpu{0};
  std::chrono::steady_clock::duration took{};
  StatusCode code = StatusCode::kOk;
  std::thread waiter([&] {
    const auto cpu0 = ThreadCpuTime();
    const auto t0 = std::chrono::steady_clock::now();
    code = other->Acquire(Exclusive(name, 1s)).status().code();
    took = std::chrono::steady_clock::now() - t0;
    cpu = ThreadCpuTime() - cpu0;
  });
  waiter.join();
  EXPECT_EQ(code, StatusCode::kLockHeld);
  EXPECT_GE(took, 950ms);
  // A backend that re-checks does at most one try per period (plus its first, shorter ones):
  // a few dozen short transactions in a second, far below a spinning loop's full core.
  EXPECT_LT(cpu, 60ms) << "a 1 s wait burned " << cpu.count() / 1000 << " us of CPU (recheck "
                       << locker_->traits().recheck.count() << " ms)";
  ASSERT_OK(locker_->Release(*held));
}

TEST_P(ConformanceTest, ReleaseInAnotherProcessWakesASleepingWaiterWithinTheBound) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "locks of one process only";
  const std::string name = Name("wake");
  Child holder({WorkerPath(), "hold", url_, name, "exclusive", "30000"});
  const std::string line = holder.ReadLine();
  ASSERT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
  std::atomic<pid_t> tid{0};
  Result<Lease> waited = InternalError("not run");
  std::chrono::steady_clock::time_point granted_at;
  std::thread waiter([&] {
    tid = gettid();
    waited = locker_->Acquire(Exclusive(name, 30s));
    granted_at = std::chrono::steady_clock::now();
  });
  while (tid.load() == 0) std::this_thread::yield();
  const bool sleeping = ThreadSleepsWithin(tid.load(), 10s);
  const auto released_at = std::chrono::steady_clock::now();
  holder.WriteLine("release");
  EXPECT_EQ(holder.ReadLine(), "released");
  waiter.join();
  ASSERT_TRUE(sleeping) << "the waiter never slept";
  ASSERT_OK(waited);
  // Notified backends hand over in milliseconds; a re-checking one within its period. The
  // margin is for a loaded machine, not for polling.
  const auto bound = locker_->traits().recheck + 400ms;
  EXPECT_LT(granted_at - released_at, bound)
      << "woken after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(granted_at - released_at).count()
      << " ms";
  ASSERT_OK(locker_->Release(*waited));
}

TEST_P(ConformanceTest, WatchIsCalledWhenTheLockIsReleased) {
  const std::string name = Name("watch");
  auto held = locker_->Acquire(Exclusive(name));
  ASSERT_OK(held);
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  auto other = OpenAnother();
  auto subscription = other->Watch(name, [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    cv.notify_all();
  });
  if (subscription == nullptr) {
    ASSERT_OK(locker_->Release(*held));
    GTEST_SKIP() << "this backend has no notification source (Watch returns nullptr)";
  }
  ASSERT_OK(locker_->Release(*held));
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 5s, [&] { return calls > 0; }))
        << "no callback within 5 s of the release";
  }
  subscription.reset();
  // After the Subscription is gone the callback is never called again.
  const int before = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }();
  auto again = locker_->Acquire(Exclusive(name));
  ASSERT_OK(again);
  ASSERT_OK(locker_->Release(*again));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(calls, before);
}

TEST_P(ConformanceTest, ManyThreadsNeverOverlapExclusive) {
  const std::string name = Name("threads");
  constexpr int kThreads = 8;
  constexpr int kIterations = 100;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  long counter = 0;  // deliberately unsynchronised: the lock is the only protection
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int t = 0; t < kThreads; ++t) lockers.push_back(t % 2 == 0 ? nullptr : OpenAnother());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Locker& l = lockers[t] ? *lockers[t] : *locker_;
      for (int i = 0; i < kIterations; ++i) {
        auto lease = l.Acquire(Exclusive(name, 60s));
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        if (inside.fetch_add(1) != 0) ++overlaps;
        ++counter;
        inside.fetch_sub(1);
        if (!l.Release(*lease).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, kThreads * kIterations);
}

TEST_P(ConformanceTest, ManyThreadsReadersAndWritersExclude) {
  const std::string name = Name("rw");
  constexpr int kThreads = 6;
  constexpr int kIterations = 60;
  std::atomic<int> readers{0};
  std::atomic<int> writers{0};
  std::atomic<int> violations{0};
  std::atomic<int> failures{0};
  std::atomic<int> max_readers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto own = OpenAnother();
      for (int i = 0; i < kIterations; ++i) {
        const bool write = (i + t) % 3 == 0;
        auto lease = own->Acquire(write ? Exclusive(name, 60s) : Shared(name, 60s));
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        if (write) {
          if (writers.fetch_add(1) != 0 || readers.load() != 0) ++violations;
          writers.fetch_sub(1);
        } else {
          const int r = readers.fetch_add(1) + 1;
          int m = max_readers.load();
          while (r > m && !max_readers.compare_exchange_weak(m, r)) {
          }
          if (writers.load() != 0) ++violations;
          readers.fetch_sub(1);
        }
        if (!own->Release(*lease).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(violations.load(), 0);
}

// N processes increment a plain counter file under the lock; the total must be exact. The
// control run (same workers, no lock) shows the test can fail.
class ProcessCounter {
 public:
  static long Run(const std::string& url, const std::string& lock, int processes, int total,
                  bool use_lock) {
    const std::string file = ProcessTempDir() + "/" + UniqueName("counter");
    std::vector<std::unique_ptr<Child>> children;
    for (int p = 0; p < processes; ++p) {
      std::vector<std::string> argv = {WorkerPath(), "increment", url, lock, file,
                                       std::to_string(total / processes)};
      if (!use_lock) argv.push_back("nolock");
      children.push_back(std::make_unique<Child>(argv));
    }
    for (auto& c : children) EXPECT_EQ(c->ReadLine(), "ready");
    for (auto& c : children) c->WriteLine("go");
    for (auto& c : children) {
      const int status = c->Wait();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
    }
    std::ifstream in(file);
    long value = 0;
    in >> value;
    return value;
  }
};

TEST_P(ConformanceTest, ManyProcessesNeverLoseAnIncrement) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  const int total = GetParam().process_increments;
  const long got = ProcessCounter::Run(url_, Name("procs"), 4, total, /*use_lock=*/true);
  EXPECT_EQ(got, total);
}

TEST_P(ConformanceTest, ControlRunWithoutLockLosesIncrements) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  // The same workload without the lock must lose updates, or the test above proves nothing.
  // Losing one is a matter of scheduling, so a round that happens to lose nothing is repeated;
  // ten such rounds in a row mean the test is blind.
  long got = 0;
  for (int round = 0; round < 10; ++round) {
    got = ProcessCounter::Run(url_, Name("control"), 4, 4'000, /*use_lock=*/false);
    if (got < 4'000) break;
  }
  EXPECT_LT(got, 4'000) << "the unlocked control run lost nothing: the counter test is blind";
}

// ---------------------------------------------------------------------------------------------
// Invariant 2: tokens only grow.

TEST_P(ConformanceTest, TokensStrictlyGrowAcrossModesAndReleases) {
  const std::string name = Name("tokens");
  std::uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto lease = locker_->Acquire(i % 3 == 0 ? Shared(name) : Exclusive(name));
    ASSERT_OK(lease);
    EXPECT_GT(lease->token, last);
    last = lease->token;
    ASSERT_OK(locker_->Release(*lease));
  }
  // Concurrent shared holders each get their own, larger token.
  auto a = locker_->Acquire(Shared(name));
  auto b = locker_->Acquire(Shared(name));
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_GT(a->token, last);
  EXPECT_GT(b->token, a->token);
  ASSERT_OK(locker_->Release(*a));
  ASSERT_OK(locker_->Release(*b));
}

TEST_P(ConformanceTest, TokensAreUniqueAcrossThreads) {
  const std::string name = Name("uniq");
  constexpr int kThreads = 4;
  constexpr int kIterations = 50;
  std::mutex mu;
  std::vector<std::uint64_t> tokens;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto own = OpenAnother();
      for (int i = 0; i < kIterations; ++i) {
        auto lease = own->Acquire(Exclusive(name, 60s));
        if (!lease.ok()) continue;
        {
          std::lock_guard<std::mutex> lock(mu);
          tokens.push_back(lease->token);
        }
        own->Release(*lease).IgnoreError();
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(tokens.size(), static_cast<std::size_t>(kThreads * kIterations));
  // Grants are serialised by the lock, so the order of recording is the order of issue.
  for (std::size_t i = 1; i < tokens.size(); ++i) EXPECT_GT(tokens[i], tokens[i - 1]);
}

TEST_P(ConformanceTest, HolderKilledWithSigkillFreesLockAndNextTokenIsLarger) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  const std::string name = Name("killed");
  Child holder({WorkerPath(), "hold", url_, name, "exclusive", "1000"});
  const std::string line = holder.ReadLine();
  ASSERT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
  const std::uint64_t child_token = std::stoull(line.substr(6));
  EXPECT_EQ(locker_->Acquire(Exclusive(name)).status().code(), StatusCode::kLockHeld);
  holder.Kill(SIGKILL);
  holder.Wait();
  // fd/connection-bound backends free the lock at once; lease backends after the 1 s TTL.
  auto lease = locker_->Acquire(Exclusive(name, 30s));
  ASSERT_OK(lease);
  EXPECT_GT(lease->token, child_token);
  ASSERT_OK(locker_->Release(*lease));
}

TEST_P(ConformanceTest, ExpiryFollowsTheBackendKind) {
  const std::string name = Name("expiry");
  auto short_lease = locker_->Acquire(Exclusive(name, 0ms, 100ms));
  ASSERT_OK(short_lease);
  auto other = OpenAnother();
  if (locker_->traits().expires_by_ttl) {
    // A lease backend hands the lock to the next caller once the TTL passed, with a larger
    // token, and the old holder can neither renew nor release.
    auto next = other->Acquire(Exclusive(name, 30s));
    ASSERT_OK(next);
    EXPECT_GT(next->token, short_lease->token);
    EXPECT_EQ(locker_->Renew(*short_lease, 10s).status().code(), StatusCode::kLeaseLost);
    EXPECT_EQ(locker_->Release(*short_lease).code(), StatusCode::kLeaseLost);
    ASSERT_OK(other->Release(*next));
  } else {
    // An fd/connection-bound lock outlives its nominal TTL while the holder lives.
    auto next = other->Acquire(Exclusive(name, 400ms));
    EXPECT_EQ(next.status().code(), StatusCode::kLockHeld);
    ASSERT_OK(locker_->Renew(*short_lease, 10s));
    ASSERT_OK(locker_->Release(*short_lease));
  }
}

// ---------------------------------------------------------------------------------------------
// Invariant 6: bad input gets a clear error and changes nothing.

TEST_P(ConformanceTest, BadNamesAreInvalidAndChangeNothing) {
  const std::vector<std::string> bad = {"",
                                        "../x",
                                        "/abs",
                                        std::string("a\0b", 3),
                                        std::string(129, 'a'),
                                        ".hidden",
                                        "caf\xc3\xa9",
                                        "a/b",
                                        "sp ace",
                                        ".."};
  auto before = locker_->List("", 100000);
  ASSERT_OK(before);
  for (const auto& name : bad) {
    auto r = locker_->Acquire(Exclusive(name));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "name '" << name << "'";
    EXPECT_FALSE(r.status().message().empty());
    EXPECT_EQ(locker_->Describe(name).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->fenced().Write(name, "x", 1).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(locker_->objects().CompareAndSwap(name, 0, "{}").status().code(),
              StatusCode::kInvalidArgument);
  }
  auto after = locker_->List("", 100000);
  ASSERT_OK(after);
  EXPECT_EQ(before->size(), after->size()) << "a refused request created a lock";
  std::string longest_name = Name("L");
  longest_name.resize(kMaxNameLength, 'z');  // exactly at the limit: accepted
  auto longest = locker_->Acquire(Exclusive(longest_name));
  ASSERT_OK(longest);
  ASSERT_OK(locker_->Release(*longest));
}

TEST_P(ConformanceTest, BadTtlWaitAndOwnerAreInvalid) {
  const std::string name = Name("badreq");
  EXPECT_EQ(locker_->Acquire(Exclusive(name, 0ms, 99ms)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(locker_->Acquire(Exclusive(name, 0ms, 25h)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(locker_->Acquire(Exclusive(name, -1ms)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(locker_->Acquire({.name = name, .owner = std::string(300, 'o')}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(locker_->Acquire({.name = name, .owner = "a\nb"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(locker_->Describe(name).status().code(), StatusCode::kNotFound)
      << "a refused request must not create the lock";
}

// ---------------------------------------------------------------------------------------------
// Invariant 3: fenced writes.

TEST_P(ConformanceTest, FencedWriteRefusesOlderTokens) {
  FencedStore& store = locker_->fenced();
  const std::string key = Name("fence");
  auto w = store.Write(key, "five", 5);
  ASSERT_OK(w);
  EXPECT_EQ(w->token, 5u);
  auto stale = store.Write(key, "three", 3);
  ASSERT_EQ(stale.status().code(), StatusCode::kStaleToken);
  EXPECT_EQ(stale.status().current(), 5u);
  EXPECT_THAT(stale.status().message(), HasSubstr("3"));
  ASSERT_OK(store.Write(key, "five again", 5));
  auto read = store.Read(key);
  ASSERT_OK(read);
  EXPECT_EQ(read->data, "five again") << "a refused write must change nothing";
  EXPECT_EQ(read->token, 5u);
  auto newer = store.Write(key, "nine", 9);
  ASSERT_OK(newer);
  EXPECT_GT(newer->version, w->version);
  EXPECT_EQ(store.Write(key, "x", 0).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(ConformanceTest, FencedReadRegistersItsToken) {
  FencedStore& store = locker_->fenced();
  const std::string key = Name("fread");
  ASSERT_OK(store.Write(key, "v1", 10));
  auto read = store.Read(key, 20);
  ASSERT_OK(read);
  EXPECT_EQ(read->data, "v1");
  EXPECT_EQ(read->token, 20u);
  EXPECT_EQ(store.Write(key, "late", 15).status().code(), StatusCode::kStaleToken)
      << "a fenced read must shut out older holders before the new one writes";
  EXPECT_EQ(store.Read(key, 15).status().code(), StatusCode::kStaleToken);
  // A fenced read of a missing key registers the token too.
  const std::string fresh = Name("fresh");
  EXPECT_EQ(store.Read(fresh, 7).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Write(fresh, "old", 6).status().code(), StatusCode::kStaleToken);
  EXPECT_EQ(store.Read(fresh).status().code(), StatusCode::kNotFound);
}

TEST_P(ConformanceTest, StrictModeRefusesTokensThatAreNotLiveHolders) {
  FencedStore& store = locker_->fenced();
  const std::string lock = Name("strict");
  const std::string key = Name("strictkey");
  auto a = locker_->Acquire(Exclusive(lock));
  ASSERT_OK(a);
  ASSERT_OK(store.Write(key, "by a", a->token, lock));
  ASSERT_OK(locker_->Release(*a));
  // A released (or expired) holder is refused even though no newer token touched the key.
  auto late = store.Write(key, "late a", a->token, lock);
  EXPECT_EQ(late.status().code(), StatusCode::kStaleToken) << late.status().ToString();
  EXPECT_EQ(store.Read(key, a->token, lock).status().code(), StatusCode::kStaleToken);
  auto b = locker_->Acquire(Exclusive(lock));
  ASSERT_OK(b);
  ASSERT_OK(store.Write(key, "by b", b->token, lock));
  auto read = store.Read(key, b->token, lock);
  ASSERT_OK(read);
  EXPECT_EQ(read->data, "by b");
  EXPECT_EQ(store.Write(key, "x", b->token, "../bad").status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_OK(locker_->Release(*b));
}

TEST_P(ConformanceTest, FencedReadModifyWriteLosesNoUpdate) {
  const std::string lock = Name("rmw");
  const std::string key = Name("rmwkey");
  constexpr int kThreads = 4;
  constexpr int kIterations = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto own = OpenAnother();
      for (int i = 0; i < kIterations; ++i) {
        auto lease = own->Acquire(Exclusive(lock, 60s));
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        auto cur = own->fenced().Read(key, lease->token, lock);
        const long v = cur.ok() ? std::stol(cur->data) : 0;
        if (!cur.ok() && cur.status().code() != StatusCode::kNotFound) ++failures;
        if (!own->fenced().Write(key, std::to_string(v + 1), lease->token, lock).ok()) ++failures;
        if (!own->Release(*lease).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto final_value = locker_->fenced().Read(key);
  ASSERT_OK(final_value);
  EXPECT_EQ(final_value->data, std::to_string(kThreads * kIterations));
}

TEST_P(ConformanceTest, FencedReadModifyWriteAcrossProcesses) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  const std::string lock = Name("prmw");
  const std::string key = Name("prmwkey");
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < 3; ++p) {
    children.push_back(std::make_unique<Child>(
        std::vector<std::string>{WorkerPath(), "fenced-rmw", url_, lock, key, "50"}));
  }
  for (auto& c : children) {
    const int status = c->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  }
  auto value = locker_->fenced().Read(key);
  ASSERT_OK(value);
  EXPECT_EQ(value->data, "150");
}

// ---------------------------------------------------------------------------------------------
// Invariant 4: CAS.

TEST_P(ConformanceTest, VersionedStoreCreateGetSwap) {
  VersionedStore& store = locker_->objects();
  const std::string key = Name("obj");
  EXPECT_EQ(store.Get(key).status().code(), StatusCode::kNotFound);
  auto v1 = store.CompareAndSwap(key, 0, R"({"a":1})");
  ASSERT_OK(v1);
  EXPECT_EQ(*v1, 1u);
  auto exists = store.CompareAndSwap(key, 0, "{}");
  EXPECT_EQ(exists.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(exists.status().current(), 1u);
  auto v2 = store.CompareAndSwap(key, 1, R"({"a":2})");
  ASSERT_OK(v2);
  EXPECT_EQ(*v2, 2u);
  auto stale = store.CompareAndSwap(key, 1, R"({"a":3})");
  EXPECT_EQ(stale.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(stale.status().current(), 2u);
  auto got = store.Get(key);
  ASSERT_OK(got);
  EXPECT_EQ(got->value, R"({"a":2})");
  EXPECT_EQ(got->version, 2u);
  EXPECT_EQ(store.CompareAndSwap(Name("absent"), 4, "{}").status().current(), 0u);
}

TEST_P(ConformanceTest, ConcurrentCasFromOneVersionHasExactlyOneWinner) {
  const std::string key = Name("race");
  ASSERT_OK(locker_->objects().CompareAndSwap(key, 0, "0"));
  constexpr int kThreads = 8;
  constexpr int kRounds = 10;
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int t = 0; t < kThreads; ++t) lockers.push_back(OpenAnother());
  for (int round = 0; round < kRounds; ++round) {
    const std::uint64_t from = static_cast<std::uint64_t>(round) + 1;
    std::atomic<int> wins{0};
    std::atomic<int> mismatches{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        auto r = lockers[t]->objects().CompareAndSwap(key, from, std::to_string(t));
        if (r.ok()) {
          ++wins;
        } else if (r.status().code() == StatusCode::kVersionMismatch) {
          ++mismatches;
        }
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(wins.load(), 1) << "round " << round;
    ASSERT_EQ(mismatches.load(), kThreads - 1);
  }
}

TEST_P(ConformanceTest, ConcurrentCasAcrossProcessesHasExactlyOneWinner) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  const std::string key = Name("prace");
  ASSERT_OK(locker_->objects().CompareAndSwap(key, 0, "0"));
  for (int round = 0; round < 3; ++round) {
    const std::string from = std::to_string(round + 1);
    std::vector<std::unique_ptr<Child>> children;
    for (int p = 0; p < 4; ++p) {
      children.push_back(std::make_unique<Child>(std::vector<std::string>{
          WorkerPath(), "cas", url_, key, from, "\"p" + std::to_string(p) + "\""}));
    }
    int wins = 0;
    int losses = 0;
    for (auto& c : children) {
      const std::string line = c->ReadLine();
      wins += line.rfind("won", 0) == 0;
      losses += line == "lost version_mismatch";
      c->Wait();
    }
    EXPECT_EQ(wins, 1) << "round " << round;
    EXPECT_EQ(losses, 3) << "round " << round;
  }
}

TEST_P(ConformanceTest, StateMachineRefusesIllegalEdgesAndRacesSafely) {
  StateMachine machine(locker_->objects(), {{"running", "upgrading"},
                                            {"upgrading", "running"},
                                            {"running", "deleting"}});
  const std::string key = Name("deploy");
  ASSERT_OK(machine.Create(key, "running"));
  ASSERT_OK(machine.Transition(key, "running", "upgrading"));
  auto jump = machine.Transition(key, "upgrading", "deleting");
  EXPECT_EQ(jump.status().code(), StatusCode::kInvalidArgument);
  auto current = machine.Current(key);
  ASSERT_OK(current);
  EXPECT_EQ(*current, "upgrading") << "a refused transition must change nothing";
  EXPECT_EQ(machine.Transition(key, "running", "deleting").status().code(),
            StatusCode::kVersionMismatch);
  ASSERT_OK(machine.Transition(key, "upgrading", "running"));
  std::atomic<int> wins{0};
  std::barrier start(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      if (machine.Transition(key, "running", "upgrading").ok()) ++wins;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

// ---------------------------------------------------------------------------------------------
// Semaphores (DESIGN.md "Semaphores, elections and fenced CAS").

LockRequest Permit(const std::string& name, std::uint32_t limit,
                   std::chrono::milliseconds wait = 0ms, std::chrono::milliseconds ttl = 30s) {
  LockRequest r = Exclusive(name, wait, ttl);
  r.limit = limit;
  return r;
}

// Backends without permits yet refuse them with this message; their semaphore cases are skipped
// (visibly), never passed.
bool RefusesPermits(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument &&
         s.message().find("not supported by this backend yet") != std::string::npos;
}

#define SKIP_WITHOUT_PERMITS(locker)                                             \
  do {                                                                           \
    auto probe_ = (locker)->Acquire(Permit(Name("probe"), 2));                  \
    if (RefusesPermits(probe_.status())) GTEST_SKIP() << probe_.status().message(); \
    ASSERT_OK(probe_);                                                           \
    ASSERT_OK((locker)->Release(*probe_));                                       \
  } while (false)

TEST_P(ConformanceTest, PermitsUpToTheLimitWithLowestFreeSlotsAndGrowingTokens) {
  SKIP_WITHOUT_PERMITS(locker_);
  const std::string name = Name("sem");
  auto other = OpenAnother();
  std::vector<Lease> held;
  std::uint64_t last = 0;
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto lease = (i % 2 == 0 ? locker_ : other)->Acquire(Permit(name, 3));
    ASSERT_OK(lease);
    EXPECT_EQ(lease->slot, i) << "the lowest free slot";
    EXPECT_GT(lease->token, last);
    last = lease->token;
    held.push_back(*lease);
  }
  auto full = other->Acquire(Permit(name, 3, 200ms));
  EXPECT_EQ(full.status().code(), StatusCode::kLockHeld) << full.status().ToString();
  auto state = locker_->Describe(name);
  ASSERT_OK(state);
  EXPECT_EQ(state->limit, 3u);
  ASSERT_EQ(state->holders.size(), 3u);
  std::set<std::uint32_t> slots;
  for (const auto& h : state->holders) slots.insert(h.slot);
  EXPECT_EQ(slots, (std::set<std::uint32_t>{0, 1, 2}));
  // Renew keeps token and slot; a released slot is the next one handed out, with a new token.
  auto renewed = locker_->Renew(held[2], 20s);
  ASSERT_OK(renewed);
  EXPECT_EQ(renewed->slot, 2u);
  EXPECT_EQ(renewed->token, held[2].token);
  ASSERT_OK(other->Release(held[1]));
  auto again = locker_->Acquire(Permit(name, 3));
  ASSERT_OK(again);
  EXPECT_EQ(again->slot, 1u);
  EXPECT_GT(again->token, last);
  ASSERT_OK(locker_->Release(held[0]));
  ASSERT_OK(locker_->Release(held[2]));
  ASSERT_OK(locker_->Release(*again));
  EXPECT_EQ(locker_->Release(*again).code(), StatusCode::kLeaseLost);
  auto free_state = locker_->Describe(name);
  ASSERT_OK(free_state);
  EXPECT_TRUE(free_state->holders.empty());
  EXPECT_EQ(free_state->limit, 1u) << "a free name reports limit 1";
}

TEST_P(ConformanceTest, MismatchedLimitIsRefusedAndChangesNothing) {
  SKIP_WITHOUT_PERMITS(locker_);
  const std::string name = Name("mismatch");
  auto first = locker_->Acquire(Permit(name, 2));
  ASSERT_OK(first);
  const auto before = locker_->Describe(name);
  ASSERT_OK(before);
  for (std::uint32_t limit : {3u, 1u}) {
    auto refused = locker_->Acquire(Permit(name, limit, 100ms));
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << limit;
    EXPECT_THAT(refused.status().message(), HasSubstr("limit 2")) << "names the limit in force";
  }
  LockRequest shared = Permit(name, 2);
  shared.mode = LockMode::kShared;
  EXPECT_EQ(locker_->Acquire(shared).status().code(), StatusCode::kInvalidArgument);
  const auto after = locker_->Describe(name);
  ASSERT_OK(after);
  EXPECT_EQ(after->last_token, before->last_token);
  EXPECT_EQ(after->holders.size(), 1u);
  ASSERT_OK(locker_->Release(*first));
  // Once the name is free, any limit may be used.
  auto plain = locker_->Acquire(Exclusive(name));
  ASSERT_OK(plain);
  EXPECT_EQ(plain->slot, 0u);
  ASSERT_OK(locker_->Release(*plain));
}

// At no instant more than `limit` holders, each in its own slot; the same measurement without
// the semaphore must go over, or it would prove nothing.
int MaxInside(const std::function<Result<Lease>(int)>& acquire,
              const std::function<void(int, const Lease&)>& release, int threads, int rounds,
              std::uint32_t limit, bool* slot_clash) {
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::vector<std::atomic<bool>> busy(limit);
  std::atomic<bool> clash{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        auto lease = acquire(t);
        if (!lease.ok()) {
          ADD_FAILURE() << lease.status().ToString();
          return;
        }
        const int now = ++inside;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        if (lease->slot < limit && busy[lease->slot].exchange(true)) clash = true;
        std::this_thread::yield();
        if (lease->slot < limit) busy[lease->slot] = false;
        --inside;
        release(t, *lease);
      }
    });
  }
  for (auto& th : pool) th.join();
  *slot_clash = clash.load();
  return max_inside.load();
}

TEST_P(ConformanceTest, ManyThreadsNeverExceedTheLimit) {
  SKIP_WITHOUT_PERMITS(locker_);
  const std::string name = Name("sem-threads");
  constexpr std::uint32_t kLimit = 3;
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int t = 0; t < kThreads; ++t) lockers.push_back(OpenAnother());
  bool clash = false;
  const int guarded = MaxInside(
      [&](int t) { return lockers[t]->Acquire(Permit(name, kLimit, 60s)); },
      [&](int t, const Lease& l) { EXPECT_TRUE(lockers[t]->Release(l).ok()); }, kThreads, 30,
      kLimit,
      &clash);
  EXPECT_LE(guarded, static_cast<int>(kLimit));
  EXPECT_FALSE(clash) << "two live holders had the same slot";
  // Control: the same critical section with every thread let in at once (a barrier in place of
  // the semaphore) is seen with more than kLimit inside.
  std::barrier gate(kThreads);
  bool unused = false;
  const int unguarded = MaxInside(
      [&](int) -> Result<Lease> {
        gate.arrive_and_wait();
        return Lease{.name = name, .slot = kLimit};  // no permit: out of the slot check
      },
      [&](int, const Lease&) { gate.arrive_and_wait(); }, kThreads, 3, kLimit, &unused);
  EXPECT_GT(unguarded, static_cast<int>(kLimit)) << "the control run must go over the limit";
}

TEST_P(ConformanceTest, PermitsAcrossProcessesAndAKilledHoldersSlotComesBack) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "locks of one process only";
  SKIP_WITHOUT_PERMITS(locker_);
  const std::string name = Name("sem-procs");
  Child a({WorkerPath(), "hold", url_, name, "permit/2", "1000"});
  const std::string line_a = a.ReadLine();
  ASSERT_EQ(line_a.rfind("token ", 0), 0u) << "worker said '" << line_a << "'";
  Child b({WorkerPath(), "hold", url_, name, "permit/2", "30000"});
  const std::string line_b = b.ReadLine();
  ASSERT_EQ(line_b.rfind("token ", 0), 0u) << "worker said '" << line_b << "'";
  const std::uint64_t token_b = std::stoull(line_b.substr(6));
  EXPECT_NE(line_a.substr(line_a.find(" slot ")), line_b.substr(line_b.find(" slot ")))
      << "two processes got the same slot";
  // Two processes hold both permits: a third caller is refused.
  EXPECT_EQ(locker_->Acquire(Permit(name, 2)).status().code(), StatusCode::kLockHeld);
  a.Kill(SIGKILL);
  a.Wait();
  // fd/connection-bound backends free the permit at once; lease backends after a's 1 s TTL.
  auto lease = locker_->Acquire(Permit(name, 2, 30s));
  ASSERT_OK(lease);
  EXPECT_EQ(" slot " + std::to_string(lease->slot), line_a.substr(line_a.find(" slot ")))
      << "the killed holder's slot comes back";
  EXPECT_GT(lease->token, token_b);
  b.WriteLine("release");
  EXPECT_EQ(b.ReadLine(), "released");
  ASSERT_OK(locker_->Release(*lease));
}

// Fenced CAS (DESIGN.md "Fenced CAS"): the token is checked before the version, so a holder
// whose token was superseded cannot move the object even with the version it just read.
TEST_P(ConformanceTest, FencedCasRefusesAStaleTokenEvenWithTheCurrentVersion) {
  VersionedStore& store = locker_->objects();
  const std::string key = Name("fcas");
  auto created = store.CompareAndSwap(key, 0, R"("a")", 5);
  ASSERT_OK(created);
  EXPECT_EQ(*created, 1u);
  auto newer = store.CompareAndSwap(key, 1, R"("b")", 7);  // raises the fence to 7
  ASSERT_OK(newer);
  EXPECT_EQ(*newer, 2u);
  auto stale = store.CompareAndSwap(key, 2, R"("c")", 5);  // right version, old token
  EXPECT_EQ(stale.status().code(), StatusCode::kStaleToken) << stale.status().message();
  EXPECT_EQ(stale.status().current(), 7u);
  auto stale_and_old = store.CompareAndSwap(key, 1, R"("c")", 6);  // token is checked first
  EXPECT_EQ(stale_and_old.status().code(), StatusCode::kStaleToken);
  auto wrong_version = store.CompareAndSwap(key, 1, R"("c")", 7);
  EXPECT_EQ(wrong_version.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(wrong_version.status().current(), 2u);
  auto exists = store.CompareAndSwap(key, 0, R"("c")", 9);  // create of an existing object
  EXPECT_EQ(exists.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(store.CompareAndSwap(key, 2, R"("c")", 0).status().code(),
            StatusCode::kInvalidArgument);
  auto got = store.Get(key);
  ASSERT_OK(got);
  EXPECT_EQ(got->value, R"("b")") << "a refused fenced CAS must change nothing";
  EXPECT_EQ(got->version, 2u);
  // The same token again is the same holder: accepted.
  auto again = store.CompareAndSwap(key, 2, R"("d")", 7);
  ASSERT_OK(again);
  EXPECT_EQ(*again, 3u);
  // A stale fenced create is refused before the version is looked at, too.
  const std::string other = Name("fcas-new");
  EXPECT_EQ(store.CompareAndSwap(other, 1, "{}", 3).status().code(),
            StatusCode::kVersionMismatch);
}

TEST_P(ConformanceTest, FencedCasInStrictModeNeedsALiveHolder) {
  const std::string lock_name = Name("leader");
  const std::string key = Name("fcas-strict");
  auto first = locker_->Acquire({.name = lock_name, .ttl = 10s});
  ASSERT_OK(first);
  VersionedStore& store = locker_->objects();
  ASSERT_OK(store.CompareAndSwap(key, 0, R"("running")", first->token, lock_name));
  ASSERT_OK(locker_->Release(*first));
  // Released: the token is no live holder any more, even though it equals the fence.
  auto after_release = store.CompareAndSwap(key, 1, R"("upgrading")", first->token, lock_name);
  EXPECT_EQ(after_release.status().code(), StatusCode::kStaleToken)
      << after_release.status().message();
  auto second = locker_->Acquire({.name = lock_name, .ttl = 10s});
  ASSERT_OK(second);
  EXPECT_EQ(store.CompareAndSwap(key, 1, R"("upgrading")", second->token, Name("other-lock"))
                .status()
                .code(),
            StatusCode::kStaleToken);
  auto moved = store.CompareAndSwap(key, 1, R"("upgrading")", second->token, lock_name);
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 2u);
  ASSERT_OK(locker_->Release(*second));
}

// The seed's "leader plus CAS": a deposed leader reads a fresh version and still cannot move
// the state, because its term is below the one the new leader wrote with.
TEST_P(ConformanceTest, GuardedTransitionRefusesADeposedLeader) {
  StateMachine machine(locker_->objects(), {{"running", "upgrading"}, {"upgrading", "running"}});
  const std::string election = Name("election");
  const std::string key = Name("deployment");
  auto old_leader = locker_->Acquire({.name = election, .ttl = 10s});
  ASSERT_OK(old_leader);
  ASSERT_OK(machine.Create(key, "running"));
  ASSERT_OK(machine.Transition(key, "running", "upgrading", old_leader->token, election));
  // The old leader loses the election (here by release; a pause past its TTL on a lease
  // backend is the same to the store) and a new one takes over and moves the state.
  std::unique_ptr<Locker> other = OpenAnother();
  ASSERT_OK(locker_->Release(*old_leader));
  auto new_leader = other->Acquire({.name = election, .ttl = 10s});
  ASSERT_OK(new_leader);
  ASSERT_GT(new_leader->token, old_leader->token);
  StateMachine theirs(other->objects(), {{"running", "upgrading"}, {"upgrading", "running"}});
  ASSERT_OK(theirs.Transition(key, "upgrading", "running", new_leader->token, election));
  // The old leader reads the current version and tries again: refused for its term, with and
  // without strict mode.
  auto plain = machine.Transition(key, "running", "upgrading", old_leader->token);
  EXPECT_EQ(plain.status().code(), StatusCode::kStaleToken) << plain.status().message();
  auto strict = machine.Transition(key, "running", "upgrading", old_leader->token, election);
  EXPECT_EQ(strict.status().code(), StatusCode::kStaleToken) << strict.status().message();
  auto current = machine.Current(key);
  ASSERT_OK(current);
  EXPECT_EQ(*current, "running");
  ASSERT_OK(other->Release(*new_leader));
}

// ---------------------------------------------------------------------------------------------
// Leader election: the election X is the exclusive lock X, and the term is its fencing token.

CampaignRequest Candidate(const std::string& candidate, std::chrono::milliseconds wait = 0ms,
                          std::chrono::milliseconds ttl = 30s) {
  return {.candidate = candidate, .ttl = ttl, .wait = wait};
}

TEST_P(ConformanceTest, ElectionLeaderIsTheCandidateAndTheTermIsTheToken) {
  Election election(*locker_, Name("elect"));
  EXPECT_EQ(election.Leader().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(election.Campaign(Candidate("")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(election.Campaign(Candidate(std::string(257, 'x'))).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(election.Leader().status().code(), StatusCode::kNotFound) << "bad input changed it";
  auto leadership = election.Campaign(Candidate("host-a:8080"));
  ASSERT_OK(leadership);
  auto state = election.Leader();
  ASSERT_OK(state);
  ASSERT_TRUE(state->leader.has_value());
  EXPECT_EQ(state->leader->candidate, "host-a:8080");
  EXPECT_EQ(state->leader->term, leadership->token());
  EXPECT_EQ(state->last_term, leadership->token());
  // A second candidate does not lead while the first does; the refusal names the leader.
  auto other = OpenAnother();
  Election rival(*other, election.name());
  auto refused = rival.Campaign(Candidate("host-b:8080"));
  EXPECT_EQ(refused.status().code(), StatusCode::kLockHeld);
  EXPECT_THAT(refused.status().message(), HasSubstr("host-a:8080"));
  const std::uint64_t first_term = leadership->token();
  ASSERT_OK(election.Resign(*leadership));
  EXPECT_EQ(election.Resign(*leadership).code(), StatusCode::kOk) << "Resign is idempotent";
  state = election.Leader();
  ASSERT_OK(state);
  EXPECT_FALSE(state->leader.has_value());
  EXPECT_EQ(state->term(), 0u);
  EXPECT_EQ(state->last_term, first_term);
  // The next leader's term is larger.
  auto next = rival.Campaign(Candidate("host-b:8080"));
  ASSERT_OK(next);
  EXPECT_GT(next->token(), first_term);
  ASSERT_OK(rival.Resign(*next));
}

TEST_P(ConformanceTest, ElectionHasAtMostOneLeaderAcrossThreadsAndTermsGrow) {
  const std::string name = Name("elect-threads");
  constexpr int kThreads = 6;
  constexpr int kTerms = 25;
  std::vector<std::unique_ptr<Locker>> lockers;
  for (int t = 0; t < kThreads; ++t) lockers.push_back(t % 2 == 0 ? nullptr : OpenAnother());
  std::atomic<int> leaders{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::uint64_t last_term = 0;  // guarded by mu
  int shrinking_terms = 0;      // guarded by mu
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Election election(lockers[t] ? *lockers[t] : *locker_, name);
      for (int i = 0; i < kTerms; ++i) {
        auto leadership = election.Campaign(Candidate("candidate-" + std::to_string(t), 60s));
        if (!leadership.ok()) {
          ++failures;
          continue;
        }
        if (leaders.fetch_add(1) != 0) ++overlaps;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (leadership->token() <= last_term) ++shrinking_terms;
          last_term = leadership->token();
        }
        leaders.fetch_sub(1);
        if (!election.Resign(*leadership).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(overlaps.load(), 0) << "two leaders at once";
  EXPECT_EQ(shrinking_terms, 0) << "a term was not larger than the one before it";
}

TEST_P(ConformanceTest, ElectionObserveWakesOnAResignWithinTheWakeUpLatency) {
  Election election(*locker_, Name("elect-observe"));
  // Never held: term 0, and Observe(0) waits out its wait.
  const auto started = std::chrono::steady_clock::now();
  auto idle = election.Observe(0, 200ms);
  ASSERT_OK(idle);
  EXPECT_EQ(idle->term(), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  // A term other than after_term returns at once.
  auto leadership = election.Campaign(Candidate("host-a"));
  ASSERT_OK(leadership);
  auto at_once = election.Observe(0, 30s);
  ASSERT_OK(at_once);
  EXPECT_EQ(at_once->term(), leadership->token());
  // An observer sleeping on the current term wakes on the resign.
  auto other = OpenAnother();
  Election observer(*other, election.name());
  std::atomic<pid_t> tid{0};
  Result<ElectionState> observed = InternalError("not run");
  std::chrono::steady_clock::time_point woken_at;
  std::thread thread([&] {
    tid = gettid();
    observed = observer.Observe(leadership->token(), 30s);
    woken_at = std::chrono::steady_clock::now();
  });
  while (tid.load() == 0) std::this_thread::yield();
  const bool sleeping = ThreadSleepsWithin(tid.load(), 10s);
  const auto resigned_at = std::chrono::steady_clock::now();
  ASSERT_OK(election.Resign(*leadership));
  thread.join();
  ASSERT_TRUE(sleeping) << "the observer never slept";
  ASSERT_OK(observed);
  EXPECT_EQ(observed->term(), 0u);
  // Where Watch notifies every change, the observer wakes in milliseconds; elsewhere within the
  // backend's bounded re-check. The margin is for a loaded machine, not for polling.
  std::chrono::milliseconds bound = locker_->traits().recheck + 400ms;
  auto probe = other->Watch(election.name(), [] {});
  if (probe == nullptr) bound += kNoWatchRecheck;
  EXPECT_LT(woken_at - resigned_at, bound)
      << "woken after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(woken_at - resigned_at).count()
      << " ms";
}

TEST_P(ConformanceTest, ElectionObserveWakesWhenTheLeadersLeaseRunsOut) {
  if (!locker_->traits().expires_by_ttl) GTEST_SKIP() << "fd/connection-bound: no expiry";
  Election election(*locker_, Name("elect-expiry"));
  CampaignRequest request = Candidate("host-a", 0ms, 300ms);
  request.lease.keep_alive = false;  // a leader that stops renewing
  auto leadership = election.Campaign(request);
  ASSERT_OK(leadership);
  const auto started = std::chrono::steady_clock::now();
  auto observed = election.Observe(leadership->token(), 30s);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_OK(observed);
  EXPECT_NE(observed->term(), leadership->token());
  // Expiry is not notified: Observe wakes at the lease's end, not after its whole 30 s wait.
  // The bound is half the wait, not the 300 ms lease plus a margin: etcd grants at least its
  // minimum TTL (2 s at a 1 s election timeout) and frees an expired lease on its own clock
  // through Raft, which a sanitizer build on a loaded machine has been seen to take 9 s to do.
  EXPECT_LT(took, 15s)
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_EQ(election.Resign(*leadership).code(), StatusCode::kLeaseLost);
}

TEST_P(ConformanceTest, ElectionKilledLeaderIsReplacedWithALargerTerm) {
  if (!locker_->traits().shared_across_processes) GTEST_SKIP() << "in-process backend";
  const std::string name = Name("elect-killed");
  // The worker takes the exclusive lock `name`: that is the election's leadership.
  Child leader({WorkerPath(), "hold", url_, name, "exclusive", "1000"});
  const std::string line = leader.ReadLine();
  ASSERT_EQ(line.rfind("token ", 0), 0u) << "worker said '" << line << "'";
  const std::uint64_t child_term = std::stoull(line.substr(6));
  Election election(*locker_, name);
  auto state = election.Leader();
  ASSERT_OK(state);
  EXPECT_EQ(state->term(), child_term);
  EXPECT_EQ(election.Campaign(Candidate("host-b")).status().code(), StatusCode::kLockHeld);
  leader.Kill(SIGKILL);
  leader.Wait();
  // fd/connection-bound backends free it at once; lease backends after the 1 s TTL.
  const auto killed_at = std::chrono::steady_clock::now();
  auto observed = election.Observe(child_term, 30s);
  ASSERT_OK(observed);
  EXPECT_NE(observed->term(), child_term);
  if (!locker_->traits().expires_by_ttl) {
    EXPECT_LT(std::chrono::steady_clock::now() - killed_at, kUnnotifiedDeathRecheck + 1s);
  }
  auto leadership = election.Campaign(Candidate("host-b", 30s));
  ASSERT_OK(leadership);
  EXPECT_GT(leadership->token(), child_term);
  ASSERT_OK(election.Resign(*leadership));
}

TEST_P(ConformanceTest, PingAnswers) { ASSERT_OK(locker_->Ping()); }

}  // namespace
}  // namespace ordo::testing
