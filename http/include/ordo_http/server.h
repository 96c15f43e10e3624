// The REST server behind `ordo serve` (DESIGN.md's HTTP API, v1).
//
// Kept out of libordo: only the `ordo` binary, the tests and the benchmark link it.
#ifndef ORDO_HTTP_SERVER_H_
#define ORDO_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <string>

namespace ordo::http {

struct ServeOptions {
  std::string backend_url;                     // required: the backend the server fronts
  std::string listen = "127.0.0.1:7575";       // HOST:PORT; port 0 picks a free one
  std::string auth_file;                       // empty: no authentication
  std::size_t max_body = 1 << 20;              // bytes; larger bodies get 413
  int threads = 0;                             // request threads; 0 = a sensible default
  std::chrono::milliseconds max_wait{60'000};  // the largest wait_ms a client may ask for
};

// Runs the server until SIGTERM or SIGINT; returns the process exit code (0 on a clean stop,
// 125 when it cannot start: bad options, port in use, backend unreachable), after logging why.
int RunServer(const ServeOptions& options);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SERVER_H_
