#include "wait_lines.h"

#include <algorithm>
#include <string>

namespace ordo::http {

using SteadyClock = std::chrono::steady_clock;

Result<Lease> WaitLines::Acquire(Locker& locker, const LockRequest& request) {
  const auto start = SteadyClock::now();
  const auto deadline = start + request.wait;
  Ticket ticket;
  std::unique_lock<std::mutex> lock(mu_);
  if (shutdown_) return UnavailableError("the server is stopping");
  if (waiting_ >= max_waiters_) {
    return UnavailableError("too many waiting acquires (" + std::to_string(waiting_) +
                            "); retry later or use a shorter wait");
  }
  Line& line = lines_[request.name];
  line.push_back(&ticket);
  ++waiting_;
  while (true) {
    if (shutdown_) {
      Leave(request.name, &ticket);
      return UnavailableError("the server is stopping");
    }
    const auto now = SteadyClock::now();
    if (lines_[request.name].front() == &ticket) {
      // The head: the only waiter of this name inside the backend. The line's mutex is not
      // held across the backend call; tickets behind us keep sleeping meanwhile.
      const auto remaining =
          std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                   std::chrono::milliseconds(0));
      LockRequest slice = request;
      slice.wait = std::min(remaining, kSlice);
      lock.unlock();
      Result<Lease> r = locker.Acquire(slice);
      lock.lock();
      if (r.ok() || r.status().code() != StatusCode::kLockHeld ||
          SteadyClock::now() >= deadline) {
        Leave(request.name, &ticket);
        return r;
      }
      continue;
    }
    if (now >= deadline) {
      Leave(request.name, &ticket);
      return LockHeldError("lock '" + request.name + "' is held; the wait of " +
                           std::to_string(request.wait.count()) + "ms elapsed in line");
    }
    ticket.turn.wait_until(lock, deadline);
  }
}

void WaitLines::Leave(const std::string& name, Ticket* ticket) {
  auto it = lines_.find(name);
  Line& line = it->second;
  const bool was_head = line.front() == ticket;
  line.erase(std::find(line.begin(), line.end(), ticket));
  --waiting_;
  if (line.empty()) {
    lines_.erase(it);
  } else if (was_head) {
    line.front()->turn.notify_one();
  }
}

void WaitLines::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  for (auto& [name, line] : lines_) {
    for (Ticket* t : line) t->turn.notify_one();
  }
}

std::size_t WaitLines::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

}  // namespace ordo::http
