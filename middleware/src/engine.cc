#include "ordo/engine.h"

#include <algorithm>
#include <list>

#include "default_owner.h"
#include "ordo/names.h"

namespace ordo {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string HolderText(const std::vector<Holder>& holders) {
  std::string out;
  for (const Holder& h : holders) {
    if (!out.empty()) out += ", ";
    out += "'" + h.owner + "' (token " + std::to_string(h.token) + ", " +
           std::string(LockModeName(h.mode));
    if (h.slot != 0) out += ", slot " + std::to_string(h.slot);
    out += ")";
  }
  return out;
}

Status HeldError(std::string_view name, const std::vector<Holder>& holders) {
  std::string message = "lock '" + std::string(name) + "' is held";
  if (!holders.empty()) message += " by " + HolderText(holders);
  return LockHeldError(std::move(message));
}

Status LostError(const Lease& lease, std::string_view why) {
  return LeaseLostError("lease on '" + lease.name + "' with token " +
                        std::to_string(lease.token) + " is not held: " + std::string(why));
}

Status PermitsUnsupportedError(std::uint32_t limit, std::string_view detail) {
  std::string message = "limit " + std::to_string(limit) +
                        ": semaphores are not supported by this backend yet";
  if (!detail.empty()) message += " (" + std::string(detail) + ")";
  return InvalidArgumentError(std::move(message));
}

Status LimitMismatchError(std::string_view name, std::uint32_t limit, std::uint32_t in_force) {
  return InvalidArgumentError("limit " + std::to_string(limit) + " differs from the limit " +
                              std::to_string(in_force) + " of the live holders of lock '" +
                              std::string(name) + "'; nothing was changed");
}

// --- ChangeBoard ------------------------------------------------------------------------------

struct ChangeBoard::Entry {
  std::string name;
  std::uint64_t generation = 0;
  int users = 0;
  std::condition_variable cv;
  std::list<std::function<void()>*> watchers;
};

ChangeBoard::ChangeBoard() = default;
ChangeBoard::~ChangeBoard() = default;

class ChangeBoard::Waiter final : public Wakeups {
 public:
  Waiter(ChangeBoard& board, std::string_view name, milliseconds recheck)
      : board_(board), recheck_(recheck) {
    std::lock_guard<std::mutex> lock(board_.mu_);
    entry_ = board_.Join(name);
  }
  ~Waiter() override {
    std::lock_guard<std::mutex> lock(board_.mu_);
    board_.Leave(entry_);
  }
  std::uint64_t Take() override {
    std::lock_guard<std::mutex> lock(board_.mu_);
    return entry_->generation;
  }
  void Wait(std::uint64_t ticket, SteadyClock::time_point until) override {
    if (recheck_.count() > 0) until = std::min(until, SteadyClock::now() + recheck_);
    std::unique_lock<std::mutex> lock(board_.mu_);
    entry_->cv.wait_until(lock, until, [&] { return entry_->generation != ticket; });
  }

 private:
  ChangeBoard& board_;
  const milliseconds recheck_;
  Entry* entry_;  // guarded by board_.mu_
};

class ChangeBoard::Watcher final : public Subscription {
 public:
  Watcher(ChangeBoard& board, std::string_view name, std::function<void()> changed)
      : board_(board), changed_(std::move(changed)) {
    std::lock_guard<std::mutex> lock(board_.mu_);
    entry_ = board_.Join(name);
    it_ = entry_->watchers.insert(entry_->watchers.end(), &changed_);
  }
  // Callbacks run under board_.mu_, so once this holds it none of ours is running.
  ~Watcher() override {
    std::lock_guard<std::mutex> lock(board_.mu_);
    entry_->watchers.erase(it_);
    board_.Leave(entry_);
  }

 private:
  ChangeBoard& board_;
  std::function<void()> changed_;
  Entry* entry_;
  std::list<std::function<void()>*>::iterator it_;
};

ChangeBoard::Entry* ChangeBoard::Join(std::string_view name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    auto entry = std::make_unique<Entry>();
    entry->name = std::string(name);
    it = entries_.emplace(entry->name, std::move(entry)).first;
  }
  ++it->second->users;
  users_.fetch_add(1, std::memory_order_seq_cst);
  return it->second.get();
}

void ChangeBoard::Leave(Entry* entry) {
  users_.fetch_sub(1, std::memory_order_seq_cst);
  if (--entry->users > 0) return;
  // Nobody holds a ticket of this entry any more, so its counter may start over.
  entries_.erase(entries_.find(entry->name));
}

void ChangeBoard::Wake(Entry& entry, bool waiters) {
  if (waiters) {
    ++entry.generation;
    entry.cv.notify_all();
  }
  for (auto* changed : entry.watchers) (*changed)();
}

