// The REST server: DESIGN.md's HTTP API over any ordo backend, on cpp-httplib.
//
// Request path. cpp-httplib reads the request line and headers, then calls PreRoute, which does
// every check that needs no body — route and method (404/405), header size (431), declared body
// size (413), authentication (401/403), names and keys (400) — so a refused request never
// reaches a backend and a too-large body is never read. Only then does httplib read the body
// and call Dispatch, which parses it and calls the Locker.
//
// Waiting. A waiting acquire (wait_ms > 0) stands in a per-name line (wait_lines.h): only the
// head of each line waits inside the backend; the others sleep until their turn or deadline.
// Every connection has its own thread (connection_threads.h), so parked waiters never hold up
// a release or a health check, and waiters are capped below the connection cap so that there
// is always room for those.
#include "ordo_http/server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "auth.h"
#include "connection_threads.h"
#include "metrics.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "ordo/store.h"
#include "ordo/version.h"
#include "ordo_http/wire.h"
#include "wait_lines.h"

namespace ordo::http {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr std::size_t kMaxListLimit = 1000;
constexpr std::size_t kDefaultListLimit = 100;
// Longest request target we route. A valid name percent-encodes to at most 3 * 128 bytes, so
// every valid request fits. The cap also bounds the std::regex match httplib runs on the path
// before calling a handler: libstdc++ matches recursively, about 300 bytes of stack per path
// byte (three times that under ASan), on a connection thread's 1 MiB stack.
constexpr std::size_t kMaxTargetBytes = 512;

// ---------------------------------------------------------------------------------------------
// Responses.

void SendJson(httplib::Response& res, int http_status, const json& body) {
  res.status = http_status;
  // Messages may quote what the client sent (a path, a header); bytes that are not UTF-8 are
  // replaced rather than allowed to make dump() throw.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, int http_status, std::string_view code,
               const std::string& message, json extra = json::object()) {
  extra["error"] = code;
  extra["message"] = message;
  SendJson(res, http_status, extra);
}

// The error body of a Status: stale_token carries current_token, version_mismatch carries
// current_version.
void SendStatus(httplib::Response& res, const Status& status, json extra = json::object()) {
  if (status.current().has_value()) {
    if (status.code() == StatusCode::kStaleToken) extra["current_token"] = *status.current();
    if (status.code() == StatusCode::kVersionMismatch) {
      extra["current_version"] = *status.current();
    }
  }
  if (status.code() == StatusCode::kUnavailable) res.set_header("Retry-After", "1");
  SendError(res, wire::HttpStatusOf(status.code()), StatusCodeName(status.code()),
            status.message(), std::move(extra));
}

std::string QuotedEtag(std::uint64_t version) { return "\"" + std::to_string(version) + "\""; }

// ---------------------------------------------------------------------------------------------
// Routes.

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
};

