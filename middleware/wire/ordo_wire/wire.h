// ordo_wire/wire.h — the JSON wire format of the HTTP API, shared by the server (http/) and the
// http:// client backend (adapters/http_client/), so that both sides agree by construction.
// It lives beside the middleware (target ordo_wire) so that neither side includes the other's
// headers.
//
// Header-only and internal: it includes nlohmann/json, so it never goes into a public header.
// Everything here is a pure function of its arguments: thread-safe, never blocks.
#ifndef ORDO_WIRE_WIRE_H_
#define ORDO_WIRE_WIRE_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo::http::wire {

// Tokens travel as JSON numbers; every JSON implementation represents integers below 2^53
// exactly, so larger tokens are refused rather than silently rounded by some client.
inline constexpr std::uint64_t kMaxJsonToken = std::uint64_t{1} << 53;

// HTTP status for each code. 410 for a lost lease: the holder's claim is gone for good.
inline int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kLockHeld: return 409;
    case StatusCode::kLeaseLost: return 410;
    case StatusCode::kStaleToken: return 409;
    case StatusCode::kVersionMismatch: return 412;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

// The Status code an error body's "error" names. Codes that exist only on the wire map to what
// the caller should do: authentication and request-shape errors are not retryable as they are
// (kInvalidArgument), a missing route is kNotFound.
inline StatusCode CodeOfWireError(std::string_view error, int http_status) {
  static constexpr struct {
    std::string_view name;
    StatusCode code;
  } kTable[] = {
      {"lock_held", StatusCode::kLockHeld},
      {"lease_lost", StatusCode::kLeaseLost},
      {"stale_token", StatusCode::kStaleToken},
      {"version_mismatch", StatusCode::kVersionMismatch},
      {"invalid_argument", StatusCode::kInvalidArgument},
      {"precondition_required", StatusCode::kInvalidArgument},
      {"payload_too_large", StatusCode::kInvalidArgument},
      {"method_not_allowed", StatusCode::kInvalidArgument},
      {"unauthorized", StatusCode::kInvalidArgument},
      {"forbidden", StatusCode::kInvalidArgument},
      {"not_found", StatusCode::kNotFound},
      {"unavailable", StatusCode::kUnavailable},
      {"internal", StatusCode::kInternal},
  };
  for (const auto& entry : kTable) {
    if (entry.name == error) return entry.code;
  }
  if (http_status == 503 || http_status == 502 || http_status == 504) {
    return StatusCode::kUnavailable;
  }
  if (http_status >= 400 && http_status < 500) return StatusCode::kInvalidArgument;
  return StatusCode::kInternal;
}

// RFC 3339, UTC, milliseconds: "2024-05-01T12:00:00.250Z".
inline std::string FormatTime(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  auto secs = static_cast<std::time_t>(ms.count() / 1000);
  auto frac = ms.count() % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  const int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(frac));
    return buf;
  }
  // By hand for the years every lease has: snprintf was a tenth of a lease reply's cost.
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t at, int value, int digits) {
    for (int i = digits - 1; i >= 0; --i, value /= 10) {
      out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    }
  };
  put(0, year, 4);
  put(5, tm.tm_mon + 1, 2);
  put(8, tm.tm_mday, 2);
  put(11, tm.tm_hour, 2);
  put(14, tm.tm_min, 2);
  put(17, tm.tm_sec, 2);
  put(20, static_cast<int>(frac), 3);
  return out;
}

// Parses what FormatTime writes (fraction optional, 'Z' required).
inline std::optional<std::chrono::system_clock::time_point> ParseTime(std::string_view text) {
  std::tm tm{};
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0, consumed = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec,
                  &consumed) != 6) {
    return std::nullopt;
  }
  std::string_view rest = text.substr(static_cast<std::size_t>(consumed));
  long millis = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) millis = millis * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) millis *= 10;
  }
  if (rest != "Z") return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const std::time_t secs = timegm(&tm);
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs)) +
         std::chrono::milliseconds(millis);
}

inline std::optional<LockMode> ParseMode(std::string_view text) {
  if (text == "exclusive") return LockMode::kExclusive;
  if (text == "shared") return LockMode::kShared;
  return std::nullopt;
}

inline nlohmann::json LeaseToJson(const Lease& lease) {
  return {{"name", lease.name},
          {"owner", lease.owner},
          {"token", lease.token},
          {"mode", std::string(LockModeName(lease.mode))},
          {"expires_at", FormatTime(lease.expires_at)},
          {"ttl_ms", lease.ttl.count()},
          {"slot", lease.slot}};
}

