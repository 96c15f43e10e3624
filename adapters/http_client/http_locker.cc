// http://host:port — a running `ordo serve` used as a backend, over its REST API.
//
//   http://127.0.0.1:7575                 no authentication
//   http://ordo:TOKEN@host:7575           sends "Authorization: Bearer TOKEN" (the user is
//                                         ignored; logs show the URL with the token masked)
//
// The Locker, its FencedStore and its VersionedStore are one object that turns each call into
// one request (an acquire whose wait exceeds the server's --max-wait becomes several). Requests
// go over keep-alive connections (http_connection.h) from a small pool: each call borrows a
// connection for its duration and returns it afterwards. A connection that failed, was closed
// by the server, or sat idle longer than half the server's keep-alive time (after which the
// server may close it), is dropped rather than reused, so that a request is never sent on a
// connection the server already closed — acquires are not safe to resend.
//
// The fixed small request bodies are written directly rather than through a JSON library.
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

#include <charconv>

#include <nlohmann/json.hpp>

#include "http_connection.h"

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

using http_client::HttpConnection;
using Reply = http_client::HttpReply;

// Appends `s` percent-encoded: everything but unreserved characters, and ':' where
// `keep_colon` (in a path segment, where it may stand as it is).
void AppendEncoded(std::string& out, std::string_view s, bool keep_colon) {
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~' || (keep_colon && c == ':')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

// A query value.
std::string QueryEncode(std::string_view s) {
  std::string out;
  AppendEncoded(out, s, false);
  return out;
}

// A name or key as a path segment (valid names need no escape; an invalid one reaches the
// server whole, to be refused with its reason, instead of breaking the request line).
void AppendTarget(std::string& out, std::string_view s) { AppendEncoded(out, s, true); }

// Appends `s` as a JSON string literal.
void AppendJsonString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

template <typename Int>
void AppendInt(std::string& out, Int v) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, end);
}

// Appends the header line "name: value\r\n".
void AppendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