void ChangeBoard::Notify(std::string_view name) {
  // A waiter joins (seq_cst) before the try it guards, and the change being announced was made
  // before this load: if the load sees no user, no waiter's try can have missed the change.
  if (users_.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) Wake(*it->second, /*waiters=*/true);
}

void ChangeBoard::NotifyWatchers(std::string_view name) {
  if (users_.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && !it->second->watchers.empty()) Wake(*it->second, /*waiters=*/false);
}

void ChangeBoard::NotifyAll() {
  if (users_.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, entry] : entries_) Wake(*entry, /*waiters=*/true);
}

std::unique_ptr<Wakeups> ChangeBoard::WaitFor(std::string_view name, milliseconds recheck) {
  return std::make_unique<Waiter>(*this, name, recheck);
}

std::unique_ptr<Subscription> ChangeBoard::Watch(std::string_view name,
                                                 std::function<void()> changed) {
  return std::make_unique<Watcher>(*this, name, std::move(changed));
}

// --- EngineLocker -----------------------------------------------------------------------------

Result<Lease> EngineLocker::Acquire(const LockRequest& request) {
  ORDO_RETURN_IF_ERROR(ValidateRequest(request));
  // The owner is chosen once and passed by reference: no copy of the caller's, and a default
  // one is written into this thread's buffer, which keeps its capacity from call to call. A
  // nested Acquire on the same thread (a backend built on another Locker) finds the buffer in
  // use and takes a string of its own.
  struct OwnerBuffer {
    std::string owner;
    bool in_use = false;
  };
  thread_local OwnerBuffer buffer;
  std::string own_owner;
  std::string* default_owner = nullptr;
  if (request.owner.empty()) {
    default_owner = buffer.in_use ? &own_owner : &buffer.owner;
    internal::AssignDefaultOwner(default_owner);
  }
  struct Claim {
    OwnerBuffer* held;
    ~Claim() {
      if (held != nullptr) held->in_use = false;
    }
  } claim{default_owner == &buffer.owner ? &buffer : nullptr};
  if (claim.held != nullptr) buffer.in_use = true;
  const std::string& owner = request.owner.empty() ? *default_owner : request.owner;
  // A try-once request reads no clock here: its deadline is any time already past.
  const auto deadline = request.wait.count() > 0 ? SteadyClock::now() + request.wait
                                                 : SteadyClock::time_point{};
  std::unique_ptr<Wakeups> wakeups;
  if (request.wait.count() > 0) wakeups = WaitFor(request.name);
  while (true) {
    // The ticket is taken before the try: a change committed after the try looked sends its
    // wake-up after this point, so the Wait below returns at once instead of missing it.
    const std::uint64_t ticket = wakeups ? wakeups->Take() : 0;
    auto attempt = TryAcquire(request, owner, deadline);
    if (!attempt.ok()) return attempt.status();
    if (attempt->lease) return std::move(*attempt->lease);
    if (attempt->retry_now) continue;
    const auto now = SteadyClock::now();
    if (wakeups == nullptr || now >= deadline) {
      if (attempt->holders.empty() && !attempt->held_by.empty()) {
        return LockHeldError("lock '" + request.name + "' is held by " + attempt->held_by);
      }
      return HeldError(request.name, attempt->holders);
    }
    auto wake = deadline;
    // A lease that runs out sends no wake-up: sleep at most until the first conflicting one
    // does (+1 ms: expiry is "expires_at <= now").
    if (attempt->expiry) wake = std::min(wake, now + *attempt->expiry + milliseconds(1));
    wakeups->Wait(ticket, wake);
  }
}

Result<Lease> EngineLocker::Renew(const Lease& lease, milliseconds ttl) {
  ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
  ORDO_RETURN_IF_ERROR(ValidateTtl(ttl));
  if (lease.token == 0 || lease.token > kMaxToken) return LostError(lease, "no such token");
  return DoRenew(lease, ttl);
}

Status EngineLocker::Release(const Lease& lease) {
  ORDO_RETURN_IF_ERROR(ValidateName(lease.name));
  if (lease.token == 0 || lease.token > kMaxToken) return LostError(lease, "no such token");
  Status s = DoRelease(lease);
  if (s.ok()) Released(lease.name);
  return s;
}

Result<LockState> EngineLocker::Describe(std::string_view name) {
  ORDO_RETURN_IF_ERROR(ValidateName(name));
  return DoDescribe(name);
}

std::unique_ptr<Subscription> EngineLocker::Watch(std::string_view name,
                                                  std::function<void()> changed) {
  if (!ValidateName(name).ok() || !changed) return nullptr;
  return Subscribe(name, std::move(changed));
}

}  // namespace ordo
