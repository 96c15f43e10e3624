// inproc: beyond the shared contract: its sharded table, reused holder slots, the owner ids the
// engine chooses without a lock, and the wall-clock expiry derived from the steady clock.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ordo/ordo.h"

namespace ordo {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Locker> OpenInproc() {
  auto locker = Open("inproc:");
  EXPECT_TRUE(locker.ok()) << locker.status().ToString();
  return std::move(*locker);
}

// A prefix of names no other test in this process uses.
std::string Prefix(const std::string& test) { return "inproc-test-" + test + "-"; }

TEST(InprocTest, ListIsSortedAcrossShardsAndKeepsTheSmallestNames) {
  auto locker = OpenInproc();
  const std::string prefix = Prefix("list");
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04d", (i * 7919) % 300);  // acquired out of order
    names.push_back(prefix + buf);
    auto lease = locker->Acquire({.name = names.back()});
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    if (i % 2 == 0) {
      ASSERT_TRUE(locker->Release(*lease).ok());
    }
  }
  std::sort(names.begin(), names.end());
  auto all = locker->List(prefix, 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 300u);
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ((*all)[i].name, names[i]);
  auto first = locker->List(prefix, 25);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 25u);
  for (std::size_t i = 0; i < 25; ++i) {
    EXPECT_EQ((*first)[i].name, names[i]);
    EXPECT_EQ((*first)[i].holders.size(), (*all)[i].holders.size());
  }
  auto none = locker->List(prefix, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(InprocTest, ReusedHolderSlotsKeepEachHoldersOwnerAndTokenOrder) {
  auto locker = OpenInproc();
  const std::string name = Prefix("slots") + "x";
  const std::vector<std::string> owners = {"a-rather-long-owner-name-one", "b", "c-medium-owner"};
  std::vector<Lease> leases;
  for (const auto& owner : owners) {
    auto lease = locker->Acquire({.name = name, .mode = LockMode::kShared, .owner = owner});
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    EXPECT_EQ(lease->owner, owner);
    leases.push_back(*lease);
  }
  ASSERT_TRUE(locker->Release(leases[0]).ok());
  // The freed slot (first in the table) now holds a newer token with a shorter owner.
  auto again = locker->Acquire({.name = name, .mode = LockMode::kShared, .owner = "d"});
  ASSERT_TRUE(again.ok());
  auto state = locker->Describe(name);
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->holders.size(), 3u);
  EXPECT_EQ(state->holders[0].owner, "b");
  EXPECT_EQ(state->holders[1].owner, "c-medium-owner");
  EXPECT_EQ(state->holders[2].owner, "d");
  EXPECT_EQ(state->holders[2].token, again->token);
  EXPECT_LT(state->holders[0].token, state->holders[1].token);
  EXPECT_LT(state->holders[1].token, state->holders[2].token);
  // A refused exclusive request names the holders in token order too.
  auto refused = locker->Acquire({.name = name});
  ASSERT_EQ(refused.status().code(), StatusCode::kLockHeld);
  const std::string& m = refused.status().message();
  EXPECT_LT(m.find("'b'"), m.find("'c-medium-owner'")) << m;
  EXPECT_LT(m.find("'c-medium-owner'"), m.find("'d'")) << m;
  // The released lease stays released; the others release once each.
  EXPECT_EQ(locker->Release(leases[0]).code(), StatusCode::kLeaseLost);
  for (const Lease& l : {leases[1], leases[2], *again}) EXPECT_TRUE(locker->Release(l).ok());
  EXPECT_EQ(locker->Release(leases[1]).code(), StatusCode::kLeaseLost);
}

TEST(InprocTest, DistinctNamesOnManyThreadsKeepTheirOwnTokens) {
  auto locker = OpenInproc();
  constexpr int kThreads = 4;
  constexpr int kPairs = 2000;
  std::vector<std::set<std::string>> owners(kThreads);
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = Prefix("threads") + std::to_string(t);
      for (int i = 1; i <= kPairs; ++i) {
        auto lease = locker->Acquire({.name = name});
        if (!lease.ok()) {
          failures[t] = lease.status().ToString();
          return;
        }
        if (lease->token != static_cast<std::uint64_t>(i)) {
          failures[t] = "token " + std::to_string(lease->token) + " at pair " + std::to_string(i);
          return;
        }
        owners[t].insert(lease->owner);
        if (!locker->Release(*lease).ok()) {
          failures[t] = "release failed";
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], "") << "thread " << t;
    EXPECT_EQ(owners[t].size(), static_cast<std::size_t>(kPairs));
    all.insert(owners[t].begin(), owners[t].end());
  }
  // Default owners are unique across threads, and carry this process's pid.
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPairs));
  const std::string pid = ":" + std::to_string(getpid()) + ":";
  for (const auto& owner : all) ASSERT_NE(owner.find(pid), std::string::npos) << owner;
}

TEST(InprocTest, ForkedChildChoosesOwnersWithItsOwnPid) {
  const std::string parent_owner = DefaultOwner();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    const std::string owner = DefaultOwner();
    const ssize_t n = write(fds[1], owner.data(), owner.size());
    _exit(n == static_cast<ssize_t>(owner.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string child_owner;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) child_owner.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(child_owner.find(":" + std::to_string(child) + ":"), std::string::npos) << child_owner;
  // The parent's prefix (host:pid:random-) is not reused by the child.
  const std::string parent_prefix = parent_owner.substr(0, parent_owner.rfind('-') + 1);
  EXPECT_NE(child_owner.substr(0, parent_prefix.size()), parent_prefix);
}

TEST(InprocTest, ExpiresAtFollowsTheWallClock) {
  auto locker = OpenInproc();
  const auto before = std::chrono::system_clock::now();
  auto lease = locker->Acquire({.name = Prefix("wall") + "x", .ttl = 5s});
  const auto after = std::chrono::system_clock::now();
  ASSERT_TRUE(lease.ok());
  // The offset between the clocks is at most a second old; the wall clock does not move that
  // much in a test.
  EXPECT_GE(lease->expires_at, before + 5s - 50ms);
  EXPECT_LE(lease->expires_at, after + 5s + 50ms);
  auto renewed = locker->Renew(*lease, 10s);
  ASSERT_TRUE(renewed.ok());
  EXPECT_GE(renewed->expires_at, before + 10s - 50ms);
  EXPECT_LE(renewed->expires_at, std::chrono::system_clock::now() + 10s + 50ms);
  EXPECT_TRUE(locker->Release(*renewed).ok());
}

}  // namespace
}  // namespace ordo
