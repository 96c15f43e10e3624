// The server is held to HTTP/1.1 (DESIGN.md, "The server is held to HTTP/1.1"): each defect a
// proxy in front of ordo would not tolerate, written as the required behaviour, over raw
// loopback sockets (an HTTP client library would refuse to send most of these requests).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
using SteadyClock = std::chrono::steady_clock;

struct Exchange {
  std::vector<RawReply> replies;  // every complete reply, in order
  bool closed = false;            // the server closed the connection
  std::string rest;               // bytes after the last complete reply
  std::string raw;                // every byte received
};

// Splits `bytes` into consecutive replies (each framed by its Content-Length).
Exchange SplitReplies(std::string bytes) {
  Exchange out;
  while (true) {
    RawReply r = ParseReply(bytes);
    if (r.status == 0) break;
    const auto header_end = bytes.find("\r\n\r\n") + 4;
    const std::size_t length =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    out.replies.push_back(r);
    bytes.erase(0, header_end + length);
  }
  out.rest = bytes;
  return out;
}

// Sends `request` in one write and reads until the server closes or `expect` replies came and
// nothing more arrives within `quiet`.
Exchange Talk(int port, const std::string& request, std::size_t expect,
              std::chrono::milliseconds quiet = 300ms,
              std::chrono::milliseconds timeout = 10s) {
  Exchange out;
  const int fd = ConnectLoopback(port);
  EXPECT_GE(fd, 0);
  if (fd < 0) return out;
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string bytes;
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    const bool enough = SplitReplies(bytes).replies.size() >= expect;
    pollfd p{fd, POLLIN, 0};
    const int wait_ms = static_cast<int>(enough ? quiet.count() : 100);
    const int ready = poll(&p, 1, wait_ms);
    if (ready == 0) {
      if (enough) break;
      continue;
    }
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      out.closed = true;
      break;
    }
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  Exchange split = SplitReplies(bytes);
  split.closed = out.closed;
  split.raw = bytes;
  return split;
}

std::string ErrorOf(const RawReply& r) {
  return json::parse(r.body, nullptr, false).value("error", "");
}
std::string MessageOf(const RawReply& r) {
  return json::parse(r.body, nullptr, false).value("message", "");
}

class HttpProtocolTest : public ServerTest {
 protected:
  HttpProtocolTest() : ServerTest({.max_body = 256}) {}

  // The fence of a fenced key as a GET reports it ("" when the key does not exist).
  std::string FenceOf(const std::string& key) {
    auto r = client_->Get(("/v1/fenced/" + key).c_str());
    return r && r->status == 200 ? r->get_header_value("Fencing-Token") : "";
  }
};

