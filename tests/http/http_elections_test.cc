// The election routes over real loopback HTTP: campaign, conflict with the leader, renew,
// resign, 410 after resigning, the long-poll woken by a resign, 404 and bad input.
#include <gtest/gtest.h>

#include <thread>

#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const std::string kParkedElectionPolls = R"(ordo_parked_long_polls{route="elections"})";

class HttpElectionsTest : public ServerTest {
 protected:
  httplib::Result Campaign(const std::string& name, const json& body) {
    return Post("/v1/elections/" + name + "/campaign", body);
  }
};

TEST_F(HttpElectionsTest, CampaignConflictRenewResign) {
  ExpectError(client_->Get("/v1/elections/sched"), 404, "not_found");

  auto won = Campaign("sched", {{"candidate", "host-a:8080"}, {"ttl_ms", 5000}});
  ASSERT_TRUE(won);
  ASSERT_EQ(won->status, 200) << won->body;
  const json lead = BodyOf(won);
  EXPECT_EQ(lead["name"], "sched");
  EXPECT_EQ(lead["candidate"], "host-a:8080");
  EXPECT_EQ(lead["ttl_ms"], 5000);
  EXPECT_TRUE(lead["expires_at"].is_string());
  const std::uint64_t term = lead["term"].get<std::uint64_t>();
  ASSERT_GT(term, 0u);

  // Another candidate is refused with the leader named.
  auto lost = Campaign("sched", {{"candidate", "host-b:8080"}});
  ExpectError(lost, 409, "lock_held");
  const json conflict = BodyOf(lost);
  ASSERT_TRUE(conflict["leader"].is_object()) << lost->body;
  EXPECT_EQ(conflict["leader"]["candidate"], "host-a:8080");
  EXPECT_EQ(conflict["leader"]["term"], term);

  // The leader as GET sees it, and as the lock route sees it (owner = candidate).
  auto got = client_->Get("/v1/elections/sched");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(BodyOf(got)["leader"]["candidate"], "host-a:8080");
  EXPECT_EQ(BodyOf(got)["leader"]["term"], term);
  EXPECT_EQ(BodyOf(got)["last_term"], term);
  auto as_lock = client_->Get("/v1/locks/sched");
  ASSERT_TRUE(as_lock);
  EXPECT_EQ(BodyOf(as_lock)["holders"][0]["owner"], "host-a:8080");

  auto renewed = Post("/v1/elections/sched/renew", {{"term", term}, {"ttl_ms", 8000}});
  ASSERT_TRUE(renewed);
  ASSERT_EQ(renewed->status, 200) << renewed->body;
  EXPECT_EQ(BodyOf(renewed)["term"], term);
  EXPECT_EQ(BodyOf(renewed)["ttl_ms"], 8000);
  ExpectError(Post("/v1/elections/sched/renew", {{"term", term + 7}}), 410, "lease_lost");

  auto resigned = Post("/v1/elections/sched/resign", {{"term", term}});
  ASSERT_TRUE(resigned);
  ASSERT_EQ(resigned->status, 200) << resigned->body;
  EXPECT_EQ(BodyOf(resigned)["resigned"], true);
  ExpectError(Post("/v1/elections/sched/resign", {{"term", term}}), 410, "lease_lost");
  ExpectError(Post("/v1/elections/sched/renew", {{"term", term}}), 410, "lease_lost");

  auto after = client_->Get("/v1/elections/sched");
  ASSERT_TRUE(after);
  ASSERT_EQ(after->status, 200) << after->body;
  EXPECT_TRUE(BodyOf(after)["leader"].is_null()) << after->body;
  EXPECT_EQ(BodyOf(after)["last_term"], term);

  // The next leader's term is larger.
  auto next = Campaign("sched", {{"candidate", "host-b:8080"}});
  ASSERT_TRUE(next);
  ASSERT_EQ(next->status, 200) << next->body;
  EXPECT_GT(BodyOf(next)["term"].get<std::uint64_t>(), term);
}