struct Route {
  RouteId id;
  std::string name;  // the decoded {name} or {key}; empty for routes without one
  std::vector<std::string_view> methods;  // allowed methods (HEAD is implied by GET)
  std::vector<std::string_view> params;   // allowed query parameters
  bool open = false;                      // served without authentication
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one path segment. Decoding happens before ValidateName, so "%2F", "%2E%2E"
// and "%00" are judged as the '/', ".." and NUL they stand for.
std::optional<std::string> DecodeSegment(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = HexDigit(in[i + 1]);
    const int lo = HexDigit(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  if (path.empty() || path.front() != '/') return parts;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

// Matches the raw request target (not httplib's decoded path, in which "%2F" already became a
// separator). nullopt: no such route. A route whose {name} does not decode gets name "\x01",
// which ValidateName refuses.
std::optional<Route> MatchRoute(std::string_view target) {
  const auto query = target.find('?');
  const auto parts = SplitPath(target.substr(0, query));
  auto decoded = [](std::string_view s) { return DecodeSegment(s).value_or("\x01"); };
  const std::size_t n = parts.size();
  if (n == 1 && parts[0] == "healthz") return Route{RouteId::kHealthz, "", {"GET"}, {}, true};
  if (n == 1 && parts[0] == "readyz") return Route{RouteId::kReadyz, "", {"GET"}, {}};
  if (n == 1 && parts[0] == "metrics") return Route{RouteId::kMetrics, "", {"GET"}, {}};
  if (n < 2 || parts[0] != "v1") return std::nullopt;
  if (n == 2 && parts[1] == "info") return Route{RouteId::kInfo, "", {"GET"}, {}};
  if (parts[1] == "locks") {
    if (n == 2) return Route{RouteId::kList, "", {"GET"}, {"prefix", "limit"}};
    if (n == 3) return Route{RouteId::kDescribe, decoded(parts[2]), {"GET"}, {}};
    if (n == 4 && parts[3] == "acquire") {
      return Route{RouteId::kAcquire, decoded(parts[2]), {"POST"}, {}};
    }
    if (n == 4 && parts[3] == "renew") return Route{RouteId::kRenew, decoded(parts[2]), {"POST"}, {}};
    if (n == 4 && parts[3] == "release") {
      return Route{RouteId::kRelease, decoded(parts[2]), {"POST"}, {}};
    }
    return std::nullopt;
  }
  if (n == 3 && parts[1] == "fenced") {
    return Route{RouteId::kFenced, decoded(parts[2]), {"GET", "PUT"}, {}};
  }
  if (n == 3 && parts[1] == "objects") {
    return Route{RouteId::kObject, decoded(parts[2]), {"GET", "PUT"}, {}};
  }
  return std::nullopt;
}

bool MethodAllowed(const Route& route, const std::string& method) {
  for (auto m : route.methods) {
    if (m == method || (m == "GET" && method == "HEAD")) return true;
  }
  return false;
}

std::string AllowHeader(const Route& route) {
  std::string out;
  for (auto m : route.methods) {
    if (!out.empty()) out += ", ";
    out += m;
    if (m == "GET") out += ", HEAD";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Input parsing. Each returns kInvalidArgument naming the field and the problem.

Result<std::uint64_t> ParseTokenText(std::string_view text, std::string_view what) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  std::uint64_t value = 0;
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!digits || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text.substr(0, 40)) +
                                "' is not a positive integer");
  }
  if (value == 0) return InvalidArgumentError(std::string(what) + " 0 is never issued");
  if (value >= wire::kMaxJsonToken) {
    return InvalidArgumentError(std::string(what) + " " + std::string(text) +
                                " is not below 2^53");
  }
  return value;
}

Result<json> ParseBodyObject(const std::string& body) {
  if (body.empty()) return json::object();
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgumentError("the body is not valid JSON");
  if (!parsed.is_object()) return InvalidArgumentError("the body must be a JSON object");
  return parsed;
}

Status CheckFields(const json& body, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (auto k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return InvalidArgumentError("unknown field '" + key + "'; known fields: " + list);
    }
  }
  return OkStatus();
}

// A non-negative integer field within [lo, hi], or `fallback` when absent.
Result<std::uint64_t> UintField(const json& body, const char* key, std::uint64_t lo,
                                std::uint64_t hi, std::optional<std::uint64_t> fallback) {
  auto it = body.find(key);
  if (it == body.end()) {
    if (fallback) return *fallback;
    return InvalidArgumentError(std::string("field '") + key + "' is required");
  }
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    return InvalidArgumentError(std::string("field '") + key + "' is negative; it must be " +
                                range);
  }
  if (!it->is_number_unsigned()) {
    return InvalidArgumentError(std::string("field '") + key + "' must be an integer " + range +
                                (it->is_number_float() ? " (got a fraction or a number too large)"
                                                       : " (got " + std::string(it->type_name()) +
                                                             ")"));
  }
  const auto v = it->get<std::uint64_t>();
  if (v < lo || v > hi) {
    return InvalidArgumentError(std::string("field '") + key + "' is " + std::to_string(v) +
                                "; it must be " + range);
  }
  return v;
}

Result<std::string> StringField(const json& body, const char* key, std::string fallback) {
  auto it = body.find(key);
  if (it == body.end()) return fallback;
  if (!it->is_string()) {
    return InvalidArgumentError(std::string("field '") + key + "' must be a string (got " +
                                it->type_name() + ")");
  }
  return it->get<std::string>();
}

// RFC 9110 entity-tag lists: `*`, or `"a", W/"b", …`.
struct EtagList {
  bool any = false;
  std::vector<std::pair<bool, std::string>> tags;  // (weak, opaque-tag without quotes)
};

std::optional<EtagList> ParseEtags(std::string_view text) {
  EtagList list;
  auto skip = [&] {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  };
  skip();
  if (text == "*") {
    list.any = true;
    return list;
  }
  while (true) {
    skip();
    bool weak = false;
    if (text.substr(0, 2) == "W/") {
      weak = true;
      text.remove_prefix(2);
    }
    if (text.empty() || text.front() != '"') return std::nullopt;
    const auto close = text.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    list.tags.emplace_back(weak, std::string(text.substr(1, close - 1)));
    text.remove_prefix(close + 1);
    skip();
    if (text.empty()) break;
    if (text.front() != ',') return std::nullopt;
    text.remove_prefix(1);
  }
  return list;
}

