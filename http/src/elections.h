// GET /v1/elections/{name}[?after_term=T&wait_ms=W]: the leader of an election, and its
// long-poll. (Campaign, renew and resign are the acquire, renew and release of the lock with the
// election's name: handlers.cc.)
//
// A long-poll holds no thread: it is a timer and, where the backend has one, a Locker::Watch
// subscription. It re-checks the leader on a worker when the backend notifies a change, at the
// current leader's expiry (Watch does not signal TTL expiry), when this server itself releases
// the election's lock (Notify), and otherwise on a bounded period: kNoWatchRecheck without a
// Watch source, kUnnotifiedDeathRecheck with one (a connection-bound holder's death is not
// always notified).
//
// Thread-safe.
#ifndef ORDO_HTTP_SRC_ELECTIONS_H_
#define ORDO_HTTP_SRC_ELECTIONS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "handlers.h"

namespace ordo::http {

class ElectionWait;

// The parked election long-polls of a server, so that a release here wakes them and Stop
// answers them. Thread-safe; no call blocks on the backend.
class ElectionWaits {
 public:
  // Returns the id of the registered wait, or 0 when the server is stopping.
  std::uint64_t Add(const std::shared_ptr<ElectionWait>& wait);
  void Remove(std::uint64_t id);
  // The lock `name` may have changed hands: its long-polls re-check.
  void Notify(const std::string& name);
  // Answers every wait (503) and refuses later ones.
  void Shutdown();

  // The long-polls parked now (registered and not yet answered); GET /metrics shows them.
  std::size_t waiting();

  // The elections campaigned through this server (GET /v1/elections lists them): remembered
  // in memory, up to kMaxRemembered names, and forgotten when the server restarts. `won` is a
  // campaign's lease: its term and when this server granted it, for LeaderSince.
  static constexpr std::size_t kMaxRemembered = 10000;
  void Remember(const Lease& won);
  std::vector<std::string> Names(const std::string& prefix);
  // When the leader of term `term` of `name` won, if it won through this server; nullopt
  // otherwise (another replica granted it, or this server restarted since).
  std::optional<std::chrono::system_clock::time_point> LeaderSince(const std::string& name,
                                                                   std::uint64_t term);

 private:
  struct Won {
    std::uint64_t term = 0;
    std::chrono::system_clock::time_point at;
  };
  std::mutex mu_;
  std::uint64_t next_ = 1;                                        // guarded by mu_
  std::map<std::uint64_t, std::weak_ptr<ElectionWait>> waits_;    // guarded by mu_
  bool shutdown_ = false;                                         // guarded by mu_
  std::map<std::string, Won, std::less<>> campaigned_;           // guarded by mu_
};

// GET (and HEAD) /v1/elections/{name}. Runs on a worker (it calls the backend); a long-poll
// returns at once and replies later.
void HandleElection(ServerState& state, const Route& route, const Request& req,
                    const ReplyFn& reply);

// GET /v1/elections[?prefix=P]: the elections campaigned through this server (not every lock:
// the backend does not record which locks are elections), each as GET /v1/elections/{name}
// answers it. Runs on a worker.
Response HandleElections(ServerState& state, const Request& req);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_ELECTIONS_H_
