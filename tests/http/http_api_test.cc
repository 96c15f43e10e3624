// The REST API against DESIGN.md's table: every route, every code, over real loopback HTTP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class HttpApiTest : public ServerTest {
 protected:
  httplib::Result Acquire(const std::string& name, json body = json::object()) {
    return Post("/v1/locks/" + name + "/acquire", body);
  }
};

TEST_F(HttpApiTest, AcquireRenewReleaseLifecycle) {
  const std::string name = UniqueName("life");
  auto a = Acquire(name, {{"owner", "job-1"}, {"ttl_ms", 5000}, {"mode", "exclusive"}});
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  const json lease = BodyOf(a);
  EXPECT_EQ(lease["name"], name);
  EXPECT_EQ(lease["owner"], "job-1");
  EXPECT_EQ(lease["mode"], "exclusive");
  EXPECT_EQ(lease["ttl_ms"], 5000);
  ASSERT_TRUE(lease["token"].is_number_unsigned()) << "tokens are JSON numbers";
  EXPECT_GT(lease["token"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(std::regex_match(lease["expires_at"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << lease["expires_at"];
  const auto token = lease["token"].get<std::uint64_t>();

  // Held: 409 lock_held naming the holder.
  auto held = Acquire(name);
  ExpectError(held, 409, "lock_held");
  const json conflict = BodyOf(held);
  ASSERT_EQ(conflict["holders"].size(), 1u) << conflict;
  EXPECT_EQ(conflict["holders"][0]["owner"], "job-1");
  EXPECT_EQ(conflict["holders"][0]["token"], token);

  auto renewed = Post("/v1/locks/" + name + "/renew", {{"token", token}, {"ttl_ms", 20000}});
  ASSERT_TRUE(renewed);
  ASSERT_EQ(renewed->status, 200) << renewed->body;
  EXPECT_EQ(BodyOf(renewed)["token"], token);
  EXPECT_EQ(BodyOf(renewed)["ttl_ms"], 20000);

  // Release needs the holder's token: another token is lease_lost and frees nothing.
  ExpectError(Post("/v1/locks/" + name + "/release", {{"token", token + 1}}), 410, "lease_lost");
  ExpectError(Acquire(name), 409, "lock_held");
  auto released = Post("/v1/locks/" + name + "/release", {{"token", token}});
  ASSERT_TRUE(released);
  EXPECT_EQ(released->status, 200) << released->body;
  // Written by hand on the server: the same bytes the JSON library would write.
  EXPECT_EQ(released->body, json({{"name", name}, {"token", token}, {"released", true}}).dump());
  ExpectError(Post("/v1/locks/" + name + "/release", {{"token", token}}), 410, "lease_lost");
  ExpectError(Post("/v1/locks/" + name + "/renew", {{"token", token}}), 410, "lease_lost");

  // Defaults: an empty body is exclusive, 30 s, no wait, a generated owner.
  auto defaults = client_->Post(("/v1/locks/" + name + "/acquire").c_str(), "", "application/json");
  ASSERT_TRUE(defaults);
  ASSERT_EQ(defaults->status, 200) << defaults->body;
  EXPECT_EQ(BodyOf(defaults)["ttl_ms"], 30000);
  EXPECT_EQ(BodyOf(defaults)["mode"], "exclusive");
  EXPECT_FALSE(BodyOf(defaults)["owner"].get<std::string>().empty());
  EXPECT_GT(BodyOf(defaults)["token"].get<std::uint64_t>(), token);
}

TEST_F(HttpApiTest, SharedHoldersAndWaitedGrant) {
  const std::string name = UniqueName("shared");
  auto a = Acquire(name, {{"mode", "shared"}});
  auto b = Acquire(name, {{"mode", "shared"}});
  ASSERT_EQ(a->status, 200);
  ASSERT_EQ(b->status, 200);
  ExpectError(Acquire(name, {{"mode", "exclusive"}}), 409, "lock_held");
  EXPECT_EQ(BodyOf(Acquire(name))["holders"].size(), 2u);
  // A waiting exclusive acquire is granted once both shared holders let go.
  std::thread releaser([&] {
    auto c = ClientFor(*server_);
    c->Post(("/v1/locks/" + name + "/release").c_str(),
            json{{"token", BodyOf(a)["token"]}}.dump(), "application/json");
    c->Post(("/v1/locks/" + name + "/release").c_str(),
            json{{"token", BodyOf(b)["token"]}}.dump(), "application/json");
  });
  auto waited = Acquire(name, {{"wait_ms", 10000}});
  releaser.join();
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->status, 200) << waited->body;
}

TEST_F(HttpApiTest, DescribeAndList) {
  const std::string prefix = UniqueName("list");
  ExpectError(client_->Get(("/v1/locks/" + prefix + ".never").c_str()), 404, "not_found");
  std::uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = Acquire(prefix + ".n" + std::to_string(i), {{"owner", "o" + std::to_string(i)}});
    ASSERT_EQ(r->status, 200);
    last = BodyOf(r)["token"];
  }
  auto one = client_->Get(("/v1/locks/" + prefix + ".n2").c_str());
  ASSERT_EQ(one->status, 200) << one->body;
  const json state = BodyOf(one);
  EXPECT_EQ(state["name"], prefix + ".n2");
  EXPECT_EQ(state["last_token"], last);
  ASSERT_EQ(state["holders"].size(), 1u);
  EXPECT_EQ(state["holders"][0]["owner"], "o2");

  auto all = client_->Get(("/v1/locks?prefix=" + prefix).c_str());
  ASSERT_EQ(all->status, 200);
  EXPECT_EQ(BodyOf(all)["locks"].size(), 3u);
  EXPECT_EQ(BodyOf(all)["truncated"], false);
  auto capped = client_->Get(("/v1/locks?prefix=" + prefix + "&limit=2").c_str());
  ASSERT_EQ(capped->status, 200);
  EXPECT_EQ(BodyOf(capped)["locks"].size(), 2u);
  EXPECT_EQ(BodyOf(capped)["truncated"], true);
  EXPECT_EQ(BodyOf(capped)["locks"][0]["name"], prefix + ".n0");
  ExpectError(client_->Get("/v1/locks?limit=0"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/locks?limit=1001"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/locks?limit=-3"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/locks?prefix=a%2Fb"), 400, "invalid_argument");
  ExpectError(client_->Get("/v1/locks?colour=red"), 400, "invalid_argument");
}

TEST_F(HttpApiTest, FencedWritesAndReads) {
  const std::string key = UniqueName("fkey");
  ExpectError(client_->Put(("/v1/fenced/" + key).c_str(), "x", "application/octet-stream"), 400,
              "invalid_argument");
  ExpectError(client_->Get(("/v1/fenced/" + key).c_str()), 404, "not_found");
  auto w = client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "5"}},
                        std::string("five\0bytes", 10), "application/octet-stream");
  ASSERT_EQ(w->status, 200) << w->body;
  EXPECT_EQ(BodyOf(w), (json{{"key", key}, {"token", 5}, {"version", 1}}));
  EXPECT_EQ(w->get_header_value("ETag"), "\"1\"");

  auto stale = client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "3"}}, "three",
                            "application/octet-stream");
  ExpectError(stale, 409, "stale_token");
  EXPECT_EQ(BodyOf(stale)["current_token"], 5);

  auto r = client_->Get(("/v1/fenced/" + key).c_str());
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, std::string("five\0bytes", 10)) << "raw bytes, unchanged by the refusal";
  EXPECT_EQ(r->get_header_value("Fencing-Token"), "5");
  EXPECT_EQ(r->get_header_value("ETag"), "\"1\"");

  // A fenced read registers its token: the old holder is shut out before the new one writes.
  auto fenced_read = client_->Get(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "9"}});
  ASSERT_EQ(fenced_read->status, 200);
  EXPECT_EQ(fenced_read->get_header_value("Fencing-Token"), "9");
  ExpectError(client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "6"}}, "late",
                           "application/octet-stream"),
              409, "stale_token");
  ExpectError(client_->Get(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "8"}}), 409,
              "stale_token");
}