// Whether the current version (0 = absent) matches the list: strong comparison for If-Match,
// weak for If-None-Match (RFC 9110 §13.1.1, §13.1.2).
bool EtagMatches(const EtagList& list, std::uint64_t version, bool weak_comparison) {
  if (version == 0) return false;
  if (list.any) return true;
  const std::string current = std::to_string(version);
  for (const auto& [weak, tag] : list.tags) {
    if (tag == current && (weak_comparison || !weak)) return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The server.

// Subclassed only to raise the listen backlog: libcpp-httplib is built with a backlog of 5,
// which drops SYNs when hundreds of clients connect at once.
class BacklogServer : public httplib::Server {
 public:
  void RaiseBacklog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

struct Server::Impl {
  ServeOptions options;
  std::string backend_masked;
  std::string backend_scheme;
  std::unique_ptr<Locker> locker;
  std::optional<Authenticator> auth;
  Metrics metrics;
  std::unique_ptr<WaitLines> waits;
  BacklogServer http;
  std::atomic<ConnectionThreads*> threads{nullptr};
  std::thread listener;
  std::string host;
  int port = 0;
  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu

  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req,
                                            httplib::Response& res);
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  void OnError(const httplib::Request& req, httplib::Response& res);

  void Acquire(const Route& route, const httplib::Request& req, httplib::Response& res);
  void Renew(const Route& route, const httplib::Request& req, httplib::Response& res);
  void Release(const Route& route, const httplib::Request& req, httplib::Response& res);
  void Describe(const Route& route, httplib::Response& res);
  void List(const httplib::Request& req, httplib::Response& res);
  void FencedPut(const Route& route, const httplib::Request& req, httplib::Response& res);
  void FencedGet(const Route& route, const httplib::Request& req, httplib::Response& res);
  void ObjectGet(const Route& route, httplib::Response& res);
  void ObjectPut(const Route& route, const httplib::Request& req, httplib::Response& res);
  void Ready(httplib::Response& res);
  void Info(httplib::Response& res);
  void RenderMetrics(httplib::Response& res);

  // The holders of a lock, for the body of a 409 lock_held (best effort: {} on error).
  json HoldersOf(const std::string& name);
};

httplib::Server::HandlerResponse Server::Impl::PreRoute(const httplib::Request& req,
                                                        httplib::Response& res) {
  using HR = httplib::Server::HandlerResponse;
  std::size_t header_bytes = req.method.size() + req.target.size() + req.version.size();
  for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size() + 4;
  if (header_bytes > options.max_header_bytes) {
    SendError(res, 431, "invalid_argument",
              "request line and headers are " + std::to_string(header_bytes) +
                  " bytes; the limit is " + std::to_string(options.max_header_bytes));
    return HR::Handled;
  }
  if (req.target.size() > kMaxTargetBytes) {
    SendError(res, 414, "invalid_argument",
              "request target is " + std::to_string(req.target.size()) + " bytes; the limit is " +
                  std::to_string(kMaxTargetBytes));
    return HR::Handled;
  }
  const auto route = MatchRoute(req.target);
  if (!route) {
    SendError(res, 404, "not_found", "no route " + req.method + " " + req.path);
    return HR::Handled;
  }
  if (!MethodAllowed(*route, req.method)) {
    res.set_header("Allow", AllowHeader(*route));
    SendError(res, 405, "method_not_allowed",
              req.method + " is not allowed on " + req.path + "; allowed: " + AllowHeader(*route));
    return HR::Handled;
  }
  // Refuse a declared oversized body before httplib reads any of it. (A chunked body is cut
  // off by httplib's payload limit as it streams in.)
  if (req.has_header("Content-Length")) {
    const std::string cl = req.get_header_value("Content-Length");
    std::uint64_t length = 0;
    const auto [end, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), length);
    if (ec != std::errc() || end != cl.data() + cl.size()) {
      SendError(res, 400, "invalid_argument", "Content-Length '" + cl + "' is not a number");
      return HR::Handled;
    }
    if (length > options.max_body) {
      res.set_header("Connection", "close");
      SendError(res, 413, "payload_too_large",
                "the body is " + cl + " bytes; the limit is " + std::to_string(options.max_body) +
                    " (--max-body)");
      return HR::Handled;
    }
  }
  // Bodies must declare their length: a chunked body would be read into memory before any
  // limit could refuse it (httplib 0.11 does not apply its payload limit to chunked bodies).
  if (req.has_header("Transfer-Encoding")) {
    res.set_header("Connection", "close");
    SendError(res, 411, "invalid_argument",
              "send the body with a Content-Length; Transfer-Encoding is not accepted");
    return HR::Handled;
  }
  if (auth && !route->open) {
    const int who = auth->Find(req.get_header_value("Authorization"));
    if (who < 0) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"ordo\"");
      SendError(res, 401, "unauthorized",
                req.has_header("Authorization") ? "the bearer token is not known"
                                                : "an 'Authorization: Bearer TOKEN' header is required");
      return HR::Handled;
    }
    std::vector<std::string> touched;
    if (!route->name.empty()) touched.push_back(route->name);
    if (route->id == RouteId::kList) touched.push_back(req.get_param_value("prefix"));
    if ((route->id == RouteId::kFenced || route->id == RouteId::kObject) &&
        req.has_header("Fencing-Lock")) {
      touched.push_back(req.get_header_value("Fencing-Lock"));
    }
    for (const auto& name : touched) {
      if (!auth->Allows(who, name)) {
        SendError(res, 403, "forbidden",
                  "this token may not use '" + name + "': it is outside the token's prefixes");
        return HR::Handled;
      }
    }
  }
  for (const auto& [key, value] : req.params) {
    bool known = false;
    for (auto p : route->params) known = known || p == key;
    if (!known) {
      SendError(res, 400, "invalid_argument", "unknown query parameter '" + key + "'");
      return HR::Handled;
    }
  }
  if (!route->name.empty()) {
    const char* what = route->id == RouteId::kFenced || route->id == RouteId::kObject
                           ? "key"
                           : "lock name";
    Status valid = ValidateName(route->name, what);
    if (!valid.ok()) {
      SendStatus(res, valid);
      return HR::Handled;
    }
  }
  return HR::Unhandled;
}

