#include "parking.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

namespace ordo::http {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

Parking::Parking(Locker& locker, asio::io_context& io, RunOnWorker run_on_worker,
                 std::size_t max_waiters, std::chrono::milliseconds poll_period)
    : locker_(locker),
      io_(io),
      strand_(asio::make_strand(io)),
      run_on_worker_(std::move(run_on_worker)),
      max_waiters_(max_waiters),
      poll_period_(poll_period),
      poll_timer_(strand_) {}

Parking::~Parking() { Shutdown(); }

std::size_t Parking::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

std::vector<Parking::Waiting> Parking::WaitersOf(std::string_view name) const {
  std::vector<Waiting> out;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = lines_.find(name);
  if (it == lines_.end()) return out;
  for (const auto& w : it->second.queue) {
    if (w->finished) continue;  // answered, leaving the line
    out.push_back({w->request.owner, w->request.mode, w->since, w->wait});
  }
  return out;
}

void Parking::Park(const LockRequest& request, Done done) {
  auto waiter = std::make_shared<Waiter>();
  waiter->request = request;
  waiter->wait = request.wait;
  waiter->request.wait = std::chrono::milliseconds(0);  // every retry is a try-once
  waiter->done = std::move(done);
  waiter->deadline = std::make_shared<asio::steady_timer>(strand_, request.wait);
  bool created = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (shutdown_ || waiting_ >= max_waiters_) {
      const bool stopping = shutdown_;
      lock.unlock();
      waiter->done(UnavailableError(
          stopping ? std::string("the server is stopping")
                   : "the server already has " + std::to_string(max_waiters_) +
                         " waiting acquires (its limit); retry later"));
      return;
    }
    auto [it, inserted] = lines_.try_emplace(request.name);
    created = inserted;
    it->second.queue.push_back(waiter);
    ++waiting_;
    std::weak_ptr<Waiter> weak = waiter;
    waiter->deadline->async_wait(
        asio::bind_executor(strand_, [this, name = request.name, weak](auto ec) {
          if (ec) return;
          if (auto w = weak.lock()) OnDeadline(name, w);
        }));
    if (created) StartPolling();  // until a Watch subscription, if any, replaces polling
  }
  if (created) {
    // Watch before the first try: a change after Watch returns is never missed, so a release
    // between the try and the subscription still wakes the line.
    auto sub = locker_.Watch(request.name, [this, name = request.name] {
      // On a backend thread, which must not block: hand the wake-up to the I/O context.
      asio::post(io_, [this, name] { Kick(name); });
    });
    std::unique_ptr<Subscription> unused;
    if (sub) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = lines_.find(request.name);
      if (it != lines_.end() && !it->second.watch) {
        it->second.watch = std::move(sub);
      } else {
        unused = std::move(sub);
      }
    }
    unused.reset();  // outside mu_: its destructor waits for a running callback
  }
  Kick(request.name);
}

void Parking::Notify(const std::string& name) { Kick(name); }

void Parking::Kick(const std::string& name) {
  std::shared_ptr<Waiter> head;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lines_.find(name);
    if (it == lines_.end() || it->second.queue.empty()) return;
    Line& line = it->second;
    if (line.trying) {
      line.again = true;
      return;
    }
    line.trying = true;
    line.again = false;
    head = line.queue.front();
  }
  run_on_worker_([this, name, head] { Try(name, head); });
}

void Parking::Try(const std::string& name, const std::shared_ptr<Waiter>& waiter) {
  Result<Lease> result = locker_.Acquire(waiter->request);
  const bool held = !result.ok() && result.status().code() == StatusCode::kLockHeld;
  // Watch does not signal expiry by TTL: learn when the first holder's lease runs out.
  std::optional<SystemClock::time_point> first_expiry;
  bool watched = false;
  if (held) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = lines_.find(name);
      watched = it != lines_.end() && it->second.watch != nullptr;
    }
    if (watched) {
      auto state = locker_.Describe(name);
      if (state.ok()) {
        for (const Holder& h : state->holders) {
          if (!first_expiry || h.expires_at < *first_expiry) first_expiry = h.expires_at;
        }
      }
    }
  }
  bool kick_next = false;
  bool deliver = false;
  bool give_back = false;
  std::unique_ptr<Subscription> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lines_.find(name);
    if (waiter->finished) {
      give_back = result.ok();  // answered by Shutdown meanwhile
    } else {
      Line& line = it->second;
      line.trying = false;
      const bool finished = !held || waiter->expired;
      if (finished) {
        waiter->finished = true;
        deliver = true;
        kick_next = line.again || !result.ok() ||
                    (result.ok() && waiter->request.mode == LockMode::kShared);
        gone = Remove(name, waiter.get());
      } else {
        kick_next = line.again;
      }
    }
  }
  if (give_back) locker_.Release(*result).IgnoreError();
  if (deliver) {
    CancelTimer(waiter);
    if (held) {
      result = LockHeldError("'" + name + "' was still held when the wait ran out");
    }
    waiter->done(std::move(result));
  }
  gone.reset();
  if (first_expiry) ArmExpiry(name, *first_expiry);
  if (kick_next) Kick(name);
}

