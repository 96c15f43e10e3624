// The operator's surface of the REST server: the events ring (bounds, ordering, long-poll
// wake-up), GET /v1/events over loopback (parked long-polls), and POST .../revoke with the
// admin scope.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "events.h"
#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using http::Event;
using http::Events;

TEST(EventsRingTest, KeepsTheNewestUpToCapacityInOrder) {
  Events ring(4);
  for (int i = 0; i < 10; ++i) ring.Record({.type = "acquired", .name = "l" + std::to_string(i)});
  EXPECT_EQ(ring.last_id(), 10u);
  const auto all = ring.After(0, "", 100);
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].id, 7 + i);
    EXPECT_EQ(all[i].name, "l" + std::to_string(6 + i));
    if (i > 0) {
      EXPECT_GE(all[i].time, all[i - 1].time);
    }
  }
  EXPECT_EQ(ring.After(8, "", 100).size(), 2u);
  EXPECT_EQ(ring.After(8, "", 100).front().id, 9u);
  EXPECT_TRUE(ring.After(10, "", 100).empty());
  EXPECT_EQ(ring.After(0, "", 1).size(), 1u);
  EXPECT_EQ(ring.After(0, "l9", 100).size(), 1u);
}

TEST(EventsRingTest, IdsIncreaseAcrossThreads) {
  Events ring(100000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ring, t] {
      for (int i = 0; i < 1000; ++i) ring.Record({.type = "renewed", .name = "t" + std::to_string(t)});
    });
  }
  for (auto& t : threads) t.join();
  const auto all = ring.After(0, "", 100000);
  ASSERT_EQ(all.size(), 4000u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].id, i + 1);
}

TEST(EventsRingTest, WaitWakesOnAMatchingEventOnly) {
  Events ring;
  ring.Record({.type = "acquired", .name = "a.1"});
  // An event after `after` exists already: no registration.
  EXPECT_EQ(ring.Wait(0, "a.", [] { FAIL() << "must not be called"; }), 0u);
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  const auto handle = ring.Wait(1, "b.", [&] {
    std::lock_guard<std::mutex> lock(mu);
    woken = true;
    cv.notify_all();
  });
  ASSERT_NE(handle, 0u);
  EXPECT_EQ(ring.waiting(), 1u);
  ring.Record({.type = "acquired", .name = "a.2"});  // does not match the prefix
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_FALSE(woken);
  }
  std::thread recorder([&ring] { ring.Record({.type = "released", .name = "b.1"}); });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return woken; }));
  }
  recorder.join();
  EXPECT_EQ(ring.waiting(), 0u);
  EXPECT_FALSE(ring.Cancel(handle)) << "already woken";
}

TEST(EventsRingTest, CancelAndShutdown) {
  Events ring;
  int calls = 0;
  const auto cancelled = ring.Wait(0, "", [&] { ++calls; });
  EXPECT_TRUE(ring.Cancel(cancelled));
  ring.Record({.type = "acquired", .name = "x"});
  EXPECT_EQ(calls, 0);
  ASSERT_NE(ring.Wait(1, "", [&] { ++calls; }), 0u);
  ring.Shutdown();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ring.Wait(1, "", [&] { ++calls; }), 0u) << "refused after Shutdown";
}

json GetEvents(httplib::Client& client, const std::string& query,
            const httplib::Headers& headers = {}) {
  auto r = client.Get(("/v1/events" + query).c_str(), headers);
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  return BodyOf(r);
}

TEST(HttpEventsTest, RecordsAcquireRenewReleaseOldestFirst) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  auto a = client->Post("/v1/locks/ev.a/acquire", R"({"owner":"w1"})", "application/json");
  ASSERT_EQ(a->status, 200) << a->body;
  const auto token = BodyOf(a)["token"].get<std::uint64_t>();
  ASSERT_EQ(client->Post("/v1/locks/ev.a/renew", json{{"token", token}}.dump(), "application/json")
                ->status,
            200);
  ASSERT_EQ(client->Post("/v1/locks/other/acquire", "{}", "application/json")->status, 200);
  ASSERT_EQ(
      client->Post("/v1/locks/ev.a/release", json{{"token", token}}.dump(), "application/json")
          ->status,
      200);
  const json all = GetEvents(*client, "?prefix=ev.");
  ASSERT_EQ(all["events"].size(), 3u) << all.dump();
  EXPECT_EQ(all["events"][0]["type"], "acquired");
  EXPECT_EQ(all["events"][0]["owner"], "w1");
  EXPECT_EQ(all["events"][0]["token"], token);
  EXPECT_EQ(all["events"][1]["type"], "renewed");
  EXPECT_EQ(all["events"][2]["type"], "released");
  EXPECT_EQ(all["events"][2]["owner"], "w1") << "filled in from the acquire";
  EXPECT_LT(all["events"][0]["id"], all["events"][1]["id"]);
  EXPECT_EQ(all["last"], all["events"][2]["id"]);
  const auto after = all["last"].get<std::uint64_t>();
  EXPECT_TRUE(GetEvents(*client, "?after=" + std::to_string(after) + "&prefix=ev.")["events"].empty());
  auto bad = client->Get("/v1/events?after=x");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(client->Get("/v1/events?wait_ms=999999999")->status, 400);
  EXPECT_EQ(client->Get("/v1/events?nope=1")->status, 400);
}