// DESIGN.md's motivating scenario: A pauses past its lease, B takes the lock and writes, A's
// late write is refused. In strict mode A is refused even before B writes.
TEST_F(HttpApiTest, PausedHolderIsFencedOff) {
  const std::string lock = UniqueName("paused");
  const std::string key = UniqueName("pkey");
  auto a = Acquire(lock, {{"ttl_ms", 100}});
  ASSERT_EQ(a->status, 200);
  const std::string token_a = std::to_string(BodyOf(a)["token"].get<std::uint64_t>());
  std::this_thread::sleep_for(150ms);  // A is "paused" past its TTL
  auto b = Acquire(lock);
  ASSERT_EQ(b->status, 200) << b->body;
  const std::uint64_t token_b = BodyOf(b)["token"];
  EXPECT_GT(token_b, std::stoull(token_a));
  auto wb = client_->Put(("/v1/fenced/" + key).c_str(),
                         {{"Fencing-Token", std::to_string(token_b)}}, "by B", "text/plain");
  ASSERT_EQ(wb->status, 200);
  auto late = client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", token_a}}, "by A",
                           "text/plain");
  ExpectError(late, 409, "stale_token");
  EXPECT_EQ(BodyOf(late)["current_token"], token_b);
  EXPECT_EQ(client_->Get(("/v1/fenced/" + key).c_str())->body, "by B");
  ExpectError(Post("/v1/locks/" + lock + "/renew", {{"token", std::stoull(token_a)}}), 410,
              "lease_lost");
}