void Server::Impl::Dispatch(const httplib::Request& req, httplib::Response& res) {
  // PreRoute already matched and checked the route; match again for its fields.
  const auto route = MatchRoute(req.target);
  if (!route) {
    SendError(res, 404, "not_found", "no route " + req.method + " " + req.path);
    return;
  }
  const bool put = req.method == "PUT";
  switch (route->id) {
    case RouteId::kHealthz: SendJson(res, 200, {{"status", "ok"}}); return;
    case RouteId::kReadyz: Ready(res); return;
    case RouteId::kMetrics: RenderMetrics(res); return;
    case RouteId::kInfo: Info(res); return;
    case RouteId::kList: List(req, res); return;
    case RouteId::kDescribe: Describe(*route, res); return;
    case RouteId::kAcquire: Acquire(*route, req, res); return;
    case RouteId::kRenew: Renew(*route, req, res); return;
    case RouteId::kRelease: Release(*route, req, res); return;
    case RouteId::kFenced: put ? FencedPut(*route, req, res) : FencedGet(*route, req, res); return;
    case RouteId::kObject: put ? ObjectPut(*route, req, res) : ObjectGet(*route, res); return;
  }
}

void Server::Impl::OnError(const httplib::Request& req, httplib::Response& res) {
  metrics.Request(res.status);
  if (!res.body.empty()) return;  // our own error bodies
  // Errors httplib detected itself, before any handler ran.
  switch (res.status) {
    case 413:
      SendError(res, 413, "payload_too_large",
                "the body is larger than " + std::to_string(options.max_body) + " bytes");
      return;
    case 414:
      SendError(res, 414, "invalid_argument", "the request target is too long");
      return;
    case 404: SendError(res, 404, "not_found", "no route " + req.method + " " + req.path); return;
    case 400: SendError(res, 400, "invalid_argument", "malformed HTTP request"); return;
    default:
      SendError(res, res.status, res.status >= 500 ? "internal" : "invalid_argument",
                "HTTP error " + std::to_string(res.status));
  }
}

json Server::Impl::HoldersOf(const std::string& name) {
  auto state = locker->Describe(name);
  if (!state.ok()) return json::object();
  json out = wire::StateToJson(*state);
  out.erase("name");
  return out;
}