std::string FencedPut(const std::string& key, const std::string& token, const std::string& body,
                      const std::string& extra = "") {
  return "PUT /v1/fenced/" + key + " HTTP/1.1\r\nHost: t\r\nFencing-Token: " + token +
         "\r\n" + extra + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Defect 1: the body of a refused request was run as the next request.
TEST_F(HttpProtocolTest, NoSmugglingAfter413) {
  const std::string smuggled = UniqueName("smuggled");
  const std::string inner = FencedPut(smuggled, "7", "x");
  const std::string padding(300 - inner.size(), ' ');
  const std::string body = inner + padding;  // 300 bytes, over --max-body 256
  const auto ex = Talk(port(), FencedPut(UniqueName("outer"), "1", body), 1);
  ASSERT_EQ(ex.replies.size(), 1u) << "nothing after the refused request is answered";
  EXPECT_EQ(ex.replies[0].status, 413);
  EXPECT_EQ(ErrorOf(ex.replies[0]), "payload_too_large");
  EXPECT_EQ(ex.replies[0].headers.at("connection"), "close");
  EXPECT_TRUE(ex.closed);
  EXPECT_EQ(FenceOf(smuggled), "") << "the smuggled PUT ran";
}

TEST_F(HttpProtocolTest, NoSmugglingAfter411) {
  const std::string smuggled = UniqueName("smuggled");
  const std::string inner = FencedPut(smuggled, "7", "x");
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", inner.size());
  const std::string request = "PUT /v1/fenced/" + UniqueName("outer") +
                              " HTTP/1.1\r\nHost: t\r\nFencing-Token: 1\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n" +
                              size + "\r\n" + inner + "\r\n0\r\n\r\n" + inner;
  const auto ex = Talk(port(), request, 1);
  ASSERT_EQ(ex.replies.size(), 1u);
  EXPECT_EQ(ex.replies[0].status, 411);
  EXPECT_TRUE(ex.closed);
  EXPECT_EQ(FenceOf(smuggled), "");
}

// Every refusal on the header closes the connection: what follows is never parsed.
TEST_F(HttpProtocolTest, NothingAfterARefusedRequestRuns) {
  const std::string smuggled = UniqueName("smuggled");
  const std::string request = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n" + FencedPut(smuggled, "7", "x");
  const auto ex = Talk(port(), request, 1);
  ASSERT_EQ(ex.replies.size(), 1u);
  EXPECT_EQ(ex.replies[0].status, 404);
  EXPECT_TRUE(ex.closed);
  EXPECT_EQ(FenceOf(smuggled), "");
}

// Defect 2: each byte used to extend the read time-out, so a slow header was never cut off.
TEST(HttpSlowClientTest, SlowHeaderIsCutOffByItsDeadline) {
  auto server = StartServer({.io_timeout = 600ms});
  ASSERT_NE(server, nullptr);
  const int fd = ConnectLoopback(server->port());
  ASSERT_GE(fd, 0);
  const std::string header = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(200, 's');
  const auto start = SteadyClock::now();
  bool closed = false;
  for (std::size_t i = 0; i < header.size() && !closed; ++i) {
    if (send(fd, &header[i], 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char buf[256];
      closed = recv(fd, buf, sizeof(buf), 0) <= 0;
    }
    if (SteadyClock::now() - start > 5s) break;
  }
  close(fd);
  const auto took = SteadyClock::now() - start;
  EXPECT_TRUE(closed) << "a header sent a byte at a time was never cut off";
  EXPECT_GE(took, 500ms);
  EXPECT_LT(took, 2s) << "the deadline is for the whole header, not per byte";
  auto client = ClientFor(*server);
  EXPECT_EQ(client->Get("/healthz")->status, 200);
}

TEST(HttpSlowClientTest, SlowBodyIsCutOffByItsOwnDeadline) {
  auto server = StartServer({.io_timeout = 600ms});
  ASSERT_NE(server, nullptr);
  const std::string key = UniqueName("slowbody");
  const int fd = ConnectLoopback(server->port());
  ASSERT_GE(fd, 0);
  const std::string head = "PUT /v1/fenced/" + key +
                           " HTTP/1.1\r\nHost: t\r\nFencing-Token: 1\r\nContent-Length: 100\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  const auto start = SteadyClock::now();
  bool closed = false;
  for (int i = 0; i < 100 && !closed && SteadyClock::now() - start < 5s; ++i) {
    if (send(fd, "b", 1, MSG_NOSIGNAL) != 1) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 40) > 0) {
      char buf[256];
      closed = recv(fd, buf, sizeof(buf), 0) <= 0;
    }
  }
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(SteadyClock::now() - start, 2s);
  auto client = ClientFor(*server);
  EXPECT_EQ(client->Get(("/v1/fenced/" + key).c_str())->status, 404) << "a cut-off body ran";
}

