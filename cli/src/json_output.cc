#include "json_output.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace ordo::cli {

std::string Rfc3339Millis(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<long long>(secs) * 1000);  // 0..999
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::string LeaseJson(const Lease& lease) {
  return nlohmann::json{{"name", lease.name},
                        {"owner", lease.owner},
                        {"token", lease.token},
                        {"mode", LockModeName(lease.mode)},
                        {"expires_at", Rfc3339Millis(lease.expires_at)},
                        {"ttl_ms", lease.ttl.count()},
                        {"slot", lease.slot}}
      .dump();
}

std::string ReleasedJson(const Lease& lease) {
  return nlohmann::json{{"name", lease.name}, {"token", lease.token}, {"released", true}}.dump();
}

std::string StateJson(const LockState& state) {
  nlohmann::json holders = nlohmann::json::array();
  for (const Holder& h : state.holders) {
    holders.push_back({{"owner", h.owner},
                       {"token", h.token},
                       {"mode", LockModeName(h.mode)},
                       {"expires_at", Rfc3339Millis(h.expires_at)},
                       {"slot", h.slot}});
  }
  return nlohmann::json{
      {"name", state.name}, {"last_token", state.last_token}, {"holders", holders},
      {"limit", state.limit}}
      .dump();
}

std::string ErrorJson(const Status& status) {
  return nlohmann::json{{"error", StatusCodeName(status.code())}, {"message", status.message()}}
      .dump();
}

}  // namespace ordo::cli