TEST(HttpEventsTest, LongPollIsAnsweredByTheNextEventAndTimesOutEmpty) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  const auto last = GetEvents(*client, "")["last"].get<std::uint64_t>();
  // Empty after its wait.
  const auto t0 = std::chrono::steady_clock::now();
  const json empty = GetEvents(*client, "?after=" + std::to_string(last) + "&wait_ms=200");
  EXPECT_TRUE(empty["events"].empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);
  // Woken by an acquire on another connection, well before its 20 s wait.
  std::atomic<bool> answered{false};
  json got;
  std::thread poll([&] {
    auto c = ClientFor(*server);
    c->set_read_timeout(30s);
    got = GetEvents(*c, "?after=" + std::to_string(last) + "&wait_ms=20000&prefix=lp.");
    answered = true;
  });
  // Give the request time to park (if it has not, it is answered at once: the same outcome).
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(client->Post("/v1/locks/elsewhere/acquire", "{}", "application/json")->status, 200);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(answered) << "an event outside the prefix does not answer it";
  ASSERT_EQ(client->Post("/v1/locks/lp.x/acquire", R"({"owner":"p"})", "application/json")->status,
            200);
  const auto t1 = std::chrono::steady_clock::now();
  poll.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 2s);
  ASSERT_EQ(got["events"].size(), 1u) << got.dump();
  EXPECT_EQ(got["events"][0]["name"], "lp.x");
}

TEST(HttpEventsTest, AnExpiryIsRecordedWhenTheServerNoticesIt) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  auto a = client->Post("/v1/locks/ex.a/acquire", R"({"owner":"slow","ttl_ms":100})",
                        "application/json");
  ASSERT_EQ(a->status, 200) << a->body;
  const auto token = BodyOf(a)["token"].get<std::uint64_t>();
  // Bounded poll: each read of the events is a chance for the server to notice.
  json expired;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (expired.is_null() && std::chrono::steady_clock::now() < deadline) {
    const json got = GetEvents(*client, "?prefix=ex.");
    for (const auto& e : got["events"]) {
      if (e["type"] == "expired") expired = e;
    }
    if (expired.is_null()) std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(expired.is_null());
  EXPECT_EQ(expired["token"], token);
  EXPECT_EQ(expired["owner"], "slow");
  // Reported once.
  int count = 0;
  const json again = GetEvents(*client, "?prefix=ex.");
  for (const auto& e : again["events"]) count += e["type"] == "expired";
  EXPECT_EQ(count, 1);
}

TEST(HttpEventsTest, StopAnswersParkedLongPolls) {
  auto server = StartServer();
  std::thread poll([&] {
    auto c = ClientFor(*server);
    c->set_read_timeout(30s);
    auto r = c->Get("/v1/events?after=0&wait_ms=30000");
    if (r) {
      EXPECT_EQ(r->status, 200);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(100ms);  // let the request park; Stop must answer it either way
  server->Stop();
  poll.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(HttpRevokeTest, AdminRevokesAndThePlainTokenIsRefused) {
  TempDir dir;
  const std::string file = dir.path() + "/tokens";
  {
    std::ofstream out(file);
    out << "plain-token-0123456789 *\n"
        << "# operators\n"
        << "admin-token-0123456789 * admin\n";
  }
  auto server = StartServer({.auth_file = file});
  auto client = ClientFor(*server);
  const httplib::Headers plain = {{"Authorization", "Bearer plain-token-0123456789"}};
  const httplib::Headers admin = {{"Authorization", "Bearer admin-token-0123456789"}};
  auto a = client->Post("/v1/locks/rv.a/acquire", plain, R"({"owner":"job"})", "application/json");
  ASSERT_EQ(a->status, 200) << a->body;
  const auto token = BodyOf(a)["token"].get<std::uint64_t>();
  const std::string body = json{{"token", token}}.dump();

  auto refused = client->Post("/v1/locks/rv.a/revoke", plain, body, "application/json");
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_EQ(client->Get("/v1/locks/rv.a", plain)->status, 200) << "still held";

  auto revoked = client->Post("/v1/locks/rv.a/revoke", admin, body, "application/json");
  ASSERT_EQ(revoked->status, 200) << revoked->body;
  // The token is never a live holder again: renew fails, a strict fenced write is refused,
  // a second revoke finds nothing.
  EXPECT_NE(client->Post("/v1/locks/rv.a/renew", plain, body, "application/json")->status, 200);
  auto fenced = client->Put("/v1/fenced/rv.k",
                            {{"Authorization", "Bearer plain-token-0123456789"},
                             {"Fencing-Token", std::to_string(token)},
                             {"Fencing-Lock", "rv.a"}},
                            "x", "text/plain");
  EXPECT_EQ(fenced->status, 409) << fenced->body;
  EXPECT_NE(client->Post("/v1/locks/rv.a/revoke", admin, body, "application/json")->status, 200);

  const json events = GetEvents(*client, "?prefix=rv.", plain);
  bool saw = false, saw_refused = false;
  for (const auto& e : events["events"]) {
    if (e["type"] == "revoked") {
      saw = true;
      EXPECT_EQ(e["token"], token);
      EXPECT_EQ(e["owner"], "job");
      EXPECT_EQ(e["by"], "line 3") << "the auth-file line, never the token";
    }
    saw_refused = saw_refused || e["type"] == "fence_refused";
  }
  EXPECT_TRUE(saw) << events.dump();
  EXPECT_TRUE(saw_refused) << events.dump();
  EXPECT_EQ(events.dump().find("admin-token"), std::string::npos);
}

TEST(HttpRevokeTest, BadScopeInTheAuthFileIsRefused) {
  TempDir dir;
  const std::string file = dir.path() + "/tokens";
  {
    std::ofstream out(file);
    out << "admin-token-0123456789 * root\n";
  }
  auto server = http::Server::Start({.backend_url = "inproc:", .listen = "127.0.0.1:0",
                                     .auth_file = file});
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("admin"), std::string::npos)
      << server.status().ToString();
}

}  // namespace
}  // namespace ordo::testing