void Server::Impl::Acquire(const Route& route, const httplib::Request& req,
                           httplib::Response& res) {
  const auto start = std::chrono::steady_clock::now();
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return SendStatus(res, body.status());
  Status fields = CheckFields(*body, {"owner", "ttl_ms", "wait_ms", "mode"});
  if (!fields.ok()) return SendStatus(res, fields);
  auto ttl = UintField(*body, "ttl_ms", kMinTtl.count(), kMaxTtl.count(), kDefaultTtl.count());
  if (!ttl.ok()) return SendStatus(res, ttl.status());
  auto wait = UintField(*body, "wait_ms", 0, options.max_wait.count(), 0);
  if (!wait.ok()) {
    return SendStatus(res, Status(StatusCode::kInvalidArgument,
                                  wait.status().message() + " (the server's --max-wait)"));
  }
  auto owner = StringField(*body, "owner", "");
  if (!owner.ok()) return SendStatus(res, owner.status());
  auto mode_text = StringField(*body, "mode", "exclusive");
  if (!mode_text.ok()) return SendStatus(res, mode_text.status());
  const auto mode = wire::ParseMode(*mode_text);
  if (!mode) {
    return SendStatus(res, InvalidArgumentError("field 'mode' is '" + *mode_text +
                                                "'; it must be 'exclusive' or 'shared'"));
  }
  LockRequest request{.name = route.name,
                      .mode = *mode,
                      .ttl = milliseconds(*ttl),
                      .wait = milliseconds(*wait),
                      .owner = *owner};
  Status valid = ValidateRequest(request);
  if (!valid.ok()) return SendStatus(res, valid);
  Result<Lease> lease =
      request.wait.count() == 0 ? locker->Acquire(request) : waits->Acquire(*locker, request);
  metrics.Acquired(lease, std::chrono::steady_clock::now() - start);
  if (lease.ok()) {
    if (lease->token >= wire::kMaxJsonToken) {
      // Cannot be represented safely on the wire: give it back rather than hand out a token
      // some client would round.
      locker->Release(*lease).IgnoreError();
      return SendStatus(res, InternalError("the backend issued a token not below 2^53"));
    }
    if (request.wait.count() == 0) return SendJson(res, 200, wire::LeaseToJson(*lease));
    // A waiter's client may have given up while it stood in line. If the lease cannot be
    // delivered, give it back at once instead of leaving the lock held until its TTL.
    auto payload = std::make_shared<const std::string>(wire::LeaseToJson(*lease).dump());
    res.status = 200;
    res.set_content_provider(
        payload->size(), "application/json",
        [payload](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          return sink.write(payload->data() + offset, length);
        },
        [this, granted = *lease](bool delivered) {
          if (delivered) return;
          Status released = locker->Release(granted);
          metrics.Released(granted, released);
          spdlog::info("ordo serve: the client waiting for '{}' went away; token {} released ({})",
                       granted.name, granted.token, released.ToString());
        });
    return;
  }
  if (lease.status().code() == StatusCode::kLockHeld) {
    return SendStatus(res, lease.status(), HoldersOf(route.name));
  }
  SendStatus(res, lease.status());
}

void Server::Impl::Renew(const Route& route, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return SendStatus(res, body.status());
  Status fields = CheckFields(*body, {"token", "ttl_ms"});
  if (!fields.ok()) return SendStatus(res, fields);
  auto token = UintField(*body, "token", 1, wire::kMaxJsonToken - 1, std::nullopt);
  if (!token.ok()) return SendStatus(res, token.status());
  auto ttl = UintField(*body, "ttl_ms", kMinTtl.count(), kMaxTtl.count(), kDefaultTtl.count());
  if (!ttl.ok()) return SendStatus(res, ttl.status());
  Lease lease;
  lease.name = route.name;
  lease.token = *token;
  auto renewed = locker->Renew(lease, milliseconds(*ttl));
  metrics.Renewed(renewed);
  if (!renewed.ok()) return SendStatus(res, renewed.status());
  SendJson(res, 200, wire::LeaseToJson(*renewed));
}

void Server::Impl::Release(const Route& route, const httplib::Request& req,
                           httplib::Response& res) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return SendStatus(res, body.status());
  Status fields = CheckFields(*body, {"token"});
  if (!fields.ok()) return SendStatus(res, fields);
  auto token = UintField(*body, "token", 1, wire::kMaxJsonToken - 1, std::nullopt);
  if (!token.ok()) return SendStatus(res, token.status());
  Lease lease;
  lease.name = route.name;
  lease.token = *token;
  Status released = locker->Release(lease);
  metrics.Released(lease, released);
  if (!released.ok()) return SendStatus(res, released);
  SendJson(res, 200, {{"name", route.name}, {"token", *token}, {"released", true}});
}

void Server::Impl::Describe(const Route& route, httplib::Response& res) {
  auto state = locker->Describe(route.name);
  if (!state.ok()) return SendStatus(res, state.status());
  SendJson(res, 200, wire::StateToJson(*state));
}

void Server::Impl::List(const httplib::Request& req, httplib::Response& res) {
  const std::string prefix = req.get_param_value("prefix");
  if (!prefix.empty()) {
    // A prefix is the start of a name: the name rule, except that it may be cut anywhere.
    Status valid = ValidateName(prefix, "prefix");
    if (!valid.ok()) return SendStatus(res, valid);
  }
  std::size_t limit = kDefaultListLimit;
  if (req.has_param("limit")) {
    auto parsed = ParseTokenText(req.get_param_value("limit"), "limit");
    if (!parsed.ok() || *parsed > kMaxListLimit) {
      return SendStatus(res, InvalidArgumentError("limit must be 1.." +
                                                  std::to_string(kMaxListLimit)));
    }
    limit = static_cast<std::size_t>(*parsed);
  }
  auto locks = locker->List(prefix, limit + 1);
  if (!locks.ok()) return SendStatus(res, locks.status());
  const bool truncated = locks->size() > limit;
  json items = json::array();
  for (std::size_t i = 0; i < locks->size() && i < limit; ++i) {
    items.push_back(wire::StateToJson((*locks)[i]));
  }
  SendJson(res, 200, {{"locks", std::move(items)}, {"truncated", truncated}});
}

