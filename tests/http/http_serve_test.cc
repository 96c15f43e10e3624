// RunServer as a process: its start-up log, its exit codes, a clean stop on SIGTERM/SIGINT.
#include <signal.h>
#include <sys/wait.h>

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

std::string ServePath() { return ORDO_HTTP_TEST_SERVE; }

// Stacks two servers: the child serves over an upstream server (http:// with a bearer token in
// the URL), so its log must show that URL with the token masked.
TEST(HttpServeTest, LogsMaskedBackendServesAndStopsCleanlyOnSignals) {
  const AuthFile tokens("upstream-secret-token-1 *\n");
  auto upstream = StartServer({.auth_file = tokens.path()});
  ASSERT_NE(upstream, nullptr);
  const std::string backend =
      "http://ordo:upstream-secret-token-1@127.0.0.1:" + std::to_string(upstream->port());
  for (int sig : {SIGTERM, SIGINT}) {
    const int port = FreeLoopbackPort();
    Child serve({ServePath(), backend, "127.0.0.1:" + std::to_string(port)});
    const std::string log = serve.ReadLine(10s);
    EXPECT_THAT(log, HasSubstr("listening on http://127.0.0.1:" + std::to_string(port)));
    EXPECT_THAT(log, HasSubstr("ordo:****@127.0.0.1"));
    EXPECT_THAT(log, Not(HasSubstr("upstream-secret")));
    httplib::Client client("127.0.0.1", port);
    const std::string name = UniqueName("stacked");
    auto lease = client.Post(("/v1/locks/" + name + "/acquire").c_str(), "{}", "application/json");
    ASSERT_TRUE(lease);
    ASSERT_EQ(lease->status, 200) << lease->body;
    // The lock lives upstream.
    auto upstream_client = ClientFor(*upstream);
    EXPECT_EQ(upstream_client
                  ->Get(("/v1/locks/" + name).c_str(),
                        {{"Authorization", "Bearer upstream-secret-token-1"}})
                  ->status,
              200);
    client.stop();
    serve.Kill(sig);
    const int status = serve.Wait();
    ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal: " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

TEST(HttpServeTest, CannotStartExits125) {
  // The backend cannot be reached.
  Child unreachable({ServePath(), "http://127.0.0.1:" + std::to_string(FreeLoopbackPort()),
                     "127.0.0.1:0"});
  int status = unreachable.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 125);
  // The port is taken.
  auto taken = StartServer();
  Child in_use({ServePath(), "inproc:", "127.0.0.1:" + std::to_string(taken->port())});
  status = in_use.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 125);
  // A malformed listen address.
  Child bad({ServePath(), "inproc:", "nowhere"});
  status = bad.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 125);
}

// A client that sends half a request and stalls is disconnected after the I/O timeout, and
// does not hold up anyone else meanwhile.
TEST(HttpServeTest, SlowClientsAreDisconnected) {
  auto server = StartServer({.io_timeout = 300ms});
  const auto start = std::chrono::steady_clock::now();
  std::thread slow([&] {
    RawReply r = RawRequest(server->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half", 5s);
    EXPECT_NE(r.status, 200);
  });
  auto client = ClientFor(*server);
  EXPECT_EQ(client->Get("/healthz")->status, 200);
  slow.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

}  // namespace
}  // namespace ordo::testing
