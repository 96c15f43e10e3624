// The REST server behind `ordo serve` (DESIGN.md's HTTP API, v1; docs/http-api.md).
//
// Kept out of libordo: only the `ordo` binary, the tests and the benchmark link it.
//
// RunServer is what `ordo serve` calls: it serves until SIGTERM/SIGINT. Server is the same
// server as an object, for tests and benchmarks that run it in-process on a free port.
#ifndef ORDO_HTTP_SERVER_H_
#define ORDO_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo::http {

struct ServeOptions {
  std::string backend_url;                     // required: the backend the server fronts
  std::string listen = "127.0.0.1:7575";       // HOST:PORT; port 0 picks a free one
  std::string auth_file;                       // empty: no authentication
  std::size_t max_body = 1 << 20;              // bytes; larger bodies get 413
  // I/O threads, which run the event loop (never a backend call). 0: one per core.
  int threads = 0;
  std::chrono::milliseconds max_wait{60'000};  // the largest wait_ms a client may ask for
  // Open connections at once, clamped to the process's descriptor limit (raised to its hard
  // maximum). Beyond it a new connection is answered 503 and closed at once.
  std::size_t max_connections = 16384;
  // Acquires waiting at once (parked: no thread each); more are refused with 503.
  // 0: max_connections.
  std::size_t max_waiters = 0;
  // The whole request header of a connection's first request must arrive within this, and
  // each body within this again; a reply must be taken within this too. A client slower than
  // that is disconnected.
  std::chrono::milliseconds io_timeout{10'000};
  // How long an idle keep-alive connection waits for its next request header.
  std::chrono::seconds keep_alive{5};
  // The request line and headers together; larger requests get 431.
  std::size_t max_header_bytes = 16 * 1024;
  // Worker threads that make the backend calls (which block). 0: kDefaultWorkers.
  int workers = 0;
  static constexpr int kDefaultWorkers = 8;
  // Events kept for GET /v1/events and the page's live view (the newest N, in memory). 0 turns
  // the ring off: no event is recorded, /v1/events answers none, and /ui no longer updates
  // live. At most kMaxEventsRing.
  std::size_t events_ring = kDefaultEventsRing;
  static constexpr std::size_t kDefaultEventsRing = 4096;
  static constexpr std::size_t kMaxEventsRing = 1 << 20;
};

// One running server. Start() returns once it accepts connections; the destructor stops it.
// Thread-safe: port()/url() from any thread; Stop() from any thread but a request handler.
class Server {
 public:
  // Opens options.backend_url — or serves `backend` when one is given (tests inject backends
  // this way) — binds options.listen and starts serving on background threads.
  // Errors: kInvalidArgument (bad options or auth file), kUnavailable (backend unreachable,
  // address in use).
  static Result<std::unique_ptr<Server>> Start(const ServeOptions& options,
                                               std::unique_ptr<Locker> backend = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (useful with port 0) and "http://HOST:PORT".
  int port() const;
  std::string url() const;

  // Stops accepting, answers waiting acquires with 503, waits for open requests to finish,
  // closes every connection and joins every thread it started. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs the server until SIGTERM or SIGINT; returns the process exit code (0 on a clean stop,
// 125 when it cannot start: bad options, port in use, backend unreachable), after logging why.
int RunServer(const ServeOptions& options);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SERVER_H_
