// The operator's surface of the REST server: the events ring (bounds, ordering, long-poll
// wake-up), GET /v1/events over loopback (parked long-polls), and POST .../revoke with the
// admin scope.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "events.h"
#include "http_test_util.h"
#include "ordo_wire/wire.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using http::Event;
using http::Events;

const std::string kParkedEventPolls = R"(ordo_parked_long_polls{route="events"})";

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

// POSTs `body` as JSON; the reply's status (0: no reply).
int PostStatus(httplib::Client& client, const std::string& path, const json& body) {
  auto r = client.Post(path.c_str(), body.dump(), "application/json");
  return r ? r->status : 0;
}

// Acquires `name` for `owner` without waiting; its token (0, with a failed expectation, when
// refused).
std::uint64_t AcquireToken(httplib::Client& client, const std::string& name,
                           const std::string& owner) {
  auto r = client.Post(("/v1/locks/" + name + "/acquire").c_str(), json{{"owner", owner}}.dump(),
                       "application/json");
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no reply");
  return r && r->status == 200 ? BodyOf(r)["token"].get<std::uint64_t>() : 0;
}

TEST(HttpEventsTest, RecordsAcquireRenewReleaseOldestFirst) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  const auto token = AcquireToken(*client, "ev.a", "w1");
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
  EXPECT_TRUE(WaitForMetric(*server, kParkedEventPolls, 1)) << "the long-poll never parked";
  ASSERT_EQ(client->Post("/v1/locks/elsewhere/acquire", "{}", "application/json")->status, 200);
  // Recording wakes the matching long-polls before the acquire is answered: one still parked
  // now was not woken.
  EXPECT_EQ(MetricValue(*server, kParkedEventPolls), 1)
      << "an event outside the prefix does not answer it";
  EXPECT_FALSE(answered);
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
  EXPECT_TRUE(WaitForMetric(*server, kParkedEventPolls, 1)) << "the long-poll never parked";
  const auto t0 = std::chrono::steady_clock::now();
  server->Stop();
  poll.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(EventsRingTest, CapacityZeroIsOff) {
  Events ring(0);
  EXPECT_FALSE(ring.enabled());
  ring.Record({.type = "acquired", .name = "a", .token = 1});
  ring.Sweep();
  EXPECT_EQ(ring.last_id(), 0u);
  EXPECT_TRUE(ring.After(0, "", 100).empty());
}

TEST(HttpEventsTest, TheRingCanBeTurnedOff) {
  auto server = StartServer({.events_ring = 0});
  auto client = ClientFor(*server);
  const auto token = AcquireToken(*client, "off.a", "w");
  ASSERT_EQ(PostStatus(*client, "/v1/locks/off.a/release", {{"token", token}}), 200);
  const json none = GetEvents(*client, "");
  EXPECT_TRUE(none["events"].empty()) << none.dump();
  EXPECT_EQ(none["last"], 0);
  // The rest of the server works as before; /v1/info says the ring is off (the page reads it).
  EXPECT_EQ(client->Get("/v1/locks/off.a")->status, 200);
  EXPECT_EQ(BodyOf(client->Get("/v1/info"))["events_ring"], 0);
  // Out of range is refused at start, naming the flag.
  auto big = http::Server::Start({.backend_url = "inproc:", .listen = "127.0.0.1:0",
                                  .events_ring = http::ServeOptions::kMaxEventsRing + 1});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("--events-ring"), std::string::npos)
      << big.status().ToString();
}

