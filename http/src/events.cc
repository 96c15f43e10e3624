#include "events.h"

#include <algorithm>
#include <utility>

namespace ordo::http {

Events::Events(std::size_t capacity) : capacity_(capacity) {}

void Events::Record(Event event) {
  if (capacity_ == 0) return;
  std::vector<Wake> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    event.id = next_id_++;
    event.time = std::chrono::system_clock::now();
    TrackLocked(event);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (event.id > it->second.after && event.name.starts_with(it->second.prefix)) {
        woken.push_back(std::move(it->second.wake));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    if (ring_.size() == capacity_) ring_.pop_front();
    ring_.push_back(std::move(event));
  }
  // Outside the lock: a wake-up may read the ring (After) or record.
  for (auto& wake : woken) wake();
}

void Events::TrackLocked(Event& event) {
  if (event.type == "acquired" || event.type == "renewed") {
    if (event.expires_at == std::chrono::system_clock::time_point{}) return;
    live_[event.name][event.token] =
        Live{event.owner, event.slot, event.election, event.expires_at};
    const std::int64_t at = event.expires_at.time_since_epoch() / std::chrono::nanoseconds(1);
    std::int64_t cur = next_expiry_.load(std::memory_order_relaxed);
    while (at < cur && !next_expiry_.compare_exchange_weak(cur, at)) {
    }
    return;
  }
  if (event.type == "released" || event.type == "revoked" || event.type == "expired") {
    auto it = live_.find(event.name);
    if (it == live_.end()) return;
    auto lease = it->second.find(event.token);
    if (lease == it->second.end()) return;
    if (event.owner.empty()) event.owner = lease->second.owner;
    event.slot = lease->second.slot;
    event.election = event.election || lease->second.election;
    it->second.erase(lease);
    if (it->second.empty()) live_.erase(it);
  }
}

void Events::Sweep() {
  const auto now = std::chrono::system_clock::now();
  const std::int64_t now_ns = now.time_since_epoch() / std::chrono::nanoseconds(1);
  if (now_ns < next_expiry_.load(std::memory_order_relaxed)) return;
  std::vector<Event> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::int64_t next = INT64_MAX;
    for (const auto& [name, leases] : live_) {
      for (const auto& [token, live] : leases) {
        if (live.expires_at <= now) {
          expired.push_back({.type = "expired", .name = name, .owner = live.owner,
                             .token = token, .slot = live.slot, .election = live.election});
        } else {
          next = std::min<std::int64_t>(
              next, live.expires_at.time_since_epoch() / std::chrono::nanoseconds(1));
        }
      }
    }
    next_expiry_.store(next);
  }
  for (auto& e : expired) Record(std::move(e));
}

bool Events::MatchesLocked(std::uint64_t after, std::string_view prefix) const {
  // Newest first: a long-poll is usually waiting for the newest event.
  for (auto it = ring_.rbegin(); it != ring_.rend() && it->id > after; ++it) {
    if (it->name.starts_with(prefix)) return true;
  }
  return false;
}

std::vector<Event> Events::After(std::uint64_t after, std::string_view prefix,
                                 std::size_t max) const {
  std::vector<Event> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (ring_.empty() || ring_.back().id <= after) return out;
  // Ids are consecutive, so the first event after `after` is found by arithmetic.
  const std::uint64_t first = ring_.front().id;
  std::size_t i = after < first ? 0 : static_cast<std::size_t>(after - first + 1);
  for (; i < ring_.size() && out.size() < max; ++i) {
    if (ring_[i].name.starts_with(prefix)) out.push_back(ring_[i]);
  }
  return out;
}

std::uint64_t Events::last_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_id_ - 1;
}

std::uint64_t Events::Wait(std::uint64_t after, std::string prefix, Wake wake) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_ || MatchesLocked(after, prefix)) return 0;
  const std::uint64_t handle = next_handle_++;
  waiters_.emplace(handle, Waiter{after, std::move(prefix), std::move(wake)});
  return handle;
}

bool Events::Cancel(std::uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.erase(handle) > 0;
}

void Events::Shutdown() {
  std::map<std::uint64_t, Waiter> woken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    woken.swap(waiters_);
  }
  for (auto& [handle, waiter] : woken) waiter.wake();
}

std::size_t Events::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

}  // namespace ordo::http
