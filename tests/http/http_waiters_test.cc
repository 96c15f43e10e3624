// Waiting never starves the server: 1,000 clients wait on one lock while releases and health
// checks are answered promptly; each release is won by exactly one waiter; every other waiter
// gets 409 lock_held when its own wait runs out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// N raw connections, each carrying one request and, eventually, one reply.
class Crowd {
 public:
  ~Crowd() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  void Send(int port, const std::string& request) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    fds_.push_back(fd);
    sent_.push_back(SteadyClock::now());
    buffers_.emplace_back();
    replies_.emplace_back();
    answered_at_.emplace_back();
  }

  // Reads whatever arrived within `timeout`; returns the number of replies completed.
  int Poll(std::chrono::milliseconds timeout) {
    std::vector<pollfd> pfds;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < fds_.size(); ++i) {
      if (fds_[i] >= 0) {
        pfds.push_back({fds_[i], POLLIN, 0});
        index.push_back(i);
      }
    }
    if (pfds.empty() || poll(pfds.data(), pfds.size(), static_cast<int>(timeout.count())) <= 0) {
      return 0;
    }
    int completed = 0;
    for (std::size_t k = 0; k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      const std::size_t i = index[k];
      char buf[4096];
      const ssize_t n = recv(fds_[i], buf, sizeof(buf), 0);
      if (n > 0) buffers_[i].append(buf, static_cast<std::size_t>(n));
      RawReply reply = ParseReply(buffers_[i]);
      if (reply.status != 0 || n <= 0) {
        replies_[i] = reply;
        answered_at_[i] = SteadyClock::now();
        close(fds_[i]);
        fds_[i] = -1;
        ++completed;
      }
    }
    return completed;
  }

  std::size_t size() const { return fds_.size(); }
  std::size_t open() const {
    std::size_t n = 0;
    for (int fd : fds_) n += fd >= 0;
    return n;
  }
  const RawReply& reply(std::size_t i) const { return replies_[i]; }
  SteadyClock::time_point sent(std::size_t i) const { return sent_[i]; }
  SteadyClock::time_point answered(std::size_t i) const { return answered_at_[i]; }

 private:
  std::vector<int> fds_;
  std::vector<SteadyClock::time_point> sent_;
  std::vector<std::string> buffers_;
  std::vector<RawReply> replies_;
  std::vector<SteadyClock::time_point> answered_at_;
};

// This process's resident memory and thread count, for the log.
std::string VmRss() {
  std::ifstream status("/proc/self/status");
  std::string line, out;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0 || line.rfind("Threads:", 0) == 0) out += line + " ";
  }
  return out;
}

template <typename F>
std::chrono::milliseconds Timed(F&& f) {
  const auto start = SteadyClock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
}

