// The http:// backend's own behaviour: errors, traits, long waits, URLs. (Its Locker semantics
// are the conformance suite's: conformance/http_backends.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <sstream>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "http_test_util.h"
#include "ordo_wire/wire.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

std::string UrlOf(const http::Server& server) { return server.url(); }

// A loopback HTTP server that answers the requests it receives, in order, with scripted bytes
// (framings ordo serve itself does not send, as a proxy in front of it might), closing the
// connection after the steps marked so. Each socket wait is bounded by a 10 s timeout.
class ScriptedServer {
 public:
  struct Step {
    std::string reply;
    bool close_after = false;
  };

  explicit ScriptedServer(std::vector<Step> steps) : steps_(std::move(steps)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(listener_, SHUT_RDWR);  // unblocks an accept that waits for nobody
    if (thread_.joinable()) thread_.join();
    ::close(listener_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // Valid once the client is done (the server thread has answered every step it got).
  int accepts() const { return accepts_.load(); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    int fd = -1;
    for (const Step& step : steps_) {
      if (fd < 0) {
        fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        accepts_.fetch_add(1);
        const timeval timeout{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      }
      std::string request;
      if (!ReadRequest(fd, &request)) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
      }
      if (::send(fd, step.reply.data(), step.reply.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(step.reply.size())) {
        break;
      }
      if (step.close_after) {
        ::close(fd);
        fd = -1;
      }
    }
    if (fd >= 0) ::close(fd);
  }

  // The header and its Content-Length body.
  static bool ReadRequest(int fd, std::string* out) {
    char buf[4096];
    std::size_t header_end;
    while ((header_end = out->find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out->append(buf, static_cast<std::size_t>(n));
    }
    std::size_t length = 0;
    const auto at = out->find("Content-Length: ");
    if (at != std::string::npos && at < header_end) length = std::stoul(out->substr(at + 16));
    while (out->size() < header_end + 4 + length) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out->append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  const std::vector<Step> steps_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> accepts_{0};
  std::mutex mu_;
  std::vector<std::string> requests_;  // guarded by mu_
};

// Replies as a proxy in front of ordo serve may frame them: chunked (with an extension and a
// trailer), after a 100 Continue, closed by the server, or running to the end of the
// connection (HTTP/1.0, no length). The client reads each, and opens a new connection exactly
// when the server said it closes one.
TEST(HttpClientTest, ReadsEveryReplyFramingAndReusesOnlyOpenConnections) {
  const std::string info = R"({"expires_by_ttl":true,"max_wait_ms":60000})";
  const std::string ok = R"({"status":"ok"})";
  const std::string down_body = R"({"error":"unavailable","message":"down!"})";
  const std::string chunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n" +
                              [&] {
                                std::ostringstream hex;
                                hex << std::hex << 10 << ";ext=1\r\n" << info.substr(0, 10)
                                    << "\r\n" << (info.size() - 10) << "\r\n"
                                    << info.substr(10) << "\r\n0\r\nX-Trailer: t\r\n\r\n";
                                return hex.str();
                              }();
  const std::string length = "Content-Length: " + std::to_string(ok.size()) + "\r\n";
  ScriptedServer server({
      {chunked},  // GET /v1/info at Open
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + length +
           "Connection: close\r\n\r\n" + ok,
       true},
      {"HTTP/1.0 200 OK\r\n\r\n" + ok, true},  // to the end of the connection
      {"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
       "Content-Length: " + std::to_string(down_body.size()) + "\r\n\r\n" + down_body},
      {"HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(ok.size()) + "\r\n\r\n" + ok},
  });
  auto locker = Open(server.url());
  ASSERT_TRUE(locker.ok()) << locker.status().ToString();
  EXPECT_TRUE((*locker)->traits().expires_by_ttl);
  EXPECT_TRUE((*locker)->Ping().ok()) << "after 100 Continue";
  EXPECT_TRUE((*locker)->Ping().ok()) << "a body that runs to the end of the connection";
  const Status down = (*locker)->Ping();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable);
  EXPECT_THAT(down.message(), HasSubstr("down!"));
  EXPECT_TRUE((*locker)->Ping().ok());
  locker->reset();
  EXPECT_EQ(server.accepts(), 3) << "a new connection after each close, and only then";
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].substr(0, requests[0].find("\r\n")), "GET /v1/info HTTP/1.1");
  EXPECT_THAT(requests[0], HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                                     "\r\n"));
  EXPECT_EQ(requests[4].substr(0, requests[4].find("\r\n")), "GET /readyz HTTP/1.1");
}

// The request bytes of a release and an acquire: the fixed bodies are written by hand, so the
// server (which refuses duplicate keys and bad JSON) is what checks them; an owner that needs
// escaping survives the round trip.
TEST(HttpClientTest, HandWrittenBodiesRoundTrip) {
  auto server = StartServer();
  auto locker = Open(UrlOf(*server));
  ASSERT_TRUE(locker.ok());
  const std::string owner = "quote\" back\\slash {\"k\":1} \u00fcn\u00efcode";
  auto lease = (*locker)->Acquire({.name = UniqueName("body"), .ttl = 4000ms, .owner = owner});
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->owner, owner);
  EXPECT_EQ(lease->ttl, 4000ms);
  auto described = (*locker)->Describe(lease->name);
  ASSERT_TRUE(described.ok());
  ASSERT_EQ(described->holders.size(), 1u);
  EXPECT_EQ(described->holders[0].owner, owner);
  auto renewed = (*locker)->Renew(*lease, 9000ms);
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->ttl, 9000ms);
  EXPECT_TRUE((*locker)->Release(*lease).ok());
  EXPECT_EQ((*locker)->Release(*lease).code(), StatusCode::kLeaseLost);
}

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

// The server writes a lease reply by hand (wire::LeaseJsonText); it must be the JSON library's
// dump of the same lease, byte for byte, whatever the name, owner, mode and times.
TEST(HttpClientTest, HandWrittenLeaseJsonIsTheLibrarysDump) {
  using std::chrono::system_clock;
  const std::vector<system_clock::time_point> times = {
      system_clock::time_point{},                                          // 1970
      system_clock::time_point{std::chrono::milliseconds(1764547200123)},  // 2025-12-01
      system_clock::time_point{std::chrono::milliseconds(-1)},             // before 1970
      system_clock::time_point{std::chrono::milliseconds(7258118399999)},  // 2199-12-31
      system_clock::now()};
  EXPECT_EQ(http::wire::FormatTime(times[0]), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(http::wire::FormatTime(times[1]), "2025-12-01T00:00:00.123Z");
  EXPECT_EQ(http::wire::FormatTime(times[2]), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(http::wire::FormatTime(times[3]), "2199-12-31T23:59:59.999Z");
  const std::vector<std::string> owners = {"", "job-1", "quote\" back\\slash {\"k\":1}",
                                           "host-a:8080", "\u00fcn\u00efcode", "tab\there"};
  for (const auto& t : times) {
    for (const auto& owner : owners) {
      for (LockMode mode : {LockMode::kExclusive, LockMode::kShared}) {
        Lease lease;
        lease.name = "a.b_c:d-1";
        lease.owner = owner;
        lease.token = (std::uint64_t{1} << 53) - 1;
        lease.mode = mode;
        lease.expires_at = t;
        lease.ttl = 30000ms;
        lease.slot = 3;
        EXPECT_EQ(http::wire::LeaseJsonText(lease), http::wire::LeaseToJson(lease).dump())
            << "owner '" << owner << "'";
      }
    }
  }
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
