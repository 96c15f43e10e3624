#include "metrics.h"

#include <cstdio>

namespace ordo::http {
namespace {

constexpr StatusCode kCodes[] = {
    StatusCode::kOk,           StatusCode::kLockHeld,        StatusCode::kLeaseLost,
    StatusCode::kStaleToken,   StatusCode::kVersionMismatch, StatusCode::kInvalidArgument,
    StatusCode::kUnavailable,  StatusCode::kNotFound,        StatusCode::kInternal};

std::size_t Index(StatusCode code) { return static_cast<std::size_t>(code); }

void Header(const std::string& name, const char* type, const std::string& help,
            std::string* out) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Line(const std::string& name, const std::string& labels, double value, std::string* out) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  *out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
}

void RenderByCode(const std::string& name, const std::string& help, const Metrics::ByCode& c,
                  std::string* out) {
  Header(name, "counter", help, out);
  for (StatusCode code : kCodes) {
    Line(name, "result=\"" + std::string(StatusCodeName(code)) + "\"",
         static_cast<double>(c[Index(code)].load(std::memory_order_relaxed)), out);
  }
}

void Count(Metrics::ByCode& c, StatusCode code) {
  c[Index(code)].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void Histogram::Observe(std::chrono::nanoseconds d) {
  const double secs = std::chrono::duration<double>(d).count();
  std::size_t i = 0;
  while (i < kBounds.size() && secs > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()),
                    std::memory_order_relaxed);
}

void Histogram::Render(const std::string& name, const std::string& help,
                       std::string* out) const {
  Header(name, "histogram", help, out);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    char le[32];
    if (i < kBounds.size()) {
      std::snprintf(le, sizeof(le), "%g", kBounds[i]);
    } else {
      std::snprintf(le, sizeof(le), "+Inf");
    }
    Line(name + "_bucket", "le=\"" + std::string(le) + "\"", static_cast<double>(cumulative),
         out);
  }
  Line(name + "_sum", "", static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9, out);
  Line(name + "_count", "", static_cast<double>(count_.load(std::memory_order_relaxed)), out);
}

void Metrics::Acquired(const Result<Lease>& result, std::chrono::nanoseconds waited) {
  Count(acquires_, result.status().code());
  wait_.Observe(waited);
  if (!result.ok()) return;
  std::uint64_t seen = highest_token_.load(std::memory_order_relaxed);
  while (result->token > seen &&
         !highest_token_.compare_exchange_weak(seen, result->token, std::memory_order_relaxed)) {
  }
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  PurgeExpired(now);
  held_[{result->name, result->token}] = Held{now, now + result->ttl};
}

void Metrics::Renewed(const Result<Lease>& result) {
  Count(renewals_, result.status().code());
  if (!result.ok()) {
    if (result.status().code() == StatusCode::kLeaseLost) {
      leases_lost_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find({result->name, result->token});
  if (it != held_.end()) it->second.expires = std::chrono::steady_clock::now() + result->ttl;
}

void Metrics::Released(const Lease& lease, const Status& status) {
  Count(releases_, status.code());
  if (status.code() == StatusCode::kLeaseLost) {
    leases_lost_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!status.ok() && status.code() != StatusCode::kLeaseLost) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find({lease.name, lease.token});
  if (it == held_.end()) return;
  if (status.ok()) hold_.Observe(std::chrono::steady_clock::now() - it->second.since);
  held_.erase(it);
}

void Metrics::FencedWrite(const Status& status) { Count(fenced_writes_, status.code()); }
void Metrics::FencedRead(const Status& status) { Count(fenced_reads_, status.code()); }

void Metrics::Request(int http_status) {
  const int klass = http_status / 100;
  http_responses_[klass >= 1 && klass <= 5 ? klass - 1 : 5].fetch_add(1,
                                                                      std::memory_order_relaxed);
}

void Metrics::PurgeExpired(std::chrono::steady_clock::time_point now) {
  // A lease that expired without a release is neither held nor a finished hold. Swept at most
  // once a second, so that an acquire does not walk every held lease.
  if (now < next_purge_) return;
  next_purge_ = now + std::chrono::seconds(1);
  for (auto it = held_.begin(); it != held_.end();) {
    it = it->second.expires <= now ? held_.erase(it) : std::next(it);
  }
}

std::string Metrics::Render(const Gauges& gauges) {
  std::string out;
  RenderByCode("ordo_acquires_total", "Acquire requests by result.", acquires_, &out);
  RenderByCode("ordo_renewals_total", "Renew requests by result.", renewals_, &out);
  RenderByCode("ordo_releases_total", "Release requests by result.", releases_, &out);
  Header("ordo_leases_lost_total", "counter",
         "Renewals and releases refused because the lease had expired or was taken over.", &out);
  Line("ordo_leases_lost_total", "", static_cast<double>(leases_lost_.load()), &out);
  Header("ordo_fenced_writes_total", "counter",
         "Fenced writes: accepted, or refused for a stale token (result=\"stale_token\").", &out);
  Line("ordo_fenced_writes_total", "result=\"accepted\"",
       static_cast<double>(fenced_writes_[Index(StatusCode::kOk)].load()), &out);
  Line("ordo_fenced_writes_total", "result=\"refused\"",
       static_cast<double>(fenced_writes_[Index(StatusCode::kStaleToken)].load()), &out);
  RenderByCode("ordo_fenced_write_results_total", "Fenced writes by result code.", fenced_writes_,
               &out);
  RenderByCode("ordo_fenced_reads_total", "Fenced and plain reads by result code.", fenced_reads_,
               &out);
  wait_.Render("ordo_acquire_wait_seconds",
               "Time from an acquire request to its grant or refusal.", &out);
  hold_.Render("ordo_lock_hold_seconds",
               "Time from grant to release, for leases released through this server.", &out);
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    std::size_t live = 0;
    for (const auto& [key, held] : held_) live += held.expires > now;
    Header("ordo_lock_holders", "gauge",
           "Leases granted through this server that are neither released nor expired.", &out);
    Line("ordo_lock_holders", "", static_cast<double>(live), &out);
  }
  Header("ordo_highest_token_issued", "gauge",
         "The largest fencing token this server has handed out.", &out);
  Line("ordo_highest_token_issued", "", static_cast<double>(highest_token_.load()), &out);
  Header("ordo_waiting_acquires", "gauge", "Acquire requests parked, waiting in line, now.", &out);
  Line("ordo_waiting_acquires", "", static_cast<double>(gauges.waiting), &out);
  Header("ordo_parked_long_polls", "gauge",
         "Long-polls parked now: GET /v1/events and GET /v1/elections/{name} with wait_ms.", &out);
  Line("ordo_parked_long_polls", "route=\"events\"", static_cast<double>(gauges.event_polls),
       &out);
  Line("ordo_parked_long_polls", "route=\"elections\"",
       static_cast<double>(gauges.election_polls), &out);
  Header("ordo_open_connections", "gauge", "Client connections open now.", &out);
  Line("ordo_open_connections", "", static_cast<double>(gauges.connections), &out);
  Header("ordo_http_responses_total", "counter", "HTTP responses by status class.", &out);
  static const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
  for (std::size_t i = 0; i < http_responses_.size(); ++i) {
    Line("ordo_http_responses_total", std::string("code=\"") + kClasses[i] + "\"",
         static_cast<double>(http_responses_[i].load()), &out);
  }
  return out;
}

}  // namespace ordo::http
