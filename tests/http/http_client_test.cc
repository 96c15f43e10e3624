// The http:// backend's own behaviour: errors, traits, long waits, URLs. (Its Locker semantics
// are the conformance suite's: conformance/http_backends.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "http_test_util.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

std::string UrlOf(const http::Server& server) { return server.url(); }

TEST(HttpClientTest, RefusedConnectionIsUnavailableAndMasksThePassword) {
  const int port = FreeLoopbackPort();
  auto opened = Open("http://ordo:s3cret-token@127.0.0.1:" + std::to_string(port));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(opened.status().message(), HasSubstr("cannot connect"));
  EXPECT_THAT(opened.status().message(), Not(HasSubstr("s3cret")));
}

TEST(HttpClientTest, ServerGoneIsUnavailableNotACrash) {
  // Stop waits for idle keep-alive connections (the locker's) for up to keep_alive.
  auto server = StartServer({.keep_alive = std::chrono::seconds(1)});
  auto locker = Open(UrlOf(*server));
  ASSERT_TRUE(locker.ok()) << locker.status().ToString();
  auto lease = (*locker)->Acquire({.name = UniqueName("gone")});
  ASSERT_TRUE(lease.ok());
  server->Stop();
  EXPECT_EQ((*locker)->Release(*lease).code(), StatusCode::kUnavailable);
  EXPECT_EQ((*locker)->Acquire({.name = UniqueName("gone")}).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ((*locker)->Ping().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*locker)->fenced().Write("k", "v", 1).status().code(), StatusCode::kUnavailable);
}

TEST(HttpClientTest, TraitsComeFromTheServer) {
  auto backend = std::make_unique<FlakyLocker>();
  *backend->expires_by_ttl = false;
  auto down = backend->down;
  auto server = StartServer({}, std::move(backend));
  auto locker = Open(UrlOf(*server));
  ASSERT_TRUE(locker.ok());
  EXPECT_FALSE((*locker)->traits().expires_by_ttl);
  EXPECT_TRUE((*locker)->traits().shared_across_processes);
  EXPECT_TRUE((*locker)->Ping().ok());
  *down = true;
  EXPECT_EQ((*locker)->Ping().code(), StatusCode::kUnavailable);
}

TEST(HttpClientTest, WaitLongerThanTheServersMaxSpansRequests) {
  auto server = StartServer({.max_wait = 300ms});
  auto locker = Open(UrlOf(*server));
  ASSERT_TRUE(locker.ok());
  const std::string name = UniqueName("span");
  auto held = (*locker)->Acquire({.name = name});
  ASSERT_TRUE(held.ok());
  const auto start = std::chrono::steady_clock::now();
  auto waited = (*locker)->Acquire({.name = name, .wait = 1000ms});
  EXPECT_EQ(waited.status().code(), StatusCode::kLockHeld);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 950ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(500ms);  // past one server-side wait
    EXPECT_TRUE((*locker)->Release(*held).ok());
  });
  auto granted = (*locker)->Acquire({.name = name, .wait = 5000ms});
  releaser.join();
  ASSERT_TRUE(granted.ok()) << granted.status().ToString();
  EXPECT_GT(granted->token, held->token);
}

TEST(HttpClientTest, ErrorsKeepTheirDetails) {
  auto server = StartServer();
  auto locker = Open(UrlOf(*server));
  ASSERT_TRUE(locker.ok());
  const std::string key = UniqueName("detail");
  ASSERT_TRUE((*locker)->fenced().Write(key, "v", 7).ok());
  auto stale = (*locker)->fenced().Write(key, "w", 3);
  EXPECT_EQ(stale.status().code(), StatusCode::kStaleToken);
  EXPECT_EQ(stale.status().current(), 7u);
  ASSERT_TRUE((*locker)->objects().CompareAndSwap(key, 0, R"({"x":[1,2]})").ok());
  auto mismatch = (*locker)->objects().CompareAndSwap(key, 5, "{}");
  EXPECT_EQ(mismatch.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(mismatch.status().current(), 1u);
  EXPECT_EQ((*locker)->objects().CompareAndSwap(key, 1, "not json").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*locker)->objects().Get(key)->value, R"({"x":[1,2]})");
  EXPECT_EQ((*locker)->fenced().Write(key, "v", std::uint64_t{1} << 60).status().code(),
            StatusCode::kInvalidArgument)
      << "tokens from 2^53 up cannot travel as JSON numbers";
}

TEST(HttpClientTest, BadUrlsAreInvalid) {
  for (const std::string url : {"http:", "http://", "http://127.0.0.1:1/path",
                                "http://127.0.0.1:1?timeout=5"}) {
    auto opened = Open(url);
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << url;
  }
}

}  // namespace
}  // namespace ordo::testing