TEST_F(HttpApiTest, StrictModeRefusesExpiredHolderBeforeAnyNewerWrite) {
  const std::string lock = UniqueName("strict");
  const std::string key = UniqueName("skey");
  auto a = Acquire(lock, {{"ttl_ms", 100}});
  ASSERT_EQ(a->status, 200);
  const std::string token_a = std::to_string(BodyOf(a)["token"].get<std::uint64_t>());
  const httplib::Headers strict = {{"Fencing-Token", token_a}, {"Fencing-Lock", lock}};
  ASSERT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), strict, "a1", "text/plain")->status, 200);
  std::this_thread::sleep_for(150ms);  // past A's TTL; nobody else has the lock or wrote
  auto late = client_->Put(("/v1/fenced/" + key).c_str(), strict, "a2", "text/plain");
  ExpectError(late, 409, "stale_token");
  EXPECT_TRUE(BodyOf(late).contains("current_token"));
  ExpectError(client_->Get(("/v1/fenced/" + key).c_str(), strict), 409, "stale_token");
  auto b = Acquire(lock);
  ASSERT_EQ(b->status, 200);
  const httplib::Headers strict_b = {
      {"Fencing-Token", std::to_string(BodyOf(b)["token"].get<std::uint64_t>())},
      {"Fencing-Lock", lock}};
  ASSERT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), strict_b, "b1", "text/plain")->status,
            200);
}

TEST_F(HttpApiTest, ObjectsWithPreconditions) {
  const std::string key = UniqueName("obj");
  const std::string path = "/v1/objects/" + key;
  ExpectError(client_->Get(path.c_str()), 404, "not_found");
  ExpectError(client_->Put(path.c_str(), R"({"a":1})", "application/json"), 428,
              "precondition_required");
  auto created = client_->Put(path.c_str(), {{"If-None-Match", "*"}}, R"({"b":1,"a":1})",
                              "application/json");
  ASSERT_EQ(created->status, 200) << created->body;
  EXPECT_EQ(created->get_header_value("ETag"), "\"1\"");
  EXPECT_EQ(BodyOf(created)["version"], 1);
  auto again = client_->Put(path.c_str(), {{"If-None-Match", "*"}}, "{}", "application/json");
  ExpectError(again, 412, "version_mismatch");
  EXPECT_EQ(BodyOf(again)["current_version"], 1);

  auto got = client_->Get(path.c_str());
  ASSERT_EQ(got->status, 200);
  EXPECT_EQ(got->get_header_value("ETag"), "\"1\"");
  EXPECT_EQ(got->body, R"({"value":{"b":1,"a":1},"version":1})") << "the document as written";

  auto v2 = client_->Put(path.c_str(), {{"If-Match", "\"1\""}}, "[2]", "application/json");
  ASSERT_EQ(v2->status, 200) << v2->body;
  EXPECT_EQ(v2->get_header_value("ETag"), "\"2\"");
  auto lost = client_->Put(path.c_str(), {{"If-Match", "\"1\""}}, "[3]", "application/json");
  ExpectError(lost, 412, "version_mismatch");
  EXPECT_EQ(BodyOf(lost)["current_version"], 2);
  // RFC 9110: lists, '*', and weak tags (which never match If-Match's strong comparison).
  EXPECT_EQ(client_->Put(path.c_str(), {{"If-Match", "\"7\", \"2\""}}, "3", "application/json")
                ->status,
            200);
  EXPECT_EQ(client_->Put(path.c_str(), {{"If-Match", "*"}}, "4", "application/json")->status,
            200);
  ExpectError(client_->Put(path.c_str(), {{"If-Match", "W/\"4\""}}, "5", "application/json"), 412,
              "version_mismatch");
  ExpectError(client_->Put(path.c_str(), {{"If-None-Match", "\"4\""}}, "5", "application/json"),
              412, "version_mismatch");
  ExpectError(client_->Put(("/v1/objects/" + UniqueName("none")).c_str(), {{"If-Match", "*"}},
                           "1", "application/json"),
              412, "version_mismatch");
  ExpectError(client_->Put(path.c_str(), {{"If-Match", "4"}}, "5", "application/json"), 400,
              "invalid_argument");
  ExpectError(client_->Put(path.c_str(), {{"If-Match", "\"4\""}}, "{not json", "application/json"),
              400, "invalid_argument");
  auto final_get = client_->Get(path.c_str());
  EXPECT_EQ(BodyOf(final_get), (json{{"value", 4}, {"version", 4}}));
}

