// The route table of the REST server: one entry per path shape, matched once per request on the
// raw request target (so that "%2F" inside a name is not a separator).
//
// To add a route, add a RouteId, a row to kRoutes in routes.cc and a case to the handler switch
// (handlers.cc). Pure functions over a static table: thread-safe, never block.
#ifndef ORDO_HTTP_SRC_ROUTES_H_
#define ORDO_HTTP_SRC_ROUTES_H_

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ordo::http {

enum class RouteId {
  kHealthz,
  kReadyz,
  kMetrics,
  kInfo,
  kList,
  kDescribe,
  kAcquire,
  kRenew,
  kRelease,
  kFenced,
  kObject,
  kEvents,
  kRevoke,
  kUi,
  kElections,
  kElection,
  kCampaign,
  kElectionRenew,
  kResign,
};

// How the route's {name} segment is described in messages ("lock name", "key", "election
// name"). An election name is a lock name (the election X is the lock X).
enum class NameKind { kNone, kLock, kKey, kElection };

// "lock name", "key" or "election name".
const char* NameKindLabel(NameKind kind);

struct Route {
  RouteId id;
  NameKind kind = NameKind::kNone;
  std::string name;          // the decoded {name} or {key}; empty for routes without one
  std::string name_error;    // set when {name} is not a valid percent-encoding
  // Views of the static route table (matched once per request, so nothing is copied).
  std::span<const std::string_view> methods;  // allowed methods (HEAD is implied by GET)
  std::span<const std::string_view> params;   // allowed query parameters
  bool open = false;                      // served without authentication
  bool backend = true;                    // calls the backend (runs on a worker)
  int auth_index = -1;                    // set by admission: the caller's auth-file token
};

// The route of a request target (path and query), or nullopt: no such route (404).
std::optional<Route> MatchRoute(std::string_view target);

bool MethodAllowed(const Route& route, std::string_view method);
// The Allow header of a 405: "GET, HEAD, PUT".
std::string AllowHeader(const Route& route);

// Percent-decodes `in`; nullopt when an escape is not '%' and two hex digits.
std::optional<std::string> PercentDecode(std::string_view in);

// The query parameters of a target, decoded ('+' is a space, as in HTML forms). nullopt when a
// parameter does not decode; `error` then names it.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    std::string_view target, std::string* error);

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_ROUTES_H_