void Server::Impl::FencedPut(const Route& route, const httplib::Request& req,
                             httplib::Response& res) {
  if (!req.has_header("Fencing-Token")) {
    return SendStatus(res, InvalidArgumentError("a fenced write needs a Fencing-Token header"));
  }
  auto token = ParseTokenText(req.get_header_value("Fencing-Token"), "Fencing-Token");
  if (!token.ok()) return SendStatus(res, token.status());
  const std::string lock = req.get_header_value("Fencing-Lock");
  if (req.has_header("Fencing-Lock")) {
    Status valid = ValidateName(lock, "Fencing-Lock");
    if (!valid.ok()) return SendStatus(res, valid);
  }
  auto written = locker->fenced().Write(route.name, req.body, *token, lock);
  metrics.FencedWrite(written.status());
  if (!written.ok()) return SendStatus(res, written.status());
  res.set_header("ETag", QuotedEtag(written->version));
  SendJson(res, 200, {{"key", route.name}, {"token", written->token}, {"version", written->version}});
}

void Server::Impl::FencedGet(const Route& route, const httplib::Request& req,
                             httplib::Response& res) {
  std::uint64_t token = 0;
  if (req.has_header("Fencing-Token")) {
    auto parsed = ParseTokenText(req.get_header_value("Fencing-Token"), "Fencing-Token");
    if (!parsed.ok()) return SendStatus(res, parsed.status());
    token = *parsed;
  }
  const std::string lock = req.get_header_value("Fencing-Lock");
  if (req.has_header("Fencing-Lock")) {
    if (token == 0) {
      return SendStatus(res, InvalidArgumentError("Fencing-Lock needs a Fencing-Token"));
    }
    Status valid = ValidateName(lock, "Fencing-Lock");
    if (!valid.ok()) return SendStatus(res, valid);
  }
  auto value = locker->fenced().Read(route.name, token, lock);
  metrics.FencedRead(value.status());
  if (!value.ok()) return SendStatus(res, value.status());
  res.status = 200;
  res.set_header("Fencing-Token", std::to_string(value->token));
  res.set_header("ETag", QuotedEtag(value->version));
  res.set_content(value->data, "application/octet-stream");
}

void Server::Impl::ObjectGet(const Route& route, httplib::Response& res) {
  auto got = locker->objects().Get(route.name);
  if (!got.ok()) return SendStatus(res, got.status());
  // The stored document is embedded as it was written (PUT validated it); a value stored by a
  // library user that is not JSON is returned as a JSON string.
  const std::string value =
      json::accept(got->value) ? got->value : json(got->value).dump();
  res.status = 200;
  res.set_header("ETag", QuotedEtag(got->version));
  res.set_content("{\"value\":" + value + ",\"version\":" + std::to_string(got->version) + "}",
                  "application/json");
}