void Parking::OnDeadline(const std::string& name, const std::shared_ptr<Waiter>& waiter) {
  std::unique_ptr<Subscription> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiter->finished) return;
    auto it = lines_.find(name);
    if (it == lines_.end()) return;
    if (it->second.trying && it->second.queue.front() == waiter) {
      waiter->expired = true;  // the try in flight answers it
      return;
    }
    waiter->finished = true;
    gone = Remove(name, waiter.get());
  }
  gone.reset();
  waiter->done(LockHeldError("'" + name + "' was still held when the wait ran out"));
}

std::unique_ptr<Subscription> Parking::Remove(const std::string& name, const Waiter* waiter) {
  auto it = lines_.find(name);
  if (it == lines_.end()) return nullptr;
  auto& queue = it->second.queue;
  auto pos = std::find_if(queue.begin(), queue.end(),
                          [waiter](const auto& w) { return w.get() == waiter; });
  if (pos == queue.end()) return nullptr;
  queue.erase(pos);
  --waiting_;
  if (!queue.empty() || it->second.trying) return nullptr;
  std::unique_ptr<Subscription> watch = std::move(it->second.watch);
  lines_.erase(it);
  return watch;
}

void Parking::CancelTimer(const std::shared_ptr<Waiter>& waiter) {
  asio::post(strand_, [timer = waiter->deadline] { timer->cancel(); });
}

void Parking::ArmExpiry(const std::string& name, SystemClock::time_point at) {
  // The holder's expiry is the backend's clock; converted to this host's steady clock, plus a
  // little, so that the retry does not arrive just before the backend considers it expired.
  const auto when = SteadyClock::now() +
                    std::chrono::duration_cast<SteadyClock::duration>(at - SystemClock::now()) +
                    std::chrono::milliseconds(5);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lines_.find(name);
    if (it == lines_.end()) return;
    const auto armed = it->second.expiry_armed;
    if (armed > SteadyClock::now() && armed <= when) return;  // an earlier one is set
    it->second.expiry_armed = when;
  }
  asio::post(strand_, [this, name, when] {
    auto timer = std::make_shared<asio::steady_timer>(strand_, when);
    timer->async_wait(asio::bind_executor(strand_, [this, name, timer](auto ec) {
      if (!ec) Kick(name);
    }));
  });
}

void Parking::StartPolling() {
  if (polling_ || shutdown_) return;
  polling_ = true;
  asio::post(strand_, [this] {
    poll_timer_.expires_after(poll_period_);
    poll_timer_.async_wait(asio::bind_executor(strand_, [this](auto ec) {
      if (!ec) OnPoll();
    }));
  });
}

void Parking::OnPoll() {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, line] : lines_) {
      if (!line.watch) names.push_back(name);
    }
    if (names.empty() || shutdown_) {
      polling_ = false;
      return;
    }
  }
  for (const auto& name : names) Kick(name);
  poll_timer_.expires_after(poll_period_);
  poll_timer_.async_wait(asio::bind_executor(strand_, [this](auto ec) {
    if (!ec) OnPoll();
  }));
}

void Parking::Shutdown() {
  std::map<std::string, Line, std::less<>> lines;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    shutdown_ = true;
    lines.swap(lines_);
    waiting_ = 0;
    for (auto& [name, line] : lines) {
      for (auto& w : line.queue) w->finished = true;
    }
  }
  asio::post(strand_, [this] { poll_timer_.cancel(); });
  for (auto& [name, line] : lines) {
    line.watch.reset();
    for (auto& w : line.queue) {
      CancelTimer(w);
      w->done(UnavailableError("the server is stopping"));
    }
  }
}

}  // namespace ordo::http