TEST(HttpWaitersTest, LockStateListsTheParkedWaitersHeadFirst) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  const auto token = AcquireToken(*client, "wt.a", "holder");
  const json idle = BodyOf(client->Get("/v1/locks/wt.a"));
  ASSERT_TRUE(idle["waiters"].is_array()) << idle.dump();
  EXPECT_TRUE(idle["waiters"].empty());

  std::vector<int> statuses(2, 0);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&, i] {
      auto c = ClientFor(*server);
      auto r = c->Post("/v1/locks/wt.a/acquire",
                       json{{"owner", "waiter-" + std::to_string(i)}, {"wait_ms", 10000}}.dump(),
                       "application/json");
      if (r) statuses[static_cast<std::size_t>(i)] = r->status;
      if (r && r->status == 200) {
        c->Post("/v1/locks/wt.a/release", json{{"token", BodyOf(r)["token"]}}.dump(),
                "application/json");
      }
    });
    // One at a time, so the line's order is known.
    EXPECT_TRUE(WaitForMetric(*server, "ordo_waiting_acquires", i + 1));
  }
  const json waiting = BodyOf(client->Get("/v1/locks/wt.a"));
  ASSERT_EQ(waiting["waiters"].size(), 2u) << waiting.dump();
  EXPECT_EQ(waiting["waiters"][0]["owner"], "waiter-0");
  EXPECT_EQ(waiting["waiters"][1]["owner"], "waiter-1");
  EXPECT_EQ(waiting["waiters"][0]["mode"], "exclusive");
  EXPECT_GE(waiting["waiters"][0]["waited_ms"].get<std::int64_t>(),
            waiting["waiters"][1]["waited_ms"].get<std::int64_t>());
  // The list shows them too.
  const json listed = BodyOf(client->Get("/v1/locks?prefix=wt."));
  ASSERT_EQ(listed["locks"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["locks"][0]["waiters"].size(), 2u) << listed.dump();

  ASSERT_EQ(PostStatus(*client, "/v1/locks/wt.a/release", {{"token", token}}), 200);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(statuses, (std::vector<int>{200, 200}));
  EXPECT_TRUE(WaitForMetric(*server, "ordo_waiting_acquires", 0));
  const json after = BodyOf(client->Get("/v1/locks/wt.a"));
  EXPECT_TRUE(after["waiters"].empty()) << after.dump();
}

TEST(HttpElectionsSinceTest, TheLeaderSaysSinceWhenAndItsEventsSayElection) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  // "since" has millisecond precision (floored).
  const auto now_ms = [] {
    return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  };
  const auto before = now_ms();
  auto won = client->Post("/v1/elections/es.a/campaign", R"({"candidate":"a"})",
                          "application/json");
  ASSERT_EQ(won->status, 200) << won->body;
  const auto term = BodyOf(won)["term"].get<std::uint64_t>();
  const json got = BodyOf(client->Get("/v1/elections/es.a"));
  ASSERT_TRUE(got["leader"]["since"].is_string()) << got.dump();
  const std::string since = got["leader"]["since"];
  // The list says the same; renewing keeps it (the same term).
  const json listed = BodyOf(client->Get("/v1/elections?prefix=es."));
  EXPECT_EQ(listed["elections"][0]["leader"]["since"], since) << listed.dump();
  ASSERT_EQ(PostStatus(*client, "/v1/elections/es.a/renew", {{"term", term}}), 200);
  EXPECT_EQ(BodyOf(client->Get("/v1/elections/es.a"))["leader"]["since"], since);
  const auto parsed = http::wire::ParseTime(since);
  ASSERT_TRUE(parsed.has_value()) << since;
  EXPECT_GE(*parsed, before);
  EXPECT_LE(*parsed, now_ms());
  // A takeover starts a new "since".
  ASSERT_EQ(PostStatus(*client, "/v1/elections/es.a/resign", {{"term", term}}), 200);
  const auto takeover = now_ms();
  ASSERT_EQ(PostStatus(*client, "/v1/elections/es.a/campaign", {{"candidate", "b"}}), 200);
  const json next = BodyOf(client->Get("/v1/elections/es.a"));
  EXPECT_EQ(next["leader"]["candidate"], "b");
  ASSERT_TRUE(next["leader"]["since"].is_string()) << next.dump();
  const auto next_since = http::wire::ParseTime(next["leader"]["since"].get<std::string>());
  ASSERT_TRUE(next_since.has_value()) << next.dump();
  EXPECT_GE(*next_since, takeover) << next.dump();
  // A plain lock of another name is no election; the election's events say they are.
  AcquireToken(*client, "es.lock", "");
  const json events = GetEvents(*client, "?prefix=es.");
  int elections = 0;
  for (const auto& e : events["events"]) {
    if (e["name"] == "es.a") {
      EXPECT_EQ(e.value("election", false), true) << e.dump();
      ++elections;
    } else {
      EXPECT_FALSE(e.contains("election")) << e.dump();
    }
  }
  EXPECT_EQ(elections, 4) << events.dump();  // acquired, renewed, released, acquired
}

TEST(HttpRevokeTest, AdminRevokesAndThePlainTokenIsRefused) {
  const AuthFile file(
      "plain-token-0123456789 *\n"
      "# operators\n"
      "admin-token-0123456789 * admin\n");
  auto server = StartServer({.auth_file = file.path()});
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
  const AuthFile file("admin-token-0123456789 * root\n");
  auto server = http::Server::Start({.backend_url = "inproc:", .listen = "127.0.0.1:0",
                                     .auth_file = file.path()});
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("admin"), std::string::npos)
      << server.status().ToString();
}

}  // namespace
}  // namespace ordo::testing