TEST_F(HttpElectionsTest, WaitingCampaignTakesOverOnResign) {
  auto won = Campaign("park", {{"candidate", "a"}});
  ASSERT_TRUE(won && won->status == 200);
  const auto term = BodyOf(won)["term"].get<std::uint64_t>();
  int waited_status = 0;
  json waited;
  std::thread waiter([&] {
    auto c = ClientFor(*server_);
    auto r = c->Post("/v1/elections/park/campaign",
                     json{{"candidate", "b"}, {"wait_ms", 10000}}.dump(), "application/json");
    if (r) {
      waited_status = r->status;
      waited = BodyOf(r);
    }
  });
  // The waiter is parked before the resign (the server counts it).
  EXPECT_TRUE(WaitForMetric(*server_, "ordo_waiting_acquires", 1)) << "the campaign never parked";
  auto resigned = Post("/v1/elections/park/resign", {{"term", term}});
  ASSERT_TRUE(resigned && resigned->status == 200);
  waiter.join();
  ASSERT_EQ(waited_status, 200) << waited.dump();
  EXPECT_EQ(waited["candidate"], "b");
  EXPECT_GT(waited["term"].get<std::uint64_t>(), term);
}

TEST_F(HttpElectionsTest, LongPollIsWokenByResignWithin100ms) {
  auto won = Campaign("watch", {{"candidate", "a"}, {"ttl_ms", 30000}});
  ASSERT_TRUE(won && won->status == 200);
  const auto term = BodyOf(won)["term"].get<std::uint64_t>();

  // Unchanged: answered after the wait with the same leader.
  const auto t0 = SteadyClock::now();
  auto same = client_->Get(("/v1/elections/watch?after_term=" + std::to_string(term) +
                            "&wait_ms=200").c_str());
  ASSERT_TRUE(same);
  ASSERT_EQ(same->status, 200) << same->body;
  EXPECT_GE(SteadyClock::now() - t0, 190ms);
  EXPECT_EQ(BodyOf(same)["leader"]["term"], term);
  // A term already different: answered at once.
  auto differs = client_->Get("/v1/elections/watch?after_term=0&wait_ms=10000");
  ASSERT_TRUE(differs && differs->status == 200);
  EXPECT_EQ(BodyOf(differs)["leader"]["term"], term);

  int polled_status = 0;
  json polled;
  SteadyClock::time_point answered;
  std::thread observer([&] {
    auto c = ClientFor(*server_);
    auto r = c->Get(("/v1/elections/watch?after_term=" + std::to_string(term) +
                     "&wait_ms=20000").c_str());
    answered = SteadyClock::now();
    if (r) {
      polled_status = r->status;
      polled = BodyOf(r);
    }
  });
  EXPECT_TRUE(WaitForMetric(*server_, kParkedElectionPolls, 1)) << "the long-poll never parked";
  const auto resigned_at = SteadyClock::now();
  auto resigned = Post("/v1/elections/watch/resign", {{"term", term}});
  ASSERT_TRUE(resigned && resigned->status == 200);
  observer.join();
  ASSERT_EQ(polled_status, 200) << polled.dump();
  EXPECT_TRUE(polled["leader"].is_null()) << polled.dump();
  EXPECT_EQ(polled["last_term"], term);
  EXPECT_LT(answered - resigned_at, 100ms);
}

TEST_F(HttpElectionsTest, BadInputIs400AndChangesNothing) {
  ExpectError(Campaign("e", json::object()), 400, "invalid_argument");  // no candidate
  ExpectError(Campaign("e", {{"candidate", ""}}), 400, "invalid_argument");
  ExpectError(Campaign("e", {{"candidate", std::string(257, 'x')}}), 400, "invalid_argument");
  ExpectError(Campaign("e", {{"candidate", "a"}, {"ttl_ms", 5}}), 400, "invalid_argument");
  ExpectError(Campaign("e", {{"candidate", "a"}, {"wait_ms", 99999999}}), 400,
              "invalid_argument");
  ExpectError(Campaign("e", {{"candidate", "a"}, {"owner", "a"}}), 400, "invalid_argument");
  ExpectError(Campaign("bad%2Fname", {{"candidate", "a"}}), 400, "invalid_argument");
  ExpectError(Post("/v1/elections/e/resign", {{"token", 1}}), 400, "invalid_argument");
  ExpectError(Post("/v1/elections/e/renew", json::object()), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/elections/e?after_term=x"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/elections/e?wait_ms=100"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/elections/e?after_term=0&wait_ms=99999999"), 400,
              "invalid_argument");
  ExpectError(client_->Get("/v1/elections/e?other=1"), 400, "invalid_argument");
  // Nothing was campaigned.
  ExpectError(client_->Get("/v1/elections/e"), 404, "not_found");
  // HEAD changes nothing and does not wait.
  auto head = client_->Head("/v1/elections/e?after_term=0&wait_ms=10000");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  ExpectError(client_->Get("/v1/elections/e"), 404, "not_found");
}