void Server::Impl::ObjectPut(const Route& route, const httplib::Request& req,
                             httplib::Response& res) {
  const bool has_match = req.has_header("If-Match");
  const bool has_none = req.has_header("If-None-Match");
  if (!has_match && !has_none) {
    return SendError(res, 428, "precondition_required",
                     "an object PUT needs If-Match: \"VERSION\" (update) or If-None-Match: * "
                     "(create)");
  }
  std::optional<EtagList> match, none;
  if (has_match && !(match = ParseEtags(req.get_header_value("If-Match")))) {
    return SendStatus(res, InvalidArgumentError("If-Match is not '*' or a list of entity tags"));
  }
  if (has_none && !(none = ParseEtags(req.get_header_value("If-None-Match")))) {
    return SendStatus(res,
                      InvalidArgumentError("If-None-Match is not '*' or a list of entity tags"));
  }
  // A fenced CAS (the leader's term as Fencing-Token, its election as Fencing-Lock): the store
  // checks the token before the version, so a stale leader gets 409 even with a fresh ETag.
  std::uint64_t token = 0;
  if (req.has_header("Fencing-Token")) {
    auto parsed = ParseTokenText(req.get_header_value("Fencing-Token"), "Fencing-Token");
    if (!parsed.ok()) return SendStatus(res, parsed.status());
    token = *parsed;
  }
  const std::string lock = req.get_header_value("Fencing-Lock");
  if (req.has_header("Fencing-Lock")) {
    if (token == 0) {
      return SendStatus(res, InvalidArgumentError("Fencing-Lock needs a Fencing-Token"));
    }
    Status valid = ValidateName(lock, "Fencing-Lock");
    if (!valid.ok()) return SendStatus(res, valid);
  }
  if (!json::accept(req.body)) {
    return SendStatus(res, InvalidArgumentError("an object must be a JSON document"));
  }
  // The version the write is conditioned on. The two common forms map straight onto one CAS;
  // the others (lists, If-Match: *, both headers) read the current version, evaluate the
  // preconditions against it and CAS on it, so a concurrent change still makes the CAS fail.
  std::uint64_t expected = 0;
  std::uint64_t parsed = 0;
  const bool single_match = has_match && !has_none && !match->any && match->tags.size() == 1 &&
                            !match->tags[0].first &&
                            std::from_chars(match->tags[0].second.data(),
                                            match->tags[0].second.data() +
                                                match->tags[0].second.size(),
                                            parsed)
                                    .ec == std::errc() &&
                            parsed > 0 && std::to_string(parsed) == match->tags[0].second;
  if (single_match) {
    expected = parsed;
  } else if (has_none && !has_match && none->any) {
    expected = 0;
  } else {
    auto current = locker->objects().Get(route.name);
    if (!current.ok() && current.status().code() != StatusCode::kNotFound) {
      return SendStatus(res, current.status());
    }
    const std::uint64_t version = current.ok() ? current->version : 0;
    const bool pass = (!has_match || EtagMatches(*match, version, false)) &&
                      (!has_none || !EtagMatches(*none, version, true));
    if (!pass) {
      return SendStatus(res, VersionMismatchError("the preconditions do not hold for version " +
                                                      std::to_string(version) + " of '" +
                                                      route.name + "'",
                                                  version));
    }
    expected = version;
  }
  auto written = token == 0
                     ? locker->objects().CompareAndSwap(route.name, expected, req.body)
                     : locker->objects().CompareAndSwap(route.name, expected, req.body, token, lock);
  if (!written.ok()) return SendStatus(res, written.status());
  res.set_header("ETag", QuotedEtag(*written));
  SendJson(res, 200, {{"key", route.name}, {"version", *written}});
}

void Server::Impl::Ready(httplib::Response& res) {
  Status ping = locker->Ping();
  if (!ping.ok()) {
    return SendStatus(res, UnavailableError("the backend does not answer: " + ping.message()));
  }
  SendJson(res, 200, {{"status", "ready"}});
}

void Server::Impl::Info(httplib::Response& res) {
  const LockerTraits traits = locker->traits();
  SendJson(res, 200,
           {{"version", ORDO_VERSION_STRING},
            {"backend", backend_scheme},
            {"expires_by_ttl", traits.expires_by_ttl},
            {"max_wait_ms", options.max_wait.count()},
            {"keep_alive_ms", std::chrono::duration_cast<milliseconds>(options.keep_alive).count()},
            {"max_body", options.max_body}});
}

void Server::Impl::RenderMetrics(httplib::Response& res) {
  ConnectionThreads* t = threads.load();
  res.status = 200;
  res.set_content(metrics.Render(waits->waiting(), t ? t->threads() : 0),
                  "text/plain; version=0.0.4");
}

// ---------------------------------------------------------------------------------------------

namespace {

bool SplitListen(const std::string& listen, std::string* host, int* port) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = listen.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), *port);
  return !host->empty() && !p.empty() && ec == std::errc() && end == p.data() + p.size() &&
         *port >= 0 && *port <= 65535;
}

// Raises the descriptor limit to its hard maximum (each connection is a descriptor) and
// returns the number of connections it leaves room for.
std::size_t ConnectionRoom() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  constexpr rlim_t kReserve = 64;  // backend connections, files, the listener
  return lim.rlim_cur > kReserve * 2 ? static_cast<std::size_t>(lim.rlim_cur - kReserve) : 64;
}

}  // namespace

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->host + "]" : impl_->host) + ":" +
         std::to_string(impl_->port);
}

