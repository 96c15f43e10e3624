// The operator's routes of the REST server: GET /v1/events (the recent events, long-polled
// without a thread) and POST /v1/locks/{name}/revoke (an admin ends a holder's lease).
// Thread-safe.
#ifndef ORDO_HTTP_SRC_OPERATOR_H_
#define ORDO_HTTP_SRC_OPERATOR_H_

#include "handlers.h"

namespace ordo::http {

// The most events one reply carries; a client catches up with further calls (after=last id).
inline constexpr std::size_t kMaxEventsPerReply = 500;

// GET /v1/events?after=ID[&wait_ms=W][&prefix=P]. Runs on an I/O thread and never blocks: a
// long-poll is a callback in the ring plus a timer, answered on a worker.
void HandleEvents(ServerState& state, const Request& req, const ReplyFn& reply);

// POST /v1/locks/{name}/revoke {"token"}. Runs on a worker (it calls the backend).
Response HandleRevoke(ServerState& state, const Route& route, const Request& req);

// GET /ui: the operator's page (ui_page.h). Open: with auth on, the page asks for a token.
Response HandleUi();

// The event's JSON (for GET /v1/events).
json EventToJson(const Event& event);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_OPERATOR_H_