class HttpLocker final : public EngineLocker, public FencedStore, public VersionedStore {
 public:
  HttpLocker(BackendUrl url, int port) : url_(std::move(url)), port_(port) {
    if (!url_.password.empty()) AppendHeader(auth_header_, "Authorization", "Bearer " + url_.password);
  }

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
      std::string body = "{\"ttl_ms\":";
      AppendInt(body, request.ttl.count());
      body += ",\"wait_ms\":";
      AppendInt(body, wait.count());
      body += ",\"mode\":\"";
      body += LockModeName(request.mode);
      body += "\",\"owner\":";
      AppendJsonString(body, owner);
      if (request.limit > 1) {  // a plain lock's body is unchanged
        body += ",\"limit\":";
        AppendInt(body, request.limit);
      }
      body += '}';
      auto reply = Call("POST", LockPath(request.name, "/acquire"), {}, body, wait);
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
    std::string body = "{\"token\":";
    AppendInt(body, lease.token);
    body += ",\"ttl_ms\":";
    AppendInt(body, ttl.count());
    body += '}';
    auto reply = Call("POST", LockPath(lease.name, "/renew"), {}, body, {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    return LeaseOf(*reply);
  }

  Status DoRelease(const Lease& lease) override {
    std::string body = "{\"token\":";
    AppendInt(body, lease.token);
    body += '}';
    auto reply = Call("POST", LockPath(lease.name, "/release"), {}, body, {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    return OkStatus();
  }

  Result<LockState> DoDescribe(std::string_view name) override {
    auto reply = Call("GET", LockPath(name, ""), {}, "", {});
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
    std::string headers;
    AppendHeader(headers, "Fencing-Token", std::to_string(token));
    if (!lock_name.empty()) AppendHeader(headers, "Fencing-Lock", lock_name);
    auto reply = Call("PUT", KeyPath("/v1/fenced/", key), headers, data, {},
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
    std::string headers;
    if (token != 0) AppendHeader(headers, "Fencing-Token", std::to_string(token));
    if (!lock_name.empty()) AppendHeader(headers, "Fencing-Lock", lock_name);
    auto reply = Call("GET", KeyPath("/v1/fenced/", key), headers, "", {});
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ErrorOf(*reply);
    FencedValue out;
    out.data = std::move(reply->body);
    const auto fence = ParseUint(reply->fencing_token);
    const auto version = ParseEtag(reply->etag);
    if (!fence || !version) return Malformed(*reply);
    out.token = *fence;
    out.version = *version;
    return out;
  }

  // --- VersionedStore ------------------------------------------------------------------------

  Result<Versioned> Get(std::string_view key) override {
    ORDO_RETURN_IF_ERROR(ValidateName(key, "key"));
    auto reply = Call("GET", KeyPath("/v1/objects/", key), {}, "", {});
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
    std::string headers;
    AppendHeader(headers, "Fencing-Token", std::to_string(token));
    if (!lock_name.empty()) AppendHeader(headers, "Fencing-Lock", lock_name);
    return Swap(key, expected_version, value, std::move(headers));
  }

 private:
  // PUT /v1/objects/{key} conditioned on the version, with `headers` (fencing) added.
  Result<std::uint64_t> Swap(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::string headers) {
    if (expected_version == 0) {
      AppendHeader(headers, "If-None-Match", "*");
    } else {
      AppendHeader(headers, "If-Match", "\"" + std::to_string(expected_version) + "\"");
    }
    auto reply = Call("PUT", KeyPath("/v1/objects/", key), headers, value, {},
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

  // "/v1/locks/{name}{suffix}".
  static std::string LockPath(std::string_view name, std::string_view suffix) {
    std::string path = "/v1/locks/";
    AppendTarget(path, name);
    path += suffix;
    return path;
  }
  static std::string KeyPath(std::string_view prefix, std::string_view key) {
    std::string path(prefix);
    AppendTarget(path, key);
    return path;
  }

  struct Idle {
    std::unique_ptr<HttpConnection> conn;
    SteadyClock::time_point since;
  };

  // A pooled connection that is still fresh and open, else a new one (nullptr with *error
  // when it cannot connect).
  std::unique_ptr<HttpConnection> Borrow(std::string* error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = SteadyClock::now();
      while (!idle_.empty()) {
        Idle c = std::move(idle_.back());
        idle_.pop_back();
        if (now - c.since < max_idle_ && c.conn->Alive()) return std::move(c.conn);
      }
    }
    return HttpConnection::Connect(url_.host, port_,
                                   std::chrono::duration_cast<milliseconds>(kConnectTimeout),
                                   error);
  }

  void Return(std::unique_ptr<HttpConnection> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back({std::move(conn), SteadyClock::now()});
  }

  // One request. `headers` are pre-formatted lines (AppendHeader). kUnavailable when no reply
  // arrived (connect, write or read failed).
  Result<Reply> Call(const char* method, const std::string& path, std::string_view headers,
                     std::string_view body, milliseconds wait,
                     const char* content_type = "application/json") {
    std::string error;
    auto conn = Borrow(&error);
    if (!conn) {
      return UnavailableError("cannot connect to " + url_.Masked() + " (" + method + " " + path +
                              "): " + error);
    }
    std::string lines;
    if (!auth_header_.empty()) {
      lines.reserve(auth_header_.size() + headers.size());
      lines.append(auth_header_).append(headers);
      headers = lines;
    }
    const auto now = SteadyClock::now();
    Reply reply;
    if (!conn->RoundTrip(method, path, headers, body, content_type, now + kReplyTimeout,
                         now + wait + kReplyTimeout, &reply, &error)) {
      return UnavailableError("no reply from " + url_.Masked() + " (" + method + " " + path +
                              "): " + error);
    }
    // The server says when it closes the connection; do not reuse it then.
    if (!reply.close) Return(std::move(conn));
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
  std::string auth_header_;  // "Authorization: Bearer …\r\n", or "" without a token
  LockerTraits traits_;
  milliseconds max_wait_{60'000};
  milliseconds max_idle_{2'000};
  std::mutex mu_;
  std::vector<Idle> idle_;  // guarded by mu_
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