Result<std::unique_ptr<Server>> Server::Start(const ServeOptions& options,
                                              std::unique_ptr<Locker> backend) {
  // A client that vanishes mid-response must not kill the process: httplib writes without
  // MSG_NOSIGNAL, so SIGPIPE is ignored process-wide while a server exists.
  signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (!SplitListen(options.listen, &impl->host, &impl->port)) {
    return InvalidArgumentError("listen address '" + options.listen + "' is not HOST:PORT");
  }
  if (options.max_body == 0) return InvalidArgumentError("--max-body must be at least 1 byte");
  if (options.max_wait.count() < 0 || options.max_wait > kMaxWait) {
    return InvalidArgumentError("--max-wait must be 0 to 24h");
  }
  if (options.io_timeout.count() <= 0 || options.keep_alive.count() <= 0) {
    return InvalidArgumentError("timeouts must be positive");
  }
  const std::size_t room = ConnectionRoom();
  if (impl->options.max_connections == 0) {
    return InvalidArgumentError("--max-connections must be at least 1");
  }
  if (impl->options.max_connections > room) {
    spdlog::warn("ordo serve: max connections lowered from {} to {} (descriptor limit)",
                 impl->options.max_connections, room);
    impl->options.max_connections = room;
  }
  std::size_t max_waiters = impl->options.max_waiters;
  if (max_waiters == 0) max_waiters = impl->options.max_connections * 7 / 8;
  max_waiters = std::min(max_waiters, impl->options.max_connections - 1);
  impl->waits = std::make_unique<WaitLines>(max_waiters);

  if (!options.auth_file.empty()) {
    auto auth = Authenticator::Load(options.auth_file);
    if (!auth.ok()) return auth.status();
    impl->auth = std::move(*auth);
  }
  auto url = ParseBackendUrl(options.backend_url);
  if (backend) {
    impl->backend_masked = url.ok() ? url->Masked() : "(in-process backend)";
    impl->backend_scheme = url.ok() ? url->scheme : "custom";
    impl->locker = std::move(backend);
  } else {
    if (!url.ok()) return url.status();
    auto opened = Open(options.backend_url);
    if (!opened.ok()) return opened.status();
    impl->backend_masked = url->Masked();
    impl->backend_scheme = url->scheme;
    impl->locker = std::move(*opened);
  }

  Impl* self = impl.get();
  auto& http = impl->http;
  const std::size_t max_connections = impl->options.max_connections;
  http.new_task_queue = [self, max_connections] {
    auto* q = new ConnectionThreads(max_connections);
    self->threads.store(q);
    return q;
  };
  http.set_payload_max_length(options.max_body);
  http.set_read_timeout(options.io_timeout);
  http.set_write_timeout(options.io_timeout);
  http.set_keep_alive_timeout(options.keep_alive.count());
  http.set_keep_alive_max_count(1000);
  http.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, which would let a second `ordo serve` bind the
  // same port and silently share its traffic; "address in use" is the right answer.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.set_pre_routing_handler(
      [self](const httplib::Request& req, httplib::Response& res) { return self->PreRoute(req, res); });
  auto dispatch = [self](const httplib::Request& req, httplib::Response& res) {
    self->Dispatch(req, res);
  };
  http.Get(".*", dispatch);
  http.Post(".*", dispatch);
  http.Put(".*", dispatch);
  http.set_error_handler(
      [self](const httplib::Request& req, httplib::Response& res) { self->OnError(req, res); });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                std::exception_ptr ep) {
    std::string what = "unexpected error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, "internal", what);
  });
  http.set_logger([self](const httplib::Request& req, const httplib::Response& res) {
    if (res.status < 400) self->metrics.Request(res.status);
    spdlog::debug("{} {} -> {}", req.method, req.target, res.status);
  });

  if (impl->port == 0) {
    impl->port = http.bind_to_any_port(impl->host);
    if (impl->port < 0) impl->port = 0;
  } else if (!http.bind_to_port(impl->host, impl->port)) {
    impl->port = 0;
  }
  if (impl->port == 0) {
    return UnavailableError("cannot listen on " + options.listen +
                            ": the address is in use or not local");
  }
  http.RaiseBacklog(SOMAXCONN);
  impl->listener = std::thread([self] { self->http.listen_after_bind(); });
  // httplib has no "ready" callback; it is ready within microseconds of the thread starting.
  while (!http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  spdlog::info(
      "ordo serve: listening on http://{}:{} with backend {} (auth {}, max body {} bytes, max "
      "wait {} ms, max connections {}, max waiters {})",
      impl->host, impl->port, impl->backend_masked,
      impl->auth ? std::to_string(impl->auth->size()) + " token(s)" : std::string("off"),
      options.max_body, options.max_wait.count(), max_connections, max_waiters);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->waits->Shutdown();
  impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

int RunServer(const ServeOptions& options) {
  // Block the stop signals in every thread the server starts, and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  auto server = Server::Start(options);
  if (!server.ok()) {
    spdlog::error("ordo serve: {}", server.status().ToString());
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return 125;
  }
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  spdlog::info("ordo serve: signal {} received; stopping", sig);
  (*server)->Stop();
  spdlog::info("ordo serve: stopped");
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return 0;
}

}  // namespace ordo::http
