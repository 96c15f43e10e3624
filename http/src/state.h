// What the parts of the REST server share: options, the backend, auth, metrics, the waiting
// room and the worker pool. Built by Server::Start before any connection exists, immutable
// afterwards except for the members that say how they are synchronised.
#ifndef ORDO_HTTP_SRC_STATE_H_
#define ORDO_HTTP_SRC_STATE_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "auth.h"
#include "events.h"
#include "metrics.h"
#include "ordo/lock.h"
#include "ordo_http/server.h"
#include "parking.h"

namespace ordo::http {

class Connection;
class ElectionWaits;

struct ServerState {
  ServeOptions options;
  std::string backend_masked;
  std::string backend_scheme;
  std::unique_ptr<Locker> locker;
  std::optional<Authenticator> auth;
  Metrics metrics;                         // thread-safe
  std::unique_ptr<Parking> parking;        // thread-safe
  Events events;                           // thread-safe; the recent events (events.h)
  // The parked election long-polls (elections.h); thread-safe.
  std::shared_ptr<ElectionWaits> elections;
  boost::asio::io_context* io = nullptr;   // for the long-polls' timers
  std::atomic<std::size_t> connections{0};  // open connections
  // The open connections, so that Stop can close them.
  std::mutex open_mu;
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> open;  // guarded by open_mu
  std::atomic<bool> stopping{false};
  // Runs a blocking call (a backend call) on the worker pool. Thread-safe.
  std::function<void(std::function<void()>)> run_on_worker;
  // The backend's calls never block (inproc: a short critical section in memory): the
  // request-reply routes then run on the I/O thread, since the hop to a worker and back (two
  // thread wake-ups, an epoll interrupt) cost far more than the call itself.
  bool backend_inline = false;
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_STATE_H_
