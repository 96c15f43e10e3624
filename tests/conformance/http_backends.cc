// The http:// backend joins the conformance suite: a real `ordo serve` (in this process, on a
// free loopback port) in front of a real backend, reached over loopback HTTP by the client
// backend in libordo — by this process and by the worker processes alike.
#include <map>
#include <memory>
#include <mutex>

#include "conformance.h"
#include "ordo_http/server.h"
#include "test_support.h"

namespace ordo::testing {
namespace {

// The URL of a server in front of `backend_url`, started on first use and kept for the life of
// the test binary (every test of a case must see the same locks).
std::string ServeOver(const std::string& backend_url) {
  static std::mutex mu;
  // Never destroyed: worker processes may still talk to the servers while the binary exits.
  static auto* servers = new std::map<std::string, std::unique_ptr<http::Server>>;
  std::lock_guard<std::mutex> lock(mu);
  auto& server = (*servers)[backend_url];
  if (!server) {
    auto started = http::Server::Start({.backend_url = backend_url, .listen = "127.0.0.1:0"});
    if (!started.ok()) {
      ADD_FAILURE() << "cannot serve " << backend_url << ": " << started.status().ToString();
      return "http://127.0.0.1:1";
    }
    server = std::move(*started);
  }
  return server->url();
}

// Each lock/unlock cycle is two HTTP round trips; 2,000 of them keep the test in seconds.
// http_sqlite is `ordo serve`'s default configuration.
INSTANTIATE_TEST_SUITE_P(
    Http, ConformanceTest,
    ::testing::Values(BackendCase{"http_inproc", [] { return ServeOver("inproc:"); }, 2'000},
                      BackendCase{"http_sqlite",
                                  [] { return ServeOver("sqlite://" + ProcessTempDir() + "/http.db"); },
                                  1'000}),
    BackendCaseName);

}  // namespace
}  // namespace ordo::testing