TEST(HttpHealthTest, HealthReadinessAndInfo) {
  auto backend = std::make_unique<FlakyLocker>();
  auto down = backend->down;
  auto server = StartServer({}, std::move(backend));
  auto client = ClientFor(*server);
  auto health = client->Get("/healthz");
  ASSERT_EQ(health->status, 200);
  EXPECT_EQ(BodyOf(health)["status"], "ok");
  EXPECT_EQ(client->Get("/readyz")->status, 200);
  *down = true;
  auto not_ready = client->Get("/readyz");
  ExpectError(not_ready, 503, "unavailable");
  EXPECT_THAT(BodyOf(not_ready)["message"].get<std::string>(), HasSubstr("backend is down"));
  EXPECT_EQ(client->Get("/healthz")->status, 200) << "liveness does not depend on the backend";
  *down = false;
  EXPECT_EQ(client->Get("/readyz")->status, 200);
  auto info = client->Get("/v1/info");
  ASSERT_EQ(info->status, 200);
  EXPECT_EQ(BodyOf(info)["expires_by_ttl"], true);
  EXPECT_EQ(BodyOf(info)["max_wait_ms"], 60000);
  EXPECT_EQ(BodyOf(info)["events_ring"], http::ServeOptions::kDefaultEventsRing);
}