TEST(HttpWaitersTest, ThousandWaitersDoNotStarveReleasesOrHealthChecks) {
  RaiseFdLimit();
  constexpr int kWaiters = 1000;
  constexpr int kWaitMs = 8000;
  constexpr int kReleases = 3;
  constexpr auto kPrompt = 500ms;
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = ClientFor(*server);
  const std::string name = UniqueName("crowd");
  const std::string base = "/v1/locks/" + name;
  auto first = client->Post((base + "/acquire").c_str(), R"({"ttl_ms":60000})", "application/json");
  ASSERT_EQ(first->status, 200);
  std::uint64_t token = BodyOf(first)["token"];

  const std::string body = R"({"ttl_ms":60000,"wait_ms":)" + std::to_string(kWaitMs) + "}";
  const std::string request = "POST " + base +
                              "/acquire HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  Crowd crowd;
  for (int i = 0; i < kWaiters; ++i) ASSERT_NO_FATAL_FAILURE(crowd.Send(server->port(), request));

  // Bounded wait until the server reports every request parked in line.
  const std::string all_waiting = "ordo_waiting_acquires " + std::to_string(kWaiters) + "\n";
  const auto parked_by = SteadyClock::now() + 20s;
  bool parked = false;
  while (!parked && SteadyClock::now() < parked_by) {
    auto m = client->Get("/metrics");
    parked = m && m->body.find(all_waiting) != std::string::npos;
    if (!parked) crowd.Poll(20ms);
  }
  ASSERT_TRUE(parked) << "the waiters never all reached the server";
  ASSERT_EQ(crowd.open(), static_cast<std::size_t>(kWaiters)) << "a waiter was answered early";

  int winners = 0;
  for (int round = 0; round < kReleases; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // A health check on a fresh connection, and the release, are answered promptly.
    auto fresh = ClientFor(*server);
    const auto health_took =
        Timed([&] { EXPECT_EQ(fresh->Get("/healthz")->status, 200); });
    EXPECT_LT(health_took, kPrompt);
    int released = 0;
    const auto release_took = Timed([&] {
      auto r = fresh->Post((base + "/release").c_str(), json{{"token", token}}.dump(),
                           "application/json");
      released = r ? r->status : 0;
    });
    EXPECT_LT(release_took, kPrompt);
    ASSERT_EQ(released, 200);
    std::cout << "with " << crowd.open() << " waiters: healthz " << health_took.count()
              << " ms, release " << release_took.count() << " ms, " << VmRss() << "\n";
    // Exactly one waiter wins this release.
    const auto until = SteadyClock::now() + 5s;
    int answered = 0;
    while (answered == 0 && SteadyClock::now() < until) answered += crowd.Poll(50ms);
    ASSERT_EQ(answered, 1) << "one release, one winner";
    for (std::size_t i = 0; i < crowd.size(); ++i) {
      if (crowd.reply(i).status == 200 && crowd.answered(i) >= SteadyClock::now() - 6s) {
        const json lease = json::parse(crowd.reply(i).body, nullptr, false);
        if (lease.value("token", std::uint64_t{0}) > token) {
          token = lease["token"];
          ++winners;
        }
      }
    }
    ASSERT_EQ(winners, round + 1);
  }

  // Everyone else waits out their own wait_ms and gets 409 lock_held.
  const auto end_by = SteadyClock::now() + std::chrono::milliseconds(kWaitMs) + 20s;
  while (crowd.open() > 0 && SteadyClock::now() < end_by) crowd.Poll(200ms);
  ASSERT_EQ(crowd.open(), 0u) << "some waiters were never answered";
  int ok = 0, held = 0, early = 0;
  for (std::size_t i = 0; i < crowd.size(); ++i) {
    const RawReply& r = crowd.reply(i);
    if (r.status == 200) {
      ++ok;
    } else if (r.status == 409 &&
               json::parse(r.body, nullptr, false).value("error", "") == "lock_held") {
      ++held;
      if (crowd.answered(i) < crowd.sent(i) + std::chrono::milliseconds(kWaitMs - 100)) ++early;
    }
  }
  EXPECT_EQ(ok, kReleases);
  EXPECT_EQ(held, kWaiters - kReleases);
  EXPECT_EQ(early, 0) << "a waiter was refused before its wait ran out";
  auto last = client->Post((base + "/release").c_str(), json{{"token", token}}.dump(),
                           "application/json");
  EXPECT_EQ(last->status, 200) << "the last winner still holds the lock";
  auto m = client->Get("/metrics");
  EXPECT_NE(m->body.find("ordo_waiting_acquires 0\n"), std::string::npos);
}

// The waiting room is capped below the connection cap: past it, waiters are refused with 503
// instead of filling every connection slot.
TEST(HttpWaitersTest, WaitingRoomIsCapped) {
  auto server = StartServer({.max_waiters = 2});
  auto client = ClientFor(*server);
  const std::string name = UniqueName("cap");
  auto held = client->Post(("/v1/locks/" + name + "/acquire").c_str(), "{}", "application/json");
  ASSERT_EQ(held->status, 200);
  std::vector<std::thread> waiters;
  std::atomic<int> timed_out{0};
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      auto c = ClientFor(*server);
      auto r = c->Post(("/v1/locks/" + name + "/acquire").c_str(), R"({"wait_ms":1500})",
                       "application/json");
      if (r && r->status == 409) ++timed_out;
    });
  }
  const std::string two = "ordo_waiting_acquires 2\n";
  const auto by = SteadyClock::now() + 5s;
  while (SteadyClock::now() < by && client->Get("/metrics")->body.find(two) == std::string::npos) {
    std::this_thread::sleep_for(5ms);
  }
  auto third = client->Post(("/v1/locks/" + name + "/acquire").c_str(), R"({"wait_ms":1000})",
                            "application/json");
  EXPECT_EQ(third->status, 503) << third->body;
  EXPECT_EQ(BodyOf(third)["error"], "unavailable");
  EXPECT_EQ(client->Post(("/v1/locks/" + name + "/acquire").c_str(), "{}", "application/json")
                ->status,
            409)
      << "a try-lock does not wait and is not capped";
  for (auto& t : waiters) t.join();
  EXPECT_EQ(timed_out.load(), 2);
}

