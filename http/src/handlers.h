// The lock and store handlers of the REST server: one function per route, each turning a
// well-formed, admitted request into a backend call and its reply.
//
// Handlers of backend routes block on the backend and run on a worker, never on an I/O
// thread, unless the backend never blocks (ServerState::backend_inline). A waiting acquire
// does not block: it is parked (parking.h) and answered later.
// Thread-safe.
#ifndef ORDO_HTTP_SRC_HANDLERS_H_
#define ORDO_HTTP_SRC_HANDLERS_H_

#include <functional>

#include "reply.h"
#include "routes.h"
#include "state.h"

namespace ordo::http {

// Delivers a reply. `undelivered`, when set, is called instead of nothing if the reply cannot
// be delivered (the client went away): a waiter's lease is given back that way.
using ReplyFn = std::function<void(Response, std::function<void()> undelivered)>;

// Serves `req` (header and body) on `route`; calls `reply` exactly once, maybe later and on
// another thread. HEAD is served as GET without changing anything.
void Handle(ServerState& state, const Route& route, const Request& req, ReplyFn reply);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_HANDLERS_H_