TEST_F(HttpApiTest, MetricsCountTraffic) {
  const std::string name = UniqueName("metrics");
  auto a = Acquire(name);
  ASSERT_EQ(a->status, 200);
  ExpectError(Acquire(name), 409, "lock_held");
  ASSERT_EQ(Post("/v1/locks/" + name + "/release", {{"token", BodyOf(a)["token"]}})->status, 200);
  ExpectError(Post("/v1/locks/" + name + "/release", {{"token", BodyOf(a)["token"]}}), 410,
              "lease_lost");
  auto b = Acquire(name);
  const std::string key = UniqueName("mkey");
  const std::string tb = std::to_string(BodyOf(b)["token"].get<std::uint64_t>());
  ASSERT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", tb}}, "x", "a/b")->status,
            200);
  ASSERT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "1"}}, "x", "a/b")->status,
            409);
  auto m = client_->Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_THAT(m->get_header_value("Content-Type"), HasSubstr("text/plain"));
  const std::string& text = m->body;
  EXPECT_THAT(text, HasSubstr("ordo_acquires_total{result=\"ok\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ordo_acquires_total{result=\"lock_held\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_releases_total{result=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_leases_lost_total 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_fenced_writes_total{result=\"accepted\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_fenced_writes_total{result=\"refused\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_acquire_wait_seconds_count 3\n"));
  EXPECT_THAT(text, HasSubstr("ordo_acquire_wait_seconds_bucket{le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("ordo_lock_hold_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_lock_holders 1\n"));
  EXPECT_THAT(text, HasSubstr("ordo_highest_token_issued " + tb + "\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE ordo_lock_hold_seconds histogram\n"));
}

// Bad input: each gets its code and a message, and the lock table is unchanged afterwards.
TEST_F(HttpApiTest, MalformedInputIsRefusedAndChangesNothing) {
  const std::string held = UniqueName("held");
  auto holder = Acquire(held);
  ASSERT_EQ(holder->status, 200);
  auto before = client_->Get("/v1/locks?limit=1000");
  ASSERT_EQ(before->status, 200);
  const std::string fresh = UniqueName("fresh");
  const std::string acquire = "/v1/locks/" + fresh + "/acquire";
  const std::string release = "/v1/locks/" + held + "/release";
  struct Case {
    std::string label;
    std::string method;
    std::string target;
    httplib::Headers headers;
    std::string body;
    int status;
    std::string error;
  };
  const std::string big_name(300, 'n');
  const std::vector<Case> cases = {
      {"broken json", "POST", acquire, {}, "{\"ttl_ms\": ", 400, "invalid_argument"},
      {"json array", "POST", acquire, {}, "[1,2]", 400, "invalid_argument"},
      {"ttl as string", "POST", acquire, {}, R"({"ttl_ms":"100"})", 400, "invalid_argument"},
      {"owner as number", "POST", acquire, {}, R"({"owner":5})", 400, "invalid_argument"},
      {"unknown mode", "POST", acquire, {}, R"({"mode":"weird"})", 400, "invalid_argument"},
      {"unknown field", "POST", acquire, {}, R"({"ttl":100})", 400, "invalid_argument"},
      {"negative ttl", "POST", acquire, {}, R"({"ttl_ms":-5})", 400, "invalid_argument"},
      {"ttl below 100ms", "POST", acquire, {}, R"({"ttl_ms":99})", 400, "invalid_argument"},
      {"ttl above 24h", "POST", acquire, {}, R"({"ttl_ms":86400001})", 400, "invalid_argument"},
      {"huge ttl", "POST", acquire, {}, R"({"ttl_ms":1e30})", 400, "invalid_argument"},
      {"ttl beyond 2^64", "POST", acquire, {}, R"({"ttl_ms":18446744073709551616})", 400,
       "invalid_argument"},
      {"fractional ttl", "POST", acquire, {}, R"({"ttl_ms":150.5})", 400, "invalid_argument"},
      {"negative wait", "POST", acquire, {}, R"({"wait_ms":-1})", 400, "invalid_argument"},
      {"wait above max", "POST", acquire, {}, R"({"wait_ms":60001})", 400, "invalid_argument"},
      {"owner with newline", "POST", acquire, {}, R"({"owner":"a\nb"})", 400,
       "invalid_argument"},
      {"release without token", "POST", release, {}, "{}", 400, "invalid_argument"},
      {"token as string", "POST", release, {}, R"({"token":"1"})", 400, "invalid_argument"},
      {"token zero", "POST", release, {}, R"({"token":0})", 400, "invalid_argument"},
      {"token 2^53", "POST", release, {}, R"({"token":9007199254740992})", 400,
       "invalid_argument"},
      {"negative token", "POST", release, {}, R"({"token":-1})", 400, "invalid_argument"},
      {"fencing token text", "PUT", "/v1/fenced/k1", {{"Fencing-Token", "abc"}}, "x", 400,
       "invalid_argument"},
      {"fencing token negative", "PUT", "/v1/fenced/k1", {{"Fencing-Token", "-1"}}, "x", 400,
       "invalid_argument"},
      {"fencing token overflow", "PUT", "/v1/fenced/k1",
       {{"Fencing-Token", "18446744073709551616"}}, "x", 400, "invalid_argument"},
      {"fencing token 2^53", "PUT", "/v1/fenced/k1", {{"Fencing-Token", "9007199254740992"}}, "x",
       400, "invalid_argument"},
      {"fencing token fraction", "PUT", "/v1/fenced/k1", {{"Fencing-Token", "1.5"}}, "x", 400,
       "invalid_argument"},
      {"fencing token zero", "PUT", "/v1/fenced/k1", {{"Fencing-Token", "0"}}, "x", 400,
       "invalid_argument"},
      {"fencing lock invalid", "PUT", "/v1/fenced/k1",
       {{"Fencing-Token", "1"}, {"Fencing-Lock", "../x"}}, "x", 400, "invalid_argument"},
      {"dot-dot name", "POST", "/v1/locks/../acquire", {}, "{}", 400, "invalid_argument"},
      {"encoded dot-dot", "POST", "/v1/locks/%2E%2E/acquire", {}, "{}", 400, "invalid_argument"},
      {"encoded slash", "POST", "/v1/locks/a%2Fb/acquire", {}, "{}", 400, "invalid_argument"},
      {"encoded NUL", "POST", "/v1/locks/a%00b/acquire", {}, "{}", 400, "invalid_argument"},
      {"bad escape", "POST", "/v1/locks/a%zz/acquire", {}, "{}", 400, "invalid_argument"},
      {"hidden name", "POST", "/v1/locks/.hidden/acquire", {}, "{}", 400, "invalid_argument"},
      {"300-byte name", "POST", "/v1/locks/" + big_name + "/acquire", {}, "{}", 400,
       "invalid_argument"},
      {"key with slash", "PUT", "/v1/fenced/a%2Fb", {{"Fencing-Token", "1"}}, "x", 400,
       "invalid_argument"},
      {"object key NUL", "GET", "/v1/objects/a%00", {}, "", 400, "invalid_argument"},
      {"name not UTF-8", "GET", "/v1/locks/.%FF", {}, "", 400, "invalid_argument"},
      {"route not UTF-8", "GET", "/%FF%FE", {}, "", 404, "not_found"},
      {"unknown route", "GET", "/v1/nope", {}, "", 404, "not_found"},
      {"unknown verb", "POST", "/v1/locks/" + fresh + "/explode", {}, "{}", 404, "not_found"},
      {"root", "GET", "/", {}, "", 404, "not_found"},
      {"delete a lock", "DELETE", "/v1/locks/" + fresh, {}, "", 405, "method_not_allowed"},
      {"GET acquire", "GET", acquire, {}, "", 405, "method_not_allowed"},
      {"POST healthz", "POST", "/healthz", {}, "{}", 405, "method_not_allowed"},
      {"PATCH object", "PATCH", "/v1/objects/k", {}, "{}", 405, "method_not_allowed"},
      {"huge header", "GET", "/healthz", {{"X-Pad1", std::string(6000, 'p')},
        {"X-Pad2", std::string(6000, 'q')},
        {"X-Pad3", std::string(6000, 'r')}}, "", 431,
       "invalid_argument"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    httplib::Request req;
    req.method = c.method;
    req.path = c.target;
    req.headers = c.headers;
    req.body = c.body;
    if (!c.body.empty()) req.set_header("Content-Type", "application/json");
    auto r = client_->send(req);
    ExpectError(r, c.status, c.error);
    if (c.status == 405) {
      EXPECT_FALSE(r->get_header_value("Allow").empty());
    }
  }
  // The holder survived every malformed release, and nothing new exists.
  ExpectError(Acquire(held), 409, "lock_held");
  ExpectError(client_->Get(("/v1/locks/" + fresh).c_str()), 404, "not_found");
  ExpectError(client_->Get("/v1/fenced/k1"), 404, "not_found");
  auto after = client_->Get("/v1/locks?limit=1000");
  EXPECT_EQ(BodyOf(before)["locks"].size(), BodyOf(after)["locks"].size());
}

TEST_F(HttpApiTest, OversizedBodiesAndTargets) {
  // 64 MiB against the 1 MiB default: 413 without reading it all.
  const std::string huge(64 << 20, 'x');
  const std::string key = UniqueName("big");
  auto r = RawRequest(server_->port(), "PUT /v1/fenced/" + key +
                                           " HTTP/1.1\r\nHost: x\r\nFencing-Token: 1\r\n"
                                           "Content-Length: " +
                                           std::to_string(huge.size()) + "\r\n\r\n" + huge);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body, nullptr, false).value("error", ""), "payload_too_large");
  // Just under the limit is accepted.
  auto ok = client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "1"}},
                         std::string((1 << 20) - 1, 'y'), "application/octet-stream");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // A chunked body has no Content-Length to check up front: refused (411) before it is read.
  auto chunked = client_->Put(
      ("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "2"}},
      [](size_t offset, httplib::DataSink& sink) {
        static const std::string block(1 << 16, 'z');
        if (offset < (2u << 20)) return sink.write(block.data(), block.size());
        sink.done();
        return true;
      },
      "application/octet-stream");
  if (chunked) {
    EXPECT_EQ(chunked->status, 411);
  }
  EXPECT_EQ(client_->Get(("/v1/fenced/" + key).c_str())->get_header_value("Fencing-Token"), "1");
  // A long target is refused, and the server keeps serving.
  auto long_target = RawRequest(server_->port(), "GET /v1/locks/" + std::string(7000, 'a') +
                                                     " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_GE(long_target.status, 400);
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
}

TEST(HttpAuthTest, BearerTokensWithPrefixes) {
  const AuthFile file(
      "# jobs only\n"
      "jobs-token-0123456789 jobs.,shared.\n"
      "\n"
      "admin-token-0123456789 *\n");
  auto server = StartServer({.auth_file = file.path()});
  auto client = ClientFor(*server);
  const auto with = [](const std::string& token) {
    return httplib::Headers{{"Authorization", "Bearer " + token}};
  };
  auto none = client->Post("/v1/locks/jobs.a/acquire", "{}", "application/json");
  ExpectError(none, 401, "unauthorized");
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"ordo\"");
  ExpectError(client->Post("/v1/locks/jobs.a/acquire", with("jobs-token-0123456780"), "{}",
                           "application/json"),
              401, "unauthorized");
  ExpectError(client->Post("/v1/locks/other.a/acquire", with("jobs-token-0123456789"), "{}",
                           "application/json"),
              403, "forbidden");
  auto ok = client->Post("/v1/locks/jobs.a/acquire", with("jobs-token-0123456789"), "{}",
                         "application/json");
  ASSERT_EQ(ok->status, 200) << ok->body;
  ExpectError(client->Get("/v1/locks?prefix=", with("jobs-token-0123456789")), 403, "forbidden");
  EXPECT_EQ(client->Get("/v1/locks?prefix=jobs.", with("jobs-token-0123456789"))->status, 200);
  ExpectError(client->Put("/v1/fenced/jobs.k", {{"Authorization", "Bearer jobs-token-0123456789"},
                                               {"Fencing-Token", "1"},
                                               {"Fencing-Lock", "other.lock"}},
                          "x", "text/plain"),
              403, "forbidden");
  ExpectError(client->Get("/v1/objects/other.o", with("jobs-token-0123456789")), 403,
              "forbidden");
  EXPECT_EQ(client->Get("/v1/locks/other.a", with("admin-token-0123456789"))->status, 404);
  EXPECT_EQ(client->Get("/healthz")->status, 200) << "health checks need no token";
  ExpectError(client->Get("/metrics"), 401, "unauthorized");
  EXPECT_EQ(client->Get("/metrics", with("jobs-token-0123456789"))->status, 200);

  // The http:// backend sends the URL's password as the bearer token.
  const std::string host = "127.0.0.1:" + std::to_string(server->port());
  auto denied = Open("http://" + host);
  ASSERT_FALSE(denied.ok());
  EXPECT_THAT(denied.status().message(), HasSubstr("unauthorized"));
  auto locker = Open("http://ordo:jobs-token-0123456789@" + host);
  ASSERT_TRUE(locker.ok()) << locker.status().ToString();
  auto lease = (*locker)->Acquire({.name = "jobs.lib"});
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_FALSE((*locker)->Acquire({.name = "other.lib"}).ok());
}