// Stopping the server answers parked waiters instead of leaving them hanging.
TEST(HttpWaitersTest, StopAnswersWaiters) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  const std::string name = UniqueName("stop");
  ASSERT_EQ(client->Post(("/v1/locks/" + name + "/acquire").c_str(), "{}", "application/json")
                ->status,
            200);
  int waited = 0;
  std::thread waiter([&] {
    auto c = ClientFor(*server);
    auto r = c->Post(("/v1/locks/" + name + "/acquire").c_str(), R"({"wait_ms":30000})",
                     "application/json");
    waited = r ? r->status : 0;
  });
  const auto by = SteadyClock::now() + 5s;
  while (SteadyClock::now() < by &&
         client->Get("/metrics")->body.find("ordo_waiting_acquires 1\n") == std::string::npos) {
    std::this_thread::sleep_for(5ms);
  }
  client.reset();
  const auto took = Timed([&] { server->Stop(); });
  waiter.join();
  EXPECT_EQ(waited, 503);
  EXPECT_LT(took, 3s);
}

// A waiter whose client hung up before its turn does not keep the lock it is granted.
TEST(HttpWaitersTest, GrantToAVanishedWaiterIsGivenBack) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  const std::string name = UniqueName("vanish");
  const std::string base = "/v1/locks/" + name;
  auto held = client->Post((base + "/acquire").c_str(), "{}", "application/json");
  ASSERT_EQ(held->status, 200);
  {
    Crowd gone;
    const std::string body = R"({"wait_ms":10000})";
    ASSERT_NO_FATAL_FAILURE(gone.Send(
        server->port(), "POST " + base + "/acquire HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body));
    const auto by = SteadyClock::now() + 5s;
    while (SteadyClock::now() < by &&
           client->Get("/metrics")->body.find("ordo_waiting_acquires 1\n") == std::string::npos) {
      std::this_thread::sleep_for(5ms);
    }
  }  // the waiter's connection closes here
  ASSERT_EQ(client->Post((base + "/release").c_str(), json{{"token", BodyOf(held)["token"]}}.dump(),
                         "application/json")
                ->status,
            200);
  // The head of the line is granted the lock, fails to deliver it, and releases it.
  const auto by = SteadyClock::now() + 5s;
  bool free = false;
  while (!free && SteadyClock::now() < by) {
    auto state = BodyOf(client->Get(base.c_str()));
    free = state["holders"].empty() && state["last_token"] > BodyOf(held)["token"];
    if (!free) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(free) << "the vanished waiter's lease was not given back";
}

// inproc: with a Watch of its own that the test fires by hand, as a backend's notification
// (another replica's release, LISTEN/NOTIFY) would. The test reaches the shared inner locker
// directly, behind the server's back.
class WatchedLocker final : public ForwardingLocker {
 public:
  explicit WatchedLocker(std::shared_ptr<Locker> inner) : ForwardingLocker(std::move(inner)) {}

  // Counts the tries refused because the lock is held: the server's first try for a parked
  // waiter comes after its Watch, so one refusal means the line is parked and watched.
  Result<Lease> Acquire(const LockRequest& r) override {
    auto lease = inner_->Acquire(r);
    if (!lease.ok() && lease.status().code() == StatusCode::kLockHeld) refused_.fetch_add(1);
    return lease;
  }
  int refused() const { return refused_.load(); }

  class Sub final : public Subscription {
   public:
    Sub(WatchedLocker* owner, std::string name) : owner_(owner), name_(std::move(name)) {}
    ~Sub() override {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      owner_->watches_.erase(name_);
    }

   private:
    WatchedLocker* owner_;
    std::string name_;
  };
  std::unique_ptr<Subscription> Watch(std::string_view name,
                                      std::function<void()> changed) override {
    std::lock_guard<std::mutex> lock(mu_);
    watches_[std::string(name)] = std::move(changed);
    return std::make_unique<Sub>(this, std::string(name));
  }
  // Calls the callback of `name`'s watch, as the backend would on a change.
  bool Fire(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = watches_.find(name);
    if (it == watches_.end()) return false;
    it->second();
    return true;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::function<void()>> watches_;  // guarded by mu_
  std::atomic<int> refused_{0};
};

// With a Watch source the server does not poll: a release it did not see wakes the waiter
// only when the backend's notification fires.
TEST(HttpWaitersTest, BackendNotificationWakesAParkedWaiter) {
  std::shared_ptr<Locker> inner = OpenInproc();
  ASSERT_NE(inner, nullptr);
  auto watched = std::make_unique<WatchedLocker>(inner);
  WatchedLocker* watch = watched.get();
  auto server = StartServer({}, std::move(watched));
  ASSERT_NE(server, nullptr);
  auto client = ClientFor(*server);
  const std::string name = UniqueName("watched");
  auto held = inner->Acquire({.name = name, .ttl = 60s});
  ASSERT_TRUE(held.ok());
  Crowd waiter;
  const std::string body = R"({"wait_ms":10000})";
  ASSERT_NO_FATAL_FAILURE(waiter.Send(
      server->port(), "POST /v1/locks/" + name + "/acquire HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body));
  // Parked, and its first try made (and refused): only then is a release one it must be woken
  // for; before, that first try would simply take the lock.
  const auto by = SteadyClock::now() + 5s;
  while (SteadyClock::now() < by &&
         (client->Get("/metrics")->body.find("ordo_waiting_acquires 1\n") == std::string::npos ||
          watch->refused() == 0)) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(watch->refused(), 1) << "the parked waiter's first try was not made";
  ASSERT_TRUE(inner->Release(*held).ok());  // behind the server's back, as another replica
  EXPECT_EQ(waiter.Poll(400ms), 0) << "a watched line was polled";
  const auto fired = SteadyClock::now();
  ASSERT_TRUE(watch->Fire(name)) << "the server did not watch the waiter's lock";
  int answered = 0;
  while (answered == 0 && SteadyClock::now() < fired + 2s) answered = waiter.Poll(50ms);
  ASSERT_EQ(answered, 1);
  EXPECT_EQ(waiter.reply(0).status, 200) << waiter.reply(0).body;
  EXPECT_LT(waiter.answered(0) - fired, 200ms);
}

// Watch does not signal expiry by TTL: the server wakes the line at the first holder's
// expires_at.
TEST(HttpWaitersTest, HolderExpiryWakesAParkedWaiter) {
  std::shared_ptr<Locker> inner = OpenInproc();
  ASSERT_NE(inner, nullptr);
  auto server = StartServer({}, std::make_unique<WatchedLocker>(inner));
  ASSERT_NE(server, nullptr);
  const std::string name = UniqueName("expiring");
  auto held = inner->Acquire({.name = name, .ttl = 400ms});
  ASSERT_TRUE(held.ok());
  Crowd waiter;
  const std::string body = R"({"wait_ms":5000})";
  ASSERT_NO_FATAL_FAILURE(waiter.Send(
      server->port(), "POST /v1/locks/" + name + "/acquire HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body));
  int answered = 0;
  while (answered == 0 && SteadyClock::now() < waiter.sent(0) + 4s) answered = waiter.Poll(50ms);
  ASSERT_EQ(answered, 1);
  EXPECT_EQ(waiter.reply(0).status, 200) << waiter.reply(0).body;
  EXPECT_LT(waiter.answered(0) - waiter.sent(0), 1500ms) << "woken long after the expiry";
}

}  // namespace
}  // namespace ordo::testing
