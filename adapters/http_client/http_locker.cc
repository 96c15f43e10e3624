// http://host:port — a running `ordo serve` used as a backend, over its REST API.
//
//   http://127.0.0.1:7575                 no authentication
//   http://ordo:TOKEN@host:7575           sends "Authorization: Bearer TOKEN" (the user is
//                                         ignored; logs show the URL with the token masked)
//
// The Locker, its FencedStore and its VersionedStore are one object that turns each call into
// one request (an acquire whose wait exceeds the server's --max-wait becomes several). Requests
// go over keep-alive connections from a small pool: httplib::Client is not safe for concurrent
// requests, so each call borrows a client for its duration and returns it afterwards. A
// connection that failed, or sat idle longer than half the server's keep-alive time (after
// which the server may close it), is dropped rather than reused, so that a request is never
// sent on a connection the server already closed — acquires are not safe to resend.
//
// Errors: the server's {"error","message"} bodies map back to the same Status codes (the wire
// format is ordo_wire/wire.h); a refused or broken connection is kUnavailable.
// traits() come from the server's GET /v1/info at Open. Thread-safe.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include "sigpipe_guard.h"

#include "ordo/engine.h"
#include "ordo/lock.h"
#include "ordo/names.h"
#include "ordo/registry.h"
#include "ordo/store.h"
#include "ordo_wire/wire.h"

namespace ordo {
namespace {

namespace wire = ::ordo::http::wire;
using json = nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kConnectTimeout = std::chrono::seconds(5);
// How long past the request's own wait a reply may take before the call is kUnavailable.
constexpr auto kReplyTimeout = std::chrono::seconds(30);
constexpr std::size_t kMaxIdleConnections = 8;
constexpr std::size_t kMaxListLimit = 1000;  // the server's cap on one list

using adapters::SigpipeGuard;

// Percent-encodes everything but unreserved characters (for query values).
std::string QueryEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct Reply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string header(const char* key) const {
    auto it = headers.find(key);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpLocker final : public EngineLocker, public FencedStore, public VersionedStore {
 public:
  HttpLocker(BackendUrl url, int port) : url_(std::move(url)), port_(port) {}

  // Asks the server what it fronts. kUnavailable when it cannot be reached.
  Status Handshake() {
    auto reply = Call("GET", "/v1/info", {}, "", milliseconds(0));
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    json info = json::parse(reply->body, nullptr, false);
    if (!info.is_object() || !info.contains("expires_by_ttl") ||
        !info["expires_by_ttl"].is_boolean()) {
      return InvalidArgumentError(url_.Masked() + " does not look like an ordo server");
    }
    traits_.expires_by_ttl = info["expires_by_ttl"].get<bool>();
    // The server is one lock table for every process that talks to it.
    traits_.shared_across_processes = true;
    if (info.contains("max_wait_ms") && info["max_wait_ms"].is_number_unsigned()) {
      max_wait_ = milliseconds(info["max_wait_ms"].get<std::int64_t>());
    }
    if (info.contains("keep_alive_ms") && info["keep_alive_ms"].is_number_unsigned()) {
      max_idle_ = milliseconds(info["keep_alive_ms"].get<std::int64_t>() / 2);
    }
    return OkStatus();
  }

  // --- Locker --------------------------------------------------------------------------------

  // --- the engine's parts: the server's own queue is the wake-up source ----------------------

  // The server parks the request until the lock is free or the wait elapses, so this try waits
  // itself; a wait longer than the server allows in one request becomes several requests. The
  // server's kLockHeld (which names the holders) is returned as it is.
  Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                             SteadyClock::time_point deadline) override {
    while (true) {
      const auto remaining = std::max(
          std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()), milliseconds(0));
      const milliseconds wait = std::min(remaining, max_wait_);
      json body = {{"ttl_ms", request.ttl.count()},
                   {"wait_ms", wait.count()},
                   {"mode", std::string(LockModeName(request.mode))}};
      body["owner"] = owner;
      if (request.limit > 1) body["limit"] = request.limit;  // a plain lock's body is unchanged
      auto reply = Call("POST", "/v1/locks/" + request.name + "/acquire", {}, body.dump(), wait);
      if (!reply.ok()) return reply.status();
      if (reply->status == 200) {
        auto lease = LeaseOf(*reply);
        if (!lease.ok()) return lease.status();
        if (request.limit > 1 && !HasSlot(*reply)) {
          // A server before v2 ignored "limit" and granted a plain lock: give it back rather
          // than pass it off as a permit.
          DoRelease(*lease).IgnoreError();
          return PermitsUnsupportedError(request.limit,
                                         url_.Masked() + " granted a plain lock: no \"slot\"");
        }
        Attempt granted;
        granted.lease = std::move(*lease);
        return granted;
      }
      Status error = ErrorOf(*reply);
      if (request.limit > 1 && error.code() == StatusCode::kInvalidArgument &&
          error.message().find("unknown field 'limit'") != std::string::npos) {
        return PermitsUnsupportedError(request.limit,
                                       url_.Masked() + " does not know \"limit\"");
      }
      if (error.code() != StatusCode::kLockHeld || wait == remaining) return error;
    }
  }

