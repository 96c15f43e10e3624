// Helpers for the REST server tests: an in-process server on a free loopback port, a raw
// socket client for requests httplib::Client would refuse to send, and a backend wrapper whose
// Ping can be made to fail.
#ifndef ORDO_TESTS_HTTP_HTTP_TEST_UTIL_H_
#define ORDO_TESTS_HTTP_HTTP_TEST_UTIL_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "ordo/ordo.h"
#include "ordo_http/server.h"
#include "subprocess.h"

namespace ordo::testing {

using json = nlohmann::json;

// Forwards every call to `inner`; a test overrides what it changes.
class ForwardingLocker : public Locker {
 public:
  explicit ForwardingLocker(std::shared_ptr<Locker> inner) : inner_(std::move(inner)) {}
  Result<Lease> Acquire(const LockRequest& r) override { return inner_->Acquire(r); }
  Result<Lease> Renew(const Lease& l, std::chrono::milliseconds ttl) override {
    return inner_->Renew(l, ttl);
  }
  Status Release(const Lease& l) override { return inner_->Release(l); }
  Result<LockState> Describe(std::string_view n) override { return inner_->Describe(n); }
  Result<std::vector<LockState>> List(std::string_view p, std::size_t limit) override {
    return inner_->List(p, limit);
  }
  Status Ping() override { return inner_->Ping(); }
  LockerTraits traits() const override { return inner_->traits(); }
  FencedStore& fenced() override { return inner_->fenced(); }
  VersionedStore& objects() override { return inner_->objects(); }

 protected:
  std::shared_ptr<Locker> inner_;
};

// A fresh inproc: locker (fails the test if it cannot open).
std::shared_ptr<Locker> OpenInproc();

// inproc: with a switch that makes Ping fail (a backend outage, as /readyz sees it) and
// configurable traits.
class FlakyLocker final : public ForwardingLocker {
 public:
  FlakyLocker() : ForwardingLocker(OpenInproc()) {}
  Status Ping() override {
    return down->load() ? UnavailableError("backend is down (test)") : OkStatus();
  }
  LockerTraits traits() const override { return {.expires_by_ttl = expires_by_ttl->load()}; }

  // Shared so the test can flip them after handing the locker to the server.
  std::shared_ptr<std::atomic<bool>> down = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> expires_by_ttl = std::make_shared<std::atomic<bool>>(true);
};

// Starts a server on 127.0.0.1:0 (inproc: unless `backend` is given); fails the test if it
// cannot.
std::unique_ptr<http::Server> StartServer(http::ServeOptions options = {},
                                          std::unique_ptr<Locker> backend = nullptr);

// A client for `server`, with short timeouts.
std::unique_ptr<httplib::Client> ClientFor(const http::Server& server);

// The fixture of the REST server tests: a fresh in-process server on inproc: (with `options`)
// and a client for it, for each test.
class ServerTest : public ::testing::Test {
 protected:
  explicit ServerTest(http::ServeOptions options = {}) : options_(std::move(options)) {}
  void SetUp() override {
    server_ = StartServer(options_);
    ASSERT_NE(server_, nullptr);
    client_ = ClientFor(*server_);
  }
  int port() const { return server_->port(); }

  // POST `body` as JSON.
  httplib::Result Post(const std::string& path, const json& body) {
    return client_->Post(path.c_str(), body.dump(), "application/json");
  }

  std::unique_ptr<http::Server> server_;
  std::unique_ptr<httplib::Client> client_;

 private:
  http::ServeOptions options_;
};

// The body of a reply as JSON (discarded when it is not JSON).
json BodyOf(const httplib::Result& r);

// Expects an error reply: `status`, a JSON body {"error": code, "message": non-empty}.
void ExpectError(const httplib::Result& r, int status, const std::string& code);

struct RawReply {
  int status = 0;  // 0: no reply
  std::map<std::string, std::string> headers;  // keys lower-cased
  std::string body;
};

// ConnectLoopback(port) is the harness's (tools/harness/subprocess.h).

// Sends `request` (the exact bytes) on a new connection and reads the reply until the server
// closes the connection or the reply's Content-Length is complete.
RawReply RawRequest(int port, const std::string& request,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Parses one HTTP reply from `bytes`; status 0 if incomplete.
RawReply ParseReply(const std::string& bytes);

// An auth file (`--auth-file`) holding `text`: a temporary file, removed with this object.
class AuthFile {
 public:
  explicit AuthFile(const std::string& text);
  ~AuthFile();
  AuthFile(const AuthFile&) = delete;
  AuthFile& operator=(const AuthFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The value of one series of `server`'s GET /metrics, e.g.
// `ordo_parked_long_polls{route="events"}`; -1 when it cannot be read.
double MetricValue(const http::Server& server, const std::string& series);

// Polls `series` (every 5 ms, up to `timeout`) until it reads `value`: a test waits this way
// for its long-poll or acquire to be parked before it changes what the request waits for.
// False at the deadline.
bool WaitForMetric(const http::Server& server, const std::string& series, double value,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Raises the soft descriptor limit to the hard one.
void RaiseFdLimit();

}  // namespace ordo::testing

#endif  // ORDO_TESTS_HTTP_HTTP_TEST_UTIL_H_