// Defect 3: with duplicate keys the last one won.
TEST_F(HttpProtocolTest, DuplicateJsonKeysAre400) {
  const std::string name = UniqueName("dupkeys");
  auto held = client_->Post(("/v1/locks/" + name + "/acquire").c_str(), "{}", "application/json");
  ASSERT_EQ(held->status, 200);
  const auto token = BodyOf(held)["token"].get<std::uint64_t>();
  const std::string body = R"({"token":999,"token":)" + std::to_string(token) + "}";
  auto r = client_->Post(("/v1/locks/" + name + "/release").c_str(), body, "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(BodyOf(r)["error"], "invalid_argument");
  EXPECT_THAT(BodyOf(r)["message"].get<std::string>(), HasSubstr("'token' twice"));
  EXPECT_EQ(BodyOf(client_->Get(("/v1/locks/" + name).c_str()))["holders"].size(), 1u)
      << "the lock was released";
  // In an object document too, at any depth.
  httplib::Headers create = {{"If-None-Match", "*"}};
  auto object = client_->Put(("/v1/objects/" + UniqueName("doc")).c_str(), create,
                             R"({"a":{"b":1,"b":2}})", "application/json");
  EXPECT_EQ(object->status, 400);
  // The same key in sibling objects is fine.
  auto siblings = client_->Put(("/v1/objects/" + UniqueName("doc")).c_str(), create,
                               R"({"a":{"b":1},"c":{"b":2}})", "application/json");
  EXPECT_EQ(siblings->status, 200) << siblings->body;
}

// Defect 4: three pipelined requests got one reply.
TEST_F(HttpProtocolTest, PipelinedRequestsAreAnsweredInOrder) {
  const std::string name = UniqueName("pipe");
  const std::string body = R"({"owner":"piped"})";
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /v1/locks/" + name + "/acquire HTTP/1.1\r\nHost: t\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body +
      "GET /v1/locks/" + name + " HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /v1/info HTTP/1.1\r\nHost: t\r\n\r\n";
  const auto ex = Talk(port(), request, 4);
  ASSERT_EQ(ex.replies.size(), 4u);
  EXPECT_EQ(json::parse(ex.replies[0].body)["status"], "ok");
  EXPECT_EQ(ex.replies[1].status, 200);
  EXPECT_EQ(json::parse(ex.replies[1].body)["owner"], "piped");
  EXPECT_EQ(json::parse(ex.replies[2].body)["holders"][0]["owner"], "piped")
      << "the pipelined acquire ran before the describe after it";
  EXPECT_TRUE(json::parse(ex.replies[3].body).contains("version"));
  EXPECT_FALSE(ex.closed) << "keep-alive";
}

// Defect 5: conflicting or duplicate framing and fencing headers.
TEST_F(HttpProtocolTest, DuplicateOrConflictingHeadersAre400) {
  const std::string key = UniqueName("dup");
  struct Case {
    std::string label;
    std::string request;
  };
  const std::vector<Case> cases = {
      {"two different Content-Length",
       "PUT /v1/fenced/" + key +
           " HTTP/1.1\r\nHost: t\r\nFencing-Token: 5\r\nContent-Length: 1\r\nContent-Length: "
           "2\r\n\r\nxy"},
      {"two equal Content-Length",
       "PUT /v1/fenced/" + key +
           " HTTP/1.1\r\nHost: t\r\nFencing-Token: 5\r\nContent-Length: 1\r\nContent-Length: "
           "1\r\n\r\nx"},
      {"a Content-Length list",
       "PUT /v1/fenced/" + key +
           " HTTP/1.1\r\nHost: t\r\nFencing-Token: 5\r\nContent-Length: 1, 1\r\n\r\nx"},
      {"two Fencing-Token", FencedPut(key, "5", "x", "Fencing-Token: 6\r\n")},
      {"two Fencing-Lock", FencedPut(key, "5", "x", "Fencing-Lock: a\r\nFencing-Lock: b\r\n")},
      {"two Fencing-Token on a read",
       "GET /v1/fenced/" + key + " HTTP/1.1\r\nHost: t\r\nFencing-Token: 5\r\nFencing-Token: "
                                 "6\r\n\r\n"},
      {"Content-Length and Transfer-Encoding",
       "PUT /v1/fenced/" + key +
           " HTTP/1.1\r\nHost: t\r\nFencing-Token: 5\r\nContent-Length: 1\r\n"
           "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const auto ex = Talk(port(), c.request, 1);
    ASSERT_EQ(ex.replies.size(), 1u);
    EXPECT_EQ(ex.replies[0].status, 400) << ex.replies[0].body;
    EXPECT_EQ(ErrorOf(ex.replies[0]), "invalid_argument");
    EXPECT_TRUE(ex.closed);
  }
  EXPECT_EQ(FenceOf(key), "") << "a refused write was stored";
}

// Defect 6: HEAD with a Fencing-Token raised the fence.
TEST_F(HttpProtocolTest, HeadChangesNothing) {
  const std::string key = UniqueName("head");
  ASSERT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "5"}}, "v5",
                         "application/octet-stream")
                ->status,
            200);
  // Read raw (a HEAD reply declares the GET's Content-Length and carries no body).
  const std::string head60 =
      "HEAD /v1/fenced/" + key + " HTTP/1.1\r\nHost: t\r\nFencing-Token: 60\r\n\r\n";
  const std::string head3 =
      "HEAD /v1/fenced/" + key + " HTTP/1.1\r\nHost: t\r\nFencing-Token: 3\r\n\r\n";
  const std::string raw = Talk(port(), head60 + head3, 0).raw;
  const auto second = raw.find("HTTP/1.1 ", 1);
  ASSERT_NE(second, std::string::npos) << "[" << raw << "]";
  const std::string first = raw.substr(0, second);
  EXPECT_EQ(first.rfind("HTTP/1.1 200", 0), 0u) << first;
  EXPECT_THAT(first, HasSubstr("Content-Length: 2\r\n")) << "the GET's length";
  EXPECT_THAT(first, HasSubstr("Fencing-Token: 5\r\n"));
  EXPECT_EQ(first.substr(first.size() - 4), "\r\n\r\n") << "no body after the header";
  EXPECT_EQ(raw.substr(second).rfind("HTTP/1.1 409", 0), 0u)
      << "a stale token is 409 on HEAD as on GET";
  EXPECT_EQ(FenceOf(key), "5") << "HEAD raised the fence";
  EXPECT_EQ(client_->Put(("/v1/fenced/" + key).c_str(), {{"Fencing-Token", "6"}}, "v6",
                         "application/octet-stream")
                ->status,
            200);
}

