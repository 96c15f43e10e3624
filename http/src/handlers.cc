#include "handlers.h"

#include <charconv>
#include <chrono>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "elections.h"
#include "fields.h"
#include "operator.h"
#include "ordo/election.h"
#include "ordo/names.h"
#include "ordo/store.h"
#include "ordo/version.h"
#include "ordo_wire/wire.h"

namespace ordo::http {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxListLimit = 1000;
constexpr std::size_t kDefaultListLimit = 100;

std::string Str(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

// The value of a header that admission has already checked is not repeated.
std::optional<std::string> Header(const Request& req, std::string_view name) {
  auto it = req.find(boost::beast::string_view(name.data(), name.size()));
  if (it == req.end()) return std::nullopt;
  return Str(it->value());
}

std::optional<std::string> Param(const Request& req, std::string_view name) {
  std::string error;
  auto params = ParseQuery(Str(req.target()), &error);
  if (!params) return std::nullopt;
  for (const auto& [k, v] : *params) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// Lock routes speak of owners and tokens; election routes (the same lock underneath) of
// candidates and terms.
enum class Shape { kLock, kElection };

json LeaseBody(const Lease& lease, Shape shape) {
  if (shape == Shape::kLock) return wire::LeaseToJson(lease);
  return {{"name", lease.name},
          {"candidate", lease.owner},
          {"term", lease.token},
          {"expires_at", wire::FormatTime(lease.expires_at)},
          {"ttl_ms", lease.ttl.count()}};
}

// 200 with the lease; a lock's without building a JSON value (wire::LeaseJsonText).
Response LeaseReply(const Lease& lease, Shape shape) {
  if (shape == Shape::kLock) return BodyReply(200, wire::LeaseJsonText(lease), "application/json");
  return JsonReply(200, LeaseBody(lease, shape));
}

// The lock `name` may have changed hands: parked acquires and election long-polls re-check.
void NotifyChanged(ServerState& state, const std::string& name) {
  state.parking->Notify(name);
  state.elections->Notify(name);
}

// The leader of an election, for the body of its 409 lock_held (best effort).
json LeaderOf(ServerState& state, const std::string& name) {
  auto described = state.locker->Describe(name);
  if (!described.ok() || described->holders.empty()) return {{"leader", nullptr}};
  const Holder& h = described->holders.front();
  return {{"leader",
           {{"candidate", h.owner}, {"term", h.token}, {"expires_at", wire::FormatTime(h.expires_at)}}}};
}

// A lock's state as GET /v1/locks answers it: with the requests parked on this server for it,
// head of the line first (a replica does not see another's waiters).
json StateWithWaiters(ServerState& state, const LockState& lock) {
  json out = wire::StateToJson(lock);
  json waiters = json::array();
  const auto now = std::chrono::steady_clock::now();
  for (const Parking::Waiting& w : state.parking->WaitersOf(lock.name)) {
    waiters.push_back(
        {{"owner", w.owner},
         {"mode", std::string(LockModeName(w.mode))},
         {"waited_ms", std::chrono::duration_cast<milliseconds>(now - w.since).count()},
         {"wait_ms", w.wait.count()}});
  }
  out["waiters"] = std::move(waiters);
  return out;
}

// The holders of a lock, for the body of a 409 lock_held (best effort: {} on error).
json HoldersOf(ServerState& state, const std::string& name) {
  auto described = state.locker->Describe(name);
  if (!described.ok()) return json::object();
  json out = wire::StateToJson(*described);
  out.erase("name");
  return out;
}

// The reply to an acquire's outcome. Runs on a worker (a 409 describes the holders).
void ReplyAcquired(ServerState& state, const std::string& name, Result<Lease> lease,
                   std::chrono::steady_clock::time_point start, bool waited,
                   const ReplyFn& reply, Shape shape) {
  state.metrics.Acquired(lease, std::chrono::steady_clock::now() - start);
  if (lease.ok()) {
    if (lease->token >= wire::kMaxJsonToken) {
      // Cannot be represented safely on the wire: give it back rather than hand out a token
      // some client would round.
      state.locker->Release(*lease).IgnoreError();
      return reply(StatusReply(InternalError("the backend issued a token not below 2^53")), {});
    }
    if (shape == Shape::kElection) state.elections->Remember(*lease);
    if (state.events.enabled()) {
      state.events.Sweep();  // a lease it replaces may have expired unseen
      state.events.Record({.type = "acquired", .name = lease->name, .owner = lease->owner,
                           .token = lease->token, .slot = lease->slot,
                           .election = shape == Shape::kElection,
                           .expires_at = lease->expires_at});
    }
    Response res = LeaseReply(*lease, shape);
    if (!waited) return reply(std::move(res), {});
    // A waiter's client may have given up while it stood in line. If the lease cannot be
    // delivered, give it back at once instead of leaving the lock held until its TTL.
    ServerState* s = &state;
    return reply(std::move(res), [s, granted = *lease, shape] {
      s->run_on_worker([s, granted, shape] {
        Status released = s->locker->Release(granted);
        s->metrics.Released(granted, released);
        if (released.ok() && s->events.enabled()) {
          s->events.Record({.type = "released", .name = granted.name, .owner = granted.owner,
                            .token = granted.token, .slot = granted.slot,
                            .election = shape == Shape::kElection});
        }
        NotifyChanged(*s, granted.name);
        spdlog::info("ordo serve: the client waiting for '{}' went away; token {} released ({})",
                     granted.name, granted.token, released.ToString());
      });
    });
  }
  if (lease.status().code() == StatusCode::kLockHeld) {
    return reply(StatusReply(lease.status(), shape == Shape::kLock ? HoldersOf(state, name)
                                                                    : LeaderOf(state, name)),
                 {});
  }
  reply(StatusReply(lease.status()), {});
}

// POST /v1/locks/{name}/acquire, and POST /v1/elections/{name}/campaign: the election X is the
// exclusive lock X with owner = candidate, so a waiting campaign is parked like an acquire.
void Acquire(ServerState& state, const Route& route, const Request& req, ReplyFn reply,
             Shape shape) {
  const auto start = std::chrono::steady_clock::now();
  auto body = ParseBodyObject(req.body());
  if (!body.ok()) return reply(StatusReply(body.status()), {});
  Status fields = shape == Shape::kLock
                      ? CheckFields(*body, {"owner", "ttl_ms", "wait_ms", "mode", "limit"})
                      : CheckFields(*body, {"candidate", "ttl_ms", "wait_ms"});
  if (!fields.ok()) return reply(StatusReply(fields), {});
  auto ttl = UintField(*body, "ttl_ms", kMinTtl.count(), kMaxTtl.count(), kDefaultTtl.count());
  if (!ttl.ok()) return reply(StatusReply(ttl.status()), {});
  auto wait = UintField(*body, "wait_ms", 0, state.options.max_wait.count(), 0);
  if (!wait.ok()) {
    return reply(StatusReply(Status(StatusCode::kInvalidArgument,
                                    wait.status().message() + " (the server's --max-wait)")),
                 {});
  }
  auto limit = UintField(*body, "limit", 1, kMaxLimit, 1);
  if (!limit.ok()) return reply(StatusReply(limit.status()), {});
  auto owner = shape == Shape::kLock ? StringField(*body, "owner", "")
                                     : StringField(*body, "candidate", "");
  if (!owner.ok()) return reply(StatusReply(owner.status()), {});
  if (shape == Shape::kElection) {
    Status candidate = ValidateCandidate(*owner);
    if (!candidate.ok()) return reply(StatusReply(candidate), {});
  }
  auto mode_text = StringField(*body, "mode", "exclusive");
  if (!mode_text.ok()) return reply(StatusReply(mode_text.status()), {});
  const auto mode = wire::ParseMode(*mode_text);
  if (!mode) {
    return reply(StatusReply(InvalidArgumentError("field 'mode' is '" + *mode_text +
                                                  "'; it must be 'exclusive' or 'shared'")),
                 {});
  }
  LockRequest request{.name = route.name,
                      .mode = *mode,
                      .ttl = milliseconds(*ttl),
                      .wait = milliseconds(*wait),
                      .owner = *owner,
                      .limit = static_cast<std::uint32_t>(*limit)};
  Status valid = ValidateRequest(request);
  if (!valid.ok()) return reply(StatusReply(valid), {});
  if (request.wait.count() == 0) {
    return ReplyAcquired(state, route.name, state.locker->Acquire(request), start, false, reply,
                         shape);
  }
  // Parked: no thread waits. The outcome is turned into a reply on a worker.
  ServerState* s = &state;
  state.parking->Park(request, [s, name = route.name, start, reply, shape](Result<Lease> lease) {
    s->run_on_worker([s, name, start, reply, shape, lease = std::move(lease)]() mutable {
      ReplyAcquired(*s, name, std::move(lease), start, true, reply, shape);
    });
  });
  // After Park: a page that reads the lock on this event finds the waiter in the line (or
  // already answered). Only waiting acquires pay for it. From the local `request` only: the
  // reply may already be under way on a worker, and with it the connection's next request.
  if (s->events.enabled()) {
    s->events.Record({.type = "waiting", .name = request.name, .owner = request.owner,
                      .election = shape == Shape::kElection});
  }
}

Response Renew(ServerState& state, const Route& route, const Request& req, Shape shape) {
  const char* key = shape == Shape::kLock ? "token" : "term";
  auto body = ParseBodyObject(req.body());
  if (!body.ok()) return StatusReply(body.status());
  Status fields = CheckFields(*body, {std::string_view(key), "ttl_ms"});
  if (!fields.ok()) return StatusReply(fields);
  auto token = UintField(*body, key, 1, wire::kMaxJsonToken - 1, std::nullopt);
  if (!token.ok()) return StatusReply(token.status());
  auto ttl = UintField(*body, "ttl_ms", kMinTtl.count(), kMaxTtl.count(), kDefaultTtl.count());
  if (!ttl.ok()) return StatusReply(ttl.status());
  Lease lease;
  lease.name = route.name;
  lease.token = *token;
  auto renewed = state.locker->Renew(lease, milliseconds(*ttl));
  state.metrics.Renewed(renewed);
  if (!renewed.ok()) return StatusReply(renewed.status());
  if (state.events.enabled()) {
    state.events.Record({.type = "renewed", .name = renewed->name, .owner = renewed->owner,
                         .token = renewed->token, .slot = renewed->slot,
                         .election = shape == Shape::kElection,
                         .expires_at = renewed->expires_at});
  }
  return LeaseReply(*renewed, shape);
}

Response Release(ServerState& state, const Route& route, const Request& req, Shape shape) {
  auto token = TokenBody(req.body(), shape == Shape::kLock ? "token" : "term");
  if (!token.ok()) return StatusReply(token.status());
  Lease lease;
  lease.name = route.name;
  lease.token = *token;
  Status released = state.locker->Release(lease);
  state.metrics.Released(lease, released);
  if (!released.ok()) return StatusReply(released);
  if (state.events.enabled()) {
    state.events.Record({.type = "released", .name = route.name, .token = *token,
                         .election = shape == Shape::kElection});
  }
  NotifyChanged(state, route.name);  // the head of the line may take it now
  if (shape == Shape::kElection) {
    return JsonReply(200, {{"name", route.name}, {"term", *token}, {"resigned", true}});
  }
  if (!wire::detail::PlainAscii(route.name)) {
    return JsonReply(200, {{"name", route.name}, {"token", *token}, {"released", true}});
  }
  // The library's dump of the object above (keys sorted), written directly: half of all
  // requests are releases.
  std::string body = "{\"name\":";
  wire::detail::AppendPlainString(body, route.name);
  body += ",\"released\":true,\"token\":";
  body += std::to_string(*token);
  body += '}';
  return BodyReply(200, std::move(body), "application/json");
}

Response Describe(ServerState& state, const Route& route) {
  state.events.Sweep();
  auto described = state.locker->Describe(route.name);
  if (!described.ok()) return StatusReply(described.status());
  return JsonReply(200, StateWithWaiters(state, *described));
}

Response List(ServerState& state, const Request& req) {
  const std::string prefix = Param(req, "prefix").value_or("");
  if (!prefix.empty()) {
    // A prefix is the start of a name: the name rule, except that it may be cut anywhere.
    Status valid = ValidateName(prefix, "prefix");
    if (!valid.ok()) return StatusReply(valid);
  }
  std::size_t limit = kDefaultListLimit;
  if (auto text = Param(req, "limit")) {
    auto parsed = ParseTokenText(*text, "limit");
    if (!parsed.ok() || *parsed > kMaxListLimit) {
      return StatusReply(InvalidArgumentError("limit must be 1.." + std::to_string(kMaxListLimit)));
    }
    limit = static_cast<std::size_t>(*parsed);
  }
  state.events.Sweep();
  auto locks = state.locker->List(prefix, limit + 1);
  if (!locks.ok()) return StatusReply(locks.status());
  const bool truncated = locks->size() > limit;
  json items = json::array();
  for (std::size_t i = 0; i < locks->size() && i < limit; ++i) {
    items.push_back(StateWithWaiters(state, (*locks)[i]));
  }
  return JsonReply(200, {{"locks", std::move(items)}, {"truncated", truncated}});
}

// The Fencing-Token and Fencing-Lock headers of a fenced request: token 0 when absent.
struct Fencing {
  std::uint64_t token = 0;
  std::string lock;
};
Result<Fencing> FencingHeaders(const Request& req) {
  Fencing out;
  if (auto text = Header(req, "Fencing-Token")) {
    auto parsed = ParseTokenText(*text, "Fencing-Token");
    if (!parsed.ok()) return parsed.status();
    out.token = *parsed;
  }
  if (auto lock = Header(req, "Fencing-Lock")) {
    if (out.token == 0) return InvalidArgumentError("Fencing-Lock needs a Fencing-Token");
    Status valid = ValidateName(*lock, "Fencing-Lock");
    if (!valid.ok()) return valid;
    out.lock = std::move(*lock);
  }
  return out;
}

Response FencedPut(ServerState& state, const Route& route, const Request& req) {
  if (!Header(req, "Fencing-Token")) {
    return StatusReply(InvalidArgumentError("a fenced write needs a Fencing-Token header"));
  }
  auto fencing = FencingHeaders(req);
  if (!fencing.ok()) return StatusReply(fencing.status());
  auto written = state.locker->fenced().Write(route.name, req.body(), fencing->token,
                                              fencing->lock);
  state.metrics.FencedWrite(written.status());
  if (written.status().code() == StatusCode::kStaleToken && state.events.enabled()) {
    state.events.Record({.type = "fence_refused", .name = route.name, .owner = fencing->lock,
                         .token = fencing->token});
  }
  if (!written.ok()) return StatusReply(written.status());
  Response res = JsonReply(
      200, {{"key", route.name}, {"token", written->token}, {"version", written->version}});
  res.set(bhttp::field::etag, QuotedEtag(written->version));
  return res;
}

Response FencedGet(ServerState& state, const Route& route, const Request& req) {
  auto fencing = FencingHeaders(req);
  if (!fencing.ok()) return StatusReply(fencing.status());
  const bool head = req.method() == bhttp::verb::head;
  // A fenced read registers its token like a write. HEAD never changes state: it reads
  // without registering, and answers what the GET would (409 for a token below the fence, or
  // with Fencing-Lock one that is not a live holder).
  auto value = state.locker->fenced().Read(route.name, head ? 0 : fencing->token,
                                           head ? std::string() : fencing->lock);
  if (!head) state.metrics.FencedRead(value.status());
  if (!value.ok()) return StatusReply(value.status());
  if (head && fencing->token != 0) {
    if (fencing->token < value->token) {
      return StatusReply(StaleTokenError("token " + std::to_string(fencing->token) +
                                             " is below the fence of '" + route.name + "'",
                                         value->token));
    }
    if (!fencing->lock.empty()) {
      auto holders = state.locker->Describe(fencing->lock);
      bool live = false;
      if (holders.ok()) {
        for (const Holder& h : holders->holders) live = live || h.token == fencing->token;
      }
      if (!live) {
        return StatusReply(StaleTokenError("token " + std::to_string(fencing->token) +
                                               " is not a live holder of '" + fencing->lock + "'",
                                           value->token));
      }
    }
  }
  Response res = BodyReply(200, value->data, "application/octet-stream");
  res.set("Fencing-Token", std::to_string(value->token));
  res.set(bhttp::field::etag, QuotedEtag(value->version));
  return res;
}

Response ObjectGet(ServerState& state, const Route& route) {
  auto got = state.locker->objects().Get(route.name);
  if (!got.ok()) return StatusReply(got.status());
  // The stored document is embedded as it was written (PUT validated it); a value stored by a
  // library user that is not JSON is returned as a JSON string.
  const std::string value =
      json::accept(got->value)
          ? got->value
          : json(got->value).dump(-1, ' ', false, json::error_handler_t::replace);
  Response res = BodyReply(
      200, "{\"value\":" + value + ",\"version\":" + std::to_string(got->version) + "}",
      "application/json");
  res.set(bhttp::field::etag, QuotedEtag(got->version));
  return res;
}

Response ObjectPut(ServerState& state, const Route& route, const Request& req) {
  const auto match_text = Header(req, "If-Match");
  const auto none_text = Header(req, "If-None-Match");
  const bool has_match = match_text.has_value();
  const bool has_none = none_text.has_value();
  if (!has_match && !has_none) {
    return ErrorReply(428, "precondition_required",
                      "an object PUT needs If-Match: \"VERSION\" (update) or If-None-Match: * "
                      "(create)");
  }
  std::optional<EtagList> match, none;
  if (has_match && !(match = ParseEtags(*match_text))) {
    return StatusReply(InvalidArgumentError("If-Match is not '*' or a list of entity tags"));
  }
  if (has_none && !(none = ParseEtags(*none_text))) {
    return StatusReply(InvalidArgumentError("If-None-Match is not '*' or a list of entity tags"));
  }
  // A fenced CAS (the leader's term as Fencing-Token, its election as Fencing-Lock): the store
  // checks the token before the version, so a stale leader gets 409 even with a fresh ETag.
  auto fencing = FencingHeaders(req);
  if (!fencing.ok()) return StatusReply(fencing.status());
  Status document = CheckJsonDocument(req.body(), "the object");
  if (!document.ok()) {
    return StatusReply(InvalidArgumentError("an object must be a JSON document: " +
                                            document.message()));
  }
  // The version the write is conditioned on. The two common forms map straight onto one CAS;
  // the others (lists, If-Match: *, both headers) read the current version, evaluate the
  // preconditions against it and CAS on it, so a concurrent change still makes the CAS fail.
  std::uint64_t expected = 0;
  std::uint64_t parsed = 0;
  const bool single_match =
      has_match && !has_none && !match->any && match->tags.size() == 1 && !match->tags[0].first &&
      std::from_chars(match->tags[0].second.data(),
                      match->tags[0].second.data() + match->tags[0].second.size(), parsed)
              .ec == std::errc() &&
      parsed > 0 && std::to_string(parsed) == match->tags[0].second;
  if (single_match) {
    expected = parsed;
  } else if (has_none && !has_match && none->any) {
    expected = 0;
  } else {
    auto current = state.locker->objects().Get(route.name);
    if (!current.ok() && current.status().code() != StatusCode::kNotFound) {
      return StatusReply(current.status());
    }
    const std::uint64_t version = current.ok() ? current->version : 0;
    const bool pass = (!has_match || EtagMatches(*match, version, false)) &&
                      (!has_none || !EtagMatches(*none, version, true));
    if (!pass) {
      return StatusReply(VersionMismatchError("the preconditions do not hold for version " +
                                                  std::to_string(version) + " of '" +
                                                  route.name + "'",
                                              version));
    }
    expected = version;
  }
  auto written = fencing->token == 0
                     ? state.locker->objects().CompareAndSwap(route.name, expected, req.body())
                     : state.locker->objects().CompareAndSwap(route.name, expected, req.body(),
                                                              fencing->token, fencing->lock);
  if (!written.ok()) return StatusReply(written.status());
  Response res = JsonReply(200, {{"key", route.name}, {"version", *written}});
  res.set(bhttp::field::etag, QuotedEtag(*written));
  return res;
}

Response Ready(ServerState& state) {
  Status ping = state.locker->Ping();
  if (!ping.ok()) {
    return StatusReply(UnavailableError("the backend does not answer: " + ping.message()));
  }
  return JsonReply(200, {{"status", "ready"}});
}

Response Info(ServerState& state) {
  const LockerTraits traits = state.locker->traits();
  return JsonReply(
      200, {{"version", ORDO_VERSION_STRING},
            {"backend", state.backend_scheme},
            {"expires_by_ttl", traits.expires_by_ttl},
            {"max_wait_ms", state.options.max_wait.count()},
            {"keep_alive_ms",
             std::chrono::duration_cast<milliseconds>(state.options.keep_alive).count()},
            {"max_body", state.options.max_body},
            {"events_ring", state.options.events_ring}});
}

Response RenderMetrics(ServerState& state) {
  return BodyReply(200,
                   state.metrics.Render({.waiting = state.parking->waiting(),
                                         .event_polls = state.events.waiting(),
                                         .election_polls = state.elections->waiting(),
                                         .connections = state.connections.load()}),
                   "text/plain; version=0.0.4");
}

void HandleRoute(ServerState& state, const Route& route, const Request& req,
                 const ReplyFn& reply) {
  const bool put = req.method() == bhttp::verb::put;
  auto done = [&reply](Response res) { reply(std::move(res), {}); };
  switch (route.id) {
    case RouteId::kHealthz: return done(JsonReply(200, {{"status", "ok"}}));
    case RouteId::kReadyz: return done(Ready(state));
    case RouteId::kMetrics: return done(RenderMetrics(state));
    case RouteId::kInfo: return done(Info(state));
    case RouteId::kList: return done(List(state, req));
    case RouteId::kDescribe: return done(Describe(state, route));
    case RouteId::kAcquire: return Acquire(state, route, req, reply, Shape::kLock);
    case RouteId::kRenew: return done(Renew(state, route, req, Shape::kLock));
    case RouteId::kRelease: return done(Release(state, route, req, Shape::kLock));
    case RouteId::kElections: return done(HandleElections(state, req));
    case RouteId::kElection: return HandleElection(state, route, req, reply);
    case RouteId::kCampaign: return Acquire(state, route, req, reply, Shape::kElection);
    case RouteId::kElectionRenew: return done(Renew(state, route, req, Shape::kElection));
    case RouteId::kResign: return done(Release(state, route, req, Shape::kElection));
    case RouteId::kFenced:
      return done(put ? FencedPut(state, route, req) : FencedGet(state, route, req));
    case RouteId::kObject:
      return done(put ? ObjectPut(state, route, req) : ObjectGet(state, route));
    case RouteId::kEvents: return HandleEvents(state, req, reply);
    case RouteId::kRevoke: return done(HandleRevoke(state, route, req));
    case RouteId::kUi: return done(HandleUi());
  }
}

}  // namespace

void Handle(ServerState& state, const Route& route, const Request& req, ReplyFn reply) {
  try {
    HandleRoute(state, route, req, reply);
  } catch (const std::exception& e) {
    // Nothing here should throw (the backends do not; JSON is parsed without exceptions), but
    // an exception escaping onto a worker or an I/O thread would end the process. It is a
    // 500, and the connection goes on. REQUIRES: `reply` was not called yet, which holds
    // because every handler replies last.
    spdlog::error("ordo serve: {} {}: {}", std::string(req.method_string()),
                  std::string(req.target()), e.what());
    reply(StatusReply(InternalError(std::string("unexpected error: ") + e.what())), {});
  }
}

}  // namespace ordo::http
