// Fuzzes the REST server's request decoding end to end: the JSON bodies of
// acquire, renew and release, the Fencing-Token / Fencing-Lock headers of
// fenced reads and writes, If-Match / If-None-Match of object writes, and lock
// names in paths. ordo's parsing functions for these live inside
// http/src/server.cc (not exposed), so the fuzzer talks to a real in-process
// ordo::http::Server (inproc: backend) over loopback.
//
// Input: one byte picks the route, then "<header value>\n<body>". Property: the
// server answers every request, and never with a 5xx other than 503 — bad input
// must be a 4xx.
#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "ordo/ordo.h"
#include "ordo_http/server.h"

namespace {

struct Env {
  std::unique_ptr<ordo::http::Server> server;
  std::unique_ptr<httplib::Client> client;
  Env() {
    ordo::http::ServeOptions options;
    options.backend_url = "inproc:";
    options.listen = "127.0.0.1:0";
    options.max_wait = std::chrono::milliseconds(50);  // a fuzzed wait_ms cannot stall a run
    auto started = ordo::http::Server::Start(options);
    if (!started.ok()) {
      __builtin_printf("cannot start the server: %s\n", started.status().ToString().c_str());
      std::abort();
    }
    server = std::move(*started);
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // no Nagle/delayed-ACK stall between headers and body
    client->set_read_timeout(10, 0);
  }
};

Env& GetEnv() {
  static Env* env = new Env;  // lives for the whole fuzzing session
  return *env;
}

std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return out;
}

// For a path segment or a query value.
std::string PercentEncode(std::string_view text) {
  return httplib::detail::encode_query_param(std::string(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Env& env = GetEnv();
  static std::atomic<unsigned long> counter{0};
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto nl = rest.find('\n');
  const std::string header = Printable(rest.substr(0, nl));
  const std::string body(nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1));
  // Acquire a fresh name each time: a granted lock must not make a later
  // acquire wait.
  const std::string fresh = "fz-" + std::to_string(counter++);
  auto res = [&]() -> httplib::Result {
    switch (data[0] % 9) {
      case 0:
        return env.client->Post("/v1/locks/" + fresh + "/acquire", body, "application/json");
      case 1:
        return env.client->Post("/v1/locks/fz/renew", body, "application/json");
      case 2:
        return env.client->Post("/v1/locks/fz/release", body, "application/json");
      case 3:
        return env.client->Put("/v1/fenced/fz", {{"Fencing-Token", header}}, body,
                               "application/octet-stream");
      case 4:
        return env.client->Get("/v1/fenced/fz",
                               {{"Fencing-Token", header}, {"Fencing-Lock", Printable(body)}});
      case 5:
        return env.client->Put("/v1/objects/fz", {{"If-Match", header}}, body, "application/json");
      case 6:
        return env.client->Put("/v1/objects/fz", {{"If-None-Match", header}}, body,
                               "application/json");
      case 7:
        return env.client->Get("/v1/locks/" + PercentEncode(header));
      default:
        return env.client->Get("/v1/locks?prefix=" + PercentEncode(header) +
                               "&limit=" + PercentEncode(body));
    }
  }();
  if (!res)
    return 0;  // the client refused to send it (e.g. an invalid header): not the
               // server
  if (res->status >= 500 && res->status != 503) {
    __builtin_printf("route %d answered %d: %s\n", data[0] % 9, res->status, res->body.c_str());
    std::abort();
  }
  return 0;
}