// Defect 7: a single 8 KiB header line got 400 "malformed"; the limit is 16 KiB, then 431.
TEST_F(HttpProtocolTest, HeaderLimitIs16KiBThen431) {
  const auto ok = Talk(port(),
                       "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(12000, 'b') +
                           "\r\n\r\n",
                       1);
  ASSERT_EQ(ok.replies.size(), 1u);
  EXPECT_EQ(ok.replies[0].status, 200);
  const auto big = Talk(port(),
                        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(17000, 'b') +
                            "\r\n\r\n",
                        1);
  ASSERT_EQ(big.replies.size(), 1u);
  EXPECT_EQ(big.replies[0].status, 431);
  EXPECT_TRUE(big.closed);
}

// Defect 8: small RFC 9112 violations, each a 400.
TEST_F(HttpProtocolTest, MinorViolationsAre400) {
  const auto no_host = Talk(port(), "GET /healthz HTTP/1.1\r\n\r\n", 1);
  ASSERT_EQ(no_host.replies.size(), 1u);
  EXPECT_EQ(no_host.replies[0].status, 400);
  EXPECT_THAT(MessageOf(no_host.replies[0]), HasSubstr("Host"));
  const auto http10 = Talk(port(), "GET /healthz HTTP/1.0\r\n\r\n", 1);
  ASSERT_EQ(http10.replies.size(), 1u);
  EXPECT_EQ(http10.replies[0].status, 200) << "HTTP/1.0 needs no Host";

  const auto no_colon = Talk(port(), "GET /healthz HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 1);
  ASSERT_EQ(no_colon.replies.size(), 1u);
  EXPECT_EQ(no_colon.replies[0].status, 400);

  const std::string key = UniqueName("zero");
  const auto leading_zero = Talk(port(), FencedPut(key, "01", "x"), 1);
  ASSERT_EQ(leading_zero.replies.size(), 1u);
  EXPECT_EQ(leading_zero.replies[0].status, 400);
  EXPECT_THAT(MessageOf(leading_zero.replies[0]), HasSubstr("leading zero"));
  EXPECT_EQ(FenceOf(key), "");

  const auto escape = Talk(port(), "POST /v1/locks/a%zz/acquire HTTP/1.1\r\nHost: t\r\n\r\n", 1);
  ASSERT_EQ(escape.replies.size(), 1u);
  EXPECT_EQ(escape.replies[0].status, 400);
  EXPECT_THAT(MessageOf(escape.replies[0]), HasSubstr("'a%zz'"));
  EXPECT_THAT(MessageOf(escape.replies[0]), HasSubstr("two hex digits"));
  EXPECT_THAT(MessageOf(escape.replies[0]), Not(HasSubstr("0x01")));
}

// Beyond the connection cap a connection is refused visibly (503), never by silence.
TEST(HttpConnectionCapTest, BeyondTheCapIs503NotSilence) {
  auto server = StartServer({.max_connections = 2});
  ASSERT_NE(server, nullptr);
  const int a = ConnectLoopback(server->port());
  const int b = ConnectLoopback(server->port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  // Both idle connections are accepted (a request on each proves it).
  for (int fd : {a, b}) {
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    char buf[1024];
    ASSERT_GT(recv(fd, buf, sizeof(buf), 0), 0);
  }
  RawReply third = RawRequest(server->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 5s);
  EXPECT_EQ(third.status, 503);
  close(a);
  close(b);
}

}  // namespace
}  // namespace ordo::testing
