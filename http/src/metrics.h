// Metrics of the REST server, rendered as Prometheus text (GET /metrics).
//
// Counters and histograms are lock-free atomics; the table of leases granted through this
// server (for hold times and the current-holders gauge) has its own mutex. Thread-safe.
#ifndef ORDO_HTTP_SRC_METRICS_H_
#define ORDO_HTTP_SRC_METRICS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo::http {

// A histogram of durations in seconds with fixed buckets.
class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                     1,     5,     10,   30,   60,  300};
  void Observe(std::chrono::nanoseconds d);
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};  // last: +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

class Metrics {
 public:
  // One counter per Status code.
  using ByCode = std::array<std::atomic<std::uint64_t>, 9>;

  void Acquired(const Result<Lease>& result, std::chrono::nanoseconds waited);
  void Renewed(const Result<Lease>& result);
  void Released(const Lease& lease, const Status& status);
  void FencedWrite(const Status& status);
  void FencedRead(const Status& status);
  void Request(int http_status);

  // Gauges owned elsewhere, sampled at render time.
  struct Gauges {
    std::size_t waiting = 0;         // parked acquires
    std::size_t event_polls = 0;     // parked GET /v1/events
    std::size_t election_polls = 0;  // parked GET /v1/elections/{name}
    std::size_t connections = 0;
  };
  std::string Render(const Gauges& gauges);

 private:
  struct Held {
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point expires;
  };
  // Drops leases whose TTL passed without a release. REQUIRES: mu_ held.
  void PurgeExpired(std::chrono::steady_clock::time_point now);

  ByCode acquires_{};
  ByCode renewals_{};
  ByCode releases_{};
  ByCode fenced_writes_{};
  ByCode fenced_reads_{};
  std::atomic<std::uint64_t> leases_lost_{0};
  std::atomic<std::uint64_t> highest_token_{0};
  std::array<std::atomic<std::uint64_t>, 6> http_responses_{};  // 1xx..5xx, other
  Histogram wait_;
  Histogram hold_;

  std::mutex mu_;
  // Leases granted through this server and not yet released or expired, by (name, token).
  std::map<std::pair<std::string, std::uint64_t>, Held> held_;  // guarded by mu_
  std::chrono::steady_clock::time_point next_purge_;             // guarded by mu_
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_METRICS_H_