TEST_F(HttpElectionsTest, ListShowsCampaignedElectionsOnly) {
  auto won = Campaign("svc.leader", {{"candidate", "a"}});
  ASSERT_TRUE(won && won->status == 200);
  auto lock = Post("/v1/locks/svc.plain/acquire", json::object());
  ASSERT_TRUE(lock && lock->status == 200);
  auto listed = client_->Get("/v1/elections?prefix=svc.");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200) << listed->body;
  const json items = BodyOf(listed)["elections"];
  ASSERT_EQ(items.size(), 1u) << listed->body;
  EXPECT_EQ(items[0]["name"], "svc.leader");
  EXPECT_EQ(items[0]["leader"]["candidate"], "a");
  auto none = client_->Get("/v1/elections?prefix=other.");
  ASSERT_TRUE(none && none->status == 200);
  EXPECT_TRUE(BodyOf(none)["elections"].empty());
}

TEST_F(HttpElectionsTest, LongPollIsWokenByTheLeadersExpiry) {
  auto won = Campaign("lapse", {{"candidate", "a"}, {"ttl_ms", 300}});
  ASSERT_TRUE(won && won->status == 200);
  const auto term = BodyOf(won)["term"].get<std::uint64_t>();
  const auto t0 = SteadyClock::now();
  auto polled = client_->Get(("/v1/elections/lapse?after_term=" + std::to_string(term) +
                              "&wait_ms=20000").c_str());
  ASSERT_TRUE(polled);
  ASSERT_EQ(polled->status, 200) << polled->body;
  EXPECT_TRUE(BodyOf(polled)["leader"].is_null()) << polled->body;
  EXPECT_LT(SteadyClock::now() - t0, 2s);
}

TEST(HttpElectionsStopTest, StopAnswersAParkedLongPoll) {
  auto server = StartServer();
  auto client = ClientFor(*server);
  auto won = client->Post("/v1/elections/s/campaign", json{{"candidate", "a"}}.dump(),
                          "application/json");
  ASSERT_TRUE(won && won->status == 200);
  const auto term = BodyOf(won)["term"].get<std::uint64_t>();
  int status = 0;
  std::thread observer([&] {
    auto c = ClientFor(*server);
    auto r = c->Get(("/v1/elections/s?after_term=" + std::to_string(term) + "&wait_ms=30000")
                        .c_str());
    if (r) status = r->status;
  });
  EXPECT_TRUE(WaitForMetric(*server, kParkedElectionPolls, 1)) << "the long-poll never parked";
  const auto t0 = SteadyClock::now();
  server->Stop();
  observer.join();
  EXPECT_LT(SteadyClock::now() - t0, 5s);
  EXPECT_EQ(status, 503);
}

TEST(HttpElectionsAuthTest, ElectionNameIsThePrefixChecked) {
  const AuthFile file("jobs-token-0123456789 jobs.\n");
  auto server = StartServer({.auth_file = file.path()});
  auto client = ClientFor(*server);
  const httplib::Headers with{{"Authorization", "Bearer jobs-token-0123456789"}};
  const std::string body = json{{"candidate", "a"}}.dump();
  ExpectError(client->Post("/v1/elections/jobs.leader/campaign", body, "application/json"), 401,
              "unauthorized");
  ExpectError(client->Post("/v1/elections/other/campaign", with, body, "application/json"), 403,
              "forbidden");
  auto ok = client->Post("/v1/elections/jobs.leader/campaign", with, body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

}  // namespace
}  // namespace ordo::testing