TEST(HttpAuthTest, BadAuthFilesAreRefusedAtStart) {
  TempDir dir;
  const std::vector<std::string> bad = {"short *\n", "tokentokentokentoken\n",
                                        "tokentokentokentoken a, b\n",
                                        "tokentokentokentoken *\ntokentokentokentoken a.\n",
                                        "# only a comment\n"};
  for (const auto& text : bad) {
    const AuthFile file(text);
    auto started = http::Server::Start({.backend_url = "inproc:", .listen = "127.0.0.1:0",
                                        .auth_file = file.path()});
    EXPECT_EQ(started.status().code(), StatusCode::kInvalidArgument) << text;
  }
  auto missing = http::Server::Start(
      {.backend_url = "inproc:", .listen = "127.0.0.1:0", .auth_file = dir.path() + "/none"});
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpServerTest, StartFailures) {
  EXPECT_EQ(http::Server::Start({.backend_url = "nope:", .listen = "127.0.0.1:0"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(http::Server::Start({.backend_url = "inproc:", .listen = "localhost"}).status().code(),
            StatusCode::kInvalidArgument);
  auto first = StartServer();
  auto second = http::Server::Start(
      {.backend_url = "inproc:", .listen = "127.0.0.1:" + std::to_string(first->port())});
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << "address in use";
}

}  // namespace
}  // namespace ordo::testing
