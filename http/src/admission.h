// Admission of a request, decided on its header alone, before any byte of the body is read:
// the protocol rules of RFC 9112 that the parser leaves to the server (Host, duplicate
// Content-Length and Fencing-* headers), route and method (404/405), body size (413/411),
// authentication (401/403), query parameters and names (400).
//
// A refused request is never executed, and since its body (and anything pipelined after it)
// is unread, the connection closes after the refusal. Thread-safe (reads immutable state).
#ifndef ORDO_HTTP_SRC_ADMISSION_H_
#define ORDO_HTTP_SRC_ADMISSION_H_

#include <optional>

#include "reply.h"
#include "routes.h"
#include "state.h"

namespace ordo::http {

// The longest request target routed (414 beyond): a valid name percent-encodes to at most
// 3 * 128 bytes, so every valid request fits.
inline constexpr std::size_t kMaxTargetBytes = 512;

// Either the admitted route or the refusal to send (after which the connection closes).
struct Admission {
  std::optional<Route> route;
  std::optional<Response> refusal;
};

Admission Admit(const ServerState& state, const Request& header);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_ADMISSION_H_