  std::unique_ptr<Wakeups> WaitFor(std::string_view /*name*/) override { return nullptr; }
  // A client has no notification source of its own: callers re-check (the server's parked
  // acquire is the way to wait).
  std::unique_ptr<Subscription> Subscribe(std::string_view /*name*/,
                                          std::function<void()> /*changed*/) override {
    return nullptr;
  }

  Result<Lease> DoRenew(const Lease& lease, milliseconds ttl) override {
    json body = {{"token", lease.token}, {"ttl_ms", ttl.count()}};
    auto reply = Call("POST", "/v1/locks/" + lease.name + "/renew", {}, body.dump(), {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    return LeaseOf(*reply);
  }

  Status DoRelease(const Lease& lease) override {
    json body = {{"token", lease.token}};
    auto reply = Call("POST", "/v1/locks/" + lease.name + "/release", {}, body.dump(), {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    return OkStatus();
  }

  Result<LockState> DoDescribe(std::string_view name) override {
    auto reply = Call("GET", "/v1/locks/" + std::string(name), {}, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    auto state = wire::StateFromJson(json::parse(reply->body, nullptr, false));
    if (!state) return Malformed(*reply);
    return std::move(*state);
  }

  // At most 1,000 locks (the server's cap on one list).
  Result<std::vector<LockState>> List(std::string_view prefix, std::size_t limit) override {
    std::vector<LockState> out;
    limit = std::min(limit, kMaxListLimit);
    if (limit == 0) return out;
    auto reply = Call("GET",
                      "/v1/locks?prefix=" + QueryEncode(prefix) +
                          "&limit=" + std::to_string(limit),
                      {}, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    json body = json::parse(reply->body, nullptr, false);
    if (!body.is_object() || !body.contains("locks") || !body["locks"].is_array()) {
      return Malformed(*reply);
    }
    for (const auto& item : body["locks"]) {
      auto state = wire::StateFromJson(item);
      if (!state) return Malformed(*reply);
      out.push_back(std::move(*state));
    }
    return out;
  }

  Status Ping() override {
    auto reply = Call("GET", "/readyz", {}, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    return OkStatus();
  }

  LockerTraits traits() const override { return traits_; }
  FencedStore& fenced() override { return *this; }
  VersionedStore& objects() override { return *this; }

  // --- FencedStore ---------------------------------------------------------------------------

  Result<FencedWrite> Write(std::string_view key, std::string_view data, std::uint64_t token,
                            std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
    if (!lock_name.empty()) ORDO_RETURN_IF_ERROR(ValidateName(lock_name));
    httplib::Headers headers = {{"Fencing-Token", std::to_string(token)}};
    if (!lock_name.empty()) headers.emplace("Fencing-Lock", std::string(lock_name));
    auto reply = Call("PUT", "/v1/fenced/" + std::string(key), headers, std::string(data), {},
                      "application/octet-stream");
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    json body = json::parse(reply->body, nullptr, false);
    FencedWrite out;
    if (!body.is_object() || !wire::detail::Get(body, "token", &out.token) ||
        !wire::detail::Get(body, "version", &out.version)) {
      return Malformed(*reply);
    }
    return out;
  }

  Result<FencedValue> Read(std::string_view key, std::uint64_t token,
                           std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
    if (!lock_name.empty()) ORDO_RETURN_IF_ERROR(ValidateName(lock_name));
    httplib::Headers headers;
    if (token != 0) headers.emplace("Fencing-Token", std::to_string(token));
    if (!lock_name.empty()) headers.emplace("Fencing-Lock", std::string(lock_name));
    auto reply = Call("GET", "/v1/fenced/" + std::string(key), headers, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    FencedValue out;
    out.data = std::move(reply->body);
    const auto fence = ParseUint(reply->header("Fencing-Token"));
    const auto version = ParseEtag(reply->header("ETag"));
    if (!fence || !version) return Malformed(*reply);
    out.token = *fence;
    out.version = *version;
    return out;
  }

  // --- VersionedStore ------------------------------------------------------------------------

  Result<Versioned> Get(std::string_view key) override {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
    auto reply = Call("GET", "/v1/objects/" + std::string(key), {}, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    // ordered_json keeps the document's member order when it is written back out.
    auto body = nlohmann::ordered_json::parse(reply->body, nullptr, false);
    Versioned out;
    if (!body.is_object() || !body.contains("value") || !body.contains("version") ||
        !body["version"].is_number_unsigned()) {
      return Malformed(*reply);
    }
    out.value = body["value"].dump();
    out.version = body["version"].get<std::uint64_t>();
    return out;
  }

  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value) override {
    ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, false, 0, {}));
    return Swap(key, expected_version, value, {});
  }

  Result<std::uint64_t> CompareAndSwap(std::string_view key, std::uint64_t expected_version,
                                       std::string_view value, std::uint64_t token,
                                       std::string_view lock_name) override {
    ORDO_RETURN_IF_ERROR(ValidateCasArgs(key, expected_version, true, token, lock_name));
    httplib::Headers headers = {{"Fencing-Token", std::to_string(token)}};
    if (!lock_name.empty()) headers.emplace("Fencing-Lock", std::string(lock_name));
    return Swap(key, expected_version, value, std::move(headers));
  }

 private:
  // PUT /v1/objects/{key} conditioned on the version, with `headers` (fencing) added.
  Result<std::uint64_t> Swap(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, httplib::Headers headers) {
    if (expected_version == 0) {
      headers.emplace("If-None-Match", "*");
    } else {
      headers.emplace("If-Match", "\"" + std::to_string(expected_version) + "\"");
    }
    auto reply = Call("PUT", "/v1/objects/" + std::string(key), headers, std::string(value), {},
                      "application/json");
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    json body = json::parse(reply->body, nullptr, false);
    std::uint64_t version = 0;
    if (!body.is_object() || !wire::detail::Get(body, "version", &version)) {
      return Malformed(*reply);
    }
    return version;
  }

  struct Connection {
    std::unique_ptr<httplib::Client> client;
    SteadyClock::time_point idle_since;
  };

  std::unique_ptr<httplib::Client> Borrow() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = SteadyClock::now();
      while (!idle_.empty()) {
        Connection c = std::move(idle_.back());
        idle_.pop_back();
        if (now - c.idle_since < max_idle_) return std::move(c.client);
      }
    }
    auto client = std::make_unique<httplib::Client>(url_.host, port_);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // requests are written in pieces; Nagle would add 40 ms
    client->set_connection_timeout(kConnectTimeout);
    client->set_write_timeout(kReplyTimeout);
    if (!url_.password.empty()) client->set_bearer_token_auth(url_.password);
    return client;
  }

  void Return(std::unique_ptr<httplib::Client> client) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) {
      idle_.push_back({std::move(client), SteadyClock::now()});
    }
  }

  // One request. kUnavailable when no reply arrived (connect, write or read failed).
  Result<Reply> Call(const char* method, const std::string& path, const httplib::Headers& headers,
                     const std::string& body, milliseconds wait,
                     const char* content_type = "application/json") {
    SigpipeGuard no_sigpipe;
    auto client = Borrow();
    client->set_read_timeout(wait + kReplyTimeout);
    const std::string m = method;
    httplib::Result result =
        m == "GET"    ? client->Get(path.c_str(), headers)
        : m == "PUT"  ? client->Put(path.c_str(), headers, body, content_type)
                      : client->Post(path.c_str(), headers, body, content_type);
    if (!result) {
      const auto error = result.error();
      return UnavailableError(
          std::string(error == httplib::Error::Connection ? "cannot connect to "
                                                          : "no reply from ") +
          url_.Masked() + " (" + method + " " + path + "): " + httplib::to_string(error));
    }
    Reply reply{result->status, std::move(result->body), std::move(result->headers)};
    // The server says when it closes the connection; do not reuse it then.
    auto conn = reply.headers.find("Connection");
    if (conn == reply.headers.end() || conn->second != "close") Return(std::move(client));
    return reply;
  }

  Status ErrorOf(const Reply& reply) const {
    json body = json::parse(reply.body, nullptr, false);
    std::string error;
    std::string message = "HTTP " + std::to_string(reply.status) + " from " + url_.Masked();
    if (body.is_object()) {
      if (body.contains("error") && body["error"].is_string()) error = body["error"];
      if (body.contains("message") && body["message"].is_string()) message = body["message"];
    }
    const StatusCode code = wire::CodeOfWireError(error, reply.status);
    // Codes that exist only on the wire (unauthorized, forbidden, …) keep their name.
    if (!error.empty() && StatusCodeName(code) != error) message = error + ": " + message;
    Status status(code, message);
    const char* current = code == StatusCode::kStaleToken        ? "current_token"
                          : code == StatusCode::kVersionMismatch ? "current_version"
                                                                 : nullptr;
    if (current != nullptr && body.is_object() && body.contains(current) &&
        body[current].is_number_unsigned()) {
      status.set_current(body[current].get<std::uint64_t>());
    }
    return status;
  }

  Status Malformed(const Reply& reply) const {
    return InternalError("malformed reply from " + url_.Masked() + " (HTTP " +
                         std::to_string(reply.status) + "): " + reply.body.substr(0, 200));
  }

  static bool HasSlot(const Reply& reply) {
    const json body = json::parse(reply.body, nullptr, false);
    return body.is_object() && body.contains("slot") && body["slot"].is_number_unsigned();
  }

  Result<Lease> LeaseOf(const Reply& reply) const {
    const json body = json::parse(reply.body, nullptr, false);
    auto lease = wire::LeaseFromJson(body);
    if (!lease) return Malformed(reply);
    // A permit's slot (v2); a server before v2 sends none, which is slot 0 of a plain lock.
    if (body.is_object() && body.contains("slot") && body["slot"].is_number_unsigned()) {
      lease->slot = body["slot"].get<std::uint32_t>();
    }
    return std::move(*lease);
  }

  static std::optional<std::uint64_t> ParseUint(std::string_view text) {
    if (text.empty() || text.size() > 20 ||
        text.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    return std::stoull(std::string(text));
  }

  static std::optional<std::uint64_t> ParseEtag(std::string_view text) {
    if (text.size() < 3 || text.front() != '"' || text.back() != '"') return std::nullopt;
    return ParseUint(text.substr(1, text.size() - 2));
  }

  const BackendUrl url_;
  const int port_;
  LockerTraits traits_;
  milliseconds max_wait_{60'000};
  milliseconds max_idle_{2'000};
  std::mutex mu_;
  std::vector<Connection> idle_;  // guarded by mu_
};

Result<std::unique_ptr<Locker>> OpenHttp(const BackendUrl& url) {
  if (!url.has_authority || url.host.empty()) {
    return InvalidArgumentError("http backend URL '" + url.Masked() +
                                "' needs a host: http://HOST[:PORT]");
  }
  if (url.hosts.size() > 1) {
    return InvalidArgumentError("http backend URL '" + url.Masked() +
                                "' names several hosts; write http://HOST[:PORT] and put a load "
                                "balancer in front of several servers");
  }
  if (!url.path.empty() && url.path != "/") {
    return InvalidArgumentError("http backend URL '" + url.Masked() +
                                "' has a path; write http://HOST[:PORT]");
  }
  ORDO_RETURN_IF_ERROR(url.CheckQuery({}));
  const int port = url.port.empty() ? 7575 : std::stoi(url.port);
  auto locker = std::make_unique<HttpLocker>(url, port);
  ORDO_RETURN_IF_ERROR(locker->Handshake());
  return std::unique_ptr<Locker>(std::move(locker));
}

const bool kRegistered = RegisterBackend("http", &OpenHttp);

}  // namespace
}  // namespace ordo