namespace detail {
// Whether `s` is printable ASCII: then a JSON string of it needs only '"' and '\\' escaped.
inline bool PlainAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}
inline void AppendPlainString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace detail

// LeaseToJson(lease).dump(), byte for byte, without building the JSON value (the reply to
// every acquire and renew): keys in the library's (sorted) order. Names and owners that are
// not printable ASCII go through the library, which escapes them as it always has.
inline std::string LeaseJsonText(const Lease& lease) {
  if (!detail::PlainAscii(lease.name) || !detail::PlainAscii(lease.owner)) {
    return LeaseToJson(lease).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out;
  out.reserve(160 + lease.name.size() + lease.owner.size());
  out += "{\"expires_at\":\"";
  out += FormatTime(lease.expires_at);
  out += "\",\"mode\":\"";
  out += LockModeName(lease.mode);
  out += "\",\"name\":";
  detail::AppendPlainString(out, lease.name);
  out += ",\"owner\":";
  detail::AppendPlainString(out, lease.owner);
  out += ",\"slot\":";
  out += std::to_string(lease.slot);
  out += ",\"token\":";
  out += std::to_string(lease.token);
  out += ",\"ttl_ms\":";
  out += std::to_string(lease.ttl.count());
  out += '}';
  return out;
}

inline nlohmann::json HolderToJson(const Holder& h) {
  return {{"owner", h.owner},
          {"token", h.token},
          {"mode", std::string(LockModeName(h.mode))},
          {"expires_at", FormatTime(h.expires_at)},
          {"slot", h.slot}};
}

inline nlohmann::json StateToJson(const LockState& state) {
  nlohmann::json holders = nlohmann::json::array();
  for (const auto& h : state.holders) holders.push_back(HolderToJson(h));
  return {{"name", state.name},
          {"holders", std::move(holders)},
          {"last_token", state.last_token},
          {"limit", state.limit}};
}

// The parsers below never throw: a field that is missing or of the wrong type fails the parse,
// which the client reports as kInternal (the server answered something it should not have).
namespace detail {
template <typename T>
bool Get(const nlohmann::json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
    *out = it->template get<std::string>();
  } else {
    if (!it->is_number_unsigned() && !it->is_number_integer()) return false;
    *out = it->template get<T>();
  }
  return true;
}
}  // namespace detail

inline std::optional<Holder> HolderFromJson(const nlohmann::json& j) {
  Holder h;
  std::string mode, expires;
  if (!j.is_object() || !detail::Get(j, "owner", &h.owner) ||
      !detail::Get(j, "token", &h.token) || !detail::Get(j, "mode", &mode) ||
      !detail::Get(j, "expires_at", &expires)) {
    return std::nullopt;
  }
  auto m = ParseMode(mode);
  auto t = ParseTime(expires);
  if (!m || !t) return std::nullopt;
  h.mode = *m;
  h.expires_at = *t;
  detail::Get(j, "slot", &h.slot);  // optional: servers before v2 do not send it
  return h;
}

inline std::optional<Lease> LeaseFromJson(const nlohmann::json& j) {
  Lease lease;
  std::int64_t ttl_ms = 0;
  if (!j.is_object() || !detail::Get(j, "name", &lease.name)) return std::nullopt;
  auto h = HolderFromJson(j);
  if (!h || !detail::Get(j, "ttl_ms", &ttl_ms)) return std::nullopt;
  lease.owner = h->owner;
  lease.token = h->token;
  lease.mode = h->mode;
  lease.expires_at = h->expires_at;
  lease.slot = h->slot;
  lease.ttl = std::chrono::milliseconds(ttl_ms);
  return lease;
}

inline std::optional<LockState> StateFromJson(const nlohmann::json& j) {
  LockState state;
  if (!j.is_object() || !detail::Get(j, "name", &state.name) ||
      !detail::Get(j, "last_token", &state.last_token)) {
    return std::nullopt;
  }
  detail::Get(j, "limit", &state.limit);  // optional: servers before v2 do not send it
  auto holders = j.find("holders");
  if (holders == j.end() || !holders->is_array()) return std::nullopt;
  for (const auto& item : *holders) {
    auto h = HolderFromJson(item);
    if (!h) return std::nullopt;
    state.holders.push_back(std::move(*h));
  }
  return state;
}

}  // namespace ordo::http::wire

#endif  // ORDO_WIRE_WIRE_H_
