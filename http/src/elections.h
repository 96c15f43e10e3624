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

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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

  // The elections campaigned through this server (GET /v1/elections lists them): remembered
  // in memory, up to kMaxRemembered names, and forgotten when the server restarts.
  static constexpr std::size_t kMaxRemembered = 10000;
  void Remember(const std::string& name);
  std::vector<std::string> Names(const std::string& prefix);

 private:
  std::mutex mu_;
  std::uint64_t next_ = 1;                                        // guarded by mu_
  std::map<std::uint64_t, std::weak_ptr<ElectionWait>> waits_;    // guarded by mu_
  bool shutdown_ = false;                                         // guarded by mu_
  std::set<std::string> campaigned_;                              // guarded by mu_
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
