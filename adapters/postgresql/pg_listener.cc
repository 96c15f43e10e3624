#include "pg_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "statements.h"

namespace ordo::pg {

struct Listener::Receiver final : pqxx::notification_receiver {
  Receiver(pqxx::connection& conn, Listener& owner)
      : pqxx::notification_receiver(conn, std::string(sql::kChannel)), listener(owner) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    listener.board().Notify(payload);
  }
  Listener& listener;
};

Listener::Listener(Pool& pool) : pool_(pool), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Listener::~Listener() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0) {
    // Cannot happen for an eventfd below its maximum; the thread would still stop on its
    // next wake-up.
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Listener::Start(bool wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  if (!wait) return;
  // connect_timeout bounds the first attempt; the margin covers LISTEN's round trip.
  changed_.wait_for(lock, std::chrono::seconds(15), [&] { return attempted_ || stopping_; });
}

bool Listener::healthy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return healthy_;
}

void Listener::Poke() {
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0) {
    // Only at the eventfd's maximum, when the thread has a wake-up pending anyway.
  }
}

void Listener::Register(std::string_view name, bool wait) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = interest_.find(name);
  if (it == interest_.end()) it = interest_.emplace(std::string(name), Interest{}).first;
  ++it->second.count;
  if (it->second.held || !thread_.joinable()) return;
  Poke();
  if (!wait) return;
  // Bounded: a registration stuck behind a hung release must not stall the waiter forever; it
  // re-checks on its own meanwhile (ListenerWakeups).
  const std::string key(name);
  changed_.wait_for(lock, std::chrono::seconds(5), [&] {
    auto found = interest_.find(key);
    return stopping_ || !healthy_ || (found != interest_.end() && found->second.held);
  });
}

void Listener::Unregister(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = interest_.find(name);
  if (it == interest_.end() || it->second.count == 0) return;
  if (--it->second.count > 0) return;
  if (!it->second.held) {
    interest_.erase(it);
    return;
  }
  Poke();  // the thread drops the advisory lock and the entry
}

bool Listener::Holds(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = interest_.find(name);
  return healthy_ && it != interest_.end() && it->second.held;
}

bool Listener::SyncInterest(pqxx::connection& conn) {
  while (true) {
    std::string name;
    bool take = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [n, interest] : interest_) {
        if ((interest.count > 0) != interest.held) {
          name = n;
          take = interest.count > 0;
          break;
        }
      }
    }
    if (name.empty()) return true;
    Outcome done = Guard(take ? "register a waiter" : "unregister a waiter", pool_.config(), [&] {
      pqxx::nontransaction tx(conn);
      tx.exec_params(std::string(take ? sql::kRegisterWaiter : sql::kUnregisterWaiter),
                     sql::kWaitersClass, name);
      return OkStatus();
    });
    if (!done.status.ok()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = interest_.find(name);
      if (it != interest_.end()) {
        it->second.held = take;
        if (it->second.count == 0 && !it->second.held) interest_.erase(it);
      }
    }
    changed_.notify_all();
  }
}

void Listener::Reset(std::unique_ptr<Receiver>& receiver,
                     std::unique_ptr<pqxx::connection>& conn) {
  // The receiver's destructor may talk to the server (UNLISTEN); on a dead connection that fails
  // and libpqxx swallows it.
  Guard("stop listening", pool_.config(), [&] {
    receiver.reset();
    conn.reset();
    return OkStatus();
  });
  receiver.reset();
  conn.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    healthy_ = false;
    // The connection took its advisory locks with it.
    for (auto it = interest_.begin(); it != interest_.end();) {
      it->second.held = false;
      it = it->second.count == 0 ? interest_.erase(it) : std::next(it);
    }
  }
  changed_.notify_all();
  board_.NotifyAll();  // wake every waiter: they fall back to re-checking until it is back
}

void Listener::Loop() {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<Receiver> receiver;
  auto backoff = std::chrono::milliseconds(100);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    if (conn == nullptr) {
      auto connected = pool_.Connect();
      Outcome listening{connected.status()};
      if (connected.ok()) {
        conn = std::move(*connected);
        listening = Guard("listen", pool_.config(), [&] {
          receiver = std::make_unique<Receiver>(*conn, *this);  // sends LISTEN
          return OkStatus();
        });
        // Registrations before health: a waiter that sees the listener healthy again and
        // re-tries must already be one that releases notify.
        if (listening.status.ok() && !SyncInterest(*conn)) {
          listening.status = UnavailableError("listener: registering waiters failed");
        }
      }
      std::unique_lock<std::mutex> lock(mu_);
      attempted_ = true;
      if (listening.status.ok()) {
        healthy_ = true;
        backoff = std::chrono::milliseconds(100);
        changed_.notify_all();
        lock.unlock();
        board_.NotifyAll();  // notifications may have been missed while disconnected
        continue;
      }
      changed_.notify_all();
      lock.unlock();
      Reset(receiver, conn);
      lock.lock();
      changed_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    if (conn->sock() < 0) {  // closed under us: poll() would ignore it and block forever
      Reset(receiver, conn);
      continue;
    }
    pollfd fds[2] = {{conn->sock(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = poll(fds, 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (fds[1].revents != 0) {
      // The destructor (loop around to see stopping_) or a change of interest.
      std::uint64_t count = 0;
      if (read(wake_fd_, &count, sizeof(count)) < 0) {
        // EAGAIN: already drained.
      }
      if (!SyncInterest(*conn)) {
        Reset(receiver, conn);
        continue;
      }
      // Notifications that arrived while the statements ran were read into libpq's buffer,
      // where poll() no longer sees them.
      fds[0].revents = POLLIN;
    } else if (ready == 0) {
      continue;
    }
    Outcome got = Guard("receive notifications", pool_.config(), [&] {
      if (fds[0].revents != 0 || ready < 0) conn->get_notifs();  // throws if the server left
      if (!conn->is_open()) throw pqxx::broken_connection("listener connection closed");
      return OkStatus();
    });
    if (!got.status.ok()) Reset(receiver, conn);
  }
  Reset(receiver, conn);
}

}  // namespace ordo::pg
